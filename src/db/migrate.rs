//! Schema migrations, one `.sql` file per version under `migrations/`.
//!
//! `build.rs` lists the files (named `NNNN_what.sql`) in version order, so
//! adding a migration is adding one file. Each step runs in its own
//! transaction together with the `PRAGMA user_version` bump, so a crash
//! leaves the schema at the previous or the next version, never between.

use crate::error::{Error, ErrorCode, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// `(version, name, sql)` for every migration, in order.
const MIGRATIONS: &[(u32, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The schema version this library writes (`PRAGMA user_version`).
pub const LATEST_SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The `application_id` stamped by the first migration ("HYDR").
const APPLICATION_ID: i64 = 0x4859_4452;

/// Looks at an existing database file without writing to it or creating
/// anything beside it: refuses a file that is not an SQLite database, that
/// belongs to another application, or that is another program's database
/// without an application id (`application_id` 0 with a schema or a
/// `user_version`) as `corrupt`, and a schema newer than this library as
/// `incompatible_version`. A missing or empty file, or an empty database,
/// passes (it becomes a new profile).
pub fn probe_existing(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => {}
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let not_a_profile = || {
        Error::new(
            ErrorCode::Corrupt,
            "the profile database is not a hydra database",
        )
    };
    // With no WAL beside it, the file alone is the database: read it as
    // immutable, which takes no lock and creates no `-wal` or `-shm`. A WAL
    // may hold newer pages (of the header too), so then it is read through.
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let has_wal = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    let uri = format!(
        "file:{}?mode=ro{}",
        uri_path(path),
        if has_wal { "" } else { "&immutable=1" }
    );
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|_| not_a_profile())?;
    let read = |pragma: &str| -> Result<i64> {
        conn.query_row(pragma, [], |r| r.get(0))
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy)
                | Some(rusqlite::ErrorCode::DatabaseLocked) => Error::from(e),
                _ => not_a_profile(),
            })
    };
    let version = read("PRAGMA user_version")?;
    let app_id = read("PRAGMA application_id")?;
    // Reading the schema forces SQLite to parse every page header it needs.
    let objects = read("SELECT count(*) FROM sqlite_master")?;
    let adoptable_empty = app_id == 0 && objects == 0 && version == 0;
    if app_id != APPLICATION_ID && !adoptable_empty {
        return Err(not_a_profile());
    }
    if version > LATEST_SCHEMA_VERSION as i64 {
        return Err(Error::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "the profile has schema version {version}; this library knows up to {LATEST_SCHEMA_VERSION}: upgrade the library"
            ),
        )
        .with_detail("schema_version", version)
        .with_detail("supported_version", LATEST_SCHEMA_VERSION));
    }
    Ok(())
}

/// `path` as the path part of an SQLite `file:` URI: `%`, `?` and `#` (and
/// any byte outside printable ASCII) percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        match b {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{b:02X}")),
            0x21..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Runs every migration newer than the database's `user_version`, one
/// transaction per step.
pub fn migrate(conn: &Connection) -> Result<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST_SCHEMA_VERSION {
        return Err(Error::new(
            ErrorCode::IncompatibleVersion,
            "the profile schema is newer than this library",
        ));
    }
    // Migration 0014 fills `llm_messages.id_key` with it.
    super::id_key::register(conn)?;
    for &(version, _name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let step = conn
            .execute_batch(sql)
            .and_then(|_| conn.execute_batch(&format!("PRAGMA user_version = {version}")));
        match step {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (expected, m) in (1..).zip(MIGRATIONS) {
            assert_eq!(m.0, expected, "migration {} is out of order", m.1);
        }
    }

    #[test]
    fn fresh_database_reaches_latest_version() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST_SCHEMA_VERSION);
        // Running again is a no-op.
        migrate(&conn).unwrap();
    }
}
