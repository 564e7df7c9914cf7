//! The kernels of the matrix: which `linux-image-*-cloud-ARCH` a suite names, fetched
//! and unpacked under `target/vm/kernels/`, or a kernel given by path.

use super::machine::{Arch, X86_64};
use crate::apt::{self, Suite};
use crate::sys::target_dir;
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The suites whose x86_64 kernels make the default matrix (5.10, 6.1, 6.12, newest);
/// also where a version prefix is looked for.
pub(super) const SUITES: &[&str] = &["bullseye", "bookworm", "trixie", "trixie-backports"];

/// The default matrix: the x86_64 kernels of [`SUITES`], then trixie's arm64 one.
pub const DEFAULT_KERNELS: &[&str] = &[
    "bullseye",
    "bookworm",
    "trixie",
    "trixie-backports",
    "arm64:trixie",
];

/// A kernel to boot: its image, its modules directory, a label.
pub(super) struct Kernel {
    pub(super) arch: Arch,
    pub(super) label: String,
    pub(super) release: String,
    pub(super) vmlinuz: PathBuf,
    pub(super) modules: Option<PathBuf>,
}

pub(super) fn kernels_dir() -> PathBuf {
    target_dir().join("vm/kernels")
}

/// Splits `ARCH:REST` (`arm64:trixie`); a value without `ARCH:` (or an existing path)
/// is x86_64's.
pub(super) fn split_arch(spec: &str) -> Result<(Arch, &str)> {
    match spec.split_once(':') {
        Some((a, rest)) if !Path::new(spec).exists() => Ok((Arch::by_deb_name(a)?, rest)),
        _ => Ok((X86_64, spec)),
    }
}

/// Resolves a `--kernel` value: `[ARCH:]` then a suite name, a version prefix of one of
/// the default suites' kernels, or a path to a vmlinuz (modules in
/// `lib/modules/RELEASE` next to its `boot/` directory, if present).
pub(super) fn fetch_kernel(spec: &str) -> Result<Kernel> {
    let (arch, name) = split_arch(spec)?;
    let path = Path::new(name);
    if path.is_file() {
        let root = path.parent().and_then(Path::parent).map(Path::to_path_buf);
        return kernel_from_tree(arch, spec, root.as_deref(), Some(path));
    }
    if !name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        let dir = fetch_suite_kernel(arch, name, |_| true)?.with_context(|| {
            format!(
                "Debian {name} has no package {meta}: no cloud kernel for {a} there; \
                 pick a suite that has one (e.g. {a}:trixie)",
                meta = arch.kernel_metapackage(),
                a = arch.deb_arch,
            )
        })?;
        return kernel_from_tree(arch, spec, Some(&dir), None);
    }
    // A version prefix: the first suite whose kernel matches (suites without a cloud
    // kernel for this architecture are passed over).
    for suite in SUITES {
        if let Some(dir) = fetch_suite_kernel(arch, suite, |r| r.starts_with(name))? {
            return kernel_from_tree(arch, spec, Some(&dir), None);
        }
    }
    bail!(
        "no kernel matches {spec:?} ([ARCH:] then a suite name, a version prefix, or a \
         vmlinuz path)"
    )
}

/// The directory a suite's kernel of `arch` is unpacked under.
pub(super) fn suite_dir(arch: Arch, suite: &str) -> PathBuf {
    if arch.is_host() {
        kernels_dir().join(suite)
    } else {
        kernels_dir().join(format!("{suite}-{}", arch.deb_arch))
    }
}

/// Downloads and unpacks the cloud kernel of `arch` that `suite`'s metapackage names,
/// when `wanted` accepts its release; returns the unpacked tree (`None`: the suite has
/// no such metapackage, or `wanted` refused its kernel).
pub(super) fn fetch_suite_kernel(
    arch: Arch,
    suite: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Option<PathBuf>> {
    let mut s = Suite::for_arch(suite, (!arch.is_host()).then_some(arch.deb_arch))?;
    let meta = arch.kernel_metapackage();
    if s.versions(&meta)?.is_empty() {
        return Ok(None);
    }
    let image = s
        .depends(&meta)?
        .into_iter()
        .find(|d| d.starts_with("linux-image-"))
        .with_context(|| format!("{}: {meta} names no kernel", s.describe()))?;
    let release = image.trim_start_matches("linux-image-").to_string();
    if !wanted(&release) {
        return Ok(None);
    }
    let dir = suite_dir(arch, suite).join(&release);
    if !dir.join(".complete").exists() {
        let _ = fs::remove_dir_all(&dir);
        let mut pkgs = vec![image.clone()];
        // Newer kernels split the image into binary and modules packages.
        pkgs.extend(
            s.depends(&image)?
                .into_iter()
                .filter(|d| d.starts_with("linux-binary-") || d.starts_with("linux-modules-")),
        );
        for p in &pkgs {
            let v = s.candidate(p)?;
            let deb = s.download(p, &v)?;
            apt::extract_into(&deb, &dir)?;
        }
        fs::write(dir.join(".complete"), &release)?;
    }
    // Prune other (stale) kernels of this suite.
    for e in fs::read_dir(suite_dir(arch, suite))?.flatten() {
        if e.file_name().to_string_lossy() != release {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    Ok(Some(dir))
}

pub(super) fn kernel_from_tree(
    arch: Arch,
    label: &str,
    root: Option<&Path>,
    vmlinuz: Option<&Path>,
) -> Result<Kernel> {
    let (vmlinuz, release) = match vmlinuz {
        Some(v) => {
            let name = v
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            (
                v.to_path_buf(),
                name.trim_start_matches("vmlinuz-").to_string(),
            )
        }
        None => find_vmlinuz(root.context("kernel tree")?)?,
    };
    let modules = root.and_then(|r| {
        [
            r.join("lib/modules").join(&release),
            r.join("usr/lib/modules").join(&release),
        ]
        .into_iter()
        .find(|p| p.is_dir())
    });
    Ok(Kernel {
        arch,
        label: label.to_string(),
        release,
        vmlinuz,
        modules,
    })
}

/// The image in a kernel package tree: `boot/vmlinuz-RELEASE` (Debian up to 13) or
/// `usr/lib/modules/RELEASE/vmlinuz` (newer packages).
pub(super) fn find_vmlinuz(root: &Path) -> Result<(PathBuf, String)> {
    if let Ok(rd) = fs::read_dir(root.join("boot")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(rel) = name.strip_prefix("vmlinuz-") {
                return Ok((e.path(), rel.to_string()));
            }
        }
    }
    for base in ["lib/modules", "usr/lib/modules"] {
        for e in fs::read_dir(root.join(base))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().join("vmlinuz").is_file() {
                return Ok((
                    e.path().join("vmlinuz"),
                    e.file_name().to_string_lossy().to_string(),
                ));
            }
        }
    }
    bail!("no vmlinuz in {}", root.display())
}
