//! Path-manager events, counted by type on a thread of their own (the subscription
//! needs CAP_NET_ADMIN on recent kernels, and Linux 5.12+).

use mptcp::pm::{EventItem, PathManager};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The events counted so far.
#[derive(Debug, Default, Clone)]
pub struct EventCounts {
    /// Events by type (`ip mptcp monitor`'s names).
    pub by_type: BTreeMap<&'static str, u64>,
    /// Times events were lost (a full receive buffer).
    pub lost: u64,
    /// Whether the subscription is running.
    pub subscribed: bool,
}

/// Subscribes to the events and counts them on a new thread; a subscription that
/// cannot be made or ends is logged once and leaves `subscribed` false.
pub fn follow(counts: Arc<Mutex<EventCounts>>) {
    let events = PathManager::new().and_then(|pm| pm.events());
    let mut events = match events {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!(
                "mptcp-exporter: no path-manager events (mptcp_pm_events_total stays empty): {e}"
            );
            return;
        }
    };
    // A large buffer: a burst of connections must not lose events.
    let _ = events.set_receive_buffer(4 << 20);
    lock(&counts).subscribed = true;
    std::thread::spawn(move || {
        for item in events.by_ref() {
            let mut c = lock(&counts);
            match item {
                Ok(EventItem::Event(ev)) => *c.by_type.entry(ev.kind().name()).or_default() += 1,
                Ok(EventItem::Lost) => c.lost += 1,
                Ok(_) => {}
                Err(e) => {
                    c.subscribed = false;
                    drop(c);
                    eprintln!("mptcp-exporter: path-manager events stopped: {e}");
                    return;
                }
            }
        }
    });
}

/// Locks a mutex, going on with the data if a thread panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
