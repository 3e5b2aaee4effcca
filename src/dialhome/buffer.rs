//! The telemetry buffer: records waiting for the control plane, kept on
//! disk within a fixed number of bytes, surviving restarts and crashes.
//!
//! Each record is opaque bytes with a sequence number: 1 for the first
//! record the buffer ever took, one more for each record after it, never
//! reused (not after a restart, not after every record was acknowledged
//! and deleted, not after records were dropped). The uploader reads
//! records after the last one the control plane acknowledged
//! ([`Buffer::read`]), sends them, and acknowledges up to the highest
//! number the control plane confirmed ([`Buffer::ack`]).
//!
//! Layout of the buffer directory (mode 0700; other names are left alone):
//!
//! ```text
//! seg-00000000000000000042.log   records 42, 43, … (the number is the first one's)
//! seg-00000000000000000107.log   the newest segment, appended to
//! cursor                         acked, dropped_total, dropped_through, last_seq
//! cursor.tmp                     a cursor being written (removed at open)
//! ```
//!
//! A record in a segment is `[len u32 LE][crc32 u32 LE][seq u64 LE][payload]`,
//! where `len` is the payload's length and the CRC-32 covers the eight
//! bytes of `seq` and the payload. A segment is closed when the next record
//! would take it past the segment size (an eighth of the bound, at least
//! 4 KiB, at most 8 MiB) and a new one is started. Each record is fsynced
//! before [`Buffer::push`] returns.
//!
//! The bound counts the bytes of the segment files. When a record does not
//! fit, the oldest whole segments are dropped until it does; their
//! unacknowledged records count in [`Buffer::dropped_total`]. The cursor is
//! the commit point for acknowledgements and drops: it is written first
//! (temporary file, fsync, rename, fsync of the directory), then the
//! segments it makes obsolete are deleted, and [`Buffer::open`] deletes
//! any it finds left over after a crash.
//!
//! [`Buffer::open`] reads every segment and checks every record. A torn or
//! corrupt record ends its segment: the segment is truncated before it
//! (the records after it in that segment are lost, later segments are
//! kept), the loss is logged and counted in [`Buffer::corrupt_total`], and
//! the lost records' numbers count as used.
//!
//! One process uses a buffer directory at a time.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes in front of each payload: length, checksum, sequence number.
const HEADER: u64 = 16;
const SEG_PREFIX: &str = "seg-";
const SEG_SUFFIX: &str = ".log";
const SEG_DIGITS: usize = 20;
const CURSOR: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
const CURSOR_MAGIC: &str = "onprem-buffer 1";
const MIN_SEGMENT: u64 = 4 << 10;
const MAX_SEGMENT: u64 = 8 << 20;
/// How much of a segment is read at a time while checking it.
const CHUNK: usize = 64 << 10;

