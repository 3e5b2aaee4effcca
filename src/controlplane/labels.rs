//! Kubernetes-style label selectors, for choosing nodes by their
//! `metadata.labels` (`onprem get nodes -l facility=lab,rack in (a,b)`,
//! a rollout's target).
//!
//! The string syntax is the one `kubectl -l` takes; terms are joined by
//! `,` (all must hold) and whitespace between tokens is ignored:
//!
//! | term | matches when |
//! |---|---|
//! | `k=v`, `k==v` | `k` is set to `v` |
//! | `k!=v` | `k` is not set, or set to something else than `v` |
//! | `k in (a,b)` | `k` is set to `a` or `b` |
//! | `k notin (a,b)` | `k` is not set, or set to neither `a` nor `b` |
//! | `k` | `k` is set (to anything) |
//! | `!k` | `k` is not set |
//!
//! An empty selector matches every label set. Keys and values are checked
//! as Kubernetes checks them: a key is an optional DNS subdomain prefix
//! and `/`, then a name of at most 63 characters, alphanumeric at both
//! ends with `-`, `_` or `.` between; a value is empty or follows the
//! name rule.
//!
//! In YAML and JSON a selector is written either as that string or as
//! Kubernetes' `LabelSelector` object (`matchLabels`, `matchExpressions`);
//! it is always written back as the string ([`Selector`]'s `Display`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest name part of a key, and the longest value.
const MAX_NAME_LEN: usize = 63;
/// The longest DNS subdomain prefix of a key.
const MAX_PREFIX_LEN: usize = 253;

/// How a [`Requirement`] compares its key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `k=v`: set to the value.
    Equals,
    /// `k!=v`: not set, or set to another value.
    NotEquals,
    /// `k in (a,b)`: set to one of the values.
    In,
    /// `k notin (a,b)`: not set, or set to none of the values.
    NotIn,
    /// `k`: set.
    Exists,
    /// `!k`: not set.
    DoesNotExist,
}

/// One term of a selector: a key, an operator and its values (one for
/// `=`/`!=`, at least one for `in`/`notin`, sorted and without
/// duplicates; none for exists/not exists).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    fn new(key: &str, operator: Operator, mut values: Vec<String>) -> Requirement {
        values.sort();
        values.dedup();
        Requirement {
            key: key.to_owned(),
            operator,
            values,
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values (sorted, without duplicates).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this term.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let got = labels.get(&self.key);
        let listed = got.is_some_and(|v| self.values.iter().any(|w| w == v));
        match self.operator {
            Operator::Equals | Operator::In => listed,
            Operator::NotEquals | Operator::NotIn => !listed,
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map_or("", String::as_str);
        // A set of the empty value alone is `(,)`: `()` does not parse.
        let set = if self.values == [""] {
            ",".to_owned()
        } else {
            self.values.join(",")
        };
        match self.operator {
            Operator::Equals => write!(f, "{}={first}", self.key),
            Operator::NotEquals => write!(f, "{}!={first}", self.key),
            Operator::In => write!(f, "{} in ({set})", self.key),
            Operator::NotIn => write!(f, "{} notin ({set})", self.key),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A label selector: terms that must all hold. Built by [`Selector::parse`]
/// or [`Selector::from_match_labels`]; its terms are kept sorted, so equal
/// selectors print the same canonical string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

/// Why a selector string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label selector at byte {position}, in term {term:?}: {problem}")]
pub struct SelectorError {
    /// Byte offset in the input where the problem was found.
    pub position: usize,
    /// The term (between commas) that holds it.
    pub term: String,
    /// What is wrong, and what was expected.
    pub problem: String,
}

impl Selector {
    /// Parses the `kubectl -l` syntax (see the module doc). An empty or
    /// blank string is the empty selector.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut lx = Lexer { s, pos: 0 };
        let mut reqs = Vec::new();
        if lx.peek().1 == Tok::End {
            return Ok(Selector::default());
        }
        loop {
            let start = lx.peek().0;
            let fail = |(position, problem): (usize, String)| SelectorError {
                position,
                term: term_at(s, start).trim().to_owned(),
                problem,
            };
            reqs.push(parse_term(&mut lx).map_err(fail)?);
            match lx.next() {
                (_, Tok::Comma) => {}
                (_, Tok::End) => break,
                (pos, t) => {
                    return Err(fail((
                        pos,
                        format!("expected ',' or the end of the selector, found {t}"),
                    )));
                }
            }
        }
        Ok(Selector::from_requirements(reqs))
    }

    /// `k=v` for every entry of a `matchLabels` map. Keys and values are
    /// not checked: use [`validate_labels`] first where they come from a
    /// user.
    pub fn from_match_labels(labels: &BTreeMap<String, String>) -> Selector {
        Selector::from_requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement::new(k, Operator::Equals, vec![v.clone()]))
                .collect(),
        )
    }

    fn from_requirements(mut reqs: Vec<Requirement>) -> Selector {
        reqs.sort();
        reqs.dedup();
        Selector { reqs }
    }

    /// Whether `labels` satisfy every term (always, for the empty selector).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector has no terms, and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The terms, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.reqs
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }
}

