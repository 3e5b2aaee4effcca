//! `os`: `node_os_info` and `node_os_version` from `/etc/os-release` (or
//! `/usr/lib/os-release`) below `--path.rootfs`.

use std::collections::HashMap;

use super::{CollectError, Collector, MetricWriter, Paths};

/// Reads os-release.
pub struct Os {
    paths: Paths,
}

impl Os {
    /// A collector reading below `paths.rootfs`.
    pub fn new(paths: Paths) -> Self {
        Os { paths }
    }
}

/// Parses os-release: `KEY=value` lines, values optionally quoted with
/// `"` or `'`, backslash escapes inside double quotes.
pub fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let value = if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            let mut s = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                } else {
                    s.push(c);
                }
            }
            s
        } else if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            inner.to_owned()
        } else {
            v.to_owned()
        };
        m.insert(k.trim().to_owned(), value);
    }
    m
}

/// The leading `major[.minor]` of a VERSION_ID as a number.
pub fn version_number(version_id: &str) -> Option<f64> {
    let end = version_id
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(version_id.len());
    if end == 0 {
        return None;
    }
    let mut s = version_id[..end].to_owned();
    if let Some(rest) = version_id[end..].strip_prefix('.') {
        let frac: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        s.push('.');
        s.push_str(&frac);
    }
    s.trim_end_matches('.').parse().ok()
}

const INFO_KEYS: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

impl Collector for Os {
    fn name(&self) -> &'static str {
        "os"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut text = None;
        for rel in ["etc/os-release", "usr/lib/os-release"] {
            let path = self.paths.root(rel);
            match super::paths::read_file(&path) {
                Ok(t) => {
                    text = Some(t);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CollectError::Io { path, source }),
            }
        }
        let m = parse_os_release(&text.ok_or(CollectError::NoData)?);
        let get = |k: &str| m.get(k).map(String::as_str).unwrap_or("");
        let labels: Vec<(&str, &str)> = INFO_KEYS.iter().map(|(l, k)| (*l, get(k))).collect();
        out.gauge(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
            &labels,
            1.0,
        );
        if let Some(v) = version_number(get("VERSION_ID")) {
            out.gauge(
                "node_os_version",
                "Metric containing the major.minor part of the OS version.",
                &[
                    ("id", get("ID")),
                    ("id_like", get("ID_LIKE")),
                    ("name", get("NAME")),
                ],
                v,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_quoted_values() {
        let m =
            parse_os_release("NAME=\"Debian GNU/Linux\"\nID=debian\nX='a b'\n# c\nY=\"q\\\"t\"\n");
        assert_eq!(m["NAME"], "Debian GNU/Linux");
        assert_eq!(m["ID"], "debian");
        assert_eq!(m["X"], "a b");
        assert_eq!(m["Y"], "q\"t");
    }

    #[test]
    fn can_take_major_minor_of_version() {
        assert_eq!(version_number("12"), Some(12.0));
        assert_eq!(version_number("22.04"), Some(22.04));
        assert_eq!(version_number("11.7.2"), Some(11.7));
        assert_eq!(version_number("rolling"), None);
    }
}
