//! Long read snapshots that a privacy delete overtakes, and the truncating
//! checkpoint that makes a delete physical.
//!
//! A privacy delete is complete only when `wal_checkpoint(TRUNCATE)` has
//! copied the zeroed pages into the database and emptied the WAL, and that
//! checkpoint cannot finish while any connection still reads an older
//! snapshot. Short reads ([`super::Db::read`]) end on their own; a long one
//! (a bundle export) must let go. [`ErasureGate`] is how the two meet:
//!
//! - every privacy commit happens under the gate's `commit` lock and bumps
//!   the *privacy epoch*; a [`Snapshot`] records the epoch it started at
//!   (under the same lock, so "started before the delete committed" and
//!   "saw the epoch before the bump" are the same thing) and its owner polls
//!   [`Snapshot::overtaken`] between records, dropping the snapshot and
//!   starting over when it changed; the commit also interrupts the
//!   statement every open snapshot is running, so one inside a long step
//!   (a count, a sort) lets go at once rather than at its next record;
//! - from the privacy commit (same instant, same lock) until its truncating
//!   checkpoint is done, the erasure *drains* readers: new reads and
//!   snapshots pause (bounded by [`DRAIN_PAUSE`]) so the checkpoint finds a
//!   moment with no reader of the old WAL. Starting the drain at the commit
//!   rather than after it matters: a snapshot begun in between reads no
//!   deleted row, so it is not overtaken, yet it pins the WAL until its
//!   whole export is done (measured: purges stalled 200-300 ms on it);
//! - a snapshot's owner publishes its result (renames its file) under the
//!   `commit` lock after checking the epoch, so nothing read before a delete
//!   committed is published after it.
//!
//! Lock order (see the module docs of `db`): writer, then `commit`, then
//! nothing. Holders of `commit` (shared) never wait for the writer.

use crate::error::Result;
use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard};
use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a new read pauses while a purge checkpoints (as long as a
/// purge tries, `privacy::PURGE_ERASE_WAIT`). After it the read goes ahead
/// (it may then delay that checkpoint, never deadlock it: a read started
/// by a thread that holds the writer would otherwise wait for a purge that
/// waits for the writer).
pub const DRAIN_PAUSE: Duration = Duration::from_millis(800);

/// A privacy delete whose erasure has not completed yet (`profile.info`'s
/// `pending_erasure`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct PendingErasure {
    /// Privacy deletes waiting for erasure.
    pub count: u64,
    /// When the oldest of them committed (ms since the epoch).
    pub since: i64,
}

/// Coordination between privacy deletes and read snapshots (module docs).
#[derive(Default)]
pub struct ErasureGate {
    epoch: AtomicU64,
    commit: RwLock<()>,
    /// How many erasures are draining readers right now (from the privacy
    /// commit until its truncating checkpoint is done or given up).
    draining: Mutex<usize>,
    drained: Condvar,
    pending: Mutex<Option<PendingErasure>>,
    /// The snapshots open right now, to interrupt when a privacy delete
    /// commits (see [`ErasureGate::commit_privacy_delete`]).
    live: Mutex<Vec<(u64, rusqlite::InterruptHandle)>>,
    next_snapshot: AtomicU64,
}

/// One erasure draining readers: new reads and snapshots pause while any
/// is alive (bounded by [`DRAIN_PAUSE`]).
pub struct Drain<'a> {
    gate: &'a ErasureGate,
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let mut n = self.gate.draining.lock();
        *n -= 1;
        if *n == 0 {
            self.gate.drained.notify_all();
        }
    }
}

