//! netclass collector, as node_exporter 1.12: per network device, the attributes of
//! `<sysfs>/class/net/<device>/` (the default), or with `--collector.netclass.netlink` an
//! RTM_GETLINK dump plus ethtool's generic-netlink link modes (speed, duplex), with the three
//! attributes netlink lacks (addr_assign_type, dev_id, name_assign_type) from sysfs.
//!
//! sysfs path, as procfs reads it: each regular file is read with one 128-byte `read()`; a
//! file that is missing, not permitted, unsupported or answers EINVAL (a down link's `speed`)
//! is left out; any other read error fails the collector; a number that does not parse (Go's
//! `ParseInt` with base 0, so `0x1003` is read as hex) counts as 0. A device listed in
//! class/net whose directory is gone when it is read makes the whole collector report "no
//! data" for that scrape (success 0), as node_exporter does. `--collector.netclass.ignored-devices`
//! (default `^$`) drops devices by name; `--collector.netclass.ignore-invalid-speed` drops a
//! negative speed (unknown) instead of exporting -125000.
//!
//! netlink path, as node_exporter's: no `adminstate` label on node_network_info (and its help
//! differs), `node_network_altnames_info`, `dormant` repeats the link mode (node_exporter
//! reads IFLA_LINKMODE for both), `iface_link` is the device's own index when IFLA_LINK is
//! absent, an unknown speed (0xffffffff Mb/s) is exported as 536870911875000 bytes. Without
//! ethtool netlink (kernels before 5.6) speed and duplex are left out. Unlike node_exporter,
//! the sysfs attributes come from `--path.sysfs` rather than a fixed `/sys`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use clap::ArgAction;
use regex::Regex;

use super::attr::{Attr, Dir, Listing};
use super::{labels, netlink, util, Collector, Family, Labels, MetricType, Options};

#[derive(Debug, Clone, clap::Args)]
#[group(id = "netclass-flags")]
pub struct Flags {
    /// Regexp of net devices to ignore for netclass collector.
    #[arg(
        id = "collector.netclass.ignored-devices",
        long = "collector.netclass.ignored-devices",
        default_value = "^$"
    )]
    pub ignored_devices: String,
    /// Ignore devices where the speed is invalid. This will be the default behavior in 2.x.
    #[arg(id = "collector.netclass.ignore-invalid-speed", long = "collector.netclass.ignore-invalid-speed", num_args = 0..=1,
          require_equals = true, default_value_t = false, default_missing_value = "true",
          action = ArgAction::Set)]
    pub ignore_invalid_speed: bool,
    #[arg(
        id = "no-collector.netclass.ignore-invalid-speed",
        long = "no-collector.netclass.ignore-invalid-speed",
        hide = true
    )]
    pub no_ignore_invalid_speed: bool,
    /// Use netlink to gather stats instead of /proc/net/dev.
    #[arg(id = "collector.netclass.netlink", long = "collector.netclass.netlink", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = ArgAction::Set)]
    pub netlink: bool,
    #[arg(
        id = "no-collector.netclass.netlink",
        long = "no-collector.netclass.netlink",
        hide = true
    )]
    pub no_netlink: bool,
    /// Expose the statistics for each network device, replacing netdev collector (netlink).
    #[arg(id = "collector.netclass_rtnl.with-stats", long = "collector.netclass_rtnl.with-stats", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = ArgAction::Set)]
    pub with_stats: bool,
    #[arg(
        id = "no-collector.netclass_rtnl.with-stats",
        long = "no-collector.netclass_rtnl.with-stats",
        hide = true
    )]
    pub no_with_stats: bool,
}

/// What /sys/class/net/<device>/ says (each attribute absent when unreadable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub addr_assign_type: Option<i64>,
    pub address: String,
    pub broadcast: String,
    pub carrier: Option<i64>,
    pub carrier_changes: Option<i64>,
    pub carrier_up_count: Option<i64>,
    pub carrier_down_count: Option<i64>,
    pub dev_id: Option<i64>,
    pub dormant: Option<i64>,
    pub duplex: String,
    pub flags: Option<i64>,
    pub ifalias: String,
    pub ifindex: Option<i64>,
    pub iflink: Option<i64>,
    pub link_mode: Option<i64>,
    pub mtu: Option<i64>,
    pub name_assign_type: Option<i64>,
    pub netdev_group: Option<i64>,
    pub operstate: String,
    pub speed: Option<i64>,
    pub tx_queue_len: Option<i64>,
    pub kind: Option<i64>,
}

/// procfs's ValueParser.PInt64: a number that does not parse is 0, not absent.
fn num(v: &str) -> Option<i64> {
    Some(util::go_parse_int(v, 0).unwrap_or(0))
}

