//! What a simulated board says about itself, in the files the real
//! machine has: `/proc/device-tree/model` and `serial-number` on a
//! Raspberry Pi or a Jetson, `/sys/class/dmi/id/*` on a server, and
//! `/proc/cpuinfo`, `/proc/meminfo`, `/etc/machine-id`. The agent reads a
//! simulated node's facts from this tree with the same code that reads a
//! real node's from `/`, so `onprem get devices` shows a simulated Pi 5 as
//! a Raspberry Pi 5.
//!
//! To add a board: its row in [`Board::of`] (model strings as the
//! hardware prints them, hardware reference §1 and §6).

use std::path::Path;

use crate::{Error, Result};

/// A board as it describes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// Device-tree boards: `/proc/device-tree/model`; servers:
    /// `/sys/class/dmi/id/product_name`.
    pub model: &'static str,
    /// Servers: `/sys/class/dmi/id/sys_vendor` (device-tree boards take
    /// theirs from the model).
    pub vendor: &'static str,
    /// Whether the identity is in the device tree (ARM boards) or DMI.
    pub device_tree: bool,
    /// `uname -m` of the board's OS.
    pub arch: &'static str,
    /// CPU cores.
    pub cores: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
}

impl Board {
    /// The board a profile's `board:` names; a generic one for another
    /// name.
    pub fn of(name: &str) -> Board {
        let arm = |model, cores, memory_mib| Board {
            model,
            vendor: "",
            device_tree: true,
            arch: "aarch64",
            cores,
            memory_mib,
        };
        match name {
            "raspberry-pi-5" => arm("Raspberry Pi 5 Model B Rev 1.0", 4, 8192),
            "raspberry-pi-4" => arm("Raspberry Pi 4 Model B Rev 1.5", 4, 4096),
            "cm4-io" => arm("Raspberry Pi Compute Module 4 Rev 1.1", 4, 4096),
            "bitscope-cluster-blade" => arm("Raspberry Pi 4 Model B Rev 1.4", 4, 4096),
            "jetson-nano" => arm("NVIDIA Jetson Nano Developer Kit", 4, 4096),
            "jetson-orin-nano" => arm("NVIDIA Jetson Orin Nano Developer Kit", 6, 8192),
            // No one vendor's: a server named for what it is.
            "gpu-server" => Board {
                model: "GPU server (simulated)",
                vendor: "onprem",
                device_tree: false,
                arch: "x86_64",
                cores: 64,
                memory_mib: 512 * 1024,
            },
            _ => Board {
                model: "onprem simulated node",
                vendor: "onprem",
                device_tree: false,
                arch: std::env::consts::ARCH,
                cores: 4,
                memory_mib: 4096,
            },
        }
    }

    /// Writes the board's identity files under `root` (as `/`), with a
    /// serial number and UUID made from `seed` (stable per node).
    pub fn write(&self, root: &Path, seed: &[u8; 16]) -> Result<()> {
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        let put = |rel: &str, text: &str| -> Result<()> {
            let p = root.join(rel);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
            }
            std::fs::write(&p, text).map_err(|e| Error::io(&p, &e))
        };
        if self.device_tree {
            // NUL-terminated, as the kernel exposes device-tree strings.
            put("proc/device-tree/model", &format!("{}\0", self.model))?;
            put(
                "proc/device-tree/serial-number",
                &format!("{}\0", &hex[..16]),
            )?;
        } else {
            put("sys/class/dmi/id/sys_vendor", &format!("{}\n", self.vendor))?;
            put(
                "sys/class/dmi/id/product_name",
                &format!("{}\n", self.model),
            )?;
            put(
                "sys/class/dmi/id/product_serial",
                &format!("S{}\n", &hex[..12].to_uppercase()),
            )?;
            put(
                "sys/class/dmi/id/product_uuid",
                &format!(
                    "{}-{}-{}-{}-{}\n",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                ),
            )?;
        }
        put("etc/machine-id", &format!("{hex}\n"))?;
        // `uname -m`, as the kernel's sysctl gives it.
        put("proc/sys/kernel/arch", &format!("{}\n", self.arch))?;
        let cpuinfo: String = (0..self.cores)
            .map(|i| format!("processor\t: {i}\nBogoMIPS\t: 108.00\n\n"))
            .collect();
        put("proc/cpuinfo", &cpuinfo)?;
        put(
            "proc/meminfo",
            &format!("MemTotal:       {} kB\n", self.memory_mib * 1024),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pi_says_so_in_its_device_tree_and_a_server_in_dmi() {
        let dir = tempfile::tempdir().unwrap();
        Board::of("raspberry-pi-5")
            .write(dir.path(), &[7; 16])
            .unwrap();
        let model = std::fs::read_to_string(dir.path().join("proc/device-tree/model")).unwrap();
        assert_eq!(model, "Raspberry Pi 5 Model B Rev 1.0\0");
        let cpus = std::fs::read_to_string(dir.path().join("proc/cpuinfo")).unwrap();
        assert_eq!(cpus.matches("processor").count(), 4);

        let dir = tempfile::tempdir().unwrap();
        Board::of("gpu-server").write(dir.path(), &[1; 16]).unwrap();
        let vendor =
            std::fs::read_to_string(dir.path().join("sys/class/dmi/id/sys_vendor")).unwrap();
        assert_eq!(vendor, "onprem\n");
        assert!(!dir.path().join("proc/device-tree").exists());
        assert_eq!(Board::of("jetson-nano").arch, "aarch64");
    }
}
