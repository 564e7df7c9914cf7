//! `mptcp-run`: runs an unmodified, dynamically linked program with its TCP sockets
//! created as MPTCP sockets, through the `LD_PRELOAD` library `libmptcp_preload.so`
//! (the crate `mptcp-examples/preload`), as mptcpd's `mptcpize` does.
//!
//! ```text
//! mptcp-run [--mptcp prefer|require|off] [--quiet] [--preload PATH] PROGRAM [ARGS]...
//! mptcp-run --bpf PROGRAM [ARGS]...
//! mptcp-run --cgroup PATH [--pin FILE]
//! ```
//!
//! It finds PROGRAM as a shell does, then replaces itself with it (`exec`), with the
//! library put first in `LD_PRELOAD` (after it, any `LD_PRELOAD` already set), the mode
//! in `MPTCP_RUN_MODE`, `MPTCP_RUN_QUIET` for `--quiet`, and `multipathtcp` added to
//! `GODEBUG` for Go programs. How socket options MPTCP refuses are handled, and what
//! cannot work: see `LIMITS` below (`--help` prints it). `--bpf` and `--cgroup` use
//! the kernel's `update_socket_protocol` hook instead (`bpf.rs`).

mod bpf;

use clap::Parser;
use mptcp::Mode;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOL: &str = "mptcp-run";

/// The library's file name, as cargo builds it.
const PRELOAD_NAME: &str = "libmptcp_preload.so";

/// What the library does, what cannot work, and the exit status, for `--help`.
const LIMITS: &str = "\
How it works: the loader maps libmptcp_preload.so before the C library, so the program's
socket() calls go through it. socket(AF_INET or AF_INET6, SOCK_STREAM, 0 or IPPROTO_TCP)
becomes socket(..., IPPROTO_MPTCP); every other socket (UDP, Unix, netlink, raw, ...) is
created as asked. The program's children inherit LD_PRELOAD and MPTCP_RUN_MODE, so they
are affected too.

Modes (--mptcp; MPTCP_MODE, when set, sets the mode of prefer, the default, as it does
for the mptcp crate's Mode::Prefer):
  prefer   when the kernel refuses the MPTCP socket with EPROTONOSUPPORT (no MPTCP built
           in), EINVAL (kernel before 5.6), ENOPROTOOPT (net.mptcp.enabled=0), EACCES or
           EPERM (a security policy), the socket is created as plain TCP, as the mptcp
           crate's Mode::Prefer does; any other error (EMFILE, ENOBUFS, ...) is returned
           to the program. Every socket asks the kernel again.
  require  a refused MPTCP socket makes socket() fail with the kernel's errno.
  off      nothing is changed.

What cannot work:
  - statically linked programs (Go binaries, static musl or glibc builds): there is no
    loader to preload anything (mptcp-run warns when PROGRAM is one);
  - programs that make the system call themselves (syscall(SYS_socket, ...), raw
    assembly) instead of calling the C library's socket();
  - setuid and setgid programs run by another user: the loader ignores LD_PRELOAD in
    secure-execution mode (mptcp-run warns);
  - programs that check SO_PROTOCOL (or /proc/net) and expect 6: they see 262, and may
    refuse or misbehave; socket options that MPTCP sockets reject fail as they would
    for any MPTCP socket.
The library is found with --preload PATH, else MPTCP_RUN_PRELOAD, else next to the
mptcp-run executable (then in ../lib/mptcp-run/ from it). In the workspace, `cargo
build` builds both into target/<profile>/ (or `cargo build -p mptcp-preload`).

Exit status: PROGRAM's own; 127 when PROGRAM is not found, 126 when it cannot be
executed (as a shell); 125 when mptcp-run fails before running it (no library); 2 for a
wrong command line.";

#[derive(Parser)]
#[command(
    name = "mptcp-run",
    about = "Run a program with its TCP sockets created as MPTCP (LD_PRELOAD)",
    version,
    override_usage = "mptcp-run [--mptcp prefer|require|off] [--quiet] [--preload PATH] PROGRAM [ARGS]...\n       mptcp-run --bpf PROGRAM [ARGS]...\n       mptcp-run --cgroup PATH [--pin FILE]",
    after_long_help = format!("{LIMITS}\n\n{}", bpf::HELP)
)]
struct Args {
    /// MPTCP mode: prefer (the default: plain TCP when the kernel cannot do MPTCP),
    /// require (socket() fails instead), or off. MPTCP_MODE, when set, sets the mode of
    /// prefer, as for the mptcp crate.
    #[arg(long = "mptcp", value_name = "MODE", value_parser = parse_mode)]
    mode: Option<Mode>,
    /// No line on stderr when a socket option makes a socket plain TCP (sets
    /// MPTCP_RUN_QUIET=1 for the library).
    #[arg(long)]
    quiet: bool,
    /// The preload library (default: MPTCP_RUN_PRELOAD, else libmptcp_preload.so next to
    /// mptcp-run or in ../lib/mptcp-run/ from it, where the Debian package puts it).
    #[arg(long, value_name = "PATH")]
    preload: Option<PathBuf>,
    /// Make PROGRAM's TCP sockets MPTCP from the kernel (a BPF program on its
    /// update_socket_protocol hook, Linux 6.6+, for a cgroup of PROGRAM's own) instead
    /// of LD_PRELOAD: static programs too.
    #[arg(long, conflicts_with = "preload")]
    bpf: bool,
    /// Make the TCP sockets of every process in this cgroup (a directory of the cgroup2
    /// file system) MPTCP, until mptcp-run is stopped; no PROGRAM.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["command", "preload", "bpf"])]
    cgroup: Option<PathBuf>,
    /// With --cgroup: pin the attachment at FILE (in a bpf file system) and exit; it
    /// stays until FILE is removed.
    #[arg(long, value_name = "FILE", requires = "cgroup")]
    pin: Option<PathBuf>,
    /// The program to run (found in PATH as a shell does), then its arguments, passed
    /// as they are: the first word that is not an option of mptcp-run starts them.
    #[arg(
        value_name = "PROGRAM",
        required_unless_present = "cgroup",
        num_args = 1..,
        trailing_var_arg = true
    )]
    command: Vec<OsString>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse().map_err(|e: mptcp::ParseModeError| e.to_string())
}

