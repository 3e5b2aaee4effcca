//! The few system calls the collectors need (uname, statfs, local time,
//! sysconf), wrapped safely. This is the one module of the exporter that
//! may use `unsafe`, and each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

/// The fields of `uname(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utsname {
    /// Operating system name (`Linux`).
    pub sysname: String,
    /// Host name.
    pub nodename: String,
    /// Kernel release.
    pub release: String,
    /// Kernel version string.
    pub version: String,
    /// Hardware name (`aarch64`, `armv7l`, `x86_64`).
    pub machine: String,
    /// NIS domain name.
    pub domainname: String,
}

fn field(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Calls `uname(2)`.
pub fn uname() -> io::Result<Utsname> {
    // SAFETY: `utsname` is plain old data; zeroed is a valid value, and
    // uname writes NUL-terminated strings into its fixed-size arrays.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Utsname {
        sysname: field(&u.sysname),
        nodename: field(&u.nodename),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
        domainname: field(&u.domainname),
    })
}

/// Filesystem statistics in the units node_exporter uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Statfs {
    /// Block size (`f_bsize`).
    pub bsize: f64,
    /// Total blocks.
    pub blocks: f64,
    /// Free blocks.
    pub bfree: f64,
    /// Blocks free to unprivileged users.
    pub bavail: f64,
    /// Total inodes.
    pub files: f64,
    /// Free inodes.
    pub ffree: f64,
}

/// Calls `statfs(2)` on `path`.
pub fn statfs(path: &Path) -> io::Result<Statfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: statfs64 is plain old data; zeroed is valid.
        let mut s: libc::statfs64 = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path, `s` a valid out-pointer.
        if unsafe { libc::statfs64(c.as_ptr(), &mut s) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Statfs {
            bsize: s.f_bsize as f64,
            blocks: s.f_blocks as f64,
            bfree: s.f_bfree as f64,
            bavail: s.f_bavail as f64,
            files: s.f_files as f64,
            ffree: s.f_ffree as f64,
        })
    }
    #[cfg(not(target_env = "gnu"))]
    {
        // SAFETY: statfs is plain old data; zeroed is valid.
        let mut s: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path, `s` a valid out-pointer.
        if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Statfs {
            bsize: s.f_bsize as f64,
            blocks: s.f_blocks as f64,
            bfree: s.f_bfree as f64,
            bavail: s.f_bavail as f64,
            files: s.f_files as f64,
            ffree: s.f_ffree as f64,
        })
    }
}

/// The local time zone's abbreviation and offset from UTC in seconds at
/// the Unix time `secs` (from `TZ` or `/etc/localtime`, as libc finds it).
pub fn local_zone(secs: i64) -> (String, i64) {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: tm is plain old data; zeroed is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; localtime_r is the thread-safe form.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok || tm.tm_zone.is_null() {
        return ("UTC".to_owned(), 0);
    }
    // SAFETY: tm_zone points to a NUL-terminated static string owned by libc.
    let name = unsafe { CStr::from_ptr(tm.tm_zone) }
        .to_string_lossy()
        .into_owned();
    (name, tm.tm_gmtoff as i64)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), 100 when unknown.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// The page size in bytes (`sysconf(_SC_PAGESIZE)`), 4096 when unknown.
pub fn page_size() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as f64 } else { 4096.0 }
}

/// Allocations of this size and more get their own mapping, returned to
/// the system when freed ([`tune_allocator`]).
pub const MMAP_THRESHOLD: usize = 1024 * 1024;

/// Keeps glibc's allocator small for a long-running daemon: one malloc
/// arena per thread (glibc's default, up to 8 per core) holds freed
/// memory per thread; two arenas are plenty for the agent's few threads.
/// And large blocks ([`MMAP_THRESHOLD`] and more: a Redfish login's
/// 19 MiB of Argon2 memory, a large bundle's text) are mapped on their
/// own and unmapped when freed: by default glibc raises its threshold to
/// the size of the first large block freed, after which such blocks come
/// from the heap and stay there after a burst (a flood of logins left
/// about 1 GB). A no-op on other C libraries (musl maps large blocks on
/// its own already).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called once
    // at start, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// An open directory whose entries are read with `openat(2)`: reading
/// twenty attributes of one network interface resolves its sysfs path
/// once instead of twenty times (each resolution walks the class symlink).
pub struct Dir {
    fd: std::os::fd::OwnedFd,
}

impl Dir {
    /// Opens `path` as a directory.
    pub fn open(path: &Path) -> io::Result<Dir> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Dir { fd: f.into() })
    }

    /// Reads the attribute `name` in one read of at most a page (how sysfs
    /// serves attributes).
    pub fn read_attr(&self, name: &str) -> io::Result<String> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `self.fd` is an open directory for the life of `self`, and
        // `c` is NUL-terminated; the returned descriptor is owned below.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
        super::paths::read_page(&mut f)
    }

    /// [`read_attr`](Self::read_attr), trimmed; `None` when missing or
    /// unreadable.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.read_attr(name).ok().map(|s| s.trim().to_owned())
    }
}
