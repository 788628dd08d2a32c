//! powersupplyclass collector: batteries, mains adapters and UPSes from
//! /sys/class/power_supply, as node_exporter 1.12 (procfs' PowerSupplyClass) reads them.
//!
//! Each plain file of a supply that node_exporter uses is read as procfs reads it (one read
//! of at most 128 bytes, trimmed). A missing attribute, or one whose read fails with ENODEV
//! or EOPNOTSUPP, is left out; any other read error (EIO, EAGAIN, ENODATA, EINVAL, ...) and a
//! numeric attribute that is not an integer (Go's base-0 syntax: 0x…, 0…, _) fail the
//! collector, as in node_exporter. Micro-units (µA, µV, µWh, µAh, µW) become base units, tenths
//! of a degree become degrees. The info series carries the text attributes that are not empty.
//!
//! Differences, all on broken input: supplies matching
//! `--collector.powersupply.ignored-supplies` are not read at all (node_exporter reads them
//! and fails on their errors before dropping them); files node_exporter reads without using
//! them (uevent, alarm, *_avg, ...) are not read, so their errors do not count. Label values
//! have invalid UTF-8 replaced, as node_exporter does for this collector.

use std::path::{Path, PathBuf};

use anyhow::Context;
use regex::Regex;

use super::{util, Collector, Family, MetricType, Options};

// No argument group: every collector's flag struct is called `Flags`, and clap would
// name a group after it.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// Regexp of power supplies to ignore for powersupplyclass collector.
    #[arg(
        id = "collector.powersupply.ignored-supplies",
        long = "collector.powersupply.ignored-supplies",
        value_name = "REGEX",
        default_value = "^$"
    )]
    pub ignored_supplies: String,
}

/// What a power_supply attribute becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A gauge: metric name, help, divisor.
    Gauge(&'static str, &'static str, f64),
    /// An integer node_exporter parses (so a garbled one fails) but does not export.
    Unused,
    /// A label of node_power_supply_info.
    Label(&'static str),
}

macro_rules! gauge {
    ($metric:literal, $div:expr) => {
        Kind::Gauge(
            concat!("node_power_supply_", $metric),
            concat!($metric, " value of /sys/class/power_supply/<power_supply>."),
            $div,
        )
    };
}

/// Attribute file → what it becomes, sorted by file name.
pub const ATTRS: &[(&str, Kind)] = &[
    ("authentic", gauge!("authentic", 1.0)),
    ("calibrate", gauge!("calibrate", 1.0)),
    ("capacity", gauge!("capacity", 1.0)),
    ("capacity_alert_max", gauge!("capacity_alert_max", 1.0)),
    ("capacity_alert_min", gauge!("capacity_alert_min", 1.0)),
    ("capacity_level", Kind::Label("capacity_level")),
    ("charge_avg", Kind::Unused),
    ("charge_control_limit", gauge!("charge_control_limit", 1e6)),
    (
        "charge_control_limit_max",
        gauge!("charge_control_limit_max", 1e6),
    ),
    ("charge_counter", gauge!("charge_counter", 1e6)),
    ("charge_empty", gauge!("charge_empty", 1e6)),
    ("charge_empty_design", gauge!("charge_empty_design", 1e6)),
    ("charge_full", gauge!("charge_full", 1e6)),
    ("charge_full_design", gauge!("charge_full_design", 1e6)),
    ("charge_now", gauge!("charge_ampere", 1e6)),
    ("charge_term_current", gauge!("charge_term_current", 1e6)),
    ("charge_type", Kind::Label("charge_type")),
    (
        "constant_charge_current",
        gauge!("constant_charge_current", 1e6),
    ),
    (
        "constant_charge_current_max",
        gauge!("constant_charge_current_max", 1e6),
    ),
    (
        "constant_charge_voltage",
        gauge!("constant_charge_voltage", 1e6),
    ),
    (
        "constant_charge_voltage_max",
        gauge!("constant_charge_voltage_max", 1e6),
    ),
    ("current_avg", Kind::Unused),
    ("current_boot", gauge!("current_boot", 1e6)),
    ("current_max", gauge!("current_max", 1e6)),
    ("current_now", gauge!("current_ampere", 1e6)),
    ("cycle_count", gauge!("cyclecount", 1.0)),
    ("energy_avg", Kind::Unused),
    ("energy_empty", gauge!("energy_empty", 1e6)),
    ("energy_empty_design", gauge!("energy_empty_design", 1e6)),
    ("energy_full", gauge!("energy_full", 1e6)),
    ("energy_full_design", gauge!("energy_full_design", 1e6)),
    ("energy_now", gauge!("energy_watthour", 1e6)),
    ("health", Kind::Label("health")),
    ("input_current_limit", gauge!("input_current_limit", 1e6)),
    ("manufacturer", Kind::Label("manufacturer")),
    ("model_name", Kind::Label("model_name")),
    ("online", gauge!("online", 1.0)),
    ("power_avg", Kind::Unused),
    ("power_now", gauge!("power_watt", 1e6)),
    ("precharge_current", gauge!("precharge_current", 1e6)),
    ("present", gauge!("present", 1.0)),
    ("scope", Kind::Label("scope")),
    ("serial_number", Kind::Label("serial_number")),
    ("status", Kind::Label("status")),
    ("technology", Kind::Label("technology")),
    ("temp", gauge!("temp_celsius", 10.0)),
    ("temp_alert_max", gauge!("temp_alert_max_celsius", 10.0)),
    ("temp_alert_min", gauge!("temp_alert_min_celsius", 10.0)),
    ("temp_ambient", gauge!("temp_ambient_celsius", 10.0)),
    ("temp_ambient_max", gauge!("temp_ambient_max_celsius", 10.0)),
    ("temp_ambient_min", gauge!("temp_ambient_min_celsius", 10.0)),
    ("temp_max", gauge!("temp_max_celsius", 10.0)),
    ("temp_min", gauge!("temp_min_celsius", 10.0)),
    ("time_to_empty_avg", Kind::Unused),
    ("time_to_empty_now", gauge!("time_to_empty_seconds", 1.0)),
    ("time_to_full_avg", Kind::Unused),
    ("time_to_full_now", gauge!("time_to_full_seconds", 1.0)),
    ("type", Kind::Label("type")),
    ("usb_type", Kind::Label("usb_type")),
    ("voltage_avg", Kind::Unused),
    ("voltage_boot", gauge!("voltage_boot", 1e6)),
    ("voltage_max", gauge!("voltage_max", 1e6)),
    ("voltage_max_design", gauge!("voltage_max_design", 1e6)),
    ("voltage_min", gauge!("voltage_min", 1e6)),
    ("voltage_min_design", gauge!("voltage_min_design", 1e6)),
    ("voltage_now", gauge!("voltage_volt", 1e6)),
    ("voltage_ocv", gauge!("voltage_ocv", 1e6)),
];

