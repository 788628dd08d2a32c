//! The ethtool collector against a fake ethtool: naming, filters, caching, errors.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::ioctl::{DrvInfo, Ethtool, Handle, LinkInfo};
use super::*;
use crate::expose::encode::{encode, normalize, Format};

/// One fake device; `None` answers EOPNOTSUPP, `err` answers that errno to everything.
#[derive(Clone, Default)]
struct Dev {
    info: Option<DrvInfo>,
    stats: Option<Vec<(&'static str, u64)>>,
    link: Option<LinkInfo>,
    err: Option<i32>,
}

#[derive(Default)]
struct Calls {
    info: AtomicUsize,
    names: AtomicUsize,
}

#[derive(Clone, Default)]
struct Fake {
    devs: Arc<Mutex<HashMap<String, Dev>>>,
    calls: Arc<Calls>,
}

fn eopnotsupp() -> io::Error {
    io::Error::from_raw_os_error(libc::EOPNOTSUPP)
}

impl Fake {
    fn dev(&self, name: &str) -> io::Result<Dev> {
        let d = self
            .devs
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
        match d.err {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(d),
        }
    }
}

impl Ethtool for Fake {
    fn open(&self) -> io::Result<Box<dyn Handle>> {
        Ok(Box::new(self.clone()))
    }
}

impl Handle for Fake {
    fn driver_info(&self, dev: &str) -> io::Result<DrvInfo> {
        self.calls.info.fetch_add(1, Ordering::SeqCst);
        self.dev(dev)?.info.ok_or_else(eopnotsupp)
    }
    fn n_stats(&self, dev: &str) -> io::Result<usize> {
        Ok(self.dev(dev)?.stats.map(|s| s.len()).unwrap_or(0))
    }
    fn stat_names(&self, dev: &str, n: usize) -> io::Result<Vec<String>> {
        self.calls.names.fetch_add(1, Ordering::SeqCst);
        let s = self.dev(dev)?.stats.ok_or_else(eopnotsupp)?;
        Ok(s.iter().take(n).map(|(k, _)| k.to_string()).collect())
    }
    fn stats(&self, dev: &str, n: usize) -> io::Result<Vec<u64>> {
        let s = self.dev(dev)?.stats.ok_or_else(eopnotsupp)?;
        Ok(s.iter().take(n).map(|(_, v)| *v).collect())
    }
    fn link_info(&self, dev: &str) -> io::Result<LinkInfo> {
        self.dev(dev)?.link.ok_or_else(eopnotsupp)
    }
}

fn bits(b: &[u32]) -> u32 {
    b.iter().fold(0, |m, x| m | (1 << x))
}

/// An e1000e-like NIC (own values), a bonding device whose stats fail with EPERM, loopback
/// without any ethtool support.
fn host() -> (tempfile::TempDir, Fake) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut devs = fake.devs.lock().unwrap();
    devs.insert(
        "eth0".into(),
        Dev {
            info: Some(DrvInfo {
                driver: "e1000e".into(),
                version: "6.1.0".into(),
                firmware: "0.13-4".into(),
                bus_info: "0000:00:19.0".into(),
                erom: String::new(),
            }),
            stats: Some(vec![
                ("rx_packets", 5000),
                ("tx_packets", 4000),
                ("rx_bytes", 900000),
                ("port.rx_dropped", 77),
                ("rx_missed", 3),
                ("tx_tx_timeouts", 1),
                ("Queue[0] AllocFails", 2),
                ("dup stat", 10),
                ("dup_stat", 11),
                ("", 99),
                ("tx_aborted", 0),
                ("tx_aborted", 6),
            ]),
            link: Some(LinkInfo {
                // 10/100 half+full, 1000 full, autoneg, TP, MII, pause, and a bit above the
                // mapped ones (2500baseX) node_exporter does not map.
                supported: bits(&[0, 1, 2, 3, 5, 6, 7, 9, 13, 15]),
                advertising: bits(&[1, 3, 5, 6, 13]),
                autoneg: 1,
            }),
            err: None,
        },
    );
    devs.insert(
        "bond0".into(),
        Dev {
            info: Some(DrvInfo {
                driver: "bonding".into(),
                version: "6.1.0".into(),
                ..Default::default()
            }),
            err: None,
            ..Default::default()
        },
    );
    devs.insert("lo".into(), Dev::default());
    for d in ["bond0", "eth0", "lo"] {
        std::fs::create_dir_all(dir.path().join("class/net").join(d)).unwrap();
    }
    drop(devs);
    (dir, fake)
}

