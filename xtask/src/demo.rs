//! `cargo xtask demo`: a real MPTCP session between two network namespaces joined by two
//! veth paths, carried by `mptcp-cat`, with both ends' summaries printed.

use crate::sys::{ensure_packages, is_root, output, root, run as sh};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLIENT: &str = "mptcp-demo-client";
const SERVER: &str = "mptcp-demo-server";
const PORT: &str = "5201";
const BYTES: usize = 16 * 1024 * 1024;

/// Deletes the demo's namespaces (and so its links) when dropped.
struct Namespaces;

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [CLIENT, SERVER] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(ns: &str, args: &[&str]) -> Result<()> {
    sh(Command::new("ip").arg("-n").arg(ns).args(args))
}

fn setup() -> Result<Namespaces> {
    for ns in [CLIENT, SERVER] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        sh(Command::new("ip").args(["netns", "add", ns]))?;
    }
    let guard = Namespaces;
    let paths = [
        ("eth0", "192.0.2.1/24", "192.0.2.2/24"),
        ("eth1", "198.51.100.1/24", "198.51.100.2/24"),
    ];
    for ns in [CLIENT, SERVER] {
        ip(ns, &["link", "set", "lo", "up"])?;
    }
    for (dev, c, s) in paths {
        ip(
            CLIENT,
            &[
                "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", SERVER,
            ],
        )?;
        ip(CLIENT, &["addr", "add", c, "dev", dev])?;
        ip(SERVER, &["addr", "add", s, "dev", dev])?;
        for ns in [CLIENT, SERVER] {
            ip(ns, &["link", "set", dev, "up"])?;
            // 50 Mbit/s per path, so that using both paths shows.
            sh(Command::new("ip").args([
                "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                "50mbit", "burst", "256kbit", "latency", "100ms",
            ]))?;
        }
    }
    for ns in [CLIENT, SERVER] {
        ip(
            ns,
            &[
                "mptcp",
                "limits",
                "set",
                "subflows",
                "2",
                "add_addr_accepted",
                "2",
            ],
        )?;
    }
    // The server announces its second address; the client opens a subflow to it.
    ip(
        SERVER,
        &[
            "mptcp",
            "endpoint",
            "add",
            "198.51.100.2",
            "dev",
            "eth1",
            "signal",
        ],
    )?;
    Ok(guard)
}

pub fn run() -> Result<()> {
    ensure_packages(&["iproute2"])?;
    if !is_root() {
        bail!("the demo creates network namespaces: run it as root");
    }
    sh(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args([
                "build",
                "--release",
                "-p",
                "mptcp-examples",
                "--bin",
                "mptcp-cat",
            ]),
    )?;
    let cat = crate::sys::target_dir().join("release/mptcp-cat");
    let _guard = setup()?;

    println!("== mptcp demo: {BYTES} bytes from {CLIENT} to {SERVER} over two 50 Mbit/s paths");
    let mut server = Command::new("ip")
        .args(["netns", "exec", SERVER])
        .arg(&cat)
        .args(["-l", "0.0.0.0", PORT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the server")?;
    let server_input = server.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(10);
    while output(Command::new("ip").args(["netns", "exec", SERVER, "ss", "-ltnH"]))?
        .trim()
        .is_empty()
    {
        if Instant::now() > deadline {
            bail!("the server did not start listening");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Count what the server receives; once everything is there, end the server's input
    // so that both sides close (it stays open until then: a peer that closes early puts
    // the connection in CLOSE_WAIT, where no new subflows are made).
    let mut server_out = server.stdout.take().context("server stdout")?;
    let (all_in, all_in_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(k) = server_out.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
            if n == BYTES {
                let _ = all_in.send(());
            }
        }
        n
    });
    let started = Instant::now();
    let mut client = Command::new("ip")
        .args(["netns", "exec", CLIENT])
        .arg(&cat)
        .args(["192.0.2.2", PORT])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the client")?;
    let mut input = client.stdin.take().context("client stdin")?;
    let payload: Vec<u8> = (0..BYTES).map(|i| (i * 7 % 251) as u8).collect();
    input.write_all(&payload)?;
    drop(input);
    let _ = all_in_rx.recv_timeout(Duration::from_secs(120));
    let secs = started.elapsed().as_secs_f64();
    drop(server_input);
    let client = client.wait_with_output()?;
    let server = server.wait_with_output()?;
    let received = reader.join().unwrap_or(0);
    println!("-- client (192.0.2.1):");
    print!("{}", String::from_utf8_lossy(&client.stderr));
    println!("-- server (192.0.2.2):");
    print!("{}", String::from_utf8_lossy(&server.stderr));
    println!(
        "== {received} of {BYTES} bytes delivered in {secs:.2} s ({:.1} Mbit/s; one path carries at most 50)",
        received as f64 * 8.0 / secs / 1e6
    );
    if !client.status.success() || !server.status.success() || received != BYTES {
        bail!("the demo transfer failed");
    }
    Ok(())
}
