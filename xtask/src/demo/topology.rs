//! The demo's network: a client and a server namespace joined by two veth paths, each
//! shaped by a tbf qdisc, in the documentation ranges. The namespaces are deleted when
//! the [`Topology`] is dropped, and by the Ctrl-C handler ([`delete_all`]) if the main
//! thread cannot get there.

use crate::sys::{output, run as sh};
use anyhow::{anyhow, Context, Result};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// One path: its interface (the same name at both ends) and addresses.
#[derive(Debug, Clone, Copy)]
pub struct Path {
    pub dev: &'static str,
    pub client: Ipv4Addr,
    pub server: Ipv4Addr,
}

/// Path 1 (192.0.2.0/24, TEST-NET-1) and path 2 (198.51.100.0/24, TEST-NET-2).
pub const PATHS: [Path; 2] = [
    Path {
        dev: "eth0",
        client: Ipv4Addr::new(192, 0, 2, 1),
        server: Ipv4Addr::new(192, 0, 2, 2),
    },
    Path {
        dev: "eth1",
        client: Ipv4Addr::new(198, 51, 100, 1),
        server: Ipv4Addr::new(198, 51, 100, 2),
    },
];

/// The path (index into [`PATHS`]) whose client or server address is `ip`.
pub fn path_of(ip: IpAddr) -> Option<usize> {
    PATHS
        .iter()
        .position(|p| ip == IpAddr::V4(p.client) || ip == IpAddr::V4(p.server))
}

/// The prefix of the demo's namespace names; the process id follows, so that two runs
/// never share namespaces and leftovers of a killed run can be recognised.
const PREFIX: &str = "mptcp-demo-";

/// Namespaces that exist now, for the Ctrl-C handler.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Deletes every namespace this process created and has not deleted yet.
pub fn delete_all() {
    let names = match LIVE.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(_) => return,
    };
    for ns in names {
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    }
}

/// The two namespaces, deleted (with their links) on drop.
#[derive(Debug)]
pub struct Topology {
    pub client: String,
    pub server: String,
}

impl Topology {
    /// Creates the namespaces and both paths, each limited to `mbit` Mbit/s in each
    /// direction.
    pub fn new(mbit: u32) -> Result<Topology> {
        remove_leftovers();
        let pid = std::process::id();
        let t = Topology {
            client: format!("{PREFIX}{pid}-client"),
            server: format!("{PREFIX}{pid}-server"),
        };
        for ns in [&t.client, &t.server] {
            quiet(Command::new("ip").args(["netns", "add", ns]))?;
            LIVE.lock()
                .map_err(|_| anyhow!("namespace list poisoned"))?
                .push(ns.clone());
            t.ip(ns, &["link", "set", "lo", "up"])?;
        }
        for p in PATHS {
            t.ip(
                &t.client,
                &[
                    "link", "add", p.dev, "type", "veth", "peer", "name", p.dev, "netns", &t.server,
                ],
            )?;
            for (ns, addr) in [(&t.client, p.client), (&t.server, p.server)] {
                t.ip(ns, &["addr", "add", &format!("{addr}/24"), "dev", p.dev])?;
                t.ip(ns, &["link", "set", p.dev, "up"])?;
                // A token bucket on each end's egress: the rate in both directions
                // (tbf: this machine's kernel has no netem, fq or fq_codel). The
                // burst is one 1500-byte packet and a bit; the queue holds 5 ms of
                // data, as a well-managed link's does. With 100 ms, each subflow's
                // window grew until it filled its queue (RTT 3 ms -> 30 ms), MPTCP's
                // scheduler then left the other subflow without data now and then,
                // and the ratio to TCP varied from 1.89 to 1.97 between runs; with
                // 5 ms it stays at 1.96 (the DSS option MPTCP adds to each packet,
                // about 25 bytes, is what keeps it a little under 2).
                quiet(Command::new("tc").args([
                    "-n",
                    ns,
                    "qdisc",
                    "add",
                    "dev",
                    p.dev,
                    "root",
                    "tbf",
                    "rate",
                    &format!("{mbit}mbit"),
                    "burst",
                    "32kbit",
                    "latency",
                    "5ms",
                ]))?;
            }
        }
        Ok(t)
    }

    /// `ip -n NS ...`, quietly.
    fn ip(&self, ns: &str, args: &[&str]) -> Result<()> {
        quiet(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    /// Sets a sysctl in a namespace.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        quiet(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-q",
            "-w",
            &format!("{key}={value}"),
        ]))
    }

    /// Takes path `i`'s link down or up, at the client's end (the veth peer in the
    /// server namespace loses its carrier with it).
    pub fn set_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.ip(&self.client, &["link", "set", "dev", PATHS[i].dev, state])
    }

    /// Runs `f` on a new thread that has entered namespace `ns`: the sockets it creates
    /// belong to `ns`, and may be used from any thread afterwards.
    pub fn spawn_in<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> JoinHandle<Result<T>> {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            enter(&path)?;
            f()
        })
    }

    /// [`spawn_in`](Self::spawn_in), waiting for the result.
    pub fn run_in<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        Self::spawn_in(ns, f)
            .join()
            .map_err(|_| anyhow!("a thread in namespace {ns} panicked"))?
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            if let Ok(mut v) = LIVE.lock() {
                v.retain(|n| n != ns);
            }
        }
    }
}

/// Moves the calling thread into the network namespace mounted at `path`.
fn enter(path: &str) -> Result<()> {
    let file = File::open(path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns {path}"));
    }
    Ok(())
}

/// Runs a command, failing with its output when it fails (and printing nothing else:
/// the demo's screen is its own).
fn quiet(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}

/// Deletes the namespaces of earlier demo runs whose process is gone (killed before it
/// could clean up).
fn remove_leftovers() {
    let Ok(list) = output(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sh(Command::new("ip").args(["netns", "del", name]));
        }
    }
}
