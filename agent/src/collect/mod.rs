//! Collectors: one file per node_exporter collector, each reading its files under the
//! configured roots (`--path.procfs`, `--path.sysfs`, `--path.rootfs`) and producing
//! [`Family`] samples. Data flows one way: sources → samples → encoder / alert rules.

pub mod options;
pub mod sample;

mod bcache;
mod btrfs;
mod conntrack;
mod cpu;
mod cpufreq;
mod ethtool;
mod filefd;
mod gpu;
mod hwmon;
mod listen_queue;
mod loadavg;
mod meminfo;
mod netdev;
mod netstat;
mod pressure;
mod sockstat;
mod softnet;
mod stat;
mod textfile;
mod thermal_zone;
mod time;
mod uname;
mod util;
mod vmstat;
mod xfs;
mod zfs;

pub use options::Options;
pub use sample::{Family, MetricType, Sample, Text};

/// A collector gathers one group of families per scrape.
pub trait Collector: Send + Sync {
    /// Appends this scrape's families to `out`. An error marks the collector failed for
    /// this scrape (`node_scrape_collector_success 0`); what was appended is discarded.
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()>;
}

/// A collector known to nodetune: its node_exporter name, whether node_exporter enables it
/// by default, and how to build it from the options.
pub struct Entry {
    pub name: &'static str,
    pub default_enabled: bool,
    pub build: fn(&Options) -> anyhow::Result<Box<dyn Collector>>,
}

/// Every collector, sorted by name.
pub const ALL: &[Entry] = &[
    Entry {
        name: "bcache",
        default_enabled: true,
        build: bcache::build,
    },
    Entry {
        name: "btrfs",
        default_enabled: true,
        build: btrfs::build,
    },
    Entry {
        name: "conntrack",
        default_enabled: true,
        build: conntrack::build,
    },
    Entry {
        name: "cpu",
        default_enabled: true,
        build: cpu::build,
    },
    Entry {
        name: "cpufreq",
        default_enabled: true,
        build: cpufreq::build,
    },
    Entry {
        name: "ethtool",
        default_enabled: false,
        build: ethtool::build,
    },
    Entry {
        name: "filefd",
        default_enabled: true,
        build: filefd::build,
    },
    Entry {
        name: "gpu",
        default_enabled: false,
        build: gpu::build,
    },
    Entry {
        name: "hwmon",
        default_enabled: true,
        build: hwmon::build,
    },
    Entry {
        name: "listen_queue",
        default_enabled: false,
        build: listen_queue::build,
    },
    Entry {
        name: "loadavg",
        default_enabled: true,
        build: loadavg::build,
    },
    Entry {
        name: "meminfo",
        default_enabled: true,
        build: meminfo::build,
    },
    Entry {
        name: "netdev",
        default_enabled: true,
        build: netdev::build,
    },
    Entry {
        name: "netstat",
        default_enabled: true,
        build: netstat::build,
    },
    Entry {
        name: "pressure",
        default_enabled: true,
        build: pressure::build,
    },
    Entry {
        name: "sockstat",
        default_enabled: true,
        build: sockstat::build,
    },
    Entry {
        name: "softnet",
        default_enabled: true,
        build: softnet::build,
    },
    Entry {
        name: "stat",
        default_enabled: true,
        build: stat::build,
    },
    Entry {
        name: "textfile",
        default_enabled: true,
        build: textfile::build,
    },
    Entry {
        name: "thermal_zone",
        default_enabled: true,
        build: thermal_zone::build,
    },
    Entry {
        name: "time",
        default_enabled: true,
        build: time::build,
    },
    Entry {
        name: "uname",
        default_enabled: true,
        build: uname::build,
    },
    Entry {
        name: "vmstat",
        default_enabled: true,
        build: vmstat::build,
    },
    Entry {
        name: "xfs",
        default_enabled: true,
        build: xfs::build,
    },
    Entry {
        name: "zfs",
        default_enabled: true,
        build: zfs::build,
    },
];
