//! Per-namespace keys applied for real inside throwaway network namespaces.

use nodetune_e2e::{have_tool, is_root, nodetune, require, run_cmd, TestNetns};
use std::path::Path;
use std::process::Command;

const KEYS: &[(&str, &str)] = &[
    ("net.core.somaxconn", "65535"),
    ("net.ipv4.ip_local_port_range", "1024 65535"),
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("net.ipv4.tcp_max_syn_backlog", "65535"),
    ("net.ipv4.tcp_fastopen", "3"),
];

fn privileged() -> bool {
    require(
        is_root() && have_tool("ip") && have_tool("sysctl"),
        "root with ip and sysctl (iproute2, procps)",
    )
}

fn env(state: &Path) -> Vec<(&'static str, &Path)> {
    vec![("NODETUNE_STATE_DIR", state)]
}

#[test]
fn apply_check_drift_revert_with_netns_flag() {
    if !privileged() {
        return;
    }
    let ns = TestNetns::new("flag");
    let state = tempfile::tempdir().unwrap();
    let env = env(state.path());
    let before: Vec<String> = KEYS.iter().map(|(k, _)| ns.sysctl(k)).collect();
    for ((k, want), b) in KEYS.iter().zip(&before) {
        assert_ne!(
            b, want,
            "{k} already has the profile value in a fresh namespace"
        );
    }

    let r = nodetune(
        &["apply", "--profile", "api-node", "--netns", &ns.name],
        &env,
    );
    assert_eq!(r.code, 0, "apply: {}{}", r.stdout, r.stderr);
    for (k, want) in KEYS {
        assert_eq!(ns.sysctl(k), *want, "{k} after apply");
    }
    // Global keys and files stay on the host: out of scope, not written.
    assert!(!Path::new("/etc/systemd/system.conf.d/60-nodetune-nofile.conf").exists());

    let r = nodetune(
        &["check", "--profile", "api-node", "--netns", &ns.name],
        &env,
    );
    assert_eq!(r.code, 0, "check in sync: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("in-sync: profile api-node"),
        "{}",
        r.stdout
    );

    ns.set("net.core.somaxconn", "1000");
    let r = nodetune(
        &["check", "--profile", "api-node", "--netns", &ns.name],
        &env,
    );
    assert_eq!(r.code, 2, "check drifted: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("drifted: net.core.somaxconn is 1000 (profile api-node wants 65535)"),
        "{}",
        r.stdout
    );
    let r = nodetune(
        &[
            "check",
            "--profile",
            "api-node",
            "--netns",
            &ns.name,
            "-o",
            "json",
        ],
        &env,
    );
    assert_eq!(r.code, 2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "drifted");
    assert_eq!(v["drifted"][0]["target"]["name"], "net.core.somaxconn");

    // A second apply (another profile) must not overwrite the first originals.
    let r = nodetune(
        &["apply", "--profile", "load-generator", "--netns", &ns.name],
        &env,
    );
    assert_eq!(r.code, 0, "second apply: {}{}", r.stdout, r.stderr);

    let r = nodetune(&["revert", "--netns", &ns.name], &env);
    assert_eq!(r.code, 0, "revert: {}{}", r.stdout, r.stderr);
    for ((k, _), b) in KEYS.iter().zip(&before) {
        assert_eq!(ns.sysctl(k), *b, "{k} after revert");
    }
    let r = nodetune(&["revert", "--netns", &ns.name], &env);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no saved originals"), "{}", r.stdout);
}

#[test]
fn works_from_inside_the_namespace() {
    if !privileged() {
        return;
    }
    let ns = TestNetns::new("inside");
    let state = tempfile::tempdir().unwrap();
    let before: Vec<String> = KEYS.iter().map(|(k, _)| ns.sysctl(k)).collect();
    let exec = |args: &[&str]| {
        run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .arg(nodetune_e2e::bin())
                .args(args)
                .env("NODETUNE_STATE_DIR", state.path()),
        )
    };
    let r = exec(&["plan", "--profile", "api-node"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("in network namespace {}", ns.name)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("out-of-scope"),
        "global keys are out of scope: {}",
        r.stdout
    );

    let r = exec(&["apply", "--profile", "api-node"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for (k, want) in KEYS {
        assert_eq!(ns.sysctl(k), *want, "{k}");
    }
    assert_eq!(exec(&["check", "--profile", "api-node"]).code, 0);
    ns.set("net.ipv4.tcp_tw_reuse", "0");
    let r = exec(&["check", "--profile", "api-node"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("net.ipv4.tcp_tw_reuse is 0"),
        "{}",
        r.stdout
    );
    // The originals were saved under the namespace's name, so --netns from outside finds them.
    let r = nodetune(
        &["revert", "--netns", &ns.name],
        &[("NODETUNE_STATE_DIR", state.path())],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for ((k, _), b) in KEYS.iter().zip(&before) {
        assert_eq!(ns.sysctl(k), *b, "{k} after revert");
    }
}

#[test]
fn missing_namespace_is_a_clear_error() {
    if !privileged() {
        return;
    }
    let r = nodetune(&["plan", "--netns", "nt-does-not-exist"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("opening network namespace /run/netns/nt-does-not-exist (does `ip netns list` show it?)"),
        "{}",
        r.stderr
    );
}
