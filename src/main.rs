//! The `onprem` binary: parses the command line, sets up logging and
//! signals, and hands over to the library.

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> std::process::ExitCode {
    exit_quietly_when_output_is_gone();
    onprem::exporter::sys::tune_allocator();
    let cli = onprem::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(cli.command.log_level())
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let workers = cli.command.worker_threads();
    let mut b = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let rt = match b.max_blocking_threads(8).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("onprem: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        onprem::cli::run(cli, shutdown).await
    });
    if let Err(e) = &result {
        if e.is::<onprem::cli::Interrupted>() {
            // Work left on the blocking pool (a parse) is not waited for.
            rt.shutdown_background();
            eprintln!("onprem: {e}");
            let signal = STOPPED_BY.load(std::sync::atomic::Ordering::Relaxed);
            return std::process::ExitCode::from(128 + signal);
        }
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onprem: {}", onprem::exporter::error_chain(e.as_ref()));
            match e.downcast_ref::<onprem::cli::fleet::Exit>() {
                Some(x) => std::process::ExitCode::from(x.code),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

/// The exit status of a command whose output went into a pipe that its
/// reader closed (`onprem explain --schema | head`): 128 + SIGPIPE, what a
/// shell reports for a C or Go program (kubectl) killed by SIGPIPE there.
const BROKEN_PIPE_EXIT: i32 = 141;

/// Makes a write to a closed standard output (or error) end the process
/// quietly with [`BROKEN_PIPE_EXIT`] instead of panicking.
///
/// Rust ignores SIGPIPE, so `println!` into a pipe whose reader is gone
/// gets EPIPE and panics ("failed printing to stdout: Broken pipe").
/// Restoring SIGPIPE's default would end that too, but for every write:
/// a pipe to a child process or a Unix socket would kill the agent, the
/// control plane or `port-forward` without a word. This hook only turns
/// that one panic, from whichever thread prints, into a quiet exit; every
/// other panic keeps the default report, and sockets keep getting EPIPE
/// as an error their code handles.
fn exit_quietly_when_output_is_gone() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_closed_output(message) {
            // No destructor runs on this exit: the simulated worlds' and
            // the demo's temporary directories go here.
            onprem::hw::remove_temporary_dirs();
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        default(info);
    }));
}

/// Whether a panic message is std's for printing into a closed pipe.
fn is_closed_output(message: &str) -> bool {
    (message.starts_with("failed printing to stdout")
        || message.starts_with("failed printing to stderr"))
        && message.contains(&std::io::Error::from_raw_os_error(libc::EPIPE).to_string())
}

/// The signal that cancelled the shutdown token (SIGTERM unless SIGINT
/// did).
static STOPPED_BY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(15);

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    let signal = tokio::select! {
        _ = term.recv() => libc::SIGTERM,
        _ = int.recv() => libc::SIGINT,
    };
    STOPPED_BY.store(
        u8::try_from(signal).unwrap_or(15),
        std::sync::atomic::Ordering::Relaxed,
    );
    tracing::info!("shutting down");
    shutdown.cancel();
}
