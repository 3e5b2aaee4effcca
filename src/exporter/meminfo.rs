//! `meminfo`: one `node_memory_<Field>[_bytes]` gauge per line of
//! `/proc/meminfo`, named as node_exporter names them (`Active(anon)` →
//! `node_memory_Active_anon_bytes`; lines with a `kB` unit are converted
//! to bytes).

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// Reads `/proc/meminfo`.
pub struct Meminfo {
    paths: Paths,
}

impl Meminfo {
    /// A collector reading below `paths.procfs`.
    pub fn new(paths: Paths) -> Self {
        Meminfo { paths }
    }
}

/// Parses `/proc/meminfo` into `(metric suffix, value)` pairs.
pub fn parse_meminfo(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.is_empty() {
            continue;
        }
        if parts.len() < 2 || parts.len() > 3 {
            return Err(format!("invalid line: {line:?}"));
        }
        let mut v: f64 = parts[1]
            .parse()
            .map_err(|_| format!("invalid value in line: {line:?}"))?;
        let key = parts[0].strip_suffix(':').unwrap_or(parts[0]);
        // Active(anon) -> Active_anon
        let mut key = match key.find('(') {
            Some(i) if key.ends_with(')') => {
                format!("{}_{}", &key[..i], &key[i + 1..key.len() - 1])
            }
            _ => key.to_owned(),
        };
        if parts.len() == 3 {
            v *= 1024.0;
            key.push_str("_bytes");
        }
        if !super::textparse::valid_metric_name(&format!("node_memory_{key}")) {
            return Err(format!("invalid field name in line: {line:?}"));
        }
        out.push((key, v));
    }
    Ok(out)
}

impl Collector for Meminfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let path = self.paths.proc("meminfo");
        let text = paths::read(&path)?;
        let fields = parse_meminfo(&text).map_err(|m| CollectError::parse(&path, m))?;
        let mut name = String::with_capacity(48);
        let mut help = String::with_capacity(64);
        for (k, v) in fields {
            name.clear();
            name.push_str("node_memory_");
            name.push_str(&k);
            help.clear();
            help.push_str("Memory information field ");
            help.push_str(&k);
            help.push('.');
            out.gauge(&name, &help, &[], v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_name_fields_like_node_exporter() {
        let f = parse_meminfo("MemTotal:  100 kB\nActive(anon): 2 kB\nHugePages_Total: 3\n")
            .unwrap_or_default();
        assert_eq!(
            f,
            vec![
                ("MemTotal_bytes".to_owned(), 102400.0),
                ("Active_anon_bytes".to_owned(), 2048.0),
                ("HugePages_Total".to_owned(), 3.0)
            ]
        );
    }

    #[test]
    fn returns_error_when_a_field_name_makes_no_metric_name() {
        assert!(parse_meminfo("Huge-Pages: 3 kB\n").is_err());
        assert!(parse_meminfo("Hugepagesize\u{fffd}: 3 kB\n").is_err());
    }

    #[test]
    fn returns_error_when_value_is_not_a_number() {
        assert!(parse_meminfo("MemTotal: lots kB\n").is_err());
    }
}
