//! `cargo xtask bench`: runs the benchmarks of `mptcp-bench` several times and prints,
//! for every group, the library's time beside its floor (the same system calls made
//! directly) and their ratio. The ratio is the interleaved one
//! (`mptcp_testnet::interleave`: 201 rounds of a batch of each, which goes first
//! alternating, the median of the rounds' ratios), then the median over the runs, with
//! the runs' spread beside it; criterion's separate timings of the two (one after the
//! other, so a change of the machine between them moves their ratio) are shown too.

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
    // Issue 21: every output at least as fast as `ss`.
    ("mptcp-stat --json, 1000 connections", 1.0),
    ("scrape 1000 connections", 1.0),
];

/// One group's result in one run: criterion's medians in nanoseconds, and the
/// interleaved comparison's ratio and times.
#[derive(Debug, Clone, Copy)]
struct Pair {
    mptcp: f64,
    floor: f64,
    interleaved: Option<Interleaved>,
}

#[derive(Debug, Clone, Copy)]
struct Interleaved {
    ratio: f64,
    mptcp: f64,
    floor: f64,
}

/// The interleaved results a run wrote (`NAME.json` under `dir`).
fn read_interleaved(dir: &std::path::Path) -> Result<BTreeMap<String, Interleaved>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in entries {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(e?.path())?)?;
        let (Some(name), Some(ratio), Some(a), Some(b)) = (
            v["name"].as_str(),
            v["ratio"].as_f64(),
            v["a_ns"].as_f64(),
            v["b_ns"].as_f64(),
        ) else {
            continue;
        };
        out.insert(
            name.to_string(),
            Interleaved {
                ratio,
                mptcp: a,
                floor: b,
            },
        );
    }
    Ok(out)
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
        let interleaved_dir = target_dir().join("bench").join("interleaved");
        // Stale results of groups a filter skips must not be read as this run's.
        let _ = std::fs::remove_dir_all(&criterion);
        let _ = std::fs::remove_dir_all(&interleaved_dir);
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .args(["bench", "-p", "mptcp-bench", "--"])
            .env("MPTCP_BENCH_OUT", &interleaved_dir);
        if let Some(f) = &filter {
            cmd.arg(f);
        }
        sh(&mut cmd)?;
        let interleaved = read_interleaved(&interleaved_dir)?;
        for (group, mut pair) in read_results(&criterion)? {
            pair.interleaved = interleaved.get(&group).copied();
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
                    "interleaved_ratios": pairs.iter().filter_map(|p| p.interleaved.map(|i| i.ratio)).collect::<Vec<_>>(),
                    "criterion_ratios": pairs.iter().map(|p| p.mptcp / p.floor).collect::<Vec<_>>(),
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

/// A run's ratio and times: the interleaved ones where the group has them, else
/// criterion's.
fn of_run(p: &Pair) -> (f64, f64, f64) {
    match p.interleaved {
        Some(i) => (i.mptcp, i.floor, i.ratio),
        None => (p.mptcp, p.floor, p.mptcp / p.floor),
    }
}

/// The median ratio over the runs, with the two times of the run that gave it (for an
/// even number of runs, the lower middle one).
fn medians(pairs: &[Pair]) -> (f64, f64, f64) {
    let ratio = median(pairs.iter().map(|p| of_run(p).2).collect());
    let mut by_ratio: Vec<(f64, f64, f64)> = pairs.iter().map(of_run).collect();
    by_ratio.sort_by(|a, b| a.2.total_cmp(&b.2));
    match by_ratio.get(by_ratio.len().saturating_sub(1) / 2) {
        Some(&(m, f, _)) => (m, f, ratio),
        None => (f64::NAN, f64::NAN, ratio),
    }
}

/// The lowest and highest of the runs' ratios.
fn spread(pairs: &[Pair]) -> (f64, f64) {
    pairs
        .iter()
        .map(|p| of_run(p).2)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(r), hi.max(r))
        })
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
                interleaved: None,
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
    println!(
        "| call | mptcp | floor (or `ss`) | ratio, interleaved (median of {runs} runs) | runs' spread | criterion's ratio | target |"
    );
    println!("|---|---|---|---|---|---|---|");
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
        let (lo, hi) = spread(pairs);
        let crit = median(pairs.iter().map(|p| p.mptcp / p.floor).collect());
        let target = match target_of(g) {
            Some(t) if r <= t => format!("≤ {t:.2} met"),
            Some(t) => format!("≤ {t:.2} **not met**"),
            None => "-".into(),
        };
        println!(
            "| `{g}` | {} | {} | {r:.3} | {lo:.3}–{hi:.3} | {crit:.3} | {target} |",
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
