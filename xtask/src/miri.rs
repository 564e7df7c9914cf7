//! `cargo xtask miri`: the decode/encode unit tests of `mptcp` (the ones that build
//! kernel bytes by hand: no system calls, which Miri cannot run) under Miri, which checks
//! the crate's `unsafe` code for undefined behaviour as they run.
//!
//! Miri needs a nightly toolchain with its `miri` component: when none is installed,
//! this installs one with rustup (`--profile minimal --component miri`, about 25 s
//! here); when that fails the step fails, naming the command, rather than passing
//! without having run.

use crate::sys::{output, root, run as sh};
use anyhow::{Context, Result};
use std::process::Command;

/// The unit-test modules that touch no system call. (The property tests also run the
/// decoders, but Miri's interpreter needs minutes for them; these cover the same
/// `unsafe` paths in seconds.)
const FILTERS: &[&str] = &[
    "abi_tests",
    "legacy::tests",
    "diag::tests",
    "pm::command",
    "sys::tests",
];

/// Of those, the property tests (too slow under Miri's interpreter).
const SKIP: &[&str] = &["never_panic"];

fn installed_nightly() -> Option<String> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    toolchains
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .find(|t| t.starts_with("nightly"))
        .map(str::to_string)
}

pub fn run() -> Result<()> {
    let nightly = match installed_nightly() {
        Some(n) => n,
        None => {
            eprintln!("xtask: Miri needs a nightly toolchain: installing one with rustup");
            sh(Command::new("rustup")
                .args(["toolchain", "install", "nightly", "--profile", "minimal"])
                .args(["--component", "miri"])
                .env("RUSTUP_AUTO_INSTALL", "1"))
            .context(
                "Miri needs a nightly toolchain and installing one failed \
                 (rustup toolchain install nightly --profile minimal --component miri)",
            )?;
            installed_nightly().context("rustup installed no nightly toolchain")?
        }
    };
    let has_miri = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &nightly,
    ]))
    .unwrap_or_default()
    .lines()
    .any(|l| l.starts_with("miri"));
    if !has_miri {
        sh(Command::new("rustup").args(["component", "add", "miri", "--toolchain", &nightly]))
            .with_context(|| format!("add the miri component to {nightly}"))?;
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .arg(format!("+{nightly}"))
        .args([
            "miri",
            "test",
            "-p",
            "mptcp",
            "--all-features",
            "--lib",
            "--",
        ])
        .args(FILTERS)
        .args(SKIP.iter().flat_map(|s| ["--skip", s]))
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    sh(&mut cmd)
}
