//! cpufreq collector: per-CPU frequencies from devices/system/cpu/cpuN/cpufreq (kHz in
//! sysfs, hertz here) and the scaling governor, as node_exporter 1.12 exports them.
//!
//! What is read when (Documentation/admin-guide/pm/cpufreq.rst): `cpuinfo_min_freq` is the
//! hardware's lowest frequency, set when the policy is created: read once. Everything else
//! can change while the system runs and is read on every scrape: the current frequencies,
//! the `scaling_min/max_freq` limits and the governor (writable), `cpuinfo_max_freq` (the
//! driver raises or lowers it when boost or turbo is switched), and
//! `scaling_available_governors` (it grows when a governor module is loaded). Those files are
//! held open ([`attr::Attr`]); a file that was missing when the CPU was listed (intel_pstate
//! has no `cpuinfo_cur_freq`) is not looked for again. CPUs and policies are listed on every
//! scrape; when either listing changes (hotplug, a driver loaded) the CPUs are set up again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::attr::{Attr, Dir, Listing};
use super::{labels, Collector, Family, Labels, MetricType, Options};

struct Cpufreq {
    dir: PathBuf,
    cache: Mutex<Cache>,
}

/// (sysfs file, metric, help, read once)
const FILES: &[(&str, &str, &str, bool)] = &[
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current CPU thread frequency in hertz.",
        false,
    ),
    (
        "cpuinfo_avg_freq",
        "node_cpu_frequency_avg_hertz",
        "Average CPU thread frequency in hertz.",
        false,
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum CPU thread frequency in hertz.",
        false,
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum CPU thread frequency in hertz.",
        true,
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
        false,
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
        false,
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
        false,
    ),
];

/// One kHz attribute of one CPU.
enum Freq {
    /// Missing or not openable (cpuinfo_cur_freq is root-only) when the CPU was set up.
    Absent,
    /// Read once.
    Fixed(f64),
    /// Read on every scrape.
    Read(Attr),
}

/// What one CPU's cpufreq directory offers.
struct CpuFreq {
    cpu: String,
    /// The series' labels (cpu), kept.
    labels: Labels,
    freqs: Vec<Freq>,
    governor: Option<Attr>,
    available: Option<Attr>,
}

struct Cache {
    /// devices/system/cpu, and its cpufreq/ (the policies), listed on every scrape.
    cpu_dir: Dir,
    policy_dir: Dir,
    /// Their listings when `cpus` was set up (None: there was no cpufreq/, and while the CPU
    /// listing stays the same there is none).
    seen: Option<(Listing, Option<Listing>)>,
    cpus: Vec<CpuFreq>,
}

impl Cache {
    fn new(dir: &Path) -> Cache {
        Cache {
            cpu_dir: Dir::new(dir.to_path_buf()),
            policy_dir: Dir::new(dir.join("cpufreq")),
            seen: None,
            cpus: Vec::new(),
        }
    }
}

/// A kHz value: unreadable or garbled reads are left out rather than failing the collector.
fn khz(a: &Attr, buf: &mut [u8]) -> Option<f64> {
    a.number::<u64>(buf).map(|v| v as f64)
}

/// Sets up one CPU's cpufreq directory (None: it has none).
fn setup(cpu: &str, dir: &Path) -> Option<CpuFreq> {
    // Often a symlink to ../cpufreq/policyN; is_dir follows it.
    if !dir.is_dir() {
        return None;
    }
    let mut buf = [0u8; 4096];
    let freqs = FILES
        .iter()
        .map(|(file, _, _, once)| match Attr::open(&dir.join(file)) {
            Err(_) => Freq::Absent,
            Ok(a) => match khz(&a, &mut buf) {
                // A read that fails now (an offline CPU's policy answers EBUSY) is tried again
                // on later scrapes.
                Some(v) if *once => Freq::Fixed(v),
                _ => Freq::Read(a),
            },
        })
        .collect();
    Some(CpuFreq {
        cpu: cpu.to_string(),
        labels: labels(&[("cpu", cpu)]),
        freqs,
        governor: Attr::open(&dir.join("scaling_governor")).ok(),
        available: Attr::open(&dir.join("scaling_available_governors")).ok(),
    })
}

