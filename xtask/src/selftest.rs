//! `cargo xtask selftest [--ip]`: the Linux kernel's own MPTCP selftest `pm_netlink.sh`,
//! with `mptcp-pm` standing in for `ip mptcp`.
//!
//! The script comes from Debian trixie's `linux-source-6.12` (downloaded through the
//! private apt state of `apt.rs`): of the source tarball inside the package only
//! `tools/testing/selftests/net/mptcp/` and the two files its library sources
//! (`net/lib.sh`, `net/net_helper.sh`) are extracted, under
//! `target/selftests/linux-source-VERSION/`, and reused on the next run.
//!
//! The script runs as `pm_netlink.sh -i`, its `ip mptcp` mode (without `-i` it drives
//! the kernel's C tool `pm_nl_ctl` instead, which is not what is tested here), with a
//! directory first on `PATH` holding an `ip` wrapper written here: `ip [-n NS] [-j]
//! mptcp ARGS` runs `mptcp-pm [--json] ARGS` (inside namespace NS through the real `ip
//! netns exec`), everything else runs the real `ip`. With `--ip` the wrapper hands
//! `mptcp` to the real `ip` too: the reference run. Either way the wrapper logs every
//! `ip` command, its replacement and its exit status to
//! `target/selftests/run-MODE/commands.log`; the script's output is kept beside it in
//! `output.txt`.
//!
//! The results are the script's TAP lines (`ok N - ...`, `not ok N - ...`); a failed
//! test is shown with the script's own lines for it (`[FAIL] expected '...' got '...'`).
//! The task fails when a test failed or the script did not finish. It needs root (the
//! script creates a network namespace): without it, it says so and fails.

use crate::apt::{extract_into, Suite};
use crate::packages::ensure_packages;
use crate::sys::{is_root, root, run as sh, target_dir};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const SUITE: &str = "trixie";
const PACKAGE: &str = "linux-source-6.12";
/// The script's directory inside the source tree.
const MPTCP_DIR: &str = "tools/testing/selftests/net/mptcp";
const SCRIPT: &str = "pm_netlink.sh";

/// What is extracted from the source tarball (tar wildcards, below its top directory):
/// the MPTCP selftests, and what their `mptcp_lib.sh` sources.
const MEMBERS: &[&str] = &[
    "tools/testing/selftests/net/mptcp/*",
    "tools/testing/selftests/net/lib.sh",
    "tools/testing/selftests/net/net_helper.sh",
];

/// System packages the task uses: `ip`, `xz` for the tarball, `sysctl` (the script sets
/// its namespace's MPTCP sysctls).
const PACKAGES: &[&str] = &["iproute2", "xz-utils", "procps"];

