//! `cargo xtask bench`: runs the criterion benchmarks of `mptcp-bench` several times and
//! prints, for every group, the library's time beside its floor (the same system calls
//! made directly) and their ratio: the median of the runs' ratios.

use crate::sys::{is_root, root, run as sh, target_dir};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::process::Command;

/// The most a library call may cost, as a multiple of its floor (issue 11's table).
const TARGETS: &[(&str, f64)] = &[
    ("info", 1.05),
    ("token", 1.05),
    ("status", 1.10),
    ("is_mptcp", 1.05),
    ("subflows", 1.10),
    ("connection", 1.10),
    ("SubflowQuery::connection", 1.10),
    ("GET_LIMITS", 1.20),
    ("endpoint dump", 1.20),
    ("event decode", 1.25),
    ("list 1000 connections", 1.0),
];

/// One group's result in one run: medians in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Pair {
    mptcp: f64,
    floor: f64,
}

pub fn run(runs: usize, filter: Option<String>) -> Result<()> {
    if !is_root() {
        bail!("the benchmarks build their own network namespaces: run as root");
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut all: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    for i in 1..=runs {
        eprintln!("xtask: benchmark run {i} of {runs}");
        let criterion = target_dir().join("criterion");
        // Stale results of groups a filter skips must not be read as this run's.
        let _ = std::fs::remove_dir_all(&criterion);
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .args(["bench", "-p", "mptcp-bench", "--"]);
        if let Some(f) = &filter {
            cmd.arg(f);
        }
        sh(&mut cmd)?;
        for (group, pair) in read_results(&criterion)? {
            all.entry(group).or_default().push(pair);
        }
    }
    print_table(&all, runs);
    let json: BTreeMap<&str, serde_json::Value> = all
        .iter()
        .map(|(g, pairs)| {
            let (m, f, r) = medians(pairs);
            let target = target_of(g);
            (
                g.as_str(),
                serde_json::json!({
                    "mptcp_ns": m, "floor_ns": f, "ratio": r, "target": target,
                    "met": target.map(|t| r <= t),
                    "ratios": pairs.iter().map(|p| p.mptcp / p.floor).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out)?;
    let path = out.join("ratios.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

fn target_of(group: &str) -> Option<f64> {
    TARGETS.iter().find(|(g, _)| *g == group).map(|(_, t)| *t)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median ratio over the runs, with the two times of the run that gave it (for an
/// even number of runs, the lower middle one).
fn medians(pairs: &[Pair]) -> (f64, f64, f64) {
    let ratio = median(pairs.iter().map(|p| p.mptcp / p.floor).collect());
    let mut by_ratio = pairs.to_vec();
    by_ratio.sort_by(|a, b| (a.mptcp / a.floor).total_cmp(&(b.mptcp / b.floor)));
    match by_ratio.get(by_ratio.len().saturating_sub(1) / 2) {
        Some(p) => (p.mptcp, p.floor, ratio),
        None => (f64::NAN, f64::NAN, ratio),
    }
}

/// Reads criterion's `<group>/{mptcp,floor}/new/` results.
fn read_results(dir: &std::path::Path) -> Result<BTreeMap<String, Pair>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("no benchmark results in {}", dir.display()))?;
    for entry in entries {
        let group_dir = entry?.path();
        // The comparison is the system-call floor, or for the listing of every
        // connection, the `ss` commands people run for it.
        let floor = match read_one(&group_dir.join("floor"))? {
            Some(f) => Some(f),
            None => read_one(&group_dir.join("ss"))?,
        };
        let (Some(m), Some(f)) = (read_one(&group_dir.join("mptcp"))?, floor) else {
            continue;
        };
        out.insert(
            m.0,
            Pair {
                mptcp: m.1,
                floor: f.1,
            },
        );
    }
    Ok(out)
}

/// (group name, median ns) of one benchmark function, if it ran.
fn read_one(dir: &std::path::Path) -> Result<Option<(String, f64)>> {
    let new = dir.join("new");
    let Ok(bench) = std::fs::read_to_string(new.join("benchmark.json")) else {
        return Ok(None);
    };
    let bench: serde_json::Value = serde_json::from_str(&bench)?;
    let est: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(new.join("estimates.json"))?)?;
    let group = bench["group_id"]
        .as_str()
        .context("benchmark.json without group_id")?
        .to_string();
    let ns = est["median"]["point_estimate"]
        .as_f64()
        .context("estimates.json without a median")?;
    Ok(Some((group, ns)))
}

fn print_table(all: &BTreeMap<String, Vec<Pair>>, runs: usize) {
    println!("| call | mptcp | floor (or `ss`) | ratio (median of {runs} runs) | target |");
    println!("|---|---|---|---|---|");
    // The table's order first, then any other group.
    let mut order: Vec<&str> = TARGETS.iter().map(|(g, _)| *g).collect();
    order.extend(
        all.keys()
            .map(String::as_str)
            .filter(|g| target_of(g).is_none()),
    );
    for g in order {
        let Some(pairs) = all.get(g) else { continue };
        let (m, f, r) = medians(pairs);
        let target = match target_of(g) {
            Some(t) if r <= t => format!("≤ {t:.2} met"),
            Some(t) => format!("≤ {t:.2} **not met**"),
            None => "-".into(),
        };
        println!(
            "| `{g}` | {} | {} | {r:.3} | {target} |",
            human(m),
            human(f)
        );
    }
}

fn human(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
