//! `mptcp-pm`: the MPTCP path manager from the command line, with `ip mptcp`'s argument
//! shapes where it has them, plus the userspace path manager's per-connection commands.
//!
//! ```text
//! mptcp-pm [--json] endpoint add ADDR [port P] [dev IFNAME] [id N] [signal] [subflow] [backup] [fullmesh] [laminar]
//! mptcp-pm endpoint delete id N [ADDR]
//! mptcp-pm [--json] endpoint show [id N]
//! mptcp-pm endpoint flush
//! mptcp-pm endpoint change id N [backup|nobackup] [fullmesh|nofullmesh]
//! mptcp-pm limits set [subflows N] [add_addr_accepted N]
//! mptcp-pm [--json] limits show
//! mptcp-pm [--json] monitor
//! mptcp-pm announce token T id N ADDR [port P]
//! mptcp-pm remove token T id N
//! mptcp-pm subflow create token T lid N laddr ADDR [lport P] raddr ADDR rport P
//! mptcp-pm subflow destroy token T laddr ADDR lport P raddr ADDR rport P
//! mptcp-pm subflow set token T laddr ADDR lport P raddr ADDR rport P backup|nobackup
//! ```
//! Tokens are hexadecimal (as `ip mptcp monitor` prints them) or decimal with `0d`.

use clap::{Parser, Subcommand};
use mptcp::pm::{Endpoint, EndpointFlags, Event, EventItem, Limits, PathManager};
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

#[derive(Parser)]
#[command(
    name = "mptcp-pm",
    about = "The MPTCP path manager (like ip mptcp)",
    version
)]
struct Args {
    /// JSON output for show and monitor: one object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// In-kernel path manager endpoints: add, delete, show, flush, change.
    Endpoint {
        /// add | delete | show | flush | change
        action: String,
        /// The rest, as for `ip mptcp endpoint`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// In-kernel path manager limits: set, show.
    Limits {
        /// set | show
        action: String,
        /// `subflows N`, `add_addr_accepted N`.
        #[arg(trailing_var_arg = true)]
        rest: Vec<String>,
    },
    /// Print path manager events as they happen.
    Monitor,
    /// Userspace PM: announce an address on a connection.
    Announce {
        /// `token T id N ADDR [port P]`
        #[arg(trailing_var_arg = true)]
        rest: Vec<String>,
    },
    /// Userspace PM: withdraw an announced address.
    Remove {
        /// `token T id N`
        #[arg(trailing_var_arg = true)]
        rest: Vec<String>,
    },
    /// Userspace PM: create, destroy, or set the priority of a subflow.
    Subflow {
        /// create | destroy | set
        action: String,
        /// `token T [lid N] laddr A [lport P] raddr A rport P [backup|nobackup]`
        #[arg(trailing_var_arg = true)]
        rest: Vec<String>,
    },
}

type Res<T> = Result<T, String>;

/// Keyword arguments: `key value` pairs and bare words, in `ip`'s style.
struct Words {
    pairs: HashMap<String, String>,
    bare: Vec<String>,
}

fn words(rest: &[String], keys: &[&str]) -> Res<Words> {
    let mut pairs = HashMap::new();
    let mut bare = Vec::new();
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        if keys.contains(&w.as_str()) {
            let v = it.next().ok_or_else(|| format!("{w} needs a value"))?;
            pairs.insert(w.clone(), v.clone());
        } else {
            bare.push(w.clone());
        }
    }
    Ok(Words { pairs, bare })
}

impl Words {
    fn num<T: std::str::FromStr>(&self, key: &str) -> Res<Option<T>> {
        self.pairs
            .get(key)
            .map(|v| v.parse().map_err(|_| format!("invalid {key} {v:?}")))
            .transpose()
    }
    fn need<T: std::str::FromStr>(&self, key: &str) -> Res<T> {
        self.num(key)?.ok_or_else(|| format!("missing {key}"))
    }
    fn token(&self) -> Res<mptcp::Token> {
        let t = self.pairs.get("token").ok_or("missing token")?;
        let parsed = match t.strip_prefix("0d") {
            Some(dec) => dec.parse().ok(),
            None => u32::from_str_radix(t.trim_start_matches("0x"), 16).ok(),
        };
        parsed
            .map(mptcp::Token::new)
            .ok_or_else(|| format!("invalid token {t:?}"))
    }
    fn addr(&self, key: &str) -> Res<IpAddr> {
        self.need(key)
    }
}

fn sysfs_ifindex(name: &str) -> Res<i32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("no such device {name:?}"))
}