fn collector(dir: &tempfile::TempDir, fake: &Fake, flags: &[&str]) -> EthtoolCollector {
    let mut args = vec![format!("--path.sysfs={}", dir.path().display())];
    args.extend(flags.iter().map(|s| s.to_string()));
    let opts = Options::from_flags(args).unwrap();
    with_source(&opts, Box::new(fake.clone())).unwrap()
}

fn text(c: &EthtoolCollector) -> String {
    let mut fams = Vec::new();
    c.collect(&mut fams).unwrap();
    let mut s = String::new();
    encode(&normalize(fams), Format::Text, &mut s);
    s
}

#[test]
fn names_follow_node_exporter() {
    for (stat, want) in [
        ("port.rx_errors", "node_ethtool_port_received_errors"),
        ("rx_errors", "node_ethtool_received_errors"),
        ("Queue[0] AllocFails", "node_ethtool_queue_0_allocfails"),
        (
            "Tx LPI entry count",
            "node_ethtool_transmitted_lpi_entry_count",
        ),
        (
            "port.VF_admin_queue_requests",
            "node_ethtool_port_vf_admin_queue_requests",
        ),
        ("[3]: tx_bytes", "node_ethtool_3_transmitted_bytes"),
        ("     err", "node_ethtool_err"),
        ("rx_queue_0_bytes", "node_ethtool_received_queue_0_bytes"),
        ("tx_tx_timeouts", "node_ethtool_transmitted_tx_timeouts"),
        ("tx0_tx_timeouts", "node_ethtool_tx0_transmitted_timeouts"),
        ("rx0_kicks", "node_ethtool_rx0_kicks"),
        ("rx", "node_ethtool_received"),
        ("rx_tx", "node_ethtool_received_transmitted"),
        ("rx_rx_x", "node_ethtool_received_rx_x"),
        ("a:b", "node_ethtool_a_b"),
    ] {
        assert_eq!(metric_name(stat), want, "{stat:?}");
    }
}

#[test]
fn sanitize_is_gos_leftmost_nonoverlapping_replace() {
    assert_eq!(sanitize("..__.x"), "__x");
    assert_eq!(sanitize("a__.b"), "a_b");
    assert_eq!(sanitize("a_._b"), "a_b");
    assert_eq!(sanitize("a__b"), "a__b");
    assert_eq!(sanitize("ü-ö"), "_");
    assert_eq!(sanitize("ok_Name9"), "ok_Name9");
}

