//! # Node hardware tools
//!
//! `onprem hw probe --profile NAME [--hardware sim]` lists every device of
//! a hardware profile with one reading or the error it got, and `onprem
//! i2cdetect [-y] BUS` scans an I²C bus as i2c-tools does, skipping the
//! addresses where a probe is known to hurt a device (`onprem i2cdetect
//! -l` lists the buses). Both work on the node's real hardware or on the
//! simulated world built from the same spec.
//!
//! Profiles are the files of `bundles/profiles/`, compiled into the binary
//! ([`profiles::BUILTIN`]) so a node needs nothing else; `--profile` also
//! takes a path to a YAML file.
//!
//! To add a profile: a file in `bundles/profiles/`, a line in
//! [`profiles::BUILTIN`], and it is loaded and probed in sim by the tests.

pub mod poller;
pub mod profiles;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

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
    /// List the I²C buses (as `i2cdetect -l`) instead of scanning one.
    #[arg(short = 'l', conflicts_with = "bus")]
    pub list: bool,
    /// Also probe addresses where a probe is known to hurt a device.
    #[arg(long)]
    pub force: bool,
    /// Real hardware or the simulated world (with `--profile`).
    #[arg(long, value_enum, default_value_t = Source::Real)]
    pub hardware: Source,
    /// The profile whose simulated world to scan (with `--hardware sim`).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// sysfs root, where the buses' names and the addresses kernel
    /// drivers have claimed are read.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs: PathBuf,
    /// Where the buses' device nodes (`i2c-N`) are.
    #[arg(long, value_name = "DIR", default_value = "/dev", hide = true)]
    pub dev: PathBuf,
    /// I²C bus number (`/dev/i2c-N`).
    #[arg(required_unless_present = "list")]
    pub bus: Option<u32>,
}

