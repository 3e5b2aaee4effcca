//! # Node hardware tools
//!
//! `onprem hw probe --profile NAME [--hardware sim]` lists every device of
//! a hardware profile with one reading or the error it got, and `onprem
//! i2cdetect [-y] BUS` scans an I²C bus as i2c-tools does, skipping the
//! addresses where a probe is known to hurt a device. Both work on the
//! node's real hardware or on the simulated world built from the same
//! spec.
//!
//! Profiles are the files of `bundles/profiles/`, compiled into the binary
//! ([`profiles::BUILTIN`]) so a node needs nothing else; `--profile` also
//! takes a path to a YAML file.
//!
//! To add a profile: a file in `bundles/profiles/`, a line in
//! [`profiles::BUILTIN`], and it is loaded and probed in sim by the tests.

pub mod poller;
pub mod profiles;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use onprem_hal::inventory::{self, Hardware, Inventory, Spec};

/// Where devices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Source {
    /// The machine's own buses, sysfs and device nodes.
    #[default]
    Real,
    /// The simulated world built from the profile.
    Sim,
}

/// `onprem hw …`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List every device of a profile with one reading or its error.
    Probe(ProbeOptions),
    /// List the built-in profiles.
    Profiles,
}

/// Options of `onprem hw probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeOptions {
    /// A built-in profile name (see `onprem hw profiles`) or a YAML file.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: String,
    /// Real hardware or the simulated world.
    #[arg(long, value_enum, default_value_t = Source::Real)]
    pub hardware: Source,
    /// sysfs root for real hardware.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs: PathBuf,
}

/// Options of `onprem i2cdetect`.
#[derive(Debug, Clone, clap::Args)]
pub struct I2cdetectOptions {
    /// Do not ask for confirmation.
    #[arg(short = 'y')]
    pub yes: bool,
    /// Also probe addresses where a probe is known to hurt a device.
    #[arg(long)]
    pub force: bool,
    /// Real hardware or the simulated world (with `--profile`).
    #[arg(long, value_enum, default_value_t = Source::Real)]
    pub hardware: Source,
    /// The profile whose simulated world to scan (with `--hardware sim`).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// I²C bus number (`/dev/i2c-N`).
    pub bus: u32,
}

/// Parses and validates a spec; every problem is listed with its path.
pub fn load_spec(text: &str, origin: &str) -> anyhow::Result<Spec> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{origin}: {path}: {}", e.into_inner())
    })?;
    let errs = inventory::validate(&spec);
    if !errs.is_empty() {
        let list: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        anyhow::bail!("{origin}: invalid hardware spec:\n{}", list.join("\n"));
    }
    Ok(spec)
}

