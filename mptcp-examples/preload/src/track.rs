//! The sockets the library created as MPTCP under `prefer` and that have not connected
//! or listened yet: what the program set on them and whether it bound them, so that a
//! plain TCP socket can take one's place when MPTCP refuses an option.
//!
//! The table is taken with `try_lock` only, a few times: a call that finds it busy (a
//! signal handler interrupting the same thread, a child after `fork` whose parent held
//! it) goes on without it, and that socket then keeps the kernel's answer. Nothing is
//! looked up while no socket is tracked (one atomic load).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// At most this many sockets are tracked at once (the others keep the kernel's errors).
const MAX_TRACKED: usize = 1024;
/// At most this many options per socket, each of at most `MAX_VALUE` bytes; a socket
/// given more can no longer be replaced faithfully and is dropped from the table.
const MAX_OPTIONS: usize = 64;
const MAX_VALUE: usize = 512;

/// One option the program set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetOpt {
    pub(crate) level: i32,
    pub(crate) name: i32,
    pub(crate) value: Vec<u8>,
}

/// A socket created as MPTCP, not yet connected or listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tracked {
    /// `socket()`'s arguments as the program gave them.
    pub(crate) domain: i32,
    pub(crate) ty: i32,
    pub(crate) protocol: i32,
    pub(crate) options: Vec<SetOpt>,
    pub(crate) bound: bool,
}

static TABLE: Mutex<Vec<(i32, Tracked)>> = Mutex::new(Vec::new());
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn table() -> Option<MutexGuard<'static, Vec<(i32, Tracked)>>> {
    for _ in 0..64 {
        match TABLE.try_lock() {
            Ok(t) => return Some(t),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    None
}

fn with(f: impl FnOnce(&mut Vec<(i32, Tracked)>)) {
    if let Some(mut t) = table() {
        f(&mut t);
        COUNT.store(t.len(), Ordering::Relaxed);
    }
}

/// True when no socket is tracked (the fast path of every wrapper).
pub(crate) fn empty() -> bool {
    COUNT.load(Ordering::Relaxed) == 0
}

/// A new descriptor: tracked when it is an MPTCP socket made for a TCP request under
/// `prefer` (`Some`), else whatever was tracked under its number is forgotten.
pub(crate) fn created(fd: i32, socket: Option<Tracked>) {
    if socket.is_none() && empty() {
        return;
    }
    with(|t| {
        t.retain(|(f, _)| *f != fd);
        if let Some(s) = socket {
            if t.len() < MAX_TRACKED {
                t.push((fd, s));
            }
        }
    });
}

/// The descriptor connected, listened or closed: it is no longer replaceable.
pub(crate) fn forget(fd: i32) {
    if !empty() {
        with(|t| t.retain(|(f, _)| *f != fd));
    }
}

/// The program set an option successfully: remembered, to be set again on a
/// replacement.
pub(crate) fn set(fd: i32, level: i32, name: i32, value: &[u8]) {
    if empty() {
        return;
    }
    with(|t| {
        let Some(i) = t.iter().position(|(f, _)| *f == fd) else {
            return;
        };
        let s = &mut t[i].1;
        if value.len() > MAX_VALUE || s.options.len() >= MAX_OPTIONS {
            t.swap_remove(i);
            return;
        }
        s.options.push(SetOpt {
            level,
            name,
            value: value.to_vec(),
        });
    });
}

/// The program bound the socket.
pub(crate) fn bound(fd: i32) {
    if !empty() {
        with(|t| {
            if let Some((_, s)) = t.iter_mut().find(|(f, _)| *f == fd) {
                s.bound = true;
            }
        });
    }
}

/// What is known of a tracked socket.
pub(crate) fn get(fd: i32) -> Option<Tracked> {
    if empty() {
        return None;
    }
    let t = table()?;
    t.iter().find(|(f, _)| *f == fd).map(|(_, s)| s.clone())
}

/// Options already reported on stderr, so each is reported once.
static REPORTED: Mutex<Vec<(i32, i32)>> = Mutex::new(Vec::new());

/// True the first time an option is reported.
pub(crate) fn first_report(level: i32, name: i32) -> bool {
    let Ok(mut r) = REPORTED.try_lock() else {
        return false;
    };
    if r.contains(&(level, name)) {
        return false;
    }
    r.push((level, name));
    true
}

/// The option's C name, when the `mptcp` crate knows it.
pub(crate) fn option_name(level: i32, name: i32) -> String {
    mptcp::sockopt::SockOpt::ALL
        .iter()
        .find(|o| o.raw() == (level, name))
        .map(|o| o.name().to_string())
        .unwrap_or_else(|| format!("option {name} of level {level}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock() -> Tracked {
        Tracked {
            domain: libc::AF_INET,
            ty: libc::SOCK_STREAM,
            protocol: 0,
            options: Vec::new(),
            bound: false,
        }
    }

    /// One test (the table is process-wide): tracking, options, bind, forgetting.
    #[test]
    fn the_table() {
        assert!(empty());
        created(7, Some(sock()));
        set(7, 6, 1, &1i32.to_ne_bytes());
        set(8, 6, 1, &1i32.to_ne_bytes()); // untracked: ignored
        bound(7);
        let s = get(7).expect("tracked");
        assert!(s.bound);
        assert_eq!(s.options.len(), 1);
        assert_eq!(get(8), None);
        // A new socket in the same number replaces what was known.
        created(7, None);
        assert_eq!(get(7), None);
        assert!(empty());
        created(9, Some(sock()));
        set(9, 6, 2, &[0u8; MAX_VALUE + 1]);
        assert_eq!(get(9), None, "too large to replay: no longer replaceable");
        created(10, Some(sock()));
        forget(10);
        assert!(empty());
        assert!(first_report(6, 18));
        assert!(!first_report(6, 18));
        assert_eq!(
            option_name(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
            "TCP_USER_TIMEOUT"
        );
        assert_eq!(option_name(6, 9999), "option 9999 of level 6");
    }
}
