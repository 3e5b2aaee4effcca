//! The node's Redfish resource tree, built on each request from what the
//! agent already has: the device hub's latest readings (the same handles
//! the loops use), the running bundle, the event log, the accounts and
//! sessions.
//!
//! | URI under `/redfish/v1` | what |
//! |---|---|
//! | `Systems/1` | the node: model, serial, UUID, CPUs, memory, power state, boot time, `ComputerSystem.Reset` |
//! | `Chassis/1` | its board: `ThermalSubsystem/Fans`, `PowerSubsystem/Batteries`, `Sensors`, legacy `Thermal` and `Power` |
//! | `Chassis/<switch>` | each power switch of `spec.power.switches` (a blade, a relay), with `Chassis.Reset` |
//! | `Managers/1` | the agent: version, `NetworkProtocol`, `LogServices/Log` (loop and alert events) |
//! | `SessionService`, `AccountService` | sessions, accounts from the bundle, the three predefined roles |
//!
//! Sensor ids are the device name (non-URI characters become `_`) and
//! what is measured: `cpu_Temp`, `fan0_Duty`, `fan0_RPM`, `ina_Voltage`,
//! `ina_Current`, `ina_Power`, `ups_Charge`, `gpu_0_Power`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::auth::{AccountView, Principal, ROLES, Role, Session};
use super::errors::{self, Error};
use crate::agent::reconcile::Event;
use crate::hw::poller::{Reading, Readings};
use crate::proto::v1::HardwareFacts;

/// The system's, the node chassis's and the manager's id.
pub const ID: &str = "1";
/// Prefix of every URI.
pub const ROOT: &str = "/redfish/v1";

/// The schema versions served (namespace, version); `$metadata`
/// references the same list.
pub const SCHEMAS: &[(&str, &str)] = &[
    ("ServiceRoot", "v1_20_0"),
    ("ComputerSystemCollection", ""),
    ("ComputerSystem", "v1_27_0"),
    ("ChassisCollection", ""),
    ("Chassis", "v1_28_0"),
    ("ManagerCollection", ""),
    ("Manager", "v1_24_0"),
    ("ManagerNetworkProtocol", "v1_12_0"),
    ("LogServiceCollection", ""),
    ("LogService", "v1_9_0"),
    ("LogEntryCollection", ""),
    ("LogEntry", "v1_21_0"),
    ("SessionService", "v1_2_0"),
    ("SessionCollection", ""),
    ("Session", "v1_8_0"),
    ("AccountService", "v1_18_1"),
    ("ManagerAccountCollection", ""),
    ("ManagerAccount", "v1_14_1"),
    ("RoleCollection", ""),
    ("Role", "v1_3_3"),
    ("ThermalSubsystem", "v1_5_0"),
    ("FanCollection", ""),
    ("Fan", "v1_6_0"),
    ("PowerSubsystem", "v1_1_3"),
    ("BatteryCollection", ""),
    ("Battery", "v1_5_0"),
    ("BatteryMetrics", "v1_1_0"),
    ("SensorCollection", ""),
    ("Sensor", "v1_12_0"),
    ("Thermal", "v1_7_3"),
    ("Power", "v1_7_3"),
    ("ActionInfo", "v1_5_0"),
    ("Message", "v1_3_0"),
];

fn odata_type(ns: &str) -> String {
    match SCHEMAS.iter().find(|(n, _)| *n == ns) {
        Some((_, v)) if !v.is_empty() => format!("#{ns}.{v}.{ns}"),
        _ => format!("#{ns}.{ns}"),
    }
}

/// What the schema's type is for a resource's `@odata.type` (for the
/// `Link: rel=describedby` header).
pub fn schema_of(v: &Value) -> Option<String> {
    let t = v.get("@odata.type")?.as_str()?.trim_start_matches('#');
    let mut parts: Vec<&str> = t.split('.').collect();
    parts.pop();
    Some(parts.join("."))
}

/// A Unix time as `2025-01-31T12:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn unix(t: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0))
}

/// A device name as a URI segment: letters, digits, `-` and `_`.
pub fn segment(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A UUID in the 8-4-4-4-12 form Redfish wants, from one with or without
/// dashes; `None` when it is not 32 hex digits.
pub fn uuid(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

fn link(uri: &str) -> Value {
    json!({ "@odata.id": uri })
}

fn collection(ns: &str, uri: &str, name: &str, members: &[String]) -> Value {
    json!({
        "@odata.id": uri,
        "@odata.type": odata_type(ns),
        "Name": name,
        "Members": members.iter().map(|m| link(m)).collect::<Vec<_>>(),
        "Members@odata.count": members.len(),
    })
}

fn status(up: bool) -> Value {
    if up {
        json!({ "State": "Enabled", "Health": "OK" })
    } else {
        json!({ "State": "Enabled", "Health": "Warning" })
    }
}

fn num(v: Option<f64>, digits: i32) -> Value {
    match v.filter(|x| x.is_finite()) {
        Some(x) => {
            let p = 10f64.powi(digits);
            json!((x * p).round() / p)
        }
        None => Value::Null,
    }
}

/// A sensor of the node's chassis.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// Id (URI segment).
    pub id: String,
    /// Name.
    pub name: String,
    /// Redfish `ReadingType`.
    pub reading_type: &'static str,
    /// UCUM units.
    pub units: &'static str,
    /// The value.
    pub value: Option<f64>,
    /// Whether its device read well.
    pub up: bool,
    /// Redfish `PhysicalContext`.
    pub context: &'static str,
}

/// A fan.
#[derive(Debug, Clone, PartialEq)]
pub struct Fan {
    /// Id.
    pub id: String,
    /// Device name.
    pub name: String,
    /// Duty, %.
    pub duty: Option<f64>,
    /// Speed.
    pub rpm: Option<f64>,
    /// Read well.
    pub up: bool,
}

/// A battery.
#[derive(Debug, Clone, PartialEq)]
pub struct Battery {
    /// Id.
    pub id: String,
    /// Device name.
    pub name: String,
    /// Charge, %.
    pub percent: Option<f64>,
    /// V.
    pub volts: Option<f64>,
    /// On external power.
    pub on_mains: Option<bool>,
    /// Read well.
    pub up: bool,
}

/// A power rail (a supply the node measures).
#[derive(Debug, Clone, PartialEq)]
pub struct Rail {
    /// Id.
    pub id: String,
    /// Device name.
    pub name: String,
    /// V.
    pub volts: Option<f64>,
    /// A.
    pub amps: Option<f64>,
    /// W.
    pub watts: Option<f64>,
    /// Read well.
    pub up: bool,
}

/// A power switch shown as a chassis of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Blade {
    /// Id.
    pub id: String,
    /// The switch's name in the bundle.
    pub name: String,
    /// On, off, or unknown.
    pub on: Option<bool>,
}