/// The name of a mode, as the library reads it back.
fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Prefer => "prefer",
        Mode::Require => "require",
        Mode::Off => "off",
    }
}

/// A failure before the program runs: the message and the exit status.
struct Fail(i32, String);

fn main() {
    let args: Args = mptcp_examples::parse_args(TOOL);
    // The library's rule: MPTCP_MODE sets the mode of Prefer (the default), and an
    // explicit require or off stands.
    let mode = match args.mode.unwrap_or(Mode::Prefer).effective() {
        Ok(m) => m,
        Err(e) => mptcp_examples::usage_error(TOOL, &e.to_string()),
    };
    let Fail(code, message) = match run(&args, mode) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    eprintln!("{TOOL}: {message}");
    std::process::exit(code);
}

/// Finds the library and the program and replaces this process with the program;
/// returns only on failure. With --bpf or --cgroup, exits with the program's status.
fn run(args: &Args, mode: Mode) -> Result<std::convert::Infallible, Fail> {
    if args.pin.is_some() && args.cgroup.is_none() {
        // clap's `requires` does not see it beside a trailing PROGRAM.
        mptcp_examples::usage_error(TOOL, "--pin needs --cgroup PATH");
    }
    if let Some(cgroup) = &args.cgroup {
        std::process::exit(bpf::run_cgroup(cgroup, args.pin.as_deref())?);
    }
    if args.bpf {
        return run_bpf(args, mode);
    }
    let preload = preload(args.preload.as_deref())?;
    // clap requires at least one word.
    let Some((program, rest)) = args.command.split_first() else {
        mptcp_examples::usage_error(TOOL, "no PROGRAM given");
    };
    let shown = program.to_string_lossy();
    let path =
        find_program(program).map_err(|(code, why)| Fail(code, format!("{shown}: {why}")))?;
    for warning in warnings(&path) {
        eprintln!("{TOOL}: warning: {shown} {warning}");
    }
    let mut ld_preload = preload.into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        ld_preload.push(":");
        ld_preload.push(old);
    }
    let mut cmd = Command::new(&path);
    cmd.arg0(program)
        .args(rest)
        .env("LD_PRELOAD", ld_preload)
        .env("MPTCP_RUN_MODE", mode_name(mode));
    if args.quiet {
        cmd.env("MPTCP_RUN_QUIET", "1");
    }
    if let Some(v) = godebug(std::env::var_os("GODEBUG").as_deref(), mode) {
        cmd.env("GODEBUG", v);
    }
    Err(exec_failure(&shown, &cmd.exec()))
}

