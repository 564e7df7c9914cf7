//! A minimal userspace path manager: for every new MPTCP connection in this network
//! namespace, opens one more subflow from each local address given, to the address the
//! connection's peer uses. Needs CAP_NET_ADMIN.
//!
//! ```sh
//! cargo run -p mptcp --example userspace_pm -- 198.51.100.1 203.0.113.1
//! ```
//!
//! It selects the userspace path manager for the namespace first; `--max N` stops after
//! N connections.

use mptcp::pm::{Event, EventItem, PathManager, PmKind};
use std::net::{IpAddr, SocketAddr};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut locals: Vec<IpAddr> = Vec::new();
    let mut max = usize::MAX;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--max" {
            max = args.next().ok_or("--max needs a number")?.parse()?;
        } else {
            locals.push(a.parse().map_err(|_| format!("not an address: {a}"))?);
        }
    }
    if locals.is_empty() {
        return Err("usage: userspace_pm LOCAL_ADDR... [--max N]".into());
    }
    mptcp::pm::set_kind(PmKind::Userspace)?;
    let mut pm = PathManager::new()?;
    let events = pm.events()?;
    println!("userspace path manager ready");
    let mut handled = 0;
    for item in events {
        let ev = match item? {
            EventItem::Event(ev) => ev,
            EventItem::Lost => {
                eprintln!("events were lost");
                continue;
            }
            _ => continue,
        };
        let Event::Established(conn) = ev else {
            continue;
        };
        let (token, remote) = (conn.token, conn.remote);
        for (i, ip) in locals.iter().enumerate() {
            if ip.is_ipv4() != remote.is_ipv4() {
                continue;
            }
            // Local address ids 1.. are ours to give (0 is the initial subflow's).
            let id = u8::try_from(i + 1)?;
            let local = SocketAddr::new(*ip, 0);
            match pm.create_subflow(token, id, local, remote) {
                Ok(()) => println!("token {token}: subflow {local} -> {remote} requested"),
                Err(e) => eprintln!("token {token}: {local} -> {remote}: {e}"),
            }
        }
        handled += 1;
        if handled >= max {
            break;
        }
    }
    Ok(())
}
