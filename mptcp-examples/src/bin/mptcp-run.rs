//! `mptcp-run`: runs an unmodified, dynamically linked program with its TCP sockets
//! created as MPTCP sockets, through the `LD_PRELOAD` library `libmptcp_preload.so`
//! (the crate `mptcp-examples/preload`), as mptcpd's `mptcpize` does.
//!
//! ```text
//! mptcp-run [--mptcp prefer|require|off] [--preload PATH] PROGRAM [ARGS]...
//! ```
//!
//! It finds PROGRAM as a shell does, then replaces itself with it (`exec`), with the
//! library put first in `LD_PRELOAD` (after it, any `LD_PRELOAD` already set) and the
//! mode in `MPTCP_RUN_MODE`. What cannot work: see `LIMITS` below (`--help` prints it).

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
    override_usage = "mptcp-run [--mptcp prefer|require|off] [--preload PATH] PROGRAM [ARGS]...",
    after_long_help = LIMITS
)]
struct Args {
    /// MPTCP mode: prefer (the default: plain TCP when the kernel cannot do MPTCP),
    /// require (socket() fails instead), or off. MPTCP_MODE, when set, sets the mode of
    /// prefer, as for the mptcp crate.
    #[arg(long = "mptcp", value_name = "MODE", value_parser = parse_mode)]
    mode: Option<Mode>,
    /// The preload library (default: MPTCP_RUN_PRELOAD, else libmptcp_preload.so next to
    /// mptcp-run).
    #[arg(long, value_name = "PATH")]
    preload: Option<PathBuf>,
    /// The program to run (found in PATH as a shell does), then its arguments, passed
    /// as they are: the first word that is not an option of mptcp-run starts them.
    #[arg(
        value_name = "PROGRAM",
        required = true,
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
/// returns only on failure.
fn run(args: &Args, mode: Mode) -> Result<std::convert::Infallible, Fail> {
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
    let err = Command::new(&path)
        .arg0(program)
        .args(rest)
        .env("LD_PRELOAD", ld_preload)
        .env("MPTCP_RUN_MODE", mode_name(mode))
        .exec();
    // As bash words them.
    Err(match err.raw_os_error() {
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
    })
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
                         build it with `cargo build -p mptcp-preload` (with the same profile), \
                         or name it with --preload PATH or MPTCP_RUN_PRELOAD",
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
            "is setuid or setgid: the loader ignores LD_PRELOAD for it, so its sockets stay TCP",
        );
    }
    // The ELF header and the program headers that follow it.
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(64 * 1024).read_to_end(&mut head));
    if read.is_ok() && elf_without_interpreter(&head) == Some(true) {
        w.push("is statically linked: LD_PRELOAD has no effect on it, so its sockets stay TCP");
    }
    w
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

/// For an ELF file: true when it has no `PT_INTERP` program header (statically
/// linked, or static-pie). `None` for anything else (a script, a truncated file).
fn elf_without_interpreter(b: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if b.get(..4)? != b"\x7fELF" {
        return None;
    }
    let (wide, big) = (*b.get(4)? == 2, *b.get(5)? == 2);
    let int = |at: usize, len: usize| -> Option<u64> {
        let s = b.get(at..at.checked_add(len)?)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if big { s[i] } else { s[len - 1 - i] };
            v = v << 8 | u64::from(byte);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (int(32, 8)?, int(54, 2)?, int(56, 2)?)
    } else {
        (int(28, 4)?, int(42, 2)?, int(44, 2)?)
    };
    for i in 0..phnum.min(512) {
        let at = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if int(at, 4)? == u64::from(PT_INTERP) {
            return Some(false);
        }
    }
    Some(true)
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
