//! `mptcp-cat`: netcat for Multipath TCP.
//!
//! ```text
//! mptcp-cat [-l] [-6] [--mptcp prefer|require|off] [--json] HOST PORT
//! ```
//!
//! Client: connects, copies stdin to the socket and the socket to stdout until both
//! directions are closed. `-l`: listens on HOST PORT and serves one connection the same
//! way. At the end it prints a summary on stderr: whether MPTCP was used (or why not),
//! the connection token, the `MPTCP_INFO` fields and the subflows, read while the
//! connection was still established. `--json` prints the summary as one JSON object on
//! one line.

use clap::Parser;
use mptcp::{Mode, MptcpSocket, Unavailable};
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};

#[derive(Parser)]
#[command(name = "mptcp-cat", about = "netcat for Multipath TCP", version)]
struct Args {
    /// Listen on HOST PORT and serve one connection.
    #[arg(short = 'l', long = "listen")]
    listen: bool,
    /// Use IPv6 addresses only.
    #[arg(short = '6')]
    ipv6: bool,
    /// MPTCP mode: prefer (fall back to TCP if the kernel cannot), require, or off.
    #[arg(long = "mptcp", default_value = "prefer", value_parser = parse_mode)]
    mode: Mode,
    /// Print the summary as one JSON object on one line.
    #[arg(long)]
    json: bool,
    /// Host to connect to (or address to listen on with -l).
    host: String,
    /// Port.
    port: u16,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse().map_err(|e: mptcp::ParseModeError| e.to_string())
}

/// What the connection was, read while it was established.
struct Summary {
    at: std::time::Instant,
    mptcp: bool,
    fallback_reason: Option<String>,
    connection: Option<mptcp::Connection>,
}

impl Summary {
    fn read(stream: &TcpStream, unavailable: Option<Unavailable>) -> Summary {
        let at = std::time::Instant::now();
        let no = |why: String| Summary {
            at,
            mptcp: false,
            fallback_reason: Some(why),
            connection: None,
        };
        if let Some(u) = unavailable {
            return no(format!("MPTCP is unavailable: {u}"));
        }
        match mptcp::status(stream) {
            Ok(st) if st.using_mptcp => match mptcp::connection(stream) {
                Ok(c) => Summary {
                    at,
                    mptcp: true,
                    fallback_reason: None,
                    connection: Some(c),
                },
                Err(e) => no(e.to_string()),
            },
            Ok(st) if st.created_as_mptcp => {
                no("the peer did not use MPTCP: the connection fell back to TCP".into())
            }
            Ok(_) => no("the peer connected with plain TCP".into()),
            Err(e) => no(e.to_string()),
        }
    }

    fn subflow_count(&self) -> usize {
        self.connection.as_ref().map_or(0, |c| c.subflows.len())
    }

    fn to_json(&self) -> Value {
        let c = self.connection.as_ref();
        json!({
            "mptcp": self.mptcp,
            "fallback_reason": self.fallback_reason,
            // Hex, as `ip mptcp monitor` prints it.
            "token": c.map(|c| c.info.token.to_string()),
            "info": c.map(|c| json!(c.info)),
            "subflows": c.map(|c| json!(c.subflows)).unwrap_or(json!([])),
        })
    }

    fn print(&self, as_json: bool) {
        if as_json {
            eprintln!("{}", self.to_json());
            return;
        }
        match &self.fallback_reason {
            None => eprintln!("mptcp-cat: MPTCP: yes"),
            Some(why) => eprintln!("mptcp-cat: MPTCP: no ({why})"),
        }
        let Some(c) = &self.connection else { return };
        eprintln!("mptcp-cat: token: {}", c.info.token);
        if let Value::Object(fields) = json!(c.info) {
            let shown: Vec<String> = fields
                .iter()
                .filter(|(k, v)| !v.is_null() && k.as_str() != "token")
                // The kernel's `subflows` counts the subflows beyond the initial one.
                .map(|(k, v)| match k.as_str() {
                    "subflows" => format!("extra_subflows={v}"),
                    _ => format!("{k}={v}"),
                })
                .collect();
            eprintln!("mptcp-cat: info: {}", shown.join(" "));
        }
        for sf in &c.subflows {
            let id = sf.id.map_or("?".to_string(), |i| i.to_string());
            eprintln!(
                "mptcp-cat: subflow {id}: {} -> {} (sent {} bytes, received {})",
                sf.local, sf.remote, sf.tcp_info.bytes_sent, sf.tcp_info.bytes_received
            );
        }
    }
}