/// `headers`: the kernel headers the caller's builds use (`MPTCP_SYS_KERNEL_HEADERS`),
/// so that building `mptcp-pm` here reuses them instead of rebuilding everything.
pub fn run(real_ip: bool, headers: Option<&Path>) -> Result<()> {
    if !is_root() {
        eprintln!(
            "xtask: selftest: skipped: {SCRIPT} needs root (it creates a network namespace \
             and sets path-manager endpoints in it)"
        );
        bail!("cargo xtask selftest must run as root (network namespaces)");
    }
    ensure_packages(PACKAGES)?;
    let src = sources()?;
    let real = real_ip_path()?;
    let (mode, pm) = if real_ip {
        ("ip", None)
    } else {
        ("mptcp-pm", Some(build_mptcp_pm(headers)?))
    };
    let run_dir = target_dir().join("selftests").join(format!("run-{mode}"));
    let _ = fs::remove_dir_all(&run_dir);
    let bin = run_dir.join("bin");
    fs::create_dir_all(&bin)?;
    let log = run_dir.join("commands.log");
    let wrapper = bin.join("ip");
    fs::write(&wrapper, wrapper_script(&real, pm.as_deref(), &log))?;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;

    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(paths).context("cannot build PATH")?;
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT)
        .arg("-i")
        .current_dir(src.join(MPTCP_DIR))
        .env("PATH", path)
        // The kernel's CI setting: every check runs (the default limits, fullmesh) rather
        // than being skipped when the kernel might lack the feature.
        .env("SELFTESTS_MPTCP_LIB_EXPECT_ALL_FEATURES", "1")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped());
    eprintln!(
        "xtask: running {SCRIPT} -i, `ip mptcp` = {}",
        pm.as_deref().unwrap_or(&real).display()
    );
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start bash {SCRIPT}"))?;
    let mut lines = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.context("cannot read the script's output")?;
            println!("{line}");
            lines.push(line);
        }
    }
    let status = child.wait()?;
    let elapsed = t.elapsed();
    fs::write(run_dir.join("output.txt"), lines.join("\n") + "\n")?;

    let report = Report::parse(&lines);
    eprintln!();
    eprintln!(
        "xtask: {SCRIPT} of {PACKAGE} {}, `ip mptcp` = {mode}: {} passed, {} failed, {} \
         skipped of {} in {:.1} s",
        fs::read_to_string(src.join(".complete"))?.trim(),
        report.passed,
        report.failed.len(),
        report.skipped,
        report.planned.unwrap_or(report.total()),
        elapsed.as_secs_f64()
    );
    for (tap, block) in &report.failed {
        eprintln!("  {tap}");
        for l in block {
            eprintln!("      {l}");
        }
    }
    eprintln!(
        "xtask: commands: {}, output: {}",
        log.display(),
        run_dir.join("output.txt").display()
    );
    if !report.failed.is_empty() {
        bail!(
            "{} of {} tests of {SCRIPT} failed with `ip mptcp` = {mode}",
            report.failed.len(),
            report.total()
        );
    }
    if report.planned != Some(report.total()) {
        bail!(
            "{SCRIPT} did not finish ({status}): {} results, plan {:?}",
            report.total(),
            report.planned
        );
    }
    if !status.success() {
        bail!("{SCRIPT} failed ({status}) although every test passed");
    }
    Ok(())
}

/// The extracted source tree, fetched on first use (offline, the newest cached one).
fn sources() -> Result<PathBuf> {
    let base = target_dir().join("selftests");
    let mut suite = Suite::new(SUITE)?;
    let version = match suite.candidate(PACKAGE) {
        Ok(v) => v,
        Err(e) => match cached_trees(&base)?.pop() {
            Some(dir) => {
                eprintln!(
                    "xtask: warning: cannot ask Debian {SUITE} for {PACKAGE} ({e:#}); \
                     using {}",
                    dir.display()
                );
                return Ok(dir);
            }
            None => return Err(e),
        },
    };
    let dir = base.join(format!("linux-source-{version}"));
    if !dir.join(".complete").exists() {
        fetch(&mut suite, &version, &dir)?;
    } else {
        eprintln!("xtask: reusing {}", dir.display());
    }
    // Older versions are not needed any more.
    for old in cached_trees(&base)? {
        if old != dir {
            let _ = fs::remove_dir_all(old);
        }
    }
    Ok(dir)
}

