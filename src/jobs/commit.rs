//! How the jobs ledger is written: group commit of ledger changes, the
//! `job.updated` events that follow each commit, and the signal waiters use
//! to learn that a job finished.

use super::ledger;
use super::live::LiveProgress;
use super::model::Job;
use crate::db::Db;
use crate::error::{Error, ErrorCode, Result};
use crate::types::HostEventFn;
use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, RwLock};
use rusqlite::{Transaction, TransactionBehavior};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Jobs touched by one ledger transaction.
#[derive(Default)]
pub(super) struct Touched {
    ids: Vec<String>,
    /// True when a job reached a terminal status.
    pub finished: bool,
}

impl Touched {
    /// Records that job `id` changed (it gets a `job.updated` event).
    pub fn changed(&mut self, id: &str) {
        self.ids.push(id.to_owned());
    }
}

/// A ledger change waiting for the writer (see [`LedgerWriter::commit`]). `work`
/// returns whether the change succeeded (its result is stored by itself).
pub(super) struct PendingChange {
    pub work: ChangeFn,
    pub state: Arc<Mutex<BatchState>>,
}

/// The body of a [`PendingChange`].
pub(super) type ChangeFn = Box<dyn FnOnce(&Transaction<'_>, &mut Touched) -> bool + Send>;

/// Where a [`PendingChange`] is.
pub(super) enum BatchState {
    Waiting,
    Committed,
    Failed(crate::error::PublicError),
}

/// What the event thread delivers as `job.updated`, in the order queued.
pub(super) enum Event {
    /// A job as a commit left it (a running job with its live progress).
    Committed(Job),
    /// A running job as a progress report left it: the job as it started
    /// with that progress; the event thread refreshes its links (a
    /// `threads.delete` may have cleared them since it started).
    Live(Job),
}

/// The writer side of the ledger, shared by the workers and the API.
pub(super) struct LedgerWriter {
    /// The live progress of the running jobs (see [`LiveProgress`]).
    pub live: LiveProgress,
    /// Ledger changes waiting for the writer lock (group commit).
    pending: Mutex<Vec<PendingChange>>,
    /// Set (under the writer lock) when close has written its last ledger
    /// row: a job that ends later leaves no trace in a closed profile.
    sealed: AtomicBool,
    /// The host's event callback (read by the event thread).
    event_fn: Arc<RwLock<Option<HostEventFn>>>,
    /// Where committed changes are sent as events; `None` once closed.
    events: Mutex<Option<Sender<Event>>>,
    /// Bumped whenever a job reaches a terminal status (and at shutdown).
    finished: Mutex<u64>,
    finished_changed: Condvar,
}

impl LedgerWriter {
    pub fn new() -> LedgerWriter {
        LedgerWriter {
            live: LiveProgress::default(),
            pending: Mutex::new(Vec::new()),
            sealed: AtomicBool::new(false),
            event_fn: Arc::new(RwLock::new(None)),
            events: Mutex::new(None),
            finished: Mutex::new(0),
            finished_changed: Condvar::new(),
        }
    }

    /// The slot of the host's event callback.
    pub fn event_slot(&self) -> Arc<RwLock<Option<HostEventFn>>> {
        Arc::clone(&self.event_fn)
    }

    /// Where events go from now on (`None`: nowhere, the event thread ends).
    pub fn set_event_sink(&self, sink: Option<Sender<Event>>) {
        *self.events.lock() = sink;
    }

    /// True when a host event callback is set.
    pub fn wants_events(&self) -> bool {
        self.event_fn.read().is_some()
    }

    /// Queues the `job.updated` event of a live progress report.
    pub fn send_live(&self, job: Job) {
        if let Some(sender) = &*self.events.lock() {
            let _ = sender.send(Event::Live(job));
        }
    }

    /// No ledger change commits after this.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
    }

    /// The current finish generation (see [`LedgerWriter::wait_for_finish`]).
    pub fn generation(&self) -> u64 {
        *self.finished.lock()
    }

    /// Blocks until the finish generation differs from `seen` (true) or
    /// `deadline` passes (false).
    pub fn wait_for_finish(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut finished = self.finished.lock();
        while *finished == seen {
            match deadline {
                Some(deadline) => {
                    if self
                        .finished_changed
                        .wait_until(&mut finished, deadline)
                        .timed_out()
                    {
                        return *finished != seen;
                    }
                }
                None => self.finished_changed.wait(&mut finished),
            }
        }
        true
    }

    /// Runs `f` as part of one `IMMEDIATE` transaction on the writer and
    /// returns its result once that transaction is committed.
    ///
    /// Group commit: `f` is queued, then the caller takes the writer lock.
    /// Whoever holds it runs every queued change in one transaction (each
    /// inside its own savepoint, so a change that fails is undone alone and
    /// reports its own error) and commits once; callers whose change was
    /// already committed by the holder find it done when they get the lock.
    /// Under load many ledger changes share one commit; none is reported
    /// before it is durable.
    ///
    /// After the commit, and before the writer lock is released (so events
    /// keep commit order), the jobs the changes touched are queued as
    /// `job.updated` events; the host callback itself runs later on the
    /// event thread, outside any lock.
    pub fn commit<T: Send + 'static>(
        &self,
        db: &Db,
        f: impl FnOnce(&Transaction<'_>, &mut Touched) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let slot: Arc<Mutex<Option<Result<T>>>> = Arc::default();
        let state = Arc::new(Mutex::new(BatchState::Waiting));
        let out = Arc::clone(&slot);
        self.pending.lock().push(PendingChange {
            work: Box::new(move |tx, touched| {
                let result = f(tx, touched);
                let ok = result.is_ok();
                *out.lock() = Some(result);
                ok
            }),
            state: Arc::clone(&state),
        });
        {
            let mut conn = db.writer();
            if matches!(*state.lock(), BatchState::Waiting) {
                let batch = std::mem::take(&mut *self.pending.lock());
                self.commit_batch(&mut conn, batch);
            }
        }
        let state = std::mem::replace(&mut *state.lock(), BatchState::Waiting);
        match state {
            BatchState::Committed => slot
                .lock()
                .take()
                .unwrap_or_else(|| Err(Error::internal("a ledger change was lost"))),
            BatchState::Failed(e) => Err(Error::new(e.code, e.message)),
            BatchState::Waiting => Err(Error::internal("a ledger change was lost")),
        }
    }

    /// Queues `f` for the next group commit and returns without waiting:
    /// the change is committed now if the writer is free, else by whoever
    /// takes it next through [`LedgerWriter::commit`]. For callers that must
    /// never wait for the writer (a job holding a read snapshot). A change
    /// still queued when the ledger is sealed at close is dropped.
    pub fn submit(
        &self,
        db: &Db,
        f: impl FnOnce(&Transaction<'_>, &mut Touched) -> Result<()> + Send + 'static,
    ) {
        self.pending.lock().push(PendingChange {
            work: Box::new(move |tx, touched| f(tx, touched).is_ok()),
            state: Arc::new(Mutex::new(BatchState::Waiting)),
        });
        self.flush_if_free(db);
    }

    /// Queues `f` for the next group commit without trying the writer: it
    /// is committed by whoever next writes the ledger (at the latest with
    /// the job's end), or by the next [`LedgerWriter::flush_if_free`].
    pub fn defer(
        &self,
        f: impl FnOnce(&Transaction<'_>, &mut Touched) -> Result<()> + Send + 'static,
    ) {
        self.pending.lock().push(PendingChange {
            work: Box::new(move |tx, touched| f(tx, touched).is_ok()),
            state: Arc::new(Mutex::new(BatchState::Waiting)),
        });
    }

    /// Commits the queued changes now if the writer is free; else leaves
    /// them to its next holder. Never waits.
    pub fn flush_if_free(&self, db: &Db) {
        if let Some(mut conn) = db.try_writer() {
            let batch = std::mem::take(&mut *self.pending.lock());
            if !batch.is_empty() {
                self.commit_batch(&mut conn, batch);
            }
        }
    }

    /// Runs a batch of queued changes in one transaction (the caller holds
    /// the writer lock) and marks each `Committed` or `Failed`.
    pub(super) fn commit_batch(&self, conn: &mut rusqlite::Connection, batch: Vec<PendingChange>) {
        let mut states = Vec::with_capacity(batch.len());
        let mut touched = Touched::default();
        let committed = (|| -> Result<()> {
            if self.sealed.load(Ordering::SeqCst) {
                return Err(closed());
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let alone = batch.len() == 1;
            let wants_events = self.wants_events();
            // Each change's jobs are read right after it, so a batch of
            // several progress reports of one job gives one event each.
            let mut events: Vec<Job> = Vec::new();
            for change in batch {
                states.push(change.state);
                let mut mine = Touched::default();
                if alone {
                    // One change: its failure rolls back the transaction.
                    if !(change.work)(&tx, &mut mine) {
                        return Ok(());
                    }
                } else {
                    tx.prepare_cached("SAVEPOINT ledger_change")?.execute([])?;
                    if (change.work)(&tx, &mut mine) {
                        tx.prepare_cached("RELEASE ledger_change")?.execute([])?;
                    } else {
                        tx.execute_batch("ROLLBACK TO ledger_change; RELEASE ledger_change")?;
                        continue;
                    }
                }
                if wants_events {
                    events.extend(mine.ids.iter().filter_map(|id| {
                        let mut job = ledger::get(&tx, id).ok().flatten()?;
                        self.live.overlay(&mut job);
                        Some(job)
                    }));
                }
                touched.ids.extend(mine.ids);
                touched.finished |= mine.finished;
            }
            tx.commit()?;
            if let Some(sender) = &*self.events.lock() {
                for job in events {
                    let _ = sender.send(Event::Committed(job));
                }
            }
            Ok(())
        })();
        for state in states {
            *state.lock() = match &committed {
                Ok(()) => BatchState::Committed,
                Err(e) => BatchState::Failed(e.to_public()),
            };
        }
        if committed.is_ok() && touched.finished {
            self.notify_finished();
        }
    }

    /// Wakes every waiter of [`LedgerWriter::wait_for_finish`].
    pub fn notify_finished(&self) {
        *self.finished.lock() += 1;
        self.finished_changed.notify_all();
    }
}

fn closed() -> Error {
    Error::new(ErrorCode::Closed, "the profile handle is closed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobLinks, JobStatus};
    use crate::profile::{OpenOptions, Profile};
    use serde_json::json;

    fn change(id: &'static str, succeeds: bool) -> (PendingChange, Arc<Mutex<BatchState>>) {
        let state = Arc::new(Mutex::new(BatchState::Waiting));
        let work: ChangeFn = Box::new(move |tx, touched| {
            let payload = json!({});
            let links = JobLinks::none();
            ledger::insert(tx, id, "t", &payload, &links, JobStatus::Queued, 1).unwrap();
            touched.changed(id);
            succeeds
        });
        let pending = PendingChange {
            work,
            state: Arc::clone(&state),
        };
        (pending, state)
    }

    #[test]
    fn a_failed_change_in_a_group_commit_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
        let (a, state_a) = change("a", true);
        let (b, state_b) = change("b", false);
        let (c, state_c) = change("c", true);
        {
            let mut conn = profile.db().writer();
            LedgerWriter::new().commit_batch(&mut conn, vec![a, b, c]);
        }
        for state in [state_a, state_b, state_c] {
            assert!(matches!(*state.lock(), BatchState::Committed));
        }
        let exists = |id: &str| profile.jobs().get(id).is_ok();
        assert!(exists("a") && exists("c"));
        assert!(!exists("b"), "the failed change must be rolled back");
    }

    #[test]
    fn concurrent_commits_each_get_their_own_result() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
        let writer = Arc::new(LedgerWriter::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let profile = profile.clone();
                let writer = Arc::clone(&writer);
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let n = t * 100 + i;
                            writer.commit(profile.db(), move |_, _| {
                                if n % 7 == 0 {
                                    Err(Error::conflict("seven"))
                                } else {
                                    Ok(n)
                                }
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (t, thread) in threads.into_iter().enumerate() {
            for (i, result) in thread.join().unwrap().into_iter().enumerate() {
                let n = t * 100 + i;
                match result {
                    Ok(v) => assert_eq!(v, n),
                    Err(e) => {
                        assert_eq!(n % 7, 0);
                        assert_eq!(e.code(), ErrorCode::Conflict);
                    }
                }
            }
        }
    }
}
