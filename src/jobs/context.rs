//! What a running job sees: its row, the profile, progress reporting and
//! its cancellation token.

use super::ledger::ProgressPatch;
use super::model::{Job, ProgressUpdate};
use crate::error::Result;
use crate::profile::Profile;
use crate::types::Patch;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn patch_of(update: &ProgressUpdate) -> ProgressPatch {
    let set = |v: &Option<String>| v.clone().map_or(Patch::Absent, Patch::Value);
    ProgressPatch {
        phase: set(&update.phase),
        steps_total: update.steps_total.map_or(Patch::Absent, Patch::Value),
        steps_completed: update.steps_completed.map_or(Patch::Absent, Patch::Value),
        message: set(&update.message),
        eta_s: update.eta_s.map_or(Patch::Absent, Patch::Value),
    }
}

/// The handle a job's work receives.
pub struct JobContext {
    profile: Profile,
    job: Job,
    cancel: Arc<AtomicBool>,
}

impl JobContext {
    pub(crate) fn new(profile: Profile, job: Job, cancel: Arc<AtomicBool>) -> JobContext {
        JobContext {
            profile,
            job,
            cancel,
        }
    }

    /// The profile the job runs in.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The job as it was when it started (`running`).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.job.id
    }

    /// The request that queued the job.
    pub fn payload(&self) -> &Value {
        &self.job.payload
    }

    /// Records progress in the ledger (and emits `job.updated`). Fails with
    /// `cancelled` once cancellation was requested: the work should stop and
    /// return that error.
    pub fn progress(&self, update: &ProgressUpdate) -> Result<()> {
        self.report(&patch_of(update))
    }

    /// [`JobContext::progress`] of a patch (a field may be cleared).
    pub(crate) fn report(&self, patch: &ProgressPatch) -> Result<()> {
        self.profile
            .jobs()
            .report_progress(&self.job.id, patch)
            .map(|_| ())
    }

    /// Records progress without waiting for the writer: the report is live
    /// at once (`jobs.get`, `jobs.list`, `job.updated` show it, see
    /// `jobs::live`) and joins the ledger's group-commit queue, committed
    /// now if the writer is free, else by its next holder (at the latest
    /// with the job's end). The one way to report progress while holding a
    /// read snapshot or the writer itself (lock order, see `db`). Fails with
    /// `cancelled` once cancellation was requested.
    pub fn progress_queued(&self, update: &ProgressUpdate) -> Result<()> {
        self.report_queued(&patch_of(update))
    }

    /// [`JobContext::progress_queued`] of a patch (a field may be cleared).
    pub(crate) fn report_queued(&self, patch: &ProgressPatch) -> Result<()> {
        self.profile
            .jobs()
            .report_progress_queued(&self.job.id, patch)
    }

    /// Records progress live at once, persisted with the next ledger write
    /// (see `Jobs::report_progress_live`); never waits for the writer.
    /// Fails with `cancelled` once cancellation was requested.
    pub(crate) fn report_live(&self, patch: &ProgressPatch) -> Result<()> {
        self.profile
            .jobs()
            .report_progress_live(&self.job.id, patch)
    }

    /// True once cancellation of this job was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// The cancellation flag itself, for a watcher thread to poll (e.g. to
    /// kill a child process group when the job is cancelled).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }
}