/// Parses and validates a spec; every problem is listed with its path.
pub fn load_spec(text: &str, origin: &str) -> anyhow::Result<Spec> {
    let spec: Spec = crate::validate::from_yaml(text).map_err(|p| match p.errors.as_slice() {
        [one] => anyhow::anyhow!("{origin}: {one}"),
        all => {
            let list: Vec<String> = all.iter().map(|e| format!("  {e}")).collect();
            anyhow::anyhow!("{origin}: invalid hardware spec:\n{}", list.join("\n"))
        }
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
        let text =
            crate::limits::read_regular_text(Path::new(name), crate::limits::MAX_BUNDLE_BYTES)
                .with_context(|| format!("reading {name}"))?;
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
    _dir: TempDir,
}

impl SimWorld {
    /// Builds the world for `spec` in a fresh temporary directory
    /// (`$TMPDIR/onprem-sim-PID-N`).
    pub fn new(spec: &Spec) -> anyhow::Result<SimWorld> {
        let dir = TempDir::create(format!(
            "onprem-sim-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))?;
        let world = onprem_hal::sim::world::World::new(spec, dir.path())
            .map_err(|e| anyhow::anyhow!("building the simulated world: {e}"))?;
        Ok(SimWorld { world, _dir: dir })
    }
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The temporary directories of this process that exist now.
static TEMP_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A directory under [`std::env::temp_dir`] (`$TMPDIR`, else `/tmp`),
/// removed when dropped, or by [`remove_temporary_dirs`] when the process
/// ends without running destructors.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `name` in the temporary directory.
    pub fn create(name: String) -> anyhow::Result<TempDir> {
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        TEMP_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir.clone());
        Ok(TempDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        TEMP_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|d| d != &self.0);
    }
}

/// Removes every [`TempDir`] of this process now: for an exit that runs
/// no destructor (`std::process::exit`, as on a closed standard output).
pub fn remove_temporary_dirs() {
    let dirs = std::mem::take(&mut *TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
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

/// `onprem i2cdetect`. As i2c-tools' does, it opens the bus before it
/// asks, so a missing bus is an error and not a question; it reads the
/// answer as i2c-tools does (see [`confirmed`]) and ends with "Aborting
/// on user request." and status 0 when the answer is no.
pub fn i2cdetect(o: I2cdetectOptions) -> anyhow::Result<()> {
    use onprem_hal::i2c::{self, ScanOptions};
    if o.list {
        let buses = match o.hardware {
            Source::Real => list_buses(&o.sysfs),
            Source::Sim => {
                let name = sim_profile(&o)?;
                sim_buses(&load_profile(name)?, name)
            }
        };
        print!("{}", render_buses(&buses));
        return Ok(());
    }
    let n = o
        .bus
        .context("give the I²C bus number to scan (`onprem i2cdetect -l` lists them)")?;
    let cells = match o.hardware {
        Source::Real => {
            let path = o.dev.join(format!("i2c-{n}"));
            // The device node opens (it exists, and this user may use
            // it) before the question; the I²C setup on it comes after.
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| bus_error(n, e.raw_os_error(), format!("{}: {e}", path.display())))?;
            if !o.yes {
                eprint!(
                    "WARNING! This program can confuse your I2C bus, cause data loss and worse!\n\
                     I will probe file {}.\n\
                     I will probe address range 0x08-0x77.\n\
                     Continue? [Y/n] ",
                    path.display()
                );
                let _ = std::io::stderr().flush();
                if !confirmed(&mut std::io::stdin().lock())? {
                    eprintln!("Aborting on user request.");
                    return Ok(());
                }
            }
            let mut bus = onprem_hal::i2c::LinuxI2c::open_path(&path.display().to_string(), n)
                .map_err(|e| bus_error(n, e.errno, e.to_string()))?;
            let claimed = i2c::claimed_addresses(&o.sysfs, n);
            i2c::scan(
                &mut bus,
                &ScanOptions {
                    force: o.force,
                    claimed,
                },
            )
        }
        Source::Sim => {
            let name = sim_profile(&o)?;
            let spec = load_profile(name)?;
            let buses = sim_buses(&spec, name);
            if !buses.iter().any(|b| b.number == n) {
                anyhow::bail!(
                    "no I²C bus {n} in the simulated world of {name:?}: it has {}",
                    if buses.is_empty() {
                        "no I²C bus".to_owned()
                    } else {
                        buses
                            .iter()
                            .map(|b| format!("i2c-{}", b.number))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            let w = SimWorld::new(&spec)?;
            let mut bus = w.world.i2c(n);
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

fn sim_profile(o: &I2cdetectOptions) -> anyhow::Result<&str> {
    o.profile
        .as_deref()
        .context("--hardware sim needs --profile to know what is on the bus")
}

/// The answer to i2c-tools' `Continue? [Y/n]`: yes for an empty line or
/// one that starts with `y` or `Y`; no for anything else, and for the end
/// of input (a script that gave no answer did not say yes).
pub fn confirmed(input: &mut impl BufRead) -> std::io::Result<bool> {
    let mut answer = String::new();
    if input.read_line(&mut answer)? == 0 {
        return Ok(false);
    }
    let a = answer.trim_end_matches(['\n', '\r']);
    Ok(a.is_empty() || a.starts_with(['y', 'Y']))
}

/// One I²C bus, as `i2cdetect -l` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusInfo {
    /// The bus number (`/dev/i2c-N`).
    pub number: u32,
    /// The adapter's name.
    pub name: String,
    /// i2c-tools' type: `i2c`, or `isa` for an ISA adapter.
    pub kind: &'static str,
    /// i2c-tools' description of the type.
    pub algo: &'static str,
}

/// The buses under `<sysfs>/class/i2c-dev`, by number, each named from
/// `i2c-N/name`, `i2c-N/device/name` or `<sysfs>/bus/i2c/devices/i2c-N/name`
/// (where i2c-tools looks). An adapter is listed as `i2c` (i2c-tools asks
/// the kernel whether it is SMBus-only; this reads sysfs only), `isa` when
/// its name says so.
pub fn list_buses(sysfs: &Path) -> Vec<BusInfo> {
    let class = sysfs.join("class/i2c-dev");
    let Ok(entries) = std::fs::read_dir(&class) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(number) = file
            .to_str()
            .and_then(|n| n.strip_prefix("i2c-"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = class.join(&file);
        let name = [
            dir.join("name"),
            dir.join("device/name"),
            sysfs.join("bus/i2c/devices").join(&file).join("name"),
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|n| n.trim_end().to_owned())
        .unwrap_or_default();
        let (kind, algo) = if name.starts_with("ISA ") {
            ("isa", "ISA bus")
        } else {
            ("i2c", "I2C adapter")
        };
        out.push(BusInfo {
            number,
            name,
            kind,
            algo,
        });
    }
    out.sort_by_key(|b| b.number);
    out
}

/// The buses the devices of a simulated world sit on.
pub fn sim_buses(spec: &Spec, profile: &str) -> Vec<BusInfo> {
    let numbers: std::collections::BTreeSet<u32> = spec
        .devices
        .iter()
        .filter_map(|d| d.i2c().map(|(bus, _)| bus))
        .collect();
    numbers
        .into_iter()
        .map(|number| BusInfo {
            number,
            name: format!("onprem simulated bus ({profile})"),
            kind: "i2c",
            algo: "I2C adapter",
        })
        .collect()
}

/// `i2cdetect -l`'s lines: `i2c-N`, type, name and description, tab
/// separated and padded as i2c-tools pads them.
pub fn render_buses(buses: &[BusInfo]) -> String {
    buses
        .iter()
        .map(|b| {
            format!(
                "i2c-{}\t{:<10}\t{:<32}\t{}\n",
                b.number, b.kind, b.name, b.algo
            )
        })
        .collect()
}

/// Why bus `bus` cannot be used, with what to do about it.
fn bus_error(bus: u32, errno: Option<i32>, detail: String) -> anyhow::Error {
    match errno {
        Some(2) => anyhow::anyhow!(
            "no I²C bus {bus}: {detail} (`onprem i2cdetect -l` lists the buses; \
             is the bus enabled? `dtparam=i2c_arm=on` on a Pi)"
        ),
        Some(13) => anyhow::anyhow!(
            "I²C bus {bus}: {detail} (add the user to the `i2c` group, or run as root)"
        ),
        _ => anyhow::anyhow!("I²C bus {bus}: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_line_or_a_yes_confirms_and_the_end_of_input_does_not() {
        let answer = |text: &str| confirmed(&mut text.as_bytes()).unwrap();
        assert!(answer("\n"));
        assert!(answer("y\n"));
        assert!(answer("Yes\r\n"));
        assert!(answer("y"));
        assert!(!answer(""), "end of input is no");
        assert!(!answer("n\n"));
        assert!(!answer("no\n"));
        assert!(!answer(" y\n"));
        assert!(!answer("sure\n"));
    }
}
