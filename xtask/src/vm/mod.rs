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

use crate::apt::{self, Suite};
use crate::packages::{ensure_packages, ensure_qemu_packages};
use crate::sys::{root, run as sh, target_dir};
use anyhow::{bail, Context, Result};
use cargo_metadata::Message;
use machine::{Arch, X86_64};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The suites whose x86_64 kernels make the default matrix (5.10, 6.1, 6.12, newest);
/// also where a version prefix is looked for.
const SUITES: &[&str] = &["bullseye", "bookworm", "trixie", "trixie-backports"];

/// The default matrix: the x86_64 kernels of [`SUITES`], then trixie's arm64 one.
pub const DEFAULT_KERNELS: &[&str] = &[
    "bullseye",
    "bookworm",
    "trixie",
    "trixie-backports",
    "arm64:trixie",
];

/// Host packages the runner needs (binutils' `readelf` reads another architecture's
/// programs).
const PACKAGES: &[&str] = &["busybox-static", "kmod", "xz-utils", "zstd", "binutils"];

/// qemu, installed from the suite of the qemu packages already on the machine: the
/// system emulator of each architecture the matrix boots.
const QEMU_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-system-arm"];

/// Modules the tests need, when the kernel builds them as modules.
const MODULES: &[&str] = &["veth", "sch_tbf", "inet_diag", "tcp_diag", "mptcp_diag"];

const SENTINEL: &str = "VMTEST DONE";

/// The prefix of a build product that is a program the tests run (installed in the
/// guest's /usr/bin), not a test binary.
const TOOL: &str = "bin:";

/// The prefix of an example program's name in the list `build_tests` returns: the guest
/// gets it as `/examples/NAME`, where `mptcp/tests/examples.rs` looks for it.
const EXAMPLE: &str = "example:";

/// A kernel to boot: its image, its modules directory, a label.
struct Kernel {
    arch: Arch,
    label: String,
    release: String,
    vmlinuz: PathBuf,
    modules: Option<PathBuf>,
}

/// What one kernel's run gave.
#[derive(Debug, Default)]
struct Report {
    kernel: String,
    /// Rust's name of the architecture (`x86_64`, `aarch64`).
    arch: String,
    passed: u32,
    failed: u32,
    skipped: u32,
    skip_reasons: BTreeMap<String, u32>,
    failures: Vec<String>,
    /// What each failed test printed (libtest's `---- NAME stdout ----` sections).
    failure_output: Vec<Vec<String>>,
    /// Where the whole console was saved.
    console: Option<PathBuf>,
    /// `VMTEST FEATURE name=value` lines of the features test, in order.
    features: Vec<(String, String)>,
    accel: String,
    seconds: f64,
    problem: Option<String>,
}

fn kernels_dir() -> PathBuf {
    target_dir().join("vm/kernels")
}

/// Splits `ARCH:REST` (`arm64:trixie`); a value without `ARCH:` (or an existing path)
/// is x86_64's.
fn split_arch(spec: &str) -> Result<(Arch, &str)> {
    match spec.split_once(':') {
        Some((a, rest)) if !Path::new(spec).exists() => Ok((Arch::by_deb_name(a)?, rest)),
        _ => Ok((X86_64, spec)),
    }
}

/// Resolves a `--kernel` value: `[ARCH:]` then a suite name, a version prefix of one of
/// the default suites' kernels, or a path to a vmlinuz (modules in
/// `lib/modules/RELEASE` next to its `boot/` directory, if present).
fn fetch_kernel(spec: &str) -> Result<Kernel> {
    let (arch, name) = split_arch(spec)?;
    let path = Path::new(name);
    if path.is_file() {
        let root = path.parent().and_then(Path::parent).map(Path::to_path_buf);
        return kernel_from_tree(arch, spec, root.as_deref(), Some(path));
    }
    if !name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        let dir = fetch_suite_kernel(arch, name, |_| true)?.with_context(|| {
            format!(
                "Debian {name} has no package {meta}: no cloud kernel for {a} there; \
                 pick a suite that has one (e.g. {a}:trixie)",
                meta = arch.kernel_metapackage(),
                a = arch.deb_arch,
            )
        })?;
        return kernel_from_tree(arch, spec, Some(&dir), None);
    }
    // A version prefix: the first suite whose kernel matches (suites without a cloud
    // kernel for this architecture are passed over).
    for suite in SUITES {
        if let Some(dir) = fetch_suite_kernel(arch, suite, |r| r.starts_with(name))? {
            return kernel_from_tree(arch, spec, Some(&dir), None);
        }
    }
    bail!(
        "no kernel matches {spec:?} ([ARCH:] then a suite name, a version prefix, or a \
         vmlinuz path)"
    )
}

