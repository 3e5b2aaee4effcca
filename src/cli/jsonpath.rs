//! The JSONPath templates of `onprem get -o jsonpath=…` and the keys of
//! `--sort-by`: the subset of kubectl's JSONPath that people use.
//!
//! A template is text with actions in braces:
//!
//! | action | what it prints |
//! |---|---|
//! | `{.a.b}`, `{$.a.b}`, `{@.a}` | a field of the current object (`$` the root, `@` the current one) |
//! | `{.a['b.c']}`, `{.a["b"]}` | a field whose name has dots or other characters |
//! | `{.items[0]}`, `{.items[-1]}`, `{.items[1:3]}` | an element, counting from the end when negative, a slice |
//! | `{.items[*].name}`, `{.a.*}` | every element or field value, space-separated |
//! | `{..name}` | every `name` field at any depth |
//! | `{.items[?(@.online==true)].name}` | elements where the condition holds (`==`, `!=`, `<`, `<=`, `>`, `>=`, or only `@.field`: present and not false or null) |
//! | `{range .items[*]}…{end}` | the actions in between once per element, on that element |
//! | `{"\n"}`, `{'\t'}` | the string (escapes `\n`, `\t`, `\r`, `\\`, `\"`, `\'`) |
//!
//! A string value prints as it is, anything else as compact JSON; a field
//! that is not there prints nothing, as kubectl's `get` does. A template
//! that does not parse is an error naming where.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

/// Why a template or path does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Expr(Path),
    Range(Path, Vec<Node>),
}

/// A path into a JSON value (`.a.b[0]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// As written.
    src: String,
    /// Starts at the root (`$`) rather than the current object.
    root: bool,
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    /// A field.
    Field(String),
    /// Every element of an array or value of an object.
    All,
    /// The value and everything under it (`..`).
    Descend,
    /// An element; negative counts from the end.
    Index(i64),
    /// Elements from..to (to exclusive); negative counts from the end.
    Slice(Option<i64>, Option<i64>),
    /// Elements for which the condition holds.
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Path,
    cmp: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Template {
    /// Parses a template (`{.items[*].name}`, `{range .items[*]}…{end}`).
    pub fn parse(src: &str) -> Result<Template, Error> {
        let mut stack: Vec<(Path, Vec<Node>, usize)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut text = String::new();
        let chars: Vec<(usize, char)> = src.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (at, c) = chars[i];
            if c != '{' {
                text.push(c);
                i += 1;
                continue;
            }
            // An action: up to the closing brace outside quotes.
            let mut j = i + 1;
            let mut quote: Option<char> = None;
            while j < chars.len() {
                let ch = chars[j].1;
                match quote {
                    Some(_) if ch == '\\' => j += 1,
                    Some(q) if ch == q => quote = None,
                    Some(_) => {}
                    None if ch == '"' || ch == '\'' => quote = Some(ch),
                    None if ch == '}' => break,
                    None => {}
                }
                j += 1;
            }
            if j >= chars.len() {
                return Err(Error(format!(
                    "unclosed action: '{{' at offset {at} has no '}}'"
                )));
            }
            let body: String = chars[i + 1..j].iter().map(|(_, c)| c).collect();
            let body_at = at + 1;
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(&mut text)));
            }
            let b = body.trim();
            if b.is_empty() {
                return Err(Error(format!("empty action '{{}}' at offset {at}")));
            } else if b == "end" {
                let Some((path, outer, _)) = stack.pop() else {
                    return Err(Error(format!("{{end}} at offset {at} without a {{range}}")));
                };
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if let Some(rest) = b.strip_prefix("range ") {
                let path = Path::parse_at(rest.trim(), body_at)?;
                stack.push((path, std::mem::take(&mut nodes), at));
            } else if b.starts_with('"') || b.starts_with('\'') {
                nodes.push(Node::Text(literal(b, body_at)?));
            } else {
                nodes.push(Node::Expr(Path::parse_at(b, body_at)?));
            }
            i = j + 1;
        }
        if let Some((_, _, at)) = stack.last() {
            return Err(Error(format!(
                "{{range}} at offset {at} without an {{end}}"
            )));
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text));
        }
        Ok(Template { nodes })
    }

    /// The template applied to `root`.
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render(&self.nodes, root, root, &mut out);
        out
    }
}

