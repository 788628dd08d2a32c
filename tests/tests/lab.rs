//! The surge lab's short form (tests/lab): scenarios 1-3 in throwaway network namespaces, each
//! on the kernel's defaults and after `nodetune apply --profile api-node`, with nodetune's
//! daemon in audit mode beside the run and `nodetune recommend` after the defaults. It asserts
//! failures on the defaults, none after the apply, the alert naming the knob, `recommend`
//! naming it (and not counting nodetune's own listener), the host untouched and the
//! namespaces gone. No timing is asserted; the long form is a benchmark (tests/lab/run).
//!
//! Each run is a test of its own so that the slow one (the defaults of scenario 1: the kernel
//! scans the whole port range for every connect once it fills) runs beside the others.

use std::process::Command;
use std::time::{Duration, Instant};

use nodetune_e2e::{bin, have_tool, is_root, lab_bin, require, wait_until};
use nodetune_lab::nodetune::AlertLine;
use nodetune_lab::{scenario, Config, Row, Run, Runs, Size};

fn ready() -> bool {
    require(
        is_root() && have_tool("ip") && have_tool("tc") && nodetune_lab::nginx::available(),
        "root, iproute2 and nginx (the Debian package)",
    )
}

/// Host values of every per-namespace key the lab's profiles set: the lab must leave them.
const HOST_KEYS: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_fastopen",
    "net.ipv4.tcp_syncookies",
];

fn host_values() -> Vec<String> {
    HOST_KEYS
        .iter()
        .map(|k| {
            std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/")))
                .unwrap_or_default()
        })
        .collect()
}

fn lab_namespaces(tag: &str) -> Vec<String> {
    let prefix = format!("{}{tag}", nodetune_lab::netns::prefix());
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Runs one run of a scenario; checks the host is untouched and the namespaces are gone.
fn lab(tag: &str, runs: Runs, scenario: fn(&Config) -> std::io::Result<Row>) -> Row {
    nodetune_lab::netns::sweep_stale();
    let before = host_values();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        nodetune: bin(),
        size: Size::Short,
        work: dir.path().to_path_buf(),
        recommend: runs == Runs::Defaults,
        runs,
    };
    let row = scenario(&cfg).unwrap_or_else(|e| panic!("lab scenario {tag}: {e}"));
    assert_eq!(host_values(), before, "the host's own values changed");
    assert_eq!(
        lab_namespaces(tag),
        Vec::<String>::new(),
        "namespaces left behind"
    );
    row
}

fn fired<'a>(run: &'a Run, alert: &str) -> Option<&'a AlertLine> {
    run.alerts
        .iter()
        .find(|a| a.alert == alert && a.state == "firing")
}

/// The defaults: failures, the alert naming `knob`, `recommend` naming it too.
fn check_defaults(row: &Row, alert: &str, knob: &str) {
    let d = &row.defaults;
    assert!(
        d.failures > 0,
        "no failures on the kernel's defaults: {d:#?}"
    );
    let a = fired(d, alert).unwrap_or_else(|| panic!("{alert} did not fire: {:#?}", d.alerts));
    assert!(
        a.text.contains(knob),
        "{alert} does not name {knob}: {}",
        a.text
    );
    let rec = d.recommend.as_ref().expect("recommend ran");
    assert!(rec.names(knob), "recommend did not name {knob}: {rec:#?}");
    // The daemon's metrics listener (:9100) runs beside it: never the host's service.
    assert!(rec.own_listeners.contains(&9100), "{rec:#?}");
    assert!(!rec.listeners.contains(&9100), "{rec:#?}");
    assert!(!rec.reason.contains("9100"), "{}", rec.reason);
}

fn check_tuned(row: &Row, alert: &str) {
    let t = &row.tuned;
    assert_eq!(t.failures, 0, "failures after the apply: {t:#?}");
    assert!(t.client.attempts > 0);
    assert!(
        fired(t, alert).is_none(),
        "{alert} fired after the apply: {:#?}",
        t.alerts
    );
    assert!(t
        .apply
        .as_deref()
        .unwrap_or_default()
        .contains("--profile api-node"));
}

