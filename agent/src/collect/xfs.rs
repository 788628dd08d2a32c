//! xfs collector: node_xfs_*_total{device} from /sys/fs/xfs/<device>/stats/stats, one set per
//! mounted XFS filesystem, as node_exporter 1.12 reads it through procfs' xfs package. It reads
//! only the per-device sysfs files (not the global /proc/fs/xfs/stat), so a host without XFS
//! (no /sys/fs/xfs, or no filesystem in it) reports success with no families.
//!
//! The stats file is parsed as procfs parses it: every line after its label must be unsigned
//! numbers (32-bit, or 64-bit for `xpc`, `defer_relog` and `gc xpc`), and every section procfs
//! knows must have its number of values, or the whole collector fails for the scrape. Lines of
//! a single word are skipped; unknown sections are only checked for numbers.

use std::path::PathBuf;

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// The counters node_exporter exports from one stats file (the sections it reads).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// `extent_alloc`: extents allocated, blocks allocated, extents freed, blocks freed.
    pub extent_alloc: [u32; 4],
    /// `abt`: allocation B-tree lookups, compares, records inserted, records deleted.
    pub abt: [u32; 4],
    /// `blk_map`: reads, writes, unmaps, extent list insertions, deletions, lookups, compares.
    pub blk_map: [u32; 7],
    /// `bmbt`: block map B-tree lookups, compares, records inserted, records deleted.
    pub bmbt: [u32; 4],
    /// `dir`: lookups, creates, removes, getdents.
    pub dir: [u32; 4],
    /// `ig`: attempts, found, recycle, missed, duplicate, reclaims, attribute changes.
    pub ig: [u32; 7],
    /// `rw`: write calls, read calls.
    pub rw: [u32; 2],
    /// `vnodes`: active, allocate, get, hold, release, reclaim, remove (and free, not exported).
    pub vnodes: [u32; 7],
}

/// How many values a section procfs knows must have.
#[derive(Clone, Copy)]
enum Count {
    Exactly(usize),
    OneOf(usize, usize),
    AtLeast(usize),
}

impl Count {
    fn allows(self, n: usize) -> bool {
        match self {
            Count::Exactly(c) => n == c,
            Count::OneOf(a, b) => n == a || n == b,
            Count::AtLeast(c) => n >= c,
        }
    }
}

/// Sections procfs checks, with their value counts (32-bit values unless listed in
/// [`WIDE`]).
const SECTIONS: &[(&str, Count)] = &[
    ("extent_alloc", Count::Exactly(4)),
    ("abt", Count::Exactly(4)),
    ("blk_map", Count::Exactly(7)),
    ("bmbt", Count::Exactly(4)),
    ("dir", Count::Exactly(4)),
    ("trans", Count::Exactly(3)),
    ("ig", Count::Exactly(7)),
    ("log", Count::Exactly(5)),
    ("push_ail", Count::Exactly(10)),
    ("xstrat", Count::Exactly(2)),
    ("rw", Count::Exactly(2)),
    ("attr", Count::Exactly(4)),
    ("icluster", Count::Exactly(3)),
    ("vnodes", Count::OneOf(7, 8)),
    ("buf", Count::Exactly(9)),
    ("abtb2", Count::Exactly(15)),
    ("abtc2", Count::Exactly(15)),
    ("bmbt2", Count::Exactly(15)),
    ("ibt2", Count::Exactly(15)),
    ("fibt2", Count::Exactly(15)),
    ("rmapbt", Count::Exactly(15)),
    ("refcntbt", Count::Exactly(15)),
    ("rmapbt_mem", Count::Exactly(15)),
    ("rcbagbt", Count::Exactly(15)),
    ("rtrmapbt", Count::Exactly(15)),
    ("rtrmapbt_mem", Count::Exactly(15)),
    ("rtrefcntbt", Count::Exactly(15)),
    ("qm", Count::OneOf(8, 9)),
    ("debug", Count::Exactly(1)),
    ("zoned", Count::AtLeast(3)),
    ("metafile", Count::AtLeast(1)),
];

/// Sections of 64-bit values, with their counts (`gc xpc` has a two-word label).
const WIDE: &[(&str, usize)] = &[("xpc", 3), ("defer_relog", 1), ("gc xpc", 1)];

