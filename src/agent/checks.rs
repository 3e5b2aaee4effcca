//! The checks loop: alert rules on the node's own metrics, evaluated the
//! way Prometheus evaluates alerting rules.
//!
//! Each tick (every `spec.checks.period`) takes the node's metric families
//! from [`Ctx::metrics`] and, for every rule, every series its selector
//! matches ([`Selector`]; plain values only: gauges, counters, untyped;
//! summaries and histograms are skipped). Each (rule, series) pair is an
//! alert of its own, tracked apart from the others:
//!
//! - **inactive** → **pending** when the comparison (`value op threshold`)
//!   holds; `since` is that tick;
//! - pending → **firing** once it has held for the rule's `for` (a `for`
//!   of 0 fires on the first tick); an event with the rule's severity;
//! - back to inactive when the comparison fails or the series is gone: a
//!   firing alert **resolves** (an `info` event), a pending one is dropped
//!   quietly, and its `for` starts over next time.
//!
//! Alert labels are the series' labels, then the rule's `labels`, then
//! `check` and `severity`, each overriding the one before. Summaries
//! render `{{ value }}` and `{{ labels.NAME }}` (Prometheus' `$value` and
//! `$labels.NAME` spellings too).
//!
//! Firing and pending alerts are `onprem_check_firing` and
//! `onprem_check_pending` series of value 1; an inactive alert has no
//! series (as Prometheus' `ALERTS`). The alerts live in an [`Alerts`]
//! handle shared with the uploader, and handed to the next loop across a
//! restart ([`ChecksLoop::with_alerts`]): alerts of unchanged rules go on,
//! those of changed or removed rules resolve.
//!
//! ## Troubleshooting
//!
//! - A rule that never fires: `onprem_check_matched_series{check}` is 0
//!   when its selector matches nothing (a label value spelt differently, a
//!   collector turned off).
//! - `NoMetrics`: the agent started the loop without a metrics source.
//! - `TooManySeries`: a rule's selector matches more than
//!   [`MAX_SERIES_PER_CHECK`] series; only the first ones are evaluated
//!   (narrow the selector with labels).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::reconcile::{Action, Ctx, LoopError, Reconciler, Stop, unix_now};
pub use crate::bundle::bounds::MAX_SERIES_PER_CHECK;
use crate::bundle::schema::{Checks, Rule, Severity};
use crate::bundle::selector::Selector;
use crate::exporter::{MetricWriter, Value};

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A comparison of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
}

impl Op {
    /// Parses `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s.trim() {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            _ => return None,
        })
    }

    /// Whether `value op threshold` holds (never for NaN, as in PromQL).
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => !value.is_nan() && value != threshold,
        }
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AlertState {
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    /// The condition has held for the rule's `for`.
    Firing,
}

/// One alert: a rule and one series it matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// The rule's name.
    pub check: String,
    /// Pending or firing.
    pub state: AlertState,
    /// The rule's severity.
    pub severity: Severity,
    /// The series' metric name.
    pub metric: String,
    /// The series' labels, the rule's labels, `check` and `severity`.
    pub labels: BTreeMap<String, String>,
    /// The value at the last evaluation.
    pub value: f64,
    /// When the condition started to hold, Unix seconds.
    pub since: f64,
    /// When the alert fired, Unix seconds.
    pub firing_since: Option<f64>,
    /// The rule's summary, rendered.
    pub summary: String,
}

/// An alert and the tick its condition started to hold at.
#[derive(Debug, Clone)]
struct Tracked {
    alert: Alert,
    since: Instant,
}

/// Identifies an alert: rule, metric name, series labels.
type Key = (String, String, Vec<(String, String)>);

#[derive(Debug, Default)]
struct State {
    /// The rules the alerts were evaluated with.
    rules: BTreeMap<String, Rule>,
    alerts: BTreeMap<Key, Tracked>,
    /// Series each rule matched at the last evaluation.
    matched: BTreeMap<String, usize>,
    evaluations: u64,
}

