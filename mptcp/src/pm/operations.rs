//! The path manager's public operations, written once. Each line below becomes a
//! method of [`PathManager`] (blocking, `&mut self`) and of
//! [`AsyncPathManager`](super::AsyncPathManager) (`async`, `&self`) with the same name,
//! arguments, result and documentation; both bodies run the same
//! [`Command`](super::command::Command) through their client's driver (`run`).

use super::command::{
    AddEndpoint, AnnouncedAddresses, DeleteEndpointAddr, Exec, GetEndpoint, GetLimits,
    ListEndpoints,
};
use super::netlink::Request;
use super::{Endpoint, EndpointFlags, Limits, PathManager};
use crate::error::Result;
use crate::token::Token;
use std::net::{IpAddr, SocketAddr};

/// Generates both clients' methods from one list. An operation that keeps per-client
/// state names the cell it gets after `@` (`@cell`): the client's probe results.
macro_rules! operations {
    ($(
        $(#[$attr:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty { $(@$cell:ident)? $cmd:expr }
    )*) => {
        impl PathManager {
            $(
                $(#[$attr])*
                pub fn $name(&mut self $(, $arg: $ty)*) -> Result<$out> {
                    $(let $cell = &self.probes.token_dump;)?
                    let cmd = $cmd;
                    super::run(&mut self.conn, &self.family, cmd)
                }
            )*
        }

        #[cfg(feature = "tokio")]
        impl super::AsyncPathManager {
            $(
                $(#[$attr])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$out> {
                    $(let $cell = &self.probes().token_dump;)?
                    let cmd = $cmd;
                    self.run(cmd).await
                }
            )*
        }
    };
}

operations! {
    /// Adds an endpoint (`ip mptcp endpoint add`) and returns its id (the kernel picks
    /// one when `ep.id` is 0: it is then found in a dump by address and port).
    #[doc(alias = "MPTCP_PM_CMD_ADD_ADDR")]
    fn add_endpoint(ep: &Endpoint) -> u8 { AddEndpoint::new(ep) }

    /// Deletes the endpoint with this id (`ip mptcp endpoint delete id N`). Id 0 is not
    /// an endpoint: it names the address of connections' initial subflows, which
    /// `delete_endpoint_addr` takes with that address; here it is
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) (the kernel would
    /// answer success and delete nothing).
    #[doc(alias = "MPTCP_PM_CMD_DEL_ADDR")]
    fn delete_endpoint(id: u8) -> () { Exec::checked(Request::delete_endpoint(id)) }

    /// Deletes an endpoint given by id and address (`ip mptcp endpoint delete id N ADDR`;
    /// id 0 names the initial subflows' address). For a non-zero id the address must be
    /// that endpoint's, else [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// and nothing is deleted (the kernel itself would go by the id alone).
    #[doc(alias = "MPTCP_PM_CMD_DEL_ADDR")]
    fn delete_endpoint_addr(id: u8, addr: IpAddr) -> () { DeleteEndpointAddr::new(id, addr) }

    /// The endpoint with this id (`ip mptcp endpoint show id N`).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    fn endpoint(id: u8) -> Endpoint { GetEndpoint::new(id) }

    /// All endpoints (`ip mptcp endpoint show`).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    fn endpoints() -> Vec<Endpoint> { ListEndpoints::all() }

    /// Deletes every endpoint (`ip mptcp endpoint flush`).
    #[doc(alias = "MPTCP_PM_CMD_FLUSH_ADDRS")]
    fn flush_endpoints() -> () { Exec::new(Request::flush_endpoints()) }

    /// Changes the flags of an endpoint (`ip mptcp endpoint change id N backup|nobackup
    /// fullmesh|nofullmesh`): the kernel applies `backup` and `fullmesh` from `flags`.
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    fn set_endpoint_flags(id: u8, flags: EndpointFlags) -> () {
        Exec::new(Request::set_endpoint_flags(id, flags))
    }

    /// The limits (`ip mptcp limits show`).
    #[doc(alias = "MPTCP_PM_CMD_GET_LIMITS")]
    fn limits() -> Limits { GetLimits::new() }

    /// Sets the limits given (`ip mptcp limits set`); `None` fields stay as they are.
    #[doc(alias = "MPTCP_PM_CMD_SET_LIMITS")]
    fn set_limits(limits: Limits) -> () { Exec::new(Request::set_limits(limits)) }

    /// Userspace PM: announces a local address (with a nonzero id) on the connection with
    /// this token (ADD_ADDR).
    #[doc(alias = "MPTCP_PM_CMD_ANNOUNCE")]
    fn announce_address(token: Token, id: u8, addr: SocketAddr) -> () {
        Exec::new(Request::announce_address(token, id, addr))
    }

    /// Userspace PM: withdraws the announced address with this id (REMOVE_ADDR).
    #[doc(alias = "MPTCP_PM_CMD_REMOVE")]
    fn remove_address(token: Token, id: u8) -> () {
        Exec::new(Request::remove_address(token, id))
    }

    /// Userspace PM: opens a subflow from `local` (address id `local_id`; port 0 lets
    /// the kernel choose) to `remote`.
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_CREATE")]
    fn create_subflow(token: Token, local_id: u8, local: SocketAddr, remote: SocketAddr) -> () {
        Exec::new(Request::create_subflow(token, local_id, local, remote))
    }

    /// Userspace PM: [`create_subflow`](Self::create_subflow) bound to the interface
    /// with this index (the kernel binds the subflow's socket to it, so that it leaves
    /// through that interface whatever the routing table says). Linux 6.1 was seen
    /// ignoring the interface (the subflow then follows the routing table); 6.12 and
    /// later honour it.
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_CREATE")]
    #[doc(alias = "MPTCP_PM_ADDR_ATTR_IF_IDX")]
    fn create_subflow_on(token: Token, local_id: u8, local: SocketAddr, ifindex: u32, remote: SocketAddr) -> () {
        Exec::new(Request::create_subflow_on(token, local_id, local, ifindex, remote))
    }

    /// Userspace PM: closes the subflow between `local` and `remote` (both with ports).
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_DESTROY")]
    fn destroy_subflow(token: Token, local: SocketAddr, remote: SocketAddr) -> () {
        Exec::new(Request::destroy_subflow(token, local, remote))
    }

    /// Userspace PM: sets or clears backup on the subflow between `local` and `remote`;
    /// the kernel sends MP_PRIO to the peer.
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    fn set_subflow_backup(token: Token, local: SocketAddr, remote: SocketAddr, backup: bool) -> () {
        Exec::new(Request::set_subflow_backup(token, local, remote, backup))
    }

    /// Userspace PM: the addresses announced on the connection with this token.
    ///
    /// Kernels before 6.7 ignore the token of this request and would list the in-kernel
    /// path manager's endpoints instead; that is detected (once per client, by asking
    /// about token 0, which no connection has) and reported as
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    fn announced_addresses(token: Token) -> Vec<Endpoint> {
        @honoured AnnouncedAddresses::new(token, honoured)
    }
}
