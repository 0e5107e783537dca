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

/// The version of the C ABI: bumped when a C signature or the envelope changes.
pub const ABI_VERSION: u32 = 1;

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
        }
    }
}

/// Response of `profile.maintenance`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MaintenanceReport {
    pub db_bytes_before: u64,
    pub db_bytes_after: u64,
    pub duration_ms: u64,
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
    Ok(MaintenanceReport {
        db_bytes_before,
        db_bytes_after: file_len(path),
        duration_ms: started.elapsed().as_millis() as u64,
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
