//! The whole cycle on recorded operating-system inputs ([`crate::os::recorded`]), as any user
//! can run it (no root, no namespaces): the seed incident of this product, a config test of
//! nginx run inside nginx's own container (same name, same cgroup, not in the serving tree)
//! that took a connection and reset it on exit, while a memory cgroup elsewhere on the host
//! hit its limit.

use std::net::SocketAddr;

use causeway_schema::{Cause, FailureKind, PacketTrace};

use super::tests::{FakeDns, config};
use super::*;
use crate::checks::Check;
use crate::checks::http::{Fetch, HttpOutcome};
use crate::os::recorded::{self, Recorded};

const PORT: u16 = 80;
const SERVING: u64 = 1001;
const ROGUE: u64 = 2002;

/// The recorded trace of the reset (SYN, handshake, a 78-byte request, RST 1.5 s later).
fn recorded_trace() -> PacketTrace {
    let scenario: toml::Value = toml::from_str(include_str!(
        "../../../schema/tests/scenarios/rst-same-name-same-cgroup.toml"
    ))
    .unwrap();
    scenario["check"]["evidence"]["trace"]
        .clone()
        .try_into()
        .unwrap()
}

/// The host: web at 10.88.0.2 on eth0, nginx's master 812 (parent: the container shim 790)
/// with worker 813 on one socket, and `nginx -t` pid 4242 (also a child of the shim, started
/// last) on another socket of the same port, both in cgroup /docker/web.
fn host() -> Arc<Recorded> {
    let mut os = Recorded::new(100_000);
    os.interfaces
        .push(recorded::interface("eth0", 2, &["10.88.0.2/24"]));
    let web = "/docker/web";
    os.process(
        790,
        1,
        "containerd-shim",
        "containerd-shim -id web",
        "/",
        50,
        &[],
    );
    let master = "nginx: master process nginx -g daemon off;";
    os.process(812, 790, "nginx", master, web, 100, &[SERVING]);
    os.process(
        813,
        812,
        "nginx",
        "nginx: worker process",
        web,
        101,
        &[SERVING],
    );
    os.process(4242, 790, "nginx", "nginx -t", web, 9_000_000, &[ROGUE]);
    let os = Arc::new(os);
    os.listen(PORT, both());
    os
}

fn both() -> Vec<crate::host::sock_diag::DiagListener> {
    vec![
        recorded::listener("10.88.0.2:80", SERVING, 0),
        recorded::listener("10.88.0.2:80", ROGUE, 0),
    ]
}

/// The request: once the listener watch has looked at the port for this check, the
/// connection is reset as recorded and the config test exits (its socket goes).
struct ResetByTheConfigTest {
    os: Arc<Recorded>,
    watch: std::sync::OnceLock<ListenerWatch>,
}

impl Check<Fetch> for ResetByTheConfigTest {
    type Outcome = HttpOutcome;

    fn run(
        &self,
        target: Fetch,
        _: tokio::time::Instant,
    ) -> impl Future<Output = HttpOutcome> + Send {
        let remote = SocketAddr::new(target.address, target.canary.target.port);
        async move {
            let watch = self.watch.get().expect("the watch is set before the cycle");
            // The cycle holds a check on the port for a request to this host's address, so
            // the watch looks at it now, not at its idle pace (10 s).
            let asked_ms = now_ms();
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            let seen_since = |ms| {
                let ev = watch.evidence(PORT)?;
                ev.listeners
                    .iter()
                    .any(|l| l.inode == ROGUE && l.last_seen_ms >= ms)
                    .then_some(ev)
            };
            let seen = loop {
                if let Some(seen) = seen_since(asked_ms) {
                    break seen;
                }
                assert!(
                    Instant::now() < deadline,
                    "the watch did not look during the check: {:#?}",
                    watch.evidence(PORT)
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            };
            assert_eq!(seen.listeners.len(), 2, "{seen:#?}");
            let mut trace = recorded_trace();
            trace.started_at_ms = now_ms();
            self.os.listen(PORT, both().into_iter().take(1).collect());
            HttpOutcome {
                local: Some(trace.local),
                remote,
                status: None,
                connect_ms: Some(0.1),
                tls_ms: None,
                first_byte_ms: None,
                total_ms: 1502.0,
                failure: Some(causeway_schema::Failure {
                    kind: FailureKind::Reset,
                    message: "Connection reset by peer (os error 104)".into(),
                }),
                evidence: Evidence {
                    trace: Some(trace),
                    ..Evidence::default()
                },
            }
        }
    }
}

#[tokio::test]
async fn a_config_test_in_the_servers_own_cgroup_is_named_from_recorded_inputs() {
    let os = host();
    let state = tempfile::tempdir().unwrap();
    let canaries = format!(
        "state_dir = \"{}\"\nlistener_poll = \"20ms\"\n\n\
         [[canary]]\nname = \"site\"\nurl = \"http://10.88.0.2/\"\n",
        state.path().display()
    );
    let http = ResetByTheConfigTest {
        os: Arc::clone(&os),
        watch: Default::default(),
    };
    let prober = Prober::new(config(r#"["system"]"#, &canaries), FakeDns::default(), http)
        .watching(os.clone());
    let watch = prober.listeners.clone().unwrap();
    prober.http.watch.set(watch).ok().unwrap();

    // A memory cgroup elsewhere hit its limit 2 s ago (the host is up 100,000 s).
    let usec = (100_000 - 2) * 1_000_000u64;
    os.kernel_record(&format!(
        "3,525,{usec},-;Memory cgroup out of memory: Killed process 16660 (python3) \
         total-vm:218756kB, anon-rss:30464kB, file-rss:5344kB, shmem-rss:0kB, UID:0 \
         pgtables:128kB oom_score_adj:0"
    ));
    let host = prober.host.as_ref().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while host.observe(now_ms()).oom_kills.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the recorded kill was never read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let report = prober.cycle().await;
    let check = &report.results[0];
    let diagnosis = check.diagnosis.as_ref().unwrap();
    assert_eq!(
        diagnosis.cause,
        Cause::RstFromNonServingProcess,
        "{diagnosis:#?}"
    );
    for part in [
        "pid 4242 (nginx -t",
        "neither pid 812 nor one of its descendants",
    ] {
        assert!(
            diagnosis.explanation.contains(part),
            "{part}: {diagnosis:#?}"
        );
    }
    // The kill in another cgroup is shown as the host's context, not counted as a cause.
    let kills = &check.evidence.host.as_ref().unwrap().oom_kills;
    assert_eq!(kills.iter().map(|k| k.pid).collect::<Vec<_>>(), [16660]);
    assert!(
        !diagnosis.contributing.contains(&Cause::OomKill),
        "{diagnosis:#?}"
    );
    // Owners came from the recorded /proc, the serving tree from its parents.
    let listeners = check.evidence.listeners.as_ref().unwrap();
    assert_eq!(listeners.serving_pid, Some(812), "{listeners:#?}");
    let rogue = listeners
        .listeners
        .iter()
        .find(|l| l.inode == ROGUE)
        .unwrap();
    assert!(rogue.gone && !rogue.serving, "{rogue:#?}");
}
