//! The userspace path manager's per-connection commands, by token.

use super::endpoint::{local_attrs, EndpointFlags};
use super::netlink::{nla_i32, nla_nested, nla_u32, nla_u8, Request};
use crate::error::Error;
use crate::token::Token;
use mptcp_sys as sys;
use netlink_packet_core::DefaultNla;
use std::net::SocketAddr;

/// The requests of the per-connection commands, shared by [`PathManager`] and the async
/// client.
impl Request {
    pub(super) fn announce_address(token: Token, id: u8, addr: SocketAddr) -> Request {
        let ep = local_attrs(&addr, Some(id), EndpointFlags::SIGNAL);
        Request::pm(
            "announce address",
            sys::MPTCP_PM_CMD_ANNOUNCE,
            vec![
                nla_u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                nla_nested(sys::MPTCP_PM_ATTR_ADDR, &ep),
            ],
        )
    }

    pub(super) fn remove_address(token: Token, id: u8) -> Request {
        Request::pm(
            "remove address",
            sys::MPTCP_PM_CMD_REMOVE,
            vec![
                nla_u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                nla_u8(sys::MPTCP_PM_ATTR_LOC_ID, id),
            ],
        )
    }

    /// A per-subflow command: token, local address (with its attributes), remote address.
    fn subflow(
        op: &'static str,
        cmd: u32,
        token: Token,
        local: Vec<DefaultNla>,
        remote: &SocketAddr,
    ) -> Request {
        let r = local_attrs(remote, None, EndpointFlags::empty());
        Request::pm(
            op,
            cmd,
            vec![
                nla_u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                nla_nested(sys::MPTCP_PM_ATTR_ADDR, &local),
                nla_nested(sys::MPTCP_PM_ATTR_ADDR_REMOTE, &r),
            ],
        )
    }

    pub(super) fn create_subflow(
        token: Token,
        local_id: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Request {
        let l = local_attrs(&local, Some(local_id), EndpointFlags::empty());
        Request::subflow(
            "create subflow",
            sys::MPTCP_PM_CMD_SUBFLOW_CREATE,
            token,
            l,
            &remote,
        )
    }

    pub(super) fn create_subflow_on(
        token: Token,
        local_id: u8,
        local: SocketAddr,
        ifindex: u32,
        remote: SocketAddr,
    ) -> Request {
        let mut l = local_attrs(&local, Some(local_id), EndpointFlags::empty());
        l.push(nla_i32(
            sys::MPTCP_PM_ADDR_ATTR_IF_IDX,
            i32::try_from(ifindex).unwrap_or(i32::MAX),
        ));
        Request::subflow(
            "create subflow",
            sys::MPTCP_PM_CMD_SUBFLOW_CREATE,
            token,
            l,
            &remote,
        )
    }

    pub(super) fn destroy_subflow(token: Token, local: SocketAddr, remote: SocketAddr) -> Request {
        let l = local_attrs(&local, None, EndpointFlags::empty());
        Request::subflow(
            "destroy subflow",
            sys::MPTCP_PM_CMD_SUBFLOW_DESTROY,
            token,
            l,
            &remote,
        )
    }

    pub(super) fn set_subflow_backup(
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Request {
        let flags = if backup {
            EndpointFlags::BACKUP
        } else {
            EndpointFlags::empty()
        };
        let mut l = local_attrs(&local, None, EndpointFlags::empty());
        l.push(nla_u32(sys::MPTCP_PM_ADDR_ATTR_FLAGS, flags.bits()));
        Request::subflow(
            "set subflow priority",
            sys::MPTCP_PM_CMD_SET_FLAGS,
            token,
            l,
            &remote,
        )
    }

    pub(super) fn dump_announced(token: Token) -> Request {
        Request::pm(
            "list announced addresses",
            sys::MPTCP_PM_CMD_GET_ADDR,
            vec![nla_u32(sys::MPTCP_PM_ATTR_TOKEN, token.get())],
        )
        .dump()
    }
}

/// Kernels before 6.7 ignore the token of GET_ADDR: a dump for token 0 (no connection
/// has it) then succeeds with the in-kernel endpoints instead of failing.
pub(super) const NO_TOKEN_DUMP: Error = Error::Unsupported {
    feature: "listing a connection's addresses (MPTCP_PM_CMD_GET_ADDR with a token)",
    since: Some("6.7"),
};
