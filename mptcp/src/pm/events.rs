//! The subscription to the path manager's events: a blocking iterator ([`Events`]) and
//! a tokio stream ([`EventStream`]), both decoding each datagram with
//! `event::decode_datagram`.

use super::event::{decode_datagram, EventItem};
use super::netlink::{recv, RECV_BUF};
use crate::error::{Error, Result};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket};
use std::collections::VecDeque;

/// A subscription to the path manager's events: a blocking iterator.
///
/// ```no_run
/// let pm = mptcp::pm::PathManager::new()?;
/// for item in pm.events()? {
///     match item? {
///         mptcp::pm::EventItem::Event(ev) => println!("{} token {:?}", ev.kind().name(), ev.token()),
///         mptcp::pm::EventItem::Lost => eprintln!("events were lost"),
///         _ => {}
///     }
/// }
/// # Ok::<(), mptcp::Error>(())
/// ```
#[derive(Debug)]
pub struct Events {
    sock: Socket,
    queue: VecDeque<Result<EventItem>>,
    /// The receive buffer, reused for every datagram.
    buf: Vec<u8>,
}

impl Events {
    pub(crate) fn subscribe(group: u32) -> Result<Events> {
        let mut sock =
            Socket::new(NETLINK_GENERIC).map_err(|e| Error::os("socket(NETLINK_GENERIC)", e))?;
        sock.bind_auto()
            .map_err(|e| Error::os("bind netlink socket", e))?;
        sock.add_membership(group)
            .map_err(|e| match e.raw_os_error() {
                Some(errno @ libc::EPERM) => Error::PermissionDenied {
                    op: "subscribe to path manager events",
                    message: None,
                    errno,
                },
                _ => Error::os("subscribe to path manager events", e),
            })?;
        Ok(Events {
            sock,
            queue: VecDeque::new(),
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Sets the socket's receive buffer, so that bursts of events are not lost (see
    /// [`EventItem::Lost`]), and returns the size the kernel granted, as
    /// `getsockopt(SO_RCVBUF)` reports it.
    ///
    /// How much a buffer holds (measured on Linux 6.18 x86_64 by the test
    /// `default_event_buffer_holds_a_burst_and_a_large_one_holds_more`): each queued
    /// event costs about 830 bytes of buffer, so the default (`net.core.rmem_default`,
    /// 212 992 bytes) holds 256 events, and a 32 MiB one took a 4 000-event burst without
    /// loss. Reading
    /// is rarely the limit (see the event-decode row of the README's benchmark table,
    /// from `cargo xtask bench`); what a buffer must cover is the events that
    /// arrive while the reader is busy elsewhere: a reader that pauses 10 ms keeps up
    /// with about 25 000 events per second on the default buffer. Each connection makes
    /// at least three events per end (created, established, closed), plus two per extra
    /// subflow.
    ///
    /// With `CAP_NET_ADMIN` in the initial user namespace this uses `SO_RCVBUFFORCE`,
    /// which may exceed `net.core.rmem_max`; otherwise `SO_RCVBUF`, which the kernel
    /// caps there. The kernel doubles the value for its bookkeeping, so the size
    /// reported is about twice the one asked for (or twice the cap).
    #[doc(alias = "SO_RCVBUFFORCE")]
    #[doc(alias = "SO_RCVBUF")]
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<usize> {
        crate::netlink::set_receive_buffer(std::os::fd::AsFd::as_fd(&self.sock), bytes)
    }

    /// The socket's receive buffer size (`getsockopt(SO_RCVBUF)`).
    pub fn receive_buffer(&self) -> Result<usize> {
        crate::netlink::receive_buffer(std::os::fd::AsFd::as_fd(&self.sock))
    }

    /// Sets a timeout for [`next`](Iterator::next): `None` blocks; a zero duration is
    /// [`Error::InvalidArgument`] (the kernel would read it as "block"); durations
    /// below one microsecond, the kernel's resolution, are rounded up to it.
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> Result<()> {
        // The kernel reads a zero timeval as "no timeout": refuse zero as std's
        // set_read_timeout does, and round what is below its microsecond resolution up.
        let timeout = match timeout {
            Some(d) if d.is_zero() => {
                return Err(Error::invalid(
                    "set event timeout",
                    "a zero timeout would mean none: use None to block",
                ))
            }
            Some(d) => Some(d.max(std::time::Duration::from_micros(1))),
            None => None,
        };
        socket2::SockRef::from(&self.sock)
            .set_read_timeout(timeout)
            .map_err(|e| Error::os("setsockopt(SO_RCVTIMEO)", e))
    }

    /// Receives one datagram and queues what it holds.
    fn fill(&mut self) -> Result<()> {
        match recv(&self.sock, &mut self.buf) {
            Ok(_) => {
                decode_datagram(&self.buf, &mut self.queue);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.queue.push_back(Ok(EventItem::Lost));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(Error::TimedOut("receive path manager events"))
            }
            Err(e) => Err(Error::os("receive path manager events", e)),
        }
    }

    /// Turns the subscription into a tokio `Stream` (feature `tokio`). Outside a tokio
    /// runtime (with its I/O driver) this is [`Error::InvalidArgument`], not a panic.
    #[cfg(feature = "tokio")]
    pub fn into_stream(self) -> Result<EventStream> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(
                "turn events into a stream",
                "not called from inside a tokio runtime",
            ));
        }
        self.sock
            .set_non_blocking(true)
            .map_err(|e| Error::os("fcntl(O_NONBLOCK)", e))?;
        let fd = crate::sys::register_netlink(self.sock)
            .map_err(|e| Error::os("register with tokio", e))?;
        Ok(EventStream {
            fd,
            queue: self.queue,
            buf: self.buf,
        })
    }
}

