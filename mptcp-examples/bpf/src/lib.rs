//! MPTCP for the TCP sockets of one cgroup, from the kernel: the BPF program behind
//! `mptcp-run --bpf`.
//!
//! Since Linux 6.6, `socket(2)` asks the kernel function `update_socket_protocol` which
//! protocol to create, and a BPF `fmod_ret` program attached to that function may answer
//! in its place. [`Redirect::attach`] loads this crate's program
//! (`src/bpf/mptcp_for_tcp.bpf.c`, compiled by clang at build time) and attaches it for
//! one cgroup: from then on, `socket(AF_INET or AF_INET6, SOCK_STREAM, 0 or
//! IPPROTO_TCP)` in a process of that cgroup, or of a cgroup below it, creates an MPTCP
//! socket. Nothing in the program is needed for that: statically linked programs, Go
//! binaries and programs that make the system call themselves are reached too, which
//! `LD_PRELOAD` cannot do. Every other socket, and every process outside the cgroup, is
//! untouched. Dropping the [`Redirect`] detaches the program, unless it was
//! [pinned](Redirect::pin).
//!
//! What it cannot do: the program sees only `socket()`; it cannot replace a socket when
//! a later `setsockopt` is refused on MPTCP (the program sees the kernel's error, as
//! with any MPTCP socket), and where MPTCP is disabled in the process's network
//! namespace (`net.mptcp.enabled=0`) `socket()` fails with `ENOPROTOOPT`.
//!
//! Loading needs `CAP_BPF` and `CAP_PERFMON` (or `CAP_SYS_ADMIN`), a kernel with BTF
//! (`/sys/kernel/btf/vmlinux`) and the hook; each missing piece is its own [`Error`].

#![deny(missing_docs)]

use libbpf_rs::btf::types::Func;
use libbpf_rs::btf::Btf;
use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder, PrintLevel};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The compiled program (build.rs).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mptcp_for_tcp.bpf.o"));

/// The kernel function the program attaches to.
pub const HOOK: &str = "update_socket_protocol";
/// The first kernel release with [`HOOK`].
pub const HOOK_SINCE: &str = "Linux 6.6";
/// Where the running kernel describes its own types.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why the program could not be attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel has no BTF, which attaching to a kernel function needs.
    #[error(
        "this kernel has no BTF ({VMLINUX_BTF} is missing: it needs CONFIG_DEBUG_INFO_BTF), \
         which a BPF program attached to {HOOK} needs"
    )]
    NoBtf,
    /// The kernel has no `update_socket_protocol` hook.
    #[error(
        "this kernel has no {HOOK} hook (added in {HOOK_SINCE}): its sockets cannot be \
         made MPTCP from BPF"
    )]
    NoHook,
    /// The caller may not load or attach BPF tracing programs.
    #[error("loading a BPF tracing program needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): {0}")]
    NotPermitted(String),
    /// The kernel refused the program although the caller has the capabilities: a
    /// policy of the kernel (lockdown, an LSM) forbids BPF tracing programs.
    #[error(
        "the kernel refused to load a BPF tracing program although this process has \
         CAP_BPF and CAP_PERFMON: a kernel policy forbids it{lockdown}: {detail}"
    )]
    RefusedByKernel {
        /// `, lockdown: MODE` when the lockdown LSM's mode is readable.
        lockdown: String,
        /// libbpf's error, then the lines it logged.
        detail: String,
    },
    /// The cgroup cannot be opened.
    #[error("the cgroup {path}: {source}")]
    Cgroup {
        /// The cgroup's directory.
        path: PathBuf,
        /// What opening it said.
        source: io::Error,
    },
    /// Loading, attaching or pinning failed otherwise: libbpf's error and its log.
    #[error("{step}: {detail}")]
    Bpf {
        /// What was being done.
        step: &'static str,
        /// libbpf's error, then the lines it logged.
        detail: String,
    },
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::NoBtf | Error::NoHook => io::ErrorKind::Unsupported,
            Error::NotPermitted(_) | Error::RefusedByKernel { .. } => {
                io::ErrorKind::PermissionDenied
            }
            Error::Cgroup { source, .. } => source.kind(),
            Error::Bpf { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Whether this kernel can run the program (BTF and the hook), without loading it.
pub fn probe() -> Result<(), Error> {
    if !Path::new(VMLINUX_BTF).exists() {
        return Err(Error::NoBtf);
    }
    let btf = Btf::from_vmlinux().map_err(|e| Error::Bpf {
        step: "reading the kernel's BTF",
        detail: e.to_string(),
    })?;
    match btf.type_by_name::<Func<'_>>(HOOK) {
        Some(_) => Ok(()),
        None => Err(Error::NoHook),
    }
}

/// Where the cgroup2 file system is mounted (the first mount in this process's mount
/// namespace: `/sys/fs/cgroup` on current systems, `/sys/fs/cgroup/unified` on hybrid
/// ones), if it is.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
        let (fields, fs) = line.split_once(" - ")?;
        let point = fields.split(' ').nth(4)?;
        (fs.split(' ').next()? == "cgroup2").then(|| PathBuf::from(unescape(point)))
    })
}

/// The cgroup2 directory of this process (its `0::` line in `/proc/self/cgroup`, under
/// [`cgroup2_root`]).
pub fn own_cgroup() -> io::Result<PathBuf> {
    let root = cgroup2_root().ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no cgroup2 file system is mounted")
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "this process has no cgroup2 path")
        })?;
    Ok(root.join(path.trim_start_matches('/')))
}

