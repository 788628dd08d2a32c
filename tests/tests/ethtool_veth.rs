//! The ethtool collector against a real veth pair between two test namespaces, compared with
//! `ethtool -S` (the ioctl path both use), after traffic the test sends and checks.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use nodetune_e2e::{bin, have_tool, is_root, require, run_cmd, Run, TestNetns};

fn ethtool_stats(ns: &TestNetns, dev: &str) -> BTreeMap<String, f64> {
    let r = run_cmd(Command::new("ip").args(["netns", "exec", &ns.name, "ethtool", "-S", dev]));
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

fn in_ns(ns: &TestNetns, args: &[&str]) -> Run {
    let r = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(args),
    );
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r
}

/// Datagrams sent each way across the pair.
const DATAGRAMS: usize = 20;
const MAC0: &str = "02:6e:74:00:00:00";
const MAC1: &str = "02:6e:74:00:00:01";

/// The payload of datagram `i`.
fn payload(i: usize) -> String {
    format!("nodetune {i}")
}

/// Sends `DATAGRAMS` UDP datagrams from `from` to `to` and back, and checks that every one
/// arrived, in order, with its payload.
fn exchange(from: &TestNetns, to: &TestNetns) {
    let recv = |ns: &TestNetns, addr: &'static str| {
        ns.enter(move || {
            let s = UdpSocket::bind(addr).expect("bind in the namespace");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("read timeout");
            s
        })
    };
    let a = recv(from, "10.201.0.1:0");
    let b = recv(to, "10.201.0.2:0");
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut buf = [0u8; 64];
    for (tx, rx, dst, way) in [
        (&a, &b, b_addr, "nt0 -> nt1"),
        (&b, &a, a_addr, "nt1 -> nt0"),
    ] {
        for i in 0..DATAGRAMS {
            tx.send_to(payload(i).as_bytes(), dst)
                .unwrap_or_else(|e| panic!("{way}: send {i}: {e}"));
        }
        for i in 0..DATAGRAMS {
            let (n, _) = rx
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("{way}: datagram {i} never arrived: {e}"));
            assert_eq!(&buf[..n], payload(i).as_bytes(), "{way}");
        }
    }
}

#[test]
fn veth_counters_match_ethtool() {
    if !require(
        is_root() && have_tool("ip") && have_tool("ethtool"),
        "root with ip and ethtool",
    ) {
        return;
    }
    let (a, b) = (TestNetns::new("eth"), TestNetns::new("etp"));
    for (ns, dev, addr) in [(&a, "nt0", "10.201.0.1/30"), (&b, "nt1", "10.201.0.2/30")] {
        // No IPv6: its router solicitations would move counters between the readings.
        in_ns(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        if dev == "nt0" {
            in_ns(
                ns,
                &[
                    "ip", "link", "add", "nt0", "address", MAC0, "type", "veth", "peer", "name",
                    "nt1", "address", MAC1, "netns", &b.name,
                ],
            );
        }
        in_ns(ns, &["ip", "addr", "add", addr, "dev", dev]);
        // Fixed neighbours: no ARP, whose probes would move the counters at any moment.
        let (peer, mac) = if dev == "nt0" {
            ("10.201.0.2", MAC1)
        } else {
            ("10.201.0.1", MAC0)
        };
        in_ns(
            ns,
            &[
                "ip",
                "neigh",
                "replace",
                peer,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ],
        );
        // veth's packet counters in `ethtool -S` (rx_queue_0_xdp_packets, _bytes) count what
        // arrives through its NAPI path, which GRO turns on for packets from a device without
        // TSO; without this every counter but peer_ifindex stays 0.
        in_ns(ns, &["ethtool", "-K", dev, "gro", "on", "tso", "off"]);
        in_ns(ns, &["ip", "link", "set", dev, "up"]);
    }
    exchange(&a, &b);

    for (ns, dev) in [(&a, "nt0"), (&b, "nt1")] {
        let want = ethtool_stats(ns, dev);
        // Exactly the test's datagrams arrived on each side, and their bytes (IPv4 and UDP
        // headers, 28 bytes, and the payload).
        let bytes: usize = (0..DATAGRAMS).map(|i| 28 + payload(i).len()).sum();
        assert_eq!(
            (
                want.get("rx_queue_0_xdp_packets"),
                want.get("rx_queue_0_xdp_bytes")
            ),
            (Some(&(DATAGRAMS as f64)), Some(&(bytes as f64))),
            "{dev}: ethtool -S after the exchange: {want:?}"
        );
        let r = in_ns(
            ns,
            &[
                &bin().display().to_string(),
                "metrics",
                "--collector.disable-defaults",
                "--collector.ethtool",
                "--collector.ethtool.device-include=^nt",
            ],
        );
        // Equal readings before and after ours: nothing moved in between.
        assert_eq!(ethtool_stats(ns, dev), want, "{dev}: counters moved");
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
        let info = in_ns(ns, &["ethtool", "-i", dev]);
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
        let settings = in_ns(ns, &["ethtool", dev]);
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
