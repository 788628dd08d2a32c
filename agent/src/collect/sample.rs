//! The sample model every collector produces and every consumer (encoder, alert rules) reads.
//!
//! Names, help texts and label names are mostly fixed strings: they are borrowed, not copied,
//! so a scrape allocates for label values only (a scrape builds about a thousand series).

use std::borrow::Cow;
use std::sync::Arc;

/// A string that is usually a literal.
pub type Text = Cow<'static, str>;

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricType {
    Counter,
    Gauge,
    Untyped,
}

/// A series' label pairs, in the order the collector gives them. Shared: a collector that
/// keeps a device's label set hands the same one to every scrape (a reference count, not a
/// copy of its strings); [`Family::push`] makes a new one.
pub type Labels = Arc<[(Text, String)]>;

/// One series: its labels and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// A label set from (name, value) pairs, to keep and pass to [`Family::push_labels`].
pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    if pairs.is_empty() {
        // Many series have no labels: they share one empty set instead of allocating each.
        static EMPTY: std::sync::OnceLock<Labels> = std::sync::OnceLock::new();
        return EMPTY.get_or_init(|| Arc::new([])).clone();
    }
    pairs
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), (*v).to_string()))
        .collect()
}

/// A family's series; the first is kept inline (most families have one: a scrape then
/// allocates nothing for them).
pub type Samples = smallvec::SmallVec<[Sample; 1]>;

/// A metric family: name, help text, type and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: Text,
    pub help: Text,
    pub kind: MetricType,
    pub samples: Samples,
}

impl Family {
    pub fn new(name: impl Into<Text>, help: impl Into<Text>, kind: MetricType) -> Self {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Samples::new(),
        }
    }

    /// A family of one series without labels.
    pub fn single(
        name: impl Into<Text>,
        help: impl Into<Text>,
        kind: MetricType,
        value: f64,
    ) -> Self {
        let mut f = Family::new(name, help, kind);
        f.push(&[], value);
        f
    }

    /// Adds a series; labels are given as (name, value) pairs.
    pub fn push(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: self::labels(labels),
            value,
        });
    }

    /// Adds a series with a label set made (and kept) by the caller.
    pub fn push_labels(&mut self, labels: &Labels, value: f64) {
        self.samples.push(Sample {
            labels: labels.clone(),
            value,
        });
    }
}
