//! gpu collector (cargo feature `gpu`, disabled by default): NVIDIA GPUs through NVML, loaded
//! at run time with dlopen, so building needs no NVIDIA files and a host without the driver
//! simply reports success=0. nodetune_gpu_* families: temperature, power, utilisation, clocks,
//! memory, clock-throttle reasons, and GPUs that fell off the bus.

use super::{Collector, Family, MetricType, Options};

/// One reading of one GPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub temperature_c: Option<f64>,
    pub power_w: Option<f64>,
    pub util_gpu: Option<f64>,
    pub util_memory: Option<f64>,
    /// (graphics, sm, memory) in MHz.
    pub clocks_mhz: [Option<f64>; 3],
    pub memory_used: Option<f64>,
    pub memory_total: Option<f64>,
    pub throttle_reasons: Option<u64>,
    /// NVML reports the GPU fell off the bus (NVML_ERROR_GPU_IS_LOST): nothing else is known.
    pub lost: bool,
}

/// NVML's clock-event (throttle) reason bits.
pub const REASONS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// Where readings come from (NVML, or a fake in tests).
pub trait Source: Send + Sync {
    fn read(&self) -> anyhow::Result<Vec<Reading>>;
}

fn families(readings: &[Reading]) -> Vec<Family> {
    let g = MetricType::Gauge;
    let mut temp = Family::new(
        "nodetune_gpu_temperature_celsius",
        "GPU core temperature.",
        g,
    );
    let mut power = Family::new("nodetune_gpu_power_watts", "GPU power draw.", g);
    let mut util = Family::new(
        "nodetune_gpu_utilization_ratio",
        "Share of the last sample period the GPU (or its memory) was busy.",
        g,
    );
    let mut clock = Family::new(
        "nodetune_gpu_clock_hertz",
        "Current GPU clock frequency.",
        g,
    );
    let mut mem_used = Family::new("nodetune_gpu_memory_used_bytes", "GPU memory in use.", g);
    let mut mem_total = Family::new(
        "nodetune_gpu_memory_total_bytes",
        "GPU memory installed.",
        g,
    );
    let mut reasons = Family::new(
        "nodetune_gpu_throttle_reasons",
        "Bitmask of NVML clock-throttle reasons.",
        g,
    );
    let mut active = Family::new(
        "nodetune_gpu_throttle_active",
        "1 while the GPU clocks are held down for this reason.",
        g,
    );
    let mut info = Family::new("nodetune_gpu_info", "A GPU NVML reports (always 1).", g);
    let mut lost = Family::new(
        "nodetune_gpu_lost",
        "1 when NVML reports the GPU fell off the bus (NVML_ERROR_GPU_IS_LOST), else 0.",
        g,
    );
    for r in readings {
        let gpu = r.index.to_string();
        lost.push(&[("gpu", gpu.as_str())], if r.lost { 1.0 } else { 0.0 });
        if r.lost {
            continue;
        }
        // Every series carries the index, UUID and model, so no join is needed.
        let id = [
            ("gpu", gpu.as_str()),
            ("uuid", r.uuid.as_str()),
            ("name", r.name.as_str()),
        ];
        let with = |k: &'static str, v: &'static str| {
            let mut l = id.to_vec();
            l.push((k, v));
            l
        };
        info.push(&id, 1.0);
        if let Some(v) = r.temperature_c {
            temp.push(&id, v);
        }
        if let Some(v) = r.power_w {
            power.push(&id, v);
        }
        if let Some(v) = r.util_gpu {
            util.push(&with("kind", "gpu"), v / 100.0);
        }
        if let Some(v) = r.util_memory {
            util.push(&with("kind", "memory"), v / 100.0);
        }
        for (c, v) in ["graphics", "sm", "memory"].into_iter().zip(r.clocks_mhz) {
            if let Some(v) = v {
                clock.push(&with("clock", c), v * 1e6);
            }
        }
        if let Some(v) = r.memory_used {
            mem_used.push(&id, v);
        }
        if let Some(v) = r.memory_total {
            mem_total.push(&id, v);
        }
        if let Some(bits) = r.throttle_reasons {
            reasons.push(&id, bits as f64);
            for (bit, name) in REASONS {
                active.push(
                    &with("reason", name),
                    if bits & bit != 0 { 1.0 } else { 0.0 },
                );
            }
        }
    }
    vec![
        info, lost, temp, power, util, clock, mem_used, mem_total, reasons, active,
    ]
}

