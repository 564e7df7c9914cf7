//! The demo's network: the workspace's test network (`mptcp-testnet`: a client and a
//! server namespace joined by two veth paths in the documentation ranges) with each
//! path shaped by a tbf qdisc, named after this process so that leftovers of a killed
//! run can be recognised. The namespaces are deleted when the [`Topology`] is dropped,
//! and by the Ctrl-C handler ([`delete_all`]) if the main thread cannot get there.

use crate::sys::{output, run as sh};
use anyhow::{anyhow, Context, Result};
pub use mptcp_testnet::{delete_all, path_of, PATHS};
use mptcp_testnet::{Netns, Shape, Spec};
use std::process::Command;
use std::thread::JoinHandle;

/// The prefix of the demo's namespace names; the process id follows.
const PREFIX: &str = "mptcp-demo-";

/// The two namespaces (their names, for the demo's threads), deleted with their links
/// on drop.
#[derive(Debug)]
pub struct Topology {
    net: mptcp_testnet::Topology,
    pub client: String,
    pub server: String,
}

impl Topology {
    /// Creates the namespaces and both paths, each limited to `mbit` Mbit/s in each
    /// direction.
    pub fn new(mbit: u32) -> Result<Topology> {
        remove_leftovers();
        let spec = Spec {
            prefix: format!("{PREFIX}{}", std::process::id()),
            paths: PATHS.len(),
            ipv6: false,
            // A token bucket on each end's egress: the rate in both directions (tbf:
            // this machine's kernel has no netem, fq or fq_codel), its queue 5 ms of
            // data, as a well-managed link's is. With 100 ms each subflow's window grew
            // until it filled its queue (RTT 3 ms -> 30 ms), MPTCP's scheduler then
            // left the other subflow without data now and then, and the ratio to TCP
            // varied between runs; with 5 ms it stays steady (the DSS option MPTCP
            // adds to each packet is what keeps it a little under 2).
            shape: Some(Shape {
                rate: format!("{mbit}mbit"),
                latency: "5ms".to_string(),
            }),
        };
        let net = mptcp_testnet::Topology::build(&spec).context("build the demo's network")?;
        Ok(Topology {
            client: net.client.name.clone(),
            server: net.server.name.clone(),
            net,
        })
    }

    /// Sets a sysctl in a namespace of this topology.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        let n: &Netns = if ns == self.client {
            &self.net.client
        } else {
            &self.net.server
        };
        Ok(n.try_sysctl(key, value)?)
    }

    /// Takes path `i`'s link down or up, at the client's end (the veth peer in the
    /// server namespace loses its carrier with it).
    pub fn set_link(&self, i: usize, up: bool) -> Result<()> {
        Ok(self.net.set_link(i, up)?)
    }

    /// Runs `f` on a new thread that has entered namespace `ns`: the sockets it creates
    /// belong to `ns`, and may be used from any thread afterwards.
    pub fn spawn_in<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> JoinHandle<Result<T>> {
        let ns = ns.to_string();
        std::thread::spawn(move || Netns::try_run_in(&ns, f)?)
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
