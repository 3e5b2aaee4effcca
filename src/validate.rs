//! Field-addressed validation errors, shared by every configuration
//! onprem reads: each problem carries the path of the field it is about
//! (`collectors.filesystem.mount_points_exclude`) and a message, and
//! validation collects all of them instead of stopping at the first.
//! [`from_yaml`] and [`from_value`] do the same for reading a document:
//! every unknown field and wrong type at once, each path once.

use std::fmt;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, or the flag that set it.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`; a path or message longer than
    /// [`MAX_ERROR_CHARS`](crate::limits::MAX_ERROR_CHARS) is cut in the
    /// middle ([`crate::limits::shorten`]), so that no input makes an
    /// error long.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        let cut = |s: String| {
            if s.len() > crate::limits::MAX_ERROR_CHARS.value {
                crate::limits::shorten(&s)
            } else {
                s
            }
        };
        FieldError {
            path: cut(path.into()),
            message: cut(message.into()),
        }
    }
}

/// `path: message`, or the message alone for the document itself.
impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found, one per line when displayed: at most
/// [`MAX_ERRORS`](crate::limits::MAX_ERRORS) of them, then how many more
/// there are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in crate::limits::bounded_lines(&self.0).iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Compiles a regular expression given by the user, anchored as Go's
/// `regexp.MustCompile` patterns in node_exporter flags are written
/// (callers pass the pattern as the user wrote it).
pub fn regex(path: &str, pattern: &str, errors: &mut Vec<FieldError>) -> Option<regex::Regex> {
    match regex::Regex::new(pattern) {
        Ok(r) => Some(r),
        Err(e) => {
            let msg = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid regular expression")
                .trim()
                .to_owned();
            errors.push(FieldError::new(
                path,
                format!("invalid regular expression {pattern:?}: {msg}"),
            ));
            None
        }
    }
}

/// A document read as far as it could be: every problem found, and the
/// value read from what was left once each bad node was taken out (none
/// when the document itself was not usable).
#[derive(Debug)]
pub struct Partial<T> {
    /// Every problem, in the order found, each path once.
    pub errors: Vec<FieldError>,
    /// The value without the bad nodes.
    pub rest: Option<Box<T>>,
}

/// Reads one YAML (or JSON) document as `T`, reporting every unknown
/// field and wrong type at once, each with its path and line.
///
/// A document that reads is read straight from the text, exactly as
/// `serde_yaml_ng` reads it. One that does not is read again, as a tree:
/// each round takes the node named by the error out and reads the rest,
/// until it reads or nothing is left to take out (see [`from_value`]).
/// Each problem keeps the line and column of its node in `text`.
///
/// A text nested deeper than [`MAX_DEPTH`](crate::limits::MAX_DEPTH) is
/// refused before it is parsed ([`crate::limits::check_depth`]), and the
/// rounds stop once they have read
/// [`MAX_REREAD_BYTES`](crate::limits::MAX_REREAD_BYTES) (a note says
/// so), so that the time this takes is bounded by the text's length.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Partial<T>> {
    if let Err(e) = crate::limits::check_depth(text) {
        return Err(Partial {
            errors: vec![FieldError::new("", e.to_string())],
            rest: None,
        });
    }
    let first = match serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text))
    {
        Ok(t) => return Ok(t),
        Err(e) => Failure::new(e),
    };
    let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        // Not YAML, or not one document: that one problem is all there is.
        Err(_) => {
            let path = path_string(&first.steps);
            let message = strip_parser_path(&first.message, &path).to_owned();
            return Err(Partial {
                errors: vec![FieldError::new(path, message)],
                rest: None,
            });
        }
    };
    // Each round reads the tree as text again, so that what the text
    // reader accepts (a number where a string goes) stays accepted. A
    // round costs about three readings of the text (writing the tree,
    // reading it, finding the problem's line).
    let rounds =
        (crate::limits::MAX_REREAD_BYTES.value / (3 * text.len()).max(1)).clamp(1, MOST_PROBLEMS);
    let (rest, found) = collect(value, rounds, |v| {
        let text = serde_yaml_ng::to_string(v).map_err(|e| Failure {
            steps: Vec::new(),
            message: e.to_string(),
        })?;
        serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(&text))
            .map_err(Failure::new)
    });
    let errors = found
        .into_iter()
        .map(|(steps, message)| {
            let path = path_string(&steps);
            // The reader's line is in the text it read, not the user's.
            let mut message = strip_location(&message).to_owned();
            // The note that more may follow is about no node.
            let note = steps.is_empty() && message.starts_with("more problems");
            if let Some((line, column)) = locate(text, &steps).filter(|_| !note) {
                message = format!("{message} at line {line} column {column}");
            }
            FieldError::new(path, message)
        })
        .collect();
    Err(Partial {
        errors,
        rest: rest.map(Box::new),
    })
}

/// Reads a YAML value as `T`, reporting every unknown field and wrong
/// type at once; paths start with `prefix` (`spec`).
///
/// On an error at a node the node is taken out (an unknown field, a
/// value of the wrong type, a list item) and the rest read again, at most
/// [`MOST_PROBLEMS`] times. What taking a node out causes is not
/// reported: the struct that then misses a required field (it is taken
/// out in turn), a tuple that comes up short. Paths are the document's:
/// after a list item is taken out, the items after it keep their index.
pub fn from_value<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: serde_yaml_ng::Value,
) -> Result<T, Partial<T>> {
    let (rest, found) = collect(value, MOST_PROBLEMS, |v| {
        serde_path_to_error::deserialize(v.clone()).map_err(Failure::new)
    });
    match (rest, found.is_empty()) {
        (Some(t), true) => Ok(t),
        (rest, _) => Err(Partial {
            errors: found
                .into_iter()
                .map(|(steps, message)| {
                    let path = path_string(&steps);
                    let path = match (prefix.is_empty(), path.is_empty()) {
                        (true, _) => path,
                        (false, true) => prefix.to_owned(),
                        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
                        (false, false) => format!("{prefix}.{path}"),
                    };
                    FieldError::new(path, message)
                })
                .collect(),
            rest: rest.map(Box::new),
        }),
    }
}

/// How many problems one document may report before the rest are left
/// out (a note says so): [`MAX_ERRORS`](crate::limits::MAX_ERRORS).
pub const MOST_PROBLEMS: usize = crate::limits::MAX_ERRORS.value;

/// A step of a field path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// `spec.fans.zones[0].minPercent`; empty for the document itself.
fn path_string(steps: &[Step]) -> String {
    let mut s = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// What one attempt to read said: where, and what.
struct Failure {
    steps: Vec<Step>,
    message: String,
}

impl Failure {
    fn new<E: fmt::Display>(e: serde_path_to_error::Error<E>) -> Failure {
        use serde_path_to_error::Segment;
        let mut steps = Vec::new();
        for segment in e.path().iter() {
            match segment {
                Segment::Seq { index } => steps.push(Step::Index(*index)),
                Segment::Map { key } => steps.push(Step::Key(key.clone())),
                Segment::Enum { variant } => steps.push(Step::Key(variant.clone())),
                Segment::Unknown => break,
            }
        }
        let path = path_string(&steps);
        let message = e.into_inner().to_string();
        let message = strip_parser_path(&message, &path).to_owned();
        Failure { steps, message }
    }
}

/// The name in a serde message that starts with `what` `` `name` ``.
fn named<'a>(message: &'a str, what: &str) -> Option<&'a str> {
    message
        .strip_prefix(what)?
        .strip_prefix(" `")?
        .split('`')
        .next()
}

