//! zfs collector: OpenZFS kstats from /proc/spl/kstat/zfs, with node_exporter 1.12's naming,
//! which is a rule, not a list: each field of a kstat file becomes its own untyped family
//! `node_zfs_<subsystem>_<field>` (a '-' in the field becomes '_'), its help text the kstat's
//! key `kstat.zfs.misc.<file>.<field>`. So a newer OpenZFS's new fields appear without a
//! change here, exactly as in node_exporter.
//!
//! - Global kstat files (arcstats → `node_zfs_arc_*`, dmu_tx, zfetchstats, abdstats, dbufstats,
//!   dnodestats, fm, vdev_cache_stats, vdev_mirror_stats, xuio_stats, zil): the `name type
//!   data` table; only int64 (type 3) and uint64 (type 4) rows are exported. A missing file is
//!   skipped (older or newer OpenZFS); a file without the table header, or a row whose number
//!   does not parse, fails the collector.
//! - Per pool: `<pool>/io` (the `nread nwritten ...` header and its row) as
//!   `node_zfs_zpool_<field>{zpool}`; every `<pool>/objset-*` as
//!   `node_zfs_zpool_dataset_<field>{zpool,dataset}` (uint64 rows only); `<pool>/state` as
//!   `node_zfs_zpool_state{zpool,state}` (gauge, 1 for the pool's state among online, degraded,
//!   faulted, offline, removed, unavail, suspended). A pool file that cannot be opened (a pool
//!   being exported) fails the collector for that scrape, as in node_exporter.
//!
//! No /proc/spl/kstat/zfs (no ZFS module) is node_exporter's ErrNoData: success 0, no
//! families, after one failed stat() and nothing else.
//!
//! Two of node_exporter's quirks are kept on purpose, so series stay the same: the `dataset`
//! label is the objset line from the first occurrence of the dataset's name in that line (so a
//! pool named like a part of "dataset_name", e.g. `data`, gets the whole line), and rows seen
//! before the dataset_name row get empty zpool and dataset labels. Unlike node_exporter (which
//! panics), a pool io row shorter than its header fails the collector, and fields that do not
//! make a valid metric name are skipped.
//!
//! Family names and help texts are made once per field and kept for the life of the process
//! (bounded), so a scrape does not format ~300 names again.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options, Text};

/// Global kstat files, their family prefixes (node_exporter's subsystems) and help prefixes.
const FILES: [(&str, &str, &str); 11] = [
    ("abdstats", "node_zfs_abd", "kstat.zfs.misc.abdstats."),
    ("arcstats", "node_zfs_arc", "kstat.zfs.misc.arcstats."),
    ("dbufstats", "node_zfs_dbuf", "kstat.zfs.misc.dbufstats."),
    ("dmu_tx", "node_zfs_dmu_tx", "kstat.zfs.misc.dmu_tx."),
    ("dnodestats", "node_zfs_dnode", "kstat.zfs.misc.dnodestats."),
    ("fm", "node_zfs_fm", "kstat.zfs.misc.fm."),
    (
        "vdev_cache_stats",
        "node_zfs_vdev_cache",
        "kstat.zfs.misc.vdev_cache_stats.",
    ),
    (
        "vdev_mirror_stats",
        "node_zfs_vdev_mirror",
        "kstat.zfs.misc.vdev_mirror_stats.",
    ),
    ("xuio_stats", "node_zfs_xuio", "kstat.zfs.misc.xuio_stats."),
    (
        "zfetchstats",
        "node_zfs_zfetch",
        "kstat.zfs.misc.zfetchstats.",
    ),
    ("zil", "node_zfs_zil", "kstat.zfs.misc.zil."),
];

/// Pool states, in node_exporter's order.
pub const POOL_STATES: [&str; 7] = [
    "online",
    "degraded",
    "faulted",
    "offline",
    "removed",
    "unavail",
    "suspended",
];

