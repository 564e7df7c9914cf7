//! `cargo xtask package`: `mptcp-sys` as crates.io would get it. `cargo publish --dry-run`
//! packages it and builds the package with its default features (bindgen); then the
//! packaged crate, unpacked outside the workspace, runs its own tests on the committed
//! snapshot (`--no-default-features`), so nothing it needs lives only in the workspace.
//! (`mptcp` cannot be published yet: its name on crates.io belongs to another project.)

use crate::sys::{root, run as sh, target_dir};
use anyhow::{Context, Result};
use std::process::Command;

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn run() -> Result<()> {
    let pkg_dir = target_dir().join("package");
    sh(cargo().args(["publish", "--dry-run", "--allow-dirty", "-p", "mptcp-sys"]))
        .context("cargo publish --dry-run -p mptcp-sys failed")?;
    // Where cargo leaves it: target/package/, or target/package/tmp-crate/ (dry runs of
    // newer cargo).
    let krate = [pkg_dir.clone(), pkg_dir.join("tmp-crate")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mptcp-sys-") && n.ends_with(".crate"))
        })
        .max()
        .context("cargo publish --dry-run left no mptcp-sys .crate under target/package")?;
    // Outside the workspace (cargo would take the package for one of its members).
    let unpacked = std::env::temp_dir().join(format!("mptcp-sys-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)?;
    sh(Command::new("tar")
        .arg("-xzf")
        .arg(&krate)
        .arg("-C")
        .arg(&unpacked))?;
    let dir = std::fs::read_dir(&unpacked)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .context("the .crate unpacked to nothing")?;
    let tested = sh(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&dir)
            .args(["test", "--no-default-features"])
            .arg("--target-dir")
            .arg(target_dir().join("package-check-target")),
    )
    .context("the packaged mptcp-sys does not pass its tests on its own");
    let _ = std::fs::remove_dir_all(&unpacked);
    tested?;
    eprintln!(
        "xtask: the packaged mptcp-sys builds (default features) and passes its tests on its own"
    );
    Ok(())
}
