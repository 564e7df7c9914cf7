//! What the demo shows while it runs. On a terminal: indicatif bars on stdout (the act's
//! time, one row per path with its subflow's rate, bytes and TCP state, and a line of
//! connection state), with event lines printed above them as they happen. Elsewhere
//! (a pipe, a file, CI): the same figures as one plain line per second, and the event
//! lines as they happen, with no control characters.

use super::transfer::Snapshot;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Mutex;

/// The window over which the rates shown are measured.
const RATE_WINDOW: f64 = 0.5;
/// How often the plain display prints a line.
const PLAIN_EVERY: f64 = 1.0;

/// Megabytes (10^6 bytes), as printed everywhere in the demo.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The per-path rates, Mbit/s, over the last [`RATE_WINDOW`] of `history`.
fn rates(history: &VecDeque<(f64, [u64; 2])>) -> [f64; 2] {
    let (Some(last), Some(first)) = (history.back(), history.front()) else {
        return [0.0; 2];
    };
    let dt = last.0 - first.0;
    if dt <= 0.0 {
        return [0.0; 2];
    }
    [0, 1].map(|p| last.1[p].saturating_sub(first.1[p]) as f64 * 8.0 / dt / 1e6)
}

/// The terminal's settings before the bars took it, restored by [`restore_terminal`].
static SAVED_TERMIOS: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Stops the terminal from echoing what is typed (a Ctrl-C's `^C` included) while the
/// bars are drawn: an echo moves the cursor under indicatif, which then leaves a line
/// behind when it clears the bars.
fn quiet_terminal() {
    let fd = libc::STDIN_FILENO;
    // SAFETY: tcgetpgrp and getpgrp only read the caller's state.
    let foreground = unsafe { libc::tcgetpgrp(fd) == libc::getpgrp() };
    // A background job changing the terminal would be stopped (SIGTTOU).
    if !std::io::stdin().is_terminal() || !foreground {
        return;
    }
    // SAFETY: termios is plain integers; tcgetattr fills it for a terminal descriptor.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid termios to write to.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return;
    }
    if let Ok(mut saved) = SAVED_TERMIOS.lock() {
        saved.get_or_insert(t);
    }
    t.c_lflag &= !(libc::ECHO | libc::ECHOCTL);
    // SAFETY: `t` is the terminal's own settings with two local flags cleared.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
}

/// Gives the terminal its settings back (after the bars, or on the way out of a
/// Ctrl-C), and shows the cursor.
pub fn restore_terminal() {
    let saved = SAVED_TERMIOS.lock().ok().and_then(|mut s| s.take());
    if let Some(t) = saved {
        // SAFETY: `t` is what tcgetattr returned for this terminal.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) };
    }
}

struct Live {
    multi: MultiProgress,
    time: ProgressBar,
    paths: [ProgressBar; 2],
    conn: ProgressBar,
}

/// The demo's screen.
pub struct Display {
    tty: bool,
    live: Option<Live>,
    history: VecDeque<(f64, [u64; 2])>,
    next_plain: f64,
    /// One path's rate, Mbit/s: the bars' full length.
    capacity: f64,
    label: String,
}

impl Display {
    pub fn new(capacity_mbit: u32) -> Display {
        Display {
            tty: std::io::stdout().is_terminal(),
            live: None,
            history: VecDeque::new(),
            next_plain: PLAIN_EVERY,
            capacity: f64::from(capacity_mbit),
            label: String::new(),
        }
    }

    /// A line that stays (above the bars, if any).
    pub fn say(&self, line: &str) {
        match &self.live {
            Some(l) => {
                let _ = l.multi.println(line);
            }
            None => println!("{line}"),
        }
    }

    /// An event of the running transfer, stamped with its time.
    pub fn event(&self, t: f64, what: &str) {
        self.say(&format!("  {t:5.2} s  {what}"));
    }

