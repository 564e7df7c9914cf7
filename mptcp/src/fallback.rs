//! Falling back per socket: under [`Mode::Prefer`](crate::Mode::Prefer), an option
//! that an unconnected MPTCP socket refuses and plain TCP takes turns the socket into
//! plain TCP, in the same descriptor number, with the options set before and the bind
//! carried over; [`status`](crate::status) then says why. Every option setter of the
//! socket builders goes through [`Core::apply`].

use crate::error::{Error, Result};
use crate::socket::Core;
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::{socket::tcp, Mode, Unavailable};
use socket2::Socket;
use std::io;
use std::sync::{Mutex, MutexGuard};

/// One option set on the socket, to set again on its replacement.
type Applied = Box<dyn Fn(&Socket) -> io::Result<()> + Send + Sync>;

/// What an MPTCP socket under `Prefer` was given so far.
#[derive(Default)]
pub(crate) struct Replay {
    applied: Vec<Applied>,
    /// The address `bind` was given (its port 0 when the kernel was to choose one).
    bound: Option<std::net::SocketAddr>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("applied", &self.applied.len())
            .field("bound", &self.bound)
            .finish()
    }
}

fn lock(m: &Mutex<Replay>) -> MutexGuard<'_, Replay> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which option a setter sets: its name for errors, and on Linux what the fallback
/// reports.
#[derive(Clone, Copy)]
pub(crate) struct Opt {
    pub(crate) op: &'static str,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) opt: crate::sockopt::SockOpt,
}

impl Core {
    /// Sets an option with `set`, on this socket or, under `Prefer` when MPTCP refuses
    /// what plain TCP takes, on a plain TCP socket that takes this one's place.
    pub(crate) fn apply<F>(&self, opt: Opt, set: F) -> Result<()>
    where
        F: Fn(&Socket) -> io::Result<()> + Send + Sync + 'static,
    {
        // Held for the whole call: a setter on another thread waits for a replacement to
        // finish rather than set its option on the socket being replaced.
        let mut replay = self.replay.as_ref().map(lock);
        let refused = match set(&self.socket) {
            Ok(()) => {
                if let Some(r) = replay.as_mut() {
                    r.applied.push(Box::new(set));
                }
                return Ok(());
            }
            Err(e) => e,
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.plain.get().is_none() {
            if let Some(r) = replay.as_mut() {
                if let Some(tcp) = self.plain_tcp_taking(r, &set) {
                    let errno = refused.raw_os_error().unwrap_or(0);
                    self.become_plain(tcp, r.bound, opt.opt, errno)?;
                    r.applied.push(Box::new(set));
                    return Ok(());
                }
            } else if self.mode == Mode::Require
                && self.plain_tcp_taking(&Replay::default(), &set).is_some()
            {
                return Err(Error::OptionRefused {
                    option: opt.opt,
                    error: refused,
                });
            }
        }
        Err(Error::os(opt.op, refused))
    }

    /// Records a successful bind, for the replacement to bind the same address.
    pub(crate) fn bound(&self, requested: std::net::SocketAddr) {
        if let Some(r) = &self.replay {
            lock(r).bound = Some(requested);
        }
    }

    /// A plain TCP socket of this one's family and blocking mode with everything in
    /// `replay` and then `set` applied, or `None` when plain TCP refuses any of it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn plain_tcp_taking(
        &self,
        replay: &Replay,
        set: &dyn Fn(&Socket) -> io::Result<()>,
    ) -> Option<Socket> {
        let tcp = tcp(self.domain.raw()).ok()?;
        if self.socket.nonblocking().ok()? {
            tcp.set_nonblocking(true).ok()?;
        }
        for a in &replay.applied {
            a(&tcp).ok()?;
        }
        set(&tcp).ok()?;
        Some(tcp)
    }

    /// Puts `tcp` in this socket's descriptor number (closing the MPTCP socket), binds it
    /// to the address and port the MPTCP socket had (a program may have read them), and
    /// records why. Only when that port stays taken and the program had asked for any
    /// port (0) does it get another one.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn become_plain(
        &self,
        tcp: Socket,
        bound: Option<std::net::SocketAddr>,
        option: crate::sockopt::SockOpt,
        errno: i32,
    ) -> Result<()> {
        use std::os::fd::AsFd;
        let addr = match bound {
            Some(requested) => Some((
                self.socket
                    .local_addr()
                    .map_err(|e| Error::os("getsockname", e))?,
                requested,
            )),
            None => None,
        };
        crate::sys::replace_socket(self.socket.as_fd(), tcp.into())
            .map_err(|e| Error::os("dup3", e))?;
        let why = Unavailable::OptionRefused { option, errno };
        let _ = self.plain.set(why);
        remember(self.socket.as_fd(), why);
        if let Some((had, requested)) = addr {
            match rebind(&self.socket, &had) {
                // Still taken after the wait: a program that asked for any port gets
                // another one rather than an error.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && requested.port() == 0 => {
                    self.socket.bind(&requested.into())
                }
                other => other,
            }
            .map_err(|e| Error::os("bind", e))?;
        }
        Ok(())
    }
}

/// Binds the replacement to the port the MPTCP socket had. The kernel may release the
/// closed MPTCP socket's port a moment later (seen on an emulated arm64 6.12), so
/// `EADDRINUSE` is retried for up to [`REBIND_FOR`].
#[cfg(any(target_os = "linux", target_os = "android"))]
fn rebind(socket: &Socket, addr: &socket2::SockAddr) -> io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match socket.bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && start.elapsed() < REBIND_FOR => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

/// How long [`rebind`] retries.
#[cfg(any(target_os = "linux", target_os = "android"))]
const REBIND_FOR: std::time::Duration = std::time::Duration::from_millis(500);

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use registry::{remember, why_plain};

/// Which sockets this process's builders made plain TCP under `Prefer`, by socket
/// cookie (an id the kernel never reuses): what [`status`](crate::status) reports.
/// Bounded: the oldest of more than [`KEPT`](registry::KEPT) are forgotten.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod registry {
    use super::*;
    use std::collections::VecDeque;
    use std::os::fd::BorrowedFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    pub(super) const KEPT: usize = 4096;
    static PLAIN: Mutex<VecDeque<(u64, Unavailable)>> = Mutex::new(VecDeque::new());
    /// Set by the first entry: until then a lookup costs no system call.
    static ANY: AtomicBool = AtomicBool::new(false);

    fn plain() -> MutexGuard<'static, VecDeque<(u64, Unavailable)>> {
        PLAIN.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records why the socket is plain TCP.
    pub(crate) fn remember(fd: BorrowedFd<'_>, why: Unavailable) {
        let Ok(cookie) = crate::sys::so_cookie(fd) else {
            return;
        };
        let mut p = plain();
        if p.len() >= KEPT {
            p.pop_front();
        }
        p.push_back((cookie, why));
        ANY.store(true, Ordering::Relaxed);
    }

    /// Why a builder of this process made the socket plain TCP, if one did.
    pub(crate) fn why_plain(fd: BorrowedFd<'_>) -> Option<Unavailable> {
        if !ANY.load(Ordering::Relaxed) {
            return None;
        }
        let cookie = crate::sys::so_cookie(fd).ok()?;
        plain()
            .iter()
            .rev()
            .find(|(c, _)| *c == cookie)
            .map(|(_, w)| *w)
    }
}