/// Why the buffer failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed: check that the buffer directory is
    /// writable by the agent and that its disk is not full.
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
    /// The record is larger than the whole buffer may be: it was refused.
    /// Send smaller records, or raise the buffer's bound.
    #[error(
        "a record of {len} bytes (payload and 16-byte header) does not fit in a buffer of at most {max} bytes"
    )]
    TooLarge {
        /// The record's size on disk, header included.
        len: u64,
        /// The largest record the buffer takes.
        max: u64,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What the cursor file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cursor {
    /// Everything up to here was delivered.
    acked: u64,
    /// Records dropped unacknowledged because the buffer was full, ever.
    dropped_total: u64,
    /// Everything up to here that was not acknowledged was dropped.
    dropped_through: u64,
    /// The highest sequence number assigned (or lost) so far.
    last_seq: u64,
}

impl Cursor {
    /// Records at or below this number are gone (delivered or dropped).
    fn floor(&self) -> u64 {
        self.acked.max(self.dropped_through)
    }

    fn encode(&self) -> String {
        let body = format!(
            "{CURSOR_MAGIC}\nacked {}\ndropped_total {}\ndropped_through {}\nlast_seq {}\n",
            self.acked, self.dropped_total, self.dropped_through, self.last_seq
        );
        let crc = crc32fast::hash(body.as_bytes());
        format!("{body}crc {crc:08x}\n")
    }

    fn decode(text: &str) -> Option<Cursor> {
        let at = text.rfind("crc ")?;
        let (body, crc_line) = text.split_at(at);
        let crc = u32::from_str_radix(crc_line.strip_prefix("crc ")?.trim_end(), 16).ok()?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != CURSOR_MAGIC {
            return None;
        }
        let mut field = |name: &str| -> Option<u64> {
            lines
                .next()?
                .strip_prefix(name)?
                .strip_prefix(' ')?
                .parse()
                .ok()
        };
        let cursor = Cursor {
            acked: field("acked")?,
            dropped_total: field("dropped_total")?,
            dropped_through: field("dropped_through")?,
            last_seq: field("last_seq")?,
        };
        lines.next().is_none().then_some(cursor)
    }
}

/// One segment file, as far as it holds whole, checked records.
#[derive(Debug)]
struct Segment {
    /// The first record's number (also in the file name).
    first: u64,
    /// The last record's number; `first - 1` while the segment is empty.
    last: u64,
    /// Bytes of records in the file.
    len: u64,
    path: PathBuf,
}

impl Segment {
    /// Records in this segment above `floor`.
    fn count_above(&self, floor: u64) -> u64 {
        self.last.saturating_sub(floor.max(self.first - 1))
    }
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    seg: Segment,
    file: File,
}

/// A failed append: whether the segment was put back as it was.
struct AppendError {
    error: Error,
    rolled_back: bool,
}

impl Active {
    /// Creates the segment whose first record will be `first`.
    fn create(dir: &Path, first: u64) -> Result<Active, Error> {
        let path = dir.join(segment_name(first));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        sync_dir(dir)?;
        Ok(Active {
            seg: Segment {
                first,
                last: first - 1,
                len: 0,
                path,
            },
            file,
        })
    }

    /// Opens an existing segment to append after its last record.
    fn reopen(seg: Segment) -> Result<Active, Error> {
        let mut file = OpenOptions::new()
            .write(true)
            .open(&seg.path)
            .map_err(io_err("opening", &seg.path))?;
        file.seek(SeekFrom::Start(seg.len))
            .map_err(io_err("seeking in", &seg.path))?;
        Ok(Active { seg, file })
    }

    /// Writes and fsyncs record `seq`; on failure, cuts the file back to
    /// where it was.
    fn append(&mut self, seq: u64, payload: &[u8], len: u32) -> Result<(), AppendError> {
        let mut frame = Vec::with_capacity(payload.len() + HEADER as usize);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&checksum(seq, payload).to_le_bytes());
        frame.extend_from_slice(&seq.to_le_bytes());
        frame.extend_from_slice(payload);
        let path = &self.seg.path;
        let written = self
            .file
            .write_all(&frame)
            .map_err(io_err("writing", path))
            .and_then(|()| self.file.sync_data().map_err(io_err("syncing", path)));
        match written {
            Ok(()) => {
                self.seg.last = seq;
                self.seg.len += frame.len() as u64;
                Ok(())
            }
            Err(error) => {
                let old = self.seg.len;
                let rolled_back = self.file.set_len(old).is_ok()
                    && self.file.seek(SeekFrom::Start(old)).is_ok()
                    && self.file.sync_data().is_ok();
                if !rolled_back {
                    // The bytes may be on disk, whole or not: count them.
                    self.seg.len += frame.len() as u64;
                }
                Err(AppendError { error, rolled_back })
            }
        }
    }
}

/// The agent's on-disk telemetry buffer. See the [module docs](self).
#[derive(Debug)]
pub struct Buffer {
    dir: PathBuf,
    max_bytes: u64,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    /// The newest segment, when one is open for appending.
    active: Option<Active>,
    cursor: Cursor,
    corrupt_total: u64,
}

