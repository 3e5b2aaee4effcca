//! The agent's identity with its control plane, and enrolment.
//!
//! Kept in `<state>/identity/`: `key.pem` (0600, made on the node, never
//! sent), `cert.pem` (the client certificate), `ca.pem` (the control
//! plane's CA, pinned) and `device.json` (id, name, URL and the pinned
//! bundle-signing keys).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::connect;
use crate::bundle::sign::{PublicKey, TrustedKeys};
use crate::pki;
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;

/// Why enrolment or the identity failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Files.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// Connection.
    #[error(transparent)]
    Connect(#[from] connect::Error),
    /// The control plane said no.
    #[error("enrolment refused by the control plane: {0}")]
    Refused(String),
    /// Something in the answer or on disk is wrong.
    #[error("{0}")]
    Bad(String),
}

/// How the agent trusts the control plane before it has its CA.
#[derive(Debug, Clone)]
pub enum CaTrust {
    /// The CA certificate, PEM (`--ca-file`).
    Pem(String),
    /// The CA's SHA-256 fingerprint (`--ca-fingerprint sha256:…`).
    Fingerprint(String),
}

/// What the agent holds after enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The device id.
    pub device_id: String,
    /// The device name.
    pub device_name: String,
    /// The control plane's URL.
    pub url: String,
    /// Bundle-signing public keys (`onprem-ed25519-public …`).
    pub bundle_keys: Vec<String>,
    /// Client certificate, PEM.
    #[serde(skip)]
    pub cert_pem: String,
    /// Private key, PEM.
    #[serde(skip)]
    pub key_pem: String,
    /// The CA, PEM.
    #[serde(skip)]
    pub ca_pem: String,
}

fn dir_of(state_dir: &Path) -> PathBuf {
    state_dir.join("identity")
}

impl Identity {
    /// Loads the identity from `<state_dir>/identity/`, if there is one.
    pub fn load(state_dir: &Path) -> Result<Option<Identity>, Error> {
        let dir = dir_of(state_dir);
        let meta = dir.join("device.json");
        if !meta.exists() {
            return Ok(None);
        }
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| Error::Bad(format!("{}: {e}", dir.join(name).display())))
        };
        let mut id: Identity = serde_json::from_str(&read("device.json")?)
            .map_err(|e| Error::Bad(format!("{}: {e}", meta.display())))?;
        id.cert_pem = read("cert.pem")?;
        id.key_pem = read("key.pem")?;
        id.ca_pem = read("ca.pem")?;
        Ok(Some(id))
    }

    /// Writes it (key 0600), each file atomically; `device.json` last, so
    /// a half-written identity is not taken for a whole one.
    pub fn save(&self, state_dir: &Path) -> Result<(), Error> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = dir_of(state_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::Bad(format!("creating {}: {e}", dir.display())))?;
        pki::write_atomic(&dir.join("key.pem"), self.key_pem.as_bytes(), 0o600)?;
        pki::write_atomic(&dir.join("cert.pem"), self.cert_pem.as_bytes(), 0o644)?;
        pki::write_atomic(&dir.join("ca.pem"), self.ca_pem.as_bytes(), 0o644)?;
        let meta = serde_json::to_vec_pretty(self).map_err(|e| Error::Bad(e.to_string()))?;
        pki::write_atomic(&dir.join("device.json"), &meta, 0o644)?;
        Ok(())
    }

    /// The mutual-TLS configuration of the session.
    pub fn tls(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        Ok(Arc::new(pki::client_config(
            &self.ca_pem,
            Some((&self.cert_pem, &self.key_pem)),
        )?))
    }

    /// The pinned bundle-signing keys.
    pub fn trusted_keys(&self) -> Result<TrustedKeys, Error> {
        let mut keys = TrustedKeys::new();
        for (i, k) in self.bundle_keys.iter().enumerate() {
            let key = PublicKey::parse(k, &format!("bundle key {i} of the identity"))
                .map_err(|e| Error::Bad(e.to_string()))?;
            keys.add(key);
        }
        if keys.is_empty() {
            return Err(Error::Bad("the identity pins no bundle-signing key".into()));
        }
        Ok(keys)
    }
}