/// The directory a suite's kernel of `arch` is unpacked under.
fn suite_dir(arch: Arch, suite: &str) -> PathBuf {
    if arch.is_host() {
        kernels_dir().join(suite)
    } else {
        kernels_dir().join(format!("{suite}-{}", arch.deb_arch))
    }
}

/// Downloads and unpacks the cloud kernel of `arch` that `suite`'s metapackage names,
/// when `wanted` accepts its release; returns the unpacked tree (`None`: the suite has
/// no such metapackage, or `wanted` refused its kernel).
fn fetch_suite_kernel(
    arch: Arch,
    suite: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Option<PathBuf>> {
    let mut s = Suite::for_arch(suite, (!arch.is_host()).then_some(arch.deb_arch))?;
    let meta = arch.kernel_metapackage();
    if s.versions(&meta)?.is_empty() {
        return Ok(None);
    }
    let image = s
        .depends(&meta)?
        .into_iter()
        .find(|d| d.starts_with("linux-image-"))
        .with_context(|| format!("{}: {meta} names no kernel", s.describe()))?;
    let release = image.trim_start_matches("linux-image-").to_string();
    if !wanted(&release) {
        return Ok(None);
    }
    let dir = suite_dir(arch, suite).join(&release);
    if !dir.join(".complete").exists() {
        let _ = fs::remove_dir_all(&dir);
        let mut pkgs = vec![image.clone()];
        // Newer kernels split the image into binary and modules packages.
        pkgs.extend(
            s.depends(&image)?
                .into_iter()
                .filter(|d| d.starts_with("linux-binary-") || d.starts_with("linux-modules-")),
        );
        for p in &pkgs {
            let v = s.candidate(p)?;
            let deb = s.download(p, &v)?;
            apt::extract_into(&deb, &dir)?;
        }
        fs::write(dir.join(".complete"), &release)?;
    }
    // Prune other (stale) kernels of this suite.
    for e in fs::read_dir(suite_dir(arch, suite))?.flatten() {
        if e.file_name().to_string_lossy() != release {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    Ok(Some(dir))
}

fn kernel_from_tree(
    arch: Arch,
    label: &str,
    root: Option<&Path>,
    vmlinuz: Option<&Path>,
) -> Result<Kernel> {
    let (vmlinuz, release) = match vmlinuz {
        Some(v) => {
            let name = v
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            (
                v.to_path_buf(),
                name.trim_start_matches("vmlinuz-").to_string(),
            )
        }
        None => find_vmlinuz(root.context("kernel tree")?)?,
    };
    let modules = root.and_then(|r| {
        [
            r.join("lib/modules").join(&release),
            r.join("usr/lib/modules").join(&release),
        ]
        .into_iter()
        .find(|p| p.is_dir())
    });
    Ok(Kernel {
        arch,
        label: label.to_string(),
        release,
        vmlinuz,
        modules,
    })
}

/// The image in a kernel package tree: `boot/vmlinuz-RELEASE` (Debian up to 13) or
/// `usr/lib/modules/RELEASE/vmlinuz` (newer packages).
fn find_vmlinuz(root: &Path) -> Result<(PathBuf, String)> {
    if let Ok(rd) = fs::read_dir(root.join("boot")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(rel) = name.strip_prefix("vmlinuz-") {
                return Ok((e.path(), rel.to_string()));
            }
        }
    }
    for base in ["lib/modules", "usr/lib/modules"] {
        for e in fs::read_dir(root.join(base))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().join("vmlinuz").is_file() {
                return Ok((
                    e.path().join("vmlinuz"),
                    e.file_name().to_string_lossy().to_string(),
                ));
            }
        }
    }
    bail!("no vmlinuz in {}", root.display())
}

/// Builds the test binaries statically for `arch` (installing its Rust standard library
/// and cross linker when missing); returns (name, path) from cargo's JSON messages.
fn build_tests(arch: Arch) -> Result<Vec<(String, PathBuf)>> {
    let target = crate::targets::by_rust(arch.rust)
        .with_context(|| format!("{} is not in the target table", arch.rust))?;
    target.ensure_rust_std()?;
    target.ensure_cross_tools().with_context(|| {
        format!(
            "the {} test binaries need the linker {}",
            arch.name,
            target.gcc()
        )
    })?;
    // The library's tests, and mptcp-pmd's (kernel and userspace mode) with the
    // daemon itself, which the guest gets as /usr/bin/mptcp-pmd.
    let builds: [&[&str]; 2] = [
        &["-p", "mptcp", "--all-features"],
        &["-p", "mptcp-examples", "--test", "mptcp_pmd"],
    ];
    let mut bins = Vec::new();
    for args in builds {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args([
                "test",
                "--no-run",
                "--message-format=json",
                "--target",
                arch.rust,
            ])
            .args(args)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .stderr(Stdio::inherit());
        target.configure_cargo(&mut cmd, false);
        let out = cmd.output().context("cargo test --no-run")?;
        if !out.status.success() {
            bail!("building the static {} test binaries failed", arch.name);
        }
        for msg in Message::parse_stream(out.stdout.as_slice()) {
            let Message::CompilerArtifact(a) = msg.context("read cargo's JSON messages")? else {
                continue;
            };
            let Some(exe) = a.executable else { continue };
            let is_bin = a.target.kind.iter().any(|k| k.to_string() == "bin");
            let is_example = a.target.kind.iter().any(|k| k.to_string() == "example");
            if a.profile.test {
                let kind = a
                    .target
                    .kind
                    .first()
                    .map_or("test".into(), |k| k.to_string());
                bins.push((format!("{}-{kind}", a.target.name), exe.into_std_path_buf()));
            } else if is_bin && a.target.name == "mptcp-pmd" {
                bins.push((format!("{TOOL}{}", a.target.name), exe.into_std_path_buf()));
            } else if is_example {
                bins.push((
                    format!("{EXAMPLE}{}", a.target.name),
                    exe.into_std_path_buf(),
                ));
            }
        }
    }
    if bins.is_empty() {
        bail!("cargo reported no test executables");
    }
    Ok(bins)
}

/// Files of the initramfs: (path in the guest, contents, mode).
struct Initramfs {
    files: BTreeMap<String, (Vec<u8>, u32)>,
    dirs: BTreeSet<String>,
}

impl Initramfs {
    fn new() -> Self {
        Initramfs {
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
        }
    }

    fn add(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        let mut p = Path::new(path).parent();
        while let Some(d) = p {
            let s = d.to_string_lossy().trim_start_matches('/').to_string();
            if !s.is_empty() {
                self.dirs.insert(s);
            }
            p = d.parent();
        }
        self.files
            .insert(path.trim_start_matches('/').to_string(), (data, mode));
    }

    fn add_host_file(&mut self, guest: &str, host: &Path) -> Result<()> {
        let data = fs::read(host).with_context(|| format!("read {}", host.display()))?;
        self.add(guest, data, 0o100755);
        Ok(())
    }

    fn write(&self, path: &Path) -> Result<()> {
        let mut entries: Vec<(cpio::NewcBuilder, std::io::Cursor<Vec<u8>>)> = Vec::new();
        let mut ino = 1;
        for d in &self.dirs {
            entries.push((
                cpio::NewcBuilder::new(d).ino(ino).mode(0o040755).nlink(2),
                std::io::Cursor::new(Vec::new()),
            ));
            ino += 1;
        }
        for (name, (data, mode)) in &self.files {
            entries.push((
                cpio::NewcBuilder::new(name).ino(ino).mode(*mode).nlink(1),
                std::io::Cursor::new(data.clone()),
            ));
            ino += 1;
        }
        let file = fs::File::create(path)?;
        cpio::write_cpio(entries.into_iter(), std::io::BufWriter::new(file))?;
        Ok(())
    }
}

/// Module files (decompressed) to load, in dependency order, from the kernel's tree.
fn modules_for(k: &Kernel) -> Result<Vec<(String, Vec<u8>)>> {
    let Some(dir) = &k.modules else {
        return Ok(Vec::new());
    };
    // depmod wants BASE/lib/modules/RELEASE: give it a private base with that shape.
    let base = target_dir().join("vm/depmod").join(&k.release);
    let link = base.join("lib/modules");
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&link)?;
    std::os::unix::fs::symlink(dir, link.join(&k.release))?;
    let depfile = dir.join("modules.dep");
    if !depfile.exists() {
        sh(Command::new("depmod").arg("-b").arg(&base).arg(&k.release))?;
    }
    let deps = fs::read_to_string(&depfile).unwrap_or_default();
    let table: BTreeMap<String, (String, Vec<String>)> = deps
        .lines()
        .filter_map(|l| {
            let (m, d) = l.split_once(':')?;
            let name = Path::new(m)
                .file_name()?
                .to_string_lossy()
                .split(".ko")
                .next()?
                .replace('-', "_");
            Some((
                name,
                (
                    m.to_string(),
                    d.split_whitespace().map(str::to_string).collect(),
                ),
            ))
        })
        .collect();
    let by_path: BTreeMap<&str, &str> = table
        .iter()
        .map(|(n, (p, _))| (p.as_str(), n.as_str()))
        .collect();
    let mut order: Vec<String> = Vec::new();
    fn visit(
        n: &str,
        t: &BTreeMap<String, (String, Vec<String>)>,
        bp: &BTreeMap<&str, &str>,
        order: &mut Vec<String>,
    ) {
        if order.iter().any(|o| o == n) {
            return;
        }
        if let Some((_, deps)) = t.get(n) {
            for d in deps {
                if let Some(dn) = bp.get(d.as_str()) {
                    visit(dn, t, bp, order);
                }
            }
            order.push(n.to_string());
        }
    }
    for m in MODULES {
        visit(m, &table, &by_path, &mut order);
    }
    let mut out = Vec::new();
    for n in order {
        let rel = &table[&n].0;
        let file = dir.join(rel);
        let data = if rel.ends_with(".xz") {
            output_bytes(Command::new("xz").arg("-dc").arg(&file))?
        } else if rel.ends_with(".zst") {
            output_bytes(Command::new("zstd").arg("-dcq").arg(&file))?
        } else {
            fs::read(&file)?
        };
        out.push((n, data));
    }
    Ok(out)
}

