//! `cargo xtask test`: everything CI runs.

use crate::codegen_task;
use crate::packages::ensure_packages;
use crate::sys::{root, run as sh};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// System packages the tests need: libclang for bindgen, a C compiler for the layout
/// tests, iproute2 for network namespaces, strace for the system call budget
/// (`mptcp/tests/syscalls.rs`), python3 for the unmodified programs `mptcp-run` runs
/// (`mptcp-examples/tests/mptcp_run.rs`), and the programs it runs side by side under
/// `mptcp-run` and under mptcpd's `mptcpize` (curl, wget, socat, iperf3, OpenSSH, HAProxy,
/// PostgreSQL, `mptcpize`), Prometheus for `mptcp-exporter`, and iptables for the
/// middlebox of `mptcp-doctor`'s probe test.
const PACKAGES: &[&str] = &[
    "libclang-dev",
    "gcc",
    "libc6-dev",
    "iproute2",
    "strace",
    "python3",
    "curl",
    "wget",
    "socat",
    "iperf3",
    "mptcpize",
    // More programs mptcp-run runs beside mptcpize: OpenSSH, HAProxy, PostgreSQL
    // (installed without starting their services).
    "openssh-server",
    "openssh-client",
    "haproxy",
    "postgresql-15",
    "postgresql-client-15",
    // mptcp-exporter's test: a real Prometheus (and its promtool) scrapes it.
    "prometheus",
    // mptcp-doctor's probe test: a middlebox that strips the MPTCP option (TCPOPTSTRIP).
    "iptables",
];

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// From the host release's backports: a Go toolchain that knows MPTCP (1.21+; Debian
/// 12 itself has 1.19), for the Go program `mptcp-run` runs through `GODEBUG`.
pub const BACKPORTS_PACKAGES: &[&str] = &["golang-1.23-go"];

