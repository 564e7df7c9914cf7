//! Reading a guest's console: each binary's results, skips and their reasons, the
//! failed tests' output, the feature lines; the printed report and its files.

use crate::sys::target_dir;
use anyhow::Result;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// What one kernel's run gave.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) kernel: String,
    /// Rust's name of the architecture (`x86_64`, `aarch64`).
    pub(super) arch: String,
    pub(super) passed: u32,
    pub(super) failed: u32,
    pub(super) skipped: u32,
    pub(super) skip_reasons: BTreeMap<String, u32>,
    pub(super) failures: Vec<String>,
    /// What each failed test printed (libtest's `---- NAME stdout ----` sections).
    pub(super) failure_output: Vec<Vec<String>>,
    /// Where the whole console was saved.
    pub(super) console: Option<PathBuf>,
    /// `VMTEST FEATURE name=value` lines of the features test, in order.
    pub(super) features: Vec<(String, String)>,
    /// `VMTEST SOCKOPT name=value` lines of the socket option test, in order.
    pub(super) sockopts: Vec<(String, String)>,
    pub(super) accel: String,
    pub(super) seconds: f64,
    pub(super) problem: Option<String>,
}

/// Parses the console of one run.
pub(super) fn parse(label: &str, lines: &[String]) -> Report {
    let mut r = Report {
        kernel: label.to_string(),
        ..Default::default()
    };
    for l in lines {
        let t = l.trim();
        // Printed lines can be glued after libtest's `test NAME ... `.
        let after = |tag: &str| t.find(tag).map(|i| &t[i + tag.len()..]);
        if let Some((k, v)) = after("VMTEST FEATURE ").and_then(|f| f.split_once('=')) {
            r.features.push((k.to_string(), v.to_string()));
        } else if let Some((k, v)) = after("VMTEST SOCKOPT ").and_then(|f| f.split_once('=')) {
            r.sockopts.push((k.to_string(), v.to_string()));
        } else if let Some((k, v)) =
            after("VMTEST SOCKOPT-SUBFLOWS ").and_then(|f| f.split_once('='))
        {
            r.sockopts
                .push((format!("{k}: subflows showing it"), v.to_string()));
        } else if let Some(rel) = t.strip_prefix("VMTEST KERNEL ") {
            r.kernel = rel.to_string();
        } else if let Some(rest) = t.strip_prefix("test result: ") {
            let num = |key: &str| -> u32 {
                rest.split(';')
                    .find_map(|p| {
                        p.trim().strip_suffix(key).map(|n| {
                            n.trim()
                                .trim_start_matches("ok.")
                                .trim_start_matches("FAILED.")
                                .trim()
                                .parse()
                                .unwrap_or(0)
                        })
                    })
                    .unwrap_or(0)
            };
            r.passed += num("passed");
            r.failed += num("failed");
        } else if let Some(why) = t.strip_prefix("skipped: ") {
            // Parallel tests can glue another test's status line to the reason.
            let why = why
                .split(")test ")
                .next()
                .map(|w| {
                    if w.len() < why.len() {
                        format!("{w})")
                    } else {
                        w.to_string()
                    }
                })
                .unwrap_or_default();
            let why = why.as_str();
            r.skipped += 1;
            *r.skip_reasons.entry(why.to_string()).or_default() += 1;
        } else if t.starts_with("test ") && t.ends_with("... FAILED") {
            r.failures.push(t.to_string());
        } else if let Some(res) = t.strip_prefix("VMTEST RESULT ") {
            if !res.ends_with("rc=0") && !res.ends_with("rc=101") {
                r.failed += 1;
                r.failures.push(format!("{res} (binary did not finish)"));
            }
        }
    }
    // A skipped test also counts as passed in libtest's summary.
    r.passed = r.passed.saturating_sub(r.skipped);
    r.failure_output = failed_sections(failure_sections(lines), &r.failures);
    r
}

/// Lines kept of one failed test's output in the report (the whole console is saved).
pub(super) const FAILURE_LINES: usize = 40;

