//! nvme collector: controllers and their namespaces from /sys/class/nvme, as node_exporter
//! 1.12 (procfs' NVMeClass) reads them.
//!
//! Each controller's firmware_rev, model, serial, state and cntlid must be readable, and each
//! namespace's nuse, size and queue/logical_block_size (a value that is not a number counts
//! as 0, as in procfs); ana_state is optional ("unknown"). Anything else unreadable fails the
//! collector; no /sys/class/nvme is no data. Namespaces are the `nvme<N>n<M>` entries of a
//! controller's directory, `M` being the nsid label; bytes are blocks × logical block size.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// One controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub name: String,
    pub firmware_revision: String,
    pub model: String,
    pub serial: String,
    pub state: String,
    pub controller_id: String,
    pub namespaces: Vec<Namespace>,
}

/// One namespace of a controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    pub id: String,
    pub used_blocks: u64,
    pub size_blocks: u64,
    pub logical_block_size: u64,
    pub ana_state: String,
}

impl Namespace {
    /// Blocks in bytes, wrapping on overflow as Go's uint64 arithmetic does.
    fn bytes(&self, blocks: u64) -> u64 {
        blocks.wrapping_mul(self.logical_block_size)
    }
}

/// The nsid in a namespace directory name: `M` of the first `nvme<N>n<M>` in it.
pub fn namespace_id(name: &str) -> Option<&str> {
    name.match_indices("nvme").find_map(|(p, _)| {
        let rest = &name[p + 4..];
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        let rest = rest[n..].strip_prefix('n').filter(|_| n > 0)?;
        let m = rest.bytes().take_while(u8::is_ascii_digit).count();
        (m > 0).then(|| &rest[..m])
    })
}

/// A namespace block count or size: a decimal number, else 0 (procfs ignores the error).
pub fn parse_blocks(text: &str) -> u64 {
    util::go_parse_uint(text, 10, 64).unwrap_or(0)
}