/// Every problem with a node's labels, as (key, problem) pairs: keys and
/// values checked by the rules in the module doc. Empty when all is well.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in labels {
        if let Err(p) = check_key(k) {
            out.push((k.clone(), p));
        }
        if let Err(p) = check_value(v) {
            out.push((k.clone(), p));
        }
    }
    out
}

/// Checks a label key: `[prefix/]name`.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_prefix(prefix).map_err(|p| format!("key {key:?}: {p}"))?;
            name
        }
        None => key,
    };
    check_name(name).map_err(|p| format!("key {key:?}: name part {p}"))
}

/// Checks a label value: empty, or a name.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value).map_err(|p| format!("value {value:?} {p}"))
}

/// The name rule: 1 to 63 characters, `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_NAME_LEN} characters (it has {})",
            name.len()
        ));
    }
    let inner_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ends_ok || !name.chars().all(inner_ok) {
        return Err("must consist of alphanumeric characters, '-', '_' or '.', \
                    and start and end with an alphanumeric character"
            .into());
    }
    Ok(())
}

/// A key's prefix: a lower-case RFC 1123 DNS subdomain.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("prefix before '/' must not be empty".into());
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "prefix must be at most {MAX_PREFIX_LEN} characters"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if !prefix.split('.').all(label_ok) {
        return Err(format!(
            "prefix {prefix:?} must be a lower-case DNS subdomain (like example.com)"
        ));
    }
    Ok(())
}

/// The term of `s` that starts at `start`: up to the next `,` outside
/// parentheses.
fn term_at(s: &str, start: usize) -> &str {
    let rest = s.get(start..).unwrap_or("");
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => return &rest[..i],
            _ => {}
        }
    }
    rest
}

/// A token of the selector syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// A key, a value, or `in`/`notin`.
    Word(&'a str),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    LParen,
    RParen,
    Comma,
    /// A symbol the syntax does not use (`<`, `>`).
    Other(char),
    End,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "{w:?}"),
            Tok::Eq => f.write_str("'='"),
            Tok::DoubleEq => f.write_str("'=='"),
            Tok::NotEq => f.write_str("'!='"),
            Tok::Bang => f.write_str("'!'"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
            Tok::Other(c) => write!(f, "'{c}'"),
            Tok::End => f.write_str("the end of the selector"),
        }
    }
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next token and its byte offset, without consuming it.
    fn peek(&self) -> (usize, Tok<'a>) {
        self.scan().0
    }

    /// The next token and its byte offset.
    fn next(&mut self) -> (usize, Tok<'a>) {
        let (tok, end) = self.scan();
        self.pos = end;
        tok
    }

    fn scan(&self) -> ((usize, Tok<'a>), usize) {
        let rest = self.s.get(self.pos..).unwrap_or("");
        let skipped = rest.len() - rest.trim_start().len();
        let at = self.pos + skipped;
        let rest = &rest[skipped..];
        let mut chars = rest.chars();
        let Some(c) = chars.next() else {
            return ((at, Tok::End), at);
        };
        let second = chars.next();
        let (tok, len) = match (c, second) {
            ('=', Some('=')) => (Tok::DoubleEq, 2),
            ('=', _) => (Tok::Eq, 1),
            ('!', Some('=')) => (Tok::NotEq, 2),
            ('!', _) => (Tok::Bang, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            (',', _) => (Tok::Comma, 1),
            ('<' | '>', _) => (Tok::Other(c), 1),
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || "=!(),<>".contains(c))
                    .unwrap_or(rest.len());
                (Tok::Word(&rest[..len]), len)
            }
        };
        ((at, tok), at + len)
    }
}

