//! `cargo xtask dist`: the Debian package of the tools, made by cargo-deb from the
//! metadata in `mptcp-examples/Cargo.toml`, and its test: the package installed with
//! dpkg into a fresh Debian root (mmdebstrap, from the machine's Debian archive) and
//! each tool run there.

use crate::apt::debian_mirror;
use crate::packages::{ensure_packages, host_codename};
use crate::sys::{is_root, output, root, run, target_dir};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo-deb xtask installs (under target/tools), pinned as the lock file pins crates.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// The package's tools: each gets a man page and bash, zsh and fish completions.
const TOOLS: &[&str] = &[
    "mptcp-cat",
    "mptcp-pm",
    "mptcp-pmd",
    "mptcp-stat",
    "mptcp-run",
    "mptcp-exporter",
    "mptcp-doctor",
];

/// What building and checking the package needs besides what mptcp-run's `bpf`
/// feature builds with: dpkg-shlibdeps (cargo-deb's `$auto` dependencies),
/// systemd-analyze for its units, gzip for the man pages.
const BUILD_PACKAGES: &[&str] = &["dpkg-dev", "systemd", "gzip"];

/// How the package's binaries are built.
pub enum Build {
    /// `cargo build --profile PROFILE` of the tools and the preload library, with the
    /// `bpf` feature: what `cargo xtask dist` packages (release by default).
    Profile(String),
    /// What `cargo test --workspace --all-features` has already built (the dev profile):
    /// `cargo xtask test` packages and installs that, rather than build everything again.
    TestBuild,
}

/// `cargo xtask dist [--profile P] [--check]`: builds the package, prints its path, and
/// with `check` installs it into a fresh Debian root and runs the tools there.
pub fn run_task(profile: String, check: bool) -> Result<()> {
    let deb = build(Build::Profile(profile))?;
    if check {
        install_test(&deb)?;
    }
    println!("{}", deb.display());
    Ok(())
}

/// Builds the binaries, generates the man pages and completions, and packages them;
/// returns the path of the .deb (under target/dist/).
pub fn build(how: Build) -> Result<PathBuf> {
    ensure_packages(BUILD_PACKAGES)?;
    ensure_packages(crate::packages::BPF_BUILD_PACKAGES)?;
    let cargo_deb = cargo_deb()?;
    let headers = crate::codegen_task::pinned_headers()?.include;
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(root())
        .env("MPTCP_SYS_KERNEL_HEADERS", &headers);
    let profile = match &how {
        Build::Profile(p) => {
            cargo.args(["build", "--profile", p, "-p", "mptcp-examples", "-p"]);
            cargo.args(["mptcp-preload", "--features", "mptcp-examples/bpf"]);
            p.clone()
        }
        Build::TestBuild => {
            // No-ops after the test step: its binaries, and the preload library as
            // mptcp-examples/tests/mptcp_run.rs builds it.
            let mut preload = Command::new(cargo.get_program());
            preload
                .current_dir(root())
                .env("MPTCP_SYS_KERNEL_HEADERS", &headers)
                .args(["build", "-p", "mptcp-preload"]);
            run(&mut preload)?;
            cargo.args(["test", "--workspace", "--all-features", "--no-run"]);
            "dev".to_string()
        }
    };
    run(&mut cargo)?;
    let bin_dir = target_dir().join(profile_dir(&profile));
    generate_docs(&bin_dir)?;
    let out = target_dir().join("dist");
    fs::create_dir_all(&out)?;
    let printed = output(
        Command::new(&cargo_deb)
            .current_dir(root())
            .env("MPTCP_SYS_KERNEL_HEADERS", &headers)
            .args(["-p", "mptcp-examples", "--no-build", "--profile", &profile])
            .arg("--output")
            .arg(&out),
    )?;
    let deb = printed
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .context("cargo-deb did not print the path of the package")?;
    eprintln!("xtask: packaged {}", deb.display());
    Ok(deb)
}

/// Cargo's directory of a profile's output under target/.
fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "release" | "bench" => "release",
        other => other,
    }
}