/// Parses a stats file (/sys/fs/xfs/<dev>/stats/stats or /proc/fs/xfs/stat).
pub fn parse_stats(text: &str) -> anyhow::Result<Stats> {
    let mut s = Stats::default();
    let mut words: Vec<&str> = Vec::with_capacity(20);
    let mut vals: Vec<u32> = Vec::with_capacity(20);
    for line in text.lines() {
        words.clear();
        words.extend(line.split_whitespace());
        if words.len() < 2 {
            continue;
        }
        let (label, values) = if words[0] == "gc" && words.len() >= 3 && words[1] == "xpc" {
            ("gc xpc", &words[2..])
        } else {
            (words[0], &words[1..])
        };
        if let Some((_, n)) = WIDE.iter().find(|(w, _)| *w == label) {
            for w in values {
                util::go_parse_uint(w, 10, 64)
                    .with_context(|| format!("invalid value {w:?} in XFS stats line {line:?}"))?;
            }
            anyhow::ensure!(
                values.len() == *n,
                "incorrect number of values for XFS {label} stats: {}",
                values.len()
            );
            continue;
        }
        vals.clear();
        for w in values {
            let v = util::go_parse_uint(w, 10, 64)
                .and_then(|v| u32::try_from(v).ok())
                .with_context(|| format!("invalid value {w:?} in XFS stats line {line:?}"))?;
            vals.push(v);
        }
        let Some((_, count)) = SECTIONS.iter().find(|(n, _)| *n == label) else {
            continue;
        };
        anyhow::ensure!(
            count.allows(vals.len()),
            "incorrect number of values for XFS {label} stats: {}",
            vals.len()
        );
        let dst: &mut [u32] = match label {
            "extent_alloc" => &mut s.extent_alloc,
            "abt" => &mut s.abt,
            "blk_map" => &mut s.blk_map,
            "bmbt" => &mut s.bmbt,
            "dir" => &mut s.dir,
            "ig" => &mut s.ig,
            "rw" => &mut s.rw,
            "vnodes" => &mut s.vnodes,
            _ => continue,
        };
        let n = dst.len();
        dst.copy_from_slice(&vals[..n]);
    }
    Ok(s)
}

/// Which section a family reads.
#[derive(Clone, Copy)]
enum Section {
    ExtentAlloc,
    Abt,
    BlkMap,
    Bmbt,
    Dir,
    Ig,
    Rw,
    Vnodes,
}

impl Stats {
    fn section(&self, s: Section) -> &[u32] {
        match s {
            Section::ExtentAlloc => &self.extent_alloc,
            Section::Abt => &self.abt,
            Section::BlkMap => &self.blk_map,
            Section::Bmbt => &self.bmbt,
            Section::Dir => &self.dir,
            Section::Ig => &self.ig,
            Section::Rw => &self.rw,
            Section::Vnodes => &self.vnodes,
        }
    }
}

