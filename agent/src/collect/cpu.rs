//! cpu collector: per-CPU mode times from /proc/stat (clamped so they never go backwards, as
//! node_exporter does), guest times, /proc/cpuinfo info series (opt-in), thermal throttle
//! counters per core and package, isolated and online CPUs.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use regex::Regex;

use super::attr::{Attr, Dir, HeldFile, Listing};
use super::{labels, util, Collector, Family, Labels, MetricType, Options};

/// Columns after `cpuN` in /proc/stat: user nice system idle iowait irq softirq steal guest
/// guest_nice.
const FIELDS: usize = 10;
const IDLE: usize = 3;
/// The modes of [`Times`] by name, with their column.
const MODES_BY_NAME: [(usize, &str); 8] = [
    (3, "idle"),
    (4, "iowait"),
    (5, "irq"),
    (1, "nice"),
    (6, "softirq"),
    (7, "steal"),
    (2, "system"),
    (0, "user"),
];
/// An idle counter this many seconds behind the last one means the CPU was hot-plugged;
/// node_exporter then starts that CPU over instead of holding the old values.
const JUMP_BACK_SECONDS: f64 = 3.0;

type Times = [f64; FIELDS];

/// CPU ids in /proc/stat's order, and the CPUs sorted as /metrics lists them (by label text).
type CpuOrder = (Vec<u32>, Vec<CpuLabels>);

/// One CPU's label sets, kept while the CPU set stays: `{cpu, mode}` for each of
/// [`MODES_BY_NAME`] (the guest family's nice and user are the same sets).
struct CpuLabels {
    id: u32,
    modes: Vec<Labels>,
}

/// Where nice and user are in [`MODES_BY_NAME`].
const NICE: usize = 3;
const USER: usize = 7;

struct Cpu {
    procfs: PathBuf,
    /// /proc/stat, held open.
    stat: HeldFile,
    guest: bool,
    info: bool,
    /// node_cpu_frequency_hertz from cpuinfo only when the cpufreq collector is on (1.12).
    info_frequency: bool,
    flags: Option<Regex>,
    bugs: Option<Regex>,
    user_hz: f64,
    /// Read once, as node_exporter does: the list only changes at boot. `None` until a read
    /// succeeds (absent counts as read): an I/O error is retried each scrape and fails the
    /// collector, rather than keeping the whole daemon from starting.
    isolated: Mutex<Option<Option<Vec<u32>>>>,
    isolated_path: PathBuf,
    /// Last exported times per CPU, so a counter that steps back is held, not exported.
    last: Mutex<HashMap<u32, Times>>,
    /// The CPUs of the last /proc/stat in file order, and their labels sorted as text.
    order: Mutex<CpuOrder>,
    throttles: std::sync::Arc<ThrottleReader>,
}

/// Thermal-throttle counters: one per (package, core) and one per package (hyper-threads
/// share them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Throttles {
    pub cores: BTreeMap<(u64, u64), u64>,
    pub packages: BTreeMap<u64, u64>,
}

/// Reads the throttle counters (and, for the collector, the `online` flags) of the CPUs under
/// a sysfs root.
///
/// The CPU directories are listed on every read; while the listing stays the same, each CPU's
/// topology (fixed for the life of a logical CPU) is known and its counters are held open
/// ([`Attr`]). A CPU taken offline loses its topology and thermal_throttle directories (a
/// held counter then fails to read): its topology is read again once it reads back. A CPU
/// whose topology reads but whose counters are not there (VMs, AMD CPUs) is not looked at
/// again until the listing changes: two failing opens per CPU per scrape otherwise.
pub struct ThrottleReader {
    cpus: Mutex<CpuDirs>,
}

struct CpuDirs {
    /// devices/system/cpu, listed on every read.
    dir: Dir,
    /// devices/system/cpu when `cpus` was set up.
    seen: Option<Listing>,
    /// `cpuN` directories, in the lexical order Go's Glob returns.
    cpus: Vec<CpuDir>,
    /// Whether the first CPU has an `online` file (node_cpu_online is exported only then).
    first_online: bool,
}

