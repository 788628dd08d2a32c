//! Collector settings, with node_exporter's flag names (`nodetune run` and `nodetune metrics`),
//! so a host moves from node_exporter by changing the binary in its unit file.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::ALL;

/// node_exporter 1.12's default `--collector.netstat.fields`.
pub const NETSTAT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// node_exporter's default `--collector.vmstat.fields`.
pub const VMSTAT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

/// Flags shared by every command that collects metrics.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// procfs mountpoint.
    #[arg(long = "path.procfs", default_value = "/proc")]
    pub procfs: PathBuf,
    /// sysfs mountpoint.
    #[arg(long = "path.sysfs", default_value = "/sys")]
    pub sysfs: PathBuf,
    /// rootfs mountpoint.
    #[arg(long = "path.rootfs", default_value = "/")]
    pub rootfs: PathBuf,
    /// udev data path.
    #[arg(long = "path.udev.data", default_value = "/run/udev/data")]
    pub udev_data: PathBuf,
    /// Disable every collector not enabled explicitly with --collector.NAME.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,
    #[command(flatten)]
    pub toggles: Toggles,
    #[command(flatten)]
    pub foreign: Foreign,
    #[command(flatten)]
    pub arp: super::arp::Flags,
    #[command(flatten)]
    pub infiniband: super::infiniband::Flags,
    #[command(flatten)]
    pub ipvs: super::ipvs::Flags,
    #[command(flatten)]
    pub netclass: super::netclass::Flags,
    #[command(flatten)]
    pub diskstats: super::diskstats::Flags,
    #[command(flatten)]
    pub filesystem: super::filesystem::Flags,
    #[command(flatten)]
    pub bcache: super::bcache::Flags,
    /// Export softirq counters per vector (stat collector).
    #[arg(long = "collector.stat.softirq")]
    pub stat_softirq: bool,
    /// Directories to read *.prom text files from (textfile collector); repeatable.
    #[arg(long = "collector.textfile.directory")]
    pub textfile_directories: Vec<PathBuf>,
    /// Longest a collector may take in one scrape; a slower (hung) one reports success 0.
    #[arg(long = "collector.timeout", default_value = "5s", value_parser = crate::base::duration::parse_duration)]
    pub timeout: std::time::Duration,
    /// Regexp of netstat fields to return.
    #[arg(long = "collector.netstat.fields", default_value = NETSTAT_FIELDS)]
    pub netstat_fields: String,
    /// Regexp of /proc/vmstat fields to return.
    #[arg(long = "collector.vmstat.fields", default_value = VMSTAT_FIELDS)]
    pub vmstat_fields: String,
    /// Regexp of hwmon chips to include (mutually exclusive with chip-exclude).
    #[arg(long = "collector.hwmon.chip-include")]
    pub hwmon_chip_include: Option<String>,
    /// Regexp of hwmon chips to exclude.
    #[arg(long = "collector.hwmon.chip-exclude")]
    pub hwmon_chip_exclude: Option<String>,
    /// Regexp of network devices to include (netdev).
    #[arg(long = "collector.netdev.device-include")]
    pub netdev_device_include: Option<String>,
    /// Regexp of network devices to exclude (netdev).
    #[arg(long = "collector.netdev.device-exclude")]
    pub netdev_device_exclude: Option<String>,
    /// Regexp of network devices to include (ethtool).
    #[arg(long = "collector.ethtool.device-include")]
    pub ethtool_device_include: Option<String>,
    /// Regexp of network devices to exclude (ethtool).
    #[arg(long = "collector.ethtool.device-exclude")]
    pub ethtool_device_exclude: Option<String>,
    /// Regexp of ethtool statistics to include.
    #[arg(long = "collector.ethtool.metrics-include", default_value = ".*")]
    pub ethtool_metrics_include: String,
    /// Do not export guest CPU time (cpu collector).
    #[arg(long = "no-collector.cpu.guest")]
    pub no_cpu_guest: bool,
    /// Export node_cpu_info (cpu collector).
    #[arg(long = "collector.cpu.info")]
    pub cpu_info: bool,
    /// Export guest CPU time (cpu collector); `--collector.cpu.guest=false` turns it off.
    #[arg(long = "collector.cpu.guest", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub cpu_guest: bool,
    /// Regexp of /proc/cpuinfo flags for node_cpu_flag_info (implies --collector.cpu.info).
    #[arg(long = "collector.cpu.info.flags-include")]
    pub cpu_info_flags_include: Option<String>,
    /// Regexp of /proc/cpuinfo bugs for node_cpu_bug_info (implies --collector.cpu.info).
    #[arg(long = "collector.cpu.info.bugs-include")]
    pub cpu_info_bugs_include: Option<String>,
    /// Regexp of hwmon "<chip>;<sensor>" to include (mutually exclusive with sensor-exclude).
    #[arg(long = "collector.hwmon.sensor-include")]
    pub hwmon_sensor_include: Option<String>,
    /// Regexp of hwmon "<chip>;<sensor>" to exclude.
    #[arg(long = "collector.hwmon.sensor-exclude")]
    pub hwmon_sensor_exclude: Option<String>,
    /// Use netlink to gather stats instead of /proc/net/dev (netdev);
    /// `--collector.netdev.netlink=false` reads /proc/net/dev under --path.procfs.
    #[arg(long = "collector.netdev.netlink", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub netdev_netlink: bool,
    /// Read /proc/net/dev instead of netlink (netdev).
    #[arg(long = "no-collector.netdev.netlink", hide = true)]
    pub no_netdev_netlink: bool,
    /// Export node_network_address_info for every address (netdev).
    #[arg(long = "collector.netdev.address-info")]
    pub netdev_address_info: bool,
    /// Use (incompatible) metric names that provide more detailed stats on Linux (netdev).
    #[arg(long = "collector.netdev.enable-detailed-metrics")]
    pub netdev_detailed: bool,
    #[command(flatten)]
    pub powersupplyclass: super::powersupplyclass::Flags,
    #[command(flatten)]
    pub rapl: super::rapl::Flags,
    #[command(flatten)]
    pub tapestats: super::tapestats::Flags,
}

