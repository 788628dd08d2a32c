//! ethtool collector: driver statistics (`ethtool -S`), driver info and legacy link settings
//! through the SIOCETHTOOL ioctl, named as node_exporter 1.12 names them:
//! - stat keys are sanitised (`_*[^0-9A-Za-z_]+_*` → `_`); `--collector.ethtool.metrics-include`
//!   matches the sanitised key; the name is then lower-cased, leading `_` trimmed, `rx`/`tx`
//!   tokens become `received`/`transmitted`, prefixed `node_ethtool_`, all untyped {device};
//! - seven keys (`rx_bytes`, …) have fixed `_total` names and their own HELP;
//! - keys of one device that end up with the same name are all dropped;
//! - `node_ethtool_info` from driver info; `node_network_{supported,advertised}_*` and
//!   `node_network_autonegotiate` from ETHTOOL_GSET (32-bit link-mode masks).
//!
//! Driver info and stat names never change for a device, so they are cached with the naming
//! already worked out, and refreshed when the device's number of statistics changes. Errors
//! (EOPNOTSUPP on loopback or ifb, a device gone between listing and ioctl) omit that part of
//! that device quietly, as node_exporter does (it only logs them).

mod ioctl;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use regex::Regex;

use self::ioctl::{DrvInfo, Ethtool, Handle, Ioctl, LinkInfo};
use super::{Collector, Family, MetricType, Options};

/// Keys node_exporter names and describes itself (matched on the sanitised key).
const FIXED: &[(&str, &str, &str)] = &[
    (
        "rx_bytes",
        "node_ethtool_received_bytes_total",
        "Network interface bytes received",
    ),
    (
        "rx_dropped",
        "node_ethtool_received_dropped_total",
        "Number of received frames dropped",
    ),
    (
        "rx_errors",
        "node_ethtool_received_errors_total",
        "Number of received frames with errors",
    ),
    (
        "rx_packets",
        "node_ethtool_received_packets_total",
        "Network interface packets received",
    ),
    (
        "tx_bytes",
        "node_ethtool_transmitted_bytes_total",
        "Network interface bytes sent",
    ),
    (
        "tx_errors",
        "node_ethtool_transmitted_errors_total",
        "Number of sent frames with errors",
    ),
    (
        "tx_packets",
        "node_ethtool_transmitted_packets_total",
        "Network interface packets sent",
    ),
];

/// Link-mode bits node_exporter maps to speeds (only bits < 32 fit the legacy masks):
/// (bit, Mb/s, duplex, mode).
const SPEEDS: &[(u32, f64, &str, &str)] = &[
    (0, 10.0, "half", "10baseT"),
    (1, 10.0, "full", "10baseT"),
    (2, 100.0, "half", "100baseT"),
    (3, 100.0, "full", "100baseT"),
    (4, 1000.0, "half", "1000baseT"),
    (5, 1000.0, "full", "1000baseT"),
    (12, 10000.0, "full", "10000baseT"),
    (17, 1000.0, "full", "1000baseKX"),
    (18, 10000.0, "full", "10000baseKX4"),
    (19, 10000.0, "full", "10000baseKR"),
    (20, 10000.0, "full", "10000baseR_FEC"),
    (21, 20000.0, "full", "20000baseMLD2"),
    (22, 20000.0, "full", "20000baseKR2"),
    (23, 40000.0, "full", "40000baseKR4"),
    (24, 40000.0, "full", "40000baseCR4"),
    (25, 40000.0, "full", "40000baseSR4"),
    (26, 40000.0, "full", "40000baseLR4"),
    (27, 56000.0, "full", "56000baseKR4"),
    (28, 56000.0, "full", "56000baseCR4"),
    (29, 56000.0, "full", "56000baseSR4"),
    (30, 56000.0, "full", "56000baseLR4"),
    (31, 25000.0, "full", "25000baseCR"),
];

/// Port-type bits: (bit, type label).
const PORTS: &[(u32, &str)] = &[
    (7, "TP"),
    (8, "AUI"),
    (9, "MII"),
    (10, "FIBRE"),
    (11, "BNC"),
    (16, "Backplane"),
];
const AUTONEG_BIT: u32 = 6;
const PAUSE_BIT: u32 = 13;
const ASYM_PAUSE_BIT: u32 = 14;
/// node_exporter reports speeds in bytes per second: Mb/s × 10⁶ / 8.
const MBPS: f64 = 125_000.0;

const INFO_HELP: &str = "A metric with a constant '1' value labeled by bus_info, device, driver, expansion_rom_version, firmware_version, version.";

