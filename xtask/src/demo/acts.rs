//! The three acts: aggregation (the same timed transfer over TCP, then over MPTCP on
//! both paths), failover (path 1's link goes down mid-transfer and comes back), backup
//! (path 2 is a backup endpoint; path 1's link goes down). Each transfer is driven
//! here: path-manager events shown as they arrive, links switched on schedule, the
//! sender's counters sampled every 100 ms for the display and the plot.

use super::display::{describe, mb, Display};
use super::topology::{Topology, PATHS};
use super::transfer::{server_addr, Received, Sent, Transfer};
use anyhow::{bail, Context, Result};
use mptcp::pm::{Endpoint, EndpointFlags, Event, Limits, PathManager};
use mptcp::Mode;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Each path's rate, Mbit/s, in each direction.
pub const RATE_MBIT: u32 = 40;
/// Port of the MPTCP listener, and of the TCP one.
pub const MPTCP_PORT: u16 = 5201;
pub const TCP_PORT: u16 = 5202;

/// Act 1: each transfer sends for this long; throughput is measured at the receiver
/// from `WARMUP` to the end, so that slow start and the second subflow's handshake
/// (made once the connection is fully established) are left out of both.
const AGG_SECS: f64 = 8.0;
const WARMUP: f64 = 1.0;
/// Act 2: send for this long; path 1 down at `FAIL_DOWN`, up again at `FAIL_UP`.
const FAIL_SECS: f64 = 11.0;
const FAIL_DOWN: f64 = 3.0;
const FAIL_UP: f64 = 7.0;
/// Act 3: send for this long; path 1 down at `BACKUP_DOWN` for the rest of it.
const BACKUP_SECS: f64 = 8.0;
const BACKUP_DOWN: f64 = 3.0;
/// Below this, in a 50 ms bin, the receiving application counts as stalled: a tenth of
/// one path's rate.
const STALL_FLOOR_MBPS: f64 = RATE_MBIT as f64 / 10.0;
/// How often the sender's counters are sampled.
const SAMPLE_EVERY: f64 = 0.1;

/// A link-down or link-up moment of a run, seconds into it.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub t: f64,
    pub up: bool,
}

/// What one transfer recorded, for the plot.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    /// Seconds into the act at which this run starts.
    pub offset: f64,
    /// (seconds into the run, bytes acknowledged per path so far).
    pub samples: Vec<(f64, [u64; 2])>,
    pub marks: Vec<Mark>,
}

/// An act's runs, for the plot.
#[derive(Debug, Clone)]
pub struct Act {
    pub title: String,
    pub runs: Vec<Run>,
}

/// Act 1's figures.
#[derive(Debug, Clone)]
pub struct Aggregation {
    pub tcp_mbps: f64,
    /// None without MPTCP.
    pub mptcp_mbps: Option<f64>,
    pub ratio: Option<f64>,
    pub mptcp_bytes_per_path: Option<[u64; 2]>,
}

/// Act 2's figures.
#[derive(Debug, Clone)]
pub struct Failover {
    pub sha256_ok: bool,
    pub bytes: u64,
    pub stall_ms: f64,
    /// Per path: bytes acknowledged before the link went down, while it was down, and
    /// after it came back.
    pub bytes_per_path: [[u64; 3]; 2],
    /// Seconds path 1 was down.
    pub down_secs: f64,
}

/// Act 3's figures.
#[derive(Debug, Clone)]
pub struct Backup {
    pub sha256_ok: bool,
    pub bytes: u64,
    /// Per path: bytes acknowledged before path 1 went down, and after.
    pub before: [u64; 2],
    pub after: [u64; 2],
    /// Milliseconds the receiving application got (almost) nothing after path 1 went
    /// down ([`Received::stall`](super::transfer::Received::stall)).
    pub stall_ms: f64,
}

/// What the acts share.
pub struct Stage<'a> {
    pub topo: &'a Topology,
    pub display: &'a mut Display,
    /// Path-manager events of the client namespace, with their arrival time.
    pub events: Option<Receiver<(Instant, Event)>>,
    pub interrupted: &'a dyn Fn() -> bool,
    pub tcp_listener: Arc<TcpListener>,
    /// None without MPTCP.
    pub mptcp_listener: Option<Arc<TcpListener>>,
}

/// One transfer's schedule.
struct Plan {
    label: &'static str,
    mptcp: bool,
    secs: f64,
    down: Option<f64>,
    up: Option<f64>,
}