/// node_exporter's 39 families: (section, value index, name, help). All counters {device}.
const FAMILIES: &[(Section, usize, &str, &str)] = {
    use Section::*;
    &[
        (ExtentAlloc, 0, "node_xfs_extent_allocation_extents_allocated_total", "Number of extents allocated for a filesystem."),
        (ExtentAlloc, 1, "node_xfs_extent_allocation_blocks_allocated_total", "Number of blocks allocated for a filesystem."),
        (ExtentAlloc, 2, "node_xfs_extent_allocation_extents_freed_total", "Number of extents freed for a filesystem."),
        (ExtentAlloc, 3, "node_xfs_extent_allocation_blocks_freed_total", "Number of blocks freed for a filesystem."),
        (Abt, 0, "node_xfs_allocation_btree_lookups_total", "Number of allocation B-tree lookups for a filesystem."),
        (Abt, 1, "node_xfs_allocation_btree_compares_total", "Number of allocation B-tree compares for a filesystem."),
        (Abt, 2, "node_xfs_allocation_btree_records_inserted_total", "Number of allocation B-tree records inserted for a filesystem."),
        (Abt, 3, "node_xfs_allocation_btree_records_deleted_total", "Number of allocation B-tree records deleted for a filesystem."),
        (BlkMap, 0, "node_xfs_block_mapping_reads_total", "Number of block map for read operations for a filesystem."),
        (BlkMap, 1, "node_xfs_block_mapping_writes_total", "Number of block map for write operations for a filesystem."),
        (BlkMap, 2, "node_xfs_block_mapping_unmaps_total", "Number of block unmaps (deletes) for a filesystem."),
        (BlkMap, 3, "node_xfs_block_mapping_extent_list_insertions_total", "Number of extent list insertions for a filesystem."),
        (BlkMap, 4, "node_xfs_block_mapping_extent_list_deletions_total", "Number of extent list deletions for a filesystem."),
        (BlkMap, 5, "node_xfs_block_mapping_extent_list_lookups_total", "Number of extent list lookups for a filesystem."),
        (BlkMap, 6, "node_xfs_block_mapping_extent_list_compares_total", "Number of extent list compares for a filesystem."),
        (Bmbt, 0, "node_xfs_block_map_btree_lookups_total", "Number of block map B-tree lookups for a filesystem."),
        (Bmbt, 1, "node_xfs_block_map_btree_compares_total", "Number of block map B-tree compares for a filesystem."),
        (Bmbt, 2, "node_xfs_block_map_btree_records_inserted_total", "Number of block map B-tree records inserted for a filesystem."),
        (Bmbt, 3, "node_xfs_block_map_btree_records_deleted_total", "Number of block map B-tree records deleted for a filesystem."),
        (Dir, 0, "node_xfs_directory_operation_lookup_total", "Number of file name directory lookups which miss the operating systems directory name lookup cache."),
        (Dir, 1, "node_xfs_directory_operation_create_total", "Number of times a new directory entry was created for a filesystem."),
        (Dir, 2, "node_xfs_directory_operation_remove_total", "Number of times an existing directory entry was created for a filesystem."),
        (Dir, 3, "node_xfs_directory_operation_getdents_total", "Number of times the directory getdents operation was performed for a filesystem."),
        (Ig, 0, "node_xfs_inode_operation_attempts_total", "Number of times the OS looked for an XFS inode in the inode cache."),
        (Ig, 1, "node_xfs_inode_operation_found_total", "Number of times the OS looked for and found an XFS inode in the inode cache."),
        (Ig, 2, "node_xfs_inode_operation_recycled_total", "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled."),
        (Ig, 3, "node_xfs_inode_operation_missed_total", "Number of times the OS looked for an XFS inode in the cache, but did not find it."),
        (Ig, 4, "node_xfs_inode_operation_duplicates_total", "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already been added by another process."),
        (Ig, 5, "node_xfs_inode_operation_reclaims_total", "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose."),
        (Ig, 6, "node_xfs_inode_operation_attribute_changes_total", "Number of times the OS explicitly changed the attributes of an XFS inode."),
        (Rw, 1, "node_xfs_read_calls_total", "Number of read(2) system calls made to files in a filesystem."),
        (Rw, 0, "node_xfs_write_calls_total", "Number of write(2) system calls made to files in a filesystem."),
        (Vnodes, 0, "node_xfs_vnode_active_total", "Number of vnodes not on free lists for a filesystem."),
        (Vnodes, 1, "node_xfs_vnode_allocate_total", "Number of times vn_alloc called for a filesystem."),
        (Vnodes, 2, "node_xfs_vnode_get_total", "Number of times vn_get called for a filesystem."),
        (Vnodes, 3, "node_xfs_vnode_hold_total", "Number of times vn_hold called for a filesystem."),
        (Vnodes, 4, "node_xfs_vnode_release_total", "Number of times vn_rele called for a filesystem."),
        (Vnodes, 5, "node_xfs_vnode_reclaim_total", "Number of times vn_reclaim called for a filesystem."),
        (Vnodes, 6, "node_xfs_vnode_remove_total", "Number of times vn_remove called for a filesystem."),
    ]
};

/// One family per counter, one series per filesystem.
fn render(stats: &[(String, Stats)], out: &mut Vec<Family>) {
    if stats.is_empty() {
        return;
    }
    for (section, i, name, help) in FAMILIES {
        let mut f = Family::new(*name, *help, MetricType::Counter);
        for (dev, s) in stats {
            f.push(&[("device", dev)], s.section(*section)[*i] as f64);
        }
        out.push(f);
    }
}

struct Xfs {
    dir: PathBuf,
}

impl Xfs {
    /// Every /sys/fs/xfs/*/stats/stats, by device name; any file that cannot be read or parsed
    /// fails the collector, as in procfs.
    fn read(&self) -> anyhow::Result<Vec<(String, Stats)>> {
        let mut out = Vec::new();
        for (dev, dir) in util::glob(&self.dir, |_| true) {
            let path = dir.join("stats/stats");
            let text = match util::read_text(&path) {
                Ok(t) => t,
                // Not a filesystem directory (the glob would not have matched it).
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::NotFound)
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    continue
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let s = parse_stats(&text).with_context(|| format!("parsing {}", path.display()))?;
            out.push((dev, s));
        }
        Ok(out)
    }
}

