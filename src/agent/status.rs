//! `onprem status`: the local agent's bundle, loops, fan zones, alerts
//! and recent events, read from its `/-/status` endpoint.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde_json::Value;

/// Options of `onprem status`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The agent's address.
    #[arg(long, value_name = "HOST:PORT", default_value = super::config::DEFAULT_LISTEN_ADDRESS)]
    pub address: String,
    /// Output: `text` or `json`.
    #[arg(short = 'o', long = "output", default_value = "text")]
    pub output: String,
}

/// Fetches and prints the status.
pub fn run(o: &Options) -> anyhow::Result<()> {
    let addr: SocketAddr = super::config::parse_listen(&o.address).map_err(anyhow::Error::msg)?;
    let mut c = crate::httpc::Client::new(super::loopback_for(addr));
    let r = c
        .get("/-/status", &[])
        .map_err(|e| anyhow::anyhow!("cannot reach the agent at {addr}: {e}"))?;
    if r.status != 200 {
        anyhow::bail!(
            "the agent at {addr} answered {}: {}",
            r.status,
            r.text().trim()
        );
    }
    let v: Value = serde_json::from_str(&r.text())
        .map_err(|e| anyhow::anyhow!("the agent's status is not JSON: {e}"))?;
    match o.output.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&v)?),
        "text" => print!("{}", render(&v)),
        other => anyhow::bail!("--output {other:?}: use text or json"),
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The status as people read it.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let b = &v["bundle"];
    let _ = writeln!(
        out,
        "BUNDLE  {} version {} ({})  {} {}{}",
        s(&b["name"]),
        s(&b["version"]),
        s(&b["source"]),
        s(&b["status"]),
        s(&b["reason"]),
        b["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    );
    if let Some(a) = v["redfish"]["address"].as_str() {
        let _ = writeln!(out, "REDFISH https://{a}/redfish/v1");
    }
    let _ = writeln!(
        out,
        "\nLOOP      READY  REASON          VERSION  RUNS    ERRORS  MESSAGE"
    );
    for l in v["loops"].as_array().into_iter().flatten() {
        let c = &l["condition"];
        let _ = writeln!(
            out,
            "{:<9} {:<6} {:<15} {:<8} {:<7} {:<7} {}",
            s(&l["name"]),
            s(&c["status"]),
            s(&c["reason"]),
            s(&c["observedVersion"]),
            s(&l["runs"]),
            s(&l["errors"]),
            s(&c["message"])
        );
    }
    for l in v["loops"].as_array().into_iter().flatten() {
        if l["name"] == "fans" {
            let _ = writeln!(out, "\nZONE      DUTY   DEMAND  FAILSAFE       SENSORS");
            for z in l["details"].as_array().into_iter().flatten() {
                let sensors: Vec<String> = z["sensors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        format!(
                            "{}={} °C ({})",
                            s(&x["name"]),
                            s(&x["celsius"]),
                            s(&x["state"])
                        )
                    })
                    .collect();
                let fs: Vec<String> = z["failsafe"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(s)
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<9} {:<6} {:<7} {:<14} {}",
                    s(&z["zone"]),
                    format!("{}%", s(&z["dutyPercent"])),
                    format!("{}%", s(&z["demandPercent"])),
                    if fs.is_empty() {
                        "-".into()
                    } else {
                        fs.join(",")
                    },
                    sensors.join(", ")
                );
            }
        }
        if l["name"] == "checks" {
            let alerts: Vec<&Value> = l["details"].as_array().into_iter().flatten().collect();
            if !alerts.is_empty() {
                let _ = writeln!(out, "\nALERT                STATE     SEVERITY  SUMMARY");
                for a in alerts {
                    let _ = writeln!(
                        out,
                        "{:<20} {:<9} {:<9} {}",
                        s(&a["name"]).chars().take(20).collect::<String>(),
                        s(&a["state"]),
                        s(&a["severity"]),
                        s(&a["summary"])
                    );
                }
            }
        }
    }
    let events: Vec<&Value> = v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .take(10)
        .collect();
    if !events.is_empty() {
        let _ = writeln!(out, "\nRECENT EVENTS");
        for e in events {
            let _ = writeln!(
                out,
                "  {:<8} {:<7} {:<16} {}",
                s(&e["severity"]),
                s(&e["source"]),
                s(&e["reason"]),
                s(&e["message"])
            );
        }
    }
    out
}
