//! Every jobs operation (`jobs.list`, `jobs.get`, `jobs.status`,
//! `jobs.wait`, `jobs.cancel`, `jobs.progress`, `jobs.prune`,
//! `refresh.focused_crawl`) answers with the fields and error codes of
//! `spec/OPERATIONS.md` §9. Guards against a shell that draws progress, waits
//! on or cancels jobs, and gets another shape or code than the contract says.
#![allow(clippy::duplicate_mod)] // the polling helper comes with `common` and `jobs_support`

mod common;
use common::polling;
mod jobs_support;

use common::TestProfile;
use hydra_core::jobs::JobStatus;
use jobs_support::{handler, open_with_workers, wait_for_status, Gate};
use serde_json::{json, Value};

fn crawl(t: &TestProfile, request: Value) -> String {
    t.ok("refresh.focused_crawl", request)["job_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn one_worker() -> TestProfile {
    let dir = tempfile::tempdir().unwrap();
    let profile = open_with_workers(dir.path(), 1);
    TestProfile {
        profile,
        dir,
        clock: None,
    }
}

#[test]
fn focused_crawl_needs_a_handler_and_existing_links() {
    let t = TestProfile::new();
    t.err(
        "refresh.focused_crawl",
        json!({"query": "rust"}),
        "no_handler",
    );
    assert_eq!(t.ok("jobs.list", json!({}))["items"], json!([]));

    t.profile
        .jobs()
        .register_host_handler(
            "focused_crawl",
            handler(|job| Ok(json!({"got": job["payload"]}))),
        )
        .unwrap();
    t.err(
        "refresh.focused_crawl",
        json!({"query": "rust", "thread_id": "missing"}),
        "not_found",
    );
    let e = t.err(
        "refresh.focused_crawl",
        json!({"query": "rust", "task_id": "missing"}),
        "not_found",
    );
    assert_eq!(e.details["field"], "task_id");
    for bad in [
        json!({"qeury": "typo"}),
        json!({"query": ""}),
        json!({"depth": 11}),
        json!({"budget": 0}),
        json!({"seeds": ["not a url"]}),
        json!({"force": "yes"}),
    ] {
        t.err("refresh.focused_crawl", bad, "invalid_argument");
    }
    assert_eq!(
        t.ok("jobs.list", json!({}))["items"],
        json!([]),
        "failed calls queue nothing"
    );

    t.ok("threads.create", json!({"id": "th1", "title": "t"}));
    t.ok("tasks.create", json!({"id": "task1", "title": "t"}));
    let request = json!({"query": "rust", "seeds": ["https://example.org/"], "budget": 5,
                         "depth": 2, "force": true, "thread_id": "th1", "task_id": "task1"});
    let id = crawl(&t, request.clone());
    let job = t.ok("jobs.wait", json!({"id": id, "timeout_ms": 10_000}))["job"].clone();
    assert_eq!(job["type"], "focused_crawl");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["payload"], request);
    assert_eq!(job["result"], json!({"got": request}));
    assert_eq!(job["thread_id"], "th1");
    assert_eq!(job["task_id"], "task1");
    assert_eq!(job["error"], Value::Null);
    for field in ["created_at", "updated_at", "started_at", "completed_at"] {
        assert!(job[field].is_i64(), "{field}");
    }
    assert_eq!(
        job["progress"],
        json!({"phase": null, "steps_total": null, "steps_completed": null, "message": null, "eta_s": null})
    );
}

