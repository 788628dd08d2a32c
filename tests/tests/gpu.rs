//! The GPU collector without a GPU: a fake libnvidia-ml.so.1 built here from C
//! (tests/fake-nvml/nvml.c) is found through LD_LIBRARY_PATH, as the real one is through the
//! loader's path, by nodetune built with the `gpu` feature (the `nodetune-gpu` binary of this
//! crate: nodetune's own main). Checks the exact families, NVML_ERROR_NOT_SUPPORTED, a failing
//! query, a GPU that falls off the bus, a driver without the R535 symbol names, a library that
//! fails to initialise or is absent, and the ThermalThrottling alert fed by the GPU reasons.
//! On a host with a GPU, the live test is `nvml_live` (agent/src/collect/gpu.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use nodetune_e2e::{have_tool, require, run_cmd, wait_until, Daemon, FakeHost, Run};

const GPU_BIN: &str = env!("CARGO_BIN_EXE_nodetune-gpu");

/// Builds the fake library into `dir` (with extra compiler flags) and returns `dir`.
fn fake_nvml(dir: &Path, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-nvml/nvml.c");
    std::fs::create_dir_all(dir).unwrap();
    let r = run_cmd(
        Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
            .arg(dir.join("libnvidia-ml.so.1"))
            .args(flags)
            .arg(&src),
    );
    assert_eq!(r.code, 0, "gcc: {}", r.stderr);
    dir.to_path_buf()
}

fn metrics(lib_dir: Option<&Path>, env: &[(&str, &str)], extra: &[&str]) -> Run {
    let mut cmd = Command::new(GPU_BIN);
    cmd.args(["metrics", "--collector.disable-defaults", "--collector.gpu"])
        .args(extra)
        .env_remove("LD_LIBRARY_PATH");
    if let Some(d) = lib_dir {
        cmd.env("LD_LIBRARY_PATH", d);
    }
    run_cmd(cmd.envs(env.iter().copied()))
}

/// The sample lines of the gpu families and the collector's success.
fn gpu_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| {
            l.starts_with("nodetune_gpu_")
                || l.starts_with("node_scrape_collector_success{collector=\"gpu\"}")
        })
        .collect()
}

const H100: &str =
    "gpu=\"0\",name=\"NVIDIA H100 80GB HBM3\",uuid=\"GPU-5c1b2b6e-0000-4000-8000-000000000000\"";
const A10: &str = "gpu=\"1\",name=\"NVIDIA A10\",uuid=\"GPU-7d2c3c7f-1111-4000-8000-111111111111\"";

/// Everything the fake's three GPUs give, in the encoder's order.
fn expected() -> Vec<String> {
    let with = |id: &str, k: &str, v: &str| {
        let (gpu, rest) = id.split_once(',').unwrap();
        // Labels are sorted: clock/kind/reason sit before or after gpu by name.
        match k {
            "clock" => format!("{k}=\"{v}\",{id}"),
            "kind" | "reason" => format!("{gpu},{}", insert_sorted(rest, k, v)),
            _ => unreachable!(),
        }
    };
    let mut e = vec![
        "node_scrape_collector_success{collector=\"gpu\"} 1".to_string(),
        format!(
            "nodetune_gpu_clock_hertz{{{}}} 1.98e+09",
            with(H100, "clock", "graphics")
        ),
        format!(
            "nodetune_gpu_clock_hertz{{{}}} 1.695e+09",
            with(A10, "clock", "graphics")
        ),
        format!(
            "nodetune_gpu_clock_hertz{{{}}} 2.619e+09",
            with(H100, "clock", "memory")
        ),
        format!(
            "nodetune_gpu_clock_hertz{{{}}} 6.251e+09",
            with(A10, "clock", "memory")
        ),
        format!(
            "nodetune_gpu_clock_hertz{{{}}} 1.98e+09",
            with(H100, "clock", "sm")
        ),
        format!(
            "nodetune_gpu_clock_hertz{{{}}} 1.695e+09",
            with(A10, "clock", "sm")
        ),
        format!("nodetune_gpu_info{{{H100}}} 1"),
        format!("nodetune_gpu_info{{{A10}}} 1"),
        "nodetune_gpu_lost{gpu=\"0\"} 0".into(),
        "nodetune_gpu_lost{gpu=\"1\"} 0".into(),
        "nodetune_gpu_lost{gpu=\"2\"} 1".into(),
        format!("nodetune_gpu_memory_total_bytes{{{H100}}} 8.5520809984e+10"),
        format!("nodetune_gpu_memory_total_bytes{{{A10}}} 2.4146608128e+10"),
        format!("nodetune_gpu_memory_used_bytes{{{H100}}} 1e+09"),
        format!("nodetune_gpu_memory_used_bytes{{{A10}}} 0"),
        // The A10's power is NVML_ERROR_NOT_SUPPORTED: no series.
        format!("nodetune_gpu_power_watts{{{H100}}} 312.5"),
        format!("nodetune_gpu_temperature_celsius{{{H100}}} 71"),
        format!("nodetune_gpu_temperature_celsius{{{A10}}} 40"),
    ];
    for (reason, on) in [
        ("applications_clocks_setting", 0),
        ("display_clock_setting", 0),
        ("gpu_idle", 0),
        ("hw_power_brake_slowdown", 0),
        ("hw_slowdown", 0),
        ("hw_thermal_slowdown", 1),
        ("sw_power_cap", 1),
        ("sw_thermal_slowdown", 0),
        ("sync_boost", 0),
    ] {
        e.push(format!(
            "nodetune_gpu_throttle_active{{{}}} {on}",
            with(H100, "reason", reason)
        ));
    }
    e.push(format!("nodetune_gpu_throttle_reasons{{{H100}}} 68"));
    // The A10's utilisation fails (NVML_ERROR_UNKNOWN): no series, a debug line.
    e.push(format!(
        "nodetune_gpu_utilization_ratio{{{}}} 0.87",
        with(H100, "kind", "gpu")
    ));
    e.push(format!(
        "nodetune_gpu_utilization_ratio{{{}}} 0.4",
        with(H100, "kind", "memory")
    ));
    e
}

