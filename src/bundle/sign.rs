//! Bundle signatures: Ed25519 over the exact bytes of the bundle file, in
//! a detached `<bundle>.sig` file, checked against a list of trusted
//! public keys.
//!
//! No canonicalisation: what is signed is the file as it lies on disk (or
//! as it travels), so a change of one byte, a comment included, breaks the
//! signature. Formats, all text, one item per line:
//!
//! - secret key file (`PREFIX.key`, mode 0600):
//!   `onprem-ed25519-secret <base64 of the 32-byte seed>`
//! - public key file (`PREFIX.pub`):
//!   `onprem-ed25519-public <base64 of the 32-byte key>`
//! - signature file (`<bundle>.sig`): one line per signing key,
//!   `ed25519 <key id> <base64 of the 64-byte signature>`; blank lines and
//!   lines starting with `#` are ignored, and so are lines of another
//!   algorithm (a newer signer may add them).
//!
//! A [`KeyId`] is the first 16 hex digits of the SHA-256 of the 32 public
//! key bytes. Several lines let several keys sign one bundle, which is how
//! keys rotate: sign with old and new, move the nodes' [`TrustedKeys`] to
//! the new key, then stop signing with the old one.
//!
//! Secret keys live in [`SecretKey`], whose `Debug` prints `***`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// First word of a secret key file.
pub const SECRET_TAG: &str = "onprem-ed25519-secret";
/// First word of a public key file.
pub const PUBLIC_TAG: &str = "onprem-ed25519-public";
/// First word of a signature line.
pub const ALGORITHM: &str = "ed25519";

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key or signature file could not be read; check the path and its
    /// permissions.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A key or signature file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A key file or inline key is not in the expected format.
    #[error("{origin}: {message}")]
    BadKey {
        /// The file, or `inline key`.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The system's random source failed (key generation only).
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// The signature file holds no ed25519 signature at all.
    #[error("no signature: the signature file has no `ed25519 <key-id> <signature>` line")]
    NoSignature,
    /// No key is trusted, so nothing can verify.
    #[error("no trusted keys to verify the signature with")]
    NoTrustedKeys,
    /// A line of the signature file is not `ed25519 <key-id> <base64>`.
    #[error("malformed signature line {line}: {message}")]
    Malformed {
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Every signature is by a key this node does not trust: sign with a
    /// trusted key, or trust the signer's public key.
    #[error("signed only by unknown key(s) {}; trusted: {}", join(.signers), join(.trusted))]
    UnknownKeys {
        /// Key ids of the signatures found.
        signers: Vec<KeyId>,
        /// Key ids trusted.
        trusted: Vec<KeyId>,
    },
    /// A signature by a trusted key does not match the document: it was
    /// changed after signing (tampered), or the signature is corrupt.
    #[error(
        "bad signature by key {key}: the bundle was changed after it was signed (tampered), or the signature is corrupt"
    )]
    BadSignature {
        /// The trusted key whose signature failed.
        key: KeyId,
    },
}

fn join(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter().map(KeyId::as_str).collect::<Vec<_>>().join(", ")
}

/// A key's id: the first 16 hex digits of the SHA-256 of its 32 public
/// key bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id of a public key.
    fn of(key: &VerifyingKey) -> KeyId {
        let sum = Sha256::digest(key.as_bytes());
        KeyId(super::validate::hex(&sum[..8]))
    }

    /// Parses an id as a signature line writes it (16 lowercase hex digits).
    pub fn parse(s: &str) -> Option<KeyId> {
        (s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| KeyId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Ed25519 public key, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl PublicKey {
    /// Parses `onprem-ed25519-public <base64>` (the content of a `.pub`
    /// file); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PublicKey, Error> {
        let bytes = key_line(text, PUBLIC_TAG, origin)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::BadKey {
            origin: origin.to_owned(),
            message: "not a valid Ed25519 public key".into(),
        })?;
        if key.is_weak() {
            return Err(Error::BadKey {
                origin: origin.to_owned(),
                message: "a weak (small-order) Ed25519 key cannot be trusted".into(),
            });
        }
        Ok(PublicKey::from(key))
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<PublicKey, Error> {
        let text = read(path)?;
        PublicKey::parse(&text, &path.display().to_string())
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Whether `sig` is this key's signature of `doc`.
    fn verifies(&self, doc: &[u8], sig: &Signature) -> bool {
        self.key.verify_strict(doc, sig).is_ok()
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(key: VerifyingKey) -> Self {
        PublicKey {
            id: KeyId::of(&key),
            key,
        }
    }
}

/// The public key file's line (without newline).
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_TAG} {}", B64.encode(self.key.as_bytes()))
    }
}

