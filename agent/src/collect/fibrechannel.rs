//! fibrechannel collector: Fibre Channel host ports from /sys/class/fc_host, as
//! node_exporter 1.12 (procfs' FibreChannelClass) reads them.
//!
//! Each host's text attributes are read as procfs reads them (one read of at most 128 bytes,
//! trimmed; the `0x` of port_id, port_name and fabric_name cut off) and become the labels of
//! `node_fibrechannel_info` (empty when missing). The statistics directory's counters (Go's
//! base-0 syntax, usually hex) become counters; a counter at 2^64-1 is one the HBA does not
//! implement and is left out; a port whose state is missing or "Unknown" reports every
//! counter as 0. A missing file, and a statistic whose read fails with EOPNOTSUPP, is
//! skipped; other read errors and garbled counters fail the collector; no fc_host class is
//! no data. Only the attributes and statistics node_exporter exports are read (it also reads
//! node_name and the other statistics, without using them); a statistic that is missing on
//! a port that is up is left out, where node_exporter crashes (a nil dereference).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// Text attributes in [`Host::attrs`] order: (file, label, cut the first two bytes).
const ATTRS: &[(&str, &str, bool)] = &[
    ("speed", "speed", false),
    ("port_state", "port_state", false),
    ("port_type", "port_type", false),
    ("port_id", "port_id", true),
    ("port_name", "port_name", true),
    ("fabric_name", "fabric_name", true),
    ("symbolic_name", "symbolic_name", false),
    ("supported_classes", "supported_classes", false),
    ("supported_speeds", "supported_speeds", false),
    ("dev_loss_tmo", "dev_loss_tmo", false),
];

const PORT_STATE: usize = 1;

/// Statistics in [`Host::counters`] order: (file, metric, help).
const COUNTERS: &[(&str, &str, &str)] = &[
    (
        "dumped_frames",
        "node_fibrechannel_dumped_frames_total",
        "Number of dumped frames",
    ),
    (
        "error_frames",
        "node_fibrechannel_error_frames_total",
        "Number of errors in frames",
    ),
    (
        "invalid_crc_count",
        "node_fibrechannel_invalid_crc_total",
        "Invalid Cyclic Redundancy Check count",
    ),
    (
        "rx_frames",
        "node_fibrechannel_rx_frames_total",
        "Number of frames received",
    ),
    (
        "rx_words",
        "node_fibrechannel_rx_words_total",
        "Number of words received by host port",
    ),
    (
        "tx_frames",
        "node_fibrechannel_tx_frames_total",
        "Number of frames transmitted by host port",
    ),
    (
        "tx_words",
        "node_fibrechannel_tx_words_total",
        "Number of words transmitted by host port",
    ),
    (
        "seconds_since_last_reset",
        "node_fibrechannel_seconds_since_last_reset_total",
        "Number of seconds since last host port reset",
    ),
    (
        "invalid_tx_word_count",
        "node_fibrechannel_invalid_tx_words_total",
        "Number of invalid words transmitted by host port",
    ),
    (
        "link_failure_count",
        "node_fibrechannel_link_failure_total",
        "Number of times the host port link has failed",
    ),
    (
        "loss_of_sync_count",
        "node_fibrechannel_loss_of_sync_total",
        "Number of failures on either bit or transmission word boundaries",
    ),
    (
        "loss_of_signal_count",
        "node_fibrechannel_loss_of_signal_total",
        "Number of times signal has been lost",
    ),
    (
        "nos_count",
        "node_fibrechannel_nos_total",
        "Number Not_Operational Primitive Sequence received by host port",
    ),
    (
        "fcp_packet_aborts",
        "node_fibrechannel_fcp_packet_aborts_total",
        "Number of aborted packets",
    ),
];

/// One FC host port.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Host {
    pub name: String,
    /// In [`ATTRS`] order; `None` when the file is missing.
    pub attrs: [Option<String>; 10],
    /// In [`COUNTERS`] order; `None` when the file is missing or unsupported.
    pub counters: [Option<u64>; 14],
}

/// A text attribute as the label shows it: `0x` (or whatever the first two bytes are) cut
/// from the id and name attributes when longer than two bytes.
pub fn attr_value(raw: &[u8], cut: bool) -> String {
    let v = util::go_trim_space(raw);
    util::to_valid_utf8(if cut && v.len() > 2 { &v[2..] } else { v }).into_owned()
}

/// A statistic (Go's base-0 unsigned syntax, e.g. `0x1f`).
pub fn parse_counter(text: &str) -> anyhow::Result<u64> {
    util::go_parse_uint(text, 0, 64).with_context(|| format!("not a counter: {text:?}"))
}

