//! Series selectors in checks, PromQL-style: `node_load1`,
//! `onprem_temperature_celsius{sensor="cpu"}`, with `=`, `!=`, `=~`
//! and `!~` (regular expressions anchored, as in PromQL).

use std::fmt;

/// How one label is matched.
#[derive(Debug, Clone)]
pub enum Match {
    /// `=`.
    Eq(String),
    /// `!=`.
    Ne(String),
    /// `=~`.
    Re(regex::Regex),
    /// `!~`.
    NotRe(regex::Regex),
}

/// A parsed selector.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The metric name (empty: any name, then a matcher is required).
    pub name: String,
    /// Label matchers.
    pub labels: Vec<(String, Match)>,
}

impl Selector {
    /// Parses `name{label="v",…}`.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let s = s.trim();
        let (name, rest) = match s.find('{') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let name = name.trim();
        if !name.is_empty() && !valid_name(name, true) {
            return Err(format!("{name:?} is not a metric name"));
        }
        let mut labels = Vec::new();
        if let Some(rest) = rest {
            let body = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(|| format!("{s:?}: unbalanced braces"))?;
            let mut chars = body.trim();
            while !chars.is_empty() {
                let op_at = chars
                    .find(['=', '!'])
                    .ok_or_else(|| format!("{s:?}: expected label=\"value\""))?;
                let label = chars[..op_at].trim();
                if !valid_name(label, false) {
                    return Err(format!("{s:?}: {label:?} is not a label name"));
                }
                let after = &chars[op_at..];
                let (op, after) = ["=~", "!~", "!=", "="]
                    .iter()
                    .find_map(|op| after.strip_prefix(op).map(|a| (*op, a)))
                    .ok_or_else(|| format!("{s:?}: expected =, !=, =~ or !~ after {label}"))?;
                let after = after.trim_start();
                let after = after
                    .strip_prefix('"')
                    .ok_or_else(|| format!("{s:?}: the value of {label} must be quoted"))?;
                let mut value = String::new();
                let mut escaped = false;
                let mut end = None;
                for (i, c) in after.char_indices() {
                    if escaped {
                        value.push(match c {
                            'n' => '\n',
                            other => other,
                        });
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(i);
                        break;
                    } else {
                        value.push(c);
                    }
                }
                let end = end.ok_or_else(|| format!("{s:?}: unterminated value of {label}"))?;
                let m = match op {
                    "=" => Match::Eq(value),
                    "!=" => Match::Ne(value),
                    "=~" | "!~" => {
                        let re = regex::Regex::new(&format!("^(?:{value})$"))
                            .map_err(|e| format!("{s:?}: bad regular expression: {e}"))?;
                        if op == "=~" {
                            Match::Re(re)
                        } else {
                            Match::NotRe(re)
                        }
                    }
                    _ => return Err(format!("{s:?}: unknown operator {op}")),
                };
                labels.push((label.to_owned(), m));
                chars = after[end + 1..].trim_start();
                chars = chars.strip_prefix(',').unwrap_or(chars).trim_start();
            }
        }
        if name.is_empty() && labels.is_empty() {
            return Err("empty selector".into());
        }
        Ok(Selector {
            name: name.to_owned(),
            labels,
        })
    }

    /// Whether a series matches (a missing label matches as "").
    pub fn matches(&self, name: &str, labels: &[(String, String)]) -> bool {
        if !self.name.is_empty() && self.name != name {
            return false;
        }
        self.labels.iter().all(|(l, m)| {
            let v = labels
                .iter()
                .find(|(k, _)| k == l)
                .map_or("", |(_, v)| v.as_str());
            match m {
                Match::Eq(x) => v == x,
                Match::Ne(x) => v != x,
                Match::Re(r) => r.is_match(v),
                Match::NotRe(r) => !r.is_match(v),
            }
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (l, m)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                let (op, v) = match m {
                    Match::Eq(v) => ("=", v.clone()),
                    Match::Ne(v) => ("!=", v.clone()),
                    Match::Re(r) => ("=~", strip_anchor(r.as_str())),
                    Match::NotRe(r) => ("!~", strip_anchor(r.as_str())),
                };
                write!(f, "{l}{op}{v:?}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

fn strip_anchor(s: &str) -> String {
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
        .to_owned()
}

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn can_match_names_and_every_operator() {
        let s = Selector::parse(
            r#"onprem_temperature_celsius{sensor="cpu", zone!="x",board=~"pi.*",kind!~"gpu|ups"}"#,
        )
        .unwrap();
        assert!(s.matches(
            "onprem_temperature_celsius",
            &l(&[("sensor", "cpu"), ("board", "pi5")])
        ));
        assert!(!s.matches(
            "onprem_temperature_celsius",
            &l(&[("sensor", "cpu"), ("board", "xpi5")])
        ));
        assert!(!s.matches(
            "onprem_temperature_celsius",
            &l(&[("sensor", "cpu"), ("board", "pi5"), ("kind", "gpu")])
        ));
        assert!(!s.matches("node_load1", &l(&[("sensor", "cpu"), ("board", "pi")])));
        assert_eq!(
            s.to_string(),
            r#"onprem_temperature_celsius{sensor="cpu",zone!="x",board=~"pi.*",kind!~"gpu|ups"}"#
        );
        assert!(
            Selector::parse("node_load1")
                .unwrap()
                .matches("node_load1", &[])
        );
    }

    #[test]
    fn returns_error_naming_the_problem() {
        for (s, want) in [
            ("", "empty"),
            ("1abc", "not a metric name"),
            ("a{b=\"c\"", "unbalanced"),
            ("a{b=c}", "quoted"),
            ("a{b=\"c}", "unterminated"),
            ("a{b=~\"(\"}", "regular expression"),
            ("a{9=\"x\"}", "label name"),
        ] {
            let e = Selector::parse(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
