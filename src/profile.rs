//! A profile: one directory, one user, one open handle at a time.
//!
//! Opening takes an exclusive advisory lock on `<dir>/.lock` (held for the
//! life of the handle, so a second open in this or any other process gets
//! `profile_locked`), refuses a database it must not touch (`corrupt`,
//! `incompatible_version`) before writing anything, then opens and migrates
//! `<dir>/hydra.sqlite3`. A [`Profile`] is a cheap, cloneable, `Send + Sync`
//! handle: any thread may call any operation at any time.

use crate::db::{self, Db, Synchronous};
use crate::error::{Error, ErrorCode, Result};
use crate::types::Bounded;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The database file inside a profile directory.
pub const DB_FILE_NAME: &str = "hydra.sqlite3";

/// The lock file inside a profile directory.
pub const LOCK_FILE_NAME: &str = ".lock";

/// Options of `hydra_open` / [`Profile::open`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenOptions {
    /// The profile directory; created with its parents if missing.
    pub profile_dir: PathBuf,
    /// Job worker threads (1..64, default 2).
    #[serde(default = "default_workers")]
    pub workers: Bounded<2, 64>,
    /// `PRAGMA synchronous`: `"normal"` (default) or `"full"`.
    #[serde(default)]
    pub synchronous: Synchronous,
    /// Extra folders counted by `overview` (label -> path).
    #[serde(default)]
    pub storage_roots: BTreeMap<String, PathBuf>,
}

fn default_workers() -> Bounded<2, 64> {
    Bounded::default()
}

impl OpenOptions {
    /// Options for `dir` with every default.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OpenOptions {
            profile_dir: dir.into(),
            workers: default_workers(),
            synchronous: Synchronous::default(),
            storage_roots: BTreeMap::new(),
        }
    }
}

/// Options of `hydra_close` / [`Profile::close`].
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CloseOptions {
    /// Cancel running jobs instead of waiting for them (default false).
    #[serde(default)]
    pub cancel_running: bool,
}

/// An open profile. Clones share the same connections, lock and workers.
#[derive(Clone)]
pub struct Profile {
    inner: Arc<ProfileInner>,
}

struct ProfileInner {
    dir: PathBuf,
    options: OpenOptions,
    db: Db,
    /// The flock on `<dir>/.lock`; `None` once closed.
    lock: parking_lot::Mutex<Option<File>>,
    closed: AtomicBool,
    /// Bumped by every change that alters file sizes in a way the overview
    /// storage cache must not hide (privacy deletes, imports, patches).
    storage_epoch: AtomicU64,
}

impl Profile {
    /// Opens (creating or migrating) the profile in `options.profile_dir`.
    pub fn open(options: OpenOptions) -> Result<Profile> {
        if options.profile_dir.as_os_str().is_empty() {
            return Err(Error::invalid("profile_dir", "must not be empty"));
        }
        std::fs::create_dir_all(&options.profile_dir)?;
        let dir = options.profile_dir.canonicalize()?;
        let lock = lock_profile_dir(&dir)?;
        crate::repo::journal::recover(&dir)?;
        let db_path = dir.join(DB_FILE_NAME);
        db::probe_existing(&db_path)?;
        let db = Db::open(&db_path, options.synchronous)?;
        Ok(Profile {
            inner: Arc::new(ProfileInner {
                dir,
                options,
                db,
                lock: parking_lot::Mutex::new(Some(lock)),
                closed: AtomicBool::new(false),
                storage_epoch: AtomicU64::new(0),
            }),
        })
    }

    /// Stops accepting calls, checkpoints the WAL into the database and
    /// releases the profile lock. Closing twice is `closed`.
    pub fn close(&self, _options: CloseOptions) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Err(closed());
        }
        self.inner.db.drop_idle_readers();
        let checkpoint = self.inner.db.checkpoint_truncate();
        if let Some(lock) = self.inner.lock.lock().take() {
            let _ = lock.unlock();
        }
        checkpoint
    }

    /// `closed` once [`Profile::close`] has run.
    pub fn ensure_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// The canonical profile directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the profile was opened with.
    pub fn options(&self) -> &OpenOptions {
        &self.inner.options
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Marks cached storage sizes as stale.
    pub fn invalidate_storage_cache(&self) {
        self.inner.storage_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The storage cache generation: a cached walk is valid only while this
    /// number is unchanged.
    pub fn storage_epoch(&self) -> u64 {
        self.inner.storage_epoch.load(Ordering::Acquire)
    }
}

fn closed() -> Error {
    Error::new(ErrorCode::Closed, "the profile handle is closed")
}

/// Takes the exclusive lock of a profile directory, or `profile_locked`.
fn lock_profile_dir(dir: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE_NAME))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            ErrorCode::ProfileLocked,
            "another process or handle has this profile open; close it first",
        )),
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_in_process_is_locked_until_close() {
        let dir = tempfile::tempdir().unwrap();
        let first = Profile::open(OpenOptions::new(dir.path())).unwrap();
        let err = Profile::open(OpenOptions::new(dir.path())).err().unwrap();
        assert_eq!(err.code(), ErrorCode::ProfileLocked);
        first.close(CloseOptions::default()).unwrap();
        let again = Profile::open(OpenOptions::new(dir.path())).unwrap();
        again.close(CloseOptions::default()).unwrap();
    }

    #[test]
    fn closed_profile_refuses_calls() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profile::open(OpenOptions::new(dir.path())).unwrap();
        p.close(CloseOptions::default()).unwrap();
        assert_eq!(p.ensure_open().unwrap_err().code(), ErrorCode::Closed);
        assert_eq!(
            p.close(CloseOptions::default()).unwrap_err().code(),
            ErrorCode::Closed
        );
    }
}
