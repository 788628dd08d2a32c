//! hwmon collector: /sys/class/hwmon/* with node_exporter 1.12's chip naming (and its
//! collision suffixes), sensor types, units and help texts.
//!
//! Every attribute is read with one raw read() of at most 128 bytes, like node_exporter's
//! sysReadFile: some drivers return EAGAIN forever to readers that retry, and a few block for
//! seconds per read. An attribute that cannot be read (EAGAIN, EIO, ENODATA, EISDIR, ...) is
//! skipped quietly.
//!
//! What is read when (Documentation/hwmon/sysfs-interface.rst): a chip's `name`, its device
//! link and its sensors' `*_label` files are fixed by the driver and read once; every other
//! attribute (readings, alarms, and the limits, which are writable) is held open
//! ([`attr::Attr`]) and read on every scrape. class/hwmon and each chip's own directory are
//! listed on every scrape: a chip or a sensor file that appears, goes or is replaced is seen
//! at once. A chip's device directory is listed too while it holds sensor files (older
//! drivers put them there); one without is looked at again when the chip's directory changes.
//!
//! The collector and the alert rules' temperatures share one [`Reader`] ([`Reader::shared`]):
//! a host's sensors are held open and set up once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;

use super::attr::{Attr, Dir, Listing};
use super::{labels, util, Collector, Family, Labels, MetricType, Options, Text};

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
    chips: util::DeviceFilter,
    sensors: util::DeviceFilter,
    /// Whether sensor files are held open between reads (see [`Reader::for_alerts`]).
    hold: bool,
    /// The one sensor kind set up, if limited (see [`Reader::for_alerts`]).
    only: Option<&'static str>,
    cache: Mutex<Cache>,
}

/// What a reader is built from: readers built from equal keys are one reader.
#[derive(PartialEq)]
struct Key {
    dir: PathBuf,
    filters: [Option<String>; 4],
}

impl Key {
    fn of(opts: &Options) -> Key {
        Key {
            dir: opts.sysfs.join("class/hwmon"),
            filters: [
                opts.hwmon_chip_exclude.clone(),
                opts.hwmon_chip_include.clone(),
                opts.hwmon_sensor_exclude.clone(),
                opts.hwmon_sensor_include.clone(),
            ],
        }
    }
}

/// The chips as last set up.
#[derive(Default)]
struct Cache {
    /// class/hwmon, listed on every read (opened at the first).
    class: Option<Dir>,
    /// Its listing when `chips` was set up.
    seen: Option<Listing>,
    chips: Vec<ChipCache>,
    /// Every family name and help text the chips' properties export, once (see [`Desc`]).
    families: Vec<Text>,
    helps: Vec<Text>,
}

/// One chip the filters keep: its label and name (read once), and its sensor files.
struct ChipCache {
    dir: PathBuf,
    label: String,
    /// node_hwmon_chip_names' label set, when the chip has a name.
    name_labels: Option<Labels>,
    /// The chip's directory and its device directory, listed on every read.
    own: Dir,
    device: Dir,
    /// Their listings when `sensors` was set up (None: not readable).
    seen: Option<(Option<Listing>, Option<Listing>)>,
    /// Whether the device directory held sensor files then. Drivers registered the modern
    /// way keep their sensor files in the hwmon directory alone; a device directory without
    /// any (or not there) is listed again only when the chip's own listing changes.
    device_sensors: bool,
    sensors: Vec<Sensor>,
}

/// One sensor: its files by property ("" for the bare file), in name order, and how each
/// is exported. Kept for every sensor of the host, so kept small: a host with hundreds of
/// sensors holds hundreds of these.
struct Sensor {
    name: Box<str>,
    kind: &'static str,
    /// Its series' labels (chip, sensor), and with its label when that is fixed.
    labels: Labels,
    labelled: Option<Labels>,
    props: Vec<Prop>,
    /// Where the "label" and bare ("") properties are in `props`.
    label: Option<usize>,
    bare: Option<usize>,
}

