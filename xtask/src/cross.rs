//! `cargo xtask cross`: the unit tests and layout tests of `mptcp-sys` and `mptcp`,
//! cross-compiled for other Linux architectures and run under qemu-user.
//!
//! Each target gets Debian's cross C compiler and C library (the layout test compiles
//! its C program with them) and runs under `qemu-<arch>-static`. The kernel-facing
//! tests that need real MPTCP system calls skip themselves when the emulator does not
//! pass them through; the decoders are tested from kernel-shaped bytes of that
//! architecture. A summary goes to `target/cross/summary.json`.

use crate::codegen_task;
use crate::packages::ensure_qemu_packages;
use crate::sys::{root, target_dir};
use crate::targets::{by_rust, Target};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The targets run by default: 32-bit x86 and ARM, 64-bit ARM, RISC-V and POWER, and
/// big-endian s390x.
pub const DEFAULT_TARGETS: &[&str] = &[
    "i686-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "armv7-unknown-linux-gnueabihf",
    "riscv64gc-unknown-linux-gnu",
    "powerpc64le-unknown-linux-gnu",
    "s390x-unknown-linux-gnu",
];

/// Targets that are only compiled (`cargo check`, all features): Android and the other
/// operating systems.
pub const CHECK_TARGETS: &[&str] = &[
    "aarch64-linux-android",
    "x86_64-linux-android",
    "x86_64-apple-darwin",
    "x86_64-unknown-freebsd",
    "x86_64-pc-windows-gnu",
];

/// `cargo clippy` (a `cargo check` that also denies warnings) of `mptcp-sys` and `mptcp`
/// with all features for every target in [`CHECK_TARGETS`], in one cargo run, so that
/// each one keeps compiling without warnings.
fn check_platforms() -> Result<()> {
    for t in CHECK_TARGETS {
        crate::targets::ensure_rust_target(t)?;
    }
    let mut cmd = cargo();
    cmd.args(["clippy", "-p", "mptcp-sys", "-p", "mptcp", "--all-features"]);
    for t in CHECK_TARGETS {
        cmd.args(["--target", t]);
    }
    cmd.args(["--", "-D", "warnings"]);
    crate::sys::run(&mut cmd).context("cargo check (clippy) for the other platforms failed")
}

/// What one target's run gave.
#[derive(Debug, Default)]
struct Tally {
    target: String,
    passed: u32,
    failed: u32,
    skipped: u32,
    failures: Vec<String>,
    seconds: f64,
    problem: Option<String>,
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs one `cargo test` for a target, streaming its output and counting results.
fn run_tests(
    t: &Target,
    args: &[&str],
    headers: &std::path::Path,
    tally: &mut Tally,
) -> Result<()> {
    let mut cmd = cargo();
    cmd.arg("test")
        .args(["--target", t.rust])
        .args(args)
        // --nocapture: the tests' own `skipped:` lines (stderr) are counted.
        .args(["--", "--test-threads=2", "--nocapture"])
        .env("MPTCP_SYS_KERNEL_HEADERS", headers)
        // No HTTP example's framework in these builds (see mptcp/Cargo.toml).
        .env(
            format!("{}RUSTFLAGS", t.cargo_env_prefix()),
            "--cfg mptcp_cross_unit_tests",
        )
        .env("MPTCP_SYS_TEST_CC", t.gcc())
        .env(
            "MPTCP_SYS_TEST_RUNNER",
            format!("qemu-{}-static -L /usr/{}", t.qemu, t.gnu),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    t.configure_cargo(&mut cmd, true);
    eprintln!("xtask: cross {}: cargo test {}", t.rust, args.join(" "));
    let mut child = cmd.spawn().context("start cargo test")?;
    let out = child.stdout.take().context("cargo stdout")?;
    let err = child.stderr.take().context("cargo stderr")?;
    let label = t.arch_label();
    // cargo's progress and the tests' stderr, on their own thread.
    let errors = std::thread::spawn(move || {
        let mut tally = Tally::default();
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            eprintln!("  [{label}] {line}");
            count(&line, &mut tally);
        }
        tally
    });
    for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
        println!("  [{label}] {line}");
        count(&line, tally);
    }
    let status = child.wait()?;
    if let Ok(e) = errors.join() {
        tally.skipped += e.skipped;
    }
    if !status.success() && tally.failed == 0 {
        // A build error or a crashed test binary: nothing was counted as failed.
        tally.failed += 1;
        tally.failures.push(format!(
            "cargo test {} exited with {status}",
            args.join(" ")
        ));
    }
    Ok(())
}

