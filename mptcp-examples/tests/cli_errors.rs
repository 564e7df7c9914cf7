//! Wrong command lines: each gives one line on stderr that names what is missing or
//! wrong, exit code 2, and does nothing. Run in a namespace of their own, so that a
//! command accepted by mistake cannot touch the machine's endpoints or connect anywhere.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::Netns;
use std::process::{Command, Output, Stdio};

const PM: &str = env!("CARGO_BIN_EXE_mptcp-pm");
const CAT: &str = env!("CARGO_BIN_EXE_mptcp-cat");
const PMD: &str = env!("CARGO_BIN_EXE_mptcp-pmd");

fn run(ns: &Netns, tool: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, tool])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the tool")
}

/// Runs a command that must be refused as a usage error, and returns its one line.
fn refused(ns: &Netns, tool: &str, args: &[&str]) -> String {
    let o = run(ns, tool, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}: exit code; stderr {err:?}"
    );
    assert!(o.stdout.is_empty(), "{args:?}: nothing on stdout");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err:?}");
    err.trim_end().to_string()
}

#[test]
fn missing_arguments_are_named() {
    require_netns!();
    let ns = Netns::new("args");
    assert_eq!(
        refused(&ns, CAT, &[]),
        "mptcp-cat: the following required arguments were not provided: <HOST> <PORT> (see --help)"
    );
    assert_eq!(
        refused(&ns, CAT, &["192.0.2.1"]),
        "mptcp-cat: the following required arguments were not provided: <PORT> (see --help)"
    );
    assert_eq!(
        refused(&ns, CAT, &["-l", "--json"]),
        "mptcp-cat: the following required arguments were not provided: <PORT> (see --help)"
    );
    assert_eq!(
        refused(&ns, CAT, &["5000"]),
        "mptcp-cat: missing HOST: a client needs HOST PORT (-l PORT listens) (see --help)"
    );
    assert_eq!(
        refused(&ns, CAT, &["-l", "70000"]),
        "mptcp-cat: invalid PORT \"70000\": expected a number from 0 to 65535 (see --help)"
    );
    assert_eq!(
        refused(&ns, PMD, &["--log", "loud", "--check"]),
        "mptcp-pmd: --log \"loud\": \"loud\" is not a level (error, warn, info, debug, trace, off) nor TARGET=LEVEL (see --help)"
    );
    assert_eq!(
        refused(&ns, CAT, &["-4", "-6", "-l", "1"]),
        "mptcp-cat: the argument '-4' cannot be used with '-6' (see --help)"
    );
    assert_eq!(
        refused(&ns, PM, &["--json", "subflow"]),
        "mptcp-pm: subflow: missing subcommand: create, destroy, set (see --help)"
    );
    assert_eq!(
        refused(&ns, PM, &["endpoint", "delete"]),
        "mptcp-pm: endpoint delete: missing id (see --help)"
    );
    assert_eq!(
        refused(&ns, PM, &["announce", "token", "1a2b", "id", "3"]),
        "mptcp-pm: announce: missing address (see --help)"
    );
    assert_eq!(
        refused(&ns, PM, &["endpoint", "show", "id"]),
        "mptcp-pm: endpoint show: id needs a value (see --help)"
    );

    assert_eq!(
        refused(&ns, PM, &["endpoint", "change", "backup"]),
        "mptcp-pm: endpoint change: missing id or address (see --help)"
    );
    assert_eq!(
        refused(
            &ns,
            PM,
            &["endpoint", "change", "id", "3", "port", "80", "backup"]
        ),
        "mptcp-pm: endpoint change: port can't be used with id (see --help)"
    );
    assert_eq!(
        refused(&ns, PM, &["endpoint", "change", "id", "3", "signal"]),
        "mptcp-pm: endpoint change: \"signal\": only backup and fullmesh can change (see --help)"
    );
    // An abbreviation that is a flag word is the flag (as for ip), not a key.
    assert_eq!(
        refused(&ns, PM, &["e", "a", "192.0.2.1", "sub"]),
        "mptcp-pm: endpoint add: unexpected argument \"sub\" (see --help)"
    );
    assert_eq!(
        refused(&ns, PM, &["endp", "del", "d", "lo", "i", "1"]),
        "mptcp-pm: endpoint delete: unexpected argument \"dev\" (see --help)"
    );

    // No arguments at all: one line naming the commands, as for every other missing
    // word (the README's promise; `--help` shows the whole help).
    assert_eq!(
        refused(&ns, PM, &[]),
        "mptcp-pm: missing subcommand: endpoint, limits, monitor, announce, remove, subflow (see --help)"
    );
    let o = run(&ns, PM, &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.starts_with("The MPTCP path manager (like ip mptcp)\n"),
        "{help}"
    );
    assert!(
        help.contains("\nUsage: mptcp-pm [OPTIONS] <COMMAND>\n"),
        "{help}"
    );
    for sub in [
        "endpoint", "limits", "monitor", "announce", "remove", "subflow",
    ] {
        assert!(help.contains(&format!("\n  {sub} ")), "{sub} in {help}");
    }
}

