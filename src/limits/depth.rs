//! How deeply a YAML (or JSON) text nests, found in one linear pass before
//! the YAML parser sees it.
//!
//! libyaml, which `serde_yaml_ng` parses with, looks at every open flow
//! collection (`[`, `{`) for each token it reads, so a document of flow
//! collections nested `n` deep costs it time in `n²`: 20,000 levels of
//! `{a: ` (100 KB) take over a second, 100,000 levels minutes. This pass
//! follows libyaml's scanner (its `scanner.c`: where a token starts,
//! which `[` and `{` open a collection and which sit in a quoted or
//! block scalar, a plain scalar or a comment, how block indentation
//! rolls and unrolls) without building anything, and stops at the first
//! point where the collections open there, flow and block together, are
//! more than the limit.
//!
//! Where libyaml would stop on an error this pass goes on as best it can:
//! what comes after an error is never parsed, so counting it can only
//! refuse a document that is refused anyway.

/// One simple key candidate (libyaml's `yaml_simple_key_t`): a token that
/// may turn out to be a mapping key once a `:` follows on its line.
#[derive(Debug, Clone, Copy, Default)]
struct Key {
    possible: bool,
    line: usize,
    index: usize,
    column: usize,
    /// The most flow levels (collections, and pairs in sequences) open,
    /// counted from the document, while it was possible: the mapping it
    /// turns out to start holds them too.
    peak: usize,
}

/// One open flow collection.
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    /// A sequence (`[`), whose entries may be single pairs (`[a: 1]`).
    sequence: bool,
    /// Its current entry is such a pair: one more level, a mapping.
    pair: bool,
}

/// One open block collection.
#[derive(Debug, Clone, Copy)]
struct Level {
    /// The indentation of the collection that encloses this one.
    outer: isize,
    /// A mapping (its entries may hold an indentless sequence).
    mapping: bool,
    /// A sequence at this mapping's own indentation (`key:\n- a`),
    /// one more level that libyaml's indentation stack does not show.
    indentless: bool,
}

/// Where the text went deeper than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// The line (from 1) where the level past the limit opens.
    pub line: usize,
    /// The limit.
    pub limit: usize,
}

/// The deepest nesting of `text` (flow and block collections together),
/// or where it first goes past `limit`.
pub fn deepest(text: &str, limit: usize) -> Result<usize, TooDeep> {
    let mut s = Scanner {
        s: text.as_bytes(),
        i: 0,
        line: 0,
        column: 0,
        flow: 0,
        indent: -1,
        levels: Vec::new(),
        allowed: true,
        keys: vec![Key::default()],
        flows: Vec::new(),
        deepest: 0,
        limit,
    };
    s.run()?;
    Ok(s.deepest)
}

struct Scanner<'a> {
    s: &'a [u8],
    /// Byte offset (libyaml's `mark.index` counts bytes of UTF-8 too).
    i: usize,
    /// Line, from 0.
    line: usize,
    /// Column in characters, from 0.
    column: usize,
    /// Open flow collections.
    flow: usize,
    /// The indentation of the innermost block collection (-1: none).
    indent: isize,
    /// Open block collections.
    levels: Vec<Level>,
    /// libyaml's `simple_key_allowed`.
    allowed: bool,
    /// The simple key candidate of each flow level (the block context's
    /// first).
    keys: Vec<Key>,
    /// The open flow collections.
    flows: Vec<Flow>,
    deepest: usize,
    limit: usize,
}

/// Characters of a tag's URI (libyaml's `yaml_parser_scan_tag_uri`).
fn uri_char(c: u8, verbatim: bool) -> bool {
    alpha(c) || b";/?:@&=+$.%!~*'()".contains(&c) || (verbatim && matches!(c, b',' | b'[' | b']'))
}

