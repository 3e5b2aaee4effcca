//! A parser for Prometheus text format 0.0.4, used by the textfile
//! collector to read `*.prom` files written by other programs (backup
//! jobs, UPS daemons, cron scripts).

use std::collections::HashMap;

use super::metrics::{Family, Kind, Metric, Value};

/// The result of parsing one file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Families in the order first seen.
    pub families: Vec<Family>,
    /// Whether any sample carried a timestamp (node_exporter refuses those
    /// in textfiles).
    pub has_timestamps: bool,
}

/// Whether `s` is a valid metric name.
pub fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `s` is a valid label name.
pub fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a sample value (`1`, `1.5e3`, `+Inf`, `NaN`).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One sample line: name, sorted labels, value, and whether it carried a
/// timestamp.
type Sample = (String, Vec<(String, String)>, f64, bool);

/// Splits `name{labels} value [ts]` into its parts.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut end = None;
        loop {
            while chars
                .peek()
                .is_some_and(|(_, c)| c.is_whitespace() || *c == ',')
            {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => {
                    end = Some(*i + 1);
                    break;
                }
                None => break,
                _ => {}
            }
            let mut lname = String::new();
            while let Some((_, c)) = chars.peek() {
                if *c == '=' || c.is_whitespace() {
                    break;
                }
                lname.push(*c);
                chars.next();
            }
            while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                chars.next();
            }
            if !valid_label_name(&lname) {
                return Err(format!("invalid label name {lname:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('=') {
                return Err(format!("expected '=' after label name {lname:?}"));
            }
            while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!(
                    "expected '\"' to start the value of label {lname:?}"
                ));
            }
            let mut val = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => val.push('\n'),
                        Some('\\') => val.push('\\'),
                        Some('"') => val.push('"'),
                        other => {
                            return Err(format!("invalid escape {other:?} in label {lname:?}"));
                        }
                    },
                    c => val.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated value of label {lname:?}"));
            }
            if labels.iter().any(|(n, _): &(String, String)| *n == lname) {
                return Err(format!("duplicate label {lname:?}"));
            }
            labels.push((lname, val));
        }
        let end = end.ok_or_else(|| "unterminated label set".to_owned())?;
        rest = &r[end..];
    }
    let mut fields = rest.split_whitespace();
    let v = fields
        .next()
        .ok_or_else(|| format!("no value for {name}"))?;
    let value = parse_value(v).ok_or_else(|| format!("invalid value {v:?} for {name}"))?;
    let has_ts = match fields.next() {
        Some(ts) => {
            ts.parse::<i64>()
                .map_err(|_| format!("invalid timestamp {ts:?} for {name}"))?;
            true
        }
        None => false,
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the value of {name}"));
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((name.to_owned(), labels, value, has_ts))
}

