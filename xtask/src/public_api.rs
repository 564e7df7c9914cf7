//! `cargo xtask public-api [--bless]`: the public API of `mptcp` with its default
//! features and with all of them, and of `mptcp-sys`, each listed one item per line
//! from rustdoc's JSON output and compared with its checked-in snapshot
//! (`mptcp/public-api.default.txt`, `mptcp/public-api.all-features.txt`,
//! `mptcp-sys/public-api.txt`), so that every change of a public API shows in review.
//!
//! rustdoc's JSON output is unstable and its format changes between releases, so the
//! listing is made by one pinned toolchain, [`TOOLCHAIN`] (installed with rustup when
//! missing), whatever the machine's own stable is; `RUSTC_BOOTSTRAP=1` lets that
//! release write the JSON. Moving the pin is a reviewed change like any other (the
//! snapshots may change with it).

use crate::sys::{output, root, run as sh, target_dir};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// The toolchain that writes rustdoc's JSON (its format, 57, is the one the
/// `public-api` crate in `xtask` reads).
pub const TOOLCHAIN: &str = "1.95.0";

/// One snapshot: the package, its feature arguments, and the file.
struct Snapshot {
    package: &'static str,
    features: &'static [&'static str],
    file: &'static str,
    /// Whether the rule of allowed public dependencies applies.
    check_dependencies: bool,
}

const SNAPSHOTS: &[Snapshot] = &[
    Snapshot {
        package: "mptcp",
        features: &[],
        file: "mptcp/public-api.default.txt",
        check_dependencies: true,
    },
    Snapshot {
        package: "mptcp",
        features: &["--all-features"],
        file: "mptcp/public-api.all-features.txt",
        check_dependencies: true,
    },
    Snapshot {
        package: "mptcp-sys",
        features: &[],
        file: "mptcp-sys/public-api.txt",
        check_dependencies: false,
    },
];

/// Installs the pinned toolchain when rustup does not have it.
fn ensure_toolchain() -> Result<()> {
    let have = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if have.lines().any(|l| l.starts_with(TOOLCHAIN)) {
        return Ok(());
    }
    sh(Command::new("rustup")
        .args(["toolchain", "install", TOOLCHAIN, "--profile", "minimal"])
        .env("RUSTUP_AUTO_INSTALL", "1"))
    .with_context(|| format!("install Rust {TOOLCHAIN} for the public-API listing"))
}

/// The public API of one snapshot's package, one item per line, sorted.
fn current(snap: &Snapshot) -> Result<String> {
    // One target directory for all three: their dependencies are built once.
    let dir = target_dir().join("public-api");
    let status = Command::new("cargo")
        .current_dir(root())
        .arg(format!("+{TOOLCHAIN}"))
        .args(["rustdoc", "-q", "-p", snap.package, "--lib"])
        .args(snap.features)
        .arg("--target-dir")
        .arg(&dir)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTDOCFLAGS", "-A rustdoc::all")
        // The pinned toolchain's own tools, not the caller's (cargo xtask sets these).
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO")
        .status()
        .context("run cargo rustdoc")?;
    if !status.success() {
        bail!("cargo +{TOOLCHAIN} rustdoc --output-format json failed");
    }
    let json = dir
        .join("doc")
        .join(format!("{}.json", snap.package.replace('-', "_")));
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
    ensure_toolchain()?;
    let mut differ = Vec::new();
    for snap in SNAPSHOTS {
        let now = current(snap)?;
        if snap.check_dependencies {
            check_dependencies(snap, &now)?;
        }
        let path: PathBuf = root().join(snap.file);
        if bless {
            fs::write(&path, &now)?;
            eprintln!("xtask: wrote {} ({} items)", snap.file, now.lines().count());
            continue;
        }
        let old = fs::read_to_string(&path).unwrap_or_default();
        if old == now {
            eprintln!(
                "xtask: the public API matches {} ({} items)",
                snap.file,
                now.lines().count()
            );
            continue;
        }
        let old_set: std::collections::BTreeSet<&str> = old.lines().collect();
        let new_set: std::collections::BTreeSet<&str> = now.lines().collect();
        eprintln!("xtask: {} differs:", snap.file);
        for l in old_set.difference(&new_set) {
            eprintln!("- {l}");
        }
        for l in new_set.difference(&old_set) {
            eprintln!("+ {l}");
        }
        differ.push(snap.file);
    }
    if !differ.is_empty() {
        bail!(
            "the public API differs from {} (above: - removed, + added). If the change is \
             intended, run `cargo xtask public-api --bless` and commit the files.",
            differ.join(", ")
        );
    }
    Ok(())
}

/// `cargo semver-checks` of `mptcp` and `mptcp-sys` against the newest tag `vX.Y.Z`,
/// once there is one (it installs the tool with `cargo install --locked` when missing);
/// before the first tag it says so and does nothing.
pub fn semver_checks() -> Result<()> {
    let tags = output(Command::new("git").current_dir(root()).args([
        "tag",
        "--list",
        "v*",
        "--sort=-v:refname",
    ]))
    .unwrap_or_default();
    let Some(tag) = tags.lines().next().map(str::trim).filter(|t| !t.is_empty()) else {
        eprintln!(
            "xtask: no version is tagged yet: cargo semver-checks runs once one is (git tag vX.Y.Z)"
        );
        return Ok(());
    };
    let have = Command::new("cargo")
        .args(["semver-checks", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        sh(Command::new("cargo").args(["install", "--locked", "cargo-semver-checks"]))
            .context("install cargo-semver-checks")?;
    }
    sh(Command::new("cargo").current_dir(root()).args([
        "semver-checks",
        "-p",
        "mptcp",
        "-p",
        "mptcp-sys",
        "--baseline-rev",
        tag,
    ]))
    .with_context(|| format!("the public API broke compatibility with {tag}"))
}

fn check_dependencies(snap: &Snapshot, api: &str) -> Result<()> {
    let foreign = foreign_crates(api);
    if foreign.is_empty() {
        return Ok(());
    }
    for (krate, item) in &foreign {
        eprintln!("xtask: the public API names {krate}: {item}");
    }
    bail!(
        "the public API of {} ({}) names crates it must not (allowed: {}; mptcp_sys only \
         through as_raw): a new version of those would be a breaking change",
        snap.package,
        snap.file,
        ALLOWED.join(", ")
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
