//! Opening never damages a database it must not adopt, and old profiles
//! migrate to exactly the schema a new profile gets. Guards against a newer
//! profile being "upgraded" by an older library, a foreign or broken file
//! being overwritten, and migrations drifting from the fresh schema.

use hydra_core::{CloseOptions, OpenOptions, Profile};
use rusqlite::Connection;

fn open_code(dir: &std::path::Path) -> String {
    match Profile::open(OpenOptions::new(dir)) {
        Ok(p) => {
            p.close(CloseOptions::default()).unwrap();
            "ok".into()
        }
        Err(e) => e.code().as_str().into(),
    }
}

fn schema(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// The schema of a profile created by this version.
fn fresh_schema() -> Vec<(String, String)> {
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(open_code(fresh.path()), "ok");
    schema(&fresh.path().join("hydra.sqlite3"))
}

/// A profile directory whose database an older release built: the
/// `migrations` it ran, then `data` (which sets its `user_version`).
fn old_profile(migrations: &[&str], data: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let old = tempfile::tempdir().unwrap();
    let db = old.path().join("hydra.sqlite3");
    let conn = Connection::open(&db).unwrap();
    for sql in migrations {
        conn.execute_batch(sql).unwrap();
    }
    conn.execute_batch(data).unwrap();
    (old, db)
}

#[test]
fn newer_schema_is_refused_and_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    Profile::open(OpenOptions::new(dir.path()))
        .unwrap()
        .close(CloseOptions::default())
        .unwrap();
    let db = dir.path().join("hydra.sqlite3");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA user_version = 9999; PRAGMA journal_mode = DELETE;")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    assert_eq!(open_code(dir.path()), "incompatible_version");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hydra.sqlite3");
    let junk: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&db, &junk).unwrap();
    assert_eq!(open_code(dir.path()), "corrupt");
    assert_eq!(std::fs::read(&db).unwrap(), junk);
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hydra.sqlite3");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA application_id = 42; CREATE TABLE t (x);")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    assert_eq!(open_code(dir.path()), "corrupt");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_version_one_profile_migrates_to_the_fresh_schema() {
    // Freeze a profile at schema version 1, as the first release wrote it.
    let old = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(old.path().join("hydra.sqlite3")).unwrap();
        conn.execute_batch(include_str!("../src/db/migrations/0001_profile.sql"))
            .unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
    }
    assert_eq!(open_code(old.path()), "ok");
    assert_eq!(schema(&old.path().join("hydra.sqlite3")), fresh_schema());
    let conn = Connection::open(old.path().join("hydra.sqlite3")).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, hydra_core::db::LATEST_SCHEMA_VERSION);
}

#[test]
fn profile_dir_is_created_with_parents() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    assert_eq!(open_code(&nested), "ok");
    assert!(nested.join("hydra.sqlite3").is_file());
}