struct Prop {
    element: Text,
    /// The hwmon directory's file and the device directory's, in that order: the last one
    /// that reads wins (node_exporter reads the device directory second). Nearly always one.
    sources: smallvec::SmallVec<[Source; 1]>,
    /// How it is exported when the bare file did not read ([0]) and when it did ([1]): the
    /// `input` element's name depends on it.
    desc: [Option<Desc>; 2],
}

enum Source {
    /// A label: fixed by the driver, read once.
    Fixed(Box<[u8]>),
    /// Read on every scrape.
    Read(Attr),
}

/// How a property's value becomes a sample (two per property of every sensor: kept small).
struct Desc {
    /// Indexes into [`Cache::families`] and [`Cache::helps`].
    family: u32,
    help: u32,
    kind: MetricType,
    scale: Scale,
    /// A GPU clock (freq*_input): labelled by the sensor's label, and only when it has one.
    freq: bool,
}

/// The unit conversion, kept as node_exporter computes it (v * 0.001 is not v / 1000 in
/// floating point).
#[derive(Clone, Copy)]
enum Scale {
    One,
    /// Milli-units: v * 0.001.
    Milli,
    /// Micro-units: v / 1e6.
    Micro,
}

impl Scale {
    fn apply(self, v: f64) -> f64 {
        match self {
            Scale::One => v,
            Scale::Milli => v * 0.001,
            Scale::Micro => v / 1e6,
        }
    }
}

/// One raw read() of up to 128 bytes with newlines trimmed (not other white space, so values
/// match node_exporter's byte for byte), added to `out`; false (and nothing added) when it
/// fails.
fn read_trimmed(attr: &Attr, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 128];
    let Ok(v) = attr.read(&mut buf) else {
        return false;
    };
    let start = v.iter().position(|b| *b != b'\n').unwrap_or(v.len());
    let end = v.iter().rposition(|b| *b != b'\n').map_or(start, |e| e + 1);
    out.extend_from_slice(&v[start..end]);
    true
}

impl Source {
    /// Adds this scrape's value to `out`; false when it does not read.
    fn value(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Source::Fixed(v) => {
                out.extend_from_slice(&v[..v.len().min(128)]);
                true
            }
            Source::Read(a) => read_trimmed(a, out),
        }
    }
}

impl Prop {
    /// Adds this scrape's value to `out`: the last source that reads.
    fn value(&self, out: &mut Vec<u8>) -> bool {
        self.sources.iter().rev().any(|s| s.value(out))
    }
}

/// One sensor's values of this scrape, by property: their bytes one after another, and where
/// each is (None: it did not read). Reused from sensor to sensor.
#[derive(Default)]
struct Values {
    bytes: Vec<u8>,
    at: Vec<Option<(usize, usize)>>,
}

impl Values {
    fn read(&mut self, props: &[Prop]) {
        self.bytes.clear();
        self.at.clear();
        for p in props {
            let start = self.bytes.len();
            let read = p.value(&mut self.bytes);
            self.at.push(read.then_some((start, self.bytes.len())));
        }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        self.at[i].map(|(a, b)| &self.bytes[a..b])
    }
}

/// The index of `name` in `table`, adding it.
fn intern(table: &mut Vec<Text>, name: String) -> u32 {
    let at = match table.iter().position(|f| *f == name) {
        Some(i) => i,
        None => {
            table.push(NAMES.one(&name));
            table.len() - 1
        }
    };
    // A table holds the distinct names of one host's sensor properties: dozens.
    at as u32
}

/// Family names, help texts and property names, made once for the process (a chip set up
/// again, as on hotplug, finds them here): a scrape then copies no string.
static NAMES: std::sync::LazyLock<util::Names> = std::sync::LazyLock::new(util::Names::default);

