//! netdev collector, as node_exporter 1.12: per-device counters from an RTM_GETLINK netlink
//! dump of the reader's network namespace (the default, `--collector.netdev.netlink`), or from
//! `<procfs>/net/dev` with `--collector.netdev.netlink=false`. Counters are exported as
//! `node_network_<key>_total{device}`; unless `--collector.netdev.enable-detailed-metrics`,
//! the detailed netlink keys are folded into /proc/net/dev's legacy names the way the kernel
//! folds them there (drop += missed, frame += length + over + crc, carrier += aborted +
//! heartbeat + window). `--collector.netdev.address-info` adds node_network_address_info.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use regex::Regex;

use super::{netlink, util, Collector, Family, MetricType, Options};

/// One device's counters under node_exporter's keys.
type Stats = BTreeMap<&'static str, u64>;

/// struct rtnl_link_stats64 field order, as node_exporter's detailed keys.
const LINK_STATS: [&str; 24] = [
    "receive_packets",
    "transmit_packets",
    "receive_bytes",
    "transmit_bytes",
    "receive_errors",
    "transmit_errors",
    "receive_dropped",
    "transmit_dropped",
    "multicast",
    "collisions",
    "receive_length_errors",
    "receive_over_errors",
    "receive_crc_errors",
    "receive_frame_errors",
    "receive_fifo_errors",
    "receive_missed_errors",
    "transmit_aborted_errors",
    "transmit_carrier_errors",
    "transmit_fifo_errors",
    "transmit_heartbeat_errors",
    "transmit_window_errors",
    "receive_compressed",
    "transmit_compressed",
    "receive_nohandler",
];

/// /proc/net/dev columns, as node_exporter's keys (procfs path).
const PROC_COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errors",
    "receive_dropped",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errors",
    "transmit_dropped",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// node_exporter's legacy(): detailed keys → /proc/net/dev names.
fn legacy(m: &mut Stats) {
    let popz = |m: &mut Stats, k: &str| m.remove(k).unwrap_or(0);
    if let Some(v) = m.remove("receive_errors") {
        m.insert("receive_errs", v);
    }
    if let Some(v) = m.remove("receive_dropped") {
        let missed = popz(m, "receive_missed_errors");
        m.insert("receive_drop", v + missed);
    }
    if let Some(v) = m.remove("receive_fifo_errors") {
        m.insert("receive_fifo", v);
    }
    if let Some(v) = m.remove("receive_frame_errors") {
        let extra = popz(m, "receive_length_errors")
            + popz(m, "receive_over_errors")
            + popz(m, "receive_crc_errors");
        m.insert("receive_frame", v + extra);
    }
    if let Some(v) = m.remove("multicast") {
        m.insert("receive_multicast", v);
    }
    if let Some(v) = m.remove("transmit_errors") {
        m.insert("transmit_errs", v);
    }
    if let Some(v) = m.remove("transmit_dropped") {
        m.insert("transmit_drop", v);
    }
    if let Some(v) = m.remove("transmit_fifo_errors") {
        m.insert("transmit_fifo", v);
    }
    if let Some(v) = m.remove("collisions") {
        m.insert("transmit_colls", v);
    }
    if let Some(v) = m.remove("transmit_carrier_errors") {
        let extra = popz(m, "transmit_aborted_errors")
            + popz(m, "transmit_heartbeat_errors")
            + popz(m, "transmit_window_errors");
        m.insert("transmit_carrier", v + extra);
    }
}

