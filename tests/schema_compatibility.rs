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
