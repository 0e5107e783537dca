//! Live progress: the progress of the jobs running now, held in memory so
//! that every reader sees a report the moment it is made.
//!
//! A job's progress reports are also written to the ledger, but a write
//! needs the writer, and a job may hold it for its whole run (the import
//! pass of `bundle.import` is one all-or-nothing transaction) or may not
//! wait for it (a job holding a read snapshot, see `db`). So every report
//! first lands here, keyed by job id; `jobs.get`, `jobs.status`,
//! `jobs.wait`, `jobs.list`, `jobs.cancel`, `jobs.progress` and the
//! `job.updated` events show a running job with this progress
//! ([`LiveProgress::overlay`]). The ledger catches up when the writer is
//! free (a queued report is persisted by whoever takes the writer next, at
//! the latest with the job's end), and never by waiting for it while
//! holding it.
//!
//! An entry exists from the moment a job starts running in this process
//! until its end is committed; a reader that finds the ledger row no longer
//! `running` ignores the entry. The map's lock is held for a copy at most,
//! never while waiting for anything else.

use super::ledger::ProgressPatch;
use super::model::{Job, JobStatus, Progress};
use crate::types::{Millis, Patch};
use parking_lot::Mutex;
use std::collections::HashMap;

/// The live state of one running job.
struct Entry {
    /// The job as it started, with its live `progress` and `updated_at`.
    job: Job,
    /// True while the ledger lacks the latest report (a persist is queued).
    unsaved: bool,
}

/// Outcome of [`LiveProgress::report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reported {
    /// The job is not running here: nothing recorded.
    NotRunning,
    /// Recorded; the ledger already had a persist queued for this job.
    PersistQueued,
    /// Recorded; the ledger has nothing queued for it yet.
    NeedsPersist,
}

/// The live progress of the running jobs, by id.
#[derive(Default)]
pub(super) struct LiveProgress {
    jobs: Mutex<HashMap<String, Entry>>,
}

impl LiveProgress {
    /// Starts tracking `job`, which just became `running`.
    pub fn begin(&self, job: &Job) {
        self.jobs.lock().insert(
            job.id.clone(),
            Entry {
                job: job.clone(),
                unsaved: false,
            },
        );
    }

    /// Stops tracking job `id` (its end is committed).
    pub fn end(&self, id: &str) {
        self.jobs.lock().remove(id);
    }

    /// Applies a report to the live progress of job `id`; with `snapshot`,
    /// also returns the job as this report leaves it (for its
    /// `job.updated` event: the job as it started, with this progress).
    pub fn report(
        &self,
        id: &str,
        patch: &ProgressPatch,
        now: Millis,
        snapshot: bool,
    ) -> (Reported, Option<Job>) {
        let mut jobs = self.jobs.lock();
        let Some(entry) = jobs.get_mut(id) else {
            return (Reported::NotRunning, None);
        };
        apply(&mut entry.job.progress, patch);
        entry.job.updated_at = entry.job.updated_at.max(now);
        let reported = if std::mem::replace(&mut entry.unsaved, true) {
            Reported::PersistQueued
        } else {
            Reported::NeedsPersist
        };
        (reported, snapshot.then(|| entry.job.clone()))
    }

    /// For the writer persisting job `id`: its whole live progress as a
    /// patch naming every field, marked saved; `None` when the job is not
    /// tracked or nothing is unsaved.
    pub fn take_unsaved(&self, id: &str) -> Option<ProgressPatch> {
        let mut jobs = self.jobs.lock();
        let entry = jobs.get_mut(id)?;
        if !std::mem::replace(&mut entry.unsaved, false) {
            return None;
        }
        Some(full_patch(&entry.job.progress))
    }

    /// Shows a job as it is now: a job the ledger row says is `running`
    /// gets its live progress (and the time of that report).
    pub fn overlay(&self, job: &mut Job) {
        if job.status != JobStatus::Running {
            return;
        }
        if let Some(entry) = self.jobs.lock().get(&job.id) {
            job.progress = entry.job.progress.clone();
            job.updated_at = job.updated_at.max(entry.job.updated_at);
        }
    }
}

/// `progress` with the fields `patch` names changed.
fn apply(progress: &mut Progress, patch: &ProgressPatch) {
    fn set<T: Clone>(field: &mut Option<T>, patch: &Patch<T>) {
        match patch {
            Patch::Absent => {}
            Patch::Null => *field = None,
            Patch::Value(v) => *field = Some(v.clone()),
        }
    }
    set(&mut progress.phase, &patch.phase);
    set(&mut progress.steps_total, &patch.steps_total);
    set(&mut progress.steps_completed, &patch.steps_completed);
    set(&mut progress.message, &patch.message);
    set(&mut progress.eta_s, &patch.eta_s);
}

/// A patch that sets every field to `progress`'s value (or clears it).
fn full_patch(progress: &Progress) -> ProgressPatch {
    fn of<T: Clone>(value: &Option<T>) -> Patch<T> {
        value.clone().map_or(Patch::Null, Patch::Value)
    }
    ProgressPatch {
        phase: of(&progress.phase),
        steps_total: of(&progress.steps_total),
        steps_completed: of(&progress.steps_completed),
        message: of(&progress.message),
        eta_s: of(&progress.eta_s),
    }
}

