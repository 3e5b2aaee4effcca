//! The fleet commands: `login`, `get`, `describe`, `apply`, `diff`,
//! `delete`, `watch`, `token`, `ack` — the control plane driven the
//! GitOps way, as `kubectl` drives a cluster.
//!
//! They speak the fleet gRPC API (`proto/onprem/v1/fleet.proto`) over TLS
//! to the control plane whose CA `onprem login` pinned; `watch` reads the
//! REST WebSocket. The login (URL, API token, CA certificate) is kept in
//! `$ONPREM_CONFIG`, else `$XDG_CONFIG_HOME/onprem/config.yaml`, else
//! `~/.config/onprem/config.yaml`, mode 0600.
//!
//! Exit codes a script can rely on ([`Exit`]):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (`diff`: no differences) |
//! | 1 | `diff`: differences found; `rollout status`: halted, degraded or timed out |
//! | 2 | usage: a bad flag or argument, a file that cannot be read |
//! | 3 | the control plane cannot be reached (or its TLS is not the pinned one) |
//! | 4 | not logged in, or the token is unknown, expired or revoked |
//! | 5 | the token's role does not allow it |
//! | 6 | not found |
//! | 7 | refused: invalid records (nothing stored), a bad selector, revoking the last admin token |
//! | 8 | the control plane failed (an internal error) |
//! | 9 | conflict: the record changed since it was read; nothing stored |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::controlplane::pki;
use crate::dialhome::connect;
use crate::proto::v1 as pb;
use crate::proto::v1::fleet_client::FleetClient;

/// An error with the exit code a script can rely on (see the module
/// documentation for the table).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process exit code.
    pub code: u8,
    /// What went wrong, for stderr.
    pub message: String,
}

/// Exit codes.
pub mod code {
    /// `diff` found differences.
    pub const DIFFERENT: u8 = 1;
    /// A bad flag, argument or input file.
    pub const USAGE: u8 = 2;
    /// The control plane cannot be reached.
    pub const UNREACHABLE: u8 = 3;
    /// Not logged in, or the token is refused.
    pub const UNAUTHENTICATED: u8 = 4;
    /// The role does not allow it.
    pub const FORBIDDEN: u8 = 5;
    /// Not found.
    pub const NOT_FOUND: u8 = 6;
    /// Invalid input, or a change that would leave the control plane
    /// unmanageable (revoking the last valid admin token): refused,
    /// nothing stored.
    pub const INVALID: u8 = 7;
    /// The control plane failed.
    pub const INTERNAL: u8 = 8;
    /// A record changed since it was read (`metadata.generation`):
    /// nothing stored; read it again.
    pub const CONFLICT: u8 = 9;
    /// `rollout status`: the rollout halted, is degraded, or did not
    /// complete within `--timeout`.
    pub const ROLLOUT_FAILED: u8 = 1;
}

pub(crate) fn exit(code: u8, message: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        message: message.into(),
    }
    .into()
}

/// The exit error for a gRPC status.
fn status_err(s: &tonic::Status, url: &str) -> anyhow::Error {
    use tonic::Code;
    let m = s.message();
    match s.code() {
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled => exit(
            code::UNREACHABLE,
            format!("cannot reach the control plane at {url}: {m}"),
        ),
        Code::Unauthenticated => exit(
            code::UNAUTHENTICATED,
            format!("{m} (log in again: onprem login {url} --token … --ca-fingerprint …)"),
        ),
        Code::PermissionDenied => exit(code::FORBIDDEN, m),
        Code::NotFound => exit(code::NOT_FOUND, m),
        Code::Aborted => exit(code::CONFLICT, m),
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => {
            exit(code::INVALID, m)
        }
        _ => exit(code::INTERNAL, format!("the control plane failed: {m}")),
    }
}

/// What `onprem login` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    /// `https://host:port` of the control plane.
    pub url: String,
    /// The API token.
    pub token: String,
    /// The control plane's CA certificate (PEM): the only one trusted.
    pub ca_pem: String,
}

/// Where the login is kept.
pub fn config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ONPREM_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("onprem").join("config.yaml")
}

/// The saved login.
pub fn load_login() -> anyhow::Result<Login> {
    let p = config_path();
    let text = std::fs::read_to_string(&p).map_err(|e| {
        exit(
            code::UNAUTHENTICATED,
            format!(
                "not logged in ({}: {e}): run `onprem login https://HOST:7443 --token TOKEN --ca-fingerprint sha256:…` first",
                p.display()
            ),
        )
    })?;
    serde_yaml_ng::from_str(&text)
        .map_err(|e| exit(code::UNAUTHENTICATED, format!("{}: {e}", p.display())))
}

fn save_login(l: &Login) -> anyhow::Result<PathBuf> {
    let p = config_path();
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| exit(code::USAGE, format!("{}: {e}", dir.display())))?;
    }
    let text = serde_yaml_ng::to_string(l)?;
    crate::bundle::store::write_atomic(&p, text.as_bytes(), 0o600)
        .map_err(|e| exit(code::USAGE, format!("{}: {e}", p.display())))?;
    Ok(p)
}

/// A connection to the control plane of a login.
pub(crate) struct Conn {
    pub(crate) login: Login,
    pub(crate) client: FleetClient<crate::dialhome::connect::Channel>,
}

impl Conn {
    pub(crate) fn open() -> anyhow::Result<Conn> {
        let login = load_login()?;
        let tls = pki::client_config(&login.ca_pem, None).map_err(|e| {
            exit(
                code::UNAUTHENTICATED,
                format!("{}: caPem: {e}", config_path().display()),
            )
        })?;
        let ch =
            connect::channel(&login.url, Arc::new(tls), Duration::from_secs(10)).map_err(|e| {
                exit(
                    code::USAGE,
                    format!("{}: url: {e}", config_path().display()),
                )
            })?;
        Ok(Conn {
            login,
            client: FleetClient::new(ch),
        })
    }

    pub(crate) fn req<T>(&self, msg: T) -> tonic::Request<T> {
        authed(&self.login.token, msg)
    }

    pub(crate) fn err(&self, s: &tonic::Status) -> anyhow::Error {
        status_err(s, &self.login.url)
    }

    pub(crate) async fn get(
        &mut self,
        kind: &str,
        name: &str,
        selector: &str,
        device: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let r = self.req(pb::GetRequest {
            kind: kind.to_owned(),
            name: name.to_owned(),
            selector: selector.to_owned(),
            device: device.to_owned(),
        });
        let resp = self.client.get(r).await.map_err(|s| self.err(&s))?;
        let v: Value = serde_json::from_slice(&resp.into_inner().items_json)
            .map_err(|e| exit(code::INTERNAL, format!("the control plane's answer: {e}")))?;
        Ok(match v {
            Value::Array(a) => a,
            other => vec![other],
        })
    }
}

fn authed<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(Duration::from_secs(60));
    if let Ok(v) = format!("Bearer {}", token.trim()).parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table (the default).
    Table,
    /// A table with more columns.
    Wide,
    /// JSON (an array for `get`).
    Json,
    /// YAML.
    Yaml,
    /// `kind/name`, one per line.
    Name,
}

/// `onprem login`.
#[derive(Debug, Args)]
pub struct LoginOptions {
    /// The control plane, `https://HOST:PORT`.
    pub url: String,
    /// The API token (`onp_…`). On the command line every user of this
    /// machine sees it (`ps`): prefer `--token-file` or `$ONPREM_TOKEN`.
    #[arg(long)]
    pub token: Option<String>,
    /// A file holding the API token (the control plane's `admin.token`);
    /// `-`: standard input.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// The SHA-256 of the control plane's CA (`sha256:…`), as the control
    /// plane printed it at first start.
    #[arg(long)]
    pub ca_fingerprint: Option<String>,
    /// The control plane's CA certificate (`<state-dir>/ca.crt`).
    #[arg(long, conflicts_with = "ca_fingerprint")]
    pub ca_file: Option<PathBuf>,
}

/// `-o` of `get` and `describe`: a format of [`Output`], or
/// `jsonpath=TEMPLATE`.
#[derive(Debug, Clone)]
pub enum Format {
    /// table, wide, json, yaml, name.
    Plain(Output),
    /// `jsonpath=TEMPLATE` ([`super::jsonpath`]).
    JsonPath(Arc<super::jsonpath::Template>),
}

impl From<Output> for Format {
    fn from(o: Output) -> Format {
        Format::Plain(o)
    }
}

/// Parses `-o`: `table`, `wide`, `json`, `yaml`, `name`, or
/// `jsonpath=TEMPLATE` (also `jsonpath='{…}'` with the quotes the shell
/// left, as kubectl takes it).
pub fn parse_format(s: &str) -> Result<Format, String> {
    if let Some(t) = s.strip_prefix("jsonpath=") {
        let t = t
            .strip_prefix('\'')
            .and_then(|x| x.strip_suffix('\''))
            .unwrap_or(t);
        if t.is_empty() {
            return Err("jsonpath=: the template is empty (jsonpath='{.items[*].name}')".into());
        }
        return super::jsonpath::Template::parse(t)
            .map(|t| Format::JsonPath(Arc::new(t)))
            .map_err(|e| format!("jsonpath template: {e}"));
    }
    Output::from_str(s, true)
        .map(Format::Plain)
        .map_err(|_| "expected table, wide, json, yaml, name or jsonpath=TEMPLATE".to_owned())
}

/// `-o` of `get` and `describe` for clap: [`parse_format`], and the
/// formats offered in help and shell completion.
#[derive(Debug, Clone, Copy)]
pub struct FormatParser;

