//! The profile database: one writer connection, a small pool of readers, the
//! pragma block and schema migrations.
//!
//! Writes queue on one mutex around the writer (so concurrent calls on one
//! handle never fail with `SQLITE_BUSY`) and share commits: see
//! [`Db::write`]. Read-only operations take a pooled read-only connection,
//! which WAL lets run beside the writer.
//!
//! Group commit: a commit (WAL append, page writes) costs far more than one
//! small insert, so when callers are queued behind the writer, the
//! transaction stays open for them. Each caller runs its own closure on its
//! own thread inside its own `SAVEPOINT` (its error or panic rolls back its
//! savepoint only; the caller that opens the transaction needs none, since
//! its failure can roll back the whole of it); the last caller in line (or the one that reaches the
//! batch caps) commits, and every caller of the batch returns only after
//! that `COMMIT`: an acknowledged write is a committed write.
//!
//! Checkpoints run beside the writer, on their own thread and connection
//! ([`checkpointer`]), not inside the commit that fills the WAL.
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

mod checkpointer;
mod conn_ext;
mod free_pages;
pub mod id_key;
mod migrate;
pub mod paging;
pub mod snapshot;
pub mod text_match;

pub use conn_ext::ConnExt;
pub use migrate::{migrate, probe_existing, LATEST_SCHEMA_VERSION};
pub use snapshot::{ErasureGate, PendingErasure, Snapshot};

use crate::error::{Error, ErrorCode, Result};
use parking_lot::{Condvar, MappedMutexGuard, Mutex, MutexGuard};
use rusqlite::{Connection, OpenFlags};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