fn read_host(dir: &Path, name: String) -> anyhow::Result<Host> {
    let mut h = Host {
        name,
        ..Default::default()
    };
    for (slot, (file, _, cut)) in h.attrs.iter_mut().zip(ATTRS) {
        let p = dir.join(file);
        match util::sys_read_bytes(&p) {
            Ok(raw) => *slot = Some(attr_value(&raw, *cut)),
            // Drivers may leave attributes out.
            Err(e) if e.not_found() => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
    let stats = dir.join("statistics");
    let entries = match util::read_dir_sorted(&stats) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", stats.display())),
    };
    for e in entries.iter().filter(|e| e.is_file()) {
        let Some(i) = COUNTERS.iter().position(|(f, ..)| *f == e.name) else {
            continue;
        };
        let v = match util::sys_read(&e.path) {
            Ok(v) => v,
            // Write-only or unsupported statistics.
            Err(err) if err.not_found() || err.read_errno(libc::EOPNOTSUPP) => continue,
            Err(err) => return Err(err).with_context(|| format!("reading {}", e.path.display())),
        };
        h.counters[i] =
            Some(parse_counter(&v).with_context(|| format!("parsing {}", e.path.display()))?);
    }
    Ok(h)
}

/// Reads /sys/class/fc_host; `Ok(None)` when it does not exist.
pub fn read(dir: &Path) -> anyhow::Result<Option<Vec<Host>>> {
    util::read_class(dir, |_| true, read_host)
}

fn render(hosts: &[Host], out: &mut Vec<Family>) {
    let mut info = Family::new(
        "node_fibrechannel_info",
        "Non-numeric data from /sys/class/fc_host/<host>, value is always 1.",
        MetricType::Gauge,
    );
    let mut fams: Vec<Family> = COUNTERS
        .iter()
        .map(|(_, n, h)| Family::new(*n, *h, MetricType::Counter))
        .collect();
    for h in hosts {
        let mut labels: Vec<(&'static str, &str)> = vec![("fc_host", &h.name)];
        labels.extend(
            ATTRS
                .iter()
                .zip(&h.attrs)
                .map(|((_, l, _), v)| (*l, v.as_deref().unwrap_or(""))),
        );
        info.push(&labels, 1.0);
        // A port in no known state has no statistics: node_exporter reports zeros.
        let down = matches!(h.attrs[PORT_STATE].as_deref(), None | Some("Unknown"));
        for (f, c) in fams.iter_mut().zip(&h.counters) {
            let v = if down { Some(0) } else { *c };
            if let Some(v) = v.filter(|v| *v != u64::MAX) {
                f.push(&[("fc_host", &h.name)], v as f64);
            }
        }
    }
    out.push(info);
    out.extend(fams);
}

struct Fibrechannel {
    dir: PathBuf,
}

impl Collector for Fibrechannel {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let hosts = read(&self.dir)?
            .with_context(|| format!("no fc_host class in {}", self.dir.display()))?;
        render(&hosts, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Fibrechannel {
        dir: opts.sysfs.join("class/fc_host"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn values() {
        assert_eq!(attr_value(b"0x000002\n", true), "000002");
        assert_eq!(attr_value(b"0x\n", true), "0x");
        assert_eq!(attr_value(b"16 Gbit\n", false), "16 Gbit");
        assert_eq!(attr_value(b"0x\xc3\xa9a", true), "\u{e9}a");
        // Cutting two bytes can split a character: the rest is replaced, not a panic.
        assert_eq!(attr_value(b"a\xc3\xa9b", true), "\u{FFFD}b");
        assert_eq!(parse_counter("0xffffffffffffffff").unwrap(), u64::MAX);
        assert_eq!(parse_counter("0x13").unwrap(), 19);
        assert!(parse_counter("0xZZ").is_err());
    }

    #[test]
    fn hosts() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "host0/port_state", "Online\n");
        write(r, "host0/port_name", "0x1000e0071bce95f2\n");
        write(r, "host0/speed", "16 Gbit\n");
        write(r, "host0/statistics/dumped_frames", "0xffffffffffffffff\n");
        write(r, "host0/statistics/rx_frames", "0x3\n");
        write(r, "host0/statistics/fc_xid_busy", "junk\n");
        write(r, "host0/statistics/reset_statistics", "");
        // No port state: every counter 0, present or not.
        write(r, "host1/statistics/rx_frames", "0x30\n");
        write(r, "host2/port_state", "Unknown\n");
        let hosts = read(r).unwrap().unwrap();
        let mut out = Vec::new();
        render(&hosts, &mut out);
        let info: Vec<Vec<&str>> = out[0]
            .samples
            .iter()
            .map(|s| s.labels.iter().map(|(_, v)| v.as_str()).collect())
            .collect();
        assert_eq!(
            info[0],
            [
                "host0",
                "16 Gbit",
                "Online",
                "",
                "",
                "1000e0071bce95f2",
                "",
                "",
                "",
                "",
                ""
            ]
        );
        let series = |name: &str| -> Vec<(String, f64)> {
            out.iter()
                .find(|f| f.name == name)
                .unwrap()
                .samples
                .iter()
                .map(|s| (s.labels[0].1.clone(), s.value))
                .collect()
        };
        assert_eq!(
            series("node_fibrechannel_rx_frames_total"),
            [
                ("host0".into(), 3.0),
                ("host1".into(), 0.0),
                ("host2".into(), 0.0)
            ]
        );
        // 2^64-1 is "not implemented": left out; missing on an Online port: left out.
        assert_eq!(
            series("node_fibrechannel_dumped_frames_total"),
            [("host1".into(), 0.0), ("host2".into(), 0.0)]
        );
        assert_eq!(series("node_fibrechannel_tx_words_total").len(), 2);
    }

    #[test]
    fn missing_and_broken() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(read(&r.join("nope")).unwrap(), None);
        write(r, "host0/statistics/nos_count", "lots\n");
        assert!(read(r).is_err());
        write(r, "host0/statistics/nos_count", "0x1\n");
        assert!(read(r).is_ok());
        // An attribute that reads with an error (EISDIR here) fails the collector.
        std::fs::create_dir_all(r.join("host0/speed")).unwrap();
        assert!(read(r).is_err());
    }
}
