//! Exposition: the text encoders, the scrape orchestration and the HTTP endpoint.

pub mod encode;
pub mod http;
pub mod scrape;
pub mod selfmetrics;
pub mod webconfig;
