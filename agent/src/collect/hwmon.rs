//! hwmon collector: /sys/class/hwmon/* with node_exporter 1.12's chip naming, sensor types,
//! units and help texts. Each attribute is read with one raw read() (some drivers return
//! EAGAIN forever to readers that retry); unreadable attributes are skipped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use regex::Regex;

use super::{util, Collector, Family, MetricType, Options};

const SENSOR_TYPES: &[&str] = &[
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
    "freq",
];

struct Hwmon {
    dir: PathBuf,
    include: Option<Regex>,
    exclude: Option<Regex>,
}

/// Lower-cases and replaces anything but [a-z0-9:_] with '_', trimming underscores.
fn clean(name: &str) -> String {
    let s: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_string()
}

/// Splits `temp1_crit_alarm` into ("temp", "1", "crit_alarm").
fn explode(file: &str) -> Option<(&str, &str, &str)> {
    let type_end = file
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(file.len());
    if type_end == 0 {
        return None;
    }
    let (kind, rest) = file.split_at(type_end);
    let num_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (num, rest) = rest.split_at(num_end);
    let prop = match rest.strip_prefix('_') {
        Some(p) => p,
        None if rest.is_empty() => "",
        None => return None,
    };
    Some((kind, num, prop))
}

/// sensor → property → raw value, from the hwmon dir and its device dir.
type SensorData = BTreeMap<String, BTreeMap<String, String>>;

fn collect_dir(dir: &Path, data: &mut SensorData) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((kind, num, prop)) = explode(&name) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) || e.file_type().map(|t| t.is_dir()).unwrap_or(true) {
            continue;
        }
        if let Ok(v) = util::read_attr(&e.path()) {
            let num = if num.is_empty() { "0" } else { num };
            data.entry(format!("{kind}{num}"))
                .or_default()
                .insert(prop.to_string(), v);
        }
    }
}

/// The chip label before collisions are resolved: the device's `<parent>_<name>`, else the
/// `name` file, else `hwmonN`.
fn base_chip(dir: &Path) -> String {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let name = dev
            .file_name()
            .map(|n| clean(&n.to_string_lossy()))
            .unwrap_or_default();
        let parent = dev
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| clean(&n.to_string_lossy()))
            .unwrap_or_default();
        if !parent.is_empty() && !name.is_empty() {
            return format!("{parent}_{name}");
        }
        if !name.is_empty() {
            return name;
        }
    }
    if let Ok(n) = util::read_attr(&dir.join("name")) {
        let n = clean(&n);
        if !n.is_empty() {
            return n;
        }
    }
    dir.file_name()
        .map(|n| clean(&n.to_string_lossy()))
        .unwrap_or_default()
}

fn push(
    fams: &mut BTreeMap<String, Family>,
    name: String,
    help: String,
    kind: MetricType,
    labels: &[(&str, &str)],
    v: f64,
) {
    fams.entry(name.clone())
        .or_insert_with(|| Family::new(name, help, kind))
        .push(labels, v);
}

