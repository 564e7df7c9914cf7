//! The guest's userland: busybox, iproute2's `ip`, `tc` and `ss`, `strace` (for the
//! system-call budget test) and util-linux's `setpriv` (for the unprivileged runs), with
//! exactly the shared libraries they load. For the machine's own architecture these are the host's
//! files; for another one they come from that architecture's Debian packages, unpacked
//! under `target/vm/userland/ARCH/`, and the libraries are found by following the
//! programs' `DT_NEEDED` entries (read with `readelf`).

use super::machine::Arch;
use crate::apt::{self, Suite};
use crate::packages::installed_version;
use crate::sys::output;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Host programs copied into the guest (with their libraries).
const HOST_PROGRAMS: &[&str] = &["/usr/sbin/ip", "/usr/sbin/tc", "/usr/bin/ss"];

/// Host programs copied when the host has them (`cargo xtask test` installs strace): the
/// tests that need them skip, saying why, in a guest without them.
const OPTIONAL_HOST_PROGRAMS: &[&str] = &["/usr/bin/strace", "/usr/bin/setpriv"];

/// The suite whose packages make another architecture's userland: the host's own
/// (Debian 12), so both guests run the same busybox and iproute2.
const SUITE: &str = "bookworm";

/// The packages with the programs; their library dependencies come along.
const ROOT_PACKAGES: &[&str] = &["busybox-static", "iproute2", "strace", "util-linux"];

/// The programs of those packages the tests run.
const TOOLS: &[&str] = &["ip", "tc", "ss", "strace", "setpriv"];

/// Where a package tree keeps programs.
const BIN_DIRS: &[&str] = &["usr/sbin", "usr/bin", "sbin", "bin"];

/// One file of the guest: its path there (relative to `/`) and the file to copy.
pub type GuestFile = (String, PathBuf);

/// The userland files of a guest of `arch`.
pub fn files(arch: &Arch) -> Result<Vec<GuestFile>> {
    if arch.is_host() {
        host_files()
    } else {
        packaged_files(arch)
    }
}

/// The host's busybox and iproute2 programs, with the libraries `ldd` names.
fn host_files() -> Result<Vec<GuestFile>> {
    let mut out = vec![("bin/busybox".to_string(), PathBuf::from("/bin/busybox"))];
    let optional = OPTIONAL_HOST_PROGRAMS
        .iter()
        .filter(|p| Path::new(p).exists());
    for p in HOST_PROGRAMS.iter().chain(optional) {
        for f in with_host_libraries(p)? {
            let real = fs::canonicalize(&f).unwrap_or(f.clone());
            out.push((
                f.to_string_lossy().trim_start_matches('/').to_string(),
                real,
            ));
        }
    }
    Ok(out)
}

/// The shared libraries a host program needs (from ldd), plus the program.
fn with_host_libraries(program: &str) -> Result<Vec<PathBuf>> {
    let mut files = vec![PathBuf::from(program)];
    let text = output(Command::new("ldd").arg(program))?;
    for l in text.lines() {
        let path = l
            .split("=>")
            .nth(1)
            .unwrap_or(l)
            .split_whitespace()
            .next()
            .unwrap_or("");
        if path.starts_with('/') {
            files.push(PathBuf::from(path));
        }
    }
    Ok(files)
}

/// busybox and the iproute2 programs of `arch`'s packages, with their libraries and the
/// dynamic loader.
fn packaged_files(arch: &Arch) -> Result<Vec<GuestFile>> {
    let root = unpack(arch)?;
    let mut out = vec![(
        "bin/busybox".to_string(),
        program(&root, "busybox", arch)?.1,
    )];
    let mut programs = Vec::new();
    for t in TOOLS {
        let (guest, host) = program(&root, t, arch)?;
        programs.push(host.clone());
        out.push((guest, host));
    }
    out.extend(libraries(&root, arch, &programs)?);
    Ok(out)
}

/// A program of the unpacked tree: (its path in the tree, the file it resolves to).
fn program(root: &Path, name: &str, arch: &Arch) -> Result<GuestFile> {
    for d in BIN_DIRS {
        let rel = format!("{d}/{name}");
        if root.join(&rel).symlink_metadata().is_ok() {
            return Ok((rel.clone(), resolve_in(root, &rel)?));
        }
    }
    bail!(
        "no {name} in Debian {SUITE}'s {} packages {} (unpacked in {})",
        arch.deb_arch,
        ROOT_PACKAGES.join(", "),
        root.display()
    )
}

/// Follows symbolic links of `rel` inside `root` (absolute targets are taken relative to
/// `root`, as in the guest); returns the real file.
fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf> {
    let mut cur = PathBuf::from(rel.trim_start_matches('/'));
    for _ in 0..32 {
        let p = root.join(&cur);
        let meta = p
            .symlink_metadata()
            .with_context(|| format!("{} is not in the unpacked packages", cur.display()))?;
        if !meta.file_type().is_symlink() {
            return Ok(p);
        }
        let target = fs::read_link(&p)?;
        cur = if target.is_absolute() {
            target.strip_prefix("/")?.to_path_buf()
        } else {
            cur.parent().unwrap_or(Path::new("")).join(target)
        };
        cur = normalize(&cur);
    }
    bail!("too many symbolic links at {rel} in {}", root.display())
}

