//! ethtool collector: driver statistics (`ethtool -S`) through the SIOCETHTOOL ioctl, with
//! node_exporter's names (`node_ethtool_<stat>`, rx → received, tx → transmitted) and
//! node_ethtool_info. Driver info and statistic names never change for a device, so they are
//! cached and refreshed only when the number of statistics changes. EOPNOTSUPP (loopback,
//! virtual devices without stats) and devices that vanish between listing and ioctl are skipped
//! quietly.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use regex::Regex;

use super::{Collector, Family, MetricType, Options};

const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

/// struct ethtool_drvinfo.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// What a device reports that does not change.
#[derive(Clone)]
struct Static {
    driver: String,
    version: String,
    firmware: String,
    bus_info: String,
    erom: String,
    names: Vec<String>,
}

/// The ioctl side, behind a trait so naming and filters are tested without a NIC.
trait Source: Send + Sync {
    fn devices(&self) -> Vec<String>;
    fn info(&self, dev: &str) -> std::io::Result<Static>;
    fn stats(&self, dev: &str, n: usize) -> std::io::Result<Vec<u64>>;
}

struct Ioctl {
    sysfs: PathBuf,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Ioctl {
    fn call(&self, dev: &str, data: *mut libc::c_void) -> std::io::Result<()> {
        // SAFETY: socket() has no memory preconditions; the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh, valid descriptor that nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        let name = dev.as_bytes();
        if name.len() >= ifr.ifr_name.len() {
            return Err(std::io::Error::from_raw_os_error(libc::ENODEV));
        }
        for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = data as *mut libc::c_char;
        // SAFETY: ifr and the buffer `data` points to are valid and sized for the command.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifr) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Source for Ioctl {
    fn devices(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.sysfs.join("class/net"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    fn info(&self, dev: &str) -> std::io::Result<Static> {
        // SAFETY: DrvInfo is plain data; zeroed is valid.
        let mut di: DrvInfo = unsafe { std::mem::zeroed() };
        di.cmd = ETHTOOL_GDRVINFO;
        self.call(dev, &mut di as *mut DrvInfo as *mut libc::c_void)?;
        let n = di.n_stats as usize;
        let mut names = Vec::new();
        if n > 0 {
            // struct ethtool_gstrings { cmd, string_set, len, data[] }, u64-aligned buffer.
            let bytes = 12 + n * ETH_GSTRING_LEN;
            let mut buf = vec![0u64; bytes.div_ceil(8)];
            let head = buf.as_mut_ptr() as *mut u32;
            // SAFETY: the buffer holds at least 3 u32s.
            unsafe {
                *head = ETHTOOL_GSTRINGS;
                *head.add(1) = ETH_SS_STATS;
                *head.add(2) = n as u32;
            }
            self.call(dev, buf.as_mut_ptr() as *mut libc::c_void)?;
            // SAFETY: the buffer is `bytes` long and initialised.
            let raw = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, bytes) };
            names = raw[12..].chunks(ETH_GSTRING_LEN).map(cstr).collect();
        }
        Ok(Static {
            driver: cstr(&di.driver),
            version: cstr(&di.version),
            firmware: cstr(&di.fw_version),
            bus_info: cstr(&di.bus_info),
            erom: cstr(&di.erom_version),
            names,
        })
    }

    fn stats(&self, dev: &str, n: usize) -> std::io::Result<Vec<u64>> {
        // struct ethtool_stats { cmd, n_stats, data[] (u64) }.
        let mut buf = vec![0u64; 1 + n];
        let head = buf.as_mut_ptr() as *mut u32;
        // SAFETY: the buffer holds at least 2 u32s.
        unsafe {
            *head = ETHTOOL_GSTATS;
            *head.add(1) = n as u32;
        }
        self.call(dev, buf.as_mut_ptr() as *mut libc::c_void)?;
        Ok(buf[1..].to_vec())
    }
}

/// Replaces `(^|_)TOK(_|$)` like Go's regexp.ReplaceAllString: matches are found left to
/// right without overlapping, so in `tx_tx_timeouts` only the first `tx` is replaced (the
/// underscore between them belongs to the first match).
fn replace_token(s: &str, tok: &str, rep: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let prefix = if i == 0 && s[i..].starts_with(tok) {
            Some(0)
        } else if b[i] == b'_' && s[i + 1..].starts_with(tok) {
            Some(1)
        } else {
            None
        };
        if let Some(p) = prefix {
            let after = i + p + tok.len();
            if after == b.len() || b[after] == b'_' {
                let end = if after < b.len() { after + 1 } else { after };
                out.push_str(&s[i..i + p]);
                out.push_str(rep);
                out.push_str(&s[after..end]);
                i = end;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// node_exporter's metric name for a statistic: sanitised, lower-cased, leading underscores
/// trimmed, then rx → received and tx → transmitted.
pub fn metric_name(stat: &str) -> String {
    let sanitized: String = stat
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let lower = sanitized.to_lowercase();
    let name = replace_token(lower.trim_start_matches('_'), "rx", "received");
    format!("node_ethtool_{}", replace_token(&name, "tx", "transmitted"))
}

struct Ethtool {
    source: Box<dyn Source>,
    include: Option<Regex>,
    exclude: Option<Regex>,
    metrics: Regex,
    cache: Mutex<HashMap<String, Static>>,
}

impl Collector for Ethtool {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut info = Family::new(
            "node_ethtool_info",
            "A metric with a constant '1' value labeled by bus_info, device, driver, expansion_rom_version, firmware_version, version.",
            MetricType::Gauge,
        );
        let mut fams: std::collections::BTreeMap<String, Family> = Default::default();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for dev in self.source.devices() {
            if self.include.as_ref().is_some_and(|r| !r.is_match(&dev))
                || self.exclude.as_ref().is_some_and(|r| r.is_match(&dev))
            {
                continue;
            }
            let st = match cache.get(&dev) {
                Some(s) => s.clone(),
                None => match self.source.info(&dev) {
                    Ok(s) => {
                        cache.insert(dev.clone(), s.clone());
                        s
                    }
                    // No driver info (EOPNOTSUPP) or the device is gone: nothing to report.
                    Err(_) => continue,
                },
            };
            info.push(
                &[
                    ("bus_info", &st.bus_info),
                    ("device", &dev),
                    ("driver", &st.driver),
                    ("expansion_rom_version", &st.erom),
                    ("firmware_version", &st.firmware),
                    ("version", &st.version),
                ],
                1.0,
            );
            if st.names.is_empty() {
                continue;
            }
            let values = match self.source.stats(&dev, st.names.len()) {
                Ok(v) => v,
                Err(_) => {
                    cache.remove(&dev);
                    continue;
                }
            };
            let mut seen = std::collections::HashSet::new();
            for (stat, v) in st.names.iter().zip(values) {
                // metrics-include matches the statistic as the driver names it.
                if !self.metrics.is_match(stat) {
                    continue;
                }
                let name = metric_name(stat);
                if !seen.insert(name.clone()) {
                    continue;
                }
                fams.entry(name.clone())
                    .or_insert_with(|| {
                        Family::new(
                            name,
                            format!("Network interface {stat}"),
                            MetricType::Untyped,
                        )
                    })
                    .push(&[("device", &dev)], v as f64);
            }
        }
        // Forget devices that disappeared.
        let present = self.source.devices();
        cache.retain(|d, _| present.contains(d));
        out.push(info);
        out.extend(fams.into_values());
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let re = |r: &Option<String>, flag: &str| -> anyhow::Result<Option<Regex>> {
        r.as_deref()
            .map(Regex::new)
            .transpose()
            .with_context(|| format!("--collector.ethtool.{flag}"))
    };
    Ok(Box::new(Ethtool {
        source: Box::new(Ioctl {
            sysfs: opts.sysfs.clone(),
        }),
        include: re(&opts.ethtool_device_include, "device-include")?,
        exclude: re(&opts.ethtool_device_exclude, "device-exclude")?,
        metrics: Regex::new(&opts.ethtool_metrics_include)
            .context("--collector.ethtool.metrics-include")?,
        cache: Mutex::new(HashMap::new()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Source for Fake {
        fn devices(&self) -> Vec<String> {
            vec!["eth0".into(), "lo".into(), "gone".into()]
        }
        fn info(&self, dev: &str) -> std::io::Result<Static> {
            match dev {
                "eth0" => Ok(Static {
                    driver: "virtio_net".into(),
                    version: "1.0.0".into(),
                    firmware: String::new(),
                    bus_info: "0000:00:03.0".into(),
                    erom: String::new(),
                    names: vec![
                        "rx_queue_0_bytes".into(),
                        "tx-timeouts".into(),
                        "port.VF_admin".into(),
                        "rx0_kicks".into(),
                    ],
                }),
                "lo" => Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
                _ => Err(std::io::Error::from_raw_os_error(libc::ENODEV)),
            }
        }
        fn stats(&self, _dev: &str, n: usize) -> std::io::Result<Vec<u64>> {
            Ok((1..=n as u64).collect())
        }
    }

    #[test]
    fn names_and_filters() {
        assert_eq!(
            metric_name("rx_queue_0_bytes"),
            "node_ethtool_received_queue_0_bytes"
        );
        assert_eq!(
            metric_name("tx_tx_timeouts"),
            "node_ethtool_transmitted_tx_timeouts"
        );
        assert_eq!(metric_name("rx0_kicks"), "node_ethtool_rx0_kicks");
        assert_eq!(
            metric_name("tx0_tx_timeouts"),
            "node_ethtool_tx0_transmitted_timeouts"
        );
        assert_eq!(metric_name("rx"), "node_ethtool_received");
        assert_eq!(
            metric_name("port.VF_admin_queue_requests"),
            "node_ethtool_port_vf_admin_queue_requests"
        );
        let c = Ethtool {
            source: Box::new(Fake),
            include: None,
            exclude: None,
            metrics: Regex::new("^(rx|tx).*").unwrap(),
            cache: Mutex::new(HashMap::new()),
        };
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let names: Vec<(&str, f64)> = out
            .iter()
            .skip(1)
            .map(|f| (f.name.as_str(), f.samples[0].value))
            .collect();
        assert_eq!(
            names,
            vec![
                ("node_ethtool_received_queue_0_bytes", 1.0),
                ("node_ethtool_rx0_kicks", 4.0),
                ("node_ethtool_transmitted_timeouts", 2.0)
            ]
        );
        assert_eq!(
            out[0].samples.len(),
            1,
            "lo (EOPNOTSUPP) and a vanished device are skipped"
        );
        assert_eq!(c.cache.lock().unwrap().len(), 1);
    }
}
