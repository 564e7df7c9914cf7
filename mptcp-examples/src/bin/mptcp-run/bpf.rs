//! `mptcp-run --bpf` and `mptcp-run --cgroup`: MPTCP from the kernel's
//! `update_socket_protocol` hook (crate `mptcp-bpf`), for one cgroup.
//!
//! With a PROGRAM, mptcp-run makes a cgroup of its own below the one it runs in
//! (`mptcp-run.PID`), attaches the BPF program for it, starts PROGRAM inside it (and so
//! its children), waits for it, passes on the signals it is sent, then detaches the
//! program and removes the cgroup. With `--cgroup PATH` it attaches the program for an
//! existing cgroup (a systemd service's, say) and holds it until it is told to stop, or
//! pins it (`--pin FILE`) and exits.

use crate::Fail;
use std::path::Path;
use std::process::Command;

/// What `--help` says about `--bpf` (appended to LIMITS).
pub const HELP: &str = "\
--bpf (Linux 6.6+, built with the `bpf` feature): instead of LD_PRELOAD, a BPF program
on the kernel's update_socket_protocol hook makes the TCP sockets of PROGRAM and of
every process it starts MPTCP, statically linked programs and direct system calls
included. mptcp-run puts PROGRAM in a cgroup of its own (mptcp-run.PID, below its own
cgroup), waits for it, passes SIGTERM and SIGHUP on to it (and SIGINT and SIGQUIT when
a process, not the terminal, sent them), then removes the cgroup. It needs CAP_BPF and
CAP_PERFMON (or root), BTF and the hook: a missing one is named. A socket option MPTCP
refuses then fails in the program as it would on any MPTCP socket (the BPF program
only sees socket(); it cannot replace a socket later), and --mptcp prefer cannot fall
back: mptcp-run refuses to start when net.mptcp.enabled is 0, where every TCP socket
would fail.
--cgroup PATH: the same for an existing cgroup (PATH in the cgroup2 file system, e.g.
/sys/fs/cgroup/system.slice/NAME.service): mptcp-run holds the program until SIGINT
or SIGTERM, then says how many sockets it made MPTCP; with --pin FILE (in a bpf file
system, e.g. /sys/fs/bpf/NAME) it leaves the program attached and exits (rm FILE
detaches it).";

/// Runs `cmd` in a new cgroup with the BPF program attached for it; returns its exit
/// status (as a shell gives it).
pub fn run_program(cmd: Command, shown: &str) -> Result<i32, Fail> {
    imp::run_program(cmd, shown)
}

/// Attaches the program for the cgroup `path`, then holds it until SIGINT/SIGTERM or
/// pins it at `pin`.
pub fn run_cgroup(path: &Path, pin: Option<&Path>) -> Result<i32, Fail> {
    imp::run_cgroup(path, pin)
}

#[cfg(not(feature = "bpf"))]
mod imp {
    use super::*;

    fn not_built() -> Fail {
        Fail(
            125,
            "this mptcp-run was built without BPF support: build it with \
             `cargo build -p mptcp-examples --features bpf` (which needs clang, libelf-dev, \
             zlib1g-dev and pkg-config)"
                .into(),
        )
    }

    pub fn run_program(_: Command, _: &str) -> Result<i32, Fail> {
        Err(not_built())
    }

    pub fn run_cgroup(_: &Path, _: Option<&Path>) -> Result<i32, Fail> {
        Err(not_built())
    }
}

#[cfg(feature = "bpf")]
mod imp {
    use super::*;
    use mptcp_bpf::Redirect;
    use rustix::process::{kill_process, Pid, Signal};
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::low_level::siginfo::Cause;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    fn fail(e: impl std::fmt::Display) -> Fail {
        Fail(125, e.to_string())
    }