impl Synchronous {
    /// The value of `PRAGMA synchronous`.
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Readers kept open between calls; more are opened on demand under load.
const IDLE_READERS: usize = 4;

/// How long a statement waits for another process's lock before `busy`.
const BUSY_TIMEOUT_MS: u32 = 5_000;
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(BUSY_TIMEOUT_MS as u64);

/// The most callers one shared commit holds.
const MAX_BATCH_CALLERS: usize = 64;

/// The longest a shared transaction stays open for more callers.
const MAX_BATCH_AGE: Duration = Duration::from_millis(20);

/// The connections of one profile database.
pub struct Db {
    path: PathBuf,
    writer: Mutex<Writer>,
    /// Callers of [`Db::write`] waiting for the writer mutex.
    queued: AtomicUsize,
    /// Which shared transactions have finished, and how.
    commits: Mutex<CommitLog>,
    committed: Condvar,
    readers: Mutex<Vec<Connection>>,
    /// Privacy deletes versus read snapshots ([`snapshot`]).
    erasure: ErasureGate,
    /// Runs the WAL checkpoints beside the writer ([`checkpointer`]).
    checkpointer: Mutex<Option<checkpointer::Checkpointer>>,
    /// Keeps its passes and an erasure's truncating checkpoint apart.
    checkpoint_pass: checkpointer::CheckpointPass,
    /// The database file, for zeroing free pages in place ([`free_pages`]).
    /// Last, so that it is closed after every connection.
    free_pages: free_pages::FreePages,
}

/// The writer connection and the shared transaction open on it, if any.
struct Writer {
    conn: Connection,
    batch: Option<Batch>,
    next_batch: u64,
}

/// A shared transaction waiting for more callers.
struct Batch {
    id: u64,
    callers: usize,
    started: Instant,
}

/// Batches finish in id order (one is open at a time).
#[derive(Default)]
struct CommitLog {
    finished_through: u64,
    /// Recent batches whose `COMMIT` failed, with the public error.
    failed: std::collections::VecDeque<(u64, ErrorCode, String)>,
}

/// How many failed batches the log remembers (callers wake within
/// microseconds; this only bounds memory).
const FAILED_BATCHES_KEPT: usize = 64;

/// How long opening waits for readers outside the library before it zeroes
/// free pages a crashed bulk delete left (through SQLite after that).
const OPEN_FREE_PAGES_WAIT: Duration = Duration::from_millis(200);

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it to
    /// the latest schema. Call [`probe_existing`] first so that a foreign,
    /// corrupt or newer file is refused before anything writes to it.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Db> {
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Opened after the writer, closed after it, also on an error below:
        // closing this descriptor drops the process's POSIX locks on the
        // file, SQLite's own included (`free_pages`).
        let free_pages = free_pages::FreePages::open(path)?;
        let checkpoint_pass = checkpointer::CheckpointPass::default();
        let prepared = Self::prepare_writer(
            path,
            &mut writer,
            synchronous,
            &free_pages,
            checkpoint_pass.clone(),
        );
        let checkpointer = match prepared {
            Ok(checkpointer) => checkpointer,
            Err(e) => {
                drop(writer);
                return Err(e);
            }
        };
        Ok(Db {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn: writer,
                batch: None,
                next_batch: 1,
            }),
            queued: AtomicUsize::new(0),
            commits: Mutex::new(CommitLog::default()),
            committed: Condvar::new(),
            readers: Mutex::new(Vec::new()),
            erasure: ErasureGate::default(),
            checkpointer: Mutex::new(Some(checkpointer)),
            checkpoint_pass,
            free_pages,
        })
    }

    /// Sets up the writer connection of [`Db::open`]: pragmas, functions,
    /// the erasure a crash cut short, migrations, then the checkpoint thread.
    fn prepare_writer(
        path: &Path,
        writer: &mut Connection,
        synchronous: Synchronous,
        free_pages: &free_pages::FreePages,
        checkpoint_pass: checkpointer::CheckpointPass,
    ) -> Result<checkpointer::Checkpointer> {
        apply_pragmas(writer, synchronous)?;
        // The write path's statements (transaction control included) stay
        // prepared; the default cache of 16 is shared by every operation.
        writer.set_prepared_statement_cache_capacity(64);
        text_match::register(writer)?;
        // A bulk delete that a crash cut short left free pages unzeroed:
        // zero them before anything (a migration) reuses one.
        if free_pages.armed() {
            free_pages.finish(writer, Instant::now() + OPEN_FREE_PAGES_WAIT)?;
        }
        migrate(writer)?;
        checkpointer::Checkpointer::start(path, writer, checkpoint_pass, |conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.execute_batch(&format!("PRAGMA synchronous = {};", synchronous.pragma()))?;
            Ok(())
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside a transaction on the writer and returns once that
    /// transaction has committed (or `f`'s error, with `f`'s changes rolled
    /// back). Concurrent callers share one transaction and one commit (see
    /// the module docs); `f` runs in its own savepoint, so its failure or
    /// panic undoes only its own changes. A failed shared `COMMIT` fails
    /// every caller of the batch.
    pub fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut writer = self.writer.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let (batch, first) = writer.join_batch()?;
        if first {
            return self.write_first(writer, batch, f);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run_cached(&writer.conn, "SAVEPOINT hydra_write")
                .map_err(Error::from)
                .and_then(|()| f(&writer.conn))
        }));
        let own_ok = matches!(outcome, Ok(Ok(_)));
        let savepoint = if own_ok {
            run_cached(&writer.conn, "RELEASE hydra_write")
        } else {
            run_cached(&writer.conn, "ROLLBACK TO hydra_write")
                .and_then(|()| run_cached(&writer.conn, "RELEASE hydra_write"))
        };
        if let Err(e) = savepoint {
            // The savepoint is unusable: end the batch (its COMMIT reports
            // to its other callers) and fail this one.
            let _ = self.finish_batch(&mut writer);
            return Err(e.into());
        }
        let more_coming = self.more_coming(&writer);
        match outcome {
            Err(panic) => {
                if !more_coming {
                    // Its outcome goes to the batch's other callers.
                    let _ = self.finish_batch(&mut writer);
                }
                drop(writer);
                resume_unwind(panic)
            }
            Ok(Err(e)) => {
                // Nothing of this caller is in the batch: no commit to wait for.
                if !more_coming {
                    let _ = self.finish_batch(&mut writer);
                }
                Err(e)
            }
            Ok(Ok(value)) => {
                self.commit_or_hand_over(writer, batch, more_coming)?;
                Ok(value)
            }
        }
    }

    /// Whether callers are queued for the writer and the open batch may
    /// still take them (see the batch caps).
    fn more_coming(&self, writer: &Writer) -> bool {
        let open = writer.batch.as_ref().expect("joined batch is open");
        self.queued.load(Ordering::SeqCst) > 0
            && open.callers < MAX_BATCH_CALLERS
            && open.started.elapsed() < MAX_BATCH_AGE
    }

    /// After a caller's work succeeded: leaves the batch open for the
    /// callers queued behind it and waits for their commit, or commits it
    /// now. Returns once batch `batch` has committed.
    fn commit_or_hand_over(
        &self,
        mut writer: MutexGuard<'_, Writer>,
        batch: u64,
        more_coming: bool,
    ) -> Result<()> {
        if more_coming {
            drop(writer);
            self.wait_for_commit(batch)
        } else {
            self.finish_batch(&mut writer)
        }
    }

    /// [`Db::write`] for the caller that opened the batch: nothing else is
    /// in the transaction yet, so it needs no savepoint of its own (its
    /// failure or panic rolls the whole transaction back).
    fn write_first<T>(
        &self,
        mut writer: MutexGuard<'_, Writer>,
        batch: u64,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&writer.conn)));
        let value = match outcome {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => {
                self.abandon_batch(&mut writer);
                return Err(e);
            }
            Err(panic) => {
                self.abandon_batch(&mut writer);
                drop(writer);
                resume_unwind(panic)
            }
        };
        let more_coming = self.more_coming(&writer);
        self.commit_or_hand_over(writer, batch, more_coming)?;
        Ok(value)
    }

    /// Rolls back a batch that holds only its first caller's failed work,
    /// and marks it finished (no one else joined it).
    fn abandon_batch(&self, writer: &mut Writer) {
        let Some(batch) = writer.batch.take() else {
            return;
        };
        if !writer.conn.is_autocommit() {
            let _ = run_cached(&writer.conn, "ROLLBACK");
        }
        self.commits.lock().finished_through = batch.id;
        self.committed.notify_all();
    }

    /// Commits the open batch (if any), records how it went and wakes its
    /// callers; returns the commit's own result.
    fn finish_batch(&self, writer: &mut Writer) -> Result<()> {
        let Some(batch) = writer.batch.take() else {
            return Ok(());
        };
        let commit = run_cached(&writer.conn, "COMMIT").map_err(Error::from);
        if commit.is_err() && !writer.conn.is_autocommit() {
            let _ = run_cached(&writer.conn, "ROLLBACK");
        }
        let mut log = self.commits.lock();
        log.finished_through = batch.id;
        if let Err(e) = &commit {
            let public = e.to_public();
            log.failed
                .push_back((batch.id, public.code, public.message));
            if log.failed.len() > FAILED_BATCHES_KEPT {
                log.failed.pop_front();
            }
        }
        drop(log);
        self.committed.notify_all();
        commit
    }

    /// Waits until batch `id` has finished; its commit's outcome.
    fn wait_for_commit(&self, id: u64) -> Result<()> {
        let mut log = self.commits.lock();
        while log.finished_through < id {
            self.committed.wait(&mut log);
        }
        match log.failed.iter().find(|(batch, _, _)| *batch == id) {
            Some((_, code, message)) => Err(Error::new(*code, message.clone())),
            None => Ok(()),
        }
    }

    /// The writer connection itself, with no shared transaction open (one
    /// waiting for more callers is committed first), for work that is not
    /// one [`Db::write`]: its own transaction that must commit before
    /// something else happens (`privacy::purge` commits, then
    /// checkpoints), checkpoints, `VACUUM`, migrations in tests.
    pub fn writer(&self) -> MappedMutexGuard<'_, Connection> {
        let mut writer = self.writer.lock();
        // A failed shared commit is reported to its own callers.
        let _ = self.finish_batch(&mut writer);
        MutexGuard::map(writer, |w| &mut w.conn)
    }

    /// The writer, if no one holds it right now (for work that must never
    /// wait for it, see the lock order above).
    pub fn try_writer(&self) -> Option<MappedMutexGuard<'_, Connection>> {
        let mut writer = self.writer.try_lock()?;
        // A failed shared commit is reported to its own callers.
        let _ = self.finish_batch(&mut writer);
        Some(MutexGuard::map(writer, |w| &mut w.conn))
    }

    /// Runs `delete` as one write transaction that may free pages by the
    /// ten thousand (a privacy delete: `crate::privacy::purge_in_bulk`),
    /// with `secure_delete = FAST`, then erases in place what it freed,
    /// holding the writer from start to end ([`free_pages`]). `erase_wait`
    /// bounds the wait for readers after the commit. Returns the delete's
    /// value and whether the erasure completed. A failed `delete` rolls back
    /// and changes nothing; after the commit, a failure leaves the erasure
    /// pending (the marker stays, the next open finishes it).
    pub fn privacy_delete_in_bulk<T>(
        &self,
        delete: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
        erase_wait: Duration,
    ) -> Result<(T, bool)> {
        // No background pass may hold the checkpoint lock when the erasure
        // truncates (see `checkpointer`); taken before the writer.
        let _pass = self.checkpoint_pass.hold();
        let conn = self.writer();
        self.free_pages.arm()?;
        let committed = {
            let _fast = FastSecureDelete::set(&conn)?;
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(Error::from)
                .and_then(|tx| {
                    let value = delete(&tx)?;
                    let drain = self
                        .erasure
                        .commit_privacy_delete(|| tx.commit().map_err(Into::into))?;
                    Ok((value, drain))
                })
        };
        let (value, drain) = match committed {
            Ok(committed) => committed,
            Err(e) => {
                // Rolled back: the free pages are as zeroed as before.
                self.free_pages.disarm()?;
                return Err(e);
            }
        };
        let erased = self
            .free_pages
            .finish(&conn, Instant::now() + erase_wait)
            .unwrap_or(false);
        drop(drain);
        Ok((value, erased))
    }

    /// Privacy deletes versus read snapshots ([`snapshot`]).
    pub fn erasure(&self) -> &ErasureGate {
        &self.erasure
    }

    /// Runs `f` on a read-only connection from the pool, every statement of
    /// it in one read transaction: they all see the same committed state
    /// (a list that checks its parent and then reads the children, a page
    /// merged from several index ranges, a row and its children), never
    /// half of a delete that commits in between. A read that starts while a
    /// privacy delete checkpoints pauses briefly (see
    /// [`snapshot::DRAIN_PAUSE`]) so that the checkpoint finds no reader.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.erasure.pause_while_draining();
        self.with_reader(|conn| {
            run_cached(conn, "BEGIN")?;
            let outcome = f(conn);
            // Ends the read transaction whatever `f` answered; a connection
            // left inside one is not pooled again (`with_reader`).
            run_cached(conn, "COMMIT")?;
            outcome
        })
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
        text_match::register(&conn)?;
        rusqlite::vtab::array::load_module(&conn)?;
        Ok(conn)
    }

    /// Copies the WAL into the database and truncates the WAL file to zero
    /// bytes, so that no deleted page image survives in it.
    pub fn checkpoint_truncate(&self) -> Result<()> {
        let conn = self.writer();
        checkpoint_truncate(&conn)
    }

    /// Stops the background checkpoints (at close, before the final
    /// checkpoint: nothing of the profile runs after close).
    pub fn stop_background_checkpoints(&self) {
        if let Some(mut checkpointer) = self.checkpointer.lock().take() {
            checkpointer.stop();
        }
    }

    /// Drops the pooled readers (before a checkpoint that must see no reader,
    /// and at close).
    pub fn drop_idle_readers(&self) {
        self.readers.lock().clear();
    }
}