/// Removes `.` and `..` components (without reading the file system).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The shared libraries that `programs` load, directly or through other libraries, and
/// the dynamic loader they name, as (path in the guest, real file).
fn libraries(root: &Path, arch: &Arch, programs: &[PathBuf]) -> Result<Vec<GuestFile>> {
    let gnu = crate::targets::by_rust(arch.rust)
        .map(|t| t.gnu)
        .context("no target table entry")?;
    let dirs = [
        format!("lib/{gnu}"),
        format!("usr/lib/{gnu}"),
        "lib".to_string(),
        "usr/lib".to_string(),
    ];
    let mut found: BTreeMap<String, GuestFile> = BTreeMap::new();
    let mut queue: VecDeque<PathBuf> = programs.iter().cloned().collect();
    while let Some(elf) = queue.pop_front() {
        let (needed, interp) = dynamic_info(&elf)?;
        if let Some(i) = interp {
            if !found.contains_key(&i) {
                let real = resolve_in(root, &i)
                    .with_context(|| format!("the dynamic loader {i} of {}", elf.display()))?;
                found.insert(i.clone(), (i.trim_start_matches('/').to_string(), real));
            }
        }
        for so in needed {
            if found.contains_key(&so) {
                continue;
            }
            let Some(rel) = dirs
                .iter()
                .map(|d| format!("{d}/{so}"))
                .find(|r| root.join(r).symlink_metadata().is_ok())
            else {
                bail!(
                    "{} needs {so}, which no unpacked {} library package of Debian {SUITE} \
                     has (in {})",
                    elf.display(),
                    arch.deb_arch,
                    root.display()
                );
            };
            let real = resolve_in(root, &rel)?;
            queue.push_back(real.clone());
            found.insert(so, (rel, real));
        }
    }
    Ok(found.into_values().collect())
}

/// An ELF file's `DT_NEEDED` sonames and its program interpreter, from `readelf`.
fn dynamic_info(elf: &Path) -> Result<(Vec<String>, Option<String>)> {
    let dynamic = output(Command::new("readelf").args(["-d", "-W"]).arg(elf))?;
    let needed = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect();
    let headers = output(Command::new("readelf").args(["-l", "-W"]).arg(elf))?;
    let interp = headers.lines().find_map(|l| {
        let rest = l.split_once("program interpreter:")?.1;
        Some(rest.trim().trim_end_matches(']').trim().to_string())
    });
    Ok((needed, interp))
}

/// Downloads and unpacks the root packages and the library packages they depend
/// on (recursively) for `arch`; reused while the host's versions of those stay the same.
fn unpack(arch: &Arch) -> Result<PathBuf> {
    let dir = crate::sys::target_dir()
        .join("vm/userland")
        .join(arch.deb_arch);
    let root = dir.join("root");
    let key = ROOT_PACKAGES
        .iter()
        .map(|p| format!("{p}={}", installed_version(p).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(" ");
    // The second word changes when the way the closure is taken does (pre-dependencies
    // were added), so that an older unpacked tree is not reused.
    let key = format!("{SUITE} predepends {key}\n");
    let marker = dir.join(".complete");
    if fs::read_to_string(&marker).is_ok_and(|k| k == key) {
        return Ok(root);
    }
    let _ = fs::remove_dir_all(&dir);
    let mut suite = Suite::for_arch(SUITE, Some(arch.deb_arch))?;
    for (pkg, version) in package_closure(&mut suite)? {
        let deb = suite.download(&pkg, &version)?;
        apt::extract_into(&deb, &root)?;
    }
    fs::write(&marker, key)?;
    Ok(root)
}

/// The root packages (at the host's version when the suite has it for this
/// architecture) and, recursively, the shared-library packages (`Section: libs`) they
/// depend on, each with the version to fetch.
fn package_closure(suite: &mut Suite) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = ROOT_PACKAGES.iter().map(|p| p.to_string()).collect();
    let mut queue: VecDeque<String> = seen.iter().cloned().collect();
    while let Some(pkg) = queue.pop_front() {
        let offered = suite.versions(&pkg)?;
        let version = match installed_version(&pkg) {
            Some(v) if ROOT_PACKAGES.contains(&pkg.as_str()) && offered.contains(&v) => v,
            _ => suite.candidate(&pkg)?,
        };
        for dep in suite.depends(&pkg)? {
            if seen.contains(&dep) {
                continue;
            }
            seen.insert(dep.clone());
            if suite.field(&dep, "Section")?.as_deref() == Some("libs") {
                queue.push_back(dep);
            }
        }
        out.push((pkg, version));
    }
    Ok(out)
}
