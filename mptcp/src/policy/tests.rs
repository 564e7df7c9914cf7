use super::*;
use mptcp_sys::tcp_info;
use std::mem::{offset_of, size_of};

const REMOTE: &str = "203.0.113.9:443";

fn remote() -> SocketAddr {
    REMOTE.parse().expect("address")
}

fn path(a: &str, standby: bool) -> LocalPath {
    LocalPath {
        addr: a.parse().expect("address"),
        ifindex: None,
        standby,
    }
}

fn sf(local: &str, backup: bool) -> SubflowState {
    SubflowState {
        local: local.parse().expect("address"),
        remote: remote(),
        backup,
        pending: false,
        lost: false,
    }
}

const A: &str = "192.0.2.1";
const B: &str = "198.51.100.1";
const SA: &str = "192.0.2.1:40000";
const SB: &str = "198.51.100.1:40001";

#[test]
fn aggregate_opens_every_path_and_marks_none_backup() {
    let paths = [path(A, false), path(B, false)];
    let now = [sf(SA, false)];
    assert_eq!(
        decide(PathPolicy::Aggregate, &paths, remote(), &now),
        [Action::Open {
            local: B.parse().expect("address"),
            remote: remote(),
            backup: false
        }]
    );
    let now = [sf(SA, false), sf(SB, true)];
    assert_eq!(
        decide(PathPolicy::Aggregate, &paths, remote(), &now),
        [Action::SetBackup {
            local: now[1].local,
            remote: remote(),
            backup: false
        }]
    );
}

#[test]
fn handover_fails_over_and_back() {
    let paths = [path(A, false), path(B, false)];
    // The stand-by path is opened as a backup.
    let now = [sf(SA, false)];
    assert_eq!(
        decide(PathPolicy::Handover, &paths, remote(), &now),
        [Action::Open {
            local: B.parse().expect("address"),
            remote: remote(),
            backup: true
        }]
    );
    // Steady: nothing to do.
    let now = [sf(SA, false), sf(SB, true)];
    assert!(decide(PathPolicy::Handover, &paths, remote(), &now).is_empty());
    // A's subflow found lost: closed, B takes over, and a fresh subflow on A is asked
    // for (it is established once A works again).
    let mut lost = now;
    lost[0].lost = true;
    assert_eq!(
        decide(PathPolicy::Handover, &paths, remote(), &lost),
        [
            Action::SetBackup {
                local: now[1].local,
                remote: remote(),
                backup: false
            },
            Action::Open {
                local: A.parse().expect("address"),
                remote: remote(),
                backup: false
            },
            Action::Close {
                local: now[0].local,
                remote: remote()
            }
        ]
    );
    // A closed and usable again: opened as the active path, B stays active meanwhile.
    let now = [sf(SB, false)];
    assert_eq!(
        decide(PathPolicy::Handover, &paths, remote(), &now),
        [Action::Open {
            local: A.parse().expect("address"),
            remote: remote(),
            backup: false
        }]
    );
    let mut opening = [sf(SB, false), sf(SA, false)];
    opening[1].pending = true;
    assert!(decide(PathPolicy::Handover, &paths, remote(), &opening).is_empty());
    // A established: B goes back to stand-by.
    let now = [sf(SB, false), sf(SA, false)];
    assert_eq!(
        decide(PathPolicy::Handover, &paths, remote(), &now),
        [Action::SetBackup {
            local: now[0].local,
            remote: remote(),
            backup: true
        }]
    );
}

#[test]
fn the_last_subflow_is_never_closed() {
    let paths = [path(B, false)];
    let mut now = [sf(SA, false)];
    now[0].lost = true;
    assert_eq!(
        decide(PathPolicy::Handover, &paths, remote(), &now),
        [Action::Open {
            local: B.parse().expect("address"),
            remote: remote(),
            backup: false
        }]
    );
}

