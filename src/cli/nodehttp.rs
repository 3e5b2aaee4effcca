//! HTTP(S) requests to a device's local services through a tunnel, with
//! no listening port: `onprem curl --device NAME URL`, `onprem reset
//! device/NAME --type …` and the Redfish section of `onprem describe
//! device --redfish` (the node's Redfish service, reached as a DCIM
//! would, with a Redfish account of the node's bundle).
//!
//! The TLS inside the tunnel is verified against `--cacert` when given.
//! Without it the node's (usually self-signed) certificate is accepted:
//! the tunnel itself already ends at that node, authenticated both ways
//! (the CLI's pinned control plane, the agent's client certificate).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;

use super::fleet::{Conn, code, exit};
use super::tunnel::device_name;
use crate::tunnel::{DEVICE, Limits, PORT};

/// The Redfish service's default port (`spec.redfish.listen`).
pub const REDFISH_PORT: u16 = 8443;
/// How long one request through a tunnel may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A request to a device's local service.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// HTTPS (else plain HTTP).
    pub tls: bool,
    /// PEM of the CA (or the certificate itself) to verify against.
    pub cacert: Option<String>,
}

/// Its answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(cacert: Option<&str>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let cfg = match cacert {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in crate::controlplane::pki::parse_certs(pem, "--cacert")? {
                roots.add(c)?;
            }
            b.with_root_certificates(roots).with_no_client_auth()
        }
        None => b
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

fn tunnel_error(s: &tonic::Status, device: &str, port: u16, url: &str) -> anyhow::Error {
    use tonic::Code;
    let m = format!("device/{device}:{port}: {}", s.message());
    match s.code() {
        Code::PermissionDenied | Code::FailedPrecondition => exit(code::FORBIDDEN, m),
        Code::NotFound => exit(code::NOT_FOUND, m),
        Code::Unauthenticated => exit(code::UNAUTHENTICATED, m),
        Code::Unavailable | Code::DeadlineExceeded => {
            exit(code::UNREACHABLE, format!("{m} (control plane {url})"))
        }
        _ => exit(code::INTERNAL, m),
    }
}