/// `--bpf`: the program as it is, in a cgroup the BPF program is attached for (with
/// `--mptcp off`, just the program).
fn run_bpf(args: &Args, mode: Mode) -> Result<std::convert::Infallible, Fail> {
    let Some((program, rest)) = args.command.split_first() else {
        mptcp_examples::usage_error(TOOL, "no PROGRAM given");
    };
    let shown = program.to_string_lossy();
    let path =
        find_program(program).map_err(|(code, why)| Fail(code, format!("{shown}: {why}")))?;
    let mut cmd = Command::new(&path);
    cmd.arg0(program).args(rest);
    if matches!(mode, Mode::Off) {
        return Err(exec_failure(&shown, &cmd.exec()));
    }
    std::process::exit(bpf::run_program(cmd, &shown)?)
}

/// Why PROGRAM could not be started, as bash words it, with bash's status.
fn exec_failure(shown: &str, err: &std::io::Error) -> Fail {
    match err.raw_os_error() {
        Some(libc::EACCES) => Fail(126, format!("{shown}: Permission denied")),
        // The file exists: its interpreter (ELF loader or #! line) does not.
        Some(libc::ENOENT) => Fail(
            127,
            format!("{shown}: cannot execute: required file not found"),
        ),
        Some(libc::ENOEXEC) => Fail(
            126,
            format!("{shown}: cannot execute binary file: Exec format error"),
        ),
        _ => Fail(126, format!("{shown}: cannot execute: {err}")),
    }
}

/// The library: `--preload`, else `MPTCP_RUN_PRELOAD`, else next to this executable or
/// in `../lib/mptcp-run/` from it; made absolute, since the program may change
/// directory before it starts others.
fn preload(given: Option<&Path>) -> Result<PathBuf, Fail> {
    let named = match given {
        Some(p) => Some((p.to_path_buf(), "--preload")),
        None => std::env::var_os("MPTCP_RUN_PRELOAD")
            .filter(|v| !v.is_empty())
            .map(|p| (PathBuf::from(p), "MPTCP_RUN_PRELOAD")),
    };
    let path = match named {
        Some((p, from)) => {
            let abs = std::fs::canonicalize(&p)
                .map_err(|e| Fail(125, format!("{from} {}: {}", p.display(), io_text(&e))))?;
            if !abs.is_file() {
                return Err(Fail(125, format!("{from} {}: not a file", p.display())));
            }
            abs
        }
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| Fail(125, format!("cannot find its own executable: {e}")))?;
            let dir = exe.parent().unwrap_or(Path::new("/"));
            let candidates = [
                dir.join(PRELOAD_NAME),
                dir.join("../lib/mptcp-run").join(PRELOAD_NAME),
            ];
            let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
                Fail(
                    125,
                    format!(
                        "{PRELOAD_NAME} not found next to {} (nor in ../lib/mptcp-run/): \
                         `cargo install` cannot install it; install the Debian package \
                         (`cargo xtask dist`), build it with `cargo build -p mptcp-preload` \
                         (with the same profile), or name it with --preload PATH or \
                         MPTCP_RUN_PRELOAD",
                        exe.display()
                    ),
                )
            })?;
            std::fs::canonicalize(found)
                .map_err(|e| Fail(125, format!("{}: {}", found.display(), io_text(&e))))?
        }
    };
    // LD_PRELOAD separates its entries with colons and spaces.
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b':' | b' ' | b'\t' | b'\n'))
    {
        return Err(Fail(
            125,
            format!(
                "{}: LD_PRELOAD cannot name a path with a colon or a space: move the library",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// The file a shell would run for `program`, or the exit status and message of a shell
/// that cannot find one (bash's words).
fn find_program(program: &OsStr) -> Result<PathBuf, (i32, &'static str)> {
    if program.is_empty() {
        return Err((127, "command not found"));
    }
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Err((126, "Is a directory")),
            Ok(_) => Ok(path),
            Err(_) => Err((127, "No such file or directory")),
        };
    }
    // PATH as execvp reads it: empty entries are the current directory; unset means
    // glibc's default.
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    let mut not_executable = None;
    for dir in std::env::split_paths(&search) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        let Ok(m) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !m.is_file() {
            continue;
        }
        if m.permissions().mode() & 0o111 != 0 {
            return Ok(candidate);
        }
        // As bash: a file found but not executable gives "Permission denied" (126)
        // unless an executable one comes later.
        not_executable.get_or_insert(candidate);
    }
    not_executable.ok_or((127, "command not found"))
}

/// What will keep the library from working with the program, as far as its file tells.
fn warnings(path: &Path) -> Vec<&'static str> {
    let mut w = Vec::new();
    let Ok(meta) = std::fs::metadata(path) else {
        return w;
    };
    if secure_execution(&meta) {
        w.push(
            "is setuid or setgid: the loader ignores LD_PRELOAD for it, so its sockets stay TCP (mptcp-run --bpf reaches it, Linux 6.6+)",
        );
    }
    // The ELF header and the program headers that follow it.
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(64 * 1024).read_to_end(&mut head));
    if read.is_ok() && is_go_program(path) {
        w.push("is a Go program: LD_PRELOAD cannot reach its sockets; GODEBUG=multipathtcp (set by mptcp-run) makes Go 1.21 and later use MPTCP, with Go's own fallback (--mptcp require cannot be enforced)");
    } else if read.is_ok() && elf_without_interpreter(&head) == Some(true) {
        w.push("is statically linked: LD_PRELOAD has no effect on it, so its sockets stay TCP (mptcp-run --bpf reaches it, Linux 6.6+)");
    }
    w
}

