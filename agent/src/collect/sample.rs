//! The sample model every collector produces and every consumer (encoder, alert rules) reads.
//!
//! Names, help texts and label names are mostly fixed strings: they are borrowed, not copied,
//! so a scrape allocates for label values only (a scrape builds about a thousand series).

use std::borrow::Cow;

/// A string that is usually a literal.
pub type Text = Cow<'static, str>;

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricType {
    Counter,
    Gauge,
    Untyped,
}

/// One series: label pairs (in the order the collector gives them) and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(Text, String)>,
    pub value: f64,
}

/// A metric family: name, help text, type and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: Text,
    pub help: Text,
    pub kind: MetricType,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: impl Into<Text>, help: impl Into<Text>, kind: MetricType) -> Self {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a series; labels are given as (name, value) pairs.
    pub fn push(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), (*v).to_string()))
                .collect(),
            value,
        });
    }
}
