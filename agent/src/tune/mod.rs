//! Tuning: plan, apply, check, revert, persist.
