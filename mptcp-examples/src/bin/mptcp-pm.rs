//! `mptcp-pm`: the MPTCP path manager from the command line, with `ip mptcp`'s argument
//! shapes where it has them, plus the userspace path manager's per-connection commands.
//!
//! ```text
//! mptcp-pm [--json] endpoint add ADDR [port P] [dev IFNAME] [id N] [signal] [subflow] [backup] [fullmesh] [laminar]
//! mptcp-pm endpoint delete id N [ADDR]
//! mptcp-pm [--json] endpoint show [id N]
//! mptcp-pm endpoint flush
//! mptcp-pm endpoint change [id N] [ADDR] [port P] [backup|nobackup] [fullmesh|nofullmesh]
//! mptcp-pm limits set [subflows N] [add_addr_accepted N]
//! mptcp-pm [--json] limits show
//! mptcp-pm [--json] endpoint | limits   (show)
//! mptcp-pm [--json] monitor
//! mptcp-pm announce token T id N ADDR [port P]
//! mptcp-pm remove token T id N
//! mptcp-pm subflow create token T lid N laddr ADDR [lport P] raddr ADDR rport P
//! mptcp-pm subflow destroy token T laddr ADDR lport P raddr ADDR rport P
//! mptcp-pm subflow set token T laddr ADDR lport P raddr ADDR rport P backup|nobackup
//! ```
//! Tokens are hexadecimal (as `ip mptcp monitor` prints them) or decimal with `0d`.
//!
//! Words are abbreviated as `ip` abbreviates them: any beginning of a command or key
//! word, tried in `ip mptcp`'s order (`endp sh`, `e d id 1`, `limits s` is `limits set`,
//! `limits sh` is `limits show`); flag words are written out, as for `ip`. The
//! userspace path manager's commands (`announce`, `remove`, `subflow`), which `ip` does
//! not have, abbreviate their command words the same way but not their keys.

use clap::{Parser, Subcommand};
use mptcp::pm::{Endpoint, EndpointFlags, Event, EventItem, Limits, PathManager};
use serde_json::json;
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};

#[derive(Parser)]
#[command(
    name = "mptcp-pm",
    about = "The MPTCP path manager (like ip mptcp)",
    version,
    arg_required_else_help = false
)]
struct Args {
    /// JSON output for show and monitor: one object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The words after the subcommand, in `ip mptcp`'s style.
#[derive(clap::Args)]
struct Rest {
    /// The words shown above, as for `ip mptcp`.
    #[arg(value_name = "ARGS")]
    words: Vec<String>,
}

/// For a command without arguments: any word is reported by `parse`, naming the command.
#[derive(clap::Args)]
struct NoArgs {
    #[arg(hide = true)]
    words: Vec<String>,
}

impl NoArgs {
    fn check(&self) -> Res<()> {
        match self.words.first() {
            Some(w) => Err(unexpected(w)),
            None => Ok(()),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// In-kernel path manager endpoints: add, delete, show, flush, change (alone: show).
    #[command(
        subcommand,
        arg_required_else_help = false,
        disable_help_subcommand = true
    )]
    Endpoint(EndpointCmd),
    /// In-kernel path manager limits: set, show (alone: show).
    #[command(
        subcommand,
        arg_required_else_help = false,
        disable_help_subcommand = true
    )]
    Limits(LimitsCmd),
    /// Print path manager events as they happen.
    Monitor(NoArgs),
    /// Userspace PM: announce an address on a connection: token T id N ADDR [port P]
    Announce(Rest),
    /// Userspace PM: withdraw an announced address: token T id N
    Remove(Rest),
    /// Userspace PM: create, destroy, or set the priority of a subflow.
    #[command(
        subcommand,
        arg_required_else_help = false,
        disable_help_subcommand = true
    )]
    Subflow(SubflowCmd),
}

