//! Collector settings, with node_exporter's flag names (`nodetune run` and `nodetune metrics`).

use std::path::PathBuf;

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
}
