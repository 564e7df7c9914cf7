//! Watches the subflows of an MPTCP connection: connects, keeps sending (and reads and
//! drops what comes back, so an echo server never stalls), and prints every second each
//! subflow with its byte counters (from its `tcp_info`).
//!
//! ```sh
//! cargo run -p mptcp --example subflow_watch -- 192.0.2.1:7000 --count 10
//! ```

use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next() else {
        return Err("usage: subflow_watch ADDR [--count N]".into());
    };
    let count: u32 = match (args.next().as_deref(), args.next()) {
        (Some("--count"), Some(n)) => n.parse()?,
        (None, _) => u32::MAX,
        _ => return Err("usage: subflow_watch ADDR [--count N]".into()),
    };
    let mut stream = mptcp::connect(addr.as_str())?;
    stream.set_nonblocking(true)?;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sink = vec![0u8; 64 * 1024];
    let would_block = |e: &std::io::Error| e.kind() == std::io::ErrorKind::WouldBlock;
    for tick in 1..=count {
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            let wrote = match stream.write(&chunk) {
                Ok(n) => n,
                Err(e) if would_block(&e) => 0,
                Err(e) => return Err(e.into()),
            };
            let read = match stream.read(&mut sink) {
                Ok(0) => return Err("the peer closed the connection".into()),
                Ok(n) => n,
                Err(e) if would_block(&e) => 0,
                Err(e) => return Err(e.into()),
            };
            if wrote == 0 && read == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let c = mptcp::connection(&stream)?;
        println!(
            "[{tick}] token {}, {} subflows",
            c.info.token(),
            c.subflows.len()
        );
        for sf in &c.subflows {
            println!(
                "  {:?} {} -> {}: acked {} bytes, received {} bytes",
                sf.id,
                sf.local,
                sf.remote,
                sf.tcp_info.bytes_acked(),
                sf.tcp_info.bytes_received()
            );
        }
    }
    Ok(())
}
