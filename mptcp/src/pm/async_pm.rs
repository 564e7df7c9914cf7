//! The path manager for async code (feature `tokio`).

use super::{Endpoint, EndpointFlags, Events, Limits, PathManager};
use crate::error::{Error, Result};
use crate::Token;
use std::net::{IpAddr, SocketAddr};

/// The path-manager client for async code (feature `tokio`): the same requests as
/// [`PathManager`], as `Send` futures.
///
/// The kernel answers path-manager requests synchronously while they are sent, so each
/// request is a short blocking exchange; it runs on tokio's blocking pool so it never
/// occupies a runtime worker. Events are a real async stream: [`Events::into_stream`].
///
/// ```no_run
/// # async fn f() -> mptcp::Result<()> {
/// let pm = mptcp::pm::AsyncPathManager::new().await?;
/// let limits = pm.limits().await?;
/// println!("{limits:?}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncPathManager {
    inner: std::sync::Arc<std::sync::Mutex<PathManager>>,
}

macro_rules! async_pm {
    ($( $(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty => |$pm:ident| $body:expr; )*) => {
        impl AsyncPathManager {
            /// Opens a client (in the calling thread's network namespace).
            pub async fn new() -> Result<Self> {
                Ok(AsyncPathManager {
                    inner: std::sync::Arc::new(std::sync::Mutex::new(PathManager::new()?)),
                })
            }

            async fn call<T: Send + 'static>(
                &self,
                f: impl FnOnce(&mut PathManager) -> Result<T> + Send + 'static,
            ) -> Result<T> {
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || {
                    let mut pm = inner.lock().unwrap_or_else(|p| p.into_inner());
                    f(&mut pm)
                })
                .await
                .map_err(|e| Error::os("path manager task", std::io::Error::other(e.to_string())))?
            }

            $( $(#[$m])* pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                self.call(move |$pm| $body).await
            } )*
        }
    };
}

async_pm! {
    /// [`PathManager::add_endpoint`].
    fn add_endpoint(ep: Endpoint) -> u8 => |pm| pm.add_endpoint(&ep);
    /// [`PathManager::delete_endpoint`].
    fn delete_endpoint(id: u8) -> () => |pm| pm.delete_endpoint(id);
    /// [`PathManager::delete_endpoint_addr`].
    fn delete_endpoint_addr(id: u8, addr: IpAddr) -> () => |pm| pm.delete_endpoint_addr(id, addr);
    /// [`PathManager::endpoint`].
    fn endpoint(id: u8) -> Endpoint => |pm| pm.endpoint(id);
    /// [`PathManager::endpoints`].
    fn endpoints() -> Vec<Endpoint> => |pm| pm.endpoints();
    /// [`PathManager::flush_endpoints`].
    fn flush_endpoints() -> () => |pm| pm.flush_endpoints();
    /// [`PathManager::set_endpoint_flags`].
    fn set_endpoint_flags(id: u8, flags: EndpointFlags) -> () => |pm| pm.set_endpoint_flags(id, flags);
    /// [`PathManager::limits`].
    fn limits() -> Limits => |pm| pm.limits();
    /// [`PathManager::set_limits`].
    fn set_limits(limits: Limits) -> () => |pm| pm.set_limits(limits);
    /// [`PathManager::announce`].
    fn announce(token: Token, id: u8, addr: SocketAddr) -> () => |pm| pm.announce(token, id, addr);
    /// [`PathManager::remove`].
    fn remove(token: Token, id: u8) -> () => |pm| pm.remove(token, id);
    /// [`PathManager::subflow_create`].
    fn subflow_create(token: Token, local_id: u8, local: SocketAddr, remote: SocketAddr) -> () => |pm| pm.subflow_create(token, local_id, local, remote);
    /// [`PathManager::subflow_destroy`].
    fn subflow_destroy(token: Token, local: SocketAddr, remote: SocketAddr) -> () => |pm| pm.subflow_destroy(token, local, remote);
    /// [`PathManager::set_backup`].
    fn set_backup(token: Token, local: SocketAddr, remote: SocketAddr, backup: bool) -> () => |pm| pm.set_backup(token, local, remote, backup);
    /// [`PathManager::announced`].
    fn announced(token: Token) -> Vec<Endpoint> => |pm| pm.announced(token);
    /// [`PathManager::events`], as a stream (call inside the runtime).
    fn events() -> Events => |pm| pm.events();
}