/// Loads `--profile`: a built-in name or a file.
pub fn load_profile(name: &str) -> anyhow::Result<Spec> {
    if let Some(text) = profiles::get(name) {
        return load_spec(text, name);
    }
    if name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml") {
        let text = std::fs::read_to_string(name).with_context(|| format!("reading {name}"))?;
        return load_spec(&text, name);
    }
    anyhow::bail!(
        "no profile {name:?}; built-in profiles: {}",
        profiles::BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A simulated world with its directory, removed when dropped.
pub struct SimWorld {
    /// The world.
    pub world: onprem_hal::sim::world::World,
    dir: PathBuf,
}

impl SimWorld {
    /// Builds the world for `spec` in a fresh temporary directory.
    pub fn new(spec: &Spec) -> anyhow::Result<SimWorld> {
        let dir = std::env::temp_dir().join(format!(
            "onprem-sim-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let world = onprem_hal::sim::world::World::new(spec, &dir)
            .map_err(|e| anyhow::anyhow!("building the simulated world: {e}"))?;
        Ok(SimWorld { world, dir })
    }
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for SimWorld {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One line of `hw probe`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeLine {
    /// Device name.
    pub name: String,
    /// Driver.
    pub driver: &'static str,
    /// Handle kind, or `-` when it did not open.
    pub kind: &'static str,
    /// The reading, or the error.
    pub result: Result<String, String>,
}

/// Builds every device of `spec` on `hw` and reads each once.
pub fn probe(spec: &Spec, hw: &Hardware) -> Vec<ProbeLine> {
    let mut inv = Inventory::build(spec, hw);
    inv.entries
        .iter_mut()
        .map(|e| {
            let (kind, result) = match &mut e.handle {
                Ok(h) => (h.kind(), inventory::probe(h).map_err(|err| err.to_string())),
                // Absent by nature (no NVML on this node): a state, not a
                // failure.
                Err(err) if err.kind() == onprem_hal::ErrorKind::Unsupported => {
                    ("-", Ok(format!("not present: {err}")))
                }
                Err(err) => ("-", Err(err.to_string())),
            };
            ProbeLine {
                name: e.name.clone(),
                driver: e.driver,
                kind,
                result,
            }
        })
        .collect()
}

/// Renders probe lines as an aligned table.
pub fn render_probe(spec: &Spec, lines: &[ProbeLine]) -> String {
    let mut out = String::new();
    if let Some(b) = &spec.board {
        out.push_str(&format!("board: {b}\n"));
    }
    if spec.provisional {
        out.push_str("PROVISIONAL: this profile's device commands are not confirmed by the vendor's documentation\n");
    }
    let w0 = lines.iter().map(|l| l.name.len()).max().unwrap_or(4).max(4);
    let w1 = lines
        .iter()
        .map(|l| l.driver.len())
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!(
        "{:w0$}  {:w1$}  {:11}  READING\n",
        "NAME", "DRIVER", "KIND"
    ));
    for l in lines {
        let r = match &l.result {
            Ok(v) => v.clone(),
            Err(e) => format!("ERROR: {e}"),
        };
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:11}  {r}\n",
            l.name, l.driver, l.kind
        ));
    }
    out
}

/// `onprem hw …`; the exit status is 1 when a device failed.
pub fn run(cmd: Command) -> anyhow::Result<bool> {
    match cmd {
        Command::Profiles => {
            for (name, text) in profiles::BUILTIN {
                let desc = load_spec(text, name)
                    .ok()
                    .and_then(|s| s.description)
                    .unwrap_or_default();
                println!("{name:24} {desc}");
            }
            Ok(true)
        }
        Command::Probe(o) => {
            let spec = load_profile(&o.profile)?;
            let (lines, _world) = match o.hardware {
                Source::Real => (probe(&spec, &Hardware::Real { sysfs: o.sysfs }), None),
                Source::Sim => {
                    let w = SimWorld::new(&spec)?;
                    let lines = probe(&spec, &Hardware::Sim(w.world.clone()));
                    (lines, Some(w))
                }
            };
            print!("{}", render_probe(&spec, &lines));
            std::io::stdout().flush()?;
            Ok(lines.iter().all(|l| l.result.is_ok()))
        }
    }
}

/// `onprem i2cdetect`.
pub fn i2cdetect(o: I2cdetectOptions) -> anyhow::Result<()> {
    use onprem_hal::i2c::{self, ScanOptions};
    if !o.yes && o.hardware == Source::Real {
        eprint!(
            "WARNING! This program can confuse your I2C bus, cause data loss and worse!\n\
             I will probe /dev/i2c-{}.\nContinue? [Y/n] ",
            o.bus
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        let a = answer.trim();
        if !(a.is_empty() || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")) {
            anyhow::bail!("aborted");
        }
    }
    let cells = match o.hardware {
        Source::Real => {
            let mut bus = open_real(o.bus)?;
            let claimed = i2c::claimed_addresses(std::path::Path::new("/sys"), o.bus);
            i2c::scan(
                &mut bus,
                &ScanOptions {
                    force: o.force,
                    claimed,
                },
            )
        }
        Source::Sim => {
            let name = o
                .profile
                .as_deref()
                .context("--hardware sim needs --profile to know what is on the bus")?;
            let spec = load_profile(name)?;
            let w = SimWorld::new(&spec)?;
            let mut bus = w.world.i2c(o.bus);
            i2c::scan(
                &mut bus,
                &ScanOptions {
                    force: o.force,
                    claimed: Vec::new(),
                },
            )
        }
    };
    print!("{}", i2c::render(&cells));
    Ok(())
}

fn open_real(bus: u32) -> anyhow::Result<onprem_hal::i2c::LinuxI2c> {
    onprem_hal::i2c::LinuxI2c::open(bus).map_err(|e| {
        let hint = match e.errno {
            Some(2) => " (is the bus enabled? `dtparam=i2c_arm=on` on a Pi; `ls /dev/i2c-*`)",
            Some(13) => " (add the user to the `i2c` group, or run as root)",
            _ => "",
        };
        anyhow::anyhow!("{e}{hint}")
    })
}
