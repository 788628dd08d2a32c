//! cpu collector: per-CPU mode times from /proc/stat, guest times, thermal throttle counters
//! per core and package from sysfs, and isolated CPUs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{util, Collector, Family, MetricType, Options};

struct Cpu {
    procfs: PathBuf,
    sysfs: PathBuf,
    guest: bool,
    user_hz: f64,
}

const MODES: &[&str] = &[
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Expands a CPU list such as "1,3-5,9".
pub fn cpu_list(list: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

impl Cpu {
    fn throttles(&self, out: &mut Vec<Family>) {
        let base = self.sysfs.join("devices/system/cpu");
        let Ok(entries) = std::fs::read_dir(&base) else {
            return;
        };
        let mut cores: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut packages: BTreeMap<String, f64> = BTreeMap::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name
                .strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let dir = e.path();
            let (Ok(pkg), Ok(core)) = (
                util::read_attr(&dir.join("topology/physical_package_id")),
                util::read_attr(&dir.join("topology/core_id")),
            ) else {
                continue;
            };
            // Hyper-threads share a core: count each core and package once.
            if let Some(v) = util::read_num(&dir.join("thermal_throttle/core_throttle_count")) {
                cores.entry((pkg.clone(), core)).or_insert(v);
            }
            if let Some(v) = util::read_num(&dir.join("thermal_throttle/package_throttle_count")) {
                packages.entry(pkg).or_insert(v);
            }
        }
        if !cores.is_empty() {
            let mut f = Family::new(
                "node_cpu_core_throttles_total",
                "Number of times this CPU core has been throttled.",
                MetricType::Counter,
            );
            for ((pkg, core), v) in &cores {
                f.push(&[("core", core), ("package", pkg)], *v);
            }
            out.push(f);
        }
        if !packages.is_empty() {
            let mut f = Family::new(
                "node_cpu_package_throttles_total",
                "Number of times this CPU package has been throttled.",
                MetricType::Counter,
            );
            for (pkg, v) in &packages {
                f.push(&[("package", pkg)], *v);
            }
            out.push(f);
        }
    }
}

impl Collector for Cpu {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = util::read(&self.procfs.join("stat"))?;
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
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let Some(id) = it
                .next()
                .and_then(|c| c.strip_prefix("cpu"))
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            let v: Vec<f64> = it
                .map(|x| x.parse::<f64>().unwrap_or(0.0) / self.user_hz)
                .collect();
            for (mode, value) in MODES.iter().zip(&v) {
                secs.push(&[("cpu", id), ("mode", mode)], *value);
            }
            if self.guest && v.len() >= 10 {
                guest.push(&[("cpu", id), ("mode", "user")], v[8]);
                guest.push(&[("cpu", id), ("mode", "nice")], v[9]);
            }
        }
        out.push(secs);
        out.push(guest);
        self.throttles(out);
        if let Ok(list) = util::read_attr(&self.sysfs.join("devices/system/cpu/isolated")) {
            let mut f = Family::new(
                "node_cpu_isolated",
                "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
                MetricType::Gauge,
            );
            for c in cpu_list(&list) {
                f.push(&[("cpu", &c.to_string())], 1.0);
            }
            out.push(f);
        }
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(Box::new(Cpu {
        procfs: opts.procfs.clone(),
        sysfs: opts.sysfs.clone(),
        guest: !opts.no_cpu_guest,
        user_hz: if hz > 0 { hz as f64 } else { 100.0 },
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::cpu_list("1,3-5,9\n"), vec![1, 3, 4, 5, 9]);
        assert!(super::cpu_list("").is_empty());
    }
}