impl clap::builder::TypedValueParser for FormatParser {
    type Value = Format;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Format, clap::Error> {
        let parse: fn(&str) -> Result<Format, String> = parse_format;
        parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            ["table", "wide", "json", "yaml", "name", "jsonpath="]
                .into_iter()
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

/// Parses `--sort-by`: a JSONPath to a field (`.name`, `{.lastSeen}`).
fn parse_sort_by(s: &str) -> Result<super::jsonpath::Path, String> {
    super::jsonpath::Path::parse_relaxed(s).map_err(|e| e.to_string())
}

/// `onprem get`.
#[derive(Debug, Args)]
pub struct GetOptions {
    /// devices, bundles, profiles, facilities, chassis, alerts, tokens,
    /// events, users, rollouts, audit.
    pub kind: String,
    /// One record by name or id.
    pub name: Option<String>,
    /// A label selector (`k=v,k!=v,k in (a,b),k notin (a),k,!k`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Events and alerts of this device only.
    #[arg(long)]
    pub device: Option<String>,
    /// Output format: table, wide, json, yaml, name, or jsonpath=TEMPLATE
    /// (`jsonpath='{.items[*].name}'`, `jsonpath='{range
    /// .items[*]}{.name}{"\n"}{end}'`; each item as `-o json` prints it,
    /// with `metadata` as `get KIND NAME -o yaml` shows it).
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = FormatParser, default_value = "table")]
    pub output: Format,
    /// No header line in tables.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort the list by a field, a JSONPath into each item as `-o json`
    /// prints it (`.name`, `.lastSeen`, `.metadata.name`): numbers by
    /// value, strings in byte order, items without it first.
    #[arg(long, value_name = "JSONPATH", value_parser = parse_sort_by)]
    pub sort_by: Option<super::jsonpath::Path>,
    /// After the list, print each record again as it changes (a row when
    /// what it shows changes; `-o json`: an object per line), until
    /// Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `onprem describe`.
#[derive(Debug, Args)]
pub struct DescribeOptions {
    /// device, bundle, profile, facility, chassis.
    pub kind: String,
    /// Its name or id.
    pub name: String,
    /// Output format: table (for people), json, yaml, name, or
    /// jsonpath=TEMPLATE.
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = FormatParser, default_value = "table")]
    pub output: Format,
    /// A device: also read its Redfish service through the tunnel
    /// (system, resets it allows, temperatures, fans, supplies).
    #[arg(long)]
    pub redfish: bool,
    /// The node's Redfish account.
    #[command(flatten)]
    pub redfish_login: super::nodehttp::RedfishLogin,
}

