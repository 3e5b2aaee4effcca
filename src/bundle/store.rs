//! The on-disk bundle store in the agent's state directory: the current
//! bundle and the previous one (last-known-good), each with its detached
//! signature and a small record, written so that a crash or power loss at
//! any moment leaves each of them either the old one or the new one,
//! complete.
//!
//! A stored bundle is three files that must change together (the bundle,
//! its signature, its record), and a rename is atomic for one name only.
//! So each bundle is written into a directory of its own (a generation),
//! and `current` and `previous` are symlinks to generations: swapping one
//! is a single atomic rename. Layout of `<state>/bundles/` (mode 0700):
//!
//! ```text
//! gen-000042/bundle.yaml        the bundle, byte for byte as received
//! gen-000042/bundle.yaml.sig    its detached signature (when signed)
//! gen-000042/meta.json          {version, name, digest, source, applied_at}
//! current  -> gen-000042        the bundle in force
//! previous -> gen-000041        last-known-good (absent after a rollback)
//! current.yaml -> current/bundle.yaml          fixed links, for people and
//! current.yaml.sig -> current/bundle.yaml.sig  for `onprem validate
//! current.json -> current/meta.json            --require-signature`; and
//! previous.yaml, previous.yaml.sig, previous.json likewise
//! ```
//!
//! Every change is: write into a temporary name in the same directory,
//! fsync it, rename it over the target, fsync the directory. A write
//! creates `gen-N.tmp/`, syncs its files and itself, renames it to
//! `gen-N`, points `previous` at the old current, then `current` at
//! `gen-N`. A crash before the last rename leaves the old current in
//! force (at worst with `previous` equal to it); leftover `*.tmp` names
//! and generations no link points to are removed by [`Store::open`] and
//! after each write.
//!
//! One process writes a store at a time (the agent); readers in other
//! processes see a complete bundle at every moment.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::validate::Resolved;
use crate::limits;

