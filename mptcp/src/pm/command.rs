//! The path manager's operations as request/reply state machines, without a socket:
//! every multi-step rule (add, then find the id the kernel chose; check, then delete;
//! probe whether the kernel honours a token, then list) is written here once, and the
//! blocking [`PathManager`](super::PathManager) and the tokio
//! [`AsyncPathManager`](super::AsyncPathManager) both run it the same way:
//!
//! ```text
//! while let Some(req) = cmd.next_request()? {
//!     let outcome = send req, hand each reply to cmd.on_reply, until its ACK or DONE;
//!     cmd.on_done(outcome)?;
//! }
//! cmd.finish()
//! ```

use super::connection::NO_TOKEN_DUMP;
use super::endpoint::{added_id, bad, check_endpoint_addr, endpoints_in, limits_in};
use super::netlink::{Reply, Request};
use super::{Endpoint, Limits};
use crate::error::Result;
use crate::token::Token;
use std::net::IpAddr;
use std::sync::OnceLock;

/// What a client learnt of its kernel by asking, kept for its later operations (the
/// same cells in the blocking and the async client).
#[derive(Debug, Default)]
pub(crate) struct Probes {
    /// Whether GET_ADDR honours a token (Linux 6.7+).
    pub(crate) token_dump: OnceLock<bool>,
}

/// One operation: requests out, replies in, a typed result.
pub(crate) trait Command {
    /// What the operation returns.
    type Output;
    /// The next request to send; `None` when the operation is complete.
    fn next_request(&mut self) -> Result<Option<Request>>;
    /// One reply of the request in flight.
    fn on_reply(&mut self, reply: Reply<'_>) -> Result<()>;
    /// How the request in flight ended (its ACK or DONE, or the kernel's error, already
    /// classified); an error returned here ends the operation.
    fn on_done(&mut self, outcome: Result<()>) -> Result<()> {
        outcome
    }
    /// The result, once no request is left.
    fn finish(self) -> Result<Self::Output>;
}

/// One request whose only answer is its ACK.
pub(crate) struct Exec(Option<Result<Request>>);

impl Exec {
    pub(crate) fn new(req: Request) -> Self {
        Exec(Some(Ok(req)))
    }