impl Collector for Xfs {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        render(&self.read()?, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Xfs {
        dir: opts.sysfs.join("fs/xfs"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "extent_alloc 1 872 0 0
abt 0 0 0 0
blk_map 61 29 1 1 1 91 0
bmbt 0 0 0 0
dir 3 2 1 52
trans 4 40 0
ig 5 1 0 4 0 0 1
log 8 21 0 5821 4
push_ail 44 0 1102 15 0 2 0 2 0 2
xstrat 1 0
rw 28 7
attr 0 0 0 0
icluster 2 2 2
vnodes 4 0 0 0 1 1 1 0
buf 22 25 14 0 0 8 0 8 8
abtb2 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0
qm 0 0 0 0 0 0 0 0
xpc 3571712 3568056 18446744073709551615
gc xpc 5
defer_relog 18446744073709551615
zoned 1 2 3 4
debug 0
";

    #[test]
    fn parses_the_sections_node_exporter_reads() {
        let s = parse_stats(STATS).unwrap();
        assert_eq!(s.extent_alloc, [1, 872, 0, 0]);
        assert_eq!(s.blk_map, [61, 29, 1, 1, 1, 91, 0]);
        assert_eq!(s.dir, [3, 2, 1, 52]);
        assert_eq!(s.ig, [5, 1, 0, 4, 0, 0, 1]);
        assert_eq!(s.rw, [28, 7]);
        assert_eq!(s.vnodes, [4, 0, 0, 0, 1, 1, 1]);
        // Empty input and single words are no sections.
        assert_eq!(parse_stats("").unwrap(), Stats::default());
        assert_eq!(parse_stats("abt\n\n").unwrap(), Stats::default());
        // Unknown sections only need numbers; old kernels' 7-value vnodes is fine.
        let s = parse_stats("future 1 2 3\ngc 1 2\nvnodes 1 2 3 4 5 6 7\n").unwrap();
        assert_eq!(s.vnodes, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn garbled_files_fail_as_in_procfs() {
        for bad in [
            "abt 1 2 3\n",                        // wrong count
            "rw 1 2 3\n",                         // wrong count
            "abt 1 2 3 x\n",                      // not a number
            "future 1 -2\n",                      // unknown section, still numbers
            "abt 1 2 3 4294967296\n",             // over 32 bits
            "abt +1 2 3 4\n",                     // Go takes no sign
            "xpc 1 2\n",                          // 64-bit section, wrong count
            "gc xpc 1 2\n",                       // wrong count
            "gc foo 1\n",                         // not "gc xpc": numbers expected
            "zoned 1 2\n",                        // at least 3
            "qm 1 2 3 4 5 6 7 8 9 10\n",          // 8 or 9
            "vnodes 1 2 3 4 5 6\n",               // 7 or 8
            "defer_relog 18446744073709551616\n", // over 64 bits
        ] {
            assert!(parse_stats(bad).is_err(), "{bad:?}");
        }
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        d
    }

    fn collect(root: &std::path::Path) -> anyhow::Result<Vec<Family>> {
        let c = build(&Options::from_flags([format!("--path.sysfs={}", root.display())]).unwrap())?;
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out)
    }

    #[test]
    fn one_series_per_filesystem() {
        let d = tree(&[
            ("fs/xfs/sdb1/stats/stats", "rw 1 2\n"),
            ("fs/xfs/sda1/stats/stats", STATS),
            // The global stats dir has no stats/stats below it.
            ("fs/xfs/stats/stats", STATS),
            ("fs/xfs/stats/stats_clear", "0\n"),
        ]);
        let out = collect(d.path()).unwrap();
        assert_eq!(out.len(), 39);
        assert!(out.iter().all(|f| f.kind == MetricType::Counter));
        let read = out
            .iter()
            .find(|f| f.name == "node_xfs_read_calls_total")
            .unwrap();
        let got: Vec<(&str, f64)> = read
            .samples
            .iter()
            .map(|s| (s.labels[0].1.as_str(), s.value))
            .collect();
        assert_eq!(got, [("sda1", 7.0), ("sdb1", 2.0)]);
    }

    #[test]
    fn no_xfs_is_success_without_families_and_bad_file_fails() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(d.path()).unwrap().is_empty());
        let d = tree(&[("fs/xfs/sda1/stats/stats", "abt 1\n")]);
        assert!(collect(d.path()).is_err());
    }
}
