//! Combined writes: one thread runs the queued writes of the others.
//!
//! [`Db::write`] shares commits, but each caller still runs its own closure
//! on its own thread: the writer mutex passes from caller to caller, and
//! each pass waits for the next thread to be woken and scheduled while the
//! writer sits idle. On two cores with four writing threads those hand-overs
//! were a large part of the serial time of a small write (`visits.record`).
//!
//! [`Db::write_combined`] takes a closure that may run on another thread
//! (`Send + 'static`) and queues it. The caller that finds no leader becomes
//! the leader: it takes the writer and runs every queued closure back to
//! back, each in its own `SAVEPOINT` (the first of a fresh transaction needs
//! none), in one transaction, commits it, and only then hands each caller
//! its result, so that each caller is woken once, when its write is
//! committed. Writes queued meanwhile form the next round. The leader goes
//! on while writes keep coming, for at most [`LEAD_FOR`] after its own write
//! committed and while no [`Db::write`] caller waits for the writer; then,
//! if writes are still queued, it wakes the caller of the oldest one to lead
//! next (one hand-over per [`LEAD_FOR`], not per write).
//!
//! Guarantees are those of [`Db::write`]: a caller returns once its write
//! has committed (or with its own error, its changes rolled back); a
//! closure's error or panic rolls back only its savepoint (a panic is
//! resumed on the caller's own thread); a failed `COMMIT` fails every
//! caller of that transaction.

use super::{run_cached, Db, Writer};
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};
use rusqlite::Connection;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a leader goes on running other callers' writes after its own
/// committed.
const LEAD_FOR: Duration = Duration::from_millis(2);

/// The most writes one combined transaction holds.
const MAX_ROUND: usize = 64;

/// Writes waiting for a leader, and whether one is at work.
#[derive(Default)]
pub(super) struct Combiner {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Box<dyn QueuedWrite>>,
    leading: bool,
}

/// A queued write, its result type erased.
trait QueuedWrite: Send {
    /// Runs the closure on the writer (at most once); whether its changes
    /// are to be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Hands the caller its outcome: its own, or `commit`'s error when its
    /// changes were kept and the commit failed.
    fn finish(self: Box<Self>, commit: &Result<()>);
    /// Asks the caller to lead the next rounds.
    fn lead(&self);
}

/// What the caller of a queued write is waiting for.
enum State<T> {
    Queued,
    /// Lead: its own write is still queued.
    Lead,
    Done(std::thread::Result<Result<T>>),
}

struct Slot<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

impl<T> Slot<T> {
    fn set(&self, state: State<T>) {
        *self.state.lock() = state;
        self.changed.notify_one();
    }
}

struct Job<T, F> {
    f: Option<F>,
    outcome: Option<std::thread::Result<Result<T>>>,
    slot: Arc<Slot<T>>,
}

impl<T, F> QueuedWrite for Job<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)));
        let keep = matches!(outcome, Ok(Ok(_)));
        self.outcome = Some(outcome);
        keep
    }

    fn finish(mut self: Box<Self>, commit: &Result<()>) {
        let outcome = match (self.outcome.take(), commit) {
            (Some(Ok(Ok(_))), Err(e)) => Ok(Err(same_error(e))),
            (Some(outcome), _) => outcome,
            // Never ran: the transaction could not be opened.
            (None, Err(e)) => Ok(Err(same_error(e))),
            (None, Ok(())) => Ok(Err(Error::internal("a combined write did not run"))),
        };
        self.slot.set(State::Done(outcome));
    }

    fn lead(&self) {
        self.slot.set(State::Lead);
    }
}

impl<T, F> Drop for Job<T, F> {
    /// A write dropped before its caller was told (only if the leader
    /// unwinds, which a closure's panic never does: those are caught) fails
    /// instead of leaving its caller waiting forever.
    fn drop(&mut self) {
        if self.f.is_some() || self.outcome.is_some() {
            self.slot.set(State::Done(Ok(Err(Error::internal(
                "the write was dropped: the thread running it failed",
            )))));
        }
    }
}

/// Unwinding out of [`Db::lead_rounds`] (a bug outside the closures) gives
/// the lead to the oldest queued caller, or ends it, so that no caller
/// waits for a leader that is gone.
struct LeadGuard<'a>(&'a Combiner);

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.0.queue.lock();
            match queue.jobs.first() {
                Some(job) => job.lead(),
                None => queue.leading = false,
            }
        }
    }
}

/// The public form of `e`, for each caller that shares it.
fn same_error(e: &Error) -> Error {
    let public = e.to_public();
    Error::new(public.code, public.message)
}

