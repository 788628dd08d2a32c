//! One scrape: run the enabled collectors and add node_exporter's per-collector
//! `node_scrape_collector_duration_seconds` and `node_scrape_collector_success`.

use std::time::Instant;

use anyhow::Context;

use crate::collect::{self, Collector, Family, MetricType, Options};

/// The collectors, built once at start (they cache what never changes).
pub struct Scraper {
    collectors: Vec<(&'static str, Box<dyn Collector>)>,
}

impl Scraper {
    pub fn new(opts: &Options) -> anyhow::Result<Scraper> {
        let mut collectors = Vec::new();
        for name in opts.enabled() {
            let entry = collect::ALL
                .iter()
                .find(|e| e.name == name)
                .with_context(|| format!("unknown collector {name}"))?;
            let c =
                (entry.build)(opts).with_context(|| format!("setting up the {name} collector"))?;
            collectors.push((name, c));
        }
        Ok(Scraper { collectors })
    }

    /// Names of the enabled collectors.
    pub fn names(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|(n, _)| *n).collect()
    }

    /// Runs the collectors accepted by `keep`; a failing collector contributes nothing but
    /// its success=0 series.
    pub fn scrape(&self, keep: &dyn Fn(&str) -> bool) -> Vec<Family> {
        let mut out = Vec::new();
        let mut duration = Family::new(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricType::Gauge,
        );
        let mut success = Family::new(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricType::Gauge,
        );
        for (name, c) in &self.collectors {
            if !keep(name) {
                continue;
            }
            let start = Instant::now();
            let mut fams = Vec::new();
            let ok = c.collect(&mut fams).is_ok();
            if ok {
                out.extend(fams);
            }
            duration.push(&[("collector", name)], start.elapsed().as_secs_f64());
            success.push(&[("collector", name)], if ok { 1.0 } else { 0.0 });
        }
        out.push(duration);
        out.push(success);
        out
    }
}
