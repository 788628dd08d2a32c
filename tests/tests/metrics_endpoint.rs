//! `nodetune run` serving the core collectors (stat, meminfo, loadavg, vmstat, filefd,
//! pressure, time, uname, textfile) from the project's own fixture tree
//! (tests/fixtures/core-a), fetched over plain HTTP/1.1 with keep-alive: families, types,
//! values, label escaping, textfile merging rules, and counters passed through when they go
//! backwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nodetune_e2e::{nodetune, Daemon, FakeHost};

const CORE: &[&str] = &[
    "stat", "meminfo", "loadavg", "vmstat", "filefd", "pressure", "time", "uname", "textfile",
];

/// A copy of the core-a fixture (tests change files in it) and a daemon reading it; the
/// daemon is killed when this is dropped (Daemon's Drop), before the trees go.
struct Setup {
    d: Daemon,
    root: tempfile::TempDir,
    _host: FakeHost,
}

impl Setup {
    fn start() -> Setup {
        let root = tempfile::tempdir().expect("tempdir");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/core-a");
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", fixture.display()))
            .arg(root.path())
            .status()
            .expect("cp");
        assert!(st.success());
        let host = FakeHost::new();
        let sysctl = host.path("sys").display().to_string();
        let fake_root = host.path("root").display().to_string();
        let env = [
            ("NODETUNE_SYSCTL_ROOT", sysctl.as_str()),
            ("NODETUNE_ROOT", fake_root.as_str()),
        ];
        let mut args = vec![
            "--config=/etc/nodetune/nodetune.toml".to_string(),
            "--web.listen-address=127.0.0.1:0".to_string(),
            format!("--path.procfs={}", root.path().join("proc").display()),
            format!("--path.sysfs={}", root.path().join("sys").display()),
            format!(
                "--collector.textfile.directory={}/textfile/",
                root.path().display()
            ),
            "--collector.stat.softirq".to_string(),
            "--collector.disable-defaults".to_string(),
        ];
        args.extend(CORE.iter().map(|c| format!("--collector.{c}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = Daemon::start(&[], &args, &env);
        Setup {
            d,
            root,
            _host: host,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns (status line, headers, body).
fn read_response(r: &mut BufReader<TcpStream>) -> (String, String, String) {
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    let mut headers = String::new();
    let mut len = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header line");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
        headers.push_str(&line);
    }
    let mut body = vec![0; len.expect("Content-Length")];
    r.read_exact(&mut body).expect("body");
    (
        status.trim_end().to_string(),
        headers,
        String::from_utf8(body).expect("UTF-8 body"),
    )
}

/// GETs /metrics twice on one keep-alive connection; returns both bodies.
fn scrape_twice(addr: &str) -> (String, String) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (status, headers, first) = read_response(&mut r);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("text/plain; version=0.0.4; charset=utf-8"),
        "{headers}"
    );
    w.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, _, second) = read_response(&mut r);
    assert_eq!(status, "HTTP/1.1 200 OK");
    (first, second)
}

/// Series line (name and labels as written) → value text.
fn series(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[test]
fn core_collectors_over_http() {
    let s = Setup::start();
    let addr = s.d.addr();
    let (body, again) = scrape_twice(&addr);
    let m = series(&body);
    let want: &[(&str, &str)] = &[
        ("node_boot_time_seconds", "1.7e+09"),
        ("node_context_switches_total", "9.87654321e+09"),
        ("node_forks_total", "424242"),
        ("node_intr_total", "1.23456789e+08"),
        ("node_procs_running", "3"),
        ("node_procs_blocked", "1"),
        ("node_softirqs_total{vector=\"net_rx\"}", "400"),
        ("node_softirqs_total{vector=\"block_iopoll\"}", "6"),
        ("node_memory_MemTotal_bytes", "1.671012352e+10"),
        ("node_memory_Active_anon_bytes", "1.263616e+06"),
        ("node_memory_Inactive_file_bytes", "4.424704e+06"),
        ("node_memory_HugePages_Total", "4"),
        ("node_memory_Hugepagesize_bytes", "2.097152e+06"),
        ("node_memory_DirectMap1G_bytes", "1.073741824e+09"),
        ("node_load1", "0.25"),
        ("node_load5", "1.5"),
        ("node_load15", "3"),
        ("node_vmstat_pgfault", "9.87654321e+08"),
        ("node_vmstat_pgpgin", "1234"),
        ("node_vmstat_pswpout", "0"),
        ("node_vmstat_oom_kill", "2"),
        ("node_filefd_allocated", "1024"),
        ("node_filefd_maximum", "9.223372036854776e+18"),
        (
            "node_pressure_cpu_waiting_seconds_total",
            "14.036781000000001",
        ),
        ("node_pressure_io_waiting_seconds_total", "2.5"),
        ("node_pressure_io_stalled_seconds_total", "1.25"),
        ("node_pressure_memory_waiting_seconds_total", "0.0005"),
        ("node_pressure_memory_stalled_seconds_total", "0.00025"),
        ("node_pressure_irq_stalled_seconds_total", "3"),
        (
            "node_time_clocksource_available_info{clocksource=\"hpet\",device=\"0\"}",
            "1",
        ),
        (
            "node_time_clocksource_current_info{clocksource=\"tsc\",device=\"0\"}",
            "1",
        ),
        ("node_textfile_scrape_error", "1"),
        ("app_requests_total{code=\"500\"}", "3"),
        ("app_info{path=\"\",version=\"1.2.4\"}", "1"),
        (
            "app_info{path=\"C:\\\\dir \\\"x\\\"\",version=\"1.2.3\"}",
            "1",
        ),
        ("batch_last_run_seconds", "1.7e+09"),
    ];
    for (k, v) in want {
        assert_eq!(m.get(*k).map(String::as_str), Some(*v), "{k}\n{body}");
    }
    for c in CORE {
        let k = format!("node_scrape_collector_success{{collector=\"{c}\"}}");
        assert_eq!(m.get(&k).map(String::as_str), Some("1"), "{k}");
    }
    // Every meminfo line, as node_exporter exports it (a malformed one fails the collector:
    // unit-tested in collect/meminfo.rs).
    for (k, v) in [
        ("node_memory_Zswap_bytes", "0"),
        ("node_memory_DirectMap2M_bytes", "2.147483648e+09"),
    ] {
        assert_eq!(m.get(k).map(String::as_str), Some(v), "{k}");
    }
    // Exactly 1.12's vmstat fields, nothing from the file with timestamps or the non-.prom
    // file.
    for absent in [
        "node_vmstat_nr_free_pages",
        "node_vmstat_pgfree",
        "node_vmstat_workingset_refault_anon",
        "stale_metric",
        "not_read",
    ] {
        assert!(!m.keys().any(|k| k.starts_with(absent)), "{absent}");
    }
    // HELP/TYPE lines byte for byte, in name order.
    for block in [
        "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.\n\
         # TYPE node_memory_MemTotal_bytes gauge\n",
        "# HELP node_vmstat_oom_kill /proc/vmstat information field oom_kill.\n\
         # TYPE node_vmstat_oom_kill untyped\n",
        "# HELP node_softirqs_total Number of softirq calls.\n\
         # TYPE node_softirqs_total counter\n\
         node_softirqs_total{vector=\"block\"} 5\n\
         node_softirqs_total{vector=\"block_iopoll\"} 6\n\
         node_softirqs_total{vector=\"hi\"} 1\n",
        "# HELP app_requests_total Requests served.\n# TYPE app_requests_total counter\n",
    ] {
        assert!(body.contains(block), "missing:\n{block}\nin:\n{body}");
    }
    let dir = s.path("textfile").display().to_string();
    assert!(body.contains(&format!(
        "# HELP app_info Metric read from {dir}/app.prom, {dir}/batch.prom\n"
    )));
    let mtimes: Vec<&String> = m
        .keys()
        .filter(|k| k.starts_with("node_textfile_mtime_seconds"))
        .collect();
    assert_eq!(
        mtimes,
        vec![
            &format!("node_textfile_mtime_seconds{{file=\"{dir}/app.prom\"}}"),
            &format!("node_textfile_mtime_seconds{{file=\"{dir}/batch.prom\"}}"),
        ]
    );
    let uname = m
        .keys()
        .find(|k| k.starts_with("node_uname_info{"))
        .expect("uname");
    for l in [
        "domainname=",
        "machine=",
        "nodename=",
        "release=",
        "sysname=\"Linux\"",
        "version=",
    ] {
        assert!(uname.contains(l), "{uname}");
    }
    // Families sorted by name, and the keep-alive second answer has the same families.
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let names2: Vec<&str> = again.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    assert_eq!(names.len(), names2.len());
}

#[test]
fn counters_going_backwards_and_vanishing_files() {
    let s = Setup::start();
    let addr = s.d.addr();
    let (body, _) = scrape_twice(&addr);
    assert!(body.contains("\nnode_context_switches_total 9.87654321e+09\n"));
    // A counter that goes backwards (a reset, a fixture rewound) is passed through as read:
    // the exporter does not clamp; Prometheus' rate() handles resets.
    let stat = std::fs::read_to_string(s.path("proc/stat")).unwrap();
    std::fs::write(
        s.path("proc/stat"),
        stat.replace("ctxt 9876543210", "ctxt 5"),
    )
    .unwrap();
    // PSI gone (a kernel without it): pressure fails alone; the rest of the scrape stays.
    std::fs::remove_dir_all(s.path("proc/pressure")).unwrap();
    // A fixed text file clears the error flag.
    std::fs::remove_file(s.path("textfile/stale.prom")).unwrap();
    let (body, _) = scrape_twice(&addr);
    let m = series(&body);
    assert_eq!(
        m.get("node_context_switches_total").map(String::as_str),
        Some("5")
    );
    assert_eq!(
        m.get("node_scrape_collector_success{collector=\"pressure\"}")
            .map(String::as_str),
        Some("0")
    );
    assert!(!body.contains("node_pressure_"));
    assert_eq!(
        m.get("node_textfile_scrape_error").map(String::as_str),
        Some("0")
    );
    assert_eq!(m.get("node_load1").map(String::as_str), Some("0.25"));
}

#[test]
fn metrics_help_lists_node_exporter_flags() {
    let r = nodetune(&["metrics", "--help"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for flag in [
        "--collector.disable-defaults",
        "--collector.stat.softirq",
        "--collector.textfile.directory",
        "--collector.vmstat.fields",
        "--collector.meminfo",
        "--collector.pressure",
        "--path.procfs",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing from --help");
    }
    // node_exporter flags for collectors nodetune lacks are accepted with a warning.
    let r = nodetune(
        &[
            "metrics",
            "--collector.disable-defaults",
            "--collector.loadavg",
            "--collector.systemd",
            "--collector.sysctl.include=fs.file-nr",
            "--path.procfs=/nonexistent",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r
        .stderr
        .contains("--collector.systemd: not implemented by nodetune"));
    assert!(r
        .stdout
        .contains("node_scrape_collector_success{collector=\"loadavg\"} 0"));
}
