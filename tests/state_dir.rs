//! The control plane's and the agent's state directories stay private
//! whatever the umask: the real binary started under `umask 000`, its
//! directory 0700 and the files that hold secrets or state 0600 (the
//! SQLite database with its `-wal` and `-shm`, keys, tokens, bundles, the
//! power loop's `power-state.json`); a directory left open by an older
//! release or a restore is tightened at start and the log says so; one
//! that belongs to another user is refused by the control plane, while
//! the agent says so and runs on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any one condition may take to come true.
const LIMIT: Duration = Duration::from_secs(60);

/// The real binary as a child process, started with `umask 000`, its
/// output lines collected as they come.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onprem"));
        cmd.args(args)
            .env_remove("ONPREM_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: umask is async-signal-safe and touches no memory.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    eprintln!("[onprem] {l}");
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Proc { child, lines }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a line contains `needle`.
    fn wait_line(&self, needle: &str) {
        let deadline = Instant::now() + LIMIT;
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} within {LIMIT:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for it to exit on its own: its status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "still running:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and its exit.
    fn term(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        assert!(self.wait_exit().success(), "{}", self.text());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(files(&p));
        } else if m.is_file() {
            out.push(p);
        }
    }
    out
}

/// The control plane's state directory as it must be: 0700, its secret
/// files 0600 (the database's `-wal` and `-shm` there, as while it
/// runs), nothing writable by others.
fn control_plane_state_is_private(state: &Path) {
    assert_eq!(mode(state), 0o700, "{}", state.display());
    for f in ["onprem.db-wal", "onprem.db-shm"] {
        assert!(state.join(f).is_file(), "no {f} while it runs");
    }
    for f in onprem::controlplane::PRIVATE_FILES {
        let p = state.join(f);
        assert!(p.is_file(), "no {f}");
        assert_eq!(mode(&p), 0o600, "{f}");
    }
    for p in files(state) {
        assert_eq!(mode(&p) & 0o022, 0, "{} is writable by others", p.display());
    }
}

fn control_plane(state: &Path) -> Proc {
    let p = Proc::start(&[
        "control-plane",
        "--state-dir",
        state.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    p.wait_line("onprem control plane listening on");
    p
}

#[test]
fn a_control_plane_keeps_its_state_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cp");
    let mut cp = control_plane(&state);
    control_plane_state_is_private(&state);
    assert!(!cp.text().contains("tightened"), "{}", cp.text());
    cp.term();

    // Left open (an older release, a restore from a backup): tightened
    // at the next start, and the log says which.
    chmod(&state, 0o777);
    for (f, m) in [
        ("onprem.db", 0o644),
        ("ca.key", 0o644),
        ("admin.token", 0o666),
    ] {
        chmod(&state.join(f), m);
    }
    let cp = control_plane(&state);
    control_plane_state_is_private(&state);
    let log = cp.text();
    assert!(
        log.contains("control plane's state directory was open to other users: tightened")
            && log.contains("was=0777"),
        "{log}"
    );
    for f in ["onprem.db", "ca.key", "admin.token"] {
        assert!(
            log.lines()
                .any(|l| l.contains("tightened") && l.contains(&*state.join(f).to_string_lossy())),
            "no line for {f}: {log}"
        );
    }
}

/// A directory of another user's: one chowned to `nobody` when the test
/// runs as root, else `/` (root's).
fn someone_elses(dir: &Path) -> PathBuf {
    let ours = std::fs::metadata(dir).unwrap().uid();
    if ours == 0 {
        let d = dir.join("theirs");
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
        d
    } else {
        PathBuf::from("/")
    }
}

#[test]
fn a_state_directory_of_another_user_is_refused_by_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = someone_elses(dir.path());
    let mut cp = Proc::start(&[
        "control-plane",
        "--state-dir",
        theirs.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let status = cp.wait_exit();
    assert!(!status.success(), "{}", cp.text());
    let log = cp.text();
    assert!(
        log.contains(&format!("{}: owned by uid", theirs.display()))
            && log.contains("not by this user")
            && log.contains("--state-dir"),
        "{log}"
    );
    assert!(!theirs.join("onprem.db").exists(), "it wrote there");
}

fn agent(state: &Path) -> Proc {
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples/bitscope-blade.yaml");
    let config = common::fixtures().join("agent-empty.yaml");
    let p = Proc::start(&[
        "agent",
        &format!("--config={}", config.display()),
        "--hardware=sim",
        &format!("--bundle={}", bundle.display()),
        &format!("--state-dir={}", state.display()),
        "--web.listen-address=127.0.0.1:0",
        "--collector.disable-defaults",
        "--collector.loops",
    ]);
    p.wait_line("listening");
    p
}

#[test]
fn an_agent_keeps_its_state_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o777);
    let a = agent(&state);
    // The power loop records its switches once it has run.
    let record = state.join(onprem::agent::power::STATE_FILE);
    let deadline = Instant::now() + LIMIT;
    while !record.is_file() {
        assert!(
            Instant::now() < deadline,
            "no {}: {}",
            record.display(),
            a.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(mode(&state), 0o700);
    assert!(
        a.text()
            .contains("agent's state directory was open to other users: tightened"),
        "{}",
        a.text()
    );
    let all = files(&state);
    assert!(
        all.iter().any(|p| p.starts_with(state.join("bundles"))),
        "no bundle stored: {all:?}"
    );
    for p in all {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

#[test]
fn an_agent_in_a_state_directory_of_another_user_says_so_and_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = someone_elses(dir.path());
    let a = agent(&theirs);
    assert!(
        a.text()
            .contains("the state directory is not private; running on")
            && a.text().contains("owned by uid"),
        "{}",
        a.text()
    );
    if theirs != Path::new("/") {
        // Never tightened: not ours to change.
        assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 65534);
    }
}
