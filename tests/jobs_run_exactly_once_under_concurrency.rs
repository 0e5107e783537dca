//! 1,000 jobs submitted from 8 threads at once all end `succeeded`, each
//! run exactly once. Guards against a pool that loses a job (it stays
//! queued), runs one twice (two workers take the same row), or reports
//! `busy` when many threads share one handle.

mod jobs_support;

use hydra_core::jobs::JobStatus;
use jobs_support::{handler, open_with_workers};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_thousand_jobs_from_eight_threads_each_succeed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let profile = open_with_workers(dir.path(), 4);
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let counter = runs.clone();
    profile
        .jobs()
        .register_host_handler(
            "count",
            handler(move |job| {
                let id = job["id"].as_str().unwrap().to_owned();
                *counter.lock().entry(id).or_default() += 1;
                Ok(json!({"n": job["payload"]["n"]}))
            }),
        )
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let profile = profile.clone();
            std::thread::spawn(move || {
                (0..125)
                    .map(|i| {
                        profile
                            .jobs()
                            .submit("count", json!({"n": t * 1000 + i}), Default::default())
                            .unwrap()
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 1000);
    for id in &ids {
        let job = profile.jobs().wait(id, Duration::from_secs(60)).unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{id}");
        assert_eq!(job.result.unwrap()["n"], job.payload["n"]);
    }
    let runs = runs.lock();
    assert_eq!(runs.len(), 1000);
    assert!(runs.values().all(|&n| n == 1), "a job ran more than once");
    let page = profile
        .jobs_list(serde_json::from_value(json!({"status": ["succeeded"], "limit": 500})).unwrap())
        .unwrap();
    assert_eq!(page.items.len(), 500);
    assert!(page.next_cursor.is_some());
    profile.close(Default::default()).unwrap();
}
