//! `filesystem`: size, free space and inodes of every mounted filesystem
//! listed in `/proc/1/mounts` (falling back to `/proc/mounts`), from
//! `statfs(2)` on the mount point below `--path.rootfs`.
//!
//! Network filesystems can hang `statfs` for minutes. For those, the call
//! runs on a helper thread with a timeout (`mount_timeout`); a mount that
//! timed out is reported as a device error and skipped until its pending
//! call returns, so one dead NFS server never stalls a scrape twice.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde::Deserialize;

use super::{CollectError, Collector, MetricWriter, Paths, sys};
use crate::validate::FieldError;

/// node_exporter 1.5's default mount point exclusion.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter 1.5's default filesystem type exclusion.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
/// Seconds to wait for `statfs` on a network filesystem.
pub const DEFAULT_MOUNT_TIMEOUT_SECONDS: f64 = 5.0;
const NETWORK_FS: [&str; 9] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
    "9p",
];

/// Options of the filesystem collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Skip mount points matching this pattern
    /// (`--collector.filesystem.mount-points-exclude`).
    pub mount_points_exclude: String,
    /// Skip filesystem types matching this pattern
    /// (`--collector.filesystem.fs-types-exclude`).
    pub fs_types_exclude: String,
    /// Seconds to wait for `statfs` on a network filesystem before marking
    /// it stuck (`--collector.filesystem.mount-timeout`).
    pub mount_timeout: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mount_points_exclude: DEFAULT_MOUNT_POINTS_EXCLUDE.to_owned(),
            fs_types_exclude: DEFAULT_FS_TYPES_EXCLUDE.to_owned(),
            mount_timeout: DEFAULT_MOUNT_TIMEOUT_SECONDS,
        }
    }
}

/// One line of the mounts file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mount {
    /// Source device.
    pub device: String,
    /// Mount point as seen by the host (rootfs prefix removed).
    pub mount_point: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Whether mounted read-only.
    pub read_only: bool,
}

/// Parses a mounts file; `\040` and `\011` in mount points become a space
/// and a tab. `rootfs` (when not `/`) is stripped from mount points.
pub fn parse_mounts(text: &str, rootfs: &str) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.is_empty() {
            continue;
        }
        if parts.len() < 4 {
            return Err(format!("malformed mount point information: {line:?}"));
        }
        let mp = parts[1].replace("\\040", " ").replace("\\011", "\t");
        let mp = if rootfs == "/" || rootfs.is_empty() {
            mp
        } else {
            match mp.strip_prefix(rootfs.trim_end_matches('/')) {
                Some("") => "/".to_owned(),
                Some(s) if s.starts_with('/') => s.to_owned(),
                _ => mp,
            }
        };
        out.push(Mount {
            device: parts[0].to_owned(),
            mount_point: mp,
            fs_type: parts[2].to_owned(),
            read_only: parts[3].split(',').any(|o| o == "ro"),
        });
    }
    Ok(out)
}