/// Everything the tree shows, taken once per request.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The node's identity.
    pub facts: HardwareFacts,
    /// CPU model.
    pub cpu_model: String,
    /// When the node booted.
    pub boot_time: Option<SystemTime>,
    /// When the agent started.
    pub agent_started: Option<SystemTime>,
    /// Temperatures and every other sensor.
    pub sensors: Vec<Sensor>,
    /// Fans.
    pub fans: Vec<Fan>,
    /// Batteries.
    pub batteries: Vec<Battery>,
    /// Rails.
    pub rails: Vec<Rail>,
    /// Switches.
    pub blades: Vec<Blade>,
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Worst health of the loops and alerts: `OK`, `Warning`, `Critical`.
    pub health: &'static str,
    /// Reset types the node honours now (`spec.power.host`).
    pub reset_types: Vec<&'static str>,
    /// The Redfish port.
    pub port: u16,
    /// Accounts.
    pub accounts: Vec<AccountView>,
    /// Open sessions.
    pub sessions: Vec<Session>,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Lockout threshold, duration.
    pub lockout: (u32, Duration),
    /// The chassis type of the node.
    pub chassis_type: String,
}

/// Reset types a switch's chassis honours.
pub const SWITCH_RESET_TYPES: &[&str] = &["On", "ForceOff", "PowerCycle"];

impl Snapshot {
    /// Sorts the hub's readings into sensors, fans, batteries and rails.
    pub fn read_devices(&mut self, readings: &Readings, switches: &[String]) {
        let mut ids = BTreeSet::new();
        let mut unique = |base: String| -> String {
            let mut id = base.clone();
            let mut n = 2;
            while !ids.insert(id.clone()) {
                id = format!("{base}{n}");
                n += 1;
            }
            id
        };
        for d in &readings.devices {
            let base = segment(&d.name);
            let sensor = |suffix: &str, rt, units, v: Option<f64>, ctx| Sensor {
                id: format!("{base}_{suffix}"),
                name: format!("{} {}", d.name, suffix.to_lowercase()),
                reading_type: rt,
                units,
                value: v,
                up: d.up,
                context: ctx,
            };
            match &d.reading {
                Reading::Temperature(v) => {
                    self.sensors
                        .push(sensor("Temp", "Temperature", "Cel", *v, "SystemBoard"));
                }
                Reading::Fan { duty, rpm } => {
                    self.sensors
                        .push(sensor("Duty", "Percent", "%", *duty, "Fan"));
                    if rpm.is_some() {
                        self.sensors
                            .push(sensor("RPM", "Rotational", "{rev}/min", *rpm, "Fan"));
                    }
                    self.fans.push(Fan {
                        id: unique(base.clone()),
                        name: d.name.clone(),
                        duty: *duty,
                        rpm: *rpm,
                        up: d.up,
                    });
                }
                Reading::Rail { volts, amps, watts } => {
                    self.sensors
                        .push(sensor("Voltage", "Voltage", "V", *volts, "PowerSupply"));
                    self.sensors
                        .push(sensor("Current", "Current", "A", *amps, "PowerSupply"));
                    self.sensors
                        .push(sensor("Power", "Power", "W", *watts, "PowerSupply"));
                    self.rails.push(Rail {
                        id: unique(base.clone()),
                        name: d.name.clone(),
                        volts: *volts,
                        amps: *amps,
                        watts: *watts,
                        up: d.up,
                    });
                }
                Reading::Battery {
                    percent,
                    volts,
                    on_mains,
                } => {
                    self.sensors
                        .push(sensor("Charge", "Percent", "%", *percent, "Battery"));
                    self.sensors
                        .push(sensor("Voltage", "Voltage", "V", *volts, "Battery"));
                    self.batteries.push(Battery {
                        id: unique(base.clone()),
                        name: d.name.clone(),
                        percent: *percent,
                        volts: *volts,
                        on_mains: *on_mains,
                        up: d.up,
                    });
                }
                Reading::Gpu { sample, .. } => {
                    self.sensors.push(sensor(
                        "Temp",
                        "Temperature",
                        "Cel",
                        sample.temperature_celsius,
                        "GPU",
                    ));
                    self.sensors
                        .push(sensor("Power", "Power", "W", sample.power_watts, "GPU"));
                }
                Reading::Switch(on) => {
                    if switches.iter().any(|s| s == &d.name) {
                        self.blades.push(Blade {
                            id: unique(base.clone()),
                            name: d.name.clone(),
                            on: *on,
                        });
                    }
                }
                Reading::Signal(_) | Reading::Button { .. } | Reading::Absent => {}
            }
        }
        // Sensor ids unique too (a device named `x_Temp` next to `x`).
        let mut seen = BTreeSet::new();
        for s in &mut self.sensors {
            let base = s.id.clone();
            let mut n = 2;
            while !seen.insert(s.id.clone()) {
                s.id = format!("{base}{n}");
                n += 1;
            }
        }
    }

