//! The daemon's configuration: a TOML file, every key optional. With no file: kernel
//! mode, every non-loopback, non-link-local address of an interface that is up as a
//! `subflow` endpoint. Every key is documented, with its default, in the example file
//! `mptcp-examples/dist/mptcp-pmd.toml` (installed by the Debian package as
//! `/etc/mptcp-pmd.toml`).

use super::rules::{InterfaceRule, PathChoice, PolicyRule, Rules, SubflowMode};
use mptcp::pm::{EndpointFlags, Limits};
use mptcp::policy::PathPolicy;
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
    /// Userspace mode: the receive buffer of the path-manager event socket (bytes;
    /// default 4 MiB).
    pub pm_event_buffer: Option<usize>,
    /// The policy the file describes.
    pub rules: Rules,
    /// Userspace mode: how often the subflows of connections with more than one path
    /// are looked at for silent losses (`ZERO`: never).
    pub detect_interval: Duration,
    /// Userspace mode: a subflow with data in flight and no acknowledgement for this long
    /// (or four of its round trips, if longer) while another is not stalled is lost.
    pub loss_after: Duration,
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
            pm_event_buffer: None,
            rules: Rules::default(),
            detect_interval: Duration::from_millis(25),
            loss_after: Duration::from_millis(100),
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
    pm_event_buffer: Option<usize>,
    default_flags: Option<Vec<Flag>>,
    limits: Option<RawLimits>,
    #[serde(default)]
    interface: Vec<RawRule>,
    userspace: Option<RawUserspace>,
    #[serde(default)]
    policy: Vec<RawPolicy>,
    detection: Option<RawDetection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    policy: RawPathPolicy,
    remote_port: Option<u16>,
    local_port: Option<u16>,
    remote: Option<String>,
    uid: Option<u32>,
    cgroup: Option<String>,
    prefer: Option<Vec<String>>,
    standby: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawPathPolicy {
    Aggregate,
    Handover,
    Backup,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetection {
    interval: Option<f64>,
    after: Option<f64>,
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
            let key = line.and_then(|l| key_at(text, l));
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
        c.pm_event_buffer = raw.pm_event_buffer;
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
        for p in raw.policy {
            rules.policies.push(policy_rule(p, &line_of, &err)?);
        }
        if c.mode == Mode::Kernel && !rules.policies.is_empty() {
            return Err(err(
                line_of("[[policy]]"),
                "key `policy`: path policies per connection need mode = \"userspace\" (the \
                 in-kernel path manager takes no per-connection commands; in kernel mode, \
                 give an interface the \"backup\" flag instead)"
                    .to_string(),
            ));
        }
        if let Some(d) = raw.detection {
            for (v, k, slot) in [
                (d.interval, "interval", &mut c.detect_interval),
                (d.after, "after", &mut c.loss_after),
            ] {
                if let Some(v) = v {
                    if !(v.is_finite() && (0.0..3600.0).contains(&v)) {
                        return Err(err(
                            line_of(k),
                            format!("key `detection.{k}`: {v} is not a number of seconds from 0 to 3600"),
                        ));
                    }
                    *slot = Duration::from_secs_f64(v);
                }
            }
        }
        c.rules = rules;
        Ok(c)
    }
}

/// The key a TOML error at `line` (1-based) is about: the one on that line, or, inside
/// a multi-line array, the one whose array is still open there.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let key_of = |l: &str| l.split_once('=').map(|(k, _)| k.trim().to_string());
    if let Some(k) = lines.get(line.checked_sub(1)?).and_then(|l| key_of(l)) {
        return Some(k);
    }
    // Upwards to the line that opened the array still open at `line`.
    let mut depth = 0i32;
    for l in lines[..line - 1].iter().rev() {
        let code = l.split('#').next().unwrap_or("");
        depth += code.matches('[').count() as i32 - code.matches(']').count() as i32;
        if code.contains('=') {
            return (depth > 0).then(|| key_of(code)).flatten();
        }
    }
    None
}

/// One `[[policy]]` table.
fn policy_rule(
    p: RawPolicy,
    line_of: &impl Fn(&str) -> Option<usize>,
    err: &impl Fn(Option<usize>, String) -> ConfigError,
) -> Result<PolicyRule, ConfigError> {
    let globs = |v: Option<Vec<String>>, key: &str| -> Result<Vec<glob::Pattern>, ConfigError> {
        v.unwrap_or_default()
            .iter()
            .map(|g| {
                glob::Pattern::new(g).map_err(|e| {
                    err(
                        line_of(g),
                        format!("key `policy.{key}`: {g:?} is not a glob: {e}"),
                    )
                })
            })
            .collect()
    };
    let remote_net = match &p.remote {
        None => None,
        Some(r) => Some(parse_net(r).ok_or_else(|| {
            err(
                line_of(r),
                format!("key `policy.remote`: {r:?} is not an address or ADDRESS/PREFIX"),
            )
        })?),
    };
    if let Some(c) = &p.cgroup {
        if !c.starts_with('/') {
            return Err(err(
                line_of(c),
                format!("key `policy.cgroup`: {c:?} is not a path under /sys/fs/cgroup (it starts with /)"),
            ));
        }
    }
    Ok(PolicyRule {
        remote_port: p.remote_port,
        local_port: p.local_port,
        remote_net,
        uid: p.uid,
        cgroup: p.cgroup,
        choice: PathChoice {
            policy: match p.policy {
                RawPathPolicy::Aggregate => PathPolicy::Aggregate,
                RawPathPolicy::Handover => PathPolicy::Handover,
                RawPathPolicy::Backup => PathPolicy::Backup,
            },
            prefer: globs(p.prefer, "prefer")?,
            standby: globs(p.standby, "standby")?,
        },
    })
}

/// `ADDRESS` or `ADDRESS/PREFIX`.
fn parse_net(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}
