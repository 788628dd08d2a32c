//! thermal_zone collector: zone temperatures and cooling-device states from
//! /sys/class/thermal, with procfs' rules: a disabled zone, or one whose type or temp cannot
//! be read, is skipped; a value that is not a number fails the scrape.
//!
//! What is read when (Documentation/driver-api/thermal/sysfs-api.rst): a zone's and a cooling
//! device's `type` are given by the driver at registration and read once; `mode` (writable),
//! `temp`, `cur_state` and `max_state` (updated when the device's limits change) are held
//! open and read on every scrape. class/thermal is listed on every scrape; when it changes the
//! zones and devices are set up again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use super::attr::{Attr, Dir, Listing};
use super::{Collector, Family, MetricType, Options};

struct Thermal {
    dir: PathBuf,
    cache: Mutex<Cache>,
}

struct Cache {
    /// class/thermal, listed on every scrape.
    class: Dir,
    /// Its listing (None: there is none) when the zones and devices were set up.
    seen: Option<Option<Listing>>,
    zones: Vec<Zone>,
    devices: Vec<Device>,
}

impl Cache {
    fn new(dir: &Path) -> Cache {
        Cache {
            class: Dir::new(dir.to_path_buf()),
            seen: None,
            zones: Vec::new(),
            devices: Vec::new(),
        }
    }
}

/// A type read once when it reads; else tried again on every scrape.
enum Kind {
    Known(String),
    Read(Attr),
    Missing,
}

impl Kind {
    fn open(path: &Path) -> Kind {
        match Attr::open(path) {
            Err(_) => Kind::Missing,
            Ok(a) => match a.text(&mut [0u8; 4096]) {
                Ok(t) => Kind::Known(t),
                Err(_) => Kind::Read(a),
            },
        }
    }

    fn get(&self, buf: &mut [u8; 4096]) -> Option<String> {
        match self {
            Kind::Known(t) => Some(t.clone()),
            Kind::Read(a) => a.text(buf).ok(),
            Kind::Missing => None,
        }
    }
}

struct Zone {
    zone: String,
    dir: PathBuf,
    kind: Kind,
    mode: Option<Attr>,
    temp: Option<Attr>,
}

struct Device {
    dev: String,
    dir: PathBuf,
    kind: Kind,
    max: Option<Attr>,
    cur: Option<Attr>,
}

/// `prefix<digits...>` entries of the thermal class directory, sorted like Go's Glob.
fn entries(dir: &Path, prefix: &str) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        // No thermal class at all: nothing to report, and not a failure (as node_exporter).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(prefix)?;
            n.starts_with(|c: char| c.is_ascii_digit())
                .then(|| (n.to_string(), e.path()))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn parse_int(path: impl FnOnce() -> PathBuf, raw: &str) -> anyhow::Result<f64> {
    raw.parse::<i64>()
        .map(|v| v as f64)
        .with_context(|| format!("parsing {} ({raw:?})", path().display()))
}

