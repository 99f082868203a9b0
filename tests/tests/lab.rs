//! The lab itself: hosts reach each other, real nginx and unbound start in them, and nothing
//! is left behind once a lab is dropped.

use std::process::Command;

use anyhow::{Result, ensure};
use causeway_e2e::{Lab, process::run, services};

fn netns_names() -> Result<Vec<String>> {
    let out = run(Command::new("ip").args(["netns", "list"]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn hosts_serve_and_resolve_then_vanish() -> Result<()> {
    let mut lab = Lab::new("lab-selftest")?;
    let web = lab.add_host("web", 2)?;
    let dns = lab.add_host("dns", 53)?;
    let client = lab.add_host("client", 9)?;
    let prefix = web.netns.trim_end_matches("-web").to_owned();

    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    let nginx_pid = nginx.pid().expect("nginx runs");
    lab.adopt(nginx);
    let body = services::http_get(&client, &format!("http://{}/", web.addr))?;
    ensure!(
        body.contains(services::CANARY_TEXT),
        "nginx answered {body:?}"
    );
    // nginx runs in a cgroup of its own, as a systemd unit would.
    let cgroup = std::fs::read_to_string(format!("/proc/{nginx_pid}/cgroup"))?;
    let nginx_cgroup = format!("0::/{prefix}-nginx");
    ensure!(
        cgroup.lines().any(|l| l == nginx_cgroup),
        "nginx's cgroup: {cgroup}"
    );

    // A host behind a router is reached through it, one hop further.
    let router = lab.add_router("router", 254)?;
    let far = lab.add_far_host("far", 2)?;
    lab.route_far_via(&client, &router)?;
    let far_nginx = services::start_nginx(&mut lab, &far, "far-nginx")?;
    lab.adopt(far_nginx);
    let body = services::http_get(&client, &format!("http://{}/", far.addr))?;
    ensure!(
        body.contains(services::CANARY_TEXT),
        "far nginx answered {body:?}"
    );

    let record = format!("canary.lab. 30 IN A {}", web.addr);
    let unbound = services::start_unbound(&lab, &dns, "unbound", &[&record])?;
    let unbound_pid = unbound.pid().expect("unbound runs");
    lab.adopt(unbound);
    // Ask unbound with python's resolver-free socket API: a hand-made query for canary.lab A.
    let answer = run(client.command("python3").args([
        "-c",
        &format!(
            "import socket\n\
             q=bytes.fromhex('1234010000010000000000000663616e617279036c61620000010001')\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)\n\
             s.sendto(q,('{}',53)); r=s.recv(512)\n\
             print('rcode',r[3]&15,'answers',int.from_bytes(r[6:8],'big'),'addr','.'.join(map(str,r[-4:])))",
            dns.addr
        ),
    ]))?;
    ensure!(
        answer.trim() == format!("rcode 0 answers 1 addr {}", web.addr),
        "unbound answered {answer:?}"
    );

    // The machine's own namespace is untouched: no lab address is reachable from it.
    let root_routes = run(Command::new("ip").args(["route", "show"]))?;
    ensure!(
        !root_routes.contains("10.88.0."),
        "the lab leaked a route: {root_routes}"
    );

    ensure!(
        netns_names()?.iter().any(|n| n.starts_with(&prefix)),
        "no lab namespaces"
    );
    drop(lab);
    let left: Vec<String> = netns_names()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    ensure!(left.is_empty(), "namespaces left behind: {left:?}");
    let cgroup_dir = causeway_e2e::lab::cgroup2_root()?.join(format!("{prefix}-nginx"));
    ensure!(
        !cgroup_dir.exists(),
        "cgroup left behind: {}",
        cgroup_dir.display()
    );
    for pid in [nginx_pid, unbound_pid] {
        ensure!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} left behind"
        );
    }
    Ok(())
}
