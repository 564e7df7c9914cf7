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
