use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use causeway_schema::{LISTENERS_MAX, Listener, SocketOwner};
use socket2::{Domain, Socket, Type};

use super::tracker::{Resolved, select};
use super::*;
use crate::host::procfs::Owner;
use crate::host::sock_diag::DiagListener;
use crate::os::Host;

/// A watch reading the real /proc.
fn start(ports: Vec<(u16, ServingRule)>, poll: Duration) -> ListenerWatch {
    ListenerWatch::start(ports, poll, Arc::new(Host::default()))
}

const T0: i64 = 1_700_000_000_000;

fn dl(addr: &str, inode: u64, uid: u32) -> DiagListener {
    DiagListener {
        address: addr.parse().unwrap(),
        uid,
        inode,
        accept_queue: 0,
        backlog: 511,
    }
}

/// A process started by init.
fn owner(pid: u32, name: &str, cgroup: &str, start: u64) -> Owner {
    Owner {
        info: SocketOwner {
            pid,
            name: name.into(),
            cmdline: name.into(),
            cgroup: Some(cgroup.into()),
            unit: procfs::unit_of(cgroup),
            ppid: Some(1),
        },
        start_ticks: Some(start),
        ancestors: vec![1],
    }
}

/// `o` as a child of `parent` (and of its ancestors).
fn child_of(mut o: Owner, parent: &Owner) -> Owner {
    o.info.ppid = Some(parent.info.pid);
    o.ancestors = std::iter::once(parent.info.pid)
        .chain(parent.ancestors.iter().copied())
        .collect();
    o
}

/// A resolver answering from a table, recording the inodes it was asked for.
struct Fake {
    owners: HashMap<u64, Vec<Owner>>,
    denied: Option<u32>,
    asked: Vec<Vec<u64>>,
}

impl Fake {
    fn new(owners: &[(u64, Owner)]) -> Fake {
        let mut map: HashMap<u64, Vec<Owner>> = HashMap::new();
        for (inode, o) in owners {
            map.entry(*inode).or_default().push(o.clone());
        }
        Fake {
            owners: map,
            denied: None,
            asked: Vec::new(),
        }
    }

    fn resolve(&mut self, inodes: &HashSet<u64>) -> Resolved {
        let mut asked: Vec<u64> = inodes.iter().copied().collect();
        asked.sort_unstable();
        self.asked.push(asked);
        Resolved {
            owners: inodes
                .iter()
                .filter_map(|i| self.owners.get(i).map(|o| (*i, o.clone())))
                .collect(),
            denied: self.denied,
        }
    }
}

fn poll(t: &mut Tracker, fake: &mut Fake, now: i64, seen: Vec<DiagListener>) {
    t.poll(now, vec![seen], &mut |i| fake.resolve(i));
}

fn find(ev: &ListenerEvidence, inode: u64) -> &Listener {
    ev.listeners
        .iter()
        .find(|l| l.inode == inode)
        .unwrap_or_else(|| panic!("inode {inode} not in {ev:#?}"))
}

fn tracker(rule: ServingRule) -> Tracker {
    Tracker::new(vec![(80, rule)], Duration::from_millis(100), true)
}

const NGINX_CG: &str = "/system.slice/nginx.service";
const AGENT_CG: &str = "/system.slice/zabbix-agent.service";

