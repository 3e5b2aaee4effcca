//! # Limits on what onprem reads from outside
//!
//! Every file, request body and document that onprem reads from outside
//! the process is bounded here, by name, so that no input can stall the
//! agent's loops or take its memory: a bundle of 50 MB is refused by its
//! size before it is read, a document nested 100,000 levels deep before
//! the YAML parser sees it (libyaml takes time in the square of the
//! nesting of flow collections), and what the errors say is bounded too.
//! Both the node and the control plane use these; `docs/bundles.md`
//! ("Limits") lists them for users.
//!
//! Each error names the limit it hit (`MAX_BUNDLE_BYTES`), so a user who
//! meets one knows which it was.
//!
//! - [`read_regular`] and [`read_regular_text`]: a regular file, at most
//!   a limit's bytes, never blocking on a FIFO or a device;
//! - [`check_depth`]: a document's nesting, in one linear pass;
//! - [`check_text`]: both, for a text already in memory;
//! - [`bounded_lines`] and [`shorten`]: at most [`MAX_ERRORS`] problems of
//!   at most [`MAX_ERROR_CHARS`] characters each.

mod depth;

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// A named bound on a count (bytes, levels, problems, characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The constant's name, as errors print it (`MAX_BUNDLE_BYTES`).
    pub name: &'static str,
    /// The bound.
    pub value: usize,
}

/// `MAX_BUNDLE_BYTES (1048576)`.
impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.value)
    }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The largest bundle, in bytes: a bundle file, a stored bundle, one from
/// the control plane, and a hardware profile file. The examples are under
/// 3 KB; 1 MiB leaves room for hundreds of zones and check rules.
pub const MAX_BUNDLE_BYTES: Limit = Limit {
    name: "MAX_BUNDLE_BYTES",
    value: MIB,
};

/// The largest agent configuration file, in bytes.
pub const MAX_CONFIG_BYTES: Limit = Limit {
    name: "MAX_CONFIG_BYTES",
    value: 256 * KIB,
};

/// The largest record document (one of `onprem apply`'s documents: a
/// Bundle record is a bundle with a selector), in bytes; the control
/// plane checks it whatever the client did.
pub const MAX_RECORD_BYTES: Limit = Limit {
    name: "MAX_RECORD_BYTES",
    value: MIB,
};

/// The most bytes one `onprem apply` sends: every `-f` file and standard
/// input together (gRPC's own bound on a message is 4 MiB, the REST
/// API's on a body 2 MB).
pub const MAX_APPLY_BYTES: Limit = Limit {
    name: "MAX_APPLY_BYTES",
    value: 4 * MIB,
};

/// The largest small file read beside a bundle: a signature file, a
/// public or secret key, a stored bundle's metadata.
pub const MAX_SMALL_FILE_BYTES: Limit = Limit {
    name: "MAX_SMALL_FILE_BYTES",
    value: 64 * KIB,
};

/// The largest textfile collector file (`*.prom`), in bytes: one over it
/// (or one that is not a regular file: a FIFO would hold the scrape for
/// ever) is skipped and counted in `node_textfile_scrape_error`.
pub const MAX_TEXTFILE_BYTES: Limit = Limit {
    name: "MAX_TEXTFILE_BYTES",
    value: 8 * MIB,
};

/// The deepest nesting of a YAML or JSON document: mappings and lists,
/// flow (`{`, `[`) and block (indentation) together. The examples and
/// fixtures nest at most 9 deep; `serde_yaml_ng` refuses past 128. The
/// parser's time grows with the nesting of what it reads, so the bound
/// is kept low: the worst 1 MiB bundle under it is measured in
/// `benches/parse_limits.rs`.
pub const MAX_DEPTH: Limit = Limit {
    name: "MAX_DEPTH",
    value: 32,
};

/// The most problems one document reports (the rest are counted: "… and
/// 120 more problems").
pub const MAX_ERRORS: Limit = Limit {
    name: "MAX_ERRORS",
    value: 50,
};

/// The longest message of one problem, in characters (a value quoted in
/// it is cut in the middle).
pub const MAX_ERROR_CHARS: Limit = Limit {
    name: "MAX_ERROR_CHARS",
    value: 500,
};

/// The most bytes of YAML that finding every problem of one document may
/// read again, all rounds together: each round re-reads the document
/// (about three times: written, read, its problem's line found) without
/// the bad nodes found so far, so a document at [`MAX_BUNDLE_BYTES`] gets
/// 2 rounds, one of 100 KB 26, and a small one [`MAX_ERRORS`].
pub const MAX_REREAD_BYTES: Limit = Limit {
    name: "MAX_REREAD_BYTES",
    value: 8 * MIB,
};

