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
    /// Disable every collector not enabled explicitly with --collector.NAME.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,
    #[command(flatten)]
    pub toggles: Toggles,
    /// Export softirq counters per vector (stat collector).
    #[arg(long = "collector.stat.softirq")]
    pub stat_softirq: bool,
    /// Directories to read *.prom text files from (textfile collector); repeatable.
    #[arg(long = "collector.textfile.directory")]
    pub textfile_directories: Vec<PathBuf>,
    /// Longest a collector may take in one scrape; a slower (hung) one reports success 0.
    #[arg(long = "collector.timeout", default_value = "5s", value_parser = crate::config::parse_duration)]
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
