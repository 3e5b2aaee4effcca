//! State directories: the control plane's (`--state-dir`: its CA key,
//! tokens, database) and the agent's (`--state-dir`: its identity key,
//! bundles, telemetry buffer, switch states) hold secrets, so they are
//! mode [`DIR_MODE`] and their secret files [`FILE_MODE`], whatever the
//! umask.
//!
//! [`prepare`] creates a directory with that mode, or, when it exists and
//! belongs to this user, tightens a looser mode (and says so in the log);
//! one that belongs to another user is reported as [`Error::NotOurs`]:
//! the control plane refuses to start in it, the agent says so and runs
//! on (its loops come first). [`tighten`] does the same for files a
//! release before this one (or a restore from a backup) left readable by
//! others. [`Lock`] keeps two programs off one directory at once (the
//! control plane and `onprem control-plane admin-token`).
#![allow(unsafe_code)]

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

/// The mode of a state directory: its owner only.
pub const DIR_MODE: u32 = 0o700;
/// The mode of a file in it that holds a secret or state: its owner
/// only.
pub const FILE_MODE: u32 = 0o600;

/// What is wrong with a state directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It belongs to another user: its owner could read or replace what
    /// is kept there. Run as that user, or `chown` it, or use another
    /// directory.
    #[error(
        "{path}: owned by uid {owner}, not by this user (uid {uid}): its owner could read or replace the keys and tokens kept there; run as uid {owner}, `chown -R {uid} {path}`, or choose another --state-dir"
    )]
    NotOurs {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Who we are (effective uid).
        uid: u32,
    },
    /// The path is there but is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
    /// Another process holds the directory's lock.
    #[error(
        "{path}: in use by another process (it holds {lock}): is the control plane running? Stop it first"
    )]
    Locked {
        /// The directory.
        path: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// A file system operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (and its parents) with mode [`DIR_MODE`]; when it exists,
/// checks it is a directory of this user's and tightens a looser mode to
/// [`DIR_MODE`], logging the change (`what` names it: "state directory").
/// Returns the directory's owner.
pub fn prepare(dir: &Path, what: &str) -> Result<u32, Error> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(io("creating", dir))?;
            // Created under a umask that may have taken bits away: the
            // mode is exactly this.
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
                .map_err(io("setting the mode of", dir))?;
            Ok(euid())
        }
        Err(e) => Err(io("reading", dir)(e)),
        Ok(m) if !m.is_dir() => Err(Error::NotADirectory(dir.to_owned())),
        Ok(m) => {
            let uid = euid();
            if m.uid() != uid {
                return Err(Error::NotOurs {
                    path: dir.to_owned(),
                    owner: m.uid(),
                    uid,
                });
            }
            let mode = m.mode() & 0o7777;
            if mode & !DIR_MODE != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(io("setting the mode of", dir))?;
                tracing::warn!(
                    dir = %dir.display(),
                    was = %format!("{mode:04o}"),
                    now = %format!("{DIR_MODE:04o}"),
                    "the {what} was open to other users: tightened"
                );
            }
            Ok(uid)
        }
    }
}

/// Tightens each of `files` (relative to `dir`) that exists with a mode
/// looser than [`FILE_MODE`] to it, logging each; absent ones are fine.
pub fn tighten(dir: &Path, files: &[&str]) -> Result<(), Error> {
    for f in files {
        let p = dir.join(f);
        let m = match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("reading", &p)(e)),
        };
        let mode = m.mode() & 0o7777;
        if mode & !FILE_MODE != 0 {
            fs::set_permissions(&p, fs::Permissions::from_mode(FILE_MODE))
                .map_err(io("setting the mode of", &p))?;
            tracing::warn!(
                file = %p.display(),
                was = %format!("{mode:04o}"),
                now = %format!("{FILE_MODE:04o}"),
                "a file of the state directory was open to other users: tightened"
            );
        }
    }
    Ok(())
}

/// Creates `path` empty with mode [`FILE_MODE`] when it does not exist,
/// so that what later opens it (SQLite, which gives its `-wal` and `-shm`
/// files the mode of the database) finds that mode, whatever the umask.
pub fn create_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(f) => f
            .set_permissions(fs::Permissions::from_mode(FILE_MODE))
            .map_err(io("setting the mode of", path)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io("creating", path)(e)),
    }
}

/// The name of the lock file in a state directory.
pub const LOCK_FILE: &str = "onprem.lock";

/// An exclusive lock on a state directory (`flock` on its
/// [`LOCK_FILE`]), held until dropped or the process ends (a crash
/// included: the kernel lets it go).
#[derive(Debug)]
pub struct Lock {
    _file: fs::File,
}

impl Lock {
    /// Takes the lock of `dir`, or says who holds it
    /// ([`Error::Locked`]); never waits.
    pub fn take(dir: &Path) -> Result<Lock, Error> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io("opening", &path))?;
        // SAFETY: the descriptor belongs to `file`, open for the whole
        // call; flock reads no memory of ours.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Locked {
                    path: dir.to_owned(),
                    lock: path,
                });
            }
            return Err(io("locking", &path)(e));
        }
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_directory_is_private_and_a_loose_one_is_tightened() {
        let t = tempfile::tempdir().unwrap();
        let new = t.path().join("a/b");
        assert_eq!(prepare(&new, "state directory").unwrap(), euid());
        assert_eq!(mode(&new), 0o700);
        let loose = t.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o777)).unwrap();
        prepare(&loose, "state directory").unwrap();
        assert_eq!(mode(&loose), 0o700);
        let file = t.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            prepare(&file, "state directory"),
            Err(Error::NotADirectory(_))
        ));
    }

    #[test]
    fn loose_files_are_tightened_and_new_ones_private() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("key");
        fs::write(&f, "k").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        tighten(t.path(), &["key", "absent"]).unwrap();
        assert_eq!(mode(&f), 0o600);
        let db = t.path().join("db");
        create_private(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        // An existing one is left as it is (its content too).
        fs::write(&db, "x").unwrap();
        create_private(&db).unwrap();
        assert_eq!(fs::read_to_string(&db).unwrap(), "x");
    }

    #[test]
    fn a_directory_is_locked_once() {
        let t = tempfile::tempdir().unwrap();
        let first = Lock::take(t.path()).unwrap();
        assert!(matches!(Lock::take(t.path()), Err(Error::Locked { .. })));
        drop(first);
        Lock::take(t.path()).unwrap();
    }
}