/// Counts libtest's summary lines and the tests' own `skipped:` lines.
fn count(line: &str, tally: &mut Tally) {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix("test result: ") {
        let num = |key: &str| -> u32 {
            rest.split(';')
                .find_map(|p| {
                    let p = p.trim();
                    let p = p.rsplit('.').next().unwrap_or(p).trim();
                    p.strip_suffix(key).and_then(|n| n.trim().parse().ok())
                })
                .unwrap_or(0)
        };
        tally.passed += num("passed");
        tally.failed += num("failed");
    } else if t.starts_with("skipped: ") || t.contains(" skipped: ") {
        tally.skipped += 1;
    } else if t.starts_with("test ") && t.ends_with("FAILED") {
        tally.failures.push(t.to_string());
    }
}

impl Target {
    /// The architecture, for output prefixes.
    fn arch_label(&self) -> &'static str {
        self.name
    }
}

fn one_target(t: &Target, headers: &std::path::Path) -> Tally {
    let started = Instant::now();
    let mut tally = Tally {
        target: t.rust.to_string(),
        ..Default::default()
    };
    let prepared = t.ensure_rust_std().and_then(|()| t.ensure_cross_tools());
    if let Err(e) = prepared {
        tally.problem = Some(format!("{e:#}"));
        return tally;
    }
    // The build-time bindings (generated for this target from the pinned headers), the
    // snapshot, and the library's unit tests.
    let runs: [&[&str]; 3] = [
        &["-p", "mptcp-sys"],
        &["-p", "mptcp-sys", "--no-default-features"],
        &["-p", "mptcp", "--lib", "--all-features"],
    ];
    for args in runs {
        if let Err(e) = run_tests(t, args, headers, &mut tally) {
            tally.problem = Some(format!("{e:#}"));
            break;
        }
    }
    // Skipped tests are also counted as passed by libtest.
    tally.passed = tally.passed.saturating_sub(tally.skipped);
    tally.seconds = started.elapsed().as_secs_f64();
    tally
}

pub fn run(targets: Vec<String>) -> Result<()> {
    let names: Vec<String> = if targets.is_empty() {
        DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect()
    } else {
        targets
    };
    let mut chosen = Vec::new();
    for n in &names {
        match by_rust(n) {
            Some(t) if !t.is_host() => chosen.push(t),
            Some(_) => bail!("{n} is this machine's own target: `cargo test` runs it"),
            None => bail!(
                "no cross setup for {n}: the Linux targets with a bindings snapshot are {}",
                crate::targets::LINUX
                    .iter()
                    .filter(|t| !t.is_host())
                    .map(|t| t.rust)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    check_platforms()?;
    ensure_qemu_packages(&["qemu-user-static"])?;
    let headers = codegen_task::pinned_headers()?.include;
    let started = Instant::now();
    let tallies: Vec<Tally> = chosen.iter().map(|t| one_target(t, &headers)).collect();
    println!(
        "\n{:<32} {:>6} {:>6} {:>7} {:>8}",
        "target", "passed", "failed", "skipped", "seconds"
    );
    for t in &tallies {
        println!(
            "{:<32} {:>6} {:>6} {:>7} {:>8.1}{}",
            t.target,
            t.passed,
            t.failed,
            t.skipped,
            t.seconds,
            t.problem
                .as_ref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
        for f in &t.failures {
            println!("    FAILED: {f}");
        }
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    let json = serde_json::json!({
        "checked": CHECK_TARGETS,
        "targets": tallies.iter().map(|t| serde_json::json!({
            "target": t.target, "passed": t.passed, "failed": t.failed,
            "skipped": t.skipped, "seconds": (t.seconds * 10.0).round() / 10.0,
            "problem": t.problem,
        })).collect::<Vec<_>>(),
    });
    let dir = target_dir().join("cross");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("summary.json"), format!("{json}\n"))?;
    let bad: Vec<&str> = tallies
        .iter()
        .filter(|t| t.failed > 0 || t.problem.is_some() || t.passed == 0)
        .map(|t| t.target.as_str())
        .collect();
    if !bad.is_empty() {
        bail!("cross tests failed on {}", bad.join(", "));
    }
    Ok(())
}