    /// MPTCP must be on in this network namespace: with the hook, every TCP socket the
    /// program makes asks for MPTCP, and would fail (ENOPROTOOPT) without it.
    fn mptcp_enabled() -> Result<(), Fail> {
        match std::fs::read_to_string("/proc/sys/net/mptcp/enabled") {
            Ok(v) if v.trim() == "0" => Err(fail(
                "net.mptcp.enabled is 0 in this network namespace: with --bpf every TCP \
                 socket of the program would fail (ENOPROTOOPT); enable MPTCP, or run \
                 without --bpf",
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(fail(format!(
                "this kernel has no MPTCP (/proc/sys/net/mptcp/enabled: {e})"
            ))),
        }
    }

    /// The cgroup made for one run, removed (once empty) on drop.
    struct OwnCgroup {
        dir: PathBuf,
        parent: PathBuf,
    }

    impl OwnCgroup {
        fn new() -> Result<OwnCgroup, Fail> {
            let parent = mptcp_bpf::own_cgroup()
                .map_err(|e| fail(format!("finding this process's cgroup: {e}")))?;
            let dir = parent.join(format!("mptcp-run.{}", std::process::id()));
            std::fs::create_dir(&dir)
                .map_err(|e| fail(format!("creating the cgroup {}: {e}", dir.display())))?;
            Ok(OwnCgroup { dir, parent })
        }

        /// Moves this process into `dir` (its children are then born there).
        fn enter(dir: &Path) -> std::io::Result<()> {
            std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
        }
    }

    impl Drop for OwnCgroup {
        fn drop(&mut self) {
            let _ = OwnCgroup::enter(&self.parent);
            // The program's processes are gone once it was waited for, unless some left
            // it behind (daemons); the kernel frees the cgroup as the last one exits.
            let deadline = Instant::now() + Duration::from_millis(500);
            while let Err(e) = std::fs::remove_dir(&self.dir) {
                if Instant::now() > deadline {
                    eprintln!(
                        "mptcp-run: the cgroup {} is left behind ({e}): processes the \
                         program started still run there, and their new sockets are TCP \
                         again",
                        self.dir.display()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn run_program(mut cmd: Command, shown: &str) -> Result<i32, Fail> {
        mptcp_enabled()?;
        let cgroup = OwnCgroup::new()?;
        let redirect = Redirect::attach(&cgroup.dir).map_err(fail)?;
        // Born in the cgroup: this process goes there for the spawn, then back.
        OwnCgroup::enter(&cgroup.dir).map_err(|e| {
            fail(format!(
                "moving into the cgroup {}: {e}",
                cgroup.dir.display()
            ))
        })?;
        let spawned = cmd.spawn();
        OwnCgroup::enter(&cgroup.parent).map_err(|e| {
            fail(format!(
                "moving back to the cgroup {}: {e}",
                cgroup.parent.display()
            ))
        })?;
        let mut child = spawned.map_err(|e| crate::exec_failure(shown, &e))?;
        let signals = pass_on_signals(Pid::from_child(&child))?;
        let status = child
            .wait()
            .map_err(|e| fail(format!("waiting for {shown}: {e}")))?;
        signals.close();
        drop(redirect);
        drop(cgroup);
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1))
    }

    /// A thread that sends SIGTERM and SIGHUP on to `pid`, and SIGINT and SIGQUIT when
    /// a process sent them (the terminal sends those to the program itself too).
    fn pass_on_signals(pid: Pid) -> Result<signal_hook::iterator::Handle, Fail> {
        let mut signals = SignalsInfo::<WithOrigin>::new([SIGTERM, SIGHUP, SIGINT, SIGQUIT])
            .map_err(|e| fail(format!("installing signal handlers: {e}")))?;
        let handle = signals.handle();
        std::thread::spawn(move || {
            for origin in signals.forever() {
                let from_terminal = matches!(origin.cause, Cause::Kernel);
                let keyboard = origin.signal == SIGINT || origin.signal == SIGQUIT;
                if keyboard && from_terminal {
                    continue;
                }
                if let Some(sig) = Signal::from_named_raw(origin.signal) {
                    let _ = kill_process(pid, sig);
                }
            }
        });
        Ok(handle)
    }

    pub fn run_cgroup(path: &Path, pin: Option<&Path>) -> Result<i32, Fail> {
        mptcp_enabled()?;
        let mut redirect = Redirect::attach(path).map_err(fail)?;
        if let Some(file) = pin {
            redirect.pin(file).map_err(fail)?;
            eprintln!(
                "mptcp-run: TCP sockets of {} are MPTCP until {} is removed",
                path.display(),
                file.display()
            );
            return Ok(0);
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| fail(format!("installing signal handlers: {e}")))?;
        eprintln!(
            "mptcp-run: TCP sockets of {} are MPTCP until this stops (Ctrl-C)",
            path.display()
        );
        let _ = signals.forever().next();
        let n = redirect.converted().map_err(fail)?;
        let plural = if n == 1 { "" } else { "s" };
        eprintln!(
            "mptcp-run: {n} socket{plural} made MPTCP in {}",
            path.display()
        );
        Ok(0)
    }
}
