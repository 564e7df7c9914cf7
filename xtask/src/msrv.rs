//! `cargo xtask msrv`: the minimum supported Rust version, checked. The version is the
//! workspace's `rust-version`; rustup installs that toolchain when it is missing
//! (`--profile minimal`), and the library crates (`mptcp-sys`, `mptcp`) are checked with
//! it, with their default features and with all of them, against the committed
//! `Cargo.lock`. The tools and tests may use a newer Rust; the libraries may not.

use crate::sys::{root, run as sh, target_dir};
use anyhow::{Context, Result};
use std::process::Command;

/// The workspace's `rust-version`.
fn msrv() -> Result<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .context("no rust-version in the workspace's Cargo.toml")
}

pub fn run() -> Result<()> {
    let version = msrv()?;
    let have = Command::new("rustup")
        .args(["run", &version, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("xtask: the MSRV check needs Rust {version}: installing it with rustup");
        sh(Command::new("rustup").args(["toolchain", "install", &version, "--profile", "minimal"]))
            .with_context(|| format!("rustup toolchain install {version} --profile minimal"))?;
    }
    for features in [&[][..], &["--all-features"][..]] {
        sh(Command::new("rustup")
            .current_dir(root())
            .args(["run", &version, "cargo", "check", "--locked"])
            .args(["-p", "mptcp-sys", "-p", "mptcp"])
            .args(features)
            .arg("--target-dir")
            .arg(target_dir().join("msrv")))
        .with_context(|| format!("the libraries do not build with their MSRV, Rust {version}"))?;
    }
    eprintln!("xtask: mptcp-sys and mptcp build with Rust {version} (default and all features)");
    Ok(())
}
