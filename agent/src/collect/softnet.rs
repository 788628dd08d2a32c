//! softnet collector: per-CPU counters from /proc/net/softnet_stat (hex columns).

use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

struct Softnet {
    path: PathBuf,
}

/// (column, metric, help, type)
const COLUMNS: &[(usize, &str, &str, MetricType)] = &[
    (
        0,
        "node_softnet_processed_total",
        "Number of processed packets",
        MetricType::Counter,
    ),
    (
        1,
        "node_softnet_dropped_total",
        "Number of dropped packets",
        MetricType::Counter,
    ),
    (
        2,
        "node_softnet_times_squeezed_total",
        "Number of times processing packets ran out of quota",
        MetricType::Counter,
    ),
    (
        8,
        "node_softnet_cpu_collision_total",
        "Number of collision occur while obtaining device lock while transmitting",
        MetricType::Counter,
    ),
    (
        9,
        "node_softnet_received_rps_total",
        "Number of times cpu woken up received_rps",
        MetricType::Counter,
    ),
    (
        10,
        "node_softnet_flow_limit_count_total",
        "Number of times flow limit has been reached",
        MetricType::Counter,
    ),
    (
        11,
        "node_softnet_backlog_len",
        "Softnet backlog status",
        MetricType::Gauge,
    ),
];

impl Collector for Softnet {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = util::read(&self.path)?;
        let mut fams: Vec<Family> = COLUMNS
            .iter()
            .map(|(_, n, h, k)| Family::new(*n, *h, *k))
            .collect();
        for (line_no, line) in text.lines().enumerate() {
            let cols: Vec<u64> = line
                .split_whitespace()
                .map(|c| u64::from_str_radix(c, 16).unwrap_or(0))
                .collect();
            if cols.len() < 3 {
                continue;
            }
            // Kernels since 5.10 print the CPU number in column 12; older ones list online CPUs
            // in order.
            let cpu = cols
                .get(12)
                .map(|c| c.to_string())
                .unwrap_or_else(|| line_no.to_string());
            for (f, (col, ..)) in fams.iter_mut().zip(COLUMNS) {
                f.push(
                    &[("cpu", &cpu)],
                    cols.get(*col).copied().unwrap_or(0) as f64,
                );
            }
        }
        out.extend(fams);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Softnet {
        path: opts.procfs.join("net/softnet_stat"),
    }))
}
