//! hwmon collector: /sys/class/hwmon/* with node_exporter 1.12's chip naming (and its
//! collision suffixes), sensor types, units and help texts.
//!
//! Every attribute is read with one raw read() of at most 128 bytes, like node_exporter's
//! sysReadFile: some drivers return EAGAIN forever to readers that retry, and a few block for
//! seconds per read. An attribute that cannot be read (EAGAIN, EIO, ENODATA, EISDIR, ...) is
//! skipped quietly.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use regex::Regex;

use super::{Collector, Family, MetricType, Options};

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

/// node_exporter's deviceFilter: a name is dropped when it matches `exclude` or, with an
/// `include`, when it does not match it.
#[derive(Default)]
struct Filter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Filter {
    fn new(include: &Option<String>, exclude: &Option<String>, what: &str) -> anyhow::Result<Self> {
        Ok(Filter {
            include: super::util::optional_regex(
                include,
                &format!("collector.hwmon.{what}-include"),
            )?,
            exclude: super::util::optional_regex(
                exclude,
                &format!("collector.hwmon.{what}-exclude"),
            )?,
        })
    }

    fn ignored(&self, name: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.is_match(name))
            || self.include.as_ref().is_some_and(|r| !r.is_match(name))
    }
}

/// One hwmon chip as read: its exported label (collision suffix included), its `name`, and
/// its sensors' raw values.
pub struct Chip {
    pub label: String,
    pub name: Option<String>,
    data: SensorData,
}

/// A temperature sensor and its limits, in °C.
#[derive(Debug, Clone, PartialEq)]
pub struct Temp {
    pub chip: String,
    pub sensor: String,
    pub celsius: f64,
    pub crit: Option<f64>,
    pub max: Option<f64>,
}

/// Reads the chips under a sysfs root, with the chip and sensor filters applied.
pub struct Reader {
    dir: PathBuf,
    chips: Filter,
    sensors: Filter,
}

impl Reader {
    pub fn new(opts: &Options) -> anyhow::Result<Reader> {
        Ok(Reader {
            dir: opts.sysfs.join("class/hwmon"),
            chips: Filter::new(&opts.hwmon_chip_include, &opts.hwmon_chip_exclude, "chip")?,
            sensors: Filter::new(
                &opts.hwmon_sensor_include,
                &opts.hwmon_sensor_exclude,
                "sensor",
            )?,
        })
    }

    /// Reads every chip the filters keep; `only` limits the sensors read to one kind.
    fn chips(&self, only: Option<&str>) -> anyhow::Result<Vec<Chip>> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?;
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let mut out = Vec::new();
        for (dir, (label, name)) in dirs.iter().zip(chip_labels(&dirs)) {
            // Filters see the label that is exported, collision suffix included.
            if self.chips.ignored(&label) {
                continue;
            }
            let mut data = SensorData::new();
            collect_dir(dir, only, &mut data);
            collect_dir(&dir.join("device"), only, &mut data);
            // Matched as "<chip>;<sensor>", so one sensor of one chip can be picked.
            data.retain(|sensor, _| !self.sensors.ignored(&format!("{label};{sensor}")));
            out.push(Chip { label, name, data });
        }
        Ok(out)
    }

    /// Every temperature with its `crit` and `max` limits (the ThermalThrottling rule's
    /// input), as node_hwmon_temp_celsius and its limit families report them.
    pub fn temps(&self) -> anyhow::Result<Vec<Temp>> {
        let milli = |raw: Option<&Vec<u8>>| raw.and_then(|r| num(r)).map(|v| v * 0.001);
        let mut out = Vec::new();
        for chip in self.chips(Some("temp"))? {
            for (sensor, props) in &chip.data {
                let Some(celsius) = milli(props.get("")).or_else(|| milli(props.get("input")))
                else {
                    continue;
                };
                out.push(Temp {
                    chip: chip.label.clone(),
                    sensor: sensor.clone(),
                    celsius,
                    crit: milli(props.get("crit")),
                    max: milli(props.get("max")),
                });
            }
        }
        Ok(out)
    }
}

struct Hwmon {
    reader: Reader,
}

/// One raw read() of up to 128 bytes with newlines trimmed (not other white space, so values
/// match node_exporter's byte for byte).
fn read_raw(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 128];
    let n = f.read(&mut buf)?;
    let mut v = &buf[..n];
    while let [b'\n', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b'\n'] = v {
        v = rest;
    }
    Ok(v.to_vec())
}