/// Parses a kstat `name type data` table: the int64 (3) and uint64 (4) rows as (name, value).
pub fn parse_kstat(text: &str) -> anyhow::Result<Vec<(&str, f64)>> {
    let mut out = Vec::with_capacity(64);
    let mut table = false;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(name), Some(kind), Some(data)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if !table {
            table = name == "name" && kind == "type" && data == "data" && w.next().is_none();
            continue;
        }
        let v = match kind {
            "4" => util::go_parse_uint(data, 10, 64).map(|v| v as f64),
            "3" => data.parse::<i64>().ok().map(|v| v as f64),
            _ => continue,
        };
        let v = v.with_context(|| format!("could not parse value {data:?} of {name:?}"))?;
        out.push((name, v));
    }
    anyhow::ensure!(table, "no kstat table (name type data)");
    Ok(out)
}

/// Parses a pool's `io` kstat: the `nread ...` header (12 or more columns) and the rows after
/// it, as (column, value) pairs, one row after the other.
pub fn parse_pool_io(text: &str) -> anyhow::Result<Vec<(&str, u64)>> {
    let mut header: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(12);
    for line in text.lines() {
        if header.is_empty() {
            let mut w = line.split_whitespace();
            if w.clone().nth(11).is_some() && w.next() == Some("nread") {
                header.push("nread");
                header.extend(w);
            }
            continue;
        }
        let mut vals = line.split_whitespace();
        for col in &header {
            let v = vals
                .next()
                .with_context(|| format!("io row shorter than its header: {line:?}"))?;
            let v = util::go_parse_uint(v, 10, 64)
                .with_context(|| format!("could not parse value {v:?} of {col:?}"))?;
            out.push((*col, v));
        }
    }
    Ok(out)
}

/// One row of an objset kstat: the dataset it follows (None before any dataset_name row), the
/// field and its value.
pub type ObjsetRow<'a> = (Option<&'a str>, &'a str, u64);

/// Parses an `objset-*` kstat: uint64 rows, each with the dataset named before it.
pub fn parse_objset(text: &str) -> anyhow::Result<Vec<ObjsetRow<'_>>> {
    let mut out = Vec::with_capacity(8);
    let mut table = false;
    let mut dataset = None;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(name), Some(kind), Some(data)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if !table {
            table = name == "name" && kind == "type" && data == "data" && w.next().is_none();
            continue;
        }
        if name == "dataset_name" {
            // node_exporter's rule: from the first occurrence of the value in the line.
            dataset = line.find(data).map(|i| &line[i..]);
            continue;
        }
        if kind == "4" {
            let v = util::go_parse_uint(data, 10, 64)
                .with_context(|| format!("could not parse value {data:?} of {name:?}"))?;
            out.push((dataset, name, v));
        }
    }
    anyhow::ensure!(table, "no kstat table (name type data)");
    Ok(out)
}

/// A pool's `state` file: its first line, lower-cased.
pub fn parse_state(text: &str) -> String {
    text.lines().next().unwrap_or("").to_lowercase()
}

/// Family name and help for one kstat field: `prefix` + `_` + the field's last '.'-part with
/// '-' as '_' (just `prefix` for an empty one), and `help` + the field.
fn make_names(prefix: &str, help: &str, field: &str) -> (String, String) {
    let last = field.rsplit('.').next().unwrap_or(field);
    let mut name = String::with_capacity(prefix.len() + 1 + last.len());
    name.push_str(prefix);
    if !last.is_empty() {
        name.push('_');
        name.extend(last.chars().map(|c| if c == '-' { '_' } else { c }));
    }
    (name, format!("{help}{field}"))
}

/// A metric name Prometheus' text format takes without quoting.
fn valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Bytes of names kept for the life of the process, all caches together.
static KEPT: AtomicUsize = AtomicUsize::new(0);
const MAX_KEPT: usize = 1 << 20;
/// Fields remembered per source; more (a broken file inventing names) are named per scrape.
const MAX_FIELDS: usize = 4096;

/// A field and its family name and help (None: the field makes no valid name).
type Seen = (Box<str>, Option<(Text, Text)>);