#[test]
fn exact_output_for_a_nic() {
    let (dir, fake) = host();
    let c = collector(&dir, &fake, &["--collector.ethtool.device-include=^eth0$"]);
    let want = r#"# HELP node_ethtool_info A metric with a constant '1' value labeled by bus_info, device, driver, expansion_rom_version, firmware_version, version.
# TYPE node_ethtool_info gauge
node_ethtool_info{bus_info="0000:00:19.0",device="eth0",driver="e1000e",expansion_rom_version="",firmware_version="0.13-4",version="6.1.0"} 1
# HELP node_ethtool_port_received_dropped Network interface port_rx_dropped
# TYPE node_ethtool_port_received_dropped untyped
node_ethtool_port_received_dropped{device="eth0"} 77
# HELP node_ethtool_queue_0_allocfails Network interface Queue_0_AllocFails
# TYPE node_ethtool_queue_0_allocfails untyped
node_ethtool_queue_0_allocfails{device="eth0"} 2
# HELP node_ethtool_received_bytes_total Network interface bytes received
# TYPE node_ethtool_received_bytes_total untyped
node_ethtool_received_bytes_total{device="eth0"} 900000
# HELP node_ethtool_received_missed Network interface rx_missed
# TYPE node_ethtool_received_missed untyped
node_ethtool_received_missed{device="eth0"} 3
# HELP node_ethtool_received_packets_total Network interface packets received
# TYPE node_ethtool_received_packets_total untyped
node_ethtool_received_packets_total{device="eth0"} 5000
# HELP node_ethtool_transmitted_aborted Network interface tx_aborted
# TYPE node_ethtool_transmitted_aborted untyped
node_ethtool_transmitted_aborted{device="eth0"} 6
# HELP node_ethtool_transmitted_packets_total Network interface packets sent
# TYPE node_ethtool_transmitted_packets_total untyped
node_ethtool_transmitted_packets_total{device="eth0"} 4000
# HELP node_ethtool_transmitted_tx_timeouts Network interface tx_tx_timeouts
# TYPE node_ethtool_transmitted_tx_timeouts untyped
node_ethtool_transmitted_tx_timeouts{device="eth0"} 1
# HELP node_network_advertised_speed_bytes Combination of speeds and features offered by network device
# TYPE node_network_advertised_speed_bytes gauge
node_network_advertised_speed_bytes{device="eth0",duplex="full",mode="1000baseT"} 1.25e+08
node_network_advertised_speed_bytes{device="eth0",duplex="full",mode="100baseT"} 1.25e+07
node_network_advertised_speed_bytes{device="eth0",duplex="full",mode="10baseT"} 1.25e+06
# HELP node_network_asymmetricpause_advertised If this port device offers asymmetric pause capability
# TYPE node_network_asymmetricpause_advertised gauge
node_network_asymmetricpause_advertised{device="eth0"} 0
# HELP node_network_asymmetricpause_supported If this port device supports asymmetric pause frames
# TYPE node_network_asymmetricpause_supported gauge
node_network_asymmetricpause_supported{device="eth0"} 0
# HELP node_network_autonegotiate If this port is using autonegotiate
# TYPE node_network_autonegotiate gauge
node_network_autonegotiate{device="eth0"} 1
# HELP node_network_autonegotiate_advertised If this port device offers autonegotiate
# TYPE node_network_autonegotiate_advertised gauge
node_network_autonegotiate_advertised{device="eth0"} 1
# HELP node_network_autonegotiate_supported If this port device supports autonegotiate
# TYPE node_network_autonegotiate_supported gauge
node_network_autonegotiate_supported{device="eth0"} 1
# HELP node_network_pause_advertised If this port device offers pause capability
# TYPE node_network_pause_advertised gauge
node_network_pause_advertised{device="eth0"} 1
# HELP node_network_pause_supported If this port device supports pause frames
# TYPE node_network_pause_supported gauge
node_network_pause_supported{device="eth0"} 1
# HELP node_network_supported_port_info Type of ports or PHYs supported by network device
# TYPE node_network_supported_port_info gauge
node_network_supported_port_info{device="eth0",type="MII"} 1
node_network_supported_port_info{device="eth0",type="TP"} 1
# HELP node_network_supported_speed_bytes Combination of speeds and features supported by network device
# TYPE node_network_supported_speed_bytes gauge
node_network_supported_speed_bytes{device="eth0",duplex="full",mode="1000baseT"} 1.25e+08
node_network_supported_speed_bytes{device="eth0",duplex="full",mode="100baseT"} 1.25e+07
node_network_supported_speed_bytes{device="eth0",duplex="full",mode="10baseT"} 1.25e+06
node_network_supported_speed_bytes{device="eth0",duplex="half",mode="100baseT"} 1.25e+07
node_network_supported_speed_bytes{device="eth0",duplex="half",mode="10baseT"} 1.25e+06
"#;
    assert_eq!(text(&c), want);
}