/// What kind of file this is, for an error that refuses it.
fn kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

fn not_regular(t: std::fs::FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "not a regular file ({}); only regular files are read",
            kind(t)
        ),
    )
}

/// The error for `size` bytes (or more) against `limit`.
pub fn too_large(size: usize, at_least: bool, limit: Limit) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "{}{size} bytes, over the limit of {} bytes ({})",
            if at_least { "more than " } else { "" },
            limit.value,
            limit.name
        ),
    )
}

/// Reads a regular file of at most `limit` bytes.
///
/// Anything else is refused without blocking: a FIFO, a socket or a
/// device (opened with `O_NONBLOCK`, never read), a directory; only
/// `/dev/null` reads, as an empty file. The size
/// is checked before reading, and the read stops one byte past the limit
/// should the file grow meanwhile. A symbolic link is followed.
pub fn read_regular(path: &Path, limit: Limit) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Look before opening: opening some devices does something.
    let meta = std::fs::metadata(path)?;
    let t = meta.file_type();
    if is_dev_null(&meta) {
        // `--config /dev/null`: the Unix way to say "an empty file".
        return Ok(Vec::new());
    }
    if !t.is_file() {
        return Err(not_regular(t));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    // What was opened, which may not be what was looked at.
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(not_regular(meta.file_type()));
    }
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if size > limit.value {
        return Err(too_large(size, false, limit));
    }
    let mut bytes = Vec::with_capacity(size);
    (&file)
        .take(limit.value as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > limit.value {
        return Err(too_large(limit.value, true, limit));
    }
    Ok(bytes)
}

/// Whether `meta` is the null device (character device 1:3), which
/// reads as empty and never blocks.
fn is_dev_null(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3)
}

/// [`read_regular`], as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: Limit) -> io::Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text".to_owned()))
}

