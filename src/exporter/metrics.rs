//! The in-memory form of one scrape: metric families, their samples, and
//! the writer collectors fill.
//!
//! Families come out sorted by name and samples by label values, as
//! node_exporter's registry sorts them, so that output is stable and can be
//! compared line by line with node_exporter's and with the golden file.

use std::collections::HashMap;

/// The type of a metric family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that only goes up (resets on restart).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A value of unknown meaning (node_exporter's vmstat fields).
    Untyped,
    /// Quantiles with sum and count (only from textfiles).
    Summary,
    /// Buckets with sum and count (only from textfiles).
    Histogram,
}

impl Kind {
    /// The word Prometheus text format 0.0.4 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
        }
    }
}

/// The value of one metric (one label set).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Counter, gauge or untyped.
    Single(f64),
    /// A summary: `(quantile, value)` pairs, sum and count.
    Summary {
        /// `(quantile, value)` pairs in the order read.
        quantiles: Vec<(f64, f64)>,
        /// The `_sum` sample.
        sum: f64,
        /// The `_count` sample.
        count: f64,
    },
    /// A histogram: `(upper bound, cumulative count)` pairs, sum and count.
    Histogram {
        /// `(le, cumulative count)` pairs, ascending.
        buckets: Vec<(f64, f64)>,
        /// The `_sum` sample.
        sum: f64,
        /// The `_count` sample.
        count: f64,
    },
}

/// One metric of a family: a label set and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Label pairs, sorted by name.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: Value,
}

/// A metric family: name, HELP, TYPE and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Metric name, e.g. `node_load1`.
    pub name: String,
    /// HELP text, unescaped.
    pub help: String,
    /// Type.
    pub kind: Kind,
    /// Metrics, one per label set.
    pub metrics: Vec<Metric>,
}

/// Collects families during one scrape. Collectors call [`gauge`],
/// [`counter`] and [`untyped`]; the scrape loop calls [`finish`].
///
/// [`gauge`]: MetricWriter::gauge
/// [`counter`]: MetricWriter::counter
/// [`untyped`]: MetricWriter::untyped
/// [`finish`]: MetricWriter::finish
#[derive(Debug, Default)]
pub struct MetricWriter {
    families: Vec<Family>,
    index: HashMap<String, usize>,
    /// Samples dropped because their family already existed with another
    /// type; reported by the scrape loop.
    pub conflicts: Vec<String>,
}

impl MetricWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.push(name, help, Kind::Gauge, labels, Value::Single(v));
    }

    /// Adds a counter sample.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.push(name, help, Kind::Counter, labels, Value::Single(v));
    }

    /// Adds an untyped sample.
    pub fn untyped(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.push(name, help, Kind::Untyped, labels, Value::Single(v));
    }

    /// Adds a sample of any kind. A sample whose family already exists with
    /// another type, or whose new family's samples would share names with
    /// another family's (a histogram `x` writes `x_bucket`, `x_sum` and
    /// `x_count`, a summary `x_sum` and `x_count`), is dropped and
    /// recorded in `conflicts`.
    pub fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        value: Value,
    ) {
        let mut pairs: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        self.push_owned(name, help, kind, pairs, value);
    }

    /// Like [`push`](Self::push), with owned labels already sorted by name.
    pub fn push_owned(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: Vec<(String, String)>,
        value: Value,
    ) {
        let idx = match self.index.get(name) {
            Some(&i) => i,
            None => {
                if let Some(c) = self.collision(name, kind) {
                    self.conflicts.push(c);
                    return;
                }
                self.families.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    metrics: Vec::new(),
                });
                let i = self.families.len() - 1;
                self.index.insert(name.to_owned(), i);
                i
            }
        };
        let fam = &mut self.families[idx];
        if fam.kind != kind {
            self.conflicts.push(format!(
                "{name}: declared {} and {}",
                fam.kind.as_str(),
                kind.as_str()
            ));
            return;
        }
        fam.metrics.push(Metric { labels, value });
    }

    /// Why a new family `name` of `kind` cannot be written beside the
    /// families there are: its sample names and another's would be the
    /// same, so that a reader could not tell whose a sample is.
    fn collision(&self, name: &str, kind: Kind) -> Option<String> {
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(&i) = name.strip_suffix(suffix).and_then(|b| self.index.get(b)) else {
                continue;
            };
            let other = &self.families[i];
            if other.kind == Kind::Histogram || (other.kind == Kind::Summary && suffix != "_bucket")
            {
                return Some(format!(
                    "{name}: its samples would be those of {} {}",
                    other.kind.as_str(),
                    other.name
                ));
            }
        }
        let suffixes: &[&str] = match kind {
            Kind::Histogram => &["_bucket", "_sum", "_count"],
            Kind::Summary => &["_sum", "_count"],
            _ => &[],
        };
        suffixes
            .iter()
            .map(|s| format!("{name}{s}"))
            .find(|n| self.index.contains_key(n))
            .map(|n| format!("{name}: its samples would be those of {n}"))
    }

    /// Number of families written so far.
    pub fn len(&self) -> usize {
        self.families.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// Sorts and returns the families. Metrics with identical label sets in
    /// one family are reduced to the first (Prometheus rejects duplicates).
    pub fn finish(self) -> Vec<Family> {
        let mut fams = self.families;
        fams.sort_by(|a, b| a.name.cmp(&b.name));
        for f in &mut fams {
            f.metrics.sort_by(|a, b| {
                let av = a.labels.iter().map(|(_, v)| v.as_str());
                let bv = b.labels.iter().map(|(_, v)| v.as_str());
                av.cmp(bv)
            });
            f.metrics.dedup_by(|b, a| a.labels == b.labels);
        }
        fams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_a_family_whose_samples_would_be_another_familys() {
        let mut w = MetricWriter::new();
        w.untyped("h_bucket", "", &[("le", "x")], 1.0);
        let histogram = Value::Histogram {
            buckets: vec![(f64::INFINITY, 1.0)],
            sum: 1.0,
            count: 1.0,
        };
        w.push("h", "", Kind::Histogram, &[], histogram);
        let summary = Value::Summary {
            quantiles: vec![(0.5, 1.0)],
            sum: 1.0,
            count: 1.0,
        };
        w.push("s", "", Kind::Summary, &[], summary);
        w.gauge("s_count", "", &[], 1.0);
        w.gauge("s_bucket", "", &[], 1.0);
        assert_eq!(w.conflicts.len(), 2, "{:?}", w.conflicts);
        let names: Vec<String> = w.finish().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["h_bucket", "s", "s_bucket"]);
    }

    #[test]
    fn can_sort_families_and_label_values_like_node_exporter() {
        let mut w = MetricWriter::new();
        w.gauge("b", "h", &[("cpu", "10")], 1.0);
        w.gauge("b", "h", &[("cpu", "2")], 1.0);
        w.gauge("a", "h", &[("z", "1"), ("a", "2")], 1.0);
        let f = w.finish();
        assert_eq!(f[0].name, "a");
        assert_eq!(f[0].metrics[0].labels[0].0, "a");
        // lexical, as Go's registry sorts label values
        assert_eq!(f[1].metrics[0].labels[0].1, "10");
    }

    #[test]
    fn returns_conflict_when_type_differs() {
        let mut w = MetricWriter::new();
        w.gauge("x", "h", &[], 1.0);
        w.counter("x", "h", &[("a", "b")], 1.0);
        assert_eq!(w.conflicts.len(), 1);
        assert_eq!(w.finish()[0].metrics.len(), 1);
    }
}
