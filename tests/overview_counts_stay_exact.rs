//! `overview` reads counters kept by triggers instead of counting rows
//! (migration 0009). Guards against a counter that drifts from the table it
//! counts: after every kind of write, delete, import, bundle import, purge,
//! thread delete, rolled-back failure and crash, each count must equal a
//! `count(*)` over the rows themselves.

mod common;
use common::TestProfile;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The overview's counts, next to what `count(*)` says of the same rows.
fn assert_exact(profile: &Profile, step: &str) {
    let o = common::call(profile, "overview", json!({})).unwrap();
    let conn = Connection::open(profile.dir().join("hydra.sqlite3")).unwrap();
    let one = |sql: &str| -> Value {
        let n: Option<i64> = conn.query_row(sql, [], |r| r.get(0)).unwrap();
        json!(n)
    };
    let grouped = |sql: &str| -> BTreeMap<String, i64> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let nonzero = |v: &Value| -> BTreeMap<String, i64> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_i64().unwrap()))
            .filter(|(_, n)| *n != 0)
            .collect()
    };
    let checks = [
        (
            "tabs",
            &o["browser"]["tabs"]["total"],
            one("SELECT count(*) FROM tabs"),
        ),
        (
            "tabs.linked",
            &o["browser"]["tabs"]["linked"],
            one("SELECT count(*) FROM tabs WHERE thread_id IS NOT NULL"),
        ),
        (
            "history",
            &o["browser"]["history"]["entries"],
            one("SELECT count(*) FROM history"),
        ),
        (
            "last_visit_at",
            &o["browser"]["history"]["last_visit_at"],
            one("SELECT max(visited_at) FROM history"),
        ),
        (
            "bookmarks",
            &o["browser"]["bookmarks"]["total"],
            one("SELECT count(*) FROM bookmarks"),
        ),
        (
            "threads",
            &o["llm"]["threads"]["total"],
            one("SELECT count(*) FROM llm_threads"),
        ),
        (
            "messages",
            &o["llm"]["messages"]["total"],
            one("SELECT count(*) FROM llm_messages"),
        ),
        (
            "memories",
            &o["llm"]["memories"]["total"],
            one("SELECT count(*) FROM memories"),
        ),
        (
            "tasks",
            &o["tasks"]["total"],
            one("SELECT count(*) FROM tasks"),
        ),
        (
            "jobs",
            &o["jobs"]["total"],
            one("SELECT count(*) FROM jobs"),
        ),
    ];
    for (name, shown, counted) in checks {
        assert_eq!(shown, &counted, "{name} after {step}");
    }
    assert_eq!(
        nonzero(&o["tasks"]["by_status"]),
        grouped("SELECT status, count(*) FROM tasks GROUP BY status"),
        "tasks by status after {step}"
    );
    assert_eq!(
        nonzero(&o["jobs"]["by_status"]),
        grouped("SELECT status, count(*) FROM jobs GROUP BY status"),
        "jobs by status after {step}"
    );
    assert_eq!(
        nonzero(&o["jobs"]["by_type"]),
        grouped("SELECT type, count(*) FROM jobs GROUP BY type"),
        "jobs by type after {step}"
    );
    // Every status of the contract is listed, 0 included.
    assert_eq!(o["tasks"]["by_status"].as_object().unwrap().len(), 6);
    assert_eq!(o["jobs"]["by_status"].as_object().unwrap().len(), 5);
}

/// A Chrome `History` file holding `n` visits of distinct pages.
/// Inserts messages `m1`..`m5000` of thread `th` in raw SQL (one fold of
/// the counter), then runs `then`, in one transaction.
fn insert_messages(p: &Profile, then: &str) {
    p.db()
        .write(|tx| {
            tx.execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
                 INSERT INTO llm_messages (id, id_key, thread_id, role, content, created_at)
                 SELECT 'm' || i, hydra_id_key('m' || i), 'th', 'user', 'text', i FROM n;
                 {then}"
            ))?;
            Ok(())
        })
        .unwrap();
}