/// `onprem apply` and `onprem diff`.
#[derive(Debug, Args)]
pub struct ApplyOptions {
    /// Files or directories (their `*.yaml`, `*.yml`, `*.json`, sorted);
    /// `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Validate and compare only; store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format: table (`kind/name outcome` lines), json, yaml, name.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `onprem diff`.
#[derive(Debug, Args)]
pub struct DiffOptions {
    /// Files or directories, as `apply -f` takes them.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

/// `onprem edit`.
#[derive(Debug, Args)]
pub struct EditOptions {
    /// device, bundle, profile, facility, chassis.
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// `onprem delete`.
#[derive(Debug, Args)]
pub struct DeleteOptions {
    /// bundle, profile, facility, chassis, device (admin: its certificate
    /// is no longer accepted), token (revokes it).
    pub kind: String,
    /// Names or ids.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Succeed when a record does not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// `onprem watch`.
#[derive(Debug, Args)]
pub struct WatchOptions {
    /// devices or events.
    #[arg(default_value = "devices")]
    pub kind: String,
    /// Output format: table rows, or json (one object per line).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `onprem token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token (admin) or, with `--enrol`, a one-time
    /// enrolment token for a node. The token is printed once, alone on
    /// standard output.
    Create(TokenCreateOptions),
    /// List tokens (never their secrets).
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Revoke tokens by id.
    Revoke {
        /// Token ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// `onprem token create`.
#[derive(Debug, Args)]
pub struct TokenCreateOptions {
    /// A one-time enrolment token for a node.
    #[arg(long)]
    pub enrol: bool,
    /// API tokens: viewer, operator or admin.
    #[arg(long, conflicts_with = "enrol")]
    pub role: Option<String>,
    /// API tokens: the user it belongs to.
    #[arg(long, conflicts_with = "enrol")]
    pub user: Option<String>,
    /// Lifetime (`90s`, `12h`, `30d` is `720h`); default: API tokens
    /// never expire, enrolment tokens after 24 h.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Enrolment tokens: a label the enrolled device gets (`k=v`,
    /// repeatable).
    #[arg(long = "label", requires = "enrol")]
    pub labels: Vec<String>,
    /// What it is for.
    #[arg(long)]
    pub description: Option<String>,
}

/// `onprem ack`.
#[derive(Debug, Args)]
pub struct AckOptions {
    /// Alert ids (from `onprem get alerts`).
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Why.
    #[arg(long, short = 'm')]
    pub comment: Option<String>,
}

/// What `onprem login --token` warns: a secret on the command line.
pub const SECRET_ARGUMENT: &str = "--token puts the token on the command line, where every user of this machine sees it (ps, /proc/PID/cmdline) and the shell history keeps it: use --token-file FILE, --token-file - (standard input) or $ONPREM_TOKEN";

/// `onprem login`: checks the URL, the CA and the token, then keeps them.
pub async fn login(o: LoginOptions) -> anyhow::Result<()> {
    let token = if let Some(t) = &o.token {
        eprintln!("onprem: warning: {}", SECRET_ARGUMENT);
        t.trim().to_owned()
    } else if let Some(f) = &o.token_file {
        let text = if f.as_os_str() == "-" {
            let mut t = String::new();
            std::io::stdin()
                .read_to_string(&mut t)
                .map_err(|e| exit(code::USAGE, format!("--token-file -: standard input: {e}")))?;
            t
        } else {
            std::fs::read_to_string(f)
                .map_err(|e| exit(code::USAGE, format!("--token-file {}: {e}", f.display())))?
        };
        text.trim().to_owned()
    } else if let Ok(t) = std::env::var("ONPREM_TOKEN") {
        t.trim().to_owned()
    } else {
        return Err(exit(
            code::USAGE,
            "--token (or $ONPREM_TOKEN) or --token-file is required",
        ));
    };
    if token.is_empty() {
        return Err(exit(code::USAGE, "--token: empty"));
    }
    let (tls, pinned) = match (&o.ca_fingerprint, &o.ca_file) {
        (_, Some(f)) => {
            let pem = std::fs::read_to_string(f)
                .map_err(|e| exit(code::USAGE, format!("--ca-file {}: {e}", f.display())))?;
            let cfg = pki::client_config(&pem, None)
                .map_err(|e| exit(code::USAGE, format!("--ca-file {}: {e}", f.display())))?;
            (cfg, Err(pem))
        }
        (Some(fp), None) => {
            let v = pki::pinned_ca_verifier(fp);
            let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&v) as _)
            .with_no_client_auth();
            cfg.alpn_protocols = vec![b"h2".to_vec()];
            (cfg, Ok(v))
        }
        (None, None) => {
            return Err(exit(
                code::USAGE,
                "--ca-fingerprint sha256:… (printed by the control plane at first start) or --ca-file is required",
            ));
        }
    };
    let ch = connect::channel(&o.url, Arc::new(tls), Duration::from_secs(10))
        .map_err(|e| exit(code::USAGE, format!("URL: {e}")))?;
    let mut client = FleetClient::new(ch);
    let me = client
        .who_am_i(authed(&token, pb::WhoAmIRequest {}))
        .await
        .map_err(|s| status_err(&s, &o.url))?
        .into_inner();
    let ca_pem = match pinned {
        Err(pem) => pem,
        Ok(v) => {
            let seen = v.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let der = seen.ok_or_else(|| {
                exit(
                    code::UNREACHABLE,
                    "the control plane presented no CA certificate",
                )
            })?;
            pki::pem("CERTIFICATE", &der)
        }
    };
    let path = save_login(&Login {
        url: o.url.trim_end_matches('/').to_owned(),
        token,
        ca_pem,
    })?;
    println!(
        "logged in to {} as {} ({}); control plane {}; saved in {}",
        o.url,
        me.user,
        me.role,
        me.version,
        path.display()
    );
    Ok(())
}

/// `onprem get`: the list (or one record) as `-o` asks, sorted by
/// `--sort-by`; with `-w`, then each record again as it changes.
pub async fn get(o: GetOptions, stop: CancellationToken) -> anyhow::Result<()> {
    let mut c = Conn::open()?;
    let kind = canonical_kind(&o.kind);
    let mut items = get_items(&mut c, &o, kind).await?;
    if let Some(key) = &o.sort_by {
        sort_by(kind, &mut items, key)?;
    }
    // One named record, as YAML, JSON or a template: the record itself,
    // which `onprem apply -f` takes back unchanged.
    let one = match items.as_slice() {
        [one] if o.name.is_some() && !o.watch => as_record(kind, one),
        _ => None,
    };
    if let Some(r) = one {
        let out = match &o.output {
            Format::Plain(Output::Json) => Some(format!("{}\n", serde_json::to_string_pretty(&r)?)),
            Format::Plain(Output::Yaml) => Some(serde_yaml_ng::to_string(&r)?),
            Format::JsonPath(t) => Some(t.render(&r)),
            Format::Plain(_) => None,
        };
        if let Some(out) = out {
            print!("{out}");
            return Ok(());
        }
    }
    // Events and alerts name their device by id: show its name.
    let names = if matches!(kind, "events" | "alerts") {
        c.get("devices", "", "", "")
            .await?
            .iter()
            .map(|d| (text(&d["id"]), text(&d["name"])))
            .collect()
    } else {
        BTreeMap::new()
    };
    if !o.watch {
        let out = match &o.output {
            Format::Plain(output) => {
                render_list(kind, &items, *output, !o.no_headers, &names, now())?
            }
            Format::JsonPath(t) => t.render(&list_view(kind, &items)),
        };
        print!("{out}");
        return Ok(());
    }
    follow(&mut c, &o, kind, items, names, stop).await
}

/// How often `get -w` asks the control plane for the list again.
const GET_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// `get -w`: `items` as they are, then each record again when what `-o`
/// shows of it changes (a table row's cells other than ages; the object
/// for json, yaml and name; the template's text), until `stop`. A
/// record that goes is not printed; one that comes back is.
async fn follow(
    c: &mut Conn,
    o: &GetOptions,
    kind: &str,
    items: Vec<Value>,
    names: BTreeMap<String, String>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut widths = Vec::new();
    let mut header = !o.no_headers;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut batch = items;
    loop {
        let mut out = String::new();
        let mut changed = Vec::new();
        let mut now_seen = BTreeMap::new();
        for v in batch {
            let key = identity(&v);
            let sig = watch_signature(kind, &v, &o.output, &names);
            if seen.get(&key) != Some(&sig) {
                changed.push(v);
            }
            now_seen.insert(key, sig);
        }
        seen = now_seen;
        match &o.output {
            Format::Plain(output @ (Output::Table | Output::Wide | Output::Name)) => {
                if !changed.is_empty() {
                    out = render_list_with(
                        &mut widths,
                        kind,
                        &changed,
                        *output,
                        header,
                        &names,
                        now(),
                    )?;
                    header = false;
                }
            }
            Format::Plain(Output::Json) => {
                for v in &changed {
                    out.push_str(&serde_json::to_string(v)?);
                    out.push('\n');
                }
            }
            Format::Plain(Output::Yaml) => {
                for v in &changed {
                    out.push_str("---\n");
                    out.push_str(&serde_yaml_ng::to_string(v)?);
                }
            }
            Format::JsonPath(t) => {
                for v in &changed {
                    out.push_str(&t.render(&item_view(kind, v)));
                }
            }
        }
        if !out.is_empty() {
            print!("{out}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(GET_WATCH_INTERVAL) => {}
        }
        batch = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = get_items(c, o, kind) => match r {
                Ok(items) => items,
                // A named record that went: nothing to show until it
                // comes back.
                Err(e) if o.name.is_some()
                    && e.downcast_ref::<Exit>().is_some_and(|x| x.code == code::NOT_FOUND) =>
                {
                    Vec::new()
                }
                Err(e) => return Err(e),
            },
        };
    }
}

/// The records `get` asked for: the list, or those that are the one
/// named.
async fn get_items(c: &mut Conn, o: &GetOptions, kind: &str) -> anyhow::Result<Vec<Value>> {
    let items = c
        .get(
            &o.kind,
            o.name.as_deref().unwrap_or_default(),
            o.selector.as_deref().unwrap_or_default(),
            o.device.as_deref().unwrap_or_default(),
        )
        .await?;
    match o.name.as_deref() {
        Some(name) => one_named(kind, items, name),
        None => Ok(items),
    }
}

/// What identifies a record across lists: its id, sequence, name or
/// bundle.
fn identity(v: &Value) -> String {
    ["id", "seq", "name", "bundle"]
        .iter()
        .map(|k| text(&v[*k]))
        .collect::<Vec<_>>()
        .join("\u{0}")
}

/// What `get -w` compares to decide whether a record changed.
fn watch_signature(
    kind: &str,
    v: &Value,
    output: &Format,
    names: &BTreeMap<String, String>,
) -> String {
    match output {
        // The cells, with every age as of the epoch: a row that only got
        // older is the same row.
        Format::Plain(o @ (Output::Table | Output::Wide)) => {
            columns(kind, *o == Output::Wide, names, 0)
                .iter()
                .map(|(_, f)| f(v))
                .collect::<Vec<_>>()
                .join("\u{0}")
        }
        Format::Plain(_) => v.to_string(),
        Format::JsonPath(t) => t.render(&item_view(kind, v)),
    }
}

/// Sorts `items` by the field at `key` in each (as [`item_view`] shows
/// it), numbers by value; refuses a field that no item has (exit 2), as
/// kubectl does.
fn sort_by(kind: &str, items: &mut [Value], key: &super::jsonpath::Path) -> anyhow::Result<()> {
    let mut keyed: Vec<(Option<Value>, Value)> = items
        .iter()
        .map(|v| (key.first(&item_view(kind, v)).cloned(), v.clone()))
        .collect();
    if !keyed.is_empty() && keyed.iter().all(|(k, _)| k.is_none()) {
        return Err(exit(
            code::USAGE,
            format!("--sort-by: no {kind} have the field {key} (see the names with -o json)"),
        ));
    }
    keyed.sort_by(|(a, _), (b, _)| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => super::jsonpath::compare(a, b),
    });
    for (slot, (_, v)) in items.iter_mut().zip(keyed) {
        *slot = v;
    }
    Ok(())
}

/// A listed record as `-o jsonpath` and `--sort-by` see it: as `-o json`
/// prints it, with `metadata` (name, labels, id, generation, times) as
/// `get KIND NAME -o yaml` shows it when it has none, so kubectl's
/// `.metadata.name` works beside `.name`.
fn item_view(kind: &str, v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    if o.contains_key("metadata") {
        return v.clone();
    }
    let metadata = as_record(kind, v)
        .and_then(|r| r.get("metadata").cloned())
        .unwrap_or_else(|| serde_json::json!({ "name": name_of(v) }));
    let mut o = o.clone();
    o.insert("metadata".into(), metadata);
    Value::Object(o)
}

/// A list as `-o jsonpath` sees it: `{"kind": "List", "items": […]}`.
fn list_view(kind: &str, items: &[Value]) -> Value {
    serde_json::json!({
        "apiVersion": crate::controlplane::records::API_VERSION,
        "kind": "List",
        "items": items.iter().map(|v| item_view(kind, v)).collect::<Vec<_>>(),
    })
}

/// A record's name as `-o name` prints it: its name, id, bundle or
/// sequence.
fn name_of(v: &Value) -> String {
    ["name", "id", "bundle"]
        .iter()
        .map(|k| text(&v[*k]))
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| text(&v["seq"]))
}

/// A record as `onprem apply -f` takes it (`apiVersion`, `kind`,
/// `metadata`, `spec`), with what the control plane adds under
/// `metadata` (id, generation, times) and `status`, which apply reads
/// past. `None` for what is not an applied record (users, tokens, …).
pub fn as_record(kind: &str, v: &Value) -> Option<Value> {
    let mut status = serde_json::Map::new();
    let (kind_name, metadata, spec) = match kind {
        "devices" => {
            let mut metadata = serde_json::Map::new();
            metadata.insert("name".into(), v["name"].clone());
            metadata.insert("labels".into(), v["labels"].clone());
            metadata.insert("id".into(), v["id"].clone());
            metadata.insert("generation".into(), v["generation"].clone());
            let spec = serde_json::json!({"facility": v["facility"], "chassis": v["chassis"]});
            for (k, x) in v.as_object()? {
                if !matches!(
                    k.as_str(),
                    "name" | "labels" | "id" | "generation" | "facility" | "chassis"
                ) {
                    status.insert(k.clone(), x.clone());
                }
            }
            ("Device", metadata, spec)
        }
        "bundles" | "profiles" | "facilities" | "chassis" => {
            let mut metadata = serde_json::Map::new();
            for k in ["name", "labels", "id", "generation", "created", "updated"] {
                if let Some(x) = v.get(k) {
                    metadata.insert(k.into(), x.clone());
                }
            }
            for (k, x) in v.as_object()? {
                if !matches!(
                    k.as_str(),
                    "name"
                        | "labels"
                        | "id"
                        | "generation"
                        | "created"
                        | "updated"
                        | "kind"
                        | "spec"
                ) {
                    status.insert(k.clone(), x.clone());
                }
            }
            let k = match kind {
                "bundles" => "Bundle",
                "profiles" => "Profile",
                "facilities" => "Facility",
                _ => "Chassis",
            };
            (k, metadata, v.get("spec").cloned().unwrap_or(Value::Null))
        }
        _ => return None,
    };
    let mut r = serde_json::Map::new();
    r.insert(
        "apiVersion".into(),
        Value::from(crate::controlplane::records::API_VERSION),
    );
    r.insert("kind".into(), Value::from(kind_name));
    r.insert("metadata".into(), Value::Object(metadata));
    r.insert("spec".into(), spec);
    if !status.is_empty() {
        r.insert("status".into(), Value::Object(status));
    }
    Some(Value::Object(r))
}

/// The records of `items` that are the one named `name` (by name, id,
/// sequence, or a rollout's bundle): a control plane that answered more
/// than the record asked for is not taken at its word; none is exit 6.
pub(crate) fn one_named(kind: &str, items: Vec<Value>, name: &str) -> anyhow::Result<Vec<Value>> {
    let keys: &[&str] = match kind {
        "users" => &["name"],
        "audit" | "events" => &["seq"],
        "rollouts" => &["bundle"],
        "alerts" => &["id", "rule"],
        "tokens" => &["id"],
        _ => &["name", "id"],
    };
    let items: Vec<Value> = items
        .into_iter()
        .filter(|v| keys.iter().any(|k| text(&v[*k]) == name))
        .collect();
    if items.is_empty() {
        return Err(exit(
            code::NOT_FOUND,
            format!("no {} {name:?}", singular(kind)),
        ));
    }
    Ok(items)
}

/// `onprem describe`.
pub async fn describe(o: DescribeOptions) -> anyhow::Result<()> {
    let mut c = Conn::open()?;
    let r = c.req(pb::DescribeRequest {
        kind: o.kind.clone(),
        name: o.name.clone(),
    });
    let resp = c.client.describe(r).await.map_err(|s| c.err(&s))?;
    let v: Value = serde_json::from_slice(&resp.into_inner().json)
        .map_err(|e| exit(code::INTERNAL, format!("the control plane's answer: {e}")))?;
    let out = match &o.output {
        Format::JsonPath(t) => t.render(&v),
        Format::Plain(Output::Json) => format!("{}\n", serde_json::to_string_pretty(&v)?),
        Format::Plain(Output::Yaml) => serde_yaml_ng::to_string(&v)?,
        Format::Plain(Output::Name) => format!(
            "{}/{}\n",
            singular(canonical_kind(&o.kind)),
            text(&v["name"])
        ),
        Format::Plain(Output::Table | Output::Wide) => {
            if canonical_kind(&o.kind) == "devices" {
                let mut t = describe_device(&v, now());
                if o.redfish {
                    let name = text(&v["name"]);
                    t.push('\n');
                    t.push_str(
                        &super::nodehttp::describe_section(&c, &name, &o.redfish_login).await,
                    );
                }
                t
            } else {
                serde_yaml_ng::to_string(&v)?
            }
        }
    };
    print!("{out}");
    Ok(())
}

/// Reads `-f` arguments into documents: a directory's `*.yaml`, `*.yml`
/// and `*.json` files sorted by name, `-` standard input. Regular files
/// only, and at most [`MAX_APPLY_BYTES`](crate::limits::MAX_APPLY_BYTES)
/// all together (the control plane refuses more).
pub fn read_documents(paths: &[PathBuf]) -> anyhow::Result<Vec<pb::Document>> {
    use crate::limits::{self, MAX_APPLY_BYTES};
    let mut docs: Vec<pb::Document> = Vec::new();
    let left = |docs: &[pb::Document]| limits::Limit {
        value: MAX_APPLY_BYTES
            .value
            .saturating_sub(docs.iter().map(|d| d.text.len()).sum()),
        ..MAX_APPLY_BYTES
    };
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
    };
    for p in paths {
        if p.as_os_str() == "-" {
            let text = limits::read_bounded(std::io::stdin(), left(&docs))
                .and_then(text)
                .map_err(|e| exit(code::USAGE, format!("standard input: {e}")))?;
            docs.push(pb::Document {
                source: "<stdin>".into(),
                text,
            });
            continue;
        }
        let meta = std::fs::metadata(p)
            .map_err(|e| exit(code::USAGE, format!("-f {}: {e}", p.display())))?;
        let files: Vec<PathBuf> = if meta.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| exit(code::USAGE, format!("-f {}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|x| x.to_str())
                            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
                })
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(exit(
                    code::USAGE,
                    format!("-f {}: no *.yaml, *.yml or *.json file in it", p.display()),
                ));
            }
            v
        } else {
            vec![p.clone()]
        };
        for f in files {
            let text = limits::read_regular(&f, left(&docs))
                .and_then(text)
                .map_err(|e| exit(code::USAGE, format!("-f {}: {e}", f.display())))?;
            docs.push(pb::Document {
                source: f.display().to_string(),
                text,
            });
        }
    }
    Ok(docs)
}

