//! nodetune: declarative kernel tuning, node_exporter-compatible metrics, and the alerts
//! that connect the two. One folder per job:
//!
//! - [`profile`]: profile format, key catalogue, includes and conditions;
//! - [`tune`]: plan, apply, check, revert and persist against a sysctl root;
//! - [`collect`]: collectors reading /proc and /sys into samples;
//! - [`expose`]: encoders and the HTTP endpoint;
//! - [`cli`]: the command line.

pub mod base;
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod expose;
pub mod profile;
pub mod tune;
pub mod watch;