/// Sets one attribute from its file's (trimmed) contents; unknown names are ignored.
pub fn set_attr(i: &mut Iface, name: &str, v: &str) {
    match name {
        "addr_assign_type" => i.addr_assign_type = num(v),
        "address" => i.address = v.to_string(),
        "broadcast" => i.broadcast = v.to_string(),
        "carrier" => i.carrier = num(v),
        "carrier_changes" => i.carrier_changes = num(v),
        "carrier_up_count" => i.carrier_up_count = num(v),
        "carrier_down_count" => i.carrier_down_count = num(v),
        "dev_id" => i.dev_id = num(v),
        "dormant" => i.dormant = num(v),
        "duplex" => i.duplex = v.to_string(),
        "flags" => i.flags = num(v),
        "ifalias" => i.ifalias = v.to_string(),
        "ifindex" => i.ifindex = num(v),
        "iflink" => i.iflink = num(v),
        "link_mode" => i.link_mode = num(v),
        "mtu" => i.mtu = num(v),
        "name_assign_type" => i.name_assign_type = num(v),
        "netdev_group" => i.netdev_group = num(v),
        "operstate" => i.operstate = v.to_string(),
        "speed" => i.speed = num(v),
        "tx_queue_len" => i.tx_queue_len = num(v),
        "type" => i.kind = num(v),
        _ => {}
    }
}

/// The attributes node_exporter exports (others in the directory are not read).
const ATTRS: [&str; 22] = [
    "addr_assign_type",
    "address",
    "broadcast",
    "carrier",
    "carrier_changes",
    "carrier_up_count",
    "carrier_down_count",
    "dev_id",
    "dormant",
    "duplex",
    "flags",
    "ifalias",
    "ifindex",
    "iflink",
    "link_mode",
    "mtu",
    "name_assign_type",
    "netdev_group",
    "operstate",
    "speed",
    "tx_queue_len",
    "type",
];

/// Errors procfs leaves an attribute out for.
fn ignorable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
    )
}

/// procfs's SysReadFile: one `read()` of at most 128 bytes, trimmed.
fn sys_read(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 128];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Reads `names` of one device with `read`, leaving out the ignorable failures.
pub fn read_attrs(
    iface: &mut Iface,
    names: &[&str],
    mut read: impl FnMut(&str) -> io::Result<String>,
) -> anyhow::Result<()> {
    for name in names {
        match read(name) {
            Ok(v) => set_attr(iface, name, &v),
            Err(e) if ignorable(&e) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("failed to read {}/{name}", iface.name))
            }
        }
    }
    Ok(())
}

/// The attributes of one device that do not change while it exists
/// (Documentation/ABI/testing/sysfs-class-net): read once. A rename gives the device a new
/// name in class/net, and so a new set-up.
const FIXED: [&str; 3] = ["dev_id", "ifindex", "name_assign_type"];

/// One attribute of one device, as set up.
enum NetAttr {
    Fixed(String),
    Read(Attr),
}

/// One device of class/net and its attributes (None: to be set up). A device's attributes
/// are fixed when it registers: its directory is read when the device appears, and again
/// after a read error.
struct NetDev {
    name: String,
    dir: PathBuf,
    attrs: Option<Vec<(&'static str, NetAttr)>>,
}

/// class/net as last set up.
struct NetCache {
    class: Dir,
    seen: Option<Listing>,
    devs: Vec<NetDev>,
}

/// Sets up one device directory: its regular files that node_exporter exports, held open, the
/// fixed ones read. A file that cannot be opened or read for a reason procfs ignores is left
/// out (until the directory changes); any other error fails this scrape.
fn setup_iface(dir: &Path, name: &str) -> anyhow::Result<Vec<(&'static str, NetAttr)>> {
    let mut attrs = Vec::with_capacity(ATTRS.len());
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Some(a) = ATTRS.iter().find(|a| e.file_name() == **a) else {
            continue;
        };
        let got = if FIXED.contains(a) {
            sys_read(&e.path()).map(NetAttr::Fixed)
        } else {
            Attr::open(&e.path()).map(NetAttr::Read)
        };
        match got {
            Ok(v) => attrs.push((*a, v)),
            Err(e) if ignorable(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("failed to read {name}/{a}")),
        }
    }
    Ok(attrs)
}

