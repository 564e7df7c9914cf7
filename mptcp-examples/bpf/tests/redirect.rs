//! The BPF program on the running kernel: a process in the cgroup gets MPTCP for a
//! plain `TcpStream::connect`, one outside it does not; on kernels without the hook the
//! error names it. Each process runs in a network namespace of its own test.

use mptcp_bpf::{Error, Redirect};
use mptcp_testnet::{kernel_version, require_netns, sha256, Netns};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

const CHILD_CGROUP: &str = "MPTCP_BPF_TEST_CGROUP";
const CHILD_ADDR: &str = "MPTCP_BPF_TEST_ADDR";
const CHILD_WANTS: &str = "MPTCP_BPF_TEST_WANTS";
const BYTES: usize = 256 * 1024;
/// The feature table's row (`cargo xtask vm-test` writes features.md).
const FEATURE: &str = "mptcp-run --bpf (update_socket_protocol)";

/// The running kernel's (major, minor).
fn kernel() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_version(&release)
}

/// Whether the kernel should have the hook; on those that should not, the error must
/// say so (printed for the VM matrix's log), and the caller stops.
fn hook_expected(report: bool) -> bool {
    let has = kernel() >= (6, 6);
    match mptcp_bpf::probe() {
        Ok(()) => assert!(has, "the hook on {:?}, before 6.6?", kernel()),
        Err(e) => {
            assert!(!has, "{:?} should have the hook: {e}", kernel());
            assert!(matches!(e, Error::NoHook | Error::NoBtf), "{e:?}");
            assert!(e.to_string().contains("Linux 6.6") || matches!(e, Error::NoBtf));
            let name = if matches!(e, Error::NoBtf) {
                "no BTF"
            } else {
                "no hook"
            };
            let io: std::io::Error = e.into();
            assert_eq!(io.kind(), std::io::ErrorKind::Unsupported);
            eprintln!("{io}");
            if report {
                println!("VMTEST FEATURE {FEATURE}=no ({name})");
            }
        }
    }
    has
}

/// A cgroup2 directory for this test, removed on drop (mounting cgroup2 at
/// /sys/fs/cgroup first where none is mounted anywhere, as in the VM guest).
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Cgroup {
        let root = mptcp_bpf::cgroup2_root().unwrap_or_else(|| {
            mptcp_testnet::sh(&["mount", "-t", "cgroup2", "none", "/sys/fs/cgroup"]);
            PathBuf::from("/sys/fs/cgroup")
        });
        let dir = root.join(format!("mptcp-bpf-test-{}-{name}", std::process::id()));
        std::fs::create_dir(&dir).expect("create a cgroup");
        Cgroup(dir)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// What the child does: joins the cgroup (when one is named: mptcp-run puts it in one
/// of its own), connects with std's plain TCP call and sends BYTES; its own socket must
/// then be MPTCP, or TCP when `wants` says "tcp".
fn child(cgroup: &str, addr: &str, wants: &str) {
    if cgroup.is_empty() {
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("own cgroup");
        assert!(own.contains("/mptcp-run."), "in mptcp-run's cgroup: {own}");
    } else {
        std::fs::write(Path::new(cgroup).join("cgroup.procs"), "0").expect("join the cgroup");
    }
    let addr: SocketAddr = addr.parse().expect("address");
    let mut s = TcpStream::connect(addr).expect("connect");
    let mptcp = mptcp::is_mptcp(&s).expect("is_mptcp");
    assert_eq!(mptcp, wants != "tcp", "the child's socket (wanted {wants})");
    s.write_all(&mptcp_testnet::data(BYTES)).expect("send");
}

/// Runs the child (this test binary again, after `prefix`) in `ns`' thread against a
/// listener there: (the hash of what arrived, whether the accepted socket is MPTCP).
fn connect_child(
    test: &str,
    prefix: &[&str],
    l: &std::net::TcpListener,
    cgroup: &str,
    wants: &str,
) -> ([u8; 32], bool) {
    let addr = l.local_addr().expect("addr").to_string();
    let server = serve_one(l.try_clone().expect("clone"));
    mptcp_testnet::rerun_as_child(
        test,
        prefix,
        &[
            (CHILD_CGROUP, cgroup),
            (CHILD_ADDR, &addr),
            (CHILD_WANTS, wants),
        ],
    );
    server.join().expect("server")
}

/// Attaches for `cg`, or says (as a skip) that this kernel refuses BPF tracing programs
/// to a process that has the capabilities for them: a policy of the machine (this
/// project's CI host refuses every fentry/fmod_ret program, even a trivial one, while
/// kprobes load), where the VM matrix's Debian kernels run the test.
fn attach_or_skip(cg: &Cgroup) -> Option<Redirect> {
    match Redirect::attach(&cg.0) {
        Ok(r) => Some(r),
        Err(e @ Error::RefusedByKernel { .. }) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            eprintln!("skipped: {first}; {VM_COVERS}");
            None
        }
        Err(e) => panic!("attach: {e}"),
    }
}