/// The family and help tables a setup adds to.
struct Tables<'a> {
    families: &'a mut Vec<Text>,
    helps: &'a mut Vec<Text>,
}

/// How node_exporter exports property `e` of a sensor of `kind` (None: it does not, or not
/// this way: labels and the special kinds are handled per sensor).
fn describe(t: &mut Tables<'_>, kind: &str, e: &str, bare: bool) -> Option<Desc> {
    if e == "label" || matches!(kind, "beep_enable" | "vrm" | "update_interval") {
        return None;
    }
    let g = MetricType::Gauge;
    let mut name = format!("node_hwmon_{kind}");
    if e == "input" {
        // Both `temp1` and `temp1_input`: the latter keeps its suffix.
        if bare {
            name.push_str("_input");
        }
    } else if !e.is_empty() {
        name.push('_');
        name.push_str(&clean(e));
    }
    let (name, help, kind_, scale, freq) = match (kind, e) {
        (_, "fault" | "alarm") => (
            name,
            format!("Hardware sensor {e} status ({kind})"),
            g,
            Scale::One,
            false,
        ),
        (_, "beep") => (
            format!("{name}_enabled"),
            "Hardware monitor sensor has beeping enabled".into(),
            g,
            Scale::One,
            false,
        ),
        ("in" | "cpu", _) => (
            format!("{name}_volts"),
            format!("Hardware monitor for voltage ({e})"),
            g,
            Scale::Milli,
            false,
        ),
        ("temp", e) if e != "type" => (
            format!("{name}_celsius"),
            format!(
                "Hardware monitor for temperature ({})",
                if e.is_empty() { "input" } else { e }
            ),
            g,
            Scale::Milli,
            false,
        ),
        ("curr", _) => (
            format!("{name}_amps"),
            format!("Hardware monitor for current ({e})"),
            g,
            Scale::Milli,
            false,
        ),
        ("energy", _) => (
            format!("{name}_joule_total"),
            format!("Hardware monitor for joules used so far ({e})"),
            MetricType::Counter,
            Scale::Micro,
            false,
        ),
        ("power", "accuracy") => (
            name,
            "Hardware monitor power meter accuracy, as a ratio".into(),
            g,
            Scale::Micro,
            false,
        ),
        ("power", "average_interval" | "average_interval_min" | "average_interval_max") => (
            format!("{name}_seconds"),
            format!("Hardware monitor power usage update interval ({e})"),
            g,
            Scale::Milli,
            false,
        ),
        ("power", _) => (
            format!("{name}_watt"),
            format!("Hardware monitor for power usage in watts ({e})"),
            g,
            Scale::Micro,
            false,
        ),
        ("humidity", _) => (
            name,
            format!("Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({e})"),
            g,
            Scale::Micro,
            false,
        ),
        ("fan", "input" | "min" | "max" | "target") => (
            format!("{name}_rpm"),
            format!("Hardware monitor for fan revolutions per minute ({e})"),
            g,
            Scale::One,
            false,
        ),
        // GPU clocks are named by their label (sclk, mclk); none, no series.
        ("freq", "input") => (
            format!("{name}_freq_mhz"),
            "Hardware monitor for GPU frequency in MHz".into(),
            g,
            Scale::Micro,
            true,
        ),
        _ => (
            name,
            format!("Hardware monitor {kind} element {e}"),
            g,
            Scale::One,
            false,
        ),
    };
    Some(Desc {
        family: intern(t.families, name),
        help: intern(t.helps, help),
        kind: kind_,
        scale,
        freq,
    })
}

impl Reader {
    fn new(opts: &Options) -> anyhow::Result<Reader> {
        Ok(Reader {
            dir: opts.sysfs.join("class/hwmon"),
            chips: util::DeviceFilter::flags(
                &opts.hwmon_chip_exclude,
                &opts.hwmon_chip_include,
                "collector.hwmon.chip",
            )?,
            sensors: util::DeviceFilter::flags(
                &opts.hwmon_sensor_exclude,
                &opts.hwmon_sensor_include,
                "collector.hwmon.sensor",
            )?,
            hold: true,
            only: None,
            cache: Mutex::default(),
        })
    }