fn render(nodes: &[Node], root: &Value, cur: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Expr(p) => {
                let vs = p.eval(root, cur);
                for (k, v) in vs.iter().enumerate() {
                    if k > 0 {
                        out.push(' ');
                    }
                    out.push_str(&display(v));
                }
            }
            Node::Range(p, body) => {
                let vs = p.eval(root, cur);
                // `{range .items}` goes over the elements, as
                // `{range .items[*]}` does.
                let each: Vec<&Value> = match (vs.as_slice(), p.segs.last()) {
                    ([Value::Array(a)], Some(Seg::Field(_)) | None) => a.iter().collect(),
                    _ => vs,
                };
                for v in each {
                    render(body, root, v, out);
                }
            }
        }
    }
}

/// A value as an action prints it: a string as it is, else compact JSON.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A quoted string action's text.
fn literal(b: &str, at: usize) -> Result<String, Error> {
    let mut cs = b.chars();
    let q = cs.next().unwrap_or('"');
    let mut out = String::new();
    let mut closed = false;
    while let Some(c) = cs.next() {
        if closed {
            return Err(Error(format!(
                "unexpected {c:?} after the string at offset {at}"
            )));
        }
        match c {
            '\\' => match cs.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(c @ ('\\' | '"' | '\'')) => out.push(c),
                Some(c) => {
                    return Err(Error(format!(
                        "unknown escape \\{c} in the string at offset {at}"
                    )));
                }
                None => break,
            },
            c if c == q => closed = true,
            c => out.push(c),
        }
    }
    if !closed {
        return Err(Error(format!("unclosed string at offset {at}")));
    }
    Ok(out)
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}

impl Path {
    /// Parses a path as `--sort-by` takes it: `.a.b`, `{.a.b}`, or
    /// `a.b`.
    pub fn parse_relaxed(s: &str) -> Result<Path, Error> {
        let s = s.trim();
        let s = match s.strip_prefix('{') {
            Some(inner) => inner
                .strip_suffix('}')
                .ok_or_else(|| Error(format!("{s:?}: '{{' without '}}'")))?
                .trim(),
            None => s,
        };
        if s.is_empty() {
            return Err(Error("empty path".into()));
        }
        if s.starts_with(['.', '$', '@', '[']) {
            Path::parse_at(s, 0)
        } else {
            Path::parse_at(&format!(".{s}"), 0)
        }
    }

    /// Parses a path; `at` is where it starts in the template, for
    /// errors.
    fn parse_at(s: &str, at: usize) -> Result<Path, Error> {
        let cs: Vec<char> = s.chars().collect();
        let err = |i: usize, m: &str| Error(format!("{m} at offset {} in {s:?}", at + i));
        let mut i = 0;
        let mut root = false;
        match cs.first() {
            Some('$') => {
                root = true;
                i = 1;
            }
            Some('@') => i = 1,
            _ => {}
        }
        let mut segs = Vec::new();
        while i < cs.len() {
            match cs[i] {
                '.' if cs.get(i + 1) == Some(&'.') => {
                    segs.push(Seg::Descend);
                    i += 2;
                    if i < cs.len() && cs[i] != '[' {
                        let (seg, next) = name(&cs, i).ok_or_else(|| err(i, "expected a name"))?;
                        segs.push(seg);
                        i = next;
                    }
                }
                '.' => {
                    i += 1;
                    if i < cs.len() && cs[i] != '[' {
                        let (seg, next) = name(&cs, i)
                            .ok_or_else(|| err(i, &format!("unexpected {:?} after '.'", cs[i])))?;
                        segs.push(seg);
                        i = next;
                    }
                }
                '[' => {
                    let close = closing_bracket(&cs, i).ok_or_else(|| err(i, "unclosed '['"))?;
                    let inner: String = cs[i + 1..close].iter().collect();
                    segs.push(bracket(inner.trim()).map_err(|m| err(i, &m))?);
                    i = close + 1;
                }
                c => return Err(err(i, &format!("unexpected {c:?}"))),
            }
        }
        Ok(Path {
            src: s.to_owned(),
            root,
            segs,
        })
    }

