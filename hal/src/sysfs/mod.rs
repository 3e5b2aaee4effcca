//! Linux sysfs backends: hwmon, PWM, thermal zones.
//!
//! Every function here takes the sysfs root as a parameter (`/sys` on a
//! node, `--path.sysfs` in a container, a generated tree from
//! [`crate::sim::sysfs`] in tests); nothing hard-codes `/sys`.
//!
//! - [`hwmon`]: hwmon devices found by `name`, by device path or by
//!   driver, never by `hwmonN` index (the index changes across boots and
//!   driver rebinds); fans (`pwmN`, `pwmN_enable`, `fanN_input`),
//!   temperatures (`tempN_input`) and power rails (`inN_input`,
//!   `currN_input`, `powerN_input`).
//! - [`pwm`]: the PWM class (`/sys/class/pwm/pwmchipN`): export, period,
//!   duty cycle, polarity, enable, and a fan on a PWM channel; with the
//!   `rppal` feature, a fan on rppal's hardware PWM.
//! - [`thermal`]: thermal zones by `type`, their governor `policy` and
//!   `mode`, and cooling devices.
//!
//! This module holds the attribute helpers they share: reading trimmed
//! text and integers, writing values, with errors that name the full path
//! and classify the way [`crate::Error::kind`] expects:
//!
//! | What the kernel said | Error | Kind |
//! |---|---|---|
//! | ENOENT (driver unbound, overlay not loaded) | [`crate::Error::Io`] `NotFound` | Fatal |
//! | EACCES/EPERM (group, `DeviceAllow=`) | [`crate::Error::Io`] `PermissionDenied` | Fatal |
//! | ENODATA, EAGAIN, EBUSY, EIO, ETIMEDOUT (a sensor with no value yet, a bus hiccup) | [`crate::Error::Io`] | Transient |
//! | EINVAL on a write (the driver rejected the value) | [`crate::Error::Invalid`] | Fatal |
//! | EOPNOTSUPP | [`crate::Error::Unsupported`] | Unsupported |
//! | text that is not a number | [`crate::Error::Invalid`] | Fatal |
//!
//! To extend: a new sysfs class gets its own submodule here, built on
//! these helpers, with its root as a parameter and a builder for it in
//! [`crate::sim::sysfs`].

pub mod hwmon;
pub mod pwm;
pub mod thermal;

use std::fmt::Display;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Error, Result};

/// `EINVAL`: the driver rejected a written value.
const EINVAL: i32 = 22;
/// `EOPNOTSUPP`: the attribute exists but the operation is not supported.
const EOPNOTSUPP: i32 = 95;

/// Maps an I/O error on `path` (see the table in the module docs).
pub fn io_error(path: &Path, e: &io::Error) -> Error {
    match e.raw_os_error() {
        Some(EOPNOTSUPP) => Error::Unsupported {
            chip: "sysfs",
            what: path.display().to_string(),
        },
        _ => Error::io(path, e),
    }
}

/// Maps an I/O error of a write of `value` to `path`: EINVAL means the
/// driver rejected the value, which a retry will not change.
pub fn write_error(path: &Path, value: &str, e: &io::Error) -> Error {
    if e.raw_os_error() == Some(EINVAL) {
        Error::Invalid {
            chip: "sysfs",
            detail: format!("{}: the kernel rejected {value:?}: {e}", path.display()),
        }
    } else {
        io_error(path, e)
    }
}

/// Trims what sysfs and device-tree files carry around a value:
/// whitespace, the trailing newline, and the NUL that ends device-tree
/// strings.
pub fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

/// Parses the text of `path` as a number.
pub fn parse_number<T: FromStr>(path: &Path, text: &str) -> Result<T> {
    let t = trim(text);
    t.parse().map_err(|_| Error::Invalid {
        chip: "sysfs",
        detail: format!("{}: {t:?} is not a number", path.display()),
    })
}

/// Reads an attribute as trimmed text.
pub fn read_string(path: &Path) -> Result<String> {
    let bytes = read_attr(path).map_err(|e| io_error(path, &e))?;
    Ok(trim(&String::from_utf8_lossy(&bytes)).to_string())
}

/// Reads a whole attribute in as few system calls as the kernel allows:
/// `openat`, one `read` (a sysfs attribute is at most a page, and a read
/// shorter than the buffer is its end), `close`; `fs::read` adds a
/// `statx` and a second `read`, which on a fan loop's hot path is a third
/// more system calls.
pub fn read_attr(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..])?;
        len += n;
        if n == 0 || len < buf.len() {
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    Ok(buf)
}

/// Reads an attribute as trimmed text; `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match read_attr(path) {
        Ok(bytes) => Ok(Some(trim(&String::from_utf8_lossy(&bytes)).to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, &e)),
    }
}

/// Reads an attribute as a signed integer (temperatures may be negative).
pub fn read_i64(path: &Path) -> Result<i64> {
    let text = read_string(path)?;
    parse_number(path, &text)
}

/// Reads an attribute as an unsigned integer.
pub fn read_u64(path: &Path) -> Result<u64> {
    let text = read_string(path)?;
    parse_number(path, &text)
}

/// Writes `value` to an attribute (one `write(2)`, as sysfs expects).
pub fn write_str(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value.as_bytes()).map_err(|e| write_error(path, value, &e))
}

/// Writes a number to an attribute.
pub fn write_value(path: &Path, value: impl Display) -> Result<()> {
    write_str(path, &value.to_string())
}

