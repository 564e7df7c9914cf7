//! `cargo xtask miri`: the decode/encode unit tests of `mptcp` (the ones that build
//! kernel bytes by hand: no system calls, which Miri cannot run) under Miri, which checks
//! the crate's `unsafe` code for undefined behaviour as they run.
//!
//! Miri needs a nightly toolchain. When none is installed, the step says so and skips:
//! this project's machines have only their stable toolchain for certain.

use crate::sys::{output, root, run as sh};
use anyhow::Result;
use std::process::Command;

/// The unit-test modules that touch no system call. (The property tests also run the
/// decoders, but Miri's interpreter needs minutes for them; these cover the same
/// `unsafe` paths in seconds.)
const FILTERS: &[&str] = &["abi_tests", "legacy::tests"];

pub fn run() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    let Some(nightly) = toolchains
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .find(|t| t.starts_with("nightly"))
        .map(str::to_string)
    else {
        eprintln!(
            "xtask: skipped Miri: it needs a nightly toolchain and none is installed \
             (rustup toolchain install nightly --component miri)"
        );
        return Ok(());
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
    if !has_miri
        && sh(Command::new("rustup").args(["component", "add", "miri", "--toolchain", &nightly]))
            .is_err()
    {
        eprintln!("xtask: skipped Miri: the miri component of {nightly} cannot be installed");
        return Ok(());
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
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    sh(&mut cmd)
}
