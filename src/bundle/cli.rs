//! The bundle commands: `onprem validate`, `onprem explain` and
//! `onprem bundle keygen|sign|verify`.
//!
//! They work on files, without an agent or a control plane: a standalone
//! node's unit can run `onprem validate` in `ExecStartPre=`, and a GitOps
//! pipeline can validate and sign bundles before they are pushed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::sign::{self, SecretKey, TrustedKeys};
use super::store::{Meta, Store};
use crate::limits;

/// Options of `onprem validate`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Prints `FILE: valid (bundle NAME version V, digest D)` for each good file,
and every problem of a bad one as `FILE: PATH: MESSAGE` on stderr (at most
50, then how many more). Exits 0 when all files are valid, 1 otherwise,
128 + the signal's number when SIGINT or SIGTERM stops it (130, 143).

A file larger than 1 MiB, nested deeper than 64 levels or not a regular file
is refused without being parsed (see Limits in docs/bundles.md).

On a standalone node (a bundle file, no control plane), the agent's unit can
refuse to start on a bad bundle with
  ExecStartPre=/usr/bin/onprem validate /etc/onprem/bundle.yaml
(see the commented line in systemd/onprem-agent.service).")]
pub struct ValidateOptions {
    /// Public key file (`onprem bundle keygen`) or inline key
    /// (`onprem-ed25519-public …`) to verify `FILE.sig` with; repeatable.
    /// A signature present must then verify; an absent one is accepted
    /// unless --require-signature.
    #[arg(long = "trusted-key", value_name = "PATH|KEY")]
    pub trusted_keys: Vec<String>,
    /// Refuse a bundle without a good signature (`FILE.sig`) by a trusted
    /// key.
    #[arg(long, requires = "trusted_keys")]
    pub require_signature: bool,
    /// Bundle files (YAML or JSON).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Options of `onprem explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainOptions {
    /// Print the bundle's whole JSON Schema (for editors: point the YAML
    /// language server at it) instead of one field.
    #[arg(long, conflicts_with = "path")]
    pub schema: bool,
    /// A field's path from the bundle's root, e.g. `spec.fans.zones` or
    /// `spec.fans.zones.controllers.points` (indices may be left out);
    /// empty: the bundle itself.
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
}

/// `onprem bundle …`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a signing key pair: PREFIX.key (secret, mode 0600; keep it off
    /// the nodes) and PREFIX.pub (what nodes trust).
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Sign a bundle file: adds this key's line to FILE.sig (replacing an
    /// older one by the same key), so several keys can sign one bundle.
    Sign {
        /// The secret key file.
        #[arg(long, value_name = "PREFIX.key")]
        key: PathBuf,
        /// The bundle file; its bytes are signed as they are.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Check FILE.sig against trusted keys.
    Verify {
        /// Public key file or inline key to trust; repeatable.
        #[arg(long = "trusted-key", value_name = "PATH|KEY", required = true)]
        trusted_keys: Vec<String>,
        /// The bundle file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Store bundle files into a state directory's bundle store, in
    /// order, as the agent does (for tests of crash safety).
    #[command(hide = true)]
    StoreWrite {
        /// The agent's state directory.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// Bundle files; `FILE.sig` is stored with each when present.
        #[arg(long = "file", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// Write the files over and over until killed.
        #[arg(long = "loop")]
        forever: bool,
    },
}

/// `onprem validate`: how many files were invalid (their problems are
/// printed on stderr as they are found).
pub fn validate(o: &ValidateOptions) -> anyhow::Result<usize> {
    let mut trusted = TrustedKeys::new();
    for k in &o.trusted_keys {
        add_trusted(&mut trusted, k)?;
    }
    let mut invalid = 0;
    for file in &o.files {
        let shown = file.display();
        match check(file, &trusted, o.require_signature) {
            Ok(line) => println!("{shown}: valid ({line})"),
            Err(problems) => {
                invalid += 1;
                // At most MAX_ERRORS lines, then how many more.
                for p in limits::bounded_lines(&problems) {
                    eprintln!("{shown}: {p}");
                }
            }
        }
    }
    Ok(invalid)
}

/// One file: the summary when valid, every problem (`path: message`)
/// otherwise.
fn check(file: &Path, trusted: &TrustedKeys, require: bool) -> Result<String, Vec<String>> {
    let bytes = limits::read_regular(file, limits::MAX_BUNDLE_BYTES)
        .map_err(|e| vec![format!("cannot read the file: {e}")])?;
    let mut problems = Vec::new();
    let mut signer = None;
    if !trusted.is_empty() {
        let sig_path = sign::sig_path(file);
        match super::read_sig(file) {
            Ok(Some(sig)) => match trusted.verify(&bytes, &sig) {
                Ok(id) => signer = Some(id),
                Err(e) => problems.push(format!("signature: {}: {e}", sig_path.display())),
            },
            Ok(None) => {
                if require {
                    problems.push(format!(
                        "signature: no signature: {} does not exist",
                        sig_path.display()
                    ));
                }
            }
            Err(e) => problems.push(format!("signature: reading {}: {e}", sig_path.display())),
        }
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            problems.push("not UTF-8 text".into());
            return Err(problems);
        }
    };
    let resolved = super::parse(&text)
        .and_then(|b| super::validate(&b, file.parent()).map_err(super::Error::Invalid));
    match resolved {
        Ok(r) if problems.is_empty() => {
            let version = r
                .bundle
                .metadata
                .version
                .map_or("none".to_owned(), |v| v.to_string());
            let signed = signer.map_or(String::new(), |id| format!(", signed by key {id}"));
            Ok(format!(
                "bundle {} version {version}, digest {}{signed}",
                r.name(),
                r.digest
            ))
        }
        Ok(_) => Err(problems),
        Err(e) => {
            problems.extend(e.field_errors().into_iter().map(|fe| {
                if fe.path.is_empty() {
                    fe.message
                } else {
                    fe.to_string()
                }
            }));
            Err(problems)
        }
    }
}