    /// A request whose construction checked its arguments.
    pub(crate) fn checked(req: Result<Request>) -> Self {
        Exec(Some(req))
    }
}

impl Command for Exec {
    type Output = ();
    fn next_request(&mut self) -> Result<Option<Request>> {
        self.0.take().transpose()
    }
    fn on_reply(&mut self, _: Reply<'_>) -> Result<()> {
        Ok(())
    }
    fn finish(self) -> Result<()> {
        Ok(())
    }
}

/// A GET_ADDR request or dump: the endpoints it answers with.
pub(crate) struct ListEndpoints {
    req: Option<Request>,
    out: Vec<Endpoint>,
}

impl ListEndpoints {
    pub(crate) fn all() -> Self {
        ListEndpoints {
            req: Some(Request::dump_endpoints()),
            out: Vec::new(),
        }
    }
}

impl Command for ListEndpoints {
    type Output = Vec<Endpoint>;
    fn next_request(&mut self) -> Result<Option<Request>> {
        Ok(self.req.take())
    }
    fn on_reply(&mut self, reply: Reply<'_>) -> Result<()> {
        endpoints_in(reply, &mut self.out)
    }
    fn finish(self) -> Result<Vec<Endpoint>> {
        Ok(self.out)
    }
}

/// The endpoint with one id.
pub(crate) struct GetEndpoint(ListEndpoints);

impl GetEndpoint {
    pub(crate) fn new(id: u8) -> Self {
        GetEndpoint(ListEndpoints {
            req: Some(Request::get_endpoint(id)),
            out: Vec::with_capacity(1),
        })
    }
}

impl Command for GetEndpoint {
    type Output = Endpoint;
    fn next_request(&mut self) -> Result<Option<Request>> {
        self.0.next_request()
    }
    fn on_reply(&mut self, reply: Reply<'_>) -> Result<()> {
        self.0.on_reply(reply)
    }
    fn finish(self) -> Result<Endpoint> {
        let mut out = self.0.finish()?;
        out.pop().ok_or_else(|| bad("no endpoint in the reply"))
    }
}

/// GET_LIMITS.
pub(crate) struct GetLimits {
    req: Option<Request>,
    out: Limits,
}

impl GetLimits {
    pub(crate) fn new() -> Self {
        GetLimits {
            req: Some(Request::get_limits()),
            out: Limits::default(),
        }
    }
}

impl Command for GetLimits {
    type Output = Limits;
    fn next_request(&mut self) -> Result<Option<Request>> {
        Ok(self.req.take())
    }
    fn on_reply(&mut self, reply: Reply<'_>) -> Result<()> {
        limits_in(reply, &mut self.out)
    }
    fn finish(self) -> Result<Limits> {
        Ok(self.out)
    }
}

/// ADD_ADDR, then (when the kernel chose the id) a dump to find it.
pub(crate) struct AddEndpoint {
    ep: Endpoint,
    added: bool,
    listed: Option<ListEndpoints>,
}

impl AddEndpoint {
    pub(crate) fn new(ep: &Endpoint) -> Self {
        AddEndpoint {
            ep: ep.clone(),
            added: false,
            listed: None,
        }
    }
}

impl Command for AddEndpoint {
    type Output = u8;
    fn next_request(&mut self) -> Result<Option<Request>> {
        if !self.added {
            self.added = true;
            return Ok(Some(Request::add_endpoint(&self.ep)));
        }
        if self.ep.id != 0 {
            return Ok(None);
        }
        match &mut self.listed {
            Some(l) => l.next_request(),
            None => self.listed.insert(ListEndpoints::all()).next_request(),
        }
    }
    fn on_reply(&mut self, reply: Reply<'_>) -> Result<()> {
        match &mut self.listed {
            Some(l) => l.on_reply(reply),
            None => Ok(()),
        }
    }
    fn finish(self) -> Result<u8> {
        match self.listed {
            None => Ok(self.ep.id),
            Some(l) => added_id(&self.ep, &l.finish()?),
        }
    }
}

/// DEL_ADDR by id and address: for a non-zero id, the endpoint is read first and
/// nothing is deleted unless the address is its own.
pub(crate) struct DeleteEndpointAddr {
    id: u8,
    addr: IpAddr,
    current: Option<GetEndpoint>,
    deleted: bool,
}

impl DeleteEndpointAddr {
    pub(crate) fn new(id: u8, addr: IpAddr) -> Self {
        DeleteEndpointAddr {
            id,
            addr,
            current: (id != 0).then(|| GetEndpoint::new(id)),
            deleted: false,
        }
    }
}

impl Command for DeleteEndpointAddr {
    type Output = ();
    fn next_request(&mut self) -> Result<Option<Request>> {
        if let Some(get) = &mut self.current {
            if let Some(req) = get.next_request()? {
                return Ok(Some(req));
            }
            if let Some(get) = self.current.take() {
                check_endpoint_addr(self.id, &get.finish()?, self.addr)?;
            }
        }
        if self.deleted {
            return Ok(None);
        }
        self.deleted = true;
        Ok(Some(Request::delete_endpoint_addr(self.id, self.addr)))
    }
    fn on_reply(&mut self, reply: Reply<'_>) -> Result<()> {
        match &mut self.current {
            Some(get) => get.on_reply(reply),
            None => Ok(()),
        }
    }
    fn finish(self) -> Result<()> {
        Ok(())
    }
}

/// The addresses announced on a connection. Kernels before 6.7 ignore the token of
/// GET_ADDR and would list the in-kernel endpoints instead: a dump for token 0, which
/// no connection has, tells (it fails where the token is honoured). The answer is kept
/// in the client's `honoured` cell, so each client asks once.
pub(crate) struct AnnouncedAddresses<'a> {
    token: Token,
    honoured: &'a OnceLock<bool>,
    probing: bool,
    list: Option<ListEndpoints>,
}