/// The `GODEBUG` for the program, or `None` to leave it as it is: the mode's
/// `multipathtcp` setting added to what is set already (`1`, dialers and listeners, for
/// prefer and require; `0` for off), unless the variable names `multipathtcp` itself.
/// Go 1.21-1.23 read `multipathtcp=1` (both; off by default); Go 1.24 and later read
/// 0 (off), 1 (both), 2 (listeners only, their default) and 3 (dialers only).
fn godebug(existing: Option<&OsStr>, mode: Mode) -> Option<OsString> {
    let existing = existing.filter(|v| !v.is_empty());
    let named = existing.is_some_and(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|kv| kv.trim_ascii().starts_with(b"multipathtcp="))
    });
    if named {
        return None;
    }
    let setting = match mode {
        Mode::Off => "multipathtcp=0",
        Mode::Prefer | Mode::Require => "multipathtcp=1",
    };
    Some(match existing {
        Some(v) => {
            let mut out = v.to_os_string();
            out.push(",");
            out.push(setting);
            out
        }
        None => setting.into(),
    })
}

/// True when running the file changes the user or group (setuid or setgid to someone
/// else): the loader then runs in secure-execution mode and drops `LD_PRELOAD` paths.
fn secure_execution(meta: &std::fs::Metadata) -> bool {
    const S_ISUID: u32 = 0o4000;
    const S_ISGID: u32 = 0o2000;
    const S_IXGRP: u32 = 0o010;
    let mode = meta.mode();
    // /proc/self belongs to the effective user and group of this process.
    let me = std::fs::metadata("/proc/self").ok();
    let (uid, gid) = me
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((u32::MAX, u32::MAX));
    (mode & S_ISUID != 0 && meta.uid() != uid)
        || (mode & S_ISGID != 0 && mode & S_IXGRP != 0 && meta.gid() != gid)
}

/// An ELF file's bytes, read by offset in its own width and byte order.
struct Elf<'a> {
    b: &'a [u8],
    wide: bool,
    big: bool,
}

impl<'a> Elf<'a> {
    /// `None` for anything but ELF (a script, a truncated file).
    fn new(b: &'a [u8]) -> Option<Self> {
        if b.get(..4)? != b"\x7fELF" {
            return None;
        }
        Some(Elf {
            b,
            wide: *b.get(4)? == 2,
            big: *b.get(5)? == 2,
        })
    }

    fn int(&self, at: usize, len: usize) -> Option<u64> {
        self.int_in(self.b, at, len)
    }