pub fn run(no_vm: bool) -> Result<()> {
    let mut steps = Steps::new();
    ensure_packages(PACKAGES)?;
    ensure_packages(crate::packages::BPF_BUILD_PACKAGES)?;
    crate::packages::ensure_backports_packages(BACKPORTS_PACKAGES)?;
    steps.mark("system packages");
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    // The pinned headers (downloaded once into target/) make the build-time bindings
    // equal to the snapshot, so every step below builds mptcp-sys the same way.
    codegen_task::run(true)?;
    steps.mark("fmt, codegen check");
    let headers = codegen_task::pinned_headers()?.include;
    sh(cargo().env("MPTCP_SYS_KERNEL_HEADERS", &headers).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The library without its optional features, and with its defaults only.
    let one_feature =
        |f: &'static str| -> [&'static str; 3] { ["--no-default-features", "--features", f] };
    for features in [
        &["--no-default-features"][..],
        &[],
        &one_feature("pm")[..],
        &one_feature("diag")[..],
    ] {
        sh(cargo()
            .env("MPTCP_SYS_KERNEL_HEADERS", &headers)
            .args(["clippy", "-p", "mptcp", "--all-targets"])
            .args(features)
            .args(["--", "-D", "warnings"]))?;
    }
    steps.mark("clippy (all features, then feature subsets)");
    // The build-time bindings, generated from the pinned headers, and the snapshot: both
    // are checked against the C compiler's view of those same headers.
    // mptcpd, unpacked under target/ (not installed), for mptcp-pmd's comparison test.
    let mptcpd = crate::mptcpd::root()?;
    let out = run_showing(
        cargo()
            .args([
                "test",
                "--workspace",
                "--all-features",
                "--",
                "--show-output",
            ])
            .env("MPTCP_SYS_KERNEL_HEADERS", &headers)
            .env("MPTCP_TEST_MPTCPD_ROOT", &mptcpd),
    )?;
    no_skips(&out, !no_vm)?;
    steps.mark("cargo test");
    sh(cargo()
        .args(["test", "-p", "mptcp-sys", "--no-default-features"])
        .env("MPTCP_SYS_KERNEL_HEADERS", &headers))?;
    // The Debian package of what the tests just built, installed into a fresh Debian
    // root and each tool run there.
    if crate::sys::is_root() {
        let deb = crate::dist::build(crate::dist::Build::TestBuild)?;
        crate::dist::install_test(&deb)?;
        steps.mark("the Debian package, installed in a fresh root");
    } else {
        eprintln!("xtask: skipping the package's installation test (it needs root)");
    }
    // The kernel's own path-manager selftest, with mptcp-pm in place of `ip mptcp`.
    if crate::sys::is_root() {
        crate::selftest::run(false, Some(&headers))?;
        steps.mark("the kernel's pm_netlink.sh");
    } else {
        eprintln!("xtask: skipping the kernel's pm_netlink.sh (it needs root)");
    }
    // The demo, once, held to the figures it exists to show.
    demo_check()?;
    steps.mark("the demo");
    // Benchmarks are not tests: `cargo xtask bench` runs them. Clippy's
    // `--all-targets` above has compiled them; an optimised build of them and of the
    // tools they measure (minutes on two cores) is left to `cargo xtask bench`.
    // The unsafe code under Miri, where a nightly toolchain is installed.
    crate::miri::run()?;
    steps.mark("Miri");
    // The libraries with their minimum supported Rust, and their docs without warnings.
    crate::msrv::run()?;
    steps.mark("MSRV");
    crate::docs::run()?;
    steps.mark("docs");
    // mptcp-sys as crates.io would get it.
    crate::package::run()?;
    steps.mark("mptcp-sys packaged");
    // Every change of a public API is a reviewed change of its snapshot; after the
    // first release, no change may break what was released.
    crate::public_api::run(false)?;
    crate::public_api::semver_checks()?;
    // Other architectures under qemu-user, and the other platforms compiled.
    steps.mark("public API");
    crate::cross::run(Vec::new())?;
    steps.mark("other architectures (qemu-user)");
    if no_vm {
        eprintln!("xtask: skipping the VM test matrix (--no-vm)");
    } else {
        crate::vm::run(Vec::new(), false, crate::vm::TcgThreads::Multi)?;
        steps.mark("the VM matrix");
    }
    steps.print();
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// Runs a command, passing its standard output through as it comes, and returns it.
fn run_showing(cmd: &mut Command) -> Result<String> {
    eprintln!("xtask: $ {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("start cargo test")?;
    let mut all = String::new();
    for line in BufReader::new(child.stdout.take().context("cargo test's output")?).lines() {
        let line = line.context("read cargo test's output")?;
        println!("{line}");
        all.push_str(&line);
        all.push('\n');
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the tests failed ({status})");
    }
    Ok(all)
}

/// The tests that said they could not run (`skipped: REASON` in their output, which
/// `--show-output` prints under `---- NAME stdout ----`): (test, reason).
fn skipped_tests(output: &str) -> Vec<(String, String)> {
    let mut current = None;
    let mut found = Vec::new();
    for line in output.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            current = Some(name.to_string());
        } else if line.trim() == "successes:" || line.starts_with("test result:") {
            current = None;
        } else if let (Some(t), Some(reason)) = (&current, line.trim().strip_prefix("skipped: ")) {
            found.push((t.clone(), reason.to_string()));
        }
    }
    found
}

/// What a test's skip reason says when the VM matrix, which this same run goes on to,
/// runs it on kernels that can (mptcp-bpf's tests, on a host whose kernel refuses BPF
/// tracing programs).
const VM_COVERS: &str = "the VM matrix runs this test";

/// `cargo xtask test` installs what the tests need and runs as root: a test that
/// skipped on the host would pass without having run, so every skip fails the step,
/// named with its reason (unless the VM matrix of the same run makes up for it). (Unprivileged, the namespace tests cannot run: the step says
/// so instead of counting them as passed.)
fn no_skips(output: &str, vm_runs: bool) -> Result<()> {
    let (made_up, skipped): (Vec<_>, Vec<_>) = skipped_tests(output)
        .into_iter()
        .partition(|(_, reason)| vm_runs && reason.contains(VM_COVERS));
    for (test, reason) in &made_up {
        eprintln!("xtask: skipped on the host, run in the VM matrix: {test}: {reason}");
    }
    if skipped.is_empty() {
        eprintln!("xtask: no test skipped on the host");
        return Ok(());
    }
    for (test, reason) in &skipped {
        eprintln!("xtask: skipped: {test}: {reason}");
    }
    let hint = if crate::sys::is_root() {
        ""
    } else {
        " (run as root: the namespace tests need it)"
    };
    bail!(
        "{} tests skipped on the host instead of running{hint}",
        skipped.len()
    )
}