fn output_bytes(cmd: &mut Command) -> Result<Vec<u8>> {
    let o = cmd.output()?;
    if !o.status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(o.stdout)
}

fn init_script(modules: &[String], tests: &[String], timeout_each: u64) -> String {
    // The guest has no entropy source early on: a test that seeds from the OS (proptest)
    // would block in getrandom(). Give it a seed from the host, new each run.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut s = format!("#!/bin/busybox sh\nexport PROPTEST_RNG_SEED={seed}\n");
    s += &String::from(
        "/bin/busybox --install -s /bin\n\
         export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
         export PROPTEST_CASES=16\n\
         export MPTCP_PMD=/usr/bin/mptcp-pmd\n\
         export MPTCP_TEST_SLOW=1\n\
         mount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n\
         mkdir -p /run/netns /tmp /dev/pts /var/run\nmount -t tmpfs tmpfs /run\nmkdir -p /run/netns\n\
         mount -t tmpfs tmpfs /tmp\n\
         ip link set lo up\n\
         echo \"VMTEST KERNEL $(uname -r)\"\n",
    );
    for m in modules {
        s += &format!(
            "insmod /modules/{m}.ko 2>/dev/null || echo \"VMTEST NOTE module {m} not loaded\"\n"
        );
    }
    for t in tests {
        s += &format!(
            "echo \"VMTEST START {t}\"\n\
             cd /tmp\ntimeout {timeout_each} /tests/{t} --test-threads=2 --nocapture 2>&1\nrc=$?\n\
             echo \"VMTEST RESULT {t} rc=$rc\"\n"
        );
    }
    s += &format!("echo \"{SENTINEL}\"\npoweroff -f\n");
    s
}

