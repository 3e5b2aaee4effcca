//! The worst a bundle can cost to read within the limits of
//! `src/limits/mod.rs`, beside a normal example bundle:
//!
//! - at the depth limit (`MAX_DEPTH`, 32): flow mappings, flow lists and
//!   block mappings nested 64 deep, repeated up to the size limit
//!   (`MAX_BUNDLE_BYTES`, 1 MiB), which libyaml parses (its cost grows
//!   with the square of the flow nesting: 64 is where it is capped);
//! - at the size limit: 1 MiB of mapping keys, each an unknown field, so
//!   that finding every problem re-reads the document (`MAX_REREAD_BYTES`
//!   bounds the rounds);
//! - past the limits: 100,000 levels of `{a: ` (500 KB, minutes of libyaml
//!   before the limit), refused by the depth pass; a 50 MB file, refused
//!   by its size before it is read.
//!
//! Each case is what the agent does with a bundle text: `bundle::parse`,
//! then `bundle::validate` when it parses. It prints the worst and the
//! median time of `ONPREM_BENCH_RUNS` runs (default 5) and the worst as a
//! multiple of the example's worst.
//!
//! Run: `cargo bench --bench parse_limits`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use onprem::limits::{self, MAX_BUNDLE_BYTES, MAX_DEPTH};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A bundle header with `body` as the value of `spec.x` (unknown: the
/// parse refuses it, after reading all of it).
fn with_spec_value(body: &str) -> String {
    format!("apiVersion: onprem/v1\nkind: Bundle\nmetadata: {{name: worst}}\nspec:\n  x: {body}\n")
}

/// `open` + 1 + `close`, `depth` levels deep.
fn nest(open: &str, close: &str, depth: usize) -> String {
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

/// A flow list of copies of `item`, as many as fit in `bytes`.
fn fill(item: &str, bytes: usize) -> String {
    let mut s = String::from("[");
    while s.len() + item.len() + 2 < bytes {
        if s.len() > 1 {
            s.push(',');
        }
        s.push_str(item);
    }
    s.push(']');
    s
}

/// Room for the header of [`with_spec_value`] within the size limit.
fn room() -> usize {
    MAX_BUNDLE_BYTES.value - 200
}

/// Block mappings nested `depth` deep under `spec.x`, repeated to `bytes`.
fn block(depth: usize, bytes: usize) -> String {
    let mut s =
        String::from("apiVersion: onprem/v1\nkind: Bundle\nmetadata: {name: worst}\nspec:\n  x:\n");
    let mut n = 0;
    'fill: loop {
        for level in 0..depth {
            let line = format!("{}k{n}_{level}:\n", "  ".repeat(level + 2));
            if s.len() + line.len() + 100 > bytes {
                break 'fill;
            }
            s.push_str(&line);
        }
        n += 1;
    }
    s
}

/// 1 MiB of unknown fields of `spec`.
fn many_keys(bytes: usize) -> String {
    let mut s =
        String::from("apiVersion: onprem/v1\nkind: Bundle\nmetadata: {name: worst}\nspec:\n");
    let mut i = 0;
    while s.len() + 20 < bytes {
        s.push_str(&format!("  k{i:07}: 1\n"));
        i += 1;
    }
    s
}

/// What the agent does with a text: parse, and validate what parses.
fn check(text: &str) -> bool {
    match onprem::bundle::parse(text) {
        Ok(b) => onprem::bundle::validate(&b, None).is_ok(),
        Err(_) => false,
    }
}

/// Worst and median seconds of `runs` runs of `f`.
fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    (t[t.len() - 1], t[t.len() / 2])
}

fn main() {
    let runs = env_or("ONPREM_BENCH_RUNS", 5).max(1);
    let depth = MAX_DEPTH.value;
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples/pi5-fan-curve.yaml"),
    )
    .unwrap();
    // The deepest that passes: the bundle's own two levels (spec, x)
    // plus the nesting.
    let inner = depth - 3;
    let cases: Vec<(&str, String)> = vec![
        ("example pi5-fan-curve (valid)", example),
        (
            &*Box::leak(format!("flow mappings {inner} deep, repeated to 1 MiB").into_boxed_str()),
            with_spec_value(&fill(&nest("{a: ", "}", inner), room())),
        ),
        (
            &*Box::leak(format!("flow lists {inner} deep, repeated to 1 MiB").into_boxed_str()),
            with_spec_value(&fill(&nest("[", "]", inner), room())),
        ),
        (
            &*Box::leak(
                format!("block mappings {} deep, repeated to 1 MiB", depth - 2).into_boxed_str(),
            ),
            block(depth - 2, room()),
        ),
        ("1 MiB of unknown fields", many_keys(room())),
        (
            "flow mappings 100,000 deep (refused: MAX_DEPTH)",
            with_spec_value(&nest("{a: ", "}", 100_000)),
        ),
    ];
    println!(
        "{:<50} {:>9} {:>11} {:>11} {:>9}",
        "case", "bytes", "worst ms", "median ms", "× example"
    );
    let mut base = None;
    for (name, text) in &cases {
        assert!(
            text.len() <= MAX_BUNDLE_BYTES.value,
            "{name}: {}",
            text.len()
        );
        let (worst, median) = time(runs, || {
            std::hint::black_box(check(text));
        });
        let base = *base.get_or_insert(worst);
        println!(
            "{name:<50} {:>9} {:>11.3} {:>11.3} {:>9.0}",
            text.len(),
            worst * 1e3,
            median * 1e3,
            worst / base
        );
    }

    // A 50 MB file: refused by its size, not read.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(50 << 20)
        .unwrap();
    let (worst, median) = time(runs, || {
        assert!(limits::read_regular(&big, MAX_BUNDLE_BYTES).is_err());
    });
    println!(
        "{:<50} {:>9} {:>11.3} {:>11.3}",
        "a 50 MB file (refused: MAX_BUNDLE_BYTES)",
        50 << 20,
        worst * 1e3,
        median * 1e3
    );
}
