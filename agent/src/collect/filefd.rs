//! filefd collector: allocated and maximum file handles from /proc/sys/fs/file-nr.

use super::attr::HeldFile;
use super::{Collector, Family, MetricType, Options};

/// /proc/sys/fs/file-nr: file handles allocated, and the most there may be (fs.file-max).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileNr {
    pub allocated: f64,
    pub maximum: f64,
}

/// Reads and parses file-nr ("allocated unused maximum").
pub fn read(file: &HeldFile) -> anyhow::Result<FileNr> {
    let text = file.read()?;
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse())
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(v.len() == 3, "{}: expected 3 fields", file.path().display());
    Ok(FileNr {
        allocated: v[0],
        maximum: v[2],
    })
}

struct Filefd {
    file: HeldFile,
}

impl Collector for Filefd {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let nr = read(&self.file)?;
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
        file: HeldFile::new(opts.procfs.join("sys/fs/file-nr")),
    }))
}
