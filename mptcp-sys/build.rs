//! Chooses the bindings this crate exports: generated now from the kernel headers found
//! (feature `bindgen`), or the committed snapshot in `src/generated/`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

#[cfg(feature = "bindgen")]
#[path = "codegen.rs"]
mod codegen;
#[path = "layout.rs"]
mod layout;
#[path = "targets.rs"]
mod targets;

const HEADERS_ENV: &str = "MPTCP_SYS_KERNEL_HEADERS";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-env-changed={HEADERS_ENV}");
    for p in [
        "codegen.rs",
        "layout.rs",
        "targets.rs",
        "include",
        "src/generated",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    let cfg = |k: &str| env::var(format!("CARGO_CFG_TARGET_{k}")).unwrap_or_default();
    let os = cfg("OS");
    if os != "linux" && os != "android" {
        // The crate is empty there (see the crate documentation).
        return;
    }
    let headers = env::var_os(HEADERS_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(h) = &headers {
        if !h.join("linux/mptcp.h").is_file() {
            // A wrong path must not read as "old headers" further down.
            println!(
                "cargo:warning=mptcp-sys: {HEADERS_ENV}={} holds no linux/mptcp.h: it must \
                 name a kernel UAPI include directory (the one with linux/ and asm/); \
                 ignored",
                h.display()
            );
        }
    }
    let headers = headers.filter(|h| h.join("linux/mptcp.h").is_file());
    let target = env::var("TARGET").unwrap_or_default();
    let arch = targets::find(
        &cfg("ARCH"),
        cfg("POINTER_WIDTH").parse().unwrap_or(0),
        cfg("ENDIAN") == "big",
    );
    let snapshot = arch.map(|a| {
        let dir = manifest.join("src/generated").join(a.name);
        (read(&dir.join("uapi.rs")), read(&dir.join("oot.rs")))
    });
    let ctx = Context {
        manifest: &manifest,
        headers: headers.as_deref(),
        multiarch: arch.map(|a| a.multiarch),
        // Generate at build time only from headers meant for this target: the machine's
        // own when building for it, else the ones named by MPTCP_SYS_KERNEL_HEADERS.
        generate: headers.is_some()
            || (os == "linux" && env::var("HOST").ok().as_deref() == Some(target.as_str())),
    };
    let Some((uapi, oot, source)) = choose(&ctx, snapshot) else {
        // No snapshot and no bindings generated now: never guess a layout.
        eprintln!(
            "error: mptcp-sys has no bindings snapshot for the target {target} (architecture \
             `{}`, {}-bit, {}-endian). Generate them at build time: enable the `bindgen` \
             feature and set {HEADERS_ENV} to a kernel UAPI include directory with this \
             architecture's asm/ headers (and a C library for the target installed), or add \
             a snapshot for it to mptcp-sys/targets.rs and run `cargo xtask codegen`.",
            cfg("ARCH"),
            cfg("POINTER_WIDTH"),
            cfg("ENDIAN"),
        );
        std::process::exit(1);
    };

    write(&out.join("uapi.rs"), &uapi);
    write(&out.join("oot.rs"), &oot);
    write(&out.join("layout_uapi.rs"), &layout::table(&uapi));
    write(&out.join("layout_oot.rs"), &layout::table(&oot));

    // Tell the layout tests which headers the exported kernel bindings correspond to.
    let layout_headers = match (&source, &headers) {
        (Source::Headers, Some(dir)) => dir.display().to_string(),
        (Source::Headers, None) => "system".to_string(),
        // The snapshot matches the pinned headers; trust a directory named explicitly.
        (Source::Snapshot, Some(dir)) => dir.display().to_string(),
        (Source::Snapshot, None) => String::new(),
    };
    println!("cargo:rustc-env=MPTCP_SYS_LAYOUT_HEADERS={layout_headers}");
    println!(
        "cargo:rustc-env=MPTCP_SYS_MULTIARCH={}",
        arch.map(|a| a.multiarch).unwrap_or_default()
    );
    println!(
        "cargo:rustc-env=MPTCP_SYS_SNAPSHOT={}",
        arch.map(|a| a.name).unwrap_or_default()
    );
    println!(
        "cargo:rustc-env=MPTCP_SYS_BINDINGS_SOURCE={}",
        match source {
            Source::Headers => "headers",
            Source::Snapshot => "snapshot",
        }
    );
    println!(
        "cargo:rustc-env=MPTCP_SYS_WRAPPER={}",
        manifest.join("include/wrapper.h").display()
    );
    println!(
        "cargo:rustc-env=MPTCP_SYS_OOT_HEADER={}",
        manifest.join("include/mptcp_oot.h").display()
    );
}

/// What the choice of bindings depends on.
#[cfg_attr(not(feature = "bindgen"), allow(dead_code))]
struct Context<'a> {
    manifest: &'a Path,
    headers: Option<&'a Path>,
    multiarch: Option<&'static str>,
    generate: bool,
}

#[cfg_attr(not(feature = "bindgen"), allow(dead_code))]
enum Source {
    Headers,
    Snapshot,
}

#[cfg(not(feature = "bindgen"))]
fn choose(
    _ctx: &Context<'_>,
    snapshot: Option<(String, String)>,
) -> Option<(String, String, Source)> {
    snapshot.map(|(u, o)| (u, o, Source::Snapshot))
}

