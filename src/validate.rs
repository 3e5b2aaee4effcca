//! Field-addressed validation errors, shared by every configuration
//! onprem reads: each problem carries the path of the field it is about
//! (`collectors.filesystem.mount_points_exclude`) and a message, and
//! validation collects all of them instead of stopping at the first.

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
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
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
