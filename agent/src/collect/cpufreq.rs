//! cpufreq collector: per-CPU frequencies from devices/system/cpu/cpuN/cpufreq (kHz in
//! sysfs, hertz here) and the scaling governor, as node_exporter 1.12 exports them.

use std::path::{Path, PathBuf};

use super::{util, Collector, Family, MetricType, Options};

struct Cpufreq {
    dir: PathBuf,
}

/// (sysfs file, metric, help)
const FILES: &[(&str, &str, &str)] = &[
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current CPU thread frequency in hertz.",
    ),
    (
        "cpuinfo_avg_freq",
        "node_cpu_frequency_avg_hertz",
        "Average CPU thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum CPU thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum CPU thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
];

/// A kHz attribute. Missing, unreadable (cpuinfo_cur_freq is root-only) or garbled files
/// are left out rather than failing the whole collector.
fn khz(path: &Path) -> Option<f64> {
    util::read_attr(path)
        .ok()?
        .parse::<u64>()
        .ok()
        .map(|v| v as f64)
}

impl Collector for Cpufreq {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut fams: Vec<Family> = FILES
            .iter()
            .map(|(_, n, h)| Family::new(*n, *h, MetricType::Gauge))
            .collect();
        let mut gov = Family::new(
            "node_cpu_scaling_governor",
            "Current enabled CPU frequency governor.",
            MetricType::Gauge,
        );
        // No CPU directory at all (an odd container) is an empty scrape, not a failure.
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => anyhow::bail!("reading {}: {e}", self.dir.display()),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(cpu) = name
                .strip_prefix("cpu")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            // Often a symlink to ../cpufreq/policyN; is_dir follows it.
            let dir = e.path().join("cpufreq");
            if !dir.is_dir() {
                continue;
            }
            for (f, (file, ..)) in fams.iter_mut().zip(FILES) {
                if let Some(v) = khz(&dir.join(file)) {
                    f.push(&[("cpu", cpu)], v * 1000.0);
                }
            }
            let current = util::read_attr(&dir.join("scaling_governor")).unwrap_or_default();
            if current.is_empty() {
                continue;
            }
            // Split on single spaces like node_exporter, so the series set is the same.
            let available =
                util::read_attr(&dir.join("scaling_available_governors")).unwrap_or_default();
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

    fn collect(root: &Path) -> Vec<(String, String, f64)> {
        let c = Cpufreq {
            dir: root.join("devices/system/cpu"),
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