#[test]
fn backup_paths_carry_data_only_when_no_other_works() {
    let paths = [path(A, false), path(B, true)];
    let now = [sf(SA, false), sf(SB, false)];
    assert_eq!(
        decide(PathPolicy::Backup, &paths, remote(), &now),
        [Action::SetBackup {
            local: now[1].local,
            remote: remote(),
            backup: true
        }]
    );
    let now = [sf(SA, false), sf(SB, true)];
    assert_eq!(
        decide(PathPolicy::Backup, &paths[1..], remote(), &now),
        [
            Action::SetBackup {
                local: now[1].local,
                remote: remote(),
                backup: false
            },
            Action::Close {
                local: now[0].local,
                remote: remote()
            }
        ]
    );
}

#[test]
fn other_family_paths_are_left_out() {
    let paths = [path(A, false), path("2001:db8::1", false)];
    let now = [sf(SA, false)];
    assert!(decide(PathPolicy::Aggregate, &paths, remote(), &now).is_empty());
}

fn info(unacked: u32, last_ack_ms: u32, acked: u64, rtt_us: u32) -> TcpInfo {
    let mut b = vec![0u8; size_of::<tcp_info>()];
    let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(offset_of!(tcp_info, tcpi_unacked), &unacked.to_ne_bytes());
    put(
        offset_of!(tcp_info, tcpi_last_ack_recv),
        &last_ack_ms.to_ne_bytes(),
    );
    put(offset_of!(tcp_info, tcpi_bytes_acked), &acked.to_ne_bytes());
    put(offset_of!(tcp_info, tcpi_rtt), &rtt_us.to_ne_bytes());
    TcpInfo::decode(&b).expect("decode")
}

#[test]
fn a_stalled_subflow_is_lost_while_another_is_not() {
    let (a, b, r) = (
        SA.parse().expect("address"),
        SB.parse().expect("address"),
        remote(),
    );
    let mut d = LossDetector::new(Duration::from_millis(100));
    // Both fine.
    let fine = info(10, 1, 1000, 5000);
    assert!(d.observe([(a, r, &fine), (b, r, &fine)]).is_empty());
    // A stalls 150 ms with data in flight, B is fine: A is lost.
    let stalled = info(10, 150, 2000, 5000);
    assert_eq!(
        d.observe([(a, r, &stalled), (b, r, &fine)]),
        [LossChange {
            local: a,
            remote: r,
            lost: true
        }]
    );
    assert!(d.is_lost(a, r));
    // Still no progress: nothing new.
    assert!(d.observe([(a, r, &stalled), (b, r, &fine)]).is_empty());
    // A's acknowledged bytes grow: it is back.
    let moving = info(10, 1, 3000, 5000);
    assert_eq!(
        d.observe([(a, r, &moving), (b, r, &fine)]),
        [LossChange {
            local: a,
            remote: r,
            lost: false
        }]
    );
}

#[test]
fn nothing_is_lost_when_every_subflow_stalls_or_the_rtt_is_long() {
    let (a, b, r) = (
        SA.parse().expect("address"),
        SB.parse().expect("address"),
        remote(),
    );
    let mut d = LossDetector::new(Duration::from_millis(100));
    let stalled = info(10, 150, 2000, 5000);
    // The whole connection waits (the peer is gone, say): not a path's loss.
    assert!(d.observe([(a, r, &stalled), (b, r, &stalled)]).is_empty());
    // 150 ms without an ack is nothing on a path whose round trip is 100 ms.
    let slow = info(10, 150, 2000, 100_000);
    let idle = info(0, 5000, 2000, 5000);
    assert!(d.observe([(a, r, &slow), (b, r, &idle)]).is_empty());
    // An idle subflow (nothing in flight) is never lost.
    assert!(d.observe([(a, r, &idle), (b, r, &stalled)]).len() == 1);
}

#[test]
fn policy_names_round_trip() {
    for p in [
        PathPolicy::Aggregate,
        PathPolicy::Handover,
        PathPolicy::Backup,
    ] {
        assert_eq!(p.to_string().parse::<PathPolicy>(), Ok(p));
    }
    assert_eq!(
        "fast"
            .parse::<PathPolicy>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        "\"fast\" is not a path policy (aggregate, handover, backup)"
    );
}