/// cargo-deb, installed under target/tools with `cargo install --locked` when missing:
/// unoptimised and with gzip only (no liblzma to build), which halves its build on two
/// cores (37 s) for a packaging step that then takes seconds.
fn cargo_deb() -> Result<PathBuf> {
    let tools = target_dir().join("tools");
    let bin = tools.join("bin").join("cargo-deb");
    let have = Command::new(&bin).arg("--version").output().ok();
    if have.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION)) {
        return Ok(bin);
    }
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "--locked", "--quiet", "--debug", "cargo-deb"])
            .args(["--no-default-features", "--features", "gzip", "--version"])
            .arg(format!("={CARGO_DEB_VERSION}"))
            .arg("--root")
            .arg(&tools),
    )
    .context("cannot install cargo-deb (crates.io)")?;
    Ok(bin)
}

/// Each tool's man page (gzipped, as Debian ships them) and completion scripts, from its
/// own `--generate`, into `BIN_DIR/generated/{man,bash,zsh,fish}` (the package's assets).
fn generate_docs(bin_dir: &Path) -> Result<()> {
    let gen = bin_dir.join("generated");
    let _ = fs::remove_dir_all(&gen);
    for (what, name) in [
        ("man", "{}.1"),
        ("bash", "{}"),
        ("zsh", "_{}"),
        ("fish", "{}.fish"),
    ] {
        let dir = gen.join(what);
        fs::create_dir_all(&dir)?;
        for tool in TOOLS {
            let text = output(Command::new(bin_dir.join(tool)).args(["--generate", what]))?;
            if text.is_empty() {
                bail!("{tool} --generate {what} printed nothing");
            }
            let file = dir.join(name.replace("{}", tool));
            fs::write(&file, text).with_context(|| format!("write {}", file.display()))?;
            if what == "man" {
                run(Command::new("gzip").args(["-9nf"]).arg(&file))?;
            }
        }
    }
    Ok(())
}

/// A fresh Debian root, removed when dropped (also when the test fails).
struct FreshRoot(PathBuf);

impl Drop for FreshRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What runs in the fresh root with the package installed: every tool, its man page and
/// completions; the daemon's configuration and unit; mptcp-run finding its library and
/// making an unmodified program's socket MPTCP; a loopback transfer, hashed; then the
/// package's removal.
const CHECKS: &str = r#"
set -eu
for t in mptcp-cat mptcp-pm mptcp-pmd mptcp-stat mptcp-run mptcp-exporter mptcp-doctor; do
    v=$($t --version)
    case "$v" in "$t "*) echo "ok: $v" ;; *) echo "$t --version printed: $v"; exit 1 ;; esac
    zcat /usr/share/man/man1/$t.1.gz | grep -q "^\.TH $t 1"
    grep -q "$t" /usr/share/bash-completion/completions/$t
    grep -q "$t" /usr/share/zsh/vendor-completions/_$t
    grep -q "$t" /usr/share/fish/vendor_completions.d/$t.fish
done
echo "ok: man pages and bash, zsh and fish completions"
mptcp-pmd --check --config /etc/mptcp-pmd.toml
grep -q '^ExecStart=/usr/bin/mptcp-pmd --config /etc/mptcp-pmd.toml$' /usr/lib/systemd/system/mptcp-pmd.service
grep -q '^ExecStart=/usr/bin/mptcp-exporter ' /usr/lib/systemd/system/mptcp-exporter.service
grep -qx /etc/mptcp-pmd.toml /var/lib/dpkg/info/mptcp-tools.conffiles
for u in mptcp-pmd mptcp-exporter; do
    state=$(systemctl is-enabled $u.service || true)
    test "$state" = disabled || { echo "$u.service is $state after installation"; exit 1; }
done
echo "ok: /etc/mptcp-pmd.toml (a conffile), the mptcp-pmd and mptcp-exporter units (disabled)"
mptcp-exporter --listen "127.0.0.1:$PORT" --sample 0 2> /dev/null &
i=0
until perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new("127.0.0.1:$ENV{PORT}") or exit 1;
    print $s "GET /metrics HTTP/1.0\r\n\r\n"; print while <$s>' > /tmp/metrics; do
    i=$((i + 1)); test $i -lt 50; sleep 0.1
