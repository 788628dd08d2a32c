//! The netlink collectors in a throwaway network namespace: netclass over netlink against
//! netclass over sysfs and `ip -d link`, arp over netlink against /proc/net/arp and `ip neigh`,
//! and scrapes while devices come and go. Nothing outside the namespace is touched; the
//! namespace is deleted when the test ends, also when it fails.

use std::collections::BTreeMap;
use std::process::Command;

use nodetune_e2e::{bin, have_tool, is_root, require, run_cmd, TestNetns};

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

/// `{device="x"}` → value for one family, with the device label only.
fn by_device(m: &BTreeMap<String, f64>, family: &str) -> BTreeMap<String, f64> {
    let prefix = format!("{family}{{device=\"");
    m.iter()
        .filter_map(|(k, v)| {
            let dev = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            Some((dev.to_string(), *v))
        })
        .collect()
}

struct Ns {
    ns: TestNetns,
}

impl Ns {
    fn sh(&self, args: &[&str]) {
        let r = run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &self.ns.name])
                .args(args),
        );
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }

    fn out(&self, args: &[&str]) -> String {
        let r = run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &self.ns.name])
                .args(args),
        );
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.stdout
    }

    fn metrics(&self, flags: &[&str]) -> (BTreeMap<String, f64>, String) {
        let r = run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &self.ns.name])
                .arg(bin())
                .args(["metrics", "--collector.disable-defaults"])
                .args(flags),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        (series(&r.stdout), r.stdout)
    }
}

