//! entropy collector: `node_entropy_available_bits` and `node_entropy_pool_size_bits` from
//! /proc/sys/kernel/random/{entropy_avail,poolsize}, as node_exporter 1.12 reads them (a
//! missing or unparsable file fails the collector).
//!
//! node_exporter's procfs also reads three more files of that directory (reseed and wake-up
//! settings) and fails on an unreadable one; nodetune reads only the two it exports.

use anyhow::Context;

use super::attr::HeldFile;
use super::{Collector, Family, MetricType, Options};

/// A whole-number file, as procfs's ReadUintFromFile: white space around it trimmed.
pub fn parse_uint(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    t.parse()
        .with_context(|| format!("invalid unsigned number {t:?}"))
}

struct Entropy {
    avail: HeldFile,
    poolsize: HeldFile,
}

fn read(file: &HeldFile) -> anyhow::Result<u64> {
    parse_uint(&file.read()?).with_context(|| format!("parsing {}", file.path().display()))
}

impl Collector for Entropy {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let avail = read(&self.avail).context("couldn't get entropy_avail")?;
        let pool = read(&self.poolsize).context("couldn't get entropy poolsize")?;
        for (name, help, v) in [
            (
                "node_entropy_available_bits",
                "Bits of available entropy.",
                avail,
            ),
            ("node_entropy_pool_size_bits", "Bits of entropy pool.", pool),
        ] {
            out.push(Family::single(name, help, MetricType::Gauge, v as f64));
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let dir = opts.procfs.join("sys/kernel/random");
    Ok(Box::new(Entropy {
        avail: HeldFile::new(dir.join("entropy_avail")),
        poolsize: HeldFile::new(dir.join("poolsize")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_garbage() {
        assert_eq!(parse_uint("256\n").unwrap(), 256);
        assert_eq!(parse_uint(" 4096 ").unwrap(), 4096);
        for bad in ["", "-1", "12x", "18446744073709551616"] {
            assert!(parse_uint(bad).is_err(), "{bad:?}");
        }
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("sys/kernel/random");
        std::fs::create_dir_all(&r).unwrap();
        let opts = Options::from_flags([format!("--path.procfs={}", d.path().display())]).unwrap();
        let c = build(&opts).unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::write(r.join("entropy_avail"), "256\n").unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
        std::fs::write(r.join("poolsize"), "256\n").unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].samples[0].value, 256.0);
        std::fs::write(r.join("poolsize"), "many\n").unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
    }
}