#[test]
fn a_version_seven_profile_with_data_gains_exact_counts_and_loses_the_message_index() {
    // Freeze a profile at schema 7 (before migration 0009) holding rows of
    // every counted table, as a user's profile would.
    let (old, db) = old_profile(
        &[
            include_str!("../src/db/migrations/0001_profile.sql"),
            include_str!("../src/db/migrations/0002_tabs.sql"),
            include_str!("../src/db/migrations/0003_threads.sql"),
            include_str!("../src/db/migrations/0004_jobs.sql"),
            include_str!("../src/db/migrations/0005_hydraflow.sql"),
            include_str!("../src/db/migrations/0006_browser.sql"),
            include_str!("../src/db/migrations/0007_repo.sql"),
        ],
        "PRAGMA user_version = 7;
             INSERT INTO llm_threads (id, created_at, updated_at) VALUES ('th', 1, 1), ('t2', 1, 1);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO llm_messages (id, thread_id, role, content, created_at)
                 SELECT 'm' || i, 'th', 'user', 'old words ' || i, i FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
             INSERT INTO history (url, host, rev_host, title, visited_at)
                 SELECT 'https://old.example/' || i, 'old.example', 'elpmaxe.dlo.', 'Old', i FROM n;
             INSERT INTO tasks (id, title, status, created_at, updated_at)
                 VALUES ('k1', 'a', 'pending', 1, 1), ('k2', 'b', 'blocked', 1, 1);
             INSERT INTO jobs (id, type, status, payload, created_at, updated_at)
                 VALUES ('j1', 'bundle_export', 'succeeded', '{}', 1, 1);
             INSERT INTO tabs (id, thread_id, created_at, updated_at)
                 VALUES ('tab1', 'th', 1, 1), ('tab2', NULL, 1, 1);
             INSERT INTO memories (id, scope, value, strength, created_at, updated_at)
                 VALUES ('mem', 'global', 'kept words', 1, 1, 1);",
    );
    let profile = Profile::open(OpenOptions::new(old.path())).unwrap();
    let o = serde_json::from_str::<serde_json::Value>(
        &hydra_core::ops::call_json(&profile, "overview", b"{}").unwrap(),
    )
    .unwrap();
    assert_eq!(o["llm"]["messages"]["total"], 5000);
    assert_eq!(o["llm"]["threads"]["total"], 2);
    assert_eq!(o["llm"]["memories"]["total"], 1);
    assert_eq!(o["browser"]["history"]["entries"], 300);
    assert_eq!(o["browser"]["history"]["last_visit_at"], 300);
    assert_eq!(
        o["browser"]["tabs"],
        serde_json::json!({"total": 2, "linked": 1})
    );
    assert_eq!(o["tasks"]["by_status"]["blocked"], 1);
    assert_eq!(
        o["jobs"]["by_type"],
        serde_json::json!({"bundle_export": 1})
    );
    // Counting goes on from the migrated state.
    hydra_core::ops::call_json(
        &profile,
        "messages.append",
        br#"{"thread_id": "t2", "role": "user", "content": "new"}"#,
    )
    .unwrap();
    let o = serde_json::from_str::<serde_json::Value>(
        &hydra_core::ops::call_json(&profile, "overview", b"{}").unwrap(),
    )
    .unwrap();
    assert_eq!(o["llm"]["messages"]["total"], 5001);
    profile.close(CloseOptions::default()).unwrap();

    let conn = Connection::open(&db).unwrap();
    let message_index: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'llm_messages_fts%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(message_index, 0);
    drop(conn);
    assert_eq!(schema(&db), fresh_schema());
}

/// Migrations 0001-0013, frozen as those files are: the first `n` build a
/// profile of schema `n`. Schema 7 is the last release before the history
/// text index left the database, 11 the last with a single `history`
/// table, 13 the last with a UNIQUE index on the message id.
const FROZEN_MIGRATIONS: [&str; 13] = [
    include_str!("../src/db/migrations/0001_profile.sql"),
    include_str!("../src/db/migrations/0002_tabs.sql"),
    include_str!("../src/db/migrations/0003_threads.sql"),
    include_str!("../src/db/migrations/0004_jobs.sql"),
    include_str!("../src/db/migrations/0005_hydraflow.sql"),
    include_str!("../src/db/migrations/0006_browser.sql"),
    include_str!("../src/db/migrations/0007_repo.sql"),
    include_str!("../src/db/migrations/0008_history_scale.sql"),
    include_str!("../src/db/migrations/0009_hydraflow_scale.sql"),
    include_str!("../src/db/migrations/0010_knowledge.sql"),
    include_str!("../src/db/migrations/0011_job_error_details.sql"),
    include_str!("../src/db/migrations/0012_history_places.sql"),
    include_str!("../src/db/migrations/0013_chunk_vectors_bump.sql"),
];