fn sysfs_ifname(index: i32) -> Option<String> {
    std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .find_map(|e| {
            let i: i32 = std::fs::read_to_string(e.path().join("ifindex"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (i == index).then(|| e.file_name().to_string_lossy().into_owned())
        })
}

const FLAG_NAMES: [(EndpointFlags, &str); 6] = [
    (EndpointFlags::SIGNAL, "signal"),
    (EndpointFlags::SUBFLOW, "subflow"),
    (EndpointFlags::BACKUP, "backup"),
    (EndpointFlags::FULLMESH, "fullmesh"),
    (EndpointFlags::IMPLICIT, "implicit"),
    (EndpointFlags::LAMINAR, "laminar"),
];

fn flag_names(f: EndpointFlags) -> Vec<&'static str> {
    FLAG_NAMES
        .iter()
        .filter(|(b, _)| f.contains(*b))
        .map(|(_, n)| *n)
        .collect()
}

fn print_endpoint(ep: &Endpoint, as_json: bool) {
    let dev = ep
        .ifindex
        .map(|i| sysfs_ifname(i).unwrap_or_else(|| i.to_string()));
    if as_json {
        println!(
            "{}",
            json!({"address": ep.addr, "port": ep.port, "id": ep.id, "flags": flag_names(ep.flags), "dev": dev})
        );
        return;
    }
    let mut line = ep.addr.to_string();
    if let Some(p) = ep.port {
        line += &format!(" port {p}");
    }
    line += &format!(" id {}", ep.id);
    for n in flag_names(ep.flags) {
        line += &format!(" {n}");
    }
    if let Some(d) = dev {
        line += &format!(" dev {d}");
    }
    println!("{line} ");
}

fn endpoint(pm: &mut PathManager, action: &str, rest: &[String], as_json: bool) -> Res<()> {
    let e = |e: mptcp::Error| e.to_string();
    match action {
        "add" => {
            let w = words(rest, &["port", "dev", "id"])?;
            let mut flags = EndpointFlags::empty();
            let mut addr = None;
            for b in &w.bare {
                match FLAG_NAMES.iter().find(|(_, n)| n == b) {
                    Some((f, _)) => flags |= *f,
                    None if addr.is_none() => {
                        addr = Some(
                            b.parse::<IpAddr>()
                                .map_err(|_| format!("invalid address {b:?}"))?,
                        )
                    }
                    None => return Err(format!("unknown argument {b:?}")),
                }
            }
            let mut ep = Endpoint::new(addr.ok_or("missing address")?, flags);
            if let Some(id) = w.num("id")? {
                ep = ep.with_id(id);
            }
            if let Some(p) = w.num("port")? {
                ep = ep.with_port(p);
            }
            if let Some(d) = w.pairs.get("dev") {
                ep = ep.with_ifindex(sysfs_ifindex(d)?);
            }
            pm.add_endpoint(&ep).map(drop).map_err(e)
        }
        "delete" => {
            let w = words(rest, &["id"])?;
            let id: u8 = w.need("id")?;
            match w.bare.first() {
                Some(a) => {
                    let a: IpAddr = a.parse().map_err(|_| format!("invalid address {a:?}"))?;
                    pm.delete_endpoint_addr(id, a).map_err(e)
                }
                None => pm.delete_endpoint(id).map_err(e),
            }
        }
        "show" => {
            let w = words(rest, &["id"])?;
            let eps = match w.num::<u8>("id")? {
                Some(id) => vec![pm.endpoint(id).map_err(e)?],
                None => pm.endpoints().map_err(e)?,
            };
            eps.iter().for_each(|ep| print_endpoint(ep, as_json));
            Ok(())
        }
        "flush" => pm.flush_endpoints().map_err(e),
        "change" => {
            // Only the named bits change; the others keep their current value.
            let w = words(rest, &["id"])?;
            let id: u8 = w.need("id")?;
            let mut flags = pm.endpoint(id).map_err(e)?.flags;
            for b in &w.bare {
                match b.as_str() {
                    "backup" => flags |= EndpointFlags::BACKUP,
                    "nobackup" => flags -= EndpointFlags::BACKUP,
                    "fullmesh" => flags |= EndpointFlags::FULLMESH,
                    "nofullmesh" => flags -= EndpointFlags::FULLMESH,
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
            pm.set_endpoint_flags(id, flags).map_err(e)
        }
        other => Err(format!(
            "unknown endpoint action {other:?}: add, delete, show, flush, change"
        )),
    }
}

fn sock(w: &Words, a: &str, p: &str, need_port: bool) -> Res<SocketAddr> {
    let port: u16 = if need_port {
        w.need(p)?
    } else {
        w.num(p)?.unwrap_or(0)
    };
    Ok(SocketAddr::new(w.addr(a)?, port))
}

fn run(args: Args) -> Res<()> {
    let mut pm = PathManager::new().map_err(|e| e.to_string())?;
    let e = |e: mptcp::Error| e.to_string();
    match args.cmd {
        Cmd::Endpoint { action, rest } => endpoint(&mut pm, &action, &rest, args.json),
        Cmd::Limits { action, rest } => match action.as_str() {
            "set" => {
                let w = words(&rest, &["subflows", "add_addr_accepted"])?;
                if let Some(b) = w.bare.first() {
                    return Err(format!("unknown argument {b:?}"));
                }
                pm.set_limits(Limits {
                    subflows: w.num("subflows")?,
                    add_addr_accepted: w.num("add_addr_accepted")?,
                })
                .map_err(e)
            }
            "show" => {
                let l = pm.limits().map_err(e)?;
                let (a, s) = (l.add_addr_accepted.unwrap_or(0), l.subflows.unwrap_or(0));
                if args.json {
                    println!("{}", json!({"add_addr_accepted": a, "subflows": s}));
                } else {
                    println!("add_addr_accepted {a} subflows {s} ");
                }
                Ok(())
            }
            other => Err(format!("unknown limits action {other:?}: set, show")),
        },
        Cmd::Monitor => monitor(&pm, args.json),
        Cmd::Announce { rest } => {
            let w = words(&rest, &["token", "id", "port"])?;
            let addr: IpAddr = w
                .bare
                .first()
                .ok_or("missing address")?
                .parse()
                .map_err(|_| "invalid address")?;
            let sa = SocketAddr::new(addr, w.num("port")?.unwrap_or(0));
            pm.announce(w.token()?, w.need("id")?, sa).map_err(e)
        }
        Cmd::Remove { rest } => {
            let w = words(&rest, &["token", "id"])?;
            pm.remove(w.token()?, w.need("id")?).map_err(e)
        }
        Cmd::Subflow { action, rest } => {
            let keys = ["token", "lid", "laddr", "lport", "raddr", "rport"];
            let w = words(&rest, &keys)?;
            let remote = sock(&w, "raddr", "rport", true)?;
            match action.as_str() {
                "create" => {
                    let local = sock(&w, "laddr", "lport", false)?;
                    pm.subflow_create(w.token()?, w.need("lid")?, local, remote)
                        .map_err(e)
                }
                "destroy" => {
                    let local = sock(&w, "laddr", "lport", true)?;
                    pm.subflow_destroy(w.token()?, local, remote).map_err(e)
                }
                "set" => {
                    let local = sock(&w, "laddr", "lport", true)?;
                    let backup = match w.bare.first().map(String::as_str) {
                        Some("backup") => true,
                        Some("nobackup") => false,
                        _ => return Err("subflow set needs backup or nobackup".into()),
                    };
                    pm.set_backup(w.token()?, local, remote, backup).map_err(e)
                }
                other => Err(format!(
                    "unknown subflow action {other:?}: create, destroy, set"
                )),
            }
        }
    }
}

/// The ids an event carries: (remote id, local id).
fn event_ids(ev: &Event) -> (Option<u8>, Option<u8>) {
    match ev {
        Event::Announced { remote_id, .. } | Event::Removed { remote_id, .. } => {
            (Some(*remote_id), None)
        }
        _ => ev
            .subflow()
            .map_or((None, None), |s| (Some(s.remote_id), Some(s.local_id))),
    }
}

/// One object per event: the type and token (hex), and the attributes it carries.
fn event_json(ev: &Event) -> serde_json::Value {
    let (remote_id, local_id) = event_ids(ev);
    let sf = ev.subflow();
    let conn = match ev {
        Event::Created(c) | Event::Established(c) => Some(c),
        _ => None,
    };
    json!({
        "type": ev.kind().name(), "token": ev.token().map(|t| t.to_string()),
        "local_id": local_id, "remote_id": remote_id,
        "local": ev.local(), "remote": ev.remote(),
        "backup": sf.map(|s| s.backup), "error": sf.and_then(|s| s.error),
        "ifindex": sf.and_then(|s| s.ifindex),
        "reset_reason": sf.and_then(|s| s.reset_reason),
        "reset_flags": sf.and_then(|s| s.reset_flags),
        "flags": conn.map(|c| c.flags.bits()),
        "server_side": conn.and_then(|c| c.server_side),
    })
}

/// One line per event, in the shape `ip mptcp monitor` prints.
fn event_line(ev: &Event) -> String {
    let mut l = format!("[{:>16}]", ev.kind().name());
    if let Some(t) = ev.token() {
        l += &format!(" token={t}");
    }
    let (remote_id, local_id) = event_ids(ev);
    if let Some(i) = remote_id {
        l += &format!(" remid={i}");
    }
    if let Some(i) = local_id {
        l += &format!(" locid={i}");
    }
    if let Some(a) = ev.local() {
        l += &format!(" saddr={} sport={}", a.ip(), a.port());
    }
    if let Some(a) = ev.remote() {
        l += &format!(" daddr={} dport={}", a.ip(), a.port());
    }
    if let Some(s) = ev.subflow() {
        l += &format!(" backup={}", u8::from(s.backup));
    }
    l
}

fn monitor(pm: &PathManager, as_json: bool) -> Res<()> {
    use std::io::Write;
    let events = pm.events().map_err(|e| e.to_string())?;
    let _ = events.set_receive_buffer(1 << 20);
    let mut out = std::io::stdout().lock();
    for item in events {
        let line = match item.map_err(|e| e.to_string())? {
            EventItem::Lost if as_json => json!({"type": "LOST"}).to_string(),
            EventItem::Lost => "[LOST] events were lost (receive buffer full)".to_string(),
            EventItem::Event(ev) if as_json => event_json(&ev).to_string(),
            EventItem::Event(ev) => event_line(&ev),
            _ => continue,
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn main() {
    let args: Args = mptcp_examples::parse_args("mptcp-pm");
    if let Err(e) = run(args) {
        eprintln!("mptcp-pm: error: {e}");
        std::process::exit(1);
    }
}
