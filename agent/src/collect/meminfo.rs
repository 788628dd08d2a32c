//! meminfo collector: node_memory_* from /proc/meminfo, one family per line the kernel prints.
//!
//! node_exporter 1.12 reads /proc/meminfo through procfs's fixed `Meminfo` struct and drops every
//! line that struct does not know (Hugetlb, KReclaimable, SecPageTables, FileHugePages, …);
//! 1.5 exported every line. nodetune exports every line, so that no field a host had under
//! node_exporter 1.5 goes missing: the fields 1.12 knows get 1.12's names and values, the
//! others 1.5's naming rule, which gives the same names for everything the kernel prints:
//! `Active(anon)` → `Active_anon`, `_bytes` appended (and the value ×1024) for lines in kB,
//! no suffix for lines without a unit (`HugePages_Total`). Help is node_exporter's
//! "Memory information field NAME."; a name ending in `_total` is a counter, as there.
//!
//! Parsing follows procfs (1.12): a line is `Key: value [kB]`; a value that is not an unsigned
//! integer (Go's `ParseUint(s, 0, 64)`: `0x`/`0o`/`0b`/leading-0 prefixes and `_` separators
//! allowed), a unit other than `kB`, or a line with one field or more than three fails the
//! collector. Empty lines are skipped (procfs would panic on them; 1.5 skipped them). A key
//! without its colon is not a field procfs knows: skipped. If a key repeats, the last line wins,
//! as in node_exporter's map.
//!
//! Cost: the names of the fields a current kernel prints are compile-time literals, found by
//! binary search. A field outside that table gets its name built once and remembered (leaked,
//! at most [`MAX_LEARNED`] of them), so no scrape allocates a name.

use std::sync::Mutex;

use anyhow::Context;

use super::attr::HeldFile;
use super::{util, Collector, Family, MetricType, Options, Text};

/// How a known field's value and name are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// A `…Bytes` field of procfs's struct (node_exporter 1.12): named `…_bytes` whatever the
    /// line's unit; the value ×1024 when the line is in kB.
    Bytes,
    /// `HugePages_*`: 1.12 exports procfs's raw number, unit or not.
    Count,
    /// A field 1.12 drops and 1.5 exported (1.5's rule): only a line in kB matches this entry;
    /// a line without a unit takes the learned path (no `_bytes` suffix).
    KbOnly,
}

/// /proc/meminfo key → metric name, help and rule; sorted by key (binary search).
macro_rules! fields {
    ($(($key:literal, $suffix:literal, $rule:ident),)*) => {
        &[$(Known {
            key: $key,
            name: concat!("node_memory_", $suffix),
            help: concat!("Memory information field ", $suffix, "."),
            rule: Rule::$rule,
        },)*]
    };
}

struct Known {
    key: &'static str,
    name: &'static str,
    help: &'static str,
    rule: Rule,
}