impl Buffer {
    /// Opens (creating, mode 0700) the buffer directory; recovers after a
    /// crash: checks every record, truncates torn or corrupt segments, and
    /// deletes segments that were acknowledged or dropped.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Buffer, Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("creating", dir))?;
        remove_if_present(&dir.join(CURSOR_TMP))?;
        let stored = read_cursor(dir)?;
        let mut cursor = stored.unwrap_or_default();
        let floor = cursor.floor();

        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
            let entry = entry.map_err(io_err("listing", dir))?;
            let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) else {
                continue;
            };
            let kind = entry
                .file_type()
                .map_err(io_err("inspecting", &entry.path()))?;
            if kind.is_file() {
                found.push((first, entry.path()));
            }
        }
        found.sort();

        let mut segments = VecDeque::new();
        let mut corrupt_total = 0;
        for (i, (first, path)) in found.iter().enumerate() {
            let first = *first;
            // The file's name says that every number before it was used.
            cursor.last_seq = cursor.last_seq.max(first - 1);
            let scan = scan_segment(path, first)?;
            let last = first - 1 + scan.count;
            if let Some(bad) = scan.bad {
                let lost = match found.get(i + 1) {
                    Some((next, _)) => next.saturating_sub(last + 1),
                    None => bad.frames,
                };
                corrupt_total += lost;
                cursor.last_seq = cursor.last_seq.max(last + lost);
                tracing::warn!(
                    segment = %path.display(),
                    offset = bad.offset,
                    reason = bad.reason,
                    lost,
                    "telemetry buffer: damaged record; truncating its segment there"
                );
                truncate(path, scan.valid_len)?;
            }
            cursor.last_seq = cursor.last_seq.max(last);
            if scan.count == 0 || last <= floor {
                remove_if_present(path)?;
                continue;
            }
            segments.push_back(Segment {
                first,
                last,
                len: scan.valid_len,
                path: path.clone(),
            });
        }
        let active = segments.pop_back().map(Active::reopen).transpose()?;
        if stored != Some(cursor) {
            write_cursor(dir, &cursor)?;
        }
        Ok(Buffer {
            dir: dir.to_owned(),
            max_bytes,
            closed: segments,
            active,
            cursor,
            corrupt_total,
        })
    }

    /// Appends one record (opaque bytes), fsynced before it returns;
    /// returns its sequence number. Drops the oldest segments when the
    /// record would not fit otherwise; refuses a record larger than the
    /// whole bound ([`Error::TooLarge`]).
    ///
    /// Sequence numbers start at 1, increase by 1 and are never reused. A
    /// push that fails keeps its number unused unless its bytes could not
    /// be taken back off the disk; then the number counts as used.
    pub fn push(&mut self, payload: &[u8]) -> Result<u64, Error> {
        let len = HEADER + payload.len() as u64;
        let frame_len = u32::try_from(payload.len()).ok();
        let Some(frame_len) = frame_len.filter(|_| len <= self.max_bytes) else {
            return Err(Error::TooLarge {
                len,
                max: self.max_bytes.min(HEADER + u64::from(u32::MAX)),
            });
        };
        self.make_room(len)?;
        let seq = self.cursor.last_seq + 1;
        let size = self.segment_size();
        // Close the segment when the record would take it past the segment
        // size, or when numbers were lost after its last record (a segment
        // holds consecutive numbers).
        if let Some(done) = self
            .active
            .take_if(|a| a.seg.len > 0 && (a.seg.len + len > size || a.seg.last + 1 != seq))
        {
            self.closed.push_back(done.seg);
        }
        let mut active = match self.active.take() {
            Some(a) => a,
            None => Active::create(&self.dir, seq)?,
        };
        match active.append(seq, payload, frame_len) {
            Ok(()) => {
                self.cursor.last_seq = seq;
                self.active = Some(active);
                Ok(seq)
            }
            Err(AppendError {
                error,
                rolled_back: true,
            }) => {
                self.active = Some(active);
                Err(error)
            }
            Err(AppendError {
                error,
                rolled_back: false,
            }) => {
                self.cursor.last_seq = seq;
                self.closed.push_back(active.seg);
                Err(error)
            }
        }
    }

    /// Up to `max_records` records with a number above `after` (and above
    /// [`acked`](Self::acked)), in order, of at most about `max_bytes` of
    /// payload: the first record is returned whatever its size.
    ///
    /// A record found damaged here (the disk changed since [`open`](Self::open))
    /// is logged and ends what is read from its segment.
    pub fn read(
        &self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        let start = after.max(self.cursor.floor()).saturating_add(1);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for seg in self.segments() {
            if out.len() >= max_records {
                break;
            }
            if seg.last < start || seg.last < seg.first {
                continue;
            }
            let path = &seg.path;
            let file = File::open(path).map_err(io_err("opening", path))?;
            let mut r = BufReader::new(file);
            let mut pos = 0;
            let mut seq = seg.first;
            while seq <= seg.last && out.len() < max_records {
                let damaged = |reason: &str| {
                    tracing::warn!(segment = %path.display(), offset = pos, seq, reason,
                        "telemetry buffer: damaged record; skipping the rest of its segment");
                };
                if seg.len - pos < HEADER {
                    damaged("segment shorter than its index");
                    break;
                }
                let (len, crc, rseq) = read_header(&mut r).map_err(io_err("reading", path))?;
                let plen = u64::from(len);
                if HEADER + plen > seg.len - pos || rseq != seq {
                    damaged("bad length or sequence number");
                    break;
                }
                if seq < start {
                    r.seek_relative(i64::from(len))
                        .map_err(io_err("seeking in", path))?;
                } else {
                    let size = len as usize;
                    if !out.is_empty() && bytes.saturating_add(size) > max_bytes {
                        return Ok(out);
                    }
                    let mut payload = vec![0; size];
                    r.read_exact(&mut payload)
                        .map_err(io_err("reading", path))?;
                    if checksum(seq, &payload) != crc {
                        damaged("bad checksum");
                        break;
                    }
                    bytes += size;
                    out.push((seq, payload));
                }
                pos += HEADER + plen;
                seq += 1;
            }
        }
        Ok(out)
    }

    /// Everything up to `seq` was delivered: persisted (atomically), and
    /// wholly acknowledged segments are deleted. Acknowledgements at or
    /// below the current one are ignored; one above
    /// [`last_seq`](Self::last_seq) counts as `last_seq`.
    pub fn ack(&mut self, seq: u64) -> Result<(), Error> {
        let seq = seq.min(self.cursor.last_seq);
        if seq <= self.cursor.acked {
            return Ok(());
        }
        let next = Cursor {
            acked: seq,
            ..self.cursor
        };
        write_cursor(&self.dir, &next)?;
        self.cursor = next;
        let done = self
            .segments()
            .take_while(|s| s.last <= self.cursor.acked)
            .count();
        self.remove_oldest(done)
    }

    /// Everything up to here was delivered (0: nothing yet).
    pub fn acked(&self) -> u64 {
        self.cursor.acked
    }

    /// The highest sequence number ever assigned (0: none).
    pub fn last_seq(&self) -> u64 {
        self.cursor.last_seq
    }

    /// Records not yet acknowledged and still held.
    pub fn pending(&self) -> u64 {
        let floor = self.cursor.floor();
        self.segments().map(|s| s.count_above(floor)).sum()
    }

    /// Bytes on disk in segments (at most [`max_bytes`](Self::max_bytes)).
    pub fn bytes(&self) -> u64 {
        self.segments().map(|s| s.len).sum()
    }

    /// Records dropped unacknowledged because the buffer was full, since
    /// the buffer directory was created (kept across restarts).
    pub fn dropped_total(&self) -> u64 {
        self.cursor.dropped_total
    }

    /// Records lost to a bad checksum or a torn write found at
    /// [`open`](Self::open), in this process.
    pub fn corrupt_total(&self) -> u64 {
        self.corrupt_total
    }

    /// Changes the bound; shrinking drops the oldest segments at once (a
    /// failure to do so is logged, and the next push tries again).
    pub fn set_max_bytes(&mut self, max: u64) {
        self.max_bytes = max;
        if let Err(e) = self.make_room(0) {
            tracing::warn!(error = %e, "telemetry buffer: cannot drop records to shrink the buffer");
        }
    }

    /// The bound on [`bytes`](Self::bytes).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Segments, oldest first.
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.closed.iter().chain(self.active.iter().map(|a| &a.seg))
    }

    fn segment_size(&self) -> u64 {
        (self.max_bytes / 8).clamp(MIN_SEGMENT, MAX_SEGMENT)
    }

    /// Drops the oldest segments until `need` more bytes fit in the bound.
    fn make_room(&mut self, need: u64) -> Result<(), Error> {
        let mut total = self.bytes();
        let mut n = 0;
        let mut lost = 0;
        let mut through = 0;
        let floor = self.cursor.floor();
        for seg in self.segments() {
            if total + need <= self.max_bytes {
                break;
            }
            total -= seg.len;
            n += 1;
            lost += seg.count_above(floor);
            through = through.max(seg.last);
        }
        if n == 0 {
            return Ok(());
        }
        let next = Cursor {
            dropped_total: self.cursor.dropped_total + lost,
            dropped_through: self.cursor.dropped_through.max(through),
            ..self.cursor
        };
        write_cursor(&self.dir, &next)?;
        self.cursor = next;
        if lost > 0 {
            tracing::warn!(
                dropped = lost,
                through,
                max_bytes = self.max_bytes,
                "telemetry buffer full: dropped the oldest records"
            );
        }
        self.remove_oldest(n)
    }

    /// Deletes the `n` oldest segments (the cursor already says they are
    /// gone).
    fn remove_oldest(&mut self, n: usize) -> Result<(), Error> {
        for _ in 0..n {
            if let Some(seg) = self.closed.front() {
                remove_if_present(&seg.path)?;
                self.closed.pop_front();
            } else if let Some(active) = &self.active {
                remove_if_present(&active.seg.path)?;
                self.active = None;
            }
        }
        Ok(())
    }
}