/// Bytes as text, each run of invalid UTF-8 replaced by one U+FFFD (Go's ToValidUTF8).
fn valid_utf8(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    let mut last_bad = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            s.push_str(chunk.valid());
            last_bad = false;
        }
        if !chunk.invalid().is_empty() && !last_bad {
            s.push('\u{FFFD}');
            last_bad = true;
        }
    }
    s
}

/// Lower-cases and replaces anything but [a-z0-9:_] with '_', trimming underscores.
fn clean(name: &str) -> String {
    let s: String = name
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

/// Splits `temp1_crit_alarm` into ("temp", 1, "crit_alarm") like node_exporter's
/// `^([^0-9]+)([0-9]*)?(_(.+))?$`; a missing number is 0.
fn explode(file: &str) -> Option<(&str, u64, &str)> {
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
    let num = if num.is_empty() { 0 } else { num.parse().ok()? };
    let prop = match rest.strip_prefix('_') {
        Some(p) if !p.is_empty() => p,
        None if rest.is_empty() => "",
        _ => return None,
    };
    Some((kind, num, prop))
}

/// sensor → property → raw value, from the hwmon dir and its device dir.
type SensorData = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Reads the sensor files of one directory; `only` limits them to one sensor kind.
fn collect_dir(dir: &Path, only: Option<&str>, data: &mut SensorData) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((kind, num, prop)) = explode(&name) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) || only.is_some_and(|o| o != kind) {
            continue;
        }
        if let Ok(v) = read_raw(&e.path()) {
            data.entry(format!("{kind}{num}"))
                .or_default()
                .insert(prop.to_string(), v);
        }
    }
}

/// The cleaned `name` file, if any.
fn chip_name(dir: &Path) -> Option<String> {
    let raw = std::fs::read(dir.join("name")).ok()?;
    let n = clean(&String::from_utf8_lossy(&raw));
    (!n.is_empty()).then_some(n)
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
    if let Some(n) = chip_name(dir) {
        return n;
    }
    dir_name(dir)
}

fn dir_name(dir: &Path) -> String {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    real.file_name()
        .map(|n| clean(&n.to_string_lossy()))
        .unwrap_or_default()
}

/// Final chip labels (1.12, #3646): a base label shared by several hwmon dirs gets the
/// chip's `name` appended when that tells it apart from the others, else its `hwmonN`.
fn chip_labels(dirs: &[PathBuf]) -> Vec<(String, Option<String>)> {
    let bases: Vec<String> = dirs.iter().map(|d| base_chip(d)).collect();
    let names: Vec<Option<String>> = dirs.iter().map(|d| chip_name(d)).collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut name_count: HashMap<(&str, &str), usize> = HashMap::new();
    for (b, n) in bases.iter().zip(&names) {
        *count.entry(b).or_default() += 1;
        if let Some(n) = n {
            *name_count.entry((b, n)).or_default() += 1;
        }
    }
    dirs.iter()
        .zip(bases.iter().zip(&names))
        .map(|(dir, (base, name))| {
            let label = if count[base.as_str()] < 2 {
                base.clone()
            } else {
                match name {
                    Some(n) if name_count[&(base.as_str(), n.as_str())] == 1 => {
                        format!("{base}_{n}")
                    }
                    _ => format!("{base}_{}", dir_name(dir)),
                }
            };
            (label, name.clone())
        })
        .collect()
}