impl Db {
    /// [`Db::write`] for a closure that may run on another caller's thread:
    /// concurrent callers' closures run back to back on one thread, in one
    /// transaction (see the [module docs](self)). Returns once the
    /// transaction holding this write has committed, or with the closure's
    /// error (its changes rolled back); a panic in the closure is resumed
    /// here.
    pub fn write_combined<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let slot = Arc::new(Slot {
            state: Mutex::new(State::Queued),
            changed: Condvar::new(),
        });
        let job = Box::new(Job {
            f: Some(f),
            outcome: None,
            slot: Arc::clone(&slot),
        });
        let lead = {
            let mut queue = self.combiner.queue.lock();
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            self.lead_rounds(&slot);
        }
        loop {
            let mut state = slot.state.lock();
            while matches!(*state, State::Queued) {
                slot.changed.wait(&mut state);
            }
            match std::mem::replace(&mut *state, State::Queued) {
                State::Done(Ok(result)) => return result,
                State::Done(Err(panic)) => {
                    drop(state);
                    resume_unwind(panic)
                }
                State::Lead => {
                    drop(state);
                    self.lead_rounds(&slot);
                }
                State::Queued => unreachable!("waited for a change"),
            }
        }
    }

    /// Runs rounds of queued writes as the leader until the queue is empty
    /// or this caller's write has committed and its lead time is up; then
    /// gives the lead away (or ends it when nothing is queued).
    fn lead_rounds<T>(&self, own: &Slot<T>) {
        let _lead = LeadGuard(&self.combiner);
        let mut writer = self.writer.lock();
        let mut own_done_at: Option<Instant> = None;
        loop {
            let jobs = {
                let mut queue = self.combiner.queue.lock();
                if queue.jobs.is_empty() {
                    queue.leading = false;
                    return;
                }
                let stop = own_done_at.is_some_and(|at| at.elapsed() >= LEAD_FOR)
                    || (own_done_at.is_some() && self.queued.load(Ordering::SeqCst) > 0);
                if stop {
                    // The oldest queued caller leads next; `leading` stays.
                    queue.jobs[0].lead();
                    return;
                }
                let take = queue.jobs.len().min(MAX_ROUND);
                queue.jobs.drain(..take).collect::<Vec<_>>()
            };
            self.run_round(&mut writer, jobs);
            if own_done_at.is_none() && matches!(*own.state.lock(), State::Done(_)) {
                own_done_at = Some(Instant::now());
            }
        }
    }

    /// Runs `jobs` in one transaction (joining a [`Db::write`] batch left
    /// open, if any), commits it and hands every caller its outcome.
    fn run_round(&self, writer: &mut MutexGuard<'_, Writer>, jobs: Vec<Box<dyn QueuedWrite>>) {
        // Writes whose changes the open transaction holds, and writes that
        // failed on their own (told after the commit, like the others).
        let mut kept: Vec<Box<dyn QueuedWrite>> = Vec::with_capacity(jobs.len());
        let mut failed: Vec<Box<dyn QueuedWrite>> = Vec::new();
        for mut job in jobs {
            let first = match writer.join_batch() {
                Ok((_, first)) => first,
                Err(e) => {
                    // No transaction: this write fails without running.
                    job.finish(&Err(e));
                    continue;
                }
            };
            if first {
                // A fresh transaction holds nothing else: the write runs
                // without a savepoint, and its failure rolls all of it back.
                if job.run(&writer.conn) {
                    kept.push(job);
                } else {
                    self.abandon_batch(writer);
                    failed.push(job);
                }
                continue;
            }
            if let Err(e) = run_cached(&writer.conn, "SAVEPOINT hydra_write") {
                // The transaction is unusable: it ends with what it holds,
                // and this write fails without running.
                let commit = self.finish_batch(writer);
                finish_all(&mut kept, &commit);
                job.finish(&Err(e.into()));
                continue;
            }
            let keep = job.run(&writer.conn);
            let ended = if keep {
                run_cached(&writer.conn, "RELEASE hydra_write")
            } else {
                run_cached(&writer.conn, "ROLLBACK TO hydra_write")
                    .and_then(|()| run_cached(&writer.conn, "RELEASE hydra_write"))
            };
            match ended {
                // As in `Db::write`: the savepoint is unusable, the
                // transaction ends with what it holds, this write fails.
                Err(e) => {
                    let commit = self.finish_batch(writer);
                    finish_all(&mut kept, &commit);
                    job.finish(&Err(e.into()));
                }
                Ok(()) if keep => kept.push(job),
                Ok(()) => failed.push(job),
            }
        }
        let commit = self.finish_batch(writer);
        finish_all(&mut kept, &commit);
        finish_all(&mut failed, &Ok(()));
    }
}

/// Hands each write of `jobs` its outcome (`commit`'s error replaces a
/// success).
fn finish_all(jobs: &mut Vec<Box<dyn QueuedWrite>>, commit: &Result<()>) {
    for job in jobs.drain(..) {
        job.finish(commit);
    }
}
