//! Collectors: one file per node_exporter collector, each reading its files under the
//! configured roots (`--path.procfs`, `--path.sysfs`, `--path.rootfs`) and producing
//! [`Family`] samples. Data flows one way: sources → samples → encoder / alert rules.

pub mod attr;
pub mod options;
pub mod pool;
pub mod sample;

mod arp;
mod bcache;
mod bonding;
mod btrfs;
pub mod conntrack;
pub mod cpu;
mod cpufreq;
mod diskstats;
mod dmi;
mod edac;
mod entropy;
mod ethtool;
mod fibrechannel;
pub mod filefd;
mod filesystem;
pub mod gpu;
pub mod hwmon;
mod infiniband;
mod ipvs;
pub mod listen_queue;
mod loadavg;
mod mdadm;
mod meminfo;
mod netclass;
pub mod netdev;
pub mod netlink;
pub mod netstat;
mod nfs;
mod nfsd;
mod nvme;
mod os;
mod powersupplyclass;
mod pressure;
mod rapl;
mod schedstat;
mod selinux;
pub mod sockstat;
pub mod softnet;
mod stat;
mod tapestats;
mod textfile;
mod thermal_zone;
mod time;
mod timex;
mod udp_queues;
mod uname;
pub(crate) mod util;
mod vmstat;
mod watchdog;
mod xfs;
mod zfs;

pub use options::Options;
pub use sample::{labels, Family, Labels, MetricType, Sample, Samples, Text};

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
        name: "arp",
        default_enabled: true,
        build: arp::build,
    },
    Entry {
        name: "bcache",
        default_enabled: true,
        build: bcache::build,
    },
    Entry {
        name: "bonding",
        default_enabled: true,
        build: bonding::build,
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
        name: "diskstats",
        default_enabled: true,
        build: diskstats::build,
    },
    Entry {
        name: "dmi",
        default_enabled: true,
        build: dmi::build,
    },
    Entry {
        name: "edac",
        default_enabled: true,
        build: edac::build,
    },
    Entry {
        name: "entropy",
        default_enabled: true,
        build: entropy::build,
    },
    Entry {
        name: "ethtool",
        default_enabled: false,
        build: ethtool::build,
    },
    Entry {
        name: "fibrechannel",
        default_enabled: true,
        build: fibrechannel::build,
    },
    Entry {
        name: "filefd",
        default_enabled: true,
        build: filefd::build,
    },
    Entry {
        name: "filesystem",
        default_enabled: true,
        build: filesystem::build,
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
        name: "infiniband",
        default_enabled: true,
        build: infiniband::build,
    },
    Entry {
        name: "ipvs",
        default_enabled: true,
        build: ipvs::build,
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
        name: "mdadm",
        default_enabled: true,
        build: mdadm::build,
    },
    Entry {
        name: "meminfo",
        default_enabled: true,
        build: meminfo::build,
    },
    Entry {
        name: "netclass",
        default_enabled: true,
        build: netclass::build,
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
        name: "nfs",
        default_enabled: true,
        build: nfs::build,
    },
    Entry {
        name: "nfsd",
        default_enabled: true,
        build: nfsd::build,
    },
    Entry {
        name: "nvme",
        default_enabled: true,
        build: nvme::build,
    },
    Entry {
        name: "os",
        default_enabled: true,
        build: os::build,
    },
    Entry {
        name: "powersupplyclass",
        default_enabled: true,
        build: powersupplyclass::build,
    },
    Entry {
        name: "pressure",
        default_enabled: true,
        build: pressure::build,
    },
    Entry {
        name: "rapl",
        default_enabled: true,
        build: rapl::build,
    },
    Entry {
        name: "schedstat",
        default_enabled: true,
        build: schedstat::build,
    },
    Entry {
        name: "selinux",
        default_enabled: true,
        build: selinux::build,
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
        name: "tapestats",
        default_enabled: true,
        build: tapestats::build,
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
        name: "timex",
        default_enabled: true,
        build: timex::build,
    },
    Entry {
        name: "udp_queues",
        default_enabled: true,
        build: udp_queues::build,
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
        name: "watchdog",
        default_enabled: true,
        build: watchdog::build,
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
