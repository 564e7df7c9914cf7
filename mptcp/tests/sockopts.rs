//! Socket options on MPTCP and plain TCP sockets, on the running kernel: the
//! compatibility table (printed as `VMTEST SOCKOPT name=value` lines, which the VM
//! runner turns into the README's option table) and the per-socket fallback of
//! `Mode::Prefer` when MPTCP refuses an option.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use mptcp::sockopt::{check, support, SockOpt, Support, Value};
use mptcp::{Error, Mode, MptcpSocket, Unavailable};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// One cell: `ok`, `set only (ERRNO)` shortened to `set`, or the errno's name.
fn cell(s: Support) -> String {
    match s {
        Support::Works => "ok".into(),
        Support::SetOnly(_) => "set".into(),
        Support::Refused(e) => mptcp::sockopt::errno_name(e),
    }
}

/// One table cell: where MPTCP answers as plain TCP does in every state, `as TCP`;
/// else MPTCP's answer in the states where it differs (just the answer when it is
/// the same in all three).
fn summary(m: &[Support; 3], t: &[Support; 3]) -> String {
    const STATES: [&str; 3] = ["before connect", "connected", "listening"];
    let differ: Vec<usize> = (0..3).filter(|&i| cell(m[i]) != cell(t[i])).collect();
    match differ.as_slice() {
        [] => "as TCP".into(),
        [0, 1, 2] if cell(m[0]) == cell(m[1]) && cell(m[1]) == cell(m[2]) => cell(m[0]),
        d => d
            .iter()
            .map(|&i| format!("{}: {}", STATES[i], cell(m[i])))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn loopback(opt: SockOpt) -> SocketAddr {
    if opt.level() == mptcp::sockopt::Level::Ipv6 {
        "[::1]:0".parse().expect("addr")
    } else {
        "127.0.0.1:0".parse().expect("addr")
    }
}

/// The option on a fresh socket of each state: before connect, connected, listening.
fn states(opt: SockOpt, mode: Mode) -> [Support; 3] {
    let at = loopback(opt);
    let fresh = MptcpSocket::for_addr(at, mode).expect("socket");
    let before = check(&fresh, opt);
    let server = MptcpSocket::for_addr(at, mode).expect("socket");
    server.bind(at).expect("bind");
    let listener = server.listen(4).expect("listen");
    let client = MptcpSocket::for_addr(at, mode).expect("socket");
    let stream = client
        .connect(listener.local_addr().expect("addr"))
        .expect("connect");
    let connected = check(&stream, opt);
    let l2 = {
        let s = MptcpSocket::for_addr(at, mode).expect("socket");
        s.bind(at).expect("bind");
        s.listen(4).expect("listen")
    };
    let listening = check(&l2, opt);
    [before, connected, listening]
}

/// Every option, on MPTCP and on plain TCP, before connect, connected and listening.
#[test]
fn compatibility_table() {
    require_netns!();
    let ns = common::Netns::new("sockopts");
    ns.run(|| {
        if let Err(e) = MptcpSocket::new_v4(Mode::Require) {
            // The table's column for this kernel: nothing to compare.
            for opt in SockOpt::ALL {
                println!("VMTEST SOCKOPT {}=-", opt.name());
            }
            eprintln!("skipped: no MPTCP sockets here: {e}");
            return;
        }
        let mut refused = Vec::new();
        for &opt in SockOpt::ALL {
            let m = states(opt, Mode::Require);
            let t = states(opt, Mode::Off);
            println!(
                "{}: MPTCP/TCP before connect, connected, listening: {}",
                opt.name(),
                [0, 1, 2]
                    .map(|i| format!("{}/{}", cell(m[i]), cell(t[i])))
                    .join(" ")
            );
            println!("VMTEST SOCKOPT {}={}", opt.name(), summary(&m, &t));
            // The library's answer, asked once per process, is what a fresh socket says.
            let c = support(opt).expect("support");
            assert_eq!(
                c.mptcp, m[0],
                "{opt}: support() against a fresh MPTCP socket"
            );
            assert_eq!(c.tcp, t[0], "{opt}: support() against a fresh TCP socket");
            // Plain TCP takes every option before connect, but the upper-layer protocol
            // (kTLS needs a connection and its module).
            if opt != SockOpt::TcpUlp {
                assert!(t[0].settable(), "{opt}: plain TCP refused it: {:?}", t[0]);
            }
            if c.mptcp_refuses() {
                refused.push(opt.name());
            }
        }
        println!("MPTCP refuses, where plain TCP takes them: {refused:?}");
    });
}

/// An option this kernel's MPTCP refuses and plain TCP takes (for the fallback tests),
/// or `None` with the reason printed.
fn refused_option() -> Option<SockOpt> {
    if let Err(e) = MptcpSocket::new_v4(Mode::Require) {
        eprintln!("skipped: no MPTCP sockets here: {e}");
        return None;
    }
    let wanted = [
        SockOpt::TcpUserTimeout,
        SockOpt::IpTtl,
        SockOpt::TcpQuickack,
        SockOpt::TcpSyncnt,
        SockOpt::TcpWindowClamp,
        SockOpt::SoMaxPacingRate,
        SockOpt::IpRecverr,
    ];
    let found = wanted
        .into_iter()
        .find(|o| support(*o).expect("support").mptcp_refuses());
    if found.is_none() {
        eprintln!("skipped: this kernel's MPTCP takes every option of {wanted:?}");
    }
    found
}

/// Sends 256 KiB over the stream and checks the accepted side got them intact.
fn transfer(listener: &TcpListener, mut stream: TcpStream) -> TcpStream {
    let data = common::data(256 * 1024);
    let want = common::sha256(&data);
    let (mut peer, _) = listener.accept().expect("accept");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).expect("read");
        common::sha256(&got)
    });
    stream.write_all(&data).expect("write");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    assert_eq!(reader.join().expect("reader"), want, "bytes intact");
    stream
}

