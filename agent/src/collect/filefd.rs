//! filefd collector: allocated and maximum file handles from /proc/sys/fs/file-nr.

use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

struct Filefd {
    path: PathBuf,
}

impl Collector for Filefd {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = util::read(&self.path)?;
        let v: Vec<f64> = text
            .split_whitespace()
            .map(|f| f.parse())
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(v.len() == 3, "{}: expected 3 fields", self.path.display());
        for (name, help, i) in [
            (
                "node_filefd_allocated",
                "File descriptor statistics: allocated.",
                0,
            ),
            (
                "node_filefd_maximum",
                "File descriptor statistics: maximum.",
                2,
            ),
        ] {
            let mut f = Family::new(name, help, MetricType::Gauge);
            f.push(&[], v[i]);
            out.push(f);
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Filefd {
        path: opts.procfs.join("sys/fs/file-nr"),
    }))
}
