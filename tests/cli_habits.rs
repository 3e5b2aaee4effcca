//! What kubectl users reach for, as a script uses it: the real `onprem`
//! binary against a control plane on loopback. `version` (client and
//! server, with commits), `whoami`, `logout`, `completion bash|zsh|fish`
//! (loaded by the shells that are installed), `get -w`, `--sort-by`,
//! `-o jsonpath=`, `rollout status`, and an agent that enrols with its
//! token on standard input (`--enrol-token-file -`), not on its command
//! line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cli::{Run, expect};
use common::fleet::{bundle_record, enrol_token, start_agent, until};
use onprem::controlplane;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_onprem");

/// Runs `shell -c script` with `$ONPREM` the binary.
fn shell(shell: &str, script: &str) -> Run {
    let out = Command::new(shell)
        .arg("-c")
        .arg(script)
        .env("ONPREM", BIN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether `name` runs here.
fn installed(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A child process killed when the test ends, pass or fail.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `onprem ARGS` in the background, its standard output's lines
/// collected as they come.
fn background(config: &Path, args: &[&str]) -> (Killed, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("ONPREM_CONFIG", config)
        .env_remove("ONPREM_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().unwrap();
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            sink.lock().unwrap().push(l);
        }
    });
    (Killed(child), lines)
}

/// The commit as the binary should report it.
fn this_commit() -> &'static str {
    onprem::GIT_COMMIT
}

