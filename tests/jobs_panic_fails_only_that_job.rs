//! A job whose work panics ends `failed` (code `internal`) and the pool keeps
//! running later jobs, with one worker as with many. Guards against a panic
//! that kills the only worker thread, leaving every later job queued forever,
//! or that escapes into the host process.

mod jobs_support;

use hydra_core::jobs::JobStatus;
use jobs_support::{handler, open_with_workers};
use serde_json::json;
use std::time::Duration;

#[test]
fn a_panicking_job_fails_and_the_single_worker_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let profile = open_with_workers(dir.path(), 1);
    let jobs = profile.jobs();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    jobs.register_host_handler(
        "explode",
        handler(|job| {
            if job["payload"]["panic"] == true {
                panic!("handler exploded");
            }
            Ok(json!({"fine": true}))
        }),
    )
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            jobs.submit("explode", json!({"panic": i % 2 == 0}), Default::default())
                .unwrap(),
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let job = jobs.wait(id, Duration::from_secs(10)).unwrap();
        if i % 2 == 0 {
            assert_eq!(job.status, JobStatus::Failed);
            assert_eq!(job.error.unwrap().code, "internal");
        } else {
            assert_eq!(job.status, JobStatus::Succeeded);
            assert_eq!(job.result, Some(json!({"fine": true})));
        }
    }
    // A panic inside inline work fails that job too, and reaches the caller
    // as an error, not as an unwinding panic.
    let (id, outcome) = jobs
        .run_inline("inline", json!({}), Default::default(), |_| {
            panic!("inline exploded")
        })
        .unwrap();
    std::panic::set_hook(prev);
    assert_eq!(outcome.unwrap_err().code(), hydra_core::ErrorCode::Internal);
    assert_eq!(jobs.get(&id).unwrap().status, JobStatus::Failed);
    profile.close(Default::default()).unwrap();
}
