//! A profile that fails to open is left exactly as it was found: no
//! `.lock`, `-wal` or `-shm` created by the attempt, the database byte for
//! byte the same. And only an empty database is adopted as a new profile:
//! another program's SQLite file at `<dir>/hydra.sqlite3`, even without an
//! application id, is `corrupt` and never migrated in place. Guards against
//! an app pointed at the wrong folder stamping our schema into someone
//! else's database, and against a refused open leaving debris that the
//! next program (or a newer hydra) must make sense of.

use hydra_core::{CloseOptions, OpenOptions, Profile};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;

/// Every file of the directory and its bytes.
fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn open_code(dir: &Path) -> String {
    match Profile::open(OpenOptions::new(dir)) {
        Ok(p) => {
            p.close(CloseOptions::default()).unwrap();
            "ok".into()
        }
        Err(e) => e.code().as_str().into(),
    }
}

fn assert_refused_untouched(dir: &Path, code: &str) {
    let before = listing(dir);
    assert_eq!(open_code(dir), code);
    let after = listing(dir);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "files appeared or vanished"
    );
    assert!(after == before, "a file changed");
    // A second attempt is refused the same way (nothing half-adopted).
    assert_eq!(open_code(dir), code);
    assert!(listing(dir) == before);
}

#[test]
fn a_foreign_database_without_an_application_id_is_corrupt_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    Connection::open(dir.path().join("hydra.sqlite3"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('someone else''s data');",
        )
        .unwrap();
    assert_refused_untouched(dir.path(), "corrupt");
}

#[test]
fn a_foreign_database_with_only_a_user_version_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    Connection::open(dir.path().join("hydra.sqlite3"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 3; CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    assert_refused_untouched(dir.path(), "corrupt");
}

#[test]
fn an_empty_database_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hydra.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA page_size = 4096; VACUUM;")
        .unwrap();
    assert!(std::fs::metadata(&db).unwrap().len() > 0);
    assert_eq!(open_code(dir.path()), "ok");
    assert_eq!(open_code(dir.path()), "ok");
}

#[test]
fn junk_and_newer_profiles_leave_no_lock_wal_or_shm() {
    let junk = tempfile::tempdir().unwrap();
    std::fs::write(junk.path().join("hydra.sqlite3"), vec![7u8; 8192]).unwrap();
    assert_refused_untouched(junk.path(), "corrupt");

    let newer = tempfile::tempdir().unwrap();
    assert_eq!(open_code(newer.path()), "ok");
    std::fs::remove_file(newer.path().join(".lock")).unwrap();
    Connection::open(newer.path().join("hydra.sqlite3"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 9999;")
        .unwrap();
    assert!(!newer.path().join("hydra.sqlite3-wal").exists());
    assert_refused_untouched(newer.path(), "incompatible_version");
}

#[test]
fn a_newer_schema_still_in_the_wal_is_refused_and_untouched() {
    // A newer library crashed right after migrating: the version bump is
    // only in the WAL beside the database.
    let live = tempfile::tempdir().unwrap();
    assert_eq!(open_code(live.path()), "ok");
    let conn = Connection::open(live.path().join("hydra.sqlite3")).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA user_version = 9999;")
        .unwrap();
    let crashed = tempfile::tempdir().unwrap();
    for name in ["hydra.sqlite3", "hydra.sqlite3-wal"] {
        std::fs::copy(live.path().join(name), crashed.path().join(name)).unwrap();
    }
    drop(conn);
    assert!(
        std::fs::metadata(crashed.path().join("hydra.sqlite3-wal"))
            .unwrap()
            .len()
            > 0
    );
    assert_refused_untouched(crashed.path(), "incompatible_version");
}
