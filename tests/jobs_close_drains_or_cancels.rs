//! Closing a profile with jobs in flight: by default close waits for running
//! jobs (which may still report progress) and leaves queued jobs queued for
//! the next open; with `cancel_running` a handler that never returns holds
//! close no longer than `cancel_timeout_ms`, and its job is recorded
//! `cancelled`. Worker threads never keep a dropped profile alive. Guards
//! against a close that loses queued work, hangs on a stuck host, or a
//! profile that stays locked because its own workers hold it.

mod jobs_support;
use jobs_support::polling;

use hydra_core::jobs::JobStatus;
use hydra_core::{CloseOptions, ErrorCode};
use jobs_support::{handler, open_with_workers, wait_for_status, Gate};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn close_waits_for_running_jobs_and_keeps_queued_ones_for_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let profile = open_with_workers(dir.path(), 1);
    let gate = Gate::new();
    let g = gate.clone();
    let weak = profile.downgrade();
    profile
        .jobs()
        .register_host_handler(
            "slow",
            handler(move |job| {
                g.wait();
                // The profile is closing now; the running job may still
                // report progress.
                let p = weak.upgrade().unwrap();
                p.jobs_progress(
                    serde_json::from_value(json!({"id": job["id"], "phase": "finishing"})).unwrap(),
                )?;
                Ok(json!({"finished": true}))
            }),
        )
        .unwrap();
    let running = profile
        .jobs()
        .submit("slow", json!({}), Default::default())
        .unwrap();
    let queued = profile
        .jobs()
        .submit("slow", json!({}), Default::default())
        .unwrap();
    wait_for_status(&profile, &running, JobStatus::Running);

    let closer = {
        let profile = profile.clone();
        std::thread::spawn(move || profile.close(CloseOptions::default()))
    };
    // Once close has begun (calls are refused), it must still be waiting:
    // the running job cannot end before the gate opens.
    polling::until_true(Duration::from_secs(10), "close to begin", || {
        profile.jobs_list(Default::default()).is_err()
    });
    assert!(!closer.is_finished(), "close must wait for the running job");
    assert_eq!(
        profile.jobs_list(Default::default()).unwrap_err().code(),
        ErrorCode::Closed,
        "a closing profile refuses new calls"
    );
    gate.open();
    closer.join().unwrap().unwrap();

    let profile = open_with_workers(dir.path(), 1);
    let job = profile.jobs().get(&running).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.progress.phase.as_deref(), Some("finishing"));
    assert_eq!(
        profile.jobs().get(&queued).unwrap().status,
        JobStatus::Queued
    );
    // The host registers its handler after open; the queued job then runs.
    profile
        .jobs()
        .register_host_handler("slow", handler(|_| Ok(json!({"second": true}))))
        .unwrap();
    let job = profile
        .jobs()
        .wait(&queued, Duration::from_secs(10))
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result, Some(json!({"second": true})));
    profile.close(CloseOptions::default()).unwrap();
}

#[test]
fn a_handler_that_never_returns_holds_close_only_until_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let profile = open_with_workers(dir.path(), 1);
    let gate = Gate::new();
    let g = gate.clone();
    profile
        .jobs()
        .register_host_handler(
            "stuck",
            handler(move |_| {
                g.wait(); // ignores cancellation
                Ok(json!({"late": true}))
            }),
        )
        .unwrap();
    let id = profile
        .jobs()
        .submit("stuck", json!({}), Default::default())
        .unwrap();
    wait_for_status(&profile, &id, JobStatus::Running);

    let bad = serde_json::from_value::<CloseOptions>(
        json!({"cancel_running": true, "cancel_timeout_ms": 600_001}),
    )
    .unwrap();
    assert_eq!(
        profile.close(bad).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    profile
        .jobs()
        .get(&id)
        .expect("refused options leave the profile open");

    let options = serde_json::from_value::<CloseOptions>(
        json!({"cancel_running": true, "cancel_timeout_ms": 200}),
    )
    .unwrap();
    let started = Instant::now();
    profile.close(options).unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(1500), "close took {took:?}");

    let again = open_with_workers(dir.path(), 1);
    let job = again.jobs().get(&id).unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.error.as_ref().unwrap().code, "cancelled");
    // When the abandoned handler finally returns, nothing is written: its
    // worker lets go of the old profile only after it tried to record the
    // outcome, so once the old profile is gone the ledger is final.
    let abandoned = profile.downgrade();
    drop(profile);
    gate.open();
    polling::until_true(
        Duration::from_secs(10),
        "the abandoned worker to end",
        || abandoned.upgrade().is_none(),
    );
    assert_eq!(again.jobs().get(&id).unwrap(), job);
    again.close(CloseOptions::default()).unwrap();
}

#[test]
fn cancel_running_stops_a_cooperative_job_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let profile = open_with_workers(dir.path(), 2);
    let weak = profile.downgrade();
    profile
        .jobs()
        .register_host_handler(
            "loop",
            handler(move |job| loop {
                let p = weak.upgrade().unwrap();
                p.jobs_progress(
                    serde_json::from_value(json!({"id": job["id"], "steps_completed": 1})).unwrap(),
                )?;
                polling::pause();
            }),
        )
        .unwrap();
    let id = profile
        .jobs()
        .submit("loop", json!({}), Default::default())
        .unwrap();
    wait_for_status(&profile, &id, JobStatus::Running);
    let options: CloseOptions = serde_json::from_value(json!({"cancel_running": true})).unwrap();
    let started = Instant::now();
    profile.close(options).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let again = open_with_workers(dir.path(), 1);
    let job = again.jobs().get(&id).unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    again.close(CloseOptions::default()).unwrap();
}

#[test]
fn dropping_every_handle_frees_the_profile_despite_idle_workers() {
    let dir = tempfile::tempdir().unwrap();
    let profile = open_with_workers(dir.path(), 4);
    profile
        .jobs()
        .register_host_handler("ok", handler(|_| Ok(json!({}))))
        .unwrap();
    let id = profile
        .jobs()
        .submit("ok", json!({}), Default::default())
        .unwrap();
    profile.jobs().wait(&id, Duration::from_secs(10)).unwrap();
    let weak = profile.downgrade();
    drop(profile);
    // A worker may hold the profile for the last instants of its job.
    let deadline = Instant::now() + Duration::from_secs(2);
    while weak.upgrade().is_some() && Instant::now() < deadline {
        polling::pause();
    }
    assert!(weak.upgrade().is_none(), "a worker kept the profile alive");
    // The lock goes with it. When the last handle was a worker's, the
    // profile's drop (stopping its threads, the last checkpoint, then the
    // lock) runs on that worker and may still be under way here: the
    // profile must be free within moments, not at this instant.
    let deadline = Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        let mut options = hydra_core::OpenOptions::new(dir.path());
        options.workers = hydra_core::types::Bounded::new("workers", 1).unwrap();
        match hydra_core::Profile::open(options) {
            Err(e) if e.code() == ErrorCode::ProfileLocked && Instant::now() < deadline => {
                polling::pause();
            }
            other => break other,
        }
    };
    reopened
        .expect("the profile is free once its last handle is gone")
        .close(CloseOptions::default())
        .unwrap();
}