/// A namespace with: lo up; veth nl0/nl1 up with addresses, an alias with quotes and an
/// altname on nl0; veth nl.odd-2/nl3 down (their speed reads EINVAL); IPv4 neighbours on nl0
/// and nl1, one of them NOARP.
fn setup(tag: &str) -> Ns {
    let ns = Ns {
        ns: TestNetns::new(tag),
    };
    ns.sh(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    ns.sh(&["ip", "link", "set", "lo", "up"]);
    ns.sh(&[
        "ip", "link", "add", "name", "nl0", "type", "veth", "peer", "name", "nl1",
    ]);
    ns.sh(&[
        "ip", "link", "add", "name", "nl.odd-2", "type", "veth", "peer", "name", "nl3",
    ]);
    ns.sh(&["ip", "link", "set", "nl0", "alias", "uplink \"a\\b\""]);
    // Alternative names need kernel 5.5; not an error where missing.
    let _ = run_cmd(Command::new("ip").args([
        "netns",
        "exec",
        &ns.ns.name,
        "ip",
        "link",
        "property",
        "add",
        "dev",
        "nl0",
        "altname",
        "nl0-alt",
    ]));
    ns.sh(&["ip", "link", "set", "nl0", "mtu", "1400"]);
    ns.sh(&["ip", "link", "set", "nl0", "up"]);
    ns.sh(&["ip", "link", "set", "nl1", "up"]);
    ns.sh(&["ip", "addr", "add", "10.202.0.1/24", "dev", "nl0"]);
    ns.sh(&["ip", "addr", "add", "10.203.0.1/24", "dev", "nl1"]);
    for (ip, mac, dev, nud) in [
        ("10.202.0.9", "02:00:00:00:00:09", "nl0", "permanent"),
        ("10.202.0.10", "02:00:00:00:00:0a", "nl0", "stale"),
        ("10.202.0.11", "02:00:00:00:00:0b", "nl0", "reachable"),
        ("10.203.0.9", "02:00:00:00:01:09", "nl1", "permanent"),
        ("10.203.0.10", "02:00:00:00:01:0a", "nl1", "noarp"),
    ] {
        ns.sh(&[
            "ip", "neigh", "add", ip, "lladdr", mac, "dev", dev, "nud", nud,
        ]);
    }
    ns
}

#[test]
fn arp_over_netlink_matches_proc_and_ip_neigh() {
    if !require(is_root() && have_tool("ip"), "root with ip") {
        return;
    }
    let ns = setup("arp");
    let (nl, _) = ns.metrics(&["--collector.arp"]);
    let (proc, _) = ns.metrics(&["--collector.arp", "--no-collector.arp.netlink"]);
    assert_eq!(nl["node_scrape_collector_success{collector=\"arp\"}"], 1.0);
    let nl = by_device(&nl, "node_arp_entries");
    let proc = by_device(&proc, "node_arp_entries");
    assert_eq!(nl, proc);
    // NOARP entries are not ARP entries: 3 on nl0, 1 on nl1.
    assert_eq!(nl["nl0"], 3.0);
    assert_eq!(nl["nl1"], 1.0);
    // ip neigh, counting what /proc/net/arp lists (not the NOARP one).
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for l in ns.out(&["ip", "-4", "neigh", "show", "nud", "all"]).lines() {
        if l.contains("NOARP") {
            continue;
        }
        let dev = l
            .split_whitespace()
            .skip_while(|w| *w != "dev")
            .nth(1)
            .unwrap()
            .to_string();
        *want.entry(dev).or_default() += 1.0;
    }
    assert_eq!(nl, want);
    // Device filters.
    let (m, _) = ns.metrics(&["--collector.arp", "--collector.arp.device-exclude=^nl0$"]);
    assert_eq!(
        by_device(&m, "node_arp_entries").keys().collect::<Vec<_>>(),
        ["nl1"]
    );
}

#[test]
fn netclass_over_netlink_matches_sysfs_and_ip_link() {
    if !require(is_root() && have_tool("ip"), "root with ip") {
        return;
    }
    let ns = setup("ncl");
    let (sys, sys_text) = ns.metrics(&["--collector.netclass"]);
    let (nl, nl_text) = ns.metrics(&["--collector.netclass", "--collector.netclass.netlink"]);
    for m in [&sys, &nl] {
        assert_eq!(
            m["node_scrape_collector_success{collector=\"netclass\"}"],
            1.0
        );
    }
    let devices = ["lo", "nl.odd-2", "nl0", "nl1", "nl3"];
    // The same value both ways, for every device.
    for family in [
        "node_network_up",
        "node_network_mtu_bytes",
        "node_network_iface_id",
        "node_network_iface_link",
        "node_network_iface_link_mode",
        "node_network_protocol_type",
        "node_network_transmit_queue_length",
        "node_network_net_dev_group",
        "node_network_address_assign_type",
        "node_network_name_assign_type",
        "node_network_device_id",
        "node_network_carrier_changes_total",
        "node_network_carrier_up_changes_total",
        "node_network_carrier_down_changes_total",
    ] {
        let (a, b) = (by_device(&sys, family), by_device(&nl, family));
        assert_eq!(a, b, "{family}");
        assert_eq!(
            a.keys().map(String::as_str).collect::<Vec<_>>(),
            devices,
            "{family}"
        );
    }
    // flags: netlink's ifi_flags add the operational bits sysfs's dev->flags lack
    // (IFF_RUNNING, IFF_LOWER_UP, IFF_DORMANT); the rest agree.
    let (a, b) = (
        by_device(&sys, "node_network_flags"),
        by_device(&nl, "node_network_flags"),
    );
    for dev in devices {
        let (s, n) = (a[dev] as u64, b[dev] as u64);
        assert_eq!(n & !(0x40 | 0x1_0000 | 0x2_0000), s & !0x40, "flags {dev}");
    }
    // carrier: sysfs answers EINVAL for down devices (left out); netlink always has it.
    let (a, b) = (
        by_device(&sys, "node_network_carrier"),
        by_device(&nl, "node_network_carrier"),
    );
    for (dev, v) in &a {
        assert_eq!(b.get(dev), Some(v), "carrier {dev}");
    }
    assert_eq!(a.get("nl0"), Some(&1.0));
    assert!(!a.contains_key("nl3"));
    // speed: the down veth pair reads EINVAL in sysfs (no series); the up pair is 10 Gb/s
    // both ways (ethtool netlink reports the down pair too).
    let speed = by_device(&sys, "node_network_speed_bytes");
    assert_eq!(speed.get("nl0"), Some(&1.25e9));
    assert!(
        !speed.contains_key("nl3") && !speed.contains_key("lo"),
        "{speed:?}"
    );
    let nspeed = by_device(&nl, "node_network_speed_bytes");
    assert_eq!(nspeed.get("nl0"), Some(&1.25e9));
    // Labels: sysfs duplex is the kernel's word, netlink's is ethtool's; alias escaped.
    assert!(
        sys_text.contains(
            "node_network_info{address=\"" // nl0's address follows
        ),
        "{sys_text}"
    );
    let info = |text: &str, dev: &str| -> String {
        text.lines()
            .find(|l| {
                l.starts_with("node_network_info{") && l.contains(&format!("device=\"{dev}\""))
            })
            .unwrap_or_else(|| panic!("no info for {dev}: {text}"))
            .to_string()
    };
    let s0 = info(&sys_text, "nl0");
    let n0 = info(&nl_text, "nl0");
    assert!(s0.contains("adminstate=\"up\""), "{s0}");
    assert!(s0.contains("duplex=\"full\""), "{s0}");
    assert!(n0.contains("duplex=\"Full\""), "{n0}");
    assert!(!n0.contains("adminstate"), "{n0}");
    for l in [&s0, &n0] {
        assert!(l.contains("ifalias=\"uplink \\\"a\\\\b\\\"\""), "{l}");
        assert!(l.contains("operstate=\"up\""), "{l}");
    }
    // The address both ways, and as ip shows it.
    let shown = ns.out(&["ip", "-o", "link", "show", "nl0"]);
    let mac = shown
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap();
    assert!(s0.contains(&format!("address=\"{mac}\"")), "{s0} vs {mac}");
    assert!(n0.contains(&format!("address=\"{mac}\"")), "{n0} vs {mac}");
    // The rest against `ip -d link`: mtu, ifindex, the IFF_UP flag.
    for dev in devices {
        let l = ns.out(&["ip", "-o", "-d", "link", "show", "dev", dev]);
        let index: f64 = l.split(':').next().unwrap().trim().parse().unwrap();
        assert_eq!(by_device(&nl, "node_network_iface_id")[dev], index, "{dev}");
        let mtu: f64 = l
            .split_whitespace()
            .skip_while(|w| *w != "mtu")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(by_device(&nl, "node_network_mtu_bytes")[dev], mtu, "{dev}");
        let flags_up = l
            .split('<')
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap()
            .split(',')
            .any(|f| f == "UP");
        let flags = by_device(&sys, "node_network_flags")[dev] as u64;
        assert_eq!(flags & 1 == 1, flags_up, "{dev}: {l}");
        if l.contains("altname nl0-alt") {
            assert!(nl_text
                .contains("node_network_altnames_info{altname=\"nl0-alt\",device=\"nl0\"} 1"));
        }
    }
    // Ignored devices, both ways.
    for extra in [&[][..], &["--collector.netclass.netlink"][..]] {
        let mut f = vec![
            "--collector.netclass",
            "--collector.netclass.ignored-devices=^nl",
        ];
        f.extend_from_slice(extra);
        let (m, _) = ns.metrics(&f);
        assert_eq!(
            by_device(&m, "node_network_up").keys().collect::<Vec<_>>(),
            ["lo"]
        );
    }
}

#[test]
fn scrapes_survive_devices_coming_and_going() {
    if !require(is_root() && have_tool("ip"), "root with ip") {
        return;
    }
    let ns = setup("churn");
    let name = ns.ns.name.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // Bounded: at most 200 add/delete rounds, and only while the scrapes run.
    let churn = std::thread::spawn(move || {
        for i in 0..200 {
            if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let dev = format!("ch{}", i % 4);
            let _ = Command::new("ip")
                .args([
                    "-n", &name, "link", "add", "name", &dev, "type", "veth", "peer", "name",
                ])
                .arg(format!("{dev}p"))
                .status();
            let _ = Command::new("ip")
                .args([
                    "-n",
                    &name,
                    "neigh",
                    "add",
                    "10.202.0.50",
                    "lladdr",
                    "02:00:00:00:02:01",
                    "dev",
                    "nl0",
                ])
                .status();
            let _ = Command::new("ip")
                .args(["-n", &name, "link", "del", &dev])
                .status();
            let _ = Command::new("ip")
                .args(["-n", &name, "neigh", "del", "10.202.0.50", "dev", "nl0"])
                .status();
        }
    });
    let mut ok = 0;
    for i in 0..20 {
        let netlink = if i % 2 == 0 {
            "--collector.netclass.netlink=false"
        } else {
            "--collector.netclass.netlink"
        };
        let (m, _) = ns.metrics(&["--collector.netclass", "--collector.arp", netlink]);
        // The scrape itself never fails; a device gone between listing and reading can make
        // netclass report no data for that scrape (as node_exporter), never a wrong value.
        let s = m["node_scrape_collector_success{collector=\"netclass\"}"];
        assert!(s == 0.0 || s == 1.0);
        assert_eq!(m["node_scrape_collector_success{collector=\"arp\"}"], 1.0);
        if s == 1.0 {
            ok += 1;
            assert_eq!(by_device(&m, "node_network_mtu_bytes")["nl0"], 1400.0);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    assert!(ok > 0);
}

/// Sums column 5 (`tx_queue:rx_queue`, hex) of /proc/net/udp or udp6 as read in the namespace.
fn proc_udp_queues(ns: &Ns, file: &str) -> (f64, f64) {
    let mut sum = (0.0, 0.0);
    for l in ns.out(&["cat", file]).lines().skip(1) {
        let (tx, rx) = l
            .split_whitespace()
            .nth(4)
            .unwrap()
            .split_once(':')
            .unwrap();
        sum.0 += u64::from_str_radix(tx, 16).unwrap() as f64;
        sum.1 += u64::from_str_radix(rx, 16).unwrap() as f64;
    }
    sum
}

#[test]
fn udp_queues_over_sock_diag_match_proc_net_udp() {
    if !require(is_root() && have_tool("ip"), "root with ip") {
        return;
    }
    let ns = Ns {
        ns: TestNetns::new("udpq"),
    };
    ns.sh(&["ip", "link", "set", "lo", "up"]);
    // A thread of this process joins the namespace and leaves datagrams unread in sockets
    // there (IPv4 and IPv6), which stay open while nodetune and cat read the namespace.
    let path = format!("/run/netns/{}", ns.ns.name);
    let sockets = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread only, with a namespace file it holds open.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let mut keep = Vec::new();
        for (addr, n) in [("127.0.0.1:0", 7), ("[::1]:0", 3)] {
            let rx = std::net::UdpSocket::bind(addr).unwrap();
            let tx = std::net::UdpSocket::bind(addr).unwrap();
            for _ in 0..n {
                tx.send_to(&[7u8; 700], rx.local_addr().unwrap()).unwrap();
            }
            keep.extend([rx, tx]);
        }
        keep
    })
    .join()
    .unwrap();
    // The real /proc, so the collector asks sock_diag; then the files it would read else.
    let (m, text) = ns.metrics(&["--collector.udp_queues"]);
    assert_eq!(
        m["node_scrape_collector_success{collector=\"udp_queues\"}"], 1.0,
        "{text}"
    );
    for (ip, file) in [("v4", "/proc/net/udp"), ("v6", "/proc/net/udp6")] {
        let (tx, rx) = proc_udp_queues(&ns, file);
        assert!(rx > 0.0, "{file}: nothing queued");
        let got = |q: &str| m[&format!("node_udp_queues{{ip=\"{ip}\",queue=\"{q}\"}}")];
        assert_eq!((got("tx"), got("rx")), (tx, rx), "{ip}");
    }
    drop(sockets);
}
