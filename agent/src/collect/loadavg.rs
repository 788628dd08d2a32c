//! loadavg collector: node_load1/5/15 from /proc/loadavg.

use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

struct Loadavg {
    path: PathBuf,
}

impl Collector for Loadavg {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = util::read(&self.path)?;
        let v: Vec<f64> = text
            .split_whitespace()
            .take(3)
            .map(|f| f.parse())
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(
            v.len() == 3,
            "{}: expected 3 load averages",
            self.path.display()
        );
        for (i, (name, help)) in [
            ("node_load1", "1m load average."),
            ("node_load5", "5m load average."),
            ("node_load15", "15m load average."),
        ]
        .into_iter()
        .enumerate()
        {
            out.push(Family::single(name, help, MetricType::Gauge, v[i]));
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Loadavg {
        path: opts.procfs.join("loadavg"),
    }))
}
