//! Watching: drift detection and enforcement, and the alert path — a typed snapshot of the
//! inputs read once per tick ([`snapshot`]), the saturation ratios computed from it
//! ([`saturation`]), the alert catalogue that evaluates it ([`rules`]) and the state machine
//! that turns signals into pending, firing and resolved alerts ([`alerts`]).

pub mod alerts;
pub mod drift;
pub mod rules;
pub mod saturation;
pub mod snapshot;