#[test]
fn lifetimes_are_tracked_and_vanished_listeners_kept() {
    let mut fake = Fake::new(&[
        (1, owner(100, "nginx", NGINX_CG, 10)),
        (2, owner(200, "nginx", AGENT_CG, 50)),
    ]);
    let mut t = tracker(ServingRule::LongLived);
    poll(&mut t, &mut fake, T0, vec![dl("0.0.0.0:80", 1, 0)]);
    poll(
        &mut t,
        &mut fake,
        T0 + 100,
        vec![dl("0.0.0.0:80", 1, 0), dl("0.0.0.0:80", 2, 0)],
    );
    poll(
        &mut t,
        &mut fake,
        T0 + 200,
        vec![dl("0.0.0.0:80", 1, 0), dl("0.0.0.0:80", 2, 0)],
    );
    poll(&mut t, &mut fake, T0 + 300, vec![dl("0.0.0.0:80", 1, 0)]);
    let ev = t.evidence(&t.ports[0], T0 + 300);
    assert_eq!(ev.port, 80);
    assert_eq!(ev.poll_ms, 100);
    assert!(ev.owners_visible);
    let a = find(&ev, 1);
    assert_eq!(
        (a.first_seen_ms, a.last_seen_ms, a.gone),
        (T0, T0 + 300, false)
    );
    assert!(a.serving);
    assert_eq!(a.group_size, 1, "alone now");
    let b = find(&ev, 2);
    assert_eq!(
        (b.first_seen_ms, b.last_seen_ms, b.gone),
        (T0 + 100, T0 + 200, true)
    );
    assert!(!b.serving);
    assert_eq!(b.group_size, 2, "the size when last seen");
    assert_eq!(b.owners[0].pid, 200);
    assert_eq!(ev.listeners[0].inode, 1, "serving first");
    // Each new inode was looked up once, when it appeared.
    assert_eq!(fake.asked, vec![vec![1], vec![2]]);
}

#[test]
fn long_lived_rejects_same_name_other_cgroup_and_other_name_same_cgroup() {
    let master = owner(100, "nginx", NGINX_CG, 10);
    let worker = child_of(owner(101, "nginx", NGINX_CG, 11), &master);
    let mut fake = Fake::new(&[
        (1, master.clone()),
        (1, worker.clone()),
        (2, owner(300, "nginx", AGENT_CG, 90)),
        (3, owner(400, "python3", NGINX_CG, 95)),
        (4, worker),
    ]);
    let mut t = tracker(ServingRule::LongLived);
    let seen = vec![
        dl("0.0.0.0:80", 1, 0),
        dl("0.0.0.0:80", 2, 0),
        dl("0.0.0.0:80", 3, 0),
        dl("[::]:80", 4, 0),
    ];
    poll(&mut t, &mut fake, T0, seen);
    let ev = t.evidence(&t.ports[0], T0);
    assert_eq!(
        ev.serving,
        "the long-lived owner of port 80: pid 100 nginx in cgroup /system.slice/nginx.service, \
         and its descendants"
    );
    assert_eq!(ev.serving_pid, Some(100));
    assert!(find(&ev, 1).serving);
    assert!(!find(&ev, 2).serving, "nginx -t from another cgroup");
    assert!(!find(&ev, 3).serving, "another program in nginx's cgroup");
    assert!(find(&ev, 4).serving, "a worker of the same service");
    assert_eq!(find(&ev, 1).group_size, 3);
    assert_eq!(find(&ev, 4).group_size, 1, "[::]:80 is another group");
    assert_eq!(find(&ev, 1).owners.len(), 2);
}

#[test]
fn same_name_same_cgroup_serves_only_inside_the_servers_tree() {
    // `docker exec web nginx -t`: the rogue has nginx's name and cgroup but another parent.
    let master = owner(812, "nginx", NGINX_CG, 10);
    let worker = child_of(owner(813, "nginx", NGINX_CG, 11), &master);
    let exec_shim = owner(
        4200,
        "containerd-shim",
        "/system.slice/containerd.service",
        5,
    );
    let rogue = child_of(owner(4242, "nginx", NGINX_CG, 900), &exec_shim);
    // A child of the master of another name opening a listener of its own is not the server.
    let helper = child_of(owner(820, "python3", NGINX_CG, 50), &master);
    for rule in [
        ServingRule::LongLived,
        ServingRule::Process("nginx".into()),
        ServingRule::Unit("nginx.service".into()),
    ] {
        let mut fake = Fake::new(&[
            (1, master.clone()),
            (1, worker.clone()),
            (2, rogue.clone()),
            (3, helper.clone()),
        ]);
        let mut t = tracker(rule.clone());
        let seen = vec![
            dl("0.0.0.0:80", 1, 0),
            dl("0.0.0.0:80", 2, 0),
            dl("0.0.0.0:80", 3, 0),
        ];
        poll(&mut t, &mut fake, T0, seen);
        let ev = t.evidence(&t.ports[0], T0);
        assert!(find(&ev, 1).serving, "{rule:?}");
        assert!(
            !find(&ev, 2).serving,
            "{rule:?}: the rogue is not nginx's child"
        );
        assert!(!find(&ev, 3).serving, "{rule:?}: {}", ev.serving);
        assert_eq!(ev.serving_pid, Some(812), "{rule:?}");
        assert!(ev.serving.contains("pid 812 nginx"), "{}", ev.serving);
    }
}

