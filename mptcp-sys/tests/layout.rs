//! Layout verification: every generated struct's size, alignment and field offsets
//! compared with what the C compiler says for the same headers (in the spirit of libc's
//! ctest), plus the known x86-64 sizes.
//!
//! Cross-compiled (`cargo xtask cross`), the C program is built by the target's compiler
//! (`MPTCP_SYS_TEST_CC`) and run by the target's emulator (`MPTCP_SYS_TEST_RUNNER`).
#![cfg(any(target_os = "linux", target_os = "android"))]

use std::path::{Path, PathBuf};
use std::process::Command;

mod uapi_table {
    #[allow(unused_imports)]
    use mptcp_sys::*;
    include!(concat!(env!("OUT_DIR"), "/layout_uapi.rs"));
}

mod oot_table {
    #[allow(unused_imports)]
    use mptcp_sys::legacy::*;
    include!(concat!(env!("OUT_DIR"), "/layout_oot.rs"));
}

/// `-I` flags for an include directory and the target's multiarch subdirectory (the one
/// with its `asm/` headers), as the build script gave them to bindgen.
fn include_flags(dir: &Path) -> Vec<String> {
    let mut flags = vec![format!("-I{}", dir.display())];
    let multiarch = env!("MPTCP_SYS_MULTIARCH");
    let mut sub: Vec<PathBuf> = if multiarch.is_empty() {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("asm").is_dir())
            .collect()
    } else {
        vec![dir.join(multiarch)]
    };
    sub.retain(|p| p.join("asm").is_dir());
    sub.sort();
    flags.extend(sub.iter().map(|p| format!("-I{}", p.display())));
    flags
}

