//! Collecting a job's progress reports from its `job.updated` events and
//! checking them against issue 13: a report at least every 1% of the phase
//! (or 250 ms after the previous one), the end reported exactly, and an ETA
//! once something was done.

use super::polling;

use hydra_core::Profile;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every `job.updated` event's job, in delivery order.
pub struct Updates(Arc<Mutex<Vec<Value>>>);

impl Updates {
    /// Starts collecting the events of `profile`.
    pub fn collect(profile: &Profile) -> Updates {
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = Arc::clone(&seen);
        profile.set_event_callback(Some(Arc::new(move |event: &Value| {
            if event["type"] == "job.updated" {
                sink.lock().unwrap().push(event["job"].clone());
            }
        })));
        Updates(seen)
    }

    /// The updates of job `id` up to its terminal one (waits for the event
    /// thread to deliver it).
    pub fn of_finished_job(&self, id: &Value) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let jobs: Vec<Value> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|job| &job["id"] == id)
                .cloned()
                .collect();
            if jobs.last().is_some_and(|job| job["status"] == "succeeded") {
                return jobs;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never succeeded: {jobs:?}"
            );
            polling::pause();
        }
    }
}

/// One progress report: steps completed, steps total, ETA, when.
#[derive(Debug)]
pub struct Report {
    pub done: u64,
    pub total: u64,
    pub eta_s: Option<f64>,
    pub at_ms: i64,
}

/// The reports of phase `phase` among `updates` (while the job ran).
pub fn reports(updates: &[Value], phase: &str) -> Vec<Report> {
    updates
        .iter()
        .filter(|job| job["status"] == "running" && job["progress"]["phase"] == phase)
        .map(|job| Report {
            done: job["progress"]["steps_completed"].as_u64().unwrap(),
            total: job["progress"]["steps_total"].as_u64().unwrap(),
            eta_s: job["progress"]["eta_s"].as_f64(),
            at_ms: job["updated_at"].as_i64().unwrap(),
        })
        .collect()
}

/// Checks the reports of one phase: it starts at 0 with no ETA; two
/// successive reports are at most 1% of the total apart (plus `slack`,
/// what one step of the work may add at once, such as a bundle line), or
/// 250 ms apart; every later report has an ETA; the last says everything
/// is done with 0 s left. Returns the phase's total.
pub fn assert_every_percent(reports: &[Report], slack: u64) -> u64 {
    assert!(reports.len() >= 2, "{reports:?}");
    let total = reports[0].total;
    assert!(reports.iter().all(|r| r.total == total), "{reports:?}");
    assert_eq!((reports[0].done, reports[0].eta_s), (0, None));
    let percent = (total / 100).max(1);
    for pair in reports.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(b.done >= a.done, "progress went back: {a:?} {b:?}");
        assert!(
            b.done - a.done <= percent + slack || b.at_ms - a.at_ms >= 250,
            "more than 1% of {total} between two reports: {a:?} {b:?}"
        );
        if b.done > 0 {
            let eta = b.eta_s.unwrap_or_else(|| panic!("no ETA in {b:?}"));
            assert!(eta.is_finite() && eta >= 0.0, "{b:?}");
        }
    }
    let last = reports.last().unwrap();
    assert_eq!((last.done, last.eta_s), (total, Some(0.0)), "{reports:?}");
    total
}
