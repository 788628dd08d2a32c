//! thermal_zone collector: zone temperatures and cooling-device states from
//! /sys/class/thermal.

use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

struct Thermal {
    dir: PathBuf,
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
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.path();
            if let Some(zone) = name.strip_prefix("thermal_zone") {
                // A zone whose sensor cannot be read (EIO, EAGAIN) is skipped, not fatal.
                let (Ok(kind), Some(t)) = (
                    util::read_attr(&dir.join("type")),
                    util::read_num(&dir.join("temp")),
                ) else {
                    continue;
                };
                temp.push(&[("type", &kind), ("zone", zone)], t / 1000.0);
            } else if let Some(dev) = name.strip_prefix("cooling_device") {
                let Ok(kind) = util::read_attr(&dir.join("type")) else {
                    continue;
                };
                if let (Some(c), Some(m)) = (
                    util::read_num(&dir.join("cur_state")),
                    util::read_num(&dir.join("max_state")),
                ) {
                    cur.push(&[("name", dev), ("type", &kind)], c);
                    max.push(&[("name", dev), ("type", &kind)], m);
                }
            }
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