    /// The values at this path from `cur` (or `root` for `$…`).
    fn eval<'a>(&self, root: &'a Value, cur: &'a Value) -> Vec<&'a Value> {
        let mut vs = vec![if self.root { root } else { cur }];
        for s in &self.segs {
            let mut next = Vec::new();
            for v in vs {
                step(s, root, v, &mut next);
            }
            vs = next;
        }
        vs
    }

    /// The first value at this path in `v`, if any.
    pub fn first<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.eval(v, v).into_iter().next()
    }
}

fn step<'a>(s: &Seg, root: &'a Value, v: &'a Value, out: &mut Vec<&'a Value>) {
    match s {
        Seg::Field(f) => {
            if let Some(x) = v.get(f) {
                out.push(x);
            }
        }
        Seg::All => match v {
            Value::Array(a) => out.extend(a.iter()),
            Value::Object(o) => out.extend(o.values()),
            _ => {}
        },
        Seg::Descend => descend(v, out),
        Seg::Index(n) => {
            if let Value::Array(a) = v {
                if let Some(x) = index(*n, a.len()).and_then(|k| a.get(k)) {
                    out.push(x);
                }
            }
        }
        Seg::Slice(from, to) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let clamp = |n: i64| (if n < 0 { len + n } else { n }).clamp(0, len) as usize;
                let f = from.map_or(0, clamp);
                let t = to.map_or(a.len(), clamp);
                if f < t {
                    out.extend(a[f..t].iter());
                }
            }
        }
        Seg::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            out.extend(items.into_iter().filter(|x| f.holds(root, x)));
        }
    }
}

fn descend<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Array(a) => a.iter().for_each(|x| descend(x, out)),
        Value::Object(o) => o.values().for_each(|x| descend(x, out)),
        _ => {}
    }
}

fn index(n: i64, len: usize) -> Option<usize> {
    let k = if n < 0 { len as i64 + n } else { n };
    usize::try_from(k).ok().filter(|k| *k < len)
}

impl Filter {
    fn holds(&self, root: &Value, v: &Value) -> bool {
        let got = self.path.eval(root, v).into_iter().next();
        match (&self.cmp, got) {
            (None, g) => !matches!(g, None | Some(Value::Null | Value::Bool(false))),
            (Some((op, want)), Some(g)) => {
                let o = compare(g, want);
                match op {
                    Op::Eq => o == Ordering::Equal,
                    Op::Ne => o != Ordering::Equal,
                    Op::Lt => same_type(g, want) && o == Ordering::Less,
                    Op::Le => same_type(g, want) && o != Ordering::Greater,
                    Op::Gt => same_type(g, want) && o == Ordering::Greater,
                    Op::Ge => same_type(g, want) && o != Ordering::Less,
                }
            }
            (Some((op, _)), None) => *op == Op::Ne,
        }
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// A name after `.`: letters, digits, `_`, `-`, `/`; or `*`.
fn name(cs: &[char], i: usize) -> Option<(Seg, usize)> {
    if cs.get(i) == Some(&'*') {
        return Some((Seg::All, i + 1));
    }
    let mut j = i;
    while j < cs.len() && (cs[j].is_alphanumeric() || matches!(cs[j], '_' | '-' | '/')) {
        j += 1;
    }
    (j > i).then(|| (Seg::Field(cs[i..j].iter().collect()), j))
}

/// Where the `]` that closes the `[` at `i` is, outside quotes and
/// parentheses.
fn closing_bracket(cs: &[char], i: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut j = i + 1;
    while j < cs.len() {
        let c = cs[j];
        match quote {
            Some(_) if c == '\\' => j += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ']' if depth == 0 => return Some(j),
                _ => {}
            },
        }
        j += 1;
    }
    None
}

/// What is inside `[…]`.
fn bracket(inner: &str) -> Result<Seg, String> {
    if inner == "*" {
        return Ok(Seg::All);
    }
    if inner.starts_with('\'') || inner.starts_with('"') {
        return literal(inner, 0)
            .map(Seg::Field)
            .map_err(|e| format!("bad name [{inner}]: {e}"));
    }
    if let Some(cond) = inner.strip_prefix('?') {
        let cond = cond.trim();
        let body = cond
            .strip_prefix('(')
            .and_then(|c| c.strip_suffix(')'))
            .ok_or_else(|| format!("a filter is [?(@.field==value)], not [{inner}]"))?;
        return filter(body.trim()).map(|f| Seg::Filter(Box::new(f)));
    }
    if let Some((a, b)) = inner.split_once(':') {
        let num = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("bad slice [{inner}]"))
            }
        };
        // A step (`[::2]`) is not supported.
        if b.contains(':') {
            return Err(format!("a slice step is not supported: [{inner}]"));
        }
        return Ok(Seg::Slice(num(a)?, num(b)?));
    }
    inner
        .parse()
        .map(Seg::Index)
        .map_err(|_| format!("expected [N], [*], [A:B], ['name'] or [?(…)], not [{inner}]"))
}