#[test]
fn a_binary_upgrade_keeps_serving_and_socket_activation_passes_over_init() {
    // nginx's USR2 upgrade: the new master is the old one's child, then the old one quits.
    let old = owner(100, "nginx", NGINX_CG, 10);
    let new = child_of(owner(200, "nginx", NGINX_CG, 500), &old);
    let new_worker = child_of(owner(201, "nginx", NGINX_CG, 501), &new);
    let mut fake = Fake::new(&[(1, old.clone()), (2, new.clone()), (3, new_worker)]);
    let mut t = tracker(ServingRule::LongLived);
    let all = vec![
        dl("0.0.0.0:80", 1, 0),
        dl("0.0.0.0:80", 2, 0),
        dl("0.0.0.0:80", 3, 0),
    ];
    poll(&mut t, &mut fake, T0, all);
    let ev = t.evidence(&t.ports[0], T0);
    assert!(ev.listeners.iter().all(|l| l.serving), "{ev:?}");
    // The old master gone, the new one (reparented to init) is the root.
    let mut fake = Fake::new(&[(2, owner(200, "nginx", NGINX_CG, 500))]);
    poll(
        &mut t,
        &mut fake,
        T0 + 100,
        vec![dl("0.0.0.0:80", 2, 0), dl("0.0.0.0:80", 3, 0)],
    );
    let ev = t.evidence(&t.ports[0], T0 + 100);
    assert_eq!(ev.serving_pid, Some(200));
    assert!(find(&ev, 3).serving, "the new master's worker");

    // systemd holds the socket it passed to nginx: nginx is the root, not init.
    let init = owner(1, "systemd", "/init.scope", 0);
    let master = owner(812, "nginx", NGINX_CG, 10);
    let rogue = owner(4242, "nginx", NGINX_CG, 900);
    let mut fake = Fake::new(&[(1, init), (1, master), (2, rogue)]);
    let mut t = tracker(ServingRule::LongLived);
    poll(
        &mut t,
        &mut fake,
        T0,
        vec![dl("0.0.0.0:80", 1, 0), dl("0.0.0.0:80", 2, 0)],
    );
    let ev = t.evidence(&t.ports[0], T0);
    assert_eq!(ev.serving_pid, Some(812));
    assert!(find(&ev, 1).serving);
    assert!(!find(&ev, 2).serving, "init's descendants are everyone");
}

#[test]
fn long_lived_follows_a_restart_of_the_serving_process() {
    let mut fake = Fake::new(&[
        (1, owner(100, "nginx", NGINX_CG, 10)),
        (2, owner(500, "caddy", "/system.slice/caddy.service", 900)),
    ]);
    let mut t = tracker(ServingRule::LongLived);
    poll(&mut t, &mut fake, T0, vec![dl("0.0.0.0:80", 1, 0)]);
    poll(&mut t, &mut fake, T0 + 100, vec![dl("0.0.0.0:80", 2, 0)]);
    let ev = t.evidence(&t.ports[0], T0 + 100);
    assert!(find(&ev, 2).serving, "the only one left is the server now");
    assert!(
        find(&ev, 1).serving && find(&ev, 1).gone,
        "keeps its last verdict"
    );
    assert!(ev.serving.contains("caddy"), "{}", ev.serving);
}