/// What a driven transfer gives back.
struct Outcome {
    sent: Sent,
    received: Received,
    run: Run,
    /// Bytes per path when the link went down and came back up.
    at_down: Option<[u64; 2]>,
    at_up: Option<[u64; 2]>,
    end: [u64; 2],
}

impl Stage<'_> {
    /// Configures the client's in-kernel path manager: a `subflow` endpoint on path 2
    /// (a backup one if `backup`), bound to its interface, and the limits of both ends.
    pub fn endpoints(&self, backup: bool) -> Result<()> {
        let flags = if backup {
            EndpointFlags::SUBFLOW | EndpointFlags::BACKUP
        } else {
            EndpointFlags::SUBFLOW
        };
        let limits = Limits {
            subflows: Some(2),
            add_addr_accepted: Some(2),
        };
        Topology::run_in(&self.topo.client, move || {
            let mut pm = PathManager::new()?;
            pm.flush_endpoints()?;
            pm.set_limits(limits)?;
            let ep = Endpoint::new(PATHS[1].client_ip(), flags).with_device(PATHS[1].dev)?;
            pm.add_endpoint(&ep)?;
            Ok(())
        })
        .context("configure the client's path manager")?;
        Topology::run_in(&self.topo.server, move || {
            PathManager::new()?.set_limits(limits)?;
            Ok(())
        })
        .context("configure the server's path manager")
    }

    /// Shows the events that arrived, stamped relative to `t0`; returns them.
    fn drain_events(&mut self, t0: Instant) -> Vec<Event> {
        let Some(rx) = &self.events else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Ok((at, ev)) = rx.try_recv() {
            let t = at.saturating_duration_since(t0).as_secs_f64();
            if let Some(line) = describe(&ev) {
                self.display.event(t, &line);
            }
            out.push(ev);
        }
        out
    }

    fn check(&self) -> Result<()> {
        if (self.interrupted)() {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Connects, sends for `plan.secs` while sampling, switching path 1's link and
    /// showing events, and waits for both ends.
    fn drive(&mut self, plan: &Plan) -> Result<Outcome> {
        self.check()?;
        let (listener, port, mode) = match (&self.mptcp_listener, plan.mptcp) {
            (Some(l), true) => (l.clone(), MPTCP_PORT, Mode::Require),
            (None, true) => bail!("MPTCP is not available"),
            (_, false) => (self.tcp_listener.clone(), TCP_PORT, Mode::Off),
        };
        self.display.begin(plan.label, plan.secs);
        let t0 = Instant::now();
        let addr = server_addr(port);
        let stream: TcpStream = Topology::run_in(&self.topo.client, move || {
            Ok(mptcp::connect_with(addr, mode)?)
        })
        .with_context(|| format!("connect to {addr}"))?;
        let diag = if plan.mptcp {
            Topology::run_in(&self.topo.client, || Ok(mptcp::diag::Diag::new()?)).ok()
        } else {
            None
        };
        let mut tr = Transfer::start(stream, listener, diag, t0, plan.secs)?;
        let token = tr.token();
        let mut run = Run {
            label: plan.label.to_string(),
            offset: 0.0,
            samples: Vec::new(),
            marks: Vec::new(),
        };
        let (mut at_down, mut at_up) = (None, None);
        let mut next_sample = 0.0;
        loop {
            self.check()?;
            self.drain_events(t0);
            let t = tr.elapsed();
            if at_down.is_none() && plan.down.is_some_and(|d| t >= d) {
                at_down = Some(tr.sample().paths);
                self.topo.set_link(0, false)?;
                run.marks.push(Mark { t, up: false });
                self.display.event(
                    t,
                    &format!("path 1 DOWN  (ip link set {} down)", PATHS[0].dev),
                );
            }
            if at_up.is_none() && at_down.is_some() && plan.up.is_some_and(|u| t >= u) {
                at_up = Some(tr.sample().paths);
                self.topo.set_link(0, true)?;
                run.marks.push(Mark { t, up: true });
                self.display.event(
                    t,
                    &format!("path 1 UP    (ip link set {} up)", PATHS[0].dev),
                );
            }
            if t >= next_sample {
                let s = tr.sample();
                run.samples.push((s.t, s.paths));
                self.display.update(&s, plan.secs);
                next_sample += SAMPLE_EVERY;
            }
            if tr.finished() {
                break;
            }
            if t > plan.secs + 25.0 {
                bail!(
                    "the {} transfer did not finish within 25 s of its end",
                    plan.label
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let last = tr.sample();
        run.samples.push((last.t, last.paths));
        self.display.end();
        let interrupted = self.interrupted;
        let (sent, received) = tr.join(interrupted)?;
        let end = last.paths;
        drop(tr);
        // The connection's CLOSED event, so that it is shown in this act.
        if let Some(token) = token {
            let until = Instant::now() + Duration::from_secs(1);
            'wait: while Instant::now() < until {
                for ev in self.drain_events(t0) {
                    if matches!(ev, Event::Closed { token: t } if t == token) {
                        break 'wait;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Outcome {
            sent,
            received,
            run,
            at_down,
            at_up,
            end,
        })
    }

    /// Act 1.
    pub fn aggregation(&mut self) -> Result<(Aggregation, Act)> {
        let then = if self.mptcp_listener.is_some() {
            ", then over MPTCP (paths 1 and 2)"
        } else {
            ""
        };
        self.display.say(&format!(
            "Act 1: aggregation. The same {AGG_SECS:.0} s transfer over single-path TCP (path 1){then}. Throughput: bytes acknowledged on each path (tcp_info), from {WARMUP:.0} s to the end."
        ));
        let tcp = self.drive(&Plan {
            label: "TCP",
            mptcp: false,
            secs: AGG_SECS,
            down: None,
            up: None,
        })?;
        let tcp_mbps = acked_mbps(&tcp.run, WARMUP, AGG_SECS);
        check_delivery(&tcp.sent, &tcp.received, "TCP")?;
        self.display.say(&format!(
            "  TCP: {:.1} Mbit/s ({} delivered, path 1 only)",
            tcp_mbps,
            mb(tcp.received.bytes)
        ));
        let mut runs = vec![tcp.run];
        let mut agg = Aggregation {
            tcp_mbps,
            mptcp_mbps: None,
            ratio: None,
            mptcp_bytes_per_path: None,
        };
        if self.mptcp_listener.is_some() {
            let m = self.drive(&Plan {
                label: "MPTCP",
                mptcp: true,
                secs: AGG_SECS,
                down: None,
                up: None,
            })?;
            check_delivery(&m.sent, &m.received, "MPTCP")?;
            let mbps = acked_mbps(&m.run, WARMUP, AGG_SECS);
            self.display.say(&format!(
                "  MPTCP: {:.1} Mbit/s ({} delivered: path 1 {}, path 2 {}); {:.2}x TCP",
                mbps,
                mb(m.received.bytes),
                mb(m.end[0]),
                mb(m.end[1]),
                mbps / tcp_mbps
            ));
            let mut run = m.run;
            run.offset = runs[0].samples.last().map_or(AGG_SECS, |s| s.0) + 0.5;
            runs.push(run);
            agg.mptcp_mbps = Some(mbps);
            agg.ratio = Some(mbps / tcp_mbps);
            agg.mptcp_bytes_per_path = Some(m.end);
        }
        Ok((
            agg,
            Act {
                title: format!(
                    "Act 1: aggregation. TCP on path 1, then MPTCP on paths 1 and 2 ({RATE_MBIT} Mbit/s each)"
                ),
                runs,
            },
        ))
    }

    /// Act 2.
    pub fn failover(&mut self) -> Result<(Failover, Act)> {
        self.display.say(&format!(
            "Act 2: failover. MPTCP over both paths for {FAIL_SECS:.0} s; path 1's link goes down at {FAIL_DOWN:.0} s and comes back at {FAIL_UP:.0} s."
        ));
        let o = self.drive(&Plan {
            label: "failover",
            mptcp: true,
            secs: FAIL_SECS,
            down: Some(FAIL_DOWN),
            up: Some(FAIL_UP),
        })?;
        let (Some(down), Some(up)) = (o.at_down, o.at_up) else {
            bail!("the failover transfer ended before path 1 went down and up");
        };
        let t_down = o.run.marks.first().map_or(FAIL_DOWN, |m| m.t);
        let t_up = o.run.marks.get(1).map_or(FAIL_UP, |m| m.t);
        let stall_ms = o.received.stall(t_down, t_up, STALL_FLOOR_MBPS) * 1000.0;
        let sha256_ok = o.sent.sha256 == o.received.sha256 && o.sent.bytes == o.received.bytes;
        let bytes_per_path = [0, 1].map(|p| {
            [
                down[p],
                up[p].saturating_sub(down[p]),
                o.end[p].saturating_sub(up[p]),
            ]
        });
        let f = Failover {
            sha256_ok,
            bytes: o.received.bytes,
            stall_ms,
            bytes_per_path,
            down_secs: t_up - t_down,
        };
        self.display.say(&format!(
            "  {} sent, {} received, SHA-256 {}; longest stall {:.0} ms",
            mb(o.sent.bytes),
            mb(o.received.bytes),
            if sha256_ok { "matches" } else { "DIFFERS" },
            stall_ms
        ));
        for (p, b) in bytes_per_path.iter().enumerate() {
            self.display.say(&format!(
                "  path {}: {} before, {} while path 1 was down, {} after",
                p + 1,
                mb(b[0]),
                mb(b[1]),
                mb(b[2])
            ));
        }
        Ok((
            f,
            Act {
                title: format!(
                    "Act 2: failover. Path 1 down at {FAIL_DOWN:.0} s, up at {FAIL_UP:.0} s"
                ),
                runs: vec![o.run],
            },
        ))
    }

    /// Act 3.
    pub fn backup(&mut self) -> Result<(Backup, Act)> {
        self.display.say(&format!(
            "Act 3: backup. Path 2 is a backup endpoint; MPTCP for {BACKUP_SECS:.0} s; path 1's link goes down at {BACKUP_DOWN:.0} s for the rest."
        ));
        self.endpoints(true)?;
        let o = self.drive(&Plan {
            label: "backup",
            mptcp: true,
            secs: BACKUP_SECS,
            down: Some(BACKUP_DOWN),
            up: None,
        });
        // Path 1 back up whatever happened.
        self.topo.set_link(0, true)?;
        let o = o?;
        let Some(down) = o.at_down else {
            bail!("the backup transfer ended before path 1 went down");
        };
        let t_down = o.run.marks.first().map_or(BACKUP_DOWN, |m| m.t);
        let after = [0, 1].map(|p| o.end[p].saturating_sub(down[p]));
        let sha256_ok = o.sent.sha256 == o.received.sha256 && o.sent.bytes == o.received.bytes;
        let b = Backup {
            sha256_ok,
            bytes: o.received.bytes,
            before: down,
            after,
            stall_ms: o.received.stall(t_down, BACKUP_SECS, STALL_FLOOR_MBPS) * 1000.0,
        };
        let share = |v: [u64; 2], p: usize| 100.0 * v[p] as f64 / (v[0] + v[1]).max(1) as f64;
        self.display.say(&format!(
            "  before path 1 went down: path 1 {} ({:.1}%), path 2 (backup) {} ({:.1}%)",
            mb(down[0]),
            share(down, 0),
            mb(down[1]),
            share(down, 1)
        ));
        self.display.say(&format!(
            "  after:                   path 1 {} ({:.1}%), path 2 (backup) {} ({:.1}%); SHA-256 {}; longest stall {:.0} ms",
            mb(after[0]),
            share(after, 0),
            mb(after[1]),
            share(after, 1),
            if sha256_ok { "matches" } else { "DIFFERS" },
            b.stall_ms
        ));
        Ok((
            b,
            Act {
                title: format!(
                    "Act 3: backup. Path 2 is a backup endpoint; path 1 down at {BACKUP_DOWN:.0} s"
                ),
                runs: vec![o.run],
            },
        ))
    }
}

/// Bytes acknowledged on both paths between `from` and `to` seconds into `run`, in
/// Mbit/s, interpolated between the samples around each end.
fn acked_mbps(run: &Run, from: f64, to: f64) -> f64 {
    let at = |t: f64| {
        let s = &run.samples;
        let total = |i: usize| (s[i].1[0] + s[i].1[1]) as f64;
        let i = s.partition_point(|x| x.0 <= t);
        match (i.checked_sub(1), s.get(i)) {
            (Some(b), Some(a)) if a.0 > s[b].0 => {
                total(b) + (t - s[b].0) / (a.0 - s[b].0) * (total(i) - total(b))
            }
            (Some(b), _) => total(b),
            (None, _) => 0.0,
        }
    };
    (at(to) - at(from)) * 8.0 / (to - from) / 1e6
}

/// Fails when the receiver did not get exactly what was sent.
fn check_delivery(sent: &Sent, received: &Received, what: &str) -> Result<()> {
    if sent.bytes != received.bytes || sent.sha256 != received.sha256 {
        bail!(
            "{what}: {} bytes sent, {} received, SHA-256 {}",
            sent.bytes,
            received.bytes,
            if sent.sha256 == received.sha256 {
                "equal"
            } else {
                "different"
            }
        );
    }
    Ok(())
}
