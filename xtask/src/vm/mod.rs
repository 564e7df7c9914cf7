//! `cargo xtask vm-test`: the test suite on a matrix of Debian kernels under qemu.
//!
//! Kernels come from Debian's `linux-image-cloud-amd64` and `linux-image-cloud-arm64`
//! packages, fetched through the machine's own apt configuration (see `apt.rs`) and
//! cached under `target/vm/kernels/`. Test binaries are built statically for the kernel's
//! architecture and found through cargo's JSON messages; an initramfs holds busybox,
//! iproute2, strace and util-linux's setpriv (with the shared libraries they need; see
//! `userland.rs`), the modules the tests need from that kernel's package, the test
//! binaries, the library's example programs (`/examples`, which `tests/examples.rs`
//! runs) and mptcp-pmd, and an init that runs the tests and prints one result line per
//! binary and a final sentinel. x86_64 kernels boot under
//! `qemu-system-x86_64`, arm64 ones under `qemu-system-aarch64` (see `machine.rs`).

mod machine;
mod userland;

pub use machine::TcgThreads;
mod build;
mod initramfs;
mod kernels;
mod report;

pub use kernels::DEFAULT_KERNELS;

use crate::packages::{ensure_packages, ensure_qemu_packages};
use crate::sys::target_dir;
use anyhow::{bail, Context, Result};
use build::build_tests;
use initramfs::build_initramfs;
use kernels::{fetch_kernel, split_arch};
use machine::{boot, kvm_works};
use report::{parse, print_report, Report};
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Host packages the runner needs (binutils' `readelf` reads another architecture's
/// programs).
const PACKAGES: &[&str] = &[
    "busybox-static",
    "kmod",
    "xz-utils",
    "zstd",
    "binutils",
    // mptcp-bpf's test binary: clang for its BPF program, libelf and zlib (static).
    "clang",
    "libelf-dev",
    "zlib1g-dev",
    "pkg-config",
];

/// qemu, installed from the suite of the qemu packages already on the machine: the
/// system emulator of each architecture the matrix boots.
const QEMU_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-system-arm"];

pub fn run(kernels: Vec<String>, echo: bool, tcg: TcgThreads) -> Result<()> {
    ensure_packages(PACKAGES)?;
    ensure_qemu_packages(QEMU_PACKAGES)?;
    let specs: Vec<String> = if kernels.is_empty() {
        DEFAULT_KERNELS.iter().map(|s| s.to_string()).collect()
    } else {
        kernels
    };
    let started = Instant::now();
    // The test binaries of every architecture named, built before any boot.
    let mut tests: BTreeMap<&str, Vec<(String, PathBuf)>> = BTreeMap::new();
    for spec in &specs {
        if let Ok((arch, _)) = split_arch(spec) {
            if !tests.contains_key(arch.name) {
                tests.insert(arch.name, build_tests(arch)?);
            }
        }
    }
    let mut reports = Vec::new();
    let mut accels: BTreeMap<&str, String> = BTreeMap::new();
    for spec in &specs {
        let t0 = Instant::now();
        let k = match fetch_kernel(spec) {
            Ok(k) => k,
            Err(e) => {
                reports.push(Report {
                    kernel: spec.clone(),
                    arch: "-".into(),
                    problem: Some(format!("{e:#}")),
                    accel: "-".into(),
                    ..Default::default()
                });
                continue;
            }
        };
        let acc = accels
            .entry(k.arch.name)
            .or_insert_with(|| {
                if kvm_works(&k) {
                    "kvm".into()
                } else {
                    "tcg".into()
                }
            })
            .clone();
        let bins = tests
            .get(k.arch.name)
            .with_context(|| format!("no {} test binaries", k.arch.name))?;
        let initrd = build_initramfs(&k, bins)?;
        let timeout = Duration::from_secs(if acc == "kvm" { 300 } else { 900 });
        println!(
            "xtask: vm-test: booting {} ({}) with {acc}",
            k.label, k.release
        );
        let (lines, problem) = boot(&k, &initrd, &acc, tcg, timeout, echo)?;
        let mut r = parse(&k.release, &lines);
        let console = target_dir()
            .join("vm-test")
            .join(format!("{}-{}.console", k.release, k.arch.name));
        if let Err(e) = fs::create_dir_all(target_dir().join("vm-test"))
            .and_then(|()| fs::write(&console, lines.join("\n") + "\n"))
        {
            eprintln!(
                "xtask: cannot keep the console in {}: {e}",
                console.display()
            );
        } else {
            r.console = Some(console);
        }
        r.arch = k.arch.name.to_string();
        r.accel = acc;
        r.seconds = t0.elapsed().as_secs_f64();
        r.problem = problem;
        if r.problem.is_some() || r.passed + r.failed == 0 {
            // Show the end of the console so the reason is visible.
            for l in lines.iter().rev().take(30).rev() {
                println!("  [{}] {l}", k.label);
            }
        }
        reports.push(r);
    }
    print_report(&reports, started.elapsed().as_secs_f64())?;
    let bad: Vec<&Report> = reports
        .iter()
        .filter(|r| r.failed > 0 || r.problem.is_some() || r.passed == 0)
        .collect();
    if !bad.is_empty() {
        bail!(
            "vm-test failed on {}",
            bad.iter()
                .map(|r| r.kernel.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