/// libyaml's `IS_ALPHA`: anchor names and tag handles.
fn alpha(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

impl Scanner<'_> {
    /// The byte `k` ahead (0 past the end, as libyaml's buffer ends).
    fn at(&self, k: usize) -> u8 {
        self.s.get(self.i + k).copied().unwrap_or(0)
    }

    fn z(&self, k: usize) -> bool {
        self.at(k) == 0
    }

    fn blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    /// A line break: CR, LF, NEL, LS or PS.
    fn brk(&self, k: usize) -> bool {
        match self.at(k) {
            b'\r' | b'\n' => true,
            0xC2 => self.at(k + 1) == 0x85,
            0xE2 => self.at(k + 1) == 0x80 && matches!(self.at(k + 2), 0xA8 | 0xA9),
            _ => false,
        }
    }

    fn breakz(&self, k: usize) -> bool {
        self.brk(k) || self.z(k)
    }

    fn blankz(&self, k: usize) -> bool {
        self.blank(k) || self.breakz(k)
    }

    /// One character forward.
    fn skip(&mut self) {
        let width = match self.at(0) {
            0 => return,
            c if c < 0x80 => 1,
            c if c >> 5 == 0b110 => 2,
            c if c >> 4 == 0b1110 => 3,
            _ => 4,
        };
        self.i = (self.i + width).min(self.s.len());
        self.column += 1;
    }

    /// Past one line break.
    fn skip_line(&mut self) {
        if self.at(0) == b'\r' && self.at(1) == b'\n' {
            self.i += 2;
        } else if self.brk(0) {
            self.skip();
        } else {
            return;
        }
        self.column = 0;
        self.line += 1;
    }

    /// The document marker `---` or `...` here (at the start of a line).
    fn document_marker(&self) -> bool {
        self.column == 0
            && (self.s[self.i..].starts_with(b"---") || self.s[self.i..].starts_with(b"..."))
            && self.blankz(3)
    }

    fn depth(&self) -> usize {
        self.flow
            + self.flows.iter().filter(|f| f.pair).count()
            + self.levels.len()
            + self.levels.iter().filter(|l| l.indentless).count()
    }

    fn deeper(&mut self) -> Result<(), TooDeep> {
        self.deeper_by(0)
    }

    /// Open flow collections and the pairs in them.
    fn flow_depth(&self) -> usize {
        self.flow + self.flows.iter().filter(|f| f.pair).count()
    }

    fn deeper_by(&mut self, extra: usize) -> Result<(), TooDeep> {
        let inside = self.flow_depth() + extra;
        for k in self.keys.iter_mut().filter(|k| k.possible) {
            k.peak = k.peak.max(inside);
        }
        let d = self.depth() + extra;
        self.deepest = self.deepest.max(d);
        if d > self.limit {
            return Err(TooDeep {
                line: self.line + 1,
                limit: self.limit,
            });
        }
        Ok(())
    }

    fn top(&mut self) -> &mut Key {
        if self.keys.is_empty() {
            self.keys.push(Key::default());
        }
        let last = self.keys.len() - 1;
        &mut self.keys[last]
    }

    fn save_key(&mut self) {
        if self.allowed {
            let key = Key {
                possible: true,
                line: self.line,
                index: self.i,
                column: self.column,
                peak: 0,
            };
            *self.top() = key;
        }
    }

    fn remove_key(&mut self) {
        self.top().possible = false;
    }

    fn roll(&mut self, column: usize, mapping: bool) -> Result<(), TooDeep> {
        if self.flow > 0 {
            return Ok(());
        }
        let column = column as isize;
        if self.indent < column {
            self.levels.push(Level {
                outer: self.indent,
                mapping,
                indentless: false,
            });
            self.indent = column;
            self.deeper()?;
        }
        Ok(())
    }

    fn unroll(&mut self, column: isize) {
        if self.flow > 0 {
            return;
        }
        while self.indent > column {
            match self.levels.pop() {
                Some(l) => self.indent = l.outer,
                None => self.indent = -1,
            }
        }
    }

    fn run(&mut self) -> Result<(), TooDeep> {
        loop {
            self.skip_to_token();
            self.unroll(self.column as isize);
            let c = self.at(0);
            if self.i >= self.s.len() {
                return Ok(());
            }
            if c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r') || c == 0x7F {
                // libyaml's reader refuses control characters: it stops.
                return Ok(());
            }
            if self.column == 0 && c == b'%' {
                // A directive: libyaml reads it to the end of its line or
                // fails.
                self.unroll(-1);
                self.remove_key();
                self.allowed = false;
                while !self.breakz(0) {
                    self.skip();
                }
                continue;
            }
            if self.document_marker() {
                self.unroll(-1);
                self.remove_key();
                self.allowed = false;
                for _ in 0..3 {
                    self.skip();
                }
                continue;
            }
            match c {
                b'[' | b'{' => {
                    self.save_key();
                    self.flow += 1;
                    self.keys.push(Key::default());
                    self.flows.push(Flow {
                        sequence: c == b'[',
                        pair: false,
                    });
                    self.allowed = true;
                    self.skip();
                    self.deeper()?;
                }
                b']' | b'}' => {
                    self.remove_key();
                    if self.flow > 0 {
                        self.flow -= 1;
                        self.keys.pop();
                        self.flows.pop();
                    }
                    self.allowed = false;
                    self.skip();
                }
                b',' => {
                    if let Some(f) = self.flows.last_mut() {
                        f.pair = false;
                    }
                    self.remove_key();
                    self.allowed = true;
                    self.skip();
                }
                b'-' if self.blankz(1) => {
                    if self.flow == 0 {
                        let column = self.column;
                        if self.indent == column as isize {
                            // A sequence at a mapping's indentation.
                            if let Some(l) = self.levels.last_mut() {
                                if l.mapping && !l.indentless {
                                    l.indentless = true;
                                    self.deeper()?;
                                }
                            }
                        }
                        self.roll(column, false)?;
                    }
                    self.remove_key();
                    self.allowed = true;
                    self.skip();
                }
                b'?' if self.flow > 0 || self.blankz(1) => {
                    self.roll(self.column, true)?;
                    self.pair(0)?;
                    self.remove_key();
                    self.allowed = self.flow == 0;
                    self.skip();
                }
                b':' if self.flow > 0 || self.blankz(1) => self.value()?,
                b'*' | b'&' => {
                    self.save_key();
                    self.allowed = false;
                    self.skip();
                    while alpha(self.at(0)) {
                        self.skip();
                    }
                }
                b'!' => {
                    self.save_key();
                    self.allowed = false;
                    self.tag();
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.remove_key();
                    self.allowed = true;
                    self.block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_key();
                    self.allowed = false;
                    self.quoted(c == b'\'');
                }
                _ if self.plain_start() => {
                    self.save_key();
                    self.allowed = false;
                    self.plain();
                }
                // Nothing can start here: libyaml stops; go on past it.
                _ => self.skip(),
            }
        }
    }

    /// libyaml's `yaml_parser_scan_to_next_token`: spaces, tabs where
    /// they are allowed, comments and line breaks.
    fn skip_to_token(&mut self) {
        loop {
            if self.column == 0 && self.s[self.i..].starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.skip();
            }
            while self.at(0) == b' ' || ((self.flow > 0 || !self.allowed) && self.at(0) == b'\t') {
                self.skip();
            }
            if self.at(0) == b'#' {
                while !self.breakz(0) {
                    self.skip();
                }
            }
            if !self.brk(0) {
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.allowed = true;
            }
        }
    }

    /// `:` (libyaml's `yaml_parser_fetch_value`): in the block context a
    /// mapping opens at the key's column.
    fn value(&mut self) -> Result<(), TooDeep> {
        let (line, index) = (self.line, self.i);
        let key = *self.top();
        let fresh = key.possible && key.line == line && key.index + 1024 >= index;
        if fresh {
            self.roll(key.column, true)?;
            // What the key held sits inside the new mapping.
            let inner = key.peak.saturating_sub(self.flow_depth());
            self.deeper_by(inner)?;
            self.pair(inner)?;
            self.top().possible = false;
            self.allowed = false;
        } else {
            if self.flow == 0 {
                self.roll(self.column, true)?;
            }
            self.pair(0)?;
            self.allowed = self.flow == 0;
        }
        self.skip();
        Ok(())
    }

    /// A key or a value in a flow sequence: its entry is a mapping of one
    /// pair, holding `inner` levels of the key.
    fn pair(&mut self, inner: usize) -> Result<(), TooDeep> {
        match self.flows.last_mut() {
            Some(f) if f.sequence && !f.pair => {
                f.pair = true;
                self.deeper_by(inner)
            }
            _ => Ok(()),
        }
    }

    /// Whether a plain scalar starts here (libyaml's test before
    /// `yaml_parser_fetch_plain_scalar`).
    fn plain_start(&self) -> bool {
        let c = self.at(0);
        !(self.blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c))
            || (c == b'-' && !self.blank(1))
            || (self.flow == 0 && matches!(c, b'?' | b':') && !self.blankz(1))
    }

    /// A tag: `!<verbatim>`, `!`, `!suffix`, `!handle!suffix`.
    fn tag(&mut self) {
        if self.at(1) == b'<' {
            self.skip();
            self.skip();
            while uri_char(self.at(0), true) {
                self.skip();
            }
            if self.at(0) == b'>' {
                self.skip();
            }
        } else {
            self.skip();
            while uri_char(self.at(0), false) {
                self.skip();
            }
        }
    }

    /// A single- or double-quoted scalar, to its closing quote.
    fn quoted(&mut self, single: bool) {
        let quote = if single { b'\'' } else { b'"' };
        self.skip();
        loop {
            if self.document_marker() || self.z(0) {
                // libyaml fails here.
                return;
            }
            while !self.blankz(0) {
                let c = self.at(0);
                if single && c == b'\'' && self.at(1) == b'\'' {
                    self.skip();
                    self.skip();
                } else if c == quote {
                    break;
                } else if !single && c == b'\\' && self.brk(1) {
                    self.skip();
                    self.skip_line();
                    break;
                } else if !single && c == b'\\' {
                    let digits = match self.at(1) {
                        b'x' => 2,
                        b'u' => 4,
                        b'U' => 8,
                        b'0' | b'a' | b'b' | b't' | b'\t' | b'n' | b'v' | b'f' | b'r' | b'e'
                        | b' ' | b'"' | b'/' | b'\\' | b'N' | b'_' | b'L' | b'P' => 0,
                        // An unknown escape: libyaml fails here.
                        _ => return,
                    };
                    self.skip();
                    self.skip();
                    for _ in 0..digits {
                        if !self.at(0).is_ascii_hexdigit() {
                            return;
                        }
                        self.skip();
                    }
                } else {
                    self.skip();
                }
            }
            if self.at(0) == quote {
                self.skip();
                return;
            }
            while self.blank(0) || self.brk(0) {
                if self.blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    /// A plain scalar (libyaml's `yaml_parser_scan_plain_scalar`).
    fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_marker() || self.at(0) == b'#' {
                break;
            }
            while !self.blankz(0) {
                let c = self.at(0);
                if self.flow > 0 && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    // libyaml fails here ("found unexpected ':'").
                    break;
                }
                if (c == b':' && self.blankz(1)) || (self.flow > 0 && b",[]{}".contains(&c)) {
                    break;
                }
                self.skip();
            }
            if !(self.blank(0) || self.brk(0)) {
                break;
            }
            while self.blank(0) || self.brk(0) {
                if self.blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && (self.column as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.allowed = true;
        }
    }

    /// A literal (`|`) or folded (`>`) block scalar: its header and every
    /// line of it (libyaml's `yaml_parser_scan_block_scalar`).
    fn block_scalar(&mut self) {
        self.skip();
        let mut increment = 0isize;
        let c = self.at(0);
        if c == b'+' || c == b'-' {
            self.skip();
            if self.at(0).is_ascii_digit() {
                if self.at(0) == b'0' {
                    return;
                }
                increment = isize::from(self.at(0) - b'0');
                self.skip();
            }
        } else if c.is_ascii_digit() {
            if c == b'0' {
                return;
            }
            increment = isize::from(c - b'0');
            self.skip();
            if matches!(self.at(0), b'+' | b'-') {
                self.skip();
            }
        }
        while self.blank(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            while !self.breakz(0) {
                self.skip();
            }
        }
        if !self.breakz(0) {
            // libyaml fails here.
            return;
        }
        self.skip_line();
        let mut indent = 0isize;
        if increment != 0 {
            indent = if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            };
        }
        if !self.block_breaks(&mut indent) {
            return;
        }
        while self.column as isize == indent && !self.z(0) {
            while !self.breakz(0) {
                self.skip();
            }
            self.skip_line();
            if !self.block_breaks(&mut indent) {
                return;
            }
        }
    }

    /// The indentation and empty lines before a block scalar's next line
    /// (libyaml's `yaml_parser_scan_block_scalar_breaks`); sets the
    /// scalar's indentation when it is not known yet. `false` where
    /// libyaml fails (a tab in the indentation).
    fn block_breaks(&mut self, indent: &mut isize) -> bool {
        let mut most = 0isize;
        loop {
            while (*indent == 0 || (self.column as isize) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            most = most.max(self.column as isize);
            if (*indent == 0 || (self.column as isize) < *indent) && self.at(0) == b'\t' {
                return false;
            }
            if !self.brk(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = most.max(self.indent + 1).max(1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        deepest(text, usize::MAX).unwrap()
    }

    #[test]
    fn flow_collections_count_one_level_each() {
        assert_eq!(depth("a: 1\n"), 1);
        assert_eq!(depth("[]"), 1);
        assert_eq!(depth("{a: [1, {b: [[]]}]}"), 5);
        assert_eq!(depth(r#"{"a": {"b": {"c": [1, 2]}}}"#), 4);
        assert_eq!(depth("{a: 1} : {b: [2]}\n"), 3);
        assert_eq!(depth("{a: [1]}: 2\n"), 3);
        assert_eq!(depth("[a: 1, b, [c: [1]]]"), 4);
        assert_eq!(depth("[[1]: 2]"), 3);
        assert_eq!(depth("[a :]: 1\n"), 3);
    }

    #[test]
    fn block_collections_count_by_indentation() {
        assert_eq!(depth("a:\n  b:\n    c: 1\n"), 3);
        assert_eq!(depth("- - - 1\n"), 3);
        assert_eq!(depth("- a: 1\n  b:\n  - 2\n"), 3);
        assert_eq!(depth("a:\n- b: 1\n"), 3);
        assert_eq!(depth("a:\n  - [1, {b: 2}]\n"), 4);
        // Back out of a deep branch: the next one starts from there.
        assert_eq!(depth("a:\n  b:\n    c: 1\nd: 2\n"), 3);
    }

    #[test]
    fn brackets_in_quotes_comments_and_scalars_do_not_count() {
        assert_eq!(depth("a: '[[[[{{{{'\n"), 1);
        assert_eq!(depth("a: \"[[[\\\"[[{{\"\n"), 1);
        assert_eq!(depth("a: 'it''s [[[['\n"), 1);
        assert_eq!(depth("a: 1 # [[[[{{{{\n"), 1);
        assert_eq!(depth("# {{{{\n[1, 2] # [[[[\n"), 1);
        assert_eq!(depth("a: x[[[[y\n"), 1);
        assert_eq!(depth("a: it's [[[[\nb: 'x'\n"), 1);
        assert_eq!(depth("a: |\n  {{{{ [[[[\n  '\nb: 1\n"), 1);
        assert_eq!(depth("- >-\n   [[[[\n\n   {{{{\n- 2\n"), 1);
        assert_eq!(depth("[a#b, 'c]', \"d}\"]"), 1);
        assert_eq!(depth("a: !tag [1]\nb: &x {c: *x}\n"), 2);
        assert_eq!(depth("a: !<tag:[x]> 1\n"), 1);
    }

    #[test]
    fn what_looks_like_a_string_but_is_not_one_still_counts() {
        // A quote inside a plain scalar starts nothing: the brackets on
        // the next line are a flow collection.
        assert_eq!(depth("a: it's\nb: [[[[1]]]]\nc: 'x'\n"), 5);
        // A block scalar ends at the first line indented less than it.
        assert_eq!(depth("a: |\n    x\n  b: [[[1]]]\n"), 5);
        // ... and with an indentation indicator, at the key's level plus
        // the indicator.
        assert_eq!(depth("a:\n  b: |4\n   [[[[1]]]]\n"), 6);
        // A plain scalar continues on more indented lines only.
        assert_eq!(depth("a: x\n  [[[[\nb: [[1]]\n"), 3);
        // `#` right after a flow indicator is a comment only at a token's
        // start.
        assert_eq!(depth("[a,#]]]\n [[1]]]"), 3);
    }

    #[test]
    fn the_first_level_past_the_limit_is_refused_with_its_line() {
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(deepest(&ok, 64), Ok(64));
        let deep = format!("a:\n  b: {}1{}", "{c: ".repeat(70), "}".repeat(70));
        assert_eq!(deepest(&deep, 64), Err(TooDeep { line: 2, limit: 64 }));
        let mut block = String::new();
        for i in 0..70 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert_eq!(
            deepest(&block, 64),
            Err(TooDeep {
                line: 65,
                limit: 64
            })
        );
        let compact = format!("{}1\n", "- ".repeat(70));
        assert_eq!(deepest(&compact, 64), Err(TooDeep { line: 1, limit: 64 }));
    }

    #[test]
    fn a_hundred_thousand_levels_are_refused_at_once() {
        let deep = format!("{}1{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        assert_eq!(deepest(&deep, 64), Err(TooDeep { line: 1, limit: 64 }));
    }

    /// The depth of a parsed value: scalars 0, a collection one more than
    /// its deepest key or value.
    fn value_depth(v: &serde_yaml_ng::Value) -> usize {
        use serde_yaml_ng::Value;
        match v {
            Value::Sequence(s) => 1 + s.iter().map(value_depth).max().unwrap_or(0),
            Value::Mapping(m) => {
                1 + m
                    .iter()
                    .map(|(k, v)| value_depth(k).max(value_depth(v)))
                    .max()
                    .unwrap_or(0)
            }
            Value::Tagged(t) => value_depth(&t.value),
            _ => 0,
        }
    }

    #[test]
    fn never_less_than_the_parser_finds_in_random_documents() {
        // Random texts of YAML's indicators; whatever the parser reads,
        // this pass found at least as deep (aliases left out: the parser
        // copies what they name, deeper than the text).
        let pieces: &[&str] = &[
            "[", "]", "{", "}", ",", ": ", ":", "- ", "? ", "'", "\"", "#", " #", "\n", "\n  ",
            "\n    ", "a", "b ", "|\n", ">-\n", "|2\n", "&x ", "!t ", "\\", "'[", "\"{", "{a: ",
            "[[", "  ", "\t",
        ];
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut parsed = 0;
        for _ in 0..3_000_000 {
            let n = 1 + next() % 16;
            let text: String = (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
                continue;
            };
            parsed += 1;
            let found = depth(&text);
            assert!(
                found >= value_depth(&v),
                "{text:?}: found {found}, the parser {}",
                value_depth(&v)
            );
        }
        assert!(parsed > 1000, "only {parsed} documents parsed");
    }

    #[test]
    fn deep_nesting_after_any_prefix_is_never_missed() {
        // Whatever comes before, where the parser goes past its own
        // recursion limit (128) on 200 levels this pass refuses at 64.
        let pieces: &[&str] = &[
            "[", "]", "{", "}", ",", ": ", ":", "- ", "? ", "'", "\"", "#", " #", "\n", "\n  ",
            "\n    ", "a", "b ", "|\n", ">-\n", "|2\n", "&x ", "!t ", "\\", "'[", "\"{", "{a: ",
            "[[", "  ", "\t",
        ];
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut seen = 0;
        for _ in 0..20_000 {
            let n = next() % 12;
            let mut text: String = (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            text.push_str(&deep);
            let Err(e) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
                continue;
            };
            if e.to_string().contains("recursion limit exceeded") {
                seen += 1;
                assert!(deepest(&text, 64).is_err(), "{text:?}");
            }
        }
        assert!(seen > 1000, "only {seen} texts went that deep");
    }
}
