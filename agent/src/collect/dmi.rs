//! dmi collector: `node_dmi_info` from /sys/class/dmi/id, labelled as node_exporter 1.12
//! labels it.
//!
//! DMI values cannot change before a reboot, so node_exporter reads them once (when the
//! collector is set up); nodetune reads them at the first scrape and keeps them, but, unlike
//! node_exporter (which then refuses to start), retries at the next scrape after a read error.
//! Each file is read as procfs reads it (one read of at most 128 bytes, white space trimmed,
//! invalid UTF-8 replaced); a label is present only when its file is; a file only root may
//! read (the serials, product_uuid) is left out; another read error fails the collector. No
//! directory, or none of the files, means no data (`node_scrape_collector_success 0`). Only
//! the files that become labels are read (node_exporter also reads chassis_type and whatever
//! else the directory holds, without using it).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// DMI file → label, in label order.
const LABELS: &[(&str, &str)] = &[
    ("bios_date", "bios_date"),
    ("bios_release", "bios_release"),
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("board_asset_tag", "board_asset_tag"),
    ("board_name", "board_name"),
    ("board_serial", "board_serial"),
    ("board_vendor", "board_vendor"),
    ("board_version", "board_version"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_version", "chassis_version"),
    ("product_family", "product_family"),
    ("product_name", "product_name"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
    ("product_version", "product_version"),
    ("sys_vendor", "system_vendor"),
];

const HELP: &str = "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, product_sku, product_uuid, product_version, system_vendor if provided by DMI.";

/// What /sys/class/dmi/id holds: (label, value) for each file present, in label order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dmi {
    pub labels: Vec<(&'static str, String)>,
}

/// The label a DMI file becomes, if any.
pub fn label_for(file: &str) -> Option<&'static str> {
    LABELS.iter().find(|(f, _)| *f == file).map(|(_, l)| *l)
}

/// Reads the DMI directory; a missing directory is empty.
pub fn read(dir: &Path) -> anyhow::Result<Dmi> {
    let entries = match util::read_dir_sorted(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Dmi::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut dmi = Dmi::default();
    for e in entries.iter().filter(|e| e.is_file()) {
        let Some(label) = label_for(&e.name) else {
            continue;
        };
        match util::sys_read(&e.path) {
            Ok(v) => dmi.labels.push((label, v)),
            Err(err) if err.permission() => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", e.path.display())),
        }
    }
    dmi.labels.sort_by_key(|(l, _)| *l);
    Ok(dmi)
}

fn render(d: &Dmi, out: &mut Vec<Family>) {
    let mut f = Family::new("node_dmi_info", HELP, MetricType::Gauge);
    let labels: Vec<(&'static str, &str)> =
        d.labels.iter().map(|(l, v)| (*l, v.as_str())).collect();
    f.push(&labels, 1.0);
    out.push(f);
}

struct DmiCollector {
    dir: PathBuf,
    /// The values, once read without an error.
    cached: Mutex<Option<Dmi>>,
}

impl Collector for DmiCollector {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.is_none() {
            *cached = Some(read(&self.dir)?);
        }
        match cached.as_ref() {
            Some(d) if !d.labels.is_empty() => {
                render(d, out);
                Ok(())
            }
            _ => anyhow::bail!("no DMI information in {}", self.dir.display()),
        }
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(DmiCollector {
        dir: opts.sysfs.join("class/dmi/id"),
        cached: Mutex::new(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path) -> anyhow::Result<Vec<Family>> {
        let c = DmiCollector {
            dir: dir.to_path_buf(),
            cached: Mutex::new(None),
        };
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out)
    }

    #[test]
    fn labels_from_present_files() {
        let d = tempfile::tempdir().unwrap();
        let w = |f: &str, v: &[u8]| std::fs::write(d.path().join(f), v).unwrap();
        w("sys_vendor", b"ACME Corp.\n");
        w("bios_date", b"01/02/2023\n");
        w("product_version", b"\xff\x1c[\xfe\xfd\n");
        w("chassis_asset_tag", b" \n");
        w("chassis_type", b"23\n");
        w("modalias", b"dmi:bvnACME:\n");
        w("board_name", &[b'x'; 300]);
        std::fs::create_dir(d.path().join("power")).unwrap();
        let fams = collect(d.path()).unwrap();
        assert_eq!(fams.len(), 1);
        let labels: Vec<(&str, &str)> = fams[0].samples[0]
            .labels
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_str()))
            .collect();
        let long = "x".repeat(128);
        assert_eq!(
            labels,
            vec![
                ("bios_date", "01/02/2023"),
                ("board_name", long.as_str()),
                ("chassis_asset_tag", ""),
                ("product_version", "\u{FFFD}\x1c[\u{FFFD}"),
                ("system_vendor", "ACME Corp."),
            ]
        );
        assert_eq!(fams[0].samples[0].value, 1.0);
    }

    #[test]
    fn missing_or_empty_is_no_data_and_errors_fail() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(&d.path().join("nope")).is_err());
        assert!(collect(d.path()).is_err());
        assert_eq!(read(&d.path().join("nope")).unwrap(), Dmi::default());
        // A file that cannot be read (here a FIFO would block; a directory named like a DMI
        // file is not a plain file and is skipped).
        std::fs::create_dir(d.path().join("bios_vendor")).unwrap();
        assert_eq!(read(d.path()).unwrap(), Dmi::default());
    }

    #[test]
    fn read_once_then_cached() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("product_name"), "Box\n").unwrap();
        let c = DmiCollector {
            dir: d.path().to_path_buf(),
            cached: Mutex::new(None),
        };
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        std::fs::write(d.path().join("product_name"), "Other\n").unwrap();
        let mut again = Vec::new();
        c.collect(&mut again).unwrap();
        assert_eq!(out, again);
    }
}