#[test]
fn get_status_wait_and_progress_report_the_ledger() {
    let t = one_worker();
    let gate = Gate::new();
    let g = gate.clone();
    t.profile
        .jobs()
        .register_host_handler(
            "focused_crawl",
            handler(move |_| {
                g.wait();
                Ok(json!({"pages": 2}))
            }),
        )
        .unwrap();
    let id = crawl(&t, json!({"query": "q"}));
    wait_for_status(&t.profile, &id, JobStatus::Running);

    let status = t.ok("jobs.status", json!({"id": id}));
    assert_eq!(status["job_id"], id.as_str());
    assert_eq!(status["status"], "running");
    assert_eq!(status["progress"], Value::Null);
    assert!(status["updated_at"].is_i64());

    let e = t.err("jobs.wait", json!({"id": id, "timeout_ms": 20}), "timeout");
    assert_eq!(e.details["status"], "running");

    let job = t.ok(
        "jobs.progress",
        json!({"id": id, "phase": "fetch", "steps_total": 4, "steps_completed": 1,
               "message": "page 1", "eta_s": 2.5}),
    )["job"]
        .clone();
    assert_eq!(
        job["progress"],
        json!({"phase": "fetch", "steps_total": 4, "steps_completed": 1, "message": "page 1", "eta_s": 2.5})
    );
    // Omitted fields stay, null clears.
    t.ok(
        "jobs.progress",
        json!({"id": id, "steps_completed": 3, "message": null}),
    );
    let status = t.ok("jobs.status", json!({"id": id}));
    assert_eq!(status["progress"], json!(0.75));
    assert_eq!(status["phase"], "fetch");
    assert_eq!(status["message"], Value::Null);
    assert_eq!(status["eta_s"], json!(2.5));
    t.err(
        "jobs.progress",
        json!({"id": id, "eta_s": -1}),
        "invalid_argument",
    );
    t.err(
        "jobs.progress",
        json!({"id": id, "steps_total": -1}),
        "invalid_argument",
    );
    t.err(
        "jobs.progress",
        json!({"id": id, "colour": 1}),
        "invalid_argument",
    );

    gate.open();
    let job = t.ok("jobs.wait", json!({"id": id, "timeout_ms": 10_000}))["job"].clone();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["progress"]["steps_completed"], 3);
    let e = t.err(
        "jobs.progress",
        json!({"id": id, "steps_completed": 4}),
        "conflict",
    );
    assert_eq!(e.details["status"], "succeeded");
    assert_eq!(t.ok("jobs.get", json!({"id": id}))["job"], job);

    for op in ["jobs.get", "jobs.status", "jobs.cancel"] {
        t.err(op, json!({"id": "nope"}), "not_found");
        t.err(op, json!({}), "invalid_argument");
        t.err(op, json!({"id": "bad id"}), "invalid_argument");
    }
    t.err(
        "jobs.wait",
        json!({"id": "nope", "timeout_ms": 5}),
        "not_found",
    );
    t.err("jobs.progress", json!({"id": "nope"}), "not_found");
    for timeout in [json!(0), json!(3_600_001), json!(1.5), json!(null)] {
        t.err(
            "jobs.wait",
            json!({"id": id, "timeout_ms": timeout}),
            "invalid_argument",
        );
    }
    t.err("jobs.wait", json!({"id": id}), "invalid_argument");
}

#[test]
fn cancel_queued_at_once_running_cooperatively_finished_conflict() {
    let t = one_worker();
    let gate = Gate::new();
    let g = gate.clone();
    let profile = t.profile.clone();
    // The handler reports progress until told to stop, then returns a
    // result anyway: the job must still end `cancelled`.
    t.profile
        .jobs()
        .register_host_handler(
            "focused_crawl",
            handler(move |job| {
                g.wait();
                let id = job["id"].as_str().unwrap();
                let request = json!({"id": id, "steps_completed": 1});
                let mut learned = None;
                for _ in 0..1000 {
                    if let Err(e) = common::call(&profile, "jobs.progress", request.clone()) {
                        learned = Some(e.code.as_str().to_owned());
                        break;
                    }
                    polling::pause();
                }
                Ok(json!({"learned": learned}))
            }),
        )
        .unwrap();
    let running = crawl(&t, json!({"query": "a"}));
    let queued = crawl(&t, json!({"query": "b"}));
    wait_for_status(&t.profile, &running, JobStatus::Running);

    let job = t.ok("jobs.cancel", json!({"id": queued}))["job"].clone();
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["error"]["code"], "cancelled");
    assert_eq!(job["started_at"], Value::Null);
    assert!(job["completed_at"].is_i64());

    let job = t.ok("jobs.cancel", json!({"id": running}))["job"].clone();
    assert_eq!(
        job["status"], "running",
        "a running job is only asked to stop"
    );
    gate.open();
    let job = t.ok("jobs.wait", json!({"id": running, "timeout_ms": 10_000}))["job"].clone();
    assert_eq!(job["status"], "cancelled");
    assert_eq!(
        job["result"],
        Value::Null,
        "the handler's result is discarded"
    );
    assert_eq!(job["error"]["code"], "cancelled");

    let e = t.err("jobs.cancel", json!({"id": running}), "conflict");
    assert_eq!(e.details["status"], "cancelled");
    t.err("jobs.cancel", json!({"id": queued}), "conflict");
    t.err("jobs.progress", json!({"id": queued}), "conflict");
    // The queued job never reached the handler.
    assert_eq!(
        t.ok("jobs.get", json!({"id": queued}))["job"]["started_at"],
        Value::Null
    );
}