type TermError = (usize, String);

fn parse_term(lx: &mut Lexer<'_>) -> Result<Requirement, TermError> {
    match lx.next() {
        (_, Tok::Bang) => {
            let key = parse_key(lx, "after '!'")?;
            Ok(Requirement::new(key, Operator::DoesNotExist, Vec::new()))
        }
        (pos, Tok::Word(key)) => {
            check_key(key).map_err(|p| (pos, p))?;
            let op = match lx.peek() {
                (_, Tok::Comma | Tok::End) => {
                    return Ok(Requirement::new(key, Operator::Exists, Vec::new()));
                }
                (_, Tok::Eq | Tok::DoubleEq) => Operator::Equals,
                (_, Tok::NotEq) => Operator::NotEquals,
                (_, Tok::Word("in")) => Operator::In,
                (_, Tok::Word("notin")) => Operator::NotIn,
                (pos, t) => {
                    return Err((
                        pos,
                        format!(
                            "expected an operator ('=', '==', '!=', 'in', 'notin'), ',' \
                             or the end of the selector after key {key:?}, found {t}"
                        ),
                    ));
                }
            };
            lx.next();
            let values = match op {
                Operator::In | Operator::NotIn => parse_set(lx, op)?,
                _ => vec![parse_value(lx)?],
            };
            Ok(Requirement::new(key, op, values))
        }
        (pos, t) => Err((pos, format!("expected a label key or '!key', found {t}"))),
    }
}

fn parse_key<'a>(lx: &mut Lexer<'a>, after: &str) -> Result<&'a str, TermError> {
    match lx.next() {
        (pos, Tok::Word(key)) => {
            check_key(key).map_err(|p| (pos, p))?;
            Ok(key)
        }
        (pos, t) => Err((pos, format!("expected a label key {after}, found {t}"))),
    }
}

/// A value, possibly empty (`k=` is `k` set to the empty string).
fn parse_value(lx: &mut Lexer<'_>) -> Result<String, TermError> {
    match lx.peek() {
        (pos, Tok::Word(v)) => {
            lx.next();
            check_value(v).map_err(|p| (pos, p))?;
            Ok(v.to_owned())
        }
        _ => Ok(String::new()),
    }
}