#[cfg(feature = "bindgen")]
fn choose(
    ctx: &Context<'_>,
    snapshot: Option<(String, String)>,
) -> Option<(String, String, Source)> {
    if !ctx.generate {
        // Cross-compiling with no headers named: the machine's are not the target's.
        return snapshot.map(|(u, o)| (u, o, Source::Snapshot));
    }
    let headers = ctx.headers;
    let wrapper = ctx.manifest.join("include/wrapper.h");
    let oot_header = ctx.manifest.join("include/mptcp_oot.h");
    let found = describe_headers(headers);
    let env = codegen::HeaderEnv {
        kernel: headers,
        multiarch: ctx.multiarch,
        ..Default::default()
    };
    let Some((snap_uapi, snap_oot)) = snapshot else {
        // A target with no snapshot: bindings generated now from the headers for it, or
        // nothing.
        let generated = catch(|| codegen::generate_uapi(&wrapper, &env))
            .and_then(|u| catch(|| codegen::generate_oot(&oot_header, &env)).map(|o| (u, o)));
        return match generated {
            Ok((u, o)) => {
                println!(
                    "cargo:warning=mptcp-sys: no committed snapshot for this target; using \
                     bindings generated now from {found}"
                );
                Some((u, o, Source::Headers))
            }
            Err(e) => {
                println!("cargo:warning=mptcp-sys: bindgen failed for this target: {e}");
                None
            }
        };
    };
    let hint = if in_workspace(ctx.manifest) {
        format!(
            "set {HEADERS_ENV} to the include directory of newer kernel UAPI headers \
             (`cargo xtask codegen` caches {} under target/kernel-headers/)",
            pinned_version(&snap_uapi)
        )
    } else {
        // A dependent: no xtask here. Its two choices.
        format!(
            "set {HEADERS_ENV} to the include directory of kernel UAPI headers from \
             linux-libc-dev {} or newer; or depend on mptcp-sys with \
             `default-features = false`, which uses the snapshot without generating \
             (no libclang, no warning)",
            pinned_version(&snap_uapi)
        )
    };
    let generated = catch(|| codegen::generate_uapi(&wrapper, &env))
        .and_then(|u| catch(|| codegen::generate_oot(&oot_header, &env)).map(|o| (u, o)));
    match generated {
        Err(e) => {
            println!(
                "cargo:warning=mptcp-sys: bindgen could not run ({e}); using the committed \
                 snapshot generated from linux-libc-dev {}. Install libclang (Debian: \
                 libclang-dev) to generate bindings at build time.",
                pinned_version(&snap_uapi)
            );
            Some((snap_uapi, snap_oot, Source::Snapshot))
        }
        Ok((uapi, oot)) => {
            let want = codegen::items(&snap_uapi);
            let got = codegen::items(&uapi);
            if want == got {
                return Some((uapi, oot, Source::Headers));
            }
            let missing: Vec<&String> = want.difference(&got).collect();
            let extra: Vec<&String> = got.difference(&want).collect();
            let what = if !missing.is_empty() {
                format!(
                    "are older than the snapshot ({} items missing, e.g. `{}`)",
                    missing.len(),
                    missing[0]
                )
            } else {
                format!(
                    "are newer than the snapshot ({} items it does not export, e.g. `{}`; \
                     {})",
                    extra.len(),
                    extra[0],
                    if in_workspace(ctx.manifest) {
                        "run `cargo xtask codegen` to update it"
                    } else {
                        "a later mptcp-sys release may export them"
                    }
                )
            };
            println!(
                "cargo:warning=mptcp-sys: the kernel headers found ({found}) {what}; using \
                 the committed snapshot generated from linux-libc-dev {}. To generate at \
                 build time, {hint}.",
                pinned_version(&snap_uapi)
            );
            Some((snap_uapi, snap_oot, Source::Snapshot))
        }
    }
}

/// Runs a generator, turning both its error and a panic (bindgen panics when it cannot
/// load libclang) into an error string.
#[cfg(feature = "bindgen")]
fn catch(
    f: impl FnOnce() -> Result<String, String> + std::panic::UnwindSafe,
) -> Result<String, String> {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(prev);
    match r {
        Ok(r) => r,
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "bindgen panicked".to_string())),
    }
}

/// "`/usr/include`, Linux 6.1.x" style description of the headers bindgen read.
#[cfg(feature = "bindgen")]
fn describe_headers(dir: Option<&Path>) -> String {
    let base = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let version = fs::read_to_string(base.join("linux/version.h"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let code = l.strip_prefix("#define LINUX_VERSION_CODE ")?;
                let code: u32 = code.trim().parse().ok()?;
                Some(format!("Linux {}.{}", code >> 16, (code >> 8) & 0xff))
            })
        })
        .unwrap_or_else(|| "unknown version".to_string());
    format!("{}, {version}", base.display())
}

/// True when building inside the mptcp-rs workspace (its `xtask` is beside the crate),
/// where maintainer commands exist; false for a dependent's build from crates.io or git.
#[cfg(feature = "bindgen")]
fn in_workspace(manifest: &Path) -> bool {
    manifest
        .parent()
        .is_some_and(|root| root.join("xtask/Cargo.toml").is_file())
}

/// The linux-libc-dev version recorded in the snapshot's first line.
#[cfg(feature = "bindgen")]
fn pinned_version(snapshot: &str) -> String {
    snapshot
        .lines()
        .find_map(|l| l.split("linux-libc-dev ").nth(1))
        .map(|v| {
            let v = v.split_whitespace().next().unwrap_or(v);
            v.trim_end_matches('.').to_string()
        })
        .unwrap_or_else(|| "(unknown)".to_string())
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("mptcp-sys: cannot read {}: {e}", p.display()))
}

fn write(p: &Path, text: &str) {
    fs::write(p, text).unwrap_or_else(|e| panic!("mptcp-sys: cannot write {}: {e}", p.display()));
}
