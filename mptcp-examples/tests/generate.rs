//! `--generate`: every tool prints its man page and its completion scripts (what the
//! Debian package installs), alone on its command line, and nothing else happens.

use std::io::Read;
use std::process::{Command, Stdio};

const TOOLS: &[(&str, &str)] = &[
    ("mptcp-cat", env!("CARGO_BIN_EXE_mptcp-cat")),
    ("mptcp-pm", env!("CARGO_BIN_EXE_mptcp-pm")),
    ("mptcp-pmd", env!("CARGO_BIN_EXE_mptcp-pmd")),
    ("mptcp-stat", env!("CARGO_BIN_EXE_mptcp-stat")),
    ("mptcp-run", env!("CARGO_BIN_EXE_mptcp-run")),
];

fn generate(exe: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the tool");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn man_pages_and_completions_name_the_tool_and_its_options() {
    for (name, exe) in TOOLS {
        let (code, man, err) = generate(exe, &["--generate", "man"]);
        assert_eq!(code, Some(0), "{name} --generate man: {err}");
        assert!(err.is_empty(), "{name}: stderr {err:?}");
        assert!(
            man.lines()
                .any(|l| l.starts_with(&format!(".TH {name} 1 "))),
            "{name}: a section 1 page named after the tool:\n{man}"
        );
        assert!(man.contains("\\-\\-help"), "{name}: the options are listed");
        for (shell, marker) in [
            ("bash", format!("complete -F _{}", name.replace('-', "__"))),
            ("zsh", format!("#compdef {name}")),
            ("fish", format!("complete -c {name}")),
        ] {
            let (code, text, err) = generate(exe, &["--generate", shell]);
            assert_eq!(code, Some(0), "{name} --generate {shell}: {err}");
            assert!(
                text.contains(&marker),
                "{name} --generate {shell}: {marker:?} missing:\n{text}"
            );
        }
    }
    // A tool with subcommands: they are on its page and in its completions.
    let (_, man, _) = generate(env!("CARGO_BIN_EXE_mptcp-pm"), &["--generate", "man"]);
    for sub in ["endpoint", "limits", "monitor", "subflow"] {
        assert!(man.contains(sub), "mptcp-pm's page names {sub}");
    }
    let (_, bash, _) = generate(env!("CARGO_BIN_EXE_mptcp-pm"), &["--generate", "bash"]);
    assert!(bash.contains("endpoint") && bash.contains("--json"));
}

#[test]
fn generate_stands_alone_and_refuses_what_it_does_not_know() {
    let pm = env!("CARGO_BIN_EXE_mptcp-pm");
    let cat = env!("CARGO_BIN_EXE_mptcp-cat");
    let (code, out, err) = generate(pm, &["--generate", "tcsh"]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty());
    assert!(
        err.starts_with("mptcp-pm: invalid value 'tcsh' for '--generate <WHAT>'"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err:?}");
    // With anything else on the command line it is a usage error, not a silent choice.
    let (code, out, err) = generate(cat, &["--generate", "man", "-l", "5000"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("--generate"), "{err}");
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    // `mptcp-run --generate man | head -1`: the tool exits 0 without a message.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp-run"))
        .args(["--generate", "man"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mptcp-run");
    let stdout = child.stdout.take().expect("its stdout");
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("its stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err:?}");
}
