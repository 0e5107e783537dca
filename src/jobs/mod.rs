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
//! Job types: the built-in ones (run by the library) are listed in
//! [`crate::ops::JOB_TYPES`]; the types the host runs through a registered
//! handler (`focused_crawl`) in [`crate::ops::HOST_JOB_TYPES`]. A host handler
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
pub use model::{
    builtin_type, Job, JobError, JobLinks, JobStatus, JobType, Progress, ProgressUpdate,
};
pub use requests::*;
pub(crate) use runtime::on_job_thread;
pub use runtime::Jobs;
