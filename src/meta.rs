//! `meta.version`, `profile.info` and `profile.maintenance`: what a caller
//! asks about the library and the profile itself.

use crate::db::{ConnExt, LATEST_SCHEMA_VERSION};
use crate::error::Result;
use crate::profile::Profile;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The library version (`hydra_version()`, `meta.version`'s `version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// `ABI_VERSION`, shared with `build.rs` (see the file).
include!("abi_version.rs");

/// Request of `meta.version` (no fields).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionRequest {}

/// Response of `meta.version`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Version {
    pub version: String,
    pub abi_version: u32,
    /// The profile's `PRAGMA user_version`.
    pub schema_version: u32,
    /// The bundled SQLite's version, e.g. `"3.46.0"`.
    pub sqlite_version: String,
}

/// `meta.version`. The schema version is the one the profile was migrated
/// to at open (it cannot change while the handle holds the lock).
pub fn version(_: &Profile, _: VersionRequest) -> Result<Version> {
    Ok(Version {
        version: VERSION.to_owned(),
        abi_version: ABI_VERSION,
        schema_version: LATEST_SCHEMA_VERSION,
        sqlite_version: rusqlite::version().to_owned(),
    })
}

/// Request of `profile.info` (no fields).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInfoRequest {}

/// Response of `profile.info`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ProfileInfo {
    pub profile_dir: String,
    pub schema_version: u32,
    pub db_bytes: u64,
    pub wal_bytes: u64,
    /// Privacy deletes whose erasure has not completed yet (a reader outside
    /// the library holds old pages), `null` when none.
    pub pending_erasure: Option<crate::db::PendingErasure>,
}

/// `profile.info`.
pub fn profile_info(profile: &Profile, _: ProfileInfoRequest) -> Result<ProfileInfo> {
    let schema_version = profile
        .db()
        .read(|conn| conn.query_i64("PRAGMA user_version", []))? as u32;
    Ok(ProfileInfo {
        profile_dir: profile.dir().to_string_lossy().into_owned(),
        schema_version,
        db_bytes: file_len(profile.db().path()),
        wal_bytes: file_len(&wal_path(profile.db().path())),
        pending_erasure: profile.pending_erasure(),
    })
}

/// Request of `profile.maintenance`. Omitted flags take these defaults:
/// `optimize` true, `checkpoint` true, `vacuum` false (it rewrites the
/// whole file, so it is asked for explicitly).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    #[serde(default)]
    pub vacuum: bool,
    #[serde(default = "yes")]
    pub optimize: bool,
    #[serde(default = "yes")]
    pub checkpoint: bool,
    /// Run `PRAGMA integrity_check` and report its findings.
    #[serde(default)]
    pub integrity_check: bool,
}

fn yes() -> bool {
    true
}

impl Default for MaintenanceRequest {
    fn default() -> Self {
        MaintenanceRequest {
            vacuum: false,
            optimize: true,
            checkpoint: true,
            integrity_check: false,
        }
    }
}

/// Response of `profile.maintenance`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MaintenanceReport {
    pub db_bytes_before: u64,
    pub db_bytes_after: u64,
    pub duration_ms: u64,
    /// `null` unless `integrity_check` was asked.
    pub integrity: Option<Integrity>,
}

/// What `PRAGMA integrity_check` found: `"ok"`, or the list of problems it
/// reported (FTS5 tables included: SQLite checks their index too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Ok,
    Problems(Vec<String>),
}

impl Serialize for Integrity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Integrity::Ok => s.serialize_str("ok"),
            Integrity::Problems(problems) => problems.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Integrity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Text(String),
            List(Vec<String>),
        }
        Ok(match Shape::deserialize(d)? {
            Shape::Text(text) if text == "ok" => Integrity::Ok,
            Shape::Text(text) => Integrity::Problems(vec![text]),
            Shape::List(list) => Integrity::Problems(list),
        })
    }
}

impl schemars::JsonSchema for Integrity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Integrity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "\"ok\", or the problems PRAGMA integrity_check reported.",
            "oneOf": [
                {"type": "string", "const": "ok"},
                {"type": "array", "items": {"type": "string"}}
            ]
        })
    }
}

/// Runs `PRAGMA integrity_check` (every problem, not only the first).
fn integrity_check(conn: &rusqlite::Connection) -> Result<Integrity> {
    let rows: Vec<String> = conn.query_all("PRAGMA integrity_check", [], |r| r.get(0))?;
    Ok(match rows.as_slice() {
        [only] if only == "ok" => Integrity::Ok,
        _ => Integrity::Problems(rows),
    })
}

/// `profile.maintenance`.
pub fn maintenance(profile: &Profile, req: MaintenanceRequest) -> Result<MaintenanceReport> {
    let started = Instant::now();
    let path = profile.db().path();
    let db_bytes_before = file_len(path);
    {
        let conn = profile.db().writer();
        if req.optimize {
            conn.execute_batch("PRAGMA optimize;")?;
        }
        if req.vacuum {
            conn.execute_batch("VACUUM;")?;
        }
        if req.checkpoint || req.vacuum {
            crate::db::checkpoint_truncate(&conn)?;
        }
    }
    let db_bytes_after = file_len(path);
    let integrity = if req.integrity_check {
        Some(profile.db().read_on_fresh_connection(integrity_check)?)
    } else {
        None
    };
    Ok(MaintenanceReport {
        db_bytes_before,
        db_bytes_after,
        duration_ms: started.elapsed().as_millis() as u64,
        integrity,
    })
}

/// The WAL file beside a database file.
pub fn wal_path(db_path: &Path) -> std::path::PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
