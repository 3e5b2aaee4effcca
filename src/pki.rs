//! The control plane's keys and certificates, and the TLS configurations
//! of both ends (below both the agent and the control plane, as DESIGN.md's
//! layers put TLS and PKI; the control plane names it `controlplane::pki`).
//!
//! On first start the control plane creates, in its state directory:
//! `ca.crt`/`ca.key` (its certificate authority, ECDSA P-256, ten
//! years), `server.crt`/`server.key` (its serving certificate, issued by
//! the CA with the configured names; re-issued when the names change) and
//! `bundle-signing.key`/`.pub` (the Ed25519 key bundles are signed with).
//! Agents send a certificate signing request at enrolment and get a
//! client certificate from the CA ([`Pki::issue_client`]); the control
//! plane knows them by the SHA-256 of that certificate.
//!
//! Clients pin the CA: the CLI by its fingerprint at `onprem login`
//! ([`pinned_ca_verifier`]), the agent by the CA its enrolment returned.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest as _, Sha256};

use crate::bundle::sign::SecretKey;
use crate::bundle::validate::hex;

/// How long a client certificate is valid, days.
pub const CLIENT_CERT_DAYS: i64 = 365;
/// How long the CA is valid, days.
pub const CA_DAYS: i64 = 3650;
/// How long the serving certificate is valid, days.
pub const SERVER_CERT_DAYS: i64 = 825;