struct CpuDir {
    /// N of cpuN.
    n: String,
    dir: PathBuf,
    online: Option<Attr>,
    /// Known once topology/ reads; cleared when a counter fails to read (CPU offline).
    topo: Option<Topology>,
}

struct Topology {
    package: u64,
    core: u64,
    /// Opened when first needed: of two hyper-threads only the first is read.
    core_count: Option<Option<Attr>>,
    package_count: Option<Option<Attr>>,
}

/// What reading a throttle counter gave.
enum Counter {
    Value(u64),
    /// The file is not there while the CPU's topology is (no thermal_throttle on VMs and AMD
    /// CPUs): not looked for again while the CPU list stays the same.
    Absent,
    /// It did not read (the CPU went offline): opened again next time.
    Failed,
}

/// Reads a lazily opened counter. `slot` is None until first tried, `Some(None)` when the
/// file is absent.
fn read_counter(slot: &mut Option<Option<Attr>>, path: impl FnOnce() -> PathBuf) -> Counter {
    if slot.is_none() {
        match Attr::open(&path()) {
            Ok(attr) => *slot = Some(Some(attr)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => *slot = Some(None),
            Err(_) => return Counter::Failed,
        }
    }
    let Some(Some(attr)) = slot else {
        return Counter::Absent;
    };
    match attr.number(&mut [0u8; 128]) {
        Some(v) => Counter::Value(v),
        None => {
            *slot = None;
            Counter::Failed
        }
    }
}

impl ThrottleReader {
    /// The reader of the CPUs under `sysfs`, shared by the cpu collector and the alert rules'
    /// snapshot (one set of held counters and `online` files for both).
    pub fn shared(sysfs: &Path) -> std::sync::Arc<ThrottleReader> {
        static READERS: util::Shared<PathBuf, ThrottleReader> = util::Shared::new();
        READERS.get(sysfs.to_path_buf(), || ThrottleReader::new(sysfs))
    }

    fn new(sysfs: &Path) -> ThrottleReader {
        ThrottleReader {
            cpus: Mutex::new(CpuDirs {
                dir: Dir::new(sysfs.join("devices/system/cpu")),
                seen: None,
                cpus: Vec::new(),
                first_online: false,
            }),
        }
    }

    /// Lists the CPUs and reads their counters.
    pub fn read(&self) -> Throttles {
        let mut cpus = self.cpus.lock().unwrap_or_else(|p| p.into_inner());
        cpus.refresh();
        cpus.throttles()
    }

    /// The counters, and node_cpu_online's (cpu, online) pairs when it is exported.
    fn read_all(&self) -> (Throttles, Option<Vec<(String, bool)>>) {
        let mut cpus = self.cpus.lock().unwrap_or_else(|p| p.into_inner());
        cpus.refresh();
        (cpus.throttles(), cpus.online())
    }
}

impl CpuDirs {
    /// Sets the CPUs up again if the listing of devices/system/cpu changed.
    fn refresh(&mut self) {
        let Ok(listing) = self.dir.listing() else {
            self.seen = None;
            self.cpus.clear();
            return;
        };
        if self.seen == Some(listing) {
            return;
        }
        // Drop what is held before opening anew, so the budget counts each file once.
        self.cpus.clear();
        self.cpus = cpu_dirs(self.dir.path())
            .into_iter()
            .map(|(n, dir)| CpuDir {
                online: Attr::open(&dir.join("online")).ok(),
                n,
                dir,
                topo: None,
            })
            .collect();
        // Only a file that is not there at all hides the family, as in node_exporter.
        self.first_online = self.cpus.first().is_some_and(|c| {
            !matches!(std::fs::metadata(c.dir.join("online")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        });
        self.seen = Some(listing);
    }

    fn throttles(&mut self) -> Throttles {
        let mut t = Throttles::default();
        for c in &mut self.cpus {
            if c.topo.is_none() {
                let (Some(package), Some(core)) = (
                    read_uint(&c.dir.join("topology/physical_package_id")),
                    read_uint(&c.dir.join("topology/core_id")),
                ) else {
                    continue;
                };
                c.topo = Some(Topology {
                    package,
                    core,
                    core_count: None,
                    package_count: None,
                });
            }
            let Some(topo) = c.topo.as_mut() else {
                continue;
            };
            let (pkg, core) = (topo.package, topo.core);
            let mut failed = false;
            // Read each core and package once; a sibling retries only if the first failed.
            if let Entry::Vacant(e) = t.cores.entry((pkg, core)) {
                match read_counter(&mut topo.core_count, || {
                    c.dir.join("thermal_throttle/core_throttle_count")
                }) {
                    Counter::Value(v) => {
                        e.insert(v);
                    }
                    Counter::Absent => {}
                    Counter::Failed => failed = true,
                }
            }
            if let Entry::Vacant(e) = t.packages.entry(pkg) {
                match read_counter(&mut topo.package_count, || {
                    c.dir.join("thermal_throttle/package_throttle_count")
                }) {
                    Counter::Value(v) => {
                        e.insert(v);
                    }
                    Counter::Absent => {}
                    Counter::Failed => failed = true,
                }
            }
            if failed {
                // Offline: the topology is read again next time.
                c.topo = None;
            }
        }
        t
    }

    fn online(&self) -> Option<Vec<(String, bool)>> {
        if !self.first_online {
            return None;
        }
        let mut buf = [0u8; 4096];
        Some(
            self.cpus
                .iter()
                .map(|c| {
                    let on = c
                        .online
                        .as_ref()
                        .and_then(|a| a.text(&mut buf).ok())
                        .is_some_and(|v| v == "1");
                    (c.n.clone(), on)
                })
                .collect(),
        )
    }
}

/// Far more CPUs than Linux supports (NR_CPUS is at most 8192).
const MAX_CPUS: usize = 1 << 16;

/// Expands a CPU list such as "1,3-5,9", to at most [`MAX_CPUS`] entries: a garbled list
/// such as "0-4294967295" must not allocate gigabytes (found by fuzzing).
pub fn cpu_list(list: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        if out.len() >= MAX_CPUS {
            break;
        }
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend((a..=b).take(MAX_CPUS - out.len()));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// Per-CPU lines of /proc/stat, in seconds. Missing trailing columns (old kernels) are 0.
fn parse_stat(text: &str, user_hz: f64) -> anyhow::Result<Vec<(u32, Times)>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(id) = it
            .next()
            .and_then(|c| c.strip_prefix("cpu"))
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let id: u32 = id
            .parse()
            .with_context(|| format!("bad CPU id in {line:?}"))?;
        let mut t = [0.0; FIELDS];
        for (slot, x) in t.iter_mut().zip(it) {
            *slot = x
                .parse::<f64>()
                .with_context(|| format!("bad /proc/stat value {x:?} for cpu{id}"))?
                / user_hz;
        }
        out.push((id, t));
    }
    Ok(out)
}

/// Folds a new reading into the last exported one: each counter only moves forward, unless
/// idle jumped back far enough to mean a hot-plugged CPU. CPUs gone offline are forgotten.
fn fold(last: &mut HashMap<u32, Times>, new: &[(u32, Times)]) {
    for (id, n) in new {
        let mut s = last.get(id).copied().unwrap_or([0.0; FIELDS]);
        if s[IDLE] - n[IDLE] >= JUMP_BACK_SECONDS {
            s = [0.0; FIELDS];
        }
        for (old, new) in s.iter_mut().zip(n) {
            if *new >= *old {
                *old = *new;
            }
        }
        last.insert(*id, s);
    }
    if last.len() != new.len() {
        last.retain(|id, _| new.iter().any(|(n, _)| n == id));
    }
}

/// One processor block of /proc/cpuinfo (the fields node_cpu_info uses).
#[derive(Debug, Default, Clone, PartialEq)]
struct CpuInfo {
    processor: u32,
    vendor: String,
    family: String,
    model: String,
    model_name: String,
    microcode: String,
    stepping: String,
    cache_size: String,
    physical_id: String,
    core_id: String,
    mhz: f64,
    flags: Vec<String>,
    bugs: Vec<String>,
}

/// Parses /proc/cpuinfo the way procfs does on x86: `key<tabs>: value`, a new block at each
/// `processor` line, values kept verbatim. ARM's `Features` line counts as flags.
fn parse_cpuinfo(text: &str) -> anyhow::Result<Vec<CpuInfo>> {
    let mut out: Vec<CpuInfo> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let key = key.trim();
        if key == "processor" {
            let n = value
                .trim()
                .parse()
                .with_context(|| format!("bad processor line {line:?} in cpuinfo"))?;
            out.push(CpuInfo {
                processor: n,
                ..CpuInfo::default()
            });
            continue;
        }
        let Some(c) = out.last_mut() else {
            continue;
        };
        let v = value.to_string();
        match key {
            "vendor" | "vendor_id" => c.vendor = v,
            "cpu family" => c.family = v,
            "model" => c.model = v,
            "model name" => c.model_name = v,
            "microcode" => c.microcode = v,
            "stepping" => c.stepping = v,
            "cache size" => c.cache_size = v,
            "physical id" => c.physical_id = v,
            "core id" => c.core_id = v,
            "cpu MHz" => {
                c.mhz = value
                    .trim()
                    .parse()
                    .with_context(|| format!("bad cpu MHz line {line:?} in cpuinfo"))?
            }
            "flags" | "Features" => c.flags = value.split_whitespace().map(String::from).collect(),
            "bugs" => c.bugs = value.split_whitespace().map(String::from).collect(),
            _ => {}
        }
    }
    Ok(out)
}

/// A sysfs number as node_exporter's readUintFromFile reads it.
fn read_uint(path: &Path) -> Option<u64> {
    util::read_attr(path).ok()?.parse().ok()
}

/// `cpuN` directories under devices/system/cpu, in the lexical order Go's Glob returns.
fn cpu_dirs(base: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut dirs: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("cpu")?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (n.to_string(), e.path()))
        })
        .collect();
    dirs.sort_by(|a, b| a.1.cmp(&b.1));
    dirs
}

