//! An HTTP server over MPTCP with axum, on the crate's tokio listener: MPTCP clients
//! get MPTCP, plain TCP clients are served as usual.
//!
//! ```sh
//! cargo run -p mptcp --features tokio --example http_server -- 127.0.0.1:8080
//! curl --mptcp http://127.0.0.1:8080/   # curl 8.9+; plain `curl` works too
//! ```

use axum::{routing::get, Router};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let app = Router::new().route("/", get(|| async { "hello over MPTCP\n" }));
    let listener = mptcp::tokio::listen(addr.as_str()).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