#[test]
fn unit_and_process_rules() {
    let owners = [
        (1, owner(100, "nginx", NGINX_CG, 10)),
        (2, owner(300, "nginx", AGENT_CG, 90)),
    ];
    let seen = || vec![dl("0.0.0.0:80", 1, 0), dl("0.0.0.0:80", 2, 0)];

    let mut t = tracker(ServingRule::Unit("nginx.service".into()));
    poll(&mut t, &mut Fake::new(&owners), T0, seen());
    let ev = t.evidence(&t.ports[0], T0);
    assert_eq!(
        ev.serving,
        "unit nginx.service: pid 100 nginx in cgroup /system.slice/nginx.service, and its \
         descendants"
    );
    assert!(find(&ev, 1).serving);
    assert!(!find(&ev, 2).serving);

    // The name narrows the choice of the root; another nginx outside its tree is not it.
    let mut t = tracker(ServingRule::Process("nginx".into()));
    poll(&mut t, &mut Fake::new(&owners), T0, seen());
    let ev = t.evidence(&t.ports[0], T0);
    assert!(
        ev.serving.starts_with("process nginx: pid 100 nginx"),
        "{}",
        ev.serving
    );
    assert!(find(&ev, 1).serving);
    assert!(
        !find(&ev, 2).serving,
        "a second nginx, not the running server"
    );

    let mut t = tracker(ServingRule::Process("caddy".into()));
    poll(&mut t, &mut Fake::new(&owners), T0, seen());
    let ev = t.evidence(&t.ports[0], T0);
    assert!(ev.serving_listeners().next().is_none());
    assert_eq!(ev.serving, "process caddy: none of it holds the port");
    assert_eq!(ev.serving_pid, None);
}

#[test]
fn owners_not_found_are_looked_up_again_with_backoff() {
    let mut fake = Fake::new(&[]);
    let mut t = tracker(ServingRule::LongLived);
    for i in 0..10 {
        poll(
            &mut t,
            &mut fake,
            T0 + i * 100,
            vec![dl("0.0.0.0:80", 7, 33)],
        );
    }
    // Polls 1, 2, 4, 8: after a miss the next try is 1, 2, 4... polls later.
    assert_eq!(fake.asked.len(), 4, "{:?}", fake.asked);
    fake.owners.insert(7, vec![owner(9, "nginx", NGINX_CG, 1)]);
    for i in 10..20 {
        poll(
            &mut t,
            &mut fake,
            T0 + i * 100,
            vec![dl("0.0.0.0:80", 7, 33)],
        );
    }
    assert_eq!(
        fake.asked.len(),
        5,
        "found at poll 16, then never asked again"
    );
    let ev = t.evidence(&t.ports[0], T0 + 2000);
    assert_eq!(find(&ev, 7).owners[0].pid, 9);
    assert!(find(&ev, 7).serving);
}

#[test]
fn without_owners_long_lived_falls_back_to_the_uid_of_the_oldest_listener() {
    let mut fake = Fake::new(&[]);
    fake.denied = Some(1);
    let mut t = tracker(ServingRule::LongLived);
    poll(&mut t, &mut fake, T0, vec![dl("0.0.0.0:80", 1, 33)]);
    poll(
        &mut t,
        &mut fake,
        T0 + 100,
        vec![dl("0.0.0.0:80", 1, 33), dl("0.0.0.0:80", 2, 0)],
    );
    poll(
        &mut t,
        &mut fake,
        T0 + 200,
        vec![dl("0.0.0.0:80", 1, 33), dl("0.0.0.0:80", 3, 33)],
    );
    let ev = t.evidence(&t.ports[0], T0 + 200);
    assert!(!ev.owners_visible);
    assert!(t.warned_owners, "said once, in the log");
    assert_eq!(ev.serving, "the long-lived owner of port 80: uid 33");
    assert!(find(&ev, 1).serving);
    assert!(find(&ev, 3).serving, "same uid: cannot tell");
    let b = find(&ev, 2);
    assert!(!b.serving && b.gone && b.owners.is_empty());
}

#[test]
fn with_some_owners_visible_an_unreadable_one_is_judged_by_uid() {
    let mut fake = Fake::new(&[(1, owner(100, "web", "/", 10))]);
    fake.denied = Some(1);
    let mut t = tracker(ServingRule::LongLived);
    let seen = vec![
        dl("0.0.0.0:80", 1, 1000),
        dl("0.0.0.0:80", 2, 1000),
        dl("0.0.0.0:80", 3, 0),
    ];
    poll(&mut t, &mut fake, T0, seen);
    let ev = t.evidence(&t.ports[0], T0);
    assert!(find(&ev, 1).serving);
    assert!(find(&ev, 2).serving);
    assert!(!find(&ev, 3).serving);
    // Visible: an ownerless listener is nobody's.
    fake.denied = None;
    let mut t = tracker(ServingRule::LongLived);
    poll(
        &mut t,
        &mut fake,
        T0,
        vec![dl("0.0.0.0:80", 1, 1000), dl("0.0.0.0:80", 2, 1000)],
    );
    let ev = t.evidence(&t.ports[0], T0);
    assert!(ev.owners_visible);
    assert!(!find(&ev, 2).serving);
}