impl<'a> AnnouncedAddresses<'a> {
    pub(crate) fn new(token: Token, honoured: &'a OnceLock<bool>) -> Self {
        AnnouncedAddresses {
            token,
            honoured,
            probing: false,
            list: None,
        }
    }
}

impl Command for AnnouncedAddresses<'_> {
    type Output = Vec<Endpoint>;
    fn next_request(&mut self) -> Result<Option<Request>> {
        match self.honoured.get() {
            None => {
                self.probing = true;
                Ok(Some(Request::dump_announced(Token::new(0))))
            }
            Some(false) => Err(NO_TOKEN_DUMP),
            Some(true) => match &mut self.list {
                Some(l) => l.next_request(),
                None => {
                    let l = self.list.insert(ListEndpoints {
                        req: Some(Request::dump_announced(self.token)),
                        out: Vec::new(),
                    });
                    l.next_request()
                }
            },
        }
    }
    fn on_reply(&mut self, reply: Reply<'_>) -> Result<()> {
        match &mut self.list {
            Some(l) if !self.probing => l.on_reply(reply),
            _ => Ok(()),
        }
    }
    fn on_done(&mut self, outcome: Result<()>) -> Result<()> {
        if std::mem::take(&mut self.probing) {
            // Another task may have asked at the same time: the first answer stands.
            let _ = self.honoured.set(outcome.is_err());
            return Ok(());
        }
        outcome
    }
    fn finish(self) -> Result<Vec<Endpoint>> {
        self.list.map_or(Ok(Vec::new()), ListEndpoints::finish)
    }
}

#[cfg(test)]
mod tests {
    //! The rules without a kernel: which request comes after which outcome, and what
    //! the replies add up to.
    use super::*;
    use crate::error::Error;
    use crate::pm::netlink::nla_nested;
    use crate::pm::EndpointFlags;
    use mptcp_sys as sys;
    use netlink_packet_core::Emitable;

    /// The attributes of a GET_ADDR reply holding one endpoint.
    fn endpoint_reply(ep: &Endpoint) -> Vec<u8> {
        let nested = [nla_nested(sys::MPTCP_PM_ATTR_ADDR, &ep.attrs())];
        let mut b = vec![0u8; nested.as_slice().buffer_len()];
        nested.as_slice().emit(&mut b);
        b
    }