#[derive(Subcommand)]
enum EndpointCmd {
    /// ADDR [port P] [dev IFNAME] [id N] [signal] [subflow] [backup] [fullmesh] [laminar]
    Add(Rest),
    /// id N [ADDR]: with ADDR, only if it is endpoint N's address
    Delete(Rest),
    /// [id N]
    Show(Rest),
    /// Delete every endpoint.
    Flush(NoArgs),
    /// [id N] [ADDR] [port P] [backup|nobackup] [fullmesh|nofullmesh]: only the named flags change
    Change(Rest),
}

#[derive(Subcommand)]
enum LimitsCmd {
    /// [subflows N] [add_addr_accepted N]
    Set(Rest),
    /// Print the limits.
    Show(NoArgs),
}

#[derive(Subcommand)]
enum SubflowCmd {
    /// token T lid N laddr ADDR [lport P] raddr ADDR rport P
    Create(Rest),
    /// token T laddr ADDR lport P raddr ADDR rport P
    Destroy(Rest),
    /// token T laddr ADDR lport P raddr ADDR rport P backup|nobackup
    Set(Rest),
}

/// A command, checked in full before anything is asked of the kernel.
enum Action {
    EndpointAdd {
        ep: Endpoint,
        dev: Option<String>,
    },
    EndpointDelete {
        id: u8,
        addr: Option<IpAddr>,
    },
    EndpointShow(Option<u8>),
    EndpointFlush,
    EndpointChange {
        id: Option<u8>,
        addr: Option<(IpAddr, Option<u16>)>,
        set: EndpointFlags,
        clear: EndpointFlags,
    },
    LimitsSet(Limits),
    LimitsShow,
    Monitor,
    Announce {
        token: mptcp::Token,
        id: u8,
        addr: SocketAddr,
    },
    Remove {
        token: mptcp::Token,
        id: u8,
    },
    SubflowCreate {
        token: mptcp::Token,
        lid: u8,
        local: SocketAddr,
        remote: SocketAddr,
    },
    SubflowDestroy {
        token: mptcp::Token,
        local: SocketAddr,
        remote: SocketAddr,
    },
    SubflowSet {
        token: mptcp::Token,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    },
}

type Res<T> = Result<T, String>;

/// Keyword arguments: `key value` pairs and bare words, in `ip`'s style.
struct Words {
    pairs: HashMap<String, String>,
    bare: Vec<String>,
}

/// `ip`'s rule for a word: the first of `names` (in `ip`'s order) that the word is a
/// non-empty beginning of.
fn ip_match<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    if word.is_empty() {
        return None;
    }
    names.iter().copied().find(|n| n.starts_with(word))
}

/// The words, with `keys` taking a value each; a key is written out in full.
fn words(rest: &Rest, keys: &[&str]) -> Res<Words> {
    words_with(rest, |w| keys.iter().copied().find(|k| *k == w))
}

/// The words of an `ip mptcp` command: `keys` abbreviated as `ip` abbreviates them (any
/// beginning, in `ip`'s order), except for the exact `flags` words, which `ip` tries
/// first.
fn ip_words(rest: &Rest, keys: &[&'static str], flags: &[&str]) -> Res<Words> {
    words_with(rest, |w| {
        if flags.contains(&w) {
            None
        } else {
            ip_match(w, keys)
        }
    })
}

fn words_with<'k>(rest: &Rest, key: impl Fn(&str) -> Option<&'k str>) -> Res<Words> {
    let mut pairs = HashMap::new();
    let mut bare = Vec::new();
    let mut it = rest.words.iter();
    while let Some(w) = it.next() {
        if let Some(k) = key(w) {
            let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
            if pairs.insert(k.to_string(), v.clone()).is_some() {
                return Err(format!("{k} given twice"));
            }
        } else {
            bare.push(w.clone());
        }
    }
    Ok(Words { pairs, bare })
}

/// The command words in `ip mptcp`'s order of precedence (then this tool's own), and
/// the subcommands of each: `ip` takes the first that a word begins.
const OBJECTS: [&str; 7] = [
    "help", "endpoint", "limits", "monitor", "announce", "remove", "subflow",
];
fn subcommands(object: &str) -> &'static [&'static str] {
    match object {
        "endpoint" => &["add", "change", "delete", "show", "flush"],
        "limits" => &["set", "show"],
        "subflow" => &["create", "destroy", "set"],
        _ => &[],
    }
}