/// The refused records of an apply, one line per error:
/// `file[index] Kind/name: path: message`.
pub fn render_refusals(r: &pb::ApplyResponse) -> String {
    let mut out = String::new();
    for x in r.results.iter().filter(|x| !x.errors.is_empty()) {
        for e in &x.errors {
            let what = if x.name.is_empty() {
                x.kind.clone()
            } else {
                format!("{}/{}", x.kind, x.name)
            };
            let _ = writeln!(
                out,
                "{}[{}] {what}: {}{}",
                x.source,
                x.index,
                if e.path.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", e.path)
                },
                e.message
            );
        }
    }
    out
}

async fn apply_request(
    docs: Vec<pb::Document>,
    dry_run: bool,
) -> anyhow::Result<pb::ApplyResponse> {
    let mut c = Conn::open()?;
    let r = c.req(pb::ApplyRequest {
        documents: docs,
        dry_run,
    });
    let resp = c.client.apply(r).await.map_err(|s| c.err(&s))?.into_inner();
    if !resp.applied && resp.results.iter().any(|x| !x.errors.is_empty()) {
        let n = resp.results.iter().filter(|x| !x.errors.is_empty()).count();
        eprint!("{}", render_refusals(&resp));
        return Err(exit(
            code::INVALID,
            format!("{n} record(s) invalid; nothing was stored"),
        ));
    }
    Ok(resp)
}

fn result_json(r: &pb::ApplyResult) -> Value {
    serde_json::json!({
        "source": r.source, "index": r.index, "kind": r.kind, "name": r.name,
        "outcome": r.outcome, "diff": r.diff,
    })
}

/// `onprem apply`.
pub async fn apply(o: ApplyOptions) -> anyhow::Result<()> {
    let docs = read_documents(&o.files)?;
    let resp = apply_request(docs, o.dry_run).await?;
    let out = match o.output {
        Output::Json => {
            let v: Vec<Value> = resp.results.iter().map(result_json).collect();
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        Output::Yaml => {
            let v: Vec<Value> = resp.results.iter().map(result_json).collect();
            serde_yaml_ng::to_string(&v)?
        }
        Output::Name => resp
            .results
            .iter()
            .map(|r| format!("{}/{}\n", r.kind.to_ascii_lowercase(), r.name))
            .collect(),
        Output::Table | Output::Wide => resp
            .results
            .iter()
            .map(|r| {
                format!(
                    "{}/{} {}{}\n",
                    r.kind.to_ascii_lowercase(),
                    r.name,
                    r.outcome,
                    if o.dry_run { " (dry run)" } else { "" }
                )
            })
            .collect(),
    };
    print!("{out}");
    Ok(())
}

/// `onprem diff`: what `apply` would change, as unified diffs; exit 1
/// when there is any.
pub async fn diff(o: DiffOptions) -> anyhow::Result<()> {
    let docs = read_documents(&o.files)?;
    let resp = apply_request(docs, true).await?;
    let mut changed = 0;
    for r in &resp.results {
        if r.outcome != "unchanged" && !r.diff.is_empty() {
            changed += 1;
            print!("{}", r.diff);
            if !r.diff.ends_with('\n') {
                println!();
            }
        }
    }
    if changed > 0 {
        return Err(exit(
            code::DIFFERENT,
            format!("{changed} record(s) would change"),
        ));
    }
    Ok(())
}

/// The lines `onprem edit` puts above the record.
const EDIT_HEADER: &str = "# Edit the record below and save to apply it; lines that begin with '#'\n\
# are ignored, and an empty file or one left unchanged applies nothing.\n\
# metadata.generation makes it a conflict if the record changes meanwhile;\n\
# status is the control plane's and is not applied.\n";

/// `onprem edit KIND NAME`: the record in `$VISUAL` or `$EDITOR` (else
/// `vi`), applied when saved; a record that changed meanwhile is a
/// conflict (exit 9), an invalid one is refused (exit 7), and either way
/// the edited file is kept and named.
pub async fn edit(o: EditOptions) -> anyhow::Result<()> {
    let kind = canonical_kind(&o.kind);
    let mut c = Conn::open()?;
    let items = c.get(&o.kind, &o.name, "", "").await?;
    let items = one_named(kind, items, &o.name)?;
    let record = items
        .first()
        .and_then(|v| as_record(kind, v))
        .ok_or_else(|| {
            exit(
                code::USAGE,
                format!("{} records cannot be edited", singular(kind)),
            )
        })?;
    let before = format!("{EDIT_HEADER}{}", serde_yaml_ng::to_string(&record)?);
    let path = std::env::temp_dir().join(format!(
        "onprem-edit-{}-{}-{}.yaml",
        singular(kind),
        o.name
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        std::process::id()
    ));
    std::fs::write(&path, &before)
        .map_err(|e| exit(code::USAGE, format!("{}: {e}", path.display())))?;
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_owned());
    // Through the shell, so that `EDITOR="code --wait"` works.
    let (cmd, file) = (format!("{editor} \"$1\""), path.clone());
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .arg("sh")
            .arg(file)
            .status()
    })
    .await?
    .map_err(|e| {
        exit(
            code::USAGE,
            format!("cannot run the editor {editor:?}: {e}"),
        )
    })?;
    if !status.success() {
        return Err(exit(
            code::USAGE,
            format!(
                "the editor {editor:?} failed ({status}); nothing applied, the record is in {}",
                path.display()
            ),
        ));
    }
    let after = std::fs::read_to_string(&path)
        .map_err(|e| exit(code::USAGE, format!("{}: {e}", path.display())))?;
    let meaningful = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if meaningful(&after).trim().is_empty() || meaningful(&after) == meaningful(&before) {
        let _ = std::fs::remove_file(&path);
        println!("{}/{} unchanged (edit cancelled)", singular(kind), o.name);
        return Ok(());
    }
    let docs = vec![pb::Document {
        source: path.display().to_string(),
        text: after,
    }];
    match apply_request(docs, false).await {
        Ok(resp) => {
            let _ = std::fs::remove_file(&path);
            for r in &resp.results {
                println!("{}/{} {}", r.kind.to_ascii_lowercase(), r.name, r.outcome);
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("onprem: your edit is kept in {}", path.display());
            Err(e)
        }
    }
}

