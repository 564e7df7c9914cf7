//! The MPTCP path manager over Generic Netlink (family `mptcp_pm`): what
//! `ip mptcp endpoint|limits|monitor` does, the userspace path manager's per-connection
//! commands, and events.
//!
//! ```no_run
//! use mptcp::pm::{Endpoint, EndpointFlags, PathManager};
//! let mut pm = PathManager::new()?;
//! let id = pm.add_endpoint(&Endpoint::new("198.51.100.1".parse().expect("address"), EndpointFlags::SUBFLOW))?;
//! for ep in pm.endpoints()? {
//!     println!("{} id {} {:?}", ep.addr, ep.id, ep.flags);
//! }
//! pm.delete_endpoint(id)?;
//! # Ok::<(), mptcp::Error>(())
//! ```
//!
//! Reading (endpoints, limits) needs no privilege; changing anything and subscribing to
//! events needs `CAP_NET_ADMIN` in the network namespace
//! ([`crate::Error::PermissionDenied`]).

#[cfg(test)]
mod abi_tests;
#[cfg(feature = "tokio")]
mod async_netlink;
#[cfg(feature = "tokio")]
mod async_pm;
mod blocking_netlink;
mod command;
mod connection;
mod endpoint;
mod event;
mod events;
mod netlink;
mod operations;
mod ops;
#[cfg(test)]
mod prop_tests;

pub use event::{ConnectionEvent, Event, EventFlags, EventItem, EventKind, RawEvent, SubflowEvent};
#[cfg(feature = "tokio")]
pub use events::EventStream;
pub use events::Events;
#[cfg(feature = "tokio")]
pub use ops::AsyncSubflowHandle;
pub use ops::SubflowHandle;
mod sysctl;
#[cfg(feature = "tokio")]
pub use async_pm::AsyncPathManager;
pub use endpoint::{interface_index, interface_name, Endpoint, EndpointFlags, Limits};
pub use sysctl::{kind, set_kind, PmKind};

use crate::error::{Error, Result};
use blocking_netlink::Conn;
use command::{Command, Probes};
use mptcp_sys as sys;
use netlink::{Family, Request};