impl ErasureGate {
    /// The privacy epoch: how many privacy deletes committed so far.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Commits a privacy delete (`commit` runs the SQL `COMMIT`) and bumps
    /// the epoch, both under the exclusive `commit` lock, interrupts the
    /// statement each open [`Snapshot`] is running (its owner sees the
    /// error, then [`Snapshot::overtaken`], and lets go), and starts
    /// draining readers at that same instant: a read or snapshot that
    /// begins after the commit pauses until the erasure is done, so it
    /// cannot hold the WAL the erasure must truncate. The caller holds the
    /// writer, and keeps the returned [`Drain`] until its erasure is done.
    pub fn commit_privacy_delete(&self, commit: impl FnOnce() -> Result<()>) -> Result<Drain<'_>> {
        let _exclusive = self.commit.write();
        commit()?;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // Every open snapshot started before this commit (a new one waits
        // for the `commit` lock): its running statement, if any, stops
        // now instead of at its next record (a count or a sort can run
        // long before the first record).
        for (_, handle) in self.live.lock().iter() {
            handle.interrupt();
        }
        Ok(self.drain())
    }

    /// Starts draining readers until the returned guard is dropped.
    pub fn drain(&self) -> Drain<'_> {
        *self.draining.lock() += 1;
        Drain { gate: self }
    }

    /// Runs `f` (checkpoint attempts) while new reads pause.
    pub fn draining<T>(&self, f: impl FnOnce() -> T) -> T {
        let _drain = self.drain();
        f()
    }

    /// Waits (at most [`DRAIN_PAUSE`]) while an erasure drains readers.
    pub fn pause_while_draining(&self) {
        self.pause_until(Instant::now() + DRAIN_PAUSE);
    }

    /// Waits while an erasure drains readers, at most until `deadline`;
    /// true when none is draining.
    fn pause_until(&self, deadline: Instant) -> bool {
        let mut n = self.draining.lock();
        while *n > 0 {
            if self.drained.wait_until(&mut n, deadline).timed_out() {
                return *n == 0;
            }
        }
        true
    }

    fn is_draining(&self) -> bool {
        *self.draining.lock() > 0
    }

    /// Records one more privacy delete whose erasure is pending. Returns
    /// true when none was pending before (the caller starts the eraser).
    pub fn add_pending(&self, now: i64) -> bool {
        let mut pending = self.pending.lock();
        match &mut *pending {
            Some(p) => {
                p.count += 1;
                false
            }
            None => {
                *pending = Some(PendingErasure {
                    count: 1,
                    since: now,
                });
                true
            }
        }
    }

    /// Clears the pending erasure (a truncating checkpoint succeeded).
    pub fn clear_pending(&self) {
        *self.pending.lock() = None;
    }

    /// The pending erasure, if any.
    pub fn pending(&self) -> Option<PendingErasure> {
        *self.pending.lock()
    }
}

/// A read transaction that knows whether a privacy delete has committed
/// since it started ([`super::Db::read_snapshot`]).
pub struct Snapshot<'a> {
    conn: &'a Connection,
    gate: &'a ErasureGate,
    epoch: u64,
    /// Its entry in the gate's live snapshots.
    token: u64,
    reading: std::cell::Cell<bool>,
}

impl<'a> Snapshot<'a> {
    pub(super) fn begin(conn: &'a Connection, gate: &'a ErasureGate) -> Result<Snapshot<'a>> {
        let _shared = Self::shared_after_drain(gate);
        conn.execute_batch("BEGIN DEFERRED")?;
        // The snapshot starts at the first read, so read now, under the lock.
        let started = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .map_err(Into::into);
        if let Err(e) = started {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        let token = gate.next_snapshot.fetch_add(1, Ordering::SeqCst);
        gate.live.lock().push((token, conn.get_interrupt_handle()));
        Ok(Snapshot {
            conn,
            gate,
            epoch: gate.epoch(),
            token,
            reading: std::cell::Cell::new(true),
        })
    }

    /// The shared `commit` lock, taken at a moment when no erasure drains
    /// readers (waiting at most [`DRAIN_PAUSE`] for one): a privacy delete
    /// that commits while this waits for the lock starts a drain, and a
    /// snapshot begun right after it would hold the WAL that drain must
    /// truncate, so it pauses again.
    fn shared_after_drain(gate: &ErasureGate) -> RwLockReadGuard<'_, ()> {
        let deadline = Instant::now() + DRAIN_PAUSE;
        loop {
            let drained = gate.pause_until(deadline);
            let shared = gate.commit.read();
            if !drained || !gate.is_draining() {
                return shared;
            }
        }
    }

    /// The connection, inside the snapshot.
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// Ends the read transaction once everything is read, so that slow work
    /// after it (writing and fsyncing a file) holds no old pages; the epoch
    /// it started at still decides [`Snapshot::publish_unless_overtaken`].
    pub fn end_reading(&self) -> Result<()> {
        if self.reading.replace(false) {
            // No interrupt reaches the connection once it is off the list
            // (one sent earlier, with no statement running, is cleared by
            // SQLite when the next statement starts).
            self.gate.live.lock().retain(|(t, _)| *t != self.token);
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    /// True once a privacy delete committed after this snapshot started:
    /// what it reads may include deleted rows, so drop it and start over.
    pub fn overtaken(&self) -> bool {
        self.gate.epoch() != self.epoch
    }

    /// Runs `publish` (e.g. renaming the finished file into place) only if
    /// no privacy delete committed since the snapshot started, with privacy
    /// commits held off until it returns. `None` when overtaken (or when a
    /// purge is committing right now): start over.
    pub fn publish_unless_overtaken<T>(
        &self,
        publish: impl FnOnce() -> Result<T>,
    ) -> Result<Option<T>> {
        let Some(_shared) = self.gate.commit.try_read() else {
            return Ok(None);
        };
        if self.overtaken() {
            return Ok(None);
        }
        publish().map(Some)
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.end_reading();
    }
}

/// The result row of `PRAGMA wal_checkpoint(TRUNCATE)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// 1 when the checkpoint could not finish (a reader or writer held on).
    pub busy: i64,
    /// Frames left in the WAL (0 once truncated).
    pub log: i64,
    /// Frames copied into the database.
    pub checkpointed: i64,
}

