//! The ethtool collector against a real veth pair in a test namespace, compared with
//! `ethtool -S` (the ioctl path both use).

use std::collections::BTreeMap;
use std::process::Command;

use nodetune_e2e::{bin, have_tool, is_root, require, run_cmd, TestNetns};

fn ethtool_stats(ns: &str, dev: &str) -> BTreeMap<String, f64> {
    let r = run_cmd(Command::new("ip").args(["netns", "exec", ns, "ethtool", "-S", dev]));
    assert_eq!(r.code, 0, "ethtool -S {dev}: {}", r.stderr);
    r.stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn veth_counters_match_ethtool() {
    if !require(
        is_root() && have_tool("ip") && have_tool("ethtool"),
        "root with ip and ethtool",
    ) {
        return;
    }
    let ns = TestNetns::new("eth");
    let sh = |args: &[&str]| {
        let r = run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .args(args),
        );
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    };
    // No IPv6: its router solicitations would move counters between the two readings.
    sh(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    sh(&[
        "ip", "link", "add", "nt0", "type", "veth", "peer", "name", "nt1",
    ]);
    sh(&["ip", "link", "set", "nt0", "up"]);
    sh(&["ip", "link", "set", "nt1", "up"]);
    sh(&["ip", "addr", "add", "10.201.0.1/30", "dev", "nt0"]);
    // Traffic only inside the test namespace, so counters move.
    let _ = run_cmd(Command::new("ip").args([
        "netns",
        "exec",
        &ns.name,
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "1",
        "10.201.0.2",
    ]));
    let r = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(bin())
            .args([
                "metrics",
                "--collector.disable-defaults",
                "--collector.ethtool",
                "--collector.ethtool.device-include=^nt",
            ]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for dev in ["nt0", "nt1"] {
        let want = ethtool_stats(&ns.name, dev);
        assert!(!want.is_empty(), "veth has statistics");
        // Read ours after ethtool: counters only grow, and nothing sends in between.
        for (stat, v) in &want {
            let name = go_rename(
                &go_rename(&stat.to_lowercase(), "rx", "received"),
                "tx",
                "transmitted",
            );
            let line = format!("node_ethtool_{name}{{device=\"{dev}\"}} ");
            let got = r
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix(&line))
                .unwrap_or_else(|| panic!("{line} missing:\n{}", r.stdout));
            assert_eq!(got.parse::<f64>().unwrap(), *v, "{dev} {stat}");
        }
        // Driver info as `ethtool -i` shows it.
        let info =
            run_cmd(Command::new("ip").args(["netns", "exec", &ns.name, "ethtool", "-i", dev]));
        let field = |k: &str| {
            info.stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let want_info = format!(
            "node_ethtool_info{{bus_info=\"{}\",device=\"{dev}\",driver=\"{}\",expansion_rom_version=\"{}\",firmware_version=\"{}\",version=\"{}\"}} 1",
            field("bus-info"),
            field("driver"),
            field("expansion-rom-version"),
            field("firmware-version"),
            field("version"),
        );
        assert_eq!(field("driver"), "veth");
        assert!(r.stdout.contains(&want_info), "{want_info}\n{}", r.stdout);
        // Link settings (ETHTOOL_GSET): veth reports no modes and autonegotiation off.
        let settings =
            run_cmd(Command::new("ip").args(["netns", "exec", &ns.name, "ethtool", dev]));
        let autoneg = settings.stdout.contains("Auto-negotiation: on");
        for (name, v) in [
            (
                "node_network_autonegotiate",
                if autoneg { "1" } else { "0" },
            ),
            ("node_network_autonegotiate_supported", "0"),
            ("node_network_pause_advertised", "0"),
        ] {
            let line = format!("{name}{{device=\"{dev}\"}} {v}\n");
            assert!(r.stdout.contains(&line), "{line}{}", r.stdout);
        }
    }
    assert!(
        r.stdout
            .contains("node_scrape_collector_success{collector=\"ethtool\"} 1"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("device=\"lo\""),
        "device-include applies"
    );
}

/// Go's non-overlapping `(^|_)TOK(_|$)` replacement, written independently of the agent's.
fn go_rename(s: &str, tok: &str, rep: &str) -> String {
    let re = format!("_{s}_");
    let mut out = String::new();
    let mut rest = re.as_str();
    let pat = format!("_{tok}_");
    while let Some(i) = rest.find(&pat) {
        out.push_str(&rest[..i]);
        out.push('_');
        out.push_str(rep);
        out.push('_');
        rest = &rest[i + pat.len()..];
        // The trailing underscore was consumed: a following token cannot match at once.
        if let Some(stripped) = rest.strip_prefix(tok) {
            if stripped.is_empty() || stripped.starts_with('_') {
                out.push_str(tok);
                rest = stripped;
            }
        }
    }
    out.push_str(rest);
    out.trim_matches('_').to_string()
}