/// `onprem delete`.
pub async fn delete(o: DeleteOptions) -> anyhow::Result<()> {
    let mut c = Conn::open()?;
    let kind = canonical_kind(&o.kind);
    for name in &o.names {
        let r = c.req(pb::DeleteRequest {
            kind: o.kind.clone(),
            name: name.clone(),
        });
        let deleted = c
            .client
            .delete(r)
            .await
            .map_err(|s| c.err(&s))?
            .into_inner()
            .deleted;
        if deleted {
            println!("{}/{name} deleted", singular(kind));
        } else if o.ignore_not_found {
            println!("{}/{name} not found", singular(kind));
        } else {
            return Err(exit(
                code::NOT_FOUND,
                format!("{}/{name} not found", singular(kind)),
            ));
        }
    }
    Ok(())
}

/// `onprem ack`.
pub async fn ack(o: AckOptions) -> anyhow::Result<()> {
    let mut c = Conn::open()?;
    for id in &o.ids {
        let r = c.req(pb::AckRequest {
            id: id.clone(),
            comment: o.comment.clone().unwrap_or_default(),
        });
        c.client.ack(r).await.map_err(|s| c.err(&s))?;
        println!("alert/{id} acknowledged");
    }
    Ok(())
}

/// `onprem token`.
pub async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::List { output } => {
            get(
                GetOptions {
                    kind: "tokens".into(),
                    name: None,
                    selector: None,
                    device: None,
                    output: output.into(),
                    no_headers: false,
                    sort_by: None,
                    watch: false,
                },
                CancellationToken::new(),
            )
            .await
        }
        TokenCommand::Revoke { ids } => {
            delete(DeleteOptions {
                kind: "tokens".into(),
                names: ids,
                ignore_not_found: false,
            })
            .await
        }
        TokenCommand::Create(o) => {
            let ttl_seconds = match &o.ttl {
                None => 0,
                Some(t) => crate::bundle::duration::parse(t)
                    .map_err(|e| exit(code::USAGE, format!("--ttl {t:?}: {e}")))?
                    .as_secs()
                    .max(1),
            };
            let mut labels = BTreeMap::new();
            for l in &o.labels {
                let (k, v) = l.split_once('=').ok_or_else(|| {
                    exit(code::USAGE, format!("--label {l:?}: expected key=value"))
                })?;
                labels.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            let mut c = Conn::open()?;
            let r = c.req(pb::CreateTokenRequest {
                r#type: if o.enrol { "enrol" } else { "api" }.into(),
                role: o.role.clone().unwrap_or_default(),
                user: o.user.clone().unwrap_or_default(),
                ttl_seconds,
                labels: labels.into_iter().collect(),
                description: o.description.clone().unwrap_or_default(),
            });
            let t = c
                .client
                .create_token(r)
                .await
                .map_err(|s| c.err(&s))?
                .into_inner();
            println!("{}", t.token);
            let expires = if t.expires_unix > 0 {
                format!("expires in {}", age(t.expires_unix - now()))
            } else {
                "never expires".into()
            };
            if o.enrol {
                let fp = pki::parse_certs(&c.login.ca_pem, "CA")
                    .ok()
                    .and_then(|v| v.first().map(|c| pki::fingerprint(c)))
                    .unwrap_or_default();
                eprintln!(
                    "enrolment token {} ({expires}, usable once); on the node (the token on standard input, out of `ps`):\n  onprem agent --control-plane {} --enrol-token-file - --ca-fingerprint sha256:{fp} <<<'{}'",
                    t.id, c.login.url, t.token
                );
            } else {
                eprintln!("API token {} ({expires}); shown this once", t.id);
            }
            Ok(())
        }
    }
}

/// `onprem watch`: the devices as they are (events: the recent ones, as
/// `get events` lists them), then a row per change of what a row shows,
/// until Ctrl-C. A lost connection (the control plane restarts) is one
/// line on stderr; the watch reconnects with capped backoff, says so, and
/// goes on without showing again what it showed.
pub async fn watch(o: WatchOptions, stop: CancellationToken) -> anyhow::Result<()> {
    let login = load_login()?;
    let kind = canonical_kind(&o.kind);
    if !matches!(kind, "devices" | "events") {
        return Err(exit(
            code::USAGE,
            format!("watch {:?}: devices or events", o.kind),
        ));
    }
    let dial = WatchDial::new(&login, kind)?;
    let mut view = WatchView::new(kind, o.output);
    let mut ws = tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        r = dial.connect() => r.map_err(|f| f.into_exit(&login.url))?,
    };
    loop {
        let why = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            why = view.follow(&mut ws) => why,
        };
        eprintln!(
            "onprem: connection to {} lost ({why}); reconnecting",
            login.url
        );
        let mut delay = WATCH_RETRY_FIRST;
        ws = loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
            let r = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = dial.connect() => r,
            };
            match r {
                Ok(ws) => break ws,
                Err(f) if f.retry => delay = (delay * 2).min(WATCH_RETRY_MAX),
                Err(f) => return Err(f.into_exit(&login.url)),
            }
        };
        eprintln!("onprem: reconnected to {}", login.url);
    }
}

/// The first wait before `watch` reconnects; it doubles up to
/// [`WATCH_RETRY_MAX`].
const WATCH_RETRY_FIRST: Duration = Duration::from_millis(250);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(5);
/// How long one connection attempt of `watch` may take.
const WATCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type WatchStream =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// How `watch` reaches the control plane's WebSocket.
struct WatchDial {
    host: String,
    port: u16,
    tls: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    url: String,
    token: String,
}

/// Why `watch` could not connect: `retry` when trying again may help
/// (not for a refused token or role).
struct DialFailure {
    code: u8,
    message: String,
    retry: bool,
}

impl DialFailure {
    fn lost(message: String) -> DialFailure {
        DialFailure {
            code: code::UNREACHABLE,
            message,
            retry: true,
        }
    }

    fn into_exit(self, url: &str) -> anyhow::Error {
        if self.code == code::UNREACHABLE {
            exit(
                self.code,
                format!("cannot reach the control plane at {url}: {}", self.message),
            )
        } else {
            exit(self.code, self.message)
        }
    }
}

impl WatchDial {
    fn new(login: &Login, kind: &str) -> anyhow::Result<WatchDial> {
        let (host, port) = connect::host_port(&login.url).map_err(|e| {
            exit(
                code::USAGE,
                format!("{}: url: {e}", config_path().display()),
            )
        })?;
        let mut tls = pki::client_config(&login.ca_pem, None)?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| exit(code::USAGE, format!("url: bad host {host:?}")))?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let recent = if kind == "events" {
            format!("&recent={}", crate::controlplane::rest::RECENT_EVENTS)
        } else {
            String::new()
        };
        Ok(WatchDial {
            host,
            port,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            server_name,
            url: format!("wss://{authority}/api/v1/watch?kind={kind}{recent}"),
            token: login.token.trim().to_owned(),
        })
    }

    async fn connect(&self) -> Result<WatchStream, DialFailure> {
        match tokio::time::timeout(WATCH_CONNECT_TIMEOUT, self.try_connect()).await {
            Ok(r) => r,
            Err(_) => Err(DialFailure::lost(format!(
                "no answer within {} s",
                WATCH_CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn try_connect(&self) -> Result<WatchStream, DialFailure> {
        use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest as _};
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| DialFailure::lost(plain_io(&e)))?;
        let stream = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| DialFailure::lost(plain_io(&e)))?;
        let mut req = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| DialFailure {
                code: code::USAGE,
                message: format!("url: {}", plain_ws_error(&e)),
                retry: false,
            })?;
        if let Ok(v) = format!("Bearer {}", self.token).parse() {
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        match tokio_tungstenite::client_async(req, stream).await {
            Ok((ws, _)) => Ok(ws),
            Err(Error::Http(resp)) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let m = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| {
                        let e = &v["error"];
                        e["message"].as_str().or(e.as_str()).map(str::to_owned)
                    })
                    .unwrap_or(body);
                let (code, retry) = match resp.status().as_u16() {
                    401 => (code::UNAUTHENTICATED, false),
                    403 => (code::FORBIDDEN, false),
                    404 => (code::NOT_FOUND, false),
                    400 | 422 => (code::INVALID, false),
                    _ => (code::INTERNAL, true),
                };
                Err(DialFailure {
                    code,
                    message: format!("watch: {} {m}", resp.status()),
                    retry,
                })
            }
            Err(e) => Err(DialFailure::lost(plain_ws_error(&e))),
        }
    }
}

/// What `watch` showed, so that it shows only what changed.
struct WatchView {
    kind: &'static str,
    output: Output,
    /// Column widths (table): a column only ever widens.
    widths: Vec<usize>,
    /// The widths when the header was last printed: printed again when a
    /// column widened, so that the rows below it line up with it.
    header_widths: Option<Vec<usize>>,
    /// Devices: what the last row of each showed, by id.
    shown: std::collections::HashMap<String, String>,
    /// Events shown, by time and content (they have no sequence number
    /// until stored), the oldest forgotten first.
    seen: std::collections::HashSet<String>,
    seen_order: std::collections::VecDeque<String>,
    /// Device names by id (events), and the ids looked up.
    names: BTreeMap<String, String>,
    asked: std::collections::HashSet<String>,
}

/// How many events `watch` remembers having shown: more than the control
/// plane sends again on a reconnection.
const WATCH_EVENTS_REMEMBERED: usize = 4 * crate::controlplane::rest::RECENT_EVENTS;