fn chrome_history(dir: &Path, n: i64) -> std::path::PathBuf {
    let path = dir.join("History");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE urls (id INTEGER PRIMARY KEY, url LONGVARCHAR, title LONGVARCHAR,
             visit_count INTEGER DEFAULT 0 NOT NULL, typed_count INTEGER DEFAULT 0 NOT NULL,
             last_visit_time INTEGER NOT NULL DEFAULT 0, hidden INTEGER DEFAULT 0 NOT NULL);
         CREATE TABLE visits (id INTEGER PRIMARY KEY, url INTEGER NOT NULL,
             visit_time INTEGER NOT NULL, from_visit INTEGER, transition INTEGER DEFAULT 0 NOT NULL,
             segment_id INTEGER, visit_duration INTEGER DEFAULT 0 NOT NULL);",
    )
    .unwrap();
    for i in 0..n {
        conn.execute(
            "INSERT INTO urls (id, url, title) VALUES (?1, ?2, 'imported')",
            rusqlite::params![i + 1, format!("https://imported.example/{i}")],
        )
        .unwrap();
        // Microseconds since 1601.
        let at = (1_700_000_000_000 + i) * 1000 + 11_644_473_600_000_000;
        conn.execute(
            "INSERT INTO visits (url, visit_time) VALUES (?1, ?2)",
            rusqlite::params![i + 1, at],
        )
        .unwrap();
    }
    path
}

#[test]
fn counts_equal_count_star_after_every_write_path() {
    let t = TestProfile::new();
    let p = &t.profile;
    assert_exact(p, "open");

    // Ordinary writes.
    for th in ["a", "b"] {
        t.ok("threads.create", json!({"id": th}));
        for i in 0..3 {
            t.ok(
                "messages.append",
                json!({"thread_id": th, "role": "user", "content": format!("m{i}")}),
            );
        }
    }
    t.ok(
        "chat",
        json!({"thread_id": "a", "message": "hello", "reply": "hi", "tab_id": "tab-chat"}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "m1", "value": "v", "scope": "global"}),
    );
    t.ok(
        "memory.upsert",
        json!({"value": "tied", "scope": "thread", "scope_ref": "b", "thread_id": "b"}),
    );
    t.ok(
        "tasks.create",
        json!({"id": "k1", "title": "x", "thread_id": "b"}),
    );
    t.ok(
        "tasks.create",
        json!({"id": "k2", "title": "y", "status": "blocked"}),
    );
    t.ok("tasks.update", json!({"id": "k2", "status": "completed"}));
    t.ok("tasks.update", json!({"id": "k2", "status": "completed"}));
    for i in 0..5 {
        t.ok(
            "visits.record",
            json!({"url": format!("https://v{i}.example/"), "visited_at": 100 + i, "tab_id": "t1"}),
        );
    }
    t.ok(
        "visits.record_batch",
        json!({"visits": [{"url": "https://batch.example/", "visited_at": 7},
                          {"url": "https://batch.example/", "visited_at": 7},
                          {"url": "https://batch.example/2", "visited_at": 8}]}),
    );
    t.ok("tabs.upsert", json!({"id": "t2", "thread_id": "a"}));
    t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "t1", "thread_id": "b"}),
    );
    t.ok("tabs.unbind_thread", json!({"tab_id": "t2"}));
    t.ok("tabs.bind_thread", json!({"tab_id": "t3"}));
    let folder = t.ok("bookmarks.create_folder", json!({"name": "f"}))["folder"]["id"].clone();
    t.ok(
        "bookmarks.add",
        json!({"url": "https://bm.example/", "folder_id": folder}),
    );
    t.ok("bookmarks.add", json!({"url": "https://bm2.example/"}));
    assert_exact(p, "ordinary writes");

    // Failed writes change nothing, counters included.
    t.err(
        "messages.append",
        json!({"thread_id": "nope", "role": "user", "content": "x"}),
        "not_found",
    );
    t.err(
        "visits.record_batch",
        json!({"visits": [{"url": "https://ok.example/"}, {"url": "not a url"}]}),
        "invalid_argument",
    );
    assert_exact(p, "failed writes");

    // Jobs: an export and a history import (both through the job ledger).
    let bundle = t.ok("bundle.export", json!({"wait": true}))["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let src = tempfile::tempdir().unwrap();
    let history = chrome_history(src.path(), 30);
    t.ok(
        "history.import",
        json!({"browser": "chrome", "path": history, "wait": true}),
    );
    assert_exact(p, "export and history import");

    // Deletes of every kind.
    t.ok("bookmarks.delete_folder", json!({"id": folder}));
    t.ok("tabs.close", json!({"id": "t3"}));
    t.ok("tasks.delete", json!({"id": "k2"}));
    t.ok("memory.delete", json!({"id": "m1"}));
    let first =
        t.ok("messages.list", json!({"thread_id": "a", "limit": 1}))["items"][0]["id"].clone();
    t.ok("messages.delete", json!({"id": first}));
    let visit = t.ok("history.list", json!({"limit": 1}))["items"][0]["id"].clone();
    t.ok("history.delete", json!({"id": visit}));
    t.ok("history.purge", json!({"host": "imported.example"}));
    t.ok("threads.delete", json!({"id": "b"}));
    assert_exact(p, "deletes");

    // A bundle import into this profile (some records exist, some are back)
    // and a dry run (counts nothing).
    t.ok(
        "bundle.import",
        json!({"path": bundle, "wait": true, "dry_run": true}),
    );
    assert_exact(p, "bundle dry run");
    t.ok("bundle.import", json!({"path": bundle, "wait": true}));
    assert_exact(p, "bundle import");
    t.ok(
        "bundle.import",
        json!({"path": bundle, "wait": true, "policy": "skip_existing"}),
    );
    assert_exact(p, "bundle re-import");

    // Job pruning deletes ledger rows.
    t.ok("jobs.prune", json!({"older_than_days": 0}));
    assert_exact(p, "jobs.prune");

    t.ok("history.purge", json!({"all": true}));
    assert_exact(p, "purge all");
}

