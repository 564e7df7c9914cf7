//! Test topology: network namespaces joined by veth links, created and removed by the
//! tests themselves. Addresses come from the documentation ranges.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Why this machine cannot run namespace tests, if it cannot.
pub fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to create network namespaces".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2's `ip`".into());
    }
    None
}

/// Skips the calling test (with the reason on stderr) when namespaces are unavailable.
#[macro_export]
macro_rules! require_netns {
    () => {
        if let Some(why) = common::cannot_run() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// In an MPTCP test: on a kernel without MPTCP, prove the no-MPTCP behaviour on a fresh
/// topology instead, and return.
#[macro_export]
macro_rules! mptcp_or_fallback {
    () => {
        if !common::caps().mptcp {
            common::assert_no_mptcp_path(&common::Topology::new(1));
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            eprintln!(
                "no MPTCP in Linux {}: checked the documented fallback instead",
                kernel.trim()
            );
            return;
        }
    };
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted (with its links) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("mptcp-t{}-{n}-{role}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `ip netns exec NAME ...`
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it creates belong
    /// to the namespace and may be used from any thread afterwards.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("namespace thread panicked")
    }

    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }

    /// Moves the calling thread into this namespace for good.
    pub fn enter_current_thread(&self) {
        enter(&format!("/run/netns/{}", self.name));
    }

    /// A counter of `/proc/net/snmp` or `/proc/net/netstat` in this namespace, e.g.
    /// ("Tcp", "ActiveOpens") or ("MPTcpExt", "MPCapableSYNTX").
    pub fn counter(&self, group: &str, name: &str) -> u64 {
        let (group, name) = (group.to_string(), name.to_string());
        self.run(move || {
            for file in [
                "/proc/thread-self/net/snmp",
                "/proc/thread-self/net/netstat",
            ] {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                for pair in lines.chunks(2) {
                    let [keys, values] = pair else { continue };
                    let prefix = format!("{group}:");
                    if !keys.starts_with(&prefix) || !values.starts_with(&prefix) {
                        continue;
                    }
                    let k = keys.split_whitespace().skip(1);
                    let v = values.split_whitespace().skip(1);
                    for (k, v) in k.zip(v) {
                        if k == name {
                            return v.parse().expect("counter");
                        }
                    }
                }
            }
            panic!("no counter {group}:{name}")
        })
    }
}

fn enter(path: &str) {
    let file = File::open(path).expect("open netns");
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// One path of the topology: client and server addresses.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    pub client4: &'static str,
    pub server4: &'static str,
    pub client6: &'static str,
    pub server6: &'static str,
}

pub const PATHS: [Path; 2] = [
    Path {
        client4: "192.0.2.1",
        server4: "192.0.2.2",
        client6: "2001:db8:1::1",
        server6: "2001:db8:1::2",
    },
    Path {
        client4: "198.51.100.1",
        server4: "198.51.100.2",
        client6: "2001:db8:2::1",
        server6: "2001:db8:2::2",
    },
];

/// A client and a server namespace joined by `paths` veth links (`eth0`, `eth1`).
pub struct Topology {
    pub client: Netns,
    pub server: Netns,
    pub paths: usize,
}

impl Topology {
    pub fn new(paths: usize) -> Topology {
        let t = Topology {
            client: Netns::new("c"),
            server: Netns::new("s"),
            paths,
        };
        for (i, p) in PATHS.iter().take(paths).enumerate() {
            let dev = format!("eth{i}");
            t.client.ip(&[
                "link",
                "add",
                &dev,
                "type",
                "veth",
                "peer",
                "name",
                &dev,
                "netns",
                &t.server.name,
            ]);
            for (ns, a4, a6) in [
                (&t.client, p.client4, p.client6),
                (&t.server, p.server4, p.server6),
            ] {
                ns.ip(&["addr", "add", &format!("{a4}/24"), "dev", &dev]);
                ns.ip(&["addr", "add", &format!("{a6}/64"), "dev", &dev, "nodad"]);
                ns.ip(&["link", "set", &dev, "up"]);
            }
        }
        // The path manager exists only where MPTCP does (not in Debian's 5.10).
        if caps().mptcp {
            for ns in [&t.client, &t.server] {
                ns.ip(&[
                    "mptcp",
                    "limits",
                    "set",
                    "subflows",
                    "4",
                    "add_addr_accepted",
                    "4",
                ]);
            }
        }
        t
    }

    /// Limits every link's egress (both directions) with a tbf qdisc.
    pub fn rate_limit(&self, rate: &str) {
        for i in 0..self.paths {
            let dev = format!("eth{i}");
            for ns in [&self.client, &self.server] {
                ns.exec(&[
                    "tc", "qdisc", "add", "dev", &dev, "root", "tbf", "rate", rate, "burst",
                    "32kbit", "latency", "100ms",
                ]);
            }
        }
    }

    /// Makes the server announce its address on every extra path (in-kernel path
    /// manager); the client then opens a subflow to each announced address.
    pub fn server_signal_endpoints(&self, v6: bool) {
        for (i, p) in PATHS.iter().enumerate().take(self.paths).skip(1) {
            let a = if v6 { p.server6 } else { p.server4 };
            self.server.ip(&[
                "mptcp",
                "endpoint",
                "add",
                a,
                "dev",
                &format!("eth{i}"),
                "signal",
            ]);
        }
    }

    /// Makes the client open a subflow from every extra path (in-kernel path manager).
    pub fn client_subflow_endpoints(&self, v6: bool) {
        for (i, p) in PATHS.iter().enumerate().take(self.paths).skip(1) {
            let a = if v6 { p.client6 } else { p.client4 };
            self.client.ip(&[
                "mptcp",
                "endpoint",
                "add",
                a,
                "dev",
                &format!("eth{i}"),
                "subflow",
            ]);
        }
    }
}

/// `d`, or four times as long under an emulator (`MPTCP_TEST_SLOW`, set by the VM test
/// runner, whose TCG guests run everything several times slower).
pub fn slow(d: Duration) -> Duration {
    if std::env::var_os("MPTCP_TEST_SLOW").is_some() {
        d * 4
    } else {
        d
    }
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes (scaled by
/// [`slow`]: a limit is what a native run needs, and a guest gets four times as long;
/// a condition met early returns as soon as it is seen).
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + slow(timeout);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deterministic test data.
pub fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// What the running kernel offers, probed the way the library's users would see it (not
/// by parsing the version string).
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// MPTCP sockets can be created (Debian builds 5.10 without MPTCP).
    pub mptcp: bool,
    /// `MPTCP_FULL_INFO` (6.5+): subflow ids.
    pub full_info: bool,
    /// `TCP_IS_MPTCP` (6.10+).
    pub tcp_is_mptcp: bool,
}

pub fn caps() -> Caps {
    use std::os::fd::AsRawFd;
    let s = match socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::from(262)),
    ) {
        Ok(s) => s,
        Err(_) => {
            return Caps {
                mptcp: false,
                full_info: false,
                tcp_is_mptcp: false,
            }
        }
    };
    let getsockopt = |level: i32, name: i32, len: usize| -> i32 {
        let mut buf = vec![0u8; len];
        let mut l = len as libc::socklen_t;
        // SAFETY: the buffer and length describe live memory for the duration of the call.
        let r = unsafe {
            libc::getsockopt(s.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut l)
        };
        if r == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        }
    };
    Caps {
        mptcp: true,
        full_info: getsockopt(284, 4, 136) != libc::EOPNOTSUPP,
        tcp_is_mptcp: getsockopt(libc::SOL_TCP, 43, 4) == 0,
    }
}