impl Checkpoint {
    /// True when the WAL was copied and truncated: no older page image of
    /// the database survives in it.
    pub fn truncated(&self) -> bool {
        self.busy == 0 && self.log <= 0
    }
}

/// One `wal_checkpoint(TRUNCATE)` on `conn` that waits at most `wait` for
/// readers and writers (instead of the connection's busy timeout, which is
/// restored afterwards).
pub fn checkpoint_truncate_within(conn: &Connection, wait: Duration) -> Result<Checkpoint> {
    conn.busy_timeout(wait)?;
    let row = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok(Checkpoint {
            busy: r.get(0)?,
            log: r.get(1)?,
            checkpointed: r.get(2)?,
        })
    });
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    Ok(row?)
}

/// Repeats [`checkpoint_truncate_within`] (each attempt waiting at most
/// `attempt_wait`) until the WAL is truncated or `deadline` passes; `lock`
/// gives the connection for one attempt and is released between attempts,
/// so the caller never holds it while sleeping. True once truncated.
pub fn truncate_until<G: std::ops::Deref<Target = Connection>>(
    mut lock: impl FnMut() -> G,
    attempt_wait: Duration,
    deadline: Instant,
) -> Result<bool> {
    let mut pause = Duration::from_millis(2);
    loop {
        let done = checkpoint_truncate_within(&lock(), attempt_wait)?.truncated();
        if done {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// How long one checkpoint attempt waits for readers before it gives the
/// writer back.
pub(super) const ATTEMPT_WAIT: Duration = Duration::from_millis(5);

impl super::Db {
    /// Truncates the WAL (the last step of erasure), trying until `deadline`
    /// while new reads pause, and never holding the writer between attempts
    /// (unless a bulk delete left free pages to zero: see `free_pages`).
    /// On success any pending erasure is cleared. True once truncated.
    pub fn erase_pending(&self, deadline: Instant) -> Result<bool> {
        let truncated = self.erasure.draining(|| {
            if self.free_pages.armed() {
                self.free_pages.finish(&self.erasure_writer(), deadline)
            } else {
                truncate_until(|| self.erasure_writer(), ATTEMPT_WAIT, deadline)
            }
        })?;
        if truncated {
            self.erasure.clear_pending();
        }
        Ok(truncated)
    }

    /// The writer for a truncating checkpoint, once no background
    /// checkpoint pass runs (one would make it fail busy at once) and with
    /// none starting until it is dropped.
    fn erasure_writer(&self) -> ErasureWriter<'_> {
        let pass = self.checkpoint_pass.hold();
        ErasureWriter {
            writer: self.writer(),
            _pass: pass,
        }
    }

    /// One attempt of the background eraser: waits at most `wait` for
    /// readers. True (and the pending erasure cleared) once truncated.
    pub fn retry_erasure(&self, wait: Duration) -> Result<bool> {
        let truncated = if self.free_pages.armed() {
            self.free_pages
                .finish(&self.erasure_writer(), Instant::now() + wait)?
        } else {
            checkpoint_truncate_within(&self.erasure_writer(), wait)?.truncated()
        };
        if truncated {
            self.erasure.clear_pending();
        }
        Ok(truncated)
    }
}

/// The writer connection with the checkpoint pass lock held
/// ([`super::Db::erasure_writer`]); the writer is released first.
struct ErasureWriter<'a> {
    writer: parking_lot::MappedMutexGuard<'a, Connection>,
    _pass: parking_lot::MutexGuard<'a, ()>,
}

impl std::ops::Deref for ErasureWriter<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.writer
    }
}
