//! thermal_zone collector: zone temperatures and cooling-device states from
//! /sys/class/thermal, with procfs' rules: a disabled zone, or one whose type or temp cannot
//! be read, is skipped; a value that is not a number fails the scrape.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{util, Collector, Family, MetricType, Options};

struct Thermal {
    dir: PathBuf,
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

fn parse_int(path: &Path, raw: &str) -> anyhow::Result<f64> {
    raw.parse::<i64>()
        .map(|v| v as f64)
        .with_context(|| format!("parsing {} ({raw:?})", path.display()))
}

impl Collector for Thermal {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
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
        for (zone, dir) in entries(&self.dir, "thermal_zone")? {
            if util::read_attr(&dir.join("mode")).is_ok_and(|m| m == "disabled") {
                continue;
            }
            // A sensor that cannot be read (EIO, EAGAIN, ENODATA) skips its zone only.
            // procfs also insists on a readable `policy`; every kernel has one, so it is not
            // read here (one syscall less per zone).
            let (Ok(kind), Ok(raw)) = (
                util::read_attr(&dir.join("type")),
                util::read_attr(&dir.join("temp")),
            ) else {
                continue;
            };
            let t = parse_int(&dir.join("temp"), &raw)?;
            temp.push(&[("zone", &zone), ("type", &kind)], t / 1000.0);
        }
        for (dev, dir) in entries(&self.dir, "cooling_device")? {
            let (Ok(kind), Ok(max_raw), Ok(cur_raw)) = (
                util::read_attr(&dir.join("type")),
                util::read_attr(&dir.join("max_state")),
                util::read_attr(&dir.join("cur_state")),
            ) else {
                continue;
            };
            // cur_state may be -1 (intel_powerclamp), so these are signed.
            let m = parse_int(&dir.join("max_state"), &max_raw)?;
            let c = parse_int(&dir.join("cur_state"), &cur_raw)?;
            cur.push(&[("name", &dev), ("type", &kind)], c);
            max.push(&[("name", &dev), ("type", &kind)], m);
        }
        out.extend([temp, cur, max]);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Thermal {
        dir: opts.sysfs.join("class/thermal"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn collect(dir: &Path) -> anyhow::Result<Vec<(String, String, f64)>> {
        let mut out = Vec::new();
        Thermal {
            dir: dir.to_path_buf(),
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