impl Iterator for Events {
    type Item = Result<EventItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if let Err(e) = self.fill() {
                return Some(Err(e));
            }
        }
    }
}

/// The events as a tokio `Stream` ([`Events::into_stream`]).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct EventStream {
    fd: tokio::io::unix::AsyncFd<Socket>,
    queue: VecDeque<Result<EventItem>>,
    buf: Vec<u8>,
}

#[cfg(feature = "tokio")]
impl EventStream {
    /// [`Events::set_receive_buffer`].
    #[doc(alias = "SO_RCVBUFFORCE")]
    #[doc(alias = "SO_RCVBUF")]
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<usize> {
        crate::netlink::set_receive_buffer(std::os::fd::AsFd::as_fd(self.fd.get_ref()), bytes)
    }

    /// [`Events::receive_buffer`].
    pub fn receive_buffer(&self) -> Result<usize> {
        crate::netlink::receive_buffer(std::os::fd::AsFd::as_fd(self.fd.get_ref()))
    }

    /// The next item, as `StreamExt::next` gives it, without a dependency on
    /// `futures-util`; `None` never comes (the subscription lasts as long as the
    /// stream).
    ///
    /// ```no_run
    /// # async fn f() -> mptcp::Result<()> {
    /// let pm = mptcp::pm::AsyncPathManager::new().await?;
    /// let mut events = pm.events()?;
    /// while let Some(item) = events.next().await {
    ///     if let mptcp::pm::EventItem::Event(ev) = item? {
    ///         println!("{} token {:?}", ev.kind().name(), ev.token());
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Option<Result<EventItem>> {
        use futures_core::Stream;
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *self).poll_next(cx)).await
    }
}

#[cfg(feature = "tokio")]
impl futures_core::Stream for EventStream {
    type Item = Result<EventItem>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(item) = this.queue.pop_front() {
                return Poll::Ready(Some(item));
            }
            let mut guard = match this.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Some(Err(Error::os("poll path manager events", e))))
                }
                Poll::Pending => return Poll::Pending,
            };
            match guard.try_io(|s| recv(s.get_ref(), &mut this.buf)) {
                Ok(Ok(_)) => decode_datagram(&this.buf, &mut this.queue),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    this.queue.push_back(Ok(EventItem::Lost))
                }
                Ok(Err(e)) => {
                    return Poll::Ready(Some(Err(Error::os("receive path manager events", e))))
                }
                Err(_would_block) => continue,
            }
        }
    }
}