    fn sensor(&self, id: &str) -> Option<&Sensor> {
        self.sensors.iter().find(|s| s.id == id)
    }

    fn sensor_of(&self, device: &str, suffix: &str) -> Option<&Sensor> {
        let want = format!("{} {}", device, suffix.to_lowercase());
        self.sensors.iter().find(|s| s.name == want)
    }

    fn chassis_ids(&self) -> Vec<String> {
        let mut v = vec![ID.to_owned()];
        v.extend(self.blades.iter().map(|b| b.id.clone()));
        v
    }
}

/// The allowed methods of a URI (relative to `/redfish/v1`, split), or
/// `None` when there is no such resource.
pub fn methods(s: &Snapshot, p: &[&str]) -> Option<&'static [&'static str]> {
    const R: &[&str] = &["GET", "HEAD"];
    const RW: &[&str] = &["GET", "HEAD", "PATCH"];
    const POST: &[&str] = &["POST"];
    let chassis = |id: &str| s.chassis_ids().iter().any(|c| c == id);
    Some(match p {
        [] | ["odata"] | ["$metadata"] => R,
        ["Systems"] | ["Chassis"] | ["Managers"] => R,
        ["Systems", ID] => RW,
        ["Systems", ID, "ResetActionInfo"] => R,
        ["Systems", ID, "Actions", "ComputerSystem.Reset"] => POST,
        ["Chassis", ID] => RW,
        ["Chassis", c] if chassis(c) => RW,
        ["Chassis", c, "ResetActionInfo"] if *c != ID && chassis(c) => R,
        ["Chassis", c, "Actions", "Chassis.Reset"] if *c != ID && chassis(c) => POST,
        [
            "Chassis",
            ID,
            "Thermal" | "Power" | "ThermalSubsystem" | "PowerSubsystem" | "Sensors",
        ] => R,
        ["Chassis", ID, "ThermalSubsystem", "Fans"] => R,
        ["Chassis", ID, "ThermalSubsystem", "Fans", f] if s.fans.iter().any(|x| x.id == *f) => R,
        ["Chassis", ID, "PowerSubsystem", "Batteries"] => R,
        ["Chassis", ID, "PowerSubsystem", "Batteries", b]
            if s.batteries.iter().any(|x| x.id == *b) =>
        {
            R
        }
        ["Chassis", ID, "PowerSubsystem", "Batteries", b, "Metrics"]
            if s.batteries.iter().any(|x| x.id == *b) =>
        {
            R
        }
        ["Chassis", ID, "Sensors", x] if s.sensor(x).is_some() => R,
        ["Managers", ID] => RW,
        ["Managers", ID, "NetworkProtocol"] => R,
        ["Managers", ID, "LogServices"] => R,
        ["Managers", ID, "LogServices", "Log"] => R,
        ["Managers", ID, "LogServices", "Log", "Entries"] => R,
        ["Managers", ID, "LogServices", "Log", "Entries", e]
            if s.events.iter().any(|x| x.seq.to_string() == *e) =>
        {
            R
        }
        ["SessionService"] => RW,
        ["SessionService", "Sessions"] => &["GET", "HEAD", "POST"],
        ["SessionService", "Sessions", id] if s.sessions.iter().any(|x| x.id == *id) => {
            &["GET", "HEAD", "DELETE"]
        }
        ["AccountService"] => RW,
        ["AccountService", "Accounts"] => R,
        ["AccountService", "Accounts", a]
            if s.accounts.iter().any(|x| x.account.user_name == *a) =>
        {
            RW
        }
        ["AccountService", "Roles"] => R,
        ["AccountService", "Roles", r] if Role::parse(r).is_some() => R,
        _ => return None,
    })
}

/// The URI of `p`.
pub fn uri(p: &[&str]) -> String {
    if p.is_empty() {
        format!("{ROOT}/")
    } else {
        format!("{ROOT}/{}", p.join("/"))
    }
}

