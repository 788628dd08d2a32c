//! One scrape: run the enabled collectors on the shared worker pool ([`crate::collect::pool`])
//! with a deadline, and add node_exporter's `node_scrape_collector_duration_seconds` and
//! `node_scrape_collector_success`.

use anyhow::Context;

use crate::collect::pool::{Done, Runner, Task};
use crate::collect::{self, Family, Labels, MetricType, Options};

/// The collectors, built once at start (they cache what never changes).
pub struct Scraper {
    runner: Runner<Vec<Family>>,
    /// Each collector's `collector="NAME"` label set, in the runner's order: made once, not
    /// twice per collector on every scrape.
    labels: Vec<(&'static str, Labels)>,
}

impl Scraper {
    pub fn new(opts: &Options) -> anyhow::Result<Scraper> {
        let mut tasks: Vec<(&'static str, Task<Vec<Family>>)> = Vec::new();
        for name in opts.enabled() {
            let entry = collect::ALL
                .iter()
                .find(|e| e.name == name)
                .with_context(|| format!("unknown collector {name}"))?;
            let c =
                (entry.build)(opts).with_context(|| format!("setting up the {name} collector"))?;
            tasks.push((
                name,
                Box::new(move || {
                    let mut fams = Vec::new();
                    c.collect(&mut fams)?;
                    Ok(fams)
                }),
            ));
        }
        Ok(Scraper::from_tasks(tasks, opts.timeout))
    }

    fn from_tasks(
        tasks: Vec<(&'static str, Task<Vec<Family>>)>,
        timeout: std::time::Duration,
    ) -> Scraper {
        let labels = tasks
            .iter()
            .map(|(name, _)| (*name, collect::labels(&[("collector", name)])))
            .collect();
        Scraper {
            runner: Runner::new(tasks, timeout),
            labels,
        }
    }

    /// Names of the enabled collectors.
    pub fn names(&self) -> Vec<&'static str> {
        self.runner.names()
    }

    /// Runs the collectors accepted by `keep`, in parallel, each within the timeout; a failing,
    /// hung or timed-out collector contributes only its success=0 series. Blocks the caller.
    pub fn scrape(&self, keep: &dyn Fn(&str) -> bool) -> Vec<Family> {
        finish(self.runner.run(keep), &self.labels)
    }

    /// The same as [`Scraper::scrape`] without blocking a thread while the collectors run:
    /// the endpoint awaits this on its event loop.
    pub fn scrape_async(
        &self,
        keep: &dyn Fn(&str) -> bool,
    ) -> impl std::future::Future<Output = Vec<Family>> + Send + '_ {
        let run = self.runner.run_async(keep);
        async move { finish(run.await, &self.labels) }
    }
}

/// The collectors' families, then the duration and success families. `labels` holds each
/// collector's label set, in the order results come in (some may be left out).
fn finish(
    results: Vec<(&'static str, Done<Vec<Family>>)>,
    labels: &[(&'static str, Labels)],
) -> Vec<Family> {
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
    let mut out = Vec::new();
    let mut sets = labels.iter();
    for (name, done) in results {
        let set = match sets.find(|(n, _)| *n == name) {
            Some((_, set)) => set.clone(),
            None => collect::labels(&[("collector", name)]),
        };
        let (ok, took) = match done {
            Done::Ran { value, took } => {
                let ok = value.is_some();
                out.extend(value.into_iter().flatten());
                (ok, took.as_secs_f64())
            }
            Done::TimedOut { waited } => (false, waited.as_secs_f64()),
            Done::Skipped => (false, 0.0),
        };
        duration.push_labels(&set, took);
        success.push_labels(&set, if ok { 1.0 } else { 0.0 });
    }
    out.push(duration);
    out.push(success);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Collector;

    struct Fast(&'static str);
    impl Collector for Fast {
        fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
            out.push(Family::single(self.0, "h", MetricType::Gauge, 1.0));
            Ok(())
        }
    }

    struct Panics;
    impl Collector for Panics {
        fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
            out.push(Family::new("half_done", "h", MetricType::Gauge));
            panic!("a collector bug");
        }
    }

    struct Fails;
    impl Collector for Fails {
        fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
            out.push(Family::new("half_done", "h", MetricType::Gauge));
            anyhow::bail!("no such file")
        }
    }

    fn scraper(collectors: Vec<(&'static str, Box<dyn Collector>)>) -> Scraper {
        let tasks = collectors
            .into_iter()
            .map(|(name, c)| {
                let t: Task<Vec<Family>> = Box::new(move || {
                    let mut fams = Vec::new();
                    c.collect(&mut fams)?;
                    Ok(fams)
                });
                (name, t)
            })
            .collect();
        Scraper::from_tasks(tasks, std::time::Duration::from_secs(5))
    }

    fn success(fams: &[Family], name: &str) -> f64 {
        fams.iter()
            .find(|f| f.name == "node_scrape_collector_success")
            .and_then(|f| f.samples.iter().find(|s| s.labels[0].1 == name))
            .map(|s| s.value)
            .expect("success series")
    }

    #[test]
    fn a_failing_or_panicking_collector_fails_alone() {
        let s = scraper(vec![
            ("bad", Box::new(Panics)),
            ("err", Box::new(Fails)),
            ("good", Box::new(Fast("good"))),
        ]);
        for _ in 0..3 {
            let fams = s.scrape(&|_| true);
            assert_eq!(success(&fams, "bad"), 0.0);
            assert_eq!(success(&fams, "err"), 0.0);
            assert_eq!(success(&fams, "good"), 1.0);
            assert!(fams.iter().any(|f| f.name == "good"));
            assert!(!fams.iter().any(|f| f.name == "half_done"));
        }
        // collect[] picks collectors; the others get no series at all.
        let fams = s.scrape(&|n| n == "good");
        let names: Vec<&str> = fams.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "good",
                "node_scrape_collector_duration_seconds",
                "node_scrape_collector_success"
            ]
        );
    }
}
