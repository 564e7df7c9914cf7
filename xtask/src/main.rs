//! `cargo xtask`: the project's maintainer tasks.

mod apt;
mod bench;
#[path = "../../mptcp-sys/codegen.rs"]
mod codegen;
mod codegen_task;
mod cross;
mod demo;
mod dist;
mod docs;
mod miri;
mod mptcpd;
mod msrv;
mod package;
mod packages;
mod public_api;
mod selftest;
mod sys;
mod targets;
mod test_task;
mod vm;

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
    /// Run the whole test suite: format, clippy, tests, codegen check, the VM matrix.
    Test {
        /// Skip the VM test matrix (quick local runs; CI does not skip it).
        #[arg(long)]
        no_vm: bool,
    },
    /// Cross-compile the unit and layout tests for other Linux architectures and run them
    /// under qemu-user (default: i686, aarch64, armv7, riscv64gc, powerpc64le, s390x).
    Cross {
        /// Rust target triples to run (repeatable).
        #[arg(long = "target")]
        targets: Vec<String>,
    },
    /// Run the decode/encode unit tests under Miri (needs a nightly toolchain).
    Miri,
    /// Build the libraries' API docs with warnings denied (default and all features,
    /// Linux and another OS).
    Docs,
    /// Package mptcp-sys as crates.io would get it and test the package on its own.
    Package,
    /// Check the libraries with their minimum supported Rust (the workspace's
    /// rust-version; rustup installs it when missing).
    Msrv,
    /// Compare the public APIs of `mptcp` (default and all features) and `mptcp-sys` with
    /// their checked-in snapshots.
    PublicApi {
        /// Write the current API to the file instead of comparing.
        #[arg(long)]
        bless: bool,
    },
    /// Run the demo (root): aggregation, failover and a backup path, live between two
    /// network namespaces, then a summary and target/demo/throughput.svg.
    Demo {
        /// Print the figures as one JSON object, the last line of the output.
        #[arg(long)]
        json: bool,
        /// Turn MPTCP off in the demo's namespaces (net.mptcp.enabled = 0), to see what
        /// the demo does on a kernel without it: the TCP act alone.
        #[arg(long)]
        without_mptcp: bool,
    },
    /// Build the Debian package of the tools (mptcp-tools, with cargo-deb) under
    /// target/dist/ and print its path.
    Dist {
        /// The cargo profile the tools are built with.
        #[arg(long, default_value = "release")]
        profile: String,
        /// Then install it with dpkg into a fresh Debian root (mmdebstrap; root) and run
        /// each tool there.
        #[arg(long)]
        check: bool,
    },
    /// Run the benchmarks (root: they build network namespaces) and print each library
    /// call beside its system-call floor, as the median ratio of several runs.
    Bench {
        /// How many times to run the benchmarks.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Only the benchmarks whose name matches this (criterion's filter).
        filter: Option<String>,
    },
    /// Run the kernel's MPTCP selftest pm_netlink.sh (Linux 6.12, root) with mptcp-pm
    /// standing in for `ip mptcp`, and report its results.
    Selftest {
        /// Run it with the real `ip mptcp` instead (the reference).
        #[arg(long)]
        ip: bool,
    },
    /// Run the test suite on a matrix of kernels in qemu.
    VmTest {
        /// Kernels: suite names (bullseye, bookworm, trixie, trixie-backports), version
        /// prefixes, or paths to a vmlinuz, each x86_64 (amd64) by default. Prefix one
        /// with `arm64:` for Debian's arm64 cloud kernel instead, booted under
        /// qemu-system-aarch64 (e.g. `arm64:trixie`, `arm64:6.12`). Default: the four
        /// suites, then arm64:trixie.
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Print every console line.
        #[arg(long)]
        verbose: bool,
        /// How TCG (used when KVM is unavailable, and always for arm64) runs the virtual
        /// CPUs.
        #[arg(long, value_enum, default_value_t = vm::TcgThreads::Multi)]
        tcg_threads: vm::TcgThreads,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Codegen { check } => codegen_task::run(check),
        Cmd::Test { no_vm } => test_task::run(no_vm),
        Cmd::Cross { targets } => cross::run(targets),
        Cmd::PublicApi { bless } => public_api::run(bless),
        Cmd::Miri => miri::run(),
        Cmd::Msrv => msrv::run(),
        Cmd::Docs => docs::run(),
        Cmd::Package => package::run(),
        Cmd::Demo {
            json,
            without_mptcp,
        } => demo::run(json, without_mptcp),
        Cmd::Dist { profile, check } => dist::run_task(profile, check),
        Cmd::Bench { runs, filter } => bench::run(runs, filter),
        Cmd::Selftest { ip } => selftest::run(ip, None),
        Cmd::VmTest {
            kernels,
            verbose,
            tcg_threads,
        } => vm::run(kernels, verbose, tcg_threads),
    };
    if let Err(e) = r {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