/// Prefer: the socket becomes plain TCP with what was set before and its bind, takes
/// the option, connects, carries data, and `status` says which option did it.
#[test]
fn prefer_falls_back_per_socket_and_says_why() {
    require_netns!();
    let ns = common::Netns::new("sockopt-prefer");
    ns.run(|| {
        let Some(opt) = refused_option() else { return };
        let listener = mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen");
        let sock = MptcpSocket::new_v4(Mode::Prefer).expect("socket");
        assert!(sock.created_as_mptcp());
        sock.set_nodelay(true).expect("nodelay");
        sock.set_send_buffer_size(1 << 18).expect("sndbuf");
        sock.bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let bound = sock.local_addr().expect("local");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        let value = opt.example_value(false);
        sock.set_option(opt, &value).expect("set under Prefer");
        assert!(!sock.created_as_mptcp(), "{opt} made it plain TCP");
        let Some(Unavailable::OptionRefused { option, errno }) = sock.unavailable() else {
            panic!("{:?}", sock.unavailable());
        };
        assert_eq!(option, opt);
        assert!(errno > 0);
        assert_eq!(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            fd,
            "same descriptor"
        );
        assert_eq!(sock.local_addr().expect("local"), bound, "same bind");
        assert!(
            sock.nodelay().expect("nodelay"),
            "earlier options carried over"
        );
        if let (Value::Int(want), Ok(Value::Int(got))) = (&value, sock.option(opt)) {
            assert_eq!(*want, got, "{opt} applied");
        }
        let stream = sock
            .connect(listener.local_addr().expect("addr"))
            .expect("connect");
        assert_eq!(stream.local_addr().expect("local"), bound);
        let stream = transfer(&listener, stream);
        let st = mptcp::status(&stream).expect("status");
        assert!(!st.created_as_mptcp && !st.using_mptcp);
        assert_eq!(
            st.fallback,
            Some(Unavailable::OptionRefused { option: opt, errno })
        );
        // A socket made elsewhere has no recorded reason.
        let other = TcpStream::connect(listener.local_addr().expect("addr")).expect("tcp");
        assert_eq!(mptcp::status(&other).expect("status").fallback, None);
    });
}