/// Reads `value` with `attempt` until it reads, taking out the node each
/// error names, at most `rounds` times; returns what was read (if
/// anything) and every problem, each with its path in the original value.
fn collect<T>(
    mut value: serde_yaml_ng::Value,
    rounds: usize,
    mut attempt: impl FnMut(&serde_yaml_ng::Value) -> Result<T, Failure>,
) -> (Option<T>, Vec<(Vec<Step>, String)>) {
    let mut found: Vec<(Vec<Step>, String)> = Vec::new();
    // Nodes taken out, as paths in the original value.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    // Per list (its original path): the original indices taken out.
    let mut gone: std::collections::HashMap<Vec<Step>, Vec<usize>> = Default::default();
    for _ in 0..rounds {
        let f = match attempt(&value) {
            Ok(t) => return (Some(t), found),
            Err(f) => f,
        };
        let mut at = f.steps;
        // Inside an internally tagged enum the path stops at the enum;
        // the unknown key is in the message.
        if let Some(key) = named(&f.message, "unknown field") {
            let step = Step::Key(key.to_owned());
            if at.last() != Some(&step) {
                let mut longer = at.clone();
                longer.push(step);
                if node(&value, &longer).is_some() {
                    at = longer;
                }
            }
        }
        while !at.is_empty() && !removable(&value, &at) {
            at.pop();
        }
        let original = to_original(&at, &gone);
        let consequence = match named(&f.message, "missing field") {
            Some(field) => {
                let mut p = original.clone();
                p.push(Step::Key(field.to_owned()));
                removed.contains(&p)
            }
            None => {
                f.message.starts_with("invalid length")
                    && removed
                        .iter()
                        .any(|r| r.len() > original.len() && r.starts_with(&original))
            }
        };
        if !consequence {
            found.push((original.clone(), f.message));
        }
        if at.is_empty() {
            return (None, found);
        }
        if let (Some(Step::Index(i)), Some(parent)) = (original.last(), original.split_last()) {
            let list = gone.entry(parent.1.to_vec()).or_default();
            list.push(*i);
            list.sort_unstable();
        }
        remove(&mut value, &at);
        removed.push(original);
    }
    let note = if rounds < MOST_PROBLEMS {
        format!(
            "more problems may follow: a document this large is read again at most {rounds} times (limit {})",
            crate::limits::MAX_REREAD_BYTES.name
        )
    } else {
        format!(
            "more problems not listed (the first {rounds} are; limit {})",
            crate::limits::MAX_ERRORS.name
        )
    };
    found.push((Vec::new(), note));
    (None, found)
}