/// The canonical path of `path`, symlinks resolved.
pub fn canonical(path: &Path) -> Result<PathBuf> {
    fs::canonicalize(path).map_err(|e| io_error(path, &e))
}

/// The last component of the target of the symlink at `path` (the driver
/// name of a `device/driver` link); `None` when there is no such link.
pub fn link_basename(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Entries of `dir` named `<prefix><N>`, as (N, path), sorted by N.
/// A missing directory gives an empty list.
pub fn numbered_entries(dir: &Path, prefix: &str) -> Result<Vec<(u32, PathBuf)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, &e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.parse::<u32>().ok())
        {
            out.push((n, entry.path()));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

/// Whether `err` says that a file is gone (the device was unbound or
/// renumbered), so that a handle should find its device again.
pub(crate) fn is_gone(err: &Error) -> bool {
    matches!(
        err,
        Error::Io {
            kind: io::ErrorKind::NotFound,
            ..
        }
    )
}

/// A device path as a configuration gives it, made relative to the sysfs
/// root: `/sys/bus/i2c/devices/1-0040` → `bus/i2c/devices/1-0040`, so
/// that a configuration written for `/sys` also works against another
/// root; a relative path (`1-0040`, `platform/cooling_fan`) is kept.
pub fn relative_to_root(wanted: &str) -> &str {
    let w = wanted.strip_prefix("/sys/").unwrap_or(wanted);
    w.trim_start_matches('/')
}

/// Whether the device at canonical path `device` is the one `wanted`
/// names: either `wanted` resolves (under `sysfs`) to the same device, or
/// `device` ends with `wanted`'s components (`1-0040`,
/// `platform/cooling_fan`).
pub fn device_matches(sysfs: &Path, device: &Path, wanted: &str) -> bool {
    let rel = relative_to_root(wanted);
    if rel.is_empty() {
        return false;
    }
    let candidate = sysfs.join(rel);
    if let Ok(c) = fs::canonicalize(&candidate) {
        if c == device {
            return true;
        }
    }
    device.ends_with(Path::new(rel))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn can_read_attributes_short_and_longer_than_a_page() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 6, 4095, 4096, 4097, 10_000] {
            let p = dir.path().join(format!("a{len}"));
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            std::fs::write(&p, &text).unwrap();
            assert_eq!(read_attr(&p).unwrap(), text, "{len} bytes");
        }
        let e = read_attr(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn can_trim_newlines_and_device_tree_nuls() {
        assert_eq!(trim("48312\n"), "48312");
        assert_eq!(trim("gpu\0"), "gpu");
        assert_eq!(trim("  step_wise \n"), "step_wise");
    }

    #[test]
    fn can_parse_negative_and_positive_numbers() {
        let p = Path::new("/sys/x/temp1_input");
        assert_eq!(parse_number::<i64>(p, "-1250\n").unwrap(), -1250);
        assert_eq!(parse_number::<u64>(p, "255").unwrap(), 255);
    }

    #[test]
    fn returns_invalid_naming_the_path_when_text_is_not_a_number() {
        let e = parse_number::<i64>(Path::new("/sys/x/temp1_input"), "n/a").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert!(e.to_string().contains("/sys/x/temp1_input"), "{e}");
    }

    #[test]
    fn returns_transient_when_sensor_has_no_data_or_is_busy() {
        let p = Path::new("/sys/class/hwmon/hwmon1/in1_input");
        for errno in [
            61, /* ENODATA */
            11, /* EAGAIN */
            16, /* EBUSY */
            5,  /* EIO */
        ] {
            let e = io_error(p, &io::Error::from_raw_os_error(errno));
            assert_eq!(e.kind(), ErrorKind::Transient, "errno {errno}");
            assert!(e.to_string().contains("in1_input"), "{e}");
        }
    }

    #[test]
    fn returns_fatal_when_file_is_missing_or_denied() {
        let p = Path::new("/sys/class/hwmon/hwmon1/pwm1");
        for errno in [2 /* ENOENT */, 13 /* EACCES */] {
            let e = io_error(p, &io::Error::from_raw_os_error(errno));
            assert_eq!(e.kind(), ErrorKind::Fatal, "errno {errno}");
        }
    }

    #[test]
    fn returns_invalid_when_kernel_rejects_written_value() {
        let p = Path::new("/sys/class/pwm/pwmchip0/pwm0/period");
        let e = write_error(p, "10", &io::Error::from_raw_os_error(EINVAL));
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert!(e.to_string().contains("period"), "{e}");
        let e = io_error(p, &io::Error::from_raw_os_error(EOPNOTSUPP));
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn can_make_configured_device_paths_relative_to_root() {
        assert_eq!(
            relative_to_root("/sys/bus/i2c/devices/1-0040"),
            "bus/i2c/devices/1-0040"
        );
        assert_eq!(
            relative_to_root("platform/cooling_fan"),
            "platform/cooling_fan"
        );
        assert_eq!(
            relative_to_root("/devices/platform/x"),
            "devices/platform/x"
        );
    }

    #[test]
    fn can_match_device_by_path_suffix() {
        let dev = Path::new("/sys/devices/platform/soc/i2c-1/1-0040");
        let root = Path::new("/nonexistent-root");
        assert!(device_matches(root, dev, "1-0040"));
        assert!(device_matches(root, dev, "i2c-1/1-0040"));
        assert!(!device_matches(root, dev, "1-0041"));
        assert!(!device_matches(root, dev, "0040"));
        assert!(!device_matches(root, dev, ""));
    }
}