impl WatchView {
    fn new(kind: &'static str, output: Output) -> WatchView {
        // Room for typical ids, names, models, uuids, bundles and states
        // from the start, so that later rows seldom widen the columns.
        let widths = if kind == "devices" {
            vec![20, 16, 12, 16, 36, 15, 7, 6, 20, 12, 5]
        } else {
            vec![4, 16, 7, 20]
        };
        WatchView {
            kind,
            output,
            widths,
            header_widths: None,
            shown: Default::default(),
            seen: Default::default(),
            seen_order: Default::default(),
            names: BTreeMap::new(),
            asked: Default::default(),
        }
    }

    /// Shows what arrives on `ws` until it ends; why it ended.
    async fn follow(&mut self, ws: &mut WatchStream) -> String {
        use tokio_stream::StreamExt as _;
        loop {
            let mut batch = Vec::new();
            let mut end = self.take(ws.next().await, &mut batch);
            // What arrived with it (the first screen: every device, the
            // recent events) is shown with it: the columns fit it all.
            while end.is_none() && batch.len() < WATCH_EVENTS_REMEMBERED {
                match tokio::time::timeout(Duration::ZERO, ws.next()).await {
                    Ok(m) => end = self.take(m, &mut batch),
                    Err(_) => break,
                }
            }
            self.show(batch).await;
            if let Some(why) = end {
                return why;
            }
        }
    }

    /// Adds a message's record to `batch`; why the stream ended, if it did.
    fn take(
        &self,
        m: Option<Result<tokio_tungstenite::tungstenite::Message, WsError>>,
        batch: &mut Vec<Value>,
    ) -> Option<String> {
        use tokio_tungstenite::tungstenite::Message;
        let closed = || "the control plane closed the connection".to_owned();
        match m {
            None | Some(Ok(Message::Close(_))) => Some(closed()),
            Some(Err(e)) => Some(plain_ws_error(&e)),
            Some(Ok(Message::Text(t))) => {
                let Ok(mut v) = serde_json::from_str::<Value>(&t) else {
                    return None;
                };
                match (self.kind, v["type"].as_str()) {
                    ("devices", Some("device")) => batch.push(v["device"].take()),
                    ("events", Some("event")) => batch.push(v["event"].take()),
                    (_, Some("lagged")) => eprintln!(
                        "onprem: this watch fell behind; {} changes were not shown",
                        v["missed"]
                    ),
                    _ => {}
                }
                None
            }
            Some(Ok(_)) => None,
        }
    }

    /// Whether an event is new to this watch (and remembers it).
    fn first_sight(&mut self, e: &Value) -> bool {
        let key = ["tsMs", "device", "type", "reason", "message"]
            .iter()
            .map(|k| text(&e[*k]))
            .collect::<Vec<_>>()
            .join("\u{1f}");
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.seen_order.push_back(key);
        while self.seen_order.len() > WATCH_EVENTS_REMEMBERED {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Looks up the names of devices that `events` name by an id not
    /// known yet (once each; a device deleted since stays an id).
    async fn learn_names(&mut self, events: &[Value]) {
        let unknown: Vec<String> = events
            .iter()
            .map(|e| text(&e["device"]))
            .filter(|id| !id.is_empty() && !self.names.contains_key(id))
            .filter(|id| !self.asked.contains(id))
            .collect();
        if unknown.is_empty() {
            return;
        }
        self.asked.extend(unknown);
        let lookup = async {
            let mut c = Conn::open().ok()?;
            c.get("devices", "", "", "").await.ok()
        };
        if let Ok(Some(devices)) = tokio::time::timeout(WATCH_CONNECT_TIMEOUT, lookup).await {
            for d in devices {
                self.names.insert(text(&d["id"]), text(&d["name"]));
            }
        }
    }

    /// Prints what in `batch` is new: events not shown yet, devices whose
    /// row (or object) differs from the last one shown for them.
    async fn show(&mut self, batch: Vec<Value>) {
        let mut items = batch;
        if self.kind == "events" {
            items.retain(|e| self.first_sight(e));
            if matches!(self.output, Output::Table | Output::Wide) {
                self.learn_names(&items).await;
            }
        }
        if items.is_empty() {
            return;
        }
        let now = now();
        let mut out = String::new();
        match self.output {
            Output::Table | Output::Wide => {
                let cols = columns(self.kind, self.output == Output::Wide, &self.names, now);
                let mut rows = Vec::new();
                for v in &items {
                    let cells: Vec<String> = cols
                        .iter()
                        .map(|(_, f)| f(v).replace(['\n', '\t'], " "))
                        .collect();
                    if self.kind == "devices" && !self.changed(v, cells.join("\u{1f}")) {
                        continue;
                    }
                    rows.push(cells);
                }
                if rows.is_empty() {
                    return;
                }
                let headers: Vec<&str> = cols.iter().map(|(h, _)| *h).collect();
                out = table_with(&mut self.widths, &headers, &rows, false);
                if self.header_widths.as_ref() != Some(&self.widths) {
                    out = table_with(&mut self.widths, &headers, &rows, true);
                    self.header_widths = Some(self.widths.clone());
                }
            }
            output => {
                for v in &items {
                    let one = match output {
                        Output::Json => match serde_json::to_string(v) {
                            Ok(s) => format!("{s}\n"),
                            Err(_) => continue,
                        },
                        _ => match render_list_with(
                            &mut self.widths,
                            self.kind,
                            std::slice::from_ref(v),
                            output,
                            false,
                            &self.names,
                            now,
                        ) {
                            Ok(s) => s,
                            Err(_) => continue,
                        },
                    };
                    if self.kind == "devices" && !self.changed(v, one.clone()) {
                        continue;
                    }
                    out.push_str(&one);
                }
            }
        }
        print!("{out}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }

    /// Whether device `v` now shows `what`, not what it showed last.
    fn changed(&mut self, v: &Value, what: String) -> bool {
        let id = text(&v["id"]);
        if self.shown.get(&id) == Some(&what) {
            return false;
        }
        self.shown.insert(id, what);
        true
    }
}

type WsError = tokio_tungstenite::tungstenite::Error;

/// A WebSocket error in plain words, never a library's documentation URL.
fn plain_ws_error(e: &WsError) -> String {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            "the control plane closed the connection".into()
        }
        WsError::Io(e) => plain_io(e),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "the connection was cut".into()
        }
        WsError::Http(r) => format!("HTTP {}", r.status()),
        other => without_urls(&other.to_string()),
    }
}

/// An I/O or TLS error in plain words: rustls explains an unexpected end
/// of the stream with a link to its manual, which is no help here.
fn plain_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match t {
            rustls::Error::InvalidCertificate(c) => format!(
                "its TLS certificate is refused ({}); if the control plane has a new CA, log in again",
                without_urls(&format!("{c:?}"))
            ),
            other => format!("TLS: {}", without_urls(&other.to_string())),
        };
    }
    match e.kind() {
        K::UnexpectedEof => "the connection was cut".into(),
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            "the connection was reset".into()
        }
        K::TimedOut => "timed out".into(),
        _ => without_urls(&e.to_string()),
    }
}

/// `s` without the URLs in it.
fn without_urls(s: &str) -> String {
    let words: Vec<&str> = s
        .split_whitespace()
        .filter(|w| !w.contains("://"))
        .collect();
    words
        .join(" ")
        .trim_end_matches([':', ';', ',', ' '])
        .to_owned()
}

/// Unix seconds now.
fn now() -> i64 {
    crate::controlplane::core::now()
}

/// The plural, lower-case form of a kind as the control plane names it.
pub fn canonical_kind(kind: &str) -> &'static str {
    match kind.to_ascii_lowercase().as_str() {
        "device" | "devices" | "dev" => "devices",
        "bundle" | "bundles" => "bundles",
        "profile" | "profiles" => "profiles",
        "facility" | "facilities" => "facilities",
        "chassis" => "chassis",
        "alert" | "alerts" => "alerts",
        "token" | "tokens" => "tokens",
        "event" | "events" | "ev" => "events",
        "user" | "users" => "users",
        "rollout" | "rollouts" => "rollouts",
        "audit" => "audit",
        _ => "other",
    }
}

fn singular(kind: &str) -> &str {
    match kind {
        "facilities" => "facility",
        "chassis" | "audit" => kind,
        k => k.strip_suffix('s').unwrap_or(k),
    }
}

/// A JSON value as a table cell.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// A duration as kubectl shows ages: `45s`, `12m`, `5h`, `3d`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 120 * 60 {
        format!("{}m", s / 60)
    } else if s < 48 * 3600 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86400)
    }
}

fn since(v: &Value, now: i64) -> String {
    match v.as_i64() {
        Some(t) if t > 0 => age(now - t),
        _ => "<never>".into(),
    }
}

fn labels(v: &Value) -> String {
    let l: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    or_none(l.join(","))
}

/// A device's bundle cell: `name@3`, `name@2->3` on its way, `<none>`.
fn bundle_cell(d: &Value) -> String {
    let name = text(&d["current"]["name"]);
    let cur = d["current"]["version"].as_u64().unwrap_or(0);
    let want = d["desiredVersion"].as_u64().unwrap_or(0);
    let desired = text(&d["desiredBundle"]);
    match (cur, want) {
        (0, 0) => "<none>".into(),
        (c, w) if w == 0 || c == w => {
            format!("{}@{c}", if name.is_empty() { desired } else { name })
        }
        (c, w) => format!(
            "{}@{c}->{w}",
            if desired.is_empty() { name } else { desired }
        ),
    }
}

