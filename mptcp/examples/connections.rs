//! Lists every MPTCP connection of the current network namespace with its subflows,
//! like `ss -M` and `ss -tiO` together, from `mptcp::diag`.
//!
//! ```sh
//! cargo run -p mptcp --example connections            # everything
//! cargo run -p mptcp --example connections -- 443     # only local or remote port 443
//! ```

use mptcp::diag::{Diag, Filter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: Option<u16> = match std::env::args().nth(1) {
        Some(p) => Some(p.parse().map_err(|_| format!("not a port: {p:?}"))?),
        None => None,
    };
    let mut diag = Diag::new()?;
    let mut conns = match port {
        // The kernel filters by port; local or remote takes two listings.
        Some(p) => {
            let mut v = diag.connections(&Filter::new().local_port(p))?;
            v.extend(diag.connections(&Filter::new().remote_port(p))?);
            v.dedup_by_key(|c| c.cookie);
            v
        }
        None => diag.connections(&Filter::new())?,
    };
    conns.sort_by_key(|c| (c.state.raw(), c.local));
    for c in &conns {
        let token = c.token.map_or("-".to_string(), |t| t.to_string());
        println!("{token} {} {} -> {}", c.state, c.local, c.remote);
        for sf in &c.subflows {
            let (sent, received) = sf
                .tcp_info
                .as_ref()
                .map_or((0, 0), |t| (t.bytes_acked(), t.bytes_received()));
            println!(
                "    {} -> {} ids {}/{}{} sent {sent} received {received}",
                sf.local,
                sf.remote,
                sf.local_id.map_or("-".into(), |i| i.to_string()),
                sf.remote_id.map_or("-".into(), |i| i.to_string()),
                if sf.is_backup() == Some(true) {
                    " backup"
                } else {
                    ""
                },
            );
        }
    }
    if diag.subflows_visible() == Some(false) {
        eprintln!("note: subflows are shown to CAP_NET_ADMIN only on this kernel");
    }
    println!("{} MPTCP sockets", conns.len());
    Ok(())
}