const FIELDS: &[Known] = fields![
    ("Active", "Active_bytes", Bytes),
    ("Active(anon)", "Active_anon_bytes", Bytes),
    ("Active(file)", "Active_file_bytes", Bytes),
    ("AnonHugePages", "AnonHugePages_bytes", Bytes),
    ("AnonPages", "AnonPages_bytes", Bytes),
    ("Balloon", "Balloon_bytes", KbOnly),
    ("Bounce", "Bounce_bytes", Bytes),
    ("Buffers", "Buffers_bytes", Bytes),
    ("Cached", "Cached_bytes", Bytes),
    ("CmaFree", "CmaFree_bytes", Bytes),
    ("CmaTotal", "CmaTotal_bytes", Bytes),
    ("CommitLimit", "CommitLimit_bytes", Bytes),
    ("Committed_AS", "Committed_AS_bytes", Bytes),
    ("DirectMap1G", "DirectMap1G_bytes", Bytes),
    ("DirectMap2M", "DirectMap2M_bytes", Bytes),
    ("DirectMap4M", "DirectMap4M_bytes", KbOnly),
    ("DirectMap4k", "DirectMap4k_bytes", Bytes),
    ("Dirty", "Dirty_bytes", Bytes),
    ("FileHugePages", "FileHugePages_bytes", KbOnly),
    ("FilePmdMapped", "FilePmdMapped_bytes", KbOnly),
    ("HardwareCorrupted", "HardwareCorrupted_bytes", Bytes),
    ("HugePages_Free", "HugePages_Free", Count),
    ("HugePages_Rsvd", "HugePages_Rsvd", Count),
    ("HugePages_Surp", "HugePages_Surp", Count),
    ("HugePages_Total", "HugePages_Total", Count),
    ("Hugepagesize", "Hugepagesize_bytes", Bytes),
    ("Hugetlb", "Hugetlb_bytes", KbOnly),
    ("Inactive", "Inactive_bytes", Bytes),
    ("Inactive(anon)", "Inactive_anon_bytes", Bytes),
    ("Inactive(file)", "Inactive_file_bytes", Bytes),
    ("KReclaimable", "KReclaimable_bytes", KbOnly),
    ("KernelStack", "KernelStack_bytes", Bytes),
    ("Mapped", "Mapped_bytes", Bytes),
    ("MemAvailable", "MemAvailable_bytes", Bytes),
    ("MemFree", "MemFree_bytes", Bytes),
    ("MemTotal", "MemTotal_bytes", Bytes),
    ("Mlocked", "Mlocked_bytes", Bytes),
    ("NFS_Unstable", "NFS_Unstable_bytes", Bytes),
    ("PageTables", "PageTables_bytes", Bytes),
    ("Percpu", "Percpu_bytes", Bytes),
    ("SReclaimable", "SReclaimable_bytes", Bytes),
    ("SUnreclaim", "SUnreclaim_bytes", Bytes),
    ("SecPageTables", "SecPageTables_bytes", KbOnly),
    ("ShadowCallStack", "ShadowCallStack_bytes", KbOnly),
    ("Shmem", "Shmem_bytes", Bytes),
    ("ShmemHugePages", "ShmemHugePages_bytes", Bytes),
    ("ShmemPmdMapped", "ShmemPmdMapped_bytes", Bytes),
    ("Slab", "Slab_bytes", Bytes),
    ("SwapCached", "SwapCached_bytes", Bytes),
    ("SwapFree", "SwapFree_bytes", Bytes),
    ("SwapTotal", "SwapTotal_bytes", Bytes),
    ("Unaccepted", "Unaccepted_bytes", KbOnly),
    ("Unevictable", "Unevictable_bytes", Bytes),
    ("VmallocChunk", "VmallocChunk_bytes", Bytes),
    ("VmallocTotal", "VmallocTotal_bytes", Bytes),
    ("VmallocUsed", "VmallocUsed_bytes", Bytes),
    ("Writeback", "Writeback_bytes", Bytes),
    ("WritebackTmp", "WritebackTmp_bytes", Bytes),
    ("Zswap", "Zswap_bytes", Bytes),
    ("Zswapped", "Zswapped_bytes", Bytes),
];

/// Most names learned at run time (fields outside [`FIELDS`]); past this (only a garbled or
/// hostile file gets there) further names are built per scrape instead of kept.
pub const MAX_LEARNED: usize = 64;

/// One /proc/meminfo line: key without its colon, the number, and whether it was in kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub key: &'a str,
    pub value: u64,
    pub kb: bool,
}

/// Parses /proc/meminfo as procfs does (see the module doc for what fails and what is skipped).
pub fn parse_meminfo(text: &str) -> anyhow::Result<Vec<Line<'_>>> {
    let mut out = Vec::with_capacity(64);
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        let value = fields
            .next()
            .with_context(|| format!("malformed line {line:?}"))?;
        let value = util::go_parse_uint(value, 0, 64)
            .with_context(|| format!("invalid value in {line:?}"))?;
        let kb = match fields.next() {
            None => false,
            Some("kB") => true,
            Some(unit) => anyhow::bail!("unsupported unit {unit:?} in {line:?}"),
        };
        anyhow::ensure!(fields.next().is_none(), "malformed line {line:?}");
        if let Some(key) = first.strip_suffix(':') {
            out.push(Line { key, value, kb });
        }
    }
    Ok(out)
}