/// The path `at` (in the value as it is now) in the original value: list
/// indices count the items taken out before them.
fn to_original(at: &[Step], gone: &std::collections::HashMap<Vec<Step>, Vec<usize>>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(at.len());
    for step in at {
        match step {
            Step::Key(k) => out.push(Step::Key(k.clone())),
            Step::Index(i) => {
                let mut index = *i;
                for g in gone.get(&out).map(Vec::as_slice).unwrap_or_default() {
                    if *g <= index {
                        index += 1;
                    }
                }
                out.push(Step::Index(index));
            }
        }
    }
    out
}

fn untag(mut v: &serde_yaml_ng::Value) -> &serde_yaml_ng::Value {
    while let serde_yaml_ng::Value::Tagged(t) = v {
        v = &t.value;
    }
    v
}

fn untag_mut(mut v: &mut serde_yaml_ng::Value) -> &mut serde_yaml_ng::Value {
    while let serde_yaml_ng::Value::Tagged(t) = v {
        v = &mut t.value;
    }
    v
}

/// Whether a mapping key is the path's `key`.
fn key_is(key: &serde_yaml_ng::Value, name: &str) -> bool {
    match key {
        serde_yaml_ng::Value::String(s) => s == name,
        serde_yaml_ng::Value::Number(n) => n.to_string() == name,
        serde_yaml_ng::Value::Bool(b) => b.to_string() == name,
        _ => false,
    }
}

fn node<'a>(v: &'a serde_yaml_ng::Value, steps: &[Step]) -> Option<&'a serde_yaml_ng::Value> {
    steps.iter().try_fold(v, |v, step| match (untag(v), step) {
        (serde_yaml_ng::Value::Mapping(m), Step::Key(k)) => {
            m.iter().find(|(key, _)| key_is(key, k)).map(|(_, v)| v)
        }
        (serde_yaml_ng::Value::Sequence(s), Step::Index(i)) => s.get(*i),
        _ => None,
    })
}

/// Whether the node at `steps` exists as an entry of a mapping or an
/// item of a list, so that it can be taken out.
fn removable(v: &serde_yaml_ng::Value, steps: &[Step]) -> bool {
    let Some((last, parent)) = steps.split_last() else {
        return false;
    };
    node(v, parent).is_some_and(|p| match (untag(p), last) {
        (serde_yaml_ng::Value::Mapping(m), Step::Key(k)) => m.keys().any(|key| key_is(key, k)),
        (serde_yaml_ng::Value::Sequence(s), Step::Index(i)) => *i < s.len(),
        _ => false,
    })
}

fn remove(v: &mut serde_yaml_ng::Value, steps: &[Step]) {
    let Some((last, parent)) = steps.split_last() else {
        return;
    };
    let mut p = v;
    for step in parent {
        let next = match (untag_mut(p), step) {
            (serde_yaml_ng::Value::Mapping(m), Step::Key(k)) => {
                m.iter_mut().find(|(key, _)| key_is(key, k)).map(|(_, v)| v)
            }
            (serde_yaml_ng::Value::Sequence(s), Step::Index(i)) => s.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => p = n,
            None => return,
        }
    }
    match (untag_mut(p), last) {
        (serde_yaml_ng::Value::Mapping(m), Step::Key(k)) => {
            if let Some(key) = m.keys().find(|key| key_is(key, k)).cloned() {
                m.shift_remove(&key);
            }
        }
        (serde_yaml_ng::Value::Sequence(s), Step::Index(i)) if *i < s.len() => {
            s.remove(*i);
        }
        _ => {}
    }
}

