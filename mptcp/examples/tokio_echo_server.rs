//! An echo server under tokio, one task per client.
//!
//! ```sh
//! cargo run -p mptcp --features tokio --example tokio_echo_server -- 127.0.0.1:7000
//! ```
//!
//! Prints the address it listens on; stops after `--max N` clients when given.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let max: Option<usize> = match (args.next().as_deref(), args.next()) {
        (Some("--max"), Some(n)) => Some(n.parse()?),
        (None, _) => None,
        _ => return Err("usage: tokio_echo_server [ADDR] [--max N]".into()),
    };
    let listener = mptcp::tokio::listen(addr.as_str()).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut tasks = Vec::new();
    let mut served = 0;
    loop {
        let (mut conn, peer) = listener.accept().await?;
        println!("client {peer} (MPTCP: {})", mptcp::is_mptcp(&conn)?);
        tasks.push(tokio::spawn(async move {
            let (mut r, mut w) = conn.split();
            tokio::io::copy(&mut r, &mut w).await?;
            w.shutdown().await?;
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).await?;
            Ok::<(), std::io::Error>(())
        }));
        served += 1;
        if max.is_some_and(|m| served >= m) {
            break;
        }
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
