//! Tasks keep their history honest: creation records exactly one `created`
//! event, a status change records exactly `{from, to}` (and a same-status
//! update none), `closed_at` follows the status, and events go with their
//! task. Guards against a task board whose history or closing times lie.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn events(t: &TestProfile, task: &Value) -> Vec<Value> {
    t.ok("tasks.events", json!({"task_id": task}))["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn create_defaults_records_one_event_and_checks_links() {
    let t = TestProfile::new();
    let task = t.ok("tasks.create", json!({"title": "Write"}))["task"].clone();
    for k in [
        "id",
        "thread_id",
        "title",
        "description",
        "status",
        "priority",
        "due_at",
        "owner",
        "created_at",
        "updated_at",
        "closed_at",
        "metadata",
        "result",
    ] {
        assert!(task.get(k).is_some(), "missing {k}");
    }
    assert_eq!(task["status"], "pending");
    assert_eq!(task["closed_at"], Value::Null);
    assert_eq!(task["result"], Value::Null);
    let ev = events(&t, &task["id"]);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["event_type"], "created");
    for k in ["id", "task_id", "event_type", "payload", "created_at"] {
        assert!(ev[0].get(k).is_some(), "missing {k}");
    }

    t.err(
        "tasks.create",
        json!({"title": "x", "thread_id": "nope"}),
        "not_found",
    );
    let e = t.err(
        "tasks.create",
        json!({"title": "x", "status": "done"}),
        "invalid_argument",
    );
    assert_eq!(e.details["field"], "status");
    t.err(
        "tasks.create",
        json!({"title": "x", "status": "Pending"}),
        "invalid_argument",
    );
    t.err("tasks.create", json!({}), "invalid_argument");
    t.err("tasks.create", json!({"title": ""}), "invalid_argument");
    t.err(
        "tasks.create",
        json!({"title": "x", "due_at": -5}),
        "invalid_argument",
    );
    t.err(
        "tasks.create",
        json!({"title": "x", "id": task["id"]}),
        "conflict",
    );

    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let full = t.ok(
        "tasks.create",
        json!({"title": "y", "thread_id": th, "status": "completed", "priority": 2, "due_at": 9,
               "owner": "me", "metadata": {"m": 1}, "result": {"ok": true}, "description": "d"}),
    )["task"]
        .clone();
    assert_eq!(full["thread_id"], th);
    assert!(full["closed_at"].is_i64(), "created closed: closed_at set");
    assert_eq!(full["result"], json!({"ok": true}));
    assert_eq!(t.ok("tasks.get", json!({"id": full["id"]}))["task"], full);
    t.err("tasks.get", json!({"id": "nope"}), "not_found");
}

#[test]
fn status_changes_record_from_to_and_move_closed_at() {
    let t = TestProfile::new();
    let id = t.ok("tasks.create", json!({"title": "T"}))["task"]["id"].clone();
    let up =
        |status: &str| t.ok("tasks.update", json!({"id": id, "status": status}))["task"].clone();

    let task = up("in_progress");
    assert_eq!(task["closed_at"], Value::Null);
    let same = up("in_progress");
    assert_eq!(same["status"], "in_progress");
    let ev = events(&t, &id);
    assert_eq!(ev.len(), 2, "same-status update records nothing");
    assert_eq!(ev[1]["event_type"], "status_changed");
    assert_eq!(
        ev[1]["payload"],
        json!({"from": "pending", "to": "in_progress"})
    );

    let done = up("completed");
    assert!(done["closed_at"].is_i64());
    let failed = up("failed");
    assert!(failed["closed_at"].is_i64());
    let reopened = up("blocked");
    assert_eq!(
        reopened["closed_at"],
        Value::Null,
        "leaving a closed status clears closed_at"
    );
    let cancelled = up("cancelled");
    assert!(cancelled["closed_at"].is_i64());
    let ev = events(&t, &id);
    let payloads: Vec<Value> = ev[1..].iter().map(|e| e["payload"].clone()).collect();
    assert_eq!(
        payloads,
        [
            json!({"from": "pending", "to": "in_progress"}),
            json!({"from": "in_progress", "to": "completed"}),
            json!({"from": "completed", "to": "failed"}),
            json!({"from": "failed", "to": "blocked"}),
            json!({"from": "blocked", "to": "cancelled"}),
        ]
    );
    // A non-status update keeps the status and records no event.
    let titled = t.ok(
        "tasks.update",
        json!({"id": id, "title": "T2", "owner": "o"}),
    )["task"]
        .clone();
    assert_eq!(titled["status"], "cancelled");
    assert_eq!(titled["closed_at"], cancelled["closed_at"]);
    assert_eq!(events(&t, &id).len(), 6);
}