/// The JSON of a resource that [`methods`] says exists and has GET.
pub fn get(s: &Snapshot, p: &[&str], who: Option<&Principal>) -> Result<Value, Error> {
    let u = uri(p);
    let sys = format!("{ROOT}/Systems/{ID}");
    let ch = format!("{ROOT}/Chassis/{ID}");
    let mgr = format!("{ROOT}/Managers/{ID}");
    Ok(match p {
        [] => root(s),
        ["odata"] => odata(),
        ["Systems"] => collection(
            "ComputerSystemCollection",
            &u,
            "Computer System Collection",
            &[sys],
        ),
        ["Systems", ID] => system(s),
        ["Systems", ID, "ResetActionInfo"] => action_info(&u, &s.reset_types),
        ["Chassis"] => {
            let members: Vec<String> = s
                .chassis_ids()
                .iter()
                .map(|c| format!("{ROOT}/Chassis/{c}"))
                .collect();
            collection("ChassisCollection", &u, "Chassis Collection", &members)
        }
        ["Chassis", ID] => chassis(s),
        ["Chassis", c] => blade(s, c)?,
        ["Chassis", _, "ResetActionInfo"] => action_info(&u, SWITCH_RESET_TYPES),
        ["Chassis", ID, "Sensors"] => {
            let members: Vec<String> = s.sensors.iter().map(|x| format!("{u}/{}", x.id)).collect();
            collection("SensorCollection", &u, "Sensors", &members)
        }
        ["Chassis", ID, "Sensors", id] => {
            let x = s.sensor(id).ok_or_else(|| errors::not_found(&u))?;
            sensor(&u, x)
        }
        ["Chassis", ID, "ThermalSubsystem"] => json!({
            "@odata.id": u,
            "@odata.type": odata_type("ThermalSubsystem"),
            "Id": "ThermalSubsystem",
            "Name": "Thermal Subsystem",
            "Fans": link(&format!("{u}/Fans")),
            "Status": { "State": "Enabled", "Health": s.health },
        }),
        ["Chassis", ID, "ThermalSubsystem", "Fans"] => {
            let members: Vec<String> = s.fans.iter().map(|f| format!("{u}/{}", f.id)).collect();
            collection("FanCollection", &u, "Fans", &members)
        }
        ["Chassis", ID, "ThermalSubsystem", "Fans", id] => {
            let f = s
                .fans
                .iter()
                .find(|f| f.id == *id)
                .ok_or_else(|| errors::not_found(&u))?;
            fan(s, &u, &ch, f)
        }
        ["Chassis", ID, "PowerSubsystem"] => json!({
            "@odata.id": u,
            "@odata.type": odata_type("PowerSubsystem"),
            "Id": "PowerSubsystem",
            "Name": "Power Subsystem",
            "Batteries": link(&format!("{u}/Batteries")),
            "Status": { "State": "Enabled", "Health": s.health },
        }),
        ["Chassis", ID, "PowerSubsystem", "Batteries"] => {
            let members: Vec<String> = s
                .batteries
                .iter()
                .map(|b| format!("{u}/{}", b.id))
                .collect();
            collection("BatteryCollection", &u, "Batteries", &members)
        }
        ["Chassis", ID, "PowerSubsystem", "Batteries", id] => {
            let b = s
                .batteries
                .iter()
                .find(|b| b.id == *id)
                .ok_or_else(|| errors::not_found(&u))?;
            battery(&u, b)
        }
        ["Chassis", ID, "PowerSubsystem", "Batteries", id, "Metrics"] => {
            let b = s
                .batteries
                .iter()
                .find(|b| b.id == *id)
                .ok_or_else(|| errors::not_found(&u))?;
            battery_metrics(s, &u, &ch, b)
        }
        ["Chassis", ID, "Thermal"] => thermal(s, &u, &ch),
        ["Chassis", ID, "Power"] => power(s, &u),
        ["Managers"] => collection("ManagerCollection", &u, "Manager Collection", &[mgr]),
        ["Managers", ID] => manager(s),
        ["Managers", ID, "NetworkProtocol"] => json!({
            "@odata.id": u,
            "@odata.type": odata_type("ManagerNetworkProtocol"),
            "Id": "NetworkProtocol",
            "Name": "Manager Network Protocol",
            "HostName": s.facts.hostname,
            "HTTPS": { "Port": s.port, "ProtocolEnabled": true },
            "HTTP": { "ProtocolEnabled": false },
            "Status": { "State": "Enabled", "Health": "OK" },
        }),
        ["Managers", ID, "LogServices"] => collection(
            "LogServiceCollection",
            &u,
            "Log Service Collection",
            &[format!("{u}/Log")],
        ),
        ["Managers", ID, "LogServices", "Log"] => json!({
            "@odata.id": u,
            "@odata.type": odata_type("LogService"),
            "Id": "Log",
            "Name": "Agent event log",
            "Description": "Events of the agent's loops, bundles, alerts and Redfish service",
            "ServiceEnabled": true,
            "MaxNumberOfRecords": crate::agent::reconcile::EVENTS_KEPT,
            "OverWritePolicy": "WrapsWhenFull",
            "LogEntryType": "OEM",
            "DateTime": rfc3339(SystemTime::now()),
            "DateTimeLocalOffset": "+00:00",
            "Entries": link(&format!("{u}/Entries")),
            "Status": { "State": "Enabled", "Health": "OK" },
        }),
        ["Managers", ID, "LogServices", "Log", "Entries"] => {
            // LogEntryCollection members are expanded (the schema's
            // AutoExpand): each entry in full.
            let members: Vec<Value> = s
                .events
                .iter()
                .map(|e| log_entry(&format!("{u}/{}", e.seq), e))
                .collect();
            json!({
                "@odata.id": u,
                "@odata.type": odata_type("LogEntryCollection"),
                "Name": "Log Entries",
                "Members@odata.count": members.len(),
                "Members": members,
            })
        }
        ["Managers", ID, "LogServices", "Log", "Entries", id] => {
            let e = s
                .events
                .iter()
                .find(|e| e.seq.to_string() == *id)
                .ok_or_else(|| errors::not_found(&u))?;
            log_entry(&u, e)
        }
        ["SessionService"] => json!({
            "@odata.id": u,
            "@odata.type": odata_type("SessionService"),
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": true,
            "SessionTimeout": s.session_timeout.as_secs(),
            "Sessions": link(&format!("{u}/Sessions")),
            "Status": { "State": "Enabled", "Health": "OK" },
        }),
        ["SessionService", "Sessions"] => {
            // Others' sessions are visible to those who may end them.
            let all = who.is_some_and(|w| w.role.has(super::auth::Privilege::ConfigureManager));
            let members: Vec<String> = s
                .sessions
                .iter()
                .filter(|x| all || who.is_some_and(|w| w.user == x.user))
                .map(|x| format!("{u}/{}", x.id))
                .collect();
            collection("SessionCollection", &u, "Session Collection", &members)
        }
        ["SessionService", "Sessions", id] => {
            let x = s
                .sessions
                .iter()
                .find(|x| x.id == *id)
                .ok_or_else(|| errors::not_found(&u))?;
            session(x)
        }
        ["AccountService"] => json!({
            "@odata.id": u,
            "@odata.type": odata_type("AccountService"),
            "Id": "AccountService",
            "Name": "Account Service",
            "Description": "Accounts come from the node's bundle (spec.redfish.accounts)",
            "ServiceEnabled": true,
            "LocalAccountAuth": "Enabled",
            "AccountLockoutThreshold": s.lockout.0,
            "AccountLockoutDuration": s.lockout.1.as_secs(),
            "AccountLockoutCounterResetAfter": s.lockout.1.as_secs(),
            "AccountLockoutCounterResetEnabled": true,
            "Accounts": link(&format!("{u}/Accounts")),
            "Roles": link(&format!("{u}/Roles")),
            "Status": { "State": "Enabled", "Health": "OK" },
        }),
        ["AccountService", "Accounts"] => {
            let members: Vec<String> = s
                .accounts
                .iter()
                .map(|a| format!("{u}/{}", a.account.user_name))
                .collect();
            collection("ManagerAccountCollection", &u, "Accounts", &members)
        }
        ["AccountService", "Accounts", id] => {
            let a = s
                .accounts
                .iter()
                .find(|a| a.account.user_name == *id)
                .ok_or_else(|| errors::not_found(&u))?;
            account(&u, a)
        }
        ["AccountService", "Roles"] => {
            let members: Vec<String> = ROLES
                .iter()
                .map(|r| format!("{u}/{}", r.as_str()))
                .collect();
            collection("RoleCollection", &u, "Roles", &members)
        }
        ["AccountService", "Roles", id] => {
            let r = Role::parse(id).ok_or_else(|| errors::not_found(&u))?;
            json!({
                "@odata.id": u,
                "@odata.type": odata_type("Role"),
                "Id": r.as_str(),
                "Name": format!("{} role", r.as_str()),
                "RoleId": r.as_str(),
                "IsPredefined": true,
                "AssignedPrivileges": r.privileges().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "OemPrivileges": [],
            })
        }
        _ => return Err(errors::not_found(&u)),
    })
}

