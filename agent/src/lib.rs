//! nodetune: declarative kernel tuning, node_exporter-compatible metrics, and the alerts
//! that connect the two. One folder per job, data flowing one way (sources → samples →
//! encoder / alert rules):
//!
//! - [`base`]: leaf pieces every layer uses (logging, durations, source positions, file
//!   trust, the daemon mode, Go-style globs); they depend on nothing else here;
//! - [`profile`]: profile format, key catalogue, includes, conditions and host facts;
//! - [`tune`]: plan, apply, check, revert and persist against a sysctl root; conflicts;
//!   namespaces;
//! - [`collect`]: one file per collector, each reading /proc and /sys under its roots into
//!   typed readings and rendering node_exporter's families; the worker pool every collection
//!   runs on; the netlink client;
//! - [`expose`]: the scrape, the encoders, web-config (TLS, auth) and the HTTP endpoint;
//! - [`watch`]: drift detection, the typed snapshot the alert rules read, saturation ratios,
//!   the alert catalogue and the alert engine;
//! - [`config`], the configuration file `/etc/nodetune/nodetune.toml`;
//! - [`daemon`]: the daemon's life cycle (start, apply, ticks, reloads, systemd, Alertmanager);
//! - [`cli`]: the command line, one file per command group.

pub mod base;
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod expose;
pub mod profile;
#[cfg(test)]
mod testing;
pub mod tune;
pub mod watch;
