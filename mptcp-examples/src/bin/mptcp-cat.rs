//! `mptcp-cat`: netcat for Multipath TCP.
//!
//! ```text
//! mptcp-cat [-l] [-4|-6] [--mptcp prefer|require|off] [--json] [--send-only|--recv-only] [HOST] PORT
//! ```
//!
//! Client: connects, copies stdin to the socket and the socket to stdout until both
//! directions are closed. `-l`: listens on HOST PORT (every address when HOST is left
//! out, as netcat's `-l PORT`) and serves one connection the same way. At the end it prints a summary on stderr: whether MPTCP was used (or why not),
//! the connection token, the `MPTCP_INFO` fields and the subflows, read while the
//! connection was still established. `--json` prints the summary as one JSON object on
//! one line. How the connection ends (an empty stdin, `--send-only`, `--recv-only`):
//! see `CLOSING` below (also printed by `--help`).

use clap::Parser;
use mptcp::{Mode, MptcpSocket, Unavailable};
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How the connection ends, for `--help`.
const CLOSING: &str = "\
Closing: at the end of stdin, mptcp-cat closes its sending side. If stdin ends before
giving any data (as with < /dev/null), it keeps its side open until the peer closes its
side, or until nothing has arrived for 2 s: the peer can still add subflows, which the
kernel stops doing once either side has closed. When the peer closes its side,
mptcp-cat finishes, without waiting for stdin unless stdin gave data and has not ended.
--send-only closes the sending side at the end of stdin even if it was empty, and
--recv-only never reads stdin and keeps its side open until the peer closes.";

#[derive(Parser)]
#[command(
    name = "mptcp-cat",
    about = "netcat for Multipath TCP",
    version,
    override_usage = "mptcp-cat [OPTIONS] HOST PORT\n       mptcp-cat -l [OPTIONS] [HOST] PORT",
    after_help = CLOSING
)]
struct Args {
    /// Listen on HOST PORT (every address without HOST) and serve one connection.
    #[arg(short = 'l', long = "listen")]
    listen: bool,
    /// Use IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use IPv6 addresses only.
    #[arg(short = '6')]
    ipv6: bool,
    /// MPTCP mode: prefer (fall back to TCP if the kernel cannot), require, or off.
    #[arg(long = "mptcp", default_value = "prefer", value_parser = parse_mode)]
    mode: Mode,
    /// Print the summary as one JSON object on one line.
    #[arg(long)]
    json: bool,
    /// Only send: copy stdin to the connection, close the sending side at the end of
    /// stdin, discard what arrives.
    #[arg(long, conflicts_with = "recv_only")]
    send_only: bool,
    /// Only receive: never read stdin; keep the connection open until the peer closes
    /// its side.
    #[arg(long)]
    recv_only: bool,
    /// HOST PORT: the host to connect to (with -l, the address to listen on, which can
    /// be left out) and the port.
    #[arg(value_names = ["HOST", "PORT"], num_args = 0..=2)]
    target: Vec<String>,
}