fn root(s: &Snapshot) -> Value {
    let mut v = json!({
        "@odata.id": format!("{ROOT}/"),
        "@odata.type": odata_type("ServiceRoot"),
        "Id": "RootService",
        "Name": "onprem Redfish service",
        "RedfishVersion": "1.21.0",
        "Product": "onprem",
        "Vendor": "onprem",
        "Systems": link(&format!("{ROOT}/Systems")),
        "Chassis": link(&format!("{ROOT}/Chassis")),
        "Managers": link(&format!("{ROOT}/Managers")),
        "SessionService": link(&format!("{ROOT}/SessionService")),
        "AccountService": link(&format!("{ROOT}/AccountService")),
        "Links": { "Sessions": link(&format!("{ROOT}/SessionService/Sessions")) },
        "ProtocolFeaturesSupported": {
            "ExcerptQuery": false,
            "ExpandQuery": { "ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false },
            "FilterQuery": false,
            "OnlyMemberQuery": false,
            "SelectQuery": false,
        },
    });
    if let Some(u) = uuid(&s.facts.uuid) {
        v["UUID"] = json!(u);
    }
    v
}

fn odata() -> Value {
    let entries = [
        ("Service", "/redfish/v1/"),
        ("Systems", "/redfish/v1/Systems"),
        ("Chassis", "/redfish/v1/Chassis"),
        ("Managers", "/redfish/v1/Managers"),
        ("SessionService", "/redfish/v1/SessionService"),
        ("AccountService", "/redfish/v1/AccountService"),
        ("Sessions", "/redfish/v1/SessionService/Sessions"),
    ];
    json!({
        "@odata.context": "/redfish/v1/$metadata",
        "value": entries.iter().map(|(n, u)| json!({ "name": n, "kind": "Singleton", "url": u })).collect::<Vec<_>>(),
    })
}

fn reset_action(target: &str, info: &str, ns: &str, types: &[&str]) -> Value {
    json!({
        format!("#{ns}.Reset"): {
            "target": target,
            "ResetType@Redfish.AllowableValues": types,
            "@Redfish.ActionInfo": info,
        }
    })
}

fn action_info(u: &str, types: &[&str]) -> Value {
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("ActionInfo"),
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [{
            "Name": "ResetType",
            "Required": true,
            "DataType": "String",
            "AllowableValues": types,
        }],
    })
}

fn system(s: &Snapshot) -> Value {
    let u = format!("{ROOT}/Systems/{ID}");
    let f = &s.facts;
    let mut v = json!({
        "@odata.id": u,
        "@odata.type": odata_type("ComputerSystem"),
        "Id": ID,
        "Name": if f.hostname.is_empty() { "node" } else { f.hostname.as_str() },
        "SystemType": "Physical",
        "PowerState": "On",
        "Status": { "State": "Enabled", "Health": s.health },
        "ProcessorSummary": {
            "Count": 1,
            "LogicalProcessorCount": f.cores,
        },
        "MemorySummary": {
            "TotalSystemMemoryGiB": num(Some(f.memory_bytes as f64 / (1u64 << 30) as f64), 2),
        },
        "Links": {
            "Chassis": [link(&format!("{ROOT}/Chassis/{ID}"))],
            "ManagedBy": [link(&format!("{ROOT}/Managers/{ID}"))],
        },
        "Actions": reset_action(
            &format!("{u}/Actions/ComputerSystem.Reset"),
            &format!("{u}/ResetActionInfo"),
            "ComputerSystem",
            &s.reset_types,
        ),
    });
    for (k, val) in [
        ("Manufacturer", &f.manufacturer),
        ("Model", &f.model),
        ("SerialNumber", &f.serial),
        ("HostName", &f.hostname),
    ] {
        if !val.is_empty() {
            v[k] = json!(val);
        }
    }
    if !s.cpu_model.is_empty() {
        v["ProcessorSummary"]["Model"] = json!(s.cpu_model);
    }
    if let Some(u) = uuid(&f.uuid) {
        v["UUID"] = json!(u);
    }
    if let Some(t) = s.boot_time {
        v["LastResetTime"] = json!(rfc3339(t));
    }
    v
}