/// Waits (at most 10 s) until the peer acknowledged everything sent, so the summary
/// shows the connection as it carried the data, with all the subflows it used.
fn wait_acked(stream: &TcpStream) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < end {
        match mptcp::info(stream) {
            Ok(i) if i.write_seq != i.snd_una => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => return,
        }
    }
}

fn addresses(args: &Args) -> Result<Vec<SocketAddr>, String> {
    let all: Vec<SocketAddr> = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", args.host))?
        .filter(|a| !args.ipv6 || a.is_ipv6())
        .collect();
    if all.is_empty() {
        return Err(format!("no usable address for {}", args.host));
    }
    Ok(all)
}

/// An open connection, plus the listener it came from: the listener must stay open for
/// the whole connection, because the client's additional subflows (MP_JOIN) are accepted
/// through it; closing it makes the kernel reset them.
struct Opened {
    stream: TcpStream,
    unavailable: Option<Unavailable>,
    _listener: Option<std::net::TcpListener>,
}

/// Connects (one attempt per address) or accepts one connection.
fn open(args: &Args) -> Result<Opened, String> {
    let mut last = String::new();
    for a in addresses(args)? {
        let sock = MptcpSocket::for_addr(&a, args.mode).map_err(|e| e.to_string())?;
        let unavailable = sock.unavailable();
        if args.listen {
            sock.socket()
                .set_reuse_address(true)
                .map_err(|e| e.to_string())?;
            if let Err(e) = sock.bind(&a) {
                last = format!("{a}: {e}");
                continue;
            }
            let listener = sock.listen(1).map_err(|e| e.to_string())?;
            let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            return Ok(Opened {
                stream,
                unavailable,
                _listener: Some(listener),
            });
        }
        match sock.connect(&a) {
            Ok(stream) => {
                return Ok(Opened {
                    stream,
                    unavailable,
                    _listener: None,
                })
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

fn run(args: &Args) -> Result<(), String> {
    let opened = open(args)?;
    let (stream, unavailable) = (&opened.stream, opened.unavailable);
    let (at_input_end, at_peer_end) = std::thread::scope(|s| {
        // stdin -> socket; at the end of input, read the summary while the connection is
        // still established, then half-close.
        let sender = s.spawn(move || -> Result<Summary, String> {
            let mut input = io::stdin().lock();
            let mut w = stream;
            io::copy(&mut input, &mut w).map_err(|e| format!("send: {e}"))?;
            wait_acked(stream);
            let summary = Summary::read(stream, unavailable);
            match stream.shutdown(Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => {
                    return Err(format!("shutdown: {e}"))
                }
                _ => {}
            }
            Ok(summary)
        });
        // socket -> stdout, until the peer closes its side.
        let received = (|| -> Result<Summary, String> {
            let mut out = io::stdout().lock();
            let mut r = stream;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = r.read(&mut buf).map_err(|e| format!("receive: {e}"))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("stdout: {e}"))?;
            }
            Ok(Summary::read(stream, unavailable))
        })();
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err("the sending thread panicked".into()));
        (sent, received)
    });
    // The later reading wins when it still saw the connection with as many subflows.
    let summary = match (at_input_end, at_peer_end) {
        (Ok(a), Ok(b)) => {
            let (early, late) = if a.at <= b.at { (a, b) } else { (b, a) };
            if late.connection.is_some() && late.subflow_count() >= early.subflow_count() {
                late
            } else {
                early
            }
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    summary.print(args.json);
    Ok(())
}

fn main() {
    let args: Args = mptcp_examples::parse_args("mptcp-cat");
    if let Err(e) = run(&args) {
        eprintln!("mptcp-cat: error: {e}");
        std::process::exit(1);
    }
}
