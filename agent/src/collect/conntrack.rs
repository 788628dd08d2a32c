//! conntrack collector: table size and limit from /proc/sys/net/netfilter, and the per-CPU
//! statistics of /proc/net/stat/nf_conntrack summed over CPUs (all gauges, as node_exporter
//! 1.12 has them). The statistics are read by position like procfs does (16 or 17 hex
//! columns; search_restart only in the 17th, else 0), so kernels that renamed unused columns
//! (searched → clashres, delete_list → chainlength) read the same.

use std::path::Path;

use anyhow::Context;

use super::attr::HeldFile;
use super::{Collector, Family, MetricType, Options, Text};

struct Conntrack {
    files: Files,
}

/// (column, name, help).
const STATS: &[(usize, &str, &str)] = &[
    (2, "found", "Number of searched entries which were successful."),
    (4, "invalid", "Number of packets seen which can not be tracked."),
    (5, "ignore", "Number of packets seen which are already connected to a conntrack entry."),
    (8, "insert", "Number of entries inserted into the list."),
    (9, "insert_failed", "Number of entries for which list insertion was attempted but failed."),
    (10, "drop", "Number of packets dropped due to conntrack failure."),
    (11, "early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
    (16, "search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
];

fn gauge(out: &mut Vec<Family>, name: impl Into<Text>, help: &'static str, v: f64) {
    out.push(Family::single(name, help, MetricType::Gauge, v));
}

/// Sums the per-CPU lines of /proc/net/stat/nf_conntrack (the first line is the header).
fn sum_stats(text: &str) -> anyhow::Result<[u64; 17]> {
    let mut sums = [0u64; 17];
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        anyhow::ensure!(
            cols.len() == 16 || cols.len() == 17,
            "invalid number of fields ({}) in {line:?}",
            cols.len()
        );
        for (sum, c) in sums.iter_mut().zip(&cols) {
            let v = u64::from_str_radix(c, 16).with_context(|| format!("value {c:?}"))?;
            *sum = sum.wrapping_add(v);
        }
    }
    Ok(sums)
}

/// The conntrack table: its size, its limit and the per-CPU statistics summed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Table {
    pub entries: f64,
    pub limit: f64,
    /// /proc/net/stat/nf_conntrack summed over CPUs, by column; `None` without the file.
    pub stats: Option<[u64; 17]>,
}

impl Table {
    /// Packets dropped because conntrack failed (the table was full).
    pub fn drop(&self) -> Option<u64> {
        self.stats.map(|s| s[10])
    }
    /// Entries dropped to make room for new ones at the table's maximum.
    pub fn early_drop(&self) -> Option<u64> {
        self.stats.map(|s| s[11])
    }
    /// Entries whose insertion into the table failed.
    pub fn insert_failed(&self) -> Option<u64> {
        self.stats.map(|s| s[9])
    }
}

/// Reads the table's size and limit and its statistics. Without the module the size and
/// limit are absent: an error (no data).
pub fn read(procfs: &Path) -> anyhow::Result<Table> {
    Files::new(procfs).read()
}

/// The table's three files, held open by the collector.
struct Files {
    count: HeldFile,
    max: HeldFile,
    stats: HeldFile,
}

impl Files {
    fn new(procfs: &Path) -> Files {
        let sysctl = procfs.join("sys/net/netfilter");
        Files {
            count: HeldFile::new(sysctl.join("nf_conntrack_count")),
            max: HeldFile::new(sysctl.join("nf_conntrack_max")),
            stats: HeldFile::new(procfs.join("net/stat/nf_conntrack")),
        }
    }

    fn read(&self) -> anyhow::Result<Table> {
        let num = |file: &HeldFile| {
            file.text()
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .with_context(|| format!("reading {}", file.path().display()))
        };
        let (entries, limit) = (num(&self.count)?, num(&self.max)?);
        let path = self.stats.path();
        let stats = match self.stats.text() {
            Ok(text) => {
                Some(sum_stats(&text).with_context(|| format!("parsing {}", path.display()))?)
            }
            // node_exporter still exports the table size then (and flags the scrape); the size
            // and limit matter most, so keep them and report success.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Table {
            entries,
            limit,
            stats,
        })
    }
}

