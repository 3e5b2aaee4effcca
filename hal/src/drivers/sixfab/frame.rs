//! The Sixfab MCU's frame format, as pure functions: CRC-16/XMODEM,
//! request encoding and a byte-at-a-time reply parser (hardware
//! reference §2.1, \[V\] `[S-SIXCMD]`).
//!
//! Request: `CD cmd 01 len_hi len_lo data… crc_hi crc_lo`. Reply: the
//! same layout with start byte `DC` and type `02`. The CRC covers the
//! header and the data and is sent high byte first.

/// Start byte of a request (host → MCU).
pub const REQUEST_START: u8 = 0xCD;
/// Start byte of a reply (MCU → host).
pub const REPLY_START: u8 = 0xDC;
/// Type byte of a request.
pub const TYPE_REQUEST: u8 = 0x01;
/// Type byte of a reply (not checked by the host, as in the official API).
pub const TYPE_REPLY: u8 = 0x02;
/// Start byte, command, type and two length bytes.
pub const HEADER_LEN: usize = 5;
/// Header plus the two CRC bytes: a frame is this long plus its data.
pub const OVERHEAD: usize = 7;
/// A reply whose length field says more than this resets the parser.
pub const MAX_REPLY_DATA: usize = 32;
/// An SMBus block write carries at most 32 bytes: the whole request
/// frame must fit.
pub const MAX_REQUEST_FRAME: usize = 32;

/// CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no
/// final XOR. The check value of `b"123456789"` is 0x31C3.
pub fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Builds a frame: `start cmd type len_hi len_lo data… crc_hi crc_lo`.
/// Used for requests by the driver and for replies by the emulator.
/// `None` when the data cannot be described by the 16-bit length field.
pub fn encode(start: u8, command: u8, kind: u8, data: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(data.len()).ok()?;
    let mut f = Vec::with_capacity(OVERHEAD + data.len());
    f.extend_from_slice(&[start, command, kind]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(data);
    let crc = crc16_xmodem(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    Some(f)
}

/// A request frame for `command` carrying `data` (big-endian integers or
/// raw bytes). `None` when the frame would not fit one SMBus block write
/// (more than 25 data bytes).
pub fn encode_request(command: u8, data: &[u8]) -> Option<Vec<u8>> {
    if OVERHEAD + data.len() > MAX_REQUEST_FRAME {
        return None;
    }
    encode(REQUEST_START, command, TYPE_REQUEST, data)
}

/// How many bytes the host reads for a reply carrying `data_len` bytes:
/// the frame length, since the host reads exactly one frame's worth
/// (8 for u8, 9 for u16, 11 for u32/i32, 10 for the 3-byte RGB
/// animation, 15 for the 8-character firmware version).
pub const fn reply_len(data_len: usize) -> usize {
    OVERHEAD + data_len
}

/// A reply whose CRC matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The command id it answers.
    pub command: u8,
    /// The type byte (0x02 from the real MCU; not checked).
    pub kind: u8,
    /// The data bytes.
    pub data: Vec<u8>,
}

/// What went wrong while reading a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// No 0xDC start byte in what was read (the MCU had no reply ready).
    NoStart,
    /// A frame started but was not complete when the reads ran out.
    Incomplete {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame needs (`None` before the length was known).
        want: Option<usize>,
    },
    /// The CRC did not match.
    Crc {
        /// The CRC in the frame.
        received: u16,
        /// The CRC computed over header and data.
        computed: u16,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::NoStart => f.write_str("no reply start byte 0xdc"),
            FrameError::Incomplete {
                have,
                want: Some(w),
            } => write!(f, "reply cut short: {have} of {w} bytes"),
            FrameError::Incomplete { have, want: None } => {
                write!(f, "reply cut short: {have} bytes, length not yet known")
            }
            FrameError::Crc { received, computed } => write!(
                f,
                "CRC check failed: frame says 0x{received:04x}, computed 0x{computed:04x}"
            ),
        }
    }
}

/// What the parser made of one more byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Need more bytes.
    Pending,
    /// A complete frame whose CRC matched.
    Done(Reply),
    /// A complete frame whose CRC did not match; the parser has reset.
    Failed(FrameError),
}

