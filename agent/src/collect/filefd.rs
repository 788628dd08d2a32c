//! filefd collector: allocated and maximum file handles from /proc/sys/fs/file-nr.

use std::path::{Path, PathBuf};

use super::{util, Collector, Family, MetricType, Options};

/// /proc/sys/fs/file-nr: file handles allocated, and the most there may be (fs.file-max).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileNr {
    pub allocated: f64,
    pub maximum: f64,
}

/// Reads and parses file-nr ("allocated unused maximum").
pub fn read(path: &Path) -> anyhow::Result<FileNr> {
    let text = util::read(path)?;
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse())
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(v.len() == 3, "{}: expected 3 fields", path.display());
    Ok(FileNr {
        allocated: v[0],
        maximum: v[2],
    })
}

struct Filefd {
    path: PathBuf,
}

impl Collector for Filefd {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let nr = read(&self.path)?;
        for (name, help, v) in [
            (
                "node_filefd_allocated",
                "File descriptor statistics: allocated.",
                nr.allocated,
            ),
            (
                "node_filefd_maximum",
                "File descriptor statistics: maximum.",
                nr.maximum,
            ),
        ] {
            out.push(Family::single(name, help, MetricType::Gauge, v));
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Filefd {
        path: opts.procfs.join("sys/fs/file-nr"),
    }))
}