/// `Converged`, or the state with the loops not ready:
/// `Degraded(fans)`.
fn state_cell(d: &Value) -> String {
    let state = or_none(text(&d["state"]));
    let not: Vec<String> = d["notReady"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| text(&l["name"]))
        .collect();
    if not.is_empty() {
        state
    } else {
        format!("{state}({})", not.join(","))
    }
}

/// Loops ready of those reported: `3/4`.
fn loops_cell(d: &Value) -> String {
    match (d["loopsReady"].as_u64(), d["loops"].as_u64()) {
        (Some(r), Some(n)) if n > 0 => format!("{r}/{n}"),
        _ => "<none>".into(),
    }
}

type Column = (&'static str, Box<dyn Fn(&Value) -> String>);

fn columns(kind: &str, wide: bool, names: &BTreeMap<String, String>, now: i64) -> Vec<Column> {
    let f = |p: &'static str| -> Box<dyn Fn(&Value) -> String> {
        Box::new(move |v: &Value| or_none(text(v.pointer(p).unwrap_or(&Value::Null))))
    };
    let ago = |p: &'static str| -> Box<dyn Fn(&Value) -> String> {
        Box::new(move |v: &Value| since(v.pointer(p).unwrap_or(&Value::Null), now))
    };
    let ago_ms = |p: &'static str| -> Box<dyn Fn(&Value) -> String> {
        Box::new(move |v: &Value| {
            age(now - v.pointer(p).and_then(Value::as_i64).unwrap_or(0) / 1000)
        })
    };
    let dev = {
        let names = names.clone();
        move |v: &Value| {
            let id = text(&v["device"]);
            names.get(&id).cloned().unwrap_or(id)
        }
    };
    let mut c: Vec<Column> = match kind {
        "devices" => vec![
            ("ID", f("/id")),
            ("NAME", f("/name")),
            ("MANUFACTURER", f("/facts/manufacturer")),
            ("MODEL", f("/facts/model")),
            ("UUID", f("/facts/uuid")),
            ("LASTIPADDR", f("/lastIpAddr")),
            ("TAINTED", f("/tainted")),
            ("ONLINE", f("/online")),
            ("BUNDLE", Box::new(bundle_cell)),
            ("STATE", Box::new(state_cell)),
            ("LOOPS", Box::new(loops_cell)),
        ],
        "bundles" => vec![
            ("NAME", f("/name")),
            ("VERSION", f("/rollout/version")),
            ("STRATEGY", f("/rollout/strategy")),
            ("PHASE", f("/rollout/phase")),
            (
                "BATCH",
                Box::new(|v: &Value| {
                    let n = v["rollout"]["batches"].as_array().map_or(0, Vec::len);
                    if n == 0 {
                        "<none>".into()
                    } else {
                        let b = v["rollout"]["batch"].as_u64().unwrap_or(0);
                        format!("{}/{n}", (b + 1).min(n as u64))
                    }
                }),
            ),
            (
                "SELECTOR",
                Box::new(|v: &Value| match &v["spec"]["selector"] {
                    Value::String(s) => s.clone(),
                    Value::Null => "<none>".into(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                }),
            ),
            ("AGE", ago("/created")),
        ],
        "alerts" => vec![
            ("ID", f("/id")),
            ("DEVICE", Box::new(dev)),
            ("RULE", f("/rule")),
            ("SEVERITY", f("/severity")),
            ("STATE", f("/state")),
            ("SINCE", ago("/since")),
            ("ACKED", f("/ackedBy")),
            ("SUMMARY", f("/summary")),
        ],
        "tokens" => vec![
            ("ID", f("/id")),
            ("TYPE", f("/type")),
            ("USER", f("/user")),
            ("ROLE", f("/role")),
            (
                "EXPIRES",
                Box::new(move |v: &Value| match v["expires"].as_i64() {
                    Some(t) if t > 0 && t <= now => "expired".into(),
                    Some(t) if t > 0 => format!("in {}", age(t - now)),
                    _ => "never".into(),
                }),
            ),
            ("USED", ago("/usedAt")),
            ("DESCRIPTION", f("/description")),
        ],
        "events" => vec![
            ("AGE", ago_ms("/tsMs")),
            ("DEVICE", Box::new(dev)),
            ("TYPE", f("/type")),
            ("REASON", f("/reason")),
            ("MESSAGE", f("/message")),
        ],
        "users" => vec![
            ("NAME", f("/name")),
            ("ROLE", f("/role")),
            ("AGE", ago("/created")),
        ],
        "rollouts" => vec![
            ("BUNDLE", f("/bundle")),
            ("VERSION", f("/version")),
            ("STRATEGY", f("/strategy")),
            ("PHASE", f("/phase")),
            ("MESSAGE", f("/message")),
        ],
        "audit" => vec![
            ("SEQ", f("/seq")),
            ("AGE", ago_ms("/tsMs")),
            ("ACTOR", f("/actor")),
            ("ACTION", f("/action")),
            ("TARGET", f("/target")),
            ("DETAIL", f("/detail")),
        ],
        _ => vec![
            ("NAME", f("/name")),
            ("ID", f("/id")),
            ("GENERATION", f("/generation")),
            ("AGE", ago("/created")),
        ],
    };
    if wide {
        match kind {
            "devices" => {
                c.push(("FACILITY", f("/facility")));
                c.push(("CHASSIS", f("/chassis")));
                c.push(("ARCH", f("/facts/arch")));
                c.push(("LASTSEEN", ago("/lastSeen")));
                c.push(("LABELS", Box::new(|v: &Value| labels(&v["labels"]))));
            }
            "bundles" | "profiles" | "facilities" | "chassis" | "other" => {
                c.push(("LABELS", Box::new(|v: &Value| labels(&v["labels"]))));
            }
            "tokens" => c.push(("LABELS", Box::new(|v: &Value| labels(&v["labels"])))),
            "rollouts" => c.push((
                "BATCHES",
                Box::new(|v: &Value| v["batches"].as_array().map_or(0, Vec::len).to_string()),
            )),
            _ => {}
        }
    }
    c
}

/// Records of one kind as `-o` asks.
pub fn render_list(
    kind: &str,
    items: &[Value],
    output: Output,
    headers: bool,
    names: &BTreeMap<String, String>,
    now: i64,
) -> anyhow::Result<String> {
    render_list_with(&mut Vec::new(), kind, items, output, headers, names, now)
}

/// [`render_list`] with table widths kept across calls.
fn render_list_with(
    widths: &mut Vec<usize>,
    kind: &str,
    items: &[Value],
    output: Output,
    headers: bool,
    names: &BTreeMap<String, String>,
    now: i64,
) -> anyhow::Result<String> {
    Ok(match output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(items)?),
        Output::Yaml => serde_yaml_ng::to_string(items)?,
        Output::Name => items
            .iter()
            .map(|v| format!("{}/{}\n", singular(kind), name_of(v)))
            .collect(),
        Output::Table | Output::Wide => {
            let cols = columns(kind, output == Output::Wide, names, now);
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|v| {
                    cols.iter()
                        .map(|(_, f)| f(v).replace(['\n', '\t'], " "))
                        .collect()
                })
                .collect();
            table_with(
                widths,
                &cols.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
                &rows,
                headers,
            )
        }
    })
}

/// Columns padded to their widest cell, three spaces apart (the last one
/// not padded).
fn table(headers: &[&str], rows: &[Vec<String>], with_headers: bool) -> String {
    let mut w = Vec::new();
    table_with(&mut w, headers, rows, with_headers)
}