/// Parses a whole file; the first syntax error is returned with its line
/// number.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut helps: HashMap<String, String> = HashMap::new();
    let mut types: HashMap<String, Kind> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim_start();
            let mut parts = c.splitn(3, char::is_whitespace);
            let kw = parts.next().unwrap_or("");
            if kw != "HELP" && kw != "TYPE" {
                continue;
            }
            let name = parts.next().unwrap_or("");
            if !valid_metric_name(name) {
                return Err(format!(
                    "line {lineno}: invalid metric name {name:?} in {kw}"
                ));
            }
            let arg = parts.next().unwrap_or("").trim_start();
            if kw == "HELP" {
                if helps.insert(name.to_owned(), unescape_help(arg)).is_some() {
                    return Err(format!("line {lineno}: second HELP line for {name}"));
                }
            } else {
                let kind = match arg.trim() {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    "untyped" => Kind::Untyped,
                    "summary" => Kind::Summary,
                    "histogram" => Kind::Histogram,
                    t => return Err(format!("line {lineno}: unknown metric type {t:?}")),
                };
                if index.contains_key(name) {
                    return Err(format!("line {lineno}: TYPE for {name} after its samples"));
                }
                if types.insert(name.to_owned(), kind).is_some() {
                    return Err(format!("line {lineno}: second TYPE line for {name}"));
                }
            }
            continue;
        }
        let (name, mut labels, value, ts) =
            parse_sample(line).map_err(|e| format!("line {lineno}: {e}"))?;
        out.has_timestamps |= ts;
        // Which family does this sample belong to?
        let mut fam_name = name.clone();
        let mut suffix = "";
        for s in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(s) {
                if matches!(types.get(base), Some(Kind::Summary) | Some(Kind::Histogram)) {
                    fam_name = base.to_owned();
                    suffix = s;
                }
            }
        }
        let kind = types.get(&fam_name).copied().unwrap_or(Kind::Untyped);
        let idx = *index.entry(fam_name.clone()).or_insert_with(|| {
            out.families.push(Family {
                name: fam_name.clone(),
                help: String::new(),
                kind,
                metrics: Vec::new(),
            });
            out.families.len() - 1
        });
        let fam = &mut out.families[idx];
        match kind {
            Kind::Summary | Kind::Histogram => {
                let special = if kind == Kind::Summary {
                    "quantile"
                } else {
                    "le"
                };
                let mut bound = None;
                if suffix.is_empty() || suffix == "_bucket" {
                    let pos = labels
                        .iter()
                        .position(|(n, _)| n == special)
                        .ok_or_else(|| {
                            format!("line {lineno}: {name} needs a {special:?} label")
                        })?;
                    let (_, b) = labels.remove(pos);
                    bound = Some(
                        parse_value(&b)
                            .ok_or_else(|| format!("line {lineno}: invalid {special} {b:?}"))?,
                    );
                }
                // The bound's label is the family's own: on a _sum or
                // _count it would be written twice on every bucket.
                if labels.iter().any(|(n, _)| n == special) {
                    return Err(format!(
                        "line {lineno}: {name} may not have a {special:?} label"
                    ));
                }
                let m = match fam.metrics.iter_mut().find(|m| m.labels == labels) {
                    Some(m) => m,
                    None => {
                        let v = if kind == Kind::Summary {
                            Value::Summary {
                                quantiles: Vec::new(),
                                sum: 0.0,
                                count: 0.0,
                            }
                        } else {
                            Value::Histogram {
                                buckets: Vec::new(),
                                sum: 0.0,
                                count: 0.0,
                            }
                        };
                        fam.metrics.push(Metric { labels, value: v });
                        let last = fam.metrics.len() - 1;
                        &mut fam.metrics[last]
                    }
                };
                match (&mut m.value, suffix, bound) {
                    (Value::Summary { quantiles, .. }, "", Some(q)) => quantiles.push((q, value)),
                    (Value::Histogram { buckets, .. }, "_bucket", Some(le)) => {
                        buckets.push((le, value))
                    }
                    (Value::Summary { sum, .. } | Value::Histogram { sum, .. }, "_sum", _) => {
                        *sum = value
                    }
                    (
                        Value::Summary { count, .. } | Value::Histogram { count, .. },
                        "_count",
                        _,
                    ) => *count = value,
                    _ => {
                        return Err(format!(
                            "line {lineno}: unexpected sample {name} for {}",
                            kind.as_str()
                        ));
                    }
                }
            }
            _ => {
                if fam.metrics.iter().any(|m| m.labels == labels) {
                    return Err(format!("line {lineno}: duplicate sample for {name}"));
                }
                fam.metrics.push(Metric {
                    labels,
                    value: Value::Single(value),
                });
            }
        }
    }
    for f in &mut out.families {
        if let Some(h) = helps.remove(&f.name) {
            f.help = h;
        }
        for m in &mut f.metrics {
            if let Value::Histogram { buckets, .. } = &mut m.value {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_gauge_summary_and_help() {
        let p = parse(
            "# HELP a An \\\\ a.\n# TYPE a gauge\na{x=\"1\",b=\"q\\\"\"} 3\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\nu 1\n",
        )
        .expect("parses");
        assert_eq!(p.families.len(), 3);
        assert_eq!(p.families[0].help, "An \\ a.");
        assert_eq!(
            p.families[0].metrics[0].labels,
            vec![("b".into(), "q\"".into()), ("x".into(), "1".into())]
        );
        assert_eq!(
            p.families[1].metrics[0].value,
            Value::Summary {
                quantiles: vec![(0.5, 1.0)],
                sum: 2.0,
                count: 3.0
            }
        );
        assert_eq!(p.families[2].kind, Kind::Untyped);
        assert!(!p.has_timestamps);
    }

    #[test]
    fn can_notice_timestamps() {
        assert!(parse("a 1 1700000000000\n").expect("parses").has_timestamps);
    }

    macro_rules! rejects {
        ($($name:ident: $text:expr,)*) => {$(
            #[test]
            fn $name() { assert!(parse($text).is_err(), "{:?}", $text); }
        )*};
    }

    rejects! {
        returns_error_when_name_is_invalid: "1abc 1\n",
        returns_error_when_value_is_missing: "abc\n",
        returns_error_when_value_is_garbage: "abc x\n",
        returns_error_when_label_is_unterminated: "abc{a=\"1} 1\n",
        returns_error_when_type_is_unknown: "# TYPE abc thing\n",
        returns_error_when_type_follows_samples: "abc 1\n# TYPE abc gauge\n",
        returns_error_when_sample_is_duplicated: "abc 1\nabc 2\n",
        returns_error_when_trailing_garbage: "abc 1 2 3\n",
        returns_error_when_a_histogram_sum_has_le: "# TYPE h histogram\nh_sum{le=\"1\"} 1\n",
        returns_error_when_a_summary_count_has_quantile:
            "# TYPE s summary\ns_count{quantile=\"0.5\"} 1\n",
    }
}