impl Args {
    /// HOST and PORT from the one or two words given, or the usage error: with `-l` and
    /// one word, it is the port and every address is listened on (`::`, which takes
    /// IPv4 too, or `0.0.0.0` with `-4`).
    fn host_port(&self) -> Result<(String, u16), String> {
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("invalid PORT {p:?}: expected a number from 0 to 65535"))
        };
        match self.target.as_slice() {
            [host, p] => Ok((host.clone(), port(p)?)),
            [p] if self.listen => {
                let any = if self.ipv4 { "0.0.0.0" } else { "::" };
                Ok((any.to_string(), port(p)?))
            }
            [p] if p.parse::<u16>().is_ok() => {
                Err("missing HOST: a client needs HOST PORT (-l PORT listens)".into())
            }
            [] if !self.listen => {
                Err("the following required arguments were not provided: <HOST> <PORT>".into())
            }
            _ => Err("the following required arguments were not provided: <PORT>".into()),
        }
    }
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

    /// Subflows still connected: once the peer has closed, the kernel may list one whose
    /// addresses it has already cleared (remote port 0).
    fn subflow_count(&self) -> usize {
        self.connection.as_ref().map_or(0, |c| {
            c.subflows.iter().filter(|sf| sf.remote.port() != 0).count()
        })
    }

    fn to_json(&self) -> Value {
        let c = self.connection.as_ref();
        json!({
            "mptcp": self.mptcp,
            "fallback_reason": self.fallback_reason,
            // Hex, as `ip mptcp monitor` prints it.
            "token": c.map(|c| c.info.token().to_string()),
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
        eprintln!("mptcp-cat: token: {}", c.info.token());
        if let Value::Object(fields) = json!(c.info) {
            let shown: Vec<String> = fields
                .iter()
                .filter(|(k, v)| !v.is_null() && k.as_str() != "token")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            eprintln!("mptcp-cat: info: {}", shown.join(" "));
        }
        for sf in &c.subflows {
            let id = sf.id.map_or("?".to_string(), |i| i.to_string());
            eprintln!(
                "mptcp-cat: subflow {id}: {} -> {} (sent {} bytes, received {})",
                sf.local,
                sf.remote,
                sf.tcp_info.bytes_sent(),
                sf.tcp_info.bytes_received()
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
            Ok(i) if i.write_seq() != i.snd_una() => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => return,
        }
    }
}

fn addresses(args: &Args) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = args
        .host_port()
        .unwrap_or_else(|e| mptcp_examples::usage_error("mptcp-cat", &e));
    let all: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .filter(|a| (!args.ipv6 || a.is_ipv6()) && (!args.ipv4 || a.is_ipv4()))
        .collect();
    if all.is_empty() {
        return Err(format!("no usable address for {host}"));
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
        let sock = MptcpSocket::for_addr(a, args.mode).map_err(|e| e.to_string())?;
        let unavailable = sock.unavailable();
        if args.listen {
            sock.set_reuseaddr(true).map_err(|e| e.to_string())?;
            if let Err(e) = sock.bind(a) {
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
        match sock.connect(a) {
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

/// With an empty stdin, how long nothing may arrive before mptcp-cat closes its side.
const IDLE: Duration = Duration::from_secs(2);

/// What the two directions tell each other.
struct Shared {
    start: Instant,
    /// Milliseconds from `start` to the last data received (or to the connection).
    last_received_ms: AtomicU64,
    /// The peer closed its side.
    peer_closed: AtomicBool,
    /// Stdin gave at least one byte.
    stdin_gave_data: AtomicBool,
}

impl Shared {
    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_received_ms.load(Ordering::SeqCst));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Closes the sending side; the peer may have closed the connection already.
fn half_close(stream: &TcpStream) -> Result<(), String> {
    match stream.shutdown(Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(format!("shutdown: {e}")),
        _ => Ok(()),
    }
}

/// stdin -> socket. At the end of input, reads the summary while the connection is still
/// established, then half-closes; `None` when stdin gave nothing and the peer closed first
/// (the caller closes then).
fn send(
    stream: TcpStream,
    unavailable: Option<Unavailable>,
    shared: &Shared,
    send_only: bool,
) -> Result<Option<Summary>, String> {
    let mut input = io::stdin().lock();
    let mut w = &stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("stdin: {e}")),
        };
        shared.stdin_gave_data.store(true, Ordering::SeqCst);
        w.write_all(&buf[..n]).map_err(|e| format!("send: {e}"))?;
    }
    if !send_only && !shared.stdin_gave_data.load(Ordering::SeqCst) {
        // Nothing to send: keep the connection fully open (so the peer can still add
        // subflows) until the peer closes, or until it has been idle for a while (so
        // that two sides with nothing to send do not wait for each other forever).
        while shared.idle() < IDLE {
            if shared.peer_closed.load(Ordering::SeqCst) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    wait_acked(&stream);
    let summary = Summary::read(&stream, unavailable);
    half_close(&stream)?;
    Ok(Some(summary))
}

fn run(args: &Args) -> Result<(), String> {
    let opened = open(args)?;
    let (stream, unavailable) = (&opened.stream, opened.unavailable);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        last_received_ms: AtomicU64::new(0),
        peer_closed: AtomicBool::new(false),
        stdin_gave_data: AtomicBool::new(false),
    });
    // The sending side runs on its own thread, which is not waited for when the peer
    // closes and stdin has given nothing: it may be blocked reading stdin for good.
    let sender = if args.recv_only {
        None
    } else {
        let clone = stream.try_clone().map_err(|e| format!("socket: {e}"))?;
        let (tx, rx) = mpsc::channel();
        let (shared, send_only) = (shared.clone(), args.send_only);
        std::thread::spawn(move || {
            let _ = tx.send(send(clone, unavailable, &shared, send_only));
        });
        Some(rx)
    };
    // socket -> stdout, until the peer closes its side.
    let at_peer_end = {
        let mut out = io::stdout().lock();
        let mut r = stream;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("receive: {e}")),
            };
            let ms = u64::try_from(shared.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            shared.last_received_ms.store(ms, Ordering::SeqCst);
            if !args.send_only {
                out.write_all(&buf[..n])
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("stdout: {e}"))?;
            }
        }
        let summary = Summary::read(stream, unavailable);
        shared.peer_closed.store(true, Ordering::SeqCst);
        summary
    };
    // The sender's outcome: waited for only while it is still copying stdin.
    let at_input_end = match &sender {
        None => None,
        Some(rx) => match rx.try_recv() {
            Ok(r) => r?,
            Err(_) if shared.stdin_gave_data.load(Ordering::SeqCst) => {
                rx.recv().unwrap_or(Ok(None))?
            }
            Err(_) => None,
        },
    };
    half_close(stream)?;
    // The later reading wins when it still saw the connection with as many subflows.
    let summary = match at_input_end {
        None => at_peer_end,
        Some(a) => {
            let b = at_peer_end;
            let (early, late) = if a.at <= b.at { (a, b) } else { (b, a) };
            if late.connection.is_some()
                && late.subflow_count() > 0
                && late.subflow_count() >= early.subflow_count()
            {
                late
            } else {
                early
            }
        }
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