#[test]
fn trailing_words_are_refused_and_nothing_is_done() {
    require_netns!();
    let ns = Netns::new("junk");
    ns.ip(&[
        "mptcp",
        "endpoint",
        "add",
        "198.51.100.2",
        "id",
        "3",
        "signal",
    ]);
    ns.ip(&[
        "mptcp",
        "limits",
        "set",
        "subflows",
        "3",
        "add_addr_accepted",
        "2",
    ]);
    let endpoints = ns.ip(&["mptcp", "endpoint", "show"]);
    let limits = ns.ip(&["mptcp", "limits", "show"]);
    let cases: &[(&str, &[&str])] = &[
        ("endpoint show", &["endpoint", "show", "junk"]),
        ("endpoint show", &["endpoint", "show", "id", "3", "junk"]),
        (
            "endpoint delete",
            &["endpoint", "delete", "id", "3", "198.51.100.2", "junk"],
        ),
        (
            "endpoint add",
            &["endpoint", "add", "192.0.2.9", "signal", "junk"],
        ),
        ("endpoint flush", &["endpoint", "flush", "junk"]),
        (
            "endpoint change",
            &["endpoint", "change", "id", "3", "backup", "junk"],
        ),
        ("limits show", &["limits", "show", "junk"]),
        ("limits set", &["limits", "set", "subflows", "5", "junk"]),
        ("monitor", &["monitor", "junk"]),
        (
            "announce",
            &["announce", "token", "1a2b", "id", "4", "192.0.2.9", "junk"],
        ),
        ("remove", &["remove", "token", "1a2b", "id", "4", "junk"]),
        (
            "subflow create",
            &[
                "subflow",
                "create",
                "token",
                "1a2b",
                "lid",
                "4",
                "laddr",
                "192.0.2.1",
                "raddr",
                "192.0.2.2",
                "rport",
                "80",
                "junk",
            ],
        ),
        (
            "subflow destroy",
            &[
                "subflow",
                "destroy",
                "token",
                "1a2b",
                "laddr",
                "192.0.2.1",
                "lport",
                "1000",
                "raddr",
                "192.0.2.2",
                "rport",
                "80",
                "junk",
            ],
        ),
        (
            "subflow set",
            &[
                "subflow",
                "set",
                "token",
                "1a2b",
                "laddr",
                "192.0.2.1",
                "lport",
                "1000",
                "raddr",
                "192.0.2.2",
                "rport",
                "80",
                "backup",
                "junk",
            ],
        ),
    ];
    for (name, args) in cases {
        assert_eq!(
            refused(&ns, PM, args),
            format!("mptcp-pm: {name}: unexpected argument \"junk\" (see --help)"),
            "{args:?}"
        );
        // The JSON flag anywhere does not change that.
        let mut with_json = args.to_vec();
        with_json.push("--json");
        refused(&ns, PM, &with_json);
    }
    // A key of another subcommand is a word too many here.
    assert_eq!(
        refused(
            &ns,
            PM,
            &[
                "subflow",
                "destroy",
                "token",
                "1a2b",
                "lid",
                "4",
                "laddr",
                "192.0.2.1",
                "lport",
                "1000",
                "raddr",
                "192.0.2.2",
                "rport",
                "80",
            ]
        ),
        "mptcp-pm: subflow destroy: unexpected argument \"lid\" (see --help)"
    );
    assert_eq!(
        refused(&ns, PM, &["endpoint", "show", "id", "3", "id", "4"]),
        "mptcp-pm: endpoint show: id given twice (see --help)"
    );
    assert_eq!(
        ns.ip(&["mptcp", "endpoint", "show"]),
        endpoints,
        "untouched"
    );
    assert_eq!(ns.ip(&["mptcp", "limits", "show"]), limits, "untouched");
}

