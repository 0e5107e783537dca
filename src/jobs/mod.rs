//! Jobs: every long operation (bundle export/import, patch apply, checks,
//! history import, the shell's focused crawl) runs as a job recorded in a
//! durable ledger (`spec/OPERATIONS.md` §9).
//!
//! - [`ledger`]: the tables `jobs` / `job_status` and the one function that
//!   changes a job's status ([`ledger::transition`]), so a transition outside
//!   `queued -> running -> succeeded | failed | cancelled` (or
//!   `queued -> cancelled`) cannot happen.
//! - `commit`: group commit of ledger changes and the `job.updated` events
//!   sent after each commit.
//! - `live`: the progress of running jobs held in memory, so a report is
//!   seen at once by `jobs.get` / `jobs.list` / events even while the job
//!   holds the writer (the import pass of `bundle.import`) or must not wait
//!   for it; the ledger catches up when the writer is free.
//! - [`Jobs`] (runtime): the crossbeam worker pool that executes what the
//!   ledger says, host job handlers, cancellation tokens, `job.updated`
//!   events, crash recovery at open and the close protocol.
//! - [`JobContext`]: what a running job sees (payload, progress, cancel).
//! - [`ProgressMeter`]: how a built-in job reports a long phase (every 1%
//!   or 250 ms, with an ETA).
//! - the operation handlers `jobs.*` and `refresh.focused_crawl`.
//!
//! Job types: the built-in ones (run by the library) are listed by the
//! registry (`ops::JOB_TYPES`), which hands them down at open; the types the
//! host runs through a registered handler (`focused_crawl`) are in
//! `ops::HOST_JOB_TYPES`. A host handler
//! registered for a type runs that type's jobs, even a built-in one. A queued
//! job whose type has no runner yet (a host job recovered at open, before the
//! host registered its handler) waits in the queue until one is registered.

mod commit;
mod context;
pub mod ledger;
mod live;
mod meter;
mod model;
mod requests;
mod runtime;

pub use context::JobContext;
pub use meter::{Channel, ProgressMeter, REPORT_INTERVAL};
pub use model::{Job, JobError, JobLinks, JobStatus, JobType, Progress, ProgressUpdate};
pub use requests::*;
pub use runtime::Jobs;

use crate::profile::{CloseOptions, Extension, OpenOptions, Profile};
use crate::types::HostEventFn;

impl Profile {
    /// The jobs service: ledger, worker pool, host job handlers.
    pub fn jobs(&self) -> &Jobs {
        self.extension()
    }

    /// Sets (or with `None` clears) the host callback that receives
    /// `{"type":"job.updated","job":{...}}` on every job change, from the
    /// library's event thread, never while a database lock is held.
    pub fn set_event_callback(&self, callback: Option<HostEventFn>) {
        self.jobs().set_event_callback(callback);
    }
}

/// The jobs runtime of a profile being opened, running the built-in `types`
/// (the registry's `Domain` entry for jobs calls this).
pub(crate) fn state(options: &OpenOptions, types: &'static [JobType]) -> Extension {
    Box::new(Jobs::new(options.workers.get(), types))
}

/// Starts the workers once the profile exists; they run what is queued.
pub(crate) fn start(profile: &Profile) -> crate::error::Result<()> {
    profile.jobs().start(profile)
}

/// At close: running jobs finish, or are cancelled per `options`.
pub(crate) fn close(profile: &Profile, options: &CloseOptions) {
    profile.jobs().shutdown(
        profile.db(),
        options.cancel_running,
        std::time::Duration::from_millis(options.cancel_timeout_ms),
    );
}
