//! # Bundles: the whole desired state of one node
//!
//! A bundle is a YAML (or JSON) document, `apiVersion: onprem/v1`,
//! `kind: Bundle`, with `metadata` and a `spec` of sections: `hardware`,
//! `fans`, `power`, `signals`, `checks`, `telemetry`, `redfish`, `tunnel`
//! ([`schema`]). Its life on a node:
//!
//! 1. **parse** ([`parse`]): unknown fields and wrong types are refused
//!    with the field's path;
//! 2. **verify** ([`sign`]): Ed25519 signatures against the trusted keys,
//!    when the agent requires them;
//! 3. **validate** ([`validate::validate`]): every problem, with its path,
//!    including references (a zone naming a sensor the hardware lacks);
//!    the result is a [`Resolved`] bundle, its hardware profile merged;
//! 4. **store** ([`store`]): written atomically into the state directory,
//!    the previous one kept as last-known-good;
//! 5. **apply**: the agent restarts the loops whose section changed
//!    ([`diff`]); a bundle that fails to apply is rolled back.
//!
//! The commands that work on bundle files (`onprem validate`, `onprem
//! explain`, `onprem bundle keygen|sign|verify`) are in [`cli`].
//!
//! To add a field: add it to [`schema`] with a doc comment (that is what
//! `onprem explain` prints) and a named default, check it in
//! [`validate`](mod@validate), and give `tests/fixtures/bundles/invalid/`
//! a file that breaks it.

pub mod cli;
pub mod diff;
pub mod duration;
pub mod examples;
pub mod explain;
pub mod schema;
pub mod selector;
pub mod sign;
pub mod store;
pub mod validate;

use std::path::{Path, PathBuf};

pub use duration::Dur;
pub use schema::Bundle;
pub use validate::{Resolved, validate};

use crate::validate::{FieldError, FieldErrors};

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The document does not parse (syntax, unknown field, wrong type).
    #[error("{0}")]
    Parse(FieldError),
    /// The bundle parses but is not valid; every problem is listed.
    #[error("{0}")]
    Invalid(FieldErrors),
}

impl Error {
    /// Every problem, one [`FieldError`] each (a read error has path "").
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Error::Read { path, source } => vec![FieldError::new(
                path.display().to_string(),
                source.to_string(),
            )],
            Error::Parse(e) => vec![e.clone()],
            Error::Invalid(e) => e.0.clone(),
        }
    }
}

/// Parses a bundle from YAML or JSON text (JSON is YAML).
pub fn parse(text: &str) -> Result<Bundle, Error> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde_yaml_ng appends " at line L column C"; keep it, it helps.
        let mut message = strip_yaml_path(&inner, &path).to_owned();
        if path == "." {
            message = format!("not a bundle: {message}");
        }
        Error::Parse(FieldError::new(
            if path == "." { String::new() } else { path },
            message,
        ))
    })
}

/// serde_yaml_ng starts a message with the path of the mapping it was
/// reading (`spec.fans: "5x": unknown unit`); the error's own path is
/// the same or more precise (`spec.fans.period`), so that prefix only
/// repeats it.
fn strip_yaml_path<'a>(message: &'a str, path: &str) -> &'a str {
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

/// Reads, parses and validates a bundle file; profiles named by path are
/// found relative to the file.
pub fn load(path: &Path) -> Result<Resolved, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let bundle = parse(&text)?;
    validate(&bundle, path.parent()).map_err(Error::Invalid)
}
