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
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(open_code(fresh.path()), "ok");
    let migrated = schema(&old.path().join("hydra.sqlite3"));
    assert_eq!(migrated, schema(&fresh.path().join("hydra.sqlite3")));
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
    let old = tempfile::tempdir().unwrap();
    let db = old.path().join("hydra.sqlite3");
    {
        let conn = Connection::open(&db).unwrap();
        for sql in [
            include_str!("../src/db/migrations/0001_profile.sql"),
            include_str!("../src/db/migrations/0002_tabs.sql"),
            include_str!("../src/db/migrations/0003_threads.sql"),
            include_str!("../src/db/migrations/0004_jobs.sql"),
            include_str!("../src/db/migrations/0005_hydraflow.sql"),
            include_str!("../src/db/migrations/0006_browser.sql"),
            include_str!("../src/db/migrations/0007_repo.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
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
        )
        .unwrap();
    }
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
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(open_code(fresh.path()), "ok");
    assert_eq!(schema(&db), schema(&fresh.path().join("hydra.sqlite3")));
}

/// Every migration up to schema 7 (the last release before the history
/// text index left the database), frozen as those files are.
const SCHEMA_7: &[&str] = &[
    include_str!("../src/db/migrations/0001_profile.sql"),
    include_str!("../src/db/migrations/0002_tabs.sql"),
    include_str!("../src/db/migrations/0003_threads.sql"),
    include_str!("../src/db/migrations/0004_jobs.sql"),
    include_str!("../src/db/migrations/0005_hydraflow.sql"),
    include_str!("../src/db/migrations/0006_browser.sql"),
    include_str!("../src/db/migrations/0007_repo.sql"),
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
    let old = tempfile::tempdir().unwrap();
    let db = old.path().join("hydra.sqlite3");
    {
        let conn = Connection::open(&db).unwrap();
        for sql in SCHEMA_7 {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
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
        )
        .unwrap();
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

    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(open_code(fresh.path()), "ok");
    assert_eq!(schema(&db), schema(&fresh.path().join("hydra.sqlite3")));
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