/// Names for the fields of one kind of kstat file, made once: fields come in the same order
/// on every read, so a read checks each field against the one at the same place last time.
struct Names {
    prefix: &'static str,
    help: &'static str,
    seen: Mutex<Vec<Seen>>,
}

impl Names {
    const fn new(prefix: &'static str, help: &'static str) -> Names {
        Names {
            prefix,
            help,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// A reader of one file's fields in order.
    fn reader(&self) -> NameReader<'_> {
        NameReader {
            names: self,
            seen: self.seen.lock().unwrap_or_else(|p| p.into_inner()),
            at: 0,
        }
    }
}

struct NameReader<'a> {
    names: &'a Names,
    seen: std::sync::MutexGuard<'a, Vec<Seen>>,
    at: usize,
}

impl NameReader<'_> {
    /// The family name and help of `field`, or None if it makes no valid name. Also returns
    /// the field's slot, the same for the same field in every file of this kind.
    fn get(&mut self, field: &str) -> (usize, Option<(Text, Text)>) {
        let slot = match self.seen.get(self.at) {
            Some((f, _)) if &**f == field => Some(self.at),
            _ => self.seen.iter().position(|(f, _)| &**f == field),
        };
        if let Some(i) = slot {
            self.at = i + 1;
            return (i, self.seen[i].1.clone());
        }
        let (name, help) = make_names(self.names.prefix, self.names.help, field);
        let names = valid_name(&name).then_some((name, help));
        let i = self.seen.len();
        if i >= MAX_FIELDS {
            return (usize::MAX, names.map(|(n, h)| (n.into(), h.into())));
        }
        let kept = names.map(|(n, h)| {
            let size = n.len() + h.len();
            if KEPT.fetch_add(size, Ordering::Relaxed) + size <= MAX_KEPT {
                let n: &'static str = Box::leak(n.into_boxed_str());
                let h: &'static str = Box::leak(h.into_boxed_str());
                (Cow::Borrowed(n), Cow::Borrowed(h))
            } else {
                (Cow::Owned(n), Cow::Owned(h))
            }
        });
        self.seen.push((field.into(), kept.clone()));
        self.at = i + 1;
        (i, kept)
    }
}

/// Families indexed by field slot, for per-pool files (one family, many pools); fields
/// without a slot get a family per series (the encoder merges same-named families).
#[derive(Default)]
struct Slots {
    by_slot: Vec<Option<Family>>,
    extra: Vec<Family>,
}

impl Slots {
    fn family(&mut self, slot: usize, names: (Text, Text)) -> &mut Family {
        let new = || Family::new(names.0, names.1, MetricType::Untyped);
        if slot == usize::MAX {
            self.extra.push(new());
            let last = self.extra.len() - 1;
            return &mut self.extra[last];
        }
        if self.by_slot.len() <= slot {
            self.by_slot.resize_with(slot + 1, || None);
        }
        self.by_slot[slot].get_or_insert_with(new)
    }

    fn drain_into(self, out: &mut Vec<Family>) {
        out.extend(self.by_slot.into_iter().flatten());
        out.extend(self.extra);
    }
}

/// The directories in the kstat dir (pools, among the global files), sorted by name.
fn pool_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

struct Zfs {
    dir: PathBuf,
    files: Vec<(PathBuf, Names)>,
    io: Names,
    objset: Names,
}

