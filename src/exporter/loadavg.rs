//! `loadavg`: `node_load1`, `node_load5`, `node_load15` from
//! `/proc/loadavg`.

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// Reads `/proc/loadavg`.
pub struct Loadavg {
    paths: Paths,
}

impl Loadavg {
    /// A collector reading below `paths.procfs`.
    pub fn new(paths: Paths) -> Self {
        Loadavg { paths }
    }
}

/// Parses the first three fields of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

impl Collector for Loadavg {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let path = self.paths.proc("loadavg");
        let text = paths::read(&path)?;
        let [l1, l5, l15] = parse_loadavg(&text)
            .ok_or_else(|| CollectError::parse(&path, "expected three numbers"))?;
        out.gauge("node_load1", "1m load average.", &[], l1);
        out.gauge("node_load5", "5m load average.", &[], l5);
        out.gauge("node_load15", "15m load average.", &[], l15);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_loadavg() {
        assert_eq!(
            parse_loadavg("0.52 0.41 0.37 2/241 31337\n"),
            Some([0.52, 0.41, 0.37])
        );
    }

    #[test]
    fn returns_none_when_loadavg_is_truncated() {
        assert_eq!(parse_loadavg("0.52 x"), None);
        assert_eq!(parse_loadavg(""), None);
    }
}
