//! The executor behind the ledger: a crossbeam worker pool, the registry of
//! host job handlers, cancellation tokens, `job.updated` events and waiting.
//!
//! Ownership, so that nothing keeps a profile alive by accident: the
//! [`Jobs`] value lives inside the profile and owns the sending side of the
//! work queue. Worker threads hold only the `Shared` state, whose link
//! back to the profile is weak; a worker upgrades it while it runs jobs. Dropping (or closing) the profile drops the queue's sender, and the
//! idle workers end.
//!
//! Every ledger change commits through [`LedgerWriter::commit`] (group
//! commit; `job.updated` events queued in commit order). The host's event
//! callback runs on the event thread started here, outside every lock.

use super::commit::{Event, LedgerWriter};
use super::context::JobContext;
use super::ledger::{self, Move, ProgressPatch};
use super::live::Reported;
use super::model::{Job, JobError, JobLinks, JobStatus, JobType};
use crate::db::{ConnExt, Db};
use crate::error::{Error, ErrorCode, Result};
use crate::profile::{ClosingExemption, Profile, WeakProfile};
use crate::types::{is_valid_id, new_id, now_ms, HostEventFn, HostJsonFn, Millis, Patch};
use crossbeam_channel::{Receiver, Sender};
use once_cell::sync::OnceCell;
use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A queued job handed to the workers.
struct Dispatch {
    id: String,
    job_type: String,
}

/// What runs a job: the host's handler for its type, else the built-in type.
enum Runner {
    Builtin(fn(&JobContext) -> Result<Value>),
    Host(HostJsonFn),
}

impl Runner {
    fn run(&self, ctx: &JobContext) -> Result<Value> {
        match self {
            Runner::Builtin(run) => run(ctx),
            Runner::Host(handler) => {
                let job = serde_json::to_value(ctx.job())
                    .map_err(|_| Error::internal("job encoding failed"))?;
                handler(&job)
            }
        }
    }
}

/// Host handlers by job type, and the queued jobs waiting for one (a job
/// recovered at open whose host handler is not registered yet).
struct Registry {
    /// The built-in types the registry handed down at open.
    builtin: &'static [JobType],
    handlers: HashMap<String, HostJsonFn>,
    parked: HashMap<String, Vec<String>>,
}

impl Registry {
    fn new(builtin: &'static [JobType]) -> Registry {
        Registry {
            builtin,
            handlers: HashMap::new(),
            parked: HashMap::new(),
        }
    }

    fn runner(&self, job_type: &str) -> Option<Runner> {
        if let Some(handler) = self.handlers.get(job_type) {
            return Some(Runner::Host(Arc::clone(handler)));
        }
        builtin_type(self.builtin, job_type).map(|t| Runner::Builtin(t.run))
    }
}

/// The built-in type named `name` among `types`, if any.
fn builtin_type<'a>(types: &'a [JobType], name: &str) -> Option<&'a JobType> {
    types.iter().find(|t| t.name == name)
}

/// The state workers share with the [`Jobs`] handle.
struct Shared {
    profile: OnceCell<WeakProfile>,
    registry: Mutex<Registry>,
    /// Cancellation tokens of the jobs running now, by id.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    running_changed: Condvar,
    /// Writes the ledger (group commit, events, the finished signal).
    ledger: LedgerWriter,
    /// Set when the profile starts closing: no job starts any more.
    stopping: AtomicBool,
    /// Tests only: called with the job id after each queued progress report
    /// is live (a test blocks in it to hold a job still at a known point).
    #[cfg(test)]
    progress_hook: Mutex<Option<ProgressHook>>,
}

/// See `Shared::progress_hook`.
#[cfg(test)]
pub(crate) type ProgressHook = Arc<dyn Fn(&str, &ProgressPatch) + Send + Sync>;

impl Shared {
    fn profile(&self) -> Result<Profile> {
        self.profile
            .get()
            .and_then(WeakProfile::upgrade)
            .ok_or_else(closed)
    }

    /// Registers the cancellation token of a job about to run; `None` once
    /// the profile is closing (the job must not start).
    fn track(&self, id: &str) -> Option<Arc<AtomicBool>> {
        let mut running = self.running.lock();
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        let token = Arc::new(AtomicBool::new(false));
        running.insert(id.to_owned(), Arc::clone(&token));
        Some(token)
    }