/// A client of the path manager of the network namespace it was created in.
///
/// Reading needs no privilege:
///
/// ```
/// use mptcp::pm::PathManager;
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let Ok(mut pm) = PathManager::new() else {
///         return Ok(()); // this kernel has no MPTCP path manager
///     };
///     let limits = pm.limits()?; // `ip mptcp limits show`
///     println!("subflows {:?}, add_addr_accepted {:?}", limits.subflows, limits.add_addr_accepted);
///     for ep in pm.endpoints()? {
///         // `ip mptcp endpoint show`
///         println!("id {} {} {:?}", ep.id, ep.addr, ep.flags);
///     }
///     Ok(())
/// }
/// ```
///
/// Changes need `CAP_NET_ADMIN` in the namespace (this example changes the machine's
/// path manager, so it is only compiled here):
///
/// ```no_run
/// use mptcp::pm::{Endpoint, EndpointFlags, Limits, PathManager};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mut pm = PathManager::new()?;
///     pm.set_limits(Limits { subflows: Some(2), add_addr_accepted: Some(2) })?;
///     let ep = Endpoint::new("198.51.100.1".parse()?, EndpointFlags::SUBFLOW);
///     let id = pm.add_endpoint(&ep)?; // the id the kernel chose
///     let mut events = pm.events()?; // connections, subflows, announcements as they happen
///     if let Some(event) = events.next() {
///         println!("{:?}", event?);
///     }
///     pm.delete_endpoint(id)?;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
#[doc(alias = "mptcp_pm")]
#[doc(alias = "MPTCP_PM_NAME")]
pub struct PathManager {
    conn: Conn,
    family: Family,
    probes: Probes,
}

impl PathManager {
    /// Opens a Generic Netlink socket and resolves the `mptcp_pm` family.
    pub fn new() -> Result<PathManager> {
        let mut conn = Conn::open()?;
        let family = conn.family("mptcp_pm")?;
        Ok(PathManager {
            conn,
            family,
            probes: Probes::default(),
        })
    }

    /// The Generic Netlink id the kernel assigned to the `mptcp_pm` family.
    pub fn family_id(&self) -> u16 {
        self.family.id
    }

    /// Subscribes to the path manager's events (needs CAP_NET_ADMIN).
    #[doc(alias = "mptcp_pm_events")]
    #[doc(alias = "MPTCP_PM_EV_GRP_NAME")]
    pub fn events(&self) -> Result<Events> {
        subscribe(&self.family)
    }
}

/// The blocking driver: runs a command's requests in turn on `conn`, each until its
/// ACK or DONE, handing the replies to the command. (A function of the client's parts,
/// so that a command may borrow the client's probe cells meanwhile.)
fn run<C: Command>(conn: &mut Conn, family: &Family, mut cmd: C) -> Result<C::Output> {
    while let Some(req) = cmd.next_request()? {
        let outcome = conn
            .transact(family.id, &req, |r| cmd.on_reply(r))
            .map_err(|e| classify(family, &req, e));
        cmd.on_done(outcome)?;
    }
    cmd.finish()
}

/// Joins the family's event group on a new socket.
fn subscribe(family: &Family) -> Result<Events> {
    let group = family
        .groups
        .iter()
        .find(|(n, _)| {
            n.as_bytes() == &sys::MPTCP_PM_EV_GRP_NAME[..sys::MPTCP_PM_EV_GRP_NAME.len() - 1]
        })
        .map(|(_, id)| *id)
        .ok_or(Error::Unsupported {
            feature: "the mptcp_pm_events multicast group",
            since: Some("5.12"),
        })?;
    Events::subscribe(group)
}

/// The typed error for a refusal of the `mptcp_pm` request `req`. Decided from the
/// errno, the request and a probe of the namespace's path manager, never from the
/// kernel's message text (which the error keeps for people).
fn classify(family: &Family, req: &Request, e: Error) -> Error {
    let cmd = req.cmd;
    match &e {
        // A per-connection command (it names a token) refused with EINVAL where the
        // namespace does not run the userspace path manager: the kernel looks the
        // connection up and finds it is not userspace-managed.
        Error::Netlink { op, error, .. }
            if error.raw_os_error() == Some(libc::EINVAL)
                && req.nlas.iter().any(|a| {
                    netlink_packet_core::Nla::kind(a) == sys::MPTCP_PM_ATTR_TOKEN as u16
                })
                && sysctl::kind().is_ok_and(|k| k == PmKind::Kernel) =>
        {
            Error::NeedsUserspacePm {
                op,
                errno: libc::EINVAL,
            }
        }
        // A command the kernel does not know (not in the family's op list; Generic
        // Netlink answers EOPNOTSUPP). Any other refusal is the kernel's own words.
        Error::Netlink { error, .. }
            if error.raw_os_error() == Some(libc::EOPNOTSUPP)
                && !family.ops.is_empty()
                && !family.ops.contains(&u32::from(cmd)) =>
        {
            match unsupported_cmd(u32::from(cmd)) {
                Some((feature, since)) => Error::Unsupported {
                    feature,
                    since: Some(since),
                },
                None => e,
            }
        }
        _ => e,
    }
}

/// The feature and kernel version of a command, for "not supported" errors.
fn unsupported_cmd(cmd: u32) -> Option<(&'static str, &'static str)> {
    Some(match cmd {
        sys::MPTCP_PM_CMD_SET_FLAGS => ("MPTCP_PM_CMD_SET_FLAGS", "5.12"),
        sys::MPTCP_PM_CMD_ANNOUNCE => ("MPTCP_PM_CMD_ANNOUNCE (userspace path manager)", "5.19"),
        sys::MPTCP_PM_CMD_REMOVE => ("MPTCP_PM_CMD_REMOVE (userspace path manager)", "5.19"),
        sys::MPTCP_PM_CMD_SUBFLOW_CREATE => (
            "MPTCP_PM_CMD_SUBFLOW_CREATE (userspace path manager)",
            "5.19",
        ),
        sys::MPTCP_PM_CMD_SUBFLOW_DESTROY => (
            "MPTCP_PM_CMD_SUBFLOW_DESTROY (userspace path manager)",
            "5.19",
        ),
        _ => return None,
    })
}
