//! Side by side on this host: Debian's prometheus-node-exporter (1.5) and nodetune with the same
//! collectors must agree on family names, types and label names, except for the differences
//! listed in docs/metrics.md ("Differences from node_exporter 1.5").

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodetune_e2e::{have_tool, http_get, nodetune, require};

const COLLECTORS: &[&str] = &[
    "cpu",
    "meminfo",
    "loadavg",
    "netdev",
    "netstat",
    "sockstat",
    "conntrack",
    "filefd",
    "pressure",
    "hwmon",
    "thermal_zone",
    "ethtool",
    "stat",
    "vmstat",
    "cpufreq",
    "time",
    "uname",
    "textfile",
];

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Families = BTreeMap<String, (String, BTreeSet<Vec<String>>)>;

fn parse(text: &str) -> Families {
    let mut out = Families::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.to_string())
                .or_insert_with(|| (kind.to_string(), BTreeSet::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let name = &line[..name_end];
            let mut labels: Vec<String> = Vec::new();
            if line[name_end..].starts_with('{') {
                let body = &line[name_end + 1..line.rfind('}').unwrap()];
                let mut rest = body;
                while let Some(eq) = rest.find("=\"") {
                    labels.push(rest[..eq].trim_start_matches(',').to_string());
                    // Skip the quoted value (escaped quotes included).
                    let mut i = eq + 2;
                    let b = rest.as_bytes();
                    while i < b.len() && b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    rest = &rest[(i + 1).min(rest.len())..];
                }
            }
            labels.sort();
            if let Some(f) = out.get_mut(name) {
                f.1.insert(labels);
            }
        }
    }
    out
}

fn get(port: u16) -> Option<String> {
    let (status, _, body) = http_get(&format!("127.0.0.1:{port}"), "/metrics", &[])?;
    (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
}

/// Families only node_exporter 1.5 has, for documented reasons.
fn only_in_node_exporter_ok(name: &str) -> bool {
    name.starts_with("go_")
        || name.starts_with("process_")
        || name.starts_with("promhttp_")
        || name == "node_exporter_build_info"
        // 1.5 exports every /proc/meminfo line; 1.12 (and nodetune) a fixed field list.
        || name.starts_with("node_memory_")
}

/// Families only nodetune has: added by node_exporter after 1.5.
fn only_in_nodetune_ok(name: &str) -> bool {
    matches!(
        name,
        "node_netstat_TcpExt_TCPOFOQueue"
            | "node_netstat_TcpExt_TCPRcvQDrop"
            | "node_cpu_isolated"
            | "node_pressure_irq_stalled_seconds_total"
    ) || name.starts_with("node_memory_")
}

#[test]
fn agrees_with_debian_node_exporter() {
    let ne_bin = "/usr/bin/prometheus-node-exporter";
    if !require(
        have_tool("prometheus-node-exporter"),
        "prometheus-node-exporter (Debian package)",
    ) {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(ne_bin);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile.directory=/nonexistent-nodetune-test")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for c in COLLECTORS {
        cmd.arg(format!("--collector.{c}"));
    }
    let _ne = Kill(cmd.spawn().expect("start node_exporter"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let ne_text = loop {
        if let Some(b) = get(port) {
            break b;
        }
        assert!(Instant::now() < deadline, "node_exporter never answered");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut args = vec![
        "metrics".to_string(),
        "--collector.disable-defaults".to_string(),
    ];
    args.extend(COLLECTORS.iter().map(|c| format!("--collector.{c}")));
    args.push("--collector.textfile.directory=/nonexistent-nodetune-test".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = nodetune(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (ne, nt) = (parse(&ne_text), parse(&r.stdout));
    let mut problems = Vec::new();
    for (name, (kind, labels)) in &ne {
        match nt.get(name) {
            None if !only_in_node_exporter_ok(name) => {
                problems.push(format!("missing in nodetune: {name}"))
            }
            None => {}
            Some((k2, l2)) => {
                if k2 != kind {
                    problems.push(format!("{name}: type {k2}, node_exporter {kind}"));
                }
                if l2 != labels {
                    problems.push(format!("{name}: labels {l2:?}, node_exporter {labels:?}"));
                }
            }
        }
    }
    for name in nt.keys() {
        if !ne.contains_key(name) && !only_in_nodetune_ok(name) {
            problems.push(format!("only in nodetune: {name}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        ne.len() > 50 && nt.len() > 50,
        "both exported real families"
    );
}