/// The C compiler for the target, and the command that runs its programs (empty when
/// they run directly).
fn c_toolchain() -> (String, Vec<String>) {
    let cc = std::env::var("MPTCP_SYS_TEST_CC")
        .or_else(|_| std::env::var("CC"))
        .unwrap_or_else(|_| "cc".into());
    let runner = std::env::var("MPTCP_SYS_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    (cc, runner)
}

/// Compiles and runs a C program printing each expression; returns the values.
fn c_values(name: &str, includes: &[String], headers: &str, exprs: &[&str]) -> Vec<usize> {
    let dir = std::env::temp_dir().join(format!("mptcp-sys-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut src = String::from("#include <stddef.h>\n#include <stdio.h>\n");
    src += headers;
    src += "int main(void) {\n";
    for e in exprs {
        src += &format!("    printf(\"%zu\\n\", (size_t)({e}));\n");
    }
    src += "    return 0;\n}\n";
    let c = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c, src).expect("write C source");
    let (cc, runner) = c_toolchain();
    let out = Command::new(&cc)
        .args(includes)
        .arg("-std=gnu11")
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "C compiler failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = match runner.split_first() {
        Some((prog, args)) => Command::new(prog).args(args).arg(&exe).output(),
        None => Command::new(&exe).output(),
    }
    .unwrap_or_else(|e| panic!("cannot run the layout program {}: {e}", exe.display()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        run.status.success(),
        "the layout program failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| l.parse().expect("number"))
        .collect()
}

fn compare(what: &str, table: &[(&str, usize)], c: &[usize]) {
    assert_eq!(
        table.len(),
        c.len(),
        "{what}: C printed a different number of values"
    );
    let wrong: Vec<String> = table
        .iter()
        .zip(c)
        .filter(|((_, r), c)| r != *c)
        .map(|((e, r), c)| format!("{e}: Rust {r}, C {c}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: layout differs from C:\n{}",
        wrong.join("\n")
    );
    assert!(
        table.iter().any(|(e, _)| e.starts_with("offsetof")),
        "{what}: no field offsets were compared"
    );
}

#[test]
fn uapi_layout_matches_c() {
    let headers = env!("MPTCP_SYS_LAYOUT_HEADERS");
    if headers.is_empty() {
        eprintln!(
            "skipped: the crate uses the committed snapshot ({}) and MPTCP_SYS_KERNEL_HEADERS \
             does not name the headers it was generated from, so there is no C view to \
             compare with (cargo xtask test sets it)",
            mptcp_sys::BINDINGS_SOURCE
        );
        return;
    }
    let includes = if headers == "system" {
        Vec::new()
    } else {
        include_flags(Path::new(headers))
    };
    let table = uapi_table::LAYOUT;
    let exprs: Vec<&str> = table.iter().map(|(e, _)| *e).collect();
    let c = c_values(
        "uapi",
        &includes,
        // The same headers bindgen read.
        &format!("#include \"{}\"\n", env!("MPTCP_SYS_WRAPPER")),
        &exprs,
    );
    compare("linux/mptcp.h", table, &c);
    for s in [
        "mptcp_info",
        "mptcp_subflow_data",
        "mptcp_subflow_addrs",
        "mptcp_subflow_info",
        "mptcp_full_info",
    ] {
        assert!(
            exprs.contains(&format!("sizeof(struct {s})").as_str()),
            "{s} not checked"
        );
    }
}

#[test]
fn oot_layout_matches_c() {
    let table = oot_table::LAYOUT;
    let exprs: Vec<&str> = table.iter().map(|(e, _)| *e).collect();
    let c = c_values(
        "oot",
        &[],
        &format!("#include \"{}\"\n", env!("MPTCP_SYS_OOT_HEADER")),
        &exprs,
    );
    compare("mptcp_oot.h", table, &c);
    for s in [
        "mptcp_sub_status",
        "mptcp_sub_ids",
        "mptcp_sub_tuple",
        "mptcp_close_sub_id",
        "mptcp_sub_getsockopt",
        "mptcp_sub_setsockopt",
    ] {
        assert!(
            exprs.contains(&format!("sizeof(struct {s})").as_str()),
            "{s} not checked"
        );
    }
}

/// The bit-fields of `mptcp_sub_status` sit where the C compiler puts them.
#[test]
fn oot_sub_status_bits_match_c() {
    use mptcp_sys::legacy::mptcp_sub_status;
    type Setter = fn(&mut mptcp_sub_status);
    let setters: [(&str, Setter); 5] = [
        ("slave_sk", |s| s.set_slave_sk(1)),
        ("fully_established", |s| s.set_fully_established(1)),
        ("attached", |s| s.set_attached(1)),
        ("low_prio", |s| s.set_low_prio(1)),
        ("pre_established", |s| s.set_pre_established(1)),
    ];
    let exprs: Vec<String> = setters
        .iter()
        .map(|(f, _)| {
            format!(
                "({{ struct mptcp_sub_status s; unsigned short v; memset(&s, 0, sizeof s); \
                 s.{f} = 1; memcpy(&v, &s, 2); v; }})"
            )
        })
        .collect();
    let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
    let c = c_values(
        "bits",
        &[],
        &format!(
            "#include <string.h>\n#include \"{}\"\n",
            env!("MPTCP_SYS_OOT_HEADER")
        ),
        &refs,
    );
    for ((field, set), c) in setters.iter().zip(c) {
        let mut s = mptcp_sub_status::default();
        set(&mut s);
        // SAFETY: mptcp_sub_status is a 2-byte plain-old-data struct.
        let bytes: [u8; 2] = unsafe { std::mem::transmute(s) };
        assert_eq!(u16::from_ne_bytes(bytes) as usize, c, "bit of {field}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn known_x86_64_sizes() {
    use mptcp_sys::legacy::*;
    use mptcp_sys::*;
    use std::mem::size_of;
    assert_eq!(size_of::<mptcp_info>(), 96);
    assert_eq!(size_of::<mptcp_subflow_data>(), 16);
    assert_eq!(size_of::<mptcp_subflow_addrs>(), 256);
    assert_eq!(size_of::<mptcp_subflow_info>(), 264);
    assert_eq!(size_of::<mptcp_full_info>(), 136);
    assert_eq!(size_of::<mptcp_sub_status>(), 2);
    assert_eq!(size_of::<mptcp_sub_getsockopt>(), 32);
    assert_eq!(size_of::<mptcp_sub_setsockopt>(), 32);
    assert_eq!(std::mem::offset_of!(mptcp_full_info, mptcp_info), 40);
    assert_eq!(std::mem::offset_of!(mptcp_sub_ids, sub_status), 2);
    assert_eq!(std::mem::offset_of!(mptcp_sub_tuple, addrs), 1);
}

#[test]
fn constants() {
    use mptcp_sys::*;
    assert_eq!(IPPROTO_MPTCP, 262);
    assert_eq!(SOL_MPTCP, 284);
    assert_eq!(TCP_IS_MPTCP, 43);
    assert_eq!(MPTCP_FULL_INFO, 4);
    assert_eq!(MPTCP_PM_ADDR_FLAG_LAMINAR, 32);
    assert_eq!(MPTCP_PM_CMD_SUBFLOW_DESTROY, 11);
    assert_eq!(MPTCP_EVENT_LISTENER_CLOSED, 16);
    assert_eq!(MPTCP_PM_NAME, b"mptcp_pm\0");
    assert_eq!(legacy::MPTCP_GET_SUB_IDS, 66);
    assert_eq!(legacy::MPTCP_SUB_SETSOCKOPT, 72);
}

/// The out-of-tree structs as documented for x86-64 (the project's ABI notes), so that a
/// mistake in the project's own header fails here even though bindgen and the C compiler
/// would agree with each other about it.
#[cfg(target_arch = "x86_64")]
#[test]
fn oot_matches_documented_abi() {
    use mptcp_sys::legacy::*;
    use std::mem::{align_of, offset_of, size_of};
    assert_eq!(
        (
            size_of::<mptcp_sub_status>(),
            align_of::<mptcp_sub_status>()
        ),
        (2, 2)
    );
    assert_eq!(offset_of!(mptcp_sub_status, id), 0);
    assert_eq!(offset_of!(mptcp_sub_ids, sub_count), 0);
    assert_eq!(offset_of!(mptcp_sub_ids, sub_status), 2);
    assert_eq!(offset_of!(mptcp_sub_tuple, id), 0);
    assert_eq!(offset_of!(mptcp_sub_tuple, addrs), 1);
    assert_eq!(size_of::<mptcp_close_sub_id>(), 1);
    assert_eq!(offset_of!(mptcp_sub_getsockopt, id), 0);
    assert_eq!(offset_of!(mptcp_sub_getsockopt, level), 4);
    assert_eq!(offset_of!(mptcp_sub_getsockopt, optname), 8);
    assert_eq!(offset_of!(mptcp_sub_getsockopt, optval), 16);
    assert_eq!(offset_of!(mptcp_sub_getsockopt, optlen), 24);
    assert_eq!(offset_of!(mptcp_sub_setsockopt, id), 0);
    assert_eq!(offset_of!(mptcp_sub_setsockopt, level), 4);
    assert_eq!(offset_of!(mptcp_sub_setsockopt, optname), 8);
    assert_eq!(offset_of!(mptcp_sub_setsockopt, optval), 16);
    assert_eq!(offset_of!(mptcp_sub_setsockopt, optlen), 24);
    // The five flags occupy bits 8..=12 of the 16-bit unit that starts with `id`.
    let mut s = mptcp_sub_status::default();
    s.set_slave_sk(1);
    s.set_pre_established(1);
    // SAFETY: mptcp_sub_status is a 2-byte plain-old-data struct.
    let bytes: [u8; 2] = unsafe { std::mem::transmute(s) };
    assert_eq!(u16::from_le_bytes(bytes), (1 << 8) | (1 << 12));
}