/// `seg-<first, 20 digits>.log`.
fn segment_name(first: u64) -> String {
    format!("{SEG_PREFIX}{first:0SEG_DIGITS$}{SEG_SUFFIX}")
}

/// The first record's number from a segment's file name, or `None` for
/// any other name.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEG_PREFIX)?.strip_suffix(SEG_SUFFIX)?;
    if digits.len() != SEG_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&first| first > 0)
}

/// The CRC-32 of a record: over its number and its payload.
fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Reads a record header: payload length, checksum, number.
fn read_header(r: &mut impl Read) -> io::Result<(u32, u32, u64)> {
    let mut h = [0u8; HEADER as usize];
    r.read_exact(&mut h)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let seq = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    Ok((len, crc, seq))
}

/// What [`scan_segment`] found.
struct Scan {
    /// Whole, checked records from the start.
    count: u64,
    /// Their bytes.
    valid_len: u64,
    /// The damaged record that ends them, if any.
    bad: Option<Bad>,
}

struct Bad {
    offset: u64,
    reason: &'static str,
    /// Records from the damaged one to the end of the file, as far as
    /// their lengths tell (at least 1).
    frames: u64,
}

/// Checks every record of a segment whose first record is `first`.
fn scan_segment(path: &Path, first: u64) -> Result<Scan, Error> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let file_len = file.metadata().map_err(io_err("inspecting", path))?.len();
    let mut r = BufReader::with_capacity(CHUNK, file);
    let mut chunk = vec![0u8; CHUNK];
    let mut pos = 0;
    let mut count = 0;
    while pos < file_len {
        match check_record(&mut r, file_len - pos, first + count, &mut chunk)
            .map_err(io_err("reading", path))?
        {
            Ok(plen) => {
                pos += HEADER + plen;
                count += 1;
            }
            Err(reason) => {
                r.seek(SeekFrom::Start(pos))
                    .map_err(io_err("seeking in", path))?;
                let frames =
                    count_frames(&mut r, file_len - pos).map_err(io_err("reading", path))?;
                return Ok(Scan {
                    count,
                    valid_len: pos,
                    bad: Some(Bad {
                        offset: pos,
                        reason,
                        frames,
                    }),
                });
            }
        }
    }
    Ok(Scan {
        count,
        valid_len: pos,
        bad: None,
    })
}