impl Zfs {
    fn global(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        for (path, names) in &self.files {
            let text = match util::read_text(path) {
                Ok(t) => t,
                // Not in this OpenZFS version (node_exporter skips any file it cannot open).
                Err(e) if e.kind() != std::io::ErrorKind::InvalidData => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let rows = parse_kstat(&text).with_context(|| format!("parsing {}", path.display()))?;
            let mut r = names.reader();
            for (field, v) in rows {
                if let (_, Some((name, help))) = r.get(field) {
                    out.push(Family::single(name, help, MetricType::Untyped, v));
                }
            }
        }
        Ok(())
    }

    /// A pool file's text; None if the glob would not have matched it.
    fn pool_file(path: &Path) -> anyhow::Result<Option<String>> {
        match util::read_text(path) {
            Ok(t) => Ok(Some(t)),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn pools(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let pools = pool_dirs(&self.dir);
        if pools.is_empty() {
            return Ok(());
        }

        let mut io = Slots::default();
        for (pool, dir) in &pools {
            let path = dir.join("io");
            let Some(text) = Self::pool_file(&path)? else {
                continue;
            };
            let rows =
                parse_pool_io(&text).with_context(|| format!("parsing {}", path.display()))?;
            let mut r = self.io.reader();
            for (field, v) in rows {
                if let (slot, Some(names)) = r.get(field) {
                    io.family(slot, names).push(&[("zpool", pool)], v as f64);
                }
            }
        }
        io.drain_into(out);

        let mut objset = Slots::default();
        for (pool, dir) in &pools {
            for (_, path) in util::glob(dir, |n| n.starts_with("objset-")) {
                let Some(text) = Self::pool_file(&path)? else {
                    continue;
                };
                let rows =
                    parse_objset(&text).with_context(|| format!("parsing {}", path.display()))?;
                let mut r = self.objset.reader();
                for (dataset, field, v) in rows {
                    if let (slot, Some(names)) = r.get(field) {
                        let (zpool, dataset) = match dataset {
                            Some(d) => (pool.as_str(), d),
                            None => ("", ""),
                        };
                        objset
                            .family(slot, names)
                            .push(&[("zpool", zpool), ("dataset", dataset)], v as f64);
                    }
                }
            }
        }
        objset.drain_into(out);

        let mut state = Family::new(
            "node_zfs_zpool_state",
            "kstat.zfs.misc.state",
            MetricType::Gauge,
        );
        for (pool, dir) in &pools {
            let Some(text) = Self::pool_file(&dir.join("state"))? else {
                continue;
            };
            let actual = parse_state(&text);
            for s in POOL_STATES {
                state.push(
                    &[("zpool", pool), ("state", s)],
                    if actual == s { 1.0 } else { 0.0 },
                );
            }
        }
        out.push(state);
        Ok(())
    }
}

impl Collector for Zfs {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        if std::fs::metadata(&self.dir).is_err() {
            anyhow::bail!("ZFS / ZFS statistics are not available");
        }
        self.global(out)?;
        self.pools(out)
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let dir = opts.procfs.join("spl/kstat/zfs");
    let files = FILES
        .iter()
        .map(|(file, prefix, help)| (dir.join(file), Names::new(prefix, help)))
        .collect();
    Ok(Box::new(Zfs {
        dir,
        files,
        io: Names::new("node_zfs_zpool", "kstat.zfs.misc.io."),
        objset: Names::new("node_zfs_zpool_dataset", "kstat.zfs.misc.objset."),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARC: &str = "6 1 0x01 91 4368 5266997922 97951858082072
name                            type data
hits                            4    8772612
c_min                           4    33554432
arc_meta_used                   4    308103632
arc-dash                        4    7
signed                          3    -12
text                            7    some words
weird                           9    x
short 4
memory_throttle_count           4    0
";

    #[test]
    fn kstat_tables() {
        let rows = parse_kstat(ARC).unwrap();
        assert_eq!(
            rows,
            [
                ("hits", 8772612.0),
                ("c_min", 33554432.0),
                ("arc_meta_used", 308103632.0),
                ("arc-dash", 7.0),
                ("signed", -12.0),
                ("memory_throttle_count", 0.0),
            ]
        );
        // Rows before the header are not rows; a table needs its header.
        assert_eq!(
            parse_kstat("hits 4 1\nname type data\nmisses 4 2\n").unwrap(),
            [("misses", 2.0)]
        );
        assert!(parse_kstat("").is_err());
        assert!(parse_kstat("hits 4 1\n").is_err());
        assert!(parse_kstat("name type data extra\nhits 4 1\n").is_err());
        // Numbers that do not parse as their type fail.
        for bad in ["-1", "+1", "1.5", "18446744073709551616", "x"] {
            assert!(
                parse_kstat(&format!("name type data\nhits 4 {bad}\n")).is_err(),
                "{bad}"
            );
        }
        assert!(parse_kstat("name type data\nx 3 9223372036854775808\n").is_err());
        assert_eq!(
            parse_kstat("name type data\nx 3 +5\n").unwrap(),
            [("x", 5.0)]
        );
    }

    const IO: &str = "12 3 0x00 1 80 79205351707403 395818011156865
nread    nwritten reads    writes   wtime    wlentime wupdate  rtime    rlentime rupdate  wcnt     rcnt
1884160  3206144  22       132      7155162  104112268 79210489694949 24168078 104112268 79210489849220 0        0
";

    #[test]
    fn pool_io() {
        let rows = parse_pool_io(IO).unwrap();
        assert_eq!(rows.len(), 12);
        assert_eq!(rows[0], ("nread", 1884160));
        assert_eq!(rows[11], ("rcnt", 0));
        // No header (fewer than 12 columns): nothing.
        assert!(parse_pool_io("nread nwritten\n1 2\n").unwrap().is_empty());
        // A short or garbled row fails.
        assert!(parse_pool_io(&IO.replace(" 0        0\n", "\n")).is_err());
        assert!(parse_pool_io(&IO.replace("1884160", "-1")).is_err());
        assert!(parse_pool_io(&format!("{IO}\n")).is_err());
    }

    #[test]
    fn objsets_and_states() {
        let text = "23 1 0x01 7 2160 221578688875 6665999035587
name                            type data
early                           4    1
dataset_name                    7    pool3/dataset with  space
writes                          4    4
nunlinks                        4    3
flags                           1    9
";
        assert_eq!(
            parse_objset(text).unwrap(),
            [
                (None, "early", 1),
                (Some("pool3/dataset with  space"), "writes", 4),
                (Some("pool3/dataset with  space"), "nunlinks", 3),
            ]
        );
        // node_exporter's rule: the label starts where the name first appears in the line.
        let quirk = "name type data\ndataset_name 7 data\nreads 4 2\n";
        assert_eq!(
            parse_objset(quirk).unwrap(),
            [(Some("dataset_name 7 data"), "reads", 2)]
        );
        assert!(parse_objset("dataset_name 7 x\n").is_err());
        assert!(parse_objset("name type data\nreads 4 two\n").is_err());
        assert_eq!(parse_state("SUSPENDED\nmore\n"), "suspended");
        assert_eq!(parse_state(""), "");
    }

    #[test]
    fn names_follow_node_exporters_rule() {
        assert_eq!(
            make_names("node_zfs_arc", "kstat.zfs.misc.arcstats.", "arc-dash"),
            (
                "node_zfs_arc_arc_dash".to_string(),
                "kstat.zfs.misc.arcstats.arc-dash".to_string()
            )
        );
        assert_eq!(
            make_names("node_zfs_arc", "h.", "a.b-c").0,
            "node_zfs_arc_b_c"
        );
        assert_eq!(make_names("node_zfs_arc", "h.", "a.").0, "node_zfs_arc");
        assert!(valid_name("node_zfs_arc_l2_hits"));
        assert!(!valid_name("node_zfs_arc_x+y"));
        assert!(!valid_name("node_zfs_arc_é"));

        // The same names come back for the same fields, in any order.
        let names = Names::new("node_zfs_zpool", "kstat.zfs.misc.io.");
        let mut r = names.reader();
        let (a, na) = r.get("nread");
        let (b, _) = r.get("nwritten");
        let (_, bad) = r.get("x+y");
        drop(r);
        assert!(bad.is_none());
        let mut r = names.reader();
        assert_eq!(r.get("nwritten").0, b);
        assert_eq!(r.get("nread"), (a, na));
        drop(r);
        assert_eq!(names.seen.lock().unwrap().len(), 3);
    }

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (p, t) in files {
            let p = root.join("spl/kstat/zfs").join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
    }

    fn collect(root: &Path) -> anyhow::Result<Vec<Family>> {
        let c =
            build(&Options::from_flags([format!("--path.procfs={}", root.display())]).unwrap())?;
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(crate::expose::encode::normalize(out))
    }

    fn get<'a>(fams: &'a [Family], name: &str) -> &'a Family {
        fams.iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn pools_and_globals() {
        let d = tempfile::tempdir().unwrap();
        // No ZFS: a failure (node_exporter's ErrNoData), nothing read.
        assert!(collect(d.path()).is_err());
        let objset = "name type data\ndataset_name 7 tank/home\nwrites 4 4\nreads 4 2\n";
        write(
            d.path(),
            &[
                ("arcstats", ARC),
                ("dmu_tx", "name type data\ndmu_tx_assigned 4 5\n"),
                ("tank/io", IO),
                ("tank/objset-0x36", objset),
                ("tank/objset-0x1", &objset.replace("tank/home", "tank")),
                ("tank/state", "ONLINE\n"),
                ("backup/state", "DEGRADED\n"),
            ],
        );
        let fams = collect(d.path()).unwrap();
        let arc = get(&fams, "node_zfs_arc_arc_dash");
        assert_eq!(arc.help, "kstat.zfs.misc.arcstats.arc-dash");
        assert_eq!(arc.kind, MetricType::Untyped);
        assert_eq!(get(&fams, "node_zfs_arc_signed").samples[0].value, -12.0);
        assert_eq!(
            get(&fams, "node_zfs_dmu_tx_dmu_tx_assigned").samples[0].value,
            5.0
        );
        let nread = get(&fams, "node_zfs_zpool_nread");
        assert_eq!(nread.help, "kstat.zfs.misc.io.nread");
        assert_eq!(nread.samples[0].labels[0].1, "tank");
        let writes = get(&fams, "node_zfs_zpool_dataset_writes");
        assert_eq!(writes.help, "kstat.zfs.misc.objset.writes");
        let labels: Vec<Vec<&str>> = writes
            .samples
            .iter()
            .map(|s| s.labels.iter().map(|l| l.1.as_str()).collect())
            .collect();
        assert_eq!(labels, [vec!["tank", "tank"], vec!["tank/home", "tank"]]);
        let state = get(&fams, "node_zfs_zpool_state");
        assert_eq!(state.kind, MetricType::Gauge);
        assert_eq!(state.samples.len(), 14);
        let on: Vec<String> = state
            .samples
            .iter()
            .filter(|s| s.value == 1.0)
            .map(|s| format!("{}={}", s.labels[1].1, s.labels[0].1))
            .collect();
        assert_eq!(on, ["backup=degraded", "tank=online"]);
        // A scrape again gives the same (names come from the cache now).
        assert_eq!(collect(d.path()).unwrap(), fams);
    }

    #[test]
    fn garbled_files_fail_only_this_collector() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[("zil", "no table here\n")]);
        assert!(collect(d.path()).is_err());
        write(
            d.path(),
            &[("zil", "name type data\nzil_commit_count 4 1\n")],
        );
        assert!(collect(d.path()).is_ok());
        write(d.path(), &[("tank/io", "nread nwritten reads writes wtime wlentime wupdate rtime rlentime rupdate wcnt rcnt\n1 2\n")]);
        assert!(collect(d.path()).is_err());
        write(
            d.path(),
            &[("tank/io", IO), ("tank/objset-0x1", "garbage\n")],
        );
        assert!(collect(d.path()).is_err());
        write(d.path(), &[("tank/objset-0x1", "name type data\n")]);
        assert!(collect(d.path()).is_ok());
        // An unreadable pool file (here: a directory in place of the state file) fails.
        std::fs::create_dir_all(d.path().join("spl/kstat/zfs/other/state")).unwrap();
        assert!(collect(d.path()).is_err());
    }
}
