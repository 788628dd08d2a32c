//! arp collector, as node_exporter 1.12: `node_arp_entries{device}`, the IPv4 neighbour
//! entries per device. By default from an RTM_GETNEIGH netlink dump of the reader's network
//! namespace (AF_INET, entries in state NUD_NOARP left out as /proc/net/arp leaves them out;
//! entries of a device that vanished before its name was looked up are skipped, as
//! node_exporter's rtnl client skips them), or from `<procfs>/net/arp` with
//! `--no-collector.arp.netlink` (every line counts; a line procfs cannot parse fails the
//! collector). `--collector.arp.device-include/-exclude` filter the devices.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::ArgAction;

use super::{netlink, util, Collector, Family, MetricType, Options};

#[derive(Debug, Clone, clap::Args)]
#[group(id = "arp-flags")]
pub struct Flags {
    /// Regexp of arp devices to include (mutually exclusive to device-exclude).
    #[arg(
        id = "collector.arp.device-include",
        long = "collector.arp.device-include"
    )]
    pub device_include: Option<String>,
    /// Regexp of arp devices to exclude (mutually exclusive to device-include).
    #[arg(
        id = "collector.arp.device-exclude",
        long = "collector.arp.device-exclude"
    )]
    pub device_exclude: Option<String>,
    /// Use netlink to gather stats instead of /proc/net/arp.
    #[arg(id = "collector.arp.netlink", long = "collector.arp.netlink", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub netlink: bool,
    /// Read /proc/net/arp instead of netlink.
    #[arg(
        id = "no-collector.arp.netlink",
        long = "no-collector.arp.netlink",
        hide = true
    )]
    pub no_netlink: bool,
}

/// Entries per device.
pub type Counts = BTreeMap<String, u32>;

/// Parses /proc/net/arp as procfs does: the 9-column header and empty lines are skipped, a
/// 6-column line must have a valid MAC address and flags (a number of 8 bits), any other
/// width is an error.
pub fn parse_arp(text: &str) -> anyhow::Result<Counts> {
    let mut counts = Counts::new();
    for line in text.split('\n') {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.len() {
            0 | 9 => continue,
            6 => {
                anyhow::ensure!(
                    util::go_valid_mac(f[3]),
                    "failed to parse ARP entry {line:?}: bad hardware address"
                );
                anyhow::ensure!(
                    util::go_parse_uint(f[2], 0, 8).is_some(),
                    "failed to parse ARP entry {line:?}: bad flags"
                );
                *counts.entry(f[5].to_string()).or_default() += 1;
            }
            n => anyhow::bail!("{n} columns found, but expected 6: {line:?}"),
        }
    }
    Ok(counts)
}

/// Counts IPv4 neighbours per device name from a neighbour dump; `name` looks an index up.
pub fn count_neighbours(
    neigh: &[netlink::Neigh],
    mut name: impl FnMut(u32) -> Option<String>,
) -> Counts {
    let mut names: BTreeMap<u32, Option<String>> = BTreeMap::new();
    let mut counts = Counts::new();
    for n in neigh {
        if i32::from(n.family) != libc::AF_INET || n.state & netlink::NUD_NOARP != 0 {
            continue;
        }
        let dev = names.entry(n.index).or_insert_with(|| name(n.index));
        if let Some(dev) = dev {
            *counts.entry(dev.clone()).or_default() += 1;
        }
    }
    counts
}

/// The name of interface `index` now (None when it no longer exists).
fn index_to_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into buf.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

fn render(counts: &Counts, filter: &util::DeviceFilter, out: &mut Vec<Family>) {
    let mut f = Family::new(
        "node_arp_entries",
        "ARP entries by device",
        MetricType::Gauge,
    );
    for (dev, n) in counts {
        if !filter.ignored(dev) {
            f.push(&[("device", dev)], f64::from(*n));
        }
    }
    out.push(f);
}

struct Arp {
    proc_arp: PathBuf,
    netlink: bool,
    filter: util::DeviceFilter,
}

impl Collector for Arp {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let counts = if self.netlink {
            let neigh = netlink::neighbours(libc::AF_INET as u8)
                .context("could not get ARP entries: netlink neighbour dump")?;
            count_neighbours(&neigh, index_to_name)
        } else {
            parse_arp(&util::read(&self.proc_arp)?).with_context(|| {
                format!("could not get ARP entries: {}", self.proc_arp.display())
            })?
        };
        render(&counts, &self.filter, out);
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let f = &opts.arp;
    Ok(Box::new(Arp {
        proc_arp: opts.procfs.join("net/arp"),
        netlink: f.netlink && !f.no_netlink,
        filter: util::DeviceFilter::new(&f.device_exclude, &f.device_include, "arp")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
192.168.224.1    0x1         0x2         00:50:56:c0:00:08     *        ens33
192.168.224.2    0x1         0x2         00:50:56:e5:d1:c3     *        ens33
10.0.0.9         0x1         0x0         00:00:00:00:00:00     *        eth 0
10.0.0.1         0x1         0x2         de:ad:be:ef:00:01     *        tun.0
";

    #[test]
    fn proc_net_arp() {
        // "eth 0" makes a 7-column line: procfs rejects the file.
        assert!(parse_arp(ARP).is_err());
        let ok = ARP.replace("eth 0", "eth0");
        let c = parse_arp(&ok).unwrap();
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            [
                ("eth0".to_string(), 1),
                ("ens33".to_string(), 2),
                ("tun.0".to_string(), 1)
            ]
            .into_iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert_eq!(parse_arp("").unwrap().len(), 0);
        for bad in [
            "1.2.3.4 0x1 0x2 00:50:56:c0:00 * eth0",
            "1.2.3.4 0x1 0x200 00:50:56:c0:00:08 * eth0",
            "1.2.3.4 0x1 2 00:50:56:c0:00:08 *",
        ] {
            assert!(parse_arp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn neighbours_by_device() {
        let n = |index, state| netlink::Neigh {
            family: libc::AF_INET as u8,
            index,
            state,
        };
        let dump = [
            n(2, 0x02),
            n(2, 0x04),
            n(2, netlink::NUD_NOARP),
            n(3, 0x80),
            // A device that vanished, and an IPv6 neighbour.
            n(9, 0x02),
            netlink::Neigh {
                family: libc::AF_INET6 as u8,
                index: 2,
                state: 2,
            },
        ];
        let mut lookups = 0;
        let c = count_neighbours(&dump, |i| {
            lookups += 1;
            match i {
                2 => Some("eth0".into()),
                3 => Some("br-\"x\"".into()),
                _ => None,
            }
        });
        assert_eq!(lookups, 3);
        assert_eq!(c["eth0"], 2);
        assert_eq!(c["br-\"x\""], 1);
        assert_eq!(c.len(), 2);
        let mut out = Vec::new();
        let f = util::DeviceFilter::new(&Some("^br".into()), &None, "arp").unwrap();
        render(&c, &f, &mut out);
        assert_eq!(out[0].samples.len(), 1);
        assert_eq!(out[0].samples[0].value, 2.0);
    }

    #[test]
    fn flags_and_the_live_namespace() {
        let o = Options::from_flags(["--no-collector.arp.netlink".to_string()]).unwrap();
        assert!(o.arp.no_netlink);
        let o = Options::from_flags(["--collector.arp.netlink=false".to_string()]).unwrap();
        assert!(!o.arp.netlink);
        let o = Options::from_flags(Vec::<String>::new()).unwrap();
        let mut out = Vec::new();
        build(&o).unwrap().collect(&mut out).unwrap();
        assert_eq!(index_to_name(1).as_deref(), Some("lo"));
    }
}