impl Cpufreq {
    /// The CPUs as they are now: set up again when the CPU or policy listing changed.
    /// `Ok(false)`: no CPU directory at all.
    fn refresh(&self, cache: &mut Cache) -> anyhow::Result<bool> {
        // No CPU directory at all (an odd container) is an empty scrape, not a failure.
        let cpus = match cache.cpu_dir.listing() {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cache.seen = None;
                cache.cpus.clear();
                return Ok(false);
            }
            Err(e) => anyhow::bail!("reading {}: {e}", self.dir.display()),
        };
        // cpufreq/ is an entry of the CPU directory: while that listing is the same, a
        // cpufreq/ that was not there is still not there.
        let policies = match cache.seen {
            Some((same, None)) if same == cpus => None,
            _ => cache.policy_dir.listing().ok(),
        };
        let seen = (cpus, policies);
        if cache.seen == Some(seen) {
            return Ok(true);
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => anyhow::bail!("reading {}: {e}", self.dir.display()),
        };
        // Drop what is held before opening anew, so the budget counts each file once.
        cache.cpus.clear();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(cpu) = name
                .strip_prefix("cpu")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            cache.cpus.extend(setup(cpu, &e.path().join("cpufreq")));
        }
        // In the order /metrics lists them (CPU labels as text), so that the encoder finds
        // them sorted.
        cache.cpus.sort_by(|a, b| a.cpu.cmp(&b.cpu));
        cache.seen = Some(seen);
        Ok(true)
    }
}

impl Collector for Cpufreq {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if !self.refresh(&mut cache)? {
            return Ok(());
        }
        let mut fams: Vec<Family> = FILES
            .iter()
            .map(|(_, n, h, _)| Family::new(*n, *h, MetricType::Gauge))
            .collect();
        let mut gov = Family::new(
            "node_cpu_scaling_governor",
            "Current enabled CPU frequency governor.",
            MetricType::Gauge,
        );
        let mut buf = [0u8; 4096];
        for c in &cache.cpus {
            let cpu = c.cpu.as_str();
            for (f, freq) in fams.iter_mut().zip(&c.freqs) {
                let v = match freq {
                    Freq::Absent => None,
                    Freq::Fixed(v) => Some(*v),
                    Freq::Read(a) => khz(a, &mut buf),
                };
                if let Some(v) = v {
                    f.push_labels(&c.labels, v * 1000.0);
                }
            }
            let current = c
                .governor
                .as_ref()
                .and_then(|a| a.text(&mut buf).ok())
                .unwrap_or_default();
            if current.is_empty() {
                continue;
            }
            // Split on single spaces like node_exporter, so the series set is the same.
            let available = c
                .available
                .as_ref()
                .and_then(|a| a.text(&mut buf).ok())
                .unwrap_or_default();
            for g in available.split(' ') {
                gov.push(
                    &[("cpu", cpu), ("governor", g)],
                    if g == current { 1.0 } else { 0.0 },
                );
            }
        }
        out.extend(fams);
        out.push(gov);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Cpufreq {
        dir: opts.sysfs.join("devices/system/cpu"),
        cache: Mutex::new(Cache::new(&opts.sysfs.join("devices/system/cpu"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    fn collect(root: &Path) -> Vec<(String, String, f64)> {
        let dir = root.join("devices/system/cpu");
        let c = Cpufreq {
            cache: Mutex::new(Cache::new(&dir)),
            dir,
        };
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        out.iter()
            .flat_map(|f| {
                f.samples.iter().map(|s| {
                    let l: Vec<String> = s.labels.iter().map(|(_, v)| v.clone()).collect();
                    (f.name.to_string(), l.join(","), s.value)
                })
            })
            .collect()
    }

    #[test]
    fn frequencies_and_governors() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let c0 = "devices/system/cpu/cpu0/cpufreq";
        write(r, &format!("{c0}/scaling_cur_freq"), "1699981\n");
        write(r, &format!("{c0}/cpuinfo_avg_freq"), "2000000\n");
        write(r, &format!("{c0}/scaling_governor"), "powersave\n");
        write(
            r,
            &format!("{c0}/scaling_available_governors"),
            "performance powersave\n",
        );
        // Unreadable (here: a directory) and garbled attributes are skipped.
        std::fs::create_dir_all(r.join(c0).join("cpuinfo_max_freq")).unwrap();
        write(r, &format!("{c0}/cpuinfo_min_freq"), "n/a\n");
        // A CPU without cpufreq contributes nothing.
        std::fs::create_dir_all(r.join("devices/system/cpu/cpu1")).unwrap();
        let got = collect(r);
        let want = vec![
            ("node_cpu_frequency_avg_hertz", "0", 2.0e9),
            ("node_cpu_scaling_frequency_hertz", "0", 1.699981e9),
            ("node_cpu_scaling_governor", "0,performance", 0.0),
            ("node_cpu_scaling_governor", "0,powersave", 1.0),
        ];
        let got: Vec<(&str, &str, f64)> = got
            .iter()
            .map(|(n, l, v)| (n.as_str(), l.as_str(), *v))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn missing_tree_is_empty_not_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(collect(d.path()).is_empty());
    }
}
