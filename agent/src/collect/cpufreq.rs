//! cpufreq collector: per-CPU frequencies (kHz in sysfs, hertz here) and the governor.

use std::path::PathBuf;

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
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(cpu) = name
                .strip_prefix("cpu")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let dir = e.path().join("cpufreq");
            if !dir.is_dir() {
                continue;
            }
            for (f, (file, ..)) in fams.iter_mut().zip(FILES) {
                if let Some(khz) = util::read_num(&dir.join(file)) {
                    f.push(&[("cpu", cpu)], khz * 1000.0);
                }
            }
            if let (Ok(current), Ok(available)) = (
                util::read_attr(&dir.join("scaling_governor")),
                util::read_attr(&dir.join("scaling_available_governors")),
            ) {
                for g in available.split_whitespace() {
                    gov.push(
                        &[("cpu", cpu), ("governor", g)],
                        if g == current { 1.0 } else { 0.0 },
                    );
                }
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