impl Collector for Conntrack {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let t = self.files.read()?;
        gauge(
            out,
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            t.entries,
        );
        gauge(
            out,
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            t.limit,
        );
        let Some(sums) = t.stats else {
            return Ok(());
        };
        for (col, name, help) in STATS {
            gauge(
                out,
                format!("node_nf_conntrack_stat_{name}"),
                help,
                sums[*col] as f64,
            );
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Conntrack {
        files: Files::new(&opts.procfs),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_KERNEL: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000010  00000000 00000001 00000000 00000002 00000003 00000000 00000000 00000004 00000005 00000006 00000007 00000000  00000000 00000000 00000000 00000008
00000010  00000000 00000001 00000000 00000002 00000003 00000000 00000000 00000004 00000005 00000006 00000007 00000000  00000000 00000000 00000000 0000000a
";

    fn run(files: &[(&str, &str)]) -> anyhow::Result<Vec<(String, f64)>> {
        let d = tempfile::tempdir().unwrap();
        for (f, t) in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        let c = Conntrack {
            files: Files::new(d.path()),
        };
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out
            .into_iter()
            .map(|f| (f.name.into_owned(), f.samples[0].value))
            .collect())
    }

    const COUNT: (&str, &str) = ("sys/net/netfilter/nf_conntrack_count", "5\n");
    const MAX: (&str, &str) = ("sys/net/netfilter/nf_conntrack_max", "262144\n");

    #[test]
    fn sums_cpus_by_position() {
        let m = run(&[COUNT, MAX, ("net/stat/nf_conntrack", NEW_KERNEL)]).unwrap();
        let get = |n: &str| m.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("node_nf_conntrack_entries"), Some(5.0));
        assert_eq!(get("node_nf_conntrack_entries_limit"), Some(262144.0));
        assert_eq!(get("node_nf_conntrack_stat_found"), Some(2.0));
        assert_eq!(get("node_nf_conntrack_stat_invalid"), Some(4.0));
        assert_eq!(get("node_nf_conntrack_stat_ignore"), Some(6.0));
        assert_eq!(get("node_nf_conntrack_stat_insert"), Some(8.0));
        assert_eq!(get("node_nf_conntrack_stat_insert_failed"), Some(10.0));
        assert_eq!(get("node_nf_conntrack_stat_drop"), Some(12.0));
        assert_eq!(get("node_nf_conntrack_stat_early_drop"), Some(14.0));
        assert_eq!(get("node_nf_conntrack_stat_search_restart"), Some(18.0));
        assert_eq!(m.len(), 10);
        // The typed accessors read the same columns the families do.
        let d = tempfile::tempdir().unwrap();
        for (f, t) in [COUNT, MAX, ("net/stat/nf_conntrack", NEW_KERNEL)] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        let t = read(d.path()).unwrap();
        assert_eq!(
            (t.drop(), t.early_drop(), t.insert_failed()),
            (Some(12), Some(14), Some(10))
        );
    }

    #[test]
    fn old_kernel_without_search_restart_reads_zero() {
        let old = "entries searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error expect_new expect_create expect_delete\n\
                   00000001 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n";
        let m = run(&[COUNT, MAX, ("net/stat/nf_conntrack", old)]).unwrap();
        assert!(m.contains(&("node_nf_conntrack_stat_search_restart".into(), 0.0)));
    }

    #[test]
    fn missing_and_malformed_files() {
        // No module: failure.
        assert!(run(&[]).is_err());
        assert!(run(&[COUNT]).is_err());
        assert!(run(&[("sys/net/netfilter/nf_conntrack_count", "x\n"), MAX]).is_err());
        // No per-CPU statistics: table size and limit only.
        assert_eq!(run(&[COUNT, MAX]).unwrap().len(), 2);
        // A short line or a non-hex value fails.
        assert!(run(&[COUNT, MAX, ("net/stat/nf_conntrack", "h\n0 0 0\n")]).is_err());
        let bad = NEW_KERNEL.replace("0000000a", "zz");
        assert!(run(&[COUNT, MAX, ("net/stat/nf_conntrack", &bad)]).is_err());
    }
}
