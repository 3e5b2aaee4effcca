//! Where collectors read from: procfs, sysfs and the root filesystem, each
//! configurable (`--path.procfs`, `--path.sysfs`, `--path.rootfs`, as in
//! node_exporter) so that the agent runs in a container or on a fixture
//! tree, plus small helpers that read one sysfs attribute.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::CollectError;

/// The three roots every collector reads through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// procfs mount point (default `/proc`).
    pub procfs: PathBuf,
    /// sysfs mount point (default `/sys`).
    pub sysfs: PathBuf,
    /// The host's root filesystem (default `/`).
    pub rootfs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
        }
    }
}

impl Paths {
    /// A path below procfs.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }

    /// A path below sysfs.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }

    /// A path of the host's root filesystem (`rel` may start with `/`).
    pub fn root(&self, rel: &str) -> PathBuf {
        self.rootfs.join(rel.trim_start_matches('/'))
    }
}

/// Reads a whole procfs or sysfs file with as few system calls as
/// possible: open, read until end, close. (`fs::read_to_string` also asks
/// for the file's size, which is 0 for these files anyway; on a busy edge
/// node every scrape reads a few hundred of them.) Invalid UTF-8 is
/// replaced, never an error.
pub fn read_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let len = buf.len();
        let spare = buf.capacity() - len;
        buf.resize(len + spare, 0);
        match f.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                break;
            }
            Ok(n) => buf.truncate(len + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(len),
            Err(e) => return Err(e),
        }
    }
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Reads one sysfs attribute: sysfs serves an attribute in a single read
/// of at most a page, so one read is enough.
fn read_attr(path: &Path) -> io::Result<String> {
    read_page(&mut fs::File::open(path)?)
}

/// One read of at most a page from an open sysfs attribute.
pub(crate) fn read_page(f: &mut fs::File) -> io::Result<String> {
    let mut buf = [0u8; 4096];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Reads a whole file, mapping the error to [`CollectError::Io`].
pub fn read(path: &Path) -> Result<String, CollectError> {
    read_file(path).map_err(|source| CollectError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a sysfs attribute and trims it; `None` when it is missing or
/// unreadable (many attributes are optional or refuse reads by design).
pub fn attr(path: &Path) -> Option<String> {
    read_attr(path).ok().map(|s| s.trim().to_owned())
}

/// Reads a sysfs attribute as an integer (decimal, or hex with `0x`).
pub fn attr_i64(path: &Path) -> Option<i64> {
    attr(path).and_then(|s| parse_int(&s))
}

/// Parses a decimal or `0x` hex integer.
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// Lists a directory's entry names, sorted; a missing directory is
/// `Ok(None)` so that collectors can report absent hardware as no data.
pub fn list_dir(path: &Path) -> Result<Option<Vec<String>>, CollectError> {
    match fs::read_dir(path) {
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(Some(names))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CollectError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}