    fn reply(attrs: &[u8]) -> Reply<'_> {
        Reply {
            cmd: sys::MPTCP_PM_CMD_GET_ADDR as u8,
            version: sys::MPTCP_PM_VER as u8,
            attrs,
        }
    }

    fn cmd_of(r: Result<Option<Request>>) -> Option<u32> {
        r.expect("no error").map(|r| u32::from(r.cmd))
    }

    #[test]
    fn an_endpoint_added_without_an_id_is_found_in_a_dump() {
        let addr = "192.0.2.7".parse().expect("address");
        let mut add = AddEndpoint::new(&Endpoint::new(addr, EndpointFlags::SUBFLOW));
        assert_eq!(cmd_of(add.next_request()), Some(sys::MPTCP_PM_CMD_ADD_ADDR));
        add.on_done(Ok(())).expect("added");
        let dump = add.next_request().expect("ok").expect("a dump");
        assert!(dump.dump);
        let other = endpoint_reply(
            &Endpoint::new("192.0.2.8".parse().expect("a"), EndpointFlags::SIGNAL).with_id(3),
        );
        let ours = endpoint_reply(&Endpoint::new(addr, EndpointFlags::SUBFLOW).with_id(9));
        add.on_reply(reply(&other)).expect("decoded");
        add.on_reply(reply(&ours)).expect("decoded");
        add.on_done(Ok(())).expect("done");
        assert!(add.next_request().expect("ok").is_none());
        assert_eq!(add.finish().expect("id"), 9);

        // With an id, nothing but the add.
        let mut add = AddEndpoint::new(&Endpoint::new(addr, EndpointFlags::SUBFLOW).with_id(4));
        assert!(add.next_request().expect("ok").is_some());
        add.on_done(Ok(())).expect("added");
        assert!(add.next_request().expect("ok").is_none());
        assert_eq!(add.finish().expect("id"), 4);
    }

    #[test]
    fn delete_by_address_checks_before_it_deletes() {
        let mine: IpAddr = "192.0.2.1".parse().expect("address");
        let theirs = endpoint_reply(
            &Endpoint::new("192.0.2.2".parse().expect("a"), EndpointFlags::SIGNAL).with_id(5),
        );
        let mut del = DeleteEndpointAddr::new(5, mine);
        assert_eq!(cmd_of(del.next_request()), Some(sys::MPTCP_PM_CMD_GET_ADDR));
        del.on_reply(reply(&theirs)).expect("decoded");
        del.on_done(Ok(())).expect("read");
        match del.next_request() {
            Err(Error::InvalidArgument { reason, .. }) => {
                assert!(reason.contains("nothing deleted"), "{reason}")
            }
            other => panic!("the delete must not be sent: {other:?}"),
        }
        // Its own address: the delete follows.
        let own = endpoint_reply(&Endpoint::new(mine, EndpointFlags::SIGNAL).with_id(5));
        let mut del = DeleteEndpointAddr::new(5, mine);
        del.next_request().expect("ok");
        del.on_reply(reply(&own)).expect("decoded");
        del.on_done(Ok(())).expect("read");
        assert_eq!(cmd_of(del.next_request()), Some(sys::MPTCP_PM_CMD_DEL_ADDR));
        del.on_done(Ok(())).expect("deleted");
        assert!(del.next_request().expect("ok").is_none());
        // Id 0 (the initial subflows' address) is deleted by address at once.
        let mut del = DeleteEndpointAddr::new(0, mine);
        assert_eq!(cmd_of(del.next_request()), Some(sys::MPTCP_PM_CMD_DEL_ADDR));
    }

    /// The token probe runs once per client: a kernel that answers the probe with a
    /// list (it ignores the token, before 6.7) is remembered as one.
    #[test]
    fn the_token_probe_is_asked_once_and_remembered() {
        let cell = OnceLock::new();
        let t = Token::new(0x1234);
        let mut a = AnnouncedAddresses::new(t, &cell);
        let probe = a.next_request().expect("ok").expect("the probe");
        assert!(probe.dump);
        // An old kernel lists the in-kernel endpoints: ignored, not returned.
        let ep = endpoint_reply(
            &Endpoint::new("192.0.2.9".parse().expect("a"), EndpointFlags::SIGNAL).with_id(1),
        );
        a.on_reply(reply(&ep)).expect("decoded");
        a.on_done(Ok(()))
            .expect("the probe's answer is kept, not returned");
        assert!(matches!(
            a.next_request(),
            Err(Error::Unsupported {
                since: Some("6.7"),
                ..
            })
        ));
        assert_eq!(cell.get(), Some(&false));
        // The next call does not ask again.
        let mut again = AnnouncedAddresses::new(t, &cell);
        assert!(again.next_request().is_err());

        // A kernel that honours the token refuses token 0: then the list is asked for.
        let cell = OnceLock::new();
        let mut a = AnnouncedAddresses::new(t, &cell);
        a.next_request().expect("ok");
        a.on_done(Err(Error::invalid("x", "invalid token")))
            .expect("kept");
        assert_eq!(cell.get(), Some(&true));
        let list = a.next_request().expect("ok").expect("the list");
        assert!(list.dump);
        a.on_reply(reply(&ep)).expect("decoded");
        a.on_done(Ok(())).expect("done");
        assert!(a.next_request().expect("ok").is_none());
        assert_eq!(a.finish().expect("list").len(), 1);
    }
}
