//! pressure collector: PSI totals from /proc/pressure/{cpu,io,memory,irq} as counters in
//! seconds, named as node_exporter 1.12 does (no cpu "full", irq "full" only).

use std::path::PathBuf;

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

struct Pressure {
    dir: PathBuf,
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
        // Like node_exporter: PSI missing altogether (kernel without it) is an error.
        let cpu = util::read(&self.dir.join("cpu"))?;
        // Each file holds both its "some" and "full" lines: read it once.
        let mut files: Vec<(&str, Option<String>)> = vec![("cpu", Some(cpu))];
        for (res, kind, name, help) in SERIES {
            let i = match files.iter().position(|(r, _)| r == res) {
                Some(i) => i,
                None => {
                    let path = self.dir.join(res);
                    let text = match util::read_text(&path) {
                        Ok(t) => Some(t),
                        // Older kernels lack irq, and a resource's accounting can be switched
                        // off (EOPNOTSUPP): skip what is absent or disabled.
                        Err(e)
                            if e.kind() == std::io::ErrorKind::NotFound
                                || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
                        {
                            None
                        }
                        // Any other error fails the collector, as node_exporter's does.
                        Err(e) => {
                            return Err(e).with_context(|| format!("reading {}", path.display()))
                        }
                    };
                    files.push((res, text));
                    files.len() - 1
                }
            };
            let Some(text) = &files[i].1 else { continue };
            if let Some(v) = total(text, kind) {
                out.push(Family::single(*name, *help, MetricType::Counter, v));
            }
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Pressure {
        dir: opts.procfs.join("pressure"),
    }))
}
