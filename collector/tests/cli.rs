//! The `causeway-collector` binary's token commands, run as a process: stdout carries only
//! what scripts capture.

use std::process::{Command, Output};

fn collector(db: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_causeway-collector"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn token_add_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");

    let out = collector(&db, &["token", "add", "web-01"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout.strip_suffix('\n').unwrap();
    assert!(!token.contains('\n'), "one line: {stdout:?}");
    assert!(token.starts_with("cw_") && token.len() == 67, "{token}");
    assert!(token[3..].bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert!(
        text(&out.stderr).contains("web-01"),
        "a note for people on stderr"
    );

    let out = collector(&db, &["token", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    assert!(
        list.lines().nth(1).unwrap().starts_with("web-01 "),
        "{list}"
    );
    assert!(
        !list.contains(&token[3..15]),
        "the token itself is never listed: {list}"
    );
    let hash = causeway_collector::tokens::hash(token);
    assert!(list.contains(&hash[..12]), "{list}");

    let out = collector(&db, &["token", "revoke", "web-01"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "revoked 1 token(s) of server \"web-01\"\n"
    );
    let list = text(&collector(&db, &["token", "list"]).stdout);
    assert!(
        !list.lines().nth(1).unwrap().contains("  -  "),
        "revoked: {list}"
    );

    let out = collector(&db, &["token", "revoke", "nobody"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown server \"nobody\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn token_add_refuses_a_bad_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let out = collector(&db, &["token", "add", "web/01"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.contains("invalid server name \"web/01\""), "{err}");
    assert!(
        err.contains("ASCII letters, digits, '.', '-' and '_'"),
        "{err}"
    );
}

/// Several processes opening a new database at once (the service starting while an operator
/// issues tokens) all succeed: the migration runs once, the others find it applied.
#[test]
fn concurrent_first_opens_of_a_new_database_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("causeway.db");
    let mut children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_causeway-collector"))
                .arg("--db")
                .arg(&db)
                .args(["token", "add", &format!("web-{i:02}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // A `serve` starting at the same time must come up too.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_causeway-collector"))
        .arg("--db")
        .arg(&db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for child in children.drain(..) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "token add failed: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).trim().starts_with("cw_"));
    }
    let list = collector(&db, &["token", "list"]);
    assert_eq!(
        text(&list.stdout).lines().count(),
        1 + 8,
        "{}",
        text(&list.stdout)
    );
    // `serve` runs until stopped: it must not have exited with an error meanwhile.
    let early_exit = serve.try_wait().unwrap();
    serve.kill().unwrap();
    let out = serve.wait_with_output().unwrap();
    assert!(early_exit.is_none(), "serve exited: {}", text(&out.stderr));
}

/// A command leaves the database whole in its file: its WAL copied in and emptied, so that a
/// copy of the file alone (a backup, the ingest bench's fleet) holds every token.
#[test]
fn a_command_leaves_no_wal_behind() {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..5 {
        let db = dir.path().join(format!("c{n}.db"));
        let out = collector(&db, &["token", "add", "web-01"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let wal = dir.path().join(format!("c{n}.db-wal"));
        let frames = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(frames, 0, "{} holds {frames} bytes", wal.display());
    }
}

/// `check-config` says what a file holds, or names the key that is wrong (exit 1); `serve`
/// with that file refuses to start with the same line, before opening the database.
#[test]
fn check_config_and_serve_refuse_a_mistake_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "public_url = \"https://causeway.example.net\"\n\
         [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n\
         [[channel]]\nname = \"spare\"\nkind = \"ntfy\"\nurl = \"http://127.0.0.1:9/t\"\n\
         [[rule]]\nname = \"all\"\nchannels = [\"ops\"]\n",
    )
    .unwrap();
    let out = collector(&db, &["check-config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}: ok: 2 channel(s), 1 rule(s); channel \"spare\" is used by no rule\n",
            good.display()
        )
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n\
         [[rule]]\nname = \"all\"\nchannels = [\"opz\"]\n",
    )
    .unwrap();
    let want = "rule \"all\": channels: \"opz\" is not a defined channel; defined: ops";
    let out = collector(&db, &["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    let out = collector(
        &db,
        &[
            "--config",
            bad.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    assert!(!db.exists(), "refused before the database was made");
}