#[test]
fn s1_ephemeral_ports_fail_on_the_defaults_and_the_alert_names_the_knob() {
    if !ready() {
        return;
    }
    let row = lab("s1d", Runs::Defaults, scenario::ephemeral_ports);
    let d = &row.defaults;
    assert!(
        d.client.errors.contains_key("connect EADDRNOTAVAIL"),
        "{:?}",
        d.client.errors
    );
    check_defaults(
        &row,
        "EphemeralPortPressure",
        "net.ipv4.ip_local_port_range",
    );
    let rec = d.recommend.as_ref().unwrap();
    assert!(rec.names("net.ipv4.tcp_tw_reuse"), "{rec:#?}");
}

#[test]
fn s1_ephemeral_ports_after_api_node_do_not_run_out() {
    if !ready() {
        return;
    }
    let row = lab("s1t", Runs::Tuned, scenario::ephemeral_ports);
    check_tuned(&row, "EphemeralPortPressure");
    // Past the 28,232 ports of the default range.
    assert_eq!(row.tuned.client.attempts, 29_500);
    assert!(row
        .tuned
        .settings
        .contains(&("net.ipv4.ip_local_port_range".into(), "1024 65535".into())));
}

#[test]
fn s2_accept_queue_overflows_on_the_defaults() {
    if !ready() {
        return;
    }
    let row = lab("s2d", Runs::Defaults, |c| scenario::accept_queue(c, false));
    assert!(
        row.defaults.server["ListenOverflows"] > 0,
        "{:#?}",
        row.defaults
    );
    assert!(row.defaults.client.errors.contains_key("connect ETIMEDOUT"));
    check_defaults(&row, "ListenQueueOverflow", "net.core.somaxconn");
}

#[test]
fn s2_accept_queue_after_api_node_holds_the_burst() {
    if !ready() {
        return;
    }
    let row = lab("s2t", Runs::Tuned, |c| scenario::accept_queue(c, false));
    check_tuned(&row, "ListenQueueOverflow");
    assert_eq!(row.tuned.server["ListenOverflows"], 0);
}

#[test]
fn s3_syn_burst_overflows_the_syn_queue_on_the_defaults() {
    if !ready() {
        return;
    }
    let row = lab("s3d", Runs::Defaults, |c| scenario::syn_backlog(c, false));
    assert!(
        row.defaults.server["SyncookiesSent"] > 0,
        "{:#?}",
        row.defaults
    );
    // With cookies on, the cap is the accept backlog: the alert and recommend must say so.
    check_defaults(&row, "SynBacklogPressure", "net.core.somaxconn");
}

#[test]
fn s3_syn_burst_after_api_node_fits_the_syn_queue() {
    if !ready() {
        return;
    }
    let row = lab("s3t", Runs::Tuned, |c| scenario::syn_backlog(c, false));
    check_tuned(&row, "SynBacklogPressure");
}

/// Interrupted (SIGTERM), the lab deletes its namespaces and what runs in them; killed
/// outright (SIGKILL), the next run sweeps them up.
#[test]
fn the_lab_cleans_up_when_interrupted_or_killed() {
    if !ready() {
        return;
    }
    for (sig, name) in [(15, "TERM"), (9, "KILL")] {
        let mut child = Command::new(lab_bin())
            .args(["--short", "--scenario", "3", "--nodetune"])
            .arg(bin())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nodetune-lab");
        let prefix = format!("ntlab-{}-", child.id());
        let list = || -> Vec<String> {
            let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with(&prefix))
                .map(str::to_string)
                .collect()
        };
        assert!(
            wait_until(30, || list().len() == 2),
            "the lab never made its namespaces"
        );
        // Something runs in them by now (nginx, the daemon) or soon will.
        std::thread::sleep(Duration::from_millis(300));
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let t0 = Instant::now();
        let _ = child.wait();
        if sig == 9 {
            // Nothing ran to delete them: the next lab run (or tests/lab/run) sweeps them.
            nodetune_lab::netns::sweep_stale();
        }
        assert!(
            wait_until(10, || list().is_empty()),
            "SIG{name}: namespaces left: {:?} ({:?} after exit)",
            list(),
            t0.elapsed()
        );
        let work = std::env::temp_dir().join(&prefix[..prefix.len() - 1]);
        assert!(!work.exists(), "SIG{name}: {} left", work.display());
    }
}
