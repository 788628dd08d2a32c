//! pressure collector: PSI totals from /proc/pressure/{cpu,io,memory,irq} as counters in
//! seconds, named as node_exporter 1.12 does (no cpu "full", irq "full" only).

use anyhow::Context;

use super::attr::HeldFile;
use super::{Collector, Family, MetricType, Options};

struct Pressure {
    /// cpu first (it must be there), then io, memory and irq.
    files: Vec<(&'static str, HeldFile)>,
}

/// (resource, line kind, metric, help)
const SERIES: &[(&str, &str, &str, &str)] = &[
    (
        "cpu",
        "some",
        "node_pressure_cpu_waiting_seconds_total",
        "Total time in seconds that processes have waited for CPU time",
    ),
    (
        "io",
        "some",
        "node_pressure_io_waiting_seconds_total",
        "Total time in seconds that processes have waited due to IO congestion",
    ),
    (
        "io",
        "full",
        "node_pressure_io_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IO congestion",
    ),
    (
        "memory",
        "some",
        "node_pressure_memory_waiting_seconds_total",
        "Total time in seconds that processes have waited for memory",
    ),
    (
        "memory",
        "full",
        "node_pressure_memory_stalled_seconds_total",
        "Total time in seconds no process could make progress due to memory congestion",
    ),
    (
        "irq",
        "full",
        "node_pressure_irq_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IRQ congestion",
    ),
];

fn total(text: &str, kind: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(kind))?;
    let t = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    t.parse::<f64>().ok().map(|us| us / 1000.0 / 1000.0)
}

impl Collector for Pressure {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // Each file holds both its "some" and "full" lines: read it once.
        let mut texts: Vec<(&str, Option<String>)> = Vec::with_capacity(self.files.len());
        for (i, (res, file)) in self.files.iter().enumerate() {
            let text = match file.text() {
                Ok(t) => Some(t),
                // Like node_exporter: PSI missing altogether (kernel without it, so no cpu
                // file) is an error. Older kernels lack irq, and a resource's accounting can
                // be switched off (EOPNOTSUPP): skip what is absent or disabled.
                Err(e)
                    if i > 0
                        && (e.kind() == std::io::ErrorKind::NotFound
                            || e.raw_os_error() == Some(libc::EOPNOTSUPP)) =>
                {
                    None
                }
                // Any other error fails the collector, as node_exporter's does.
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", file.path().display()))
                }
            };
            texts.push((res, text));
        }
        for (res, kind, name, help) in SERIES {
            let Some((_, Some(text))) = texts.iter().find(|(r, _)| r == res) else {
                continue;
            };
            if let Some(v) = total(text, kind) {
                out.push(Family::single(*name, *help, MetricType::Counter, v));
            }
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let dir = opts.procfs.join("pressure");
    Ok(Box::new(Pressure {
        files: ["cpu", "io", "memory", "irq"]
            .into_iter()
            .map(|res| (res, HeldFile::new(dir.join(res))))
            .collect(),
    }))
}