/// The complete trees under `base`, oldest first (by name).
fn cached_trees(base: &Path) -> Result<Vec<PathBuf>> {
    let Ok(rd) = fs::read_dir(base) else {
        return Ok(Vec::new());
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("linux-source-"))
                && p.join(".complete").exists()
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Downloads the package and extracts the selftests' files from its tarball into `dir`.
fn fetch(suite: &mut Suite, version: &str, dir: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    let t = Instant::now();
    let deb = suite.download(PACKAGE, version)?;
    let downloaded = t.elapsed();

    let t = Instant::now();
    let staging = dir.with_extension("unpacked");
    let _ = fs::remove_dir_all(&staging);
    extract_into(&deb, &staging)?;
    let tarball = fs::read_dir(staging.join("usr/src"))
        .with_context(|| format!("{PACKAGE} {version} has no usr/src"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .with_context(|| format!("{PACKAGE} {version} has no usr/src/*.tar.xz"))?;
    let unpacked = t.elapsed();

    let t = Instant::now();
    fs::create_dir_all(dir)?;
    let extracted = sh(Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .args(["--strip-components=1", "--wildcards"])
        .args(MEMBERS.iter().map(|m| format!("*/{m}"))));
    let _ = fs::remove_dir_all(&staging);
    extracted.with_context(|| format!("cannot extract the selftests of {}", tarball.display()))?;
    let extracted = t.elapsed();
    let script = dir.join(MPTCP_DIR).join(SCRIPT);
    if !script.is_file() {
        bail!("{PACKAGE} {version} has no {MPTCP_DIR}/{SCRIPT}");
    }
    fs::write(dir.join(".complete"), version)?;
    eprintln!(
        "xtask: {PACKAGE} {version}: download {:.1} s, dpkg-deb -x {:.1} s, tar -xJ of the \
         selftests {:.1} s",
        downloaded.as_secs_f64(),
        unpacked.as_secs_f64(),
        extracted.as_secs_f64()
    );
    Ok(())
}

/// The real `ip`, from `PATH` (then the usual places).
fn real_ip_path() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join("ip"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .context("no `ip` found in PATH, /usr/sbin or /sbin: install iproute2")
}

/// Builds `mptcp-pm` and returns its path.
fn build_mptcp_pm(headers: Option<&Path>) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["build", "-p", "mptcp-examples", "--bin", "mptcp-pm"]);
    if let Some(h) = headers {
        cmd.env("MPTCP_SYS_KERNEL_HEADERS", h);
    }
    sh(&mut cmd)?;
    let pm = target_dir().join("debug/mptcp-pm");
    if !pm.is_file() {
        bail!("cargo built mptcp-pm, but {} is not there", pm.display());
    }
    Ok(pm)
}

/// A word quoted for the shell.
fn quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"))
}