fn push(
    fams: &mut BTreeMap<String, Family>,
    name: String,
    help: String,
    kind: MetricType,
    labels: &[(&'static str, &str)],
    v: f64,
) {
    fams.entry(name.clone())
        .or_insert_with(|| Family::new(name, help, kind))
        .push(labels, v);
}

fn num(raw: &[u8]) -> Option<f64> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

impl Hwmon {
    fn emit(&self, chip: &str, data: &SensorData, fams: &mut BTreeMap<String, Family>) {
        let g = MetricType::Gauge;
        for (sensor, props) in data {
            let kind = explode(sensor).map(|e| e.0).unwrap_or("");
            let labels = [("chip", chip), ("sensor", sensor.as_str())];
            let label = props.get("label").map(|l| valid_utf8(l));
            if let Some(label) = &label {
                push(
                    fams,
                    "node_hwmon_sensor_label".into(),
                    "Label for given chip and sensor".into(),
                    g,
                    &[("chip", chip), ("sensor", sensor), ("label", label)],
                    1.0,
                );
            }
            let bare = props.get("").map(|v| v.as_slice());
            match kind {
                "beep_enable" => {
                    let v = if bare == Some(b"1") { 1.0 } else { 0.0 };
                    push(
                        fams,
                        "node_hwmon_beep_enabled".into(),
                        "Hardware beep enabled".into(),
                        g,
                        &labels,
                        v,
                    );
                    continue;
                }
                "vrm" => {
                    if let Some(v) = bare.and_then(num) {
                        push(
                            fams,
                            "node_hwmon_voltage_regulator_version".into(),
                            "Hardware voltage regulator".into(),
                            g,
                            &labels,
                            v,
                        );
                    }
                    continue;
                }
                "update_interval" => {
                    if let Some(v) = bare.and_then(num) {
                        push(
                            fams,
                            "node_hwmon_update_interval_seconds".into(),
                            "Hardware monitor update interval".into(),
                            g,
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
                let mut name = prefix.clone();
                if element == "input" {
                    // Both `temp1` and `temp1_input`: the latter keeps its suffix.
                    if bare.is_some() {
                        name.push_str("_input");
                    }
                } else if !element.is_empty() {
                    name.push('_');
                    name.push_str(&clean(element));
                }
                let Some(v) = num(raw) else {
                    continue;
                };
                let e = element.as_str();
                let (name, help, kind_, v) = match (kind, e) {
                    (_, "fault" | "alarm") => {
                        (name, format!("Hardware sensor {e} status ({kind})"), g, v)
                    }
                    (_, "beep") => (
                        format!("{name}_enabled"),
                        "Hardware monitor sensor has beeping enabled".into(),
                        g,
                        v,
                    ),
                    ("in" | "cpu", _) => (
                        format!("{name}_volts"),
                        format!("Hardware monitor for voltage ({e})"),
                        g,
                        v * 0.001,
                    ),
                    ("temp", e) if e != "type" => (
                        format!("{name}_celsius"),
                        format!(
                            "Hardware monitor for temperature ({})",
                            if e.is_empty() { "input" } else { e }
                        ),
                        g,
                        v * 0.001,
                    ),
                    ("curr", _) => (
                        format!("{name}_amps"),
                        format!("Hardware monitor for current ({e})"),
                        g,
                        v * 0.001,
                    ),
                    ("energy", _) => (
                        format!("{name}_joule_total"),
                        format!("Hardware monitor for joules used so far ({e})"),
                        MetricType::Counter,
                        v / 1e6,
                    ),
                    ("power", "accuracy") => (
                        name,
                        "Hardware monitor power meter accuracy, as a ratio".into(),
                        g,
                        v / 1e6,
                    ),
                    (
                        "power",
                        "average_interval" | "average_interval_min" | "average_interval_max",
                    ) => (
                        format!("{name}_seconds"),
                        format!("Hardware monitor power usage update interval ({e})"),
                        g,
                        v * 0.001,
                    ),
                    ("power", _) => (
                        format!("{name}_watt"),
                        format!("Hardware monitor for power usage in watts ({e})"),
                        g,
                        v / 1e6,
                    ),
                    ("humidity", _) => (
                        name,
                        format!("Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({e})"),
                        g,
                        v / 1e6,
                    ),
                    ("fan", "input" | "min" | "max" | "target") => (
                        format!("{name}_rpm"),
                        format!("Hardware monitor for fan revolutions per minute ({e})"),
                        g,
                        v,
                    ),
                    ("freq", "input") => {
                        // GPU clocks are named by their label (sclk, mclk); none, no series.
                        let Some(l) = &label else {
                            continue;
                        };
                        let sensor = clean(l);
                        push(
                            fams,
                            format!("{name}_freq_mhz"),
                            "Hardware monitor for GPU frequency in MHz".into(),
                            g,
                            &[("chip", chip), ("sensor", &sensor)],
                            v / 1e6,
                        );
                        continue;
                    }
                    _ => (name, format!("Hardware monitor {kind} element {e}"), g, v),
                };
                push(fams, name, help, kind_, &labels, v);
            }
        }
    }
}

impl Collector for Hwmon {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut fams: BTreeMap<String, Family> = BTreeMap::new();
        for chip in self.reader.chips(None)? {
            if let Some(n) = &chip.name {
                push(
                    &mut fams,
                    "node_hwmon_chip_names".into(),
                    "Annotation metric for human-readable chip names".into(),
                    MetricType::Gauge,
                    &[("chip", &chip.label), ("chip_name", n)],
                    1.0,
                );
            }
            self.emit(&chip.label, &chip.data, &mut fams);
        }
        out.extend(fams.into_values());
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Hwmon {
        reader: Reader::new(opts)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn names() {
        assert_eq!(explode("temp1_crit_alarm"), Some(("temp", 1, "crit_alarm")));
        assert_eq!(explode("fan2"), Some(("fan", 2, "")));
        assert_eq!(explode("temp01_input"), Some(("temp", 1, "input")));
        assert_eq!(explode("beep_enable"), Some(("beep_enable", 0, "")));
        assert_eq!(explode("update_interval"), Some(("update_interval", 0, "")));
        assert_eq!(explode("in1x"), None);
        assert_eq!(explode("temp1_"), None);
        assert_eq!(explode("1abc"), None);
        assert_eq!(clean("Core 0"), "core_0");
        assert_eq!(clean("asus-nb-wmi\n"), "asus_nb_wmi");
        assert_eq!(valid_utf8(b"a\xff\xfeb\xffc"), "a\u{FFFD}b\u{FFFD}c");
    }

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// A hwmon dir under devices/ and its class symlink; `device` points at `dev` if given.
    fn chip(root: &Path, n: u32, dev: Option<&str>, files: &[(&str, &str)]) {
        let real = match dev {
            Some(d) => format!("devices/{d}/hwmon/hwmon{n}"),
            None => format!("devices/virtual/hwmon/hwmon{n}"),
        };
        std::fs::create_dir_all(root.join(&real)).unwrap();
        if let Some(d) = dev {
            std::fs::create_dir_all(root.join("devices").join(d)).unwrap();
            symlink(
                root.join("devices").join(d),
                root.join(&real).join("device"),
            )
            .unwrap();
        }
        for (f, v) in files {
            write(root, &format!("{real}/{f}"), v);
        }
        std::fs::create_dir_all(root.join("class/hwmon")).unwrap();
        symlink(root.join(&real), root.join(format!("class/hwmon/hwmon{n}"))).unwrap();
    }

    fn scrape(root: &Path, flags: &[&str]) -> anyhow::Result<Vec<String>> {
        let mut args = vec![format!("--path.sysfs={}", root.display())];
        args.extend(flags.iter().map(|s| s.to_string()));
        let c = build(&Options::from_flags(args).unwrap())?;
        let mut out = Vec::new();
        c.collect(&mut out)?;
        Ok(out
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(move |s| {
                    let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{} {} {}", f.name, l.join(","), s.value)
                })
            })
            .collect())
    }

    #[test]
    fn chips_units_and_odd_files() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        chip(
            r,
            0,
            Some("platform/coretemp.0"),
            &[
                ("name", "coretemp\n"),
                ("temp1_input", "45000\n"),
                ("temp1_crit", "100000\n"),
                ("temp1_crit_alarm", "0\n"),
                ("temp1_label", "Package id 0 \n"),
                ("temp2", "30000\n"),
                ("fan1_input", "1200\n"),
                ("fan1_pulses", "2\n"),
                ("in0_input", "1040\n"),
                ("power1_average", "12500000\n"),
                ("energy1_input", "3000000\n"),
                ("beep_enable", "1\n"),
                ("freq1_input", "300000000\n"),
                ("name_extra", "x\n"),
            ],
        );
        // An unreadable attribute (a directory: read() fails with EISDIR, like a driver
        // returning EAGAIN or EIO) is skipped; so is a value that is not a number.
        std::fs::create_dir_all(r.join("devices/platform/coretemp.0/hwmon/hwmon0/temp3_input"))
            .unwrap();
        write(
            r,
            "devices/platform/coretemp.0/hwmon/hwmon0/temp4_input",
            "N/A\n",
        );
        // No device link and no name: named after the directory.
        chip(r, 1, None, &[("temp1_input", "1000\n")]);
        let got = scrape(r, &[]).unwrap();
        let c = "chip=platform_coretemp_0";
        for want in [
            format!("node_hwmon_chip_names {c},chip_name=coretemp 1"),
            format!("node_hwmon_temp_celsius {c},sensor=temp1 45"),
            format!("node_hwmon_temp_crit_celsius {c},sensor=temp1 100"),
            format!("node_hwmon_temp_crit_alarm_celsius {c},sensor=temp1 0"),
            format!("node_hwmon_temp_celsius {c},sensor=temp2 30"),
            format!("node_hwmon_sensor_label {c},sensor=temp1,label=Package id 0  1"),
            format!("node_hwmon_fan_rpm {c},sensor=fan1 1200"),
            format!("node_hwmon_fan_pulses {c},sensor=fan1 2"),
            format!("node_hwmon_in_volts {c},sensor=in0 1.04"),
            format!("node_hwmon_power_average_watt {c},sensor=power1 12.5"),
            format!("node_hwmon_energy_joule_total {c},sensor=energy1 3"),
            format!("node_hwmon_beep_enabled {c},sensor=beep_enable0 1"),
            "node_hwmon_temp_celsius chip=hwmon1,sensor=temp1 1".to_string(),
        ] {
            assert!(got.contains(&want), "missing {want:?} in {got:#?}");
        }
        // freq without a label: no series; unreadable and garbled files: nothing.
        assert!(!got
            .iter()
            .any(|l| l.contains("freq") || l.contains("temp3") || l.contains("temp4")));
    }

    #[test]
    fn temp_help_for_a_bare_file() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        chip(r, 0, None, &[("temp1", "1000\n")]);
        let c = build(&Options::from_flags(vec![format!("--path.sysfs={}", r.display())]).unwrap())
            .unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(out[0].name, "node_hwmon_temp_celsius");
        assert_eq!(out[0].help, "Hardware monitor for temperature (input)");
    }

    #[test]
    fn colliding_chips_get_suffixes() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let t = ("pwm1_enable", "2\n");
        // Same device, distinct names: the name tells them apart.
        chip(r, 2, Some("platform/asus-nb-wmi"), &[("name", "asus\n"), t]);
        chip(
            r,
            3,
            Some("platform/asus-nb-wmi"),
            &[("name", "asus_wmi_sensors\n"), t],
        );
        // Same device and same name: hwmonN instead.
        chip(r, 4, Some("platform/dup"), &[("name", "dup\n"), t]);
        chip(r, 5, Some("platform/dup"), &[("name", "dup\n"), t]);
        let got = scrape(r, &[]).unwrap();
        let chips: Vec<&str> = got
            .iter()
            .filter(|l| l.starts_with("node_hwmon_pwm_enable "))
            .map(|l| l.split(['=', ',']).nth(1).unwrap())
            .collect();
        assert_eq!(
            chips,
            vec![
                "platform_asus_nb_wmi_asus",
                "platform_asus_nb_wmi_asus_wmi_sensors",
                "platform_dup_hwmon4",
                "platform_dup_hwmon5"
            ]
        );
        // The chip filter sees the suffixed label; the sensor filter "<chip>;<sensor>".
        let got = scrape(r, &["--collector.hwmon.chip-include=_asus$"]).unwrap();
        assert!(
            got.iter()
                .all(|l| l.contains("chip=platform_asus_nb_wmi_asus,")),
            "{got:?}"
        );
        let got = scrape(
            r,
            &["--collector.hwmon.sensor-exclude=^platform_dup_hwmon4;pwm1$"],
        )
        .unwrap();
        assert!(!got
            .iter()
            .any(|l| l.contains("pwm_enable chip=platform_dup_hwmon4")));
        assert!(got
            .iter()
            .any(|l| l.contains("pwm_enable chip=platform_dup_hwmon5")));
        // Empty filter values mean no filter.
        assert_eq!(
            scrape(r, &["--collector.hwmon.chip-exclude="])
                .unwrap()
                .len(),
            8
        );
        let e = format!(
            "{:#}",
            scrape(r, &["--collector.hwmon.chip-include=("]).unwrap_err()
        );
        assert!(
            e.contains("--collector.hwmon.chip-include must be a regular expression"),
            "{e}"
        );
    }

    #[test]
    fn missing_class_dir_fails_like_node_exporter() {
        let d = tempfile::tempdir().unwrap();
        assert!(scrape(d.path(), &[]).is_err());
    }
}
