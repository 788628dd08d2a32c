//! Leaf pieces that every layer may use and that use nothing else of nodetune's: logging,
//! durations, source positions, the file-trust check, the daemon mode and Go-style globs.

pub mod duration;
pub mod glob;
pub mod log;
pub mod mode;
pub mod pos;
pub mod trust;