/// The command line with its command and subcommand words written out, as `ip`
/// understands its abbreviations, and `show` after a bare `endpoint` or `limits` (what
/// `ip mptcp endpoint` and `ip mptcp limits` do). Options (`--json`) may come anywhere.
fn expand_abbreviations(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut it = args.into_iter();
    out.extend(it.next());
    let mut object: Option<&str> = None;
    let mut sub_done = false;
    for a in it {
        let word = a.to_str().filter(|w| !w.starts_with('-'));
        match (object, word) {
            (_, None) => out.push(a),
            (None, Some(w)) => {
                let full = ip_match(w, &OBJECTS);
                object = Some(full.unwrap_or("?"));
                sub_done = subcommands(full.unwrap_or("")).is_empty();
                out.push(full.map_or(a, OsString::from));
            }
            (Some(o), Some(w)) if !sub_done => {
                sub_done = true;
                out.push(ip_match(w, subcommands(o)).map_or(a, OsString::from));
            }
            _ => out.push(a),
        }
    }
    if matches!(object, Some("endpoint" | "limits")) && !sub_done {
        out.push("show".into());
    }
    out
}

fn unexpected(word: &str) -> String {
    format!("unexpected argument {word:?}")
}

fn parse_value<T: std::str::FromStr>(what: &str, v: &str) -> Res<T>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("invalid {what} {v:?}: {e}"))
}

impl Words {
    fn num<T: std::str::FromStr>(&self, key: &str) -> Res<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.pairs.get(key).map(|v| parse_value(key, v)).transpose()
    }
    fn need<T: std::str::FromStr>(&self, key: &str) -> Res<T>
    where
        T::Err: std::fmt::Display,
    {
        self.num(key)?.ok_or_else(|| format!("missing {key}"))
    }
    fn token(&self) -> Res<mptcp::Token> {
        let t = self.pairs.get("token").ok_or("missing token")?;
        let parsed = match t.strip_prefix("0d") {
            Some(dec) => dec.parse().ok(),
            None => u32::from_str_radix(t.trim_start_matches("0x"), 16).ok(),
        };
        parsed.map(mptcp::Token::new).ok_or_else(|| {
            format!("invalid token {t:?}: hexadecimal, or decimal after 0d, up to 32 bits")
        })
    }
    /// No bare words are allowed.
    fn no_bare(&self) -> Res<()> {
        match self.bare.first() {
            Some(b) => Err(unexpected(b)),
            None => Ok(()),
        }
    }
    /// At most one bare word, an address.
    fn one_addr(&self) -> Res<Option<IpAddr>> {
        match self.bare.as_slice() {
            [] => Ok(None),
            [a] => parse_value("address", a).map(Some),
            [_, extra, ..] => Err(unexpected(extra)),
        }
    }
    fn sock(&self, a: &str, p: &str, need_port: bool) -> Res<SocketAddr> {
        let port: u16 = if need_port {
            self.need(p)?
        } else {
            self.num(p)?.unwrap_or(0)
        };
        Ok(SocketAddr::new(self.need(a)?, port))
    }
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
        .map(|i| mptcp::pm::interface_name(i).unwrap_or_else(|_| i.to_string()));
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

/// The flag words of `ip mptcp endpoint`, which are never abbreviations of a key.
const IP_FLAG_WORDS: [&str; 8] = [
    "signal",
    "subflow",
    "backup",
    "fullmesh",
    "implicit",
    "laminar",
    "nobackup",
    "nofullmesh",
];

/// The words of an `endpoint` command: `ip`'s keys (`id`, `dev`, `port`, abbreviated as
/// `ip` abbreviates them), of which this command takes `allowed`.
fn endpoint_words(rest: &Rest, allowed: &[&str]) -> Res<Words> {
    let w = ip_words(rest, &["id", "dev", "port"], &IP_FLAG_WORDS)?;
    match w.pairs.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(unexpected(k)),
        None => Ok(w),
    }
}

