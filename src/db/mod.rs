//! The profile database: one writer connection, a small pool of readers, the
//! pragma block and schema migrations.
//!
//! Every write operation runs as one `BEGIN IMMEDIATE` transaction on the
//! writer (so concurrent calls on one handle queue on a mutex instead of
//! failing with `SQLITE_BUSY`); read-only operations take a pooled read-only
//! connection, which WAL lets run beside the writer.

mod conn_ext;
mod migrate;
pub mod paging;
pub mod text_match;

pub use conn_ext::ConnExt;
pub use migrate::{migrate, probe_existing, LATEST_SCHEMA_VERSION};

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

/// The connections of one profile database.
pub struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
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
        text_match::register(&writer)?;
        migrate(&writer)?;
        Ok(Db {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
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

    /// Runs `f` on a read-only connection from the pool.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS as u64))?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        text_match::register(&conn)?;
        rusqlite::vtab::array::load_module(&conn)?;
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
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS as u64))?;
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