struct Gpu {
    source: Box<dyn Source>,
}

impl Collector for Gpu {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let readings = self.source.read()?;
        // A driver with no GPU is a failed scrape too, so success=0 means "no GPU data".
        anyhow::ensure!(!readings.is_empty(), "NVML reports no GPU");
        out.extend(families(&readings));
        Ok(())
    }
}

#[cfg(feature = "gpu")]
mod nvml {
    //! The NVML calls, through nvml-wrapper: it loads libnvidia-ml.so.1 with dlopen and calls
    //! the versioned entry points (`nvmlInit_v2`, `nvmlDeviceGetCount_v2`,
    //! `nvmlDeviceGetHandleByIndex_v2`, `nvmlDeviceGetMemoryInfo_v2` with its versioned
    //! struct) that hand-declared bindings had to track by hand.

    use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
    use nvml_wrapper::error::NvmlError;
    use nvml_wrapper::{Device, Nvml};

    use super::Reading;
    use crate::base::log::{self, Level};

    pub struct Source(Nvml);

    impl Source {
        pub fn load() -> anyhow::Result<Source> {
            Nvml::init()
                .map(Source)
                .map_err(|e| anyhow::anyhow!("NVML not available: {e}"))
        }
    }

    /// One query's answer: a value, nothing (unsupported here, or failed: a debug line), or
    /// the GPU is gone.
    fn value<T>(gpu: u32, call: &str, r: Result<T, NvmlError>) -> Result<Option<T>, ()> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(NvmlError::GpuLost) => Err(()),
            Err(NvmlError::NotSupported) => Ok(None),
            Err(e) => {
                if log::enabled(Level::Debug) {
                    log::log(
                        Level::Debug,
                        &format!("GPU {gpu}: {call}: {e}"),
                        &[("GPU", &gpu.to_string())],
                    );
                }
                Ok(None)
            }
        }
    }

    /// Clock-event reasons under their R535+ name, else the older (deprecated) one: same
    /// signature and bits.
    fn reasons(d: &Device<'_>, nvml: &Nvml) -> Result<u64, NvmlError> {
        if let Ok(sym) = nvml.lib().nvmlDeviceGetCurrentClocksEventReasons.as_ref() {
            let mut bits: std::ffi::c_ulonglong = 0;
            // SAFETY: a valid handle of this NVML and an out-pointer to a local u64, as the
            // function's C signature (nvml.h) takes.
            let rc = unsafe { sym(d.handle(), &mut bits) };
            return match rc {
                0 => Ok(bits),
                rc => Err(NvmlError::from(rc)),
            };
        }
        d.current_throttle_reasons().map(|r| r.bits())
    }

    fn read_one(nvml: &Nvml, d: &Device<'_>, index: u32) -> Result<Reading, ()> {
        let mut r = Reading {
            index,
            ..Reading::default()
        };
        r.name = value(index, "name", d.name())?.unwrap_or_default();
        r.uuid = value(index, "uuid", d.uuid())?.unwrap_or_default();
        r.temperature_c =
            value(index, "temperature", d.temperature(TemperatureSensor::Gpu))?.map(f64::from);
        r.power_w = value(index, "power usage", d.power_usage())?.map(|mw| f64::from(mw) / 1000.0);
        if let Some(u) = value(index, "utilization", d.utilization_rates())? {
            r.util_gpu = Some(f64::from(u.gpu));
            r.util_memory = Some(f64::from(u.memory));
        }
        for (slot, clock) in
            r.clocks_mhz
                .iter_mut()
                .zip([Clock::Graphics, Clock::SM, Clock::Memory])
        {
            *slot = value(index, "clock", d.clock_info(clock))?.map(f64::from);
        }
        if let Some(m) = value(index, "memory", d.memory_info())? {
            r.memory_used = Some(m.used as f64);
            r.memory_total = Some(m.total as f64);
        }
        r.throttle_reasons = value(index, "clock event reasons", reasons(d, nvml))?;
        Ok(r)
    }

    impl super::Source for Source {
        fn read(&self) -> anyhow::Result<Vec<Reading>> {
            let nvml = &self.0;
            let n = nvml
                .device_count()
                .map_err(|e| anyhow::anyhow!("nvmlDeviceGetCount: {e}"))?;
            let mut out = Vec::new();
            for i in 0..n {
                let reading = match nvml.device_by_index(i) {
                    Ok(d) => read_one(nvml, &d, i),
                    Err(NvmlError::GpuLost) => Err(()),
                    Err(e) => {
                        log::log(
                            Level::Debug,
                            &format!("GPU {i}: no handle: {e}"),
                            &[("GPU", &i.to_string())],
                        );
                        continue;
                    }
                };
                out.push(reading.unwrap_or_else(|()| {
                    lost_gpu(i);
                    Reading {
                        index: i,
                        lost: true,
                        ..Reading::default()
                    }
                }));
            }
            Ok(out)
        }
    }

    /// A GPU that fell off the bus is an error worth a line, once a minute per GPU.
    fn lost_gpu(i: u32) {
        static LOST: log::Limiter = log::Limiter::new(std::time::Duration::from_secs(60));
        if LOST
            .admit(&i.to_string(), std::time::Instant::now())
            .is_some()
        {
            log::log(
                Level::Error,
                &format!(
                    "GPU {i} fell off the bus (NVML_ERROR_GPU_IS_LOST): check `dmesg` for Xid 79, then reset the GPU (nvidia-smi -r) or the host"
                ),
                &[("GPU", &i.to_string())],
            );
        }
    }
}