#[test]
fn history_lasts_ten_minutes_and_is_bounded() {
    let mut fake = Fake::new(&[]);
    let mut t = tracker(ServingRule::LongLived);
    poll(&mut t, &mut fake, T0, vec![dl("0.0.0.0:80", 1, 0)]);
    poll(&mut t, &mut fake, T0 + 100, vec![]);
    let ev = t.evidence(&t.ports[0], T0 + HISTORY_MS);
    assert!(find(&ev, 1).gone);
    let ev = t.evidence(&t.ports[0], T0 + HISTORY_MS + 1);
    assert!(
        ev.listeners.is_empty(),
        "older than ten minutes is not reported"
    );
    poll(&mut t, &mut fake, T0 + HISTORY_MS + 100, vec![]);
    assert!(t.ports[0].gone.is_empty(), "and dropped at the next poll");

    let mut now = T0;
    for inode in 0..(HISTORY_MAX as u64 + 50) {
        now += 100;
        poll(
            &mut t,
            &mut fake,
            now,
            vec![dl("0.0.0.0:80", 1000 + inode, 0)],
        );
    }
    assert!(t.ports[0].gone.len() <= HISTORY_MAX);
    let ev = t.evidence(&t.ports[0], now);
    assert_eq!(ev.listeners.len(), LISTENERS_MAX);
    assert_eq!(
        ev.listeners[0].inode,
        1000 + HISTORY_MAX as u64 + 49,
        "current first"
    );
    assert!(ev.listeners[1].gone);
    assert!(
        ev.listeners[1].last_seen_ms > ev.listeners[2].last_seen_ms,
        "most recent first"
    );
}

#[test]
fn selection_keeps_room_for_other_listeners() {
    let l = |inode: u64, serving: bool, last: i64| Listener {
        inode,
        address: "0.0.0.0:80".parse().unwrap(),
        uid: 0,
        group_size: 1,
        owners: vec![],
        serving,
        first_seen_ms: 0,
        last_seen_ms: last,
        gone: false,
    };
    let mut all: Vec<Listener> = (0..40).map(|i| l(i, true, 5)).collect();
    all.extend((100..110).map(|i| l(i, false, i as i64)));
    let kept = select(all);
    assert_eq!(kept.len(), LISTENERS_MAX);
    assert_eq!(kept.iter().filter(|l| l.serving).count(), 22);
    assert!(kept[..22].iter().all(|l| l.serving));
    assert_eq!(kept[22].inode, 109, "most recent other first");

    let few = select(vec![l(1, false, 1), l(2, true, 1), l(3, false, 2)]);
    let order: Vec<u64> = few.iter().map(|l| l.inode).collect();
    assert_eq!(order, vec![2, 3, 1]);

    let many_others = select((0..50).map(|i| l(i, i == 0, i as i64)).collect());
    assert_eq!(many_others.len(), LISTENERS_MAX);
    assert_eq!(many_others[0].inode, 0);
    assert_eq!(many_others[1].inode, 49);
}

// --- With real sockets, /proc and a poll thread ---

fn inode_of(fd: std::os::fd::RawFd) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    procfs::socket_inode(link.as_os_str()).unwrap()
}

fn reuseport_listener(addr: SocketAddr) -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(16).unwrap();
    s
}