/// `@.path`, or `@.path OP literal`.
fn filter(body: &str) -> Result<Filter, String> {
    const OPS: [(&str, Op); 6] = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    if !body.starts_with('@') {
        return Err(format!("a filter starts with @: [?({body})]"));
    }
    // The first operator outside quotes.
    let mut quote: Option<char> = None;
    let mut found: Option<(usize, &str, Op)> = None;
    for (pos, c) in body.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {
                if let Some((s, op)) = OPS.iter().find(|(s, _)| body[pos..].starts_with(s)) {
                    found = Some((pos, s, *op));
                    break;
                }
            }
        }
    }
    let (lhs, cmp) = match found {
        None => (body, None),
        Some((pos, s, op)) => {
            let rhs = body[pos + s.len()..].trim();
            let lit = if rhs.starts_with('"') || rhs.starts_with('\'') {
                Value::String(literal(rhs, 0).map_err(|e| e.0)?)
            } else {
                serde_json::from_str::<Value>(rhs)
                    .ok()
                    .filter(|v| !v.is_object() && !v.is_array())
                    .ok_or_else(|| {
                        format!("expected a string, number, true, false or null, not {rhs:?}")
                    })?
            };
            (&body[..pos], Some((op, lit)))
        }
    };
    let path = Path::parse_at(lhs.trim(), 0).map_err(|e| e.0)?;
    Ok(Filter { path, cmp })
}