fn chassis(s: &Snapshot) -> Value {
    let u = format!("{ROOT}/Chassis/{ID}");
    let f = &s.facts;
    let mut v = json!({
        "@odata.id": u,
        "@odata.type": odata_type("Chassis"),
        "Id": ID,
        "Name": if f.model.is_empty() { "Node chassis" } else { f.model.as_str() },
        "ChassisType": s.chassis_type,
        "PowerState": "On",
        "Status": { "State": "Enabled", "Health": s.health },
        "ThermalSubsystem": link(&format!("{u}/ThermalSubsystem")),
        "PowerSubsystem": link(&format!("{u}/PowerSubsystem")),
        "Sensors": link(&format!("{u}/Sensors")),
        "Thermal": link(&format!("{u}/Thermal")),
        "Power": link(&format!("{u}/Power")),
        "Links": {
            "ComputerSystems": [link(&format!("{ROOT}/Systems/{ID}"))],
            "ManagedBy": [link(&format!("{ROOT}/Managers/{ID}"))],
        },
    });
    if !s.blades.is_empty() {
        v["Links"]["Contains"] = json!(
            s.blades
                .iter()
                .map(|b| link(&format!("{ROOT}/Chassis/{}", b.id)))
                .collect::<Vec<_>>()
        );
    }
    for (k, val) in [
        ("Manufacturer", &f.manufacturer),
        ("Model", &f.model),
        ("SerialNumber", &f.serial),
    ] {
        if !val.is_empty() {
            v[k] = json!(val);
        }
    }
    v
}

fn blade(s: &Snapshot, id: &str) -> Result<Value, Error> {
    let u = format!("{ROOT}/Chassis/{id}");
    let b = s
        .blades
        .iter()
        .find(|b| b.id == id)
        .ok_or_else(|| errors::not_found(&u))?;
    let mut v = json!({
        "@odata.id": u,
        "@odata.type": odata_type("Chassis"),
        "Id": b.id,
        "Name": format!("{} (power switch)", b.name),
        "ChassisType": "Blade",
        "Status": match b.on {
            Some(true) => json!({ "State": "Enabled", "Health": "OK" }),
            Some(false) => json!({ "State": "StandbyOffline", "Health": "OK" }),
            None => json!({ "State": "Enabled", "Health": "Warning" }),
        },
        "Links": {
            "ContainedBy": link(&format!("{ROOT}/Chassis/{ID}")),
            "ManagedBy": [link(&format!("{ROOT}/Managers/{ID}"))],
        },
        "Actions": reset_action(
            &format!("{u}/Actions/Chassis.Reset"),
            &format!("{u}/ResetActionInfo"),
            "Chassis",
            SWITCH_RESET_TYPES,
        ),
    });
    if let Some(on) = b.on {
        v["PowerState"] = json!(if on { "On" } else { "Off" });
    }
    Ok(v)
}

fn sensor(u: &str, x: &Sensor) -> Value {
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("Sensor"),
        "Id": x.id,
        "Name": x.name,
        "ReadingType": x.reading_type,
        "ReadingUnits": x.units,
        "Reading": num(x.value, 3),
        "PhysicalContext": x.context,
        "Status": status(x.up),
    })
}

fn fan(s: &Snapshot, u: &str, ch: &str, f: &Fan) -> Value {
    let mut speed = json!({ "Reading": num(f.duty, 1) });
    if let Some(x) = s.sensor_of(&f.name, "Duty") {
        speed["DataSourceUri"] = json!(format!("{ch}/Sensors/{}", x.id));
    }
    if let Some(r) = f.rpm {
        speed["SpeedRPM"] = num(Some(r), 0);
    }
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("Fan"),
        "Id": f.id,
        "Name": f.name,
        "SpeedPercent": speed,
        "Status": status(f.up),
    })
}

fn battery(u: &str, b: &Battery) -> Value {
    let mut v = json!({
        "@odata.id": u,
        "@odata.type": odata_type("Battery"),
        "Id": b.id,
        "Name": b.name,
        "Metrics": link(&format!("{u}/Metrics")),
        "Status": status(b.up),
    });
    let state = match (b.on_mains, b.percent) {
        (Some(false), _) => Some("Discharging"),
        (Some(true), Some(p)) if p < 99.5 => Some("Charging"),
        (Some(true), _) => Some("Idle"),
        (None, _) => None,
    };
    if let Some(st) = state {
        v["ChargeState"] = json!(st);
    }
    v
}

fn battery_metrics(s: &Snapshot, u: &str, ch: &str, b: &Battery) -> Value {
    let mut charge = json!({ "Reading": num(b.percent, 1) });
    if let Some(x) = s.sensor_of(&b.name, "Charge") {
        charge["DataSourceUri"] = json!(format!("{ch}/Sensors/{}", x.id));
    }
    let mut volts = json!({ "Reading": num(b.volts, 3) });
    if let Some(x) = s.sensor_of(&b.name, "Voltage") {
        volts["DataSourceUri"] = json!(format!("{ch}/Sensors/{}", x.id));
    }
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("BatteryMetrics"),
        "Id": "Metrics",
        "Name": format!("{} metrics", b.name),
        "ChargePercent": charge,
        "InputVoltage": volts,
        "Status": status(b.up),
    })
}

fn thermal(s: &Snapshot, u: &str, ch: &str) -> Value {
    let temps: Vec<Value> = s
        .sensors
        .iter()
        .filter(|x| x.reading_type == "Temperature")
        .enumerate()
        .map(|(i, x)| {
            json!({
                "@odata.id": format!("{u}#/Temperatures/{i}"),
                "MemberId": i.to_string(),
                "Name": x.name,
                "ReadingCelsius": num(x.value, 2),
                "PhysicalContext": x.context,
                "Status": status(x.up),
                "RelatedItem": [link(ch)],
            })
        })
        .collect();
    let fans: Vec<Value> = s
        .fans
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // Integers in this schema.
            let (reading, units) = match f.rpm {
                Some(r) => (json!(r.round() as i64), "RPM"),
                None => match f.duty {
                    Some(d) => (json!(d.round() as i64), "Percent"),
                    None => (Value::Null, "Percent"),
                },
            };
            json!({
                "@odata.id": format!("{u}#/Fans/{i}"),
                "MemberId": i.to_string(),
                "Name": f.name,
                "Reading": reading,
                "ReadingUnits": units,
                "Status": status(f.up),
            })
        })
        .collect();
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("Thermal"),
        "Id": "Thermal",
        "Name": "Thermal",
        "Temperatures": temps,
        "Fans": fans,
        "Status": { "State": "Enabled", "Health": s.health },
    })
}