/// Checks the whole command line; an error here is a usage error: nothing was done.
fn parse(cmd: &Cmd) -> Res<Action> {
    Ok(match cmd {
        Cmd::Endpoint(EndpointCmd::Add(rest)) => {
            let w = endpoint_words(rest, &["id", "dev", "port"])?;
            let mut flags = EndpointFlags::empty();
            let mut addr = None;
            for b in &w.bare {
                match FLAG_NAMES.iter().find(|(_, n)| n == b) {
                    Some((f, _)) => flags |= *f,
                    None if addr.is_none() => addr = Some(parse_value("address", b)?),
                    None => return Err(unexpected(b)),
                }
            }
            let mut ep = Endpoint::new(addr.ok_or("missing address")?, flags);
            if let Some(id) = w.num("id")? {
                ep = ep.with_id(id);
            }
            if let Some(p) = w.num("port")? {
                ep = ep.with_port(p);
            }
            Action::EndpointAdd {
                ep,
                dev: w.pairs.get("dev").cloned(),
            }
        }
        Cmd::Endpoint(EndpointCmd::Delete(rest)) => {
            let w = endpoint_words(rest, &["id"])?;
            let addr = w.one_addr()?;
            Action::EndpointDelete {
                id: w.need("id")?,
                addr,
            }
        }
        Cmd::Endpoint(EndpointCmd::Show(rest)) => {
            let w = endpoint_words(rest, &["id"])?;
            w.no_bare()?;
            Action::EndpointShow(w.num("id")?)
        }
        Cmd::Endpoint(EndpointCmd::Flush(rest)) => {
            rest.check()?;
            Action::EndpointFlush
        }
        Cmd::Endpoint(EndpointCmd::Change(rest)) => {
            let w = endpoint_words(rest, &["id", "port"])?;
            let (mut set, mut clear) = (EndpointFlags::empty(), EndpointFlags::empty());
            let mut addr = None;
            for b in &w.bare {
                let (flag, on) = match b.as_str() {
                    "backup" => (EndpointFlags::BACKUP, true),
                    "nobackup" => (EndpointFlags::BACKUP, false),
                    "fullmesh" => (EndpointFlags::FULLMESH, true),
                    "nofullmesh" => (EndpointFlags::FULLMESH, false),
                    f if IP_FLAG_WORDS.contains(&f) => {
                        return Err(format!("{f:?}: only backup and fullmesh can change"))
                    }
                    a => match a.parse::<IpAddr>() {
                        Ok(ip) if addr.is_none() => {
                            addr = Some(ip);
                            continue;
                        }
                        _ => return Err(unexpected(a)),
                    },
                };
                set.set(flag, on);
                clear.set(flag, !on);
            }
            let id: Option<u8> = w.num("id")?;
            let port: Option<u16> = w.num("port")?;
            if id.is_none() && addr.is_none() {
                return Err("missing id or address".into());
            }
            if port.is_some() && id.is_some() {
                return Err("port can't be used with id".into());
            }
            Action::EndpointChange {
                id,
                addr: addr.map(|a| (a, port)),
                set,
                clear,
            }
        }
        Cmd::Limits(LimitsCmd::Set(rest)) => {
            let w = ip_words(rest, &["subflows", "add_addr_accepted"], &[])?;
            w.no_bare()?;
            Action::LimitsSet(Limits {
                subflows: w.num("subflows")?,
                add_addr_accepted: w.num("add_addr_accepted")?,
            })
        }
        Cmd::Limits(LimitsCmd::Show(rest)) => {
            rest.check()?;
            Action::LimitsShow
        }
        Cmd::Monitor(rest) => {
            rest.check()?;
            Action::Monitor
        }
        Cmd::Announce(rest) => {
            let w = words(rest, &["token", "id", "port"])?;
            let addr = w.one_addr()?.ok_or("missing address")?;
            Action::Announce {
                token: w.token()?,
                id: w.need("id")?,
                addr: SocketAddr::new(addr, w.num("port")?.unwrap_or(0)),
            }
        }
        Cmd::Remove(rest) => {
            let w = words(rest, &["token", "id"])?;
            w.no_bare()?;
            Action::Remove {
                token: w.token()?,
                id: w.need("id")?,
            }
        }
        Cmd::Subflow(SubflowCmd::Create(rest)) => {
            let w = words(rest, &["token", "lid", "laddr", "lport", "raddr", "rport"])?;
            w.no_bare()?;
            Action::SubflowCreate {
                token: w.token()?,
                lid: w.need("lid")?,
                local: w.sock("laddr", "lport", false)?,
                remote: w.sock("raddr", "rport", true)?,
            }
        }
        Cmd::Subflow(SubflowCmd::Destroy(rest)) => {
            let w = words(rest, &["token", "laddr", "lport", "raddr", "rport"])?;
            w.no_bare()?;
            Action::SubflowDestroy {
                token: w.token()?,
                local: w.sock("laddr", "lport", true)?,
                remote: w.sock("raddr", "rport", true)?,
            }
        }
        Cmd::Subflow(SubflowCmd::Set(rest)) => {
            let w = words(rest, &["token", "laddr", "lport", "raddr", "rport"])?;
            let backup = match w.bare.as_slice() {
                [b] if b == "backup" => true,
                [b] if b == "nobackup" => false,
                [] => return Err("missing backup or nobackup".into()),
                [b] => return Err(format!("{b:?} is not backup or nobackup")),
                [_, extra, ..] => return Err(unexpected(extra)),
            };
            Action::SubflowSet {
                token: w.token()?,
                local: w.sock("laddr", "lport", true)?,
                remote: w.sock("raddr", "rport", true)?,
                backup,
            }
        }
    })
}