#[test]
fn the_host_learns_of_cancellation_through_progress() {
    let t = one_worker();
    let profile = t.profile.clone();
    let learned = std::sync::Arc::new(parking_lot::Mutex::new(None::<String>));
    let slot = learned.clone();
    t.profile
        .jobs()
        .register_host_handler(
            "focused_crawl",
            handler(move |job| {
                let request = json!({"id": job["id"], "steps_completed": 1});
                for _ in 0..5000 {
                    if let Err(e) = common::call(&profile, "jobs.progress", request.clone()) {
                        *slot.lock() = Some(e.code.as_str().to_owned());
                        return Err(hydra_core::Error::new(e.code, "stopped"));
                    }
                    polling::pause();
                }
                Ok(json!({}))
            }),
        )
        .unwrap();
    let id = crawl(&t, json!({}));
    wait_for_status(&t.profile, &id, JobStatus::Running);
    t.ok("jobs.cancel", json!({"id": id}));
    let job = t.ok("jobs.wait", json!({"id": id, "timeout_ms": 10_000}))["job"].clone();
    assert_eq!(learned.lock().as_deref(), Some("cancelled"));
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["error"]["code"], "cancelled");
    // The progress made before the request is kept.
    assert_eq!(job["progress"]["steps_completed"], 1);
}

#[test]
fn a_failing_handler_fails_its_job_with_the_hosts_code() {
    let t = TestProfile::new();
    t.profile
        .jobs()
        .register_host_handler(
            "focused_crawl",
            handler(|_| {
                Err(hydra_core::Error::new(
                    hydra_core::ErrorCode::BudgetExceeded,
                    "too many pages",
                ))
            }),
        )
        .unwrap();
    let id = crawl(&t, json!({"budget": 3}));
    let job = t.ok("jobs.wait", json!({"id": id, "timeout_ms": 10_000}))["job"].clone();
    assert_eq!(job["status"], "failed");
    assert_eq!(
        job["error"],
        json!({"code": "budget_exceeded", "message": "too many pages"})
    );
    assert_eq!(job["result"], Value::Null);
}

#[test]
fn list_filters_pages_newest_first_and_rejects_bad_filters() {
    let t = TestProfile::new();
    let jobs = t.profile.jobs();
    jobs.register_host_handler("focused_crawl", handler(|_| Ok(json!({}))))
        .unwrap();
    jobs.register_host_handler(
        "other",
        handler(|_| Err(hydra_core::Error::internal("boom"))),
    )
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = if i % 3 == 2 {
            jobs.submit("other", json!({"i": i}), Default::default())
                .unwrap()
        } else {
            crawl(&t, json!({"query": format!("q{i}")}))
        };
        jobs.wait(&id, std::time::Duration::from_secs(10)).unwrap();
        ids.push(id);
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let page_through = |filter: Value, limit: u64| -> Vec<String> {
        let mut seen = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let mut request = filter.clone();
            request["limit"] = json!(limit);
            if !cursor.is_null() {
                request["cursor"] = cursor.clone();
            }
            let page = t.ok("jobs.list", request);
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|j| j["id"].as_str().unwrap().to_owned()),
            );
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                return seen;
            }
        }
    };
    assert_eq!(page_through(json!({}), 2), newest_first);
    assert_eq!(page_through(json!({}), 500), newest_first);
    let failed: Vec<String> = newest_first
        .iter()
        .filter(|id| ids.iter().position(|x| x == *id).unwrap() % 3 == 2)
        .cloned()
        .collect();
    assert_eq!(page_through(json!({"status": ["failed"]}), 1), failed);
    assert_eq!(page_through(json!({"type": ["other"]}), 2), failed);
    assert_eq!(
        page_through(json!({"status": ["failed", "succeeded"]}), 3),
        newest_first
    );
    assert_eq!(
        page_through(
            json!({"status": ["succeeded", "failed"], "type": ["other", "focused_crawl"]}),
            2
        ),
        newest_first
    );
    assert_eq!(
        page_through(json!({"status": ["queued", "running"]}), 5),
        Vec::<String>::new()
    );
    assert_eq!(
        page_through(json!({"status": ["failed"], "type": ["focused_crawl"]}), 5),
        Vec::<String>::new()
    );

    for bad in [
        json!({"status": ["done"]}),
        json!({"status": ["Failed"]}),
        json!({"status": "failed"}),
        json!({"status": []}),
        json!({"type": []}),
        json!({"type": ["bad type"]}),
        json!({"limit": 0}),
        json!({"limit": 501}),
        json!({"cursor": "garbage"}),
        json!({"statuses": ["failed"]}),
    ] {
        let e = t.err("jobs.list", bad.clone(), "invalid_argument");
        assert!(e.details.contains_key("field"), "{bad}");
    }
    let page = t.ok("jobs.list", json!({"status": ["failed"], "limit": 1}));
    let cursor = page["next_cursor"].clone();
    assert!(cursor.is_string());
    t.err(
        "jobs.list",
        json!({"status": ["succeeded"], "cursor": cursor}),
        "invalid_argument",
    );
}

