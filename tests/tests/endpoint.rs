//! The /metrics endpoint: content negotiation, gzip, collect[]/exclude[], the request limit,
//! a hung collector (a named pipe in the textfile directory), and a real Prometheus scraping it.

use std::process::{Command, Stdio};
use std::time::Duration;

use nodetune_e2e::{have_tool, http_get, require, wait_until, Daemon, FakeHost};

struct Setup {
    _host: FakeHost,
    _dir: tempfile::TempDir,
    d: Daemon,
    addr: String,
}

/// A daemon on a stand-in host, reading the host-a fixture, with a textfile directory that
/// holds a FIFO nobody writes to (a read that blocks forever, like a stuck sensor).
fn start(extra: &[&str]) -> Setup {
    let host = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("textfile");
    std::fs::create_dir_all(&tf).unwrap();
    let st = Command::new("mkfifo")
        .arg(tf.join("stuck.prom"))
        .status()
        .unwrap();
    assert!(st.success());
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/host-a");
    let mut args = vec![
        "--config=/etc/nodetune/nodetune.toml".to_string(),
        "--web.listen-address=127.0.0.1:0".to_string(),
        format!("--path.procfs={}", fixture.join("proc").display()),
        format!("--path.sysfs={}", fixture.join("sys").display()),
        format!("--collector.textfile.directory={}", tf.display()),
    ];
    if !extra.iter().any(|e| e.starts_with("--collector.timeout")) {
        args.push("--collector.timeout=400ms".to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = host.daemon(&args, &[]);
    let addr = d.addr();
    Setup {
        _host: host,
        _dir: dir,
        d,
        addr,
    }
}

fn body(addr: &str, path: &str, headers: &[&str]) -> (u16, String, String) {
    let (code, head, b) = http_get(addr, path, headers).expect("HTTP answer");
    (code, head, String::from_utf8_lossy(&b).into_owned())
}

#[test]
fn negotiation_gzip_filters_and_hung_collector() {
    let s = start(&[]);
    // A hung collector costs at most its timeout; once its read has been stuck for longer than
    // that, scrapes skip it at once. The daemon's own account says which (no clock here): the
    // textfile collector took the 400 ms timeout, or 0 (skipped), which it is by the third.
    for round in 0..3 {
        let (code, head, text) = body(&s.addr, "/metrics", &[]);
        assert_eq!(code, 200);
        let took: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("node_scrape_collector_duration_seconds{collector=\"textfile\"} ")
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no textfile duration:\n{text}"));
        assert!(
            took == 0.0 && round > 0 || took >= 0.4 && round < 2,
            "scrape {round}: textfile took {took} s"
        );
        assert!(
            head.to_lowercase()
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            text.contains("node_scrape_collector_success{collector=\"textfile\"} 0"),
            "{text}"
        );
        assert!(text.contains("node_scrape_collector_success{collector=\"meminfo\"} 1"));
        assert!(text.contains("node_load1 1.5"));
        assert!(text.contains("nodetune_profile_info{mode=\"audit\",profile=\"base\"} 1"));
    }
    // OpenMetrics when asked.
    let (code, head, text) = body(
        &s.addr,
        "/metrics",
        &["Accept: application/openmetrics-text;version=1.0.0"],
    );
    assert_eq!(code, 200);
    assert!(
        head.to_lowercase()
            .contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(text.ends_with("# EOF\n"));
    assert!(
        text.contains(
            "# TYPE node_context_switches counter\nnode_context_switches_total 987654.0\n"
        ),
        "{text}"
    );
    // A range with q=0 is refused, not merely mentioned; quality decides between formats.
    let (code, head, text) = body(
        &s.addr,
        "/metrics",
        &["Accept: application/openmetrics-text;q=0, text/plain;version=0.0.4"],
    );
    assert_eq!(code, 200);
    assert!(
        head.to_lowercase().contains("text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!text.ends_with("# EOF\n"));
    let (_, head, _) = body(
        &s.addr,
        "/metrics",
        &["Accept: text/plain;q=0.2, application/openmetrics-text;q=0.9"],
    );
    assert!(head.to_lowercase().contains("openmetrics-text"), "{head}");
    // gzip when accepted: decompress with the system's gzip.
    let (code, head, raw) = http_get(&s.addr, "/metrics", &["Accept-Encoding: gzip"]).unwrap();
    assert_eq!(code, 200);
    assert!(
        head.to_lowercase().contains("content-encoding: gzip"),
        "{head}"
    );
    let mut gz = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    gz.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = gz.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("node_load15 0.25"));
    // collect[] and exclude[].
    let (code, _, text) = body(&s.addr, "/metrics?collect[]=loadavg&collect[]=filefd", &[]);
    assert_eq!(code, 200);
    assert!(text.contains("node_load5 0.75") && text.contains("node_filefd_allocated 2048"));
    assert!(!text.contains("node_memory_"), "only the chosen collectors");
    let (_, _, text) = body(&s.addr, "/metrics?exclude%5B%5D=meminfo", &[]);
    assert!(!text.contains("node_memory_") && text.contains("node_load5"));
    // Percent-escapes anywhere in names and values, as Go's url.ParseQuery decodes them.
    let (code, _, text) = body(&s.addr, "/metrics?%63ollect%5b%5d=%6coadavg", &[]);
    assert_eq!(code, 200);
    assert!(text.contains("node_load5 0.75") && !text.contains("node_filefd_"));
    let (code, _, text) = body(&s.addr, "/metrics?collect[]=nope", &[]);
    assert_eq!((code, text.as_str()), (400, "unknown collector \"nope\"\n"));
    let (code, _, text) = body(&s.addr, "/metrics?collect[]=ethtool", &[]);
    assert_eq!(
        (code, text.as_str()),
        (400, "collector \"ethtool\" is disabled\n")
    );
    let (code, _, _) = body(&s.addr, "/metrics?collect[]=cpu&exclude[]=meminfo", &[]);
    assert_eq!(code, 400);
    // Landing page and unknown paths.
    let (code, _, text) = body(&s.addr, "/", &[]);
    assert_eq!(code, 200);
    assert!(text.contains("<a href=\"/metrics\">"));
    assert_eq!(body(&s.addr, "/nope", &[]).0, 404);
}

#[test]
fn requests_past_the_limit_get_503() {
    // One request at a time, and a 2 s collector timeout that the hung textfile collector
    // uses up on the first scrape.
    let s = start(&["--web.max-requests=1", "--collector.timeout=2s"]);
    // Two scrapes at once: whichever starts first waits up to 2 s on the stuck collector and
    // holds the only slot; the other is refused at once.
    let spawn = |addr: String| std::thread::spawn(move || body(&addr, "/metrics", &[]));
    let (a, b) = (spawn(s.addr.clone()), spawn(s.addr.clone()));
    let mut results = [a.join().unwrap(), b.join().unwrap()];
    results.sort_by_key(|r| r.0);
    assert_eq!(results[0].0, 200, "{}", results[0].2);
    assert_eq!(results[1].0, 503);
    assert_eq!(
        results[1].2,
        "Limit of concurrent requests reached (1), try again later.\n"
    );
    assert_eq!(s.d.status().unwrap()["listen"][0].as_str().unwrap(), s.addr);
    // promhttp counts both answers; the scrape being served is in flight, not yet counted.
    let (_, _, text) = body(&s.addr, "/metrics", &[]);
    for line in [
        "promhttp_metric_handler_requests_total{code=\"200\"} 1",
        "promhttp_metric_handler_requests_total{code=\"503\"} 1",
        "promhttp_metric_handler_requests_total{code=\"500\"} 0",
        "promhttp_metric_handler_requests_in_flight 1",
    ] {
        assert!(text.contains(&format!("{line}\n")), "{line}");
    }
}

#[test]
fn exporter_metrics_and_their_switch() {
    let s = start(&[]);
    // A bad filter is answered before promhttp's handler (as in node_exporter): not counted.
    assert_eq!(body(&s.addr, "/metrics?collect[]=nope", &[]).0, 400);
    let (_, _, text) = body(&s.addr, "/metrics?collect[]=loadavg", &[]);
    for want in [
        "# TYPE process_cpu_seconds_total counter\n",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n",
        "process_max_fds ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "process_network_receive_bytes_total ",
        "promhttp_metric_handler_requests_total{code=\"200\"} 0\n",
        "promhttp_metric_handler_errors_total{cause=\"gathering\"} 0\n",
        "node_exporter_build_info{branch=\"\",goarch=",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    assert!(!text.contains("code=\"400\""));
    let s = start(&["--web.disable-exporter-metrics"]);
    let (_, _, text) = body(&s.addr, "/metrics", &[]);
    assert!(!text.contains("process_") && !text.contains("promhttp_"));
    // node_exporter registers its build info with the collectors: it stays.
    assert!(text.contains("\nnode_exporter_build_info{"));
}

#[test]
fn prometheus_scrapes_nodetune() {
    if !require(have_tool("prometheus"), "prometheus (Debian package)") {
        return;
    }
    let s = start(&[]);
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: nodetune\n    static_configs:\n      - targets: ['{}']\n",
        s.addr
    );
    let prom = nodetune_e2e::Prometheus::start(&cfg);
    let query = |q: &str| prom.query(q);
    let up = wait_until(60, || {
        query("up").contains("\"value\":[") && query("up").contains(",\"1\"]")
    });
    let load = query("node_load1");
    drop(prom);
    assert!(up, "up never became 1");
    assert!(
        load.contains("\"__name__\":\"node_load1\"") && load.contains(",\"1.5\"]"),
        "{load}"
    );
}

#[test]
fn sigterm_answers_requests_in_flight_then_exits() {
    use std::io::{Read, Write};
    let s = start(&["--collector.timeout=2s"]);
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The stuck textfile collector holds the answer for up to 2 s: still in flight.
    c.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let mut byte = [0u8; 1];
    let pending = matches!(c.read(&mut byte), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
    assert!(
        pending,
        "the scrape answered before the stuck collector's timeout"
    );
    s.d.signal(15);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut resp = Vec::new();
    let _ = c.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("node_load1 1.5"));
    // The process then exits by itself (the 60 s only keeps a hang from stalling the suite).
    let Setup { mut d, .. } = s;
    assert!(
        wait_until(60, || matches!(d.child.try_wait(), Ok(Some(_)))),
        "still running 60 s after SIGTERM"
    );
    let code = d.child.wait().unwrap().code();
    assert_eq!(code, Some(0));
}