fn run(action: Action, as_json: bool) -> Res<()> {
    let mut pm = PathManager::new().map_err(|e| e.to_string())?;
    let e = |e: mptcp::Error| e.to_string();
    match action {
        Action::EndpointAdd { mut ep, dev } => {
            if let Some(d) = dev {
                ep = ep
                    .with_device(&d)
                    .map_err(|_| format!("no such device {d:?}"))?;
            }
            pm.add_endpoint(&ep).map(drop).map_err(e)
        }
        Action::EndpointDelete { id, addr: None } => pm.delete_endpoint(id).map_err(e),
        // Id 0 names the initial subflows' address: the address says which one.
        Action::EndpointDelete {
            id: 0,
            addr: Some(a),
        } => pm.delete_endpoint_addr(0, a).map_err(e),
        // The kernel deletes a non-zero id whatever the address; the library checks
        // that the address is that endpoint's.
        Action::EndpointDelete { id, addr: Some(a) } => {
            pm.delete_endpoint_addr(id, a).map_err(|err| match err {
                mptcp::Error::InvalidArgument { reason, .. } => reason,
                other => format!("endpoint {id}: {other}"),
            })
        }
        Action::EndpointShow(id) => {
            let eps = match id {
                Some(id) => vec![pm.endpoint(id).map_err(e)?],
                None => pm.endpoints().map_err(e)?,
            };
            eps.iter().for_each(|ep| print_endpoint(ep, as_json));
            Ok(())
        }
        Action::EndpointFlush => pm.flush_endpoints().map_err(e),
        Action::EndpointChange {
            id,
            addr,
            set,
            clear,
        } => {
            let ep = match addr {
                None => pm.endpoint(id.unwrap_or(0)).map_err(e)?,
                Some((a, port)) => endpoint_at(&mut pm, a, port, id)?,
            };
            // Only the named bits change; the others keep their current value.
            let flags = (ep.flags | set) - clear;
            pm.set_endpoint_flags(ep.id, flags).map_err(e)
        }
        Action::LimitsSet(l) => pm.set_limits(l).map_err(e),
        Action::LimitsShow => {
            let l = pm.limits().map_err(e)?;
            let (a, s) = (l.add_addr_accepted.unwrap_or(0), l.subflows.unwrap_or(0));
            if as_json {
                println!("{}", json!({"add_addr_accepted": a, "subflows": s}));
            } else {
                println!("add_addr_accepted {a} subflows {s} ");
            }
            Ok(())
        }
        Action::Monitor => monitor(&pm, as_json),
        Action::Announce { token, id, addr } => pm.announce_address(token, id, addr).map_err(e),
        Action::Remove { token, id } => pm.remove_address(token, id).map_err(e),
        Action::SubflowCreate {
            token,
            lid,
            local,
            remote,
        } => pm.create_subflow(token, lid, local, remote).map_err(e),
        Action::SubflowDestroy {
            token,
            local,
            remote,
        } => pm.destroy_subflow(token, local, remote).map_err(e),
        Action::SubflowSet {
            token,
            local,
            remote,
            backup,
        } => pm
            .set_subflow_backup(token, local, remote, backup)
            .map_err(e),
    }
}