    /// The reader for `opts`, shared by everyone who asks with the same settings while any
    /// of them holds it: the hwmon collector and the alert rules' [`Reader::temps`] then hold
    /// one set of sensor files and one cache between them, not two.
    pub fn shared(opts: &Options) -> anyhow::Result<Arc<Reader>> {
        static READERS: util::Shared<Key, Reader> = util::Shared::new();
        READERS.try_get(Key::of(opts), || Reader::new(opts))
    }

    /// A reader of temperatures alone that opens each file on every read instead of holding
    /// it: for the alert rules when the hwmon collector is off (read every alert interval,
    /// not on every scrape).
    pub fn for_alerts(opts: &Options) -> anyhow::Result<Reader> {
        Ok(Reader {
            hold: false,
            only: Some("temp"),
            ..Reader::new(opts)?
        })
    }

    /// The chips the filters keep, set up again where a listing changed. The cache comes back
    /// locked, for the caller to read the values.
    fn chips(&self) -> anyhow::Result<MutexGuard<'_, Cache>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let cache_ref = &mut *cache;
        let listing = cache_ref
            .class
            .get_or_insert_with(|| Dir::new(self.dir.clone()))
            .listing()
            .with_context(|| format!("reading {}", self.dir.display()))?;
        if cache_ref.seen != Some(listing) {
            // Drop what is held before opening anew, so the budget counts each file once.
            let class = cache_ref.class.take();
            *cache_ref = Cache::default();
            cache_ref.class = class;
            cache_ref.chips = self.setup_chips()?;
            cache_ref.seen = Some(listing);
        }
        for chip in &mut cache_ref.chips {
            let own = chip.own.listing().ok();
            let device = match chip.seen {
                Some((same, device)) if same == own && !chip.device_sensors => device,
                _ => chip.device.listing().ok(),
            };
            let seen = (own, device);
            if chip.seen != Some(seen) {
                chip.sensors.clear();
                let mut tables = Tables {
                    families: &mut cache_ref.families,
                    helps: &mut cache_ref.helps,
                };
                (chip.sensors, chip.device_sensors) = self.setup_sensors(chip, &mut tables);
                chip.seen = Some(seen);
            }
        }
        Ok(cache)
    }

    /// The chips of class/hwmon the chip filter keeps, labelled, without their sensors.
    fn setup_chips(&self) -> anyhow::Result<Vec<ChipCache>> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?;
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let chip_labels = chip_labels(&dirs);
        Ok(dirs
            .into_iter()
            .zip(chip_labels)
            // Filters see the label that is exported, collision suffix included.
            .filter(|(_, (label, _))| !self.chips.ignored(label))
            .map(|(dir, (label, name))| ChipCache {
                own: Dir::new(dir.clone()),
                device: Dir::new(dir.join("device")),
                dir,
                name_labels: name.map(|n| labels(&[("chip", &label), ("chip_name", &n)])),
                label,
                seen: None,
                device_sensors: false,
                sensors: Vec::new(),
            })
            .collect())
    }

    /// A chip's sensor files (its own directory's, then its device directory's) that the
    /// sensor filter keeps (of one kind, for a reader limited to it), and whether the device
    /// directory held any sensor file.
    fn setup_sensors(&self, chip: &ChipCache, tables: &mut Tables<'_>) -> (Vec<Sensor>, bool) {
        // sensor → (kind, property → sources); sorted by name, as node_exporter reads them.
        type Files = BTreeMap<String, (&'static str, BTreeMap<String, Prop>)>;
        let mut files = Files::new();
        let mut device_sensors = false;
        for (dir, device) in [(chip.dir.clone(), false), (chip.dir.join("device"), true)] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some((kind, num, prop)) = explode(&name) else {
                    continue;
                };
                let Some(kind) = SENSOR_TYPES.iter().find(|k| **k == kind) else {
                    continue;
                };
                device_sensors |= device;
                if self.only.is_some_and(|o| o != *kind) {
                    continue;
                }
                let sensor = format!("{kind}{num}");
                // Matched as "<chip>;<sensor>", so one sensor of one chip can be picked.
                if self.sensors.ignored(&format!("{};{sensor}", chip.label)) {
                    continue;
                }
                let opened = if self.hold {
                    Attr::open(&e.path())
                } else {
                    Attr::by_path(&e.path())
                };
                let Ok(attr) = opened else {
                    continue;
                };
                let mut label = Vec::new();
                let source = if prop == "label" && read_trimmed(&attr, &mut label) {
                    Source::Fixed(label.into())
                } else {
                    // Not a label, or not readable now: read on every scrape.
                    Source::Read(attr)
                };
                files
                    .entry(sensor)
                    .or_insert_with(|| (kind, BTreeMap::new()))
                    .1
                    .entry(prop.to_string())
                    .or_insert_with(|| Prop {
                        desc: [false, true].map(|bare| describe(tables, kind, prop, bare)),
                        element: NAMES.one(prop),
                        sources: smallvec::SmallVec::new(),
                    })
                    .sources
                    .push(source);
            }
        }
        let sensors = files
            .into_iter()
            .map(|(name, (kind, props))| {
                let props: Vec<Prop> = props.into_values().collect();
                let label = props.iter().position(|p| p.element == "label");
                let fixed = label.and_then(|i| match props[i].sources.last() {
                    Some(Source::Fixed(v)) => Some(util::to_valid_utf8(v).into_owned()),
                    _ => None,
                });
                Sensor {
                    labels: labels(&[("chip", &chip.label), ("sensor", &name)]),
                    labelled: fixed.map(|l| {
                        labels(&[("chip", &chip.label), ("label", &l), ("sensor", &name)])
                    }),
                    label,
                    bare: props.iter().position(|p| p.element.is_empty()),
                    name: name.into(),
                    kind,
                    props,
                }
            })
            .collect();
        (sensors, device_sensors)
    }

    /// Every temperature with its `crit` and `max` limits (the ThermalThrottling rule's
    /// input), as node_hwmon_temp_celsius and its limit families report them.
    pub fn temps(&self) -> anyhow::Result<Vec<Temp>> {
        let cache = self.chips()?;
        let mut out = Vec::new();
        let mut v = Vec::new();
        for chip in &cache.chips {
            for s in chip.sensors.iter().filter(|s| s.kind == "temp") {
                let mut milli = |element: &str| {
                    let p = s.props.iter().find(|p| p.element == element)?;
                    v.clear();
                    p.value(&mut v).then_some(())?;
                    num(&v).map(|v| v * 0.001)
                };
                let Some(celsius) = milli("").or_else(|| milli("input")) else {
                    continue;
                };
                out.push(Temp {
                    chip: chip.label.clone(),
                    sensor: s.name.to_string(),
                    celsius,
                    crit: milli("crit"),
                    max: milli("max"),
                });
            }
        }
        Ok(out)
    }
}

