//! Multipath TCP (MPTCP) for Linux, safely.
//!
//! * Create MPTCP sockets that fall back to TCP exactly when they must: [`connect`],
//!   [`listen`], [`MptcpSocket`] (to set options first), with a [`Mode`] that an operator
//!   can override through the `MPTCP_MODE` environment variable.
//! * On any socket, borrowed: is it MPTCP, and did the connection fall back to TCP?
//!   ([`status`], [`is_mptcp`]).
//! * Connection info ([`info`], [`token`]) and subflows ([`subflows`], [`connection`]),
//!   versioned: fields an older kernel did not return are `None`.
//! * tokio support behind the `tokio` feature ([`tokio`](crate::tokio)).
//!
//! An MPTCP socket is a stream socket to userspace: the crate hands out std's own
//! [`TcpStream`](std::net::TcpStream) and [`TcpListener`](std::net::TcpListener).
//!
//! ```no_run
//! use std::io::Write;
//! let mut stream = mptcp::connect("192.0.2.1:8080")?;
//! stream.write_all(b"hello")?;
//! let st = mptcp::status(&stream)?;
//! println!("created as MPTCP: {}, using MPTCP: {}", st.created_as_mptcp, st.using_mptcp);
//! for sf in mptcp::subflows(&stream)? {
//!     println!("subflow {:?}: {} -> {}", sf.id, sf.local, sf.remote);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;
mod info;
#[cfg(feature = "legacy")]
pub mod legacy;
#[cfg(feature = "pm")]
pub mod pm;
mod socket;
mod status;
mod subflow;
mod sys;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use error::{Error, NotMptcp, Result, Unavailable};
pub use info::{info, token, MptcpInfo};
pub use mptcp_sys as sys_bindings;
pub use socket::{
    connect, connect_with, forget_unavailable, listen, listen_with, Mode, MptcpSocket,
    IPPROTO_MPTCP, MODE_ENV,
};
pub use status::{is_mptcp, status, Detection, Status};
pub use subflow::{connection, subflows, Connection, Subflow, TcpInfo};