/// On a kernel without MPTCP, the documented behaviour: "require" fails with the typed
/// error, "prefer" gives a working plain TCP connection whose info calls say it is plain
/// TCP. Used by the MPTCP tests in place of their MPTCP assertions.
pub fn assert_no_mptcp_path(t: &Topology) {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = format!("{}:4999", PATHS[0].server4).parse().expect("addr");
    match t
        .client
        .run(move || mptcp::connect_with(sa, mptcp::Mode::Require))
    {
        Err(mptcp::Error::Unavailable(mptcp::Unavailable::NotBuiltIn)) => {}
        other => panic!("require on a kernel without MPTCP: {other:?}"),
    }
    let l = t
        .server
        .run(move || mptcp::listen(sa))
        .expect("prefer listen falls back to TCP");
    let mut c = t
        .client
        .run(move || mptcp::connect(sa))
        .expect("prefer connect falls back to TCP");
    let (mut s, _) = l.accept().expect("accept");
    c.write_all(b"tcp").expect("write");
    let mut b = [0u8; 3];
    s.read_exact(&mut b).expect("read");
    assert_eq!(&b, b"tcp");
    assert!(!mptcp::is_mptcp(&c).expect("is_mptcp"));
    assert!(matches!(
        mptcp::info(&c),
        Err(mptcp::Error::NotMptcp(mptcp::NotMptcp::PlainTcp))
    ));
    assert!(matches!(
        mptcp::subflows(&s),
        Err(mptcp::Error::NotMptcp(mptcp::NotMptcp::PlainTcp))
    ));
}

/// Runs the test `name` of this test binary again in a child process, after `prefix`
/// (a command that wraps it, such as setpriv or strace) and with `env` set, and asserts
/// that the child ran it and it passed. Returns the child's output (stdout, then stderr).
pub fn rerun_as_child(name: &str, prefix: &[&str], env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(["--exact", name, "--nocapture"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the test binary again");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child run failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
    text
}

/// (major, minor) of a kernel release string such as "6.12.117+deb13-cloud-amd64".
pub fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// util-linux's setpriv with the arguments that run a command as nobody without any
/// capability, or `None` (with the reason printed as a skip) when it is missing
/// (busybox's setpriv has no --reuid).
pub fn unprivileged() -> Option<[&'static str; 6]> {
    let setpriv = "/usr/bin/setpriv";
    let is_util_linux = Command::new(setpriv)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("util-linux"));
    if !is_util_linux {
        eprintln!("skipped: util-linux's setpriv is not installed, so no unprivileged run");
        return None;
    }
    Some([
        setpriv,
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ])
}
