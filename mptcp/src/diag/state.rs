//! Socket states as sock_diag reports them: TCP's state numbers, which MPTCP sockets
//! reuse.

use std::fmt;
use std::str::FromStr;

/// The state of an MPTCP socket or of a subflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketState {
    /// Connected.
    Established,
    /// Connecting (SYN sent).
    SynSent,
    /// SYN received.
    SynRecv,
    /// Closing: FIN sent.
    FinWait1,
    /// Closing: FIN acknowledged, waiting for the peer's.
    FinWait2,
    /// Closed, waiting for late segments.
    TimeWait,
    /// Closed.
    Close,
    /// The peer closed; this side has not.
    CloseWait,
    /// Closing: the last FIN sent.
    LastAck,
    /// Listening.
    Listen,
    /// Both sides closing at once.
    Closing,
    /// A request socket (SYN received, not yet a full socket).
    NewSynRecv,
    /// A state number this crate does not know.
    Unknown(u8),
}

const ALL: [(SocketState, u8, &str); 12] = [
    (SocketState::Established, 1, "ESTAB"),
    (SocketState::SynSent, 2, "SYN-SENT"),
    (SocketState::SynRecv, 3, "SYN-RECV"),
    (SocketState::FinWait1, 4, "FIN-WAIT-1"),
    (SocketState::FinWait2, 5, "FIN-WAIT-2"),
    (SocketState::TimeWait, 6, "TIME-WAIT"),
    (SocketState::Close, 7, "UNCONN"),
    (SocketState::CloseWait, 8, "CLOSE-WAIT"),
    (SocketState::LastAck, 9, "LAST-ACK"),
    (SocketState::Listen, 10, "LISTEN"),
    (SocketState::Closing, 11, "CLOSING"),
    (SocketState::NewSynRecv, 12, "NEW-SYN-RECV"),
];

impl SocketState {
    pub(crate) fn from_raw(v: u8) -> SocketState {
        ALL.iter()
            .find(|(_, n, _)| *n == v)
            .map_or(SocketState::Unknown(v), |(s, _, _)| *s)
    }

    /// The kernel's number (`TCP_ESTABLISHED` = 1 ...).
    pub fn raw(self) -> u8 {
        match self {
            SocketState::Unknown(v) => v,
            s => ALL
                .iter()
                .find(|(a, _, _)| *a == s)
                .map_or(0, |(_, n, _)| *n),
        }
    }

    /// The name `ss` prints (`ESTAB`, `LISTEN` ...).
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(a, _, _)| *a == self)
            .map_or("UNKNOWN", |(_, _, n)| n)
    }
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketState::Unknown(v) => write!(f, "UNKNOWN({v})"),
            s => f.write_str(s.name()),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SocketState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A state name that is not one of `ss`'s (`established`, `estab`, `listen`,
/// `syn-sent` ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown socket state {0:?} (expected one of: established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, close (unconn), close-wait, last-ack, listen, closing, new-syn-recv)")]
pub struct ParseStateError(pub String);

impl FromStr for SocketState {
    type Err = ParseStateError;

    /// `ss`'s state names, in any case (`established` or `estab`, `listening` or
    /// `listen`, `syn-sent` ...).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.to_ascii_lowercase().replace('_', "-");
        let alias = match l.as_str() {
            "established" => "estab",
            "listening" => "listen",
            "closed" | "close" => "unconn",
            other => other,
        };
        ALL.iter()
            .find(|(_, _, n)| n.eq_ignore_ascii_case(alias))
            .map(|(st, _, _)| *st)
            .ok_or_else(|| ParseStateError(s.to_string()))
    }
}

bitflags::bitflags! {
    /// A set of states (the kernel's `idiag_states` mask: bit N for state N).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct States: u32 {
        /// Every state.
        const ALL = !0;
        /// Connected sockets.
        const ESTABLISHED = 1 << 1;
        /// Listeners.
        const LISTEN = 1 << 10;
    }
}

impl States {
    /// The set holding only `state`.
    pub fn of(state: SocketState) -> States {
        States::from_bits_retain(1u32.checked_shl(u32::from(state.raw())).unwrap_or(0))
    }
}
