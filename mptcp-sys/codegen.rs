// Shared by `build.rs` (bindings at build time) and `cargo xtask codegen` (the committed
// snapshot), so that both produce byte-identical output from the same headers.
//
// This file is compiled twice, as a module of the build script and of xtask; it must only
// use `std` and `bindgen`.

use std::collections::BTreeSet;
use std::path::Path;

/// The glibc socket types that the kernel structs embed. They are not generated: the
/// bindings refer to the `libc` crate's definitions (checked by the layout tests).
const LIBC_TYPES: &[&str] = &[
    "sockaddr",
    "sockaddr_in",
    "sockaddr_in6",
    "in_addr",
    "in6_addr",
    "sa_family_t",
    "in_port_t",
    "in_addr_t",
];

/// Tells bindgen what it cannot see through the blocklist: the `libc` socket types are
/// `Copy`; and hides glibc's `IPPROTO_*` enumerators (the `IPPROTO_MPTCP` macro stays).
#[derive(Debug)]
struct Callbacks;

impl bindgen::callbacks::ParseCallbacks for Callbacks {
    fn blocklisted_type_implements_trait(
        &self,
        name: &str,
        derive_trait: bindgen::callbacks::DeriveTrait,
    ) -> Option<bindgen::callbacks::ImplementsTrait> {
        use bindgen::callbacks::{DeriveTrait, ImplementsTrait};
        let name = name.strip_prefix("struct ").unwrap_or(name);
        if !LIBC_TYPES.contains(&name) {
            return None;
        }
        Some(match derive_trait {
            DeriveTrait::Copy => ImplementsTrait::Yes,
            DeriveTrait::Default => ImplementsTrait::Manually,
            _ => ImplementsTrait::No,
        })
    }

    fn enum_variant_behavior(
        &self,
        _enum_name: Option<&str>,
        variant: &str,
        _value: bindgen::callbacks::EnumVariantValue,
    ) -> Option<bindgen::callbacks::EnumVariantCustomBehavior> {
        variant
            .starts_with("IPPROTO_")
            .then_some(bindgen::callbacks::EnumVariantCustomBehavior::Hide)
    }
}

/// Where bindgen finds the headers, and for which target.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderEnv<'a> {
    /// The clang target (`--target=`). `None`: bindgen's choice, which is cargo's
    /// `TARGET` in a build script.
    pub clang_target: Option<&'a str>,
    /// The kernel UAPI include directory, searched before any other.
    pub kernel: Option<&'a Path>,
    /// The subdirectory of `kernel` with the target's `asm/` headers (Debian's multiarch
    /// name). `None`: every subdirectory that has an `asm/`.
    pub multiarch: Option<&'a str>,
    /// glibc's include directory for the target. When set, the system include
    /// directories are not searched at all (a cross build must not see the host's).
    pub libc: Option<&'a Path>,
}

fn base_builder(header: &str, env: &HeaderEnv<'_>) -> bindgen::Builder {
    let mut b = bindgen::Builder::default()
        .header(header)
        .use_core()
        .ctypes_prefix("::core::ffi")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .wrap_unsafe_ops(true)
        .generate_comments(false)
        .clang_macro_fallback()
        .formatter(bindgen::Formatter::Prettyplease)
        .parse_callbacks(Box::new(Callbacks));
    for t in LIBC_TYPES {
        b = b.blocklist_type(t);
    }
    // glibc's anonymous union inside `in6_addr`, unused once `in6_addr` comes from libc.
    b = b.blocklist_type("in6_addr__bindgen_ty_.*");
    if let Some(t) = env.clang_target {
        b = b.clang_arg(format!("--target={t}"));
    }
    if env.libc.is_some() {
        // Only the compiler's own headers (stddef.h, ...) and the directories below.
        b = b.detect_include_paths(false).clang_arg("-nostdlibinc");
    }
    if let Some(dir) = env.kernel {
        // Searched before the system directories, which may still provide glibc's headers.
        b = b.clang_arg(format!("-I{}", dir.display()));
        for p in multiarch_dirs(dir, env.multiarch) {
            b = b.clang_arg(format!("-I{}", p.display()));
        }
    }
    if let Some(libc) = env.libc {
        b = b.clang_arg(format!("-isystem{}", libc.display()));
    }
    b
}

