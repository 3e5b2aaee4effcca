//! `vmstat`: `node_vmstat_<field>` (untyped) for the fields of
//! `/proc/vmstat` that match `--collector.vmstat.fields`.

use serde::Deserialize;

use super::{CollectError, Collector, MetricWriter, Paths, paths};
use crate::validate::FieldError;

/// node_exporter's default field pattern.
pub const DEFAULT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

/// Options of the vmstat collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Regular expression selecting the fields to export
    /// (`--collector.vmstat.fields`).
    pub fields: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fields: DEFAULT_FIELDS.to_owned(),
        }
    }
}

/// Reads `/proc/vmstat`.
pub struct Vmstat {
    paths: Paths,
    fields: regex::Regex,
}

impl Vmstat {
    /// A collector reading below `paths.procfs`; `None` (with an error
    /// recorded) when the field pattern does not compile.
    pub fn new(paths: Paths, s: &Settings, errors: &mut Vec<FieldError>) -> Option<Self> {
        let fields = crate::validate::regex("collectors.vmstat.fields", &s.fields, errors)?;
        Some(Vmstat { paths, fields })
    }
}

impl Collector for Vmstat {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let path = self.paths.proc("vmstat");
        let text = paths::read(&path)?;
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                continue;
            };
            if !self.fields.is_match(k) {
                continue;
            }
            let name = format!("node_vmstat_{k}");
            let v: f64 = v
                .parse()
                .ok()
                .filter(|_| super::textparse::valid_metric_name(&name))
                .ok_or_else(|| CollectError::parse(&path, format!("invalid line: {line:?}")))?;
            out.untyped(
                &name,
                &format!("/proc/vmstat information field {k}."),
                &[],
                v,
            );
        }
        Ok(())
    }
}
