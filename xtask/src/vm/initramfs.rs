//! The guest's initramfs (cpio newc): the userland, the modules the tests need, the
//! test binaries and examples, and the `/init` that runs them.

use super::build::{EXAMPLE, TOOL};
use super::kernels::Kernel;
use super::userland;
use crate::sys::{run as sh, target_dir};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Modules the tests need, when the kernel builds them as modules.
pub(super) const MODULES: &[&str] = &["veth", "sch_tbf", "inet_diag", "tcp_diag", "mptcp_diag"];

pub(super) const SENTINEL: &str = "VMTEST DONE";

/// Files of the initramfs: (path in the guest, contents, mode).
pub(super) struct Initramfs {
    pub(super) files: BTreeMap<String, (Vec<u8>, u32)>,
    pub(super) dirs: BTreeSet<String>,
}

impl Initramfs {
    pub(super) fn new() -> Self {
        Initramfs {
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
        }
    }

    pub(super) fn add(&mut self, path: &str, data: Vec<u8>, mode: u32) {
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

    pub(super) fn add_host_file(&mut self, guest: &str, host: &Path) -> Result<()> {
        let data = fs::read(host).with_context(|| format!("read {}", host.display()))?;
        self.add(guest, data, 0o100755);
        Ok(())
    }

    pub(super) fn write(&self, path: &Path) -> Result<()> {
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
pub(super) fn modules_for(k: &Kernel) -> Result<Vec<(String, Vec<u8>)>> {
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
    pub(super) fn visit(
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

pub(super) fn output_bytes(cmd: &mut Command) -> Result<Vec<u8>> {
    let o = cmd.output()?;
    if !o.status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(o.stdout)
}

pub(super) fn init_script(modules: &[String], tests: &[String], timeout_each: u64) -> String {
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

pub(super) fn build_initramfs(k: &Kernel, tests: &[(String, PathBuf)]) -> Result<PathBuf> {
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