#[test]
fn update_keeps_omitted_clears_nulls_and_refuses_bad_values() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let id = t.ok(
        "tasks.create",
        json!({"title": "T", "description": "d", "owner": "o", "priority": 1, "thread_id": th}),
    )["task"]["id"]
        .clone();
    let task = t.ok(
        "tasks.update",
        json!({"id": id, "description": null, "result": [1]}),
    )["task"]
        .clone();
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["owner"], "o");
    assert_eq!(task["priority"], 1);
    assert_eq!(task["result"], json!([1]));
    let task = t.ok("tasks.update", json!({"id": id, "thread_id": null}))["task"].clone();
    assert_eq!(task["thread_id"], Value::Null);
    t.err(
        "tasks.update",
        json!({"id": id, "thread_id": "nope"}),
        "not_found",
    );
    t.err(
        "tasks.update",
        json!({"id": "nope", "title": "x"}),
        "not_found",
    );
    t.err(
        "tasks.update",
        json!({"id": id, "status": null}),
        "invalid_argument",
    );
    t.err(
        "tasks.update",
        json!({"id": id, "title": null}),
        "invalid_argument",
    );
    t.err(
        "tasks.update",
        json!({"id": id, "status": "open"}),
        "invalid_argument",
    );
    t.err(
        "tasks.update",
        json!({"id": id, "colour": 1}),
        "invalid_argument",
    );
}

#[test]
fn list_filters_and_orders_by_updated() {
    let t = TestProfile::ticking();
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    for i in 0..6 {
        let status = if i % 2 == 0 { "pending" } else { "blocked" };
        let thread = if i < 3 { th.clone() } else { Value::Null };
        t.ok(
            "tasks.create",
            json!({"id": format!("k{i}"), "title": "t", "status": status, "thread_id": thread}),
        );
    }
    t.tick();
    t.ok("tasks.update", json!({"id": "k0", "owner": "x"}));
    let ids = |req: Value| -> Vec<String> {
        t.ok("tasks.list", req)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(json!({})), ["k0", "k5", "k4", "k3", "k2", "k1"]);
    assert_eq!(ids(json!({"status": "pending"})), ["k0", "k4", "k2"]);
    assert_eq!(ids(json!({"thread_id": th})), ["k0", "k2", "k1"]);
    assert_eq!(ids(json!({"thread_id": th, "status": "blocked"})), ["k1"]);
    let page = t.ok("tasks.list", json!({"limit": 4}));
    let rest = t.ok(
        "tasks.list",
        json!({"limit": 4, "cursor": page["next_cursor"]}),
    );
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert_eq!(rest["next_cursor"], Value::Null);
    t.err(
        "tasks.list",
        json!({"status": "pending", "cursor": page["next_cursor"]}),
        "invalid_argument",
    );
    t.err("tasks.list", json!({"status": "nope"}), "invalid_argument");
    // A thread filter names a thread that must exist (section 1).
    t.err("tasks.list", json!({"thread_id": "nope"}), "not_found");
    t.err(
        "tasks.list",
        json!({"thread_id": "nope", "status": "bad"}),
        "invalid_argument",
    );
}

#[test]
fn events_page_oldest_first_and_go_with_the_task() {
    let t = TestProfile::new();
    let id = t.ok("tasks.create", json!({"title": "T"}))["task"]["id"].clone();
    for i in 0..9 {
        let ev = t.ok(
            "tasks.add_event",
            json!({"task_id": id, "event_type": "note", "payload": {"i": i}}),
        )["event"]
            .clone();
        assert_eq!(ev["task_id"], id);
    }
    let bare = t.ok(
        "tasks.add_event",
        json!({"task_id": id, "event_type": "ping"}),
    )["event"]
        .clone();
    assert_eq!(bare["payload"], Value::Null);
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut req = json!({"task_id": id, "limit": 4});
        if !cursor.is_null() {
            req["cursor"] = cursor;
        }
        let page = t.ok("tasks.events", req);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_type"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen.len(), 11);
    assert_eq!(seen[0], "created");
    assert_eq!(seen[10], "ping");
    t.err(
        "tasks.add_event",
        json!({"task_id": "nope", "event_type": "x"}),
        "not_found",
    );
    t.err(
        "tasks.add_event",
        json!({"task_id": id, "event_type": ""}),
        "invalid_argument",
    );
    t.err("tasks.events", json!({"task_id": "nope"}), "not_found");

    assert_eq!(
        t.ok("tasks.delete", json!({"id": id})),
        json!({"deleted": 1, "erased": true})
    );
    t.err("tasks.delete", json!({"id": id}), "not_found");
    t.err("tasks.get", json!({"id": id}), "not_found");
    t.err("tasks.events", json!({"task_id": id}), "not_found");
    let rows = t
        .profile
        .db()
        .read(|c| hydra_core::db::ConnExt::query_i64(c, "SELECT count(*) FROM task_events", []))
        .unwrap();
    assert_eq!(rows, 0, "events went with the task");
}