/// What failed tests printed, from the panic on: the guest runs the tests with
/// `--nocapture`, so a panic is a `thread 'NAME' ... panicked at` line followed by its
/// message (libtest's `---- NAME stdout ----` sections, when output is captured, are
/// read the same way). A section ends at the next test status line, panic, section or
/// `failures:` list, and is cut to [`FAILURE_LINES`]. Tests running in parallel can
/// interleave their lines; the console file has everything as it came.
pub(super) fn failure_sections(lines: &[String]) -> Vec<Vec<String>> {
    let starts = |t: &str| {
        (t.starts_with("thread '") && t.contains("panicked at"))
            || (t.starts_with("---- ") && t.ends_with(" stdout ----"))
    };
    let ends = |t: &str| {
        t == "failures:"
            || t == "stack backtrace:"
            || t.starts_with("note: run with `RUST_BACKTRACE")
            || t.starts_with("running ")
            || t.starts_with("test result: ")
            || (t.starts_with("test ") && t.contains(" ... "))
            || t.starts_with("VMTEST ")
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut open = false;
    // Whether each section had more than it keeps.
    let mut cut: Vec<bool> = Vec::new();
    for l in lines {
        let t = l.trim();
        if starts(t) {
            // A captured section's own panic line belongs to that section.
            let in_section = open
                && t.starts_with("thread '")
                && out.last().is_some_and(|s| s[0].starts_with("---- "));
            if !in_section {
                out.push(Vec::new());
                cut.push(false);
            }
            open = true;
        } else if open && ends(t) {
            open = false;
            continue;
        }
        if let (true, Some(cur), Some(c)) = (open, out.last_mut(), cut.last_mut()) {
            if cur.len() < FAILURE_LINES {
                cur.push(l.trim_end().to_string());
            } else {
                *c = true;
            }
        }
    }
    for (s, c) in out.iter_mut().zip(cut) {
        while s.last().is_some_and(|l| l.trim().is_empty()) {
            s.pop();
        }
        if c {
            s.push("(cut: the rest is in the console file)".into());
        }
    }
    out
}

/// The test a failure section is about: `NAME` of `thread 'NAME' ...` or of
/// `---- NAME stdout ----`.
pub(super) fn section_test(section: &[String]) -> Option<&str> {
    let first = section.first()?.trim();
    if let Some(rest) = first.strip_prefix("thread '") {
        return rest.split_once('\'').map(|(name, _)| name);
    }
    first.strip_prefix("---- ")?.strip_suffix(" stdout ----")
}

/// The sections of the tests that failed (`test NAME ... FAILED`): a passing test that
/// expects a panic, or a helper thread's panic, prints one too. When no section names
/// a failed test (a binary that did not finish), all of them.
pub(super) fn failed_sections(sections: Vec<Vec<String>>, failures: &[String]) -> Vec<Vec<String>> {
    let failed: Vec<&str> = failures
        .iter()
        .filter_map(|f| f.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    let named = |s: &Vec<String>| section_test(s).is_some_and(|n| failed.contains(&n));
    if sections.iter().any(named) {
        sections.into_iter().filter(named).collect()
    } else {
        sections
    }
}

pub(super) fn print_report(reports: &[Report], total: f64) -> Result<()> {
    println!(
        "\n{:<32} {:<8} {:>6} {:>6} {:>7} {:>6} {:>8}",
        "kernel", "arch", "passed", "failed", "skipped", "accel", "seconds"
    );
    for r in reports {
        println!(
            "{:<32} {:<8} {:>6} {:>6} {:>7} {:>6} {:>8.1}{}",
            r.kernel,
            r.arch,
            r.passed,
            r.failed,
            r.skipped,
            r.accel,
            r.seconds,
            r.problem
                .as_ref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
        for (why, n) in &r.skip_reasons {
            println!("    skipped {n}x: {why}");
        }
        for f in &r.failures {
            println!("    FAILED: {f}");
        }
        // (A passing test that expects a panic prints one too: shown only on failure.)
        for section in r.failure_output.iter().filter(|_| r.failed > 0) {
            for l in section {
                println!("      | {l}");
            }
        }
        if let (true, Some(c)) = (r.failed > 0, &r.console) {
            println!("    console: {}", c.display());
        }
    }
    println!("total {total:.1} s");
    let json = serde_json::json!({
        "kernels": reports.iter().map(|r| serde_json::json!({
            "kernel": r.kernel, "arch": r.arch, "passed": r.passed, "failed": r.failed, "skipped": r.skipped,
            "skip_reasons": r.skip_reasons, "accel": r.accel,
            "features": r.features.iter().cloned().collect::<BTreeMap<String, String>>(),
            "sockopts": r.sockopts.iter().cloned().collect::<BTreeMap<String, String>>(), "seconds": (r.seconds * 10.0).round() / 10.0,
            "problem": r.problem,
        })).collect::<Vec<_>>(),
        "seconds": (total * 10.0).round() / 10.0,
    });
    let dir = target_dir().join("vm-test");
    fs::create_dir_all(&dir)?;
    let mut f = fs::File::create(dir.join("summary.json"))?;
    writeln!(f, "{json}")?;
    // The kernel support table and the socket option table, for the README.
    fs::write(
        dir.join("features.md"),
        table("feature", reports, |r| &r.features),
    )?;
    fs::write(
        dir.join("sockopts.md"),
        table("option", reports, |r| &r.sockopts),
    )?;
    Ok(())
}

/// A Markdown table of one kind of `name=value` lines: a row per name (in the order of
/// the first kernel that printed any), a column per kernel.
fn table(what: &str, reports: &[Report], rows: fn(&Report) -> &Vec<(String, String)>) -> String {
    let mut md = format!("| {what} |");
    for r in reports {
        md += &format!(" {} |", r.kernel);
    }
    md += "\n|---|";
    md += &"---|".repeat(reports.len());
    md += "\n| architecture |";
    for r in reports {
        md += &format!(" {} |", r.arch);
    }
    md += "\n";
    let names: Vec<String> = reports
        .iter()
        .find(|r| !rows(r).is_empty())
        .map(|r| rows(r).iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    for name in names {
        md += &format!("| {name} |");
        for r in reports {
            let v = rows(r)
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str());
            md += &format!(" {} |", v.unwrap_or("?"));
        }
        md += "\n";
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn feature_and_option_lines_make_two_tables() {
        let console = lines(
            "VMTEST FEATURE subflow ids=yes\n\
             test compatibility_table ... VMTEST SOCKOPT IP_TTL=EOPNOTSUPP/ok EOPNOTSUPP/ok EOPNOTSUPP/ok\n\
             VMTEST SOCKOPT TCP_NODELAY=ok/ok ok/ok ok/ok\n\
             VMTEST SOCKOPT-SUBFLOWS SO_MARK=2/2\n",
        );
        let mut r = parse("6.1", &console);
        r.arch = "x86_64".into();
        assert_eq!(r.features, vec![("subflow ids".into(), "yes".into())]);
        assert_eq!(
            r.sockopts.len(),
            3,
            "a line glued after a test's name is read too"
        );
        assert_eq!(
            r.sockopts[2],
            ("SO_MARK: subflows showing it".into(), "2/2".into())
        );
        let md = table("option", &[r], |r| &r.sockopts);
        assert!(md.starts_with("| option | 6.1 |"), "{md}");
        assert!(md.contains("| TCP_NODELAY | ok/ok ok/ok ok/ok |"), "{md}");
    }

    #[test]
    fn a_failed_tests_output_reaches_the_report() {
        let console = lines(
            "running 2 tests\n\
             test a ... ok\n\
             test b ... FAILED\n\
             \n\
             failures:\n\
             \n\
             ---- b stdout ----\n\
             \n\
             thread 'b' panicked at t.rs:9:5:\n\
             the client joined\n\
             \n\
             \n\
             failures:\n\
             \x20   b\n\
             \n\
             test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
        );
        let r = parse("k", &console);
        assert_eq!((r.passed, r.failed), (1, 1));
        assert_eq!(r.failures, vec!["test b ... FAILED".to_string()]);
        assert_eq!(
            r.failure_output,
            vec![vec![
                "---- b stdout ----".to_string(),
                String::new(),
                "thread 'b' panicked at t.rs:9:5:".to_string(),
                "the client joined".to_string(),
            ]]
        );
    }

    #[test]
    fn a_panic_under_nocapture_reaches_the_report() {
        let console = lines(
            "test a ... ok\n\
             thread 'b' (1403) panicked at t.rs:698:5:\n\
             the announcement is logged:\n\
             2026-11-24T06:23:21Z  INFO started\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\
             test c ... ok\n\
             test b ... FAILED\n",
        );
        let r = parse("k", &console);
        assert_eq!(
            r.failure_output,
            vec![vec![
                "thread 'b' (1403) panicked at t.rs:698:5:".to_string(),
                "the announcement is logged:".to_string(),
                "2026-11-24T06:23:21Z  INFO started".to_string(),
            ]]
        );
    }

    #[test]
    fn a_long_failure_is_cut() {
        let mut console = vec!["---- c stdout ----".to_string()];
        console.extend((0..100).map(|i| format!("line {i}")));
        console.push("failures:".into());
        let s = failure_sections(&console);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].len(), FAILURE_LINES + 1);
        assert_eq!(
            s[0][FAILURE_LINES - 1],
            format!("line {}", FAILURE_LINES - 2)
        );
        assert!(s[0][FAILURE_LINES].starts_with("(cut"));
        assert!(failure_sections(&lines("test x ... ok\n")).is_empty());
        // A blank last kept line: trimmed, and the cut still said.
        let mut console = vec!["---- c stdout ----".to_string()];
        console.extend((2..FAILURE_LINES).map(|i| format!("line {i}")));
        console.extend(["".to_string(), "more".to_string(), "failures:".to_string()]);
        let s = failure_sections(&console);
        assert_eq!(s[0].len(), FAILURE_LINES);
        assert!(s[0][FAILURE_LINES - 1].starts_with("(cut"));
    }

    #[test]
    fn only_the_failed_tests_panics_are_shown() {
        let console = lines(
            "thread 'expects_a_panic' (7) panicked at t.rs:1:1:\n\
             as it should\n\
             test expects_a_panic - should panic ... ok\n\
             thread 'b' (8) panicked at t.rs:2:2:\n\
             the real one\n\
             test b ... FAILED\n",
        );
        let r = parse("k", &console);
        assert_eq!(r.failure_output.len(), 1);
        assert_eq!(r.failure_output[0][1], "the real one");
    }
}