/// Reads mounts and filesystem statistics.
pub struct Filesystem {
    paths: Paths,
    mount_points_exclude: regex::Regex,
    fs_types_exclude: regex::Regex,
    timeout: Duration,
    stuck: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Filesystem {
    /// A collector; `None` (with errors recorded) for bad settings.
    pub fn new(paths: Paths, s: &Settings, errors: &mut Vec<FieldError>) -> Option<Self> {
        let mp = crate::validate::regex(
            "collectors.filesystem.mount_points_exclude",
            &s.mount_points_exclude,
            errors,
        );
        let ft = crate::validate::regex(
            "collectors.filesystem.fs_types_exclude",
            &s.fs_types_exclude,
            errors,
        );
        if !(s.mount_timeout.is_finite() && s.mount_timeout > 0.0) {
            errors.push(FieldError::new(
                "collectors.filesystem.mount_timeout",
                format!(
                    "must be a positive number of seconds, got {}",
                    s.mount_timeout
                ),
            ));
            return None;
        }
        Some(Filesystem {
            paths,
            mount_points_exclude: mp?,
            fs_types_exclude: ft?,
            timeout: Duration::from_secs_f64(s.mount_timeout),
            stuck: Arc::default(),
        })
    }

    fn stat(&self, m: &Mount, path: PathBuf) -> Option<sys::Statfs> {
        if !NETWORK_FS.contains(&m.fs_type.as_str()) {
            return sys::statfs(&path).ok();
        }
        {
            let stuck = self.stuck.lock().unwrap_or_else(|e| e.into_inner());
            if stuck.contains(&path) {
                return None;
            }
        }
        let (tx, rx) = mpsc::channel();
        let stuck = Arc::clone(&self.stuck);
        let p = path.clone();
        let spawned = std::thread::Builder::new()
            .name("statfs".into())
            .spawn(move || {
                let r = sys::statfs(&p);
                if tx.send(r).is_err() {
                    // The scrape gave up on us: the mount is usable again.
                    stuck.lock().unwrap_or_else(|e| e.into_inner()).remove(&p);
                }
            });
        if spawned.is_err() {
            return None;
        }
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r.ok(),
            Err(_) => {
                tracing::warn!(mount_point = %m.mount_point, "statfs timed out; skipping this mount until it answers");
                self.stuck
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(path);
                None
            }
        }
    }
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut path = self.paths.proc("1/mounts");
        let text = match super::paths::read_file(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                path = self.paths.proc("mounts");
                super::paths::read(&path)?
            }
            Err(source) => return Err(CollectError::Io { path, source }),
        };
        let rootfs = self.paths.rootfs.to_string_lossy();
        let mounts = parse_mounts(&text, &rootfs).map_err(|m| CollectError::parse(&path, m))?;
        let mut seen = HashSet::new();
        for m in mounts {
            if self.mount_points_exclude.is_match(&m.mount_point)
                || self.fs_types_exclude.is_match(&m.fs_type)
            {
                continue;
            }
            if !seen.insert((m.device.clone(), m.mount_point.clone(), m.fs_type.clone())) {
                continue;
            }
            let labels = [
                ("device", m.device.as_str()),
                ("fstype", m.fs_type.as_str()),
                ("mountpoint", m.mount_point.as_str()),
            ];
            let st = self.stat(&m, self.paths.root(&m.mount_point));
            out.gauge(
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
                &labels,
                if st.is_some() { 0.0 } else { 1.0 },
            );
            let Some(s) = st else { continue };
            out.gauge(
                "node_filesystem_readonly",
                "Filesystem read-only status.",
                &labels,
                if m.read_only { 1.0 } else { 0.0 },
            );
            out.gauge(
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                &labels,
                s.blocks * s.bsize,
            );
            out.gauge(
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                &labels,
                s.bfree * s.bsize,
            );
            out.gauge(
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                &labels,
                s.bavail * s.bsize,
            );
            out.gauge(
                "node_filesystem_files",
                "Filesystem total file nodes.",
                &labels,
                s.files,
            );
            out.gauge(
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                &labels,
                s.ffree,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_unescape_and_flag_read_only() {
        let m = parse_mounts("/dev/sda1 /srv/my\\040disk ext4 ro,relatime 0 0\n", "/")
            .unwrap_or_default();
        assert_eq!(m[0].mount_point, "/srv/my disk");
        assert!(m[0].read_only);
    }

    #[test]
    fn can_strip_rootfs_prefix() {
        let m = parse_mounts(
            "/dev/root /host ext4 rw 0 0\n/dev/a /host/boot vfat rw 0 0\n/x /other ext4 rw 0 0\n",
            "/host",
        )
        .unwrap_or_default();
        let mps: Vec<&str> = m.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(mps, ["/", "/boot", "/other"]);
    }

    #[test]
    fn returns_error_when_line_is_malformed() {
        assert!(parse_mounts("/dev/root /\n", "/").is_err());
    }
}
