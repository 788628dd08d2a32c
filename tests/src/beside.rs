//! nodetune installed on a host where node_exporter already serves :9100, end to end: in a
//! network namespace the test creates, node_exporter holds :9100 and a real Prometheus scrapes
//! it; nodetune starts with :9100 as its listen address and must keep running (no crash
//! loop), apply and enforce its profile on the namespace's real kernel values, say that the
//! port is busy (status, log, metrics), and hand its nodetune_* metrics to node_exporter's
//! textfile collector, so the scrape Prometheus already has carries them. When node_exporter
//! stops, nodetune takes :9100 over and the same scrape goes on, now served by nodetune.
//!
//! Used with the built binary (tests/tests/beside_node_exporter.rs) and with the installed
//! package and its shipped configuration (tests/tests/packaging.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{run_cmd, wait_until, Daemon, Prometheus, TestNetns};

/// What differs between the two callers.
pub struct Setup<'a> {
    /// The nodetune binary to run.
    pub bin: &'a Path,
    /// nodetune's configuration: listen-address ":9100" and a textfile handoff directory.
    pub config: &'a Path,
    /// node_exporter's arguments (none: as Debian's unit runs it with an empty ARGS).
    pub node_exporter_args: &'a [&'a str],
    /// The textfile directory node_exporter reads and nodetune's configuration hands off to.
    pub textfile_dir: &'a Path,
}

/// A child process killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes a file on drop (the handoff file, should the test stop half-way).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// True when process `pid` sees a TCP socket listening on `port` (its network namespace's
/// /proc/PID/net/tcp and tcp6).
fn listening(pid: u32, port: u16) -> bool {
    let want = format!(":{port:04X} ");
    ["tcp", "tcp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}"))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && format!("{} ", cols[1]).ends_with(&want) && cols[3] == "0A"
            })
    })
}

/// The profile the daemon enforces: per-namespace keys only, so nothing outside the test's
/// namespace changes.
const PROFILE: &str = "[profile]\nsummary = \"beside node_exporter\"\n[sysctl]\n\"net.core.somaxconn\" = 8192\n\"net.ipv4.ip_local_port_range\" = \"20000 60999\"\n";

pub fn run(s: Setup) {
    let ns = TestNetns::new("beside");
    let up = run_cmd(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
    assert_eq!(up.code, 0, "ip link set lo up: {}", up.stderr);
    let exec = ["ip", "netns", "exec", ns.name.as_str()];
    let handoff = s.textfile_dir.join("nodetune.prom");
    let _cleanup = RemoveOnDrop(handoff.clone());

    // node_exporter first, on :9100, as a host that already runs it.
    let ne = Child(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "prometheus-node-exporter"])
            .args(s.node_exporter_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter"),
    );
    let mut ne = Some(ne);
    let ne_pid = ne.as_ref().map(|c| c.0.id()).unwrap_or_default();
    assert!(
        wait_until(20, || listening(ne_pid, 9100)),
        "node_exporter never listened on :9100"
    );

    // Then nodetune, its listen address busy.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("beside.toml"), PROFILE).expect("write profile");
    let d = Daemon::start_bin(
        s.bin,
        &exec,
        &[
            &format!("--config={}", s.config.display()),
            "--mode=enforce",
            "--profile=beside",
            &format!("--profile-dir={}", dir.path().display()),
            "--drift-interval=200ms",
        ],
        &[],
    );
    let busy = || {
        d.status().is_some_and(|st| {
            st["listen"].as_array().is_some_and(|l| l.is_empty())
                && st["listen_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Address already in use"))
        })
    };
    assert!(
        wait_until(20, busy),
        "status never said :9100 is busy: {:?}\n{}",
        d.status(),
        d.stderr()
    );
    assert!(
        wait_until(10, || ns.sysctl("net.core.somaxconn") == "8192"
            && ns.sysctl("net.ipv4.ip_local_port_range") == "20000 60999"),
        "profile not applied while the port is busy:\n{}",
        d.stderr()
    );
    let status = run_cmd(
        Command::new(s.bin)
            .arg("status")
            .env("NODETUNE_STATE_DIR", &d.state),
    );
    assert!(
        status.stdout.contains("metrics not served")
            && status.stdout.contains(&handoff.display().to_string()),
        "nodetune status:\n{}{}",
        status.stdout,
        status.stderr
    );
    assert!(
        d.stderr().contains("Address already in use")
            && d.stderr()
                .contains("Tuning, drift enforcement and alerts go on; another exporter"),
        "{}",
        d.stderr()
    );

    // The Prometheus the host already has: it scrapes :9100.
    let prom = Prometheus::start_in(
        &exec,
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:9100']\n",
    );
    let q = |e: &str| prom.value(e);
    assert!(
        wait_until(60, || q("up{job=\"node\"}") == Some(1.0)
            && q("nodetune_web_listening{address=\":9100\"}") == Some(0.0)
            && q("nodetune_key_in_sync{key=\"net.core.somaxconn\"}") == Some(1.0)
            && q("node_exporter_build_info") == Some(1.0)),
        "the :9100 scrape (node_exporter) does not carry nodetune's metrics: up={:?} listening={:?} in_sync={:?}",
        q("up"),
        q("nodetune_web_listening"),
        q("nodetune_key_in_sync")
    );

    // Drift is enforced while the port is busy, and shows through the handoff.
    ns.set("net.core.somaxconn", "1000");
    assert!(
        wait_until(10, || ns.sysctl("net.core.somaxconn") == "8192"),
        "drift not corrected while :9100 is busy:\n{}",
        d.stderr()
    );
    assert!(
        wait_until(30, || q(
            "nodetune_corrections_total{key=\"net.core.somaxconn\"}"
        )
        .is_some_and(|v| v >= 1.0)),
        "the correction never reached Prometheus through the handoff"
    );
    let pid = d.child.id();

    // node_exporter goes away (the operator moves to nodetune): nodetune takes :9100 over.
    drop(ne.take());
    assert!(
        wait_until(30, || listening(pid, 9100)),
        "nodetune did not take :9100 over:\n{}",
        d.stderr()
    );
    assert!(
        wait_until(30, || q("up{job=\"node\"}") == Some(1.0)
            && q("nodetune_web_listening{address=\":9100\"}") == Some(1.0)
            // node_exporter's own build info is gone; nodetune serves one with an empty
            // goversion (Prometheus stores it without that label).
            && q("node_exporter_build_info{goversion!=\"\"}").is_none()
            && q("node_exporter_build_info{goversion=\"\"}") == Some(1.0)
            && q("node_load1").is_some()),
        "the :9100 scrape is not served by nodetune after the takeover: listening={:?} ne={:?}",
        q("nodetune_web_listening"),
        q("node_exporter_build_info{goversion!=\"\"}")
    );
    assert!(!handoff.exists(), "{} not withdrawn", handoff.display());
    assert!(d.stderr().contains("is free now"), "{}", d.stderr());
    // One process throughout: no restart, no crash loop.
    assert_eq!(d.child.id(), pid);
    assert!(listening(pid, 9100));
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}