/// Sends one request to `port` on `device` through a tunnel.
pub(crate) async fn request(
    c: &Conn,
    device: &str,
    port: u16,
    r: Request,
) -> anyhow::Result<Response> {
    let (near, far) = tokio::io::duplex(256 * 1024);
    let (frd, fwr) = tokio::io::split(far);
    let (out, pump) = crate::tunnel::io(frd, fwr, Limits::default());
    let mut req = tonic::Request::new(out);
    let md = req.metadata_mut();
    let bad = |_| {
        exit(
            code::USAGE,
            "the token or device name is not a valid header",
        )
    };
    md.insert(
        "authorization",
        format!("Bearer {}", c.login.token.trim())
            .parse()
            .map_err(bad)?,
    );
    md.insert(DEVICE, device.parse().map_err(bad)?);
    md.insert(PORT, port.into());
    let mut client = c.client.clone();
    let inbound = client
        .tunnel(req)
        .await
        .map_err(|s| tunnel_error(&s, device, port, &c.login.url))?
        .into_inner();
    tokio::spawn(pump.run(inbound));
    let send = async {
        if r.tls {
            let tls = tls_config(r.cacert.as_deref())?;
            let name = ServerName::try_from("localhost")?;
            let s = tokio_rustls::TlsConnector::from(tls)
                .connect(name, near)
                .await
                .map_err(|e| {
                    exit(
                        code::UNREACHABLE,
                        format!("TLS with device/{device}:{port}: {e}"),
                    )
                })?;
            exchange(hyper_util::rt::TokioIo::new(s), &r).await
        } else {
            exchange(hyper_util::rt::TokioIo::new(near), &r).await
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, send)
        .await
        .map_err(|_| {
            exit(
                code::UNREACHABLE,
                format!(
                    "device/{device}:{port}: no answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
        })?
}

async fn exchange<T>(io: T, r: &Request) -> anyhow::Result<Response>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| exit(code::UNREACHABLE, format!("HTTP through the tunnel: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = http::Request::builder()
        .method(r.method.as_str())
        .uri(r.path.as_str())
        .header("Host", "localhost")
        .header("User-Agent", format!("onprem/{}", crate::VERSION));
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b
        .body(http_body_util::Full::new(bytes_of(&r.body)))
        .map_err(|e| exit(code::USAGE, format!("the request: {e}")))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| exit(code::UNREACHABLE, format!("HTTP through the tunnel: {e}")))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| exit(code::UNREACHABLE, format!("reading the answer: {e}")))?
        .to_bytes()
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn bytes_of(b: &[u8]) -> hyper::body::Bytes {
    hyper::body::Bytes::copy_from_slice(b)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `onprem curl` options.
#[derive(Debug, clap::Args)]
pub struct CurlOptions {
    /// The device (`NAME` or `device/NAME`).
    #[arg(long)]
    pub device: String,
    /// `https://HOST[:PORT]/PATH`, `http://…`, or a path (HTTPS). The
    /// port on the device: `--port`, else the URL's, else 8443 (Redfish).
    pub url: String,
    /// The port on the device (overrides the URL's).
    #[arg(long)]
    pub port: Option<u16>,
    /// The method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// A header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// The body (`@FILE` reads a file); sent as JSON unless a
    /// Content-Type header says otherwise.
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// Basic credentials `USER[:PASSWORD]` (the password from
    /// `$ONPREM_REDFISH_PASSWORD` when left out).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Verify the device's certificate against this PEM file.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Print the status line and headers too.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
    /// Exit 22 on an HTTP status of 400 or more (as curl does).
    #[arg(short = 'f', long = "fail")]
    pub fail: bool,
}

/// Splits a URL into (tls, port, path).
pub fn split_url(url: &str) -> anyhow::Result<(bool, Option<u16>, String)> {
    let bad = |why: &str| exit(code::USAGE, format!("{url:?}: {why}"));
    if url.starts_with('/') {
        return Ok((true, None, url.to_owned()));
    }
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("not http(s)://HOST/PATH or /PATH"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port = match authority.rsplit_once(':') {
        Some((_, p)) if !p.contains(']') => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port is not a port"))?,
        ),
        _ => None,
    };
    Ok((tls, port, path.to_owned()))
}

fn password_env() -> Option<String> {
    std::env::var("ONPREM_REDFISH_PASSWORD").ok()
}

/// `onprem curl`.
pub async fn curl(o: CurlOptions) -> anyhow::Result<()> {
    let device = device_name(&o.device)?;
    let (tls, url_port, path) = split_url(&o.url)?;
    let port = o.port.or(url_port).unwrap_or(REDFISH_PORT);
    let mut headers = Vec::new();
    for h in &o.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| exit(code::USAGE, format!("-H {h:?}: not `Name: value`")))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let body = match &o.data {
        None => Vec::new(),
        Some(d) => match d.strip_prefix('@') {
            Some(f) => std::fs::read(f).map_err(|e| exit(code::USAGE, format!("-d @{f}: {e}")))?,
            None => d.as_bytes().to_vec(),
        },
    };
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    if let Some(u) = &o.user {
        let (user, pw) = match u.split_once(':') {
            Some((u, p)) => (u.to_owned(), p.to_owned()),
            None => (
                u.clone(),
                password_env().ok_or_else(|| {
                    exit(
                        code::USAGE,
                        format!("-u {u}: no password (USER:PASSWORD, or $ONPREM_REDFISH_PASSWORD)"),
                    )
                })?,
            ),
        };
        headers.push(("Authorization".into(), basic(&user, &pw)));
    }
    let cacert = match &o.cacert {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| exit(code::USAGE, format!("--cacert {}: {e}", f.display())))?,
        ),
        None => None,
    };
    let method = if o.data.is_some() && o.method == "GET" {
        "POST".to_owned()
    } else {
        o.method.clone()
    };
    let c = Conn::open()?;
    let r = request(
        &c,
        &device,
        port,
        Request {
            method,
            path,
            headers,
            body,
            tls,
            cacert,
        },
    )
    .await?;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if o.include {
        let _ = writeln!(out, "HTTP/1.1 {}", r.status);
        for (k, v) in &r.headers {
            let _ = writeln!(out, "{k}: {v}");
        }
        let _ = writeln!(out);
    }
    let _ = out.write_all(&r.body);
    if !r.body.ends_with(b"\n") && !r.body.is_empty() {
        let _ = writeln!(out);
    }
    if o.fail && r.status >= 400 {
        return Err(exit(22, format!("HTTP {}", r.status)));
    }
    Ok(())
}

/// A Redfish account for the node, from flags and the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct RedfishLogin {
    /// The node's Redfish account (from its bundle's spec.redfish.accounts).
    #[arg(long = "redfish-user", default_value = "admin")]
    pub user: String,
    /// A file holding its password (else `$ONPREM_REDFISH_PASSWORD`).
    #[arg(long = "redfish-password-file")]
    pub password_file: Option<PathBuf>,
    /// The Redfish service's port on the node.
    #[arg(long = "redfish-port", default_value_t = REDFISH_PORT)]
    pub port: u16,
}

impl RedfishLogin {
    fn authorization(&self) -> anyhow::Result<String> {
        let pw = match &self.password_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| exit(code::USAGE, format!("--redfish-password-file {}: {e}", f.display())))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            None => password_env().ok_or_else(|| {
                exit(
                    code::USAGE,
                    "the node's Redfish password: set $ONPREM_REDFISH_PASSWORD or --redfish-password-file",
                )
            })?,
        };
        Ok(basic(&self.user, &pw))
    }

    /// Whether a password is at hand.
    pub fn available(&self) -> bool {
        self.password_file.is_some() || password_env().is_some()
    }
}