/// Parses /proc/net/dev; a malformed line fails the whole read, as procfs does.
fn parse_proc(text: &str) -> anyhow::Result<Vec<(String, Stats)>> {
    let mut out = Vec::new();
    for line in text.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let (name, rest) = line
            .rsplit_once(':')
            .with_context(|| format!("invalid /proc/net/dev line {line:?}"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        anyhow::ensure!(
            fields.len() >= PROC_COLUMNS.len(),
            "invalid /proc/net/dev line {line:?}"
        );
        let mut stats = Stats::new();
        for (key, f) in PROC_COLUMNS.iter().zip(&fields) {
            let v = f
                .parse::<u64>()
                .with_context(|| format!("invalid /proc/net/dev value {f:?} in {line:?}"))?;
            stats.insert(key, v);
        }
        out.push((name.trim().to_string(), stats));
    }
    Ok(out)
}

// ---- rtnetlink -------------------------------------------------------------------------

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

/// One link of the dump: index, name, stats64 (or stats32 widened), as node_exporter reads.
struct Link {
    index: u32,
    name: String,
    stats: Option<[u64; 24]>,
}

fn links() -> io::Result<Vec<Link>> {
    Ok(netlink::links()?
        .into_iter()
        .filter_map(|l| {
            Some(Link {
                index: l.index,
                name: l.name?,
                stats: l.stats,
            })
        })
        .collect())
}

/// One address of the dump: link index, prefix length and address.
struct Addr {
    index: u32,
    prefix: u8,
    ip: IpAddr,
}

fn parse_addr(m: netlink::Message<'_>) -> io::Result<Option<Addr>> {
    if m.kind != netlink::RTM_NEWADDR {
        return Ok(None);
    }
    let b = m.body;
    // struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32.
    let (Some(&family), Some(&prefix), Some(index)) = (b.first(), b.get(1), netlink::u32_at(b, 4))
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed ifaddrmsg",
        ));
    };
    let (mut local, mut address) = (None, None);
    for a in netlink::attrs(b, 8) {
        let (kind, p) = a?;
        match kind {
            IFA_LOCAL => local = Some(p),
            IFA_ADDRESS => address = Some(p),
            _ => {}
        }
    }
    // Go's net package prefers IFA_LOCAL (the local end of point-to-point links).
    let Some(p) = local.or(address) else {
        return Ok(None);
    };
    let ip = match i32::from(family) {
        libc::AF_INET => p
            .get(..4)
            .and_then(|p| <[u8; 4]>::try_from(p).ok())
            .map(IpAddr::from),
        libc::AF_INET6 => p
            .get(..16)
            .and_then(|p| <[u8; 16]>::try_from(p).ok())
            .map(IpAddr::from),
        _ => None,
    };
    Ok(ip.map(|ip| Addr { index, prefix, ip }))
}

fn addrs() -> io::Result<Vec<Addr>> {
    // struct ifaddrmsg, all zero: every family.
    netlink::dump(
        netlink::Protocol::Route,
        netlink::RTM_GETADDR,
        &[0u8; 8],
        parse_addr,
    )
}

/// Go's net.IP classification for node_network_address_info's scope label.
fn scope(ip: IpAddr) -> &'static str {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            let link_local_mc = o[0] == 224 && o[1] == 0 && o[2] == 0;
            if a.is_loopback() || a.is_link_local() || link_local_mc {
                "link-local"
            } else if a.is_broadcast() || a.is_unspecified() || a.is_multicast() {
                ""
            } else {
                "global"
            }
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            let link_local_uc = o[0] == 0xfe && o[1] & 0xc0 == 0x80;
            if a.is_loopback() || link_local_uc || (o[0] == 0xff && o[1] & 0x0f == 0x02) {
                "link-local"
            } else if o[0] == 0xff && o[1] & 0x0f == 0x01 {
                "interface-local"
            } else if a.is_unspecified() || o[0] == 0xff {
                ""
            } else {
                "global"
            }
        }
    }
}

// ---- collector ---------------------------------------------------------------------------

/// One device's counters that the NicErrors rule reads, under node_exporter's (legacy) names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Nic {
    pub device: String,
    pub receive_packets: u64,
    pub transmit_packets: u64,
    pub receive_errs: u64,
    pub transmit_errs: u64,
    /// Dropped, missed included.
    pub receive_drop: u64,
    pub transmit_drop: u64,
    pub receive_fifo: u64,
}

impl Nic {
    /// From a device's counters with legacy names (after [`legacy`]).
    fn from_legacy(device: String, stats: &Stats) -> Nic {
        let get = |k: &str| stats.get(k).copied().unwrap_or(0);
        Nic {
            receive_packets: get("receive_packets"),
            transmit_packets: get("transmit_packets"),
            receive_errs: get("receive_errs"),
            transmit_errs: get("transmit_errs"),
            receive_drop: get("receive_drop"),
            transmit_drop: get("transmit_drop"),
            receive_fifo: get("receive_fifo"),
            device,
        }
    }
}

