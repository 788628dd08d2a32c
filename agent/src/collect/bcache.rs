//! bcache collector: node_bcache_* from /sys/fs/bcache/<set uuid>/ (the cache set, its
//! `internal/` counters, each `bdevN` backing device and each `cacheN` cache device), as
//! node_exporter 1.12 reads them through procfs' bcache package. No /sys/fs/bcache (no bcache
//! module, or no cache set) is success with no families, as in node_exporter.
//!
//! Values are read as procfs reads them: the last byte of each file is dropped (the kernel's
//! newline), then "humanized" values such as `20.4G` or `1.1M` are expanded with bcache's
//! peculiar fraction (`.4` is 4/10.24). A missing value file reads as 0, a missing
//! writeback_rate_debug (or priority_stats with --collector.bcache.priorityStats) or a value
//! that does not parse fails the collector for the scrape. Counters node_exporter does not
//! export (the set's own stats_*, the five-minute stats) are not read.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

#[derive(Debug, Clone, clap::Args)]
#[group(id = "bcache-flags")]
pub struct Flags {
    /// Expose expensive priority stats (bcache collector).
    #[arg(long = "collector.bcache.priorityStats")]
    pub priority_stats: bool,
}

/// One cache set.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// The set's UUID (its directory name).
    pub name: String,
    pub average_key_size: u64,
    pub btree_cache_size: u64,
    pub cache_available_percent: u64,
    pub congested: u64,
    pub root_usage_percent: u64,
    pub tree_depth: u64,
    pub active_journal_entries: u64,
    pub btree_nodes: u64,
    /// `internal/btree_read_average_duration_us` (which holds nanoseconds).
    pub btree_read_average_duration_ns: u64,
    pub cache_read_races: u64,
    pub bdevs: Vec<Bdev>,
    pub caches: Vec<Cache>,
}

/// A backing device (`bdevN`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bdev {
    pub name: String,
    pub dirty_data: u64,
    pub writeback: WritebackRateDebug,
    /// `stats_total/`.
    pub total: PeriodStats,
}

/// A cache device (`cacheN`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cache {
    pub name: String,
    pub io_errors: u64,
    pub metadata_written: u64,
    pub written: u64,
    pub priority: PriorityStats,
}

/// The counters of a `stats_*` directory.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PeriodStats {
    pub bypassed: u64,
    pub cache_bypass_hits: u64,
    pub cache_bypass_misses: u64,
    pub cache_hits: u64,
    pub cache_miss_collisions: u64,
    pub cache_misses: u64,
    pub cache_readaheads: u64,
}

/// `writeback_rate_debug` of a backing device.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WritebackRateDebug {
    pub rate: u64,
    pub dirty: u64,
    pub target: u64,
    pub proportional: i64,
    pub integral: i64,
    pub change: i64,
    pub next_io: i64,
}

/// `priority_stats` of a cache device.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PriorityStats {
    pub unused_percent: u64,
    pub metadata_percent: u64,
}

/// bcache's `bch_hprint` fraction: "20.4" is 20 + 4/10.24 (the kernel prints the remainder of
/// a division by 1024 over 100, so ".1" is not ".10"). Text after a second '.' is ignored.
fn parse_pseudo_float(s: &str) -> anyhow::Result<f64> {
    let mut parts = s.split('.');
    let int = go_float(parts.next().unwrap_or(""))?;
    match parts.next() {
        None => Ok(int),
        Some(frac) => Ok(int + go_float(frac)? / 10.24),
    }
}

/// A float as Go's `strconv.ParseFloat` reads the decimal forms the kernel writes.
fn go_float(s: &str) -> anyhow::Result<f64> {
    s.parse::<f64>()
        .with_context(|| format!("invalid number {s:?}"))
}