/// A Redfish request through the tunnel; the JSON answer, or an exit
/// error with the service's message.
pub(crate) async fn redfish(
    c: &Conn,
    device: &str,
    login: &RedfishLogin,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut headers = vec![("Authorization".to_owned(), login.authorization()?)];
    let body = match body {
        Some(b) => {
            headers.push(("Content-Type".into(), "application/json".into()));
            serde_json::to_vec(b)?
        }
        None => Vec::new(),
    };
    let r = request(
        c,
        device,
        login.port,
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body,
            tls: true,
            cacert: None,
        },
    )
    .await?;
    let v: Value = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    };
    if r.status >= 400 {
        let info = &v["error"]["@Message.ExtendedInfo"][0];
        let msg = format!(
            "device/{device} Redfish {method} {path}: {} {}{}",
            r.status,
            info["Message"]
                .as_str()
                .or(v["error"]["message"].as_str())
                .unwrap_or(""),
            info["Resolution"]
                .as_str()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
        let c = match r.status {
            401 => code::UNAUTHENTICATED,
            403 => code::FORBIDDEN,
            404 => code::NOT_FOUND,
            400 | 405 | 412 | 413 | 415 => code::INVALID,
            _ => code::INTERNAL,
        };
        return Err(exit(c, msg));
    }
    Ok((r.status, v))
}

/// `onprem reset` options.
#[derive(Debug, clap::Args)]
pub struct ResetOptions {
    /// The device: `device/NAME`.
    pub target: String,
    /// The Redfish ResetType: On, GracefulRestart, ForceRestart,
    /// GracefulShutdown, ForceOff (as the node's bundle allows).
    #[arg(long = "type", default_value = "GracefulRestart")]
    pub reset_type: String,
    /// The Redfish account.
    #[command(flatten)]
    pub login: RedfishLogin,
}

/// `onprem reset device/NAME --type T`: `ComputerSystem.Reset` on the
/// node's Redfish service, through the tunnel.
pub async fn reset(o: ResetOptions) -> anyhow::Result<()> {
    let device = device_name(&o.target)?;
    let c = Conn::open()?;
    let body = serde_json::json!({ "ResetType": o.reset_type });
    redfish(
        &c,
        &device,
        &o.login,
        "POST",
        "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
        Some(&body),
    )
    .await?;
    println!(
        "device/{device}: {} requested (the node's power loop carries it out)",
        o.reset_type
    );
    Ok(())
}

/// The Redfish section of `onprem describe device`.
pub(crate) async fn describe_section(c: &Conn, device: &str, login: &RedfishLogin) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "Redfish (device/{device}:{}, through the tunnel):\n",
        login.port
    );
    let sys = match redfish(c, device, login, "GET", "/redfish/v1/Systems/1", None).await {
        Ok((_, v)) => v,
        Err(e) => {
            let _ = writeln!(out, "  unavailable: {e}");
            return out;
        }
    };
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let _ = writeln!(
        out,
        "  System:        {} {} (serial {}), power {}, health {}",
        s(&sys["Manufacturer"]),
        s(&sys["Model"]),
        s(&sys["SerialNumber"]),
        s(&sys["PowerState"]),
        s(&sys["Status"]["Health"])
    );
    let _ = writeln!(
        out,
        "  CPU, memory:   {} × {}, {} GiB",
        sys["ProcessorSummary"]["LogicalProcessorCount"],
        s(&sys["ProcessorSummary"]["Model"]),
        sys["MemorySummary"]["TotalSystemMemoryGiB"]
    );
    let resets: Vec<String> =
        sys["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
    let _ = writeln!(out, "  Resets:        {}", resets.join(", "));
    if let Ok((_, th)) = redfish(
        c,
        device,
        login,
        "GET",
        "/redfish/v1/Chassis/1/Thermal",
        None,
    )
    .await
    {
        let temps: Vec<String> = th["Temperatures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| format!("{} {} °C", s(&t["Name"]), t["ReadingCelsius"]))
            .collect();
        let fans: Vec<String> = th["Fans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                format!(
                    "{} {} {}",
                    s(&f["Name"]),
                    f["Reading"],
                    s(&f["ReadingUnits"])
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  Temperatures:  {}",
            if temps.is_empty() {
                "-".into()
            } else {
                temps.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "  Fans:          {}",
            if fans.is_empty() {
                "-".into()
            } else {
                fans.join(", ")
            }
        );
    }
    if let Ok((_, p)) = redfish(c, device, login, "GET", "/redfish/v1/Chassis/1/Power", None).await
    {
        let supplies: Vec<String> = p["PowerSupplies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                format!(
                    "{} {} V {} W",
                    s(&x["Name"]),
                    x["LineInputVoltage"],
                    x["LastPowerOutputWatts"]
                )
            })
            .collect();
        if !supplies.is_empty() {
            let _ = writeln!(out, "  Supplies:      {}", supplies.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_tls_port_and_path() {
        assert_eq!(
            split_url("/redfish/v1").ok(),
            Some((true, None, "/redfish/v1".into()))
        );
        assert_eq!(
            split_url("https://node:9443/redfish/v1/Systems?x=1").ok(),
            Some((true, Some(9443), "/redfish/v1/Systems?x=1".into()))
        );
        assert_eq!(
            split_url("http://node").ok(),
            Some((false, None, "/".into()))
        );
        assert!(split_url("ftp://node/").is_err());
        assert!(split_url("https://node:0/").is_err());
        assert!(split_url("https://node:x/").is_err());
    }
}
