//! Packages from other Debian suites, fetched through the machine's own apt configuration:
//! the mirror URI already named in its sources is reused with another suite name, and apt
//! keeps its lists and downloads in a private cache under `target/`.

use crate::sys::{output, run, target_dir};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private apt configuration for one suite and one architecture.
pub struct Suite {
    suite: String,
    /// The Debian architecture (`amd64`, `arm64`, ...); `None` is the host's.
    arch: Option<String>,
    dir: PathBuf,
    updated: bool,
}

impl Suite {
    /// The suite for the host's architecture.
    pub fn new(suite: &str) -> Result<Self> {
        Self::for_arch(suite, None)
    }

    /// The suite for a Debian architecture (`arm64`, `armhf`, `i386`, ...): its package
    /// lists, versions, dependencies and downloads are that architecture's.
    pub fn for_arch(suite: &str, arch: Option<&str>) -> Result<Self> {
        let name = match arch {
            Some(a) => format!("{suite}-{a}"),
            None => suite.to_string(),
        };
        let dir = target_dir().join("apt").join(name);
        for sub in ["lists/partial", "cache/archives/partial", "parts", "debs"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let (uri, signed_by) = debian_mirror()?;
        let mut opts: Vec<String> = signed_by
            .into_iter()
            .map(|k| format!("signed-by={k}"))
            .collect();
        if let Some(a) = arch {
            opts.push(format!("arch={a}"));
        }
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!("[{}] ", opts.join(" "))
        };
        fs::write(
            dir.join("sources.list"),
            format!("deb {opts}{uri} {suite} main\n"),
        )?;
        Ok(Suite {
            suite: suite.to_string(),
            arch: arch.map(str::to_string),
            dir,
            updated: false,
        })
    }

    /// "trixie" or "trixie (arm64)", for messages.
    pub fn describe(&self) -> String {
        match &self.arch {
            Some(a) => format!("{} ({a})", self.suite),
            None => self.suite.clone(),
        }
    }

    fn apt(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        let d = &self.dir;
        c.arg("-q")
            .arg(format!(
                "-oDir::Etc::SourceList={}",
                d.join("sources.list").display()
            ))
            .arg(format!(
                "-oDir::Etc::SourceParts={}",
                d.join("parts").display()
            ))
            .arg(format!("-oDir::State::Lists={}", d.join("lists").display()))
            .arg(format!("-oDir::Cache={}", d.join("cache").display()))
            .arg("-oAPT::Sandbox::User=root")
            .env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(a) = &self.arch {
            c.arg(format!("-oAPT::Architecture={a}"))
                .arg(format!("-oAPT::Architectures={a}"));
        }
        c
    }

    /// Refreshes the suite's package list (once per run).
    pub fn update(&mut self) -> Result<()> {
        if !self.updated {
            run(self.apt("apt-get").arg("update"))
                .with_context(|| format!("cannot read the package list of {}", self.describe()))?;
            self.updated = true;
        }
        Ok(())
    }

    /// Versions of a package the suite offers, newest first.
    pub fn versions(&mut self, pkg: &str) -> Result<Vec<String>> {
        self.update()?;
        let text = output(self.apt("apt-cache").args(["madison", pkg]))?;
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.split('|').nth(1))
            .map(|s| s.trim().to_string())
            .collect();
        v.dedup();
        Ok(v)
    }

    /// The names a package version depends or pre-depends on (alternatives and virtual
    /// packages left out).
    pub fn depends(&mut self, pkg: &str) -> Result<Vec<String>> {
        self.update()?;
        let text = output(self.apt("apt-cache").args(["depends", pkg]))?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                // Essential packages (util-linux) name their libraries as pre-dependencies.
                l.strip_prefix("Depends: ")
                    .or_else(|| l.strip_prefix("PreDepends: "))
            })
            .filter(|d| !d.starts_with('<'))
            .map(str::to_string)
            .collect())
    }

    /// A field (`Section`, `Filename`, ...) of the candidate version's record.
    pub fn field(&mut self, pkg: &str, name: &str) -> Result<Option<String>> {
        self.update()?;
        let text = output(
            self.apt("apt-cache")
                .args(["show", "--no-all-versions", pkg]),
        )?;
        Ok(text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        }))
    }

    /// The candidate version of a package.
    pub fn candidate(&mut self, pkg: &str) -> Result<String> {
        self.versions(pkg)?.into_iter().next().ok_or_else(|| {
            anyhow::anyhow!(
                "Debian {} offers no package {pkg}: check the name and the \
                     architecture (apt-cache madison {pkg})",
                self.describe()
            )
        })
    }

    /// Downloads one version of a package (cached) and returns the .deb path.
    pub fn download(&mut self, pkg: &str, version: &str) -> Result<PathBuf> {
        let debs = self.dir.join("debs");
        if let Some(p) = find_deb(&debs, pkg, version)? {
            return Ok(p);
        }
        self.update()?;
        run(self
            .apt("apt-get")
            .args(["download", &format!("{pkg}={version}")])
            .current_dir(&debs))?;
        match find_deb(&debs, pkg, version)? {
            Some(p) => Ok(p),
            None => bail!(
                "apt-get download {pkg}={version} left no .deb in {}",
                debs.display()
            ),
        }
    }
}

