//! `mptcp-doctor`: what is wrong with this host's MPTCP set-up, one line per finding
//! with its evidence and fix; `probe HOST PORT` tries MP_CAPABLE and MP_JOIN for real.
//!
//! ```text
//! mptcp-doctor [--json] [--all]
//! mptcp-doctor probe HOST PORT [--timeout SECS] [--send TEXT] [--json]
//! ```

mod checks;
mod facts;
mod probe;

use checks::{Finding, Level};
use clap::{Parser, Subcommand};
use std::net::ToSocketAddrs;
use std::time::Duration;

const TOOL: &str = "mptcp-doctor";

const DETAILS: &str = "\
Checks: the kernel (MPTCP present, enabled, sockets work, listing), the path manager
(which one; limits against endpoints: subflow endpoints with a subflows limit of 0 open
nothing), endpoints (interface missing or down, no interface on a multi-homed host,
address on no interface), routing (strict rp_filter on an endpoint's interface; an
endpoint address whose packets to remote hosts leave through another interface or have
no route: the source-routing rule is missing), conflicts (NetworkManager, mptcpd and
mptcp-pmd managing the same namespace), and the kernel's counters of fallbacks,
blackholes and failed joins, with what they usually mean.

probe HOST PORT: connects to HOST PORT with MPTCP from each local address of an
interface that is up, and says per path whether MP_CAPABLE succeeded or the connection
fell back to TCP, and why when the kernel's counters tell (a SYN/ACK without
MP_CAPABLE: the server has no MPTCP or a middlebox strips it). Then, on one connection,
whether each subflow endpoint's MP_JOIN joined within --timeout. The kernel adds
subflows once the connection is fully established, which takes data from the server:
for a server that waits for the client, give --send TEXT. The counters are the
namespace's: other connections opening at the same time blur them.

Output: one line per finding, `LEVEL check: message [evidence] (fix: ...)`; ok lines
only with --all. --json: one object {\"findings\": [...], \"problems\": N}.

Exit codes: 0 no problem (nothing above info), 1 a warning or an error, 2 wrong
command line.";

#[derive(Parser)]
#[command(
    name = "mptcp-doctor",
    about = "What is wrong with this host's MPTCP, and how to fix it",
    version,
    after_help = DETAILS
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// One JSON object instead of lines.
    #[arg(long, global = true)]
    json: bool,
    /// Show the checks that passed too.
    #[arg(long, global = true)]
    all: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Try MP_CAPABLE from each local address and MP_JOIN from each subflow endpoint.
    Probe {
        /// The server: a name or an address.
        host: String,
        /// Its port.
        port: u16,
        /// How long each connection and the joins may take (seconds).
        #[arg(long, default_value_t = 5.0, value_parser = parse_secs)]
        timeout: f64,
        /// Send this (then a newline) once connected, for servers that wait for the client.
        #[arg(long, value_name = "TEXT")]
        send: Option<String>,
    },
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=600.0).contains(&v) => Ok(v),
        Ok(_) => Err("expected from 0.1 to 600 seconds".into()),
        Err(_) => Err("expected a number of seconds, such as 5".into()),
    }
}

fn main() {
    let args: Args = mptcp_examples::parse_args(TOOL);
    let rt = match facts::Rt::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{TOOL}: {e}");
            std::process::exit(1);
        }
    };
    let facts = facts::gather(&rt);
    let findings = match &args.cmd {
        None => checks::host(&facts, &rt),
        Some(Cmd::Probe {
            host,
            port,
            timeout,
            send,
        }) => {
            let target = match (host.as_str(), *port).to_socket_addrs() {
                Ok(mut it) => match it.next() {
                    Some(t) => t,
                    None => mptcp_examples::usage_error(TOOL, &format!("{host}: no address")),
                },
                Err(e) => mptcp_examples::usage_error(TOOL, &format!("{host}: {e}")),
            };
            let send = send.as_ref().map(|t| format!("{t}\n").into_bytes());
            if facts.enabled != Some(true) {
                checks::host(&facts, &rt)
            } else {
                probe::run(
                    &facts,
                    &rt,
                    target,
                    Duration::from_secs_f64(*timeout),
                    send.as_deref(),
                )
            }
        }
    };
    let problems = findings.iter().filter(|f| f.level >= Level::Warn).count();
    if args.json {
        let v = serde_json::json!({ "findings": findings, "problems": problems });
        println!("{v}");
    } else {
        print_lines(&findings, args.all);
        if problems == 0 {
            println!("no problem found ({} checks)", findings.len());
        } else {
            println!("{problems} problem(s) found");
        }
    }
    std::process::exit(i32::from(problems > 0));
}

fn print_lines(findings: &[Finding], all: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for f in findings {
        if f.level == Level::Ok && !all {
            continue;
        }
        let fix = f
            .fix
            .as_ref()
            .map(|x| format!(" (fix: {x})"))
            .unwrap_or_default();
        let line = format!(
            "{:<5} {}: {} [{}]{fix}",
            f.level.word(),
            f.check,
            f.message,
            f.evidence
        );
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}