/// Run in a child process by the test below: writes counted rows inside a
/// transaction large enough to spill pages into the WAL, then dies before
/// committing. Does nothing when run as an ordinary test.
#[test]
fn crash_helper_dies_inside_a_transaction() {
    let Ok(db) = std::env::var("HYDRA_COUNTS_CRASH_DB") else {
        return;
    };
    let conn = Connection::open(db).unwrap();
    hydra_core::db::id_key::register(&conn).unwrap();
    conn.execute_batch(
        "PRAGMA cache_size = 10;
         BEGIN IMMEDIATE;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
         INSERT INTO llm_messages (id, id_key, thread_id, role, content, created_at)
             SELECT 'lost-' || i, hydra_id_key('lost-' || i), 'th', 'user', 'never committed', i FROM n;
         INSERT INTO history (url, host, rev_host, visited_at)
             VALUES ('https://lost.example/', 'lost.example', 'elpmaxe.tsol.', 1);",
    )
    .unwrap();
    std::process::abort();
}

#[test]
fn counts_are_exact_after_a_crash_mid_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    common::call(&profile, "threads.create", json!({"id": "th"})).unwrap();
    common::call(
        &profile,
        "messages.append",
        json!({"thread_id": "th", "role": "user", "content": "kept"}),
    )
    .unwrap();
    profile.close(CloseOptions::default()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_helper_dies_inside_a_transaction",
            "--nocapture",
        ])
        .env("HYDRA_COUNTS_CRASH_DB", dir.path().join("hydra.sqlite3"))
        .status()
        .unwrap();
    assert!(!status.success(), "the helper must die, not finish");
    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    assert_exact(&profile, "a crash inside a transaction");
    let o = common::call(&profile, "overview", json!({})).unwrap();
    assert_eq!(o["llm"]["messages"]["total"], 1);
    assert_eq!(o["browser"]["history"]["entries"], 0);
    profile.close(CloseOptions::default()).unwrap();
}

#[test]
fn counts_survive_tail_folds_and_reused_keys() {
    // `history` and `llm_messages` count up to a mark moved every 4096
    // rows; a key freed at the top is reused by the next insert, below the
    // mark. Both must stay exact.
    let t = TestProfile::new();
    let p = &t.profile;
    t.ok("threads.create", json!({"id": "th"}));
    insert_messages(p, "");
    let visits: Vec<Value> = (0..5000)
        .map(|i| json!({"url": format!("https://fold.example/{i}"), "visited_at": 1000 + i}))
        .collect();
    t.ok("visits.record_batch", json!({ "visits": visits }));
    assert_exact(p, "5000 rows each (one fold)");

    // Free the top keys, down below the mark, then insert again.
    t.ok(
        "history.purge",
        json!({"from": 1000 + 4090, "to": 1000 + 4999}),
    );
    for i in 4090..5000 {
        t.ok("messages.delete", json!({"id": format!("m{}", i + 1)}));
    }
    assert_exact(p, "deletes across the mark");
    for i in 0..3 {
        t.ok(
            "messages.append",
            json!({"thread_id": "th", "role": "user", "content": "again"}),
        );
        t.ok(
            "visits.record",
            json!({"url": format!("https://again.example/{i}"), "visited_at": 9 + i}),
        );
    }
    assert_exact(p, "reused keys below the mark");
    let o = t.ok("overview", json!({}));
    assert_eq!(o["llm"]["messages"]["total"], 4093);
    assert_eq!(o["browser"]["history"]["entries"], 4093);

    t.ok("threads.delete", json!({"id": "th"}));
    t.ok("history.purge", json!({"all": true}));
    assert_exact(p, "everything deleted");
}

