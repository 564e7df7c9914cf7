//! `cargo xtask docs`: the API documentation of `mptcp-sys` and `mptcp` as docs.rs and a
//! user would build it, with `RUSTDOCFLAGS=-D warnings` (no broken intra-doc link, no
//! link to a private item): default features on Linux, and all features on Linux and on
//! FreeBSD (standing for the other operating systems, where the crates are mostly
//! empty and must say so without broken links).

use crate::sys::{root, run as sh, target_dir};
use anyhow::{Context, Result};
use std::process::Command;

pub fn run() -> Result<()> {
    let other = "x86_64-unknown-freebsd";
    crate::targets::ensure_rust_target(other)?;
    let host = host_triple()?;
    let doc = |args: &[&str]| -> Result<()> {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--no-deps", "-p", "mptcp-sys", "-p", "mptcp"])
            .args(args)
            .arg("--target-dir")
            .arg(target_dir().join("doc-check"));
        sh(&mut cmd).with_context(|| format!("cargo doc {args:?} has warnings"))
    };
    doc(&[])?;
    doc(&["--all-features", "--target", &host, "--target", other])?;
    eprintln!(
        "xtask: the API docs build without warnings (default and all features; Linux and {other})"
    );
    Ok(())
}

/// The host's target triple, as rustc reports it.
fn host_triple() -> Result<String> {
    let out = crate::sys::output(Command::new("rustc").arg("-vV"))?;
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}