/// Reads per-device counters as the collector is configured: over netlink or from
/// /proc/net/dev, with the device filters applied.
pub struct Reader {
    proc_dev: PathBuf,
    netlink: bool,
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Reader {
    pub fn new(opts: &Options) -> anyhow::Result<Reader> {
        let include = util::optional_regex(
            &opts.netdev_device_include,
            "collector.netdev.device-include",
        )?;
        let exclude = util::optional_regex(
            &opts.netdev_device_exclude,
            "collector.netdev.device-exclude",
        )?;
        anyhow::ensure!(
            include.is_none() || exclude.is_none(),
            "device-exclude & device-include are mutually exclusive"
        );
        Ok(Reader {
            proc_dev: opts.procfs.join("net/dev"),
            netlink: opts.netdev_netlink && !opts.no_netdev_netlink,
            include,
            exclude,
        })
    }

    fn ignored(&self, dev: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.is_match(dev))
            || self.include.as_ref().is_some_and(|r| !r.is_match(dev))
    }

    /// Each device's counters under node_exporter's detailed keys (netlink) or its /proc/net/dev
    /// keys, filtered.
    fn read(&self) -> anyhow::Result<Vec<(String, Stats)>> {
        let mut devs = if !self.netlink {
            parse_proc(&util::read(&self.proc_dev)?)
                .with_context(|| format!("parsing {}", self.proc_dev.display()))?
        } else {
            links()
                .context("couldn't get netstats: netlink link dump")?
                .into_iter()
                .filter_map(|l| {
                    let s = l.stats?;
                    Some((l.name, LINK_STATS.iter().copied().zip(s).collect()))
                })
                .collect()
        };
        devs.retain(|(dev, _)| !self.ignored(dev));
        Ok(devs)
    }

    /// The error, drop and packet counters of every device (the NicErrors rule's input).
    pub fn nics(&self) -> anyhow::Result<Vec<Nic>> {
        Ok(self
            .read()?
            .into_iter()
            .map(|(dev, mut stats)| {
                legacy(&mut stats);
                Nic::from_legacy(dev, &stats)
            })
            .collect())
    }
}

struct Netdev {
    reader: Reader,
    detailed: bool,
    address_info: bool,
    /// Each statistic's family name and help, made once.
    names: util::Names,
}

impl Netdev {
    /// Families from per-device stats (legacy names unless detailed).
    fn families(&self, mut devs: Vec<(String, Stats)>) -> Vec<Family> {
        // In the order /metrics lists them, so that the encoder finds them sorted (stable: of
        // two entries for one device the first still wins).
        devs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut fams: BTreeMap<&'static str, Family> = BTreeMap::new();
        for (dev, mut stats) in devs {
            if !self.detailed {
                legacy(&mut stats);
            }
            // One label set for the device's many series.
            let set = super::labels(&[("device", &dev)]);
            for (key, v) in stats {
                fams.entry(key)
                    .or_insert_with(|| {
                        let (name, help) = self.names.get(key, || {
                            (
                                format!("node_network_{key}_total"),
                                format!("Network device statistic {key}."),
                            )
                        });
                        Family::new(name, help, MetricType::Counter)
                    })
                    .push_labels(&set, v as f64);
            }
        }
        fams.into_values().collect()
    }
}

fn address_family() -> anyhow::Result<Family> {
    let names: BTreeMap<u32, String> = links()
        .context("could not get network interfaces")?
        .into_iter()
        .map(|l| (l.index, l.name))
        .collect();
    let mut f = Family::new(
        "node_network_address_info",
        "node network address by device",
        MetricType::Gauge,
    );
    for a in addrs().context("could not get network addresses")? {
        let Some(dev) = names.get(&a.index) else {
            continue;
        };
        f.push(
            &[
                ("device", dev),
                ("address", &util::go_ip_string(a.ip)),
                ("netmask", &a.prefix.to_string()),
                ("scope", scope(a.ip)),
            ],
            1.0,
        );
    }
    Ok(f)
}

