//! The network collectors (netdev, netstat, sockstat, conntrack, softnet) on the project's own
//! fixture trees (tests/fixtures/net-a: a 6.x kernel; net-b: IPv6 off, no conntrack
//! statistics, an older softnet layout), and netdev over netlink in a test namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nodetune_e2e::{bin, have_tool, is_root, nodetune, require, run_cmd, TestNetns};

const NET: &[&str] = &[
    "--collector.disable-defaults",
    "--collector.netdev",
    "--collector.netstat",
    "--collector.sockstat",
    "--collector.conntrack",
    "--collector.softnet",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Series → value from the text format.
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn scrape(proc: &Path, extra: &[&str]) -> (BTreeMap<String, f64>, String) {
    let procfs = format!("--path.procfs={}", proc.display());
    let mut args = vec![
        "metrics",
        procfs.as_str(),
        "--collector.netdev.netlink=false",
    ];
    args.extend_from_slice(NET);
    args.extend_from_slice(extra);
    let r = nodetune(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (series(&r.stdout), r.stdout)
}

fn check(m: &BTreeMap<String, f64>, want: &[(&str, f64)]) {
    for (k, v) in want {
        let got = m.get(*k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(got, v, "{k}");
    }
}

#[test]
fn a_current_kernel() {
    let (m, text) = scrape(&fixture("net-a/proc"), &[]);
    for c in ["netdev", "netstat", "sockstat", "conntrack", "softnet"] {
        assert_eq!(
            m[&format!("node_scrape_collector_success{{collector=\"{c}\"}}")],
            1.0,
            "{c}"
        );
    }
    check(
        &m,
        &[
            // /proc/net/dev, legacy names; a VLAN device name with a dot.
            (
                "node_network_receive_bytes_total{device=\"ens5\"}",
                98127734512.0,
            ),
            ("node_network_receive_drop_total{device=\"ens5\"}", 17.0),
            ("node_network_receive_frame_total{device=\"ens5\"}", 2.0),
            ("node_network_transmit_carrier_total{device=\"ens5\"}", 1.0),
            (
                "node_network_transmit_packets_total{device=\"bond0.100\"}",
                24.0,
            ),
            // netstat: default field list of 1.12 (TCPOFOQueue, TCPRcvQDrop included).
            ("node_netstat_TcpExt_ListenOverflows", 742.0),
            ("node_netstat_TcpExt_TCPSynRetrans", 3001.0),
            ("node_netstat_TcpExt_TCPRcvQDrop", 88.0),
            ("node_netstat_TcpExt_TCPOFOQueue", 2210.0),
            ("node_netstat_IpExt_InOctets", 98127734512.0),
            ("node_netstat_Ip_Forwarding", 2.0),
            ("node_netstat_Icmp_OutMsgs", 51.0),
            ("node_netstat_Tcp_RetransSegs", 40123.0),
            ("node_netstat_Udp_RcvbufErrors", 4.0),
            ("node_netstat_Ip6_InOctets", 240000.0),
            ("node_netstat_Udp6_NoPorts", 2.0),
            ("node_netstat_UdpLite6_InErrors", 0.0),
            // sockstat: pages × 4096 (the page size of the test host's architecture).
            ("node_sockstat_sockets_used", 1402.0),
            ("node_sockstat_TCP_tw", 1183.0),
            ("node_sockstat_FRAG_memory", 0.0),
            ("node_sockstat_TCP6_inuse", 21.0),
            // conntrack: three CPUs summed, by column position.
            ("node_nf_conntrack_entries", 15000.0),
            ("node_nf_conntrack_entries_limit", 262144.0),
            ("node_nf_conntrack_stat_found", 0x60 as f64),
            ("node_nf_conntrack_stat_ignore", 0x6000 as f64),
            ("node_nf_conntrack_stat_invalid", 18.0),
            ("node_nf_conntrack_stat_insert_failed", 3.0),
            ("node_nf_conntrack_stat_drop", 3.0),
            ("node_nf_conntrack_stat_early_drop", 4.0),
            ("node_nf_conntrack_stat_search_restart", 4.0),
            // softnet: CPU ids from column 13 (CPU 2 offline).
            ("node_softnet_processed_total{cpu=\"0\"}", 0x0a12b3c4 as f64),
            ("node_softnet_dropped_total{cpu=\"1\"}", 7.0),
            ("node_softnet_times_squeezed_total{cpu=\"1\"}", 0x31 as f64),
            ("node_softnet_cpu_collision_total{cpu=\"0\"}", 1.0),
            ("node_softnet_received_rps_total{cpu=\"1\"}", 2.0),
            ("node_softnet_flow_limit_count_total{cpu=\"3\"}", 4.0),
            ("node_softnet_backlog_len{cpu=\"1\"}", 3.0),
        ],
    );
    let page = m["node_sockstat_TCP_mem_bytes"] / m["node_sockstat_TCP_mem"];
    assert!(
        page == 4096.0 || page == 16384.0 || page == 65536.0,
        "{page}"
    );
    assert!(!m.keys().any(|k| k.contains("cpu=\"2\"")));
    // Fields outside the default list, and IcmpMsg, are not exported.
    assert!(!m.contains_key("node_netstat_TcpExt_TW"));
    assert!(!m.keys().any(|k| k.starts_with("node_netstat_IcmpMsg")));
    // Types and HELP as node_exporter writes them.
    for line in [
        "# TYPE node_netstat_Tcp_CurrEstab untyped",
        "# HELP node_netstat_Tcp_CurrEstab Statistic TcpCurrEstab.",
        "# TYPE node_sockstat_TCP_mem_bytes gauge",
        "# HELP node_sockstat_TCP_mem_bytes Number of TCP sockets in state mem_bytes.",
        "# TYPE node_nf_conntrack_stat_drop gauge",
        "# TYPE node_softnet_backlog_len gauge",
        "# TYPE node_softnet_dropped_total counter",
        "# HELP node_network_receive_drop_total Network device statistic receive_drop.",
        "# TYPE node_network_receive_drop_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}");
    }
    // The field list is a flag.
    let (m, _) = scrape(
        &fixture("net-a/proc"),
        &["--collector.netstat.fields=^TcpExt_TW$"],
    );
    assert_eq!(
        m.keys().filter(|k| k.starts_with("node_netstat_")).count(),
        1
    );
    assert_eq!(m["node_netstat_TcpExt_TW"], 918273.0);
}

#[test]
fn b_ipv6_off_no_conntrack_stats_older_softnet() {
    let (m, _) = scrape(&fixture("net-b/proc"), &[]);
    for c in ["netdev", "netstat", "sockstat", "conntrack", "softnet"] {
        assert_eq!(
            m[&format!("node_scrape_collector_success{{collector=\"{c}\"}}")],
            1.0,
            "{c}"
        );
    }
    assert!(!m.keys().any(|k| k.contains("6_")), "no IPv6 families");
    // A counter near 2^64 passes through as a float.
    assert_eq!(m["node_netstat_TcpExt_TCPTimeouts"], 18446744073709551615.0);
    // No per-CPU statistics file: table size and limit only.
    assert_eq!(m["node_nf_conntrack_entries_limit"], 65536.0);
    assert!(!m.keys().any(|k| k.starts_with("node_nf_conntrack_stat_")));
    // 11 columns: CPU is the line number, backlog 0.
    assert_eq!(m["node_softnet_processed_total{cpu=\"1\"}"], 2.0);
    assert_eq!(m["node_softnet_backlog_len{cpu=\"1\"}"], 0.0);
}

#[test]
fn broken_files_fail_only_their_collector() {
    let d = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture("net-a/proc"))
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let proc = d.path().join("proc");
    std::fs::remove_file(proc.join("net/snmp")).unwrap();
    std::fs::write(proc.join("net/softnet_stat"), "00000001 00000002\n").unwrap();
    std::fs::remove_dir_all(proc.join("sys/net")).unwrap();
    std::fs::write(proc.join("net/sockstat"), "TCP: inuse\n").unwrap();
    let (m, _) = scrape(&proc, &[]);
    for (c, ok) in [
        ("netdev", 1.0),
        ("netstat", 0.0),
        ("sockstat", 0.0),
        ("conntrack", 0.0),
        ("softnet", 0.0),
    ] {
        assert_eq!(
            m[&format!("node_scrape_collector_success{{collector=\"{c}\"}}")],
            ok,
            "{c}"
        );
    }
    assert!(!m.keys().any(|k| k.starts_with("node_netstat_")));
    assert!(m.contains_key("node_network_receive_bytes_total{device=\"ens5\"}"));
}

#[test]
fn netdev_over_netlink_in_a_namespace() {
    if !require(is_root() && have_tool("ip"), "root with ip") {
        return;
    }
    let ns = TestNetns::new("nd");
    let sh = |args: &[&str]| {
        let r = run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .args(args),
        );
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    };
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
    sh(&["ip", "link", "set", "lo", "up"]);
    let run = |extra: &[&str]| {
        let r = run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .arg(bin())
                .args([
                    "metrics",
                    "--collector.disable-defaults",
                    "--collector.netdev",
                ])
                .args(extra),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let text = run(&["--collector.netdev.address-info"]);
    let m = series(&text);
    // Only this namespace's devices; netlink adds receive_nohandler to the 16 procfs fields.
    let devices: std::collections::BTreeSet<&str> = m
        .keys()
        .filter(|k| k.starts_with("node_network_receive_bytes_total"))
        .map(|k| k.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        devices.into_iter().collect::<Vec<_>>(),
        ["lo", "nt0", "nt1"]
    );
    let families = text
        .lines()
        .filter(|l| l.starts_with("# TYPE node_network_") && l.ends_with("_total counter"))
        .count();
    assert_eq!(families, 17, "{text}");
    assert_eq!(
        m["node_network_receive_nohandler_total{device=\"nt0\"}"],
        0.0
    );
    // The counters are the kernel's, as sysfs shows them (nothing sends in between: IPv6 is
    // off and nothing else runs in the namespace).
    for (metric, file) in [
        ("node_network_transmit_packets_total", "tx_packets"),
        ("node_network_transmit_bytes_total", "tx_bytes"),
        ("node_network_receive_packets_total", "rx_packets"),
    ] {
        let r = run_cmd(Command::new("ip").args([
            "netns",
            "exec",
            &ns.name,
            "cat",
            &format!("/sys/class/net/nt1/statistics/{file}"),
        ]));
        let want: f64 = r.stdout.trim().parse().unwrap();
        assert_eq!(m[&format!("{metric}{{device=\"nt1\"}}")], want, "{metric}");
    }
    assert_eq!(
        m["node_network_address_info{address=\"10.201.0.1\",device=\"nt0\",netmask=\"30\",scope=\"global\"}"],
        1.0,
        "{text}"
    );
    assert_eq!(
        m["node_network_address_info{address=\"127.0.0.1\",device=\"lo\",netmask=\"8\",scope=\"link-local\"}"],
        1.0
    );
    // Device filters; both at once is a start-up error, as in node_exporter.
    let m = series(&run(&["--collector.netdev.device-exclude=^nt"]));
    assert!(m
        .keys()
        .filter(|k| k.starts_with("node_network_"))
        .all(|k| k.contains("\"lo\"")));
    let r = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(bin())
            .args([
                "metrics",
                "--collector.disable-defaults",
                "--collector.netdev",
                "--collector.netdev.device-include=a",
                "--collector.netdev.device-exclude=b",
            ]),
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("mutually exclusive"), "{}", r.stderr);
}
