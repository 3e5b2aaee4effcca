//! What kubectl users reach for beside the fleet commands: `version`
//! (client and control plane, with their commits), `whoami`, `logout`,
//! `completion bash|zsh|fish`, and `rollout status`. `get -w`,
//! `--sort-by` and `-o jsonpath=` are in [`fleet`](super::fleet) and
//! [`jsonpath`](super::jsonpath).

use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::fleet::{self, Conn, code, exit};
use crate::proto::v1 as pb;

/// `-o` of `version` and `whoami`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoOutput {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `onprem version`.
#[derive(Debug, Args)]
pub struct VersionOptions {
    /// The client's version only: do not ask the control plane.
    #[arg(long)]
    pub client: bool,
    /// Output format (default: a line each for people).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<InfoOutput>,
}

/// `onprem whoami`.
#[derive(Debug, Args)]
pub struct WhoAmIOptions {
    /// Output format (default: a line each for people).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<InfoOutput>,
}

/// `onprem completion`.
#[derive(Debug, Args)]
pub struct CompletionOptions {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells `onprem completion` writes for: those of Linux nodes and
/// workstations (clap_complete's elvish and PowerShell generators are left
/// out of the binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash (3.2 and later): `source <(onprem completion bash)`.
    Bash,
    /// zsh: `onprem completion zsh > "${fpath[1]}/_onprem"`.
    Zsh,
    /// fish: `onprem completion fish | source`.
    Fish,
}

/// The completion script for `shell`.
fn completion_script(shell: Shell) -> Vec<u8> {
    use clap::CommandFactory as _;
    use clap_complete::shells;
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(shells::Bash, &mut cmd, "onprem", &mut buf),
        Shell::Zsh => clap_complete::generate(shells::Zsh, &mut cmd, "onprem", &mut buf),
        Shell::Fish => clap_complete::generate(shells::Fish, &mut cmd, "onprem", &mut buf),
    }
    buf
}

/// `onprem rollout`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Follow a bundle's rollout until it is Complete (exit 0), Halted or
    /// Degraded (exit 1, with why), as `kubectl rollout status` does.
    Status(RolloutStatusOptions),
}

/// `onprem rollout status`.
#[derive(Debug, Args)]
pub struct RolloutStatusOptions {
    /// The bundle: `bundle/NAME` or `NAME`.
    pub bundle: String,
    /// Follow until the rollout ends; `--watch=false` prints its state
    /// once (exit 1 only when it halted or is degraded).
    #[arg(
        short = 'w',
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub watch: bool,
    /// Give up after this long (`90s`, `5m`; exit 1); 0 waits for ever.
    #[arg(long, default_value = "0", value_name = "DURATION")]
    pub timeout: String,
}

/// How a value is printed for `-o json|yaml`.
fn print_info(v: &Value, o: InfoOutput) -> anyhow::Result<()> {
    match o {
        InfoOutput::Json => println!("{}", serde_json::to_string_pretty(v)?),
        InfoOutput::Yaml => print!("{}", serde_yaml_ng::to_string(v)?),
    }
    Ok(())
}

/// A commit as people read it: an empty one (a control plane older than
/// the field) is `unknown`.
fn commit(c: &str) -> &str {
    if c.is_empty() { "unknown" } else { c }
}

/// How long `version` waits for the control plane.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// `onprem version`: this binary's version and commit, and the control
/// plane's when logged in and it answers; when not, why, and still exit
/// 0.
pub async fn version(o: VersionOptions) -> anyhow::Result<()> {
    let mut v = json!({
        "clientVersion": {"version": crate::VERSION, "commit": crate::GIT_COMMIT},
    });
    let server = if o.client {
        None
    } else {
        Some(server_version().await)
    };
    match &server {
        Some(Ok(s)) => v["serverVersion"] = s.clone(),
        Some(Err(e)) => v["serverError"] = Value::from(e.to_string()),
        None => {}
    }
    if let Some(out) = o.output {
        return print_info(&v, out);
    }
    println!(
        "Client Version: {} (commit {})",
        crate::VERSION,
        crate::GIT_COMMIT
    );
    match server {
        Some(Ok(s)) => println!(
            "Server Version: {} (commit {}) at {}",
            fleet::text(&s["version"]),
            fleet::text(&s["commit"]),
            fleet::text(&s["url"])
        ),
        Some(Err(e)) => println!("Server Version: unavailable: {e}"),
        None => {}
    }
    Ok(())
}

