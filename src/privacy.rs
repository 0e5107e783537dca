//! The one purge routine every delete of private data goes through
//! (`spec/OPERATIONS.md` §5, privacy rule).
//!
//! A delete must leave the deleted text in no file of the profile directory
//! when the call returns. Three mechanisms make that true together:
//! - `PRAGMA secure_delete = ON` (see `db`): freed pages and cells are zeroed;
//! - FTS5 tables are created with `secure-delete` enabled, so deleting a row
//!   removes its tokens from the index segments at once (no stale segment
//!   keeps them, and no whole-index `optimize` is needed on a large table);
//! - after the transaction commits, `wal_checkpoint(TRUNCATE)` copies the
//!   zeroed pages into the database and truncates the WAL to zero bytes, so
//!   no older page image survives there.
//!
//! Finally the overview storage cache is invalidated, since sizes changed.

use crate::error::Result;
use crate::profile::Profile;
use rusqlite::Transaction;

/// Runs `delete` as one write transaction, then makes the deletion physical
/// (WAL checkpoint with TRUNCATE) and invalidates the storage cache. A
/// failed `delete` rolls back and changes nothing.
pub fn purge<T>(
    profile: &Profile,
    delete: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let outcome = {
        let mut conn = profile.db().writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let outcome = delete(&tx)?;
        tx.commit()?;
        // Checkpoint while still holding the writer, so no other write can
        // slip new frames into the WAL between commit and truncate.
        crate::db::checkpoint_truncate(&conn)?;
        outcome
    };
    profile.invalidate_storage_cache();
    Ok(outcome)
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
        let failed: Result<()> = purge(&profile, |tx| {
            tx.run("DELETE FROM llm_threads", [])?;
            Err(crate::error::Error::conflict("changed my mind"))
        });
        assert!(failed.is_err());
        let count = profile
            .db()
            .read(|c| c.query_i64("SELECT count(*) FROM llm_threads", []))
            .unwrap();
        assert_eq!(count, 1);

        purge(&profile, |tx| tx.run("DELETE FROM llm_threads", [])).unwrap();
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