/// The entry of [`ATTRS`] for a file name.
pub fn attr(file: &str) -> Option<&'static (&'static str, Kind)> {
    ATTRS
        .binary_search_by(|(f, _)| (*f).cmp(file))
        .ok()
        .map(|i| &ATTRS[i])
}

/// One supply: its name, numeric values (metric, help, value in base units) and info labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Supply {
    pub name: String,
    pub values: Vec<(&'static str, &'static str, f64)>,
    pub labels: Vec<(&'static str, String)>,
}

/// Adds one attribute's (trimmed) value to a supply.
pub fn parse_attr(s: &mut Supply, file: &str, value: String) -> anyhow::Result<()> {
    let Some((_, kind)) = attr(file) else {
        return Ok(());
    };
    match *kind {
        Kind::Label(label) => {
            if !value.is_empty() {
                s.labels.push((label, value));
            }
        }
        Kind::Gauge(metric, help, div) => {
            let v = util::go_parse_int(&value, 0)
                .with_context(|| format!("{file}: not an integer: {value:?}"))?;
            s.values.push((metric, help, v as f64 / div));
        }
        Kind::Unused => {
            util::go_parse_int(&value, 0)
                .with_context(|| format!("{file}: not an integer: {value:?}"))?;
        }
    }
    Ok(())
}

