//! The surge lab: what tuning buys, measured. Each scenario runs twice in throwaway network
//! namespaces (a client and a server joined by veth, addresses from the documentation
//! ranges): once on the kernel's defaults and once after `nodetune apply` with the shipped
//! profile that targets it, with real components (Debian's nginx with one worker, the lab's
//! own epoll clients, raw SYNs, wrk) and nodetune's daemon in audit mode beside each run.
//!
//! Nothing on the host changes: per-namespace keys are written inside the lab's namespaces,
//! host-wide ones ([limits]) onto a fake root, and the namespaces are deleted with everything
//! in them when a run ends, fails, panics or is interrupted (see [`netns`]).
//!
//! `tests/lab/run` runs the long form and writes the report; `tests/tests/lab.rs` runs the
//! short form of scenarios 1-3 under `cargo test`.

pub mod client;
pub mod counters;
pub mod netns;
pub mod nginx;
pub mod nodetune;
pub mod report;
pub mod scenario;

pub use scenario::{Config, Row, Run, Runs, Size};
