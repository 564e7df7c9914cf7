//! The async Generic Netlink client (feature `tokio`): a non-blocking socket on tokio's
//! reactor, shared by every clone of a client. Requests from many tasks are in flight
//! at once; each reply is matched to its request by sequence number.
//!
//! Whichever task finds the socket readable drains it: every message goes to the slot
//! of its sequence number, and the slot's owner is woken when its request completes.
//! The kernel runs one dump per socket at a time (a second one is `EBUSY`), so dumps
//! wait for each other on an async lock; other requests are never held back. No other
//! lock is held across an `.await`, and nothing blocks a runtime thread.

use super::blocking_netlink::open_socket;
use super::netlink::{messages, recv, step, Reply, Request, Step, RECV_BUF};
use crate::error::{Error, Result};
use netlink_sys::Socket;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// One reply, copied out of the receive buffer for its task.
#[derive(Debug, Clone)]
pub(crate) struct OwnedReply {
    cmd: u8,
    version: u8,
    attrs: Vec<u8>,
}

impl OwnedReply {
    pub fn get(&self) -> Reply<'_> {
        Reply {
            cmd: self.cmd,
            version: self.version,
            attrs: &self.attrs,
        }
    }
}

/// A request in flight.
#[derive(Debug)]
struct Slot {
    req: Request,
    replies: Vec<OwnedReply>,
    outcome: Option<Result<()>>,
    done: Arc<Notify>,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<u32, Slot>,
    buf: Vec<u8>,
}

/// The shared client.
#[derive(Debug)]
pub(crate) struct AsyncConn {
    fd: AsyncFd<Socket>,
    seq: AtomicU32,
    state: Mutex<State>,
    /// Held for the whole of a dump.
    dump: tokio::sync::Mutex<()>,
}

/// Forgets a request whose future was dropped before it completed.
struct Forget<'a> {
    conn: &'a AsyncConn,
    seq: u32,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.conn.lock().slots.remove(&self.seq);
    }
}

impl AsyncConn {
    /// Opens the socket (non-blocking) and registers it with the current runtime.
    pub fn open() -> Result<AsyncConn> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(
                "open an async path-manager client",
                "not called from inside a tokio runtime",
            ));
        }
        let sock = open_socket()?;
        sock.set_non_blocking(true)
            .map_err(|e| Error::os("fcntl(O_NONBLOCK)", e))?;
        let fd =
            crate::sys::register_netlink(sock).map_err(|e| Error::os("register with tokio", e))?;
        Ok(AsyncConn {
            fd,
            seq: AtomicU32::new(0),
            state: Mutex::new(State {
                slots: HashMap::new(),
                buf: Vec::with_capacity(RECV_BUF),
            }),
            dump: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one
        // insert, push or assignment.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `req` to `family` and returns its replies once the ACK (or a dump's DONE)
    /// has arrived.
    pub async fn transact(&self, family: u16, req: &Request) -> Result<Vec<OwnedReply>> {
        let _dump = match req.dump {
            true => Some(self.dump.lock().await),
            false => None,
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let done = Arc::new(Notify::new());
        self.lock().slots.insert(
            seq,
            Slot {
                req: req.clone(),
                replies: Vec::new(),
                outcome: None,
                done: done.clone(),
            },
        );
        let _forget = Forget { conn: self, seq };
        let bytes = req.serialize(family, seq);
        loop {
            let mut guard = self.fd.writable().await.map_err(|e| Error::os(req.op, e))?;
            match guard.try_io(|s| s.get_ref().send(&bytes, 0)) {
                Ok(r) => {
                    r.map_err(|e| Error::os(req.op, e))?;
                    break;
                }
                Err(_would_block) => continue,
            }
        }
        loop {
            if let Some(result) = self.take_if_done(seq) {
                return result;
            }
            // Wait until either another task delivered our replies, or the socket has
            // something to read (for anyone: it is dispatched by sequence number).
            let mut notified = pin!(done.notified());
            let mut readable = pin!(self.fd.readable());
            let ready = std::future::poll_fn(|cx| {
                if notified.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                readable.as_mut().poll(cx).map(Some)
            })
            .await;
            if let Some(guard) = ready {
                let mut guard = guard.map_err(|e| Error::os(req.op, e))?;
                let mut state = self.lock();
                loop {
                    let State { slots, buf } = &mut *state;
                    match guard.try_io(|s| recv(s.get_ref(), buf)) {
                        Ok(Ok(_)) => dispatch(buf, slots),
                        Ok(Err(e)) => fail_all(slots, &e),
                        Err(_would_block) => break,
                    }
                }
            }
        }
    }

    fn take_if_done(&self, seq: u32) -> Option<Result<Vec<OwnedReply>>> {
        let mut state = self.lock();
        // Not done yet: nothing to take.
        state.slots.get(&seq)?.outcome.as_ref()?;
        let slot = state.slots.remove(&seq)?;
        Some(slot.outcome?.map(|()| slot.replies))
    }
}

/// Files the messages of one datagram with the requests they answer.
fn dispatch(buf: &[u8], slots: &mut HashMap<u32, Slot>) {
    for m in messages(buf) {
        let Ok(m) = m else {
            // The framing is broken: nothing after this point can be trusted.
            let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad netlink framing");
            fail_all(slots, &e);
            return;
        };
        // Replies of requests whose futures were dropped are discarded.
        let Some(slot) = slots.get_mut(&m.sequence_number()) else {
            continue;
        };
        if slot.outcome.is_some() {
            continue;
        }
        match step(&slot.req, &m) {
            Ok(Step::Reply(r)) => slot.replies.push(OwnedReply {
                cmd: r.cmd,
                version: r.version,
                attrs: r.attrs.to_vec(),
            }),
            Ok(Step::Skip) => {}
            Ok(Step::Done) => finish(slot, Ok(())),
            Err(e) => finish(slot, Err(e)),
        }
    }
}

fn finish(slot: &mut Slot, outcome: Result<()>) {
    slot.outcome = Some(outcome);
    slot.done.notify_one();
}

/// A receive error concerns every request in flight (their replies may be lost).
fn fail_all(slots: &mut HashMap<u32, Slot>, e: &std::io::Error) {
    for slot in slots.values_mut().filter(|s| s.outcome.is_none()) {
        let err = std::io::Error::new(e.kind(), e.to_string());
        let err = match e.raw_os_error() {
            Some(errno) => std::io::Error::from_raw_os_error(errno),
            None => err,
        };
        let op = slot.req.op;
        finish(slot, Err(Error::os(op, err)));
    }
}