/// Unpacks a .deb into `dest`, keeping what is there.
pub fn extract_into(deb: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest))
}

fn find_deb(dir: &Path, pkg: &str, version: &str) -> Result<Option<PathBuf>> {
    // apt escapes ':' in versions as %3a in file names.
    let want = format!("{pkg}_{}_", version.replace(':', "%3a"));
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&want) && n.ends_with(".deb"))
        {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Unpacks a .deb into `dest` (replacing what was there).
pub fn extract(deb: &Path, dest: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest)?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest))
}

/// The URI of the machine's main Debian archive (not the security one) and its keyring,
/// read from the apt sources (one-line and deb822 formats).
pub fn debian_mirror() -> Result<(String, Option<String>)> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        if f.extension().is_some_and(|e| e == "sources") {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        l.strip_prefix(name)
                            .and_then(|r| r.strip_prefix(':'))
                            .map(|v| v.trim().to_string())
                    })
                };
                let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
                    continue;
                };
                if is_main_archive(&uris, &suites) {
                    let uri = uris
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    return Ok((uri, field("Signed-By")));
                }
            }
        } else {
            for l in text.lines().map(str::trim) {
                let Some(rest) = l.strip_prefix("deb ") else {
                    continue;
                };
                let mut words = rest.split_whitespace().filter(|w| !w.starts_with('['));
                if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
                    if is_main_archive(uri, suite) {
                        return Ok((uri.to_string(), None));
                    }
                }
            }
        }
    }
    bail!("no Debian archive found in /etc/apt/sources.list{{,.d/*}}: cannot fetch packages of other suites")
}

fn is_main_archive(uri: &str, suites: &str) -> bool {
    uri.trim_end_matches('/').ends_with("/debian")
        && suites
            .split_whitespace()
            .any(|s| !s.contains("security") && !s.contains("updates") && !s.contains("backports"))
}

/// apt-get options for a private state that reads the machine's own sources plus one more
/// suite of its Debian mirror (the machine's configuration and package lists stay as they
/// are). Used to install packages with `-t SUITE`.
pub fn with_extra_suite(suite: &str) -> Result<Vec<String>> {
    let dir = target_dir().join("apt").join(format!("host+{suite}"));
    let parts = dir.join("parts");
    let _ = fs::remove_dir_all(&parts);
    for sub in ["lists/partial", "cache/archives/partial", "parts"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let (uri, signed_by) = debian_mirror()?;
    let opts = signed_by
        .map(|k| format!("[signed-by={k}] "))
        .unwrap_or_default();
    let mut list = fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    list += &format!("\ndeb {opts}{uri} {suite} main\n");
    fs::write(dir.join("sources.list"), list)?;
    // The machine's own source files, as they are (apt reads only enabled ones).
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "list" || x == "sources") {
                std::os::unix::fs::symlink(&p, parts.join(e.file_name()))?;
            }
        }
    }
    Ok(vec![
        format!(
            "-oDir::Etc::SourceList={}",
            dir.join("sources.list").display()
        ),
        format!("-oDir::Etc::SourceParts={}", parts.display()),
        format!("-oDir::State::Lists={}", dir.join("lists").display()),
        format!("-oDir::Cache={}", dir.join("cache").display()),
    ])
}
