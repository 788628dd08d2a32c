//! conntrack collector: table size and limit from /proc/sys/net/netfilter, and the per-CPU
//! statistics of /proc/net/stat/nf_conntrack summed (all gauges, as node_exporter has them).

use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

struct Conntrack {
    procfs: PathBuf,
}

const STATS: &[(&str, &str)] = &[
    ("found", "Number of searched entries which were successful."),
    ("invalid", "Number of packets seen which can not be tracked."),
    ("ignore", "Number of packets seen which are already connected to a conntrack entry."),
    ("insert", "Number of entries inserted into the list."),
    ("insert_failed", "Number of entries for which list insertion was attempted but failed."),
    ("drop", "Number of packets dropped due to conntrack failure."),
    ("early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
    ("search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
];

fn gauge(out: &mut Vec<Family>, name: &str, help: &str, v: f64) {
    let mut f = Family::new(name, help, MetricType::Gauge);
    f.push(&[], v);
    out.push(f);
}

impl Collector for Conntrack {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // Without the module the keys are absent: no data, reported as a failed collector.
        let count = util::read(&self.procfs.join("sys/net/netfilter/nf_conntrack_count"))?;
        let max = util::read(&self.procfs.join("sys/net/netfilter/nf_conntrack_max"))?;
        gauge(
            out,
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            count.trim().parse()?,
        );
        gauge(
            out,
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            max.trim().parse()?,
        );
        let Ok(text) = std::fs::read_to_string(self.procfs.join("net/stat/nf_conntrack")) else {
            return Ok(());
        };
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let mut sums = vec![0u64; header.len()];
        for line in lines {
            for (i, v) in line.split_whitespace().enumerate().take(sums.len()) {
                sums[i] += u64::from_str_radix(v, 16).unwrap_or(0);
            }
        }
        for (field, help) in STATS {
            if let Some(i) = header.iter().position(|h| h == field) {
                gauge(
                    out,
                    &format!("node_nf_conntrack_stat_{field}"),
                    help,
                    sums[i] as f64,
                );
            }
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Conntrack {
        procfs: opts.procfs.clone(),
    }))
}
