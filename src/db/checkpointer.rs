//! Checkpoints off the write path.
//!
//! SQLite's own auto-checkpoint runs inside the `COMMIT` that crosses 1,000
//! WAL pages: that commit copies every page back into the database and
//! syncs it, while the writer (and every caller queued behind it) waits.
//! At a million visits the indexes are written at random places, so those
//! copies are most of what a small write costs.
//!
//! Instead, the writer's WAL hook wakes a thread that owns its own
//! connection and runs `wal_checkpoint(PASSIVE)` there, beside the writer:
//! a passive checkpoint never blocks the writer or a reader, and the writer
//! restarts the WAL from its start once a checkpoint has copied all of it.
//! If the WAL still grows past [`INLINE_CHECKPOINT_PAGES`] (the thread cannot
//! keep up), the committing writer checkpoints passively itself, as SQLite's
//! auto-checkpoint would, so the WAL stays bounded.
//!
//! Crash safety is SQLite's: a checkpoint is an idempotent copy of committed
//! frames, and a kill during one leaves the WAL to be replayed at the next
//! open. Privacy deletes still run their own truncating checkpoint on the
//! writer (`crate::privacy`). SQLite lets one checkpoint run at a time, and
//! one that finds another running fails at once with `SQLITE_BUSY` (the
//! busy handler is not called for that lock), so each passive pass holds
//! the [`CheckpointPass`] lock, and an erasure takes it before its
//! truncating attempt: it waits for the pass in progress to end instead of
//! failing and sleeping before a retry (under load, the retries were most
//! of a purge's latency).

use crate::error::Result;
use crossbeam_channel::{bounded, Sender};
use parking_lot::{Mutex, MutexGuard};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

/// WAL pages after a commit that wake the checkpoint thread (SQLite's own
/// auto-checkpoint threshold).
const WAKE_PAGES: i32 = 1_000;

/// WAL pages after a commit at which the writer checkpoints itself.
const INLINE_CHECKPOINT_PAGES: i32 = 4_000;

/// Held by the checkpoint thread during each passive pass, and by an
/// erasure during its truncating attempt: two checkpoints never meet.
#[derive(Clone, Default)]
pub(super) struct CheckpointPass(Arc<Mutex<()>>);

impl CheckpointPass {
    /// Waits for a pass in progress to end, and keeps the next one from
    /// starting until the guard is dropped. Never taken while holding the
    /// writer (the lock order is this, then the writer); a pass itself never
    /// waits for the writer (a passive checkpoint waits for no one).
    pub(super) fn hold(&self) -> MutexGuard<'_, ()> {
        self.0.lock()
    }
}

/// The checkpoint thread of one database; stopped on drop.
pub(super) struct Checkpointer {
    wake: Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread, with its own connection to `path`, and installs
    /// the writer's WAL hook that wakes it.
    pub(super) fn start(
        path: &Path,
        writer: &mut Connection,
        pass: CheckpointPass,
        pragmas: impl FnOnce(&Connection) -> Result<()>,
    ) -> Result<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        pragmas(&conn)?;
        // One pending wake is enough: a checkpoint copies the whole WAL.
        // `true` asks the thread to stop.
        let (wake, woken) = bounded::<bool>(1);
        let thread = std::thread::Builder::new()
            .name("hydra-checkpoint".into())
            .spawn(move || {
                while let Ok(false) = woken.recv() {
                    let _pass = pass.hold();
                    // Busy (the writer's inline backstop checkpoints) or an
                    // I/O error: the next wake tries again; the backstop
                    // bounds the WAL meanwhile.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| crate::error::Error::internal(format!("checkpoint thread: {e}")))?;
        let hook_wake = wake.clone();
        writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            if pages >= INLINE_CHECKPOINT_PAGES {
                // Never an error from a hook: the commit has happened, and
                // an error here would be reported as the commit's.
                let _ = wal.checkpoint();
            } else if pages >= WAKE_PAGES {
                // Full: a wake is already pending.
                let _ = hook_wake.try_send(false);
            }
            Ok(())
        }))?;
        Ok(Checkpointer {
            wake,
            thread: Some(thread),
        })
    }

    /// Stops the thread and closes its connection (at close: nothing of the
    /// profile runs after it).
    pub(super) fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Waits for a pending wake to be taken; the thread ends after
            // the checkpoint it runs (the writer's hook keeps a sender, so
            // the channel itself never disconnects).
            let _ = self.wake.send(true);
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}