#[test]
fn events_follow_every_change_from_another_thread_outside_locks() {
    let t = TestProfile::new();
    let events = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<Value>::new()));
    let sink = events.clone();
    let profile = t.profile.clone();
    let test_thread = std::thread::current().id();
    t.profile
        .set_event_callback(Some(std::sync::Arc::new(move |event: &Value| {
            assert_ne!(std::thread::current().id(), test_thread);
            // A write from inside the callback would deadlock if the library
            // still held the writer lock.
            common::call(&profile, "jobs.prune", json!({})).unwrap();
            sink.lock().push(event.clone());
        })));
    let p = t.profile.clone();
    t.profile
        .jobs()
        .register_host_handler(
            "focused_crawl",
            handler(move |job| {
                common::call(
                    &p,
                    "jobs.progress",
                    json!({"id": job["id"], "phase": "work"}),
                )
                .unwrap();
                Ok(json!({"done": true}))
            }),
        )
        .unwrap();
    let id = crawl(&t, json!({}));
    t.ok("jobs.wait", json!({"id": id, "timeout_ms": 10_000}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while events.lock().len() < 4 && std::time::Instant::now() < deadline {
        polling::pause();
    }
    let events = events.lock().clone();
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "job.updated");
            assert_eq!(e["job"]["id"], id.as_str());
            (
                e["job"]["status"].as_str().unwrap().to_owned(),
                e["job"]["progress"]["phase"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("queued", ""),
        ("running", ""),
        ("running", "work"),
        ("succeeded", "work"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, expected);
    assert_eq!(events[3]["job"]["result"], json!({"done": true}));
}

/// While jobs move from queued to running to succeeded, a page of
/// `jobs.list` never holds one job twice, and a status filter never lists a
/// job in another status: the page is read from one snapshot.
#[test]
fn list_pages_are_consistent_while_jobs_change_status() {
    let t = TestProfile::new();
    let jobs = t.profile.jobs();
    jobs.register_host_handler("quick", handler(|_| Ok(json!({}))))
        .unwrap();
    let mut problems = Vec::new();
    for i in 0..300 {
        jobs.submit("quick", json!({"i": i}), Default::default())
            .unwrap();
        for filter in [
            json!({"limit": 5}),
            json!({"limit": 5, "status": ["queued"]}),
        ] {
            let page = t.ok("jobs.list", filter.clone());
            let items = page["items"].as_array().unwrap();
            let mut ids: Vec<&str> = items.iter().map(|j| j["id"].as_str().unwrap()).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != items.len() {
                problems.push(format!("a job listed twice: {page}"));
            }
            if filter.get("status").is_some() && items.iter().any(|j| j["status"] != "queued") {
                problems.push(format!("a job outside the filter: {page}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} bad pages, e.g. {:?}",
        problems.len(),
        &problems[..problems.len().min(2)]
    );
}