/// [`read_regular_text`], `None` when the file does not exist.
pub fn read_optional_text(path: &Path, limit: Limit) -> io::Result<Option<String>> {
    match read_regular_text(path, limit) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads at most `limit` bytes of a stream (standard input): more is
/// refused.
pub fn read_bounded(r: impl Read, limit: Limit) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.take(limit.value as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit.value {
        return Err(too_large(limit.value, true, limit));
    }
    Ok(bytes)
}

/// A document refused before it was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The line it is about (from 1), when it is about one.
    pub line: Option<usize>,
    /// What is wrong, naming the limit.
    pub message: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Refused {}

/// Refuses a YAML or JSON text that nests deeper than [`MAX_DEPTH`], in
/// one pass that takes time in its length alone: `line 3: nesting deeper
/// than 32 levels (limit MAX_DEPTH)`.
pub fn check_depth(text: &str) -> Result<(), Refused> {
    depth::deepest(text, MAX_DEPTH.value)
        .map(|_| ())
        .map_err(|e| Refused {
            line: Some(e.line),
            message: format!(
                "nesting deeper than {} levels (limit {})",
                e.limit, MAX_DEPTH.name
            ),
        })
}

/// The deepest nesting of a YAML or JSON text (flow and block together),
/// or `None` past `limit`: for tests and benchmarks.
pub fn nesting(text: &str, limit: usize) -> Option<usize> {
    depth::deepest(text, limit).ok()
}

/// Refuses a text over `limit` bytes or nested deeper than
/// [`MAX_DEPTH`] (what [`read_regular_text`] and [`check_depth`] check,
/// for a text that came another way: a request, a message).
pub fn check_text(text: &str, limit: Limit) -> Result<(), Refused> {
    if text.len() > limit.value {
        return Err(Refused {
            line: None,
            message: too_large(text.len(), false, limit).to_string(),
        });
    }
    check_depth(text)
}

/// `message`, cut to at most [`MAX_ERROR_CHARS`] characters: its middle
/// gives way to `…` and a count, so that the start (what it is about) and
/// the end (where) stay.
pub fn shorten(message: &str) -> String {
    shorten_to(message, MAX_ERROR_CHARS.value)
}

fn shorten_to(message: &str, most: usize) -> String {
    let n = message.chars().count();
    if n <= most {
        return message.to_owned();
    }
    let note = |cut: usize| format!(" … ({cut} characters left out) … ");
    // The note's own length, with the widest count it can hold.
    let room = most.saturating_sub(note(n).chars().count());
    let head = room * 2 / 3;
    let tail = room - head;
    let cut = n - head - tail;
    let mut out: String = message.chars().take(head).collect();
    out.push_str(&note(cut));
    out.extend(message.chars().skip(n - tail));
    out
}

/// At most [`MAX_ERRORS`] lines of `items`, each [`shorten`]ed, and then
/// `… and N more problems` when there were more (one more is shown
/// itself: often the note that more were not looked for).
pub fn bounded_lines<T: fmt::Display>(items: &[T]) -> Vec<String> {
    let most = if items.len() == MAX_ERRORS.value + 1 {
        items.len()
    } else {
        MAX_ERRORS.value
    };
    let mut lines: Vec<String> = items
        .iter()
        .take(most)
        .map(|i| shorten(&i.to_string()))
        .collect();
    if items.len() > most {
        lines.push(more(items.len() - most));
    }
    lines
}

/// `… and N more problems (limit MAX_ERRORS)`.
pub fn more(n: usize) -> String {
    format!(
        "… and {n} more problem{} (at most {} are listed: {})",
        if n == 1 { "" } else { "s" },
        MAX_ERRORS.value,
        MAX_ERRORS.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_a_directory_and_a_device_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (dir.path(), "a directory"),
            (Path::new("/dev/zero"), "a character device"),
        ] {
            let e = read_regular(path, MAX_BUNDLE_BYTES).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("not a regular file ({what})")),
                "{e}"
            );
        }
        // The null device reads as an empty file (`--config /dev/null`).
        assert_eq!(
            read_regular(Path::new("/dev/null"), MAX_BUNDLE_BYTES).unwrap(),
            b""
        );
        // A link to a regular file is read.
        std::fs::write(dir.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("f"), dir.path().join("l")).unwrap();
        assert_eq!(
            read_regular_text(&dir.path().join("l"), MAX_BUNDLE_BYTES).unwrap(),
            "x"
        );
        assert_eq!(
            read_optional_text(&dir.path().join("none"), MAX_BUNDLE_BYTES).unwrap(),
            None
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_by_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let f = std::fs::File::create(&big).unwrap();
        // Sparse: 50 MB that take no room.
        f.set_len(50 << 20).unwrap();
        let e = read_regular(&big, MAX_BUNDLE_BYTES).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            e.to_string(),
            "52428800 bytes, over the limit of 1048576 bytes (MAX_BUNDLE_BYTES)"
        );
        f.set_len(MAX_BUNDLE_BYTES.value as u64).unwrap();
        assert_eq!(read_regular(&big, MAX_BUNDLE_BYTES).unwrap().len(), MIB);
        let e = read_bounded(&[0u8; 70 * KIB][..], MAX_SMALL_FILE_BYTES).unwrap_err();
        assert!(e.to_string().contains("MAX_SMALL_FILE_BYTES"), "{e}");
        let e = read_regular_text(&big, MAX_BUNDLE_BYTES);
        assert!(e.is_ok(), "zero bytes are UTF-8");
    }

    #[test]
    fn depth_errors_name_the_limit_and_the_line() {
        let text = format!("a: 1\nb:\n  c: {}1{}\n", "[".repeat(100), "]".repeat(100));
        let e = check_depth(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: nesting deeper than 32 levels (limit MAX_DEPTH)"
        );
        assert!(
            check_text(&"a".repeat(MIB + 1), MAX_RECORD_BYTES)
                .unwrap_err()
                .to_string()
                .contains("MAX_RECORD_BYTES")
        );
    }

    #[test]
    fn every_example_bundle_and_profile_passes() {
        for dir in ["bundles/examples", "bundles/profiles"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                let text = read_regular_text(&path, MAX_BUNDLE_BYTES).unwrap();
                let d = nesting(&text, MAX_DEPTH.value);
                assert!(
                    d.is_some_and(|d| (2..=16).contains(&d)),
                    "{}: {d:?}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn long_messages_keep_their_start_and_end() {
        let long = format!("start {} end", "x".repeat(10_000));
        let s = shorten(&long);
        assert!(s.chars().count() <= MAX_ERROR_CHARS.value, "{}", s.len());
        assert!(s.starts_with("start xx") && s.ends_with("xx end"), "{s}");
        assert!(s.contains("characters left out"), "{s}");
        assert_eq!(shorten("short"), "short");
        let items: Vec<String> = (0..120).map(|i| format!("problem {i}")).collect();
        let lines = bounded_lines(&items);
        assert_eq!(lines.len(), 51);
        assert_eq!(
            lines[50],
            "… and 70 more problems (at most 50 are listed: MAX_ERRORS)"
        );
        assert_eq!(bounded_lines(&items[..51]).len(), 51);
        assert_eq!(bounded_lines(&items[..51])[50], "problem 50");
    }
}