/// The host's reply parser, fed one byte per SMBus receive-byte
/// transaction. It skips bytes until 0xDC, resets when the length field
/// exceeds 32, checks the CRC over header and data, and ignores the type
/// byte — the rules of the official API's `check_command`.
#[derive(Debug, Default, Clone)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    /// An empty parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one byte.
    pub fn push(&mut self, byte: u8) -> Step {
        if self.buf.is_empty() && byte != REPLY_START {
            return Step::Pending;
        }
        self.buf.push(byte);
        if self.buf.len() < HEADER_LEN {
            return Step::Pending;
        }
        let len = usize::from(u16::from_be_bytes([self.buf[3], self.buf[4]]));
        if len > MAX_REPLY_DATA {
            self.buf.clear();
            return Step::Pending;
        }
        if self.buf.len() < OVERHEAD + len {
            return Step::Pending;
        }
        let body = HEADER_LEN + len;
        let received = u16::from_be_bytes([self.buf[body], self.buf[body + 1]]);
        let computed = crc16_xmodem(&self.buf[..body]);
        let step = if received == computed {
            Step::Done(Reply {
                command: self.buf[1],
                kind: self.buf[2],
                data: self.buf[HEADER_LEN..body].to_vec(),
            })
        } else {
            Step::Failed(FrameError::Crc { received, computed })
        };
        self.buf.clear();
        step
    }

    /// Why there is no frame yet, once the reads have run out.
    pub fn unfinished(&self) -> FrameError {
        match self.buf.len() {
            0 => FrameError::NoStart,
            have if have < HEADER_LEN => FrameError::Incomplete { have, want: None },
            have => FrameError::Incomplete {
                have,
                want: Some(OVERHEAD + usize::from(u16::from_be_bytes([self.buf[3], self.buf[4]]))),
            },
        }
    }
}

/// Parses the first reply in `bytes`, as the host would reading them one
/// at a time; stops at the first complete frame or CRC failure.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, FrameError> {
    let mut p = Parser::new();
    for &b in bytes {
        match p.push(b) {
            Step::Pending => {}
            Step::Done(r) => return Ok(r),
            Step::Failed(e) => return Err(e),
        }
    }
    Err(p.unfinished())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn can_compute_the_xmodem_check_value() {
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(crc16_xmodem(&[]), 0);
    }

    #[test]
    fn can_encode_a_request_without_data() {
        assert_eq!(
            encode_request(2, &[]).unwrap(),
            [0xCD, 0x02, 0x01, 0x00, 0x00, 0xC8, 0x9A]
        );
    }

    #[test]
    fn can_encode_a_request_with_data_and_refuse_oversized_ones() {
        let f = encode_request(52, &[10]).unwrap();
        assert_eq!(&f[..6], &[0xCD, 52, 0x01, 0x00, 0x01, 10]);
        assert_eq!(crc16_xmodem(&f[..6]).to_be_bytes(), [f[6], f[7]]);
        assert!(encode_request(201, &[0; 25]).is_some());
        assert!(encode_request(201, &[0; 26]).is_none());
    }

    #[test]
    fn can_parse_a_reply_after_garbage() {
        let frame = [
            0xDC, 0x02, 0x02, 0x00, 0x04, 0x00, 0x00, 0x14, 0x03, 0x9F, 0x12,
        ];
        let want = Reply {
            command: 2,
            kind: 2,
            data: vec![0x00, 0x00, 0x14, 0x03],
        };
        assert_eq!(parse_reply(&frame).unwrap(), want);
        let mut noisy = vec![0x00, 0xFF, 0x13];
        noisy.extend_from_slice(&frame);
        assert_eq!(parse_reply(&noisy).unwrap(), want);
    }

    #[test]
    fn ignores_the_type_byte() {
        let f = encode(REPLY_START, 13, 0x77, &[0, 0, 0, 55]).unwrap();
        assert_eq!(parse_reply(&f).unwrap().kind, 0x77);
    }

    #[test]
    fn resets_when_the_length_exceeds_32() {
        // A false start whose length field says 0x0100, then a real frame.
        let mut bytes = vec![0xDC, 0x02, 0x02, 0x01, 0x00];
        let f = encode(REPLY_START, 30, TYPE_REPLY, &[1]).unwrap();
        bytes.extend_from_slice(&f);
        assert_eq!(parse_reply(&bytes).unwrap().data, vec![1]);
    }

    #[test]
    fn returns_crc_error_when_a_byte_is_corrupt() {
        let mut f = encode(REPLY_START, 10, TYPE_REPLY, &[0, 0, 0x0F, 0xA0]).unwrap();
        f[7] ^= 0x01;
        assert!(matches!(parse_reply(&f), Err(FrameError::Crc { .. })));
    }

    #[test]
    fn returns_what_is_missing_when_reads_run_out() {
        assert_eq!(parse_reply(&[0, 0, 0]), Err(FrameError::NoStart));
        assert_eq!(
            parse_reply(&[0xDC, 2, 2]),
            Err(FrameError::Incomplete {
                have: 3,
                want: None
            })
        );
        assert_eq!(
            parse_reply(&[0xDC, 2, 2, 0, 4, 0]),
            Err(FrameError::Incomplete {
                have: 6,
                want: Some(11)
            })
        );
    }

    #[test]
    fn can_size_replies_per_payload_type() {
        assert_eq!(reply_len(1), 8);
        assert_eq!(reply_len(2), 9);
        assert_eq!(reply_len(3), 10);
        assert_eq!(reply_len(4), 11);
        assert_eq!(reply_len(8), 15);
    }
}
