//! `onprem demo`: the whole system on one machine, with no hardware.
//!
//! A control plane and several simulated nodes run in one process, on
//! loopback. The control plane is the real one (its own CA, SQLite store
//! and TLS port, in a scratch directory); each node is a whole agent
//! (`--hardware sim`) with its own listener and state directory that
//! enrols with a one-time token and dials home over mutual TLS. One
//! Bundle record per node (an example bundle built into the binary, with
//! a selector on the label its enrolment token gave it) is applied at the
//! control plane, signed, delivered and verified; the demo waits until
//! every node converged (desired = current), then prints the CLI commands
//! that work against it from another terminal. In every node's simulated
//! world each chip is emulated at the register level and read by the real
//! drivers; the first node also serves this machine's real `/proc` and
//! `/sys` metrics, as node_exporter would. A scenario makes the loops
//! work: the load steps to 100 % on every node, the UPS node loses mains,
//! a pressure transmitter on the CM4's ADC swings and its flow meter
//! pulses. A summary per node (temperatures, zone duties, battery,
//! signals, loop conditions, firing alerts, host actions) prints until
//! Ctrl-C or `--duration`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::{self, Flags};
use crate::bundle::examples::{self, EXAMPLES};
use crate::controlplane;
use crate::httpc::Client;
use crate::hw::poller::Hub;
use crate::proto::v1 as pb;

/// The nodes the demo runs unless told otherwise.
pub const DEFAULT_NODES: &str = "pi5-fan-curve,gpu-server-pid,pi-ups-shutdown,cm4-adc-signals";

/// Options of `onprem demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Address of the first node's agent (the others take free ports on
    /// the same host).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Address of the control plane (port 0: a free one).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    pub control_plane_listen: SocketAddr,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Seconds between summaries.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub every: f64,
    /// The example bundles to run, one simulated node each (`all` for
    /// every example).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', default_value = DEFAULT_NODES)]
    pub nodes: Vec<String>,
    /// Seconds after the nodes converged when the load steps to 100 % on
    /// every node (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub load_step: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "127.0.0.1:0".into(),
            control_plane_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            duration: None,
            every: 2.0,
            nodes: DEFAULT_NODES.split(',').map(str::to_owned).collect(),
            load_step: 20.0,
        }
    }
}

/// When the UPS node's mains fail, seconds after its bundle applied.
const MAINS_LOST_AT: f64 = 20.0;
/// The UPS node's battery in the demo, Wh: small, so that the protective
/// shutdown comes within a minute of the mains loss.
const DEMO_BATTERY_WH: f64 = 0.4;
/// How long enrolment and convergence may take before the demo gives up.
const SETTLE: Duration = Duration::from_secs(90);

/// One simulated node.
struct Node {
    name: String,
    addr: SocketAddr,
    hub: Option<Arc<Mutex<Option<Hub>>>>,
    task: JoinHandle<Result<(), agent::Error>>,
    /// What the demo changed in the node's world, for the header.
    scenario: Vec<String>,
}

