//! Listing every MPTCP connection with its subflows: `mptcp::diag::connections()`,
//! `mptcp-stat --json` and a scrape of `mptcp-exporter` beside what people run today for
//! the same listing, `ss -Mi` and `ss -tiO`, on 1000 MPTCP connections (500 loopback
//! pairs) in a namespace the benchmark creates; then a scrape of 10,000 connections
//! beside their listing, with the scrape's CPU time. Needs root.

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
    // mptcp-stat --json, a whole process as a script runs it.
    let stat = mptcp_stat();
    let stat_json = || {
        let out = Command::new(&stat)
            .arg("--json")
            .stderr(Stdio::null())
            .output()
            .expect("run mptcp-stat");
        assert!(out.status.success(), "mptcp-stat --json failed");
        out.stdout.len()
    };
    let mut g = c.benchmark_group("mptcp-stat --json, 1000 connections");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("mptcp", |b| b.iter(stat_json));
    g.bench_function("ss", |b| b.iter(|| ss(&["-Mni"]) + ss(&["-tniO"])));
    g.finish();
    mptcp_testnet::interleave::compare(
        "mptcp-stat --json, 1000 connections",
        mptcp_testnet::interleave::timed(stat_json),
        mptcp_testnet::interleave::timed(|| ss(&["-Mni"]) + ss(&["-tniO"])),
    );
    // A scrape of mptcp-exporter (in process: the look, the accounts, the encoding).
    let events = Default::default();
    let mut exporter = mptcp_examples::exporter::Exporter::new(events, 0);
    let mut g = c.benchmark_group("scrape 1000 connections");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("mptcp", |b| {
        b.iter(|| exporter.scrape().expect("scrape").len())
    });
    g.bench_function("ss", |b| b.iter(|| ss(&["-Mni"]) + ss(&["-tniO"])));
    g.finish();
    mptcp_testnet::interleave::compare(
        "scrape 1000 connections",
        mptcp_testnet::interleave::timed(|| exporter.scrape().expect("scrape").len()),
        mptcp_testnet::interleave::timed(|| ss(&["-Mni"]) + ss(&["-tniO"])),
    );
    // 10,000 connections: the scrape beside the listing alone, and its CPU time.
    for _ in 500..5000 {
        let c = mptcp::connect_with(a, mptcp::Mode::Require).expect("connect");
        let s = l.accept().expect("accept");
        keep.push((c, s));
    }
    let n = diag.connections(&all).expect("connections").len();
    assert_eq!(n, 10_001, "10,000 connections and the listener");
    let mut g = c.benchmark_group("scrape 10000 connections");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("mptcp", |b| {
        b.iter(|| exporter.scrape().expect("scrape").len())
    });
    g.bench_function("floor", |b| {
        b.iter(|| diag.connections(&all).expect("connections").len())
    });
    g.finish();
    let before = thread_cpu();
    let scrapes = 20;
    for _ in 0..scrapes {
        exporter.scrape().expect("scrape");
    }
    let cpu = (thread_cpu() - before) / scrapes;
    println!(
        "CPU per scrape of 10000 connections: {:.1} ms (user + system, this thread)",
        cpu.as_secs_f64() * 1e3
    );
    drop(keep);
}

/// The CPU time (user and system) of the calling thread so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the kernel to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `mptcp-stat`, built in release by this benchmark (as the tests build the tools).
fn mptcp_stat() -> std::path::PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let ok = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "mptcp-examples",
            "--bin",
            "mptcp-stat",
        ])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo build")
        .success();
    assert!(ok, "cargo build of mptcp-stat failed");
    target.join("release").join("mptcp-stat")
}

criterion_group!(benches, all);
criterion_main!(benches);
