//! The userspace path manager's per-connection commands, by token.

use super::endpoint::{endpoints_of, local_attrs, Endpoint, EndpointFlags};
use super::netlink::Attr;
use super::PathManager;
use crate::error::{Error, Result};
use crate::Token;
use mptcp_sys as sys;
use std::net::SocketAddr;

impl PathManager {
    /// Userspace PM: announces a local address (with a nonzero id) on the connection with
    /// this token (ADD_ADDR).
    #[doc(alias = "MPTCP_PM_CMD_ANNOUNCE")]
    pub fn announce(&mut self, token: Token, id: u8, addr: SocketAddr) -> Result<()> {
        let ep = local_attrs(&addr, Some(id), EndpointFlags::SIGNAL);
        self.request(
            "announce address",
            sys::MPTCP_PM_CMD_ANNOUNCE,
            vec![
                Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &ep),
            ],
            false,
        )
        .map(drop)
    }

    /// Userspace PM: withdraws the announced address with this id (REMOVE_ADDR).
    #[doc(alias = "MPTCP_PM_CMD_REMOVE")]
    pub fn remove(&mut self, token: Token, id: u8) -> Result<()> {
        self.request(
            "remove address",
            sys::MPTCP_PM_CMD_REMOVE,
            vec![
                Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                Attr::u8(sys::MPTCP_PM_ATTR_LOC_ID, id),
            ],
            false,
        )
        .map(drop)
    }

    /// A per-subflow userspace-PM command: token, local address (with its attributes),
    /// remote address.
    fn subflow_request(
        &mut self,
        op: &'static str,
        cmd: u32,
        token: Token,
        local: Vec<Attr>,
        remote: &SocketAddr,
    ) -> Result<()> {
        let r = local_attrs(remote, None, EndpointFlags::empty());
        self.request(
            op,
            cmd,
            vec![
                Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &local),
                Attr::nested(sys::MPTCP_PM_ATTR_ADDR_REMOTE, &r),
            ],
            false,
        )
        .map(drop)
    }

    /// Userspace PM: opens a subflow from `local` (address id `local_id`; port 0 lets
    /// the kernel choose) to `remote`.
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_CREATE")]
    pub fn subflow_create(
        &mut self,
        token: Token,
        local_id: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<()> {
        let l = local_attrs(&local, Some(local_id), EndpointFlags::empty());
        self.subflow_request(
            "create subflow",
            sys::MPTCP_PM_CMD_SUBFLOW_CREATE,
            token,
            l,
            &remote,
        )
    }

    /// Userspace PM: closes the subflow between `local` and `remote` (both with ports).
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_DESTROY")]
    pub fn subflow_destroy(
        &mut self,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<()> {
        let l = local_attrs(&local, None, EndpointFlags::empty());
        self.subflow_request(
            "destroy subflow",
            sys::MPTCP_PM_CMD_SUBFLOW_DESTROY,
            token,
            l,
            &remote,
        )
    }

    /// Userspace PM: sets or clears backup on the subflow between `local` and `remote`;
    /// the kernel sends MP_PRIO to the peer.
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    pub fn set_backup(
        &mut self,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<()> {
        let flags = if backup {
            EndpointFlags::BACKUP
        } else {
            EndpointFlags::empty()
        };
        let mut l = local_attrs(&local, None, EndpointFlags::empty());
        l.push(Attr::u32(sys::MPTCP_PM_ADDR_ATTR_FLAGS, flags.bits()));
        self.subflow_request(
            "set subflow priority",
            sys::MPTCP_PM_CMD_SET_FLAGS,
            token,
            l,
            &remote,
        )
    }

    /// Userspace PM: the addresses announced on the connection with this token.
    ///
    /// Kernels before 6.7 ignore the token of this request and would list the in-kernel
    /// path manager's endpoints instead; that is detected (once per client, by asking
    /// about token 0, which no connection has) and reported as [`Error::Unsupported`].
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    pub fn announced(&mut self, token: Token) -> Result<Vec<Endpoint>> {
        if self.token_dump.is_none() {
            let probe = self.request(
                "list announced addresses",
                sys::MPTCP_PM_CMD_GET_ADDR,
                vec![Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, 0)],
                true,
            );
            self.token_dump = Some(probe.is_err());
        }
        if self.token_dump == Some(false) {
            return Err(Error::Unsupported {
                feature: "listing a connection's addresses (MPTCP_PM_CMD_GET_ADDR with a token)",
                since: Some("6.7"),
            });
        }
        let replies = self.request(
            "list announced addresses",
            sys::MPTCP_PM_CMD_GET_ADDR,
            vec![Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get())],
            true,
        )?;
        endpoints_of(&replies)
    }
}
