//! The kernel's MPTCP counters (`MPTcpExt` in `/proc/net/netstat`, per network
//! namespace, since boot or the namespace's creation), under the kernel's own names.

use std::io;

/// Every `MPTcpExt` counter the running kernel has, in its order: `(name, value)`.
/// Empty when the kernel has no MPTCP.
pub fn mptcp_counters() -> io::Result<Vec<(String, u64)>> {
    Ok(parse(&std::fs::read_to_string("/proc/net/netstat")?))
}

/// The `MPTcpExt` pair of lines of a `/proc/net/netstat` text: a line of names, then a
/// line of values, each after the same `MPTcpExt:` prefix.
pub fn parse(text: &str) -> Vec<(String, u64)> {
    let mut lines = text.lines().filter_map(|l| l.strip_prefix("MPTcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Vec::new();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_pair_with_values() {
        let text = "TcpExt: SyncookiesSent X\nTcpExt: 1 2\nMPTcpExt: MPCapableSYNRX MPJoinAckRx\nMPTcpExt: 5 7\n";
        assert_eq!(
            super::parse(text),
            vec![("MPCapableSYNRX".into(), 5), ("MPJoinAckRx".into(), 7)]
        );
        assert!(super::parse("TcpExt: A\nTcpExt: 1\n").is_empty());
    }
}
