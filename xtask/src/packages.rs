//! Installing the Debian packages the tasks need: only what is missing, with apt-get
//! `--no-remove`, as root (otherwise an error naming them); qemu's packages from the
//! suite of the qemu already installed, through `apt.rs`'s private state. No service a
//! package brings (sshd, haproxy, postgresql) is started by the installation.

use crate::apt::with_extra_suite;
use crate::sys::{is_root, run};
use anyhow::{bail, Context, Result};
use std::process::Command;

/// What the tools' `bpf` feature (mptcp-run --bpf) builds with: clang compiles the BPF
/// program, libbpf-sys links libelf and zlib (found by pkg-config). The tests and the
/// Debian package both build it.
pub const BPF_BUILD_PACKAGES: &[&str] = &["clang", "libelf-dev", "zlib1g-dev", "pkg-config"];

/// Debian packages of `pkgs` that are not installed.
fn missing_packages<'a>(pkgs: &[&'a str]) -> Vec<&'a str> {
    pkgs.iter()
        .copied()
        .filter(|p| installed_version(p).is_none())
        .collect()
}

/// The installed version of a Debian package.
pub fn installed_version(pkg: &str) -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}|${Version}", pkg])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (status, version) = text.split_once('|')?;
    status
        .contains("install ok installed")
        .then(|| version.to_string())
}

/// Makes sure the Debian packages are installed: installs the missing ones with apt-get
/// when running as root, otherwise fails with a message naming them. apt-get runs with
/// `--no-remove`: it fails rather than remove (or, through a removal, downgrade) anything.
pub fn ensure_packages(pkgs: &[&str]) -> Result<()> {
    install(&missing_packages(pkgs), None)
}

/// Like [`ensure_packages`], for packages built from qemu's source. Installing any of
/// them must agree with the qemu packages already there: when `qemu-utils` (or another
/// qemu package) came from a backports suite (`~bpoNN` in its version), the missing ones
/// are installed from that same suite, through a private apt state that adds it to the
/// machine's own sources; the machine's apt configuration is left as it was.
pub fn ensure_qemu_packages(pkgs: &[&str]) -> Result<()> {
    let missing = missing_packages(pkgs);
    if missing.is_empty() {
        return Ok(());
    }
    let suite = [
        "qemu-utils",
        "qemu-system-common",
        "qemu-user",
        "qemu-block-extra",
    ]
    .iter()
    .filter_map(|p| installed_version(p))
    .find_map(|v| backports_suite(&v));
    let from = suite
        .as_deref()
        .map(|s| (s, "like the qemu packages already installed"));
    install(&missing, from)
}

/// Like [`ensure_packages`], for packages that only the host release's backports suite
/// has (e.g. a Go toolchain recent enough for MPTCP on Debian 12).
pub fn ensure_backports_packages(pkgs: &[&str]) -> Result<()> {
    let missing = missing_packages(pkgs);
    if missing.is_empty() {
        return Ok(());
    }
    let codename = host_codename()
        .with_context(|| format!("to install {} from its backports", missing.join(" ")))?;
    let suite = format!("{codename}-backports");
    install(&missing, Some((&suite, "its backports suite")))
}

/// The host's Debian release (`bookworm`), from /etc/os-release.
pub fn host_codename() -> Result<String> {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_string())
        .filter(|c| !c.is_empty())
        .context("cannot tell this Debian release's codename (/etc/os-release)")
}

/// `bookworm-backports` for a version like `1:10.0.2+ds-2+deb13u1~bpo12+1`.
fn backports_suite(version: &str) -> Option<String> {
    let n: String = version
        .split("~bpo")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let codename = match n.as_str() {
        "10" => "buster",
        "11" => "bullseye",
        "12" => "bookworm",
        "13" => "trixie",
        "14" => "forky",
        _ => return None,
    };
    Some(format!("{codename}-backports"))
}

/// Installs `missing`, from the machine's sources or with `(suite, why)` added.
fn install(missing: &[&str], from: Option<(&str, &str)>) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let from_suite = from.map(|(s, _)| s);
    let from_arg = from_suite.map(|s| format!(" -t {s}")).unwrap_or_default();
    if !is_root() {
        bail!(
            "missing system packages: {}. Install them as root: apt-get install --no-remove{from_arg} {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!(
        "xtask: installing {}{}",
        missing.join(" "),
        from.map(|(s, why)| format!(" (from {s}, {why})"))
            .unwrap_or_default()
    );
    let private = match from_suite {
        Some(s) => with_extra_suite(s)?,
        None => Vec::new(),
    };
    run(Command::new("apt-get")
        .args(["update", "-q"])
        .args(&private)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let _no_services = NoServiceStarts::new()?;
    let mut cmd = Command::new("apt-get");
    cmd.args([
        "install",
        "-y",
        "-q",
        "--no-remove",
        "--no-install-recommends",
    ])
    .args(&private);
    if let Some(s) = from_suite {
        cmd.args(["-t", s]);
    }
    run(cmd.args(missing).env("DEBIAN_FRONTEND", "noninteractive")).with_context(|| {
        format!(
            "apt-get could not install {} without removing anything; nothing was changed",
            missing.join(" ")
        )
    })
}

/// Debian's maintainer scripts ask `/usr/sbin/policy-rc.d` before they start a service;
/// while this lives it answers 101 ("not allowed"), so installing the programs the
/// tests run (sshd, haproxy, postgresql) starts no daemon. A policy-rc.d that was there
/// already is left as it is; the one this made is removed on drop.
struct NoServiceStarts(Option<&'static std::path::Path>);

impl NoServiceStarts {
    fn new() -> Result<NoServiceStarts> {
        use std::os::unix::fs::PermissionsExt;
        let path = std::path::Path::new("/usr/sbin/policy-rc.d");
        if path.exists() {
            return Ok(NoServiceStarts(None));
        }
        std::fs::write(
            path,
            "#!/bin/sh\n# cargo xtask: no service starts while it installs\nexit 101\n",
        )
        .with_context(|| format!("write {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", path.display()))?;
        Ok(NoServiceStarts(Some(path)))
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
