//! What the listener watch costs on this machine: prints figures, asserts nothing about speed.
//!
//! `cargo bench -p causeway-probe --bench listener_cost`
//!
//! - the watch itself: its thread's CPU time per poll, with two canary ports watched at the
//!   fastest allowed interval (20 ms) for a few seconds;
//! - one sock_diag dump of one port's listeners, and one of every listener;
//! - one scan of every process's /proc/PID/fd for two socket inodes (what a new listener
//!   costs, once), and the owner details read after it.

use std::collections::HashSet;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use causeway_probe::host::listeners::{ListenerWatch, ServingRule};
use causeway_probe::host::procfs;
use causeway_probe::host::sock_diag::SockDiag;

/// CPU time of the whole process (every thread), in nanoseconds.
fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    s.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("schedstat's first field")
}

fn inode_of(listener: &TcpListener) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .expect("the listener's fd link");
    procfs::socket_inode(link.as_os_str()).expect("a socket link")
}

fn main() {
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let ports: Vec<(u16, ServingRule)> = listeners
        .iter()
        .map(|l| (l.local_addr().expect("addr").port(), ServingRule::LongLived))
        .collect();

    let poll = Duration::from_millis(20);
    let run = Duration::from_secs(5);
    let before = process_cpu_ns();
    let os = causeway_probe::os::get_input(&causeway_probe::config::HostConfig::default());
    let watch = ListenerWatch::start(ports.clone(), poll, os);
    std::thread::sleep(run);
    // Read before stopping: an exited thread leaves /proc/self/task, and its time with it.
    let after = process_cpu_ns();
    watch.stop();
    let polls = run.as_millis() / poll.as_millis();
    let per_poll = (after - before) as u128 / polls;
    println!(
        "listener watch, {} ports, every {} ms for {} s: {} us CPU per poll (whole process)",
        ports.len(),
        poll.as_millis(),
        run.as_secs(),
        per_poll / 1000
    );

    let rounds = 2000u64;
    let mut diag = SockDiag::open().expect("sock_diag");
    let (c0, w0) = (thread_cpu_ns(), Instant::now());
    for _ in 0..rounds {
        diag.listeners(ports[0].0).expect("dump");
    }
    println!(
        "sock_diag dump of one port: {} us CPU, {:?} wall",
        (thread_cpu_ns() - c0) / rounds / 1000,
        w0.elapsed() / rounds as u32
    );
    let (c0, w0) = (thread_cpu_ns(), Instant::now());
    let mut count = 0;
    for _ in 0..rounds {
        count = diag.listeners(0).expect("dump").len();
    }
    println!(
        "sock_diag dump of every listener ({count}): {} us CPU, {:?} wall",
        (thread_cpu_ns() - c0) / rounds / 1000,
        w0.elapsed() / rounds as u32
    );

    let inodes: HashSet<u64> = listeners.iter().map(inode_of).collect();
    let proc_root = Path::new("/proc");
    let scans = 100u64;
    let (c0, w0) = (thread_cpu_ns(), Instant::now());
    let mut processes = 0;
    for _ in 0..scans {
        let scan = procfs::scan_fd_owners(proc_root, &inodes);
        assert_eq!(scan.holders.len(), 2, "both listeners found");
        processes = scan.processes;
    }
    println!(
        "/proc/*/fd scan for 2 inodes ({processes} processes): {} us CPU, {:?} wall",
        (thread_cpu_ns() - c0) / scans / 1000,
        w0.elapsed() / scans as u32
    );
    let pid = std::process::id();
    let (c0, w0) = (thread_cpu_ns(), Instant::now());
    for _ in 0..scans {
        procfs::read_owner(proc_root, pid).expect("our own details");
    }
    println!(
        "owner details of one process (comm, cmdline, cgroup, start): {} us CPU, {:?} wall",
        (thread_cpu_ns() - c0) / scans / 1000,
        w0.elapsed() / scans as u32
    );
}