impl Hwmon {
    fn emit(&self, chip: &str, data: &SensorData, fams: &mut BTreeMap<String, Family>) {
        for (sensor, props) in data {
            let (kind, _, _) = explode(sensor).unwrap_or(("", "", ""));
            let mut sensor_name = sensor.clone();
            if let Some(label) = props.get("label") {
                push(
                    fams,
                    "node_hwmon_sensor_label".into(),
                    "Label for given chip and sensor".into(),
                    MetricType::Gauge,
                    &[("chip", chip), ("label", label.trim()), ("sensor", sensor)],
                    1.0,
                );
                // GPU frequency sensors are named by their label (sclk, mclk).
                if kind == "freq" && !clean(label).is_empty() {
                    sensor_name = clean(label);
                }
            }
            let labels = [("chip", chip), ("sensor", sensor_name.as_str())];
            let value = |p: &str| props.get(p).and_then(|v| v.trim().parse::<f64>().ok());
            match kind {
                "beep_enable" => {
                    let v = if props.get("").map(|s| s.trim()) == Some("1") {
                        1.0
                    } else {
                        0.0
                    };
                    push(
                        fams,
                        "node_hwmon_beep_enabled".into(),
                        "Hardware beep enabled".into(),
                        MetricType::Gauge,
                        &labels,
                        v,
                    );
                    continue;
                }
                "vrm" => {
                    if let Some(v) = value("") {
                        push(
                            fams,
                            "node_hwmon_voltage_regulator_version".into(),
                            "Hardware voltage regulator".into(),
                            MetricType::Gauge,
                            &labels,
                            v,
                        );
                    }
                    continue;
                }
                "update_interval" => {
                    if let Some(v) = value("") {
                        push(
                            fams,
                            "node_hwmon_update_interval_seconds".into(),
                            "Hardware monitor update interval".into(),
                            MetricType::Gauge,
                            &labels,
                            v * 0.001,
                        );
                    }
                    continue;
                }
                _ => {}
            }
            let prefix = format!("node_hwmon_{kind}");
            for (element, raw) in props {
                if element == "label" {
                    continue;
                }
                let Ok(v) = raw.trim().parse::<f64>() else {
                    continue;
                };
                let mut name = prefix.clone();
                if element == "input" {
                    if props.contains_key("") {
                        name.push_str("_input");
                    }
                } else if !element.is_empty() {
                    name.push('_');
                    name.push_str(&clean(element));
                }
                let g = MetricType::Gauge;
                let (name, help, kind_, v) = match (kind, element.as_str()) {
                    (_, "fault" | "alarm") => (name, format!("Hardware sensor {element} status ({kind})"), g, v),
                    (_, "beep") => (format!("{name}_enabled"), "Hardware monitor sensor has beeping enabled".into(), g, v),
                    ("in" | "cpu", _) => (format!("{name}_volts"), format!("Hardware monitor for voltage ({element})"), g, v * 0.001),
                    ("temp", e) if e != "type" => (format!("{name}_celsius"), format!("Hardware monitor for temperature ({element})"), g, v * 0.001),
                    ("curr", _) => (format!("{name}_amps"), format!("Hardware monitor for current ({element})"), g, v * 0.001),
                    ("energy", _) => (
                        format!("{name}_joule_total"),
                        format!("Hardware monitor for joules used so far ({element})"),
                        MetricType::Counter,
                        v / 1e6,
                    ),
                    ("power", "accuracy") => (name, "Hardware monitor power meter accuracy, as a ratio".into(), g, v / 1e6),
                    ("power", "average_interval" | "average_interval_min" | "average_interval_max") => (
                        format!("{name}_seconds"),
                        format!("Hardware monitor power usage update interval ({element})"),
                        g,
                        v * 0.001,
                    ),
                    ("power", _) => (format!("{name}_watt"), format!("Hardware monitor for power usage in watts ({element})"), g, v / 1e6),
                    ("humidity", _) => (
                        name,
                        format!("Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({element})"),
                        g,
                        v / 1e6,
                    ),
                    ("fan", "input" | "min" | "max" | "target") => (
                        format!("{name}_rpm"),
                        format!("Hardware monitor for fan revolutions per minute ({element})"),
                        g,
                        v,
                    ),
                    ("freq", "input") => (format!("{name}_freq_mhz"), "Hardware monitor for GPU frequency in MHz".into(), g, v / 1e6),
                    _ => (name, format!("Hardware monitor {kind} element {element}"), g, v),
                };
                push(fams, name, help, kind_, &labels, v);
            }
        }
    }
}

impl Collector for Hwmon {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?;
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        // Chip labels; colliding ones get the cleaned `name` (or hwmonN) appended.
        let bases: Vec<String> = dirs.iter().map(|d| base_chip(d)).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for b in &bases {
            *counts.entry(b.as_str()).or_default() += 1;
        }
        let mut fams: BTreeMap<String, Family> = BTreeMap::new();
        for (dir, base) in dirs.iter().zip(&bases) {
            let name = util::read_attr(&dir.join("name"))
                .ok()
                .map(|n| clean(&n))
                .filter(|n| !n.is_empty());
            let chip = if counts[base.as_str()] > 1 {
                let suffix = name.clone().unwrap_or_else(|| {
                    dir.file_name()
                        .map(|n| clean(&n.to_string_lossy()))
                        .unwrap_or_default()
                });
                format!("{base}_{suffix}")
            } else {
                base.clone()
            };
            if self.include.as_ref().is_some_and(|r| !r.is_match(&chip))
                || self.exclude.as_ref().is_some_and(|r| r.is_match(&chip))
            {
                continue;
            }
            let mut data = SensorData::new();
            collect_dir(dir, &mut data);
            collect_dir(&dir.join("device"), &mut data);
            if let Some(n) = &name {
                push(
                    &mut fams,
                    "node_hwmon_chip_names".into(),
                    "Annotation metric for human-readable chip names".into(),
                    MetricType::Gauge,
                    &[("chip", &chip), ("chip_name", n)],
                    1.0,
                );
            }
            self.emit(&chip, &data, &mut fams);
        }
        out.extend(fams.into_values());
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let re = |r: &Option<String>, flag: &str| -> anyhow::Result<Option<Regex>> {
        r.as_deref()
            .map(Regex::new)
            .transpose()
            .with_context(|| format!("--collector.hwmon.{flag}"))
    };
    Ok(Box::new(Hwmon {
        dir: opts.sysfs.join("class/hwmon"),
        include: re(&opts.hwmon_chip_include, "chip-include")?,
        exclude: re(&opts.hwmon_chip_exclude, "chip-exclude")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            explode("temp1_crit_alarm"),
            Some(("temp", "1", "crit_alarm"))
        );
        assert_eq!(explode("fan2"), Some(("fan", "2", "")));
        assert_eq!(explode("beep_enable"), Some(("beep_enable", "", "")));
        assert_eq!(
            explode("update_interval"),
            Some(("update_interval", "", ""))
        );
        assert_eq!(explode("in1x"), None);
        assert_eq!(clean("Core 0"), "core_0");
        assert_eq!(clean("asus-nb-wmi"), "asus_nb_wmi");
    }
}
