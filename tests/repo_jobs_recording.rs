//! Guards how repo operations show up in the jobs ledger: an apply is job
//! `repo_apply_patch` (succeeded, or failed with `conflict` when a
//! precondition fails while applying), a check run is job `repo_run_checks`
//! ending `succeeded`, `failed` with `check_failed` / `timeout`, or
//! `cancelled` by `jobs.cancel` (which kills the whole process group), and
//! a call refused before the work starts records no job at all.

mod common;
use common::polling;
mod repo_support;

use repo_support::{sha256_hex, RepoFixture};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn jobs_of(f: &RepoFixture, job_type: &str) -> Vec<Value> {
    f.t.ok("jobs.list", json!({"type": [job_type]}))["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn job(f: &RepoFixture, id: &Value) -> Value {
    f.t.ok("jobs.get", json!({"id": id}))["job"].clone()
}

#[test]
fn apply_records_a_job_without_file_contents() {
    let f = RepoFixture::new();
    let out = f.t.ok(
        "repo.apply_patch",
        json!({"id": "r", "summary": "s", "files": [{"path": "a.txt", "content": "TOP-SECRET-CONTENT\n"}]}),
    );
    let j = job(&f, &out["job_id"]);
    assert_eq!(j["type"], "repo_apply_patch");
    assert_eq!(j["status"], "succeeded");
    assert_eq!(j["result"]["change_id"], out["change_id"]);
    assert_eq!(j["payload"]["files"][0]["path"], "a.txt");
    assert!(!j["payload"].to_string().contains("TOP-SECRET-CONTENT"));
}

#[test]
fn a_precondition_failing_while_applying_leaves_a_failed_job() {
    let f = RepoFixture::new();
    f.write("a.txt", "a\n");
    let e = f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [{"path": "a.txt", "content": "b\n", "expected_sha256": sha256_hex(b"zzz")}]}),
        "conflict",
    );
    assert_eq!(e.details["index"], 0);
    let jobs = jobs_of(&f, "repo_apply_patch");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["status"], "failed");
    assert_eq!(jobs[0]["error"]["code"], "conflict");
    assert_eq!(f.read("a.txt").as_deref(), Some("a\n"));
}

#[test]
fn calls_refused_before_the_work_record_no_job() {
    let f = RepoFixture::with(
        json!({"allowed_ops": ["write", "run_checks"], "budgets": {"max_files": 1}}),
    );
    f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [{"path": "../x", "content": "x"}]}),
        "path_escape",
    );
    f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [{"path": ".git/x", "content": "x"}]}),
        "forbidden",
    );
    f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [{"path": "a", "content": "x"}, {"path": "b", "content": "x"}]}),
        "budget_exceeded",
    );
    f.t.err(
        "repo.apply_patch",
        json!({"id": "r", "files": [{"path": "a"}]}),
        "invalid_argument",
    );
    f.t.err("repo.run_checks", json!({"id": "r"}), "no_check_command");
    // A proposal is not a job either.
    f.t.ok(
        "repo.propose_patch",
        json!({"id": "r", "files": [{"path": "a", "content": "x"}]}),
    );
    assert!(f.t.ok("jobs.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn check_jobs_end_succeeded_failed_or_timeout() {
    let f = RepoFixture::with(
        json!({"allowed_ops": ["run_checks"], "check_command": ["sh", "-c", "exit 0"]}),
    );
    let ok = f.t.ok("repo.run_checks", json!({"id": "r"}));
    let j = job(&f, &ok["job_id"]);
    assert_eq!(
        (j["type"].clone(), j["status"].clone()),
        (json!("repo_run_checks"), json!("succeeded"))
    );
    assert_eq!(j["result"]["exit_code"], 0);

    let root = f.root.to_str().unwrap();
    f.t.ok(
        "repo.register",
        json!({"id": "r", "root_path": root, "check_command": ["sh", "-c", "exit 2"]}),
    );
    let failed = f.t.ok("repo.run_checks", json!({"id": "r"}));
    assert_eq!(failed["status"], "failed");
    let j = job(&f, &failed["job_id"]);
    assert_eq!(
        (j["status"].clone(), j["error"]["code"].clone()),
        (json!("failed"), json!("check_failed"))
    );

    f.t.ok(
        "repo.register",
        json!({"id": "r", "root_path": root, "check_command": ["sleep", "30"]}),
    );
    let slow =
        f.t.ok("repo.run_checks", json!({"id": "r", "timeout_s": 1}));
    assert_eq!(slow["timed_out"], true);
    let j = job(&f, &slow["job_id"]);
    assert_eq!(
        (j["status"].clone(), j["error"]["code"].clone()),
        (json!("failed"), json!("timeout"))
    );
}

#[test]
fn wait_false_queues_a_job_that_jobs_wait_sees_finish() {
    let f = RepoFixture::with(
        json!({"allowed_ops": ["run_checks"], "check_command": ["echo", "queued run"]}),
    );
    let out = f.t.ok("repo.run_checks", json!({"id": "r", "wait": false}));
    let done = f.t.ok(
        "jobs.wait",
        json!({"id": out["job_id"], "timeout_ms": 20000}),
    )["job"]
        .clone();
    assert_eq!(done["type"], "repo_run_checks");
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["result"]["stdout"], "queued run\n");
    let change = &f.t.ok("repo.changes", json!({"id": "r"}))["items"][0];
    assert_eq!(change["job_id"], out["job_id"]);
}

fn pid_in(path: &std::path::Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the check never started");
        polling::pause();
    }
}

fn assert_dies(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dead = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z')),
        };
        if dead {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} survived the cancel"
        );
        polling::pause();
    }
}

#[test]
fn jobs_cancel_kills_a_queued_check_run_and_its_group() {
    let f = RepoFixture::with(json!({"allowed_ops": ["run_checks"],
        "check_command": ["sh", "-c", "sleep 300 & echo $! > bg.pid; wait"]}));
    let out = f.t.ok("repo.run_checks", json!({"id": "r", "wait": false}));
    let pid = pid_in(&f.root.join("bg.pid"));
    f.t.ok("jobs.cancel", json!({"id": out["job_id"]}));
    let done = f.t.ok(
        "jobs.wait",
        json!({"id": out["job_id"], "timeout_ms": 20000}),
    )["job"]
        .clone();
    assert_eq!(done["status"], "cancelled");
    assert_dies(pid);
}

#[test]
fn jobs_cancel_stops_a_waiting_call_which_returns_the_outcome() {
    let f = RepoFixture::with(json!({"allowed_ops": ["run_checks"],
        "check_command": ["sh", "-c", "sleep 300 & echo $! > bg.pid; wait"]}));
    let outcome = std::thread::scope(|s| {
        let call = s.spawn(|| f.t.call("repo.run_checks", json!({"id": "r"})));
        let pid = pid_in(&f.root.join("bg.pid"));
        let running = jobs_of(&f, "repo_run_checks");
        f.t.ok("jobs.cancel", json!({"id": running[0]["id"]}));
        let outcome = call.join().unwrap().unwrap();
        assert_dies(pid);
        outcome
    });
    assert_eq!(outcome["status"], "cancelled");
    assert_eq!(outcome["timed_out"], false);
    assert_eq!(job(&f, &outcome["job_id"])["status"], "cancelled");
}