/// Expands a value as bcache prints it: plain numbers, or a pseudo-float with one of the
/// suffixes k M G T P E Z Y (powers of 1024); any other byte above '9' at the end multiplies
/// by 0, as in procfs.
pub fn dehumanize(s: &[u8]) -> anyhow::Result<u64> {
    let Some((&last, mant)) = s.split_last() else {
        anyhow::bail!("zero-length reply");
    };
    let v = if last > b'9' {
        let power = match last {
            b'k' => Some(1),
            b'M' => Some(2),
            b'G' => Some(3),
            b'T' => Some(4),
            b'P' => Some(5),
            b'E' => Some(6),
            b'Z' => Some(7),
            b'Y' => Some(8),
            _ => None,
        };
        let mant = std::str::from_utf8(mant).context("value is not text")?;
        let mant = parse_pseudo_float(mant)?;
        power.map_or(0.0, |p| mant * 2f64.powi(10 * p))
    } else {
        go_float(std::str::from_utf8(s).context("value is not text")?)?
    };
    // Float to integer; out of range saturates.
    Ok(v as u64)
}

fn dehumanize_signed(s: &str) -> anyhow::Result<i64> {
    match s.strip_prefix('-') {
        Some(rest) => Ok((dehumanize(rest.as_bytes())? as i64).wrapping_neg()),
        None => Ok(dehumanize(s.as_bytes())? as i64),
    }
}

/// The last whitespace-separated word of a line.
fn last_word(line: &str) -> &str {
    line.split_whitespace().last().unwrap_or("")
}

/// Parses `writeback_rate_debug`.
pub fn parse_writeback_rate_debug(text: &str) -> anyhow::Result<WritebackRateDebug> {
    let mut w = WritebackRateDebug::default();
    for line in text.lines() {
        let v = last_word(line);
        if line.starts_with("rate:") {
            w.rate = dehumanize(v.strip_suffix("/sec").unwrap_or(v).as_bytes())?;
        } else if line.starts_with("dirty:") {
            w.dirty = dehumanize(v.as_bytes())?;
        } else if line.starts_with("target:") {
            w.target = dehumanize(v.as_bytes())?;
        } else if line.starts_with("proportional:") {
            w.proportional = dehumanize_signed(v)?;
        } else if line.starts_with("integral:") {
            w.integral = dehumanize_signed(v)?;
        } else if line.starts_with("change:") {
            w.change = dehumanize_signed(v.strip_suffix("/sec").unwrap_or(v))?;
        } else if line.starts_with("next io:") {
            let v = v.strip_suffix("ms").unwrap_or(v);
            w.next_io = v
                .parse()
                .with_context(|| format!("invalid next io {v:?}"))?;
        }
    }
    Ok(w)
}

/// Parses `priority_stats` (only the Unused and Metadata percentages).
pub fn parse_priority_stats(text: &str) -> anyhow::Result<PriorityStats> {
    let mut p = PriorityStats::default();
    for line in text.lines() {
        let dst = if line.starts_with("Unused:") {
            &mut p.unused_percent
        } else if line.starts_with("Metadata:") {
            &mut p.metadata_percent
        } else {
            continue;
        };
        let v = last_word(line);
        let v = v.strip_suffix('%').unwrap_or(v);
        *dst =
            util::go_parse_uint(v, 10, 64).with_context(|| format!("invalid percentage {v:?}"))?;
    }
    Ok(p)
}

/// Parses one value file: drops the last byte (the kernel's newline, whatever it is, as procfs
/// does) and expands the rest.
pub fn parse_value(raw: &[u8]) -> anyhow::Result<u64> {
    let body = raw
        .split_last()
        .map(|(_, b)| b)
        .context("empty value file")?;
    dehumanize(body)
}

/// Reads value files under one directory: a missing file reads 0; the first error sticks
/// and later reads return 0, as procfs' parser does.
struct Reader<'a> {
    dir: PathBuf,
    err: &'a mut Option<anyhow::Error>,
}