impl Collector for Netdev {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let devs = self.reader.read()?;
        out.extend(self.families(devs));
        if self.address_info {
            out.push(address_family()?);
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Netdev {
        reader: Reader::new(opts)?,
        detailed: opts.netdev_detailed,
        address_info: opts.netdev_address_info,
        names: Default::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(flags: &[&str]) -> Options {
        Options::from_flags(flags.iter().map(|s| s.to_string())).unwrap()
    }

    const DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 9000000    7000    2    3    4     5          6        11  8000000    6000    1    7    8     9      10         12
";

    fn collect(root: &std::path::Path, flags: &[&str]) -> anyhow::Result<Vec<Family>> {
        let mut f = vec![format!("--path.procfs={}", root.display())];
        f.extend(flags.iter().map(|s| s.to_string()));
        let c = build(&Options::from_flags(f).unwrap())?;
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out)
    }

    fn value(fams: &[Family], name: &str, dev: &str) -> Option<f64> {
        fams.iter()
            .find(|f| f.name == name)?
            .samples
            .iter()
            .find(|s| s.labels[..] == [(crate::collect::Text::from("device"), dev.to_string())])
            .map(|s| s.value)
    }

    #[test]
    fn proc_net_dev_as_node_exporter_names_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(d.path().join("net/dev"), DEV).unwrap();
        let f = collect(d.path(), &["--collector.netdev.netlink=false"]).unwrap();
        let names: Vec<&str> = f.iter().map(|f| &*f.name).collect();
        assert_eq!(names.len(), 16, "{names:?}");
        assert!(!names.contains(&"node_network_receive_nohandler_total"));
        for (name, v) in [
            ("node_network_receive_bytes_total", 9e6),
            ("node_network_receive_errs_total", 2.0),
            ("node_network_receive_drop_total", 3.0),
            ("node_network_receive_fifo_total", 4.0),
            ("node_network_receive_frame_total", 5.0),
            ("node_network_receive_compressed_total", 6.0),
            ("node_network_receive_multicast_total", 11.0),
            ("node_network_transmit_errs_total", 1.0),
            ("node_network_transmit_drop_total", 7.0),
            ("node_network_transmit_fifo_total", 8.0),
            ("node_network_transmit_colls_total", 9.0),
            ("node_network_transmit_carrier_total", 10.0),
            ("node_network_transmit_compressed_total", 12.0),
        ] {
            assert_eq!(value(&f, name, "eth0"), Some(v), "{name}");
        }
        let fam = f
            .iter()
            .find(|f| f.name == "node_network_receive_drop_total");
        assert_eq!(
            fam.map(|f| (&*f.help, f.kind)),
            Some((
                "Network device statistic receive_drop.",
                MetricType::Counter
            ))
        );
        // Detailed names keep the procfs keys.
        let f = collect(
            d.path(),
            &[
                "--no-collector.netdev.netlink",
                "--collector.netdev.enable-detailed-metrics",
            ],
        )
        .unwrap();
        assert_eq!(
            value(&f, "node_network_receive_errors_total", "eth0"),
            Some(2.0)
        );
        assert_eq!(
            value(&f, "node_network_transmit_dropped_total", "eth0"),
            Some(7.0)
        );
    }