#[cfg(test)]
mod tests {
    use crate::jobs::ledger::ProgressPatch;
    use crate::ops::call_ok as call;
    use crate::profile::{CloseOptions, OpenOptions, Profile};
    use crate::types::Patch;
    use serde_json::{json, Value};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;

    /// A bundle of `visits` visits at `path`.
    fn bundle(dir: &std::path::Path, path: &std::path::Path, visits: u64) {
        let source = Profile::open(OpenOptions::new(dir.join("source"))).unwrap();
        let visits: Vec<Value> = (0..visits)
            .map(|i| json!({"url": format!("https://site{}.example/{i}", i % 50), "title": format!("Page {i}"), "visited_at": 1_000 + i}))
            .collect();
        call(&source, "visits.record_batch", json!({"visits": visits}));
        call(
            &source,
            "bundle.export",
            json!({"path": path, "wait": true}),
        );
        source.close(CloseOptions::default()).unwrap();
    }

    /// The import pass of `bundle.import` holds the writer in one
    /// transaction from its first record to its last: its progress must
    /// still be seen by another thread as it goes (issue 13), through
    /// `jobs.get`, `jobs.status`, `jobs.list` and `job.updated`, not only
    /// when the transaction ends. The job is held still inside each
    /// report (the test hook) while this thread looks.
    #[test]
    fn bundle_import_progress_is_seen_while_the_import_holds_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.hydra");
        bundle(dir.path(), &path, 5_000);

        let target = Profile::open(OpenOptions::new(dir.path().join("target"))).unwrap();
        let (event_tx, event_rx) = mpsc::channel::<Value>();
        let event_tx = Mutex::new(event_tx);
        target.set_event_callback(Some(Arc::new(move |event: &Value| {
            let _ = event_tx.lock().unwrap().send(event["job"].clone());
        })));
        // Each queued report: tell this thread what was reported, then wait
        // until it has looked.
        let (report_tx, report_rx) = mpsc::channel::<(String, ProgressPatch)>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (report_tx, go_rx) = (Mutex::new(report_tx), Mutex::new(go_rx));
        target
            .jobs()
            .set_progress_hook(Some(Arc::new(move |id: &str, patch: &ProgressPatch| {
                let _ = report_tx
                    .lock()
                    .unwrap()
                    .send((id.to_owned(), patch.clone()));
                let _ = go_rx.lock().unwrap().recv();
            })));

        let id = call(&target, "bundle.import", json!({"path": path}))["job_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let (reported_id, patch) = report_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("the import reported no progress");
            assert_eq!(reported_id, id);
            assert_eq!(patch.phase, Patch::Value("import".to_owned()));
            let Patch::Value(done) = patch.steps_completed else {
                panic!("a report without steps_completed: {patch:?}");
            };
            if done > 0 {
                // The job is inside its import transaction, paused.
                assert!(
                    target.db().try_writer().is_none(),
                    "the import pass holds the writer"
                );
                let job = &call(&target, "jobs.get", json!({"id": id}))["job"];
                assert_eq!(job["status"], "running");
                assert_eq!(job["progress"]["phase"], "import");
                assert_eq!(job["progress"]["steps_completed"], json!(done));
                assert!(job["progress"]["eta_s"].as_f64().is_some(), "{job}");
                let status = call(&target, "jobs.status", json!({"id": id}));
                let fraction = status["progress"].as_f64().unwrap();
                assert!(fraction > 0.0 && fraction < 1.0, "{status}");
                let listed = call(&target, "jobs.list", json!({"status": ["running"]}));
                assert_eq!(listed["items"][0]["progress"], job["progress"]);
                // Its event arrives while the job is still paused.
                loop {
                    let event = event_rx
                        .recv_timeout(Duration::from_secs(60))
                        .expect("no job.updated event for a live report");
                    if event["progress"]["steps_completed"] == json!(done) {
                        assert_eq!(event["status"], "running");
                        break;
                    }
                }
                seen.push(done);
            }
            go_tx.send(()).unwrap();
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        target.jobs().set_progress_hook(None);
        // In case the job waits in a report already; once the hook is
        // unset the job may have dropped it (and its receiver): no one to
        // release then.
        let _ = go_tx.send(());

        let job = &call(
            &target,
            "jobs.wait",
            json!({"id": id, "timeout_ms": 600_000}),
        )["job"];
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(
            job["progress"]["steps_completed"],
            job["progress"]["steps_total"]
        );
        assert_eq!(
            job["result"]["imported"]["browser_history"]["inserted"],
            5_000
        );
        // The ledger itself holds the last report once the job has ended.
        let stored: i64 = target
            .db()
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT s.steps_completed FROM job_status s JOIN jobs j ON j.seq = s.job_seq
                     WHERE j.id = ?1",
                    [&id],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(json!(stored), job["progress"]["steps_total"]);
        target.close(CloseOptions::default()).unwrap();
    }
}
