//! The Redfish service's TLS certificate: the bundle's files
//! (`spec.redfish.tls`), or a self-signed one made at first start and
//! kept in the state directory (`redfish/tls.crt`, `redfish/tls.key`,
//! mode 0600), so that a client that pinned it keeps trusting it across
//! restarts. It is made again when the names it should carry change.

use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

use crate::bundle::schema::RedfishTls;
use crate::pki::{self, Error};

/// Days a self-signed certificate is valid.
pub const SELF_SIGNED_DAYS: i64 = 3650;

/// The certificate chain and key (PEM) to serve.
pub fn load(
    tls: Option<&RedfishTls>,
    state_dir: Option<&Path>,
    names: &[String],
) -> Result<(String, String), Error> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| Error::Io {
            op: "reading",
            path: p.to_owned(),
            source,
        })
    };
    if let Some(t) = tls {
        return Ok((read(&t.cert_file)?, read(&t.key_file)?));
    }
    let Some(dir) = state_dir else {
        // Nowhere to keep one: a fresh certificate each start.
        return self_signed(names);
    };
    let dir = dir.join("redfish");
    let crt = dir.join("tls.crt");
    let key = dir.join("tls.key");
    let names_file = dir.join("tls.names");
    let wanted = names.join("\n");
    if std::fs::read_to_string(&names_file).is_ok_and(|n| n == wanted) {
        if let (Ok(c), Ok(k)) = (read(&crt), read(&key)) {
            return Ok((c, k));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        op: "creating",
        path: dir.clone(),
        source,
    })?;
    let (c, k) = self_signed(names)?;
    pki::write_atomic(&key, k.as_bytes(), 0o600)?;
    pki::write_atomic(&crt, c.as_bytes(), 0o644)?;
    pki::write_atomic(&names_file, wanted.as_bytes(), 0o644)?;
    Ok((c, k))
}

/// A new self-signed certificate for `names`.
pub fn self_signed(names: &[String]) -> Result<(String, String), Error> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: rcgen::Error| Error::Cert {
            what,
            message: e.to_string(),
        }
    };
    let kp = KeyPair::generate().map_err(err("Redfish key"))?;
    let mut p = CertificateParams::default();
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("onprem Redfish", String::as_str),
    );
    p.distinguished_name
        .push(DnType::OrganizationName, "onprem Redfish service");
    p.subject_alt_names = pki::sans(names);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = pki::now() - time::Duration::hours(1);
    p.not_after = pki::now() + time::Duration::days(SELF_SIGNED_DAYS);
    p.serial_number = Some(pki::serial()?);
    let cert = p.self_signed(&kp).map_err(err("Redfish certificate"))?;
    Ok((cert.pem(), kp.serialize_pem()))
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1) for the chain and
/// key.
pub fn server_config(chain_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, Error> {
    let chain = pki::parse_certs(chain_pem, "spec.redfish.tls.certFile")?;
    let key = pki::parse_key(key_pem, "spec.redfish.tls.keyFile")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn self_signed_is_kept_and_remade_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let (c1, k1) = load(None, Some(dir.path()), &names).unwrap();
        let (c2, _) = load(None, Some(dir.path()), &names).unwrap();
        assert_eq!(c1, c2);
        server_config(&c1, &k1).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("redfish/tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (c3, _) = load(None, Some(dir.path()), &["node1".to_owned()]).unwrap();
        assert_ne!(c1, c3);
    }

    #[test]
    fn bundle_files_that_are_missing_or_not_pem_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let t = RedfishTls {
            cert_file: dir.path().join("nope.crt"),
            key_file: dir.path().join("nope.key"),
        };
        let e = load(Some(&t), None, &[]).unwrap_err().to_string();
        assert!(e.contains("nope.crt"), "{e}");
        let e = server_config("junk", "junk").err().unwrap().to_string();
        assert!(e.contains("spec.redfish.tls.certFile"), "{e}");
    }
}
