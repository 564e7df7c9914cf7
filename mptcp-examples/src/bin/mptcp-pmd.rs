//! `mptcp-pmd`: keeps the MPTCP path manager in step with the host's interfaces.
//!
//! ```text
//! mptcp-pmd [--config FILE] [--check] [--json] [--log LEVEL] [--state FILE]
//! mptcp-pmd status [--state FILE]
//! ```

use clap::{Parser, Subcommand};
use mptcp_pmd::{self as pmd, Config, State};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mptcp-pmd",
    version,
    about = "Keeps the MPTCP path manager in step with the host's interfaces and addresses",
    long_about = "Keeps the MPTCP path manager in step with the host's interfaces and \
addresses.\n\nKernel mode (default): one in-kernel endpoint per usable address, removed when \
the address or its link goes away and added again when it returns; endpoints it did not \
create are never touched; on SIGTERM it removes what it added (unless cleanup = false).\n\n\
Userspace mode: selects the userspace path manager and opens subflows itself, per \
connection (restores the previous path manager on exit).\n\nAfter a crash, the next start \
takes over what the crashed daemon left (its state file): its endpoints, the path manager \
it replaced. A second daemon with the same state file is refused.\n\nWith no --config: kernel mode, \
every non-loopback, non-link-local address of an interface that is up as a `subflow` \
endpoint. Logs go to stderr. SIGUSR1 logs the state; `mptcp-pmd status` prints it."
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// The TOML configuration (the package installs /etc/mptcp-pmd.toml, which documents
    /// every key with its default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration and exit (0: valid).
    #[arg(long)]
    check: bool,
    /// Log lines as JSON objects.
    #[arg(long)]
    json: bool,
    /// Log level: error, warn, info, debug, trace (or a RUST_LOG-style filter).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log: String,
    /// The state file (default: the configuration's state_file, /run/mptcp-pmd.json).
    #[arg(long, value_name = "FILE", global = true)]
    state: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print what a running daemon manages (its state file, as JSON).
    Status,
}

fn main() -> ExitCode {
    let args: Args = mptcp_examples::parse_args("mptcp-pmd");
    let mut config = match &args.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mptcp-pmd: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    // A wrong command line is refused before anything else, --check included.
    let filter = match log_filter(&args.log) {
        Ok(f) => f,
        Err(e) => mptcp_examples::usage_error("mptcp-pmd", &format!("--log {:?}: {e}", args.log)),
    };
    if let Some(s) = &args.state {
        // An empty path: no state file.
        config.state_file = Some(s.clone()).filter(|p| !p.as_os_str().is_empty());
    }
    if let Some(Cmd::Status) = args.cmd {
        return status(&config);
    }
    if args.check {
        println!(
            "{}: valid ({:?} mode)",
            args.config
                .as_ref()
                .map_or("defaults".into(), |p| p.display().to_string()),
            config.mode
        );
        return ExitCode::SUCCESS;
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    if args.json {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mptcp-pmd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rules = config.rules.clone();
    match rt.block_on(pmd::run(config, rules)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            eprintln!("mptcp-pmd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(config: &Config) -> ExitCode {
    let Some(path) = &config.state_file else {
        eprintln!("mptcp-pmd: no state file configured");
        return ExitCode::FAILURE;
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "mptcp-pmd: no daemon state at {} ({e}): is mptcp-pmd running?",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    match serde_json::from_str::<State>(&text) {
        Ok(s) => {
            let alive = std::path::Path::new(&format!("/proc/{}", s.pid)).exists();
            if !alive {
                eprintln!(
                    "mptcp-pmd: the daemon (pid {}) is not running; its last state:",
                    s.pid
                );
            }
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or(text));
            if alive {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("mptcp-pmd: {}: not a state file: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// The `--log` filter: a level, or RUST_LOG-style `TARGET=LEVEL` directives (comma
/// separated). A bare word that is not a level is refused: tracing would take it for a
/// target's name and log nothing.
fn log_filter(s: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    use tracing_subscriber::filter::LevelFilter;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !part.contains('=') && part.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "{part:?} is not a level (error, warn, info, debug, trace, off) nor TARGET=LEVEL"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(s).map_err(|e| e.to_string())
}