/// Prefer on a listener: bound, refused option, listen: a plain TCP listener on the
/// same address that serves clients.
#[test]
fn prefer_listener_falls_back_on_the_same_address() {
    require_netns!();
    let ns = common::Netns::new("sockopt-listener");
    ns.run(|| {
        let Some(opt) = refused_option() else { return };
        let sock = MptcpSocket::new_v4(Mode::Prefer).expect("socket");
        sock.set_reuseaddr(true).expect("reuseaddr");
        sock.bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let bound = sock.local_addr().expect("local");
        sock.set_option(opt, &opt.example_value(false))
            .expect("set under Prefer");
        assert!(sock.reuseaddr().expect("reuseaddr"));
        let listener = sock.listen(8).expect("listen");
        assert_eq!(listener.local_addr().expect("local"), bound);
        let st = mptcp::status(&listener).expect("status");
        assert!(!st.created_as_mptcp);
        assert!(matches!(
            st.fallback,
            Some(Unavailable::OptionRefused { option, .. }) if option == opt
        ));
        let client = mptcp::connect_with(bound, Mode::Require).expect("connect");
        transfer(&listener, client);
    });
}

/// Require: the kernel's error, naming the option; the socket stays MPTCP. Off:
/// plain TCP from the start, the option taken.
#[test]
fn require_names_the_option_and_off_is_unchanged() {
    require_netns!();
    let ns = common::Netns::new("sockopt-require");
    ns.run(|| {
        let Some(opt) = refused_option() else { return };
        let sock = MptcpSocket::new_v4(Mode::Require).expect("socket");
        let e = sock
            .set_option(opt, &opt.example_value(false))
            .expect_err("refused");
        let Error::OptionRefused { option, error } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(*option, opt);
        assert!(error.raw_os_error().is_some());
        assert!(e.to_string().contains(opt.name()), "{e}");
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
        assert!(sock.created_as_mptcp(), "Require never falls back");

        let off = MptcpSocket::new_v4(Mode::Off).expect("socket");
        off.set_option(opt, &opt.example_value(false))
            .expect("plain TCP takes it");
        assert_eq!(off.unavailable(), Some(Unavailable::TurnedOff));

        // An option neither takes is the kernel's error, not a fallback.
        let p = MptcpSocket::new_v4(Mode::Prefer).expect("socket");
        let e = p
            .set_option(SockOpt::SoBindtodevice, &Value::Name(b"nodev0".to_vec()))
            .expect_err("no such device");
        assert!(matches!(e, Error::Os { .. }), "{e:?}");
        assert!(p.created_as_mptcp(), "no fallback for what TCP refuses too");
        // A value of the wrong kind is refused before any system call.
        let e = p
            .set_option(SockOpt::TcpNodelay, &Value::Name(b"x".to_vec()))
            .expect_err("wrong kind");
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        // The typed setter and getter of the best-known case.
        let t = MptcpSocket::new_v4(Mode::Prefer).expect("socket");
        t.set_user_timeout(Some(Duration::from_secs(7)))
            .expect("user timeout");
        assert_eq!(
            t.user_timeout().expect("user timeout"),
            Some(Duration::from_secs(7))
        );
    });
}

/// The tokio builder falls back the same way.
#[cfg(feature = "tokio")]
#[test]
fn tokio_prefer_falls_back() {
    require_netns!();
    let ns = common::Netns::new("sockopt-tokio");
    ns.run(|| {
        let Some(opt) = refused_option() else { return };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen");
            let sock = mptcp::tokio::MptcpSocket::new_v4(Mode::Prefer).expect("socket");
            sock.set_nodelay(true).expect("nodelay");
            sock.set_option(opt, &opt.example_value(false))
                .expect("set under Prefer");
            assert!(!sock.created_as_mptcp());
            assert!(sock.nodelay().expect("nodelay"));
            let stream = sock
                .connect(listener.local_addr().expect("addr"))
                .await
                .expect("connect");
            let st = mptcp::status(&stream).expect("status");
            assert!(matches!(
                st.fallback,
                Some(Unavailable::OptionRefused { option, .. }) if option == opt
            ));
        });
    });
}