#[test]
fn the_commit_comes_from_git_in_a_checkout() {
    let c = this_commit();
    assert!(!c.is_empty());
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join(".git").exists();
    // Built from this checkout with git at hand and no override: 12 hex
    // digits of HEAD, perhaps `-dirty`.
    if checkout && installed("git") && std::env::var_os("ONPREM_GIT_COMMIT").is_none() {
        let hex = c.strip_suffix("-dirty").unwrap_or(c);
        assert_eq!(hex.len(), 12, "{c}");
        assert!(hex.chars().all(|x| x.is_ascii_hexdigit()), "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_whoami_logout_and_completion_without_a_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("none.yaml");

    // The client's version and commit; --version says the same.
    let r = expect(&config, &["version", "--client"], 0).await;
    assert_eq!(
        r.stdout,
        format!(
            "Client Version: {} (commit {})\n",
            onprem::VERSION,
            this_commit()
        )
    );
    let r = expect(&config, &["--version"], 0).await;
    assert!(r.stdout.contains(this_commit()), "{r:?}");
    // Not logged in: said plainly, and still 0.
    let r = expect(&config, &["version"], 0).await;
    assert!(r.stdout.starts_with("Client Version: "), "{r:?}");
    assert!(
        r.stdout
            .contains("Server Version: unavailable: not logged in"),
        "{r:?}"
    );
    let r = expect(&config, &["version", "-o", "json"], 0).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["clientVersion"]["commit"], this_commit());
    assert_eq!(v["clientVersion"]["version"], onprem::VERSION);
    assert!(v["serverVersion"].is_null());
    assert!(
        v["serverError"].as_str().unwrap().contains("not logged in"),
        "{v}"
    );
    let r = expect(&config, &["version", "--client", "-o", "yaml"], 0).await;
    assert!(r.stdout.contains("clientVersion:") && !r.stdout.contains("server"));

    // whoami: 4; logout: nothing to do, 0.
    let r = expect(&config, &["whoami"], 4).await;
    assert!(r.stderr.contains("onprem login"), "{r:?}");
    let r = expect(&config, &["logout"], 0).await;
    assert!(r.stdout.contains("not logged in"), "{r:?}");

    // Bad templates and sort keys: 2, saying what is wrong, before asking
    // anyone.
    let r = expect(
        &config,
        &["get", "devices", "-o", "jsonpath={.items[*].name"],
        2,
    )
    .await;
    assert!(
        r.stderr.contains("jsonpath") && r.stderr.contains("unclosed"),
        "{r:?}"
    );
    let r = expect(
        &config,
        &["get", "devices", "-o", "jsonpath={range .items[*]}{.name}"],
        2,
    )
    .await;
    assert!(r.stderr.contains("{end}"), "{r:?}");
    let r = expect(&config, &["get", "devices", "-o", "xml"], 2).await;
    assert!(r.stderr.contains("jsonpath=TEMPLATE"), "{r:?}");
    let r = expect(&config, &["get", "devices", "--sort-by", "{.name"], 2).await;
    assert!(r.stderr.contains("--sort-by"), "{r:?}");
    let r = expect(&config, &["rollout", "status", "device/x"], 2).await;
    assert!(r.stderr.contains("bundle/NAME"), "{r:?}");

    // bash loads the script and completes from it.
    let r = shell(
        "bash",
        r#"source <("$ONPREM" completion bash) && complete -p onprem &&
           COMP_WORDS=(onprem rol); COMP_CWORD=1; _onprem onprem rol onprem; echo "[${COMPREPLY[*]}]";
           COMP_WORDS=(onprem get devices --sort); COMP_CWORD=3; _onprem onprem --sort devices; echo "[${COMPREPLY[*]}]";
           COMP_WORDS=(onprem get devices -o j); COMP_CWORD=4; _onprem onprem j -o; echo "[${COMPREPLY[*]}]""#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("-F _onprem onprem"), "{r:?}");
    assert!(r.stdout.contains("[rollout]"), "{r:?}");
    assert!(r.stdout.contains("[--sort-by]"), "{r:?}");
    assert!(r.stdout.contains("[json jsonpath=]"), "{r:?}");
    // zsh and fish (scripts/test.sh installs both): loaded for real.
    let zsh = expect(&config, &["completion", "zsh"], 0).await.stdout;
    assert!(zsh.starts_with("#compdef onprem"), "{zsh:.200}");
    assert!(
        installed("zsh"),
        "zsh is missing: run `bash scripts/test.sh`"
    );
    {
        let r = shell(
            "zsh",
            r#"autoload -U compinit && compinit -u -D && source <("$ONPREM" completion zsh) && whence -w _onprem"#,
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout.trim(), "_onprem: function", "{r:?}");
    }
    let fish = expect(&config, &["completion", "fish"], 0).await.stdout;
    assert!(fish.contains("complete -c onprem"), "{fish:.200}");
    assert!(fish.contains("rollout") && fish.contains("sort-by"));
    assert!(
        installed("fish"),
        "fish is missing: run `bash scripts/test.sh`"
    );
    {
        let r = shell(
            "fish",
            r#"$ONPREM completion fish | source; complete -C 'onprem rol'; complete -C 'onprem get devices --sort'"#,
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.starts_with("rollout\t"), "{r:?}");
        assert!(r.stdout.contains("--sort-by\t"), "{r:?}");
    }
    expect(&config, &["completion", "powershell"], 2).await;
    let r = expect(&config, &["completion", "tcsh"], 2).await;
    assert!(r.stderr.contains("tcsh"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_its_enrolment_token_from_a_file_or_stdin_and_says_which_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let agent = |token_file: &str, stdin: &str| {
        let state = dir.path().join("state");
        let mut child = Command::new(BIN)
            .args([
                "agent",
                "--config",
                "/dev/null",
                "--hardware",
                "sim",
                "--web.listen-address",
                "127.0.0.1:0",
                "--control-plane",
                "https://127.0.0.1:9",
                "--ca-fingerprint",
                &format!("sha256:{}", "0".repeat(64)),
                "--state-dir",
                state.to_str().unwrap(),
                "--enrol-token-file",
                token_file,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = dir.path().join("missing.token");
    let (code, err) = agent(missing.to_str().unwrap(), "");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--enrol-token-file") && err.contains("missing.token"),
        "{err}"
    );
    let empty = write(dir.path(), "empty.token", " \n\n");
    let (code, err) = agent(empty.to_str().unwrap(), "");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--enrol-token-file") && err.contains("empty"),
        "{err}"
    );
    let (code, err) = agent("-", "\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("standard input is empty"), "{err}");
    // Not both.
    let r = expect(
        &dir.path().join("none.yaml"),
        &["agent", "--enrol-token", "t", "--enrol-token-file", "f"],
        2,
    )
    .await;
    assert!(r.stderr.contains("cannot be used with"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_habits_against_a_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let mut o = controlplane::Options::for_tests(dir.path().join("cp"));
    o.heartbeat_seconds = 1;
    let cp = controlplane::start(o, stop.clone()).await.unwrap();
    let url = cp.url();
    let admin = cp.admin_token.clone().unwrap();
    let config = dir.path().join("admin.yaml");
    expect(
        &config,
        &[
            "login",
            &url,
            "--token",
            &admin,
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        0,
    )
    .await;

    // whoami: the user, role, token and control plane.
    let r = expect(&config, &["whoami"], 0).await;
    assert!(r.stdout.contains("User:          admin\n"), "{r:?}");
    assert!(r.stdout.contains("Role:          admin\n"), "{r:?}");
    assert!(
        r.stdout.contains(&format!("Control plane: {url}\n")),
        "{r:?}"
    );
    let r = expect(&config, &["whoami", "-o", "json"], 0).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["controlPlane"], url.as_str());
    assert_eq!(v["role"], "admin");
    assert!(!v["tokenId"].as_str().unwrap().is_empty());

    // version: the control plane's too, with its commit.
    let r = expect(&config, &["version"], 0).await;
    assert_eq!(
        r.stdout,
        format!(
            "Client Version: {v} (commit {c})\nServer Version: {v} (commit {c}) at {url}\n",
            v = onprem::VERSION,
            c = this_commit()
        )
    );
    let r = expect(&config, &["version", "-o", "json"], 0).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["serverVersion"]["commit"], this_commit());
    assert_eq!(v["serverVersion"]["url"], url.as_str());

    // An agent enrols with its token on standard input: the token is not
    // on its command line.
    let token = enrol_token(&cp, &[("board", "pi5"), ("who", "a")]);
    let state = dir.path().join("node-a");
    let args: Vec<String> = [
        "agent",
        "--config",
        "/dev/null",
        "--hardware",
        "sim",
        "--web.listen-address",
        "127.0.0.1:0",
        "--collector.disable-defaults",
        "--collector.loops",
        "--control-plane",
        &url,
        "--ca-fingerprint",
        &cp.ca_fingerprint,
        "--state-dir",
        state.to_str().unwrap(),
        "--device-name",
        "node-a",
        "--enrol-token-file",
        "-",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert!(!args.iter().any(|a| a.contains(&token)));
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("  {token}\n").as_bytes())
        .unwrap();
    let _node_a = Killed(child);
    // A second node in this process, to stop later.
    let b_stop = CancellationToken::new();
    let b_token = enrol_token(&cp, &[("board", "pi5"), ("who", "b")]);
    start_agent(&cp, dir.path(), "node-b", &b_token, &b_stop).await;
    until("both nodes online", Duration::from_secs(60), || {
        let ds = cp.core.devices();
        (ds.iter().filter(|d| d.online).count() == 2).then_some(())
    })
    .await;
    let r = expect(
        &config,
        &["get", "devices", "--sort-by=.metadata.name", "-o", "name"],
        0,
    )
    .await;
    assert_eq!(r.stdout, "device/node-a\ndevice/node-b\n");

    // Records to sort: positions sort as numbers (2, 9, 10), labels
    // through metadata.
    let records = write(
        dir.path(),
        "chassis.yaml",
        "apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: lab}\nspec: {}\n---\n\
         apiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: a, labels: {order: \"2\"}}\nspec: {facility: lab, rack: r3, position: 10}\n---\n\
         apiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: b, labels: {order: \"3\"}}\nspec: {facility: lab, rack: r1, position: 9}\n---\n\
         apiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: c, labels: {order: \"1\"}}\nspec: {facility: lab, rack: r2, position: 2}\n",
    );
    expect(&config, &["apply", "-f", records.to_str().unwrap()], 0).await;
    let r = expect(&config, &["get", "chassis", "-o", "name"], 0).await;
    assert_eq!(r.stdout, "chassis/a\nchassis/b\nchassis/c\n");
    let r = expect(
        &config,
        &["get", "chassis", "--sort-by=.spec.position", "-o", "name"],
        0,
    )
    .await;
    assert_eq!(r.stdout, "chassis/c\nchassis/b\nchassis/a\n");
    let r = expect(
        &config,
        &["get", "chassis", "--sort-by", "{.metadata.labels.order}"],
        0,
    )
    .await;
    let names: Vec<&str> = r
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["c", "a", "b"], "{r:?}");
    let r = expect(&config, &["get", "chassis", "--sort-by=.nosuch"], 2).await;
    assert!(
        r.stderr.contains("no chassis have the field .nosuch"),
        "{r:?}"
    );

    // -o jsonpath: on the list (items), with ranges; on one record.
    let r = expect(
        &config,
        &["get", "chassis", "-o", "jsonpath={.items[*].metadata.name}"],
        0,
    )
    .await;
    assert_eq!(r.stdout, "a b c");
    let r = expect(
        &config,
        &[
            "get",
            "chassis",
            "--sort-by=.spec.position",
            "-o",
            r#"jsonpath={range .items[*]}{.name}={.spec.position}{"\n"}{end}"#,
        ],
        0,
    )
    .await;
    assert_eq!(r.stdout, "c=2\nb=9\na=10\n");
    let r = expect(
        &config,
        &["get", "chassis", "-o", "jsonpath={.items[-1].spec.rack}"],
        0,
    )
    .await;
    assert_eq!(r.stdout, "r2");
    let r = expect(
        &config,
        &[
            "get",
            "devices",
            "-o",
            r#"jsonpath={.items[?(@.name=="node-b")].labels.who}"#,
        ],
        0,
    )
    .await;
    assert_eq!(r.stdout, "b");
    let r = expect(
        &config,
        &[
            "get",
            "chassis",
            "a",
            "-o",
            "jsonpath={.kind}/{.metadata.name}: {.spec.rack}",
        ],
        0,
    )
    .await;
    assert_eq!(r.stdout, "Chassis/a: r3");
    let r = expect(
        &config,
        &["describe", "device", "node-a", "-o", "jsonpath={.name}"],
        0,
    )
    .await;
    assert_eq!(r.stdout, "node-a");

    // get -w: the list, then a row for what changed, and none for what
    // only got older.
    let (_watch, lines) = background(&config, &["get", "chassis", "-w"]);
    until("the listed chassis", Duration::from_secs(30), || {
        (lines.lock().unwrap().len() >= 4).then_some(())
    })
    .await;
    {
        let l = lines.lock().unwrap();
        assert!(l[0].starts_with("NAME"), "{l:?}");
        assert!(l[1].starts_with("a ") && l[3].starts_with("c "), "{l:?}");
    }
    let generation = |l: &str| l.split_whitespace().nth(2).map(str::to_owned);
    let changed = write(
        dir.path(),
        "b.yaml",
        "apiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: b, labels: {order: \"3\"}}\nspec: {facility: lab, rack: r7, position: 9}\n",
    );
    expect(&config, &["apply", "-f", changed.to_str().unwrap()], 0).await;
    until("b's changed row", Duration::from_secs(30), || {
        let l = lines.lock().unwrap();
        l[4..]
            .iter()
            .any(|x| x.starts_with("b ") && generation(x).as_deref() == Some("2"))
            .then_some(())
    })
    .await;
    let changed = write(
        dir.path(),
        "c.yaml",
        "apiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: c, labels: {order: \"1\"}}\nspec: {facility: lab, rack: r8, position: 2}\n",
    );
    expect(&config, &["apply", "-f", changed.to_str().unwrap()], 0).await;
    until("c's changed row", Duration::from_secs(30), || {
        let l = lines.lock().unwrap();
        l[4..].iter().any(|x| x.starts_with("c ")).then_some(())
    })
    .await;
    {
        let l = lines.lock().unwrap();
        let after: Vec<&String> = l[4..].iter().collect();
        assert_eq!(after.len(), 2, "only the changed rows: {l:#?}");
        assert!(
            after[0].starts_with("b ") && after[1].starts_with("c "),
            "{l:#?}"
        );
    }
    // -o json: an object per line.
    let (_watch, lines) = background(&config, &["get", "chassis", "a", "-w", "-o", "json"]);
    let first = until("a as JSON", Duration::from_secs(30), || {
        lines.lock().unwrap().first().cloned()
    })
    .await;
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["name"], "a");

    // rollout status: follows to Complete, 0.
    let fans = write(
        dir.path(),
        "fans.yaml",
        &bundle_record("fans", "{matchLabels: {who: a}}", ""),
    );
    expect(&config, &["apply", "-f", fans.to_str().unwrap()], 0).await;
    let r = expect(
        &config,
        &["rollout", "status", "bundle/fans", "--timeout", "2m"],
        0,
    )
    .await;
    assert!(
        r.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("bundle \"fans\" version 1 rolled out (Complete)"),
        "{r:?}"
    );
    let r = expect(&config, &["rollout", "status", "fans", "--watch=false"], 0).await;
    assert!(r.stdout.contains("(Complete)"), "{r:?}");
    // A staged rollout to a node that is gone: --timeout first, then it
    // halts at its deadline: 1, with why.
    b_stop.cancel();
    until("node-b offline", Duration::from_secs(60), || {
        cp.core
            .devices()
            .iter()
            .any(|d| d.device.name == "node-b" && !d.online)
            .then_some(())
    })
    .await;
    let halt = write(
        dir.path(),
        "halt.yaml",
        &bundle_record(
            "halt",
            "{matchLabels: {who: b}}",
            "  rollout: {strategy: Staged, progressDeadline: 4s}\n",
        ),
    );
    expect(&config, &["apply", "-f", halt.to_str().unwrap()], 0).await;
    let r = expect(
        &config,
        &["rollout", "status", "halt", "--timeout", "1s"],
        1,
    )
    .await;
    assert!(r.stdout.contains("waiting for bundle \"halt\""), "{r:?}");
    assert!(r.stderr.contains("timed out after 1s"), "{r:?}");
    let r = expect(&config, &["rollout", "status", "bundle/halt"], 1).await;
    assert!(r.stderr.contains("rollout Halted"), "{r:?}");
    let r = expect(&config, &["rollout", "status", "halt", "--watch=false"], 1).await;
    assert!(r.stderr.contains("rollout Halted"), "{r:?}");
    expect(&config, &["rollout", "status", "nosuch"], 6).await;

    // A control plane that does not answer: version says so and exits 0,
    // whoami exits 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let dead = write(
        dir.path(),
        "dead.yaml",
        &std::fs::read_to_string(&config)
            .unwrap()
            .replace(&url, &dead_url),
    );
    let r = expect(&dead, &["version"], 0).await;
    assert!(r.stdout.starts_with("Client Version: "), "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "Server Version: unavailable: cannot reach the control plane at {dead_url}"
        )),
        "{r:?}"
    );
    expect(&dead, &["whoami"], 3).await;

    // logout: forgets the login, says so; again: nothing to do.
    let r = expect(&config, &["logout"], 0).await;
    assert!(
        r.stdout.starts_with(&format!("logged out of {url}")),
        "{r:?}"
    );
    assert!(!config.exists());
    let r = expect(&config, &["logout"], 0).await;
    assert!(r.stdout.contains("not logged in"), "{r:?}");
    expect(&config, &["whoami"], 4).await;
    stop.cancel();
}