impl Cpu {
    fn cpuinfo(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = util::read(&self.procfs.join("cpuinfo"))?;
        let cpus = parse_cpuinfo(&text)?;
        let mut info = Family::new(
            "node_cpu_info",
            "CPU information from /proc/cpuinfo.",
            MetricType::Gauge,
        );
        let mut freq = Family::new(
            "node_cpu_frequency_hertz",
            "CPU frequency in hertz from /proc/cpuinfo.",
            MetricType::Gauge,
        );
        for c in &cpus {
            let cpu = c.processor.to_string();
            info.push(
                &[
                    ("package", &c.physical_id),
                    ("core", &c.core_id),
                    ("cpu", &cpu),
                    ("vendor", &c.vendor),
                    ("family", &c.family),
                    ("model", &c.model),
                    ("model_name", &c.model_name),
                    ("microcode", &c.microcode),
                    ("stepping", &c.stepping),
                    ("cachesize", &c.cache_size),
                ],
                1.0,
            );
            if self.info_frequency {
                freq.push(
                    &[
                        ("package", &c.physical_id),
                        ("core", &c.core_id),
                        ("cpu", &cpu),
                    ],
                    c.mhz * 1e6,
                );
            }
        }
        out.push(info);
        out.push(freq);
        // Flags and bugs come from the first processor only, and only with a filter.
        let first = cpus.first();
        for (re, values, name, help, label) in [
            (
                &self.flags,
                first.map(|c| &c.flags),
                "node_cpu_flag_info",
                "The `flags` field of CPU information from /proc/cpuinfo taken from the first core.",
                "flag",
            ),
            (
                &self.bugs,
                first.map(|c| &c.bugs),
                "node_cpu_bug_info",
                "The `bugs` field of CPU information from /proc/cpuinfo taken from the first core.",
                "bug",
            ),
        ] {
            let (Some(re), Some(values)) = (re, values) else {
                continue;
            };
            let mut f = Family::new(name, help, MetricType::Gauge);
            for v in values.iter().filter(|v| re.is_match(v)) {
                f.push(&[(label, v)], 1.0);
            }
            out.push(f);
        }
        Ok(())
    }