impl Reader<'_> {
    fn value(&mut self, name: &str) -> u64 {
        if self.err.is_some() {
            return 0;
        }
        let path = self.dir.join(name);
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(e) => {
                *self.err =
                    Some(anyhow::Error::new(e).context(format!("reading {}", path.display())));
                return 0;
            }
        };
        match parse_value(&raw) {
            Ok(v) => v,
            Err(e) => {
                *self.err = Some(e.context(format!("parsing {}", path.display())));
                0
            }
        }
    }

    /// A whole file parsed by `parse`; missing or bad fails.
    fn file<T: Default>(&mut self, name: &str, parse: fn(&str) -> anyhow::Result<T>) -> T {
        if self.err.is_some() {
            return T::default();
        }
        let path = self.dir.join(name);
        match util::read(&path)
            .and_then(|t| parse(&t).with_context(|| format!("parsing {}", path.display())))
        {
            Ok(v) => v,
            Err(e) => {
                *self.err = Some(e);
                T::default()
            }
        }
    }

    fn period(&mut self) -> PeriodStats {
        PeriodStats {
            bypassed: self.value("bypassed"),
            cache_bypass_hits: self.value("cache_bypass_hits"),
            cache_bypass_misses: self.value("cache_bypass_misses"),
            cache_hits: self.value("cache_hits"),
            cache_miss_collisions: self.value("cache_miss_collisions"),
            cache_misses: self.value("cache_misses"),
            cache_readaheads: self.value("cache_readaheads"),
        }
    }
}

/// `prefix` followed by a digit (Go's `prefix[0-9]*`).
fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