impl Thermal {
    /// Sets the zones and devices up again when class/thermal changed.
    fn refresh(&self, cache: &mut Cache) -> anyhow::Result<()> {
        let listing = match cache.class.listing() {
            Ok(l) => Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        if cache.seen == Some(listing) {
            return Ok(());
        }
        // Drop what is held before opening anew, so the budget counts each file once.
        cache.zones.clear();
        cache.devices.clear();
        let open = |dir: &Path, f: &str| Attr::open(&dir.join(f)).ok();
        for (zone, dir) in entries(&self.dir, "thermal_zone")? {
            cache.zones.push(Zone {
                kind: Kind::open(&dir.join("type")),
                mode: open(&dir, "mode"),
                temp: open(&dir, "temp"),
                zone,
                dir,
            });
        }
        for (dev, dir) in entries(&self.dir, "cooling_device")? {
            cache.devices.push(Device {
                kind: Kind::open(&dir.join("type")),
                max: open(&dir, "max_state"),
                cur: open(&dir, "cur_state"),
                dev,
                dir,
            });
        }
        cache.seen = Some(listing);
        Ok(())
    }
}

impl Collector for Thermal {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut cache)?;
        let mut temp = Family::new(
            "node_thermal_zone_temp",
            "Zone temperature in Celsius",
            MetricType::Gauge,
        );
        let mut cur = Family::new(
            "node_cooling_device_cur_state",
            "Current throttle state of the cooling device",
            MetricType::Gauge,
        );
        let mut max = Family::new(
            "node_cooling_device_max_state",
            "Maximum throttle state of the cooling device",
            MetricType::Gauge,
        );
        let mut buf = [0u8; 4096];
        let text = |a: &Option<Attr>, buf: &mut [u8; 4096]| a.as_ref()?.text(buf).ok();
        for z in &cache.zones {
            if text(&z.mode, &mut buf).is_some_and(|m| m == "disabled") {
                continue;
            }
            // A sensor that cannot be read (EIO, EAGAIN, ENODATA) skips its zone only.
            // procfs also insists on a readable `policy`; every kernel has one, so it is not
            // read here (one syscall less per zone).
            let (Some(kind), Some(raw)) = (z.kind.get(&mut buf), text(&z.temp, &mut buf)) else {
                continue;
            };
            let t = parse_int(|| z.dir.join("temp"), &raw)?;
            temp.push(&[("zone", &z.zone), ("type", &kind)], t / 1000.0);
        }
        for d in &cache.devices {
            let (Some(kind), Some(max_raw), Some(cur_raw)) = (
                d.kind.get(&mut buf),
                text(&d.max, &mut buf),
                text(&d.cur, &mut buf),
            ) else {
                continue;
            };
            // cur_state may be -1 (intel_powerclamp), so these are signed.
            let m = parse_int(|| d.dir.join("max_state"), &max_raw)?;
            let c = parse_int(|| d.dir.join("cur_state"), &cur_raw)?;
            cur.push(&[("name", &d.dev), ("type", &kind)], c);
            max.push(&[("name", &d.dev), ("type", &kind)], m);
        }
        out.extend([temp, cur, max]);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Thermal {
        dir: opts.sysfs.join("class/thermal"),
        cache: Mutex::new(Cache::new(&opts.sysfs.join("class/thermal"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    fn collect(dir: &Path) -> anyhow::Result<Vec<(String, String, f64)>> {
        let mut out = Vec::new();
        Thermal {
            dir: dir.to_path_buf(),
            cache: Mutex::new(Cache::new(dir)),
        }
        .collect(&mut out)?;
        Ok(out
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(|s| {
                    let l: Vec<String> = s.labels.iter().map(|(_, v)| v.clone()).collect();
                    (f.name.to_string(), l.join(","), s.value)
                })
            })
            .collect())
    }

    fn zone(root: &Path, n: &str, kind: &str, temp: &str) {
        write(root, &format!("thermal_zone{n}/type"), kind);
        write(root, &format!("thermal_zone{n}/policy"), "step_wise\n");
        write(root, &format!("thermal_zone{n}/temp"), temp);
    }

    #[test]
    fn zones_and_cooling_devices() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        zone(r, "0", "x86_pkg_temp\n", "45000\n");
        zone(r, "1", "acpitz\n", "-1500\n");
        zone(r, "2", "disabled-zone\n", "1\n");
        write(r, "thermal_zone2/mode", "disabled\n");
        // temp is a directory (read fails like a broken sensor): zone skipped quietly.
        zone(r, "3", "broken\n", "");
        std::fs::remove_file(r.join("thermal_zone3/temp")).unwrap();
        std::fs::create_dir(r.join("thermal_zone3/temp")).unwrap();
        write(r, "cooling_device0/type", "Processor\n");
        write(r, "cooling_device0/cur_state", "-1\n");
        write(r, "cooling_device0/max_state", "3\n");
        write(r, "cooling_device1/type", "Fan\n"); // no states: skipped
        let got = collect(r).unwrap();
        let want = vec![
            ("node_thermal_zone_temp", "0,x86_pkg_temp", 45.0),
            ("node_thermal_zone_temp", "1,acpitz", -1.5),
            ("node_cooling_device_cur_state", "0,Processor", -1.0),
            ("node_cooling_device_max_state", "0,Processor", 3.0),
        ];
        let got: Vec<(&str, &str, f64)> = got
            .iter()
            .map(|(n, l, v)| (n.as_str(), l.as_str(), *v))
            .collect();
        assert_eq!(got, want);
        // A temperature that is not a number fails the scrape, as in node_exporter.
        write(r, "thermal_zone1/temp", "hot\n");
        assert!(collect(r).is_err());
    }

    #[test]
    fn missing_class_is_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(&d.path().join("nope")).unwrap().is_empty());
    }
}
