//! Tab operations: upsert creates or touches and keeps omitted fields, a
//! bound thread must exist, lists are newest `updated_at` first with stable
//! paging, close removes the tab and detaches its history. Guards against
//! tabs bound to threads that do not exist and closes that lose history.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn make_thread(t: &TestProfile, id: &str) {
    t.profile
        .db()
        .write(|tx| {
            use hydra_core::db::ConnExt;
            tx.run(
                "INSERT INTO llm_threads (id, created_at, updated_at) VALUES (?1, 1, 1)",
                [id],
            )
        })
        .unwrap();
}

#[test]
fn upsert_creates_binds_and_keeps_omitted_fields() {
    let t = TestProfile::new();
    let tab = t.ok("tabs.upsert", json!({"id": "t1"}))["tab"].clone();
    assert_eq!(
        tab.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .len(),
        8
    );
    assert_eq!(tab["thread_id"], Value::Null);
    assert_eq!(tab["created_at"], tab["updated_at"]);
    t.err(
        "tabs.upsert",
        json!({"id": "t1", "thread_id": "missing"}),
        "not_found",
    );
    make_thread(&t, "th1");
    let bound = t.ok("tabs.upsert", json!({"id": "t1", "thread_id": "th1"}))["tab"].clone();
    assert_eq!(bound["thread_id"], json!("th1"));
    assert_eq!(bound["created_at"], tab["created_at"]);
    // Omitted thread_id keeps the binding; null unbinds.
    let kept = t.ok("tabs.upsert", json!({"id": "t1"}))["tab"].clone();
    assert_eq!(kept["thread_id"], json!("th1"));
    let unbound = t.ok("tabs.upsert", json!({"id": "t1", "thread_id": null}))["tab"].clone();
    assert_eq!(unbound["thread_id"], Value::Null);
    // A failed upsert creates nothing.
    t.err(
        "tabs.upsert",
        json!({"id": "t2", "thread_id": "missing"}),
        "not_found",
    );
    t.err("tabs.get", json!({"id": "t2"}), "not_found");
    t.err("tabs.upsert", json!({"id": "bad id"}), "invalid_argument");
    t.err(
        "tabs.upsert",
        json!({"id": "t1", "extra": 1}),
        "invalid_argument",
    );
    assert_eq!(
        t.ok("tabs.get", json!({"id": "t1"}))["tab"]["id"],
        json!("t1")
    );
}

#[test]
fn list_is_newest_updated_first_and_pages() {
    let t = TestProfile::ticking();
    for i in 0..7 {
        t.ok("tabs.upsert", json!({"id": format!("t{i}")}));
    }
    // Touching t0 moves it to the front.
    t.tick();
    t.ok("tabs.upsert", json!({"id": "t0"}));
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = t.ok("tabs.list", json!({"limit": 3, "cursor": cursor}));
        for tab in page["items"].as_array().unwrap() {
            seen.push(tab["id"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[0], "t0");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7);
    t.err("tabs.list", json!({"limit": 501}), "invalid_argument");
}

#[test]
fn close_removes_the_tab_and_detaches_history() {
    let t = TestProfile::new();
    t.ok(
        "visits.record",
        json!({"url": "https://a.example/", "visited_at": 1, "tab_id": "t1"}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://b.example/", "visited_at": 2, "tab_id": "t1"}),
    );
    let r = t.ok("tabs.close", json!({"id": "t1"}));
    assert_eq!(
        r,
        json!({"deleted": 1, "history_detached": 2, "erased": true})
    );
    t.err("tabs.get", json!({"id": "t1"}), "not_found");
    t.err("tabs.close", json!({"id": "t1"}), "not_found");
    let items = t.ok("history.list", json!({}))["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 2);
    assert!(items
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["tab_id"].is_null()));
    // The tab is gone: a list filtered by it addresses a missing object
    // (section 1, "Missing objects"), like `bookmarks.list {folder_id}`.
    t.err("history.list", json!({"tab_id": "t1"}), "not_found");
    t.ok("tabs.upsert", json!({"id": "t2"}));
    assert!(t.ok("history.list", json!({"tab_id": "t2"}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}