/// The alerts of a checks loop; clones share them (with the uploader, and
/// with the next loop across a restart).
#[derive(Clone, Default)]
pub struct Alerts {
    inner: Arc<Mutex<State>>,
}

impl Alerts {
    fn lock(&self) -> MutexGuard<'_, State> {
        relock(&self.inner)
    }

    /// Every pending and firing alert, by rule and series.
    pub fn all(&self) -> Vec<Alert> {
        self.lock()
            .alerts
            .values()
            .map(|t| t.alert.clone())
            .collect()
    }

    /// The firing alerts (for upload to the control plane).
    pub fn firing(&self) -> Vec<Alert> {
        self.lock()
            .alerts
            .values()
            .filter(|t| t.alert.state == AlertState::Firing)
            .map(|t| t.alert.clone())
            .collect()
    }
}

/// A rule ready to evaluate.
struct Compiled {
    rule: Rule,
    selector: Result<Selector, String>,
    op: Option<Op>,
}

/// The checks loop.
#[derive(Default)]
pub struct ChecksLoop {
    alerts: Alerts,
    compiled: BTreeMap<String, Compiled>,
    rules: usize,
}

impl ChecksLoop {
    /// A loop with no alerts yet.
    pub fn new() -> ChecksLoop {
        ChecksLoop::default()
    }

    /// A loop that goes on with the alerts of a previous one.
    pub fn with_alerts(alerts: Alerts) -> ChecksLoop {
        ChecksLoop {
            alerts,
            ..ChecksLoop::default()
        }
    }

    /// The alerts, shared.
    pub fn alerts(&self) -> Alerts {
        self.alerts.clone()
    }

    /// The firing alerts (for upload).
    pub fn firing(&self) -> Vec<Alert> {
        self.alerts.firing()
    }

    fn compile(&mut self, rule: &Rule) -> &Compiled {
        let fresh = self
            .compiled
            .get(&rule.name)
            .is_none_or(|c| c.rule != *rule);
        if fresh {
            self.compiled.insert(
                rule.name.clone(),
                Compiled {
                    rule: rule.clone(),
                    selector: Selector::parse(&rule.metric),
                    op: Op::parse(&rule.op),
                },
            );
        }
        &self.compiled[&rule.name]
    }
}

/// Formats a value for people: six significant digits, no trailing zeros.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let rounded: f64 = format!("{v:.5e}").parse().unwrap_or(v);
    rounded.to_string()
}

