//! Hardware collectors (cpu, cpufreq, hwmon, thermal_zone, gpu) through the built binary on
//! the project's own tree tests/fixtures/hw-a: hyper-threads sharing throttle counters, a
//! cpufreq policy link, colliding hwmon chips, unreadable and garbled attributes, a disabled
//! thermal zone, and CPU counters that step backwards between scrapes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodetune_e2e::{http_get, nodetune};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hw-a")
}

const COLLECTORS: &[&str] = &[
    "--collector.disable-defaults",
    "--collector.cpu",
    "--collector.cpufreq",
    "--collector.hwmon",
    "--collector.thermal_zone",
];

/// `nodetune metrics` on a tree, without the duration series (they vary).
fn metrics(root: &Path, extra: &[&str]) -> String {
    let procfs = format!("--path.procfs={}", root.join("proc").display());
    let sysfs = format!("--path.sysfs={}", root.join("sys").display());
    let mut args = vec!["metrics", procfs.as_str(), sysfs.as_str()];
    args.extend_from_slice(COLLECTORS);
    args.extend_from_slice(extra);
    let r = nodetune(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "unexpected log output: {}", r.stderr);
    r.stdout
        .lines()
        .filter(|l| !l.contains("node_scrape_collector_duration_seconds"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn hw_fixture_gives_the_expected_output() {
    let got = metrics(
        &fixture(),
        &[
            "--collector.cpu.info.flags-include=^(aes|avx.?|constant_tsc)$",
            "--collector.cpu.info.bugs-include=^(spectre_.*|mds)$",
        ],
    );
    let want = std::fs::read_to_string(fixture().join("expected.prom")).unwrap();
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .filter(|l| !got.lines().any(|g| g == *l))
            .map(|l| format!("- {l}"))
            .chain(
                got.lines()
                    .filter(|l| !want.lines().any(|w| w == *l))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        panic!("output differs from expected.prom:\n{}", diff.join("\n"));
    }
}

#[test]
fn flags_select_chips_sensors_and_cpu_series() {
    let root = fixture();
    let all = metrics(&root, &[]);
    // Without --collector.cpu.info: no info series; guest times on by default.
    assert!(!all.contains("node_cpu_info{"));
    assert!(all.contains("node_cpu_guest_seconds_total{"));
    let no_guest = metrics(&root, &["--collector.cpu.guest=false"]);
    assert!(!no_guest.contains("node_cpu_guest_seconds_total{"));

    let only = metrics(&root, &["--collector.hwmon.chip-include=^platform_nct6775"]);
    let chips: Vec<&str> = only
        .lines()
        .filter(|l| l.starts_with("node_hwmon_in_volts{"))
        .collect();
    assert_eq!(
        chips,
        vec![
            "node_hwmon_in_volts{chip=\"platform_nct6775_656_hwmon2\",sensor=\"in0\"} 1.02",
            "node_hwmon_in_volts{chip=\"platform_nct6775_656_hwmon3\",sensor=\"in0\"} 1.03",
        ]
    );
    let no_temp2 = metrics(
        &root,
        &["--collector.hwmon.sensor-exclude=^platform_coretemp_0;temp2$"],
    );
    assert!(!no_temp2.contains("sensor=\"temp2\""));
    assert!(no_temp2
        .contains("node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"} 52"));
}

#[test]
fn missing_trees_fail_only_hwmon() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("host");
    copy_tree(&fixture(), &root);
    for dir in [
        "sys/class/hwmon",
        "sys/class/thermal",
        "sys/devices/system/cpu",
    ] {
        std::fs::remove_dir_all(root.join(dir)).unwrap();
    }
    let m = metrics(&root, &[]);
    let ok = |c: &str| {
        value(
            &m,
            &format!("node_scrape_collector_success{{collector=\"{c}\"}}"),
        )
    };
    // node_exporter: no /sys/class/hwmon is "no data" (success 0); the others just have
    // nothing to report.
    assert_eq!(ok("hwmon"), Some(0.0));
    assert_eq!(ok("thermal_zone"), Some(1.0));
    assert_eq!(ok("cpufreq"), Some(1.0));
    assert_eq!(ok("cpu"), Some(1.0));
    assert!(!m.contains("node_hwmon_"));
    assert!(!m.contains("node_cpu_core_throttles_total{"));
    assert_eq!(
        value(&m, "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}"),
        Some(10.0)
    );
    std::fs::remove_file(root.join("proc/stat")).unwrap();
    let m = metrics(&root, &[]);
    assert_eq!(
        value(&m, "node_scrape_collector_success{collector=\"cpu\"}"),
        Some(0.0)
    );
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU times are held when they step back (node_exporter's rule; the daemon keeps state
/// between scrapes), while throttle and energy counters are passed through as read.
#[test]
fn cpu_times_never_go_backwards_in_the_daemon() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("host");
    copy_tree(&fixture(), &root);
    // `nodetune run` also reads memory for its saturation signals.
    std::fs::write(
        root.join("proc/meminfo"),
        "MemTotal: 1000 kB\nMemAvailable: 500 kB\n",
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(nodetune_e2e::bin());
    cmd.arg("run")
        .arg("--mode=off")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--path.procfs={}", root.join("proc").display()))
        .arg(format!("--path.sysfs={}", root.join("sys").display()))
        .arg(format!("--root={}", d.path().join("r").display()))
        .arg(format!("--state-dir={}", d.path().join("state").display()))
        .args(COLLECTORS)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _daemon = Kill(cmd.spawn().expect("start nodetune run"));
    let get = || -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((200, _, body)) = http_get(&format!("127.0.0.1:{port}"), "/metrics", &[]) {
                return String::from_utf8_lossy(&body).into_owned();
            }
            assert!(Instant::now() < deadline, "nodetune run never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let user = "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}";
    let idle = "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"}";
    let core = "node_cpu_core_throttles_total{core=\"0\",package=\"0\"}";
    let energy =
        "node_hwmon_energy_joule_total{chip=\"pci0000:00_0000:00:02_0\",sensor=\"energy1\"}";
    let first = get();
    assert_eq!(value(&first, user), Some(10.0));
    assert_eq!(value(&first, core), Some(4.0));

    // cpu0 user steps back by 2 s (idle only by 1 s: no hot-plug); cpu1's idle jumps back
    // by 400 s (a re-plugged CPU: its values start over). Throttles and energy reset.
    let stat = std::fs::read_to_string(root.join("proc/stat")).unwrap();
    let stat = stat
        .replace("cpu0 1000 20 300 40000", "cpu0 800 20 300 39900")
        .replace("cpu1 2000 30 400 50000", "cpu1 5 30 400 10000");
    std::fs::write(root.join("proc/stat"), stat).unwrap();
    std::fs::write(
        root.join("sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count"),
        "1\n",
    )
    .unwrap();
    std::fs::write(
        root.join("sys/devices/pci0000:00/0000:00:02.0/hwmon/hwmon1/energy1_input"),
        "1000000\n",
    )
    .unwrap();
    let second = get();
    assert_eq!(value(&second, user), Some(10.0), "held, not exported lower");
    assert_eq!(
        value(&second, "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"),
        Some(400.0)
    );
    assert_eq!(value(&second, idle), Some(100.0), "hot-plug: starts over");
    assert_eq!(
        value(&second, "node_cpu_seconds_total{cpu=\"1\",mode=\"user\"}"),
        Some(0.05)
    );
    assert_eq!(value(&second, core), Some(1.0), "passed through as read");
    assert_eq!(value(&second, energy), Some(1.0), "passed through as read");
}

#[test]
fn gpu_without_nvml_fails_quietly() {
    // Without the `gpu` feature (the suite's binary is built without it, so this holds on a
    // host with a GPU too), or without libnvidia-ml.so.1, the gpu collector reports success 0
    // and logs nothing.
    let r = nodetune(
        &["metrics", "--collector.disable-defaults", "--collector.gpu"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert_eq!(
        value(
            &r.stdout,
            "node_scrape_collector_success{collector=\"gpu\"}"
        ),
        Some(0.0)
    );
    assert!(!r.stdout.contains("nodetune_gpu_"));
}