/// The subdirectories of a kernel include directory with `asm/` headers: the one named
/// (Debian puts each architecture's in its multiarch directory; recent linux-libc-dev
/// packages hold every architecture's), or all of them when none is named.
pub fn multiarch_dirs(dir: &Path, multiarch: Option<&str>) -> Vec<std::path::PathBuf> {
    if let Some(m) = multiarch {
        let p = dir.join(m);
        return if p.join("asm").is_dir() {
            vec![p]
        } else {
            Vec::new()
        };
    }
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("asm").is_dir())
        .collect();
    all.sort();
    all
}

/// Bindings for the upstream kernel UAPI (`linux/mptcp.h`, `linux/mptcp_pm.h`).
pub fn generate_uapi(wrapper: &Path, env: &HeaderEnv<'_>) -> Result<String, String> {
    let b = base_builder(&wrapper.display().to_string(), env)
        .allowlist_type("mptcp_.*")
        .allowlist_var("MPTCP_.*")
        .allowlist_var("IPPROTO_MPTCP")
        .allowlist_var("SOL_MPTCP")
        .allowlist_var("TCP_IS_MPTCP")
        // Per-subflow statistics returned by MPTCP_TCPINFO and MPTCP_FULL_INFO.
        .allowlist_type("tcp_info")
        // Socket diagnostics (NETLINK_SOCK_DIAG): the requests and replies that list
        // MPTCP connections and their subflows (`mptcp::diag`).
        .allowlist_type("inet_diag_(sockid|req_v2|msg|bc_op|hostcond)")
        .allowlist_var("INET_DIAG_.*|INET_ULP_INFO_.*|SOCK_DIAG_BY_FAMILY")
        // An alias of `MPTCP_PM_ADDR_FLAGS_MASK`-style macros needs GENMASK, which UAPI
        // does not define: leave it out everywhere so every machine exports the same set.
        .blocklist_var("MPTCP_PM_ADDR_FLAGS_MASK");
    let out = b.generate().map_err(|e| e.to_string())?;
    Ok(finish(out.to_string()))
}

/// Bindings for the project's own header describing the out-of-tree socket API.
pub fn generate_oot(header: &Path, env: &HeaderEnv<'_>) -> Result<String, String> {
    let b = base_builder(&header.display().to_string(), env)
        .allowlist_type("mptcp_sub.*|mptcp_close_sub_id")
        .allowlist_var("MPTCP_(GET_SUB_IDS|CLOSE_SUB_ID|GET_SUB_TUPLE|OPEN_SUB_TUPLE|GET_SUB_INFO|SUB_GETSOCKOPT|SUB_SETSOCKOPT)");
    let out = b.generate().map_err(|e| e.to_string())?;
    Ok(finish(out.to_string()))
}

/// Replaces bindgen's numbered names for anonymous enums (`_bindgen_ty_N`, whose numbers
/// depend on everything else the headers declare) by their integer type.
fn finish(text: String) -> String {
    let mut aliases: Vec<(String, String)> = Vec::new();
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("pub type _bindgen_ty_") {
            if let Some((num, ty)) = rest.split_once(" = ") {
                aliases.push((
                    format!("_bindgen_ty_{num}"),
                    ty.trim_end_matches(';').to_string(),
                ));
                continue;
            }
        }
        kept.push_str(line);
        kept.push('\n');
    }
    // Longest names first so `_bindgen_ty_12` is not touched by `_bindgen_ty_1`.
    aliases.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(b.0.cmp(&a.0)));
    for (name, ty) in aliases {
        kept = kept.replace(&format!(": {name} "), &format!(": {ty} "));
    }
    kept
}

/// The exported items of a bindings text, as `kind name` entries (struct and union
/// fields included, as `field type.name`), ignoring comments.
/// (Used by the build script; xtask compiles this file too.)
#[allow(dead_code)]
pub fn items(text: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(agg) = &current {
            if line.starts_with('}') {
                current = None;
            } else if let Some((name, _)) = line
                .trim()
                .strip_prefix("pub ")
                .and_then(|r| r.split_once(':'))
            {
                set.insert(format!("field {agg}.{name}"));
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("pub ") else {
            continue;
        };
        for kind in ["const ", "struct ", "union ", "type ", "fn "] {
            if let Some(rest) = rest.strip_prefix(kind) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if line.ends_with(" {") && kind != "fn " {
                    current = Some(name.clone());
                }
                set.insert(format!("{kind}{name}"));
            }
        }
    }
    set
}