    fn stat(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = self.stat.read()?;
        let new = parse_stat(&text, self.user_hz)?;
        let mut secs = Family::new(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            MetricType::Counter,
        );
        let mut guest = Family::new(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            MetricType::Counter,
        );
        // A poisoned lock only means another scrape panicked; the map is still usable.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        fold(&mut last, &new);
        // In the order /metrics lists them (CPU labels as text, then modes by name), so that
        // the encoder finds them sorted; the CPU labels are kept while the CPU set stays.
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if order.0.len() != new.len() || order.0.iter().zip(&new).any(|(a, (b, _))| a != b) {
            order.0 = new.iter().map(|(id, _)| *id).collect();
            let mut text: Vec<(String, u32)> =
                last.keys().map(|id| (id.to_string(), *id)).collect();
            text.sort();
            order.1 = text
                .into_iter()
                .map(|(cpu, id)| CpuLabels {
                    id,
                    modes: MODES_BY_NAME
                        .iter()
                        .map(|(_, mode)| labels(&[("cpu", &cpu), ("mode", mode)]))
                        .collect(),
                })
                .collect();
        }
        for cpu in &order.1 {
            let Some(t) = last.get(&cpu.id) else {
                continue;
            };
            for ((i, _), set) in MODES_BY_NAME.iter().zip(&cpu.modes) {
                secs.push_labels(set, t[*i]);
            }
            if self.guest {
                guest.push_labels(&cpu.modes[NICE], t[9]);
                guest.push_labels(&cpu.modes[USER], t[8]);
            }
        }
        out.push(secs);
        out.push(guest);
        Ok(())
    }

