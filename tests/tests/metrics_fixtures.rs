//! Collectors on the project's own fixture trees (tests/fixtures/host-a), including odd
//! cases: missing files, unreadable attributes, colliding hwmon chips, a broken text file and
//! counters that go backwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nodetune_e2e::{have_tool, nodetune, require, run_cmd};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/host-a")
}

/// Runs `nodetune metrics` on a tree and returns series → value.
fn scrape(root: &Path, extra: &[&str]) -> BTreeMap<String, f64> {
    let procfs = format!("--path.procfs={}", root.join("proc").display());
    let sysfs = format!("--path.sysfs={}", root.join("sys").display());
    let textfile = format!(
        "--collector.textfile.directory={}",
        root.join("textfile").display()
    );
    let mut args = vec![
        "metrics",
        procfs.as_str(),
        sysfs.as_str(),
        textfile.as_str(),
        "--no-collector.uname",
        "--collector.netdev.netlink=false",
        "--no-collector.time",
    ];
    args.extend_from_slice(extra);
    let r = nodetune(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn every_collector_reads_its_files() {
    let m = scrape(&fixture(), &["--collector.stat.softirq"]);
    let want: &[(&str, f64)] = &[
        ("node_load1", 1.5),
        ("node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"}", 200.0),
        ("node_cpu_guest_seconds_total{cpu=\"0\",mode=\"nice\"}", 0.06),
        ("node_cpu_core_throttles_total{core=\"1\",package=\"0\"}", 5.0),
        ("node_cpu_package_throttles_total{package=\"0\"}", 17.0),
        ("node_cpu_isolated{cpu=\"1\"}", 1.0),
        ("node_cpu_scaling_governor{cpu=\"0\",governor=\"performance\"}", 1.0),
        ("node_cpu_scaling_frequency_hertz{cpu=\"0\"}", 2.4e9),
        ("node_memory_MemAvailable_bytes", 12000000.0 * 1024.0),
        ("node_memory_HugePages_Total", 4.0),
        ("node_memory_Active_anon_bytes", 500000.0 * 1024.0),
        ("node_vmstat_oom_kill", 1.0),
        ("node_filefd_maximum", 1.6e6),
        ("node_nf_conntrack_entries", 900.0),
        ("node_nf_conntrack_stat_drop", 5.0),
        ("node_pressure_io_stalled_seconds_total", 0.5),
        ("node_netstat_TcpExt_ListenOverflows", 120.0),
        ("node_netstat_Tcp_CurrEstab", 12.0),
        ("node_netstat_Ip6_InOctets", 4000.0),
        ("node_sockstat_TCP_mem_bytes", 12.0 * 4096.0),
        ("node_sockstat_TCP6_inuse", 5.0),
        ("node_softnet_dropped_total{cpu=\"0\"}", 2.0),
        ("node_softnet_times_squeezed_total{cpu=\"1\"}", 1.0),
        ("node_network_receive_errs_total{device=\"eth0\"}", 2.0),
        ("node_network_transmit_bytes_total{device=\"lo\"}", 1000.0),
        ("node_thermal_zone_temp{type=\"x86_pkg_temp\",zone=\"0\"}", 48.5),
        ("node_cooling_device_max_state{name=\"0\",type=\"intel_powerclamp\"}", 50.0),
        ("node_hwmon_temp_crit_celsius{chip=\"platform_nct6775_2592\",sensor=\"temp1\"}", 95.0),
        ("node_hwmon_fan_rpm{chip=\"platform_nct6775_2592\",sensor=\"fan1\"}", 1200.0),
        ("node_hwmon_sensor_label{chip=\"platform_nct6775_2592\",label=\"SYSTIN\",sensor=\"temp1\"}", 1.0),
        // Two chips behind one device: the chip name disambiguates them.
        ("node_hwmon_temp_celsius{chip=\"platform_dell_smm_dell_smm_2\",sensor=\"temp1\"}", 42.0),
        ("node_hwmon_temp_celsius{chip=\"platform_dell_smm_dell_smm_3\",sensor=\"temp1\"}", 43.0),
        ("node_softirqs_total{vector=\"rcu\"}", 955.0),
        ("node_context_switches_total", 987654.0),
        ("batch_last_success_seconds{job=\"backup\"}", 1.7e9),
        // broken.prom does not parse: flagged, and batch.prom still read.
        ("node_textfile_scrape_error", 1.0),
    ];
    for (k, v) in want {
        let got = m.get(*k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(
            (got - v).abs() <= 1e-9 * v.abs().max(1.0),
            "{k} = {got}, want {v}"
        );
    }
    // An unreadable attribute (a dangling temp2_input) is skipped, not fatal.
    assert!(!m.keys().any(|k| k.contains("sensor=\"temp2\"")));
    // Every meminfo line comes out, a field no table knows included (node_exporter does so).
    assert_eq!(m.get("node_memory_NotAField_bytes"), Some(&(99.0 * 1024.0)));
    for c in ["cpu", "hwmon", "meminfo", "netstat", "textfile", "pressure"] {
        assert_eq!(
            m[&format!("node_scrape_collector_success{{collector=\"{c}\"}}")],
            1.0,
            "{c}"
        );
    }
}

#[test]
fn missing_files_fail_only_their_collector() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("host");
    copy_tree(&fixture(), &root);
    std::fs::remove_dir_all(root.join("proc/pressure")).unwrap();
    std::fs::remove_dir_all(root.join("proc/sys/net")).unwrap();
    std::fs::remove_dir_all(root.join("sys/class/hwmon")).unwrap();
    let m = scrape(&root, &[]);
    for c in ["pressure", "conntrack", "hwmon"] {
        assert_eq!(
            m[&format!("node_scrape_collector_success{{collector=\"{c}\"}}")],
            0.0,
            "{c}"
        );
    }
    assert_eq!(
        m["node_scrape_collector_success{collector=\"meminfo\"}"],
        1.0
    );
    assert!(!m.keys().any(|k| k.starts_with("node_pressure_")));
    assert_eq!(m["node_load5"], 0.75);
}

#[test]
fn counters_that_go_backwards_are_passed_through() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("host");
    copy_tree(&fixture(), &root);
    let before = scrape(&root, &[]);
    let stat = std::fs::read_to_string(root.join("proc/stat")).unwrap();
    std::fs::write(
        root.join("proc/stat"),
        stat.replace("ctxt 987654", "ctxt 5"),
    )
    .unwrap();
    let after = scrape(&root, &[]);
    assert_eq!(before["node_context_switches_total"], 987654.0);
    assert_eq!(
        after["node_context_switches_total"], 5.0,
        "a reset is reported as read; rate() handles it"
    );
}

#[test]
fn promtool_accepts_the_output() {
    if !require(
        have_tool("promtool"),
        "promtool (Debian package prometheus)",
    ) {
        return;
    }
    let f = fixture();
    for live in [false, true] {
        let mut args = vec!["metrics".to_string()];
        if !live {
            args.push(format!("--path.procfs={}", f.join("proc").display()));
            args.push(format!("--path.sysfs={}", f.join("sys").display()));
            args.push(format!(
                "--collector.textfile.directory={}",
                f.join("textfile").display()
            ));
        }
        let out = run_cmd(std::process::Command::new(nodetune_e2e::bin()).args(&args));
        assert_eq!(out.code, 0);
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(out.stdout.as_bytes())
            .unwrap();
        let res = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&res.stdout).to_string()
            + &String::from_utf8_lossy(&res.stderr);
        // node_exporter's own meminfo and netstat names (MemTotal, TcpExt_…) draw promtool's
        // camelCase lint, and its entropy names (`_bits`) the base-unit lint; they are kept for
        // compatibility (node_exporter's checkmetrics.sh ignores the same). Anything else is a
        // failure.
        let problems: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !(l.contains("metric names should be written in 'snake_case' not 'camelCase'")
                    && (l.starts_with("node_memory_") || l.starts_with("node_netstat_")))
            })
            .filter(|l| {
                !(l.starts_with("node_entropy_")
                    && l.ends_with("use base unit \"bytes\" instead of \"bits\""))
            })
            .collect();
        assert!(
            problems.is_empty(),
            "promtool check metrics (live={live}):\n{}",
            problems.join("\n")
        );
    }
}