/// A mount point as mountinfo writes it: space, tab, newline and backslash as octal
/// escapes (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The program, attached for one cgroup; detached when dropped (unless pinned).
#[derive(Debug)]
#[must_use = "the program is detached when the value is dropped"]
pub struct Redirect {
    object: Object,
    link: Link,
    cgroup: PathBuf,
}

impl Redirect {
    /// Loads the program and attaches it for the cgroup whose directory (in the cgroup2
    /// file system, e.g. `/sys/fs/cgroup/system.slice/nginx.service`) is `cgroup`.
    pub fn attach(cgroup: &Path) -> Result<Redirect, Error> {
        probe()?;
        let dir = std::fs::File::open(cgroup).map_err(|source| Error::Cgroup {
            path: cgroup.to_path_buf(),
            source,
        })?;
        let _log = Log::capture();
        let bpf = |step: &'static str| move |e: libbpf_rs::Error| Log::error(step, e);
        let object = ObjectBuilder::default()
            .open_memory(OBJECT)
            .and_then(|o| o.load())
            .map_err(bpf("loading the BPF program"))?;
        let map = object
            .maps()
            .find(|m| m.name() == "cgroups")
            .ok_or_else(|| missing("the map `cgroups`"))?;
        let fd = u32::try_from(dir.as_raw_fd()).map_err(|_| missing("a cgroup descriptor"))?;
        map.update(&0u32.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("putting the cgroup in the program's map"))?;
        let prog = object
            .progs_mut()
            .find(|p| p.name() == "mptcp_for_tcp")
            .ok_or_else(|| missing("the program `mptcp_for_tcp`"))?;
        let link = prog
            .attach()
            .map_err(bpf("attaching the program to update_socket_protocol"))?;
        Ok(Redirect {
            object,
            link,
            cgroup: cgroup.to_path_buf(),
        })
    }

    /// The cgroup it was attached for.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// How many sockets the program has made MPTCP since it was loaded.
    pub fn converted(&self) -> Result<u64, Error> {
        let bss = self
            .object
            .maps()
            .find(|m| m.name().to_string_lossy().ends_with(".bss"))
            .ok_or_else(|| missing("the program's .bss"))?;
        let value = bss
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| Log::error("reading the program's counter", e))?
            .ok_or_else(|| missing("the program's counter"))?;
        let bytes: [u8; 8] = value
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| missing("an 8-byte counter"))?;
        Ok(u64::from_ne_bytes(bytes))
    }

    /// Pins the attachment at `path` (in a bpf file system, e.g. `/sys/fs/bpf/NAME`): it
    /// then outlives this value and the process, until the file is removed.
    pub fn pin(&mut self, path: &Path) -> Result<(), Error> {
        let _log = Log::capture();
        self.link
            .pin(path)
            .map_err(|e| Log::error("pinning the attachment", e))
    }
}

fn missing(what: &str) -> Error {
    Error::Bpf {
        step: "the compiled BPF object",
        detail: format!("{what} is missing"),
    }
}

/// libbpf's log lines (warnings and worse) while a capture is alive, for the error
/// that follows them; without a capture libbpf prints nothing.
static LOG: Mutex<String> = Mutex::new(String::new());

struct Log;

impl Log {
    fn capture() -> Log {
        fn keep(_: PrintLevel, line: String) {
            if let Ok(mut log) = LOG.lock() {
                log.push_str(line.trim_end());
                log.push('\n');
            }
        }
        if let Ok(mut log) = LOG.lock() {
            log.clear();
        }
        libbpf_rs::set_print(Some((PrintLevel::Warn, keep)));
        Log
    }

    /// The error for a failed step: permission problems by kind, with what libbpf
    /// logged.
    fn error(step: &'static str, e: libbpf_rs::Error) -> Error {
        let logged = LOG
            .lock()
            .map(|l| l.trim_end().to_string())
            .unwrap_or_default();
        let detail = if logged.is_empty() {
            e.to_string()
        } else {
            format!("{e}\n{logged}")
        };
        match e.kind() {
            libbpf_rs::ErrorKind::PermissionDenied if has_bpf_capabilities() => {
                Error::RefusedByKernel {
                    lockdown: lockdown(),
                    detail,
                }
            }
            libbpf_rs::ErrorKind::PermissionDenied => Error::NotPermitted(detail),
            _ => Error::Bpf { step, detail },
        }
    }
}

/// Whether this process has CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN (its effective
/// set, from /proc/self/status).
fn has_bpf_capabilities() -> bool {
    const SYS_ADMIN: u32 = 21;
    const PERFMON: u32 = 38;
    const BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| eff & (1 << bit) != 0;
    has(SYS_ADMIN) || (has(BPF) && has(PERFMON))
}

/// `, lockdown: MODE` from the lockdown LSM (the bracketed word of
/// /sys/kernel/security/lockdown), or nothing when it cannot be read.
fn lockdown() -> String {
    std::fs::read_to_string("/sys/kernel/security/lockdown")
        .ok()
        .and_then(|l| {
            let start = l.find('[')? + 1;
            let end = l[start..].find(']')? + start;
            Some(format!(" (lockdown: {})", &l[start..end]))
        })
        .unwrap_or_default()
}

impl Drop for Log {
    fn drop(&mut self) {
        libbpf_rs::set_print(None);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(super::unescape("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(super::unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(super::unescape("/x\\\\"), "/x\\\\");
    }
}