/// `name="…",uuid="…"` with `k="v"` put in its sorted place.
fn insert_sorted(rest: &str, k: &str, v: &str) -> String {
    let mut parts: Vec<String> = rest.split(',').map(str::to_string).collect();
    parts.push(format!("{k}=\"{v}\""));
    parts.sort();
    parts.join(",")
}

fn have_gcc() -> bool {
    require(have_tool("gcc"), "gcc (builds the fake libnvidia-ml.so.1)")
}

#[test]
fn fake_nvml_gives_the_exact_families_and_errors() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml(&dir.path().join("r550"), &[]);
    let trace = dir.path().join("trace");
    let trace_env = trace.display().to_string();
    let r = metrics(Some(&lib), &[("FAKE_NVML_TRACE", &trace_env)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(gpu_lines(&r.stdout), expected(), "{}", r.stdout);
    // The lost GPU is an error line; nothing else is logged at the default level.
    let log: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(log.len(), 1, "{}", r.stderr);
    assert!(
        log[0].contains("level=ERROR")
            && log[0].contains("GPU 2 fell off the bus (NVML_ERROR_GPU_IS_LOST)"),
        "{}",
        r.stderr
    );
    // Initialised first; the versioned entry points and the R535+ name of the reasons call.
    let calls = std::fs::read_to_string(&trace).unwrap();
    for call in [
        "nvmlInit_v2",
        "nvmlDeviceGetCount_v2",
        "nvmlDeviceGetHandleByIndex_v2",
        "nvmlDeviceGetMemoryInfo_v2",
        "nvmlDeviceGetCurrentClocksEventReasons",
    ] {
        assert!(
            calls.lines().any(|l| l == call),
            "{call} not called:\n{calls}"
        );
    }
    assert!(!calls.contains("ThrottleReasons"), "{calls}");
    // The v1 memory call counts the driver's reservation as used: not called.
    assert!(
        !calls.lines().any(|l| l == "nvmlDeviceGetMemoryInfo"),
        "{calls}"
    );
    assert_eq!(calls.lines().next(), Some("nvmlInit_v2"), "{calls}");
    // Debug: the failing query is named.
    let r = metrics(Some(&lib), &[], &["--log.level=debug"]);
    assert!(
        r.stderr
            .contains("msg=\"GPU 1: utilization: an internal driver error occurred\" gpu=1"),
        "{}",
        r.stderr
    );

    // A driver before R535 has only the ...ClocksThrottleReasons name: same families.
    let old = fake_nvml(&dir.path().join("r525"), &["-DPRE_R535"]);
    std::fs::remove_file(&trace).unwrap();
    let r = metrics(Some(&old), &[("FAKE_NVML_TRACE", &trace_env)], &[]);
    assert_eq!(gpu_lines(&r.stdout), expected(), "{}", r.stdout);
    let calls = std::fs::read_to_string(&trace).unwrap();
    assert!(
        calls.contains("nvmlDeviceGetCurrentClocksThrottleReasons"),
        "{calls}"
    );
}

#[test]
fn a_driver_that_fails_or_is_absent_gives_success_0_quietly() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml(dir.path(), &[]);
    // NVML_ERROR_DRIVER_NOT_LOADED (9) from nvmlInit_v2.
    for (lib, env) in [
        (Some(lib.as_path()), vec![("FAKE_NVML_INIT_ERROR", "9")]),
        (None, vec![]),
    ] {
        let r = metrics(lib, &env, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(
            gpu_lines(&r.stdout),
            vec!["node_scrape_collector_success{collector=\"gpu\"} 0"],
            "{}",
            r.stdout
        );
        assert_eq!(
            r.stderr, "",
            "absent or failing NVML logs nothing by default"
        );
    }
    let r = metrics(None, &[], &["--log.level=debug"]);
    assert!(
        r.stderr
            .contains("collector gpu failed: NVML not available"),
        "{}",
        r.stderr
    );
}

#[test]
fn gpu_throttle_reasons_raise_thermal_throttling() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml(dir.path(), &[]);
    let h = FakeHost::new();
    let cfg = dir.path().join("nodetune.toml");
    std::fs::write(
        &cfg,
        "mode = \"audit\"\n[alerts]\ninterval = \"100ms\"\nfor-duration = \"200ms\"\n",
    )
    .unwrap();
    let lib_dir = lib.display().to_string();
    let mut env: Vec<(&str, String)> = h.env(&[]);
    env.push(("LD_LIBRARY_PATH", lib_dir));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start_program(
        Path::new(GPU_BIN),
        &[
            &format!("--config={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0",
            &format!("--path.procfs={}", h.path("proc").display()),
            &format!("--path.sysfs={}", h.path("sysfs").display()),
            "--collector.disable-defaults",
            "--collector.gpu",
        ],
        &env,
    );
    let firing = |reason: &str| {
        d.status().is_some_and(|s| {
            s["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["name"] == "ThermalThrottling"
                        && a["state"] == "firing"
                        && a["labels"]
                            .as_array()
                            .is_some_and(|l| l.iter().any(|p| p[0] == "reason" && p[1] == reason))
                })
            })
        })
    };
    assert!(
        wait_until(20, || firing("hw_thermal_slowdown")
            && firing("sw_power_cap")),
        "{:?}\n{}",
        d.status(),
        d.stderr()
    );
    assert!(!firing("gpu_idle"));
}
