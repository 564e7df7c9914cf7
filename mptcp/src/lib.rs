//! Multipath TCP (MPTCP) for Linux, safely.
//!
//! * Create MPTCP sockets that fall back to TCP exactly when they must: [`connect`],
//!   [`listen`], [`MptcpSocket`] (to set options first), with a [`Mode`]; an operator
//!   sets the mode of [`Mode::Prefer`] sockets (the default) through the `MPTCP_MODE`
//!   environment variable ([`MODE_ENV`]).
#![cfg_attr(
    any(target_os = "linux", target_os = "android"),
    doc = "* On any socket, borrowed: is it MPTCP, and did the connection fall back to TCP?
  ([`status`], [`is_mptcp`]).
* Connection info ([`info`], [`token`]) and subflows ([`subflows`], [`connection`]),
  versioned: fields an older kernel did not return are `None`."
)]
#![cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    doc = "* On Linux and Android (not compiled for this OS): `status`, `is_mptcp`, `info`,
  `token`, `subflows`, `connection`, `pm`, `diag`, `legacy`."
)]
//! * Every MPTCP connection of the network namespace with its subflows, as data
//!   (`diag`, feature `diag`).
//! * tokio support behind the `tokio` feature (the module `mptcp::tokio`).
//!
//! An MPTCP socket is a stream socket to userspace: the crate hands out std's own
//! [`TcpStream`](std::net::TcpStream) and [`TcpListener`](std::net::TcpListener).
//!
//! ```
//! use std::io::Write;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = mptcp::listen("127.0.0.1:0")?; // loopback: MPTCP where the kernel has it
//!     let server = listener.local_addr()?;
//!     let mut stream = mptcp::connect(server)?; // MPTCP, or TCP where the kernel has none
//!     stream.write_all(b"hello")?;
//!     # #[cfg(any(target_os = "linux", target_os = "android"))] // status and subflows are Linux's
//!     if mptcp::is_mptcp(&stream)? {
//!         for sf in mptcp::subflows(&stream)? {
//!             println!("subflow {:?}: {} -> {}", sf.id, sf.local, sf.remote);
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Platforms
//!
//! MPTCP is a Linux kernel feature. What the crate offers depends on the target OS:
//!
//! | | Linux | Android | macOS, FreeBSD, Windows, others |
//! |---|---|---|---|
//! | [`connect`], [`listen`], [`MptcpSocket`], [`Mode`], `tokio` connect/listen | MPTCP | MPTCP (when the kernel has it) | plain TCP |
//! | [`Mode::Prefer`] | MPTCP, TCP where refused | same | TCP, [`Unavailable::UnsupportedOs`] |
//! | [`Mode::Require`] | MPTCP or an error | same | [`Error::Unavailable`] naming the OS |
//! | `status`, `is_mptcp`, `info`, `token`, `subflows`, `connection` | yes | yes | not compiled |
//! | `pm` (path manager, subflow operations), `diag` (every connection of the namespace), `legacy` | yes | yes | not compiled |
//!
//! On other systems [`Mode::Prefer`] gives plain TCP, as Go's `net` package does, so a
//! portable program needs no `cfg` of its own to create sockets.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Every Rust block of the README is compiled (and run where it can) as a doctest.
#[cfg(all(
    doctest,
    feature = "diag",
    any(target_os = "linux", target_os = "android")
))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod abi_tests;
#[cfg(all(feature = "diag", any(target_os = "linux", target_os = "android")))]
pub mod diag;
mod error;
mod fallback;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod info;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod kernel;
#[cfg(all(feature = "legacy", any(target_os = "linux", target_os = "android")))]
pub mod legacy;
#[cfg(all(
    any(feature = "pm", feature = "diag"),
    any(target_os = "linux", target_os = "android")
))]
mod netlink;
mod options;
#[cfg(all(feature = "pm", any(target_os = "linux", target_os = "android")))]
pub mod pm;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod policy;
#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod prop_tests;
mod proto;
mod socket;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod sockopt;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod status;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod subflow;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys;
mod token;
#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod wire;

pub use error::{Error, NoConnection, NotMptcp, ParseModeError, Result, Unavailable};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use info::{info, token};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use mptcp_sys as sys_bindings;
pub use proto::IPPROTO_MPTCP;
pub use socket::{
    connect, connect_with, forget_unavailable, listen, listen_with, Domain, Mode, MptcpSocket,
    MODE_ENV,
};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use status::{is_mptcp, status, Detection, Status};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use subflow::{connection, subflows, SubflowQuery};
pub use token::{ParseTokenError, Token};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use wire::info::{InfoFlags, MptcpInfo};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use wire::subflow::{Connection, Subflow, SubflowTuple, TcpInfo};