/// Polls `watch` until `cond` holds for the evidence of `port`, for at most 5 s.
async fn wait_until(
    watch: &ListenerWatch,
    port: u16,
    what: &str,
    cond: impl Fn(&ListenerEvidence) -> bool,
) -> ListenerEvidence {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = watch.evidence_after_next_poll(port).await;
        if let Some(ev) = ev
            && cond(&ev)
        {
            return ev;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

const ROGUE: &str = "
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen(8)
print('ready', flush=True)
time.sleep(1)
";

/// The incident in miniature: this test process serves a port with SO_REUSEPORT, a python3
/// child joins the group for a second and exits. Both rules must call the child not serving,
/// see it with its pid, and see it gone after its exit while the server stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_a_rogue_reuseport_listener_come_and_go() {
    let a = reuseport_listener("127.0.0.1:0".parse().unwrap());
    let addr = a.local_addr().unwrap().as_socket().unwrap();
    let port = addr.port();
    let a_inode = inode_of(a.as_raw_fd());
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    let me = me.trim_end().to_owned();

    let poll = Duration::from_millis(50);
    let by_name = start(vec![(port, ServingRule::Process(me.clone()))], poll);
    let by_age = start(vec![(port, ServingRule::LongLived)], poll);
    // As during a check: every `poll`, not at the idle pace.
    let _checks = (by_name.check(), by_age.check());
    for w in [&by_name, &by_age] {
        wait_until(w, port, "the serving listener", |ev| {
            ev.listeners.iter().any(|l| l.inode == a_inode && l.serving)
        })
        .await;
    }

    let before_spawn = crate::now_ms();
    let mut child = Command::new("python3")
        .args(["-c", ROGUE, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let child_pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the child could not bind");

    let rogue_of = |ev: &ListenerEvidence| -> Option<Listener> {
        ev.listeners
            .iter()
            .find(|l| l.owners.iter().any(|o| o.pid == child_pid))
            .cloned()
    };
    for w in [&by_name, &by_age] {
        let ev = wait_until(w, port, "the rogue listener", |ev| rogue_of(ev).is_some()).await;
        if procfs::can_read_other_fds(Path::new("/proc")) {
            assert!(ev.owners_visible, "root or capable here");
        }
        let b = rogue_of(&ev).unwrap();
        assert!(
            !b.serving,
            "{} called the child serving: {ev:#?}",
            ev.serving
        );
        assert!(!b.gone);
        assert_eq!(b.address, addr);
        assert_eq!(b.group_size, 2);
        assert!(b.first_seen_ms >= before_spawn);
        assert!(b.owners[0].name.starts_with("python3"), "{:?}", b.owners);
        assert!(b.owners[0].cmdline.contains("import socket"));
        let a_l = find(&ev, a_inode);
        assert!(a_l.serving && !a_l.gone);
        assert_eq!(a_l.owners[0].pid, std::process::id());
        assert_eq!(a_l.group_size, 2);
    }
    let ev = by_age.evidence(port).unwrap();
    assert!(ev.serving.starts_with(&format!(
        "the long-lived owner of port {port}: pid {} {me}",
        std::process::id()
    )));
    assert!(
        by_name
            .evidence(port)
            .unwrap()
            .serving
            .starts_with(&format!("process {me}: pid {}", std::process::id()))
    );

    let status = child.wait().unwrap();
    let exited_ms = crate::now_ms();
    assert!(status.success());
    for w in [&by_name, &by_age] {
        let ev = w.evidence_after_next_poll(port).await.unwrap();
        let b = rogue_of(&ev).expect("the vanished rogue is kept");
        assert!(b.gone, "{ev:#?}");
        assert!(b.last_seen_ms <= exited_ms);
        assert!(b.last_seen_ms >= b.first_seen_ms);
        assert!(!b.serving);
        assert_eq!(b.group_size, 2);
        let a_l = find(&ev, a_inode);
        assert!(a_l.serving && !a_l.gone);
        assert_eq!(a_l.group_size, 1);
        assert!(a_l.last_seen_ms > b.last_seen_ms);
        assert_eq!(ev.listeners[0].inode, a_inode);
    }
    by_name.stop();
    by_age.stop();
}

/// Between checks the thread looks once per [`IDLE_POLL`]; a check makes it look at once and
/// then every `poll` until the check ends.
#[tokio::test]
async fn polls_at_the_checks_pace_only_while_one_is_in_flight() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let poll = Duration::from_millis(20);
    let watch = start(vec![(port, ServingRule::LongLived)], poll);
    wait_until(&watch, port, "the listener", |ev| !ev.listeners.is_empty()).await;
    // Idle: 1.5 s at 20 ms would be 75 polls; at the idle pace it is one or two.
    let idle_from = watch.polls();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let idle = watch.polls() - idle_from;
    assert!(idle <= 3, "{idle} polls in 1.5 s with no check in flight");
    // A check: polls come at once and keep coming (bounded wait for 10 of them).
    let check = watch.check();
    let from = watch.polls();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while watch.polls() < from + 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "no fast polls during a check"
        );
        tokio::time::sleep(poll).await;
    }
    drop(check);
    watch.stop();
}

