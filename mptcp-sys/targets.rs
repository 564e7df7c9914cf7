// Shared by `build.rs` (which snapshot a target uses) and `cargo xtask` (generating,
// cross-compiling and testing each one): the Linux architectures with a committed
// bindings snapshot. This file is compiled as a module of both; it must only use `core`.

/// One Linux architecture with a snapshot in `src/generated/<name>/`.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // each user reads a different subset of the fields
pub struct Arch {
    /// The snapshot's directory name.
    pub name: &'static str,
    /// `CARGO_CFG_TARGET_ARCH` of the targets that use it.
    pub target_arch: &'static str,
    /// `CARGO_CFG_TARGET_POINTER_WIDTH`.
    pub pointer_width: u32,
    /// `CARGO_CFG_TARGET_ENDIAN` is `big`.
    pub big_endian: bool,
    /// Debian's multiarch directory of this architecture's `asm/` headers.
    pub multiarch: &'static str,
    /// The clang target the snapshot is generated for.
    pub clang: &'static str,
    /// The Rust target the project tests it with.
    pub rust: &'static str,
    /// Debian's name of the architecture.
    pub deb_arch: &'static str,
    /// The GNU triplet of Debian's cross tools (`<gnu>-gcc`, `/usr/<gnu>/`).
    pub gnu: &'static str,
    /// qemu's name of the architecture (`qemu-<qemu>-static`).
    pub qemu: &'static str,
}

/// Every architecture with a snapshot. Android targets use the entry of their
/// architecture: the kernel's structs are the same.
pub const ARCHES: &[Arch] = &[
    Arch {
        name: "x86_64",
        target_arch: "x86_64",
        pointer_width: 64,
        big_endian: false,
        multiarch: "x86_64-linux-gnu",
        clang: "x86_64-unknown-linux-gnu",
        rust: "x86_64-unknown-linux-gnu",
        deb_arch: "amd64",
        gnu: "x86_64-linux-gnu",
        qemu: "x86_64",
    },
    Arch {
        name: "x86",
        target_arch: "x86",
        pointer_width: 32,
        big_endian: false,
        multiarch: "i386-linux-gnu",
        clang: "i686-unknown-linux-gnu",
        rust: "i686-unknown-linux-gnu",
        deb_arch: "i386",
        gnu: "i686-linux-gnu",
        qemu: "i386",
    },
    Arch {
        name: "aarch64",
        target_arch: "aarch64",
        pointer_width: 64,
        big_endian: false,
        multiarch: "aarch64-linux-gnu",
        clang: "aarch64-unknown-linux-gnu",
        rust: "aarch64-unknown-linux-gnu",
        deb_arch: "arm64",
        gnu: "aarch64-linux-gnu",
        qemu: "aarch64",
    },
    Arch {
        name: "arm",
        target_arch: "arm",
        pointer_width: 32,
        big_endian: false,
        multiarch: "arm-linux-gnueabihf",
        clang: "armv7-unknown-linux-gnueabihf",
        rust: "armv7-unknown-linux-gnueabihf",
        deb_arch: "armhf",
        gnu: "arm-linux-gnueabihf",
        qemu: "arm",
    },
    Arch {
        name: "riscv64",
        target_arch: "riscv64",
        pointer_width: 64,
        big_endian: false,
        multiarch: "riscv64-linux-gnu",
        clang: "riscv64-unknown-linux-gnu",
        rust: "riscv64gc-unknown-linux-gnu",
        deb_arch: "riscv64",
        gnu: "riscv64-linux-gnu",
        qemu: "riscv64",
    },
    Arch {
        name: "powerpc64le",
        target_arch: "powerpc64",
        pointer_width: 64,
        big_endian: false,
        multiarch: "powerpc64le-linux-gnu",
        clang: "powerpc64le-unknown-linux-gnu",
        rust: "powerpc64le-unknown-linux-gnu",
        deb_arch: "ppc64el",
        gnu: "powerpc64le-linux-gnu",
        qemu: "ppc64le",
    },
    Arch {
        name: "s390x",
        target_arch: "s390x",
        pointer_width: 64,
        big_endian: true,
        multiarch: "s390x-linux-gnu",
        clang: "s390x-unknown-linux-gnu",
        rust: "s390x-unknown-linux-gnu",
        deb_arch: "s390x",
        gnu: "s390x-linux-gnu",
        qemu: "s390x",
    },
];

/// The snapshot for a target, by its `CARGO_CFG_TARGET_*` values.
#[allow(dead_code)]
pub fn find(target_arch: &str, pointer_width: u32, big_endian: bool) -> Option<&'static Arch> {
    ARCHES.iter().find(|a| {
        a.target_arch == target_arch
            && a.pointer_width == pointer_width
            && a.big_endian == big_endian
    })
}