/// This scrape's values of a device's attributes.
fn read_iface(name: &str, attrs: &[(&'static str, NetAttr)]) -> anyhow::Result<Iface> {
    let d = name;
    let mut i = Iface {
        name: name.to_string(),
        ..Iface::default()
    };
    let mut buf = [0u8; 128];
    for (name, a) in attrs {
        match a {
            NetAttr::Fixed(v) => set_attr(&mut i, name, v),
            NetAttr::Read(attr) => match attr.read(&mut buf) {
                Ok(raw) => set_attr(&mut i, name, String::from_utf8_lossy(raw).trim()),
                Err(e) if ignorable(&e.err) => {}
                Err(e) => return Err(e.err).with_context(|| format!("failed to read {d}/{name}")),
            },
        }
    }
    Ok(i)
}

/// Device names in class/net (everything but regular files: devices are symlinks), sorted.
fn devices(class: &Path) -> anyhow::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(class).with_context(|| format!("reading {}", class.display()))? {
        let e = e.with_context(|| format!("reading {}", class.display()))?;
        if e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        v.push(e.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}

/// Property → (family name, help), as node_exporter's getFieldDesc builds them.
const PROPS: [(&str, &str, &str); 41] = [
    (
        "address_assign_type",
        "node_network_address_assign_type",
        "Network device property: address_assign_type",
    ),
    (
        "carrier",
        "node_network_carrier",
        "Network device property: carrier",
    ),
    (
        "carrier_changes_total",
        "node_network_carrier_changes_total",
        "Network device property: carrier_changes_total",
    ),
    (
        "carrier_up_changes_total",
        "node_network_carrier_up_changes_total",
        "Network device property: carrier_up_changes_total",
    ),
    (
        "carrier_down_changes_total",
        "node_network_carrier_down_changes_total",
        "Network device property: carrier_down_changes_total",
    ),
    (
        "device_id",
        "node_network_device_id",
        "Network device property: device_id",
    ),
    (
        "dormant",
        "node_network_dormant",
        "Network device property: dormant",
    ),
    (
        "flags",
        "node_network_flags",
        "Network device property: flags",
    ),
    (
        "iface_id",
        "node_network_iface_id",
        "Network device property: iface_id",
    ),
    (
        "iface_link",
        "node_network_iface_link",
        "Network device property: iface_link",
    ),
    (
        "iface_link_mode",
        "node_network_iface_link_mode",
        "Network device property: iface_link_mode",
    ),
    (
        "mtu_bytes",
        "node_network_mtu_bytes",
        "Network device property: mtu_bytes",
    ),
    (
        "name_assign_type",
        "node_network_name_assign_type",
        "Network device property: name_assign_type",
    ),
    (
        "net_dev_group",
        "node_network_net_dev_group",
        "Network device property: net_dev_group",
    ),
    (
        "speed_bytes",
        "node_network_speed_bytes",
        "Network device property: speed_bytes",
    ),
    (
        "transmit_queue_length",
        "node_network_transmit_queue_length",
        "Network device property: transmit_queue_length",
    ),
    (
        "protocol_type",
        "node_network_protocol_type",
        "Network device property: protocol_type",
    ),
    (
        "receive_packets_total",
        "node_network_receive_packets_total",
        "Network device property: receive_packets_total",
    ),
    (
        "transmit_packets_total",
        "node_network_transmit_packets_total",
        "Network device property: transmit_packets_total",
    ),
    (
        "receive_bytes_total",
        "node_network_receive_bytes_total",
        "Network device property: receive_bytes_total",
    ),
    (
        "transmit_bytes_total",
        "node_network_transmit_bytes_total",
        "Network device property: transmit_bytes_total",
    ),
    (
        "receive_errors_total",
        "node_network_receive_errors_total",
        "Network device property: receive_errors_total",
    ),
    (
        "transmit_errors_total",
        "node_network_transmit_errors_total",
        "Network device property: transmit_errors_total",
    ),
    (
        "receive_dropped_total",
        "node_network_receive_dropped_total",
        "Network device property: receive_dropped_total",
    ),
    (
        "transmit_dropped_total",
        "node_network_transmit_dropped_total",
        "Network device property: transmit_dropped_total",
    ),
    (
        "multicast_total",
        "node_network_multicast_total",
        "Network device property: multicast_total",
    ),
    (
        "collisions_total",
        "node_network_collisions_total",
        "Network device property: collisions_total",
    ),
    (
        "receive_length_errors_total",
        "node_network_receive_length_errors_total",
        "Network device property: receive_length_errors_total",
    ),
    (
        "receive_over_errors_total",
        "node_network_receive_over_errors_total",
        "Network device property: receive_over_errors_total",
    ),
    (
        "receive_crc_errors_total",
        "node_network_receive_crc_errors_total",
        "Network device property: receive_crc_errors_total",
    ),
    (
        "receive_frame_errors_total",
        "node_network_receive_frame_errors_total",
        "Network device property: receive_frame_errors_total",
    ),
    (
        "receive_fifo_errors_total",
        "node_network_receive_fifo_errors_total",
        "Network device property: receive_fifo_errors_total",
    ),
    (
        "receive_missed_errors_total",
        "node_network_receive_missed_errors_total",
        "Network device property: receive_missed_errors_total",
    ),
    (
        "transmit_aborted_errors_total",
        "node_network_transmit_aborted_errors_total",
        "Network device property: transmit_aborted_errors_total",
    ),
    (
        "transmit_carrier_errors_total",
        "node_network_transmit_carrier_errors_total",
        "Network device property: transmit_carrier_errors_total",
    ),
    (
        "transmit_fifo_errors_total",
        "node_network_transmit_fifo_errors_total",
        "Network device property: transmit_fifo_errors_total",
    ),
    (
        "transmit_heartbeat_errors_total",
        "node_network_transmit_heartbeat_errors_total",
        "Network device property: transmit_heartbeat_errors_total",
    ),
    (
        "transmit_window_errors_total",
        "node_network_transmit_window_errors_total",
        "Network device property: transmit_window_errors_total",
    ),
    (
        "receive_compressed_total",
        "node_network_receive_compressed_total",
        "Network device property: receive_compressed_total",
    ),
    (
        "transmit_compressed_total",
        "node_network_transmit_compressed_total",
        "Network device property: transmit_compressed_total",
    ),
    (
        "receive_nohandler_total",
        "node_network_receive_nohandler_total",
        "Network device property: receive_nohandler_total",
    ),
];

/// Families keyed by property name, created on first use.
/// The property families, by their place in [`PROPS`], created by their first sample.
struct Props(Vec<Option<Family>>);

impl Props {
    fn new() -> Props {
        Props((0..PROPS.len()).map(|_| None).collect())
    }

    /// A device's property; `dev` is the device's label set (one for all its series).
    fn push(&mut self, name: &str, kind: MetricType, dev: &Labels, v: Option<f64>) {
        let Some(v) = v else { return };
        let Some(at) = PROPS.iter().position(|p| p.0 == name) else {
            return;
        };
        let (_, full, help) = PROPS[at];
        self.0[at]
            .get_or_insert_with(|| Family::new(full, help, kind))
            .push_labels(dev, v);
    }

    fn families(self) -> impl Iterator<Item = Family> {
        self.0.into_iter().flatten()
    }
}

fn opt(v: Option<i64>) -> Option<f64> {
    v.map(|v| v as f64)
}

/// Go's `getAdminState`: "up" when IFF_UP is set, "unknown" without a flags file.
fn admin_state(flags: Option<i64>) -> &'static str {
    match flags {
        None => "unknown",
        Some(f) if f & 1 == 1 => "up",
        Some(_) => "down",
    }
}

fn render_sysfs(ifaces: &[Iface], ignore_invalid_speed: bool, out: &mut Vec<Family>) {
    use MetricType::{Counter, Gauge};
    let mut up = Family::new(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
        Gauge,
    );
    let mut info = Family::new(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        Gauge,
    );
    let mut p = Props::new();
    for i in ifaces {
        let name = i.name.as_str();
        let d = &labels(&[("device", name)]);
        up.push_labels(d, if i.operstate == "up" { 1.0 } else { 0.0 });
        info.push(
            &[
                ("device", name),
                ("address", &i.address),
                ("broadcast", &i.broadcast),
                ("duplex", &i.duplex),
                ("operstate", &i.operstate),
                ("adminstate", admin_state(i.flags)),
                ("ifalias", &i.ifalias),
            ],
            1.0,
        );
        p.push("address_assign_type", Gauge, d, opt(i.addr_assign_type));
        p.push("carrier", Gauge, d, opt(i.carrier));
        p.push("carrier_changes_total", Counter, d, opt(i.carrier_changes));
        p.push(
            "carrier_up_changes_total",
            Counter,
            d,
            opt(i.carrier_up_count),
        );
        p.push(
            "carrier_down_changes_total",
            Counter,
            d,
            opt(i.carrier_down_count),
        );
        p.push("device_id", Gauge, d, opt(i.dev_id));
        p.push("dormant", Gauge, d, opt(i.dormant));
        p.push("flags", Gauge, d, opt(i.flags));
        p.push("iface_id", Gauge, d, opt(i.ifindex));
        p.push("iface_link", Gauge, d, opt(i.iflink));
        p.push("iface_link_mode", Gauge, d, opt(i.link_mode));
        p.push("mtu_bytes", Gauge, d, opt(i.mtu));
        p.push("name_assign_type", Gauge, d, opt(i.name_assign_type));
        p.push("net_dev_group", Gauge, d, opt(i.netdev_group));
        if let Some(speed) = i.speed {
            // Some devices report -1 (unknown).
            if speed >= 0 || !ignore_invalid_speed {
                let bytes = speed.wrapping_mul(1_000_000) / 8;
                p.push("speed_bytes", Gauge, d, Some(bytes as f64));
            }
        }
        p.push("transmit_queue_length", Gauge, d, opt(i.tx_queue_len));
        p.push("protocol_type", Gauge, d, opt(i.kind));
    }
    out.extend([up, info]);
    out.extend(p.families());
}

const OPERSTATES: [&str; 7] = [
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

/// Go's ethtool Duplex.String().
fn duplex_name(d: u8) -> String {
    match d {
        0 => "Half".into(),
        1 => "Full".into(),
        255 => "Unknown".into(),
        n => format!("Duplex({n})"),
    }
}

/// The `--collector.netclass_rtnl.with-stats` families: (name, index in rtnl_link_stats64).
const STATS: [(&str, usize); 24] = [
    ("receive_packets_total", 0),
    ("transmit_packets_total", 1),
    ("receive_bytes_total", 2),
    ("transmit_bytes_total", 3),
    ("receive_errors_total", 4),
    ("transmit_errors_total", 5),
    ("receive_dropped_total", 6),
    ("transmit_dropped_total", 7),
    ("multicast_total", 8),
    ("collisions_total", 9),
    ("receive_length_errors_total", 10),
    ("receive_over_errors_total", 11),
    ("receive_crc_errors_total", 12),
    ("receive_frame_errors_total", 13),
    ("receive_fifo_errors_total", 14),
    ("receive_missed_errors_total", 15),
    ("transmit_aborted_errors_total", 16),
    ("transmit_carrier_errors_total", 17),
    ("transmit_fifo_errors_total", 18),
    ("transmit_heartbeat_errors_total", 19),
    ("transmit_window_errors_total", 20),
    ("receive_compressed_total", 21),
    ("transmit_compressed_total", 22),
    ("receive_nohandler_total", 23),
];

/// The netlink path's inputs: links (already filtered), ethtool link modes (None when the
/// kernel has no ethtool netlink), and the sysfs attributes of each link.
fn render_netlink(
    links: &[(netlink::Link, Iface)],
    modes: Option<&[netlink::LinkModes]>,
    with_stats: bool,
    out: &mut Vec<Family>,
) {
    use MetricType::{Counter, Gauge};
    let mut p = Props::new();
    for lm in modes.unwrap_or_default() {
        // Go's int(uint32) on 64 bits: never negative, so always exported.
        let bytes = i64::from(lm.speed) * 1_000_000 / 8;
        p.push(
            "speed_bytes",
            Gauge,
            &labels(&[("device", &lm.name)]),
            Some(bytes as f64),
        );
    }
    let mut up = Family::new(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
        Gauge,
    );
    let mut info = Family::new(
        "node_network_info",
        "Non-numeric data of <iface>, value is always 1.",
        Gauge,
    );
    let mut alt = Family::new(
        "node_network_altnames_info",
        "Non-numeric data of <iface> altname, value is always 1.",
        Gauge,
    );
    for (l, s) in links {
        let name = l.name.as_deref().unwrap_or("");
        let d = &labels(&[("device", name)]);
        let operstate = l.operstate.unwrap_or(0);
        up.push_labels(d, if operstate == 6 { 1.0 } else { 0.0 });
        let duplex = modes
            .and_then(|m| m.iter().find(|m| m.name == name))
            .map(|m| duplex_name(m.duplex))
            .unwrap_or_default();
        let hw = |a: &Option<netlink::HwAddr>| a.map(|a| a.to_go_string()).unwrap_or_default();
        info.push(
            &[
                ("device", name),
                ("address", &hw(&l.address)),
                ("broadcast", &hw(&l.broadcast)),
                ("duplex", &duplex),
                (
                    "operstate",
                    OPERSTATES.get(usize::from(operstate)).unwrap_or(&"unknown"),
                ),
                ("ifalias", l.alias.as_deref().unwrap_or("")),
            ],
            1.0,
        );
        for a in l.alt_names.iter().filter(|a| !a.is_empty()) {
            alt.push(&[("altname", a), ("device", name)], 1.0);
        }
        let u = |v: Option<u32>| v.map(f64::from);
        p.push("address_assign_type", Gauge, d, opt(s.addr_assign_type));
        p.push("carrier", Gauge, d, l.carrier.map(f64::from));
        p.push("carrier_changes_total", Counter, d, u(l.carrier_changes));
        p.push("carrier_up_changes_total", Counter, d, u(l.carrier_up));
        p.push("carrier_down_changes_total", Counter, d, u(l.carrier_down));
        p.push("device_id", Gauge, d, opt(s.dev_id));
        p.push("flags", Gauge, d, Some(f64::from(l.flags)));
        p.push("iface_id", Gauge, d, Some(f64::from(l.index)));
        p.push("iface_link_mode", Gauge, d, l.linkmode.map(f64::from));
        p.push("dormant", Gauge, d, l.linkmode.map(f64::from));
        let link = l.link.filter(|v| *v > 0).unwrap_or(l.index);
        p.push("iface_link", Gauge, d, Some(f64::from(link)));
        p.push("mtu_bytes", Gauge, d, Some(f64::from(l.mtu.unwrap_or(0))));
        p.push("name_assign_type", Gauge, d, opt(s.name_assign_type));
        p.push("net_dev_group", Gauge, d, u(l.group));
        p.push("transmit_queue_length", Gauge, d, u(l.txqlen));
        p.push("protocol_type", Gauge, d, Some(f64::from(l.kind)));
        if with_stats {
            if let Some(st) = l.stats {
                for (name, i) in STATS {
                    p.push(name, Gauge, d, Some(st[i] as f64));
                }
            }
        }
    }
    out.extend([up, info, alt]);
    out.extend(p.families());
}

struct Netclass {
    sysfs_net: PathBuf,
    ignored: Regex,
    ignore_invalid_speed: bool,
    netlink: bool,
    with_stats: bool,
    cache: Mutex<NetCache>,
}

impl Netclass {
    /// The devices as they are now: class/net is listed on every scrape (a device that
    /// appears, goes or is renamed changes it) and the devices are set up again when it
    /// changes.
    fn refresh<'c>(&self, cache: &'c mut NetCache) -> anyhow::Result<&'c mut [NetDev]> {
        let listing = cache.class.listing()?;
        if cache.seen != Some(listing) {
            // Drop what is held before opening anew, so the budget counts each file once.
            cache.devs.clear();
            for name in devices(&self.sysfs_net)? {
                if self.ignored.is_match(&name) {
                    continue;
                }
                cache.devs.push(NetDev {
                    dir: self.sysfs_net.join(&name),
                    name,
                    attrs: None,
                });
            }
            cache.seen = Some(listing);
        }
        Ok(&mut cache.devs)
    }

    fn collect_sysfs(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // No class/net (or a device gone between the listing and its reading): no data.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let devs = self
            .refresh(&mut cache)
            .context("could not get net class info")?;
        let mut ifaces = Vec::with_capacity(devs.len());
        for d in devs.iter_mut() {
            if d.attrs.is_none() {
                d.attrs =
                    Some(setup_iface(&d.dir, &d.name).context("could not get net class info")?);
            }
            let attrs = d.attrs.as_deref().unwrap_or_default();
            match read_iface(&d.name, attrs) {
                Ok(i) => ifaces.push(i),
                Err(e) => {
                    // Gone, or changed: read the directory again next time.
                    d.attrs = None;
                    return Err(e).context("could not get net class info");
                }
            }
        }
        render_sysfs(&ifaces, self.ignore_invalid_speed, out);
        Ok(())
    }

    fn collect_netlink(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let modes = netlink::linkmodes().context("could not get link modes")?;
        let modes = modes.map(|m| {
            m.into_iter()
                .filter(|m| !self.ignored.is_match(&m.name))
                .collect::<Vec<_>>()
        });
        let links = netlink::links().context("could not get net class info")?;
        let mut relevant = Vec::with_capacity(links.len());
        for l in links {
            let name = l.name.clone().unwrap_or_default();
            if self.ignored.is_match(&name) {
                continue;
            }
            let mut s = Iface {
                name: name.clone(),
                ..Iface::default()
            };
            // Held by a per-device lock, not RTNL: cheap, unlike most sysfs attributes.
            let dir = self.sysfs_net.join(&name);
            read_attrs(
                &mut s,
                &["addr_assign_type", "dev_id", "name_assign_type"],
                |a| sys_read(&dir.join(a)),
            )
            .context("could not get sysfs device info")?;
            relevant.push((l, s));
        }
        render_netlink(&relevant, modes.as_deref(), self.with_stats, out);
        Ok(())
    }
}

impl Collector for Netclass {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        if self.netlink {
            self.collect_netlink(out)
        } else {
            self.collect_sysfs(out)
        }
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let f = &opts.netclass;
    Ok(Box::new(Netclass {
        sysfs_net: opts.sysfs.join("class/net"),
        ignored: Regex::new(&f.ignored_devices)
            .context("--collector.netclass.ignored-devices must be a regular expression")?,
        ignore_invalid_speed: f.ignore_invalid_speed && !f.no_ignore_invalid_speed,
        netlink: f.netlink && !f.no_netlink,
        with_stats: f.with_stats && !f.no_with_stats,
        cache: Mutex::new(NetCache {
            class: Dir::new(opts.sysfs.join("class/net")),
            seen: None,
            devs: Vec::new(),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    fn eth0(net: &Path) {
        for (a, v) in [
            ("addr_assign_type", "3"),
            ("address", "01:01:01:01:01:01"),
            ("broadcast", "ff:ff:ff:ff:ff:ff"),
            ("carrier", "1"),
            ("carrier_changes", "2"),
            ("carrier_up_count", "1"),
            ("carrier_down_count", "1"),
            ("dev_id", "0x20"),
            ("dormant", "1"),
            ("duplex", "full"),
            ("flags", "0x1303"),
            ("ifalias", "uplink \"a\""),
            ("ifindex", "2"),
            ("iflink", "2"),
            ("link_mode", "1"),
            ("mtu", "1500"),
            ("name_assign_type", "2"),
            ("netdev_group", "0"),
            ("operstate", "up"),
            ("speed", "1000"),
            ("tx_queue_len", "1000"),
            ("type", "1"),
            ("phys_port_id", "x"),
        ] {
            write(net, &format!("eth0/{a}"), &format!("{v}\n"));
        }
    }

    fn collect(sys: &Path, flags: &[&str]) -> anyhow::Result<Vec<Family>> {
        let mut f = vec![format!("--path.sysfs={}", sys.display())];
        f.extend(flags.iter().map(|s| s.to_string()));
        let mut out = Vec::new();
        build(&Options::from_flags(f).unwrap())?.collect(&mut out)?;
        Ok(out)
    }

    fn value(f: &[Family], name: &str, dev: &str) -> Option<f64> {
        f.iter()
            .find(|f| f.name == name)?
            .samples
            .iter()
            .find(|s| s.labels[0].1 == dev)
            .map(|s| s.value)
    }

    #[test]
    fn sysfs_attributes() {
        let d = tempfile::tempdir().unwrap();
        let net = d.path().join("class/net");
        eth0(&net);
        // A down device (speed unreadable), an unknown speed, garbage, a bonding_masters file.
        write(&net, "down0/operstate", "down\n");
        write(&net, "down0/flags", "0x1002\n");
        write(&net, "odd dev\"0/speed", "-1\n");
        write(&net, "odd dev\"0/mtu", "lots\n");
        write(&net, "bonding_masters", "bond0\n");
        let f = collect(d.path(), &[]).unwrap();
        assert_eq!(
            f.len(),
            19,
            "{:?}",
            f.iter().map(|f| &f.name).collect::<Vec<_>>()
        );
        for (name, dev, v) in [
            ("node_network_up", "eth0", 1.0),
            ("node_network_up", "down0", 0.0),
            ("node_network_flags", "eth0", 4867.0),
            ("node_network_device_id", "eth0", 32.0),
            ("node_network_speed_bytes", "eth0", 125_000_000.0),
            ("node_network_speed_bytes", "odd dev\"0", -125_000.0),
            ("node_network_mtu_bytes", "odd dev\"0", 0.0),
            ("node_network_carrier_changes_total", "eth0", 2.0),
            ("node_network_protocol_type", "eth0", 1.0),
        ] {
            assert_eq!(value(&f, name, dev), Some(v), "{name} {dev}");
        }
        assert_eq!(value(&f, "node_network_speed_bytes", "down0"), None);
        let cc = f
            .iter()
            .find(|f| f.name == "node_network_carrier_changes_total");
        assert_eq!(cc.unwrap().kind, MetricType::Counter);
        assert_eq!(
            cc.unwrap().help,
            "Network device property: carrier_changes_total"
        );
        let info = f.iter().find(|f| f.name == "node_network_info").unwrap();
        let l: Vec<(&str, &str)> = info.samples[1]
            .labels
            .iter()
            .map(|(k, v)| (&**k, v.as_str()))
            .collect();
        assert_eq!(
            l,
            [
                ("device", "eth0"),
                ("address", "01:01:01:01:01:01"),
                ("broadcast", "ff:ff:ff:ff:ff:ff"),
                ("duplex", "full"),
                ("operstate", "up"),
                ("adminstate", "up"),
                ("ifalias", "uplink \"a\""),
            ]
        );
        assert_eq!(info.samples[0].labels[5].1, "down");
        assert_eq!(info.samples[2].labels[5].1, "unknown");
        // Flags: invalid speeds dropped, devices ignored.
        let f = collect(
            d.path(),
            &[
                "--collector.netclass.ignore-invalid-speed",
                "--collector.netclass.ignored-devices=^down",
            ],
        )
        .unwrap();
        assert_eq!(value(&f, "node_network_speed_bytes", "odd dev\"0"), None);
        assert_eq!(value(&f, "node_network_up", "down0"), None);
    }

    #[test]
    fn read_errors_as_procfs_treats_them() {
        let mut i = Iface::default();
        let einval = || Err(io::Error::from_raw_os_error(libc::EINVAL));
        read_attrs(&mut i, &["speed", "mtu"], |a| {
            if a == "speed" {
                einval()
            } else {
                Ok("9000".into())
            }
        })
        .unwrap();
        assert_eq!((i.speed, i.mtu), (None, Some(9000)));
        for e in [libc::ENOENT, libc::EACCES, libc::EOPNOTSUPP] {
            read_attrs(&mut i, &["speed"], |_| Err(io::Error::from_raw_os_error(e))).unwrap();
        }
        assert!(
            read_attrs(&mut i, &["speed"], |_| Err(io::Error::from_raw_os_error(
                libc::EIO
            )))
            .is_err()
        );
        // A listed device whose directory vanished: no data for this scrape.
        let d = tempfile::tempdir().unwrap();
        assert!(collect(d.path(), &[]).is_err());
        let net = d.path().join("class/net");
        std::fs::create_dir_all(&net).unwrap();
        std::os::unix::fs::symlink(d.path().join("gone"), net.join("veth9")).unwrap();
        assert!(collect(d.path(), &[]).is_err());
        assert!(collect(d.path(), &["--collector.netclass.ignored-devices=veth"]).is_ok());
        assert!(build(
            &Options::from_flags(["--collector.netclass.ignored-devices=(".to_string()]).unwrap()
        )
        .is_err());
    }

    #[test]
    fn netlink_rendering() {
        let lo = netlink::Link {
            kind: 772,
            index: 1,
            flags: 0x10049,
            name: Some("lo".into()),
            mtu: Some(65536),
            operstate: Some(0),
            linkmode: Some(0),
            carrier: Some(1),
            txqlen: Some(1000),
            ..Default::default()
        };
        let veth = netlink::Link {
            kind: 1,
            index: 3,
            flags: 0x11043,
            name: Some("veth0".into()),
            mtu: Some(1500),
            link: Some(2),
            operstate: Some(6),
            linkmode: Some(1),
            alias: Some("a".into()),
            alt_names: vec!["".into(), "alt0".into()],
            group: Some(0),
            stats: Some([7; 24]),
            ..Default::default()
        };
        let s = Iface {
            addr_assign_type: Some(3),
            ..Iface::default()
        };
        let modes = [netlink::LinkModes {
            index: 3,
            name: "veth0".into(),
            speed: 10000,
            duplex: 1,
        }];
        let mut out = Vec::new();
        render_netlink(
            &[(lo, Iface::default()), (veth, s)],
            Some(&modes),
            false,
            &mut out,
        );
        for (name, dev, v) in [
            ("node_network_up", "veth0", 1.0),
            ("node_network_up", "lo", 0.0),
            ("node_network_speed_bytes", "veth0", 1.25e9),
            ("node_network_iface_link", "lo", 1.0),
            ("node_network_iface_link", "veth0", 2.0),
            ("node_network_dormant", "veth0", 1.0),
            ("node_network_flags", "lo", 65609.0),
            ("node_network_address_assign_type", "veth0", 3.0),
        ] {
            assert_eq!(value(&out, name, dev), Some(v), "{name} {dev}");
        }
        assert_eq!(value(&out, "node_network_address_assign_type", "lo"), None);
        let info = out.iter().find(|f| f.name == "node_network_info").unwrap();
        assert_eq!(info.samples[1].labels[3].1, "Full");
        assert_eq!(info.samples[0].labels[3].1, "");
        assert_eq!(info.samples[1].labels[4].1, "up");
        let alt = out
            .iter()
            .find(|f| f.name == "node_network_altnames_info")
            .unwrap();
        assert_eq!(alt.samples.len(), 1);
        assert!(out
            .iter()
            .all(|f| f.name != "node_network_receive_packets_total"));
        let mut out = Vec::new();
        let veth = netlink::Link {
            stats: Some([7; 24]),
            name: Some("x".into()),
            ..Default::default()
        };
        render_netlink(&[(veth, Iface::default())], None, true, &mut out);
        assert_eq!(
            value(&out, "node_network_receive_nohandler_total", "x"),
            Some(7.0)
        );
        assert_eq!(duplex_name(255), "Unknown");
        assert_eq!(duplex_name(7), "Duplex(7)");
        // An unknown speed as node_exporter computes it.
        let mut out = Vec::new();
        let m = [netlink::LinkModes {
            speed: u32::MAX,
            name: "x".into(),
            ..Default::default()
        }];
        render_netlink(&[], Some(&m), false, &mut out);
        assert_eq!(
            value(&out, "node_network_speed_bytes", "x"),
            Some(536_870_911_875_000.0)
        );
    }

    #[test]
    fn netlink_path_in_this_namespace() {
        let o = Options::from_flags(["--collector.netclass.netlink".to_string()]).unwrap();
        let mut out = Vec::new();
        build(&o).unwrap().collect(&mut out).unwrap();
        if let Some(lo) = value(&out, "node_network_mtu_bytes", "lo") {
            assert!(lo > 0.0);
        }
    }
}
