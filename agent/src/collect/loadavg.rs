//! loadavg collector: node_load1/5/15 from /proc/loadavg.

use super::attr::HeldFile;
use super::{Collector, Family, MetricType, Options};

struct Loadavg {
    path: HeldFile,
}

impl Collector for Loadavg {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = self.path.read()?;
        let v: Vec<f64> = text
            .split_whitespace()
            .take(3)
            .map(|f| f.parse())
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(
            v.len() == 3,
            "{}: expected 3 load averages",
            self.path.path().display()
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
        path: HeldFile::new(opts.procfs.join("loadavg")),
    }))
}