/// Enrols with the control plane at `url`: returns the identity (not yet
/// saved).
pub async fn enrol(
    url: &str,
    token: &str,
    trust: &CaTrust,
    name: &str,
    facts: pb::HardwareFacts,
) -> Result<Identity, Error> {
    let (key_pem, csr_pem) = pki::new_csr(name)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (tls, pin) = match trust {
        CaTrust::Pem(pem) => (pki::client_config(pem, None)?, None),
        CaTrust::Fingerprint(fp) => {
            let v = pki::pinned_ca_verifier(fp);
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(pki::Error::Tls)?
                .dangerous()
                .with_custom_certificate_verifier(v)
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"h2".to_vec()];
            (
                cfg,
                Some(fp.trim().trim_start_matches("sha256:").to_ascii_lowercase()),
            )
        }
    };
    let ch = connect::channel(url, Arc::new(tls), Duration::from_secs(10))?;
    let mut client = AgentServiceClient::new(ch);
    let resp = client
        .enrol(pb::EnrolRequest {
            token: token.trim().to_owned(),
            csr_pem,
            facts: Some(facts),
            name: name.to_owned(),
        })
        .await
        .map_err(|s| {
            if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::Unknown {
                Error::Connect(connect::Error::Connect {
                    url: url.to_owned(),
                    message: s.message().to_owned(),
                })
            } else {
                Error::Refused(s.message().to_owned())
            }
        })?
        .into_inner();
    // The CA handed back must be the one the agent trusted for the call.
    let ca = pki::parse_certs(&resp.ca_pem, "CA from the control plane")?;
    let ca_fp = ca.first().map(|c| pki::fingerprint(c)).unwrap_or_default();
    match (&pin, trust) {
        (Some(p), _) if *p != ca_fp => {
            return Err(Error::Bad(format!(
                "the control plane's CA is sha256:{ca_fp}, not the pinned sha256:{p}"
            )));
        }
        (None, CaTrust::Pem(pem)) => {
            let mine = pki::parse_certs(pem, "CA file")?;
            if mine.first().map(|c| pki::fingerprint(c)) != Some(ca_fp.clone()) {
                return Err(Error::Bad(
                    "the control plane's CA is not the one in --ca-file".into(),
                ));
            }
        }
        _ => {}
    }
    Ok(Identity {
        device_id: resp.device_id,
        device_name: resp.device_name,
        url: url.to_owned(),
        bundle_keys: resp.bundle_keys,
        cert_pem: resp.certificate_pem,
        key_pem,
        ca_pem: resp.ca_pem,
    })
}

/// The machine's own addresses: IPv4 from the kernel's routing trie
/// (`/proc/net/fib_trie`: each `/32 host LOCAL` leaf), global IPv6 from
/// `/proc/net/if_inet6` (scope 00); loopback and link-local left out,
/// each once, in the kernel's order.
pub fn addresses(fib_trie: &str, if_inet6: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<&str> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if t.parse::<std::net::Ipv4Addr>().is_ok() {
            last = Some(t);
        } else if t == "/32 host LOCAL" {
            if let Some(a) = last.and_then(|a| a.parse::<std::net::Ipv4Addr>().ok()) {
                let s = a.to_string();
                if !a.is_loopback() && !a.is_link_local() && !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    for line in if_inet6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // address, ifindex, prefix length, scope, flags, name
        if f.len() < 6 || f[3] != "00" || f[0].len() != 32 {
            continue;
        }
        let mut bytes = [0u8; 16];
        let ok = (0..16).all(|i| {
            u8::from_str_radix(&f[0][2 * i..2 * i + 2], 16)
                .map(|b| bytes[i] = b)
                .is_ok()
        });
        if ok {
            let s = std::net::Ipv6Addr::from(bytes).to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// This machine's facts, read from /proc, /sys and the device tree.
pub fn facts(root: &Path) -> pb::HardwareFacts {
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .map(|s| {
                s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let model = {
        let dt = read("proc/device-tree/model");
        if dt.is_empty() {
            read("sys/class/dmi/id/product_name")
        } else {
            dt
        }
    };
    let manufacturer = if model.starts_with("Raspberry Pi") {
        "Raspberry Pi".to_owned()
    } else if model.contains("Jetson") || model.contains("NVIDIA") {
        "NVIDIA".to_owned()
    } else {
        read("sys/class/dmi/id/sys_vendor")
    };
    let serial = {
        let s = read("proc/device-tree/serial-number");
        if s.is_empty() {
            read("sys/class/dmi/id/product_serial")
        } else {
            s
        }
    };
    let uuid = {
        let u = read("sys/class/dmi/id/product_uuid");
        if u.is_empty() {
            read("etc/machine-id")
        } else {
            u
        }
    };
    let cpuinfo = read("proc/cpuinfo");
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u32;
    let memory_bytes = read("proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let arch = read("proc/sys/kernel/arch");
    pb::HardwareFacts {
        manufacturer,
        model,
        serial,
        uuid,
        hostname: read("proc/sys/kernel/hostname"),
        addresses: addresses(&read("proc/net/fib_trie"), &read("proc/net/if_inet6")),
        arch: if arch.is_empty() {
            std::env::consts::ARCH.to_owned()
        } else {
            arch
        },
        cores,
        memory_bytes,
        agent_version: crate::VERSION.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_the_routing_trie_and_if_inet6() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/24 2 0 2\n        |-- 10.0.0.0\n           /24 link UNICAST\n        |-- 10.0.0.5\n           /32 host LOCAL\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\nLocal:\n        |-- 10.0.0.5\n           /32 host LOCAL\n        |-- 169.254.1.1\n           /32 host LOCAL\n";
        let v6 = "fe800000000000000000000000000001 02 40 20 80 eth0\n20010db8000000000000000000000005 02 40 00 00 eth0\n00000000000000000000000000000001 01 80 10 80 lo\n";
        assert_eq!(addresses(trie, v6), vec!["10.0.0.5", "2001:db8::5"]);
        assert!(addresses("", "").is_empty());
    }

    #[test]
    fn this_machines_facts_name_its_addresses() {
        let f = facts(Path::new("/"));
        for a in &f.addresses {
            let ip: std::net::IpAddr = a.parse().unwrap_or_else(|e| panic!("{a}: {e}"));
            assert!(!ip.is_loopback(), "{a}");
        }
        assert!(f.cores > 0);
    }
}
