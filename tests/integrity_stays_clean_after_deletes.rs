//! `PRAGMA integrity_check` (through `profile.maintenance {integrity_check:
//! true}`) stays `ok` after every privacy delete path. With SQLite 3.46 the
//! FTS5 tables created with `secure-delete` reported "malformed inverted
//! index" after deletes although searches stayed right; a profile must
//! never look corrupt because the user deleted something.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn integrity(t: &TestProfile) -> Value {
    t.ok("profile.maintenance", json!({"integrity_check": true}))["integrity"].clone()
}

fn populate(t: &TestProfile) -> (Vec<Value>, Vec<Value>) {
    let visits: Vec<Value> = (0..2_000)
        .map(|i| json!({"url": format!("https://host{}.example/article/{i}", i % 30), "title": format!("Article number {i} about topic {}", i % 17), "visited_at": i, "tab_id": format!("tab-{}", i % 5)}))
        .collect();
    t.ok("visits.record_batch", json!({"visits": visits}));
    let mut threads = Vec::new();
    for th in 0..10 {
        let thread =
            t.ok("threads.create", json!({"title": format!("Thread {th}")}))["thread"].clone();
        for m in 0..60 {
            t.ok(
                "messages.append",
                json!({"thread_id": thread["id"], "role": "user", "content": format!("message {m} of thread {th}: words words topic{}", m % 7)}),
            );
        }
        threads.push(thread);
    }
    let mut memories = Vec::new();
    for i in 0..300 {
        memories.push(
            t.ok(
                "memory.upsert",
                json!({"value": format!("memory {i} prefers topic{}", i % 9), "scope": "user", "thread_id": threads[i % 10]["id"]}),
            )["memory"]
                .clone(),
        );
    }
    for i in 0..100 {
        t.ok(
            "bookmarks.add",
            json!({"url": format!("https://bm{i}.example/"), "title": format!("Bookmark {i}")}),
        );
        t.ok(
            "tasks.create",
            json!({"title": format!("Task {i}"), "thread_id": threads[i % 10]["id"]}),
        );
    }
    (threads, memories)
}

#[test]
fn integrity_is_null_unless_asked_and_ok_on_a_fresh_profile() {
    let t = TestProfile::new();
    let report = t.ok("profile.maintenance", json!({}));
    assert_eq!(report["integrity"], Value::Null);
    assert_eq!(integrity(&t), "ok");
}

#[test]
fn integrity_is_ok_after_every_delete_path() {
    let t = TestProfile::new();
    let (threads, memories) = populate(&t);
    assert_eq!(integrity(&t), "ok");

    let message = t.ok(
        "messages.list",
        json!({"thread_id": threads[0]["id"], "limit": 1}),
    )["items"][0]
        .clone();
    let task = t.ok("tasks.list", json!({"limit": 1}))["items"][0].clone();
    let bookmark = t.ok("bookmarks.list", json!({"limit": 1}))["items"][0].clone();
    let folder = t.ok("bookmarks.create_folder", json!({"name": "f"}))["folder"].clone();
    t.ok(
        "bookmarks.add",
        json!({"url": "https://in-folder.example/", "folder_id": folder["id"]}),
    );
    let visit = t.ok("history.list", json!({"limit": 1}))["items"][0].clone();
    let steps = [
        ("messages.delete", json!({"id": message["id"]})),
        ("memory.delete", json!({"id": memories[1]["id"]})),
        (
            "memory.delete",
            json!({"scope": "user", "thread_id": threads[2]["id"]}),
        ),
        ("threads.delete", json!({"id": threads[1]["id"]})),
        ("tasks.delete", json!({"id": task["id"]})),
        ("history.delete", json!({"id": visit["id"]})),
        ("history.purge", json!({"host": "host3.example"})),
        ("history.purge", json!({"from": 100, "to": 900})),
        ("tabs.close", json!({"id": "tab-2"})),
        ("bookmarks.delete", json!({"id": bookmark["id"]})),
        ("bookmarks.delete_folder", json!({"id": folder["id"]})),
        ("history.purge", json!({"all": true})),
    ];
    for (op, request) in steps {
        let data = t.ok(op, request.clone());
        assert_eq!(data["erased"], true, "{op}");
        assert_eq!(integrity(&t), "ok", "after {op} {request}");
    }
    // Searches still agree with what is left.
    let found = t.ok("memory.search", json!({"query": "topic3", "limit": 100}))["items"].clone();
    for item in found.as_array().unwrap() {
        assert_ne!(item["memory"]["id"], memories[1]["id"]);
    }
}
