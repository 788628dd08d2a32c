//! watchdog collector: watchdog devices from /sys/class/watchdog, as node_exporter 1.12
//! (procfs' WatchdogClass) reads them.
//!
//! Each device's twelve attributes are read as procfs reads them (one read of at most 128
//! bytes, trimmed); a missing one is left out (a numeric gauge is then absent, a text label
//! empty). Any other read error, or a numeric attribute that is not an integer (Go's base-0
//! syntax), fails the collector, as in node_exporter; so does a missing class (no data).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

/// The numeric attributes: (file, metric, help).
const GAUGES: &[(&str, &str, &str)] = &[
    (
        "bootstatus",
        "node_watchdog_bootstatus",
        "Value of /sys/class/watchdog/<watchdog>/bootstatus",
    ),
    (
        "fw_version",
        "node_watchdog_fw_version",
        "Value of /sys/class/watchdog/<watchdog>/fw_version",
    ),
    (
        "nowayout",
        "node_watchdog_nowayout",
        "Value of /sys/class/watchdog/<watchdog>/nowayout",
    ),
    (
        "timeleft",
        "node_watchdog_timeleft_seconds",
        "Value of /sys/class/watchdog/<watchdog>/timeleft",
    ),
    (
        "timeout",
        "node_watchdog_timeout_seconds",
        "Value of /sys/class/watchdog/<watchdog>/timeout",
    ),
    (
        "pretimeout",
        "node_watchdog_pretimeout_seconds",
        "Value of /sys/class/watchdog/<watchdog>/pretimeout",
    ),
    (
        "access_cs0",
        "node_watchdog_access_cs0",
        "Value of /sys/class/watchdog/<watchdog>/access_cs0",
    ),
];

/// The text attributes, which are also the info labels.
const LABELS: &[&str] = &[
    "options",
    "identity",
    "state",
    "status",
    "pretimeout_governor",
];

/// One watchdog device: numeric attributes in [`GAUGES`] order, text ones in [`LABELS`]
/// order (`None` when the file is missing).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Watchdog {
    pub name: String,
    pub values: [Option<i64>; 7],
    pub labels: [Option<String>; 5],
}

/// A numeric watchdog attribute (Go's base-0 integer syntax).
pub fn parse_value(text: &str) -> anyhow::Result<i64> {
    util::go_parse_int(text, 0).with_context(|| format!("not an integer: {text:?}"))
}

fn attr(path: &Path) -> anyhow::Result<Option<String>> {
    match util::sys_read(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn read_device(dir: &Path, name: String) -> anyhow::Result<Watchdog> {
    let mut w = Watchdog {
        name,
        ..Default::default()
    };
    for (slot, (file, ..)) in w.values.iter_mut().zip(GAUGES) {
        let p = dir.join(file);
        if let Some(v) = attr(&p)? {
            *slot = Some(parse_value(&v).with_context(|| format!("parsing {}", p.display()))?);
        }
    }
    for (slot, file) in w.labels.iter_mut().zip(LABELS) {
        *slot = attr(&dir.join(file))?;
    }
    Ok(w)
}

/// Reads /sys/class/watchdog; `Ok(None)` when it does not exist.
pub fn read(dir: &Path) -> anyhow::Result<Option<Vec<Watchdog>>> {
    util::read_class(dir, |_| true, read_device)
}

fn render(devices: &[Watchdog], out: &mut Vec<Family>) {
    let mut fams: Vec<Family> = GAUGES
        .iter()
        .map(|(_, n, h)| Family::new(*n, *h, MetricType::Gauge))
        .collect();
    let mut info = Family::new(
        "node_watchdog_info",
        "Info of /sys/class/watchdog/<watchdog>",
        MetricType::Gauge,
    );
    for w in devices {
        for (f, v) in fams.iter_mut().zip(&w.values) {
            if let Some(v) = v {
                f.push(&[("name", &w.name)], *v as f64);
            }
        }
        let text = |i: usize| w.labels[i].as_deref().unwrap_or("");
        info.push(
            &[
                ("name", &w.name),
                ("options", text(0)),
                ("identity", text(1)),
                ("state", text(2)),
                ("status", text(3)),
                ("pretimeout_governor", text(4)),
            ],
            1.0,
        );
    }
    out.extend(fams);
    out.push(info);
}

struct WatchdogCollector {
    dir: PathBuf,
}

impl Collector for WatchdogCollector {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let devices = read(&self.dir)?
            .with_context(|| format!("no watchdog class in {}", self.dir.display()))?;
        render(&devices, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(WatchdogCollector {
        dir: opts.sysfs.join("class/watchdog"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn devices_full_and_bare() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (f, v) in [
            ("bootstatus", "1\n"),
            ("options", "0x8380\n"),
            ("identity", "iTCO_wdt\n"),
            ("timeout", "30\n"),
            ("timeleft", "0x1c\n"),
            ("state", "active\n"),
        ] {
            write(r, &format!("watchdog0/{f}"), v);
        }
        std::fs::create_dir_all(r.join("watchdog1")).unwrap();
        let devs = read(r).unwrap().unwrap();
        assert_eq!(
            devs[0].values,
            [Some(1), None, None, Some(28), Some(30), None, None]
        );
        assert_eq!(
            devs[1],
            Watchdog {
                name: "watchdog1".into(),
                ..Default::default()
            }
        );
        let mut out = Vec::new();
        render(&devs, &mut out);
        let info = out.last().unwrap();
        assert_eq!(info.samples.len(), 2);
        let labels: Vec<&str> = info.samples[0]
            .labels
            .iter()
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            labels,
            ["watchdog0", "0x8380", "iTCO_wdt", "active", "", ""]
        );
        assert!(info.samples[1].labels[1..]
            .iter()
            .all(|(_, v)| v.is_empty()));
        assert_eq!(out[0].samples.len(), 1);
        assert_eq!(out[1].samples.len(), 0);
    }

    #[test]
    fn missing_class_and_garbled_values() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(read(&r.join("nope")).unwrap(), None);
        write(r, "watchdog0/timeout", "soon\n");
        assert!(read(r).is_err());
        write(r, "watchdog0/timeout", "-1\n");
        assert_eq!(read(r).unwrap().unwrap()[0].values[4], Some(-1));
        // An attribute that cannot be read (a directory: EISDIR) fails, as in node_exporter.
        std::fs::create_dir_all(r.join("watchdog0/state")).unwrap();
        assert!(read(r).is_err());
        assert_eq!(parse_value("0x10").unwrap(), 16);
        assert!(parse_value("").is_err());
    }
}
