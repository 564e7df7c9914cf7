//! The guest architectures of the matrix and the qemu command that boots each.

use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;

/// How TCG runs the virtual CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TcgThreads {
    /// One host thread per virtual CPU (qemu's multi-threaded TCG).
    Multi,
    /// All virtual CPUs on one host thread.
    Single,
}

/// One guest architecture: its Debian and Rust names and its qemu machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// Rust's `target_arch` (what the report shows).
    pub name: &'static str,
    /// Debian's architecture name (the `ARCH:` of `--kernel ARCH:SUITE`).
    pub deb_arch: &'static str,
    /// Rust's target triple for the test binaries.
    pub rust: &'static str,
    /// The qemu system emulator.
    pub qemu: &'static str,
    /// Machine arguments before the CPU model.
    machine: &'static [&'static str],
    /// The CPU model under TCG.
    cpu_tcg: &'static str,
    /// The kernel console device.
    console: &'static str,
    /// Whether KVM can run it on this (x86_64) machine.
    pub kvm: bool,
}

/// The machine's own architecture.
pub const X86_64: Arch = Arch {
    name: "x86_64",
    deb_arch: "amd64",
    rust: "x86_64-unknown-linux-gnu",
    qemu: "qemu-system-x86_64",
    machine: &[],
    // A plain 64-bit model without `cmpxchg16b`: Debian 12's own qemu (7.2) corrupted
    // EFLAGS emulating it (6.12 kernels double-faulted in SLUB's allocator, at random).
    // The runner now gets qemu 10, which ran clean with it too, but leaving it out costs
    // nothing measurable and keeps older qemus safe.
    cpu_tcg: "qemu64,-cx16",
    console: "ttyS0",
    kvm: true,
};

/// 64-bit Arm, emulated: qemu's `virt` board. The `max` CPU has every feature qemu
/// emulates; `pauth-impdef` swaps the architected pointer-authentication hash (QARMA,
/// slow under TCG) for qemu's own, which the guest cannot tell apart.
pub const ARM64: Arch = Arch {
    name: "aarch64",
    deb_arch: "arm64",
    rust: "aarch64-unknown-linux-gnu",
    qemu: "qemu-system-aarch64",
    machine: &["-M", "virt"],
    cpu_tcg: "max,pauth-impdef=on",
    console: "ttyAMA0",
    kvm: false,
};

/// Every architecture the runner boots.
pub const ARCHES: &[Arch] = &[X86_64, ARM64];

impl Arch {
    /// The architecture of a Debian name (`amd64`, `arm64`).
    pub fn by_deb_name(name: &str) -> Result<Arch> {
        match ARCHES.iter().find(|a| a.deb_arch == name) {
            Some(a) => Ok(*a),
            None => bail!(
                "unknown architecture {name:?} in --kernel: use one of {} (as in arm64:trixie)",
                ARCHES
                    .iter()
                    .map(|a| a.deb_arch)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Whether this is the machine's own architecture.
    pub fn is_host(&self) -> bool {
        *self == X86_64
    }

    /// The metapackage naming the suite's current cloud kernel.
    pub fn kernel_metapackage(&self) -> String {
        format!("linux-image-cloud-{}", self.deb_arch)
    }

    /// The qemu command that boots `vmlinuz` with `initrd`, console on standard output.
    pub fn qemu_command(
        &self,
        vmlinuz: &Path,
        initrd: &Path,
        accel: &str,
        tcg: TcgThreads,
    ) -> Command {
        let (accel_arg, cpu) = if accel == "kvm" {
            ("kvm".to_string(), "host")
        } else {
            let t = match tcg {
                TcgThreads::Multi => "multi",
                TcgThreads::Single => "single",
            };
            (format!("tcg,thread={t}"), self.cpu_tcg)
        };
        let mut c = Command::new(self.qemu);
        c.args(self.machine)
            .args(["-cpu", cpu, "-accel", &accel_arg])
            .args(["-m", "2048", "-smp", "2"])
            .args([
                "-nographic",
                "-nodefaults",
                "-no-reboot",
                "-serial",
                "stdio",
            ])
            .arg("-kernel")
            .arg(vmlinuz)
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(format!(
                "console={} panic=-1 oops=panic quiet",
                self.console
            ));
        c
    }
}

use super::initramfs::{Initramfs, SENTINEL};
use super::kernels::Kernel;
use crate::sys::target_dir;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Boots a kernel and streams its console: Ok(lines) once the sentinel appears.
pub(super) fn boot(
    k: &Kernel,
    initrd: &Path,
    accel: &str,
    tcg: TcgThreads,
    timeout: Duration,
    echo: bool,
) -> Result<(Vec<String>, Option<String>)> {
    let mut child = k
        .arch
        .qemu_command(&k.vmlinuz, initrd, accel, tcg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", k.arch.qemu))?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    // qemu's own complaints (a kernel it cannot load, a bad option), kept for the report.
    let stderr = child.stderr.take().context("qemu stderr")?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + timeout;
    let mut lines = Vec::new();
    let problem = loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(l) => {
                let l = l.trim_end_matches('\r').to_string();
                if echo {
                    println!("  [{}] {l}", k.label);
                }
                let stop = if l.contains(SENTINEL) {
                    Some(None)
                } else if l.contains("Kernel panic") {
                    Some(Some(format!("kernel panic: {l}")))
                } else if l.contains("Call Trace:") {
                    Some(Some("kernel oops (Call Trace:)".to_string()))
                } else {
                    None
                };
                lines.push(l);
                if let Some(p) = stop {
                    break p;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= end => {
                break Some(format!("timed out after {} s", timeout.as_secs()))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Some("qemu exited before the tests finished".to_string())
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let problem = problem.map(|p| match errors.join().ok().as_deref().map(str::trim) {
        Some(e) if !e.is_empty() => format!("{p}; {}: {}", k.arch.qemu, e.replace('\n', " ")),
        _ => p,
    });
    Ok((lines, problem))
}

/// Whether KVM works here: a short boot of the given kernel with an init that only
/// prints the sentinel.
pub(super) fn kvm_works(k: &Kernel) -> bool {
    if !k.arch.kvm || !Path::new("/dev/kvm").exists() {
        return false;
    }
    let mut probe = Initramfs::new();
    if probe
        .add_host_file("bin/busybox", Path::new("/bin/busybox"))
        .is_err()
    {
        return false;
    }
    probe.add(
        "init",
        format!("#!/bin/busybox sh\n/bin/busybox echo {SENTINEL}\n/bin/busybox poweroff -f\n")
            .into_bytes(),
        0o100755,
    );
    let path = target_dir().join("vm/kvm-probe.cpio");
    if probe.write(&path).is_err() {
        return false;
    }
    matches!(
        boot(
            k,
            &path,
            "kvm",
            TcgThreads::Multi,
            Duration::from_secs(10),
            false
        ),
        Ok((_, None))
    )
}
