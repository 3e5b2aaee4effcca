//! Raspberry Pi firmware state from sysfs, without `vcgencmd`.
//!
//! The firmware reports power and thermal trouble as a bit field (what
//! `vcgencmd get_throttled` prints as `throttled=0x50005`). The Raspberry
//! Pi kernel exposes the same word as the `get_throttled` attribute of the
//! firmware device (`/sys/devices/platform/soc/soc:firmware/get_throttled`
//! on Pi 4 and earlier; found by a search under `/sys/devices/platform` on
//! other boards), in hex without `0x`. The `raspberrypi-hwmon` driver adds
//! an hwmon chip named `rpi_volt` whose `in0_lcrit_alarm` is 1 while the
//! under-voltage sticky bit is set.
//!
//! Bits 0–3 say what is happening now, bits 16–19 what has happened since
//! boot (sticky).
//!
//! ## Troubleshooting
//!
//! - No `get_throttled` file: the board is not a Raspberry Pi, or the
//!   kernel is not the Raspberry Pi kernel (mainline kernels only have the
//!   `rpi_volt` hwmon chip). Nothing is reported then; that is not an
//!   error.
//! - Newer Raspberry Pi kernels mark `get_throttled` deprecated and may
//!   serve a value cached from a 2 s poll; the `rpi_volt` driver also asks
//!   the firmware to clear the sticky bits when it polls, so bits 16–19 can
//!   read 0 shortly after an event.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the firmware attribute lives on Pi 4 and earlier, relative to the
/// sysfs root.
pub const GET_THROTTLED_PATH: &str = "devices/platform/soc/soc:firmware/get_throttled";

/// One flag of the firmware's throttling word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// Bit position in the word.
    pub bit: u32,
    /// Short name used as a metric label value (`under_voltage`, …).
    pub name: &'static str,
    /// Whether the bit is sticky ("has occurred since boot").
    pub sticky: bool,
}

/// The flags the firmware defines, in bit order.
pub const FLAGS: [Flag; 8] = [
    Flag {
        bit: 0,
        name: "under_voltage",
        sticky: false,
    },
    Flag {
        bit: 1,
        name: "arm_frequency_capped",
        sticky: false,
    },
    Flag {
        bit: 2,
        name: "throttled",
        sticky: false,
    },
    Flag {
        bit: 3,
        name: "soft_temperature_limit",
        sticky: false,
    },
    Flag {
        bit: 16,
        name: "under_voltage",
        sticky: true,
    },
    Flag {
        bit: 17,
        name: "arm_frequency_capped",
        sticky: true,
    },
    Flag {
        bit: 18,
        name: "throttled",
        sticky: true,
    },
    Flag {
        bit: 19,
        name: "soft_temperature_limit",
        sticky: true,
    },
];

/// The firmware's throttling word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub u32);

impl Throttled {
    /// Whether `flag` is set.
    pub fn is_set(self, flag: &Flag) -> bool {
        self.0 & (1 << flag.bit) != 0
    }
}

/// Errors reading the firmware state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but could not be read (permissions, I/O error).
    #[error("reading {path}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file did not hold a hex word; the kernel changed its format or
    /// the file is not the firmware attribute.
    #[error("{path}: {value:?} is not a hex throttling word")]
    Parse {
        /// The file that held it.
        path: PathBuf,
        /// What it held.
        value: String,
    },
}

/// Parses the attribute's content: hex, with or without `0x`, or
/// `vcgencmd`'s `throttled=0x…` form.
pub fn parse_throttled(text: &str) -> Option<Throttled> {
    let t = text.trim();
    let t = t.strip_prefix("throttled=").unwrap_or(t);
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() {
        return None;
    }
    u32::from_str_radix(t, 16).ok().map(Throttled)
}

/// Finds the `get_throttled` attribute under `sysfs`: the Pi 4 path first,
/// then one level of search among the platform devices (Pi 5 and other
/// device trees name the firmware node differently).
pub fn find_get_throttled(sysfs: &Path) -> Option<PathBuf> {
    let direct = sysfs.join(GET_THROTTLED_PATH);
    if direct.is_file() {
        return Some(direct);
    }
    let platform = sysfs.join("devices/platform");
    let mut stack = vec![(platform, 0u8)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name == "get_throttled" && p.is_file() {
                return Some(p);
            }
            // Firmware nodes sit at most two levels down (soc/soc:firmware,
            // axi/…/firmware); do not follow symlinks back up the tree.
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if depth < 2
                && is_dir
                && (name.contains("soc") || name.contains("firmware") || name.contains("axi"))
            {
                stack.push((p, depth + 1));
            }
        }
    }
    None
}

/// Reads the throttling word. `Ok(None)` means the board has no such
/// attribute (not a Raspberry Pi kernel), which is not a failure.
pub fn read_throttled(sysfs: &Path) -> Result<Option<Throttled>, Error> {
    let Some(path) = find_get_throttled(sysfs) else {
        return Ok(None);
    };
    let text = fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    match parse_throttled(&text) {
        Some(t) => Ok(Some(t)),
        None => Err(Error::Parse {
            path,
            value: text.trim().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_every_form_the_firmware_prints() {
        assert_eq!(parse_throttled("50005\n"), Some(Throttled(0x50005)));
        assert_eq!(parse_throttled("0x50005"), Some(Throttled(0x50005)));
        assert_eq!(parse_throttled("throttled=0x0"), Some(Throttled(0)));
        assert_eq!(parse_throttled(""), None);
        assert_eq!(parse_throttled("zz"), None);
    }

    #[test]
    fn can_decode_under_voltage_now_and_since_boot() {
        let t = Throttled(0x50005);
        let set: Vec<(&str, bool)> = FLAGS
            .iter()
            .filter(|f| t.is_set(f))
            .map(|f| (f.name, f.sticky))
            .collect();
        assert_eq!(
            set,
            vec![
                ("under_voltage", false),
                ("throttled", false),
                ("under_voltage", true),
                ("throttled", true)
            ]
        );
    }

    #[test]
    fn returns_none_when_board_is_not_a_pi() {
        let dir = std::env::temp_dir().join(format!("onprem-hal-rpi-{}", std::process::id()));
        fs::create_dir_all(dir.join("devices/platform")).ok();
        assert!(matches!(read_throttled(&dir), Ok(None)));
        fs::remove_dir_all(&dir).ok();
    }
}
