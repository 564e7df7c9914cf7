//! The blocking Generic Netlink client ([`Conn`]) and the socket both clients open; the
//! requests, replies and their meaning (`step`) are `netlink.rs`, without a socket.

use super::netlink::{decode_err, messages, recv, step, Family, Reply, Request, Step, RECV_BUF};
use crate::error::{Error, Result};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

/// A Generic Netlink socket, bound and connected to the kernel, with extended acks asked
/// for (best effort: older kernels lack them and then send plain errors).
pub(crate) fn open_socket() -> Result<Socket> {
    let mut sock =
        Socket::new(NETLINK_GENERIC).map_err(|e| Error::os("socket(NETLINK_GENERIC)", e))?;
    sock.bind_auto()
        .map_err(|e| Error::os("bind netlink socket", e))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| Error::os("connect netlink socket", e))?;
    let _ = sock.set_ext_ack(true);
    let _ = sock.set_cap_ack(true);
    Ok(sock)
}

/// A blocking Generic Netlink client: one request at a time, replies read in place from
/// one reused buffer.
#[derive(Debug)]
pub(crate) struct Conn {
    pub sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open() -> Result<Conn> {
        Ok(Conn {
            sock: open_socket()?,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Sends `req` to `family` and hands each reply to `each`, until the ACK (or DONE
    /// for dumps): one `send`, then one `recv` per datagram.
    pub fn transact(
        &mut self,
        family: u16,
        req: &Request,
        mut each: impl FnMut(Reply<'_>) -> Result<()>,
    ) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.sock
            .send(&req.serialize(family, seq), 0)
            .map_err(|e| Error::os(req.op, e))?;
        loop {
            recv(&self.sock, &mut self.buf).map_err(|e| Error::os(req.op, e))?;
            for m in messages(&self.buf) {
                let m = m.map_err(decode_err)?;
                if m.sequence_number() != seq {
                    continue;
                }
                match step(req, &m)? {
                    Step::Reply(r) => each(r)?,
                    Step::Done => return Ok(()),
                    Step::Skip => {}
                }
            }
        }
    }

    /// Resolves a Generic Netlink family by name.
    pub fn family(&mut self, name: &str) -> Result<Family> {
        let (req, ctrl) = Family::request(name);
        let mut fam = Family::default();
        let outcome = self.transact(ctrl, &req, |r| fam.add_reply(r));
        fam.finish(outcome)
    }
}