/// Checks the record at the reader's position, with `remaining` bytes left
/// in the file: `Ok(payload length)`, or why it is damaged.
fn check_record(
    r: &mut impl Read,
    remaining: u64,
    expected: u64,
    chunk: &mut [u8],
) -> io::Result<Result<u64, &'static str>> {
    if remaining < HEADER {
        return Ok(Err("torn header"));
    }
    let (len, crc, seq) = read_header(r)?;
    let plen = u64::from(len);
    if HEADER + plen > remaining {
        return Ok(Err("torn record"));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    let mut left = plen;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        r.read_exact(&mut chunk[..n])?;
        h.update(&chunk[..n]);
        left -= n as u64;
    }
    if h.finalize() != crc {
        return Ok(Err("bad checksum"));
    }
    if seq != expected {
        return Ok(Err("unexpected sequence number"));
    }
    Ok(Ok(plen))
}

/// Counts records from the reader's position by their lengths alone
/// (checksums are not checked), a partial one included; at least 1.
fn count_frames(r: &mut BufReader<File>, mut remaining: u64) -> io::Result<u64> {
    let mut n = 0;
    while remaining > 0 {
        n += 1;
        if remaining < HEADER {
            break;
        }
        let (len, _, _) = read_header(r)?;
        let frame = HEADER + u64::from(len);
        if frame > remaining {
            break;
        }
        r.seek_relative(i64::from(len))?;
        remaining -= frame;
    }
    Ok(n.max(1))
}

/// The stored cursor: `None` when there is none, or when it is damaged
/// (logged; the buffer then rebuilds what it can from its segments).
fn read_cursor(dir: &Path) -> Result<Option<Cursor>, Error> {
    let path = dir.join(CURSOR);
    let text = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    let cursor = std::str::from_utf8(&text).ok().and_then(Cursor::decode);
    if cursor.is_none() {
        tracing::warn!(
            path = %path.display(),
            "telemetry buffer: damaged cursor; acknowledged records may be sent again and the drop count restarts"
        );
    }
    Ok(cursor)
}

