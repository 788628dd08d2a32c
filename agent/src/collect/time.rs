//! time collector: system time, time-zone offset and clocksources.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::attr::{Attr, Dir, Listing};
use super::{Collector, Family, MetricType, Options};

struct Time {
    clocksource: PathBuf,
    clocks: Mutex<Clocks>,
}

/// The clocksource devices as last listed: each one's `available_clocksource` and
/// `current_clocksource`, held open (None: not there), while the directory's listing is the
/// same.
struct Clocks {
    dir: Dir,
    seen: Option<Listing>,
    devices: Vec<(Option<Attr>, Option<Attr>)>,
}

/// Like procfs's ClockSources: `clocksource[0-9]*` in glob (byte) order; a device's position
/// in that list is its `device` label, not the number in its name.
fn devices(dir: &Path) -> Vec<(Option<Attr>, Option<Attr>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.strip_prefix("clocksource")
                        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|n| {
            let d = dir.join(n);
            (
                Attr::open(&d.join("available_clocksource")).ok(),
                Attr::open(&d.join("current_clocksource")).ok(),
            )
        })
        .collect()
}

/// The local time zone's abbreviation and UTC offset in seconds.
fn zone(now: i64) -> (String, f64) {
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok || tm.tm_zone.is_null() {
        return ("UTC".into(), 0.0);
    }
    // SAFETY: tm_zone points to a NUL-terminated static string owned by libc.
    let name = unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
        .to_string_lossy()
        .into_owned();
    (name, tm.tm_gmtoff as f64)
}

impl Collector for Time {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
        let t = Family::single(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            MetricType::Gauge,
            now,
        );
        let (name, offset) = zone(now as i64);
        let mut z = Family::new(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            MetricType::Gauge,
        );
        z.push(&[("time_zone", &name)], offset);
        out.extend([t, z]);
        let mut avail = Family::new(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        let mut cur = Family::new(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        let clocks = &mut *clocks;
        let listing = clocks.dir.listing().ok();
        if listing.is_none() || clocks.seen != listing {
            // Drop what is held before opening anew, so the budget counts each file once.
            clocks.devices.clear();
            clocks.devices = devices(&self.clocksource);
            clocks.seen = listing;
        }
        let mut buf = [0u8; 4096];
        for (i, (available, current)) in clocks.devices.iter().enumerate() {
            let dev = i.to_string();
            if let Some(Ok(list)) = available.as_ref().map(|a| a.text(&mut buf)) {
                for c in list.split_whitespace() {
                    avail.push(&[("clocksource", c), ("device", &dev)], 1.0);
                }
            }
            if let Some(Ok(c)) = current.as_ref().map(|a| a.text(&mut buf)) {
                cur.push(&[("clocksource", &c), ("device", &dev)], 1.0);
            }
        }
        out.extend([avail, cur]);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(Time::new(
        opts.sysfs.join("devices/system/clocksource"),
    )))
}

impl Time {
    fn new(clocksource: PathBuf) -> Time {
        Time {
            clocks: Mutex::new(Clocks {
                dir: Dir::new(clocksource.clone()),
                seen: None,
                devices: Vec::new(),
            }),
            clocksource,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocksources_numbered_in_glob_order() {
        let d = tempfile::tempdir().unwrap();
        for (n, avail, cur) in [
            ("clocksource0", "tsc hpet acpi_pm\n", "tsc\n"),
            ("clocksource10", "kvm-clock\n", "kvm-clock\n"),
            ("clocksourcex", "bogus\n", "bogus\n"),
        ] {
            let dir = d.path().join(n);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("available_clocksource"), avail).unwrap();
            std::fs::write(dir.join("current_clocksource"), cur).unwrap();
        }
        let t = Time::new(d.path().to_path_buf());
        let mut out = Vec::new();
        t.collect(&mut out).unwrap();
        let cur = out
            .iter()
            .find(|f| f.name == "node_time_clocksource_current_info")
            .unwrap();
        let labels: Vec<Vec<(String, String)>> = cur
            .samples
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect()
            })
            .collect();
        let l = |c: &str, d: &str| {
            vec![
                ("clocksource".to_string(), c.to_string()),
                ("device".to_string(), d.to_string()),
            ]
        };
        assert_eq!(labels, vec![l("tsc", "0"), l("kvm-clock", "1")]);
        let avail = out
            .iter()
            .find(|f| f.name == "node_time_clocksource_available_info")
            .unwrap();
        assert_eq!(avail.samples.len(), 4);
        let zone = out
            .iter()
            .find(|f| f.name == "node_time_zone_offset_seconds")
            .unwrap();
        assert_eq!(zone.samples[0].labels[0].0, "time_zone");
        // The current clocksource changes (the file is read again), and a device appears
        // (the directory is listed again).
        std::fs::write(d.path().join("clocksource0/current_clocksource"), "hpet\n").unwrap();
        let dir = d.path().join("clocksource2");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("available_clocksource"), "acpi_pm\n").unwrap();
        std::fs::write(dir.join("current_clocksource"), "acpi_pm\n").unwrap();
        let mut out = Vec::new();
        t.collect(&mut out).unwrap();
        let cur: Vec<(String, String)> = out
            .iter()
            .find(|f| f.name == "node_time_clocksource_current_info")
            .unwrap()
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.labels[1].1.clone()))
            .collect();
        // Glob order: clocksource0, clocksource10, clocksource2.
        assert_eq!(
            cur,
            [("hpet", "0"), ("kvm-clock", "1"), ("acpi_pm", "2")]
                .map(|(c, d)| (c.to_string(), d.to_string()))
        );
    }
}