/// [`table`] with widths kept across calls (`watch` prints a row at a
/// time): a column only ever widens.
fn table_with(
    w: &mut Vec<usize>,
    headers: &[&str],
    rows: &[Vec<String>],
    with_headers: bool,
) -> String {
    if w.len() < headers.len() {
        w.resize(headers.len(), 0);
    }
    for (i, h) in headers.iter().enumerate() {
        w[i] = w[i].max(h.chars().count());
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let last = cells.len().saturating_sub(1);
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i < last {
                let pad = w.get(i).copied().unwrap_or(0) - c.chars().count() + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    if with_headers {
        line(&mut headers.iter().copied());
    }
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// `describe device` for people.
pub fn describe_device(v: &Value, now: i64) -> String {
    let mut o = String::new();
    let kv = |o: &mut String, k: &str, val: String| {
        let _ = writeln!(o, "{:<16}{}", format!("{k}:"), or_none(val));
    };
    kv(&mut o, "Name", text(&v["name"]));
    kv(&mut o, "ID", text(&v["id"]));
    kv(&mut o, "Labels", labels(&v["labels"]));
    kv(&mut o, "Facility", text(&v["facility"]));
    kv(&mut o, "Chassis", text(&v["chassis"]));
    kv(
        &mut o,
        "Online",
        format!(
            "{} (last seen {} ago from {})",
            text(&v["online"]),
            since(&v["lastSeen"], now),
            or_none(text(&v["lastAddr"]))
        ),
    );
    kv(
        &mut o,
        "Enrolled",
        format!("{} ago", since(&v["enrolledAt"], now)),
    );
    let f = &v["facts"];
    let _ = writeln!(o, "Hardware:");
    for (k, key) in [
        ("Manufacturer", "manufacturer"),
        ("Model", "model"),
        ("Serial", "serial"),
        ("UUID", "uuid"),
        ("Hostname", "hostname"),
        ("Arch", "arch"),
        ("Cores", "cores"),
        ("Agent", "agentVersion"),
    ] {
        let _ = writeln!(o, "  {:<14}{}", format!("{k}:"), or_none(text(&f[key])));
    }
    let mem = f["memoryBytes"].as_u64().unwrap_or(0);
    let _ = writeln!(
        o,
        "  {:<14}{:.1} GiB",
        "Memory:",
        mem as f64 / f64::from(1u32 << 30)
    );
    let addrs: Vec<String> = f["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let _ = writeln!(o, "  {:<14}{}", "Addresses:", or_none(addrs.join(", ")));
    let _ = writeln!(o, "Bundle:");
    let _ = writeln!(
        o,
        "  {:<14}{} version {}",
        "Desired:",
        or_none(text(&v["desiredBundle"])),
        text(&v["desiredVersion"])
    );
    let c = &v["current"];
    let _ = writeln!(
        o,
        "  {:<14}{} version {} ({})",
        "Current:",
        or_none(text(&c["name"])),
        text(&c["version"]),
        or_none(text(&c["source"]))
    );
    let r = &v["lastResult"];
    if r["version"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            o,
            "  {:<14}version {} {} {} ago{}",
            "Last result:",
            text(&r["version"]),
            text(&r["outcome"]),
            since(&r["at"], now),
            Some(text(&r["message"]))
                .filter(|m| !m.is_empty())
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(o, "  {:<14}{}", "Converged:", text(&v["converged"]));
    let msg = text(&v["stateMessage"]);
    let _ = writeln!(
        o,
        "  {:<14}{}{}",
        "State:",
        or_none(text(&v["state"])),
        if msg.is_empty() {
            String::new()
        } else {
            format!(": {msg}")
        }
    );
    let _ = writeln!(o, "  {:<14}{} ready", "Loops:", loops_cell(v));
    let taint = if v["tainted"].as_bool() == Some(true) {
        format!("true: {}", text(&v["taintReason"]))
    } else {
        "false".into()
    };
    let _ = writeln!(o, "  {:<14}{taint}", "Tainted:");
    let rows: Vec<Vec<String>> = v["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                text(&c["type"]),
                text(&c["status"]),
                text(&c["reason"]),
                text(&c["observedVersion"]),
                text(&c["message"]),
            ]
        })
        .collect();
    section(
        &mut o,
        "Conditions",
        &["TYPE", "STATUS", "REASON", "VERSION", "MESSAGE"],
        &rows,
    );
    let t = &v["telemetry"];
    let series: Vec<&Value> = t["series"].as_array().into_iter().flatten().collect();
    let _ = writeln!(
        o,
        "Telemetry:      {} series, sample {} ({} ago), acknowledged up to {}",
        series.len(),
        text(&t["seq"]),
        since(
            &Value::from(t["timestampMs"].as_i64().unwrap_or(0) / 1000),
            now
        ),
        text(&v["telemetryAcked"])
    );
    let rows: Vec<Vec<String>> = series
        .iter()
        .take(40)
        .map(|s| {
            let l: Vec<String> = s["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={:?}", text(v)))
                .collect();
            let name = if l.is_empty() {
                text(&s["name"])
            } else {
                format!("{}{{{}}}", text(&s["name"]), l.join(","))
            };
            vec![name, text(&s["value"])]
        })
        .collect();
    if !rows.is_empty() {
        indent(&mut o, &table(&["SERIES", "VALUE"], &rows, true));
        if series.len() > rows.len() {
            let _ = writeln!(
                o,
                "  … {} more (-o json shows all)",
                series.len() - rows.len()
            );
        }
    }
    let alerts: Vec<Vec<String>> = v["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                text(&a["id"]),
                text(&a["rule"]),
                text(&a["severity"]),
                text(&a["state"]),
                or_none(text(&a["ackedBy"])),
                text(&a["summary"]),
            ]
        })
        .collect();
    section(
        &mut o,
        "Alerts",
        &["ID", "RULE", "SEVERITY", "STATE", "ACKED", "SUMMARY"],
        &alerts,
    );
    let events: Vec<Vec<String>> = v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                age(now - e["tsMs"].as_i64().unwrap_or(0) / 1000),
                text(&e["type"]),
                text(&e["reason"]),
                text(&e["message"]),
            ]
        })
        .collect();
    section(
        &mut o,
        "Events",
        &["AGE", "TYPE", "REASON", "MESSAGE"],
        &events,
    );
    o
}

/// `Title:` and an indented table, or `<none>`.
fn section(o: &mut String, title: &str, headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        let _ = writeln!(o, "{:<16}<none>", format!("{title}:"));
    } else {
        let _ = writeln!(o, "{title}:");
        indent(o, &table(headers, rows, true));
    }
}

fn indent(o: &mut String, block: &str) {
    for l in block.lines() {
        let _ = writeln!(o, "  {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Value {
        serde_json::json!({
            "id": "d1", "name": "pi-a", "labels": {"role": "edge"},
            "facility": "lab", "chassis": "",
            "facts": {"manufacturer": "Raspberry Pi", "model": "Raspberry Pi 5 Model B", "uuid": "u-1",
                      "arch": "aarch64", "addresses": ["10.0.0.5"], "cores": 4, "memoryBytes": 8589934592u64},
            "lastSeen": 990, "lastAddr": "10.0.0.5:5000", "enrolledAt": 100,
            "desiredBundle": "fans", "desiredVersion": 3,
            "current": {"name": "fans", "version": 2, "source": "control-plane"},
            "lastResult": {"version": 2, "outcome": "Applied", "message": "", "at": 900},
            "conditions": [{"type": "Loop/fans", "status": "True", "reason": "Reconciled", "message": "", "observedVersion": 2}],
            "tainted": false, "taintReason": "", "online": true, "lastIpAddr": "10.0.0.5", "converged": false,
            "state": "Progressing", "stateMessage": "waiting for fans version 3; it runs fans version 2",
            "loops": 2, "loopsReady": 1,
            "notReady": [{"name": "power", "status": "False", "reason": "OnBattery", "message": "mains lost"}],
            "telemetry": {"seq": 7, "timestampMs": 995000, "series": [{"name": "onprem_fan_duty_ratio", "labels": {"zone": "case"}, "value": 0.4}]},
            "telemetryAcked": 7, "events": [], "alerts": []
        })
    }

    #[test]
    fn device_table_has_the_seed_columns_and_aligns_them() {
        let out = render_list(
            "devices",
            &[device()],
            Output::Table,
            true,
            &BTreeMap::new(),
            1000,
        )
        .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let h: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            h,
            [
                "ID",
                "NAME",
                "MANUFACTURER",
                "MODEL",
                "UUID",
                "LASTIPADDR",
                "TAINTED",
                "ONLINE",
                "BUNDLE",
                "STATE",
                "LOOPS"
            ]
        );
        // Each value starts where its header does.
        let col = lines[0].find("LASTIPADDR").unwrap();
        assert_eq!(&lines[1][col..col + 8], "10.0.0.5");
        let col = lines[0].find("BUNDLE").unwrap();
        assert!(lines[1][col..].starts_with("fans@2->3 "), "{}", lines[1]);
        // The state names the loops not ready; LOOPS counts the ready ones.
        assert!(
            lines[1].ends_with("Progressing(power)   1/2"),
            "{}",
            lines[1]
        );
        let wide = render_list(
            "devices",
            &[device()],
            Output::Wide,
            false,
            &BTreeMap::new(),
            1000,
        )
        .unwrap();
        assert!(
            wide.contains("lab")
                && wide.contains("aarch64")
                && wide.contains("10s")
                && wide.contains("role=edge"),
            "{wide}"
        );
        assert!(!wide.contains("MANUFACTURER"));
    }

    #[test]
    fn json_yaml_and_name_outputs_round_trip() {
        let items = vec![device()];
        let j = render_list("devices", &items, Output::Json, true, &BTreeMap::new(), 0).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Value>>(&j).unwrap(), items);
        let y = render_list("devices", &items, Output::Yaml, true, &BTreeMap::new(), 0).unwrap();
        assert_eq!(serde_yaml_ng::from_str::<Vec<Value>>(&y).unwrap(), items);
        let n = render_list("devices", &items, Output::Name, true, &BTreeMap::new(), 0).unwrap();
        assert_eq!(n, "device/pi-a\n");
    }

    #[test]
    fn describe_shows_bundle_conditions_and_telemetry() {
        let out = describe_device(&device(), 1000);
        assert!(out.contains("Desired:      fans version 3"), "{out}");
        assert!(
            out.contains("Current:      fans version 2 (control-plane)"),
            "{out}"
        );
        assert!(out.contains("Loop/fans"), "{out}");
        assert!(
            out.contains("onprem_fan_duty_ratio{zone=\"case\"}"),
            "{out}"
        );
        assert!(out.contains("8.0 GiB"), "{out}");
        assert!(
            out.contains(
                "State:        Progressing: waiting for fans version 3; it runs fans version 2"
            ),
            "{out}"
        );
        assert!(out.contains("Loops:        1/2 ready"), "{out}");
    }

    #[test]
    fn refusals_name_file_record_and_path() {
        let r = pb::ApplyResponse {
            applied: false,
            results: vec![pb::ApplyResult {
                source: "fleet.yaml".into(),
                index: 1,
                kind: "Bundle".into(),
                name: "fans".into(),
                outcome: "invalid".into(),
                diff: String::new(),
                errors: vec![pb::FieldError {
                    path: "spec.fans.period".into(),
                    message: "must be at least 100ms".into(),
                }],
            }],
        };
        assert_eq!(
            render_refusals(&r),
            "fleet.yaml[1] Bundle/fans: spec.fans.period: must be at least 100ms\n"
        );
    }

    #[test]
    fn ages_and_kinds() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(5 * 86400), "5d");
        assert_eq!(canonical_kind("Device"), "devices");
        assert_eq!(canonical_kind("facility"), "facilities");
        assert_eq!(singular("facilities"), "facility");
        assert_eq!(singular("chassis"), "chassis");
    }
}
