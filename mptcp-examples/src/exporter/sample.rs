//! One look at the host: its MPTCP connections with their subflows (sock_diag), the
//! kernel's MPTCP counters, the sysctls that matter, the path manager's limits and
//! endpoints, and which interface has which local address.

use mptcp::diag::{Diag, DiagConnection, Filter};
use mptcp::pm::{Endpoint, Limits, PathManager, PmKind};
use std::collections::HashMap;
use std::net::IpAddr;

/// What one look found; `None` (and a line in `errors`) for what could not be read.
#[derive(Debug)]
pub struct Sample {
    /// The connections and listeners, with subflows when they are visible.
    pub connections: Vec<DiagConnection>,
    /// Whether subflows are listed (`None`: the kernel does not say; before Linux 6.15
    /// they need CAP_NET_ADMIN).
    pub subflows_visible: Option<bool>,
    /// `MPTcpExt` of /proc/net/netstat: `(kernel name, value)`.
    pub counters: Vec<(String, u64)>,
    /// `net.mptcp.enabled`.
    pub enabled: Option<bool>,
    /// The path manager in use.
    pub pm_kind: Option<PmKind>,
    /// The in-kernel path manager's limits.
    pub limits: Option<Limits>,
    /// The in-kernel path manager's endpoints.
    pub endpoints: Option<Vec<Endpoint>>,
    /// The interface of each local address.
    pub interfaces: HashMap<IpAddr, String>,
    /// What could not be read, one line each.
    pub errors: Vec<String>,
}

impl Sample {
    /// The interface of a local address (`unknown` when none has it).
    pub fn interface(&self, addr: IpAddr) -> String {
        self.interfaces
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }
}

/// The kernel handles one look uses, kept between looks.
#[derive(Debug)]
pub struct Host {
    diag: Option<Diag>,
    pm: Option<PathManager>,
}

impl Default for Host {
    fn default() -> Host {
        Host::new()
    }
}

impl Host {
    /// Opens the sock_diag and path-manager sockets (each may fail on its own: the
    /// look then says what is missing).
    pub fn new() -> Host {
        Host {
            diag: Diag::new().ok(),
            pm: PathManager::new().ok(),
        }
    }

    /// One look at the host.
    pub fn sample(&mut self) -> Sample {
        let mut errors = Vec::new();
        if self.diag.is_none() {
            self.diag = Diag::new().ok();
        }
        let (connections, subflows_visible) = match &mut self.diag {
            Some(d) => match d.connections(&Filter::new()) {
                Ok(c) => (c, d.subflows_visible()),
                Err(e) => {
                    errors.push(format!("connections (sock_diag): {e}"));
                    self.diag = None;
                    (Vec::new(), None)
                }
            },
            None => {
                errors.push("connections: no sock_diag socket".into());
                (Vec::new(), None)
            }
        };
        let counters = crate::netstat::mptcp_counters().unwrap_or_else(|e| {
            errors.push(format!("/proc/net/netstat: {e}"));
            Vec::new()
        });
        let enabled = match std::fs::read_to_string("/proc/sys/net/mptcp/enabled") {
            Ok(v) => Some(v.trim() == "1"),
            Err(e) => {
                errors.push(format!("net.mptcp.enabled: {e}"));
                None
            }
        };
        let pm_kind = mptcp::pm::kind().ok();
        if self.pm.is_none() {
            self.pm = PathManager::new().ok();
        }
        let (limits, endpoints) = match &mut self.pm {
            Some(pm) => {
                let limits = pm
                    .limits()
                    .map_err(|e| errors.push(format!("limits: {e}")))
                    .ok();
                let endpoints = pm
                    .endpoints()
                    .map_err(|e| errors.push(format!("endpoints: {e}")))
                    .ok();
                (limits, endpoints)
            }
            None => {
                errors.push("path manager: no Generic Netlink socket for MPTCP".into());
                (None, None)
            }
        };
        let interfaces = match if_addrs::get_if_addrs() {
            Ok(list) => list
                .into_iter()
                .map(|i| (i.ip().to_canonical(), i.name))
                .collect(),
            Err(e) => {
                errors.push(format!("interfaces (getifaddrs): {e}"));
                HashMap::new()
            }
        };
        Sample {
            connections,
            subflows_visible,
            counters,
            enabled,
            pm_kind,
            limits,
            endpoints,
            interfaces,
            errors,
        }
    }
}
