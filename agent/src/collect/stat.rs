//! stat collector: boot time, context switches, forks, interrupts, runnable and blocked
//! processes from /proc/stat; softirqs per vector with --collector.stat.softirq.

use super::attr::HeldFile;
use super::{Collector, Family, MetricType, Options};

struct Stat {
    path: HeldFile,
    softirq: bool,
}

const VECTORS: &[&str] = &[
    "hi",
    "timer",
    "net_tx",
    "net_rx",
    "block",
    "block_iopoll",
    "tasklet",
    "sched",
    "hrtimer",
    "rcu",
];

impl Collector for Stat {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = self.path.read()?;
        let first = |key: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        let rows = [
            (
                "btime",
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                MetricType::Gauge,
            ),
            (
                "ctxt",
                "node_context_switches_total",
                "Total number of context switches.",
                MetricType::Counter,
            ),
            (
                "processes",
                "node_forks_total",
                "Total number of forks.",
                MetricType::Counter,
            ),
            (
                "intr",
                "node_intr_total",
                "Total number of interrupts serviced.",
                MetricType::Counter,
            ),
            (
                "procs_blocked",
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                MetricType::Gauge,
            ),
            (
                "procs_running",
                "node_procs_running",
                "Number of processes in runnable state.",
                MetricType::Gauge,
            ),
        ];
        for (key, name, help, kind) in rows {
            if let Some(v) = first(key) {
                out.push(Family::single(name, help, kind, v));
            }
        }
        if self.softirq {
            if let Some(line) = text.lines().find(|l| l.starts_with("softirq ")) {
                let mut f = Family::new(
                    "node_softirqs_total",
                    "Number of softirq calls.",
                    MetricType::Counter,
                );
                for (vector, v) in VECTORS.iter().zip(line.split_whitespace().skip(2)) {
                    if let Ok(v) = v.parse::<f64>() {
                        f.push(&[("vector", vector)], v);
                    }
                }
                out.push(f);
            }
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Stat {
        path: HeldFile::new(opts.procfs.join("stat")),
        softirq: opts.stat_softirq,
    }))
}