fn check(err: &mut Option<anyhow::Error>) -> anyhow::Result<()> {
    match err.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads one cache set directory.
pub fn read_set(dir: &Path, name: &str, priority: bool) -> anyhow::Result<Stats> {
    let mut err = None;
    let mut s = Stats {
        name: name.to_string(),
        ..Stats::default()
    };
    let mut r = Reader {
        dir: dir.to_path_buf(),
        err: &mut err,
    };
    s.average_key_size = r.value("average_key_size");
    s.btree_cache_size = r.value("btree_cache_size");
    s.cache_available_percent = r.value("cache_available_percent");
    s.congested = r.value("congested");
    s.root_usage_percent = r.value("root_usage_percent");
    s.tree_depth = r.value("tree_depth");
    r.dir = dir.join("internal");
    s.active_journal_entries = r.value("active_journal_entries");
    s.btree_nodes = r.value("btree_nodes");
    s.btree_read_average_duration_ns = r.value("btree_read_average_duration_us");
    s.cache_read_races = r.value("cache_read_races");
    check(r.err)?;

    for (bname, bdir) in util::glob(dir, |n| numbered(n, "bdev")) {
        let mut r = Reader {
            dir: bdir.clone(),
            err: &mut err,
        };
        let dirty_data = r.value("dirty_data");
        let writeback = r.file("writeback_rate_debug", parse_writeback_rate_debug);
        r.dir = bdir.join("stats_total");
        let total = r.period();
        s.bdevs.push(Bdev {
            name: bname,
            dirty_data,
            writeback,
            total,
        });
    }
    check(&mut err)?;

    for (cname, cdir) in util::glob(dir, |n| numbered(n, "cache")) {
        let mut r = Reader {
            dir: cdir,
            err: &mut err,
        };
        let io_errors = r.value("io_errors");
        let metadata_written = r.value("metadata_written");
        let written = r.value("written");
        let priority = if priority {
            r.file("priority_stats", parse_priority_stats)
        } else {
            PriorityStats::default()
        };
        s.caches.push(Cache {
            name: cname,
            io_errors,
            metadata_written,
            written,
            priority,
        });
    }
    check(&mut err)?;
    Ok(s)
}

/// A family for each of node_exporter's bcache metrics, filled per set.
fn render(sets: &[Stats], priority: bool, out: &mut Vec<Family>) {
    if sets.is_empty() {
        return;
    }
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    type SetField = fn(&Stats) -> f64;
    let set: [(&'static str, &'static str, MetricType, SetField); 10] = [
        ("node_bcache_average_key_size_sectors", "Average data per key in the btree (sectors).", g, |s| s.average_key_size as f64),
        ("node_bcache_btree_cache_size_bytes", "Amount of memory currently used by the btree cache.", g, |s| s.btree_cache_size as f64),
        ("node_bcache_cache_available_percent", "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data).", g, |s| s.cache_available_percent as f64),
        ("node_bcache_congested", "Congestion.", g, |s| s.congested as f64),
        ("node_bcache_root_usage_percent", "Percentage of the root btree node in use (tree depth increases if too high).", g, |s| s.root_usage_percent as f64),
        ("node_bcache_tree_depth", "Depth of the btree.", g, |s| s.tree_depth as f64),
        ("node_bcache_active_journal_entries", "Number of journal entries that are newer than the index.", g, |s| s.active_journal_entries as f64),
        ("node_bcache_btree_nodes", "Total nodes in the btree.", g, |s| s.btree_nodes as f64),
        ("node_bcache_btree_read_average_duration_seconds", "Average btree read duration.", g, |s| s.btree_read_average_duration_ns as f64 * 1e-9),
        ("node_bcache_cache_read_races_total", "Counts instances where while data was being read from the cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the read completed.", c, |s| s.cache_read_races as f64),
    ];
    for (name, help, kind, get) in set {
        let mut f = Family::new(name, help, kind);
        for s in sets {
            f.push(&[("uuid", &s.name)], get(s));
        }
        out.push(f);
    }

    type BdevField = fn(&Bdev) -> f64;
    let bdev: [(&'static str, &'static str, MetricType, BdevField); 12] = [
        ("node_bcache_dirty_data_bytes", "Amount of dirty data for this backing device in the cache.", g, |b| b.dirty_data as f64),
        ("node_bcache_dirty_target_bytes", "Current dirty data target threshold for this backing device in bytes.", g, |b| b.writeback.target as f64),
        ("node_bcache_writeback_rate", "Current writeback rate for this backing device in bytes.", g, |b| b.writeback.rate as f64),
        ("node_bcache_writeback_rate_proportional_term", "Current result of proportional controller, part of writeback rate", g, |b| b.writeback.proportional as f64),
        ("node_bcache_writeback_rate_integral_term", "Current result of integral controller, part of writeback rate", g, |b| b.writeback.integral as f64),
        ("node_bcache_writeback_change", "Last writeback rate change step for this backing device.", g, |b| b.writeback.change as f64),
        ("node_bcache_bypassed_bytes_total", "Amount of IO (both reads and writes) that has bypassed the cache.", c, |b| b.total.bypassed as f64),
        ("node_bcache_cache_hits_total", "Hits counted per individual IO as bcache sees them.", c, |b| b.total.cache_hits as f64),
        ("node_bcache_cache_misses_total", "Misses counted per individual IO as bcache sees them.", c, |b| b.total.cache_misses as f64),
        ("node_bcache_cache_bypass_hits_total", "Hits for IO intended to skip the cache.", c, |b| b.total.cache_bypass_hits as f64),
        ("node_bcache_cache_bypass_misses_total", "Misses for IO intended to skip the cache.", c, |b| b.total.cache_bypass_misses as f64),
        ("node_bcache_cache_miss_collisions_total", "Instances where data insertion from cache miss raced with write (data already present).", c, |b| b.total.cache_miss_collisions as f64),
    ];
    for (name, help, kind, get) in bdev {
        let mut f = Family::new(name, help, kind);
        for s in sets {
            for b in &s.bdevs {
                f.push(&[("uuid", &s.name), ("backing_device", &b.name)], get(b));
            }
        }
        out.push(f);
    }
    // Readaheads only where there were some, as node_exporter does.
    let mut f = Family::new(
        "node_bcache_cache_readaheads_total",
        "Count of times readahead occurred.",
        c,
    );
    for s in sets {
        for b in s.bdevs.iter().filter(|b| b.total.cache_readaheads != 0) {
            f.push(
                &[("uuid", &s.name), ("backing_device", &b.name)],
                b.total.cache_readaheads as f64,
            );
        }
    }
    out.push(f);

    type CacheField = fn(&Cache) -> f64;
    let cache: [(&'static str, &'static str, MetricType, CacheField); 5] = [
        (
            "node_bcache_io_errors",
            "Number of errors that have occurred, decayed by io_error_halflife.",
            g,
            |c| c.io_errors as f64,
        ),
        (
            "node_bcache_metadata_written_bytes_total",
            "Sum of all non data writes (btree writes and all other metadata).",
            c,
            |c| c.metadata_written as f64,
        ),
        (
            "node_bcache_written_bytes_total",
            "Sum of all data that has been written to the cache.",
            c,
            |c| c.written as f64,
        ),
        (
            "node_bcache_priority_stats_unused_percent",
            "The percentage of the cache that doesn't contain any data.",
            g,
            |c| c.priority.unused_percent as f64,
        ),
        (
            "node_bcache_priority_stats_metadata_percent",
            "Bcache's metadata overhead.",
            g,
            |c| c.priority.metadata_percent as f64,
        ),
    ];
    for (i, (name, help, kind, get)) in cache.into_iter().enumerate() {
        if i >= 3 && !priority {
            break;
        }
        let mut f = Family::new(name, help, kind);
        for s in sets {
            for cd in &s.caches {
                f.push(&[("uuid", &s.name), ("cache_device", &cd.name)], get(cd));
            }
        }
        out.push(f);
    }
}

struct Bcache {
    dir: PathBuf,
    priority: bool,
}

impl Collector for Bcache {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut sets = Vec::new();
        // Cache sets are named by UUID: "*-*" as node_exporter globs them.
        for (name, dir) in util::glob(&self.dir, |n| n.contains('-')) {
            sets.push(read_set(&dir, &name, self.priority)?);
        }
        render(&sets, self.priority, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Bcache {
        dir: opts.sysfs.join("fs/bcache"),
        priority: opts.bcache.priority_stats,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dehumanize_like_procfs() {
        assert_eq!(dehumanize(b"0").unwrap(), 0);
        assert_eq!(dehumanize(b"512").unwrap(), 512);
        assert_eq!(dehumanize(b"1.1M").unwrap(), 1150976);
        assert_eq!(dehumanize(b"20.4G").unwrap(), 21894266880);
        assert_eq!(dehumanize(b"2k").unwrap(), 2048);
        assert_eq!(dehumanize(b"1.5.9k").unwrap(), dehumanize(b"1.5k").unwrap());
        // An unknown suffix multiplies by zero; a huge one saturates.
        assert_eq!(dehumanize(b"12x").unwrap(), 0);
        assert_eq!(dehumanize(b"9000Y").unwrap(), u64::MAX);
        assert_eq!(dehumanize_signed("-427.5k").unwrap(), -437748);
        assert_eq!(dehumanize_signed("790.0k").unwrap(), 808960);
        for bad in ["", "k", "abc", "1.xk", "5\u{e9}", "\u{e9}"] {
            assert!(dehumanize_signed(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_value(b"1305\n").unwrap(), 1305);
        // The last byte goes whatever it is, as in procfs.
        assert_eq!(parse_value(b"1305").unwrap(), 130);
        assert!(parse_value(b"").is_err());
        assert!(parse_value(b"\n").is_err());
        assert!(parse_value(b"\xff\xfe\n").is_err());
    }

    const WRD: &str = "rate:           1.1M/sec\ndirty:          20.4G\ntarget:         20.4G\nproportional:   427.5k\nintegral:       -790.0k\nchange:         321.5k/sec\nnext io:        17ms\n";

    #[test]
    fn writeback_and_priority_files() {
        let w = parse_writeback_rate_debug(WRD).unwrap();
        assert_eq!(w.rate, 1150976);
        assert_eq!(w.target, 21894266880);
        assert_eq!(w.proportional, 437748);
        assert_eq!(w.integral, -808960);
        assert_eq!(w.change, 329204);
        assert_eq!(w.next_io, 17);
        assert!(parse_writeback_rate_debug("rate: fast\n").is_err());
        assert!(parse_writeback_rate_debug("next io: soonms\n").is_err());
        assert!(parse_writeback_rate_debug("rate:\n").is_err());
        let p = parse_priority_stats(
            "Unused:\t\t99%\nMetadata:\t0%\nAverage:\t10473\nQuantiles:\t[0 1]\n",
        )
        .unwrap();
        assert_eq!((p.unused_percent, p.metadata_percent), (99, 0));
        assert!(parse_priority_stats("Unused: -1%\n").is_err());
        assert!(parse_priority_stats("Unused:\n").is_err());
    }

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (p, t) in files {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
    }

    const SET: &str = "fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74";

    fn fixture(root: &Path) {
        let f = |p: &str| format!("{SET}/{p}");
        write(
            root,
            &[
                (&f("average_key_size"), "0\n"),
                (&f("cache_available_percent"), "100\n"),
                (&f("internal/btree_read_average_duration_us"), "1305\n"),
                (&f("internal/active_journal_entries"), "1\n"),
                (&f("stats_total/cache_hits"), "9\n"),
                (&f("bdev0/dirty_data"), "1.5k\n"),
                (&f("bdev0/writeback_rate_debug"), WRD),
                (&f("bdev0/stats_total/cache_hits"), "546\n"),
                (&f("bdev0/stats_total/cache_readaheads"), "13\n"),
                (&f("bdev1/writeback_rate_debug"), ""),
                (&f("cache0/metadata_written"), "512\n"),
                (
                    &f("cache0/priority_stats"),
                    "Unused:\t\t99%\nMetadata:\t3%\n",
                ),
                ("fs/bcache/register", ""),
            ],
        );
    }

    fn collect(root: &Path, priority: bool) -> anyhow::Result<Vec<Family>> {
        let mut flags = vec![format!("--path.sysfs={}", root.display())];
        if priority {
            flags.push("--collector.bcache.priorityStats".into());
        }
        let c = build(&Options::from_flags(flags).unwrap())?;
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out)
    }

    fn series(out: &[Family], name: &str) -> Vec<(Vec<String>, f64)> {
        out.iter()
            .filter(|f| f.name == name)
            .flat_map(|f| f.samples.iter())
            .map(|s| (s.labels.iter().map(|l| l.1.clone()).collect(), s.value))
            .collect()
    }

    #[test]
    fn a_cache_set_with_two_backing_devices() {
        let d = tempfile::tempdir().unwrap();
        fixture(d.path());
        let out = collect(d.path(), true).unwrap();
        let uuid = "deaddd54-c735-46d5-868e-f331c5fd7c74".to_string();
        assert_eq!(
            series(&out, "node_bcache_btree_read_average_duration_seconds"),
            [(vec![uuid.clone()], 1305.0 * 1e-9)]
        );
        assert_eq!(
            series(&out, "node_bcache_cache_hits_total"),
            [
                (vec![uuid.clone(), "bdev0".into()], 546.0),
                (vec![uuid.clone(), "bdev1".into()], 0.0)
            ]
        );
        // bdev1 had no readaheads: no series.
        assert_eq!(
            series(&out, "node_bcache_cache_readaheads_total"),
            [(vec![uuid.clone(), "bdev0".into()], 13.0)]
        );
        // "1.5k" is bcache's 1 + 5/10.24 KiB.
        assert_eq!(series(&out, "node_bcache_dirty_data_bytes")[0].1, 1524.0);
        assert_eq!(
            series(&out, "node_bcache_priority_stats_metadata_percent"),
            [(vec![uuid.clone(), "cache0".into()], 3.0)]
        );
        assert_eq!(out.len(), 28);
        // Without the flag, no priority families (and priority_stats is not read).
        let out = collect(d.path(), false).unwrap();
        assert_eq!(out.len(), 26);
        assert!(series(&out, "node_bcache_priority_stats_unused_percent").is_empty());
    }

    #[test]
    fn absent_bcache_is_empty_success_and_bad_files_fail() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(d.path(), true).unwrap().is_empty());
        fixture(d.path());
        // priority_stats is required only with the flag.
        std::fs::remove_file(d.path().join(SET).join("cache0/priority_stats")).unwrap();
        assert!(collect(d.path(), false).is_ok());
        assert!(collect(d.path(), true).is_err());
        // A garbled value or a missing writeback_rate_debug fails the collector.
        fixture(d.path());
        write(d.path(), &[(&format!("{SET}/congested"), "lots\n")]);
        assert!(collect(d.path(), false).is_err());
        fixture(d.path());
        write(d.path(), &[(&format!("{SET}/congested"), "0\n")]);
        std::fs::remove_file(d.path().join(SET).join("bdev0/writeback_rate_debug")).unwrap();
        assert!(collect(d.path(), false).is_err());
    }
}