/// The words `cargo xtask test` looks for to accept a skip on the host that the VM
/// matrix makes up for.
const VM_COVERS: &str = "the VM matrix runs this test (Linux 6.12 and 7.3)";

/// The start of the connecting tests: in a child, its part (then `false`); else
/// whether the test can go on (namespaces, and a kernel with the hook: `report` prints
/// the feature row when it has none).
fn prologue(report: bool) -> bool {
    if let Some((cg, addr, wants)) = as_child() {
        child(&cg, &addr, &wants);
        return false;
    }
    if let Some(why) = mptcp_testnet::cannot_run() {
        eprintln!("skipped: {why}");
        return false;
    }
    hook_expected(report)
}

/// The children's environment, when this process is one: (cgroup, address, wants).
fn as_child() -> Option<(String, String, String)> {
    let get = |k| std::env::var(k).ok();
    Some((get(CHILD_CGROUP)?, get(CHILD_ADDR)?, get(CHILD_WANTS)?))
}

/// Accepts one connection and reads it to the end: (its bytes' hash, whether it is MPTCP).
fn serve_one(l: std::net::TcpListener) -> std::thread::JoinHandle<([u8; 32], bool)> {
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        (sha256(&got), mptcp::is_mptcp(&s).expect("is_mptcp"))
    })
}

#[test]
fn tcp_sockets_of_one_cgroup_become_mptcp() {
    const TEST: &str = "tcp_sockets_of_one_cgroup_become_mptcp";
    if !prologue(true) {
        return;
    }
    let cg = Cgroup::new("redirect");
    let Some(redirect) = attach_or_skip(&cg) else {
        return;
    };
    assert_eq!(redirect.cgroup(), cg.0);
    assert_eq!(redirect.converted().expect("counter"), 0);
    let ns = Netns::new("bpf");
    let cg_path = cg.0.to_string_lossy().into_owned();
    let l = ns.run(|| mptcp::listen("127.0.0.1:0").expect("listen"));
    let want = sha256(&mptcp_testnet::data(BYTES));
    // In the cgroup: the test binary again, as a child process that joins it.
    let (l, inside) = ns.run(move || {
        let r = connect_child(TEST, &[], &l, &cg_path, "mptcp");
        (l, r)
    });
    assert_eq!(
        inside,
        (want, true),
        "the child's connection: bytes intact, MPTCP"
    );
    // Outside it: this process, the same call.
    let (l, outside) = ns.run(move || {
        let server = serve_one(l.try_clone().expect("clone"));
        let addr = l.local_addr().expect("addr");
        let mut c = TcpStream::connect(addr).expect("connect");
        assert!(
            !mptcp::is_mptcp(&c).expect("is_mptcp"),
            "outside the cgroup: TCP"
        );
        c.write_all(&mptcp_testnet::data(BYTES)).expect("send");
        drop(c);
        (l, server.join().expect("server"))
    });
    assert_eq!(
        outside,
        (want, false),
        "this process's connection: bytes intact, TCP"
    );
    assert_eq!(
        redirect.converted().expect("counter"),
        1,
        "one socket converted"
    );
    // Detached: a process that joins the cgroup now gets TCP.
    drop(redirect);
    let cg_path = cg.0.to_string_lossy().into_owned();
    let after = ns.run(move || connect_child(TEST, &[], &l, &cg_path, "tcp"));
    assert_eq!(after, (want, false), "after detaching: TCP");
    println!("VMTEST FEATURE {FEATURE}=yes");
}

/// mptcp-run in the guest (/usr/bin), else beside this test binary's directory
/// (target/PROFILE/), where `cargo test --workspace --all-features` builds it.
fn mptcp_run() -> Option<PathBuf> {
    let guest = PathBuf::from("/usr/bin/mptcp-run");
    let exe = std::env::current_exe().ok()?;
    let built = exe.parent()?.parent()?.join("mptcp-run");
    [guest, built].into_iter().find(|p| p.exists())
}

