//! The two exposition formats: Prometheus text 0.0.4 (the default, byte for
//! byte what node_exporter writes) and OpenMetrics 1.0 (when the scraper's
//! `Accept` header asks for it).

use std::fmt::Write;

use super::metrics::{Family, Kind, Value};

/// Content type of Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4.
    Text,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// Chooses a format from an `Accept` header: the supported media type
    /// with the highest `q`, the earlier one on a tie; text when nothing
    /// supported is named.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f32, Format)> = None;
        for part in accept.split(',') {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            for p in params {
                if let Some(v) = p.strip_prefix("q=") {
                    q = v.parse().unwrap_or(0.0);
                } else if let Some(v) = p.strip_prefix("version=") {
                    version = Some(v.to_owned());
                }
            }
            let fmt = match media.as_str() {
                "application/openmetrics-text" => match version.as_deref() {
                    None | Some("1.0.0") | Some("0.0.1") => Format::OpenMetrics,
                    _ => continue,
                },
                "text/plain" => Format::Text,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, fmt));
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }
}

/// Writes `families` in `format` to `out`.
pub fn encode(out: &mut String, families: &[Family], format: Format) {
    match format {
        Format::Text => encode_text(out, families),
        Format::OpenMetrics => encode_openmetrics(out, families),
    }
}

/// Prometheus text format 0.0.4, as Go's `expfmt.MetricFamilyToText`.
pub fn encode_text(out: &mut String, families: &[Family]) {
    for f in families {
        if f.metrics.is_empty() {
            continue;
        }
        out.push_str("# HELP ");
        out.push_str(&f.name);
        out.push(' ');
        escape_help(out, &f.help, false);
        out.push_str("\n# TYPE ");
        out.push_str(&f.name);
        out.push(' ');
        out.push_str(f.kind.as_str());
        out.push('\n');
        for m in &f.metrics {
            match &m.value {
                Value::Single(v) => sample(out, &f.name, "", &m.labels, None, *v, false),
                Value::Summary {
                    quantiles,
                    sum,
                    count,
                } => {
                    for (q, v) in quantiles {
                        sample(
                            out,
                            &f.name,
                            "",
                            &m.labels,
                            Some(("quantile", *q)),
                            *v,
                            false,
                        );
                    }
                    sample(out, &f.name, "_sum", &m.labels, None, *sum, false);
                    sample(out, &f.name, "_count", &m.labels, None, *count, false);
                }
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    for (le, v) in buckets {
                        sample(
                            out,
                            &f.name,
                            "_bucket",
                            &m.labels,
                            Some(("le", *le)),
                            *v,
                            false,
                        );
                    }
                    if !buckets.iter().any(|(le, _)| le.is_infinite()) {
                        sample(
                            out,
                            &f.name,
                            "_bucket",
                            &m.labels,
                            Some(("le", f64::INFINITY)),
                            *count,
                            false,
                        );
                    }
                    sample(out, &f.name, "_sum", &m.labels, None, *sum, false);
                    sample(out, &f.name, "_count", &m.labels, None, *count, false);
                }
            }
        }
    }
}

