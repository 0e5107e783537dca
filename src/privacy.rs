//! The one purge routine every delete of private data goes through
//! (`spec/OPERATIONS.md` §5, privacy rule), and the erasure it reports.
//!
//! A delete must leave the deleted text in no file of the profile directory
//! when the call returns. Three mechanisms make that true together:
//! - `PRAGMA secure_delete = ON` (see `db`): freed pages and cells are zeroed
//!   (a delete that frees pages by the ten thousand, [`purge_in_bulk`],
//!   zeroes them in place after its commit instead: `db::free_pages`);
//! - FTS5 tables are created with `secure-delete` enabled, so deleting a row
//!   removes its tokens from the index segments at once (no stale segment
//!   keeps them, and no whole-index `optimize` is needed on a large table);
//! - after the transaction commits, `wal_checkpoint(TRUNCATE)` copies the
//!   zeroed pages into the database and truncates the WAL to zero bytes, so
//!   no older page image survives there.
//!
//! The checkpoint is what can fail: it must wait until no connection reads
//! a snapshot older than the delete. The library's own readers let go at
//! once (short reads pause while it runs; an export notices the privacy
//! epoch and restarts, see [`crate::db::snapshot`]), so the checkpoint is
//! tried, without ever holding the writer while sleeping, for at most
//! [`PURGE_ERASE_WAIT`]. Its result row is checked: erasure is reported
//! ([`Purged::erased`]) only when the WAL really was truncated. Otherwise
//! (only a reader outside the library, e.g. another process, can cause
//! that) the erasure is recorded as pending (in memory:
//! `profile.info`'s `pending_erasure`), and a background eraser thread
//! retries every [`crate::profile::ERASER_INTERVAL`] without blocking anyone until it
//! succeeds; `hydra_close` tries once more (bounded) and reports the
//! outcome. A crash with an erasure pending loses only the in-memory note:
//! the next open truncates the WAL before anything else (and records a
//! pending erasure if it cannot).
//!
//! Finally the overview storage cache is invalidated, since sizes changed.

use crate::error::Result;
use crate::profile::Profile;
use rusqlite::{Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long a privacy delete tries to complete its erasure before it
/// returns `erased: false` (the contract allows 1 s plus the delete's work).
pub const PURGE_ERASE_WAIT: Duration = Duration::from_millis(800);

/// The response of a privacy delete: the delete's own fields, flattened,
/// plus `erased`. Only [`purge`] makes one, so a privacy delete cannot
/// forget (or invent) the field; it derefs to the inner response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Purged<T> {
    #[serde(flatten)]
    value: T,
    erased: bool,
}

impl<T> Purged<T> {
    /// True when, at return, no file of the profile held the deleted text.
    pub fn erased(&self) -> bool {
        self.erased
    }

    /// The delete's own response.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Reshapes the delete's response, keeping `erased`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Purged<U> {
        Purged {
            value: f(self.value),
            erased: self.erased,
        }
    }
}

impl<T> std::ops::Deref for Purged<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Runs `delete` as one write transaction of its own, then makes the
/// deletion physical (module docs) and invalidates the storage cache. A
/// failed `delete` rolls back and changes nothing. The response says
/// whether the erasure completed before return.
pub fn purge<T>(
    profile: &Profile,
    delete: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<Purged<T>> {
    purge_then(profile, delete, || profile.invalidate_storage_cache())
}

/// [`purge`] for a delete outside the contract's privacy rule that still
/// erases private text (`jobs.prune`: payloads and results): the same
/// erasure, but the overview storage cache stays, since the contract names
/// the operations that invalidate it (section 6) and this is not one.
pub fn purge_keeping_storage_cache<T>(
    profile: &Profile,
    delete: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<Purged<T>> {
    purge_then(profile, delete, || {})
}

fn purge_then<T>(
    profile: &Profile,
    delete: impl FnOnce(&Transaction<'_>) -> Result<T>,
    after_commit: impl FnOnce(),
) -> Result<Purged<T>> {
    let db = profile.db();
    let (value, drain) = {
        let mut conn = db.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = delete(&tx)?;
        // Bumps the privacy epoch (a running export drops its snapshot) and
        // starts draining readers, until the erasure below is done.
        let drain = db
            .erasure()
            .commit_privacy_delete(|| tx.commit().map_err(Into::into))?;
        (value, drain)
    };
    after_commit();
    let erased = db.erase_pending(Instant::now() + PURGE_ERASE_WAIT);
    drop(drain);
    Ok(reported(profile, value, erased?))
}

/// [`purge`] for a delete that frees pages by the ten thousand
/// (`history.purge {all}`): the same guarantees and report, but the freed
/// pages are zeroed in place after the commit instead of through the WAL
/// and the checkpoint (see `crate::db::Db::privacy_delete_in_bulk`). At
/// 1M visits that is about 107 MB written once instead of twice. The writer
/// is held until the erasure is done or given up ([`PURGE_ERASE_WAIT`]).
pub fn purge_in_bulk<T>(
    profile: &Profile,
    delete: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<Purged<T>> {
    let (value, erased) = profile
        .db()
        .privacy_delete_in_bulk(delete, PURGE_ERASE_WAIT)?;
    profile.invalidate_storage_cache();
    Ok(reported(profile, value, erased))
}

/// A committed privacy delete's response; an erasure that did not complete
/// is recorded as pending and handed to the background eraser.
fn reported<T>(profile: &Profile, value: T, erased: bool) -> Purged<T> {
    if !erased && profile.db().erasure().add_pending(crate::types::now_ms()) {
        profile.start_eraser();
    }
    Purged { value, erased }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ConnExt;
    use crate::profile::{CloseOptions, OpenOptions};

    #[test]
    fn deleted_text_leaves_every_file_and_a_failed_purge_keeps_rows() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
        let secret = "zebra-quokka-7781";
        profile
            .db()
            .write(|tx| {
                tx.run(
                    "INSERT INTO llm_threads (id, title, created_at, updated_at) VALUES ('t', ?1, 1, 1)",
                    [secret],
                )
            })
            .unwrap();
        let before = crate::profile::storage_epoch(profile.dir());
        let failed: Result<Purged<()>> = purge(&profile, |tx| {
            tx.run("DELETE FROM llm_threads", [])?;
            Err(crate::error::Error::conflict("changed my mind"))
        });
        assert!(failed.is_err());
        let count = profile
            .db()
            .read(|c| c.query_i64("SELECT count(*) FROM llm_threads", []))
            .unwrap();
        assert_eq!(count, 1);

        let purged = purge(&profile, |tx| tx.run("DELETE FROM llm_threads", [])).unwrap();
        assert!(purged.erased());
        assert_eq!(*purged, 1);
        assert!(crate::profile::storage_epoch(profile.dir()) > before);
        let scan = |dir: &std::path::Path| {
            walkdir::WalkDir::new(dir)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
                .any(|e| {
                    let bytes = std::fs::read(e.path()).unwrap_or_default();
                    bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
                })
        };
        assert!(!scan(dir.path()), "secret found while open");
        profile.close(CloseOptions::default()).unwrap();
        assert!(!scan(dir.path()), "secret found after close");
    }
}