impl Writer {
    /// Opens a batch (`BEGIN IMMEDIATE`) unless one is open, counts this
    /// caller in it, and returns its id and whether this caller opened it.
    fn join_batch(&mut self) -> Result<(u64, bool)> {
        let first = self.batch.is_none();
        if first {
            run_cached(&self.conn, "BEGIN IMMEDIATE")?;
            self.batch = Some(Batch {
                id: self.next_batch,
                callers: 0,
                started: Instant::now(),
            });
            self.next_batch += 1;
        }
        let batch = self.batch.as_mut().expect("just opened");
        batch.callers += 1;
        Ok((batch.id, first))
    }
}

/// `PRAGMA secure_delete = FAST` on a connection until dropped (even by a
/// panic), then `ON` again.
struct FastSecureDelete<'c>(&'c Connection);

impl<'c> FastSecureDelete<'c> {
    fn set(conn: &'c Connection) -> Result<FastSecureDelete<'c>> {
        conn.execute_batch("PRAGMA secure_delete = FAST")?;
        Ok(FastSecureDelete(conn))
    }
}

impl Drop for FastSecureDelete<'_> {
    fn drop(&mut self) {
        // Setting a flag: it cannot fail once the connection is open.
        let _ = self.0.execute_batch("PRAGMA secure_delete = ON");
    }
}

/// Runs a transaction-control statement through the statement cache
/// (`execute_batch` would parse it again on every call).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
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
    let synchronous = synchronous.pragma();
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
        -- 64 MiB of page cache for the writer (the default is 2 MiB): a
        -- visit updates four history indexes at random places, and at 1M
        -- visits their hot pages no longer fit in 2 MiB, so every insert
        -- re-read pages. Readers keep the default.
        PRAGMA cache_size = -65536;
        "
    ))?;
    Ok(())
}