/// `onprem explain`.
pub fn explain(o: &ExplainOptions) -> anyhow::Result<()> {
    if o.schema {
        let text = serde_json::to_string_pretty(&super::explain::schema())?;
        println!("{text}");
        return Ok(());
    }
    match super::explain::explain(o.path.as_deref().unwrap_or("")) {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        Err(e) => bail!("{e}"),
    }
}

/// `onprem bundle …`.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Keygen { out } => {
            let public = sign::keygen(&out)?;
            println!(
                "wrote {0}.key (secret: keep it off the nodes) and {0}.pub (key id {1})",
                out.display(),
                public.id()
            );
            Ok(())
        }
        Command::Sign { key, file } => {
            let secret = SecretKey::load(&key)?;
            let bytes = limits::read_regular(&file, limits::MAX_BUNDLE_BYTES)
                .with_context(|| format!("reading {}", file.display()))?;
            let sig_path = sign::sig_path(&file);
            let old = super::read_sig(&file)
                .with_context(|| format!("reading {}", sig_path.display()))?
                .unwrap_or_default();
            let text = sign::add_signature(&old, &secret.sign(&bytes));
            replace_file(&sig_path, text.as_bytes())?;
            println!(
                "{}: signed by key {}",
                sig_path.display(),
                secret.public().id()
            );
            Ok(())
        }
        Command::Verify { trusted_keys, file } => {
            let mut trusted = TrustedKeys::new();
            for k in &trusted_keys {
                add_trusted(&mut trusted, k)?;
            }
            let bytes = limits::read_regular(&file, limits::MAX_BUNDLE_BYTES)
                .with_context(|| format!("reading {}", file.display()))?;
            let sig_path = sign::sig_path(&file);
            let sig = limits::read_regular_text(&sig_path, limits::MAX_SMALL_FILE_BYTES)
                .with_context(|| format!("no signature: reading {}", sig_path.display()))?;
            let id = trusted
                .verify(&bytes, &sig)
                .with_context(|| format!("{}", file.display()))?;
            println!("{}: good signature by key {id}", file.display());
            Ok(())
        }
        Command::StoreWrite {
            state_dir,
            files,
            forever,
        } => store_write(&state_dir, &files, forever),
    }
}

fn store_write(state_dir: &Path, files: &[PathBuf], forever: bool) -> anyhow::Result<()> {
    let mut items = Vec::new();
    for f in files {
        let text = super::read_file(f)?;
        let resolved = super::load(f).with_context(|| format!("{}", f.display()))?;
        let sig = super::read_sig(f).ok().flatten();
        let meta = Meta::new(&resolved, format!("file:{}", f.display()));
        items.push((text, sig, meta));
    }
    let mut store = Store::open(state_dir)?;
    loop {
        for (text, sig, meta) in &items {
            store.write(text, sig.as_deref(), meta)?;
        }
        if !forever {
            return Ok(());
        }
    }
}

/// A `--trusted-key` value: an inline key or a key file.
fn add_trusted(trusted: &mut TrustedKeys, arg: &str) -> anyhow::Result<()> {
    if arg.trim_start().starts_with(sign::PUBLIC_TAG) {
        trusted.add_str(arg)?;
    } else {
        trusted.add_file(Path::new(arg))?;
    }
    Ok(())
}

/// Replaces a file atomically ([`super::store::write_atomic`]).
fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    super::store::write_atomic(path, bytes, 0o644)
        .with_context(|| format!("writing {}", path.display()))
}
