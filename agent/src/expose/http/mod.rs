//! The HTTP endpoint: `/metrics` (or `--web.telemetry-path`) with keep-alive, gzip,
//! OpenMetrics negotiation, `collect[]`/`exclude[]` filters and a concurrent-request limit
//! (503 past it), plus a small landing page. Open connections are capped
//! (`--web.max-connections`): at the cap the connection idle longest is dropped to make room.
//!
//! - `route`: one request, from authentication to the encoded scrape;
//! - `conn`: the open connections, their cap and eviction;
//! - `listen`: addresses, binding, the open-files limit;
//! - `serve`: the accept loop and shutdown;
//! - `handshake`: why a TLS handshake was refused, logged.

mod conn;
mod handshake;
mod listen;
mod route;
mod serve;

use std::sync::Arc;

use super::scrape::Scraper;
use super::selfmetrics::SelfMetrics;
use super::webconfig::Watched;
use crate::collect::Family;

pub use listen::{bind, fit_connection_cap, parse_listen, raise_nofile_limit, FD_RESERVE};
pub use route::{accepts_gzip, filter, MAX_URI};
pub use serve::serve;

/// Families added to every scrape by the daemon (nodetune_* metrics).
pub type Extra = Arc<dyn Fn() -> Vec<Family> + Send + Sync>;

/// What the endpoint serves.
pub struct Endpoint {
    pub scraper: Scraper,
    pub telemetry_path: String,
    /// 0 means no limit.
    pub max_requests: usize,
    /// Open connections at most (at least 1); see `conn::Registry`.
    pub max_connections: usize,
    pub extra: Option<Extra>,
    /// `process_*` and `promhttp_*` (None with `--web.disable-exporter-metrics`).
    pub exporter_metrics: Option<Arc<SelfMetrics>>,
    /// TLS, client certificates, basic auth and headers (`--web.config.file`).
    pub web: Watched,
}