/// The store's folder inside the state directory.
pub const DIR: &str = "bundles";
const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
const GEN_PREFIX: &str = "gen-";
const TMP_SUFFIX: &str = ".tmp";
const BUNDLE_FILE: &str = "bundle.yaml";
const SIG_FILE: &str = "bundle.yaml.sig";
const META_FILE: &str = "meta.json";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed: check that the state directory exists, is
    /// writable by the agent, and that its disk is not full.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `renaming`, …).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A stored bundle is damaged (changed by hand, or a disk fault): the
    /// agent cannot trust it; write a new bundle.
    #[error("{path}: {message}")]
    Corrupt {
        /// The damaged file or link.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// There is no previous bundle to roll back to.
    #[error("no previous bundle to roll back to")]
    NoPrevious,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The record kept with a stored bundle (`meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The bundle's version (`metadata.version`, 0 when it has none).
    pub version: u64,
    /// The bundle's name.
    pub name: String,
    /// The bundle's content digest ([`super::validate::digest`]).
    pub digest: String,
    /// Where it came from: `file:/etc/onprem/bundle.yaml`,
    /// `control-plane`, ….
    pub source: String,
    /// When it was stored, Unix seconds.
    pub applied_at: u64,
}

impl Meta {
    /// The record of a validated bundle from `source`, stored now.
    pub fn new(bundle: &Resolved, source: impl Into<String>) -> Meta {
        Meta {
            version: bundle.version(),
            name: bundle.name().to_owned(),
            digest: bundle.digest.clone(),
            source: source.into(),
            applied_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// A stored bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The bundle file, byte for byte.
    pub text: String,
    /// Its detached signature file, when it was signed.
    pub sig: Option<String>,
    /// Its record.
    pub meta: Meta,
}

/// The bundle store of one state directory (a clone reads the same
/// store, from another thread).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating, mode 0700) `<state_dir>/bundles/`, and removes
    /// what an interrupted write left behind.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        let dir = state_dir.join(DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("creating", &dir))?;
        sync_dir(state_dir)?;
        let store = Store { dir };
        store.fixed_links()?;
        store.clean()?;
        Ok(store)
    }

    /// The store's folder, `<state>/bundles`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bundle in force, if any.
    pub fn current(&self) -> Result<Option<Stored>, Error> {
        self.slot(CURRENT)
    }

    /// The last-known-good bundle (the one before the current), if any.
    pub fn previous(&self) -> Result<Option<Stored>, Error> {
        self.slot(PREVIOUS)
    }

    /// Stores a bundle: the current one becomes the previous one, this one
    /// the current one. `text` is stored byte for byte (a signature covers
    /// exactly those bytes). When this returns `Ok`, both are on disk.
    pub fn write(&mut self, text: &str, sig: Option<&str>, meta: &Meta) -> Result<(), Error> {
        let name = format!("{GEN_PREFIX}{:06}", self.next_gen()?);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(io_err("creating", &tmp))?;
        write_file(&tmp.join(BUNDLE_FILE), text.as_bytes())?;
        if let Some(sig) = sig {
            write_file(&tmp.join(SIG_FILE), sig.as_bytes())?;
        }
        let record = serde_json::to_vec_pretty(meta).map_err(|e| Error::Corrupt {
            path: tmp.join(META_FILE),
            message: e.to_string(),
        })?;
        write_file(&tmp.join(META_FILE), &record)?;
        sync_dir(&tmp)?;
        let gen_dir = self.dir.join(&name);
        fs::rename(&tmp, &gen_dir).map_err(io_err("renaming", &tmp))?;
        sync_dir(&self.dir)?;
        if let Some(old) = self.target(CURRENT)? {
            self.point(PREVIOUS, &old)?;
        }
        self.point(CURRENT, &name)?;
        self.clean_after("write");
        Ok(())
    }

    /// Makes the previous bundle current again and returns it. Afterwards
    /// there is no previous bundle (the one rolled back from is not
    /// last-known-good).
    pub fn rollback(&mut self) -> Result<Stored, Error> {
        let prev = self.target(PREVIOUS)?.ok_or(Error::NoPrevious)?;
        let stored = self.read_gen(&prev)?;
        self.point(CURRENT, &prev)?;
        let link = self.dir.join(PREVIOUS);
        fs::remove_file(&link).map_err(io_err("removing", &link))?;
        sync_dir(&self.dir)?;
        self.clean_after("rollback");
        Ok(stored)
    }

    fn slot(&self, link: &str) -> Result<Option<Stored>, Error> {
        match self.target(link)? {
            Some(gen_name) => self.read_gen(&gen_name).map(Some),
            None => Ok(None),
        }
    }

    /// The generation a link points to (`gen-000042`).
    fn target(&self, link: &str) -> Result<Option<String>, Error> {
        let path = self.dir.join(link);
        match fs::read_link(&path) {
            Ok(t) => match t.to_str() {
                Some(s) if gen_number(s).is_some() => Ok(Some(s.to_owned())),
                _ => Err(Error::Corrupt {
                    path,
                    message: format!("points to {}, not a generation", t.display()),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading link", &path)(e)),
        }
    }

    fn read_gen(&self, gen_name: &str) -> Result<Stored, Error> {
        let dir = self.dir.join(gen_name);
        let bundle = dir.join(BUNDLE_FILE);
        // Bounded like any bundle: a file swapped in by hand (a FIFO, a
        // huge one) is refused, not waited on.
        let text = limits::read_regular_text(&bundle, limits::MAX_BUNDLE_BYTES)
            .map_err(io_err("reading", &bundle))?;
        let sig_path = dir.join(SIG_FILE);
        let sig = limits::read_optional_text(&sig_path, limits::MAX_SMALL_FILE_BYTES)
            .map_err(io_err("reading", &sig_path))?;
        let meta_path = dir.join(META_FILE);
        let raw = limits::read_regular(&meta_path, limits::MAX_SMALL_FILE_BYTES)
            .map_err(io_err("reading", &meta_path))?;
        let meta = serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
            path: meta_path,
            message: e.to_string(),
        })?;
        Ok(Stored { text, sig, meta })
    }

    /// Points `link` at `target`: a new symlink renamed over the old one.
    fn point(&self, link: &str, target: &str) -> Result<(), Error> {
        let tmp = self.dir.join(format!("{link}{TMP_SUFFIX}"));
        remove_if_present(&tmp)?;
        std::os::unix::fs::symlink(target, &tmp).map_err(io_err("linking", &tmp))?;
        let path = self.dir.join(link);
        fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))?;
        sync_dir(&self.dir)
    }

    /// `current.yaml` → `current/bundle.yaml` and the like: made once,
    /// never changed afterwards.
    fn fixed_links(&self) -> Result<(), Error> {
        for slot in [CURRENT, PREVIOUS] {
            for (name, file) in [
                (format!("{slot}.yaml"), BUNDLE_FILE),
                (format!("{slot}.yaml.sig"), SIG_FILE),
                (format!("{slot}.json"), META_FILE),
            ] {
                let target = format!("{slot}/{file}");
                let path = self.dir.join(&name);
                if fs::read_link(&path).is_ok_and(|t| t == Path::new(&target)) {
                    continue;
                }
                let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
                remove_if_present(&tmp)?;
                std::os::unix::fs::symlink(&target, &tmp).map_err(io_err("linking", &tmp))?;
                fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))?;
            }
        }
        sync_dir(&self.dir)
    }

    /// The next generation number: above every one present, finished or
    /// not.
    fn next_gen(&self) -> Result<u64, Error> {
        let mut max = 0;
        for entry in fs::read_dir(&self.dir).map_err(io_err("listing", &self.dir))? {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            if let Some(name) = entry.file_name().to_str() {
                let name = name.strip_suffix(TMP_SUFFIX).unwrap_or(name);
                if let Some(n) = gen_number(name) {
                    max = max.max(n);
                }
            }
        }
        Ok(max + 1)
    }

    /// Removes `*.tmp` leftovers and generations no link points to.
    fn clean(&self) -> Result<(), Error> {
        let keep = [self.target(CURRENT)?, self.target(PREVIOUS)?];
        let mut removed = false;
        for entry in fs::read_dir(&self.dir).map_err(io_err("listing", &self.dir))? {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let unused_gen =
                gen_number(&name).is_some() && !keep.iter().flatten().any(|k| *k == name);
            if name.ends_with(TMP_SUFFIX) || unused_gen {
                remove_if_present(&entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Cleans after a change that has already been committed: a failure
    /// here loses nothing, so it is logged, not returned.
    fn clean_after(&self, what: &str) {
        if let Err(e) = self.clean() {
            tracing::warn!(error = %e, "bundle store: cleaning up after {what} failed");
        }
    }
}

/// `gen-000042` → 42.
fn gen_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(GEN_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes a new file (mode 0600) and syncs it.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("creating", path))?;
    f.write_all(bytes).map_err(io_err("writing", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it
/// (mode `mode`), synced, renamed over it, the folder synced. A reader
/// sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Makes a directory's entries (creations, renames) durable.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))
}

/// Removes a file, link or directory tree; absent is fine.
fn remove_if_present(path: &Path) -> Result<(), Error> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn meta(version: u64) -> Meta {
        Meta {
            version,
            name: "b".into(),
            digest: format!("d{version}"),
            source: "test".into(),
            applied_at: 1_700_000_000 + version,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn empty_store_has_nothing_and_no_previous() {
        use std::os::unix::fs::PermissionsExt;
        let state = tempfile::tempdir().unwrap();
        let mut s = Store::open(state.path()).unwrap();
        assert_eq!(s.current().unwrap(), None);
        assert_eq!(s.previous().unwrap(), None);
        assert!(matches!(s.rollback(), Err(Error::NoPrevious)));
        let mode = fs::metadata(s.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(!state.path().join("bundles/current.yaml").exists());
    }

    #[test]
    fn can_write_and_read_back_with_previous() {
        let state = tempfile::tempdir().unwrap();
        let mut s = Store::open(state.path()).unwrap();
        s.write("one\n", Some("ed25519 x y\n"), &meta(1)).unwrap();
        let cur = s.current().unwrap().unwrap();
        assert_eq!(cur.text, "one\n");
        assert_eq!(cur.sig.as_deref(), Some("ed25519 x y\n"));
        assert_eq!(cur.meta, meta(1));
        assert_eq!(s.previous().unwrap(), None);

        s.write("two\n", None, &meta(2)).unwrap();
        let cur = s.current().unwrap().unwrap();
        assert_eq!((cur.text.as_str(), cur.sig), ("two\n", None));
        let prev = s.previous().unwrap().unwrap();
        assert_eq!(prev.text, "one\n");
        assert_eq!(prev.meta.version, 1);

        // The fixed names read as the brief's layout.
        let dir = s.dir().to_owned();
        assert_eq!(
            fs::read_to_string(dir.join("current.yaml")).unwrap(),
            "two\n"
        );
        assert!(!dir.join("current.yaml.sig").exists());
        assert_eq!(
            fs::read_to_string(dir.join("previous.yaml")).unwrap(),
            "one\n"
        );
        assert_eq!(
            fs::read_to_string(dir.join("previous.yaml.sig")).unwrap(),
            "ed25519 x y\n"
        );
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("current.json")).unwrap()).unwrap();
        assert_eq!(record["version"], 2);
        assert_eq!(record["applied_at"], 1_700_000_002u64);

        // Only the two generations in use stay.
        s.write("three\n", None, &meta(3)).unwrap();
        let gens: Vec<String> = names(&dir)
            .into_iter()
            .filter(|n| n.starts_with(GEN_PREFIX))
            .collect();
        assert_eq!(gens.len(), 2, "{gens:?}");
    }

    #[test]
    fn rollback_restores_previous_once() {
        let state = tempfile::tempdir().unwrap();
        let mut s = Store::open(state.path()).unwrap();
        s.write("good\n", None, &meta(1)).unwrap();
        s.write("bad\n", None, &meta(2)).unwrap();
        let back = s.rollback().unwrap();
        assert_eq!(back.text, "good\n");
        assert_eq!(s.current().unwrap().unwrap().text, "good\n");
        assert_eq!(s.previous().unwrap(), None);
        assert!(matches!(s.rollback(), Err(Error::NoPrevious)));
        // Survives a reopen.
        let s = Store::open(state.path()).unwrap();
        assert_eq!(s.current().unwrap().unwrap().meta, meta(1));
    }

    #[test]
    fn open_removes_leftovers_of_an_interrupted_write() {
        let state = tempfile::tempdir().unwrap();
        let mut s = Store::open(state.path()).unwrap();
        s.write("old\n", None, &meta(1)).unwrap();
        let dir = s.dir().to_owned();
        // A crash mid-write: a half-filled generation, a finished one no
        // link points to, and a half-made link.
        fs::create_dir(dir.join("gen-000009.tmp")).unwrap();
        fs::write(dir.join("gen-000009.tmp/bundle.yaml"), "ne").unwrap();
        fs::create_dir(dir.join("gen-000008")).unwrap();
        std::os::unix::fs::symlink("gen-000008", dir.join("current.tmp")).unwrap();
        drop(s);

        let mut s = Store::open(state.path()).unwrap();
        assert_eq!(s.current().unwrap().unwrap().text, "old\n");
        let left = names(&dir);
        assert!(!left.iter().any(|n| n.ends_with(".tmp")), "{left:?}");
        assert!(!left.contains(&"gen-000008".to_owned()), "{left:?}");
        // Generation numbers keep rising past what was seen.
        s.write("new\n", None, &meta(2)).unwrap();
        assert_eq!(s.target(CURRENT).unwrap().as_deref(), Some("gen-000002"));
    }

    #[test]
    fn returns_corrupt_when_record_damaged() {
        let state = tempfile::tempdir().unwrap();
        let mut s = Store::open(state.path()).unwrap();
        s.write("x\n", None, &meta(1)).unwrap();
        fs::write(s.dir().join("current.json"), "{").unwrap();
        let err = s.current().unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}
