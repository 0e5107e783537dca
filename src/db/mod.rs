//! The profile database: one writer connection, a small pool of readers, the
//! pragma block and schema migrations.
//!
//! Every write operation runs as one `BEGIN IMMEDIATE` transaction on the
//! writer (so concurrent calls on one handle queue on a mutex instead of
//! failing with `SQLITE_BUSY`); read-only operations take a pooled read-only
//! connection, which WAL lets run beside the writer.
//!
//! **Lock order (enforced):** a code path that holds a read snapshot never
//! waits for the writer. The writer may wait for readers (a truncating
//! checkpoint does), so a reader that waited for the writer could stall
//! both until the busy timeout. Concretely:
//! - a read closure ([`Db::read`], [`Db::read_snapshot`]) never calls
//!   [`Db::write`] or [`Db::writer`], directly or through a helper;
//! - a job that reports progress while it holds a snapshot uses the
//!   non-blocking path (`JobContext::progress_queued`: the change joins the
//!   ledger's group-commit queue and is committed by whoever holds the
//!   writer next, never by waiting for it);
//! - a long snapshot (an export) is opened with [`Db::read_snapshot`], polls
//!   [`Snapshot::overtaken`] and lets go when a privacy delete commits
//!   (see [`snapshot`]), so the delete's checkpoint never waits for it.
//!
//! `tests/privacy_never_stalls.rs` holds the watchdog that checks the rule.

mod conn_ext;
mod migrate;
pub mod paging;
pub mod snapshot;

pub use conn_ext::ConnExt;
pub use migrate::{migrate, probe_existing, LATEST_SCHEMA_VERSION};
pub use snapshot::{ErasureGate, PendingErasure, Snapshot};

use crate::error::Result;
use parking_lot::{Mutex, MutexGuard};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// A commit survives a process crash; a power loss may lose the last
    /// commits but never corrupts the database (WAL + NORMAL).
    #[default]
    Normal,
    /// A commit also survives a power loss, at the cost of an fsync per commit.
    Full,
}

/// Readers kept open between calls; more are opened on demand under load.
const IDLE_READERS: usize = 4;

/// How long a statement waits for another process's lock before `busy`.
const BUSY_TIMEOUT_MS: u32 = 5_000;
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(BUSY_TIMEOUT_MS as u64);

/// The connections of one profile database.
pub struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Privacy deletes versus read snapshots ([`snapshot`]).
    erasure: ErasureGate,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it to
    /// the latest schema. Call [`probe_existing`] first so that a foreign,
    /// corrupt or newer file is refused before anything writes to it.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Db> {
        let writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        apply_pragmas(&writer, synchronous)?;
        migrate(&writer)?;
        Ok(Db {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            erasure: ErasureGate::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one `IMMEDIATE` transaction on the writer; commits when it
    /// returns `Ok`, rolls back otherwise.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// The writer connection itself, for work that is not one transaction
    /// (checkpoints, `VACUUM`, migrations in tests).
    pub fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock()
    }

    /// The writer, if no one holds it right now (for work that must never
    /// wait for it, see the lock order above).
    pub fn try_writer(&self) -> Option<MutexGuard<'_, Connection>> {
        self.writer.try_lock()
    }

    /// Privacy deletes versus read snapshots ([`snapshot`]).
    pub fn erasure(&self) -> &ErasureGate {
        &self.erasure
    }

    /// Runs `f` on a read-only connection from the pool. A read that starts
    /// while a privacy delete checkpoints pauses briefly (see
    /// [`snapshot::DRAIN_PAUSE`]) so that the checkpoint finds no reader.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.erasure.pause_while_draining();
        self.with_reader(f)
    }

    /// Runs `f` inside one read snapshot that a privacy delete can overtake:
    /// `f` polls [`Snapshot::overtaken`] and returns early when it is, and
    /// publishes its result with [`Snapshot::publish_unless_overtaken`].
    /// For long reads (exports); short ones use [`Db::read`].
    pub fn read_snapshot<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        self.with_reader(|conn| {
            let snapshot = Snapshot::begin(conn, &self.erasure)?;
            f(&snapshot)
        })
    }

    /// Runs `f` on a new read-only connection, closed afterwards. For
    /// `PRAGMA integrity_check`: SQLite's FTS5 integrity check (3.54.1)
    /// trusts the index structure a connection cached at an earlier read
    /// and reports "corruption found reading blob" once another connection
    /// has deleted rows since; a connection that never read has no cache.
    pub fn read_on_fresh_connection<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.erasure.pause_while_draining();
        f(&self.open_reader()?)
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.readers.lock().pop() {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let value = f(&conn);
        let mut idle = self.readers.lock();
        // A reader left inside a transaction would pin an old snapshot.
        if conn.is_autocommit() && idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        value
    }

    fn open_reader(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(conn)
    }

    /// Copies the WAL into the database and truncates the WAL file to zero
    /// bytes, so that no deleted page image survives in it.
    pub fn checkpoint_truncate(&self) -> Result<()> {
        let conn = self.writer.lock();
        checkpoint_truncate(&conn)
    }

    /// Drops the pooled readers (before a checkpoint that must see no reader,
    /// and at close).
    pub fn drop_idle_readers(&self) {
        self.readers.lock().clear();
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` on a connection.
pub fn checkpoint_truncate(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// The pragmas of the writer connection. Each says why it is set.
fn apply_pragmas(conn: &Connection, synchronous: Synchronous) -> Result<()> {
    // Another process holding a lock (a backup tool, a second library copy
    // that ignored the profile lock) is waited for, then reported as `busy`.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let synchronous = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "
        -- WAL: readers run beside the one writer, and a crash at any instant
        -- leaves either the old or the new state of each transaction.
        PRAGMA journal_mode = WAL;
        -- Relations between rows are enforced by SQLite, not by hope.
        PRAGMA foreign_keys = ON;
        -- Deleted private data is overwritten with zeros, not left in free
        -- pages where a file scan could find it.
        PRAGMA secure_delete = ON;
        -- NORMAL: durable across a process crash; FULL: across power loss.
        PRAGMA synchronous = {synchronous};
        -- Temporary b-trees (sorts, FTS merges) stay in memory, never in a
        -- temp file outside the profile directory.
        PRAGMA temp_store = MEMORY;
        "
    ))?;
    Ok(())
}
