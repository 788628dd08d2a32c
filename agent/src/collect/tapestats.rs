//! tapestats collector: SCSI tape statistics from /sys/class/scsi_tape/st<N>/stats, as
//! node_exporter 1.12 (procfs' SCSITapeClass) reads them.
//!
//! Only the `st<digits>` devices count (not the nst*/st*a/l/m aliases of the same drive).
//! Each statistic present is read as procfs reads it (one read of at most 128 bytes); a read
//! error fails the collector, a missing one counts 0. A value that is not an unsigned integer
//! (Go's base-0 syntax) fails the collector here; node_exporter crashes on it (a nil
//! dereference). Times are nanoseconds in sysfs, seconds here. No scsi_tape class is no
//! data. Devices matching `--collector.tapestats.ignored-devices` are not read at all
//! (node_exporter reads them first, so their errors fail it).

use std::path::{Path, PathBuf};

use anyhow::Context;
use regex::Regex;

use super::{util, Collector, Family, MetricType, Options};

// No argument group: every collector's flag struct is called `Flags`, and clap would
// name a group after it.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// Regexp of devices to ignore for tapestats.
    #[arg(
        id = "collector.tapestats.ignored-devices",
        long = "collector.tapestats.ignored-devices",
        value_name = "REGEX",
        default_value = "^$"
    )]
    pub ignored_devices: String,
}

/// The statistics files, in [`Tape::counters`] order.
const STATS: &[&str] = &[
    "in_flight",
    "io_ns",
    "other_cnt",
    "read_byte_cnt",
    "read_cnt",
    "read_ns",
    "resid_cnt",
    "write_byte_cnt",
    "write_cnt",
    "write_ns",
];

/// (metric, help, type, scale) in [`STATS`] order.
const METRICS: &[(&str, &str, MetricType, f64)] = &[
    (
        "node_tape_io_now",
        "The number of I/Os currently outstanding to this device.",
        MetricType::Gauge,
        1.0,
    ),
    (
        "node_tape_io_time_seconds_total",
        "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape movement commands such as seeking between file or set marks and implicit tape movement such as when rewind on close tape devices are used.",
        MetricType::Counter,
        0.000000001,
    ),
    (
        "node_tape_io_others_total",
        "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-write_time_seconds_total",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_tape_read_bytes_total",
        "The number of bytes read from the tape drive.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_tape_reads_completed_total",
        "The number of read requests issued to the tape drive.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_tape_read_time_seconds_total",
        "The amount of time spent waiting for read requests to complete.",
        MetricType::Counter,
        0.000000001,
    ),
    (
        "node_tape_residual_total",
        "The number of times during a read or write we found the residual amount to be non-zero. This should mean that a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_tape_written_bytes_total",
        "The number of bytes written to the tape drive.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_tape_writes_completed_total",
        "The number of write requests issued to the tape drive.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_tape_write_time_seconds_total",
        "The amount of time spent waiting for write requests to complete.",
        MetricType::Counter,
        0.000000001,
    ),
];

/// One tape drive's statistics, in [`STATS`] order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tape {
    pub name: String,
    pub counters: [u64; 10],
}

/// `st<digits>`: the drive itself, not one of its aliases.
pub fn is_tape(name: &str) -> bool {
    name.strip_prefix("st")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A statistic (Go's base-0 unsigned syntax).
pub fn parse_counter(text: &str) -> anyhow::Result<u64> {
    util::go_parse_uint(text, 0, 64).with_context(|| format!("not a counter: {text:?}"))
}

fn read_tape(dir: &Path, name: String) -> anyhow::Result<Tape> {
    let stats = dir.join("stats");
    let entries =
        util::read_dir_sorted(&stats).with_context(|| format!("reading {}", stats.display()))?;
    let mut t = Tape {
        name,
        ..Default::default()
    };
    for e in entries {
        let Some(i) = STATS.iter().position(|s| *s == e.name) else {
            continue;
        };
        let v = util::sys_read(&e.path).with_context(|| format!("reading {}", e.path.display()))?;
        t.counters[i] =
            parse_counter(&v).with_context(|| format!("parsing {}", e.path.display()))?;
    }
    Ok(t)
}

/// Reads /sys/class/scsi_tape, leaving out the drives `ignored` matches; `Ok(None)` when
/// the class does not exist.
pub fn read(dir: &Path, ignored: Option<&Regex>) -> anyhow::Result<Option<Vec<Tape>>> {
    util::read_class(
        dir,
        |name| is_tape(name) && !ignored.is_some_and(|r| r.is_match(name)),
        read_tape,
    )
}

fn render(tapes: &[Tape], out: &mut Vec<Family>) {
    let mut fams: Vec<Family> = METRICS
        .iter()
        .map(|(n, h, k, _)| Family::new(*n, *h, *k))
        .collect();
    for t in tapes {
        for ((f, v), (.., scale)) in fams.iter_mut().zip(t.counters).zip(METRICS) {
            f.push(&[("device", &t.name)], v as f64 * scale);
        }
    }
    out.extend(fams);
}

struct Tapestats {
    dir: PathBuf,
    ignored: Option<Regex>,
}

impl Collector for Tapestats {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let tapes = read(&self.dir, self.ignored.as_ref())?
            .with_context(|| format!("no scsi_tape class in {}", self.dir.display()))?;
        render(&tapes, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let pattern = &opts.tapestats.ignored_devices;
    // The default matches only an empty name, which no directory entry has.
    let ignored = match pattern.as_str() {
        "^$" => None,
        p => Some(Regex::new(p).context("--collector.tapestats.ignored-devices must be a regexp")?),
    };
    Ok(Box::new(Tapestats {
        dir: opts.sysfs.join("class/scsi_tape"),
        ignored,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn names_and_values() {
        assert!(is_tape("st0"));
        assert!(is_tape("st12"));
        assert!(!is_tape("nst0"));
        assert!(!is_tape("st0a"));
        assert!(!is_tape("st"));
        assert!(!is_tape("st\u{661}"));
        assert_eq!(parse_counter("0x10").unwrap(), 16);
        assert!(parse_counter("-1").is_err());
        assert!(parse_counter("").is_err());
    }

    #[test]
    fn drives() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (i, s) in STATS.iter().enumerate() {
            write(r, &format!("st0/stats/{s}"), &format!("{}\n", i + 1));
        }
        write(r, "st0/stats/io_ns", "9247011087720\n");
        write(r, "st1/stats/read_cnt", "7\n");
        write(r, "st1/stats/unknown_new_stat", "x\n");
        write(r, "nst0/stats/read_cnt", "7\n");
        let tapes = read(r, None).unwrap().unwrap();
        assert_eq!(tapes.len(), 2);
        assert_eq!(tapes[1].counters, [0, 0, 0, 0, 7, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        render(&tapes, &mut out);
        assert_eq!(out[1].name, "node_tape_io_time_seconds_total");
        assert_eq!(out[1].samples[0].value, 9247.01108772);
        assert_eq!(out[4].samples[1].value, 7.0);
        let ignore = Regex::new("^st0$").unwrap();
        assert_eq!(read(r, Some(&ignore)).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn missing_and_broken() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(read(&r.join("nope"), None).unwrap(), None);
        // A drive without a stats directory (vanished) fails, as in node_exporter.
        std::fs::create_dir_all(r.join("st0")).unwrap();
        assert!(read(r, None).is_err());
        write(r, "st0/stats/read_cnt", "many\n");
        assert!(read(r, None).is_err());
        write(r, "st0/stats/read_cnt", "3\n");
        assert!(read(r, None).is_ok());
    }
}
