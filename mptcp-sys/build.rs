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

const HEADERS_ENV: &str = "MPTCP_SYS_KERNEL_HEADERS";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-env-changed={HEADERS_ENV}");
    for p in ["codegen.rs", "layout.rs", "include", "src/generated"] {
        println!("cargo:rerun-if-changed={p}");
    }
    let headers = env::var_os(HEADERS_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);

    let snap_uapi = read(&manifest.join("src/generated/uapi.rs"));
    let snap_oot = read(&manifest.join("src/generated/oot.rs"));
    let (uapi, oot, source) = choose(&manifest, headers.as_deref(), snap_uapi, snap_oot);

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

#[cfg_attr(not(feature = "bindgen"), allow(dead_code))]
enum Source {
    Headers,
    Snapshot,
}

#[cfg(not(feature = "bindgen"))]
fn choose(
    _manifest: &Path,
    _headers: Option<&Path>,
    snap_uapi: String,
    snap_oot: String,
) -> (String, String, Source) {
    (snap_uapi, snap_oot, Source::Snapshot)
}

#[cfg(feature = "bindgen")]
fn choose(
    manifest: &Path,
    headers: Option<&Path>,
    snap_uapi: String,
    snap_oot: String,
) -> (String, String, Source) {
    let wrapper = manifest.join("include/wrapper.h");
    let oot_header = manifest.join("include/mptcp_oot.h");
    let found = describe_headers(headers);
    let hint = format!(
        "set {HEADERS_ENV} to the include directory of newer kernel UAPI headers \
         (`cargo xtask codegen` caches {} under target/kernel-headers/)",
        pinned_version(&snap_uapi)
    );
    let generated = catch(|| codegen::generate_uapi(&wrapper, headers))
        .and_then(|u| catch(|| codegen::generate_oot(&oot_header)).map(|o| (u, o)));
    match generated {
        Err(e) => {
            println!(
                "cargo:warning=mptcp-sys: bindgen could not run ({e}); using the committed \
                 snapshot generated from linux-libc-dev {}. Install libclang (Debian: \
                 libclang-dev) to generate bindings at build time.",
                pinned_version(&snap_uapi)
            );
            (snap_uapi, snap_oot, Source::Snapshot)
        }
        Ok((uapi, oot)) => {
            let want = codegen::items(&snap_uapi);
            let got = codegen::items(&uapi);
            if want == got {
                return (uapi, oot, Source::Headers);
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
                     run `cargo xtask codegen` to update it)",
                    extra.len(),
                    extra[0]
                )
            };
            println!(
                "cargo:warning=mptcp-sys: the kernel headers found ({found}) {what}; using \
                 the committed snapshot generated from linux-libc-dev {}. To generate at \
                 build time, {hint}.",
                pinned_version(&snap_uapi)
            );
            (snap_uapi, snap_oot, Source::Snapshot)
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
