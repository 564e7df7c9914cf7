//! Listing every MPTCP connection with its subflows: `mptcp::diag::connections()` beside
//! what people run today for the same listing, `ss -Mi` and `ss -tiO`, on 1000 MPTCP
//! connections (500 loopback pairs) in a namespace the benchmark creates. Needs root.

use mptcp_testnet as common;

use common::Netns;
use criterion::{criterion_group, criterion_main, Criterion};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `ss` with these arguments, reading its whole output as a script would.
fn ss(args: &[&str]) -> usize {
    let out = Command::new("ss")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("run ss");
    assert!(out.status.success(), "ss {args:?} failed");
    out.stdout.len()
}

fn all(c: &mut Criterion) {
    if let Some(why) = common::cannot_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::new("benchdiag");
    // The benchmark thread works in the namespace; `ss` inherits it.
    ns.enter_current_thread();
    let l = mptcp::listen_with("127.0.0.1:0", mptcp::Mode::Require).expect("listen");
    let a = l.local_addr().expect("addr");
    let mut keep = Vec::new();
    for _ in 0..500 {
        let c = mptcp::connect_with(a, mptcp::Mode::Require).expect("connect");
        let s = l.accept().expect("accept");
        keep.push((c, s));
    }
    let listed = mptcp::diag::connections().expect("connections");
    let with_subflows = listed.iter().filter(|c| !c.subflows.is_empty()).count();
    assert_eq!(
        with_subflows, 1000,
        "1000 connections, each with its subflow"
    );
    let mut g = c.benchmark_group("list 1000 connections");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let mut diag = mptcp::diag::Diag::new().expect("diag");
    let all = mptcp::diag::Filter::new();
    g.bench_function("mptcp", |b| {
        b.iter(|| diag.connections(&all).expect("connections").len())
    });
    g.bench_function("ss", |b| b.iter(|| ss(&["-Mni"]) + ss(&["-tniO"])));
    g.finish();
    // The ratio `cargo xtask bench` reports: the same pair, interleaved.
    mptcp_testnet::interleave::compare(
        "list 1000 connections",
        mptcp_testnet::interleave::timed(|| diag.connections(&all).expect("connections").len()),
        mptcp_testnet::interleave::timed(|| ss(&["-Mni"]) + ss(&["-tniO"])),
    );
    drop(keep);
}

criterion_group!(benches, all);
criterion_main!(benches);
