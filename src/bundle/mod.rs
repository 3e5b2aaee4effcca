//! # Bundles: the whole desired state of one node
//!
//! A bundle is a YAML (or JSON) document, `apiVersion: onprem/v1`,
//! `kind: Bundle`, with `metadata` and a `spec` of sections: `hardware`,
//! `fans`, `power`, `signals`, `checks`, `telemetry`, `redfish`, `tunnel`
//! ([`schema`]). Its life on a node:
//!
//! 1. **parse** ([`parse`]): unknown fields and wrong types are refused,
//!    every one at once, each with the field's path and line;
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

pub mod bounds;
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
    /// The document is not a bundle at all (not YAML, not a mapping), or
    /// its signature is bad.
    #[error("{0}")]
    Parse(FieldError),
    /// The bundle is not valid: unknown fields, wrong types, or values
    /// that break a rule; every problem is listed, each with its path.
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

/// Parses a bundle from YAML or JSON text (JSON is YAML): every unknown
/// field and wrong type at once, each with its path and line.
pub fn parse(text: &str) -> Result<Bundle, Error> {
    crate::validate::from_yaml(text).map_err(|p| {
        let mut errors = p.errors;
        for e in &mut errors {
            if e.path.is_empty() && !e.message.starts_with("more problems") {
                e.message = format!("not a bundle: {}", e.message);
            }
        }
        match errors.pop() {
            Some(e) if errors.is_empty() && e.path.is_empty() => Error::Parse(e),
            Some(e) => {
                errors.push(e);
                Error::Invalid(FieldErrors(errors))
            }
            None => Error::Parse(FieldError::new("", "not a bundle")),
        }
    })
}

/// Reads a bundle file: a regular file of at most
/// [`MAX_BUNDLE_BYTES`](crate::limits::MAX_BUNDLE_BYTES), UTF-8
/// ([`crate::limits::read_regular_text`]: a FIFO or a device at `path`
/// is refused without blocking).
pub fn read_file(path: &Path) -> Result<String, Error> {
    crate::limits::read_regular_text(path, crate::limits::MAX_BUNDLE_BYTES).map_err(|source| {
        Error::Read {
            path: path.to_owned(),
            source,
        }
    })
}

/// Reads the signature file of the bundle at `path` (`PATH.sig`, at most
/// [`MAX_SMALL_FILE_BYTES`](crate::limits::MAX_SMALL_FILE_BYTES)); `None`
/// when there is none.
pub fn read_sig(path: &Path) -> std::io::Result<Option<String>> {
    crate::limits::read_optional_text(&sign::sig_path(path), crate::limits::MAX_SMALL_FILE_BYTES)
}

/// Reads, parses and validates a bundle file; profiles named by path are
/// found relative to the file.
pub fn load(path: &Path) -> Result<Resolved, Error> {
    let text = read_file(path)?;
    let bundle = parse(&text)?;
    validate(&bundle, path.parent()).map_err(Error::Invalid)
}