/// `--collector.NAME` / `--no-collector.NAME` for every collector, generated from [`ALL`].
#[derive(Debug, Clone, Default)]
pub struct Toggles {
    /// Collectors switched on or off explicitly.
    pub explicit: Vec<(&'static str, bool)>,
}

impl FromArgMatches for Toggles {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut t = Toggles::default();
        t.update_from_arg_matches(m)?;
        Ok(t)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        for e in ALL {
            if m.get_flag(&format!("collector.{}", e.name)) {
                self.explicit.push((e.name, true));
            }
            if m.get_flag(&format!("no-collector.{}", e.name)) {
                self.explicit.push((e.name, false));
            }
        }
        Ok(())
    }
}

impl Args for Toggles {
    fn augment_args(mut cmd: Command) -> Command {
        for e in ALL {
            let default = if e.default_enabled {
                "enabled"
            } else {
                "disabled"
            };
            cmd = cmd
                .arg(
                    Arg::new(format!("collector.{}", e.name))
                        .long(format!("collector.{}", e.name))
                        .action(ArgAction::SetTrue)
                        .help(format!(
                            "Enable the {} collector (default: {default})",
                            e.name
                        )),
                )
                .arg(
                    Arg::new(format!("no-collector.{}", e.name))
                        .long(format!("no-collector.{}", e.name))
                        .action(ArgAction::SetTrue)
                        .hide(true),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// node_exporter 1.12's Linux collectors that nodetune does not implement. Their
/// `--collector.NAME` / `--no-collector.NAME` flags are accepted (hidden) so a node_exporter
/// unit file keeps working; enabling one only logs a warning.
pub const FOREIGN_COLLECTORS: &[&str] = &[
    "bcachefs",
    "buddyinfo",
    "cgroups",
    "cpu_vulnerabilities",
    "drbd",
    "drm",
    "interrupts",
    "kernel_hung",
    "ksmd",
    "lnstat",
    "logind",
    "meminfo_numa",
    "mountstats",
    "network_route",
    "ntp",
    "pcidevice",
    "perf",
    "processes",
    "qdisc",
    "runit",
    "slabinfo",
    "softirqs",
    "supervisord",
    "swap",
    "sysctl",
    "systemd",
    "tcpstat",
    "wifi",
    "xfrm",
    "zoneinfo",
];

/// Value flags of node_exporter that nodetune accepts and ignores (with a warning): those of
/// unimplemented collectors that its own end-to-end test and common unit files pass, and
/// Go-runtime/logging settings that have no meaning here.
const FOREIGN_VALUE_FLAGS: &[&str] = &[
    "runtime.gomaxprocs",
    "log.level",
    "log.format",
    "collector.qdisc.fixtures",
    "collector.sysctl.include",
    "collector.sysctl.include-info",
    "collector.systemd.unit-exclude",
    "collector.systemd.unit-include",
    "collector.wifi.fixtures",
];

/// Boolean node_exporter flags accepted and ignored (also as `--no-…`).
const FOREIGN_BOOL_FLAGS: &[&str] = &[
    "collector.systemd.enable-restarts-metrics",
    "collector.systemd.enable-start-time-metrics",
    "collector.systemd.enable-task-metrics",
];

/// node_exporter flags nodetune accepts without acting on them (see [`FOREIGN_COLLECTORS`]).
#[derive(Debug, Clone, Default)]
pub struct Foreign {
    /// The flags given, as written (`--collector.systemd`, `--log.level=debug`).
    pub given: Vec<String>,
}

impl FromArgMatches for Foreign {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut f = Foreign::default();
        f.update_from_arg_matches(m)?;
        Ok(f)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        for name in FOREIGN_COLLECTORS {
            // Disabling a collector nodetune lacks is already true; only enabling is news.
            let on = format!("collector.{name}");
            if m.get_flag(&on) {
                self.given.push(format!("--{on}"));
            }
        }
        for flag in FOREIGN_BOOL_FLAGS {
            for id in [flag.to_string(), format!("no-{flag}")] {
                if m.get_flag(&id) {
                    self.given.push(format!("--{id}"));
                }
            }
        }
        for flag in FOREIGN_VALUE_FLAGS {
            if let Some(vals) = m.get_many::<String>(flag) {
                for v in vals {
                    self.given.push(format!("--{flag}={v}"));
                }
            }
        }
        Ok(())
    }
}

impl Args for Foreign {
    fn augment_args(mut cmd: Command) -> Command {
        let flag = |id: String| {
            Arg::new(id.clone())
                .long(id)
                .action(ArgAction::SetTrue)
                .hide(true)
        };
        for name in FOREIGN_COLLECTORS {
            cmd = cmd
                .arg(flag(format!("collector.{name}")))
                .arg(flag(format!("no-collector.{name}")));
        }
        for f in FOREIGN_BOOL_FLAGS {
            cmd = cmd.arg(flag(f.to_string())).arg(flag(format!("no-{f}")));
        }
        for f in FOREIGN_VALUE_FLAGS {
            cmd = cmd.arg(
                Arg::new(*f)
                    .long(*f)
                    .action(ArgAction::Append)
                    .num_args(1)
                    .hide(true),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl Options {
    /// Parses collector flags given as strings (defaults for the rest).
    pub fn from_flags<I: IntoIterator<Item = String>>(flags: I) -> Result<Options, clap::Error> {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            opts: Options,
        }
        let args = std::iter::once("nodetune".to_string()).chain(flags);
        <Wrap as clap::Parser>::try_parse_from(args).map(|w| w.opts)
    }

    /// One line per accepted node_exporter flag nodetune does not act on, for the log.
    pub fn warnings(&self) -> Vec<String> {
        self.foreign
            .given
            .iter()
            .map(|f| {
                format!(
                    "{f}: not implemented by nodetune (node_exporter flag accepted and ignored)"
                )
            })
            .collect()
    }

    /// The collectors to run, in [`ALL`] order: an explicit flag wins, then the default
    /// (unless --collector.disable-defaults).
    pub fn enabled(&self) -> Vec<&'static str> {
        ALL.iter()
            .filter(|e| {
                match self
                    .toggles
                    .explicit
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == e.name)
                {
                    Some((_, on)) => *on,
                    None => e.default_enabled && !self.disable_defaults,
                }
            })
            .map(|e| e.name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> Result<Options, clap::Error> {
        Options::from_flags(flags.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_toggles() {
        let o = parse(&[]).unwrap();
        assert!(o.enabled().contains(&"meminfo"));
        assert!(!o.enabled().contains(&"ethtool"));
        assert_eq!(o.vmstat_fields, VMSTAT_FIELDS);
        let o = parse(&[
            "--collector.disable-defaults",
            "--collector.loadavg",
            "--collector.ethtool",
            "--no-collector.ethtool",
        ])
        .unwrap();
        assert_eq!(o.enabled(), vec!["loadavg"]);
        assert!(parse(&["--collector.bogus"]).is_err());
    }

    #[test]
    fn node_exporter_e2e_flags_are_accepted() {
        // What node_exporter's end-to-end-test.sh passes, beyond the collectors nodetune has.
        let o = parse(&[
            "--path.udev.data=collector/fixtures/udev/data",
            "--collector.arp",
            "--collector.systemd",
            "--no-collector.wifi",
            "--collector.netclass.ignored-devices=(dmz|int)",
            "--collector.qdisc.fixtures",
            "collector/fixtures/qdisc/",
            "--collector.sysctl.include=fs.file-nr",
            "--collector.sysctl.include=kernel.threads-max",
            "--collector.bcache.priorityStats",
            "--no-collector.netclass.netlink",
            "--log.level=debug",
            "--runtime.gomaxprocs=1",
            "--collector.stat.softirq",
            "--collector.textfile.directory=collector/fixtures/textfile/two_metric_files/",
        ])
        .unwrap();
        assert!(o.stat_softirq);
        assert!(o.bcache.priority_stats);
        let w = o.warnings();
        // arp, netclass, bcache and --path.udev.data (diskstats) are nodetune's own now.
        assert_eq!(w.len(), 6, "{w:#?}");
        assert!(w[0].starts_with("--collector.systemd: not implemented"));
        assert!(!w
            .iter()
            .any(|l| l.contains("arp") || l.contains("netclass")));
        assert!(o.enabled().contains(&"arp"));
        assert!(!o.netclass.netlink || o.netclass.no_netlink);
        assert_eq!(o.netclass.ignored_devices, "(dmz|int)");
        assert_eq!(o.udev_data, PathBuf::from("collector/fixtures/udev/data"));
        assert!(w
            .iter()
            .any(|l| l.starts_with("--collector.sysctl.include=kernel.threads-max")));
        assert!(!w.iter().any(|l| l.contains("wifi")));
        assert!(!o.enabled().contains(&"systemd"));
    }
}
