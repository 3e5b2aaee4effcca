//! A simulated node from start to end: its sensors read what its bundle
//! says from the first sample, and every way it ends (SIGTERM, the demo's
//! end) removes the world's temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use onprem_hal::inventory::{Handle, Hardware, Inventory};
use onprem_hal::sim::world::World;

/// How long any one condition may take to come true.
const LIMIT: Duration = Duration::from_secs(60);

/// The `cm4-adc-signals` example's line pressure: its first samples, in
/// bar, are the transmitter's swing (3.4–6.6 bar), never the ADC's
/// default input, which read as 10.8 bar fired `pressure-high` (above
/// 8.5 bar) at every start of the demo.
#[test]
fn the_adc_example_reads_its_transmitter_from_the_first_sample() {
    let text = onprem::bundle::examples::get("cm4-adc-signals").unwrap();
    let bundle = onprem::bundle::parse(text).unwrap();
    let resolved = onprem::bundle::validate(&bundle, None).unwrap();
    let spec = resolved.hardware;
    let src = bundle.spec.signals.sources[0].clone();
    assert_eq!(src.name, "line-pressure");
    let rule = &bundle.spec.checks.rules[1];
    assert_eq!(rule.name, "pressure-high");
    let threshold = rule.threshold;
    // A signal on what is not an ADC input is refused, with its path.
    let mut wrong = spec.clone();
    wrong.sim.signals[0].device = "flow-pulses".into();
    let errs = onprem_hal::inventory::validate(&wrong);
    assert!(
        errs.iter().any(|e| e.path == "sim.signals[0].device"),
        "{errs:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&spec, dir.path()).unwrap();
    let mut inv = Inventory::build(&spec, &Hardware::Sim(world));
    let Ok(Handle::Signal(adc)) = &mut inv.get_mut("pressure-adc").unwrap().handle else {
        panic!("pressure-adc is not a signal source")
    };
    let mut bars = Vec::new();
    let deadline = std::time::Instant::now() + LIMIT;
    while bars.len() < 20 {
        assert!(std::time::Instant::now() < deadline, "no samples");
        if let Some(v) = adc.poll_sample().unwrap() {
            bars.push(v * src.scale + src.offset);
        }
    }
    for b in &bars {
        assert!(
            (3.3..=6.7).contains(b) && *b < threshold,
            "line pressure {b:.2} bar in the first samples {bars:.2?}"
        );
    }
}

/// The `onprem-sim-<pid>-*` and `onprem-demo-<pid>` directories under
/// `tmp`.
fn sim_dirs(tmp: &Path, pid: u32) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with(&format!("onprem-sim-{pid}-")) || *n == format!("onprem-demo-{pid}")
        })
        .collect()
}

/// Polls `f` every 50 ms until it holds; panics after [`LIMIT`].
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + LIMIT;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {LIMIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An agent on simulated hardware, stopped with SIGTERM, leaves no
/// directory of its world behind (the examples cover ADCs and GPIO,
/// serial ptys, a UPS, the fake NVML library).
#[test]
fn an_agent_on_simulated_hardware_removes_its_world_when_stopped() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples");
    for name in [
        "cm4-adc-signals",
        "bitscope-blade",
        "pi-ups-shutdown",
        "gpu-server-pid",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let args = vec![
            "--hardware=sim".to_owned(),
            format!(
                "--bundle={}",
                examples.join(format!("{name}.yaml")).display()
            ),
            format!("--state-dir={}", dir.path().join("state").display()),
        ];
        let t = tmp.clone();
        let mut agent = common::Agent::start_with(&args, |c| {
            c.env("TMPDIR", &t);
        });
        let pid = agent.child.id();
        until(&format!("{name}: its simulated world"), || {
            !sim_dirs(&tmp, pid).is_empty()
        });
        agent.signal("TERM");
        let status = agent.wait_exit(LIMIT);
        assert!(status.success(), "{name}: exit {status}");
        assert_eq!(
            sim_dirs(&tmp, pid),
            Vec::<String>::new(),
            "{name}: left behind after SIGTERM"
        );
    }
}

/// `onprem demo --duration N`: at its end no directory of its worlds
/// remains, and no node fired an alert its scenario does not call for
/// (the line pressure peak at the start).
#[test]
fn the_demo_ends_without_leaving_worlds_or_firing_a_spurious_alert() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(["demo", "--duration", "15"])
        .env("TMPDIR", &tmp)
        .env("HOME", dir.path())
        .env_remove("ONPREM_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{}\n{text}", out.status);
    assert!(text.contains("t=   10s"), "the demo ran 15 s:\n{text}");
    assert!(
        !text.contains("pressure-high firing"),
        "a spurious alert:\n{text}"
    );
    assert_eq!(sim_dirs(&tmp, pid), Vec::<String>::new(), "{text}");
}

/// `onprem demo | head -1`: the demo ends quietly (141) when its output
/// is gone, an exit that runs no destructor; its directories go all the
/// same.
#[test]
fn the_demo_removes_its_worlds_when_its_output_is_closed() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(["demo", "--duration", "60"])
        .env("TMPDIR", &tmp)
        .env("HOME", dir.path())
        .env_remove("ONPREM_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    {
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("onprem demo:"), "{first:?}");
        assert!(!sim_dirs(&tmp, pid).is_empty(), "the worlds are up");
    }
    let mut status = None;
    until("the demo to exit on its closed output", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(141));
    assert_eq!(sim_dirs(&tmp, pid), Vec::<String>::new());
}