/// node_exporter 1.5's name for a field: `(x)` → `_x` (first `(` to last `)`), `_bytes` for kB.
/// None when the result is not a valid metric name.
fn learned_name(key: &str, kb: bool) -> Option<String> {
    let mut name = String::with_capacity(key.len() + 20);
    name.push_str("node_memory_");
    match (key.find('('), key.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            name.push_str(&key[..open]);
            name.push('_');
            name.push_str(&key[open + 1..close]);
            name.push_str(&key[close + 1..]);
        }
        _ => name.push_str(key),
    }
    if kb {
        name.push_str("_bytes");
    }
    let valid = name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':');
    valid.then_some(name)
}

/// A name learned at run time, kept for later scrapes.
struct Learned {
    key: Box<str>,
    kb: bool,
    /// None: the key gives no valid metric name; the line is skipped.
    names: Option<(&'static str, &'static str)>,
}

struct Meminfo {
    path: HeldFile,
    learned: Mutex<Vec<Learned>>,
}

impl Meminfo {
    /// Name and help for a field outside the table: remembered, or built (and remembered while
    /// there is room).
    fn learned(&self, key: &str, kb: bool) -> Option<(Text, Text)> {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = learned.iter().find(|l| l.kb == kb && &*l.key == key) {
            return l.names.map(|(n, h)| (Text::Borrowed(n), Text::Borrowed(h)));
        }
        let name = learned_name(key, kb);
        let help = name.as_ref().map(|n| {
            format!(
                "Memory information field {}.",
                n.trim_start_matches("node_memory_")
            )
        });
        if learned.len() >= MAX_LEARNED {
            return name
                .zip(help)
                .map(|(n, h)| (Text::Owned(n), Text::Owned(h)));
        }
        // Bounded above: at most MAX_LEARNED small strings live for the life of the process.
        let names = name.zip(help).map(|(n, h)| {
            (
                &*Box::leak(n.into_boxed_str()),
                &*Box::leak(h.into_boxed_str()),
            )
        });
        learned.push(Learned {
            key: key.into(),
            kb,
            names,
        });
        names.map(|(n, h)| (Text::Borrowed(n), Text::Borrowed(h)))
    }

