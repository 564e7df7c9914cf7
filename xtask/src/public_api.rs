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

/// The crates whose types the public API may name (the rule of ARCHITECTURE.md's
/// "Public dependencies"): the standard library, tokio and futures-core (feature
/// `tokio`), serde (feature `serde`), bitflags (the flag types it generates), and this
/// workspace's `mptcp-sys` only through the marked raw accessors (`as_raw`) and its
/// re-export `sys_bindings`.
const ALLOWED: &[&str] = &[
    "mptcp",
    "core",
    "std",
    "alloc",
    "tokio",
    "futures_core",
    "serde",
    "serde_core",
    "bitflags",
];

/// Types whose impls the listing names by their own path (`u32::from`).
const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "bool",
    "char", "str", "f32", "f64",
];

/// The crates other than [`ALLOWED`] that items of the API name, with an item each.
fn foreign_crates(api: &str) -> Vec<(String, String)> {
    let mut found = std::collections::BTreeMap::new();
    for line in api.lines() {
        let raw_accessor = line.contains("::as_raw(") || line == "pub use mptcp::sys_bindings";
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            let Some((krate, _)) = word.split_once("::") else {
                continue;
            };
            let krate = krate.trim_start_matches(':');
            // Crates are lower-case paths (`Self::IntoIter` is not one).
            if !krate.starts_with(|c: char| c.is_ascii_lowercase())
                || ALLOWED.contains(&krate)
                || PRIMITIVES.contains(&krate)
                || (krate == "mptcp_sys" && raw_accessor)
            {
                continue;
            }
            found
                .entry(krate.to_string())
                .or_insert_with(|| line.to_string());
        }
    }
    found.into_iter().collect()
}

pub fn run(bless: bool) -> Result<()> {
    let now = current()?;
    let foreign = foreign_crates(&now);
    if !foreign.is_empty() {
        for (krate, item) in &foreign {
            eprintln!("xtask: the public API names {krate}: {item}");
        }
        bail!(
            "the public API of {CRATE} names crates it must not (allowed: {}; mptcp_sys only through as_raw): a new version of those would be a breaking change of {CRATE}",
            ALLOWED.join(", ")
        );
    }
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

#[cfg(test)]
mod tests {
    use super::foreign_crates;

    #[test]
    fn only_the_allowed_crates_pass() {
        let api = [
            "pub fn mptcp::MptcpSocket::socket(&self) -> &socket2::Socket",
            "pub fn mptcp::MptcpInfo::as_raw(&self) -> &mptcp_sys::uapi::mptcp_info",
            "pub fn mptcp::x(&self) -> core::result::Result<(), std::io::Error>",
            "pub fn u32::from(mptcp::Token) -> u32",
            "pub fn mptcp::y(&self) -> &mptcp_sys::uapi::tcp_info",
        ]
        .join("\n");
        let api = api.as_str();
        let found: Vec<String> = foreign_crates(api).into_iter().map(|(k, _)| k).collect();
        assert_eq!(found, ["mptcp_sys", "socket2"]);
    }
}