/// serde_yaml_ng starts a message with the path of the mapping it was
/// reading (`spec.fans: "5x": unknown unit`); the error's own path is the
/// same or more precise (`spec.fans.period`), so that prefix only repeats
/// it.
pub fn strip_parser_path<'a>(message: &'a str, path: &str) -> &'a str {
    let Some((head, rest)) = message.split_once(": ") else {
        return message;
    };
    let within = path
        .strip_prefix(head)
        .is_some_and(|r| r.is_empty() || r.starts_with('.') || r.starts_with('['));
    if !head.is_empty() && within {
        rest
    } else {
        message
    }
}

/// A message without serde_yaml_ng's trailing ` at line L column C`.
fn strip_location(message: &str) -> &str {
    let Some(i) = message.rfind(" at line ") else {
        return message;
    };
    let tail = &message[i + " at line ".len()..];
    let Some((line, column)) = tail.split_once(" column ") else {
        return message;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(line) && digits(column) {
        &message[..i]
    } else {
        message
    }
}

/// The line and column (from 1) where the node at `steps` starts in
/// `text`, found by reading the text down that path.
fn locate(text: &str, steps: &[Step]) -> Option<(usize, usize)> {
    use serde::de::DeserializeSeed;
    let e = Seek(steps)
        .deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .err()?;
    if !e.to_string().contains(HERE) {
        return None;
    }
    let at = e.location()?;
    Some((at.line(), at.column()))
}

/// What [`Here`] expects, so that its error is told from others.
const HERE: &str = "\u{1}the node looked for";

/// Walks a document down `steps`; at the node, fails with its position.
struct Seek<'a>(&'a [Step]);

impl<'de> serde::de::DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.split_first() {
            None => d.deserialize_any(Here),
            Some((Step::Key(k), rest)) => d.deserialize_map(SeekKey(k, rest)),
            Some((Step::Index(i), rest)) => d.deserialize_seq(SeekIndex(*i, rest)),
        }
    }
}

/// Fails on whatever it visits (every `visit_*` is serde's default).
struct Here;

impl serde::de::Visitor<'_> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HERE)
    }
}

struct SeekKey<'a>(&'a str, &'a [Step]);

impl<'de> serde::de::Visitor<'de> for SeekKey<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(key) = m.next_key::<serde_yaml_ng::Value>()? {
            if key_is(&key, self.0) {
                return m.next_value_seed(Seek(self.1));
            }
            m.next_value::<serde::de::IgnoredAny>()?;
        }
        Ok(())
    }
}

struct SeekIndex<'a>(usize, &'a [Step]);