/// The `ip` wrapper: `mptcp` goes to `pm` (when given), everything else to `real`.
fn wrapper_script(real: &Path, pm: Option<&Path>, log: &Path) -> String {
    let pm = pm.map(quote).unwrap_or_else(|| "''".into());
    format!(
        r#"#!/bin/bash
# Written by `cargo xtask selftest`: `ip [-n NS] [-j] mptcp ARGS` runs the path manager
# below as `PM [--json] ARGS` (in NS through `ip netns exec`); with no path manager
# named, and for everything else, the real ip runs.
real_ip={real}
pm={pm}
log={log}

args=("$@")
ns=
json=
other=()
while [ $# -gt 0 ]; do
	case "$1" in
	-*) ;;
	*) break ;;
	esac
	# ip accepts an option with one or two dashes, and any beginning of its name.
	opt="${{1#-}}"
	opt="${{opt#-}}"
	if [ -n "${{opt}}" ] && [[ netns == "${{opt}}"* ]]; then
		ns="$2"
		shift 2
		continue
	fi
	if [ -n "${{opt}}" ] && [[ json == "${{opt}}"* ]]; then
		json=--json
		shift
		continue
	fi
	other+=("$1")
	shift
done

if [ -n "${{pm}}" ] && [ "${{1:-}}" = mptcp ]; then
	shift
	if [ ${{#other[@]}} -gt 0 ]; then
		echo "ip wrapper: option ${{other[*]}} is not supported with mptcp" >&2
		printf 'rc=255 ip%s (unsupported option)\n' "$(printf ' %q' "${{args[@]}}")" >>"${{log}}"
		exit 255
	fi
	if [ -n "${{ns}}" ]; then
		cmd=("${{real_ip}}" netns exec "${{ns}}" "${{pm}}" ${{json}} "$@")
	else
		cmd=("${{pm}}" ${{json}} "$@")
	fi
else
	cmd=("${{real_ip}}" "${{args[@]}}")
fi
"${{cmd[@]}}"
rc=$?
printf 'rc=%d ip%s -> %s\n' "${{rc}}" "$(printf ' %q' "${{args[@]}}")" \
	"$(printf '%q ' "${{cmd[@]}}")" >>"${{log}}"
exit "${{rc}}"
"#,
        real = quote(real),
        log = quote(log),
    )
}

/// The script's results.
struct Report {
    /// The TAP plan (`1..N`).
    planned: Option<usize>,
    passed: usize,
    skipped: usize,
    /// Each failed test's TAP line and the script's lines for that test.
    failed: Vec<(String, Vec<String>)>,
}

impl Report {
    fn total(&self) -> usize {
        self.passed + self.skipped + self.failed.len()
    }

    fn parse(lines: &[String]) -> Report {
        let tap_start = lines
            .iter()
            .position(|l| l == "TAP version 13")
            .unwrap_or(lines.len());
        let blocks = test_blocks(&lines[..tap_start]);
        let mut r = Report {
            planned: None,
            passed: 0,
            skipped: 0,
            failed: Vec::new(),
        };
        for l in &lines[tap_start..] {
            if let Some(n) = l.strip_prefix("1..") {
                r.planned = n.trim().parse().ok();
            } else if let Some(rest) = l.strip_prefix("not ok ") {
                let block = number(rest)
                    .and_then(|n| blocks.get(n.wrapping_sub(1)))
                    .cloned()
                    .unwrap_or_default();
                r.failed.push((l.clone(), block));
            } else if let Some(rest) = l.strip_prefix("ok ") {
                if number(rest).is_none() {
                    continue;
                }
                if l.contains("# SKIP") {
                    r.skipped += 1;
                } else {
                    r.passed += 1;
                }
            }
        }
        r
    }
}

/// The leading number of a TAP line's rest (`5 - pm_netlink: ...`).
fn number(rest: &str) -> Option<usize> {
    rest.split_whitespace().next()?.parse().ok()
}

/// The script's console lines, one group per test: a test starts with its title line,
/// `NN title` with NN the next test number, and runs until the next one (the expected
/// and actual outputs of a failed test take several lines).
fn test_blocks(lines: &[String]) -> Vec<Vec<String>> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for l in lines {
        let next = blocks.len() + 1;
        let starts = l
            .split_once(' ')
            .and_then(|(n, _)| n.parse::<usize>().ok())
            .is_some_and(|n| n == next && l.starts_with(&format!("{next:02} ")));
        if starts {
            blocks.push(vec![l.trim_end().to_string()]);
        } else if let Some(b) = blocks.last_mut() {
            b.push(l.clone());
        }
    }
    for b in &mut blocks {
        while b.last().is_some_and(|l| l.trim().is_empty()) {
            b.pop();
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_and_failed_blocks() {
        let text = "\
01 defaults addr list                              [ OK ]
02 dump addrs                                      [FAIL] expected '10.0.1.1 id 1 
10.0.1.2 id 2 ' got '10.0.1.1 id 1 '
03 skipped one                                     [SKIP]

TAP version 13
1..3
ok 1 - pm_netlink: defaults addr list # time=1ms
not ok 2 - pm_netlink: dump addrs # different output # time=2ms
ok 3 - pm_netlink: skipped one # SKIP # time=0ms";
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let r = Report::parse(&lines);
        assert_eq!(r.planned, Some(3));
        assert_eq!((r.passed, r.skipped, r.failed.len()), (1, 1, 1));
        let block = &r.failed[0].1;
        assert_eq!(block.len(), 2);
        assert!(block[0].starts_with("02 dump addrs"));
        assert!(block[1].starts_with("10.0.1.2 id 2 ' got"));
        assert!(r.failed[0].0.starts_with("not ok 2 "));
    }
}
