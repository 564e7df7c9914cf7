//! The sans-IO core: what crosses the kernel boundary, as bytes and typed values. The
//! decoders and encoders here hold no descriptor, no `unsafe` and no tokio: the kernel
//! structs whose replies grow with the kernel ([`versioned`], [`info`], [`subflow`]:
//! `mptcp_info`, `tcp_info`, `MPTCP_FULL_INFO`), socket addresses ([`sockaddr`]) and
//! netlink framing ([`netlink`]); the sock_diag requests and replies are `diag::request`
//! and `diag::reply`, the path manager's request/reply state machines `pm::command`.
//! The calls that fetch the bytes (`info.rs`, `subflow.rs`, `netlink.rs`, `sys.rs`) sit
//! above this and below the public functions.

pub(crate) mod info;
#[cfg(any(feature = "pm", feature = "diag"))]
pub(crate) mod netlink;
pub(crate) mod sockaddr;
pub(crate) mod subflow;
pub(crate) mod versioned;