fn power(s: &Snapshot, u: &str) -> Value {
    let watts: Vec<f64> = s.rails.iter().filter_map(|r| r.watts).collect();
    let mut control = json!({
        "@odata.id": format!("{u}#/PowerControl/0"),
        "MemberId": "0",
        "Name": "Node power",
        "Status": { "State": "Enabled", "Health": "OK" },
    });
    if !watts.is_empty() {
        control["PowerConsumedWatts"] = num(Some(watts.iter().sum()), 2);
    }
    let voltages: Vec<Value> = s
        .sensors
        .iter()
        .filter(|x| x.reading_type == "Voltage")
        .enumerate()
        .map(|(i, x)| {
            json!({
                "@odata.id": format!("{u}#/Voltages/{i}"),
                "MemberId": i.to_string(),
                "Name": x.name,
                "ReadingVolts": num(x.value, 3),
                "PhysicalContext": x.context,
                "Status": status(x.up),
            })
        })
        .collect();
    let supplies: Vec<Value> = s
        .rails
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v = json!({
                "@odata.id": format!("{u}#/PowerSupplies/{i}"),
                "MemberId": i.to_string(),
                "Name": r.name,
                "PowerSupplyType": "DC",
                "Status": status(r.up),
            });
            if r.volts.is_some() {
                v["LineInputVoltage"] = num(r.volts, 3);
            }
            if r.watts.is_some() {
                v["LastPowerOutputWatts"] = num(r.watts, 2);
            }
            v
        })
        .collect();
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("Power"),
        "Id": "Power",
        "Name": "Power",
        "PowerControl": [control],
        "Voltages": voltages,
        "PowerSupplies": supplies,
    })
}

fn manager(s: &Snapshot) -> Value {
    let u = format!("{ROOT}/Managers/{ID}");
    let mut chassis = vec![link(&format!("{ROOT}/Chassis/{ID}"))];
    chassis.extend(
        s.blades
            .iter()
            .map(|b| link(&format!("{ROOT}/Chassis/{}", b.id))),
    );
    let mut v = json!({
        "@odata.id": u,
        "@odata.type": odata_type("Manager"),
        "Id": ID,
        "Name": "onprem agent",
        "Description": "The onprem agent: a software management controller for this node",
        "ManagerType": "Service",
        "Model": "onprem",
        "FirmwareVersion": crate::VERSION,
        "PowerState": "On",
        "DateTime": rfc3339(SystemTime::now()),
        "DateTimeLocalOffset": "+00:00",
        "Status": { "State": "Enabled", "Health": "OK" },
        "NetworkProtocol": link(&format!("{u}/NetworkProtocol")),
        "LogServices": link(&format!("{u}/LogServices")),
        "Links": {
            "ManagerForServers": [link(&format!("{ROOT}/Systems/{ID}"))],
            "ManagerForChassis": chassis,
        },
    });
    if let Some(t) = s.agent_started {
        v["LastResetTime"] = json!(rfc3339(t));
    }
    v
}

fn log_entry(u: &str, e: &Event) -> Value {
    let severity = match e.severity {
        "critical" => "Critical",
        "warning" => "Warning",
        _ => "OK",
    };
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("LogEntry"),
        "Id": e.seq.to_string(),
        "Name": format!("{} {}", e.source, e.reason),
        "EntryType": "Oem",
        "OemRecordFormat": "onprem",
        "OemLogEntryCode": e.reason,
        "Severity": severity,
        "Created": rfc3339(unix(e.time)),
        "Message": e.message,
    })
}

fn session(x: &Session) -> Value {
    json!({
        "@odata.id": format!("{ROOT}/SessionService/Sessions/{}", x.id),
        "@odata.type": odata_type("Session"),
        "Id": x.id,
        "Name": "User Session",
        "UserName": x.user,
        "Password": null,
        "SessionType": "Redfish",
        "ClientOriginIPAddress": x.origin,
        "CreatedTime": rfc3339(x.created),
    })
}

/// The `Session` resource of a new session.
pub fn session_json(x: &Session) -> Value {
    session(x)
}

