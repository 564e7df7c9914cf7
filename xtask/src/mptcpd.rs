//! mptcpd, the C path-manager daemon `mptcp-pmd` is compared with, from Debian's
//! package: downloaded and unpacked under `target/mptcpd/` with its libraries (never
//! installed on the system, so no service is started on the host).

use crate::apt::{extract_into, Suite};
use crate::sys::target_dir;
use anyhow::Result;
use std::path::PathBuf;

/// The packages: the daemon, its path-manager plugins, its library and the ELL library
/// it uses.
const PACKAGES: &[&str] = &["mptcpd", "mptcpd-plugins", "libmptcpd3", "libell0"];

/// Unpacks mptcpd (once) and returns the root it is unpacked in: the daemon is
/// `ROOT/usr/libexec/mptcpd`, its libraries and plugins are under
/// `ROOT/usr/lib/<multiarch>/`.
pub fn root() -> Result<PathBuf> {
    let root = target_dir().join("mptcpd/root");
    if root.join("usr/libexec/mptcpd").exists() {
        return Ok(root);
    }
    let mut suite = Suite::new("bookworm")?;
    suite.update()?;
    std::fs::create_dir_all(&root)?;
    for pkg in PACKAGES {
        let version = suite.candidate(pkg)?;
        let deb = suite.download(pkg, &version)?;
        extract_into(&deb, &root)?;
    }
    Ok(root)
}
