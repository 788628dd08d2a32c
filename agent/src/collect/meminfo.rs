//! meminfo collector: node_memory_* from /proc/meminfo, with node_exporter 1.12's fixed field
//! list (fields the kernel does not print are omitted).

use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

/// /proc/meminfo key → metric name and help, as node_exporter 1.12 names them; spelled out at
/// compile time so a scrape allocates no names.
macro_rules! fields {
    ($(($key:literal, $suffix:literal),)*) => {
        &[$((
            $key,
            concat!("node_memory_", $suffix),
            concat!("Memory information field ", $suffix, "."),
        ),)*]
    };
}

const FIELDS: &[(&str, &str, &str)] = fields![
    ("Active", "Active_bytes"),
    ("Active(anon)", "Active_anon_bytes"),
    ("Active(file)", "Active_file_bytes"),
    ("AnonHugePages", "AnonHugePages_bytes"),
    ("AnonPages", "AnonPages_bytes"),
    ("Bounce", "Bounce_bytes"),
    ("Buffers", "Buffers_bytes"),
    ("Cached", "Cached_bytes"),
    ("CmaFree", "CmaFree_bytes"),
    ("CmaTotal", "CmaTotal_bytes"),
    ("CommitLimit", "CommitLimit_bytes"),
    ("Committed_AS", "Committed_AS_bytes"),
    ("DirectMap1G", "DirectMap1G_bytes"),
    ("DirectMap2M", "DirectMap2M_bytes"),
    ("DirectMap4k", "DirectMap4k_bytes"),
    ("Dirty", "Dirty_bytes"),
    ("HardwareCorrupted", "HardwareCorrupted_bytes"),
    ("HugePages_Free", "HugePages_Free"),
    ("HugePages_Rsvd", "HugePages_Rsvd"),
    ("HugePages_Surp", "HugePages_Surp"),
    ("HugePages_Total", "HugePages_Total"),
    ("Hugepagesize", "Hugepagesize_bytes"),
    ("Inactive", "Inactive_bytes"),
    ("Inactive(anon)", "Inactive_anon_bytes"),
    ("Inactive(file)", "Inactive_file_bytes"),
    ("KernelStack", "KernelStack_bytes"),
    ("Mapped", "Mapped_bytes"),
    ("MemAvailable", "MemAvailable_bytes"),
    ("MemFree", "MemFree_bytes"),
    ("MemTotal", "MemTotal_bytes"),
    ("Mlocked", "Mlocked_bytes"),
    ("NFS_Unstable", "NFS_Unstable_bytes"),
    ("PageTables", "PageTables_bytes"),
    ("Percpu", "Percpu_bytes"),
    ("SReclaimable", "SReclaimable_bytes"),
    ("SUnreclaim", "SUnreclaim_bytes"),
    ("Shmem", "Shmem_bytes"),
    ("ShmemHugePages", "ShmemHugePages_bytes"),
    ("ShmemPmdMapped", "ShmemPmdMapped_bytes"),
    ("Slab", "Slab_bytes"),
    ("SwapCached", "SwapCached_bytes"),
    ("SwapFree", "SwapFree_bytes"),
    ("SwapTotal", "SwapTotal_bytes"),
    ("Unevictable", "Unevictable_bytes"),
    ("VmallocChunk", "VmallocChunk_bytes"),
    ("VmallocTotal", "VmallocTotal_bytes"),
    ("VmallocUsed", "VmallocUsed_bytes"),
    ("Writeback", "Writeback_bytes"),
    ("WritebackTmp", "WritebackTmp_bytes"),
];

struct Meminfo {
    path: PathBuf,
}

impl Collector for Meminfo {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = util::read(&self.path)?;
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            let Some((_, name, help)) = FIELDS.iter().find(|(k, _, _)| *k == key) else {
                continue;
            };
            let mut parts = rest.split_whitespace();
            let Some(Ok(v)) = parts.next().map(str::parse::<f64>) else {
                continue;
            };
            let v = if parts.next() == Some("kB") {
                v * 1024.0
            } else {
                v
            };
            let kind = if name.ends_with("_total") {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut f = Family::new(*name, *help, kind);
            f.push(&[], v);
            out.push(f);
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Meminfo {
        path: opts.procfs.join("meminfo"),
    }))
}