/// The endpoint with address `addr` (and `port`, when given); with `id` too, it must be
/// that endpoint's.
fn endpoint_at(
    pm: &mut PathManager,
    addr: IpAddr,
    port: Option<u16>,
    id: Option<u8>,
) -> Res<Endpoint> {
    let eps = pm.endpoints().map_err(|e| e.to_string())?;
    let ep = eps
        .into_iter()
        .find(|ep| ep.addr == addr && port.is_none_or(|p| ep.port == Some(p)))
        .ok_or_else(|| match port {
            Some(p) => format!("no endpoint has address {addr} port {p}"),
            None => format!("no endpoint has address {addr}"),
        })?;
    match id {
        Some(id) if id != ep.id => Err(format!(
            "endpoint {id} does not have address {addr} (endpoint {} has)",
            ep.id
        )),
        _ => Ok(ep),
    }
}

/// The subcommand's words, for messages: `endpoint delete`.
fn command_name(cmd: &Cmd) -> &'static str {
    match cmd {
        Cmd::Endpoint(EndpointCmd::Add(_)) => "endpoint add",
        Cmd::Endpoint(EndpointCmd::Delete(_)) => "endpoint delete",
        Cmd::Endpoint(EndpointCmd::Show(_)) => "endpoint show",
        Cmd::Endpoint(EndpointCmd::Flush(_)) => "endpoint flush",
        Cmd::Endpoint(EndpointCmd::Change(_)) => "endpoint change",
        Cmd::Limits(LimitsCmd::Set(_)) => "limits set",
        Cmd::Limits(LimitsCmd::Show(_)) => "limits show",
        Cmd::Monitor(_) => "monitor",
        Cmd::Announce(_) => "announce",
        Cmd::Remove(_) => "remove",
        Cmd::Subflow(SubflowCmd::Create(_)) => "subflow create",
        Cmd::Subflow(SubflowCmd::Destroy(_)) => "subflow destroy",
        Cmd::Subflow(SubflowCmd::Set(_)) => "subflow set",
    }
}

/// The ids an event carries: (remote id, local id).
fn event_ids(ev: &Event) -> (Option<u8>, Option<u8>) {
    match ev {
        Event::Announced { remote_id, .. } | Event::Removed { remote_id, .. } => {
            (Some(*remote_id), None)
        }
        Event::Created(c) | Event::Established(c) => (c.remote_id, c.local_id),
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
    let args: Args = mptcp_examples::parse_args_from(
        "mptcp-pm",
        expand_abbreviations(std::env::args_os().collect()),
    );
    let action = match parse(&args.cmd) {
        Ok(a) => a,
        Err(e) => {
            mptcp_examples::usage_error("mptcp-pm", &format!("{}: {e}", command_name(&args.cmd)))
        }
    };
    if let Err(e) = run(action, args.json) {
        eprintln!("mptcp-pm: error: {e}");
        std::process::exit(1);
    }
}