/// The control plane's version, commit and URL.
async fn server_version() -> anyhow::Result<Value> {
    let mut c = Conn::open()?;
    let mut r = c.req(pb::WhoAmIRequest {});
    r.set_timeout(VERSION_TIMEOUT);
    let me = tokio::time::timeout(VERSION_TIMEOUT, c.client.who_am_i(r))
        .await
        .map_err(|_| {
            exit(
                code::UNREACHABLE,
                format!(
                    "the control plane at {} did not answer within {}s",
                    c.login.url,
                    VERSION_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|s| c.err(&s))?
        .into_inner();
    Ok(json!({
        "version": me.version,
        "commit": commit(&me.commit),
        "url": c.login.url,
    }))
}

/// `onprem whoami`: the login's user, role and token, and the control
/// plane it is for (exit 4 when not logged in or the token is refused).
pub async fn whoami(o: WhoAmIOptions) -> anyhow::Result<()> {
    let mut c = Conn::open()?;
    let r = c.req(pb::WhoAmIRequest {});
    let me = c
        .client
        .who_am_i(r)
        .await
        .map_err(|s| c.err(&s))?
        .into_inner();
    let v = json!({
        "user": me.user,
        "role": me.role,
        "tokenId": me.token_id,
        "controlPlane": c.login.url,
    });
    if let Some(out) = o.output {
        return print_info(&v, out);
    }
    println!("User:          {}", me.user);
    println!("Role:          {}", me.role);
    println!("Token:         {}", me.token_id);
    println!("Control plane: {}", c.login.url);
    Ok(())
}

/// `onprem logout`: forgets the login kept by `onprem login`. Not logged
/// in is not an error. The token itself stays valid (`onprem token
/// revoke` ends it).
pub fn logout() -> anyhow::Result<()> {
    let p = fleet::config_path();
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("not logged in ({} does not exist)", p.display());
            return Ok(());
        }
        Err(e) => return Err(exit(code::USAGE, format!("{}: {e}", p.display()))),
    };
    // The URL, if the file says it, for the message; an unreadable login
    // is forgotten all the same.
    let url = serde_yaml_ng::from_str::<fleet::Login>(&text)
        .map(|l| l.url)
        .ok();
    std::fs::remove_file(&p).map_err(|e| exit(code::USAGE, format!("{}: {e}", p.display())))?;
    match url {
        Some(u) => println!(
            "logged out of {u}: removed {} (the token itself stays valid until revoked)",
            p.display()
        ),
        None => println!("logged out: removed {}", p.display()),
    }
    Ok(())
}

/// `onprem completion SHELL`: the completion script on standard output.
pub fn completion(o: &CompletionOptions) {
    let buf = completion_script(o.shell);
    // Through print!, so that a closed standard output ends the process
    // quietly (main's hook) rather than with clap_complete's panic.
    print!("{}", String::from_utf8_lossy(&buf));
}

/// How often `rollout status` asks again.
const ROLLOUT_POLL: Duration = Duration::from_secs(1);

/// `onprem rollout`.
pub async fn rollout(cmd: RolloutCommand, stop: CancellationToken) -> anyhow::Result<()> {
    match cmd {
        RolloutCommand::Status(o) => rollout_status(o, stop).await,
    }
}

/// `onprem rollout status`: a line each time the rollout's phase or
/// message changes, until it is Complete (exit 0), Halted or Degraded
/// (exit 1), or `--timeout` passes (exit 1).
async fn rollout_status(o: RolloutStatusOptions, stop: CancellationToken) -> anyhow::Result<()> {
    let name = match o.bundle.split_once('/') {
        None => o.bundle.as_str(),
        Some((k, n)) if fleet::canonical_kind(k) == "bundles" && !n.is_empty() => n,
        Some(_) => {
            return Err(exit(
                code::USAGE,
                format!("{:?}: rollout status takes bundle/NAME or NAME", o.bundle),
            ));
        }
    };
    let timeout = match crate::bundle::duration::parse(&o.timeout) {
        Ok(d) if d.is_zero() => None,
        Ok(d) => Some(d),
        Err(e) => {
            return Err(exit(code::USAGE, format!("--timeout {:?}: {e}", o.timeout)));
        }
    };
    let started = Instant::now();
    let mut c = Conn::open()?;
    let mut last = String::new();
    loop {
        let items = c.get("rollouts", name, "", "").await?;
        let items = fleet::one_named("rollouts", items, name)?;
        let r = items.into_iter().next().unwrap_or_default();
        let phase = fleet::text(&r["phase"]);
        let message = fleet::text(&r["message"]);
        let what = format!("bundle {name:?} version {}", fleet::text(&r["version"]));
        let detail = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        match phase.as_str() {
            "Complete" => {
                println!("{what} rolled out (Complete){detail}");
                return Ok(());
            }
            "Halted" | "Degraded" => {
                return Err(exit(
                    code::ROLLOUT_FAILED,
                    format!("{what}: rollout {phase}{detail}"),
                ));
            }
            _ => {}
        }
        let line = format!("waiting for {what} to roll out ({phase}){detail}");
        if line != last {
            println!("{line}");
            last = line;
        }
        if !o.watch {
            return Ok(());
        }
        let wait = match timeout {
            Some(t) => match t.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => left.min(ROLLOUT_POLL),
                _ => {
                    return Err(exit(
                        code::ROLLOUT_FAILED,
                        format!(
                            "timed out after {} waiting for {what} ({phase}){detail}",
                            o.timeout
                        ),
                    ));
                }
            },
            None => ROLLOUT_POLL,
        };
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser as _;

    use super::super::{Cli, Command};
    use super::*;

    #[test]
    fn rollout_status_takes_watch_false_and_a_timeout() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Rollout(RolloutCommand::Status(o))) => Ok((o.bundle, o.watch, o.timeout)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        assert_eq!(
            parse(&["onprem", "rollout", "status", "bundle/fans"]),
            Ok(("bundle/fans".into(), true, "0".into()))
        );
        assert_eq!(
            parse(&["onprem", "rollout", "status", "fans", "--watch=false"]),
            Ok(("fans".into(), false, "0".into()))
        );
        assert_eq!(
            parse(&[
                "onprem",
                "rollout",
                "status",
                "-w",
                "fans",
                "--timeout",
                "2m"
            ]),
            Ok(("fans".into(), true, "2m".into()))
        );
        assert!(parse(&["onprem", "rollout", "status", "fans", "--watch=maybe"]).is_err());
    }

    #[test]
    fn completion_scripts_name_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = String::from_utf8(completion_script(shell)).unwrap();
            for word in ["rollout", "whoami", "sort-by", "enrol-token-file"] {
                assert!(s.contains(word), "{shell:?} lacks {word}");
            }
        }
    }
}