    fn render(&self, lines: &[Line<'_>], out: &mut Vec<Family>) {
        let start = out.len();
        // Where each table field went in `out`, so that a repeated key replaces its value.
        let mut placed = [usize::MAX; FIELDS.len()];
        for l in lines {
            let known = FIELDS
                .binary_search_by(|f| f.key.cmp(l.key))
                .ok()
                .filter(|&i| l.kb || FIELDS[i].rule != Rule::KbOnly);
            if let Some(i) = known {
                let f = &FIELDS[i];
                let v = match (f.rule, l.kb) {
                    (Rule::Count, _) | (_, false) => l.value as f64,
                    (_, true) => l.value as f64 * 1024.0,
                };
                match placed[i] {
                    usize::MAX => {
                        placed[i] = out.len();
                        out.push(Family::single(f.name, f.help, MetricType::Gauge, v));
                    }
                    at => out[at].samples[0].value = v,
                }
                continue;
            }
            let Some((name, help)) = self.learned(l.key, l.kb) else {
                continue;
            };
            let v = if l.kb {
                l.value as f64 * 1024.0
            } else {
                l.value as f64
            };
            // Rare (a field newer than the table): a linear look for a repeat is fine.
            if let Some(f) = out[start..].iter_mut().find(|f| f.name == name) {
                f.samples[0].value = v;
                continue;
            }
            let kind = if name.ends_with("_total") {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            out.push(Family::single(name, help, kind, v));
        }
    }
}

impl Collector for Meminfo {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = self.path.read()?;
        let lines = parse_meminfo(&text).with_context(|| self.path.path().display().to_string())?;
        self.render(&lines, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Meminfo {
        path: HeldFile::new(opts.procfs.join("meminfo")),
        learned: Mutex::new(Vec::new()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector() -> Meminfo {
        Meminfo {
            path: HeldFile::new(std::path::PathBuf::new()),
            learned: Mutex::new(Vec::new()),
        }
    }

    fn scrape(m: &Meminfo, text: &str) -> anyhow::Result<Vec<(String, String, MetricType, f64)>> {
        let lines = parse_meminfo(text)?;
        let mut out = Vec::new();
        m.render(&lines, &mut out);
        Ok(out
            .into_iter()
            .map(|f| {
                assert_eq!(f.samples.len(), 1);
                (
                    f.name.to_string(),
                    f.help.to_string(),
                    f.kind,
                    f.samples[0].value,
                )
            })
            .collect())
    }

    fn value(fams: &[(String, String, MetricType, f64)], name: &str) -> Option<f64> {
        fams.iter().find(|f| f.0 == name).map(|f| f.3)
    }

    #[test]
    fn table_is_sorted_and_named_by_the_rule() {
        for w in FIELDS.windows(2) {
            assert!(w[0].key < w[1].key, "{} before {}", w[0].key, w[1].key);
        }
        // Every table name is what 1.5's rule gives for the line as the kernel prints it.
        for f in FIELDS {
            let kb = f.rule != Rule::Count;
            assert_eq!(
                learned_name(f.key, kb).as_deref(),
                Some(f.name),
                "{}",
                f.key
            );
            assert_eq!(
                f.help,
                format!(
                    "Memory information field {}.",
                    &f.name["node_memory_".len()..]
                )
            );
        }
    }

    #[test]
    fn every_line_with_node_exporter_names() {
        let text = "MemTotal:       24683656 kB\n\
                    Active(anon):       1544 kB\n\
                    Zswapped:              0 kB\n\
                    KReclaimable:     460408 kB\n\
                    Hugetlb:               0 kB\n\
                    HugePages_Total:       4\n\
                    Hugepagesize:       2048 kB\n\
                    GPUActive:            12 kB\n\
                    Weird(x)Thing:         3\n";
        let m = collector();
        let fams = scrape(&m, text).unwrap();
        assert_eq!(
            value(&fams, "node_memory_MemTotal_bytes"),
            Some(24683656.0 * 1024.0)
        );
        assert_eq!(
            value(&fams, "node_memory_Active_anon_bytes"),
            Some(1544.0 * 1024.0)
        );
        assert_eq!(value(&fams, "node_memory_Zswapped_bytes"), Some(0.0));
        assert_eq!(
            value(&fams, "node_memory_KReclaimable_bytes"),
            Some(460408.0 * 1024.0)
        );
        assert_eq!(value(&fams, "node_memory_Hugetlb_bytes"), Some(0.0));
        assert_eq!(value(&fams, "node_memory_HugePages_Total"), Some(4.0));
        assert_eq!(
            value(&fams, "node_memory_Hugepagesize_bytes"),
            Some(2048.0 * 1024.0)
        );
        // Not in the table: named by the same rule, once.
        assert_eq!(
            value(&fams, "node_memory_GPUActive_bytes"),
            Some(12.0 * 1024.0)
        );
        assert_eq!(value(&fams, "node_memory_Weird_xThing"), Some(3.0));
        let gpu = fams
            .iter()
            .find(|f| f.0 == "node_memory_GPUActive_bytes")
            .unwrap();
        assert_eq!(gpu.1, "Memory information field GPUActive_bytes.");
        assert_eq!(gpu.2, MetricType::Gauge);
        assert_eq!(fams.len(), 9);
        // The learned names are kept and borrowed by later scrapes.
        assert_eq!(m.learned.lock().unwrap().len(), 2);
        let again = parse_meminfo(text).unwrap();
        let mut out = Vec::new();
        m.render(&again, &mut out);
        assert_eq!(m.learned.lock().unwrap().len(), 2);
        assert!(out.iter().all(|f| matches!(f.name, Text::Borrowed(_))));
    }

    #[test]
    fn lines_without_a_unit() {
        let m = collector();
        // A field 1.12 knows keeps its 1.12 name and takes the number as bytes (procfs).
        let fams = scrape(&m, "MemFree: 77\nHugePages_Free: 3 kB\n").unwrap();
        assert_eq!(value(&fams, "node_memory_MemFree_bytes"), Some(77.0));
        // HugePages_* are raw numbers in 1.12 even with a unit.
        assert_eq!(value(&fams, "node_memory_HugePages_Free"), Some(3.0));
        // Fields 1.12 drops follow 1.5: no unit, no suffix.
        let fams = scrape(&m, "Hugetlb: 5\nFoo_total: 9\n").unwrap();
        assert_eq!(value(&fams, "node_memory_Hugetlb"), Some(5.0));
        let total = fams
            .iter()
            .find(|f| f.0 == "node_memory_Foo_total")
            .unwrap();
        assert_eq!((total.2, total.3), (MetricType::Counter, 9.0));
    }

    #[test]
    fn garbled_lines_fail_the_collector_as_procfs_does() {
        let m = collector();
        for bad in [
            "MemTotal: 12 MB\n",
            "MemTotal: -1 kB\n",
            "MemTotal: 1.5 kB\n",
            "MemTotal: abc kB\n",
            "MemTotal: 1 kB extra\n",
            "MemTotal:\n",
            "MemTotal: 18446744073709551616\n",
            "MemTotal: +5 kB\n",
            "MemTotal: 1__0 kB\n",
        ] {
            assert!(scrape(&m, bad).is_err(), "{bad:?}");
        }
        // Empty lines and keys without a colon are skipped; a repeated key: the last wins.
        let fams = scrape(
            &m,
            "\nMemTotal: 1 kB\n   \nNoColon 5\nMemTotal: 2 kB\nGPUActive: 1 kB\nGPUActive: 2 kB\n",
        )
        .unwrap();
        assert_eq!(fams.len(), 2);
        assert_eq!(value(&fams, "node_memory_MemTotal_bytes"), Some(2048.0));
        assert_eq!(value(&fams, "node_memory_GPUActive_bytes"), Some(2048.0));
        // A key that gives no valid metric name is skipped, not an error.
        let fams = scrape(&m, "Odd-Key: 1 kB\nMemFree: 1 kB\n").unwrap();
        assert_eq!(fams.len(), 1);
        assert!(scrape(&m, "").unwrap().is_empty());
    }

    #[test]
    fn go_parse_uint_base_zero() {
        for (s, want) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("0x1F", Some(31)),
            ("0X1f", Some(31)),
            ("017", Some(15)),
            ("0o17", Some(15)),
            ("0b101", Some(5)),
            ("1_000", Some(1000)),
            ("0x_1", Some(1)),
            ("0_7", Some(7)),
            ("18446744073709551615", Some(u64::MAX)),
            ("", None),
            ("_1", None),
            ("1_", None),
            ("0x", None),
            ("08", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
        ] {
            assert_eq!(util::go_parse_uint(s, 0, 64), want, "{s:?}");
        }
    }

    #[test]
    fn learned_names_are_bounded() {
        let m = collector();
        let mut text = String::new();
        for i in 0..(MAX_LEARNED + 10) {
            text.push_str(&format!("Field{i}: {i} kB\n"));
        }
        let fams = scrape(&m, &text).unwrap();
        assert_eq!(fams.len(), MAX_LEARNED + 10);
        assert_eq!(m.learned.lock().unwrap().len(), MAX_LEARNED);
        assert_eq!(
            value(
                &fams,
                &format!("node_memory_Field{}_bytes", MAX_LEARNED + 9)
            ),
            Some((MAX_LEARNED + 9) as f64 * 1024.0)
        );
    }
}
