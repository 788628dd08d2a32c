//! Watching: drift detection and enforcement, saturation ratios, and alert rules over the
//! collected samples.

pub mod alerts;
pub mod drift;
pub mod saturation;
