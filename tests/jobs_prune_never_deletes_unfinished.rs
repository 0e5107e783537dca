//! `jobs.prune` deletes only finished jobs completed before the cutoff, with
//! its documented defaults, and never a queued or running job. Guards against
//! a cleanup that erases work still in flight (its host handler would then
//! report progress for a job that no longer exists) or that keeps data the
//! user asked to drop.
#![allow(clippy::duplicate_mod)] // the polling helper comes with `common` and `jobs_support`

mod common;
mod jobs_support;

use common::TestProfile;
use hydra_core::db::ConnExt;
use hydra_core::jobs::JobStatus;
use jobs_support::{handler, open_with_workers, wait_for_status, Gate};
use serde_json::json;

const DAY: i64 = 86_400_000;

/// Moves a job's completion `days` days into the past.
fn age(t: &TestProfile, id: &str, days: i64) {
    t.profile
        .db()
        .write(|tx| {
            tx.run(
                "UPDATE jobs SET completed_at = completed_at - ?2 WHERE id = ?1",
                rusqlite::params![id, days * DAY],
            )
        })
        .unwrap();
}

#[test]
fn prune_defaults_to_old_succeeded_jobs_and_spares_unfinished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestProfile {
        profile: open_with_workers(dir.path(), 1),
        dir,
        clock: None,
    };
    let gate = Gate::new();
    let g = gate.clone();
    let jobs = t.profile.jobs();
    jobs.register_host_handler("ok", handler(|_| Ok(json!({}))))
        .unwrap();
    jobs.register_host_handler("bad", handler(|_| Err(hydra_core::Error::internal("x"))))
        .unwrap();
    let run = |job_type: &str| {
        let id = jobs
            .submit(job_type, json!({}), Default::default())
            .unwrap();
        jobs.wait(&id, std::time::Duration::from_secs(10)).unwrap();
        id
    };
    let old_ok = run("ok");
    let new_ok = run("ok");
    let old_bad = run("bad");
    age(&t, &old_ok, 31);
    age(&t, &old_bad, 31);

    jobs.register_host_handler(
        "slow",
        handler(move |_| {
            g.wait();
            Ok(json!({}))
        }),
    )
    .unwrap();
    let running = jobs.submit("slow", json!({}), Default::default()).unwrap();
    let queued = jobs.submit("slow", json!({}), Default::default()).unwrap();
    wait_for_status(&t.profile, &running, JobStatus::Running);
    t.ok(
        "jobs.progress",
        json!({"id": running, "steps_completed": 1}),
    );

    let r = t.ok("jobs.prune", json!({}));
    assert_eq!(
        r,
        json!({"deleted": 1, "statuses": ["succeeded"], "older_than_days": 30, "erased": true})
    );
    t.err("jobs.get", json!({"id": old_ok}), "not_found");
    t.ok("jobs.get", json!({"id": new_ok}));
    t.ok("jobs.get", json!({"id": old_bad}));

    // Every finished status, age 0: all finished jobs go, unfinished stay.
    let r = t.ok(
        "jobs.prune",
        json!({"statuses": ["succeeded", "failed", "cancelled"], "older_than_days": 0}),
    );
    assert_eq!(r["deleted"], 2);
    t.ok("jobs.get", json!({"id": running}));
    t.ok("jobs.get", json!({"id": queued}));

    for bad in [
        json!({"statuses": ["running"]}),
        json!({"statuses": ["queued", "succeeded"]}),
        json!({"statuses": []}),
        json!({"statuses": ["done"]}),
        json!({"older_than_days": -1}),
        json!({"older_than_days": 1.5}),
        json!({"older_than": 3}),
    ] {
        let e = t.err("jobs.prune", bad.clone(), "invalid_argument");
        assert!(e.details.contains_key("field"), "{bad}");
    }
    assert_eq!(
        t.ok("jobs.list", json!({}))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    gate.open();
    jobs.wait(&queued, std::time::Duration::from_secs(10))
        .unwrap();
    let r = t.ok("jobs.prune", json!({"older_than_days": 0}));
    assert_eq!(r["deleted"], 2);
    // Progress rows go with their jobs.
    let left = t
        .profile
        .db()
        .read(|c| c.query_i64("SELECT count(*) FROM job_status", []))
        .unwrap();
    assert_eq!(left, 0);
}
