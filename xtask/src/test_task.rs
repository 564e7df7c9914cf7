//! `cargo xtask test`: everything CI runs.

use crate::codegen_task;
use crate::sys::{ensure_packages, root, run as sh};
use anyhow::Result;
use std::process::Command;

/// System packages the tests need: libclang for bindgen, a C compiler for the layout
/// tests, iproute2 for network namespaces, strace for the system call budget
/// (`mptcp/tests/syscalls.rs`), python3 for the unmodified programs `mptcp-run` runs
/// (`mptcp-examples/tests/mptcp_run.rs`).
const PACKAGES: &[&str] = &[
    "libclang-dev",
    "gcc",
    "libc6-dev",
    "iproute2",
    "strace",
    "python3",
];

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn run(no_vm: bool) -> Result<()> {
    ensure_packages(PACKAGES)?;
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    // The pinned headers (downloaded once into target/) make the build-time bindings
    // equal to the snapshot, so every step below builds mptcp-sys the same way.
    codegen_task::run(true)?;
    let headers = codegen_task::pinned_headers()?.include;
    sh(cargo().env("MPTCP_SYS_KERNEL_HEADERS", &headers).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The library without its optional features, and with its defaults only.
    let one_feature =
        |f: &'static str| -> [&'static str; 3] { ["--no-default-features", "--features", f] };
    for features in [
        &["--no-default-features"][..],
        &[],
        &one_feature("pm")[..],
        &one_feature("diag")[..],
    ] {
        sh(cargo()
            .env("MPTCP_SYS_KERNEL_HEADERS", &headers)
            .args(["clippy", "-p", "mptcp", "--all-targets"])
            .args(features)
            .args(["--", "-D", "warnings"]))?;
    }
    // The build-time bindings, generated from the pinned headers, and the snapshot: both
    // are checked against the C compiler's view of those same headers.
    // mptcpd, unpacked under target/ (not installed), for mptcp-pmd's comparison test.
    let mptcpd = crate::mptcpd::root()?;
    sh(cargo()
        .args(["test", "--workspace", "--all-features"])
        .env("MPTCP_SYS_KERNEL_HEADERS", &headers)
        .env("MPTCP_TEST_MPTCPD_ROOT", &mptcpd))?;
    sh(cargo()
        .args(["test", "-p", "mptcp-sys", "--no-default-features"])
        .env("MPTCP_SYS_KERNEL_HEADERS", &headers))?;
    // Benchmarks are not tests: they are only built here (`cargo xtask bench` runs them).
    sh(cargo()
        .args(["bench", "-p", "mptcp-bench", "--no-run"])
        .env("MPTCP_SYS_KERNEL_HEADERS", &headers))?;
    // The unsafe code under Miri, where a nightly toolchain is installed.
    crate::miri::run()?;
    // Every change of the public API is a reviewed change of mptcp/public-api.txt.
    crate::public_api::run(false)?;
    // Other architectures under qemu-user, and the other platforms compiled.
    crate::cross::run(Vec::new())?;
    if no_vm {
        eprintln!("xtask: skipping the VM test matrix (--no-vm)");
    } else {
        crate::vm::run(Vec::new(), false, crate::vm::TcgThreads::Multi)?;
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}
