//! Compiles the BPF program (`src/bpf/mptcp_for_tcp.bpf.c`) with clang for the BPF
//! target into `OUT_DIR`, where `lib.rs` includes the object's bytes.

use libbpf_cargo::SkeletonBuilder;
use std::path::PathBuf;

const SOURCE: &str = "src/bpf/mptcp_for_tcp.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out.join("mptcp_for_tcp.bpf.o");
    if let Err(e) = SkeletonBuilder::new().source(SOURCE).obj(&obj).build() {
        panic!(
            "compiling {SOURCE} for the BPF target failed: {e:#}\n\
             It needs clang (Debian: apt-get install clang); `cargo xtask test` installs it."
        );
    }
}
