//! A small reader of Prometheus text 0.0.4 for comparing two exporters'
//! outputs family by family.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

/// One family as exposed.
#[derive(Debug, Default, Clone)]
pub struct Fam {
    pub kind: String,
    pub help: String,
    pub label_names: BTreeSet<String>,
    /// Sample line without the value (`name{labels}`) → value text.
    pub samples: BTreeMap<String, String>,
}

/// Families by name.
pub fn read(text: &str) -> BTreeMap<String, Fam> {
    let mut fams: BTreeMap<String, Fam> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            fams.entry(name.to_owned()).or_default().help = help.to_owned();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            fams.entry(name.to_owned()).or_default().kind = kind.to_owned();
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let fam = fams.entry(name.to_owned()).or_default();
            if let Some(labels) = series.split_once('{').map(|(_, l)| l.trim_end_matches('}')) {
                for kv in split_labels(labels) {
                    fam.label_names
                        .insert(kv.split('=').next().unwrap().to_owned());
                }
            }
            fam.samples.insert(series.to_owned(), value.to_owned());
        }
    }
    fams
}

fn split_labels(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_str, mut esc) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' => esc = true,
            '"' => in_str = !in_str,
            ',' if !in_str => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}
