//! The fleet CLI as a script runs it: the real `onprem` binary as a child
//! process with its own `ONPREM_CONFIG`, no `ONPREM_TOKEN` and no
//! standard input unless given, off the test's runtime.

use std::path::Path;
use std::process::{Command, Stdio};

/// What a CLI run gave.
#[derive(Debug)]
pub struct Run {
    /// Its exit status (-1: killed by a signal).
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `onprem ARGS` with `ONPREM_CONFIG=config`.
pub async fn onprem(config: &Path, args: &[&str]) -> Run {
    onprem_with(config, args, &[], None).await
}

/// The same with more environment variables.
pub async fn onprem_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    onprem_with(config, args, env, None).await
}

/// The same with `input` on its standard input.
pub async fn onprem_stdin(config: &Path, args: &[&str], input: &str) -> Run {
    onprem_with(config, args, &[], Some(input)).await
}

/// Runs and insists on exit `code`.
pub async fn expect(config: &Path, args: &[&str], code: i32) -> Run {
    let r = onprem(config, args).await;
    assert_eq!(r.code, code, "onprem {args:?}: {r:#?}");
    r
}

async fn onprem_with(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&str>,
) -> Run {
    use std::io::Write as _;
    let config = config.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let input = input.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .args(&args)
            .env("ONPREM_CONFIG", &config)
            .env_remove("ONPREM_TOKEN")
            .env_remove("VISUAL")
            .envs(env)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    })
    .await
    .unwrap()
}
