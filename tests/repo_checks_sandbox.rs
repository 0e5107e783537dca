//! Guards `repo.run_checks`, the one place an agent makes the library run
//! a program: only the exact configured argv runs, without a shell, in the
//! root, with a minimal environment; the outcome comes back whether the
//! command passed or failed; output is capped; and on timeout the whole
//! process group dies, grandchildren included.

mod common;
use common::polling;
mod repo_support;

use repo_support::RepoFixture;
use serde_json::json;
use std::time::{Duration, Instant};

fn with_command(argv: serde_json::Value) -> RepoFixture {
    RepoFixture::with(json!({"allowed_ops": ["run_checks"], "check_command": argv}))
}

/// True once `pid` is gone (or a zombie nobody has reaped yet).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[test]
fn a_passing_check_returns_its_output_and_records_a_change() {
    let f = with_command(json!(["sh", "-c", "pwd; echo to-stderr >&2"]));
    let out = f.t.ok("repo.run_checks", json!({"id": "r"}));
    assert_eq!(out["status"], "succeeded");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["stdout"], format!("{}\n", f.root.display()));
    assert_eq!(out["stderr"], "to-stderr\n");
    assert_eq!(out["timed_out"], false);
    assert!(out["duration_ms"].as_u64().is_some());
    assert_eq!(out["job_id"].as_str().unwrap().len(), 32);
    let change = &f.t.ok("repo.changes", json!({"id": "r"}))["items"][0];
    assert_eq!(change["kind"], "run_checks");
    assert_eq!(change["job_id"], out["job_id"]);
    assert_eq!(change["stats"]["exit_code"], 0);
    assert_eq!(change["files"], json!([]));
}

#[test]
fn a_failing_check_is_still_an_ok_call_with_the_outcome() {
    let f = with_command(json!(["sh", "-c", "echo broken; exit 3"]));
    let out = f.t.ok("repo.run_checks", json!({"id": "r"}));
    assert_eq!(out["status"], "failed");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stdout"], "broken\n");
    let change = &f.t.ok("repo.changes", json!({"id": "r"}))["items"][0];
    assert_eq!(change["stats"]["status"], "failed");
}

#[test]
fn only_the_exact_configured_argv_runs() {
    let f = with_command(json!(["echo", "checked"]));
    f.t.ok(
        "repo.run_checks",
        json!({"id": "r", "command": ["echo", "checked"]}),
    );
    for other in [
        json!(["echo"]),
        json!(["echo", "checked", "extra"]),
        json!(["echo", "Checked"]),
        json!(["sh", "-c", "echo checked"]),
        json!([]),
    ] {
        f.t.err(
            "repo.run_checks",
            json!({"id": "r", "command": other}),
            "command_not_allowed",
        );
    }
    // No shell: metacharacters are plain arguments.
    let f = with_command(json!(["echo", "$(id)", ";", "rm", "-rf", "x", "|", "cat"]));
    let out = f.t.ok("repo.run_checks", json!({"id": "r"}));
    assert_eq!(out["stdout"], "$(id) ; rm -rf x | cat\n");
}

#[test]
fn missing_command_fields_and_unstartable_programs() {
    let f = RepoFixture::with(json!({"allowed_ops": ["run_checks"]}));
    f.t.err("repo.run_checks", json!({"id": "r"}), "no_check_command");
    f.t.err(
        "repo.run_checks",
        json!({"id": "r", "command": ["true"]}),
        "no_check_command",
    );
    let f = with_command(json!(["/nonexistent/checker"]));
    f.t.err("repo.run_checks", json!({"id": "r"}), "io");
    assert!(f.t.ok("repo.changes", json!({"id": "r"}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
    for bad in [json!(0), json!(3601), json!(-1), json!("10"), json!(1.5)] {
        let e = f.t.err(
            "repo.run_checks",
            json!({"id": "r", "timeout_s": bad}),
            "invalid_argument",
        );
        assert_eq!(e.details["field"], "timeout_s");
    }
    f.t.err(
        "repo.run_checks",
        json!({"id": "r", "wait": "yes"}),
        "invalid_argument",
    );
    f.t.err(
        "repo.run_checks",
        json!({"id": "r", "cmd": ["x"]}),
        "invalid_argument",
    );
}

#[test]
fn the_environment_is_minimal() {
    let f = with_command(json!(["env"]));
    let out = f.t.ok("repo.run_checks", json!({"id": "r"}));
    let keys: Vec<&str> = out["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|kv| kv.0))
        .collect();
    assert!(keys.contains(&"PATH"), "{keys:?}");
    for k in &keys {
        assert!(["PATH", "HOME", "LANG", "TMPDIR"].contains(k), "leaked {k}");
    }
}

#[test]
fn output_keeps_the_last_64_kib_of_each_stream_and_survives_bad_utf8() {
    let f = with_command(json!(["sh", "-c",
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i of the output stream\"; i=$((i+1)); done; printf 'bad \\377 byte' >&2"]));
    let out = f.t.ok("repo.run_checks", json!({"id": "r"}));
    let stdout = out["stdout"].as_str().unwrap();
    assert!(
        stdout.len() <= 64 * 1024 && stdout.len() > 60 * 1024,
        "{}",
        stdout.len()
    );
    assert!(stdout.ends_with("line 2999 of the output stream\n"));
    assert!(!stdout.contains("line 0 of"));
    assert_eq!(out["stderr"], "bad \u{FFFD} byte");
}

#[test]
fn a_timeout_kills_the_whole_process_group_including_grandchildren() {
    let f = with_command(json!([
        "sh",
        "-c",
        "sleep 300 & echo $! > grandchild.pid; echo started; wait"
    ]));
    let started = Instant::now();
    let out =
        f.t.ok("repo.run_checks", json!({"id": "r", "timeout_s": 1}));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(out["timed_out"], true);
    assert_eq!(out["status"], "failed");
    assert_eq!(out["exit_code"], json!(null));
    assert_eq!(out["stdout"], "started\n");
    let pid: u32 = std::fs::read_to_string(f.root.join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_dead(pid) {
        assert!(Instant::now() < deadline, "grandchild {pid} still alive");
        polling::pause();
    }
    let change = &f.t.ok("repo.changes", json!({"id": "r"}))["items"][0];
    assert_eq!(change["stats"]["timed_out"], true);
}

#[test]
fn background_children_do_not_outlive_a_finished_check() {
    let f = with_command(json!([
        "sh",
        "-c",
        "sleep 300 >/dev/null 2>&1 & echo $! > bg.pid; exit 0"
    ]));
    let out = f.t.ok("repo.run_checks", json!({"id": "r"}));
    assert_eq!(out["status"], "succeeded");
    let pid: u32 = std::fs::read_to_string(f.root.join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_dead(pid) {
        assert!(
            Instant::now() < deadline,
            "background child {pid} still alive"
        );
        polling::pause();
    }
}

#[test]
fn wait_false_returns_only_the_job_id_at_once() {
    let f = with_command(json!(["sh", "-c", "sleep 1; echo done > finished.txt"]));
    let started = Instant::now();
    let out = f.t.ok("repo.run_checks", json!({"id": "r", "wait": false}));
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["job_id"]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.t.ok("repo.changes", json!({"id": "r"}))["items"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the queued check never ran");
        polling::pause();
    }
    assert_eq!(f.read("finished.txt").as_deref(), Some("done\n"));
}