fn build_initramfs(k: &Kernel, tests: &[(String, PathBuf)]) -> Result<PathBuf> {
    let mut fs_ = Initramfs::new();
    for (guest, host) in userland::files(&k.arch)? {
        fs_.add_host_file(&guest, &host)?;
    }
    let modules = modules_for(k)?;
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    for (n, data) in modules {
        fs_.add(&format!("modules/{n}.ko"), data, 0o100644);
    }
    let mut test_names = Vec::new();
    for (name, path) in tests {
        if let Some(example) = name.strip_prefix(EXAMPLE) {
            fs_.add_host_file(&format!("examples/{example}"), path)?;
            continue;
        }
        match name.strip_prefix(TOOL) {
            Some(tool) => fs_.add_host_file(&format!("usr/bin/{tool}"), path)?,
            None => {
                fs_.add_host_file(&format!("tests/{name}"), path)?;
                test_names.push(name.clone());
            }
        }
    }
    fs_.add(
        "init",
        init_script(&names, &test_names, 600).into_bytes(),
        0o100755,
    );
    for d in ["proc", "sys", "dev", "run", "tmp", "etc"] {
        fs_.dirs.insert(d.to_string());
    }
    let path = target_dir()
        .join("vm")
        .join(format!("initramfs-{}.cpio", k.release));
    fs_.write(&path)?;
    Ok(path)
}