fn attr(path: &Path) -> anyhow::Result<String> {
    util::sys_read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_device(dir: &Path, name: String) -> anyhow::Result<Device> {
    let mut d = Device {
        firmware_revision: attr(&dir.join("firmware_rev"))?,
        model: attr(&dir.join("model"))?,
        serial: attr(&dir.join("serial"))?,
        state: attr(&dir.join("state"))?,
        controller_id: attr(&dir.join("cntlid"))?,
        name,
        namespaces: Vec::new(),
    };
    let entries =
        util::read_dir_sorted(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in entries {
        let Some(id) = namespace_id(&e.name) else {
            continue;
        };
        let p = &e.path;
        d.namespaces.push(Namespace {
            id: id.to_string(),
            used_blocks: parse_blocks(&attr(&p.join("nuse"))?),
            size_blocks: parse_blocks(&attr(&p.join("size"))?),
            logical_block_size: parse_blocks(&attr(&p.join("queue/logical_block_size"))?),
            ana_state: util::sys_read(&p.join("ana_state"))
                .unwrap_or_else(|_| "unknown".to_string()),
        });
    }
    Ok(d)
}

/// Reads /sys/class/nvme; `Ok(None)` when it does not exist.
pub fn read(dir: &Path) -> anyhow::Result<Option<Vec<Device>>> {
    util::read_class(dir, |_| true, read_device)
}

fn render(devices: &[Device], out: &mut Vec<Family>) {
    let mut info = Family::new(
        "node_nvme_info",
        "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
        MetricType::Gauge,
    );
    let mut ns_info = Family::new(
        "node_nvme_namespace_info",
        "Information about NVMe namespaces. Value is always 1",
        MetricType::Gauge,
    );
    let mut capacity = Family::new(
        "node_nvme_namespace_capacity_bytes",
        "Capacity of the NVMe namespace in bytes. Computed as namespace_size * namespace_logical_block_size",
        MetricType::Gauge,
    );
    let mut size = Family::new(
        "node_nvme_namespace_size_bytes",
        "Size of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/size",
        MetricType::Gauge,
    );
    let mut used = Family::new(
        "node_nvme_namespace_used_bytes",
        "Used space of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/nuse",
        MetricType::Gauge,
    );
    let mut block = Family::new(
        "node_nvme_namespace_logical_block_size_bytes",
        "Logical block size of the NVMe namespace in bytes. Usually 4Kb. Available in /sys/class/nvme/<device>/<namespace>/queue/logical_block_size",
        MetricType::Gauge,
    );
    for d in devices {
        info.push(
            &[
                ("device", &d.name),
                ("firmware_revision", &d.firmware_revision),
                ("model", &d.model),
                ("serial", &d.serial),
                ("state", &d.state),
                ("cntlid", &d.controller_id),
            ],
            1.0,
        );
        for ns in &d.namespaces {
            let labels = [("device", d.name.as_str()), ("nsid", ns.id.as_str())];
            ns_info.push(
                &[
                    ("device", &d.name),
                    ("nsid", &ns.id),
                    ("ana_state", &ns.ana_state),
                ],
                1.0,
            );
            let bytes = ns.bytes(ns.size_blocks) as f64;
            capacity.push(&labels, bytes);
            size.push(&labels, bytes);
            used.push(&labels, ns.bytes(ns.used_blocks) as f64);
            block.push(&labels, ns.logical_block_size as f64);
        }
    }
    out.extend([info, ns_info, capacity, size, used, block]);
}

struct Nvme {
    dir: PathBuf,
}

impl Collector for Nvme {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let devices = read(&self.dir)?
            .with_context(|| format!("no NVMe statistics in {}", self.dir.display()))?;
        render(&devices, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Nvme {
        dir: opts.sysfs.join("class/nvme"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    fn controller(r: &Path, name: &str) {
        for (f, v) in [
            ("firmware_rev", "1B2QEXP7\n"),
            ("model", "Some SSD 1TB          \n"),
            ("serial", "S123\n"),
            ("state", "live\n"),
            ("cntlid", "4\n"),
        ] {
            write(r, &format!("{name}/{f}"), v);
        }
    }

    #[test]
    fn namespace_ids() {
        assert_eq!(namespace_id("nvme0n1"), Some("1"));
        assert_eq!(namespace_id("nvme12n34"), Some("34"));
        assert_eq!(namespace_id("nvme0c0n1"), None);
        assert_eq!(namespace_id("ng0n1"), None);
        assert_eq!(namespace_id("xnvme1n2p3"), Some("2"));
        assert_eq!(namespace_id("nvmen1"), None);
        assert_eq!(parse_blocks("12"), 12);
        assert_eq!(parse_blocks("x"), 0);
        assert_eq!(parse_blocks("-1"), 0);
    }

    #[test]
    fn controllers_and_namespaces() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        controller(r, "nvme0");
        write(r, "nvme0/nvme0n1/nuse", "100\n");
        write(r, "nvme0/nvme0n1/size", "1000\n");
        write(r, "nvme0/nvme0n1/queue/logical_block_size", "4096\n");
        write(r, "nvme0/nvme0n1/ana_state", "optimized\n");
        // No ana_state, a size that is not a number.
        write(r, "nvme0/nvme0n2/nuse", "1\n");
        write(r, "nvme0/nvme0n2/size", "lots\n");
        write(r, "nvme0/nvme0n2/queue/logical_block_size", "512\n");
        write(r, "nvme0/power/control", "auto\n");
        let devs = read(r).unwrap().unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].model, "Some SSD 1TB");
        assert_eq!(
            devs[0].namespaces[1],
            Namespace {
                id: "2".into(),
                used_blocks: 1,
                size_blocks: 0,
                logical_block_size: 512,
                ana_state: "unknown".into()
            }
        );
        let mut out = Vec::new();
        render(&devs, &mut out);
        let cap = &out[2];
        assert_eq!(cap.samples[0].value, 4096000.0);
        assert_eq!(out[4].samples[0].value, 409600.0);
        assert_eq!(out[1].samples[1].labels[2].1, "unknown");
    }

    #[test]
    fn missing_class_and_broken_devices() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(read(&r.join("nope")).unwrap(), None);
        assert!(read(r).unwrap().unwrap().is_empty());
        controller(r, "nvme0");
        // A namespace without its size fails the collector, as in node_exporter.
        write(r, "nvme0/nvme0n1/nuse", "1\n");
        assert!(read(r).is_err());
        std::fs::remove_dir_all(r.join("nvme0/nvme0n1")).unwrap();
        // A controller attribute that vanished (or errs) fails too.
        std::fs::remove_file(r.join("nvme0/cntlid")).unwrap();
        assert!(read(r).is_err());
        // Huge block counts wrap like Go's uint64 product.
        let ns = Namespace {
            id: "1".into(),
            used_blocks: u64::MAX,
            size_blocks: 1 << 62,
            logical_block_size: 8,
            ana_state: String::new(),
        };
        assert_eq!(ns.bytes(ns.size_blocks), 0);
        assert_eq!(ns.bytes(ns.used_blocks), u64::MAX - 7);
    }
}