    #[test]
    fn device_filters_and_their_exclusion() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(d.path().join("net/dev"), DEV).unwrap();
        let f = collect(
            d.path(),
            &[
                "--collector.netdev.netlink=false",
                "--collector.netdev.device-exclude=^lo$",
            ],
        )
        .unwrap();
        assert!(f
            .iter()
            .all(|f| f.samples.len() == 1 && f.samples[0].labels[0].1 == "eth0"));
        let f = collect(
            d.path(),
            &[
                "--collector.netdev.netlink=false",
                "--collector.netdev.device-include=^lo$",
            ],
        )
        .unwrap();
        assert!(f
            .iter()
            .all(|f| f.samples.len() == 1 && f.samples[0].labels[0].1 == "lo"));
        assert!(build(&opts(&[
            "--collector.netdev.device-include=a",
            "--collector.netdev.device-exclude=b"
        ]))
        .is_err());
    }

    #[test]
    fn missing_or_malformed_proc_net_dev_fails() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(d.path(), &["--collector.netdev.netlink=false"]).is_err());
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        let bad = format!("{DEV}  eth1: 1 2 3\n");
        std::fs::write(d.path().join("net/dev"), bad).unwrap();
        assert!(collect(d.path(), &["--collector.netdev.netlink=false"]).is_err());
        let bad = format!("{DEV}  eth1: 1 2 3 x 5 6 7 8 9 10 11 12 13 14 15 16\n");
        std::fs::write(d.path().join("net/dev"), bad).unwrap();
        assert!(collect(d.path(), &["--collector.netdev.netlink=false"]).is_err());
    }

    #[test]
    fn legacy_folds_detailed_keys_like_the_kernel() {
        let mut m: Stats = LINK_STATS.iter().copied().zip(1..=24).collect();
        legacy(&mut m);
        let want: Stats = [
            ("receive_packets", 1),
            ("transmit_packets", 2),
            ("receive_bytes", 3),
            ("transmit_bytes", 4),
            ("receive_errs", 5),
            ("transmit_errs", 6),
            ("receive_drop", 7 + 16),
            ("transmit_drop", 8),
            ("receive_multicast", 9),
            ("transmit_colls", 10),
            ("receive_frame", 14 + 11 + 12 + 13),
            ("receive_fifo", 15),
            ("transmit_carrier", 18 + 17 + 20 + 21),
            ("transmit_fifo", 19),
            ("receive_compressed", 22),
            ("transmit_compressed", 23),
            ("receive_nohandler", 24),
        ]
        .into_iter()
        .collect();
        assert_eq!(m, want);
    }

    #[test]
    fn netlink_matches_proc_net_dev_of_this_namespace() {
        // The same namespace, read both ways: loopback's error and drop counters agree and
        // its byte counter only grows between the readings.
        let f = collect(std::path::Path::new("/proc"), &[]).unwrap();
        let Some(nl) = value(&f, "node_network_receive_bytes_total", "lo") else {
            return; // no loopback in this sandbox
        };
        assert_eq!(
            f.len(),
            17,
            "{:?}",
            f.iter().map(|f| &f.name).collect::<Vec<_>>()
        );
        let p = collect(
            std::path::Path::new("/proc"),
            &["--collector.netdev.netlink=false"],
        )
        .unwrap();
        let pb = value(&p, "node_network_receive_bytes_total", "lo").unwrap();
        assert!(pb >= nl);
        for name in [
            "node_network_receive_errs_total",
            "node_network_transmit_carrier_total",
        ] {
            assert_eq!(value(&f, name, "lo"), value(&p, name, "lo"), "{name}");
        }
    }

    #[test]
    fn scopes_and_addresses_as_go_prints_them() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (a, s) in [
            ("127.0.0.1", "link-local"),
            ("169.254.1.1", "link-local"),
            ("10.0.0.1", "global"),
            ("8.8.8.8", "global"),
            ("224.0.0.1", "link-local"),
            ("239.1.1.1", ""),
            ("0.0.0.0", ""),
            ("::1", "link-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "link-local"),
            ("ff01::1", "interface-local"),
            ("2001:db8::1", "global"),
            ("fd00::1", "global"),
            ("::", ""),
            ("::ffff:10.1.2.3", "global"),
        ] {
            assert_eq!(scope(ip(a)), s, "{a}");
        }
        assert_eq!(util::go_ip_string(ip("::ffff:10.1.2.3")), "10.1.2.3");
        assert_eq!(
            util::go_ip_string(ip("2001:db8:0:0:1:0:0:1")),
            "2001:db8::1:0:0:1"
        );
        assert_eq!(
            util::go_ip_string(ip("2001:db8:0:1:1:1:1:1")),
            "2001:db8:0:1:1:1:1:1"
        );
    }

    #[test]
    fn address_info_lists_loopback() {
        let f = collect(
            std::path::Path::new("/proc"),
            &["--collector.netdev.address-info"],
        )
        .unwrap();
        let a = f
            .iter()
            .find(|f| f.name == "node_network_address_info")
            .unwrap();
        if let Some(s) = a
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|l| l.1 == "127.0.0.1"))
        {
            let l: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (&**k, v.as_str())).collect();
            assert_eq!(
                l,
                [
                    ("device", "lo"),
                    ("address", "127.0.0.1"),
                    ("netmask", "8"),
                    ("scope", "link-local")
                ]
            );
        }
    }
}