    fn untrack(&self, id: &str) {
        self.ledger.live.end(id);
        self.running.lock().remove(id);
        self.running_changed.notify_all();
    }

    /// `job` (a live report's snapshot) with the links the ledger holds
    /// now; read on the event thread, which holds no lock.
    fn with_current_links(&self, mut job: Job) -> Job {
        if job.thread_id.is_none() && job.task_id.is_none() {
            return job;
        }
        let links = self.profile().and_then(|profile| {
            profile.db().read(|conn| {
                conn.query_opt(
                    "SELECT thread_id, task_id FROM jobs WHERE id = ?1",
                    [&job.id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
        });
        // A row gone or unreadable: show no links rather than stale ones.
        (job.thread_id, job.task_id) = links.ok().flatten().unwrap_or((None, None));
        job
    }

    fn cancel_requested(&self, id: &str) -> bool {
        self.running
            .lock()
            .get(id)
            .is_some_and(|t| t.load(Ordering::SeqCst))
    }

    /// The runner for a dispatched job, or `None` after parking it until a
    /// host handler for its type is registered.
    fn runner_or_park(&self, d: &Dispatch) -> Option<Runner> {
        let mut registry = self.registry.lock();
        let runner = registry.runner(&d.job_type);
        if runner.is_none() {
            registry
                .parked
                .entry(d.job_type.clone())
                .or_default()
                .push(d.id.clone());
        }
        runner
    }

    /// A dispatched job ready to start: it has a runner and a token. `None`
    /// when the profile is closing (the job stays queued) or when no runner
    /// exists for its type yet (the job is parked).
    fn prepare(&self, d: Dispatch) -> Option<Prepared> {
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        let runner = self.runner_or_park(&d)?;
        let token = self.track(&d.id)?;
        Some(Prepared {
            id: d.id,
            runner,
            token,
        })
    }

    /// Moves a prepared job to `running` in its own transaction.
    fn start(&self, profile: &Profile, next: Prepared) -> Option<Started> {
        let id = next.id.clone();
        let started = self.ledger.commit(profile.db(), move |tx, touched| {
            ledger::transition(tx, &id, Move::Start, now_ms())?;
            touched.changed(&id);
            ledger::require(tx, &id)
        });
        self.started(next, started.ok())
    }

    fn started(&self, next: Prepared, job: Option<Job>) -> Option<Started> {
        match job {
            Some(job) => Some(Started { job, job_ref: next }),
            // Cancelled (or pruned) while it waited in the queue.
            None => {
                self.untrack(&next.id);
                None
            }
        }
    }

    /// Ends the running job `id` and, in the same transaction (one commit
    /// for both), starts the worker's `next` job if there is one. The
    /// finished job becomes `cancelled` if cancellation was requested
    /// (whatever the work returned), else `succeeded` with the work's value
    /// or `failed` with its error. The token is read under the writer lock,
    /// which `jobs.cancel` also holds when it sets it, so the two agree.
    fn finish_then_start(
        &self,
        profile: &Profile,
        id: &str,
        outcome: std::result::Result<Value, JobError>,
        token: &Arc<AtomicBool>,
        next: Option<Prepared>,
    ) -> Option<Started> {
        let next_id = next.as_ref().map(|n| n.id.clone());
        let (finished_id, token) = (id.to_owned(), Arc::clone(token));
        let committed = self.ledger.commit(profile.db(), move |tx, touched| {
            let id = finished_id.as_str();
            let now = now_ms();
            let change = if token.load(Ordering::SeqCst) {
                Move::Cancel(cancelled_error())
            } else {
                match outcome {
                    Ok(value) => Move::Succeed(value),
                    Err(error) => Move::Fail(error),
                }
            };
            ledger::transition(tx, id, change, now)?;
            touched.changed(id);
            touched.finished = true;
            let Some(next_id) = &next_id else {
                return Ok(None);
            };
            match ledger::transition(tx, next_id, Move::Start, now) {
                Ok(_) => {
                    touched.changed(next_id);
                    ledger::require(tx, next_id).map(Some)
                }
                // The next job was cancelled or pruned meanwhile: the finish
                // still commits.
                Err(e) if matches!(e.code(), ErrorCode::Conflict | ErrorCode::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        });
        self.untrack(id);
        match (committed, next) {
            (Ok(job), Some(next)) => self.started(next, job),
            // If the commit failed (disk error, or the profile was closed
            // first) the finished job stays `running` in the ledger and the
            // next open marks it `interrupted`; the next job starts alone.
            (Err(_), Some(next)) => self.start(profile, next),
            (_, None) => None,
        }
    }
}

/// A dispatched job with its runner and cancellation token.
struct Prepared {
    id: String,
    runner: Runner,
    token: Arc<AtomicBool>,
}

/// A job the ledger shows `running`, about to run on this worker.
struct Started {
    job: Job,
    job_ref: Prepared,
}

/// The worker loop: runs jobs one after another. When a job ends while
/// another is waiting in the queue, its end and the next job's start share
/// one commit, which halves the ledger's commits under load without ever
/// showing a state before it is durable.
fn worker_loop(shared: Arc<Shared>, queue: Receiver<Dispatch>) {
    // The profile is held only while a chain of jobs runs; an idle worker
    // blocked on the queue holds none.
    let mut current: Option<(Profile, Started)> = None;
    loop {
        let (profile, started) = match current.take() {
            Some(chain) => chain,
            None => {
                let Ok(d) = queue.recv() else {
                    break;
                };
                let Ok(profile) = shared.profile() else {
                    break;
                };
                let _clock = profile.clock_scope();
                match shared.prepare(d).and_then(|p| shared.start(&profile, p)) {
                    Some(started) => (profile, started),
                    None => continue,
                }
            }
        };
        let Started { job, job_ref } = started;
        let _clock = profile.clock_scope();
        shared.ledger.live.begin(&job);
        let ctx = JobContext::new(profile.clone(), job, Arc::clone(&job_ref.token));
        let outcome =
            run_guarded(|| job_ref.runner.run(&ctx)).map_err(|e| JobError::from_error(&e));
        drop(ctx);
        let next = queue.try_recv().ok().and_then(|d| shared.prepare(d));
        current = shared
            .finish_then_start(&profile, &job_ref.id, outcome, &job_ref.token, next)
            .map(|next| (profile, next));
    }
}

/// Runs a job's work on the current thread, marked as a job thread; a panic
/// becomes an `internal` error of the job, never of the pool.
fn run_guarded(work: impl FnOnce() -> Result<Value>) -> Result<Value> {
    let _job_thread = ClosingExemption::enter();
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(Error::internal(
            "the job panicked; it was stopped and marked failed",
        ))
    })
}

fn closed() -> Error {
    Error::new(ErrorCode::Closed, "the profile handle is closed")
}

fn cancel_requested() -> Error {
    Error::new(
        ErrorCode::Cancelled,
        "cancellation of this job was requested; stop and return",
    )
}

fn cancelled_error() -> JobError {
    JobError::new(ErrorCode::Cancelled, "the job was cancelled")
}

fn no_handler(job_type: &str) -> Error {
    Error::new(
        ErrorCode::NoHandler,
        "no handler is registered for this job type",
    )
    .with_detail("job_type", job_type)
}

/// Delivers `job.updated` events to the host's callback, in the order they
/// were queued; a running job is shown with its live progress as of now.
fn event_loop(shared: Arc<Shared>, events: Receiver<Event>) {
    let slot = shared.ledger.event_slot();
    while let Ok(event) = events.recv() {
        let callback = slot.read().clone();
        let Some(callback) = callback else {
            continue;
        };
        let job = match event {
            Event::Committed(job) => job,
            Event::Live(job) => shared.with_current_links(job),
        };
        let event = serde_json::json!({"type": "job.updated", "job": job});
        // A panicking host callback loses its event, nothing more.
        let _ = catch_unwind(AssertUnwindSafe(|| callback(&event)));
    }
}

/// Waits until `handle`'s thread ends or `deadline` passes; a thread still
/// busy then (a host handler that never returns) is detached.
fn join_until(handle: JoinHandle<()>, deadline: Instant) {
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}

/// The jobs service of one profile ([`Profile::jobs`]).
pub struct Jobs {
    shared: Arc<Shared>,
    workers_wanted: usize,
    queue: Mutex<Option<Sender<Dispatch>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    event_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Jobs {
    /// A stopped service with room for `workers` threads that runs the
    /// built-in `types`; [`Jobs::start`] starts it.
    pub(crate) fn new(workers: usize, types: &'static [JobType]) -> Jobs {
        Jobs {
            shared: Arc::new(Shared {
                profile: OnceCell::new(),
                registry: Mutex::new(Registry::new(types)),
                running: Mutex::new(HashMap::new()),
                running_changed: Condvar::new(),
                ledger: LedgerWriter::new(),
                stopping: AtomicBool::new(false),
                #[cfg(test)]
                progress_hook: Mutex::new(None),
            }),
            workers_wanted: workers.max(1),
            queue: Mutex::new(None),
            workers: Mutex::new(Vec::new()),
            event_thread: Mutex::new(None),
        }
    }

    /// Crash recovery, run at open before any job starts: jobs left
    /// `running` become `failed` / `interrupted`, unless their built-in type
    /// may re-run (host-handled types never do).
    pub(crate) fn recover(db: &Db, types: &[JobType]) -> Result<usize> {
        db.write(|tx| {
            ledger::recover_interrupted(
                tx,
                |t| builtin_type(types, t).is_some_and(|t| t.rerun_after_crash),
                now_ms(),
            )
        })
    }

    /// Starts the event thread and the workers, then queues every job the
    /// ledger holds as `queued` (oldest first).
    pub(crate) fn start(&self, profile: &Profile) -> Result<()> {
        let _ = self.shared.profile.set(profile.downgrade());
        let (event_tx, event_rx) = crossbeam_channel::unbounded();
        let shared = Arc::clone(&self.shared);
        let event_thread = std::thread::Builder::new()
            .name("hydra-events".into())
            .spawn(move || event_loop(shared, event_rx))?;
        self.shared.ledger.set_event_sink(Some(event_tx));
        *self.event_thread.lock() = Some(event_thread);

        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        let mut workers = self.workers.lock();
        for n in 0..self.workers_wanted {
            let shared = Arc::clone(&self.shared);
            let queue_rx = queue_rx.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("hydra-job-{n}"))
                    .spawn(move || worker_loop(shared, queue_rx))?,
            );
        }
        *self.queue.lock() = Some(queue_tx);
        for (id, job_type) in profile.db().read(ledger::queued)? {
            self.dispatch(Dispatch { id, job_type });
        }
        Ok(())
    }

    fn dispatch(&self, d: Dispatch) {
        if let Some(queue) = &*self.queue.lock() {
            let _ = queue.send(d);
        }
    }

    fn profile(&self) -> Result<Profile> {
        self.shared.profile()
    }

    /// Registers (or with `None` unregisters) the host handler that runs
    /// jobs of `job_type`; registering again replaces the previous one. A
    /// host handler takes precedence over a built-in type of the same name.
    /// Queued jobs that were waiting for a handler of this type start.
    pub fn register_host_handler(&self, job_type: &str, handler: Option<HostJsonFn>) -> Result<()> {
        if !is_valid_id(job_type) {
            return Err(Error::invalid(
                "job_type",
                "job types are 1..128 characters of [A-Za-z0-9_.:-]",
            ));
        }
        let parked = {
            let mut registry = self.shared.registry.lock();
            match handler {
                Some(handler) => {
                    registry.handlers.insert(job_type.to_owned(), handler);
                    registry.parked.remove(job_type).unwrap_or_default()
                }
                None => {
                    registry.handlers.remove(job_type);
                    Vec::new()
                }
            }
        };
        for id in parked {
            self.dispatch(Dispatch {
                id,
                job_type: job_type.to_owned(),
            });
        }
        Ok(())
    }

    /// True when jobs of `job_type` can run now (a host handler is
    /// registered for it, or it is a built-in type).
    pub fn has_runner(&self, job_type: &str) -> bool {
        self.shared.registry.lock().runner(job_type).is_some()
    }

    /// Sets (or with `None` clears) the callback that receives
    /// `{"type":"job.updated","job":{...}}` on every job change.
    pub fn set_event_callback(&self, callback: Option<HostEventFn>) {
        *self.shared.ledger.event_slot().write() = callback;
    }

    /// Writes the job row `queued`, then hands it to the worker pool.
    /// Returns the job id. `no_handler` when nothing can run `job_type`;
    /// `not_found` when a link names a missing thread or task (checked in
    /// the same transaction as the insert).
    pub fn submit(&self, job_type: &str, payload: Value, links: JobLinks) -> Result<String> {
        self.submit_with(job_type, move |_| Ok(payload), links)
    }

    /// [`Jobs::submit`] with the payload made from the job's `created_at`
    /// (in the insert's transaction): for a request whose defaults name
    /// the job's creation time (`bundle.export`'s default path).
    pub fn submit_with(
        &self,
        job_type: &str,
        payload: impl FnOnce(Millis) -> Result<Value> + Send + 'static,
        links: JobLinks,
    ) -> Result<String> {
        let profile = self.profile()?;
        if !self.has_runner(job_type) {
            return Err(no_handler(job_type));
        }
        let id = new_id();
        let (new_id, new_type) = (id.clone(), job_type.to_owned());
        self.shared
            .ledger
            .commit(profile.db(), move |tx, touched| {
                links.check(tx)?;
                let now = now_ms();
                let payload = payload(now)?;
                ledger::insert(
                    tx,
                    &new_id,
                    &new_type,
                    &payload,
                    &links,
                    JobStatus::Queued,
                    now,
                )?;
                touched.changed(&new_id);
                Ok(())
            })?;
        self.dispatch(Dispatch {
            id: id.clone(),
            job_type: job_type.to_owned(),
        });
        Ok(id)
    }

    /// The job `id`, or `not_found`; a running job with its live progress.
    pub fn get(&self, id: &str) -> Result<Job> {
        let mut job = self
            .profile()?
            .db()
            .read(|conn| ledger::require(conn, id))?;
        self.overlay(&mut job);
        Ok(job)
    }

    /// Shows a job read from the ledger as it is now: a running job gets
    /// its live progress (see `jobs::live`).
    pub(crate) fn overlay(&self, job: &mut Job) {
        self.shared.ledger.live.overlay(job);
    }

    /// Blocks until the job is terminal, then returns it; `timeout` if it
    /// is not terminal after `timeout`; `closed` if the profile closes while
    /// the job is still queued (it stays queued for the next open).
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<Job> {
        self.wait_until(id, Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, id: &str, deadline: Option<Instant>) -> Result<Job> {
        let ledger = &self.shared.ledger;
        loop {
            let seen = ledger.generation();
            let job = self.get(id)?;
            if job.status.is_terminal() {
                return Ok(job);
            }
            if job.status == JobStatus::Queued && self.shared.stopping.load(Ordering::SeqCst) {
                return Err(Error::new(
                    ErrorCode::Closed,
                    "the profile is closing; the job stays queued for the next open",
                ));
            }
            if !ledger.wait_for_finish(seen, deadline) {
                let job = self.get(id)?;
                if job.status.is_terminal() {
                    return Ok(job);
                }
                return Err(Error::new(
                    ErrorCode::Timeout,
                    "the job did not finish within the timeout",
                )
                .with_detail("status", job.status.as_str()));
            }
        }
    }

    /// The one path of a job-backed operation: queues a job of `job_type`
    /// whose payload is `request` (its links checked in the same
    /// transaction as the insert, so a bad link writes nothing); with
    /// `wait`, waits for it and decodes its result as `Out` (a failed job
    /// returns its own error). Returns the job id and, with `wait`, the
    /// result.
    pub fn submit_request<Req: serde::Serialize, Out: serde::de::DeserializeOwned>(
        &self,
        job_type: &str,
        request: &Req,
        links: JobLinks,
        wait: bool,
    ) -> Result<(String, Option<Out>)> {
        let payload = serde_json::to_value(request)
            .map_err(|_| Error::internal("request encoding failed"))?;
        self.submit_request_with(job_type, move |_| Ok(payload), links, wait)
    }

    /// [`Jobs::submit_request`] with the payload made from the job's
    /// `created_at`, as [`Jobs::submit_with`] makes it.
    pub fn submit_request_with<Out: serde::de::DeserializeOwned>(
        &self,
        job_type: &str,
        payload: impl FnOnce(Millis) -> Result<Value> + Send + 'static,
        links: JobLinks,
        wait: bool,
    ) -> Result<(String, Option<Out>)> {
        let id = self.submit_with(job_type, payload, links)?;
        if !wait {
            return Ok((id, None));
        }
        let result = self.result_of(&id)?;
        let result = serde_json::from_value(result)
            .map_err(|_| Error::internal("a job result did not decode"))?;
        Ok((id, Some(result)))
    }

    /// For `wait: true` operations: submits, waits without limit, and
    /// returns the job id and its result, or the job's error (with the
    /// job's code) if it failed or was cancelled. The job stays in the
    /// ledger either way.
    pub fn submit_and_wait(
        &self,
        job_type: &str,
        payload: Value,
        links: JobLinks,
    ) -> Result<(String, Value)> {
        let id = self.submit(job_type, payload, links)?;
        let result = self.result_of(&id)?;
        Ok((id, result))
    }

    /// Waits without limit for job `id` and returns its result, or its
    /// error if it failed or was cancelled.
    fn result_of(&self, id: &str) -> Result<Value> {
        let job = self.wait_until(id, None)?;
        match (job.status, job.error) {
            (JobStatus::Succeeded, _) => Ok(job.result.unwrap_or(Value::Null)),
            (_, Some(error)) => Err(error.to_error()),
            (_, None) => Err(Error::internal("the job ended without a result")),
        }
    }

    /// Runs `work` on the caller's thread as a job of `job_type`, recorded
    /// in the ledger (written `running` at once, then `succeeded`, `failed`
    /// or `cancelled`, with events). Returns the job id and the work's
    /// outcome; if cancellation was requested meanwhile, the outcome is
    /// `cancelled` whatever the work returned, as the ledger says.
    pub fn run_inline(
        &self,
        job_type: &str,
        payload: Value,
        links: JobLinks,
        work: impl FnOnce(&JobContext) -> Result<Value>,
    ) -> Result<(String, Result<Value>)> {
        let profile = self.profile()?;
        let id = new_id();
        let token = self.shared.track(&id).ok_or_else(closed)?;
        let (new_id, new_type) = (id.clone(), job_type.to_owned());
        let inserted = self.shared.ledger.commit(profile.db(), move |tx, touched| {
            let id = new_id;
            links.check(tx)?;
            ledger::insert(
                tx,
                &id,
                &new_type,
                &payload,
                &links,
                JobStatus::Running,
                now_ms(),
            )?;
            touched.changed(&id);
            ledger::require(tx, &id)
        });
        let job = match inserted {
            Ok(job) => job,
            Err(e) => {
                self.shared.untrack(&id);
                return Err(e);
            }
        };
        self.shared.ledger.live.begin(&job);
        let ctx = JobContext::new(profile.clone(), job, Arc::clone(&token));
        let outcome = run_guarded(|| work(&ctx));
        drop(ctx);
        let for_ledger = match &outcome {
            Ok(value) => Ok(value.clone()),
            Err(e) => Err(JobError::from_error(e)),
        };
        self.shared
            .finish_then_start(&profile, &id, for_ledger, &token, None);
        if token.load(Ordering::SeqCst) {
            return Ok((id, Err(cancelled_error().to_error())));
        }
        Ok((id, outcome))
    }

    /// Tests only: sets the hook run after each queued progress report.
    #[cfg(test)]
    pub(crate) fn set_progress_hook(&self, hook: Option<ProgressHook>) {
        *self.shared.progress_hook.lock() = hook;
    }

    /// `jobs.cancel`: a queued job is cancelled at once; a running one is
    /// asked to stop (its token is set; it ends `cancelled` when its work
    /// returns) and is returned still `running`; a finished one is
    /// `conflict`.
    pub fn cancel(&self, id: &str) -> Result<Job> {
        let profile = self.profile()?;
        let (shared, id) = (Arc::clone(&self.shared), id.to_owned());
        let mut job = self
            .shared
            .ledger
            .commit(profile.db(), move |tx, touched| {
                let id = id.as_str();
                let status = ledger::require_status(tx, id)?;
                match status {
                    JobStatus::Queued => {
                        ledger::transition(tx, id, Move::Cancel(cancelled_error()), now_ms())?;
                        touched.changed(id);
                        touched.finished = true;
                    }
                    JobStatus::Running => {
                        if let Some(token) = shared.running.lock().get(id) {
                            token.store(true, Ordering::SeqCst);
                        }
                    }
                    finished => {
                        return Err(Error::conflict("the job has already finished")
                            .with_detail("status", finished.as_str()))
                    }
                }
                ledger::require(tx, id)
            })?;
        self.overlay(&mut job);
        Ok(job)
    }

    /// `jobs.progress`: records progress of a running job. `cancelled` once
    /// its cancellation was requested (how a host handler learns of it);
    /// `conflict` when the job is not running; `not_found` for an unknown id.
    /// The report is live at once (see `jobs::live`: readers see it while
    /// this waits for the writer), and in the ledger when this returns.
    pub fn report_progress(&self, id: &str, patch: &ProgressPatch) -> Result<Job> {
        validate_progress(patch)?;
        let profile = self.profile()?;
        if self.shared.cancel_requested(id) {
            return Err(cancel_requested());
        }
        self.shared.ledger.live.report(id, patch, now_ms(), false);
        let (shared, id, patch) = (Arc::clone(&self.shared), id.to_owned(), patch.clone());
        let mut job = self
            .shared
            .ledger
            .commit(profile.db(), move |tx, touched| {
                let id = id.as_str();
                let status = ledger::require_status(tx, id)?;
                if status == JobStatus::Running && shared.cancel_requested(id) {
                    return Err(cancel_requested());
                }
                // A job running here writes its whole live progress (which
                // holds this report over any report not persisted yet).
                let patch = shared.ledger.live.take_unsaved(id).unwrap_or(patch);
                ledger::record_progress(tx, id, &patch, now_ms())?;
                touched.changed(id);
                ledger::require(tx, id)
            })?;
        self.overlay(&mut job);
        Ok(job)
    }

    /// [`Jobs::report_progress`] without waiting for the writer (see
    /// `JobContext::progress_queued`): the report is live at once, and
    /// persisted now if the writer is free, else by its next holder (at the
    /// latest with the job's end). A persist that finds the job no longer
    /// running is dropped.
    pub(crate) fn report_progress_queued(&self, id: &str, patch: &ProgressPatch) -> Result<()> {
        validate_progress(patch)?;
        if self.shared.cancel_requested(id) {
            return Err(cancel_requested());
        }
        let profile = self.profile()?;
        let ledger = &self.shared.ledger;
        let (reported, snapshot) = ledger
            .live
            .report(id, patch, now_ms(), ledger.wants_events());
        match reported {
            Reported::PersistQueued => ledger.flush_if_free(profile.db()),
            Reported::NeedsPersist => {
                let (shared, id) = (Arc::clone(&self.shared), id.to_owned());
                ledger.submit(profile.db(), move |tx, _| {
                    match shared.ledger.live.take_unsaved(&id) {
                        Some(patch) => ledger::record_progress(tx, &id, &patch, now_ms()),
                        None => Ok(()), // persisted meanwhile, or ended
                    }
                });
            }
            // Not a job running here (a job run by another process is not
            // ours to report): the ledger alone, as before.
            Reported::NotRunning => {
                let (id, patch) = (id.to_owned(), patch.clone());
                ledger.submit(profile.db(), move |tx, touched| {
                    ledger::record_progress(tx, &id, &patch, now_ms())?;
                    touched.changed(&id);
                    Ok(())
                });
                return Ok(());
            }
        }
        if let Some(job) = snapshot {
            ledger.send_live(job);
        }
        #[cfg(test)]
        {
            let hook = self.shared.progress_hook.lock().clone();
            if let Some(hook) = hook {
                hook(id, patch);
            }
        }
        Ok(())
    }

    /// [`Jobs::report_progress_queued`] that does not even try the writer:
    /// the report is live at once, and the ledger gets it with the next
    /// ledger write (a [`Jobs::report_progress`], the job's end, any other
    /// job's change). For a job that reports often and writes its work in
    /// short transactions of its own (the embed job: a ledger transaction
    /// per batch cost more than a microsecond per chunk).
    pub(crate) fn report_progress_live(&self, id: &str, patch: &ProgressPatch) -> Result<()> {
        validate_progress(patch)?;
        if self.shared.cancel_requested(id) {
            return Err(cancel_requested());
        }
        let ledger = &self.shared.ledger;
        let (reported, snapshot) = ledger
            .live
            .report(id, patch, now_ms(), ledger.wants_events());
        match reported {
            Reported::PersistQueued => {}
            Reported::NeedsPersist => {
                let (shared, id) = (Arc::clone(&self.shared), id.to_owned());
                ledger.defer(move |tx, _| match shared.ledger.live.take_unsaved(&id) {
                    Some(patch) => ledger::record_progress(tx, &id, &patch, now_ms()),
                    None => Ok(()), // persisted meanwhile, or ended
                });
            }
            // Not a job running here: the ledger alone, as queued.
            Reported::NotRunning => return self.report_progress_queued(id, patch),
        }
        if let Some(job) = snapshot {
            ledger.send_live(job);
        }
        Ok(())
    }

    /// Stops the service for `Profile::close`: no job starts any more
    /// (queued ones stay queued in the ledger); running jobs are waited for
    /// (without limit), or with `cancel_running` asked to stop and waited
    /// for up to `cancel_timeout`. A job still running then is recorded
    /// `cancelled` and its thread detached: whatever it returns later is
    /// not written. Pending events are delivered before this returns (a
    /// callback still busy at the deadline is detached).
    pub(crate) fn shutdown(&self, db: &Db, cancel_running: bool, cancel_timeout: Duration) {
        let shared = &self.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        drop(self.queue.lock().take());
        shared.ledger.notify_finished(); // waiters on queued jobs notice `stopping`
        let deadline = Instant::now() + cancel_timeout;
        let stuck: Vec<String> = {
            let mut running = shared.running.lock();
            if cancel_running {
                for token in running.values() {
                    token.store(true, Ordering::SeqCst);
                }
            }
            while !running.is_empty() {
                if !cancel_running {
                    shared.running_changed.wait(&mut running);
                } else if shared
                    .running_changed
                    .wait_until(&mut running, deadline)
                    .timed_out()
                {
                    break;
                }
            }
            running.keys().cloned().collect()
        };
        let sealer = Arc::clone(shared);
        let _ = shared.ledger.commit(db, move |tx, touched| {
            for id in &stuck {
                let cancelled = JobError::new(
                    ErrorCode::Cancelled,
                    "the profile was closed and the job did not stop within the cancellation timeout",
                );
                if ledger::transition(tx, id, Move::Cancel(cancelled), now_ms()).is_ok() {
                    touched.changed(id);
                    touched.finished = true;
                }
            }
            sealer.ledger.seal();
            Ok(())
        });
        shared.ledger.seal();
        // Idle workers end as soon as they see the queue closed; only a
        // thread stuck in a handler that ignored cancellation is left behind.
        let grace = if cancel_running {
            deadline.max(Instant::now() + Duration::from_millis(20))
        } else {
            Instant::now() + Duration::from_secs(1)
        };
        for worker in std::mem::take(&mut *self.workers.lock()) {
            join_until(worker, grace);
        }
        shared.ledger.set_event_sink(None);
        if let Some(event_thread) = self.event_thread.lock().take() {
            join_until(event_thread, grace);
        }
        // Drop host closures now: one that captured the profile would
        // otherwise keep it alive.
        *shared.ledger.event_slot().write() = None;
        let mut registry = shared.registry.lock();
        let builtin = registry.builtin;
        *registry = Registry::new(builtin);
    }
}

impl Drop for Jobs {
    /// A profile dropped without close: idle threads end on their own once
    /// the queue and event senders are gone; nothing is joined here (this
    /// may run on a worker thread that held the last profile handle).
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        drop(self.queue.get_mut().take());
        self.shared.ledger.set_event_sink(None);
    }
}

/// Range checks of a progress report (shared by `jobs.progress` and
/// [`JobContext::progress`]).
fn validate_progress(patch: &ProgressPatch) -> Result<()> {
    let text = |field: &str, value: &Patch<String>, max: usize| match value.as_value() {
        Some(v) if v.chars().count() > max => {
            Err(Error::invalid(field, format!("at most {max} characters")))
        }
        _ => Ok(()),
    };
    text("phase", &patch.phase, 200)?;
    text("message", &patch.message, 2_000)?;
    for (field, value) in [
        ("steps_total", &patch.steps_total),
        ("steps_completed", &patch.steps_completed),
    ] {
        if value.as_value().is_some_and(|v| *v > i64::MAX as u64) {
            return Err(Error::invalid(field, "too large"));
        }
    }
    if let Some(eta) = patch.eta_s.as_value() {
        if !eta.is_finite() || *eta < 0.0 {
            return Err(Error::invalid(
                "eta_s",
                "must be a non-negative number of seconds",
            ));
        }
    }
    Ok(())
}
