//! `onprem demo`: the whole system on one machine, with no hardware.
//!
//! Today it starts an agent on loopback with the real collectors of this
//! machine and a simulated node's hardware (`--profile`, every chip
//! emulated and driven by the physical model, read by the real drivers),
//! prints its URL and a live summary (families, samples, scrape time,
//! devices up, temperatures) until Ctrl-C. Later it grows a control plane
//! and more simulated nodes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::agent::{self, Flags};
use crate::httpc::Client;

/// Options of `onprem demo`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// Address for the demo agent (default: a free port on 127.0.0.1).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Seconds between summary lines.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub every: f64,
    /// The hardware profile the demo node simulates (`onprem hw profiles`).
    #[arg(long, value_name = "NAME", default_value = "pi-sixfab-ups")]
    pub profile: String,
}

/// Runs the demo until `shutdown` is cancelled or the duration passes.
pub async fn run(opts: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The demo never reads the node's config file: it shows defaults.
    let flags = Flags {
        listen_address: Some(opts.listen.clone()),
        ..Default::default()
    };
    let mut file = agent::config::File::default();
    if !file.collectors.textfile.directory.is_dir() {
        // No textfile writers on this machine: leave the collector out
        // rather than report an error on every scrape.
        file.collectors.disable.push("textfile".to_owned());
    }
    // The node's devices are simulated: every chip of the profile is
    // emulated and driven by the physical model, read by the real drivers.
    file.hardware.source = "sim".to_owned();
    file.hardware.profile = Some(opts.profile.clone());
    file.hardware.poll_interval = 1.0;
    let config = flags.apply(&mut file, None)?;
    let agent = agent::Agent::bind_config(None, config).await?;
    let addr = agent.local_addr();
    println!(
        "onprem demo: agent serving this machine's metrics and a simulated {} node",
        opts.profile
    );
    println!("  metrics:  http://{addr}/metrics");
    println!("  health:   http://{addr}/-/healthy");
    println!("Press Ctrl-C to stop.\n");
    let stop = shutdown.child_token();
    let server = tokio::spawn(agent.run(stop.clone()));
    let every = Duration::from_secs_f64(opts.every.max(0.1));
    let deadline = opts
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut client = Client::new(addr);
    loop {
        let line = tokio::task::spawn_blocking(move || {
            let l = summary(&mut client, addr);
            (client, l)
        })
        .await?;
        client = line.0;
        println!("{}", line.1);
        let wait = tokio::time::sleep(every);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wait => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    stop.cancel();
    server.await??;
    println!("onprem demo: stopped");
    Ok(())
}

fn summary(client: &mut Client, addr: SocketAddr) -> String {
    let start = Instant::now();
    match client.get("/metrics", &[]) {
        Ok(r) if r.status == 200 => {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let text = r.text();
            let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
            let samples = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count();
            let failed: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("node_scrape_collector_success{collector=\""))
                .filter(|l| l.ends_with("} 0"))
                .filter_map(|l| l.split('"').next())
                .collect();
            let failed = if failed.is_empty() {
                String::new()
            } else {
                format!(", failing: {}", failed.join(" "))
            };
            let up: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("onprem_device_up{"))
                .collect();
            let devices = format!(
                "devices {}/{} up",
                up.iter().filter(|l| l.ends_with(" 1")).count(),
                up.len()
            );
            let temps: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("onprem_temperature_celsius{device=\""))
                .filter_map(|l| {
                    let (dev, rest) = l.split_once('"')?;
                    let v: f64 = rest.rsplit(' ').next()?.parse().ok()?;
                    Some(format!("{dev} {v:.1} °C"))
                })
                .collect();
            format!(
                "{addr}: {families} families, {samples} samples, {} bytes, scrape {ms:.1} ms; {devices}; {}{failed}",
                r.body.len(),
                temps.join(", ")
            )
        }
        Ok(r) => format!("{addr}: HTTP {}", r.status),
        Err(e) => format!("{addr}: scrape failed: {e}"),
    }
}