/// An Ed25519 signing key. `Debug` prints `***`; the key bytes are wiped
/// when it is dropped.
pub struct SecretKey {
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl SecretKey {
    /// A new random key, from the operating system's random source.
    pub fn generate() -> Result<SecretKey, Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Random(e.to_string()))?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(SecretKey { key })
    }

    /// Parses `onprem-ed25519-secret <base64>` (the content of a `.key`
    /// file); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SecretKey, Error> {
        let mut seed = key_line(text, SECRET_TAG, origin)?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(SecretKey { key })
    }

    /// Reads a secret key file.
    pub fn load(path: &Path) -> Result<SecretKey, Error> {
        let text = read(path)?;
        SecretKey::parse(&text, &path.display().to_string())
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::from(self.key.verifying_key())
    }

    /// Signs `doc`: one signature line, `ed25519 <key-id> <base64>`
    /// (without newline).
    pub fn sign(&self, doc: &[u8]) -> String {
        let sig = self.key.sign(doc);
        format!(
            "{ALGORITHM} {} {}",
            self.public().id(),
            B64.encode(sig.to_bytes())
        )
    }

    /// Writes the secret key file, mode 0600; refuses to replace a file.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let line = format!("{SECRET_TAG} {}\n", B64.encode(self.key.to_bytes()));
        write_new(path, line.as_bytes(), 0o600)
    }
}

/// `keygen`: a new key pair written to `PREFIX.key` (0600) and
/// `PREFIX.pub` (0644); neither may exist yet. Returns the public key.
pub fn keygen(prefix: &Path) -> Result<PublicKey, Error> {
    let (secret_path, public_path) = (with_suffix(prefix, ".key"), with_suffix(prefix, ".pub"));
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(Error::Write {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists; not replacing a key",
                ),
            });
        }
    }
    let secret = SecretKey::generate()?;
    let public = secret.public();
    secret.write(&secret_path)?;
    write_new(&public_path, format!("{public}\n").as_bytes(), 0o644)?;
    Ok(public)
}

/// Where a bundle's detached signature lives: `<bundle>.sig`.
pub fn sig_path(bundle: &Path) -> PathBuf {
    with_suffix(bundle, ".sig")
}

/// Adds a signature line to a signature file's text: it replaces a line
/// by the same key, and is appended otherwise.
pub fn add_signature(sig_text: &str, line: &str) -> String {
    let id = line.split_whitespace().nth(1);
    let mut out = String::new();
    for l in sig_text.lines() {
        let mut w = l.split_whitespace();
        if w.next() == Some(ALGORITHM) && w.next() == id {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The public keys a node accepts bundles from (a list, so that keys can
/// rotate).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    /// No keys.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Trusts `key` (once: a key already trusted is not added twice).
    pub fn add(&mut self, key: PublicKey) {
        if !self.keys.iter().any(|k| k.id == key.id) {
            self.keys.push(key);
        }
    }

    /// Trusts the key of a public key file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), Error> {
        self.add(PublicKey::load(path)?);
        Ok(())
    }

    /// Trusts an inline key, `onprem-ed25519-public <base64>`.
    pub fn add_str(&mut self, text: &str) -> Result<(), Error> {
        self.add(PublicKey::parse(text, "inline key")?);
        Ok(())
    }

    /// Stops trusting the key with id `id`; whether it was trusted.
    pub fn remove(&mut self, id: &KeyId) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| &k.id != id);
        self.keys.len() != before
    }

    /// The ids of the trusted keys.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `doc` against the signature file's text: accepted when any
    /// signature line by any trusted key verifies; returns that key's id.
    ///
    /// When none does, the error says why, in this order: a malformed
    /// line, a trusted key's signature that fails (the document was
    /// tampered with), only unknown keys, or no signature at all.
    pub fn verify(&self, doc: &[u8], sig_text: &str) -> Result<KeyId, Error> {
        let lines = parse_sig(sig_text)?;
        if lines.is_empty() {
            return Err(Error::NoSignature);
        }
        if self.keys.is_empty() {
            return Err(Error::NoTrustedKeys);
        }
        let mut bad = None;
        let mut unknown = Vec::new();
        for (id, sig) in &lines {
            match self.keys.iter().find(|k| &k.id == id) {
                Some(k) if k.verifies(doc, sig) => return Ok(k.id.clone()),
                Some(k) => bad = bad.or_else(|| Some(k.id.clone())),
                None => unknown.push(id.clone()),
            }
        }
        match bad {
            Some(key) => Err(Error::BadSignature { key }),
            None => Err(Error::UnknownKeys {
                signers: unknown,
                trusted: self.ids(),
            }),
        }
    }
}