/// OpenMetrics 1.0, as Go's `expfmt.MetricFamilyToOpenMetrics`: counters
/// named without `_total` on HELP/TYPE and with it on samples, `unknown`
/// for untyped, floats always with a `.` or exponent, and `# EOF`.
pub fn encode_openmetrics(out: &mut String, families: &[Family]) {
    for f in families {
        if f.metrics.is_empty() {
            continue;
        }
        let (fam_name, sample_suffix) = match f.kind {
            Kind::Counter => (f.name.strip_suffix("_total").unwrap_or(&f.name), "_total"),
            _ => (f.name.as_str(), ""),
        };
        let kind = match f.kind {
            Kind::Untyped => "unknown",
            k => k.as_str(),
        };
        let _ = write!(out, "# HELP {fam_name} ");
        escape_help(out, &f.help, true);
        let _ = writeln!(out, "\n# TYPE {fam_name} {kind}");
        for m in &f.metrics {
            match &m.value {
                Value::Single(v) => sample(out, fam_name, sample_suffix, &m.labels, None, *v, true),
                Value::Summary {
                    quantiles,
                    sum,
                    count,
                } => {
                    for (q, v) in quantiles {
                        sample(
                            out,
                            fam_name,
                            "",
                            &m.labels,
                            Some(("quantile", *q)),
                            *v,
                            true,
                        );
                    }
                    sample(out, fam_name, "_sum", &m.labels, None, *sum, true);
                    sample(out, fam_name, "_count", &m.labels, None, *count, true);
                }
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    for (le, v) in buckets {
                        sample(
                            out,
                            fam_name,
                            "_bucket",
                            &m.labels,
                            Some(("le", *le)),
                            *v,
                            true,
                        );
                    }
                    if !buckets.iter().any(|(le, _)| le.is_infinite()) {
                        sample(
                            out,
                            fam_name,
                            "_bucket",
                            &m.labels,
                            Some(("le", f64::INFINITY)),
                            *count,
                            true,
                        );
                    }
                    sample(out, fam_name, "_sum", &m.labels, None, *sum, true);
                    sample(out, fam_name, "_count", &m.labels, None, *count, true);
                }
            }
        }
    }
    out.push_str("# EOF\n");
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    extra: Option<(&str, f64)>,
    value: f64,
    om: bool,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        for (k, v) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label(out, v);
            out.push('"');
        }
        if let Some((k, v)) = extra {
            if !first {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            write_float(out, v, om);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_float(out, value, om);
    out.push('\n');
}

fn escape_help(out: &mut String, s: &str, om: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if om => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn escape_label(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Writes `v` as Go's `strconv.FormatFloat(v, 'g', -1, 64)` does (what
/// node_exporter prints), or in OpenMetrics form (`1.0`, never a bare
/// integer).
pub fn write_float(out: &mut String, v: f64, om: bool) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let start = out.len();
    go_format_g(out, v);
    if om && !out[start..].contains(['e', '.']) {
        out.push_str(".0");
    }
}

/// Go's `%g` with shortest precision: exponent form when the decimal
/// exponent is below -4 or at least 6, otherwise plain digits.
fn go_format_g(out: &mut String, v: f64) {
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde±x".
    let mut buf = String::with_capacity(32);
    let _ = write!(buf, "{:e}", v.abs());
    let (mant, exp) = buf.split_once('e').unwrap_or((&buf, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if v < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.abs());
        return;
    }
    let dp = exp + 1; // digits before the decimal point
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let dp = dp as usize;
        if digits.len() <= dp {
            out.push_str(&digits);
            for _ in digits.len()..dp {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..dp]);
            out.push('.');
            out.push_str(&digits[dp..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::metrics::MetricWriter;

    fn g(v: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, v, false);
        s
    }

    macro_rules! go_float_cases {
        ($($name:ident: $v:expr => $want:expr,)*) => {$(
            #[test]
            fn $name() { assert_eq!(g($v), $want); }
        )*};
    }

    // Values and strings as node_exporter 1.5 printed them.
    go_float_cases! {
        can_format_integer_below_a_million: 197640.0 => "197640",
        can_format_million_in_exponent_form: 1021384.0 => "1.021384e+06",
        can_format_large_bytes: 16661342208.0 => "1.6661342208e+10",
        can_format_round_exponent: 125000000.0 => "1.25e+08",
        can_format_fraction: 132.07 => "132.07",
        can_format_float_noise_as_go_does: 36.0 * 0.001 => "0.036000000000000004",
        can_format_small_exponent: 0.000097181 => "9.7181e-05",
        can_format_small_plain: 0.000556329 => "0.000556329",
        can_format_negative: -125000.0 => "-125000",
        can_format_zero: 0.0 => "0",
        can_format_one: 1.0 => "1",
        can_format_timestamp: 1795382554.904842 => "1.795382554904842e+09",
        can_format_inf: f64::INFINITY => "+Inf",
    }

    #[test]
    fn can_format_openmetrics_floats() {
        let mut s = String::new();
        write_float(&mut s, 1.0, true);
        s.push(' ');
        write_float(&mut s, 1e6, true);
        assert_eq!(s, "1.0 1e+06");
    }

    #[test]
    fn can_negotiate_what_prometheus_sends() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=9")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9,application/openmetrics-text;q=0.5")),
            Format::Text
        );
    }

    #[test]
    fn can_encode_counter_in_both_formats() {
        let mut w = MetricWriter::new();
        w.counter("node_forks_total", "Total number of forks.", &[], 12.0);
        w.untyped(
            "node_vmstat_pgfault",
            "/proc/vmstat information field pgfault.",
            &[],
            3.0,
        );
        w.gauge("x", "a \"q\" \\ \n", &[("l", "v\"\\\n")], 0.5);
        let f = w.finish();
        let mut t = String::new();
        encode_text(&mut t, &f);
        assert_eq!(
            t,
            "# HELP node_forks_total Total number of forks.\n# TYPE node_forks_total counter\nnode_forks_total 12\n\
             # HELP node_vmstat_pgfault /proc/vmstat information field pgfault.\n# TYPE node_vmstat_pgfault untyped\nnode_vmstat_pgfault 3\n\
             # HELP x a \"q\" \\\\ \\n\n# TYPE x gauge\nx{l=\"v\\\"\\\\\\n\"} 0.5\n"
        );
        let mut o = String::new();
        encode_openmetrics(&mut o, &f);
        assert!(
            o.contains("# TYPE node_forks counter\nnode_forks_total 12.0\n"),
            "{o}"
        );
        assert!(o.contains("# TYPE node_vmstat_pgfault unknown\n"), "{o}");
        assert!(o.contains("# HELP x a \\\"q\\\""), "{o}");
        assert!(o.ends_with("# EOF\n"));
    }
}
