//! The test binaries, built statically for a kernel's architecture and found through
//! cargo's JSON messages; the example programs and mptcp-pmd with them.

use super::machine::Arch;
use crate::sys::root;
use anyhow::{bail, Context, Result};
use cargo_metadata::Message;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The prefix of a build product that is a program the tests run (installed in the
/// guest's /usr/bin), not a test binary.
pub(super) const TOOL: &str = "bin:";

/// The prefix of an example program's name in the list `build_tests` returns: the guest
/// gets it as `/examples/NAME`, where `mptcp/tests/examples.rs` looks for it.
pub(super) const EXAMPLE: &str = "example:";

/// The workspace's programs the guest gets in /usr/bin.
const GUEST_TOOLS: &[&str] = &["mptcp-pmd", "mptcp-run"];

/// Builds the test binaries statically for `arch` (installing its Rust standard library
/// and cross linker when missing); returns (name, path) from cargo's JSON messages.
pub(super) fn build_tests(arch: Arch) -> Result<Vec<(String, PathBuf)>> {
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
    // daemon itself, which the guest gets as /usr/bin/mptcp-pmd. For the host's
    // architecture, mptcp-bpf's tests too, with mptcp-run built with `--bpf`
    // (/usr/bin/mptcp-run): libbpf links libelf and zlib statically from the host's
    // own .a files, and another architecture would need its own, which the host does
    // not have.
    let builds: Vec<&[&str]> = if arch.is_host() {
        vec![
            &["-p", "mptcp", "--all-features"],
            &[
                "-p",
                "mptcp-examples",
                "--features",
                "bpf",
                "--test",
                "mptcp_pmd",
            ],
            &["-p", "mptcp-bpf", "--test", "redirect"],
        ]
    } else {
        vec![
            &["-p", "mptcp", "--all-features"],
            &["-p", "mptcp-examples", "--test", "mptcp_pmd"],
        ]
    };
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
            } else if is_bin && GUEST_TOOLS.contains(&a.target.name.as_str()) {
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