/// node_exporter's SanitizeMetricName: every run of characters outside `[0-9A-Za-z_]`,
/// together with the underscores around it, becomes one `_` (Go's leftmost, non-overlapping
/// `_*[^0-9A-Za-z_]+_*`).
pub fn sanitize(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let ok = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < c.len() {
        let mut j = i;
        while j < c.len() && c[j] == '_' {
            j += 1;
        }
        if j < c.len() && !ok(c[j]) {
            while j < c.len() && !ok(c[j]) {
                j += 1;
            }
            while j < c.len() && c[j] == '_' {
                j += 1;
            }
            out.push('_');
            i = j;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Replaces `(^|_)TOK(_|$)` like Go's regexp.ReplaceAllString: matches are found left to
/// right without overlapping, so in `tx_tx_timeouts` only the first `tx` is replaced (the
/// underscore between them belongs to the first match).
fn replace_token(s: &str, tok: &str, rep: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let prefix = if i == 0 && s[i..].starts_with(tok) {
            Some(0)
        } else if b[i] == b'_' && s[i + 1..].starts_with(tok) {
            Some(1)
        } else {
            None
        };
        if let Some(p) = prefix {
            let after = i + p + tok.len();
            if after == b.len() || b[after] == b'_' {
                let end = if after < b.len() { after + 1 } else { after };
                out.push_str(&s[i..i + p]);
                out.push_str(rep);
                out.push_str(&s[after..end]);
                i = end;
                continue;
            }
        }
        // Sanitised names are ASCII, but stay correct for any input.
        let ch = s[i..].chars().next().unwrap_or('_');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// node_exporter's buildEthtoolFQName.
pub fn metric_name(stat: &str) -> String {
    let lower = sanitize(stat).to_lowercase();
    let name = replace_token(lower.trim_start_matches('_'), "rx", "received");
    format!("node_ethtool_{}", replace_token(&name, "tx", "transmitted"))
}

/// One exported statistic of a device: where its value is and what it is called.
#[derive(Clone, Debug, PartialEq)]
struct Planned {
    index: usize,
    name: String,
    help: String,
}

/// Works out the exported statistics from the driver's names, with node_exporter's rules:
/// empty names skipped, a repeated key keeps its last value (Go map), metrics-include on the
/// sanitised key, and names that collide dropped altogether.
fn plan(names: &[String], include: &Regex) -> Vec<Planned> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        if !n.is_empty() {
            last.insert(n, i);
        }
    }
    // Built name → the key that got it (None once a second key claims it).
    let mut by_name: BTreeMap<String, Option<(String, usize)>> = BTreeMap::new();
    for (raw, index) in last {
        let key = sanitize(raw);
        if !include.is_match(&key) {
            continue;
        }
        by_name
            .entry(metric_name(&key))
            .and_modify(|v| *v = None)
            .or_insert(Some((key, index)));
    }
    by_name
        .into_iter()
        .filter_map(|(name, v)| {
            let (key, index) = v?;
            Some(match FIXED.iter().find(|(k, ..)| *k == key) {
                Some((_, fixed, help)) => Planned {
                    index,
                    name: (*fixed).to_string(),
                    help: (*help).to_string(),
                },
                None => Planned {
                    index,
                    help: format!("Network interface {key}"),
                    name,
                },
            })
        })
        .collect()
}

/// What never changes for a device while its number of statistics stays the same.
struct Cached {
    n_stats: Option<usize>,
    info: Option<DrvInfo>,
    plan: Vec<Planned>,
}

struct EthtoolCollector {
    source: Box<dyn Ethtool>,
    class_net: PathBuf,
    include: Option<Regex>,
    exclude: Option<Regex>,
    metrics: Regex,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Families of one scrape, keyed by name.
#[derive(Default)]
struct Out(BTreeMap<String, Family>);

impl Out {
    fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        if !self.0.contains_key(name) {
            self.0.insert(
                name.to_string(),
                Family::new(name.to_string(), help.to_string(), kind),
            );
        }
        if let Some(f) = self.0.get_mut(name) {
            f.push(labels, v);
        }
    }
}

fn link_metrics(out: &mut Out, dev: &str, l: &LinkInfo) {
    let has = |mask: u32, bit: u32| mask & (1 << bit) != 0;
    let g = MetricType::Gauge;
    for (prefix, mask, speed_help) in [
        (
            "supported",
            l.supported,
            "Combination of speeds and features supported by network device",
        ),
        (
            "advertised",
            l.advertising,
            "Combination of speeds and features offered by network device",
        ),
    ] {
        for (bit, mbps, duplex, mode) in SPEEDS {
            if has(mask, *bit) {
                out.push(
                    &format!("node_network_{prefix}_speed_bytes"),
                    speed_help,
                    g,
                    &[("device", dev), ("duplex", duplex), ("mode", mode)],
                    mbps * MBPS,
                );
            }
        }
        let (an, pause, asym) = if prefix == "supported" {
            (
                "If this port device supports autonegotiate",
                "If this port device supports pause frames",
                "If this port device supports asymmetric pause frames",
            )
        } else {
            (
                "If this port device offers autonegotiate",
                "If this port device offers pause capability",
                "If this port device offers asymmetric pause capability",
            )
        };
        for (what, help, bit) in [
            ("autonegotiate", an, AUTONEG_BIT),
            ("pause", pause, PAUSE_BIT),
            ("asymmetricpause", asym, ASYM_PAUSE_BIT),
        ] {
            out.push(
                &format!("node_network_{what}_{prefix}"),
                help,
                g,
                &[("device", dev)],
                if has(mask, bit) { 1.0 } else { 0.0 },
            );
        }
    }
    for (bit, kind) in PORTS {
        if has(l.supported, *bit) {
            out.push(
                "node_network_supported_port_info",
                "Type of ports or PHYs supported by network device",
                g,
                &[("device", dev), ("type", kind)],
                1.0,
            );
        }
    }
    out.push(
        "node_network_autonegotiate",
        "If this port is using autonegotiate",
        g,
        &[("device", dev)],
        f64::from(l.autoneg),
    );
}

impl EthtoolCollector {
    /// Network devices as /sys/class/net lists them, sorted.
    fn devices(&self) -> anyhow::Result<Vec<String>> {
        let rd = std::fs::read_dir(&self.class_net)
            .with_context(|| format!("listing {}", self.class_net.display()))?;
        let mut out: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        anyhow::ensure!(!out.is_empty(), "no network devices found");
        Ok(out)
    }

    fn ignored(&self, dev: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.is_match(dev))
            || self.include.as_ref().is_some_and(|r| !r.is_match(dev))
    }

    fn device(
        &self,
        h: &dyn Handle,
        dev: &str,
        cache: &mut HashMap<String, Cached>,
        out: &mut Out,
    ) {
        if let Ok(l) = h.link_info(dev) {
            link_metrics(out, dev, &l);
        }
        let n_stats = h.n_stats(dev).ok();
        if cache.get(dev).is_none_or(|c| c.n_stats != n_stats) {
            let names = match n_stats {
                Some(n) if n > 0 => h.stat_names(dev, n),
                _ => Ok(Vec::new()),
            };
            let info = h.driver_info(dev).ok();
            match names {
                Ok(names) => {
                    let plan = plan(&names, &self.metrics);
                    cache.insert(
                        dev.to_string(),
                        Cached {
                            n_stats,
                            info,
                            plan,
                        },
                    );
                }
                // Names unreadable right now (device going away): report info only, retry
                // the names next scrape.
                Err(_) => {
                    cache.remove(dev);
                    if let Some(i) = &info {
                        info_metric(out, dev, i);
                    }
                    return;
                }
            }
        }
        let Some(c) = cache.get(dev) else { return };
        if let Some(i) = &c.info {
            info_metric(out, dev, i);
        }
        let (Some(n), false) = (c.n_stats, c.plan.is_empty()) else {
            return;
        };
        let Ok(values) = h.stats(dev, n) else { return };
        for p in &c.plan {
            if let Some(v) = values.get(p.index) {
                out.push(
                    &p.name,
                    &p.help,
                    MetricType::Untyped,
                    &[("device", dev)],
                    *v as f64,
                );
            }
        }
        if values.len() != n {
            // The set changed under us: work the names out again next scrape.
            cache.remove(dev);
        }
    }
}

fn info_metric(out: &mut Out, dev: &str, i: &DrvInfo) {
    out.push(
        "node_ethtool_info",
        INFO_HELP,
        MetricType::Gauge,
        &[
            ("bus_info", &i.bus_info),
            ("device", dev),
            ("driver", &i.driver),
            ("expansion_rom_version", &i.erom),
            ("firmware_version", &i.firmware),
            ("version", &i.version),
        ],
        1.0,
    );
}

impl Collector for EthtoolCollector {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let devices = self.devices()?;
        let h = self.source.open().context("opening an ethtool socket")?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // Forget devices that disappeared (a new one with the same name starts afresh).
        cache.retain(|d, _| devices.binary_search(d).is_ok());
        let mut fams = Out::default();
        for dev in devices.iter().filter(|d| !self.ignored(d)) {
            self.device(h.as_ref(), dev, &mut cache, &mut fams);
        }
        out.extend(fams.0.into_values());
        Ok(())
    }
}

fn with_source(opts: &Options, source: Box<dyn Ethtool>) -> anyhow::Result<EthtoolCollector> {
    Ok(EthtoolCollector {
        source,
        class_net: opts.sysfs.join("class/net"),
        include: crate::collect::util::optional_regex(
            &opts.ethtool_device_include,
            "collector.ethtool.device-include",
        )?,
        exclude: crate::collect::util::optional_regex(
            &opts.ethtool_device_exclude,
            "collector.ethtool.device-exclude",
        )?,
        metrics: Regex::new(&opts.ethtool_metrics_include)
            .context("--collector.ethtool.metrics-include")?,
        cache: Mutex::new(HashMap::new()),
    })
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(with_source(opts, Box::new(Ioctl))?))
}

#[cfg(test)]
mod tests;