    fn throttles(&self, out: &mut Vec<Family>) {
        let (Throttles { cores, packages }, online) = self.throttles.read_all();
        let mut f = Family::new(
            "node_cpu_core_throttles_total",
            "Number of times this CPU core has been throttled.",
            MetricType::Counter,
        );
        for ((pkg, core), v) in &cores {
            f.push(
                &[("package", &pkg.to_string()), ("core", &core.to_string())],
                *v as f64,
            );
        }
        out.push(f);
        let mut f = Family::new(
            "node_cpu_package_throttles_total",
            "Number of times this CPU package has been throttled.",
            MetricType::Counter,
        );
        for (pkg, v) in &packages {
            f.push(&[("package", &pkg.to_string())], *v as f64);
        }
        out.push(f);
        // node_cpu_online from cpuN/online; nothing when the first CPU has no such file (x86
        // cpu0 usually has none), as in node_exporter.
        if let Some(online) = online {
            let mut f = Family::new(
                "node_cpu_online",
                "CPUs that are online and being scheduled.",
                MetricType::Gauge,
            );
            for (n, on) in &online {
                f.push(&[("cpu", n)], if *on { 1.0 } else { 0.0 });
            }
            out.push(f);
        }
    }
}

impl Collector for Cpu {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        if self.info {
            self.cpuinfo(out)?;
        }
        self.stat(out)?;
        let isolated = {
            let mut known = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
            if known.is_none() {
                *known = Some(read_isolated(&self.isolated_path)?);
            }
            known.clone().flatten()
        };
        if let Some(isolated) = &isolated {
            let mut f = Family::new(
                "node_cpu_isolated",
                "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
                MetricType::Gauge,
            );
            for c in isolated {
                f.push(&[("cpu", &c.to_string())], 1.0);
            }
            out.push(f);
        }
        self.throttles(out);
        Ok(())
    }
}