/// Renders a summary: `{{ value }}` and `{{ labels.NAME }}` (also
/// `{{ $value }}`, `{{ $labels.NAME }}`); an unknown label renders empty,
/// anything else between braces is left as written.
pub fn render(template: &str, value: f64, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = after[..close].trim();
        let name = inner.strip_prefix('$').unwrap_or(inner);
        let name = name.strip_prefix('.').unwrap_or(name);
        if name == "value" {
            out.push_str(&format_value(value));
        } else if let Some(l) = name.strip_prefix("labels.") {
            out.push_str(labels.get(l.trim()).map_or("", String::as_str));
        } else {
            out.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// `name{a="b",…}` of a series, for messages.
fn series_name(metric: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return metric.to_owned();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

/// Records the resolution of a firing alert.
fn resolved(ctx: &Ctx, key: &Key, t: &Tracked, why: &str) {
    if t.alert.state == AlertState::Firing {
        ctx.events.push(
            ChecksLoop::NAME,
            "info",
            "AlertResolved",
            format!(
                "{} resolved: {} {why} (was {})",
                key.0,
                series_name(&key.1, &key.2),
                format_value(t.alert.value)
            ),
        );
    }
}

impl Reconciler for ChecksLoop {
    const NAME: &'static str = "checks";
    type Desired = Checks;

    fn period(want: &Checks) -> Duration {
        want.period.get()
    }

    fn reconcile(&mut self, want: &Checks, ctx: &Ctx, now: Instant) -> Result<Action, LoopError> {
        self.rules = want.rules.len();
        let Some(source) = ctx.metrics.as_ref() else {
            return Ok(Action::degraded(
                "NoMetrics",
                "the agent gave the checks loop no metrics to evaluate",
            ));
        };
        let families = source();
        let alerts = self.alerts.clone();
        let mut st = alerts.lock();
        st.evaluations += 1;

        // Rules that left the bundle or changed: their alerts end.
        let current: BTreeMap<&str, &Rule> =
            want.rules.iter().map(|r| (r.name.as_str(), r)).collect();
        let ended: Vec<Key> = st
            .alerts
            .keys()
            .filter(|k| {
                current
                    .get(k.0.as_str())
                    .is_none_or(|r| st.rules.get(&k.0) != Some(*r))
            })
            .cloned()
            .collect();
        for k in ended {
            if let Some(t) = st.alerts.remove(&k) {
                let why = if current.contains_key(k.0.as_str()) {
                    "(rule changed)"
                } else {
                    "(rule removed)"
                };
                resolved(ctx, &k, &t, why);
            }
        }
        st.rules = want
            .rules
            .iter()
            .map(|r| (r.name.clone(), r.clone()))
            .collect();
        st.matched.clear();
        self.compiled
            .retain(|name, _| current.contains_key(name.as_str()));

        let mut problems = Vec::new();
        let mut too_many = Vec::new();
        for rule in &want.rules {
            let c = self.compile(rule);
            let selector = match &c.selector {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("{}: {e}", rule.name));
                    continue;
                }
            };
            let Some(op) = c.op else {
                problems.push(format!("{}: {:?} is not a comparison", rule.name, rule.op));
                continue;
            };
            let mut seen = BTreeSet::new();
            'families: for f in &families {
                for m in &f.metrics {
                    let Value::Single(v) = m.value else { continue };
                    if !selector.matches(&f.name, &m.labels) {
                        continue;
                    }
                    if seen.len() >= MAX_SERIES_PER_CHECK {
                        too_many.push(rule.name.as_str());
                        break 'families;
                    }
                    let key: Key = (rule.name.clone(), f.name.clone(), m.labels.clone());
                    seen.insert(key.clone());
                    if !op.holds(v, rule.threshold) {
                        if let Some(t) = st.alerts.remove(&key) {
                            resolved(ctx, &key, &t, "is back");
                        }
                        continue;
                    }
                    let mut labels: BTreeMap<String, String> = m.labels.iter().cloned().collect();
                    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                    labels.insert("check".into(), rule.name.clone());
                    labels.insert("severity".into(), rule.severity.as_str().into());
                    let summary = render(&rule.summary, v, &labels);
                    let t = st.alerts.entry(key.clone()).or_insert_with(|| Tracked {
                        alert: Alert {
                            check: rule.name.clone(),
                            state: AlertState::Pending,
                            severity: rule.severity,
                            metric: f.name.clone(),
                            labels: BTreeMap::new(),
                            value: v,
                            since: unix_now(),
                            firing_since: None,
                            summary: String::new(),
                        },
                        since: now,
                    });
                    t.alert.value = v;
                    t.alert.labels = labels;
                    t.alert.summary = summary;
                    if t.alert.state == AlertState::Pending
                        && now.saturating_duration_since(t.since) >= rule.for_.get()
                    {
                        t.alert.state = AlertState::Firing;
                        t.alert.firing_since = Some(unix_now());
                        let what = if t.alert.summary.is_empty() {
                            format!(
                                "{} = {} ({} {})",
                                series_name(&key.1, &key.2),
                                format_value(v),
                                rule.op,
                                format_value(rule.threshold)
                            )
                        } else {
                            t.alert.summary.clone()
                        };
                        ctx.events.push(
                            Self::NAME,
                            rule.severity.as_str(),
                            "AlertFiring",
                            format!("{} firing: {what}", rule.name),
                        );
                    }
                }
            }
            st.matched.insert(rule.name.clone(), seen.len());
            // Series of this rule that are gone.
            let gone: Vec<Key> = st
                .alerts
                .keys()
                .filter(|k| k.0 == rule.name && !seen.contains(*k))
                .cloned()
                .collect();
            for k in gone {
                if let Some(t) = st.alerts.remove(&k) {
                    resolved(ctx, &k, &t, "is gone");
                }
            }
        }
        drop(st);
        let over = (!too_many.is_empty()).then(|| {
            format!(
                "{} match more than {MAX_SERIES_PER_CHECK} series each; only the first {MAX_SERIES_PER_CHECK} are evaluated",
                too_many.join(", ")
            )
        });
        if !problems.is_empty() {
            problems.extend(over);
            Ok(Action::degraded("BadRule", problems.join("; ")))
        } else if let Some(over) = over {
            Ok(Action::degraded("TooManySeries", over))
        } else {
            Ok(Action::ready())
        }
    }

    fn on_error(&mut self, err: &LoopError, _want: &Checks, _ctx: &Ctx) -> Action {
        Action::degraded(err.reason(), err.to_string())
    }

    fn on_stop(&mut self, _want: &Checks, _ctx: &Ctx, _why: Stop) {
        // Alerts stay as they are: stopping the agent resolves nothing.
    }

    fn report(&self, out: &mut MetricWriter) {
        let st = self.alerts.lock();
        out.gauge(
            "onprem_checks_rules",
            "Alert rules the checks loop evaluates.",
            &[],
            self.rules as f64,
        );
        out.counter(
            "onprem_check_evaluations_total",
            "Evaluations of the alert rules.",
            &[],
            st.evaluations as f64,
        );
        for (check, n) in &st.matched {
            out.gauge(
                "onprem_check_matched_series",
                "Series an alert rule's selector matched at the last evaluation.",
                &[("check", check)],
                *n as f64,
            );
        }
        for t in st.alerts.values() {
            let (name, help) = match t.alert.state {
                AlertState::Firing => (
                    "onprem_check_firing",
                    "A firing alert: 1 for each rule and series whose condition held for the rule's `for`.",
                ),
                AlertState::Pending => (
                    "onprem_check_pending",
                    "A pending alert: 1 for each rule and series whose condition holds, not yet for the rule's `for`.",
                ),
            };
            let labels: Vec<(String, String)> = t
                .alert
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.push_owned(
                name,
                help,
                crate::exporter::Kind::Gauge,
                labels,
                Value::Single(1.0),
            );
        }
    }

    fn details(&self) -> serde_json::Value {
        serde_json::to_value(self.alerts.all()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::agent::host::Recorded;
    use crate::agent::reconcile::{Event, Health};
    use crate::exporter::metrics::Metric;
    use crate::exporter::{Family, Kind};

    type Source = Arc<Mutex<Vec<Family>>>;

    /// A context whose metrics come from `source`, which the test changes.
    fn ctx() -> (Ctx, Source) {
        let source: Source = Arc::default();
        let mut c = Ctx::new(None, Arc::new(Recorded::default()));
        let s = Arc::clone(&source);
        c.metrics = Some(Arc::new(move || s.lock().unwrap().clone()));
        (c, source)
    }

    /// Sets the series of gauge `name`: `(labels, value)`.
    fn set(source: &Source, name: &str, kind: Kind, series: &[(&[(&str, &str)], f64)]) {
        let mut fams = source.lock().unwrap();
        fams.retain(|f| f.name != name);
        fams.push(Family {
            name: name.into(),
            help: "h".into(),
            kind,
            metrics: series
                .iter()
                .map(|(l, v)| Metric {
                    labels: l.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
                    value: Value::Single(*v),
                })
                .collect(),
        });
    }

    fn temp(source: &Source, series: &[(&str, f64)]) {
        let s: Vec<(Vec<(&str, &str)>, f64)> = series
            .iter()
            .map(|(sensor, v)| (vec![("sensor", *sensor)], *v))
            .collect();
        let s: Vec<(&[(&str, &str)], f64)> = s.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        set(source, "onprem_temperature_celsius", Kind::Gauge, &s);
    }

    fn checks(yaml: &str) -> Checks {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const HOT: &str = r#"
period: 15s
rules:
  - name: hot
    metric: onprem_temperature_celsius
    op: ">"
    threshold: 70
    for: 1m
    severity: critical
    labels: { team: ops }
    summary: "{{ labels.sensor }} at {{ value }} °C"
"#;

    fn tick(l: &mut ChecksLoop, w: &Checks, c: &Ctx) -> Action {
        l.reconcile(w, c, Instant::now()).unwrap()
    }

    fn events(c: &Ctx) -> Vec<Event> {
        c.events.since(0)
    }

    fn report(l: &ChecksLoop) -> Vec<Family> {
        let mut out = MetricWriter::new();
        l.report(&mut out);
        out.finish()
    }

    fn family<'a>(fams: &'a [Family], name: &str) -> Option<&'a Family> {
        fams.iter().find(|f| f.name == name)
    }

    #[tokio::test(start_paused = true)]
    async fn can_fire_only_after_for_and_resolve() {
        let (c, src) = ctx();
        let w = checks(HOT);
        assert_eq!(ChecksLoop::period(&w), Duration::from_secs(15));
        let mut l = ChecksLoop::new();
        temp(&src, &[("cpu", 75.5)]);
        assert_eq!(tick(&mut l, &w, &c), Action::ready());
        let a = l.alerts().all();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].state, AlertState::Pending);
        assert!(l.firing().is_empty());
        let fams = report(&l);
        assert!(family(&fams, "onprem_check_pending").is_some());
        assert!(family(&fams, "onprem_check_firing").is_none());
        tokio::time::advance(Duration::from_secs(45)).await;
        tick(&mut l, &w, &c);
        assert!(l.firing().is_empty(), "fired before `for`");
        tokio::time::advance(Duration::from_secs(15)).await;
        tick(&mut l, &w, &c);
        let f = l.firing();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].summary, "cpu at 75.5 °C");
        let ev = events(&c);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            (ev[0].source, ev[0].severity, ev[0].reason.as_str()),
            ("checks", "critical", "AlertFiring")
        );
        assert_eq!(ev[0].message, "hot firing: cpu at 75.5 °C");
        // The firing series carries check, severity, the rule's labels and
        // the series' labels.
        let fams = report(&l);
        let firing = family(&fams, "onprem_check_firing").unwrap();
        let labels: Vec<(&str, &str)> = firing.metrics[0]
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("check", "hot"),
                ("sensor", "cpu"),
                ("severity", "critical"),
                ("team", "ops")
            ]
        );
        assert_eq!(firing.metrics[0].value, Value::Single(1.0));
        assert!(family(&fams, "onprem_check_pending").is_none());
        assert_eq!(
            family(&fams, "onprem_checks_rules").unwrap().metrics[0].value,
            Value::Single(1.0)
        );
        assert_eq!(
            family(&fams, "onprem_check_evaluations_total")
                .unwrap()
                .metrics[0]
                .value,
            Value::Single(3.0)
        );
        // Still hot: no second event.
        tokio::time::advance(Duration::from_secs(15)).await;
        tick(&mut l, &w, &c);
        assert_eq!(events(&c).len(), 1);
        // Cooled down: resolved, with an info event.
        temp(&src, &[("cpu", 60.0)]);
        tick(&mut l, &w, &c);
        assert!(l.alerts().all().is_empty());
        let ev = events(&c);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            (ev[1].severity, ev[1].reason.as_str()),
            ("info", "AlertResolved")
        );
        assert!(ev[1].message.contains("hot resolved"), "{}", ev[1].message);
        assert!(family(&report(&l), "onprem_check_firing").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn can_fire_on_the_first_tick_without_for() {
        let (c, src) = ctx();
        let w = checks(
            "rules: [{ name: load, metric: node_load1, op: \">=\", threshold: 4, severity: info }]",
        );
        let mut l = ChecksLoop::new();
        set(&src, "node_load1", Kind::Gauge, &[(&[], 4.0)]);
        tick(&mut l, &w, &c);
        let f = l.firing();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].labels["severity"], "info");
        let ev = events(&c);
        assert_eq!(ev[0].severity, "info");
        // No summary: the event says what was compared.
        assert_eq!(ev[0].message, "load firing: node_load1 = 4 (>= 4)");
    }

    #[tokio::test(start_paused = true)]
    async fn can_track_several_series_of_one_rule_apart() {
        let (c, src) = ctx();
        let w = checks(HOT);
        let mut l = ChecksLoop::new();
        temp(&src, &[("cpu", 75.0), ("board", 40.0)]);
        tick(&mut l, &w, &c);
        tokio::time::advance(Duration::from_secs(30)).await;
        // The board heats up half-way through the cpu's `for`.
        temp(&src, &[("cpu", 76.0), ("board", 71.0)]);
        tick(&mut l, &w, &c);
        tokio::time::advance(Duration::from_secs(30)).await;
        tick(&mut l, &w, &c);
        let all = l.alerts().all();
        assert_eq!(all.len(), 2, "{all:?}");
        let by: BTreeMap<&str, &Alert> = all
            .iter()
            .map(|a| (a.labels["sensor"].as_str(), a))
            .collect();
        assert_eq!(by["cpu"].state, AlertState::Firing);
        assert_eq!(by["cpu"].value, 76.0);
        assert_eq!(by["board"].state, AlertState::Pending);
        assert_eq!(by["board"].summary, "board at 71 °C");
        tokio::time::advance(Duration::from_secs(30)).await;
        tick(&mut l, &w, &c);
        assert_eq!(l.firing().len(), 2);
        // The cpu cools down: only its alert resolves.
        temp(&src, &[("cpu", 50.0), ("board", 72.0)]);
        tick(&mut l, &w, &c);
        let f = l.firing();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].labels["sensor"], "board");
        let m = report(&l);
        assert_eq!(
            family(&m, "onprem_check_matched_series").unwrap().metrics[0].value,
            Value::Single(2.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn can_resolve_an_alert_whose_series_disappears() {
        let (c, src) = ctx();
        let w = checks(HOT);
        let mut l = ChecksLoop::new();
        temp(&src, &[("cpu", 80.0), ("gpu", 90.0)]);
        tick(&mut l, &w, &c);
        tokio::time::advance(Duration::from_secs(60)).await;
        tick(&mut l, &w, &c);
        assert_eq!(l.firing().len(), 2);
        temp(&src, &[("cpu", 80.0)]);
        tick(&mut l, &w, &c);
        let f = l.firing();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].labels["sensor"], "cpu");
        let last = events(&c).pop().unwrap();
        assert_eq!(last.reason, "AlertResolved");
        assert!(
            last.message.contains("sensor=\"gpu\"") && last.message.contains("gone"),
            "{}",
            last.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn can_restart_for_when_a_pending_condition_clears() {
        let (c, src) = ctx();
        let w = checks(HOT);
        let mut l = ChecksLoop::new();
        temp(&src, &[("cpu", 80.0)]);
        tick(&mut l, &w, &c);
        tokio::time::advance(Duration::from_secs(45)).await;
        temp(&src, &[("cpu", 65.0)]);
        tick(&mut l, &w, &c);
        assert!(l.alerts().all().is_empty());
        temp(&src, &[("cpu", 80.0)]);
        tokio::time::advance(Duration::from_secs(15)).await;
        tick(&mut l, &w, &c);
        tokio::time::advance(Duration::from_secs(45)).await;
        tick(&mut l, &w, &c);
        assert!(l.firing().is_empty(), "`for` did not start over");
        assert!(events(&c).is_empty(), "a pending alert makes no event");
        tokio::time::advance(Duration::from_secs(15)).await;
        tick(&mut l, &w, &c);
        assert_eq!(l.firing().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn can_compare_counters_and_skip_summaries() {
        let (c, src) = ctx();
        let w = checks(
            r#"rules:
  - { name: errors, metric: 'onprem_device_errors_total{device=~"ad.*"}', op: ">", threshold: 10 }
  - { name: latency, metric: rpc_seconds, op: ">", threshold: 0 }
"#,
        );
        let mut l = ChecksLoop::new();
        set(
            &src,
            "onprem_device_errors_total",
            Kind::Counter,
            &[(&[("device", "adc")], 11.0), (&[("device", "fan")], 99.0)],
        );
        src.lock().unwrap().push(Family {
            name: "rpc_seconds".into(),
            help: "h".into(),
            kind: Kind::Summary,
            metrics: vec![Metric {
                labels: vec![],
                value: Value::Summary {
                    quantiles: vec![(0.5, 1.0)],
                    sum: 5.0,
                    count: 2.0,
                },
            }],
        });
        tick(&mut l, &w, &c);
        let f = l.firing();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].check.as_str(), f[0].labels["device"].as_str()),
            ("errors", "adc")
        );
        assert_eq!(f[0].severity, Severity::Warning);
    }

    #[tokio::test(start_paused = true)]
    async fn returns_degraded_without_metrics_or_with_a_bad_rule() {
        let c = Ctx::new(None, Arc::new(Recorded::default()));
        let mut l = ChecksLoop::new();
        let a = tick(&mut l, &checks(HOT), &c);
        assert!(
            matches!(a.health, Health::Degraded { ref reason, .. } if reason == "NoMetrics"),
            "{a:?}"
        );
        let (c, src) = ctx();
        temp(&src, &[("cpu", 80.0)]);
        let w = checks(
            r#"rules:
  - { name: bad, metric: "a{b=c}", op: ">", threshold: 1 }
  - { name: worse, metric: x, op: "=>", threshold: 1 }
  - { name: good, metric: onprem_temperature_celsius, op: ">", threshold: 1 }
"#,
        );
        let a = tick(&mut l, &w, &c);
        let Health::Degraded { reason, message } = &a.health else {
            panic!("{a:?}")
        };
        assert_eq!(reason, "BadRule");
        assert!(
            message.contains("bad:") && message.contains("worse:"),
            "{message}"
        );
        // The good rule is evaluated all the same.
        assert_eq!(l.firing().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn evaluates_at_most_the_series_cap_of_one_rule() {
        let (c, src) = ctx();
        let names: Vec<String> = (0..MAX_SERIES_PER_CHECK + 5)
            .map(|i| format!("s{i:05}"))
            .collect();
        let series: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 80.0)).collect();
        temp(&src, &series);
        let w = checks(
            r#"rules:
  - { name: every, metric: onprem_temperature_celsius, op: ">", threshold: 1 }
"#,
        );
        let mut l = ChecksLoop::new();
        let a = tick(&mut l, &w, &c);
        let Health::Degraded { reason, message } = &a.health else {
            panic!("{a:?}")
        };
        assert_eq!(reason, "TooManySeries");
        assert!(message.contains("every match more than 1000"), "{message}");
        assert_eq!(l.firing().len(), MAX_SERIES_PER_CHECK);
        let m = report(&l);
        assert_eq!(
            family(&m, "onprem_check_matched_series").unwrap().metrics[0].value,
            Value::Single(MAX_SERIES_PER_CHECK as f64)
        );
        // Within the cap, the loop is ready again.
        temp(&src, &series[..10]);
        assert!(matches!(tick(&mut l, &w, &c).health, Health::Ready));
        assert_eq!(l.firing().len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn can_keep_alerts_across_a_restart_unless_their_rule_changed() {
        let (c, src) = ctx();
        let w = checks(
            r#"rules:
  - { name: hot, metric: onprem_temperature_celsius, op: ">", threshold: 70 }
  - { name: warm, metric: onprem_temperature_celsius, op: ">", threshold: 50 }
"#,
        );
        let mut first = ChecksLoop::new();
        temp(&src, &[("cpu", 80.0)]);
        tick(&mut first, &w, &c);
        assert_eq!(first.firing().len(), 2);
        let alerts = first.alerts();
        first.on_stop(&w, &c, Stop::Restart);
        drop(first);
        let mut second = ChecksLoop::with_alerts(alerts);
        let mut w2 = w.clone();
        w2.rules[1].threshold = 55.0;
        tick(&mut second, &w2, &c);
        // `hot` goes on (no new event); `warm` changed: resolved, then
        // fired again under its new definition.
        let reasons: Vec<(String, String)> = events(&c)
            .into_iter()
            .map(|e| {
                (
                    e.reason,
                    e.message.split(' ').next().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("AlertFiring", "hot"),
            ("AlertFiring", "warm"),
            ("AlertResolved", "warm"),
            ("AlertFiring", "warm"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(reasons, want);
        assert_eq!(second.firing().len(), 2);
        // A rule removed: its alert resolves.
        w2.rules.remove(0);
        tick(&mut second, &w2, &c);
        let f = second.firing();
        assert_eq!((f.len(), f[0].check.as_str()), (1, "warm"));
        assert!(events(&c).last().unwrap().message.contains("rule removed"));
    }

    #[tokio::test(start_paused = true)]
    async fn can_list_alerts_as_details() {
        let (c, src) = ctx();
        let w = checks(HOT);
        let mut l = ChecksLoop::new();
        temp(&src, &[("cpu", 75.5)]);
        tick(&mut l, &w, &c);
        let d = l.details();
        assert_eq!(d[0]["check"], "hot");
        assert_eq!(d[0]["state"], "pending");
        assert_eq!(d[0]["severity"], "critical");
        assert_eq!(d[0]["value"], 75.5);
        assert_eq!(d[0]["labels"]["team"], "ops");
        assert_eq!(d[0]["summary"], "cpu at 75.5 °C");
        assert!(d[0]["since"].as_f64().unwrap() > 0.0);
        assert!(d[0]["firingSince"].is_null());
    }

    #[test]
    fn can_render_summaries_and_compare() {
        let labels: BTreeMap<String, String> = [("sensor".to_owned(), "cpu".to_owned())]
            .into_iter()
            .collect();
        for (t, want) in [
            ("{{ labels.sensor }} at {{ value }}", "cpu at 0.3"),
            ("{{$labels.sensor}}={{$value}}", "cpu=0.3"),
            (
                "{{ labels.nope }}|{{ other }}|{{ value",
                "|{{ other }}|{{ value",
            ),
            ("no placeholders", "no placeholders"),
        ] {
            assert_eq!(render(t, 0.1 + 0.2, &labels), want, "{t}");
        }
        assert_eq!(format_value(71.0), "71");
        assert_eq!(format_value(1.0e-5), "0.00001");
        assert_eq!(format_value(123_456_789.0), "123457000");
        for (op, v, holds) in [
            (">", 2.0, true),
            (">=", 1.0, true),
            ("<", 1.0, false),
            ("<=", 1.0, true),
            ("==", 1.0, true),
            ("!=", 1.0, false),
            ("!=", f64::NAN, false),
            (">", f64::NAN, false),
        ] {
            assert_eq!(Op::parse(op).unwrap().holds(v, 1.0), holds, "{v} {op} 1");
        }
        assert_eq!(Op::parse("=>"), None);
    }
}
