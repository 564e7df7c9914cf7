//! An echo client over MPTCP: sends its message, prints the echo and the subflows the
//! connection used.
//!
//! ```sh
//! cargo run -p mptcp --example echo_client -- 127.0.0.1:7000 "hello"
//! ```

use std::io::{Read, Write};
use std::net::Shutdown;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(message)) = (args.next(), args.next()) else {
        return Err("usage: echo_client ADDR MESSAGE".into());
    };
    let mut stream = mptcp::connect(addr.as_str())?;
    let st = mptcp::status(&stream)?;
    stream.write_all(message.as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut echo = String::new();
    stream.read_to_string(&mut echo)?;
    println!("echo: {echo}");
    println!("MPTCP: {}", st.using_mptcp);
    if st.using_mptcp {
        for sf in mptcp::subflows(&stream)? {
            println!("subflow {:?}: {} -> {}", sf.id, sf.local, sf.remote);
        }
    }
    Ok(())
}
