//! netdev collector: node_network_{receive,transmit}_<field>_total per device from
//! /proc/net/dev (the reader's network namespace), plus receive_nohandler from sysfs.

use std::path::PathBuf;

use anyhow::Context;
use regex::Regex;

use super::{util, Collector, Family, MetricType, Options};

const RECEIVE: &[&str] = &[
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "frame",
    "compressed",
    "multicast",
];
const TRANSMIT: &[&str] = &[
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "colls",
    "carrier",
    "compressed",
];

struct Netdev {
    path: PathBuf,
    sysfs: PathBuf,
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Collector for Netdev {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let text = util::read(&self.path)?;
        let mut fams: std::collections::BTreeMap<String, Family> = Default::default();
        let mut push = |dir: &str, field: &str, dev: &str, v: f64| {
            let name = format!("node_network_{dir}_{field}_total");
            fams.entry(name.clone())
                .or_insert_with(|| {
                    Family::new(
                        name,
                        format!("Network device statistic {dir}_{field}."),
                        MetricType::Counter,
                    )
                })
                .push(&[("device", dev)], v);
        };
        for line in text.lines().skip(2) {
            let Some((dev, rest)) = line.split_once(':') else {
                continue;
            };
            let dev = dev.trim();
            if self.include.as_ref().is_some_and(|r| !r.is_match(dev))
                || self.exclude.as_ref().is_some_and(|r| r.is_match(dev))
            {
                continue;
            }
            let v: Vec<f64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() < 16 {
                continue;
            }
            for (i, f) in RECEIVE.iter().enumerate() {
                push("receive", f, dev, v[i]);
            }
            for (i, f) in TRANSMIT.iter().enumerate() {
                push("transmit", f, dev, v[8 + i]);
            }
            if let Some(n) = util::read_num(
                &self
                    .sysfs
                    .join("class/net")
                    .join(dev)
                    .join("statistics/rx_nohandler"),
            ) {
                push("receive", "nohandler", dev, n);
            }
        }
        out.extend(fams.into_values());
        Ok(())
    }
}

pub fn build(opts: &Options) -> anyhow::Result<Box<dyn Collector>> {
    let re = |r: &Option<String>, flag: &str| -> anyhow::Result<Option<Regex>> {
        r.as_deref()
            .map(Regex::new)
            .transpose()
            .with_context(|| format!("--collector.netdev.{flag}"))
    };
    Ok(Box::new(Netdev {
        path: opts.procfs.join("net/dev"),
        sysfs: opts.sysfs.clone(),
        include: re(&opts.netdev_device_include, "device-include")?,
        exclude: re(&opts.netdev_device_exclude, "device-exclude")?,
    }))
}