/// How `--sort-by` orders values: missing and null first, then false
/// before true, numbers by value, strings, and anything else by its JSON.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"name": "pi-a", "online": true, "lastSeen": 10, "labels": {"board": "pi5", "a.b/c": "x"}},
            {"name": "pi-b", "online": false, "lastSeen": 9, "labels": {"board": "cm4"}},
            {"name": "gpu", "online": true, "lastSeen": 100, "tags": ["x", "y", "z"]},
        ]})
    }

    fn run(t: &str) -> String {
        Template::parse(t).unwrap().render(&list())
    }

    #[test]
    fn fields_elements_and_every_element() {
        assert_eq!(run("{.kind}"), "List");
        assert_eq!(run("{$.kind}"), "List");
        assert_eq!(run("{.items[0].name}"), "pi-a");
        assert_eq!(run("{.items[-1].name}"), "gpu");
        assert_eq!(run("{.items[5].name}"), "");
        assert_eq!(run("{.items[*].name}"), "pi-a pi-b gpu");
        assert_eq!(run("{.items[0:2].name}"), "pi-a pi-b");
        assert_eq!(run("{.items[1:].name}"), "pi-b gpu");
        assert_eq!(run("{.items[*].lastSeen}"), "10 9 100");
        assert_eq!(run("{.items[0].online}"), "true");
        assert_eq!(run("{.items[2].tags}"), r#"["x","y","z"]"#);
        assert_eq!(run("{.items[0].labels['a.b/c']}"), "x");
        assert_eq!(run(r#"{.items[0].labels["board"]}"#), "pi5");
        assert_eq!(run("{.items[0].labels.*}"), "x pi5");
        assert_eq!(run("{..board}"), "pi5 cm4");
        assert_eq!(run("{.nothing.here}"), "");
        assert_eq!(run("names: {.items[*].name}!"), "names: pi-a pi-b gpu!");
    }

    #[test]
    fn ranges_and_strings() {
        assert_eq!(
            run(r#"{range .items[*]}{.name}{"\t"}{.online}{"\n"}{end}"#),
            "pi-a\ttrue\npi-b\tfalse\ngpu\ttrue\n"
        );
        assert_eq!(run("{range .items}{.name},{end}"), "pi-a,pi-b,gpu,");
        assert_eq!(
            run("{range .items[*]}{.name}:{range .tags[*]}{@}{end};{end}"),
            "pi-a:;pi-b:;gpu:xyz;"
        );
        assert_eq!(run(r"{'it\'s'}"), "it's");
        assert_eq!(run(r#"{"a}b"}"#), "a}b");
        // `$` inside a range is still the root.
        assert_eq!(run("{range .items[0:1]}{$.kind}{end}"), "List");
    }

    #[test]
    fn filters() {
        assert_eq!(run("{.items[?(@.online==true)].name}"), "pi-a gpu");
        assert_eq!(run("{.items[?(@.online)].name}"), "pi-a gpu");
        assert_eq!(run(r#"{.items[?(@.name=="pi-b")].lastSeen}"#), "9");
        assert_eq!(run("{.items[?(@.name != 'pi-b')].name}"), "pi-a gpu");
        assert_eq!(run("{.items[?(@.lastSeen>9)].name}"), "pi-a gpu");
        assert_eq!(run("{.items[?(@.lastSeen<=9)].name}"), "pi-b");
        assert_eq!(run("{.items[?(@.labels.board=='pi5')].name}"), "pi-a");
        assert_eq!(run("{.items[?(@.tags)].name}"), "gpu");
    }

    #[test]
    fn bad_templates_say_where() {
        for (t, want) in [
            ("{.items[*].name", "unclosed action"),
            ("{range .items[*]}{.name}", "without an {end}"),
            ("{.name}{end}", "without a {range}"),
            ("{}", "empty action"),
            ("{.items[}", "unclosed '['"),
            ("{.items[x]}", "expected [N]"),
            ("{.a b}", "unexpected ' '"),
            ("{.a.}", ""),
            (r#"{"abc}"#, "unclosed"),
            ("{.items[?(@.a==[1])]}", "expected a string"),
            ("{.items[?(.a==1)]}", "starts with @"),
            ("{.items[::2]}", "step"),
            (r#"{"\q"}"#, "unknown escape"),
        ] {
            match Template::parse(t) {
                Err(e) => assert!(e.0.contains(want), "{t}: {e}"),
                Ok(_) if want.is_empty() => {}
                Ok(x) => panic!("{t} parsed: {x:?}"),
            }
        }
    }

    #[test]
    fn sort_keys_take_kubectl_forms_and_order_numbers_by_value() {
        let v = json!({"metadata": {"name": "x"}, "n": 10});
        for p in [".metadata.name", "{.metadata.name}", "metadata.name"] {
            assert_eq!(
                Path::parse_relaxed(p).unwrap().first(&v),
                Some(&json!("x")),
                "{p}"
            );
        }
        assert!(Path::parse_relaxed("{.a").is_err());
        assert!(Path::parse_relaxed("").is_err());
        assert_eq!(compare(&json!(9), &json!(10)), Ordering::Less);
        assert_eq!(compare(&json!(9.5), &json!(10)), Ordering::Less);
        assert_eq!(compare(&json!("10"), &json!("9")), Ordering::Less);
        assert_eq!(compare(&Value::Null, &json!(0)), Ordering::Less);
        assert_eq!(compare(&json!(false), &json!(true)), Ordering::Less);
    }
}
