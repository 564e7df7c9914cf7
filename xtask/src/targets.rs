//! The Linux targets the project builds for: their names in Rust, Debian, GNU and qemu, and
//! the Debian packages that cross-compile and run their code on this (x86_64) machine.

use crate::packages::ensure_packages;
use anyhow::Result;
use std::process::Command;

#[path = "../../mptcp-sys/targets.rs"]
mod shared;
pub use shared::{Arch, ARCHES};

/// One Linux architecture (the table is shared with `mptcp-sys/build.rs`).
pub type Target = Arch;

/// Every Linux architecture with a committed bindings snapshot.
pub const LINUX: &[Target] = ARCHES;

/// The target of a Rust triple.
pub fn by_rust(triple: &str) -> Option<Target> {
    LINUX.iter().copied().find(|t| t.rust == triple)
}

impl Target {
    /// Whether this is the machine's own architecture.
    pub fn is_host(&self) -> bool {
        self.rust == "x86_64-unknown-linux-gnu"
    }

    /// The cross C compiler (`gcc` for the host).
    pub fn gcc(&self) -> String {
        if self.is_host() {
            "gcc".into()
        } else {
            format!("{}-gcc", self.gnu)
        }
    }

    /// Debian packages that compile and link C for this target (static glibc included).
    pub fn cross_packages(&self) -> Vec<String> {
        if self.is_host() {
            return vec!["gcc".into(), "libc6-dev".into()];
        }
        vec![
            format!("gcc-{}", self.gnu),
            format!("libc6-dev-{}-cross", self.deb_arch),
        ]
    }

    /// Installs the cross compiler and C library (as root; else a message naming them).
    pub fn ensure_cross_tools(&self) -> Result<()> {
        let pkgs = self.cross_packages();
        let refs: Vec<&str> = pkgs.iter().map(String::as_str).collect();
        ensure_packages(&refs)
    }

    /// `CARGO_TARGET_<TRIPLE>_` prefix of cargo's per-target environment variables.
    pub fn cargo_env_prefix(&self) -> String {
        format!(
            "CARGO_TARGET_{}_",
            self.rust.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Sets the linker (and with `run`, the qemu-user runner) of this target on a cargo
    /// command.
    pub fn configure_cargo(&self, cmd: &mut Command, run: bool) {
        if self.is_host() {
            return;
        }
        let p = self.cargo_env_prefix();
        cmd.env(format!("{p}LINKER"), self.gcc());
        // The `cc` crate and the layout test's C compiler.
        cmd.env(format!("CC_{}", self.rust.replace('-', "_")), self.gcc());
        if run {
            cmd.env(
                format!("{p}RUNNER"),
                format!("qemu-{}-static -L /usr/{}", self.qemu, self.gnu),
            );
        }
    }

    /// Installs the Rust standard library of this target with rustup when it is missing.
    pub fn ensure_rust_std(&self) -> Result<()> {
        ensure_rust_target(self.rust)
    }
}

/// `rustup target add`, when the target's standard library is not installed.
pub fn ensure_rust_target(triple: &str) -> Result<()> {
    let installed =
        crate::sys::output(Command::new("rustup").args(["target", "list", "--installed"]))
            .unwrap_or_default();
    if installed.lines().any(|l| l.trim() == triple) {
        return Ok(());
    }
    crate::sys::run(Command::new("rustup").args(["target", "add", triple])).map_err(|e| {
        anyhow::anyhow!(
            "{e:#}: the Rust standard library for {triple} is missing; install it with \
             `rustup target add {triple}`"
        )
    })
}