#[test]
fn failing_devices_are_skipped_quietly() {
    let (dir, fake) = host();
    // A device listed in sysfs but gone before the ioctls (ENODEV for everything).
    std::fs::create_dir_all(dir.path().join("class/net/gone0")).unwrap();
    fake.devs.lock().unwrap().get_mut("bond0").unwrap().stats = Some(vec![("x", 1)]);
    fake.devs.lock().unwrap().insert(
        "veth9".into(),
        Dev {
            err: Some(libc::EPERM),
            ..Default::default()
        },
    );
    std::fs::create_dir_all(dir.path().join("class/net/veth9")).unwrap();
    let c = collector(&dir, &fake, &["--collector.ethtool.device-exclude=^eth"]);
    let t = text(&c);
    // bond0: info and its one stat; lo (EOPNOTSUPP), gone0 (ENODEV), veth9 (EPERM): nothing.
    assert!(t.contains("node_ethtool_info{bus_info=\"\",device=\"bond0\",driver=\"bonding\""));
    assert!(t.contains("node_ethtool_x{device=\"bond0\"} 1\n"));
    for d in ["lo", "gone0", "veth9", "eth0"] {
        assert!(!t.contains(&format!("device=\"{d}\"")), "{d}:\n{t}");
    }
}

#[test]
fn metrics_include_matches_the_sanitised_key() {
    let (dir, fake) = host();
    let c = collector(
        &dir,
        &fake,
        &[
            "--collector.ethtool.device-include=eth",
            "--collector.ethtool.metrics-include=^(port_rx|rx_bytes$|dup_stat)",
        ],
    );
    let mut fams = Vec::new();
    c.collect(&mut fams).unwrap();
    let names: Vec<&str> = fams
        .iter()
        .map(|f| &*f.name)
        .filter(|n| n.starts_with("node_ethtool_") && *n != "node_ethtool_info")
        .collect();
    // `dup stat` and `dup_stat` collide: both dropped, even when only they are included.
    assert_eq!(
        names,
        [
            "node_ethtool_port_received_dropped",
            "node_ethtool_received_bytes_total"
        ]
    );
}

#[test]
fn names_are_cached_until_the_stat_count_changes() {
    let (dir, fake) = host();
    let c = collector(&dir, &fake, &["--collector.ethtool.device-include=^eth0$"]);
    text(&c);
    text(&c);
    assert_eq!(fake.calls.names.load(Ordering::SeqCst), 1);
    assert_eq!(fake.calls.info.load(Ordering::SeqCst), 1);
    // The driver grows a statistic (e.g. after a channel change): names read again.
    fake.devs
        .lock()
        .unwrap()
        .get_mut("eth0")
        .unwrap()
        .stats
        .as_mut()
        .unwrap()
        .push(("rx_queue_1_bytes", 42));
    let t = text(&c);
    assert_eq!(fake.calls.names.load(Ordering::SeqCst), 2);
    assert!(t.contains("node_ethtool_received_queue_1_bytes{device=\"eth0\"} 42\n"));
    // Counters going backwards (a driver reset) are passed through.
    fake.devs
        .lock()
        .unwrap()
        .get_mut("eth0")
        .unwrap()
        .stats
        .as_mut()
        .unwrap()[0]
        .1 = 1;
    assert!(text(&c).contains("node_ethtool_received_packets_total{device=\"eth0\"} 1\n"));
}

#[test]
fn missing_or_empty_class_net_fails() {
    let (dir, fake) = host();
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("class/net")).unwrap();
    let c = collector(&empty, &fake, &[]);
    assert!(c.collect(&mut Vec::new()).is_err());
    let none = tempfile::tempdir().unwrap();
    let c = collector(&none, &fake, &[]);
    assert!(c.collect(&mut Vec::new()).is_err());
    drop(dir);
}