/// Boots a kernel and streams its console: Ok(lines) once the sentinel appears.
fn boot(
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
fn kvm_works(k: &Kernel) -> bool {
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

/// Parses the console of one run.
fn parse(label: &str, lines: &[String]) -> Report {
    let mut r = Report {
        kernel: label.to_string(),
        ..Default::default()
    };
    for l in lines {
        let t = l.trim();
        if let Some((k, v)) = t
            .strip_prefix("VMTEST FEATURE ")
            .and_then(|f| f.split_once('='))
        {
            r.features.push((k.to_string(), v.to_string()));
        } else if let Some(rel) = t.strip_prefix("VMTEST KERNEL ") {
            r.kernel = rel.to_string();
        } else if let Some(rest) = t.strip_prefix("test result: ") {
            let num = |key: &str| -> u32 {
                rest.split(';')
                    .find_map(|p| {
                        p.trim().strip_suffix(key).map(|n| {
                            n.trim()
                                .trim_start_matches("ok.")
                                .trim_start_matches("FAILED.")
                                .trim()
                                .parse()
                                .unwrap_or(0)
                        })
                    })
                    .unwrap_or(0)
            };
            r.passed += num("passed");
            r.failed += num("failed");
        } else if let Some(why) = t.strip_prefix("skipped: ") {
            // Parallel tests can glue another test's status line to the reason.
            let why = why
                .split(")test ")
                .next()
                .map(|w| {
                    if w.len() < why.len() {
                        format!("{w})")
                    } else {
                        w.to_string()
                    }
                })
                .unwrap_or_default();
            let why = why.as_str();
            r.skipped += 1;
            *r.skip_reasons.entry(why.to_string()).or_default() += 1;
        } else if t.starts_with("test ") && t.ends_with("... FAILED") {
            r.failures.push(t.to_string());
        } else if let Some(res) = t.strip_prefix("VMTEST RESULT ") {
            if !res.ends_with("rc=0") && !res.ends_with("rc=101") {
                r.failed += 1;
                r.failures.push(format!("{res} (binary did not finish)"));
            }
        }
    }
    // A skipped test also counts as passed in libtest's summary.
    r.passed = r.passed.saturating_sub(r.skipped);
    r.failure_output = failed_sections(failure_sections(lines), &r.failures);
    r
}

/// Lines kept of one failed test's output in the report (the whole console is saved).
const FAILURE_LINES: usize = 40;

/// What failed tests printed, from the panic on: the guest runs the tests with
/// `--nocapture`, so a panic is a `thread 'NAME' ... panicked at` line followed by its
/// message (libtest's `---- NAME stdout ----` sections, when output is captured, are
/// read the same way). A section ends at the next test status line, panic, section or
/// `failures:` list, and is cut to [`FAILURE_LINES`]. Tests running in parallel can
/// interleave their lines; the console file has everything as it came.
fn failure_sections(lines: &[String]) -> Vec<Vec<String>> {
    let starts = |t: &str| {
        (t.starts_with("thread '") && t.contains("panicked at"))
            || (t.starts_with("---- ") && t.ends_with(" stdout ----"))
    };
    let ends = |t: &str| {
        t == "failures:"
            || t == "stack backtrace:"
            || t.starts_with("note: run with `RUST_BACKTRACE")
            || t.starts_with("running ")
            || t.starts_with("test result: ")
            || (t.starts_with("test ") && t.contains(" ... "))
            || t.starts_with("VMTEST ")
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut open = false;
    // Whether each section had more than it keeps.
    let mut cut: Vec<bool> = Vec::new();
    for l in lines {
        let t = l.trim();
        if starts(t) {
            // A captured section's own panic line belongs to that section.
            let in_section = open
                && t.starts_with("thread '")
                && out.last().is_some_and(|s| s[0].starts_with("---- "));
            if !in_section {
                out.push(Vec::new());
                cut.push(false);
            }
            open = true;
        } else if open && ends(t) {
            open = false;
            continue;
        }
        if let (true, Some(cur), Some(c)) = (open, out.last_mut(), cut.last_mut()) {
            if cur.len() < FAILURE_LINES {
                cur.push(l.trim_end().to_string());
            } else {
                *c = true;
            }
        }
    }
    for (s, c) in out.iter_mut().zip(cut) {
        while s.last().is_some_and(|l| l.trim().is_empty()) {
            s.pop();
        }
        if c {
            s.push("(cut: the rest is in the console file)".into());
        }
    }
    out
}

/// The test a failure section is about: `NAME` of `thread 'NAME' ...` or of
/// `---- NAME stdout ----`.
fn section_test(section: &[String]) -> Option<&str> {
    let first = section.first()?.trim();
    if let Some(rest) = first.strip_prefix("thread '") {
        return rest.split_once('\'').map(|(name, _)| name);
    }
    first.strip_prefix("---- ")?.strip_suffix(" stdout ----")
}

/// The sections of the tests that failed (`test NAME ... FAILED`): a passing test that
/// expects a panic, or a helper thread's panic, prints one too. When no section names
/// a failed test (a binary that did not finish), all of them.
fn failed_sections(sections: Vec<Vec<String>>, failures: &[String]) -> Vec<Vec<String>> {
    let failed: Vec<&str> = failures
        .iter()
        .filter_map(|f| f.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    let named = |s: &Vec<String>| section_test(s).is_some_and(|n| failed.contains(&n));
    if sections.iter().any(named) {
        sections.into_iter().filter(named).collect()
    } else {
        sections
    }
}

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

fn print_report(reports: &[Report], total: f64) -> Result<()> {
    println!(
        "\n{:<32} {:<8} {:>6} {:>6} {:>7} {:>6} {:>8}",
        "kernel", "arch", "passed", "failed", "skipped", "accel", "seconds"
    );
    for r in reports {
        println!(
            "{:<32} {:<8} {:>6} {:>6} {:>7} {:>6} {:>8.1}{}",
            r.kernel,
            r.arch,
            r.passed,
            r.failed,
            r.skipped,
            r.accel,
            r.seconds,
            r.problem
                .as_ref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
        for (why, n) in &r.skip_reasons {
            println!("    skipped {n}x: {why}");
        }
        for f in &r.failures {
            println!("    FAILED: {f}");
        }
        // (A passing test that expects a panic prints one too: shown only on failure.)
        for section in r.failure_output.iter().filter(|_| r.failed > 0) {
            for l in section {
                println!("      | {l}");
            }
        }
        if let (true, Some(c)) = (r.failed > 0, &r.console) {
            println!("    console: {}", c.display());
        }
    }
    println!("total {total:.1} s");
    let json = serde_json::json!({
        "kernels": reports.iter().map(|r| serde_json::json!({
            "kernel": r.kernel, "arch": r.arch, "passed": r.passed, "failed": r.failed, "skipped": r.skipped,
            "skip_reasons": r.skip_reasons, "accel": r.accel,
            "features": r.features.iter().cloned().collect::<BTreeMap<String, String>>(), "seconds": (r.seconds * 10.0).round() / 10.0,
            "problem": r.problem,
        })).collect::<Vec<_>>(),
        "seconds": (total * 10.0).round() / 10.0,
    });
    let dir = target_dir().join("vm-test");
    fs::create_dir_all(&dir)?;
    let mut f = fs::File::create(dir.join("summary.json"))?;
    writeln!(f, "{json}")?;
    // The kernel support table, for the README.
    let mut md = String::from("| feature |");
    for r in reports {
        md += &format!(" {} |", r.kernel);
    }
    md += "\n|---|";
    md += &"---|".repeat(reports.len());
    md += "\n| architecture |";
    for r in reports {
        md += &format!(" {} |", r.arch);
    }
    md += "\n";
    let names: Vec<String> = reports
        .iter()
        .find(|r| !r.features.is_empty())
        .map(|r| r.features.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    for name in names {
        md += &format!("| {name} |");
        for r in reports {
            let v = r
                .features
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str());
            md += &format!(" {} |", v.unwrap_or("?"));
        }
        md += "\n";
    }
    fs::write(dir.join("features.md"), md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_failed_tests_output_reaches_the_report() {
        let console = lines(
            "running 2 tests\n\
             test a ... ok\n\
             test b ... FAILED\n\
             \n\
             failures:\n\
             \n\
             ---- b stdout ----\n\
             \n\
             thread 'b' panicked at t.rs:9:5:\n\
             the client joined\n\
             \n\
             \n\
             failures:\n\
             \x20   b\n\
             \n\
             test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
        );
        let r = parse("k", &console);
        assert_eq!((r.passed, r.failed), (1, 1));
        assert_eq!(r.failures, vec!["test b ... FAILED".to_string()]);
        assert_eq!(
            r.failure_output,
            vec![vec![
                "---- b stdout ----".to_string(),
                String::new(),
                "thread 'b' panicked at t.rs:9:5:".to_string(),
                "the client joined".to_string(),
            ]]
        );
    }

    #[test]
    fn a_panic_under_nocapture_reaches_the_report() {
        let console = lines(
            "test a ... ok\n\
             thread 'b' (1403) panicked at t.rs:698:5:\n\
             the announcement is logged:\n\
             2026-11-24T06:23:21Z  INFO started\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\
             test c ... ok\n\
             test b ... FAILED\n",
        );
        let r = parse("k", &console);
        assert_eq!(
            r.failure_output,
            vec![vec![
                "thread 'b' (1403) panicked at t.rs:698:5:".to_string(),
                "the announcement is logged:".to_string(),
                "2026-11-24T06:23:21Z  INFO started".to_string(),
            ]]
        );
    }

    #[test]
    fn a_long_failure_is_cut() {
        let mut console = vec!["---- c stdout ----".to_string()];
        console.extend((0..100).map(|i| format!("line {i}")));
        console.push("failures:".into());
        let s = failure_sections(&console);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].len(), FAILURE_LINES + 1);
        assert_eq!(
            s[0][FAILURE_LINES - 1],
            format!("line {}", FAILURE_LINES - 2)
        );
        assert!(s[0][FAILURE_LINES].starts_with("(cut"));
        assert!(failure_sections(&lines("test x ... ok\n")).is_empty());
        // A blank last kept line: trimmed, and the cut still said.
        let mut console = vec!["---- c stdout ----".to_string()];
        console.extend((2..FAILURE_LINES).map(|i| format!("line {i}")));
        console.extend(["".to_string(), "more".to_string(), "failures:".to_string()]);
        let s = failure_sections(&console);
        assert_eq!(s[0].len(), FAILURE_LINES);
        assert!(s[0][FAILURE_LINES - 1].starts_with("(cut"));
    }

    #[test]
    fn only_the_failed_tests_panics_are_shown() {
        let console = lines(
            "thread 'expects_a_panic' (7) panicked at t.rs:1:1:\n\
             as it should\n\
             test expects_a_panic - should panic ... ok\n\
             thread 'b' (8) panicked at t.rs:2:2:\n\
             the real one\n\
             test b ... FAILED\n",
        );
        let r = parse("k", &console);
        assert_eq!(r.failure_output.len(), 1);
        assert_eq!(r.failure_output[0][1], "the real one");
    }
}