impl<'de> serde::de::Visitor<'de> for SeekIndex<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        for _ in 0..self.0 {
            if s.next_element::<serde::de::IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        s.next_element_seed(Seek(self.1)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        #[serde(default)]
        web: Web,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    #[allow(dead_code)]
    struct Web {
        max_requests: usize,
        timeout: f64,
        listen: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        id: u32,
        point: (f64, f64),
    }

    fn problems(text: &str) -> Vec<String> {
        match from_yaml::<Doc>(text) {
            Ok(d) => panic!("read: {d:?}"),
            Err(p) => p.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn every_type_error_and_unknown_field_at_once_each_path_once() {
        let text = "name: n\nweb:\n  max_requests: many\n  timeout: soon\n  colour: red\nitems:\n  - {id: x, point: [1, 2]}\n";
        let got = problems(text);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(
            got[0].starts_with("web.max_requests: invalid type: string \"many\"")
                && got[0].ends_with("at line 3 column 17"),
            "{got:#?}"
        );
        assert!(got[1].starts_with("web.timeout: invalid type"), "{got:#?}");
        assert!(
            got[2].starts_with("web.colour: unknown field `colour`")
                && got[2].ends_with("at line 5 column 11"),
            "{got:#?}"
        );
        assert!(got[3].starts_with("items[0].id: invalid type"), "{got:#?}");
        for e in &got {
            let path = e.split(": ").next().unwrap_or_default();
            assert_eq!(e.matches(path).count(), 1, "path repeated: {e}");
        }
    }

    #[test]
    fn items_after_one_taken_out_keep_their_index() {
        let text = "name: n\nitems:\n  - {id: x, point: [1, 2]}\n  - {id: 2, point: [1, 2]}\n  - {id: 3, point: [1, q]}\n  - {id: y, point: [1, 2]}\n";
        let got = problems(text);
        let paths: Vec<&str> = got
            .iter()
            .map(|e| e.split(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(
            paths,
            ["items[0].id", "items[2].point[1]", "items[3].id"],
            "{got:#?}"
        );
        assert!(got[1].ends_with("at line 5 column 24"), "{got:#?}");
    }

    #[test]
    fn what_taking_a_node_out_causes_is_not_reported_but_a_missing_field_is() {
        // `name` is required: taken out for its type, its absence is no
        // second problem; `items[0]` really lacks `point`.
        let got = problems("name: [1]\nitems:\n  - {id: 1}\n  - {id: 2, point: [1, 2, 3]}\n");
        let paths: Vec<&str> = got
            .iter()
            .map(|e| e.split(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(paths, ["name", "items[0]", "items[1].point"], "{got:#?}");
        assert!(got[1].contains("missing field `point`"), "{got:#?}");
        assert!(got[2].contains("invalid length 3"), "{got:#?}");
    }

    #[test]
    fn a_document_that_reads_is_read_as_the_text_reader_reads_it() {
        let d: Doc = from_yaml("name: 123\nweb: {listen: 9100}\n").unwrap();
        assert_eq!(d.name, "123");
        assert_eq!(d.web.listen, "9100");
        // Also in the rounds after a problem.
        let Err(p) = from_yaml::<Doc>("name: 123\nweb: {listen: 9100, timeout: x}\n") else {
            panic!("read")
        };
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        let rest = p.rest.unwrap();
        assert_eq!(
            (rest.name.as_str(), rest.web.listen.as_str()),
            ("123", "9100")
        );
    }

    #[test]
    fn not_yaml_and_not_a_mapping_are_one_problem() {
        let got = problems("name: [1\n");
        assert_eq!(got.len(), 1, "{got:?}");
        let got = problems("- 1\n- 2\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(": invalid type") || got[0].contains("invalid type"),
            "{got:?}"
        );
    }

    #[test]
    fn a_deep_document_is_refused_before_it_is_parsed() {
        let deep = format!(
            "name: n\nweb: {}1{}\n",
            "{a: ".repeat(20_000),
            "}".repeat(20_000)
        );
        assert_eq!(
            problems(&deep),
            ["line 2: nesting deeper than 32 levels (limit MAX_DEPTH)"]
        );
    }

    #[test]
    fn the_problems_of_one_document_are_bounded() {
        let mut many = "name: n\nweb:\n".to_owned();
        for i in 0..2_000 {
            many.push_str(&format!("  f{i}: 1\n"));
        }
        let got = problems(&many);
        assert_eq!(got.len(), MOST_PROBLEMS + 1, "{got:#?}");
        assert!(
            got[MOST_PROBLEMS].contains("limit MAX_ERRORS"),
            "{:?}",
            got.last()
        );
        // A message quoting a long value is cut.
        let long = format!("name: n\nweb: {{max_requests: {}}}\n", "x".repeat(100_000));
        let Err(p) = from_yaml::<Doc>(&long) else {
            panic!("read")
        };
        let message = &p.errors[0].message;
        assert!(
            message.chars().count() <= crate::limits::MAX_ERROR_CHARS.value
                && message.starts_with("invalid type: string \"xxx"),
            "{message}"
        );
        // Displayed, at most MAX_ERRORS lines and a count.
        let all = FieldErrors(
            (0..80)
                .map(|i| FieldError::new(format!("f{i}"), "bad"))
                .collect(),
        );
        let text = all.to_string();
        assert_eq!(text.lines().count(), MOST_PROBLEMS + 1, "{text}");
        assert!(text.ends_with("… and 30 more problems (at most 50 are listed: MAX_ERRORS)"));
    }

    #[test]
    fn values_carry_the_prefix() {
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("name: n\nweb: {max_requests: x, colour: red}\n").unwrap();
        let Err(p) = from_value::<Doc>("spec", v) else {
            panic!("read")
        };
        let got: Vec<String> = p.errors.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("spec.web.max_requests: invalid type"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("spec.web.colour: unknown field"),
            "{got:?}"
        );
    }
}