/// Options set on an MPTCP socket before connect that `ss` shows on each subflow: set,
/// connect over two paths, wait for the second subflow, and count the subflows that
/// show each (`VMTEST SOCKOPT-SUBFLOWS NAME=shown/subflows`, or `refused`).
#[test]
fn options_on_every_subflow() {
    require_netns!();
    let t = common::Topology::new(2);
    let Ok(_) = t.client.run(|| MptcpSocket::new_v4(Mode::Require)) else {
        for name in ["TCP_CONGESTION", "SO_MARK", "SO_KEEPALIVE", "TCP_MAXSEG"] {
            println!("VMTEST SOCKOPT-SUBFLOWS {name}=-");
        }
        eprintln!("skipped: no MPTCP sockets here");
        return;
    };
    t.client_subflow_endpoints(false);
    let server: SocketAddr = format!("{}:4901", common::PATHS[0].server4)
        .parse()
        .expect("addr");
    let listener = t
        .server
        .run(|| mptcp::listen_with("0.0.0.0:4901", Mode::Require))
        .expect("listen");
    /// What `ss -tinoe` shows on a subflow that has an option.
    type Shows = fn(&str) -> bool;
    /// Each option, its value, and how a subflow shows it.
    fn wanted() -> Vec<(SockOpt, Value, Shows)> {
        vec![
            (SockOpt::TcpCongestion, Value::Name(b"reno".to_vec()), |l| {
                l.split_whitespace().any(|w| w == "reno")
            }),
            (SockOpt::SoMark, Value::Int(7), |l| l.contains("fwmark:0x7")),
            (SockOpt::SoKeepalive, Value::Int(1), |l| {
                l.contains("timer:(keepalive")
            }),
            (SockOpt::TcpMaxseg, Value::Int(1200), |l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("mss:"))
                    .and_then(|m| m.parse::<u32>().ok())
                    .is_some_and(|m| m <= 1200)
            }),
        ]
    }
    let (stream, set) = t.client.run(move || {
        let sock = MptcpSocket::new_v4(Mode::Require).expect("socket");
        let set: Vec<bool> = wanted()
            .iter()
            .map(|(o, v, _)| sock.set_option(*o, v).is_ok())
            .collect();
        let stream = sock.connect(server).expect("connect");
        (stream, set)
    });
    let (mut peer, _) = listener.accept().expect("accept");
    let mut stream = stream;
    stream.write_all(b"x").expect("write");
    let mut b = [0u8; 1];
    peer.read_exact(&mut b).expect("read");
    let two = common::wait_for(Duration::from_secs(5), || {
        (mptcp::subflows(&stream).ok()?.len() == 2).then_some(())
    });
    assert!(two.is_some(), "a second subflow joins");
    // One entry per subflow (a header line and its indented info lines).
    let ss = t.client.exec(&["ss", "-tinoeH", "dport", "=", ":4901"]);
    let mut subflows: Vec<String> = Vec::new();
    for line in ss.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = subflows.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            subflows.push(line.to_string());
        }
    }
    subflows.retain(|s| s.contains("tcp-ulp-mptcp"));
    assert_eq!(subflows.len(), 2, "ss shows both subflows: {ss}");
    let initial = stream.local_addr().expect("local").to_string();
    for ((opt, _, shows), was_set) in wanted().into_iter().zip(set) {
        let cell = if was_set {
            let n = subflows.iter().filter(|s| shows(s)).count();
            // The initial subflow is the socket the option was set on.
            let first = subflows
                .iter()
                .find(|s| s.contains(&initial))
                .expect("the initial subflow");
            if opt == SockOpt::TcpCongestion {
                assert!(shows(first), "{opt} on the initial subflow: {first}");
            }
            format!("{n}/{}", subflows.len())
        } else {
            "refused".to_string()
        };
        println!("VMTEST SOCKOPT-SUBFLOWS {}={cell}", opt.name());
    }
}