    /// An integer of the file's width and byte order from other bytes of the file.
    fn int_in(&self, b: &[u8], at: usize, len: usize) -> Option<u64> {
        let s = b.get(at..at.checked_add(len)?)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if self.big { s[i] } else { s[len - 1 - i] };
            v = v << 8 | u64::from(byte);
        }
        Some(v)
    }

    /// A field of the file header: its offset and size in 32- and in 64-bit files.
    fn field(&self, narrow: (usize, usize), wide: (usize, usize)) -> Option<u64> {
        let (at, len) = if self.wide { wide } else { narrow };
        self.int(at, len)
    }

    fn at(v: u64) -> Option<usize> {
        usize::try_from(v).ok()
    }

    /// True when it has no `PT_INTERP` program header (statically linked, or
    /// static-pie).
    fn without_interpreter(&self) -> Option<bool> {
        const PT_INTERP: u64 = 3;
        let phoff = self.field((28, 4), (32, 8))?;
        let phentsize = self.field((42, 2), (54, 2))?;
        let phnum = self.field((44, 2), (56, 2))?;
        for i in 0..phnum.min(512) {
            let at = Self::at(phoff.checked_add(i.checked_mul(phentsize)?)?)?;
            if self.int(at, 4)? == PT_INTERP {
                return Some(false);
            }
        }
        Some(true)
    }

    /// True when it has a section of this name. Reads only the section header table
    /// and the section names from `file` (a Go binary's tables sit at its end).
    fn has_section(&self, file: &std::fs::File, name: &[u8]) -> Option<bool> {
        use std::os::unix::fs::FileExt;
        let read = |at: u64, len: u64| -> Option<Vec<u8>> {
            let mut v = vec![0u8; usize::try_from(len).ok()?];
            file.read_exact_at(&mut v, at).ok()?;
            Some(v)
        };
        let shoff = self.field((32, 4), (40, 8))?;
        let shentsize = self.field((46, 2), (58, 2))?;
        let shnum = self.field((48, 2), (60, 2))?.min(4096);
        let shstrndx = self.field((50, 2), (62, 2))?;
        let table = read(shoff, shnum.checked_mul(shentsize)?)?;
        let header = |i: u64| Self::at(i.checked_mul(shentsize)?);
        // sh_offset and sh_size of a section header.
        let (off_field, size_field) = if self.wide {
            ((24, 8), (32, 8))
        } else {
            ((16, 4), (20, 4))
        };
        let strtab = header(shstrndx)?;
        let names = read(
            self.int_in(&table, strtab + off_field.0, off_field.1)?,
            self.int_in(&table, strtab + size_field.0, size_field.1)?
                .min(1 << 20),
        )?;
        for i in 0..shnum {
            let at = Self::at(self.int_in(&table, header(i)?, 4)?)?;
            let end = at.checked_add(name.len())?;
            if names.get(at..end) == Some(name) && names.get(end) == Some(&0) {
                return Some(true);
            }
        }
        Some(false)
    }
}

/// For an ELF file: true when it has no `PT_INTERP` program header (statically
/// linked, or static-pie). `None` for anything else (a script, a truncated file).
fn elf_without_interpreter(b: &[u8]) -> Option<bool> {
    Elf::new(b)?.without_interpreter()
}

/// True for a Go executable: it has the section `.go.buildinfo`, which every Go
/// toolchain since 1.13 writes.
fn is_go_program(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    use std::os::unix::fs::FileExt;
    file.read_exact_at(&mut head, 0).is_ok()
        && Elf::new(&head).and_then(|e| e.has_section(&file, b".go.buildinfo")) == Some(true)
}

/// An I/O error as a shell words it ("No such file or directory"), without Rust's
/// " (os error N)".
fn io_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.find(" (os error") {
        Some(i) => t[..i].to_string(),
        None => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_interpreter() {
        let exe = std::env::current_exe().expect("test binary");
        let exe = std::fs::read(exe).expect("read the test binary");
        assert_eq!(
            elf_without_interpreter(&exe),
            Some(false),
            "a test binary is dynamic"
        );
        assert_eq!(elf_without_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(
            elf_without_interpreter(b"\x7fELF\x02\x01"),
            None,
            "truncated"
        );
    }

    #[test]
    fn godebug_keeps_what_is_set() {
        let g = |v: Option<&str>, m| godebug(v.map(OsStr::new), m);
        assert_eq!(g(None, Mode::Prefer), Some("multipathtcp=1".into()));
        assert_eq!(g(Some(""), Mode::Require), Some("multipathtcp=1".into()));
        assert_eq!(g(None, Mode::Off), Some("multipathtcp=0".into()));
        assert_eq!(
            g(Some("http2client=0"), Mode::Prefer),
            Some("http2client=0,multipathtcp=1".into())
        );
        assert_eq!(
            g(Some("x=1, multipathtcp=2"), Mode::Prefer),
            None,
            "the user's own"
        );
        let exe = std::env::current_exe().expect("test binary");
        assert!(!is_go_program(&exe));
        let file = std::fs::File::open(&exe).expect("open the test binary");
        let head = std::fs::read(&exe).expect("read the test binary");
        let elf = Elf::new(&head[..64]).expect("ELF");
        assert_eq!(elf.has_section(&file, b".text"), Some(true));
        assert_eq!(elf.has_section(&file, b".go.buildinfo"), Some(false));
    }

    #[test]
    fn missing_programs() {
        assert_eq!(
            find_program(OsStr::new("")),
            Err((127, "command not found"))
        );
        assert_eq!(
            find_program(OsStr::new("mptcp-run-no-such-program")),
            Err((127, "command not found"))
        );
        assert_eq!(
            find_program(OsStr::new("/nonexistent/x")),
            Err((127, "No such file or directory"))
        );
        assert_eq!(find_program(OsStr::new("/")), Err((126, "Is a directory")));
        assert_eq!(
            find_program(OsStr::new("sh")).map(|p| p.is_absolute()),
            Ok(true)
        );
    }
}
