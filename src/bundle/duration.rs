//! Durations as bundles write them: `500ms`, `5s`, `2m`, `1h`, `1m30s`,
//! or a bare number of seconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// `s` seconds.
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Seconds, as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
}

/// Parses `1h2m3s`, `250ms`, `1.5s`, `90` (seconds).
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return seconds(secs, s);
    }
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: a number needs a unit (ms, s, m, h, d)"))?;
        if num_end == 0 {
            return Err(format!(
                "{s:?} is not a duration (write 500ms, 5s, 2m, 1h30m)"
            ));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("{s:?}: {:?} is not a number", &rest[..num_end]))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => {
                return Err(format!(
                    "{s:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        total += n * unit;
        rest = &rest[unit_end..];
    }
    seconds(total, s)
}

fn seconds(secs: f64, orig: &str) -> Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{orig:?} is not a duration between 0 and 1e9 s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            let s = d.as_secs();
            if s > 0 && s % 3600 == 0 {
                write!(f, "{}h", s / 3600)
            } else if s > 0 && s % 60 == 0 {
                write!(f, "{}m", s / 60)
            } else {
                write!(f, "{s}s")
            }
        } else if d.as_nanos() % 1_000_000 == 0 {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}s", d.as_secs_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration such as 500ms, 5s, 2m or 1h")
        })?;
        let parsed = match raw {
            Raw::Num(n) => seconds(n, &n.to_string()),
            Raw::Text(t) => parse(&t),
        };
        parsed.map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: 500ms, 5s, 2m, 1h30m, or a number of seconds.",
            "type": ["string", "number"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_units_and_compounds() {
        for (s, ms) in [
            ("500ms", 500),
            ("5s", 5000),
            ("2m", 120_000),
            ("1h30m", 5_400_000),
            ("1.5s", 1500),
            ("90", 90_000),
            ("0", 0),
        ] {
            assert_eq!(parse(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
    }

    #[test]
    fn returns_error_naming_the_problem() {
        assert!(parse("5").is_ok());
        assert!(parse("5x").unwrap_err().contains("unknown unit"));
        assert!(parse("s").unwrap_err().contains("not a duration"));
        assert!(parse("-1").unwrap_err().contains("between"));
        assert!(parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn can_print_what_it_parses() {
        for s in ["500ms", "5s", "2m", "1h", "90s"] {
            assert_eq!(Dur(parse(s).unwrap()).to_string(), s);
        }
    }
}
