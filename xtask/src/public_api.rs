//! `cargo xtask public-api [--bless]`: the public API of `mptcp` (all features, Linux),
//! listed one item per line from rustdoc's JSON output and compared with the
//! checked-in `mptcp/public-api.txt`, so that every change of the public API shows in
//! review.
//!
//! rustdoc's JSON output is unstable; `RUSTC_BOOTSTRAP=1` lets the stable toolchain
//! write it, so no nightly toolchain is needed.

use crate::sys::{root, target_dir};
use anyhow::{bail, Context, Result};
use std::fs;
use std::process::Command;

const CRATE: &str = "mptcp";

fn snapshot_path() -> std::path::PathBuf {
    root().join(CRATE).join("public-api.txt")
}

/// The public API, one item per line, sorted.
fn current() -> Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = target_dir().join("public-api");
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "rustdoc",
            "-q",
            "-p",
            CRATE,
            "--lib",
            "--all-features",
            "--target-dir",
        ])
        .arg(&dir)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTDOCFLAGS", "-A rustdoc::all")
        .status()
        .context("run cargo rustdoc")?;
    if !status.success() {
        bail!("cargo rustdoc --output-format json failed");
    }
    let json = dir.join("doc").join(format!("{CRATE}.json"));
    // Blanket impls (From<T> for T, Borrow, ...) say nothing about this crate; auto
    // traits (Send, Sync, Unpin) do, and stay.
    let api = public_api::Builder::from_rustdoc_json(&json)
        .omit_blanket_impls(true)
        .build()
        .with_context(|| format!("read {}", json.display()))?;
    let mut lines: Vec<String> = api.items().map(|i| i.to_string()).collect();
    lines.sort();
    lines.dedup();
    Ok(lines.join("\n") + "\n")
}

pub fn run(bless: bool) -> Result<()> {
    let now = current()?;
    let path = snapshot_path();
    if bless {
        fs::write(&path, &now)?;
        eprintln!(
            "xtask: wrote {} ({} items)",
            path.display(),
            now.lines().count()
        );
        return Ok(());
    }
    let old = fs::read_to_string(&path).unwrap_or_default();
    if old == now {
        eprintln!(
            "xtask: the public API matches {} ({} items)",
            path.display(),
            now.lines().count()
        );
        return Ok(());
    }
    let old_set: std::collections::BTreeSet<&str> = old.lines().collect();
    let new_set: std::collections::BTreeSet<&str> = now.lines().collect();
    for l in old_set.difference(&new_set) {
        eprintln!("- {l}");
    }
    for l in new_set.difference(&old_set) {
        eprintln!("+ {l}");
    }
    bail!(
        "the public API of {CRATE} differs from {} (above: - removed, + added). If the \
         change is intended, run `cargo xtask public-api --bless` and commit the file.",
        path.display()
    )
}
