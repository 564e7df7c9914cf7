//! The workspace's test network: a client and a server network namespace joined by
//! one or two veth paths with documentation-range addresses (optionally shaped by a tbf
//! qdisc), created by whoever needs them and deleted on drop, even when a test fails;
//! and the helpers the tests, the benchmarks and the demo share (waits scaled under
//! emulation, kernel capability probes, test data). Dev-only: not published.
//!
//! Two ways in: the panicking helpers for tests (`Netns::new`, `Topology::new`, a
//! failed command is a failed test), and the fallible ones for tools (`Netns::create`,
//! `Topology::build`, errors as `io::Error`, every namespace registered for
//! [`delete_all`] from a signal handler).
#![deny(missing_docs)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
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
        if let Some(why) = $crate::cannot_run() {
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
        if !$crate::caps().mptcp {
            $crate::assert_no_mptcp_path(&$crate::Topology::new(1));
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

/// The namespaces this process created and has not deleted yet, for [`delete_all`].
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Deletes every namespace this process created and has not deleted yet (for a
/// Ctrl-C handler: the owners' `Drop` may never run).
pub fn delete_all() {
    let names = match LIVE.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(_) => return,
    };
    for ns in names {
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    }
}

/// Runs a command; its stdout, or an error with its stderr.
pub fn try_sh(args: &[&str]) -> std::io::Result<String> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace, deleted (with its links) on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns` lists it; `/run/netns/NAME`).
    pub name: String,
}

impl Netns {
    /// A new namespace for a test, with a name unique to this process and call, and
    /// its loopback up; panics when it cannot be made.
    pub fn new(role: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("mptcp-t{}-{n}-{role}", std::process::id());
        Netns::create(name).expect("create a network namespace")
    }

    /// A new namespace called `name`, with its loopback up.
    pub fn create(name: String) -> std::io::Result<Netns> {
        try_sh(&["ip", "netns", "add", &name])?;
        if let Ok(mut v) = LIVE.lock() {
            v.push(name.clone());
        }
        let ns = Netns { name };
        ns.try_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ...`, panicking when it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NAME ...`.
    pub fn try_ip(&self, args: &[&str]) -> std::io::Result<String> {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        try_sh(&v)
    }

    /// `ip netns exec NAME ...`
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Sets a sysctl in this namespace, panicking when it fails.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.try_sysctl(key, value)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sets a sysctl in this namespace.
    pub fn try_sysctl(&self, key: &str, value: &str) -> std::io::Result<()> {
        let kv = format!("{key}={value}");
        try_sh(&["ip", "netns", "exec", &self.name, "sysctl", "-q", "-w", &kv]).map(drop)
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it creates belong
    /// to the namespace and may be used from any thread afterwards.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("namespace thread panicked")
    }

    /// [`run`](Self::run) without waiting.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path).unwrap_or_else(|e| panic!("{e}"));
            f()
        })
    }

    /// Runs `f` on a thread that has entered the namespace called `name`, as
    /// [`run`](Self::run) does, with the failure to enter it as an error.
    pub fn try_run_in<T: Send + 'static>(
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<T> {
        let path = format!("/run/netns/{name}");
        std::thread::spawn(move || enter(&path).map(|()| f()))
            .join()
            .map_err(|_| std::io::Error::other(format!("a thread in namespace {name} panicked")))?
    }

    /// Moves the calling thread into this namespace for good.
    pub fn enter_current_thread(&self) {
        enter(&format!("/run/netns/{}", self.name)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A tbf qdisc on `dev`'s egress (the burst is one 1500-byte packet and a bit).
    pub fn shape(&self, dev: &str, shape: &Shape) -> std::io::Result<()> {
        try_sh(&[
            "tc",
            "-n",
            &self.name,
            "qdisc",
            "add",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            &shape.rate,
            "burst",
            "32kbit",
            "latency",
            &shape.latency,
        ])
        .map(drop)
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

/// Moves the calling thread into the network namespace mounted at `path`.
fn enter(path: &str) -> std::io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("setns {path}: {e}")));
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if let Ok(mut v) = LIVE.lock() {
            v.retain(|n| n != &self.name);
        }
    }
}

/// One path of the topology: its interface (the same name at both ends) and the client
/// and server addresses.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    /// The veth device at both ends.
    pub dev: &'static str,
    /// The client's IPv4 address.
    pub client4: &'static str,
    /// The server's IPv4 address.
    pub server4: &'static str,
    /// The client's IPv6 address.
    pub client6: &'static str,
    /// The server's IPv6 address.
    pub server6: &'static str,
}

impl Path {
    /// The client's IPv4 address, parsed.
    pub fn client_ip(&self) -> std::net::IpAddr {
        ip(self.client4)
    }

    /// The server's IPv4 address, parsed.
    pub fn server_ip(&self) -> std::net::IpAddr {
        ip(self.server4)
    }
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// The path (index into [`PATHS`]) whose client or server address is `addr`.
pub fn path_of(addr: std::net::IpAddr) -> Option<usize> {
    PATHS.iter().position(|p| {
        [p.client4, p.server4, p.client6, p.server6]
            .iter()
            .any(|a| ip(a) == addr)
    })
}

/// Path 1 (192.0.2.0/24, 2001:db8:1::/64) and path 2 (198.51.100.0/24, 2001:db8:2::/64).
pub const PATHS: [Path; 2] = [
    Path {
        dev: "eth0",
        client4: "192.0.2.1",
        server4: "192.0.2.2",
        client6: "2001:db8:1::1",
        server6: "2001:db8:1::2",
    },
    Path {
        dev: "eth1",
        client4: "198.51.100.1",
        server4: "198.51.100.2",
        client6: "2001:db8:2::1",
        server6: "2001:db8:2::2",
    },
];

/// A token bucket on each end's egress of every path: its rate and how long its queue
/// may be (tbf; this machine's kernel has no netem).
#[derive(Debug, Clone)]
pub struct Shape {
    /// The rate, as `tc` takes it (`50mbit`).
    pub rate: String,
    /// The queue's length in time, as `tc` takes it (`5ms`).
    pub latency: String,
}

/// What [`Topology::build`] makes.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The namespaces' names: `PREFIX-client` and `PREFIX-server`.
    pub prefix: String,
    /// How many paths (1 or 2).
    pub paths: usize,
    /// IPv6 addresses as well as IPv4.
    pub ipv6: bool,
    /// Every path shaped, when set.
    pub shape: Option<Shape>,
}

/// A client and a server namespace joined by `paths` veth links (`eth0`, `eth1`).
#[derive(Debug)]
pub struct Topology {
    /// The client's namespace.
    pub client: Netns,
    /// The server's namespace.
    pub server: Netns,
    /// How many paths join them.
    pub paths: usize,
}

impl Topology {
    /// A test's topology of `paths` unshaped paths (IPv4 and IPv6, path-manager limits
    /// of 4), panicking when it cannot be made.
    pub fn new(paths: usize) -> Topology {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let spec = Spec {
            prefix: format!("mptcp-t{}-{n}", std::process::id()),
            paths,
            ipv6: true,
            shape: None,
        };
        Topology::build(&spec).expect("build the test topology")
    }

    /// The topology `spec` describes; the in-kernel path manager's limits are set to 4
    /// subflows and 4 accepted addresses where the kernel has MPTCP.
    pub fn build(spec: &Spec) -> std::io::Result<Topology> {
        let t = Topology {
            client: Netns::create(format!("{}-client", spec.prefix))?,
            server: Netns::create(format!("{}-server", spec.prefix))?,
            paths: spec.paths,
        };
        for p in PATHS.iter().take(spec.paths) {
            let dev = p.dev;
            let server = t.server.name.as_str();
            t.client.try_ip(&[
                "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", server,
            ])?;
            for (ns, a4, a6) in [
                (&t.client, p.client4, p.client6),
                (&t.server, p.server4, p.server6),
            ] {
                ns.try_ip(&["addr", "add", &format!("{a4}/24"), "dev", dev])?;
                if spec.ipv6 {
                    ns.try_ip(&["addr", "add", &format!("{a6}/64"), "dev", dev, "nodad"])?;
                }
                ns.try_ip(&["link", "set", dev, "up"])?;
                if let Some(shape) = &spec.shape {
                    ns.shape(dev, shape)?;
                }
            }
        }
        // The path manager exists only where MPTCP does (not in Debian's 5.10).
        if caps().mptcp {
            for ns in [&t.client, &t.server] {
                ns.try_ip(&[
                    "mptcp",
                    "limits",
                    "set",
                    "subflows",
                    "4",
                    "add_addr_accepted",
                    "4",
                ])?;
            }
        }
        Ok(t)
    }

    /// Takes path `i`'s link down or up at the client's end (the veth peer in the
    /// server namespace loses its carrier with it).
    pub fn set_link(&self, i: usize, up: bool) -> std::io::Result<()> {
        let state = if up { "up" } else { "down" };
        self.client
            .try_ip(&["link", "set", "dev", PATHS[i].dev, state])
            .map(drop)
    }

    /// Limits every link's egress (both directions) with a tbf qdisc of 100 ms.
    pub fn rate_limit(&self, rate: &str) {
        let shape = Shape {
            rate: rate.to_string(),
            latency: "100ms".to_string(),
        };
        for p in PATHS.iter().take(self.paths) {
            for ns in [&self.client, &self.server] {
                ns.shape(p.dev, &shape).unwrap_or_else(|e| panic!("{e}"));
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

    /// An MPTCP listener (`Mode::Require`) in the server namespace on every IPv4
    /// address, port `port`.
    pub fn mptcp_listener(&self, port: u16) -> std::net::TcpListener {
        self.server
            .run(move || mptcp::listen_with(format!("0.0.0.0:{port}"), mptcp::Mode::Require))
            .expect("listen")
    }

    /// A connection from the client to `listener` (on path 1's server address, port
    /// `port`) and the server's side of it, once a byte has crossed each way (the path
    /// manager adds subflows only after data is acknowledged at the MPTCP level) and it
    /// has `subflows` subflows.
    pub fn mptcp_pair(
        &self,
        listener: &std::net::TcpListener,
        port: u16,
        subflows: usize,
    ) -> (std::net::TcpStream, std::net::TcpStream) {
        use std::io::{Read, Write};
        let sa = std::net::SocketAddr::new(PATHS[0].server_ip(), port);
        let mut client = self
            .client
            .run(move || mptcp::connect_with(sa, mptcp::Mode::Require))
            .expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let mut b = [0u8; 1];
        client.write_all(b"x").expect("write");
        server.read_exact(&mut b).expect("read");
        server.write_all(b"y").expect("write");
        client.read_exact(&mut b).expect("read");
        wait_for(Duration::from_secs(10), || {
            (mptcp::subflows(&client).ok()?.len() == subflows).then_some(())
        })
        .unwrap_or_else(|| panic!("{subflows} subflows"));
        (client, server)
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

/// The SHA-256 of `b`, to check that bytes arrived intact.
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

/// The running kernel's [`Caps`], asked of a fresh MPTCP socket.
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

/// Interleaved comparisons for the benchmarks: a library call and its floor timed in
/// alternating batches, so that both see the same machine (a busy neighbour, a CPU
/// frequency change) and their ratio is steady between runs.
pub mod interleave {
    use std::time::{Duration, Instant};

    /// How many rounds each comparison has (an odd number: the median is one round's).
    pub const ROUNDS: usize = 201;
    /// About how long one batch of one side runs.
    const BATCH_TIME: Duration = Duration::from_millis(2);

    /// One comparison's result.
    #[derive(Debug, Clone)]
    pub struct Ratio {
        /// The comparison's name (the criterion group's).
        pub name: String,
        /// The median of the rounds' ratios, `a` over `b`.
        pub ratio: f64,
        /// The lowest and highest round's ratio.
        pub range: (f64, f64),
        /// The median time of one call of `a` and of `b`, in nanoseconds.
        pub a_ns: f64,
        /// See `a_ns`.
        pub b_ns: f64,
        /// Calls per batch.
        pub batch: u64,
    }

    impl Ratio {
        /// One JSON object, as `cargo xtask bench` reads it.
        pub fn json(&self) -> String {
            format!(
                "{{\"name\":{:?},\"ratio\":{},\"min\":{},\"max\":{},\"a_ns\":{},\"b_ns\":{},\"batch\":{},\"rounds\":{}}}",
                self.name, self.ratio, self.range.0, self.range.1, self.a_ns, self.b_ns, self.batch, ROUNDS
            )
        }
    }

    /// `n` calls of `f` (each result kept from the optimiser), timed.
    pub fn timed<T>(mut f: impl FnMut() -> T) -> impl FnMut(u64) -> Duration {
        move |n| {
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(f());
            }
            start.elapsed()
        }
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// [`ROUNDS`] rounds of a batch of `a` and a batch of `b` (which one goes first
    /// alternates); each side measures its own batch of `n` calls (so that set-up, such
    /// as filling a queue, stays out of the time). The batch is sized to last about
    /// 2 ms. The result is printed as a line `INTERLEAVED {json}` and, when
    /// `MPTCP_BENCH_OUT` names a directory, written there as `NAME.json`. A `filter`
    /// (the benchmark's command-line filter, if any) that `name` does not contain skips
    /// it.
    pub fn compare(
        name: &str,
        mut a: impl FnMut(u64) -> Duration,
        mut b: impl FnMut(u64) -> Duration,
    ) -> Option<Ratio> {
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        if filter.is_some_and(|f| !name.contains(&f)) {
            return None;
        }
        // Warm both up, then size the batch from `a`'s time per call.
        a(10);
        b(10);
        let probe = a(50).max(Duration::from_nanos(1));
        let per_call = probe.as_secs_f64() / 50.0;
        let batch = ((BATCH_TIME.as_secs_f64() / per_call) as u64).max(1);
        let mut ratios = Vec::with_capacity(ROUNDS);
        let (mut a_ns, mut b_ns) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
        for round in 0..ROUNDS {
            let (ta, tb) = if round % 2 == 0 {
                let ta = a(batch);
                (ta, b(batch))
            } else {
                let tb = b(batch);
                (a(batch), tb)
            };
            let (ta, tb) = (ta.as_secs_f64(), tb.as_secs_f64().max(1e-12));
            ratios.push(ta / tb);
            a_ns.push(ta * 1e9 / batch as f64);
            b_ns.push(tb * 1e9 / batch as f64);
        }
        let ratio = median(&mut ratios);
        let r = Ratio {
            name: name.to_string(),
            ratio,
            range: (ratios[0], ratios[ratios.len() - 1]),
            a_ns: median(&mut a_ns),
            b_ns: median(&mut b_ns),
            batch,
        };
        println!("INTERLEAVED {}", r.json());
        if let Some(dir) = std::env::var_os("MPTCP_BENCH_OUT") {
            let dir = std::path::PathBuf::from(dir);
            let file = name.replace(['/', ' ', ':'], "_") + ".json";
            if std::fs::create_dir_all(&dir).is_ok() {
                let _ = std::fs::write(dir.join(file), r.json());
            }
        }
        Some(r)
    }
}