done
kill $!
wait $! 2> /dev/null || true
grep -q '^HTTP/1.[01] 200' /tmp/metrics
grep -q '^mptcp_enabled 1' /tmp/metrics
echo "ok: mptcp-exporter serves /metrics"
grep -q '"panels"' /usr/share/mptcp-tools/grafana-mptcp.json
echo "ok: the Grafana dashboard is installed"
mptcp-pm endpoint show > /dev/null
mptcp-stat --json > /dev/null
mptcp-doctor --json > /tmp/doctor.json || test $? = 1
grep -q '"check":"kernel"' /tmp/doctor.json
echo "ok: mptcp-pm endpoint show, mptcp-stat --json, mptcp-doctor --json"
proto=$(mptcp-run --mptcp require perl -MSocket -e '
    socket(my $s, AF_INET, SOCK_STREAM, 0) or die "socket: $!";
    print unpack("i", getsockopt($s, SOL_SOCKET, SO_PROTOCOL))')
test "$proto" = 262
echo "ok: mptcp-run found /usr/lib/mptcp-run/libmptcp_preload.so; perl's TCP socket is IPPROTO_MPTCP"
if mptcp-run --bpf true 2>&1 | grep -q "built without BPF"; then
    echo "mptcp-run was packaged without --bpf"; exit 1
fi
echo "ok: mptcp-run --bpf is built in"
head -c 4000000 /dev/urandom > /tmp/in
mptcp-cat -l 127.0.0.1 "$PORT" --recv-only --json > /tmp/out 2> /tmp/server.json &
i=0
until mptcp-cat --send-only --json 127.0.0.1 "$PORT" < /tmp/in 2> /tmp/client.json; do
    i=$((i + 1)); test $i -lt 50; sleep 0.1
done
wait $!
test "$(sha256sum < /tmp/in)" = "$(sha256sum < /tmp/out)"
grep -q '"mptcp":true' /tmp/client.json
grep -q '"mptcp":true' /tmp/server.json
echo "ok: 4 MB over MPTCP on loopback with mptcp-cat, hashes equal"
dpkg --purge mptcp-tools > /dev/null
for f in /usr/bin/mptcp-run /usr/lib/mptcp-run /etc/mptcp-pmd.toml /usr/share/man/man1/mptcp-cat.1.gz; do
    if test -e $f; then echo "$f is left after dpkg --purge"; exit 1; fi
done
echo "ok: dpkg --purge removes everything"
"#;

/// Installs the package into a fresh Debian root of the host's release (mmdebstrap,
/// minbase and systemd, from the machine's Debian archive) with dpkg, checks its units
/// with `systemd-analyze verify`, and runs [`CHECKS`] there, in a mount and PID
/// namespace of its own (its /proc goes with it). Root only.
pub fn install_test(deb: &Path) -> Result<()> {
    if !is_root() {
        bail!("installing the package into a fresh Debian root needs root (mmdebstrap, chroot)");
    }
    ensure_packages(&["mmdebstrap"])?;
    let codename = host_codename()?;
    let (mirror, keyring) = debian_mirror()?;
    let fresh = FreshRoot(target_dir().join("dist").join("root"));
    let _ = fs::remove_dir_all(&fresh.0);
    let mut mm = Command::new("mmdebstrap");
    // With systemd, so that the units' installation and their check run as on a host.
    mm.args([
        "--variant=minbase",
        "--quiet",
        "--mode=root",
        "--include=systemd",
    ]);
    if let Some(k) = keyring {
        mm.arg(format!("--keyring={k}"));
    }
    run(mm.arg(&codename).arg(&fresh.0).arg(&mirror))
        .with_context(|| format!("cannot make a fresh {codename} root with mmdebstrap"))?;
    fs::copy(deb, fresh.0.join("tmp/mptcp-tools.deb"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let in_root = |cmd: &[&str]| {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--pid", "--fork"])
            .arg(format!("--mount-proc={}", fresh.0.join("proc").display()))
            .arg("chroot")
            .arg(&fresh.0)
            .args(cmd)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("PORT", port.to_string());
        c
    };
    run(&mut in_root(&["dpkg", "-i", "/tmp/mptcp-tools.deb"]))
        .context("dpkg -i of the package in a fresh root")?;
    // systemd's own check of the units as installed (their ExecStart binaries and
    // directives), with the root's files.
    for unit in ["mptcp-pmd.service", "mptcp-exporter.service"] {
        let path = fresh.0.join("usr/lib/systemd/system").join(unit);
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", fresh.0.display()))
            .arg(&path))
        .with_context(|| format!("systemd-analyze verify of {unit}"))?;
    }
    fs::write(fresh.0.join("tmp/checks.sh"), CHECKS)?;
    run(&mut in_root(&["/bin/sh", "/tmp/checks.sh"]))
        .context("the tools, installed from the package in a fresh root")?;
    eprintln!(
        "xtask: {} installed and checked in a fresh {codename} root",
        deb.display()
    );
    Ok(())
}