fn table_rows(path: &std::path::Path, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

#[test]
fn a_version_seven_profile_with_history_upgrades_to_the_fresh_schema_with_its_data() {
    let (old, db) = old_profile(
        &FROZEN_MIGRATIONS[..7],
        "PRAGMA user_version = 7;
             INSERT INTO tabs (id, current_history_id, current_url, current_title,
                               last_visited_at, created_at, updated_at)
             VALUES ('tab-1', 2, 'https://b.example/page', 'Bêta Page', 20, 1, 20);
             INSERT INTO history (url, host, rev_host, title, visited_at, tab_id)
             VALUES ('https://a.example/', 'a.example', 'elpmaxe.a.', 'Alpha', 10, NULL),
                    ('https://b.example/page', 'b.example', 'elpmaxe.b.', 'Bêta Page', 20, 'tab-1'),
                    ('https://c.example/x', 'c.example', 'elpmaxe.c.', NULL, 30, NULL);
             INSERT INTO bookmarks (url, title, created_at, updated_at)
             VALUES ('https://a.example/', 'Alpha mark', 5, 5);",
    );
    {
        let conn = Connection::open(&db).unwrap();
        let fts: i64 = conn
            .query_row(
                "SELECT count(*) FROM history_fts WHERE history_fts MATCH 'page'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(fts, 1, "the frozen fixture has the old trigram index");
    }
    let history_before = table_rows(&db, "SELECT * FROM history ORDER BY id");
    let tabs_before = table_rows(&db, "SELECT * FROM tabs ORDER BY id");

    let profile = Profile::open(OpenOptions::new(old.path())).unwrap();
    let found = hydra_core::browser::history::list(
        &profile,
        serde_json::from_value(serde_json::json!({"query": "BÊTA"})).unwrap(),
    )
    .unwrap();
    assert_eq!(
        found.items.iter().map(|v| v.id).collect::<Vec<_>>(),
        vec![2]
    );
    profile.close(CloseOptions::default()).unwrap();

    assert_eq!(schema(&db), fresh_schema());
    assert!(!schema(&db)
        .iter()
        .any(|(name, _)| name.starts_with("history_fts")));
    assert_eq!(
        table_rows(&db, "SELECT * FROM history ORDER BY id"),
        history_before
    );
    assert_eq!(
        table_rows(&db, "SELECT * FROM tabs ORDER BY id"),
        tabs_before
    );
    let version: u32 = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, hydra_core::db::LATEST_SCHEMA_VERSION);
}

fn call(profile: &Profile, op: &str, req: serde_json::Value) -> serde_json::Value {
    serde_json::from_str(
        &hydra_core::ops::call_json(profile, op, req.to_string().as_bytes()).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_version_eleven_profile_with_history_upgrades_to_places_and_visits_with_its_data() {
    // One url visited three times with different titles (each visit
    // keeps its own), a tab pointing at a visit, every detail column,
    // a host-less url, and a gap in the ids.
    let (old, db) = old_profile(
        &FROZEN_MIGRATIONS[..11],
        "PRAGMA user_version = 11;
             INSERT INTO tabs (id, current_history_id, current_url, current_title,
                               last_visited_at, created_at, updated_at)
             VALUES ('tab-1', 5, 'https://b.example/page', 'Bêta 2', 50, 1, 50);
             INSERT INTO history (id, url, host, rev_host, title, visited_at, tab_id, referrer,
                                  status_code, content_type, transition, duration_ms)
             VALUES (1, 'https://a.example/', 'a.example', 'elpmaxe.a.', 'Alpha', 10, NULL,
                     NULL, NULL, NULL, NULL, NULL),
                    (2, 'https://b.example/page', 'b.example', 'elpmaxe.b.', 'Bêta 1', 20, NULL,
                     'https://a.example/', 200, 'text/html', 'link', 1500),
                    (4, 'https://a.example/', 'a.example', 'elpmaxe.a.', NULL, 40, NULL,
                     NULL, NULL, NULL, 'typed', NULL),
                    (5, 'https://b.example/page', 'b.example', 'elpmaxe.b.', 'Bêta 2', 50, 'tab-1',
                     NULL, 404, NULL, NULL, 7),
                    (6, 'about:blank', NULL, NULL, 'Blank', 60, NULL, NULL, NULL, NULL, NULL, NULL),
                    (7, 'https://sub.b.example/', 'sub.b.example', 'elpmaxe.b.bus.', 'Sub', 70,
                     NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let history_before = table_rows(&db, "SELECT * FROM history ORDER BY id");
    let tabs_before = table_rows(&db, "SELECT * FROM tabs ORDER BY id");

    let profile = Profile::open(OpenOptions::new(old.path())).unwrap();
    let listed = call(&profile, "history.list", serde_json::json!({}));
    let ids: Vec<i64> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![7, 6, 5, 4, 2, 1]);
    let titles: Vec<serde_json::Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["title"].clone())
        .collect();
    assert_eq!(
        titles,
        serde_json::json!(["Sub", "Blank", "Bêta 2", null, "Bêta 1", "Alpha"])
            .as_array()
            .unwrap()
            .clone()
    );
    let found = call(
        &profile,
        "history.list",
        serde_json::json!({"query": "bêta 1"}),
    );
    assert_eq!(found["items"][0]["id"], 2);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let o = call(&profile, "overview", serde_json::json!({}));
    assert_eq!(o["browser"]["history"]["entries"], 6);
    assert_eq!(o["browser"]["history"]["last_visit_at"], 70);
    // The dedupe of (url, visited_at) carries over.
    let again = call(
        &profile,
        "visits.record",
        serde_json::json!({"url": "https://b.example/page", "visited_at": 20}),
    );
    assert_eq!(again, serde_json::json!({"id": 2, "duplicate": true}));
    // New visits continue after the migrated ids.
    let new = call(
        &profile,
        "visits.record",
        serde_json::json!({"url": "https://c.example/", "visited_at": 80}),
    );
    assert_eq!(new["id"], 8);
    call(&profile, "history.delete", serde_json::json!({"id": 8}));
    profile.close(CloseOptions::default()).unwrap();

    // The same rows, through the `history` view, and one place per url.
    assert_eq!(
        table_rows(&db, "SELECT * FROM history ORDER BY id"),
        history_before
    );
    assert_eq!(
        table_rows(&db, "SELECT * FROM tabs ORDER BY id"),
        tabs_before
    );
    assert_eq!(
        table_rows(&db, "SELECT count(*) FROM places"),
        vec![vec![rusqlite::types::Value::Integer(4)]]
    );
    assert_eq!(schema(&db), fresh_schema());

    // A purge of a host takes its urls with its visits.
    let profile = Profile::open(OpenOptions::new(old.path())).unwrap();
    let purged = call(
        &profile,
        "history.purge",
        serde_json::json!({"host": "b.example"}),
    );
    assert_eq!(purged["deleted_count"], 3);
    assert_eq!(purged["tabs_cleared"], 1);
    profile.close(CloseOptions::default()).unwrap();
    assert_eq!(
        table_rows(&db, "SELECT url FROM places ORDER BY url"),
        vec![
            vec![rusqlite::types::Value::Text("about:blank".into())],
            vec![rusqlite::types::Value::Text("https://a.example/".into())],
        ]
    );
}

#[test]
fn a_version_thirteen_profile_with_messages_upgrades_to_keyed_message_ids() {
    // 5,000 messages past the counter's fold mark, in two threads, with
    // every column set somewhere, ids sharing a prefix and a suffix, and a
    // gap in `seq` (a deleted message).
    let (old, db) = old_profile(
        &FROZEN_MIGRATIONS[..13],
        "PRAGMA user_version = 13;
         INSERT INTO llm_threads (id, created_at, updated_at) VALUES ('th', 1, 1), ('gone', 1, 1);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO llm_messages (id, thread_id, parent_id, role, content, tokens, created_at, metadata)
             SELECT iif(i % 2 = 0, i || '-assistant', 'msg-' || i), iif(i % 10 = 0, 'gone', 'th'),
                    iif(i % 3 = 0, 'msg-1', NULL), iif(i % 2 = 0, 'assistant', 'user'),
                    'old words ' || i || iif(i = 77, ' SECRET-SEVENTY-SEVEN', '')
                        || iif(i = 90, ' SECRET-NINETY', ''),
                    iif(i % 4 = 0, i, NULL), 1000 + i, iif(i % 5 = 0, '{\"k\":' || i || '}', '{}')
             FROM n;
         DELETE FROM llm_messages WHERE id = 'msg-3';",
    );
    let columns = "seq, id, thread_id, parent_id, role, content, tokens, created_at, metadata";
    let before = table_rows(
        &db,
        &format!("SELECT {columns} FROM llm_messages ORDER BY seq"),
    );
    assert_eq!(before.len(), 4999);
    let holds = |secret: &str| {
        std::fs::read_dir(old.path()).unwrap().any(|entry| {
            let path = entry.unwrap().path();
            path.is_file()
                && std::fs::read(&path)
                    .unwrap()
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes())
        })
    };
    assert!(holds("SECRET-NINETY"), "the fixture holds the text");

    let profile = Profile::open(OpenOptions::new(old.path())).unwrap();
    let o = call(&profile, "overview", serde_json::json!({}));
    assert_eq!(o["llm"]["messages"]["total"], 4999);
    // Every old id is found, as a conflict, and listed in the same order.
    for id in ["msg-1", "2-assistant", "msg-4999", "5000-assistant"] {
        let e = hydra_core::ops::call_json(
            &profile,
            "messages.append",
            serde_json::json!({"thread_id": "th", "id": id, "role": "user", "content": "x"})
                .to_string()
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.code().as_str(), "conflict", "{id}");
    }
    let first = call(
        &profile,
        "messages.list",
        serde_json::json!({"thread_id": "th", "limit": 3}),
    );
    let ids: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["msg-1", "2-assistant", "4-assistant"]);
    // A message and a thread deleted after the upgrade leave no byte of
    // their text in any file: the copy the migration made and the old
    // table's freed pages included.
    assert_eq!(
        call(
            &profile,
            "messages.delete",
            serde_json::json!({"id": "msg-77"})
        )["deleted"],
        1
    );
    call(
        &profile,
        "threads.delete",
        serde_json::json!({"id": "gone"}),
    );
    let o = call(&profile, "overview", serde_json::json!({}));
    assert_eq!(o["llm"]["messages"]["total"], 4999 - 1 - 500);
    // New messages continue after the old keys.
    let new = call(
        &profile,
        "messages.append",
        serde_json::json!({"thread_id": "th", "id": "msg-3", "role": "user", "content": "reused"}),
    );
    assert_eq!(new["message"]["id"], "msg-3");
    profile.close(CloseOptions::default()).unwrap();

    for secret in ["SECRET-SEVENTY-SEVEN", "SECRET-NINETY"] {
        assert!(!holds(secret), "{secret} left in a file of the profile");
    }

    // The rows kept their `seq` and every value; each carries its id's key.
    let kept: Vec<Vec<rusqlite::types::Value>> = before
        .into_iter()
        .filter(|row| {
            let id = match &row[1] {
                rusqlite::types::Value::Text(id) => id.clone(),
                _ => unreachable!(),
            };
            let thread = &row[2];
            id != "msg-77" && *thread != rusqlite::types::Value::Text("gone".into())
        })
        .collect();
    let after = table_rows(
        &db,
        &format!("SELECT {columns} FROM llm_messages WHERE id <> 'msg-3' ORDER BY seq"),
    );
    assert_eq!(after, kept);
    let conn = Connection::open(&db).unwrap();
    hydra_core::db::id_key::register(&conn).unwrap();
    let wrong_keys: i64 = conn
        .query_row(
            "SELECT count(*) FROM llm_messages WHERE id_key IS NOT hydra_id_key(id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(wrong_keys, 0);
    drop(conn);
    assert_eq!(schema(&db), fresh_schema());
    // The message id has no UNIQUE index left, only the key's.
    assert_eq!(
        table_rows(
            &db,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'llm_messages'
             ORDER BY name"
        ),
        vec![
            vec![rusqlite::types::Value::Text(
                "llm_messages_by_id_key".into()
            )],
            vec![rusqlite::types::Value::Text(
                "llm_messages_by_thread".into()
            )],
        ]
    );
    let version: u32 = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, hydra_core::db::LATEST_SCHEMA_VERSION);
}

#[test]
fn a_version_fourteen_profile_gets_its_percent_encoded_hosts_in_normal_form() {
    // Before 0015, a url of a scheme the url crate does not know stored its
    // IDN host percent-encoded; such a profile is rebuilt here from a fresh
    // one (schemas 14 and 15 are the same tables) by writing the old hosts
    // back and setting the old version.
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    call(
        &profile,
        "visits.record_batch",
        serde_json::json!({"visits": [
            {"url": "sftp://Bücher.example/a", "visited_at": 1},
            {"url": "https://bücher.example/b", "visited_at": 2},
            {"url": "sftp://other.example/c", "visited_at": 3},
        ]}),
    );
    call(
        &profile,
        "documents.upsert",
        serde_json::json!({"url": "git://bücher.example/doc", "text": "words"}),
    );
    profile.close(Default::default()).unwrap();
    let db = dir.path().join("hydra.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "UPDATE places SET host = 'b%c3%bccher.example', rev_host = 'elpmaxe.rehcc%b3%c%b.'
          WHERE url LIKE 'sftp://B%';
         UPDATE documents SET host = 'b%c3%bccher.example', rev_host = 'elpmaxe.rehcc%b3%c%b.';
         PRAGMA user_version = 14;",
    )
    .unwrap();
    drop(conn);

    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    let hosts = |sql: &str| table_rows(&db, sql);
    let text = |s: &str| rusqlite::types::Value::Text(s.into());
    assert_eq!(
        hosts("SELECT url, host, rev_host FROM places ORDER BY url"),
        vec![
            vec![
                text("https://bücher.example/b"),
                text("xn--bcher-kva.example"),
                text("elpmaxe.avk-rehcb--nx."),
            ],
            vec![
                text("sftp://Bücher.example/a"),
                text("xn--bcher-kva.example"),
                text("elpmaxe.avk-rehcb--nx."),
            ],
            vec![
                text("sftp://other.example/c"),
                text("other.example"),
                text("elpmaxe.rehto."),
            ],
        ]
    );
    assert_eq!(
        hosts("SELECT host, rev_host FROM documents"),
        vec![vec![
            text("xn--bcher-kva.example"),
            text("elpmaxe.avk-rehcb--nx.")
        ]]
    );
    // A purge of the host now takes the sftp visit too, and the document
    // is found by its host.
    let purged = call(
        &profile,
        "history.purge",
        serde_json::json!({"host": "BÜCHER.example"}),
    );
    assert_eq!(purged["deleted_count"], 2);
    let docs = call(
        &profile,
        "documents.list",
        serde_json::json!({"host": "bücher.example"}),
    );
    assert_eq!(docs["items"].as_array().unwrap().len(), 1);
    profile.close(Default::default()).unwrap();
    let version: u32 = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, hydra_core::db::LATEST_SCHEMA_VERSION);
}
