//! Benchmarks of the `mptcp` crate: see `benches/` (`cargo bench -p mptcp-bench`).
//! Each library call is measured next to the raw system calls it stands for, in the
//! same run. They need root (they build their own network namespaces).
#![deny(missing_docs)]