#[test]
fn invalid_values_are_named() {
    require_netns!();
    let ns = Netns::new("values");
    let pm_cases: &[(&[&str], &str)] = &[
        (
            &["announce", "token", "1a2b", "id", "4", "bad"],
            "announce: invalid address \"bad\": invalid IP address syntax",
        ),
        (
            &["announce", "token", "zz", "id", "4", "192.0.2.9"],
            "announce: invalid token \"zz\": hexadecimal, or decimal after 0d, up to 32 bits",
        ),
        (
            &[
                "announce",
                "token",
                "1a2b",
                "id",
                "4",
                "192.0.2.9",
                "port",
                "http",
            ],
            "announce: invalid port \"http\": invalid digit found in string",
        ),
        (
            &["remove", "token", "0d12x", "id", "4"],
            "remove: invalid token \"0d12x\": hexadecimal, or decimal after 0d, up to 32 bits",
        ),
        (
            &["remove", "token", "1a2b", "id", "256"],
            "remove: invalid id \"256\": number too large to fit in target type",
        ),
        (
            &["endpoint", "add", "192.0.2.300", "signal"],
            "endpoint add: invalid address \"192.0.2.300\": invalid IP address syntax",
        ),
        (
            &["endpoint", "add", "192.0.2.9", "port", "70000"],
            "endpoint add: invalid port \"70000\": number too large to fit in target type",
        ),
        (
            &["endpoint", "delete", "id", "3", "bad"],
            "endpoint delete: invalid address \"bad\": invalid IP address syntax",
        ),
        (
            &["endpoint", "delete", "id", "x"],
            "endpoint delete: invalid id \"x\": invalid digit found in string",
        ),
        (
            &["endpoint", "change", "id", "3", "fast"],
            "endpoint change: unexpected argument \"fast\"",
        ),
        (
            &["limits", "set", "subflows", "many"],
            "limits set: invalid subflows \"many\": invalid digit found in string",
        ),
        (
            &[
                "subflow",
                "create",
                "token",
                "1a2b",
                "lid",
                "4",
                "laddr",
                "192.0.2.1",
                "raddr",
                "2001:db8::zz",
                "rport",
                "80",
            ],
            "subflow create: invalid raddr \"2001:db8::zz\": invalid IP address syntax",
        ),
        (
            &[
                "subflow",
                "set",
                "token",
                "1a2b",
                "laddr",
                "192.0.2.1",
                "lport",
                "1000",
                "raddr",
                "192.0.2.2",
                "rport",
                "80",
                "maybe",
            ],
            "subflow set: \"maybe\" is not backup or nobackup",
        ),
        (&["endpoint", "foo"], "unrecognized subcommand 'foo'"),
    ];
    for (args, msg) in pm_cases {
        assert_eq!(
            refused(&ns, PM, args),
            format!("mptcp-pm: {msg} (see --help)"),
            "{args:?}"
        );
    }
    // Found only when it is used: exit 1, the value still named.
    let o = run(
        &ns,
        PM,
        &["endpoint", "add", "192.0.2.9", "dev", "nosuchdev"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "mptcp-pm: error: no such device \"nosuchdev\"\n"
    );

    assert_eq!(
        refused(&ns, CAT, &["192.0.2.1", "http"]),
        "mptcp-cat: invalid PORT \"http\": expected a number from 0 to 65535 (see --help)"
    );
    assert_eq!(
        refused(&ns, CAT, &["--mptcp", "maybe", "192.0.2.1", "80"]),
        "mptcp-cat: invalid value 'maybe' for '--mptcp <MODE>': \"maybe\" is not a mode: expected prefer, require or off (see --help)"
    );
    assert_eq!(
        refused(&ns, CAT, &["--send-only", "--recv-only", "192.0.2.1", "80"]),
        "mptcp-cat: the argument '--send-only' cannot be used with '--recv-only' (see --help)"
    );
    let o = run(&ns, CAT, &["-6", "192.0.2.1", "80"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "mptcp-cat: error: no usable address for 192.0.2.1\n"
    );
    let o = run(&ns, CAT, &["no-such-host.invalid", "80"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("mptcp-cat: error: cannot resolve no-such-host.invalid: "),
        "{err:?}"
    );
    assert_eq!(err.lines().count(), 1, "{err:?}");
}
