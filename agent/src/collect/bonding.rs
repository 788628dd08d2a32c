//! bonding collector, as node_exporter 1.12: for every master listed in
//! `<sysfs>/class/net/bonding_masters`, the slaves in `<master>/bonding/slaves` and how many of
//! them have `mii_status` "up" (`lower_<slave>/bonding_slave/mii_status`, or `slave_<slave>/…`
//! on older kernels): `node_bonding_slaves{master}` and `node_bonding_active{master}`. No
//! bonding_masters file (bonding module not loaded) is "no data" (success 0); a listed master or
//! slave whose files cannot be read fails the collector, as in node_exporter.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// One master: (name, configured slaves, slaves with MII status up).
pub type Master = (String, u32, u32);

/// Reads every master under `class_net` (`<sysfs>/class/net`).
pub fn read(class_net: &Path) -> anyhow::Result<Vec<Master>> {
    let list = class_net.join("bonding_masters");
    let masters = util::read(&list)?;
    let mut out: Vec<Master> = Vec::new();
    for master in masters.split_whitespace() {
        let slaves_path = class_net.join(master).join("bonding/slaves");
        let slaves = util::read(&slaves_path)?;
        let (mut n, mut up) = (0, 0);
        for slave in slaves.split_whitespace() {
            let status = |prefix: &str| {
                util::read_text(
                    &class_net
                        .join(master)
                        .join(format!("{prefix}{slave}"))
                        .join("bonding_slave/mii_status"),
                )
            };
            let state = match status("lower_") {
                Err(e) if e.kind() == io::ErrorKind::NotFound => status("slave_"),
                r => r,
            }
            .with_context(|| format!("reading mii_status of {slave} in {master}"))?;
            n += 1;
            if state.trim() == "up" {
                up += 1;
            }
        }
        // A master named twice counts once (node_exporter keeps a map).
        out.retain(|(m, _, _)| m != master);
        out.push((master.to_string(), n, up));
    }
    Ok(out)
}

fn render(masters: &[Master], out: &mut Vec<Family>) {
    let mut slaves = Family::new(
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
        MetricType::Gauge,
    );
    let mut active = Family::new(
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
        MetricType::Gauge,
    );
    for (m, n, up) in masters {
        slaves.push(&[("master", m)], f64::from(*n));
        active.push(&[("master", m)], f64::from(*up));
    }
    out.extend([slaves, active]);
}

struct Bonding {
    class_net: PathBuf,
}

impl Collector for Bonding {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        render(&read(&self.class_net)?, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Bonding {
        class_net: opts.sysfs.join("class/net"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn masters_slaves_and_old_kernels() {
        let d = tempfile::tempdir().unwrap();
        let n = d.path();
        write(n, "bonding_masters", "bond0 dmz\n");
        write(n, "bond0/bonding/slaves", "eth0 eth1 eth2\n");
        write(n, "bond0/lower_eth0/bonding_slave/mii_status", "up\n");
        write(n, "bond0/lower_eth1/bonding_slave/mii_status", "down\n");
        // An older kernel's slave_ link.
        write(n, "bond0/slave_eth2/bonding_slave/mii_status", "up\n");
        write(n, "dmz/bonding/slaves", "\n");
        let m = read(n).unwrap();
        assert_eq!(m, [("bond0".into(), 3, 2), ("dmz".into(), 0, 0)]);
        let mut out = Vec::new();
        render(&m, &mut out);
        assert_eq!(out[0].name, "node_bonding_slaves");
        assert_eq!(out[1].samples[0].value, 2.0);
        assert_eq!(out[1].samples[0].labels[0].1, "bond0");
    }

    #[test]
    fn missing_files_fail() {
        let d = tempfile::tempdir().unwrap();
        let n = d.path();
        // No bonding module: no data.
        assert!(read(n).is_err());
        write(n, "bonding_masters", "bond0\n");
        assert!(read(n).is_err());
        write(n, "bond0/bonding/slaves", "eth9\n");
        assert!(read(n).is_err());
        write(n, "bonding_masters", "");
        assert_eq!(read(n).unwrap(), []);
    }
}