/// Without the library the collector still exists and fails quietly each scrape.
struct Unavailable(String);

impl Source for Unavailable {
    fn read(&self) -> anyhow::Result<Vec<Reading>> {
        anyhow::bail!("{}", self.0)
    }
}

/// NVML when the library loads, else a source that fails with the reason.
pub fn source() -> Box<dyn Source> {
    #[cfg(feature = "gpu")]
    return match nvml::Source::load() {
        Ok(n) => Box::new(n),
        Err(e) => Box::new(Unavailable(format!("{e:#}"))),
    };
    #[cfg(not(feature = "gpu"))]
    Box::new(Unavailable(
        "built without GPU support (cargo feature `gpu`)".into(),
    ))
}

/// The reasons other than idle and application clocks for which a GPU's clocks are held
/// down now (the ThermalThrottling rule's GPU input).
pub fn throttling(r: &Reading) -> impl Iterator<Item = &'static str> + '_ {
    REASONS
        .iter()
        .filter(move |(bit, name)| {
            r.throttle_reasons.is_some_and(|b| b & bit != 0)
                && *name != "gpu_idle"
                && *name != "applications_clocks_setting"
        })
        .map(|(_, name)| *name)
}

pub fn build(_opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Gpu { source: source() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake NVML: fixed readings, or none (a driver with no GPU).
    struct Fake(Vec<Reading>);

    impl Source for Fake {
        fn read(&self) -> anyhow::Result<Vec<Reading>> {
            Ok(self.0.clone())
        }
    }

    fn h100() -> Reading {
        Reading {
            index: 0,
            name: "NVIDIA H100".into(),
            uuid: "GPU-1".into(),
            temperature_c: Some(71.0),
            power_w: Some(312.5),
            util_gpu: Some(87.0),
            util_memory: Some(40.0),
            clocks_mhz: [Some(1980.0), Some(1980.0), Some(2619.0)],
            memory_used: Some(1.0e9),
            memory_total: Some(8.0e10),
            throttle_reasons: Some(0x4 | 0x40),
            lost: false,
        }
    }

    fn label<'a>(s: &'a crate::collect::Sample, k: &str) -> &'a str {
        s.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    #[test]
    fn decodes_readings_and_throttle_bits() {
        let mut second = Reading {
            index: 1,
            name: "NVIDIA A10".into(),
            uuid: "GPU-2".into(),
            ..Reading::default()
        };
        // A GPU whose power and throttle queries are unsupported: those series are absent.
        second.temperature_c = Some(40.0);
        let c = Gpu {
            source: Box::new(Fake(vec![h100(), second])),
        };
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let get = |n: &str| out.iter().find(|f| f.name == n).unwrap();
        let t = &get("nodetune_gpu_temperature_celsius").samples;
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].value, 71.0);
        assert_eq!(
            (
                label(&t[0], "gpu"),
                label(&t[0], "uuid"),
                label(&t[0], "name")
            ),
            ("0", "GPU-1", "NVIDIA H100")
        );
        assert_eq!(get("nodetune_gpu_power_watts").samples.len(), 1);
        let u = &get("nodetune_gpu_utilization_ratio").samples;
        assert_eq!((label(&u[0], "kind"), u[0].value), ("gpu", 0.87));
        assert_eq!((label(&u[1], "kind"), u[1].value), ("memory", 0.4));
        let c = &get("nodetune_gpu_clock_hertz").samples[2];
        assert_eq!((label(c, "clock"), c.value), ("memory", 2.619e9));
        assert_eq!(get("nodetune_gpu_throttle_reasons").samples[0].value, 68.0);
        let active: Vec<&str> = get("nodetune_gpu_throttle_active")
            .samples
            .iter()
            .filter(|s| s.value == 1.0)
            .map(|s| label(s, "reason"))
            .collect();
        assert_eq!(active, vec!["sw_power_cap", "hw_thermal_slowdown"]);
        assert_eq!(
            get("nodetune_gpu_throttle_active").samples.len(),
            REASONS.len()
        );
    }

    #[test]
    fn a_lost_gpu_is_reported_and_the_others_still_are() {
        let lost = Reading {
            index: 1,
            lost: true,
            ..Reading::default()
        };
        let c = Gpu {
            source: Box::new(Fake(vec![h100(), lost])),
        };
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let get = |n: &str| out.iter().find(|f| f.name == n).unwrap();
        let l: Vec<(&str, f64)> = get("nodetune_gpu_lost")
            .samples
            .iter()
            .map(|s| (label(s, "gpu"), s.value))
            .collect();
        assert_eq!(l, vec![("0", 0.0), ("1", 1.0)]);
        assert_eq!(get("nodetune_gpu_info").samples.len(), 1);
        assert_eq!(get("nodetune_gpu_temperature_celsius").samples.len(), 1);
    }

    #[test]
    fn no_library_or_no_gpu_fails_the_scrape() {
        let none = Gpu {
            source: Box::new(Unavailable("NVML not available".into())),
        };
        assert!(none.collect(&mut Vec::new()).is_err());
        let empty = Gpu {
            source: Box::new(Fake(Vec::new())),
        };
        let mut out = Vec::new();
        assert!(empty.collect(&mut out).is_err());
        assert!(out.is_empty());
        // Without the feature (or without libnvidia-ml.so.1 here) build still succeeds.
        let c = build(&Options::from_flags(Vec::new()).unwrap()).unwrap();
        if cfg!(not(feature = "gpu")) {
            let e = c.collect(&mut Vec::new()).unwrap_err();
            assert!(e.to_string().contains("without"), "{e}");
        }
    }

    /// On a GPU machine: `cargo test -p nodetune --features gpu --lib -- --ignored
    /// --nocapture nvml_live`. Prints every series and checks temperature and power against
    /// `nvidia-smi --query-gpu=temperature.gpu,power.draw,utilization.gpu --format=csv`.
    #[test]
    #[ignore = "needs an NVIDIA GPU and its driver: run by hand on a GPU machine"]
    fn nvml_live() {
        let c = build(&Options::from_flags(Vec::new()).unwrap()).unwrap();
        let mut out = Vec::new();
        c.collect(&mut out).expect("NVML readings");
        for f in &out {
            for s in &f.samples {
                println!("{} {:?} {}", f.name, s.labels, s.value);
            }
        }
        let smi = std::process::Command::new("nvidia-smi")
            .args([
                "--query-gpu=index,temperature.gpu,power.draw,utilization.gpu",
                "--format=csv,noheader,nounits",
            ])
            .output()
            .expect("run nvidia-smi");
        let text = String::from_utf8_lossy(&smi.stdout);
        println!("nvidia-smi: {text}");
        let value = |fam: &str, gpu: &str| {
            out.iter()
                .find(|f| f.name == fam)
                .and_then(|f| f.samples.iter().find(|s| label(s, "gpu") == gpu))
                .map(|s| s.value)
        };
        for line in text.lines() {
            let v: Vec<&str> = line.split(',').map(str::trim).collect();
            let (gpu, temp, power) = (v[0], v[1].parse::<f64>().ok(), v[2].parse::<f64>().ok());
            if let (Some(want), Some(got)) = (temp, value("nodetune_gpu_temperature_celsius", gpu))
            {
                assert!((want - got).abs() <= 3.0, "gpu {gpu} temp {got} vs {want}");
            }
            if let (Some(want), Some(got)) = (power, value("nodetune_gpu_power_watts", gpu)) {
                assert!(
                    (want - got).abs() <= (want * 0.2).max(20.0),
                    "gpu {gpu} power {got} vs {want}"
                );
            }
        }
    }
}