/// The ed25519 lines of a signature file.
fn parse_sig(text: &str) -> Result<Vec<(KeyId, Signature)>, Error> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| Error::Malformed {
            line: n + 1,
            message,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != 3 {
            return Err(bad(format!(
                "expected `{ALGORITHM} <key-id> <base64 signature>`, got {} word(s)",
                words.len()
            )));
        }
        if words[0] != ALGORITHM {
            // Another algorithm, from a newer signer: not ours to judge.
            continue;
        }
        let id = KeyId::parse(words[1])
            .ok_or_else(|| bad(format!("{:?} is not a key id (16 hex digits)", words[1])))?;
        let bytes = B64
            .decode(words[2])
            .map_err(|e| bad(format!("the signature is not base64: {e}")))?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|b: Vec<u8>| {
            bad(format!(
                "an Ed25519 signature has 64 bytes, this one {}",
                b.len()
            ))
        })?;
        out.push((id, Signature::from_bytes(&bytes)));
    }
    Ok(out)
}

/// The 32 bytes of a `<tag> <base64>` key file.
fn key_line(text: &str, tag: &str, origin: &str) -> Result<[u8; 32], Error> {
    let bad = |message: String| Error::BadKey {
        origin: origin.to_owned(),
        message,
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines
        .next()
        .ok_or_else(|| bad(format!("empty; expected `{tag} <base64>`")))?;
    if lines.next().is_some() {
        return Err(bad("more than one key line".into()));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [t, b64] if *t == tag => {
            let bytes = B64
                .decode(b64)
                .map_err(|e| bad(format!("the key is not base64: {e}")))?;
            bytes.try_into().map_err(|b: Vec<u8>| {
                bad(format!("an Ed25519 key has 32 bytes, this one {}", b.len()))
            })
        }
        [t, ..] if *t != tag && (*t == SECRET_TAG || *t == PUBLIC_TAG) => {
            Err(bad(format!("this is a {t} key, expected {tag}")))
        }
        _ => Err(bad(format!("expected `{tag} <base64>`"))),
    }
}

fn read(path: &Path) -> Result<String, Error> {
    crate::limits::read_regular_text(path, crate::limits::MAX_SMALL_FILE_BYTES).map_err(|source| {
        Error::Read {
            path: path.to_owned(),
            source,
        }
    })
}

/// Writes a new file with `mode`, synced; fails if it exists.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// `path` with `suffix` appended to its file name (`a.yaml` → `a.yaml.sig`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const DOC: &[u8] = b"apiVersion: onprem/v1\nkind: Bundle\n";

    fn key() -> SecretKey {
        SecretKey::generate().unwrap()
    }

    fn trusting(keys: &[&SecretKey]) -> TrustedKeys {
        let mut t = TrustedKeys::new();
        for k in keys {
            t.add(k.public());
        }
        t
    }

    #[test]
    fn can_sign_and_verify() {
        let k = key();
        let sig = k.sign(DOC);
        assert!(sig.starts_with(&format!("ed25519 {} ", k.public().id())));
        assert_eq!(trusting(&[&k]).verify(DOC, &sig).unwrap(), *k.public().id());
    }

    #[test]
    fn returns_bad_signature_when_doc_tampered() {
        let k = key();
        let sig = k.sign(DOC);
        let mut doc = DOC.to_vec();
        doc[3] ^= 1;
        let err = trusting(&[&k]).verify(&doc, &sig).unwrap_err();
        assert!(matches!(err, Error::BadSignature { ref key } if key == k.public().id()));
        assert!(err.to_string().contains("bad signature by key"), "{err}");
        assert!(err.to_string().contains("tampered"), "{err}");
    }

    #[test]
    fn returns_unknown_keys_when_signer_untrusted() {
        let (signer, trusted) = (key(), key());
        let err = trusting(&[&trusted])
            .verify(DOC, &signer.sign(DOC))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown key(s)"), "{msg}");
        assert!(msg.contains(signer.public().id().as_str()), "{msg}");
        assert!(msg.contains(trusted.public().id().as_str()), "{msg}");
    }

    #[test]
    fn rotation_accepts_new_key_and_drops_old() {
        let (old, new) = (key(), key());
        let mut trusted = trusting(&[&old, &new]);
        // Signed by the new key only: accepted while both are trusted.
        assert_eq!(
            trusted.verify(DOC, &new.sign(DOC)).unwrap(),
            *new.public().id()
        );
        // Signed by both (the rollover period): accepted.
        let both = add_signature(&old.sign(DOC), &new.sign(DOC));
        assert_eq!(both.lines().count(), 2);
        assert!(trusted.verify(DOC, &both).is_ok());
        // The old key is retired.
        assert!(trusted.remove(old.public().id()));
        assert!(trusted.verify(DOC, &both).is_ok());
        let err = trusted.verify(DOC, &old.sign(DOC)).unwrap_err();
        assert!(matches!(err, Error::UnknownKeys { .. }), "{err}");
    }

    #[test]
    fn any_good_signature_wins_over_a_bad_one() {
        let (a, b) = (key(), key());
        let stale = a.sign(b"an older revision");
        let text = add_signature(&stale, &b.sign(DOC));
        assert_eq!(
            trusting(&[&a, &b]).verify(DOC, &text).unwrap(),
            *b.public().id()
        );
    }

    #[test]
    fn add_signature_replaces_the_same_keys_line() {
        let k = key();
        let text = add_signature(&k.sign(b"one"), &k.sign(DOC));
        assert_eq!(text.lines().count(), 1);
        assert!(trusting(&[&k]).verify(DOC, &text).is_ok());
    }

    #[test]
    fn returns_errors_for_malformed_input() {
        let k = key();
        let t = trusting(&[&k]);
        let id = k.public().id().to_string();
        let cases: &[(&str, &str)] = &[
            ("", "no signature"),
            ("# just a comment\n\n", "no signature"),
            ("ed448 abc def\n", "no signature"),
            ("ed25519 onlytwo\n", "malformed signature line 1"),
            (
                "\ned25519 xyz AAAA\n",
                "malformed signature line 2: \"xyz\" is not a key id",
            ),
            (&format!("ed25519 {id} !!!\n"), "not base64"),
            (&format!("ed25519 {id} AAAA\n"), "64 bytes, this one 3"),
        ];
        for (text, want) in cases {
            let err = t.verify(DOC, text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let err = TrustedKeys::new().verify(DOC, &k.sign(DOC)).unwrap_err();
        assert!(matches!(err, Error::NoTrustedKeys));
    }

    #[test]
    fn returns_bad_key_for_malformed_key_text() {
        let k = key();
        let public = k.public().to_string();
        assert_eq!(PublicKey::parse(&public, "x").unwrap(), k.public());
        for (text, want) in [
            ("", "empty"),
            (
                "onprem-ed25519-public",
                "expected `onprem-ed25519-public <base64>`",
            ),
            ("onprem-ed25519-public AAAA", "32 bytes, this one 3"),
            ("onprem-ed25519-public ***", "not base64"),
            (
                "onprem-ed25519-secret AAAA",
                "this is a onprem-ed25519-secret key",
            ),
            ("ssh-ed25519 AAAA", "expected `onprem-ed25519-public"),
        ] {
            let err = PublicKey::parse(text, "k.pub").unwrap_err().to_string();
            assert!(err.starts_with("k.pub: "), "{err}");
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let err = SecretKey::parse(&public, "k.key").unwrap_err().to_string();
        assert!(err.contains("expected onprem-ed25519-secret"), "{err}");
    }

    #[test]
    fn secret_key_debug_is_masked() {
        assert_eq!(format!("{:?}", key()), "***");
    }

    #[test]
    fn can_write_keys_and_load_them_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("signer");
        let public = keygen(&prefix).unwrap();
        let key_file = dir.path().join("signer.key");
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let secret = SecretKey::load(&key_file).unwrap();
        assert_eq!(secret.public(), public);
        let mut t = TrustedKeys::new();
        t.add_file(&dir.path().join("signer.pub")).unwrap();
        assert!(t.verify(DOC, &secret.sign(DOC)).is_ok());
        // Never replaces a key.
        let err = keygen(&prefix).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn key_id_is_sha256_prefix_of_public_key() {
        let k = key();
        let p = k.public();
        let sum = Sha256::digest(p.key.as_bytes());
        let hex = crate::bundle::validate::hex(&sum);
        assert_eq!(p.id().as_str(), &hex[..16]);
    }
}