/// Writes the cursor atomically (`cursor.tmp`, fsync, rename, fsync of
/// the directory: [`crate::bundle::store::write_atomic`]).
fn write_cursor(dir: &Path, cursor: &Cursor) -> Result<(), Error> {
    let path = dir.join(CURSOR);
    crate::bundle::store::write_atomic(&path, cursor.encode().as_bytes(), 0o600)
        .map_err(io_err("writing", &path))
}

fn truncate(path: &Path, len: u64) -> Result<(), Error> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))?;
    f.set_len(len).map_err(io_err("truncating", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KIB64: u64 = 64 << 10;

    /// A payload that makes a 1000-byte record, marked with `n`.
    fn rec(n: u64) -> Vec<u8> {
        let mut p = vec![b'.'; 1000 - HEADER as usize];
        p[..8].copy_from_slice(&n.to_le_bytes());
        p
    }

    fn seqs(records: &[(u64, Vec<u8>)]) -> Vec<u64> {
        records.iter().map(|(s, _)| *s).collect()
    }

    fn segment_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| parse_segment_name(n).is_some())
            .collect();
        names.sort();
        names
    }

    /// Pushes `n` 1000-byte records into a 64 KiB buffer (8 KiB segments:
    /// 8 records each).
    fn filled(dir: &Path, n: u64) -> Buffer {
        let mut b = Buffer::open(dir, KIB64).unwrap();
        for i in 1..=n {
            assert_eq!(b.push(&rec(i)).unwrap(), i);
        }
        b
    }

    #[test]
    fn can_push_read_and_ack_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!(b.last_seq(), 0);
        assert_eq!(b.push(b"one").unwrap(), 1);
        assert_eq!(b.push(b"two").unwrap(), 2);
        assert_eq!(b.push(b"three").unwrap(), 3);
        assert_eq!(b.bytes(), 3 * HEADER + 3 + 3 + 5);
        assert_eq!(b.pending(), 3);

        let all = b.read(0, 10, 1 << 20).unwrap();
        assert_eq!(
            all,
            vec![
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (3, b"three".to_vec())
            ]
        );
        assert_eq!(seqs(&b.read(1, 10, 1 << 20).unwrap()), [2, 3]);
        assert_eq!(seqs(&b.read(0, 2, 1 << 20).unwrap()), [1, 2]);
        assert_eq!(seqs(&b.read(0, 10, 6).unwrap()), [1, 2]);
        assert_eq!(seqs(&b.read(0, 10, 1).unwrap()), [1], "at least one record");
        assert!(b.read(0, 0, 1 << 20).unwrap().is_empty());

        b.ack(2).unwrap();
        assert_eq!(b.acked(), 2);
        assert_eq!(b.pending(), 1);
        assert_eq!(
            b.read(0, 10, 1 << 20).unwrap(),
            vec![(3, b"three".to_vec())]
        );
        b.ack(1).unwrap();
        assert_eq!(b.acked(), 2, "an older ack is ignored");
        b.ack(99).unwrap();
        assert_eq!(
            b.acked(),
            3,
            "an ack past the last record counts as the last"
        );
        assert_eq!(b.pending(), 0);
        assert_eq!(b.bytes(), 0);
        assert!(segment_files(dir.path()).is_empty());
    }

    #[test]
    fn creates_its_directory_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state/buffer");
        Buffer::open(&dir, KIB64).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn sequence_numbers_continue_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 3));
        let mut b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!(b.last_seq(), 3);
        assert_eq!(b.pending(), 3);
        assert_eq!(b.push(b"x").unwrap(), 4);

        // Everything acknowledged and deleted: the numbers still go on.
        b.ack(4).unwrap();
        assert!(segment_files(dir.path()).is_empty());
        drop(b);
        let mut b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!((b.last_seq(), b.acked(), b.pending()), (4, 4, 0));
        assert_eq!(b.push(b"y").unwrap(), 5);
        drop(b);
        let b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!(b.read(0, 10, 1 << 20).unwrap(), vec![(5, b"y".to_vec())]);
    }

    #[test]
    fn ack_survives_reopen_and_acked_records_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = filled(dir.path(), 5);
        b.ack(3).unwrap();
        drop(b);
        let b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!(b.acked(), 3);
        assert_eq!(b.pending(), 2);
        assert_eq!(seqs(&b.read(0, 10, 1 << 20).unwrap()), [4, 5]);
        assert_eq!(b.read(0, 1, 1 << 20).unwrap()[0].1, rec(4));
    }

    #[test]
    fn reads_after_an_old_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = filled(dir.path(), 20);
        b.ack(5).unwrap();
        assert_eq!(seqs(&b.read(2, 3, 1 << 20).unwrap()), [6, 7, 8]);
        assert_eq!(seqs(&b.read(12, 3, 1 << 20).unwrap()), [13, 14, 15]);
        // Across a segment boundary (segments hold 8 records).
        assert_eq!(seqs(&b.read(7, 3, 1 << 20).unwrap()), [8, 9, 10]);
        assert_eq!(
            seqs(&b.read(15, 100, 1 << 20).unwrap()),
            [16, 17, 18, 19, 20]
        );
        assert!(b.read(20, 10, 1 << 20).unwrap().is_empty());
        assert!(b.read(100, 10, 1 << 20).unwrap().is_empty());
        let r = b.read(12, 2, 1 << 20).unwrap();
        assert_eq!(r[1], (14, rec(14)));
    }

    #[test]
    fn wholly_acknowledged_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = filled(dir.path(), 20);
        assert_eq!(
            segment_files(dir.path()),
            [
                "seg-00000000000000000001.log",
                "seg-00000000000000000009.log",
                "seg-00000000000000000017.log"
            ]
        );
        b.ack(12).unwrap();
        assert_eq!(
            segment_files(dir.path()),
            [
                "seg-00000000000000000009.log",
                "seg-00000000000000000017.log"
            ]
        );
        assert_eq!(b.bytes(), 12_000);
        assert_eq!(b.pending(), 8);
    }

    #[test]
    fn bound_holds_and_oldest_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::open(dir.path(), KIB64).unwrap();
        for i in 1..=100 {
            assert_eq!(b.push(&rec(i)).unwrap(), i);
            assert!(b.bytes() <= KIB64, "{} bytes after push {i}", b.bytes());
            if i == 4 {
                b.ack(2).unwrap();
            }
        }
        // 65 records fit; each drop takes a segment of 8: records 1..=40
        // went in five drops, of which 1 and 2 were acknowledged.
        assert_eq!(b.dropped_total(), 38);
        assert_eq!(b.pending(), 60);
        assert_eq!(b.bytes(), 60_000);
        let first = b.read(0, 1, 1 << 20).unwrap();
        assert_eq!(first, vec![(41, rec(41))]);
        drop(b);

        let mut b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!(b.dropped_total(), 38);
        assert_eq!(b.last_seq(), 100);
        assert_eq!(b.pending(), 60);
        assert_eq!(b.corrupt_total(), 0);
        for i in 101..=106 {
            assert_eq!(b.push(&rec(i)).unwrap(), i);
        }
        assert_eq!(b.dropped_total(), 46);
        assert_eq!(seqs(&b.read(0, 1, 1 << 20).unwrap()), [49]);
    }

    #[test]
    fn numbers_are_not_reused_after_everything_was_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = filled(dir.path(), 3);
        b.set_max_bytes(0);
        assert_eq!((b.bytes(), b.pending(), b.dropped_total()), (0, 0, 3));
        drop(b);
        let mut b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!((b.last_seq(), b.dropped_total()), (3, 3));
        assert_eq!(b.push(b"z").unwrap(), 4);
    }

    #[test]
    fn shrinking_the_bound_drops_the_oldest_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = filled(dir.path(), 20);
        assert_eq!(b.bytes(), 20_000);
        b.set_max_bytes(10_000);
        assert_eq!(b.max_bytes(), 10_000);
        assert_eq!(b.bytes(), 4_000);
        assert_eq!(b.dropped_total(), 16);
        assert_eq!(b.pending(), 4);
        assert_eq!(seqs(&b.read(0, 100, 1 << 20).unwrap()), [17, 18, 19, 20]);
        // Segments are now 4 KiB: the next record starts a new one.
        assert_eq!(b.push(&rec(21)).unwrap(), 21);
        assert_eq!(
            segment_files(dir.path()),
            [
                "seg-00000000000000000017.log",
                "seg-00000000000000000021.log"
            ]
        );
    }

    #[test]
    fn returns_too_large_when_a_record_exceeds_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::open(dir.path(), 8192).unwrap();
        let err = b.push(&vec![0; 8192 - 16 + 1]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    len: 8193,
                    max: 8192
                }
            ),
            "{err:?}"
        );
        assert_eq!((b.last_seq(), b.bytes()), (0, 0));
        assert_eq!(b.push(&vec![0; 8192 - 16]).unwrap(), 1);
        assert_eq!(b.bytes(), 8192);
    }

    #[test]
    fn recovers_every_whole_record_before_a_torn_tail() {
        // Record 5 (bytes 4000..5000) cut in its payload, then in its header.
        for cut in [4_500, 4_007] {
            let dir = tempfile::tempdir().unwrap();
            drop(filled(dir.path(), 5));
            let seg = dir.path().join(segment_name(1));
            truncate(&seg, cut).unwrap();
            let mut b = Buffer::open(dir.path(), KIB64).unwrap();
            assert_eq!(b.corrupt_total(), 1, "cut at {cut}");
            assert_eq!(b.pending(), 4);
            assert_eq!(b.bytes(), 4_000);
            assert_eq!(fs::metadata(&seg).unwrap().len(), 4_000);
            let all = b.read(0, 100, 1 << 20).unwrap();
            assert_eq!(seqs(&all), [1, 2, 3, 4]);
            assert_eq!(all[3].1, rec(4));
            // The torn record's number counts as used.
            assert_eq!(b.last_seq(), 5);
            assert_eq!(b.push(b"after").unwrap(), 6);
            assert_eq!(
                segment_files(dir.path()),
                [
                    "seg-00000000000000000001.log",
                    "seg-00000000000000000006.log"
                ]
            );
            drop(b);
            let b = Buffer::open(dir.path(), KIB64).unwrap();
            assert_eq!(
                b.corrupt_total(),
                0,
                "the damage is gone after the first open"
            );
            assert_eq!(seqs(&b.read(0, 100, 1 << 20).unwrap()), [1, 2, 3, 4, 6]);
        }
    }

    fn flip_byte(path: &Path, at: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at as usize] ^= 0x40;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn detects_a_flipped_byte_in_a_middle_record() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 20));
        // Record 3 is the third in the first segment (records 1..=8).
        flip_byte(&dir.path().join(segment_name(1)), 2 * 1000 + 500);
        let b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!(b.corrupt_total(), 6, "records 3..=8");
        assert_eq!(b.pending(), 14);
        let got = seqs(&b.read(0, 100, 1 << 20).unwrap());
        let want: Vec<u64> = [1, 2].into_iter().chain(9..=20).collect();
        assert_eq!(got, want);
        assert_eq!(b.last_seq(), 20);
    }

    #[test]
    fn detects_a_flipped_byte_in_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 12));
        // Record 10 is the second of the newest segment (records 9..=12);
        // flip a byte of its number, which the checksum covers.
        flip_byte(&dir.path().join(segment_name(9)), 1000 + 9);
        let mut b = Buffer::open(dir.path(), KIB64).unwrap();
        assert_eq!(b.corrupt_total(), 3, "records 10..=12");
        assert_eq!(
            seqs(&b.read(0, 100, 1 << 20).unwrap()),
            (1..=9).collect::<Vec<_>>()
        );
        assert_eq!(b.push(b"next").unwrap(), 13);
    }

    #[test]
    fn leaves_other_files_alone_and_ignores_a_damaged_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("notes.txt");
        let odd = dir.path().join("seg-1.log");
        fs::write(&notes, "keep").unwrap();
        fs::write(&odd, "keep too").unwrap();
        let mut b = filled(dir.path(), 3);
        b.ack(3).unwrap();
        b.push(b"four").unwrap();
        drop(b);
        assert_eq!(fs::read_to_string(&notes).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&odd).unwrap(), "keep too");

        let cursor = dir.path().join(CURSOR);
        let text = fs::read_to_string(&cursor).unwrap();
        assert!(text.contains("\nacked 3\n"), "{text}");
        fs::write(&cursor, text.replace("acked 3", "acked 2")).unwrap();
        let b = Buffer::open(dir.path(), KIB64).unwrap();
        // The checksum caught it: acked is unknown, the numbers go on from
        // the segments.
        assert_eq!((b.acked(), b.last_seq(), b.pending()), (0, 4, 1));
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            acked: 7,
            dropped_total: 3,
            dropped_through: 9,
            last_seq: 12,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode(""), None);
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("seg-00000000000000000000.log"), None);
        assert_eq!(parse_segment_name("seg-0000000000000000004x.log"), None);
    }
}
