//! An echo server over MPTCP (plain TCP clients are served too).
//!
//! ```sh
//! cargo run -p mptcp --example echo_server -- 127.0.0.1:7000
//! ```
//!
//! Prints the address it listens on, then one line per client: its address and whether
//! it uses MPTCP. Stops after `--max N` clients when given.

use std::io::{Read, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let max: Option<usize> = match (args.next().as_deref(), args.next()) {
        (Some("--max"), Some(n)) => Some(n.parse()?),
        (None, _) => None,
        _ => return Err("usage: echo_server [ADDR] [--max N]".into()),
    };
    let listener = mptcp::listen(addr.as_str())?;
    println!("listening on {}", listener.local_addr()?);
    for (served, conn) in listener.incoming().enumerate() {
        let mut conn = conn?;
        println!(
            "client {} (MPTCP: {})",
            conn.peer_addr()?,
            mptcp::is_mptcp(&conn)?
        );
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            conn.write_all(&buf[..n])?;
        }
        if max.is_some_and(|m| served + 1 >= m) {
            break;
        }
    }
    Ok(())
}