impl Node {
    fn hub(&self) -> Option<Hub> {
        self.hub
            .as_ref()
            .and_then(|h| h.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The demo's directory (`$TMPDIR/onprem-demo-PID`), removed when the
/// demo ends, however it ends: the second field's drop, or
/// [`crate::hw::remove_temporary_dirs`] on an exit without destructors.
struct Scratch(PathBuf, #[allow(dead_code)] crate::hw::TempDir);

/// Waits for `f` to hold, up to [`SETTLE`] or until `shutdown`.
async fn settle(
    what: &str,
    shutdown: &CancellationToken,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !f() {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: not within {} s", SETTLE.as_secs());
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("{what}: stopped"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    Ok(())
}

/// The devices not converged, each with its state and why:
/// `gpu-server-pid Degraded: loops not ready: fans: Failsafe (…)`.
fn not_converged(fleet: &[crate::controlplane::core::DeviceView]) -> String {
    fleet
        .iter()
        .filter(|d| !d.converged)
        .map(|d| {
            format!(
                "{} {}: {}",
                d.device.name,
                d.health.state.as_str(),
                d.health.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs the demo until `shutdown` is cancelled or the duration passes.
pub async fn run(opts: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let names = node_names(&opts.nodes)?;
    let scratch = {
        let dir = crate::hw::TempDir::create(format!("onprem-demo-{}", std::process::id()))?;
        Scratch(dir.path().to_path_buf(), dir)
    };
    let stop = shutdown.child_token();

    // The control plane.
    let mut cp_opts = controlplane::Options::for_tests(scratch.0.join("control-plane"));
    cp_opts.listen = opts.control_plane_listen;
    cp_opts.heartbeat_seconds = 2;
    let cp = controlplane::start(cp_opts, stop.clone()).await?;
    let token = cp
        .admin_token
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the control plane made no admin token"))?;
    let admin = cp
        .core
        .authenticate(Some(&format!("Bearer {token}")))
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // The nodes: each enrols with its own one-time token, labelled with
    // the example it will run.
    let mut nodes = Vec::new();
    let mut records = Vec::new();
    let mut node_bundles = Vec::new();
    // One Redfish administrator on every node, with a password made for
    // this run (only its hash goes into the bundles).
    let redfish_password = {
        let mut b = [0u8; 12];
        getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let redfish_hash = {
        let pw = redfish_password.clone();
        tokio::task::spawn_blocking(move || crate::redfish::auth::hash_password(&pw))
            .await?
            .map_err(|e| anyhow::anyhow!("hashing the Redfish password: {e}"))?
    };
    let mut redfish_at: Vec<SocketAddr> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let listen = if i == 0 {
            opts.listen.clone()
        } else {
            // A loopback address of its own when the first node is on
            // 127.0.0.1 (so that a tunnel to one node reaches it and no
            // other), else the first node's host; a free port.
            let first = nodes.first().map_or_else(
                || std::net::IpAddr::from([127, 0, 0, 1]),
                |n: &Node| n.addr.ip(),
            );
            format!("{}:0", node_ip(first, i))
        };
        // Its Redfish service on the standard port of its address, where
        // that port is free.
        let ip = match listen.parse::<SocketAddr>() {
            Ok(a) => a.ip(),
            Err(_) => std::net::IpAddr::from([127, 0, 0, 1]),
        };
        let rf_at = free_redfish_port(ip)?;
        redfish_at.push(rf_at);
        let enrol = cp
            .core
            .create_token(
                &admin,
                &pb::CreateTokenRequest {
                    r#type: "enrol".into(),
                    labels: [("example".to_owned(), name.clone())].into(),
                    description: format!("demo node {name}"),
                    ..Default::default()
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .token;
        let (record, node_bundle, scenario) = bundle_record(name, &redfish_hash, rf_at)?;
        node_bundles.push(node_bundle);
        records.push(pb::Document {
            source: format!("examples/{name}.yaml"),
            text: record,
        });
        let node = start_node(name, i == 0, &listen, &scratch.0, &cp, &enrol, stop.clone())
            .await
            .map_err(|e| anyhow::anyhow!("node {name}: {e:#}"))?;
        nodes.push(Node { scenario, ..node });
    }
    let n = nodes.len();
    settle("every node enrolled and online", &shutdown, || {
        let d = cp.core.devices();
        d.len() == n && d.iter().all(|d| d.online)
    })
    .await?;

    // Their bundles, applied at the control plane as `onprem apply -f`
    // would, and rolled out.
    // Where they stand, as an operator would record it.
    records.push(pb::Document {
        source: "demo/site.yaml".into(),
        text: site_records(&names),
    });
    let r = cp
        .core
        .apply(&admin, &records, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !r.applied {
        anyhow::bail!(
            "the demo's bundles were refused:\n{}",
            crate::cli::fleet::render_refusals(&r).trim_end()
        );
    }
    if let Err(e) = settle("every node converged", &shutdown, || {
        cp.core.devices().iter().all(|d| d.converged)
    })
    .await
    {
        anyhow::bail!("{e}: {}", not_converged(&cp.core.devices()));
    }
    settle("every node's hardware up", &shutdown, || {
        nodes.iter().all(|n| n.hub().is_some())
    })
    .await?;
    let mut redfish: Vec<Option<String>> = vec![None; nodes.len()];
    let deadline = tokio::time::Instant::now() + SETTLE;
    while redfish.iter().any(Option::is_none) && tokio::time::Instant::now() < deadline {
        for (n, slot) in nodes.iter().zip(redfish.iter_mut()) {
            if slot.is_none() {
                *slot = redfish_address(n.addr).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (node, text) in nodes.iter_mut().zip(&node_bundles) {
        if let Some(world) = node.hub().as_ref().and_then(Hub::world) {
            let resolved = crate::bundle::validate(&crate::bundle::parse(text)?, None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let more = drive_world(&resolved.hardware, &world, stop.clone());
            node.scenario.extend(more);
        }
    }

    let config = scratch.0.join("cli.yaml");
    println!(
        "onprem demo: a control plane and {} simulated nodes, enrolled, each converged on its bundle",
        nodes.len()
    );
    println!("  control plane        {}", cp.url());
    for (i, n) in nodes.iter().enumerate() {
        let extra = if i == 0 {
            " (and this machine's real metrics)"
        } else {
            ""
        };
        println!("  {:<20} http://{}/metrics{extra}", n.name, n.addr);
        if let Some(rf) = &redfish[i] {
            println!("  {:<20} https://{rf}/redfish/v1 (Redfish)", "");
        }
        for s in &n.scenario {
            println!("  {:<20}   scenario: {s}", "");
        }
    }
    if opts.load_step > 0.0 {
        println!(
            "  every node: the load steps from idle to 100 % at {:.0} s",
            opts.load_step
        );
    }
    println!("From another terminal:");
    println!("  export ONPREM_CONFIG={}", config.display());
    println!(
        "  onprem login {} --token-file {} --ca-fingerprint {}",
        cp.url(),
        scratch
            .0
            .join("control-plane")
            .join("admin.token")
            .display(),
        cp.ca_fingerprint
    );
    println!("  onprem get devices -o wide");
    println!("  onprem get bundles");
    println!(
        "  onprem describe device {}",
        nodes.first().map_or("", |n| n.name.as_str())
    );
    println!(
        "  onprem get devices -l example={}",
        names.first().map_or("", String::as_str)
    );
    println!("  onprem watch devices");
    if let Some(rf) = redfish.iter().flatten().next() {
        println!(
            "  redfishtool -r {rf} -u admin -p {redfish_password} -S Always Systems -1   (every node: admin / {redfish_password})"
        );
    }
    // Each node's Redfish service through the control plane and the
    // node's own connection (no inbound port on the node).
    if let (Some(n), Some(at)) = (nodes.first(), redfish_at.first()) {
        let port_flag = |flag: &str, p: u16| {
            if p == crate::cli::nodehttp::REDFISH_PORT {
                String::new()
            } else {
                format!(" {flag} {p}")
            }
        };
        println!(
            "  onprem port-forward device/{} 18443:{}   (then redfishtool -r 127.0.0.1:18443 -u admin -p {redfish_password} -S Always Systems)",
            n.name,
            at.port()
        );
        println!("  export ONPREM_REDFISH_PASSWORD={redfish_password}");
        for (n, at) in nodes.iter().zip(&redfish_at).skip(1).take(1) {
            println!(
                "  onprem curl --device {} /redfish/v1/Systems/1 -u admin{}",
                n.name,
                port_flag("--port", at.port())
            );
            println!(
                "  onprem reset device/{} --type GracefulRestart{}",
                n.name,
                port_flag("--redfish-port", at.port())
            );
            println!(
                "  onprem describe device {} --redfish{}",
                n.name,
                port_flag("--redfish-port", at.port())
            );
        }
    }
    println!("  onprem get alerts; onprem get events");
    println!(
        "  onprem status --address {}",
        nodes
            .first()
            .map_or_else(String::new, |n| n.addr.to_string())
    );
    println!("Press Ctrl-C to stop.\n");

    let start = tokio::time::Instant::now();
    let every = Duration::from_secs_f64(opts.every.max(0.1));
    let deadline = opts
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut stepped = false;
    let mut clients: Vec<(String, Client)> = nodes
        .iter()
        .map(|n| (n.name.clone(), Client::new(n.addr)))
        .collect();
    loop {
        let t = start.elapsed().as_secs_f64();
        if !stepped && opts.load_step > 0.0 && t >= opts.load_step {
            stepped = true;
            for n in &nodes {
                if let Some(w) = n.hub().as_ref().and_then(Hub::world) {
                    w.with_model(|m| {
                        m.set_load(1.0);
                        m.set_gpu_load(1.0);
                    });
                }
            }
            println!("t={t:>5.0}s  load step: every node to 100 %");
        }
        let lines = tokio::task::spawn_blocking(move || {
            let lines: Vec<String> = clients
                .iter_mut()
                .map(|(name, c)| summary(name, c))
                .collect();
            (clients, lines)
        })
        .await?;
        clients = lines.0;
        let fleet = cp.core.devices();
        println!(
            "t={t:>5.0}s  control plane: {}/{} online, {} converged, {} tainted{}",
            fleet.iter().filter(|d| d.online).count(),
            fleet.len(),
            fleet.iter().filter(|d| d.converged).count(),
            fleet.iter().filter(|d| d.device.tainted).count(),
            if fleet.iter().all(|d| d.converged) {
                String::new()
            } else {
                format!("; {}", not_converged(&fleet))
            }
        );
        for l in lines.1 {
            println!("  {l}");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    stop.cancel();
    for n in nodes {
        n.task.await??;
    }
    cp.stop().await;
    drop(scratch);
    println!("onprem demo: stopped (every fan left at its fail-safe duty)");
    Ok(())
}

/// The example names asked for, checked.
fn node_names(asked: &[String]) -> anyhow::Result<Vec<String>> {
    if asked.iter().any(|n| n == "all") {
        return Ok(EXAMPLES.iter().map(|(n, _)| (*n).to_owned()).collect());
    }
    let mut out = Vec::new();
    for n in asked.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if examples::get(n).is_none() {
            let known: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
            anyhow::bail!(
                "--nodes: no example bundle {n:?}; the examples are: {}",
                known.join(", ")
            );
        }
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    if out.is_empty() {
        anyhow::bail!("--nodes: no node to run");
    }
    Ok(out)
}

/// The Bundle record for the node running example `name`: the example
/// with the demo's changes to its simulated world, selecting the devices
/// labelled `example=<name>`; the bundle as the node will run it; and
/// what the demo changed.
fn bundle_record(
    name: &str,
    redfish_hash: &str,
    redfish_at: SocketAddr,
) -> anyhow::Result<(String, String, Vec<String>)> {
    let text = examples::get(name).ok_or_else(|| anyhow::anyhow!("no such example"))?;
    let mut scenario = Vec::new();
    let mut bundle: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    let profile = bundle["spec"]["hardware"]["profile"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if profile == "pi-sixfab-ups" {
        // Mains lost early and a small battery, so that the protective
        // shutdown comes soon (in simulation the node then stays off,
        // its battery kept, until mains returns).
        let sim: serde_yaml_ng::Value = serde_yaml_ng::from_str(&format!(
            "{{ batteryWh: {DEMO_BATTERY_WH}, mainsOutages: [[{MAINS_LOST_AT}, 100000]] }}"
        ))?;
        if let Some(hw) = bundle["spec"]["hardware"].as_mapping_mut() {
            hw.insert("sim".into(), sim);
        }
        scenario.push(format!(
            "mains lost at {MAINS_LOST_AT:.0} s, a {DEMO_BATTERY_WH} Wh battery"
        ));
    }
    if bundle["spec"].get("telemetry").is_none() {
        // Telemetry every 5 s, so that the control plane's live view
        // (`onprem describe device`) fills quickly.
        let t: serde_yaml_ng::Value = serde_yaml_ng::from_str("{interval: 5s}")?;
        if let Some(spec) = bundle["spec"].as_mapping_mut() {
            spec.insert("telemetry".into(), t);
        }
    }
    // Redfish on the node's own address, with the demo's administrator,
    // and its port open to tunnels (`onprem port-forward`, `curl
    // --device`, `reset`).
    let mut rf = serde_yaml_ng::Mapping::new();
    rf.insert("listen".into(), redfish_at.to_string().into());
    let mut account = serde_yaml_ng::Mapping::new();
    account.insert("userName".into(), "admin".into());
    account.insert("role".into(), "Administrator".into());
    account.insert("passwordHash".into(), redfish_hash.into());
    rf.insert(
        "accounts".into(),
        serde_yaml_ng::Value::Sequence(vec![account.into()]),
    );
    let tunnel: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&format!("{{allowedPorts: [{}]}}", redfish_at.port()))?;
    if let Some(spec) = bundle["spec"].as_mapping_mut() {
        spec.insert("redfish".into(), rf.into());
        spec.insert("tunnel".into(), tunnel);
    }
    let node_bundle = serde_yaml_ng::to_string(&bundle)?;
    let selector: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&format!("{{matchLabels: {{example: {name}}}}}"))?;
    if let Some(spec) = bundle["spec"].as_mapping_mut() {
        spec.insert("selector".into(), selector);
    }
    Ok((serde_yaml_ng::to_string(&bundle)?, node_bundle, scenario))
}

/// The demo's site: a facility, the chassis its nodes sit in (a shelf
/// for the boards, a cluster blade, a GPU server's rack unit), and a
/// Device record placing each node.
fn site_records(names: &[String]) -> String {
    let chassis_of = |name: &str| -> &'static str {
        if name.starts_with("bitscope") {
            "blade-1"
        } else if name.starts_with("gpu-server") {
            "gpu-1"
        } else {
            "shelf-1"
        }
    };
    let mut out = String::from(
        "apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: demo-lab}\nspec: {description: onprem demo bench, address: this machine}\n\
         ---\napiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: shelf-1}\nspec: {facility: demo-lab, model: DIN-rail shelf, rack: r1, position: 1}\n\
         ---\napiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: blade-1}\nspec: {facility: demo-lab, model: BitScope Cluster Blade, rack: r1, position: 2}\n\
         ---\napiVersion: onprem/v1\nkind: Chassis\nmetadata: {name: gpu-1}\nspec: {facility: demo-lab, model: 2U GPU server, rack: r2, position: 10}\n",
    );
    for n in names {
        let _ = write!(
            out,
            "---\napiVersion: onprem/v1\nkind: Device\nmetadata: {{name: {n}}}\nspec: {{facility: demo-lab, chassis: {}}}\n",
            chassis_of(n)
        );
    }
    out
}

/// The address of node `i` when the first node is on `first`: a loopback
/// address of its own (127.0.0.2, .3, …) when the first is on 127.0.0.1,
/// else the same.
fn node_ip(first: std::net::IpAddr, i: usize) -> std::net::IpAddr {
    match first {
        std::net::IpAddr::V4(v4) if v4 == std::net::Ipv4Addr::LOCALHOST && i > 0 && i < 250 => {
            std::net::IpAddr::from([127, 0, 0, (i + 1) as u8])
        }
        other => other,
    }
}

/// Where a node's Redfish service listens: the standard port on `ip`
/// when it is free there, else a free one.
fn free_redfish_port(ip: std::net::IpAddr) -> anyhow::Result<SocketAddr> {
    let standard = SocketAddr::new(ip, crate::cli::nodehttp::REDFISH_PORT);
    if std::net::TcpListener::bind(standard).is_ok() {
        return Ok(standard);
    }
    let l = std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .map_err(|e| anyhow::anyhow!("no free port on {ip} for a Redfish service: {e}"))?;
    Ok(l.local_addr()?)
}

/// Where a node's Redfish service listens, from its `/-/status`.
async fn redfish_address(agent: SocketAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let r = Client::new(agent).get("/-/status", &[]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.text()).ok()?;
        v["redfish"]["address"].as_str().map(str::to_owned)
    })
    .await
    .ok()
    .flatten()
}

/// Starts a node's agent: it enrols with `enrol` and dials the control
/// plane, which sends its bundle.
async fn start_node(
    name: &str,
    host_metrics: bool,
    listen: &str,
    scratch: &std::path::Path,
    cp: &controlplane::Handle,
    enrol: &str,
    stop: CancellationToken,
) -> anyhow::Result<Node> {
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir)?;
    let flags = Flags {
        listen_address: Some(listen.to_owned()),
        hardware: Some("sim".into()),
        state_dir: Some(dir.join("state")),
        control_plane: Some(cp.url()),
        enrol_token: Some(enrol.to_owned()),
        ca_fingerprint: Some(cp.ca_fingerprint.clone()),
        device_name: Some(name.to_owned()),
        ..Default::default()
    };
    let mut file = agent::config::File::default();
    if host_metrics {
        if !file.collectors.textfile.directory.is_dir() {
            // No textfile writers on this machine: leave the collector
            // out rather than report an error on every scrape.
            file.collectors.disable.push("textfile".to_owned());
        }
    } else {
        file.collectors.disable_defaults = true;
        file.collectors.enable = vec!["devices".into(), "loops".into()];
    }
    let config = flags.apply(&mut file, None)?;
    let agent = agent::Agent::bind_config(None, config).await?;
    let addr = agent.local_addr();
    let hub = agent.hub_slot();
    let task = tokio::spawn(agent.run(stop));
    Ok(Node {
        name: name.to_owned(),
        addr,
        hub,
        task,
        scenario: Vec::new(),
    })
}

/// Signals for the node's pulse counters (pulses on every GPIO counter),
/// and what its ADC inputs carry.
fn drive_world(
    hardware: &onprem_hal::inventory::Spec,
    world: &onprem_hal::sim::world::World,
    stop: CancellationToken,
) -> Vec<String> {
    use onprem_hal::inventory::spec::Device;
    // The ADC inputs carry the bundle's `hardware.sim.signals` from the
    // world's start (set here, later, the first samples read the model's
    // supply divider instead: a pressure peak that is not there).
    let mut out: Vec<String> = hardware
        .sim
        .signals
        .iter()
        .map(|s| {
            format!(
                "{}: {} V ± {} V, a cycle every {} s",
                s.device, s.volts, s.amplitude, s.period_seconds
            )
        })
        .collect();
    for d in &hardware.devices {
        if let Device::GpioCounter(c) = d {
            let line = world.gpio_line(c.pin);
            let stop = stop.clone();
            // 150 pulses per second (20 L/min on a 450 pulse/L meter).
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    for _ in 0..15 {
                        line.set_level(true);
                        line.advance(Duration::from_micros(3300));
                        line.set_level(false);
                        line.advance(Duration::from_micros(3300));
                    }
                }
            });
            out.push(format!("{}: 150 pulses/s on GPIO {}", c.name, c.pin));
        }
    }
    out
}

/// The label value and value of each sample of `metric`.
fn series<'a>(text: &'a str, metric: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(metric)?;
            let (labels, v) = rest.rsplit_once(' ')?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None;
            }
            let label = labels.split('"').nth(1).unwrap_or("");
            Some((label, v.parse().ok()?))
        })
        .collect()
}

/// The sample of `metric` whose labels contain `has`.
fn sample_with(text: &str, metric: &str, has: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(has))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// One line about one node.
fn summary(name: &str, client: &mut Client) -> String {
    match client.get("/metrics", &[]) {
        Ok(r) if r.status == 200 => describe(name, &r.text()),
        Ok(r) => format!("{name:<20} HTTP {}", r.status),
        Err(e) => format!("{name:<20} scrape failed: {e}"),
    }
}

/// One line about a node, from its metrics.
fn describe(name: &str, text: &str) -> String {
    let mut line = format!("{name:<20}");
    let version = text
        .lines()
        .find(|l| l.starts_with("onprem_bundle_info{"))
        .and_then(|l| l.split("version=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .unwrap_or("-");
    let _ = write!(line, " v{version}");
    let mut temps: Vec<String> = series(text, "onprem_temperature_celsius")
        .into_iter()
        .map(|(d, v)| format!("{d} {v:.1}°C"))
        .collect();
    temps.extend(
        series(text, "onprem_gpu_temperature_celsius")
            .into_iter()
            .map(|(d, v)| format!("{d} {v:.1}°C")),
    );
    if !temps.is_empty() {
        let _ = write!(line, " | {}", temps.join(" "));
    }
    let zones: Vec<String> = series(text, "onprem_fan_zone_duty_percent")
        .into_iter()
        .map(|(z, v)| {
            let fs = sample_with(text, "onprem_fan_zone_failsafe{", &format!("zone=\"{z}\""))
                .is_some_and(|f| f > 0.0);
            format!("zone {z} {v:.0}%{}", if fs { " FAILSAFE" } else { "" })
        })
        .collect();
    if !zones.is_empty() {
        let _ = write!(line, " | {}", zones.join(" "));
    }
    for (b, charge) in series(text, "onprem_battery_charge_ratio") {
        let mains = sample_with(text, "onprem_battery_on_mains{", &format!("device=\"{b}\""));
        let _ = write!(
            line,
            " | {b} {:.0}% {}",
            charge * 100.0,
            if mains == Some(0.0) {
                "on battery"
            } else {
                "on mains"
            }
        );
    }
    if text.lines().any(|l| l == "onprem_power_powered_off 1") {
        line.push_str(" | POWERED OFF until mains returns");
    }
    let signals: Vec<String> = series(text, "onprem_signal_mean")
        .into_iter()
        .map(|(s, v)| format!("{s} {v:.2}"))
        .collect();
    if !signals.is_empty() {
        let _ = write!(line, " | {}", signals.join(" "));
    }
    let loops: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("onprem_loop_condition{loop=\""))
        .filter_map(|l| {
            let (name, rest) = l.split_once('"')?;
            let ready = rest.contains("status=\"True\"");
            Some(if ready {
                name.to_owned()
            } else {
                format!("{name}(not ready)")
            })
        })
        .collect();
    let _ = write!(
        line,
        " | loops {}",
        if loops.is_empty() {
            "-".to_owned()
        } else {
            loops.join(",")
        }
    );
    let mut firing: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("onprem_check_firing{") && l.ends_with(" 1"))
        .filter_map(|l| l.split("check=\"").nth(1)?.split('"').next())
        .collect();
    firing.dedup();
    if !firing.is_empty() {
        let _ = write!(line, " | FIRING {}", firing.join(","));
    }
    let actions: Vec<String> = series(text, "onprem_power_host_actions_total")
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(a, v)| format!("{a}×{v:.0}"))
        .collect();
    if !actions.is_empty() {
        let _ = write!(line, " | host {} (recorded)", actions.join(","));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_pick_nodes_by_name_and_refuse_unknown_ones() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            node_names(&v(&["pi5-fan-curve", "pi5-fan-curve"])).unwrap(),
            v(&["pi5-fan-curve"])
        );
        assert_eq!(node_names(&v(&["all"])).unwrap().len(), EXAMPLES.len());
        let e = node_names(&v(&["pi9"])).unwrap_err().to_string();
        assert!(
            e.contains("--nodes") && e.contains("pi9") && e.contains("gpu-server-pid"),
            "{e}"
        );
        assert!(node_names(&v(&[""])).is_err());
        for n in DEFAULT_NODES.split(',') {
            assert!(examples::get(n).is_some(), "{n}");
        }
    }

    #[test]
    fn can_summarise_a_node_from_its_metrics() {
        let text = "onprem_temperature_celsius{device=\"cpu\"} 52.25\n\
            onprem_fan_zone_duty_percent{zone=\"cpu\"} 37\n\
            onprem_fan_zone_failsafe{zone=\"cpu\"} 1\n\
            onprem_check_firing{battery=\"ups\",check=\"on-battery\",severity=\"warning\"} 1\n";
        assert_eq!(
            series(text, "onprem_temperature_celsius"),
            vec![("cpu", 52.25)]
        );
        assert_eq!(
            series(text, "onprem_fan_zone_duty_percent"),
            vec![("cpu", 37.0)]
        );
        // A metric whose name only starts like another is not taken.
        assert!(series(text, "onprem_fan_zone_duty").is_empty());
        assert_eq!(
            sample_with(text, "onprem_fan_zone_failsafe{", "zone=\"cpu\""),
            Some(1.0)
        );
        let line = describe("pi", text);
        assert_eq!(
            line,
            "pi                   v- | cpu 52.2°C | zone cpu 37% FAILSAFE | loops - | FIRING on-battery"
        );
    }
}