/// `(a,b,…)` after `in`/`notin`.
fn parse_set(lx: &mut Lexer<'_>, op: Operator) -> Result<Vec<String>, TermError> {
    let word = if op == Operator::In { "in" } else { "notin" };
    match lx.next() {
        (_, Tok::LParen) => {}
        (pos, t) => return Err((pos, format!("expected '(' after '{word}', found {t}"))),
    }
    if let (pos, Tok::RParen) = lx.peek() {
        return Err((pos, format!("'{word}' needs at least one value")));
    }
    let mut values = Vec::new();
    loop {
        values.push(parse_value(lx)?);
        match lx.next() {
            (_, Tok::Comma) => {}
            (_, Tok::RParen) => return Ok(values),
            (pos, t) => {
                return Err((
                    pos,
                    format!("expected ',' or ')' in the values of '{word}', found {t}"),
                ));
            }
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Kubernetes' `LabelSelector` object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Object {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<Expression>,
}

/// One entry of `matchExpressions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expression {
    key: String,
    operator: ExpressionOperator,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
enum ExpressionOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Object {
    fn into_selector(self) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for (k, v) in &self.match_labels {
            check_key(k).map_err(|p| format!("matchLabels: {p}"))?;
            check_value(v).map_err(|p| format!("matchLabels.{k}: {p}"))?;
            reqs.push(Requirement::new(k, Operator::Equals, vec![v.clone()]));
        }
        for (i, e) in self.match_expressions.into_iter().enumerate() {
            let at = format!("matchExpressions[{i}]");
            check_key(&e.key).map_err(|p| format!("{at}.key: {p}"))?;
            for (j, v) in e.values.iter().enumerate() {
                check_value(v).map_err(|p| format!("{at}.values[{j}]: {p}"))?;
            }
            let (op, name, wants_values) = match e.operator {
                ExpressionOperator::In => (Operator::In, "In", true),
                ExpressionOperator::NotIn => (Operator::NotIn, "NotIn", true),
                ExpressionOperator::Exists => (Operator::Exists, "Exists", false),
                ExpressionOperator::DoesNotExist => (Operator::DoesNotExist, "DoesNotExist", false),
            };
            if wants_values && e.values.is_empty() {
                return Err(format!(
                    "{at}.values: operator {name} needs at least one value"
                ));
            }
            if !wants_values && !e.values.is_empty() {
                return Err(format!("{at}.values: operator {name} takes no values"));
            }
            reqs.push(Requirement::new(&e.key, op, e.values));
        }
        Ok(Selector::from_requirements(reqs))
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Selector, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = Selector;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a label selector: a string like \"app=web,tier in (a,b)\" \
                     or a map with matchLabels and matchExpressions",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Selector, E> {
                Selector::parse(v).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Selector, A::Error> {
                let obj = Object::deserialize(de::value::MapAccessDeserializer::new(map))?;
                obj.into_selector().map_err(de::Error::custom)
            }
        }

        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    /// (selector, labels, expected match)
    macro_rules! match_cases {
        ($($name:ident: $s:expr, [$(($k:expr, $v:expr)),*] => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let l = labels(&[$(($k, $v)),*]);
                assert_eq!(sel($s).matches(&l), $want, "{:?} on {:?}", $s, l);
            }
        )*};
    }

    match_cases! {
        can_match_equals: "env=prod", [("env", "prod")] => true;
        can_match_double_equals: "env==prod", [("env", "prod")] => true;
        equals_needs_the_key: "env=prod", [] => false;
        equals_needs_the_value: "env=prod", [("env", "dev")] => false;
        equals_empty_matches_empty_value: "env=", [("env", "")] => true;
        not_equals_other_value: "env!=prod", [("env", "dev")] => true;
        not_equals_absent_key: "env!=prod", [] => true;
        not_equals_same_value: "env!=prod", [("env", "prod")] => false;
        in_listed: "rack in (a, b)", [("rack", "b")] => true;
        in_unlisted: "rack in (a,b)", [("rack", "c")] => false;
        in_absent: "rack in (a,b)", [] => false;
        notin_unlisted: "rack notin (a,b)", [("rack", "c")] => true;
        notin_absent: "rack notin (a,b)", [] => true;
        notin_listed: "rack notin (a,b)", [("rack", "a")] => false;
        exists_present: "gpu", [("gpu", "")] => true;
        exists_absent: "gpu", [("env", "x")] => false;
        not_exists_absent: "!gpu", [("env", "x")] => true;
        not_exists_present: "!gpu", [("gpu", "a100")] => false;
        all_terms_must_hold: "env=prod, gpu", [("env", "prod")] => false;
        all_terms_hold: "env=prod,gpu,!spare, rack in (a)", [("env", "prod"), ("gpu", "1"), ("rack", "a")] => true;
        empty_matches_all: "  ", [("env", "prod")] => true;
        prefixed_key: "onprem.dev/role=edge", [("onprem.dev/role", "edge")] => true;
    }

    #[test]
    fn can_print_the_canonical_string() {
        let s = sel("  tier notin(b ,a,a) ,env==prod,!spare,  gpu, rack in (x), zone!=,a=");
        assert_eq!(
            s.to_string(),
            "a=,env=prod,gpu,rack in (x),!spare,tier notin (a,b),zone!="
        );
        assert_eq!(sel(&s.to_string()), s, "round trip");
        assert!(Selector::parse("").unwrap().is_empty());
        assert_eq!(Selector::parse("").unwrap().to_string(), "");
    }

    #[test]
    fn can_build_from_match_labels() {
        let s = Selector::from_match_labels(&labels(&[("b", "2"), ("a", "1")]));
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(s.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!s.matches(&labels(&[("a", "1")])));
        assert_eq!(s.requirements()[0].operator(), Operator::Equals);
        assert_eq!(s.requirements()[0].values(), ["1"]);
    }

    /// (input, byte position, fragment of the problem)
    #[test]
    fn returns_a_located_error_when_a_term_is_malformed() {
        let cases = [
            ("env=prod,", 9, "expected a label key"),
            ("env=prod,,a", 9, "expected a label key"),
            ("env in (a", 9, "expected ',' or ')'"),
            ("env in (a b)", 10, "expected ',' or ')'"),
            ("env in ()", 8, "at least one value"),
            ("env in a", 7, "expected '('"),
            ("env > 3", 4, "expected an operator"),
            ("env=a=b", 5, "expected ','"),
            ("env=-bad", 4, "value \"-bad\""),
            ("Bad Key=x", 4, "expected an operator"),
            ("-key=x", 0, "name part must consist"),
            ("Example.com/key=x", 0, "lower-case DNS subdomain"),
            ("/key=x", 0, "prefix before '/' must not be empty"),
            ("!", 1, "expected a label key after '!'"),
            ("a,!=x", 2, "expected a label key or '!key'"),
            ("(a)", 0, "expected a label key"),
        ];
        for (input, pos, want) in cases {
            let e = Selector::parse(input).expect_err(input);
            assert_eq!(e.position, pos, "{input:?}: {e}");
            assert!(e.problem.contains(want), "{input:?}: {e}");
        }
        let e = Selector::parse("a=1, env in (x y), c").unwrap_err();
        assert_eq!(e.term, "env in (x y)");
        assert_eq!(
            e.to_string(),
            "label selector at byte 15, in term \"env in (x y)\": \
             expected ',' or ')' in the values of 'in', found \"y\""
        );
        let long = "a".repeat(64);
        let e = Selector::parse(&format!("{long}=x")).unwrap_err();
        assert!(e.problem.contains("at most 63"), "{e}");
    }

    #[test]
    fn can_validate_labels() {
        let l = labels(&[
            ("ok", "fine"),
            ("empty", ""),
            ("example.com/x", "v.1_2-3"),
            ("bad key", "v"),
            ("k", "trailing-"),
        ]);
        let problems = validate_labels(&l);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["bad key", "k"], "{problems:?}");
        assert!(
            problems[1].1.contains("value \"trailing-\""),
            "{problems:?}"
        );
    }

    #[test]
    fn can_serialize_as_the_string() {
        let s = sel("b in (y,x),a");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"a,b in (x,y)\"");
    }

    #[test]
    fn can_deserialize_a_string_or_an_object() {
        let s: Selector = serde_yaml_ng::from_str("env=prod,!spare").unwrap();
        assert_eq!(s.to_string(), "env=prod,!spare");
        let yaml = "
matchLabels: {env: prod}
matchExpressions:
  - {key: rack, operator: In, values: [b, a]}
  - {key: tier, operator: NotIn, values: [x]}
  - {key: gpu, operator: Exists}
  - {key: spare, operator: DoesNotExist, values: []}
";
        let s: Selector = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(
            s.to_string(),
            "env=prod,gpu,rack in (a,b),!spare,tier notin (x)"
        );
        let s: Selector = serde_json::from_str("{}").unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn returns_field_errors_when_an_object_is_wrong() {
        let cases = [
            ("{matchLabel: {a: b}}", "unknown field `matchLabel`"),
            (
                "{matchExpressions: [{key: a, operator: Foo}]}",
                "unknown variant `Foo`",
            ),
            (
                "{matchExpressions: [{key: a, operator: In, value: [x]}]}",
                "unknown field `value`",
            ),
            (
                "{matchExpressions: [{operator: Exists}]}",
                "missing field `key`",
            ),
            (
                "{matchExpressions: [{key: a, operator: In}]}",
                "matchExpressions[0].values: operator In needs at least one value",
            ),
            (
                "{matchExpressions: [{key: a, operator: Exists}, {key: b, operator: DoesNotExist, values: [x]}]}",
                "matchExpressions[1].values: operator DoesNotExist takes no values",
            ),
            (
                "{matchExpressions: [{key: 'a b', operator: Exists}]}",
                "matchExpressions[0].key: key \"a b\"",
            ),
            ("{matchLabels: {a: '-x'}}", "matchLabels.a: value \"-x\""),
            ("env in (", "expected ',' or ')'"),
            ("[1]", "a label selector"),
        ];
        for (yaml, want) in cases {
            let e = serde_yaml_ng::from_str::<Selector>(yaml)
                .map(|s| s.to_string())
                .expect_err(yaml);
            assert!(e.to_string().contains(want), "{yaml}: {e}");
        }
    }
}