/// The property a reset needs: a listener closed just before the call is gone in the result.
#[tokio::test]
async fn evidence_after_next_poll_sees_a_listener_closed_before_the_call() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let inode = inode_of(l.as_raw_fd());
    let watch = start(
        vec![(port, ServingRule::LongLived)],
        Duration::from_millis(20),
    );
    wait_until(&watch, port, "the listener", |ev| !ev.listeners.is_empty()).await;
    for _ in 0..20 {
        let ev = watch.evidence_after_next_poll(port).await.unwrap();
        assert!(!find(&ev, inode).gone);
    }
    drop(l);
    let ev = watch.evidence_after_next_poll(port).await.unwrap();
    let gone = find(&ev, inode);
    assert!(gone.gone, "{ev:#?}");
    assert!(gone.serving);
}

#[tokio::test]
async fn unwatched_ports_and_a_stopped_watch() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let watch = start(
        vec![
            (port, ServingRule::LongLived),
            (port, ServingRule::Process("x".into())),
            (0, ServingRule::LongLived),
        ],
        Duration::from_millis(20),
    );
    assert_eq!(
        watch.inner.ports,
        vec![port],
        "duplicates and port 0 dropped"
    );
    let ev = wait_until(&watch, port, "the listener", |ev| !ev.listeners.is_empty()).await;
    assert!(
        ev.serving.starts_with("the long-lived owner"),
        "the first rule is kept"
    );
    assert_eq!(watch.evidence(port.wrapping_add(1)), None);
    assert_eq!(
        watch.evidence_after_next_poll(port.wrapping_add(1)).await,
        None
    );

    let clone = watch.clone();
    clone.stop();
    assert!(watch.is_stopped());
    assert!(lock(&watch.inner.thread).is_none(), "joined");
    let done = *watch.inner.shared.finished.borrow();
    // Returns at once, with the last evidence.
    assert!(watch.evidence_after_next_poll(port).await.is_some());
    assert_eq!(
        *watch.inner.shared.finished.borrow(),
        done,
        "no poll after stop"
    );
    drop(watch);
    drop(clone);

    let empty = start(vec![], Duration::from_millis(20));
    assert_eq!(empty.evidence_after_next_poll(80).await, None);
}

#[test]
fn dropping_the_last_handle_stops_the_thread() {
    let watch = start(vec![(1, ServingRule::LongLived)], Duration::from_secs(3600));
    let shared = Arc::clone(&watch.inner.shared);
    drop(watch.clone());
    assert!(!*lock(&shared.stopped), "a clone's drop does not stop it");
    drop(watch);
    assert!(*lock(&shared.stopped));
    // The thread held a reference to `shared`; joined, it has let it go.
    assert_eq!(Arc::strong_count(&shared), 1);
}

/// Owners are looked up under the configured proc root (`[host] proc_root`, where a probe in
/// a container sees the host's processes): under one that does not hold our process, the
/// listener is still listed, without owners; under /proc it is ours.
#[tokio::test]
async fn owners_are_looked_up_under_the_proc_root() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let poll = Duration::from_millis(20);
    let elsewhere = tempfile::tempdir().unwrap();
    let real = start(vec![(port, ServingRule::LongLived)], poll);
    let other = ListenerWatch::start(
        vec![(port, ServingRule::LongLived)],
        poll,
        Arc::new(Host::new(elsewhere.path())),
    );
    let _checks = (real.check(), other.check());
    let me = std::process::id();
    wait_until(&real, port, "the listener owned by us", |ev| {
        ev.listeners
            .iter()
            .any(|x| x.owners.iter().any(|o| o.pid == me))
    })
    .await;
    let ev = wait_until(&other, port, "the listener", |ev| !ev.listeners.is_empty()).await;
    assert!(ev.listeners.iter().all(|x| x.owners.is_empty()), "{ev:#?}");
    real.stop();
    other.stop();
}