/// The rows above the message counter's mark, which `overview` counts on
/// every call (a fold keeps them under 4096).
fn message_tail(profile: &Profile) -> i64 {
    let conn = Connection::open(profile.dir().join("hydra.sqlite3")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM llm_messages
         WHERE seq > (SELECT upto FROM row_counts WHERE name = 'llm_messages')",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// `bundle` with one message record's role changed to one the contract
/// refuses, its checksum recomputed (a well-formed bundle that fails on
/// import, after thousands of messages were written).
fn with_bad_message(bundle: &Path, at: usize) -> std::path::PathBuf {
    let text = std::fs::read_to_string(bundle).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut seen = 0;
    for line in lines.iter_mut().skip(1) {
        if line.starts_with(r#"{"c":"messages""#) {
            seen += 1;
            if seen == at {
                *line = line.replace(r#""role":"user""#, r#""role":"robot""#);
            }
        }
    }
    common::reseal_component(&mut lines, "messages");
    let path = bundle.with_extension("bad.hydra");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The import skips the role check of `llm_messages` and the status check
/// of `tasks` while it writes their records (their types guarantee them):
/// afterwards the writer enforces both again.
fn assert_checks_enforced(profile: &Profile, step: &str) {
    for sql in [
        "INSERT INTO llm_messages (id, id_key, thread_id, role, content, created_at)
         VALUES ('robot', hydra_id_key('robot'), 'th', 'robot', 'text', 1)",
        "INSERT INTO tasks (id, title, status, created_at, updated_at)
         VALUES ('robot', 'Task', 'dreaming', 1, 1)",
    ] {
        let refused = profile.db().write(|tx| {
            tx.execute(sql, [])?;
            Ok(())
        });
        let message = format!("{:?}", refused.expect_err(step));
        assert!(message.contains("CHECK"), "{step}: {message}");
    }
}

#[test]
fn a_bundle_import_counts_its_messages_exactly() {
    // `bundle.import` writes messages without the per-row counter trigger
    // and counts them in once, in its transaction: exact across the mark,
    // with a key reused below it, after a dry run and a failed import, and
    // the writer's triggers are back on afterwards.
    let source = TestProfile::new();
    source.ok("threads.create", json!({"id": "th"}));
    source
        .profile
        .db()
        .write(|tx| {
            tx.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
                 INSERT INTO llm_messages (id, id_key, thread_id, role, content, created_at)
                 SELECT 'b' || i, hydra_id_key('b' || i), 'th', 'user', 'text', i FROM n;",
            )?;
            Ok(())
        })
        .unwrap();
    source.ok(
        "tasks.create",
        json!({"thread_id": "th", "title": "Plan", "status": "blocked"}),
    );
    let bundle = source.dir.path().join("messages.hydra");
    source.ok(
        "bundle.export",
        json!({"components": ["threads", "messages", "tasks"], "path": bundle, "wait": true}),
    );

    let t = TestProfile::new();
    let p = &t.profile;
    t.ok("threads.create", json!({"id": "th"}));
    // 5000 rows fold the counter at 4096; dropping the keys from 4096 up
    // leaves the next key (4096) at the mark.
    insert_messages(p, "DELETE FROM llm_messages WHERE seq >= 4096;");
    assert_exact(p, "before the import");

    t.ok(
        "bundle.import",
        json!({"path": bundle, "wait": true, "dry_run": true}),
    );
    assert_exact(p, "bundle dry run");
    assert_checks_enforced(p, "bundle dry run");
    let bad = with_bad_message(&bundle, 5000);
    t.err(
        "bundle.import",
        json!({"path": bad, "wait": true}),
        "invalid_argument",
    );
    assert_exact(p, "failed bundle import");
    assert_checks_enforced(p, "failed bundle import");

    let out = t.ok("bundle.import", json!({"path": bundle, "wait": true}));
    assert_eq!(out["imported"]["messages"]["inserted"], 6000);
    assert_exact(p, "bundle import");
    assert_checks_enforced(p, "bundle import");
    let o = t.ok("overview", json!({}));
    assert_eq!(o["llm"]["messages"]["total"], 4095 + 6000);
    assert_eq!(message_tail(p), 0, "the import folds its rows in");

    // The writer's triggers count ordinary writes again.
    t.ok(
        "messages.append",
        json!({"thread_id": "th", "role": "user", "content": "after"}),
    );
    t.ok("bundle.import", json!({"path": bundle, "wait": true}));
    assert_exact(p, "append and re-import after the import");
    t.ok("threads.delete", json!({"id": "th"}));
    assert_exact(p, "everything deleted");
}
