//! `textfile`: metrics from `*.prom` files that other programs write into
//! a directory (`--collector.textfile.directory`), as node_exporter reads
//! them.
//!
//! Writers must write to a temporary file and rename it into place, so a
//! scrape never sees half a file. A file with a syntax error or with
//! client-side timestamps is skipped whole and sets
//! `node_textfile_scrape_error` to 1; `node_textfile_mtime_seconds` lets
//! alerts catch a writer that died (its file stops changing).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use serde::Deserialize;

use super::metrics::Kind;
use super::{CollectError, Collector, MetricWriter, textparse};

/// Where onprem looks for textfiles unless told otherwise.
pub const DEFAULT_DIRECTORY: &str = "/var/lib/onprem/textfile";

/// Options of the textfile collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Directory to read `*.prom` files from
    /// (`--collector.textfile.directory`).
    pub directory: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            directory: DEFAULT_DIRECTORY.into(),
        }
    }
}

/// Reads `*.prom` files.
pub struct Textfile {
    dir: PathBuf,
    /// The missing-directory warning was logged (once per outage, not per
    /// scrape: logs on SD cards wear them out).
    warned: AtomicBool,
}

impl Textfile {
    /// A collector reading `s.directory`.
    pub fn new(s: &Settings) -> Self {
        Textfile {
            dir: s.directory.clone(),
            warned: AtomicBool::new(false),
        }
    }
}

impl Collector for Textfile {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut error = false;
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => {
                self.warned.store(false, Ordering::Relaxed);
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "prom"))
                    .collect()
            }
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %self.dir.display(), error = %e, "failed to read textfile collector directory");
                }
                error = true;
                Vec::new()
            }
        };
        files.sort();
        let mut mtimes = Vec::new();
        for path in files {
            let shown = path.display().to_string();
            // A FIFO named *.prom would hold the scrape for ever, and a
            // runaway writer's file would take the agent's memory.
            let text =
                match crate::limits::read_regular_text(&path, crate::limits::MAX_TEXTFILE_BYTES) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(file = %shown, error = %e, "failed to read textfile");
                        error = true;
                        continue;
                    }
                };
            let parsed = match textparse::parse(&text) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(file = %shown, error = %e, "failed to parse textfile data from file");
                    error = true;
                    continue;
                }
            };
            if parsed.has_timestamps {
                tracing::warn!(file = %shown, "textfile contains unsupported client-side timestamps, skipping entire file");
                error = true;
                continue;
            }
            for f in parsed.families {
                let help = if f.help.is_empty() {
                    format!("Metric read from {shown}")
                } else {
                    f.help
                };
                for m in f.metrics {
                    out.push_owned(&f.name, &help, f.kind, m.labels, m.value);
                }
            }
            let mtime = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs() as f64);
            mtimes.push((shown, mtime));
        }
        for (file, t) in mtimes {
            out.push(
                "node_textfile_mtime_seconds",
                "Unixtime mtime of textfiles successfully read.",
                Kind::Gauge,
                &[("file", &file)],
                super::Value::Single(t),
            );
        }
        out.gauge(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            &[],
            if error { 1.0 } else { 0.0 },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_an_oversized_file_is_skipped_without_holding_the_scrape() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.prom"), "good_metric 1\n").unwrap();
        let fifo = dir.path().join("b.prom");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // Sparse: its size is over the limit, nothing of it is read.
        let big = std::fs::File::create(dir.path().join("c.prom")).unwrap();
        big.set_len(crate::limits::MAX_TEXTFILE_BYTES.value as u64 + 1)
            .unwrap();
        let c = Textfile::new(&Settings {
            directory: dir.path().to_owned(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = MetricWriter::new();
            let r = c.update(&mut out);
            let _ = tx.send((r.is_ok(), out.finish()));
        });
        let (ok, fams) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the scrape is held by the FIFO");
        assert!(ok);
        let value = |name: &str| {
            fams.iter()
                .find(|f| f.name == name)
                .map(|f| f.metrics[0].value.clone())
        };
        assert_eq!(
            value("good_metric"),
            Some(crate::exporter::metrics::Value::Single(1.0))
        );
        assert_eq!(
            value("node_textfile_scrape_error"),
            Some(crate::exporter::metrics::Value::Single(1.0))
        );
        let mtimes = fams
            .iter()
            .find(|f| f.name == "node_textfile_mtime_seconds")
            .unwrap();
        assert_eq!(mtimes.metrics.len(), 1, "{mtimes:?}");
    }
}
