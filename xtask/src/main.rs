//! `cargo xtask`: the project's maintainer tasks.

mod apt;
#[path = "../../mptcp-sys/codegen.rs"]
mod codegen;
mod codegen_task;
mod demo;
mod sys;
mod test_task;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Maintainer tasks for the mptcp workspace"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate the committed bindings snapshot from the pinned kernel UAPI headers.
    Codegen {
        /// Do not write: fail when the snapshot differs from a fresh generation.
        #[arg(long)]
        check: bool,
    },
    /// Run the whole test suite: format, clippy, tests, codegen check.
    Test,
    /// Run the demo: a real MPTCP session between two network namespaces.
    Demo,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Codegen { check } => codegen_task::run(check),
        Cmd::Test => test_task::run(),
        Cmd::Demo => demo::run(),
    };
    if let Err(e) = r {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