fn account(u: &str, a: &AccountView) -> Value {
    json!({
        "@odata.id": u,
        "@odata.type": odata_type("ManagerAccount"),
        "Id": a.account.user_name,
        "Name": "User Account",
        "UserName": a.account.user_name,
        "RoleId": a.account.role,
        "Enabled": a.account.enabled,
        "Locked": a.locked,
        "Password": null,
        "AccountTypes": ["Redfish"],
        "Links": { "Role": link(&format!("{ROOT}/AccountService/Roles/{}", a.account.role)) },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn times_are_rfc3339_with_zone() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_738_324_800)),
            "2025-01-31T12:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn uuids_get_dashes() {
        assert_eq!(
            uuid("0123456789abcdef0123456789ABCDEF").as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(
            uuid("01234567-89ab-cdef-0123-456789abcdef").as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(uuid("not-a-uuid"), None);
        assert_eq!(uuid(""), None);
    }

    #[test]
    fn segments_are_uri_safe() {
        assert_eq!(segment("gpu/0"), "gpu_0");
        assert_eq!(segment("bmc/power"), "bmc_power");
        assert_eq!(segment("ina-219.vin"), "ina-219_vin");
    }

    #[test]
    fn every_type_names_a_served_schema() {
        for (ns, _) in SCHEMAS {
            let t = odata_type(ns);
            assert!(t.starts_with(&format!("#{ns}.")), "{t}");
        }
        assert_eq!(
            schema_of(&json!({"@odata.type": "#Chassis.v1_28_0.Chassis"})).as_deref(),
            Some("Chassis.v1_28_0")
        );
    }

    fn snap() -> Snapshot {
        use crate::hw::poller::DeviceReading;
        let mut s = Snapshot {
            reset_types: vec!["On", "GracefulRestart"],
            health: "OK",
            chassis_type: "StandAlone".into(),
            ..Default::default()
        };
        let dev = |name: &str, r: Reading| DeviceReading {
            name: name.into(),
            driver: "sim",
            kind: "x",
            up: true,
            errors_total: 0,
            error: None,
            reading: r,
        };
        let readings = Readings {
            devices: vec![
                dev("cpu", Reading::Temperature(Some(51.234))),
                dev(
                    "fan",
                    Reading::Fan {
                        duty: Some(40.0),
                        rpm: Some(2100.0),
                    },
                ),
                dev(
                    "ina/vin",
                    Reading::Rail {
                        volts: Some(5.1),
                        amps: Some(1.2),
                        watts: Some(6.12),
                    },
                ),
                dev(
                    "ups",
                    Reading::Battery {
                        percent: Some(80.0),
                        volts: Some(4.0),
                        on_mains: Some(false),
                    },
                ),
                dev("bmc/power", Reading::Switch(Some(true))),
                dev("relay", Reading::Switch(Some(false))),
            ],
            ..Default::default()
        };
        s.read_devices(&readings, &["bmc/power".to_owned()]);
        s
    }

    #[test]
    fn devices_become_sensors_fans_batteries_and_blades() {
        let s = snap();
        let ids: Vec<&str> = s.sensors.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "cpu_Temp",
                "fan_Duty",
                "fan_RPM",
                "ina_vin_Voltage",
                "ina_vin_Current",
                "ina_vin_Power",
                "ups_Charge",
                "ups_Voltage"
            ]
        );
        assert_eq!(s.fans.len(), 1);
        assert_eq!(s.batteries.len(), 1);
        // Only switches the bundle names are chassis.
        assert_eq!(s.blades.len(), 1);
        assert_eq!(s.blades[0].id, "bmc_power");
    }

    #[test]
    fn every_linked_uri_exists() {
        let s = snap();
        let mut todo = vec![uri(&[])];
        let mut seen = BTreeSet::new();
        while let Some(u) = todo.pop() {
            let rel = u.trim_start_matches(ROOT).trim_matches('/').to_owned();
            let parts: Vec<&str> = if rel.is_empty() {
                vec![]
            } else {
                rel.split('/').collect()
            };
            assert!(methods(&s, &parts).is_some(), "no resource at {u}");
            let v = get(&s, &parts, None).unwrap_or_else(|e| panic!("{u}: {e}"));
            assert!(v.get("@odata.type").is_some(), "{u}");
            if !u.ends_with("/odata") {
                assert!(v.get("Name").is_some(), "{u} has no Name");
            }
            let mut links = Vec::new();
            collect(&v, &mut links);
            for l in links {
                let l = l.split('#').next().unwrap_or_default().to_owned();
                if seen.insert(l.clone()) {
                    todo.push(l);
                }
            }
        }
        assert!(seen.contains("/redfish/v1/Chassis/1/Sensors/fan_Duty"));
        assert!(seen.contains("/redfish/v1/Chassis/bmc_power"));
        assert!(seen.contains("/redfish/v1/Chassis/1/PowerSubsystem/Batteries/ups/Metrics"));
    }

    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if matches!(
                        k.as_str(),
                        "@odata.id" | "DataSourceUri" | "@Redfish.ActionInfo" | "url"
                    ) {
                        if let Some(s) = x.as_str() {
                            out.push(s.to_owned());
                        }
                    }
                    collect(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }

    #[test]
    fn legacy_thermal_and_power_members() {
        let s = snap();
        let t = get(&s, &["Chassis", ID, "Thermal"], None).unwrap();
        assert_eq!(t["Temperatures"][0]["MemberId"], "0");
        assert_eq!(t["Temperatures"][0]["ReadingCelsius"], 51.23);
        assert_eq!(
            t["Temperatures"][0]["@odata.id"],
            "/redfish/v1/Chassis/1/Thermal#/Temperatures/0"
        );
        assert_eq!(t["Fans"][0]["Reading"], 2100);
        assert_eq!(t["Fans"][0]["ReadingUnits"], "RPM");
        let p = get(&s, &["Chassis", ID, "Power"], None).unwrap();
        assert_eq!(p["PowerSupplies"][0]["LastPowerOutputWatts"], 6.12);
        assert_eq!(p["PowerControl"][0]["PowerConsumedWatts"], 6.12);
        let b = get(
            &s,
            &["Chassis", ID, "PowerSubsystem", "Batteries", "ups"],
            None,
        )
        .unwrap();
        assert_eq!(b["ChargeState"], "Discharging");
    }

    #[test]
    fn reset_action_lists_allowable_values() {
        let s = snap();
        let v = get(&s, &["Systems", ID], None).unwrap();
        let a = &v["Actions"]["#ComputerSystem.Reset"];
        assert_eq!(
            a["target"],
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
        );
        assert_eq!(
            a["ResetType@Redfish.AllowableValues"],
            json!(["On", "GracefulRestart"])
        );
        assert_eq!(
            a["@Redfish.ActionInfo"],
            "/redfish/v1/Systems/1/ResetActionInfo"
        );
        assert_eq!(
            methods(&s, &["Systems", ID, "Actions", "ComputerSystem.Reset"]),
            Some(&["POST"][..])
        );
        assert!(methods(&s, &["Systems", "2"]).is_none());
        assert!(methods(&s, &["Chassis", ID, "Actions", "Chassis.Reset"]).is_none());
    }
}