    /// Starts the live display of a transfer of `secs` seconds.
    pub fn begin(&mut self, label: &str, secs: f64) {
        self.end();
        self.history.clear();
        self.next_plain = PLAIN_EVERY;
        self.label = label.to_string();
        if !self.tty {
            return;
        }
        quiet_terminal();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10));
        let style = |t: &str| {
            ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        let time = multi.add(ProgressBar::new((secs * 10.0) as u64));
        time.set_style(style("  {prefix:<12} [{bar:24}] {msg}").progress_chars("=> "));
        time.set_prefix(label.to_string());
        let paths = [0, 1].map(|i| {
            let b = multi.add(ProgressBar::new((self.capacity * 10.0) as u64));
            b.set_style(style("  {prefix:<12} [{bar:24}] {msg}").progress_chars("#- "));
            b.set_prefix(format!("path {}", i + 1));
            b.set_message("no subflow");
            b
        });
        let conn = multi.add(ProgressBar::new(1));
        conn.set_style(style("  {msg}"));
        self.live = Some(Live {
            multi,
            time,
            paths,
            conn,
        });
    }

    /// Shows a new sample.
    pub fn update(&mut self, s: &Snapshot, secs: f64) {
        let backup = [0, 1].map(|p| {
            s.subflows
                .iter()
                .any(|v| v.path == p && v.backup == Some(true))
        });
        self.history.push_back((s.t, s.paths));
        while self
            .history
            .front()
            .is_some_and(|f| s.t - f.0 > RATE_WINDOW + 1e-6)
        {
            self.history.pop_front();
        }
        let rates = rates(&self.history);
        let conn = conn_line(s);
        if let Some(l) = &self.live {
            l.time.set_position((s.t * 10.0) as u64);
            l.time.set_message(format!(
                "{:4.1} / {secs:.0} s   received {}",
                s.t,
                mb(s.received)
            ));
            for (p, bar) in l.paths.iter().enumerate() {
                bar.set_position((rates[p] * 10.0).min(self.capacity * 10.0) as u64);
                let sf = s.subflows.iter().find(|v| v.path == p);
                let detail = match sf {
                    Some(v) => format!(
                        "{:<11} rtt {:4} ms  cwnd {:4}  {} -> {}{}",
                        v.state,
                        v.rtt_us / 1000,
                        v.cwnd,
                        v.local,
                        v.remote,
                        if backup[p] { "  (backup)" } else { "" }
                    ),
                    None => "no subflow".to_string(),
                };
                bar.set_message(format!(
                    "{:5.1} Mbit/s {:>9}  {detail}",
                    rates[p],
                    mb(s.paths[p])
                ));
            }
            l.conn.set_message(conn);
            return;
        }
        if s.t + 1e-6 >= self.next_plain {
            self.next_plain += PLAIN_EVERY;
            let paths: Vec<String> = (0..2)
                .filter(|&p| s.paths[p] > 0 || s.subflows.iter().any(|v| v.path == p))
                .map(|p| {
                    format!(
                        "path {} {:5.1} Mbit/s {:>9}{}",
                        p + 1,
                        rates[p],
                        mb(s.paths[p]),
                        if backup[p] { " (backup)" } else { "" }
                    )
                })
                .collect();
            println!("  {:5.2} s  {} | {}", s.t, paths.join(" | "), conn);
        }
    }

    /// Clears the live display.
    pub fn end(&mut self) {
        if let Some(l) = self.live.take() {
            for b in l.paths.iter().chain([&l.time, &l.conn]) {
                b.finish_and_clear();
            }
            let _ = l.multi.clear();
        }
        restore_terminal();
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.end();
    }
}

/// The connection-state line.
fn conn_line(s: &Snapshot) -> String {
    let c = &s.conn;
    match c.token {
        Some(token) => {
            let mut parts = vec![
                format!("MPTCP token {token}"),
                match s.subflows.len() {
                    1 => "1 subflow".to_string(),
                    n => format!("{n} subflows"),
                },
            ];
            if let (Some(sent), Some(acked)) = (c.bytes_sent, c.bytes_acked) {
                parts.push(format!("sent {} acked {}", mb(sent), mb(acked)));
            }
            if let Some(r) = c.bytes_retrans {
                parts.push(format!("reinjected {}", mb(r)));
            }
            if let Some(ms) = c.last_ack_ms {
                parts.push(format!("last ack {ms} ms ago"));
            }
            parts.join(", ")
        }
        None => match s.subflows.first() {
            Some(v) => format!(
                "TCP {}, rtt {} ms, cwnd {}, retransmitted segments {}",
                v.state,
                v.rtt_us / 1000,
                v.cwnd,
                v.retrans
            ),
            None => "TCP".to_string(),
        },
    }
}

/// One line for a path-manager event (client side), or `None` for the ones the demo
/// does not show (listeners).
pub fn describe(ev: &mptcp::pm::Event) -> Option<String> {
    use mptcp::pm::Event;
    let path = |a: std::net::SocketAddr| match super::topology::path_of(a.ip()) {
        Some(p) => format!("path {}", p + 1),
        None => "no demo path".to_string(),
    };
    let text = match ev {
        Event::Created(c) => format!(
            "connection {} on {}: {} -> {}",
            c.token,
            path(c.local),
            c.local,
            c.remote
        ),
        Event::Established(c) => format!("connection {} fully established", c.token),
        Event::Closed { token } => format!("connection {token} closed"),
        Event::Announced { addr, .. } => format!("the server announced {addr}"),
        Event::Removed { remote_id, .. } => format!("the server withdrew address id {remote_id}"),
        Event::SubEstablished(s) => format!(
            "+ subflow on {}: {} -> {}{}",
            path(s.local),
            s.local,
            s.remote,
            if s.backup { " (backup)" } else { "" }
        ),
        Event::SubClosed(s) => format!(
            "- subflow on {}: {} -> {}{}",
            path(s.local),
            s.local,
            s.remote,
            match s.error {
                Some(e) if e != 0 => {
                    format!(" ({})", std::io::Error::from_raw_os_error(e.into()))
                }
                _ => String::new(),
            }
        ),
        Event::SubPriority(s) => format!(
            "subflow on {} is now {}",
            path(s.local),
            if s.backup {
                "a backup"
            } else {
                "a regular one"
            }
        ),
        Event::ListenerCreated { .. } | Event::ListenerClosed { .. } => return None,
        _ => String::new(),
    };
    Some(format!("event {:<14} {text}", ev.kind().name()))
}