#[test]
fn mptcp_run_bpf_runs_a_program_in_its_own_cgroup() {
    const TEST: &str = "mptcp_run_bpf_runs_a_program_in_its_own_cgroup";
    if !prologue(false) {
        return;
    }
    // Whether this kernel lets the program load at all (see attach_or_skip).
    if attach_or_skip(&Cgroup::new("probe")).is_none() {
        return;
    }
    let run = mptcp_run().expect("mptcp-run (built with --features bpf)");
    let run = run.to_str().expect("UTF-8 path").to_string();
    let ns = Netns::new("bpfrun");
    let l = ns.run(|| mptcp::listen("127.0.0.1:0").expect("listen"));
    let prefix = [run.as_str(), "--bpf"];
    let prefix: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    let got = ns.run(move || {
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        connect_child(TEST, &prefix, &l, "", "mptcp")
    });
    assert_eq!(
        got,
        (sha256(&mptcp_testnet::data(BYTES)), true),
        "under mptcp-run --bpf: bytes intact, MPTCP"
    );
    // Its cgroup is gone, and the program's exit status is mptcp-run's.
    let own = mptcp_bpf::own_cgroup().expect("own cgroup");
    let left: Vec<_> = std::fs::read_dir(&own)
        .expect("list the cgroup")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("mptcp-run."))
        .collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    if Path::new("/bin/sh").exists() {
        let status = std::process::Command::new(&run)
            .args(["--bpf", "/bin/sh", "-c", "exit 7"])
            .status()
            .expect("run mptcp-run");
        assert_eq!(status.code(), Some(7), "the program's exit status");
    }
}

#[test]
fn loading_without_privilege_names_the_capabilities() {
    if std::env::var_os("MPTCP_BPF_TEST_UNPRIVILEGED").is_some() {
        let err = Redirect::attach(Path::new("/sys/fs/cgroup")).expect_err("unprivileged");
        assert!(matches!(err, Error::NotPermitted(_)), "{err:?}");
        assert!(err.to_string().contains("CAP_BPF"), "{err}");
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        return;
    }
    require_netns!();
    if !hook_expected(false) {
        return;
    }
    let Some(unprivileged) = mptcp_testnet::unprivileged() else {
        return;
    };
    mptcp_testnet::rerun_as_child(
        "loading_without_privilege_names_the_capabilities",
        &unprivileged,
        &[("MPTCP_BPF_TEST_UNPRIVILEGED", "1")],
    );
}

#[test]
fn mptcp_run_cgroup_holds_or_pins_for_an_existing_cgroup() {
    const TEST: &str = "mptcp_run_cgroup_holds_or_pins_for_an_existing_cgroup";
    if !prologue(false) {
        return;
    }
    let cg = Cgroup::new("service");
    if attach_or_skip(&cg).is_none() {
        return;
    }
    let run = mptcp_run().expect("mptcp-run (built with --features bpf)");
    let ns = Netns::new("bpfcg");
    let l = ns.run(|| mptcp::listen("127.0.0.1:0").expect("listen"));
    let cg_path = cg.0.to_string_lossy().into_owned();
    let want = sha256(&mptcp_testnet::data(BYTES));
    let child_in = |l: std::net::TcpListener, wants: &'static str| {
        let cg_path = cg_path.clone();
        ns.run(move || {
            let r = connect_child(TEST, &[], &l, &cg_path, wants);
            (l, r)
        })
    };
    // Held: until SIGINT, then the count on stderr.
    let mut held = std::process::Command::new(&run)
        .args(["--cgroup", &cg_path])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start mptcp-run --cgroup");
    let mut err = std::io::BufReader::new(held.stderr.take().expect("stderr"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).expect("its first line");
    assert!(line.contains("are MPTCP until this stops"), "{line}");
    let (l, got) = child_in(l, "mptcp");
    assert_eq!(got, (want, true), "held: MPTCP");
    let pid = rustix::process::Pid::from_child(&held);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("the rest of stderr");
    assert!(held.wait().expect("wait").success());
    assert!(rest.contains("1 socket made MPTCP"), "{rest}");
    let (l, got) = child_in(l, "tcp");
    assert_eq!(got, (want, false), "after it stopped: TCP");
    // Pinned: attached after mptcp-run exits, until the pin is removed.
    let bpffs = Path::new("/sys/fs/bpf");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if !mounts.lines().any(|m| m.split(' ').nth(2) == Some("bpf")) {
        mptcp_testnet::sh(&["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]);
    }
    let pin = bpffs.join(format!("mptcp-run-test-{}", std::process::id()));
    let pin_s = pin.to_string_lossy().into_owned();
    let status = std::process::Command::new(&run)
        .args(["--cgroup", &cg_path, "--pin", &pin_s])
        .status()
        .expect("run mptcp-run --pin");
    assert!(status.success());
    let (l, got) = child_in(l, "mptcp");
    std::fs::remove_file(&pin).expect("remove the pin");
    assert_eq!(got, (want, true), "pinned: MPTCP");
    let (_, got) = child_in(l, "tcp");
    assert_eq!(got, (want, false), "unpinned: TCP");
}
