//! Record ids: 20 characters, sortable by creation time, in the style of
//! the seed's device ids (`cfv5v3h32ckl0mq6al70`): 12 bytes (4 of Unix
//! seconds, big-endian; 5 random per process; 3 of a counter) written in
//! base32hex, lower case. Ids made later sort later (to the second, and
//! within a process to the id).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

fn process_bytes() -> &'static ([u8; 5], u32) {
    static P: OnceLock<([u8; 5], u32)> = OnceLock::new();
    P.get_or_init(|| {
        let mut b = [0u8; 8];
        // Without a random source, the process id still separates
        // processes on one machine.
        if getrandom::fill(&mut b).is_err() {
            b[..4].copy_from_slice(&std::process::id().to_be_bytes());
        }
        (
            [b[0], b[1], b[2], b[3], b[4]],
            u32::from_be_bytes([0, b[5], b[6], b[7]]),
        )
    })
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A new id.
pub fn new() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (proc_bytes, start) = process_bytes();
    let n = start.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed)) & 0x00ff_ffff;
    let mut raw = [0u8; 12];
    raw[..4].copy_from_slice(&(secs as u32).to_be_bytes());
    raw[4..9].copy_from_slice(proc_bytes);
    raw[9..].copy_from_slice(&n.to_be_bytes()[1..]);
    encode(&raw)
}

/// base32hex of 12 bytes (96 bits → 20 characters, the last holding 1 bit
/// of padding), lower case.
fn encode(raw: &[u8; 12]) -> String {
    let mut out = String::with_capacity(20);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for &b in raw {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Whether `s` looks like an id (20 characters of the alphabet).
pub fn is_id(s: &str) -> bool {
    s.len() == 20 && s.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_sortable_characters() {
        let a = new();
        let b = new();
        assert_eq!(a.len(), 20);
        assert!(is_id(&a));
        assert!(a < b, "{a} then {b}");
        assert!(!is_id("pi5-node-1"));
    }

    #[test]
    fn time_comes_first() {
        let mut early = [0u8; 12];
        early[3] = 1;
        let mut late = [0u8; 12];
        late[2] = 1;
        late[11] = 0;
        assert!(encode(&early) < encode(&late));
        assert_eq!(encode(&[0xff; 12]), "vvvvvvvvvvvvvvvvvvvg");
    }
}