/// MPTCP over two paths against single-path TCP, as `cargo xtask demo --json` measures
/// it. The demo reaches 1.9x and more on a quiet 2-core machine (the limit is 2.0, a
/// little less with MPTCP's per-packet options); CI shares its cores, so the check
/// allows 0.1 below that.
const MIN_RATIO: f64 = 1.8;
/// Act 3: the backup path's share of the bytes while path 1 is up (at most), and
/// once path 1 is down (at least).
const BACKUP_BEFORE_MAX: f64 = 0.05;
const BACKUP_AFTER_MIN: f64 = 0.5;

/// Runs `cargo xtask demo --json` (this same binary), shows its lines as they come, and
/// checks its figures: the aggregation ratio, the failover's SHA-256, the backup
/// path's share before and after path 1 goes down.
fn demo_check() -> Result<()> {
    if !crate::sys::is_root() {
        eprintln!("xtask: skipping the demo (it needs root for its network namespaces)");
        return Ok(());
    }
    let exe = std::env::current_exe().context("this program's path")?;
    eprintln!("xtask: $ cargo xtask demo --json");
    let mut child = Command::new(exe)
        .args(["demo", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the demo")?;
    let mut last = String::new();
    for line in BufReader::new(child.stdout.take().context("the demo's output")?).lines() {
        let line = line.context("read the demo's output")?;
        println!("{line}");
        last = line;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the demo failed ({status})");
    }
    let v: serde_json::Value =
        serde_json::from_str(&last).with_context(|| format!("the demo's JSON line: {last}"))?;
    let Some(ratio) = v["ratio"].as_f64() else {
        eprintln!(
            "xtask: the demo ran its TCP act only (no MPTCP in this kernel): nothing more to check"
        );
        return Ok(());
    };
    let share = |key: &str| -> Result<f64> {
        let b: Vec<f64> = v["backup"][key]
            .as_array()
            .with_context(|| format!("backup.{key} in {last}"))?
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        let total: f64 = b.iter().sum();
        Ok(b.get(1).copied().unwrap_or(0.0) / total.max(1.0))
    };
    let (before, after) = (
        share("bytes_per_path_before")?,
        share("bytes_per_path_after")?,
    );
    let mut failed = Vec::new();
    if ratio < MIN_RATIO {
        failed.push(format!("MPTCP/TCP ratio {ratio:.3} < {MIN_RATIO}"));
    }
    if v["failover"]["sha256_ok"].as_bool() != Some(true) {
        failed.push("failover: the SHA-256 at the receiver differs".to_string());
    }
    if before >= BACKUP_BEFORE_MAX {
        failed.push(format!(
            "backup: the backup path carried {:.1}% while path 1 was up (limit {:.0}%)",
            before * 100.0,
            BACKUP_BEFORE_MAX * 100.0
        ));
    }
    if after < BACKUP_AFTER_MIN {
        failed.push(format!(
            "backup: the backup path carried only {:.1}% once path 1 was down",
            after * 100.0
        ));
    }
    if !failed.is_empty() {
        bail!("the demo's figures: {}", failed.join("; "));
    }
    eprintln!(
        "xtask: demo ok: ratio {ratio:.3} (>= {MIN_RATIO}), failover SHA-256 matches, backup path {:.1}% before and {:.1}% after path 1 went down",
        before * 100.0,
        after * 100.0
    );
    Ok(())
}

/// How long each step of the run took, printed at the end (CI's time budget is
/// watched from this table).
struct Steps {
    last: std::time::Instant,
    start: std::time::Instant,
    done: Vec<(&'static str, std::time::Duration)>,
}

impl Steps {
    fn new() -> Steps {
        let now = std::time::Instant::now();
        Steps {
            last: now,
            start: now,
            done: Vec::new(),
        }
    }

    /// Ends the step that ran since the last mark.
    fn mark(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.done.push((name, now - self.last));
        self.last = now;
    }

    fn print(&self) {
        eprintln!("xtask: time per step");
        for (name, d) in &self.done {
            eprintln!("  {:>7.1} s  {name}", d.as_secs_f64());
        }
        eprintln!("  {:>7.1} s  in all", self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::skipped_tests;

    #[test]
    fn skips_are_read_from_the_shown_output() {
        let out = "running 2 tests\ntest a ... ok\ntest b ... ok\n\nsuccesses:\n\n\
                   ---- a stdout ----\nskipped: needs root\n\n---- b stdout ----\nall fine\n\n\
                   successes:\n    a\n    b\n\ntest result: ok. 2 passed\n";
        assert_eq!(
            skipped_tests(out),
            [("a".to_string(), "needs root".to_string())]
        );
    }
}