/// Why keys or certificates could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("{what}: {message}")]
    Cert {
        /// What was being made or read.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The bundle-signing key.
    #[error("bundle-signing key: {0}")]
    Signing(#[from] crate::bundle::sign::Error),
    /// A TLS configuration could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

fn cert_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Error {
    let what = what.into();
    move |e| Error::Cert {
        what,
        message: e.to_string(),
    }
}

/// The lower-case hex SHA-256 of a certificate's DER: how the control
/// plane knows an agent, and how a CLI pins the CA (`sha256:<hex>`).
pub fn fingerprint(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

/// The CA, the serving certificate and the bundle-signing key.
pub struct Pki {
    dir: PathBuf,
    ca_key: KeyPair,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    /// The key bundles are signed with.
    pub signing: SecretKey,
    /// Whether this start created the CA.
    pub created: bool,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("ca", &self.ca_fingerprint())
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

pub(crate) fn serial() -> Result<SerialNumber, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Cert {
        what: "serial number".into(),
        message: e.to_string(),
    })?;
    b[0] &= 0x7f; // positive
    Ok(SerialNumber::from_slice(&b))
}

fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        op: "reading",
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to `path` with `mode`, atomically
/// ([`crate::bundle::store::write_atomic`]).
pub fn write_atomic(path: &Path, text: &[u8], mode: u32) -> Result<(), Error> {
    crate::bundle::store::write_atomic(path, text, mode).map_err(|source| Error::Io {
        op: "writing",
        path: path.to_owned(),
        source,
    })
}

/// PEM of one DER object.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The certificates in a PEM text.
pub fn parse_certs(text: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject as _;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(text.as_bytes()).collect();
    let certs = certs.map_err(|e| Error::Cert {
        what: what.to_owned(),
        message: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(Error::Cert {
            what: what.to_owned(),
            message: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

/// A private key from PEM.
pub fn parse_key(text: &str, what: &str) -> Result<PrivateKeyDer<'static>, Error> {
    use rustls::pki_types::pem::PemObject as _;
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| Error::Cert {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "onprem control plane CA");
    p.distinguished_name
        .push(DnType::OrganizationName, "onprem");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now() - time::Duration::hours(1);
    p.not_after = now() + time::Duration::days(CA_DAYS);
    p
}

/// The subject alternative names of a serving certificate: each is an IP
/// address or a DNS name.
pub(crate) fn sans(names: &[String]) -> Vec<SanType> {
    names
        .iter()
        .filter_map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Some(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().ok().map(SanType::DnsName),
        })
        .collect()
}

impl Pki {
    /// Loads the keys and certificates from `dir`, creating what is
    /// missing; the serving certificate carries `names` (re-issued when
    /// they changed).
    pub fn open(dir: &Path, names: &[String]) -> Result<Pki, Error> {
        let ca_crt = dir.join("ca.crt");
        let ca_key_path = dir.join("ca.key");
        let created = !ca_crt.exists();
        let (ca_key, ca_pem) = if created {
            let key = KeyPair::generate().map_err(cert_err("CA key"))?;
            let mut params = ca_params();
            params.serial_number = Some(serial()?);
            let cert = params
                .self_signed(&key)
                .map_err(cert_err("CA certificate"))?;
            write_atomic(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_atomic(&ca_crt, cert.pem().as_bytes(), 0o644)?;
            (key, cert.pem())
        } else {
            let key = KeyPair::from_pem(&read(&ca_key_path)?)
                .map_err(cert_err(format!("{}", ca_key_path.display())))?;
            (key, read(&ca_crt)?)
        };
        let ca_der = parse_certs(&ca_pem, &ca_crt.display().to_string())?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Cert {
                what: ca_crt.display().to_string(),
                message: "empty".into(),
            })?;

        let signing_path = dir.join("bundle-signing.key");
        let signing = if signing_path.exists() {
            SecretKey::load(&signing_path)?
        } else {
            let k = SecretKey::generate()?;
            k.write(&signing_path)?;
            write_atomic(
                &dir.join("bundle-signing.pub"),
                format!("{}\n", k.public()).as_bytes(),
                0o644,
            )?;
            k
        };

        let mut pki = Pki {
            dir: dir.to_owned(),
            ca_key,
            ca_pem,
            ca_der,
            server_chain: Vec::new(),
            server_key: Vec::new(),
            signing,
            created,
        };
        pki.server_cert(names)?;
        Ok(pki)
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, Error> {
        Issuer::from_ca_cert_der(&self.ca_der, &self.ca_key).map_err(cert_err("CA certificate"))
    }

    /// Loads the serving certificate, or issues one for `names`.
    fn server_cert(&mut self, names: &[String]) -> Result<(), Error> {
        let crt = self.dir.join("server.crt");
        let key = self.dir.join("server.key");
        let names_file = self.dir.join("server.names");
        let wanted = names.join("\n");
        let same = fs::read_to_string(&names_file).is_ok_and(|n| n == wanted);
        if !(same && crt.exists() && key.exists()) {
            let kp = KeyPair::generate().map_err(cert_err("server key"))?;
            let mut p = CertificateParams::default();
            p.distinguished_name.push(
                DnType::CommonName,
                names.first().map_or("onprem control plane", String::as_str),
            );
            p.subject_alt_names = sans(names);
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.not_before = now() - time::Duration::hours(1);
            p.not_after = now() + time::Duration::days(SERVER_CERT_DAYS);
            p.serial_number = Some(serial()?);
            let cert = p
                .signed_by(&kp, &self.issuer()?)
                .map_err(cert_err("server certificate"))?;
            write_atomic(&key, kp.serialize_pem().as_bytes(), 0o600)?;
            write_atomic(&crt, cert.pem().as_bytes(), 0o644)?;
            write_atomic(&names_file, wanted.as_bytes(), 0o644)?;
        }
        let mut chain = parse_certs(&read(&crt)?, &crt.display().to_string())?;
        chain.truncate(1);
        // The CA travels with the chain, so that a client can pin it by
        // fingerprint at login.
        chain.push(self.ca_der.clone());
        self.server_chain = chain;
        self.server_key = read(&key)?.into_bytes();
        Ok(())
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `sha256:<hex>` of the CA certificate.
    pub fn ca_fingerprint(&self) -> String {
        format!("sha256:{}", fingerprint(&self.ca_der))
    }

    /// Issues an agent's client certificate for the key in `csr_pem`
    /// (whose signature proves the agent holds the key); the subject is
    /// the device id, whatever the request asked for. Returns the PEM and
    /// its fingerprint.
    pub fn issue_client(&self, csr_pem: &str, device_id: &str) -> Result<(String, String), Error> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(cert_err("certificate signing request"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, device_id);
        p.distinguished_name
            .push(DnType::OrganizationName, "onprem agents");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = now() - time::Duration::hours(1);
        p.not_after = now() + time::Duration::days(CLIENT_CERT_DAYS);
        p.serial_number = Some(serial()?);
        let cert = p
            .signed_by(&csr.public_key, &self.issuer()?)
            .map_err(cert_err("client certificate"))?;
        Ok((cert.pem(), fingerprint(cert.der())))
    }

    /// The server's TLS configuration: HTTP/2 and HTTP/1.1; a client
    /// certificate is asked for and, when given, must chain to the CA
    /// (agents); clients without one (the CLI, enrolment) are let in and
    /// authenticate otherwise.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::Cert {
            what: "client verifier".into(),
            message: e.to_string(),
        })?;
        let key = parse_key(&String::from_utf8_lossy(&self.server_key), "server.key")?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // No session tickets: every agent holds one long connection, and
        // ticket keys are state the control plane would have to keep.
        cfg.send_tls13_tickets = 0;
        Ok(cfg)
    }
}

/// A client configuration trusting `ca_pem` only, with a client
/// certificate when given; ALPN h2 (gRPC).
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in parse_certs(ca_pem, "CA certificate")? {
        roots.add(c)?;
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((cert_pem, key_pem)) => b.with_client_auth_cert(
            parse_certs(cert_pem, "client certificate")?,
            parse_key(key_pem, "client key")?,
        )?,
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// A new key pair and a certificate signing request for it (an agent
/// enrolling): `(key PEM, CSR PEM)`.
pub fn new_csr(name: &str) -> Result<(String, String), Error> {
    let kp = KeyPair::generate().map_err(cert_err("agent key"))?;
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    let csr = p
        .serialize_request(&kp)
        .map_err(cert_err("certificate signing request"))?;
    let csr_pem = csr.pem().map_err(cert_err("certificate signing request"))?;
    Ok((kp.serialize_pem(), csr_pem))
}

/// A server-certificate verifier that trusts the CA whose SHA-256 is
/// `pin` when the server presents it in its chain (as the control plane
/// does): `onprem login --ca-fingerprint`. The CA it saw is kept, so that
/// the CLI can store it and trust it alone from then on.
#[derive(Debug)]
pub struct PinnedCa {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The CA certificate that matched, once a handshake verified.
    pub seen: std::sync::Mutex<Option<CertificateDer<'static>>>,
}

/// A [`PinnedCa`] for `sha256:<hex>` (or bare hex).
pub fn pinned_ca_verifier(pin: &str) -> Arc<PinnedCa> {
    let pin = pin
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    Arc::new(PinnedCa {
        pin,
        provider: Arc::new(rustls::crypto::ring::default_provider()),
        seen: std::sync::Mutex::new(None),
    })
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the server's certificate chain holds no CA with fingerprint sha256:{}",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let ok = inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)?;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(ca.clone().into_owned());
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn creates_once_and_issues_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let a = Pki::open(dir.path(), &names).unwrap();
        assert!(a.created);
        let b = Pki::open(dir.path(), &names).unwrap();
        assert!(!b.created);
        assert_eq!(a.ca_fingerprint(), b.ca_fingerprint());
        assert_eq!(a.signing.public(), b.signing.public());
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let (key, csr) = new_csr("node-1").unwrap();
        let (cert, fp) = b.issue_client(&csr, "d0000000000000000001").unwrap();
        assert_eq!(fp.len(), 64);
        // Both ends build their configurations from what was issued.
        b.server_config().unwrap();
        client_config(b.ca_pem(), Some((&cert, &key))).unwrap();
        // A CSR whose signature does not match is refused.
        let tampered = csr.replacen("A", "B", 1);
        assert!(b.issue_client(&tampered, "x").is_err());
    }
}
