//! `threads.delete` removes a conversation completely in one transaction:
//! exact stats, no row anywhere still holding its messages, tasks, events,
//! memories (by `thread_id` or `scope: thread`), embeddings, audit or
//! full-text entries, tabs detached, other threads untouched, and the
//! deleted text in no file of the profile directory afterwards. Guards
//! against "deleted" conversations that a disk scan can still read.

mod common;
use common::{any_file_contains, TestProfile};
use hydra_core::db::ConnExt;
use hydra_core::jobs::JobLinks;
use serde_json::{json, Value};

fn count(t: &TestProfile, sql: &str) -> i64 {
    t.profile.db().read(|c| c.query_i64(sql, [])).unwrap()
}

#[test]
fn stats_are_exact_and_nothing_of_the_thread_remains() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({"id": "doomed"}))["thread"]["id"].clone();
    let keep = t.ok("threads.create", json!({"id": "kept"}))["thread"]["id"].clone();
    for i in 0..3 {
        t.ok(
            "messages.append",
            json!({"thread_id": th, "role": "user", "content": format!("bye {i}")}),
        );
    }
    t.ok(
        "messages.append",
        json!({"thread_id": keep, "role": "user", "content": "stay"}),
    );
    let task = t.ok("tasks.create", json!({"title": "t", "thread_id": th}))["task"]["id"].clone();
    t.ok("tasks.update", json!({"id": task, "status": "completed"}));
    t.ok(
        "tasks.add_event",
        json!({"task_id": task, "event_type": "note"}),
    );
    t.ok("tasks.create", json!({"title": "t2", "thread_id": th}));
    let kept_task =
        t.ok("tasks.create", json!({"title": "kept", "thread_id": keep}))["task"]["id"].clone();
    let emb = json!({"model": "e", "vector": [1, 2, 3]});
    t.ok(
        "memory.upsert",
        json!({"value": "by thread", "scope": "user", "thread_id": th, "embedding": emb}),
    );
    t.ok(
        "memory.upsert",
        json!({"value": "by scope", "scope": "thread", "scope_ref": th, "embedding": emb}),
    );
    // A memory of the kept thread that names a task of the deleted one.
    t.ok("memory.upsert", json!({"id": "other", "value": "other", "scope": "user", "thread_id": keep, "task_id": task}));
    t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "tab-1", "thread_id": th}),
    );
    t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "tab-2", "thread_id": th}),
    );
    t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "tab-3", "thread_id": keep}),
    );

    // Jobs linked to the thread (and to one of its tasks) stay in the ledger.
    let job = |thread: &Value, task: &Value| {
        let links = JobLinks {
            thread_id: thread.as_str().map(str::to_owned),
            task_id: task.as_str().map(str::to_owned),
        };
        t.profile
            .jobs()
            .run_inline("test_job", json!({}), links, |_| Ok(json!({})))
            .unwrap()
            .0
    };
    let job_thread = job(&th, &Value::Null);
    let job_task = job(&th, &task);
    let job_kept = job(&keep, &Value::Null);

    let r = t.ok("threads.delete", json!({"id": th}));
    assert_eq!(
        r,
        json!({"deleted": 1, "stats": {"messages": 3, "tasks": 2, "task_events": 4,
               "memories": 2, "tabs_detached": 2, "jobs_detached": 2}, "erased": true})
    );
    t.err("threads.delete", json!({"id": th}), "not_found");
    t.err("threads.get", json!({"id": th}), "not_found");
    for (sql, expected) in [
        ("SELECT count(*) FROM llm_messages", 1),
        ("SELECT count(*) FROM tasks", 1),
        ("SELECT count(*) FROM task_events", 1),
        ("SELECT count(*) FROM memories", 1),
        ("SELECT count(*) FROM memory_embeddings", 0),
        ("SELECT count(*) FROM memory_audit", 1),
        // Messages have no full-text index (migration 0009) that could
        // keep their words.
        (
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'llm_messages_fts%'",
            0,
        ),
        (
            "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'thread OR scope'",
            0,
        ),
        ("SELECT count(*) FROM tabs WHERE thread_id IS NOT NULL", 1),
        ("SELECT count(*) FROM tabs", 3),
    ] {
        assert_eq!(count(&t, sql), expected, "{sql}");
    }
    for (id, thread, task) in [
        (&job_thread, Value::Null, Value::Null),
        (&job_task, Value::Null, Value::Null),
        (&job_kept, keep.clone(), Value::Null),
    ] {
        let j = t.ok("jobs.get", json!({"id": id}))["job"].clone();
        assert_eq!(
            (j["thread_id"].clone(), j["task_id"].clone()),
            (thread, task),
            "job {id}"
        );
    }
    let other = t.ok("memory.get", json!({"id": "other"}))["memory"].clone();
    assert_eq!(
        other["task_id"],
        Value::Null,
        "link to a deleted task is cleared"
    );
    t.ok("tasks.get", json!({"id": kept_task}));
    assert_eq!(
        t.ok("tabs.unbind_thread", json!({"tab_id": "tab-1"}))["tab"]["thread_id"],
        Value::Null
    );
}

#[test]
fn deleted_text_is_in_no_file_after_delete_and_close() {
    let t = TestProfile::new();
    let secret = "quetzal-marzipan-40417";
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": format!("my secret is {secret}")}),
    );
    t.ok("chat", json!({"message": format!("remember {secret}"), "thread_id": th, "reply": format!("ok {secret}")}));
    t.ok("memory.upsert", json!({"value": format!("the code is {secret}"), "key": secret, "scope": "thread", "scope_ref": th}));
    t.ok(
        "memory.upsert",
        json!({"value": format!("also {secret}"), "scope": "user", "thread_id": th}),
    );
    // Unrelated data keeps the files busy.
    let keep = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    for i in 0..50 {
        t.ok(
            "messages.append",
            json!({"thread_id": keep, "role": "user", "content": format!("filler {i}")}),
        );
    }
    t.profile.db().checkpoint_truncate().unwrap();
    assert!(
        any_file_contains(t.dir.path(), secret.as_bytes()).is_some(),
        "the secret was stored"
    );

    t.ok("threads.delete", json!({"id": th}));
    assert_eq!(
        any_file_contains(t.dir.path(), secret.as_bytes()),
        None,
        "found after delete"
    );
    t.close();
    assert_eq!(
        any_file_contains(t.dir.path(), secret.as_bytes()),
        None,
        "found after close"
    );
}

#[test]
fn single_deletes_leave_no_text_either() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let (m, mem, task) = (
        "okapi-sarsaparilla-1",
        "okapi-sarsaparilla-2",
        "okapi-sarsaparilla-3",
    );
    let mid = t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": m}),
    )["message"]["id"]
        .clone();
    let memid =
        t.ok("memory.upsert", json!({"value": mem, "scope": "user"}))["memory"]["id"].clone();
    let tid = t.ok("tasks.create", json!({"title": task}))["task"]["id"].clone();
    t.profile.db().checkpoint_truncate().unwrap();
    t.ok("messages.delete", json!({"id": mid}));
    t.ok("memory.delete", json!({"id": memid}));
    t.ok("tasks.delete", json!({"id": tid}));
    t.close();
    assert_eq!(any_file_contains(t.dir.path(), b"okapi-sarsaparilla"), None);
}
