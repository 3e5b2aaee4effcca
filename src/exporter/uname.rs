//! `uname`: `node_uname_info` with the kernel and machine from `uname(2)`.

use super::{CollectError, Collector, MetricWriter, sys};

/// Calls `uname(2)`.
#[derive(Default)]
pub struct Uname;

impl Uname {
    /// A collector.
    pub fn new() -> Self {
        Uname
    }
}

impl Collector for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let u = sys::uname().map_err(|source| CollectError::Io {
            path: "uname(2)".into(),
            source,
        })?;
        out.gauge(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            &[
                ("sysname", &u.sysname),
                ("release", &u.release),
                ("version", &u.version),
                ("machine", &u.machine),
                ("nodename", &u.nodename),
                ("domainname", &u.domainname),
            ],
            1.0,
        );
        Ok(())
    }
}
