//! The daemon's configuration: a TOML file, every key optional. With no file: kernel
//! mode, every non-loopback, non-link-local address of an interface that is up as a
//! `subflow` endpoint. Every key is documented, with its default, in the example file
//! `mptcp-examples/dist/mptcp-pmd.toml` (installed by the Debian package as
//! `/etc/mptcp-pmd.toml`).

use super::rules::{InterfaceRule, Rules, SubflowMode};
use mptcp::pm::{EndpointFlags, Limits};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which path manager the daemon drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The in-kernel path manager: the daemon maintains its endpoints.
    Kernel,
    /// The userspace path manager: the daemon opens and closes subflows itself.
    Userspace,
}

/// Everything the daemon reads from its configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kernel or userspace mode.
    pub mode: Mode,
    /// Use loopback addresses too.
    pub include_loopback: bool,
    /// Use link-local addresses too.
    pub include_link_local: bool,
    /// Only use addresses of interfaces with a route (as mptcpd's `check_route`).
    pub require_route: bool,
    /// Remove the endpoints it added when it stops (kernel mode).
    pub cleanup: bool,
    /// Compare with the kernel this often even without notifications.
    pub resync_interval: Duration,
    /// Where the state snapshot goes (`mptcp-pmd status` reads it).
    pub state_file: Option<PathBuf>,
    /// The receive buffer of the interface-notification socket (bytes; default: the
    /// system's).
    pub event_buffer: Option<usize>,
    /// The policy the file describes.
    pub rules: Rules,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Kernel,
            include_loopback: false,
            include_link_local: false,
            require_route: false,
            cleanup: true,
            resync_interval: Duration::from_secs(30),
            state_file: Some(PathBuf::from("/run/mptcp-pmd.json")),
            event_buffer: None,
            rules: Rules::default(),
        }
    }
}

/// A configuration file that cannot be used: where, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based), when known.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    mode: Option<Mode>,
    include_loopback: Option<bool>,
    include_link_local: Option<bool>,
    require_route: Option<bool>,
    cleanup: Option<bool>,
    resync_interval: Option<f64>,
    state_file: Option<String>,
    event_buffer: Option<usize>,
    default_flags: Option<Vec<Flag>>,
    limits: Option<RawLimits>,
    #[serde(default)]
    interface: Vec<RawRule>,
    userspace: Option<RawUserspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    subflows: Option<u32>,
    add_addr_accepted: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    pattern: String,
    flags: Option<Vec<Flag>>,
    #[serde(default)]
    skip: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUserspace {
    subflows: Option<SubflowMode>,
    max_subflows: Option<usize>,
    announce: Option<bool>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Flag {
    Subflow,
    Signal,
    Backup,
    Fullmesh,
    Laminar,
}

fn flags(v: &[Flag]) -> EndpointFlags {
    v.iter().fold(EndpointFlags::empty(), |acc, f| {
        acc | match f {
            Flag::Subflow => EndpointFlags::SUBFLOW,
            Flag::Signal => EndpointFlags::SIGNAL,
            Flag::Backup => EndpointFlags::BACKUP,
            Flag::Fullmesh => EndpointFlags::FULLMESH,
            Flag::Laminar => EndpointFlags::LAMINAR,
        }
    })
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: e.to_string(),
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let err = |line: Option<usize>, message: String| ConfigError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // The key on that line, named in the message as the issue asks.
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string());
            let msg = e.message().to_string();
            let msg = match key {
                Some(k) if !msg.contains(&k) => format!("key `{k}`: {msg}"),
                _ => msg,
            };
            err(line, msg)
        })?;
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1);
        let mut c = Config::default();
        c.mode = raw.mode.unwrap_or(c.mode);
        c.include_loopback = raw.include_loopback.unwrap_or(false);
        c.include_link_local = raw.include_link_local.unwrap_or(false);
        c.require_route = raw.require_route.unwrap_or(false);
        c.cleanup = raw.cleanup.unwrap_or(true);
        if let Some(s) = raw.resync_interval {
            if !(s.is_finite() && s > 0.0) {
                return Err(err(
                    line_of("resync_interval"),
                    format!("key `resync_interval`: {s} is not a positive number of seconds"),
                ));
            }
            c.resync_interval = Duration::from_secs_f64(s);
        }
        if let Some(f) = raw.state_file {
            c.state_file = if f.is_empty() {
                None
            } else {
                Some(PathBuf::from(f))
            };
        }
        c.event_buffer = raw.event_buffer;
        let mut rules = Rules::default();
        if let Some(f) = raw.default_flags {
            rules.default_flags = Some(flags(&f)).filter(|f| !f.is_empty());
        }
        if let Some(l) = raw.limits {
            for (v, k) in [
                (l.subflows, "subflows"),
                (l.add_addr_accepted, "add_addr_accepted"),
            ] {
                if v.is_some_and(|v| v > 8) {
                    return Err(err(
                        line_of(k),
                        format!("key `limits.{k}`: at most 8 (the kernel's maximum)"),
                    ));
                }
            }
            rules.limits = Some(Limits {
                subflows: l.subflows,
                add_addr_accepted: l.add_addr_accepted,
            });
        }
        for r in raw.interface {
            let glob = glob::Pattern::new(&r.pattern).map_err(|e| {
                err(
                    line_of(&r.pattern),
                    format!("key `interface.match`: {:?} is not a glob: {e}", r.pattern),
                )
            })?;
            rules.interfaces.push(InterfaceRule {
                pattern: r.pattern,
                glob,
                flags: r.flags.map(|f| flags(&f)),
                skip: r.skip,
            });
        }
        if let Some(u) = raw.userspace {
            rules.subflow_mode = u.subflows.unwrap_or(rules.subflow_mode);
            rules.max_subflows = u.max_subflows.unwrap_or(rules.max_subflows);
            rules.announce = u.announce.unwrap_or(rules.announce);
        }
        c.rules = rules;
        Ok(c)
    }
}