/// The isolated CPUs; `None` when the kernel has no such file.
fn read_isolated(path: &Path) -> anyhow::Result<Option<Vec<u32>>> {
    match util::read_attr(path) {
        Ok(list) => Ok(Some(cpu_list(&list))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let flags = util::optional_regex(
        &opts.cpu_info_flags_include,
        "collector.cpu.info.flags-include",
    )?;
    let bugs = util::optional_regex(
        &opts.cpu_info_bugs_include,
        "collector.cpu.info.bugs-include",
    )?;
    let isolated_path = opts.sysfs.join("devices/system/cpu/isolated");
    let isolated = read_isolated(&isolated_path).ok();
    Ok(Box::new(Cpu {
        procfs: opts.procfs.clone(),
        stat: HeldFile::new(opts.procfs.join("stat")),
        guest: opts.cpu_guest && !opts.no_cpu_guest,
        // A flags or bugs filter switches the info series on, as in node_exporter.
        info: opts.cpu_info || flags.is_some() || bugs.is_some(),
        info_frequency: opts.enabled().contains(&"cpufreq"),
        flags,
        bugs,
        user_hz: if hz > 0 { hz as f64 } else { 100.0 },
        isolated: Mutex::new(isolated),
        isolated_path,
        last: Mutex::new(HashMap::new()),
        order: Mutex::default(),
        throttles: ThrottleReader::shared(&opts.sysfs),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn guest_modes_index_the_mode_table() {
        assert_eq!(MODES_BY_NAME[NICE].1, "nice");
        assert_eq!(MODES_BY_NAME[USER].1, "user");
    }

    fn opts(root: &Path, extra: &[&str]) -> Options {
        let mut flags = vec![
            format!("--path.procfs={}", root.join("proc").display()),
            format!("--path.sysfs={}", root.join("sys").display()),
        ];
        flags.extend(extra.iter().map(|s| s.to_string()));
        Options::from_flags(flags).unwrap()
    }

    fn series(out: &[Family], name: &str) -> Vec<(String, f64)> {
        out.iter()
            .filter(|f| f.name == name)
            .flat_map(|f| &f.samples)
            .map(|s| {
                let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                (l.join(","), s.value)
            })
            .collect()
    }

    fn get(out: &[Family], name: &str, labels: &str) -> Option<f64> {
        series(out, name)
            .into_iter()
            .find(|(l, _)| l == labels)
            .map(|(_, v)| v)
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("1,3-5,9\n"), vec![1, 3, 4, 5, 9]);
        assert!(cpu_list("").is_empty());
        // Found by fuzzing: this used to allocate 2 GB.
        assert_eq!(cpu_list("1600-530333333").len(), MAX_CPUS);
        assert_eq!(cpu_list("0-4294967295,0-4294967295").len(), MAX_CPUS);
    }

    #[test]
    fn counters_never_go_backwards_but_hotplug_resets() {
        let mut last = HashMap::new();
        let t = |idle: f64, user: f64| {
            let mut t = [0.0; FIELDS];
            t[IDLE] = idle;
            t[0] = user;
            t
        };
        fold(&mut last, &[(0, t(100.0, 50.0)), (1, t(100.0, 50.0))]);
        // user steps back a little: held; idle steps back under the threshold: held.
        fold(&mut last, &[(0, t(99.0, 40.0)), (1, t(101.0, 51.0))]);
        assert_eq!(last[&0][0], 50.0);
        assert_eq!(last[&0][IDLE], 100.0);
        assert_eq!(last[&1][0], 51.0);
        // idle jumps back by >= 3 s: the CPU was re-plugged, start over.
        fold(&mut last, &[(0, t(2.0, 1.0)), (1, t(102.0, 52.0))]);
        assert_eq!(last[&0][0], 1.0);
        assert_eq!(last[&0][IDLE], 2.0);
        // cpu1 goes offline: forgotten.
        fold(&mut last, &[(0, t(3.0, 2.0))]);
        assert!(!last.contains_key(&1));
    }

    #[test]
    fn stat_and_throttles_on_a_small_tree() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(
            r,
            "proc/stat",
            "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 100 0 0 1000 0 0 0 0 20 10\ncpu1 200 0 0 2000\nintr 5\n",
        );
        // Two threads of one core: the core and package are read once.
        for (cpu, core) in [("cpu0", "0"), ("cpu1", "0"), ("cpu2", "1")] {
            write(
                r,
                &format!("sys/devices/system/cpu/{cpu}/topology/core_id"),
                core,
            );
            write(
                r,
                &format!("sys/devices/system/cpu/{cpu}/topology/physical_package_id"),
                "0\n",
            );
        }
        write(
            r,
            "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
            "7\n",
        );
        write(
            r,
            "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
            "99\n",
        );
        write(
            r,
            "sys/devices/system/cpu/cpu1/thermal_throttle/package_throttle_count",
            "3\n",
        );
        // cpu2's counter is a directory: skipped quietly (read fails with EISDIR).
        std::fs::create_dir_all(
            r.join("sys/devices/system/cpu/cpu2/thermal_throttle/core_throttle_count"),
        )
        .unwrap();
        write(r, "sys/devices/system/cpu/isolated", "1\n");
        let c = build(&opts(r, &[])).unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let hz = 100.0; // USER_HZ is 100 on every Linux this runs on
        assert_eq!(
            get(&out, "node_cpu_seconds_total", "cpu=0,mode=idle"),
            Some(1000.0 / hz)
        );
        // Short lines (old kernels) export zeros for the missing columns.
        assert_eq!(
            get(&out, "node_cpu_guest_seconds_total", "cpu=1,mode=user"),
            Some(0.0)
        );
        assert_eq!(
            get(&out, "node_cpu_guest_seconds_total", "cpu=0,mode=nice"),
            Some(10.0 / hz)
        );
        assert_eq!(series(&out, "node_cpu_seconds_total").len(), 16);
        assert_eq!(
            series(&out, "node_cpu_core_throttles_total"),
            vec![("package=0,core=0".to_string(), 7.0)]
        );
        assert_eq!(
            series(&out, "node_cpu_package_throttles_total"),
            vec![("package=0".to_string(), 3.0)]
        );
        assert_eq!(get(&out, "node_cpu_isolated", "cpu=1"), Some(1.0));
        assert!(series(&out, "node_cpu_online").is_empty());
        assert!(series(&out, "node_cpu_info").is_empty());

        // Throttle counters are passed through even when they go backwards (a reset).
        write(
            r,
            "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
            "2\n",
        );
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(
            get(&out, "node_cpu_core_throttles_total", "package=0,core=0"),
            Some(2.0)
        );

        // Without /proc/stat the collector fails (success 0).
        std::fs::remove_file(r.join("proc/stat")).unwrap();
        assert!(c.collect(&mut Vec::new()).is_err());
    }

    #[test]
    fn absent_throttle_counters_are_not_looked_for_again() {
        // A VM or an AMD CPU: topology but no thermal_throttle directory.
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "proc/stat", "cpu0 1 2 3 4 5 6 7 8 9 10\n");
        write(
            r,
            "sys/devices/system/cpu/cpu0/topology/physical_package_id",
            "0\n",
        );
        write(r, "sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
        let c = build(&opts(r, &[])).unwrap();
        let throttles = |c: &dyn Collector| {
            let mut out = Vec::new();
            c.collect(&mut out).unwrap();
            series(&out, "node_cpu_core_throttles_total")
        };
        assert!(throttles(c.as_ref()).is_empty());
        // Not probed again on later scrapes of the same CPU list...
        write(
            r,
            "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
            "5\n",
        );
        assert!(throttles(c.as_ref()).is_empty());
        // ...until the list changes (a CPU added or removed).
        std::fs::create_dir_all(r.join("sys/devices/system/cpu/cpu1")).unwrap();
        assert_eq!(
            throttles(c.as_ref()),
            vec![("package=0,core=0".to_string(), 5.0)]
        );
    }

    #[test]
    fn guest_flag_and_online() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "proc/stat", "cpu0 1 2 3 4 5 6 7 8 9 10\n");
        write(r, "sys/devices/system/cpu/cpu0/online", "1\n");
        write(r, "sys/devices/system/cpu/cpu1/online", "0\n");
        std::fs::create_dir_all(r.join("sys/devices/system/cpu/cpu2")).unwrap();
        for flag in ["--collector.cpu.guest=false", "--no-collector.cpu.guest"] {
            let mut out = Vec::new();
            build(&opts(r, &[flag])).unwrap().collect(&mut out).unwrap();
            assert!(
                series(&out, "node_cpu_guest_seconds_total").is_empty(),
                "{flag}"
            );
        }
        let mut out = Vec::new();
        build(&opts(r, &["--collector.cpu.guest"]))
            .unwrap()
            .collect(&mut out)
            .unwrap();
        assert_eq!(series(&out, "node_cpu_guest_seconds_total").len(), 2);
        assert_eq!(
            series(&out, "node_cpu_online"),
            vec![
                ("cpu=0".to_string(), 1.0),
                ("cpu=1".to_string(), 0.0),
                ("cpu=2".to_string(), 0.0)
            ]
        );
    }

    #[test]
    fn cpuinfo_series() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "proc/stat", "cpu0 1 2 3 4 5 6 7 8 9 10\n");
        write(
            r,
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 142\n\
             model name\t: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz\nstepping\t: 10\n\
             microcode\t: 0xb4\ncpu MHz\t\t: 799.998\ncache size\t: 8192 KB\nphysical id\t: 0\n\
             core id\t\t: 0\nflags\t\t: fpu aes avx avx2 sse\nbugs\t\t: cpu_meltdown mds\n\
             power management:\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t\t: 1\n\
             cpu MHz\t\t: 800.5\nflags\t\t: fpu\n",
        );
        let mut out = Vec::new();
        build(&opts(
            r,
            &["--collector.cpu.info.flags-include=^(aes|avx.?)$"],
        ))
        .unwrap()
        .collect(&mut out)
        .unwrap();
        assert_eq!(
            series(&out, "node_cpu_info")[0].0,
            "package=0,core=0,cpu=0,vendor=GenuineIntel,family=6,model=142,\
             model_name=Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz,microcode=0xb4,stepping=10,\
             cachesize=8192 KB"
        );
        let flags: Vec<String> = series(&out, "node_cpu_flag_info")
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(flags, vec!["flag=aes", "flag=avx", "flag=avx2"]);
        // No bugs filter: no bug series. cpufreq is on by default: frequencies from cpuinfo.
        assert!(series(&out, "node_cpu_bug_info").is_empty());
        assert_eq!(
            get(&out, "node_cpu_frequency_hertz", "package=0,core=1,cpu=1"),
            Some(800.5e6)
        );
        let mut out = Vec::new();
        build(&opts(
            r,
            &["--collector.cpu.info", "--no-collector.cpufreq"],
        ))
        .unwrap()
        .collect(&mut out)
        .unwrap();
        assert!(series(&out, "node_cpu_frequency_hertz").is_empty());
        assert_eq!(series(&out, "node_cpu_info").len(), 2);
        // A bad regex is a start-up error.
        assert!(build(&opts(r, &["--collector.cpu.info.bugs-include=("])).is_err());
    }
}