struct Hwmon {
    reader: Arc<Reader>,
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

fn num(raw: &[u8]) -> Option<f64> {
    // Sensor values are integers: those parse exactly as integers, and several times faster.
    if let [first, rest @ ..] = raw {
        if raw.len() <= 15
            && (first.is_ascii_digit() || (*first == b'-' && !rest.is_empty()))
            && rest.iter().all(u8::is_ascii_digit)
        {
            let v = std::str::from_utf8(raw).ok()?.parse::<i64>().ok()? as f64;
            // "-0" is -0.0 as a float.
            return Some(if *first == b'-' { -v.abs() } else { v });
        }
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// This scrape's families, by [`Cache::families`] index; a family is created by its first
/// sample, with that sample's help text (as node_exporter registers them).
struct Out<'c> {
    fams: Vec<Option<Family>>,
    /// Families with fixed names (labels, chip names, the special kinds), by name.
    named: BTreeMap<&'static str, Family>,
    families: &'c [Text],
    helps: &'c [Text],
}

impl Out<'_> {
    fn push(&mut self, d: &Desc, labels: &Labels, v: f64) {
        let (families, helps) = (self.families, self.helps);
        self.fams[d.family as usize]
            .get_or_insert_with(|| {
                Family::new(
                    families[d.family as usize].clone(),
                    helps[d.help as usize].clone(),
                    d.kind,
                )
            })
            .push_labels(labels, d.scale.apply(v));
    }

    fn push_named(&mut self, name: &'static str, help: &'static str, labels: &Labels, v: f64) {
        self.named
            .entry(name)
            .or_insert_with(|| Family::new(name, help, MetricType::Gauge))
            .push_labels(labels, v);
    }
}

impl Hwmon {
    /// One sensor's samples, from this scrape's values of its properties.
    fn emit(&self, chip: &str, s: &Sensor, vals: &Values, out: &mut Out<'_>) {
        let sensor = &*s.name;
        let labels = &s.labels;
        let value = |i: Option<usize>| i.and_then(|i| vals.get(i));
        let label = value(s.label).map(util::to_valid_utf8);
        if let Some(label) = &label {
            let set = match &s.labelled {
                // A fixed label: its label set is kept.
                Some(set) => set.clone(),
                // In label-name order, as the encoder wants them.
                None => self::labels(&[("chip", chip), ("label", label), ("sensor", sensor)]),
            };
            out.push_named(
                "node_hwmon_sensor_label",
                "Label for given chip and sensor",
                &set,
                1.0,
            );
        }
        let bare = value(s.bare);
        match s.kind {
            "beep_enable" => {
                let v = if bare == Some(b"1") { 1.0 } else { 0.0 };
                out.push_named(
                    "node_hwmon_beep_enabled",
                    "Hardware beep enabled",
                    labels,
                    v,
                );
                return;
            }
            "vrm" => {
                if let Some(v) = bare.and_then(num) {
                    out.push_named(
                        "node_hwmon_voltage_regulator_version",
                        "Hardware voltage regulator",
                        labels,
                        v,
                    );
                }
                return;
            }
            "update_interval" => {
                if let Some(v) = bare.and_then(num) {
                    out.push_named(
                        "node_hwmon_update_interval_seconds",
                        "Hardware monitor update interval",
                        labels,
                        v * 0.001,
                    );
                }
                return;
            }
            _ => {}
        }
        for (i, p) in s.props.iter().enumerate() {
            let (Some(d), Some(raw)) = (&p.desc[usize::from(bare.is_some())], vals.get(i)) else {
                continue;
            };
            let Some(v) = num(raw) else {
                continue;
            };
            if d.freq {
                let Some(l) = &label else {
                    continue;
                };
                out.push(
                    d,
                    &self::labels(&[("chip", chip), ("sensor", &clean(l))]),
                    v,
                );
            } else {
                out.push(d, labels, v);
            }
        }
    }
}

impl Collector for Hwmon {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let cache = self.reader.chips()?;
        let mut o = Out {
            fams: (0..cache.families.len()).map(|_| None).collect(),
            named: BTreeMap::new(),
            families: &cache.families,
            helps: &cache.helps,
        };
        let mut vals = Values::default();
        for chip in &cache.chips {
            if let Some(n) = &chip.name_labels {
                o.push_named(
                    "node_hwmon_chip_names",
                    "Annotation metric for human-readable chip names",
                    n,
                    1.0,
                );
            }
            for s in &chip.sensors {
                vals.read(&s.props);
                self.emit(&chip.label, s, &vals, &mut o);
            }
        }
        let mut fams: Vec<Family> = o.fams.into_iter().flatten().collect();
        fams.extend(o.named.into_values());
        fams.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(fams);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Hwmon {
        reader: Reader::shared(opts)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;
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
        for raw in [
            "45000", "-1500", "0", "007", "-0", "1.5", "1e3", "-", "", "+5", " 5", "NaN",
        ] {
            let want = raw.parse::<f64>().ok();
            assert_eq!(
                num(raw.as_bytes()).map(f64::to_bits),
                want.map(f64::to_bits),
                "{raw}"
            );
        }
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
            format!("node_hwmon_sensor_label {c},label=Package id 0 ,sensor=temp1 1"),
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
    fn one_reader_for_the_collector_and_the_alert_rules() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        chip(
            root,
            0,
            None,
            &[
                ("name", "coretemp"),
                ("temp1_input", "41000"),
                ("temp1_crit", "100000"),
                ("fan1_input", "900"),
            ],
        );
        let opts = |flags: &[&str]| {
            let mut args = vec![format!("--path.sysfs={}", root.display())];
            args.extend(flags.iter().map(|s| s.to_string()));
            Options::from_flags(args).unwrap()
        };
        let a = Reader::shared(&opts(&[])).unwrap();
        let b = Reader::shared(&opts(&[])).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same settings, one reader");
        let c = Reader::shared(&opts(&["--collector.hwmon.chip-exclude=nothing"])).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "other filters, another reader");
        // The collector's full set-up serves the alert rules' temperatures, and back.
        let collector = Hwmon { reader: a.clone() };
        let mut fams = Vec::new();
        collector.collect(&mut fams).unwrap();
        assert!(fams.iter().any(|f| f.name == "node_hwmon_fan_rpm"));
        let temps = b.temps().unwrap();
        assert_eq!(temps.len(), 1, "{temps:?}");
        assert_eq!((temps[0].celsius, temps[0].crit), (41.0, Some(100.0)));
        let mut again = Vec::new();
        collector.collect(&mut again).unwrap();
        assert_eq!(fams, again);
        // The alert rules' own reader, when the collector is off, sets up temperatures only.
        let own = Reader::for_alerts(&opts(&[])).unwrap();
        assert_eq!(own.temps().unwrap(), temps);
        assert!(own.chips().unwrap().chips[0]
            .sensors
            .iter()
            .all(|s| s.kind == "temp"));
        drop((a, b, collector));
        let fresh = Reader::shared(&opts(&[])).unwrap();
        assert!(
            fresh.cache.lock().unwrap().chips.is_empty(),
            "a new reader once all let go"
        );
    }

    #[test]
    fn sensors_in_the_device_directory_come_and_go() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        // An old-style driver: its sensor files in the device directory.
        chip(root, 0, Some("platform/it87.656"), &[("name", "it8728")]);
        write(root, "devices/platform/it87.656/in0_input", "1000");
        let c = build(&Options::from_flags([format!("--path.sysfs={}", root.display())]).unwrap())
            .unwrap();
        let volts = |c: &dyn Collector| {
            let mut out = Vec::new();
            c.collect(&mut out).unwrap();
            out.iter()
                .filter(|f| f.name == "node_hwmon_in_volts")
                .map(|f| f.samples.len())
                .sum::<usize>()
        };
        assert_eq!(volts(&*c), 1);
        write(root, "devices/platform/it87.656/in1_input", "2000");
        assert_eq!(
            volts(&*c),
            2,
            "a sensor file that appears in the device directory"
        );
        std::fs::remove_file(root.join("devices/platform/it87.656/in0_input")).unwrap();
        assert_eq!(volts(&*c), 1, "and one that goes");
    }

    #[test]
    fn missing_class_dir_fails_like_node_exporter() {
        let d = tempfile::tempdir().unwrap();
        assert!(scrape(d.path(), &[]).is_err());
    }
}