fn read_supply(dir: &Path, name: String) -> anyhow::Result<Supply> {
    let entries =
        util::read_dir_sorted(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut s = Supply {
        name,
        ..Default::default()
    };
    for e in entries.iter().filter(|e| e.is_file()) {
        if attr(&e.name).is_none() {
            continue;
        }
        let value = match util::sys_read(&e.path) {
            Ok(v) => v,
            Err(err)
                if err.not_found()
                    || err.read_errno(libc::ENODEV)
                    || err.read_errno(libc::EOPNOTSUPP) =>
            {
                continue
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", e.path.display())),
        };
        parse_attr(&mut s, &e.name, value)
            .with_context(|| format!("parsing {}", e.path.display()))?;
    }
    Ok(s)
}

/// Reads /sys/class/power_supply, leaving out the supplies `ignored` matches; `Ok(None)`
/// when the class does not exist.
pub fn read(dir: &Path, ignored: Option<&Regex>) -> anyhow::Result<Option<Vec<Supply>>> {
    util::read_class(
        dir,
        |name| !ignored.is_some_and(|r| r.is_match(name)),
        read_supply,
    )
}

fn render(supplies: &[Supply], out: &mut Vec<Family>) {
    let mut fams: Vec<Family> = Vec::new();
    let mut info = Family::new(
        "node_power_supply_info",
        "info of /sys/class/power_supply/<power_supply>.",
        MetricType::Gauge,
    );
    for s in supplies {
        for &(metric, help, v) in &s.values {
            let f = match fams.iter().position(|f| f.name == metric) {
                Some(i) => &mut fams[i],
                None => {
                    fams.push(Family::new(metric, help, MetricType::Gauge));
                    fams.last_mut().expect("just pushed")
                }
            };
            f.push(&[("power_supply", &s.name)], v);
        }
        let mut labels: Vec<(&'static str, &str)> = vec![("power_supply", &s.name)];
        labels.extend(s.labels.iter().map(|(k, v)| (*k, v.as_str())));
        info.push(&labels, 1.0);
    }
    out.extend(fams);
    out.push(info);
}

struct PowerSupplyClass {
    dir: PathBuf,
    ignored: Option<Regex>,
}

impl Collector for PowerSupplyClass {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let supplies = read(&self.dir, self.ignored.as_ref())?
            .with_context(|| format!("no power supplies in {}", self.dir.display()))?;
        render(&supplies, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let pattern = &opts.powersupplyclass.ignored_supplies;
    // The default matches only an empty name, which no directory entry has.
    let ignored = match pattern.as_str() {
        "^$" => None,
        p => Some(
            Regex::new(p).context("--collector.powersupply.ignored-supplies must be a regexp")?,
        ),
    };
    Ok(Box::new(PowerSupplyClass {
        dir: opts.sysfs.join("class/power_supply"),
        ignored,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn attrs_are_sorted_and_parse() {
        assert!(ATTRS.windows(2).all(|w| w[0].0 < w[1].0));
        let mut s = Supply::default();
        parse_attr(&mut s, "energy_now", "36580000".into()).unwrap();
        parse_attr(&mut s, "temp", "-25".into()).unwrap();
        parse_attr(&mut s, "capacity", "0x51".into()).unwrap();
        parse_attr(&mut s, "status", "".into()).unwrap();
        parse_attr(&mut s, "technology", "Li-ion".into()).unwrap();
        parse_attr(&mut s, "power_avg", "1".into()).unwrap();
        parse_attr(&mut s, "uevent", "POWER_SUPPLY_NAME=BAT0".into()).unwrap();
        assert_eq!(
            s.values,
            vec![
                (
                    "node_power_supply_energy_watthour",
                    "energy_watthour value of /sys/class/power_supply/<power_supply>.",
                    36.58
                ),
                (
                    "node_power_supply_temp_celsius",
                    "temp_celsius value of /sys/class/power_supply/<power_supply>.",
                    -2.5
                ),
                (
                    "node_power_supply_capacity",
                    "capacity value of /sys/class/power_supply/<power_supply>.",
                    81.0
                ),
            ]
        );
        assert_eq!(s.labels, vec![("technology", "Li-ion".to_string())]);
        assert!(parse_attr(&mut s, "voltage_now", "12.5".into()).is_err());
        assert!(parse_attr(&mut s, "voltage_avg", "".into()).is_err());
    }

    #[test]
    fn supplies_and_filter() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "AC/type", b"Mains\n");
        write(r, "AC/online", b"1\n");
        write(r, "BAT0/type", b"Battery\n");
        write(r, "BAT0/model_name", b"LNV-45N1\xff\xfe\n");
        write(r, "BAT0/voltage_now", b"11660000\n");
        write(r, "BAT0/uevent", b"whatever\n");
        write(r, "BAT0/alarm", b"garbage that is never parsed\n");
        std::fs::create_dir_all(r.join("BAT0/power")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", r.join("BAT0/device")).unwrap();
        let all = read(r, None).unwrap().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].labels[0], ("model_name", "LNV-45N1\u{FFFD}".into()));
        assert_eq!(all[1].values[0].2, 11.66);
        let mut out = Vec::new();
        render(&all, &mut out);
        let names: Vec<&str> = out.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_power_supply_online",
                "node_power_supply_voltage_volt",
                "node_power_supply_info"
            ]
        );
        assert_eq!(out[2].samples[0].labels.len(), 2);
        let ignore = Regex::new("^BAT").unwrap();
        let some = read(r, Some(&ignore)).unwrap().unwrap();
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].name, "AC");
    }

    #[test]
    fn missing_and_broken() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(read(&r.join("nope"), None).unwrap(), None);
        write(r, "BAT0/capacity", b"lots\n");
        assert!(read(r, None).is_err());
        write(r, "BAT0/capacity", b"50\n");
        assert!(read(r, None).is_ok());
        // A text attribute that cannot be read with an error other than ENODEV/EOPNOTSUPP
        // fails (a directory in place of a file is not a plain file and is skipped).
        std::fs::create_dir_all(r.join("BAT0/status")).unwrap();
        assert!(read(r, None).is_ok());
    }

    #[test]
    fn flag() {
        let o = Options::from_flags(Vec::<String>::new()).unwrap();
        assert_eq!(o.powersupplyclass.ignored_supplies, "^$");
        let o =
            Options::from_flags(["--collector.powersupply.ignored-supplies=^AC$".into()]).unwrap();
        assert!(build(&o).is_ok());
        let o = Options::from_flags(["--collector.powersupply.ignored-supplies=(".into()]).unwrap();
        assert!(build(&o).is_err());
    }
}
