//! Threads and messages keep the contract of section 4: exact fields and
//! error codes, updates that keep omitted fields and clear nulls, and message
//! paging that never skips or repeats a row, even when a thousand messages
//! share one `created_at`, in both directions. Guards against a chat history
//! that loses or duplicates messages when the shell scrolls.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn thread(t: &TestProfile) -> String {
    t.ok("threads.create", json!({}))["thread"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn thread_create_get_update_and_their_errors() {
    let t = TestProfile::ticking();
    let created = t.ok(
        "threads.create",
        json!({"id": "th-1", "title": "T", "origin": "chat", "metadata": {"a": 1}}),
    )["thread"]
        .clone();
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in [
        "id",
        "title",
        "description",
        "origin",
        "created_at",
        "updated_at",
        "last_user_message_at",
        "last_assistant_message_at",
        "metadata",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    assert_eq!(created["description"], Value::Null);
    assert_eq!(created["last_user_message_at"], Value::Null);
    assert_eq!(created["metadata"], json!({"a": 1}));
    t.err("threads.create", json!({"id": "th-1"}), "conflict");
    t.err(
        "threads.create",
        json!({"id": "bad id"}),
        "invalid_argument",
    );
    t.err(
        "threads.create",
        json!({"metadata": [1]}),
        "invalid_argument",
    );
    let e = t.err("threads.create", json!({"titel": "x"}), "invalid_argument");
    assert_eq!(e.details["field"], "titel");

    let generated = thread(&t);
    assert_eq!(generated.len(), 32);
    assert!(generated
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    assert_eq!(
        t.ok("threads.get", json!({"id": "th-1"}))["thread"],
        created
    );
    t.err("threads.get", json!({"id": "nope"}), "not_found");

    t.tick();
    let updated =
        t.ok("threads.update", json!({"id": "th-1", "description": "D"}))["thread"].clone();
    assert_eq!(updated["title"], "T", "omitted field kept");
    assert_eq!(updated["description"], "D");
    assert!(updated["updated_at"].as_i64() > created["updated_at"].as_i64());
    let cleared = t.ok(
        "threads.update",
        json!({"id": "th-1", "title": null, "metadata": null}),
    )["thread"]
        .clone();
    assert_eq!(cleared["title"], Value::Null);
    assert_eq!(cleared["description"], "D");
    assert_eq!(cleared["metadata"], json!({}));
    t.err(
        "threads.update",
        json!({"id": "nope", "title": "x"}),
        "not_found",
    );
    t.err(
        "threads.update",
        json!({"id": "th-1", "origin": "x"}),
        "invalid_argument",
    );
}

#[test]
fn threads_list_newest_updated_first_by_origin_with_cursor() {
    let t = TestProfile::ticking();
    for i in 0..5 {
        let origin = if i % 2 == 0 { "chat" } else { "browser" };
        t.ok(
            "threads.create",
            json!({"id": format!("t{i}"), "origin": origin}),
        );
    }
    // Touch t0 so it becomes the most recently updated.
    t.tick();
    t.ok("threads.update", json!({"id": "t0", "title": "x"}));
    let page = t.ok("threads.list", json!({"limit": 2}));
    assert_eq!(page["items"][0]["id"], "t0");
    assert_eq!(page["items"][1]["id"], "t4");
    let next = t.ok(
        "threads.list",
        json!({"limit": 2, "cursor": page["next_cursor"]}),
    );
    assert_eq!(next["items"][0]["id"], "t3");
    let chat = t.ok("threads.list", json!({"origin": "chat"}));
    let ids: Vec<&str> = chat["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t0", "t4", "t2"]);
    assert_eq!(chat["next_cursor"], Value::Null);
    // A cursor of one filter is refused by another.
    t.err(
        "threads.list",
        json!({"origin": "chat", "cursor": page["next_cursor"]}),
        "invalid_argument",
    );
    t.err(
        "threads.list",
        json!({"cursor": "garbage"}),
        "invalid_argument",
    );
    t.err("threads.list", json!({"limit": 0}), "invalid_argument");
    t.err("threads.list", json!({"limit": 501}), "invalid_argument");
}

#[test]
fn append_validates_and_moves_the_thread_times() {
    let t = TestProfile::ticking();
    let th = thread(&t);
    let before = t.ok("threads.get", json!({"id": th}))["thread"].clone();
    t.tick();
    let m = t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": "hi", "tokens": 3, "metadata": {"k": "v"}}),
    )["message"]
        .clone();
    for k in [
        "id",
        "thread_id",
        "parent_id",
        "role",
        "content",
        "tokens",
        "created_at",
        "metadata",
    ] {
        assert!(m.get(k).is_some(), "missing {k}");
    }
    assert_eq!(m["parent_id"], Value::Null);
    assert_eq!(m["tokens"], 3);
    let after = t.ok("threads.get", json!({"id": th}))["thread"].clone();
    assert!(after["updated_at"].as_i64() > before["updated_at"].as_i64());
    assert_eq!(after["last_user_message_at"], m["created_at"]);
    assert_eq!(after["last_assistant_message_at"], Value::Null);
    let a = t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "assistant", "content": "hello", "parent_id": m["id"], "created_at": 5}),
    )["message"]
        .clone();
    assert_eq!(a["created_at"], 5);
    assert_eq!(a["parent_id"], m["id"]);
    let after = t.ok("threads.get", json!({"id": th}))["thread"].clone();
    assert_eq!(after["last_assistant_message_at"], 5);

    t.err(
        "messages.append",
        json!({"thread_id": "nope", "role": "user", "content": "x"}),
        "not_found",
    );
    let e = t.err(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": ""}),
        "invalid_argument",
    );
    assert_eq!(e.details["field"], "content");
    t.err(
        "messages.append",
        json!({"thread_id": th, "role": "User", "content": "x"}),
        "invalid_argument",
    );
    t.err(
        "messages.append",
        json!({"thread_id": th, "role": "robot", "content": "x"}),
        "invalid_argument",
    );
    t.err(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": "x", "created_at": -1}),
        "invalid_argument",
    );
    // Token counts are stored as given: one past the stored range is
    // refused, not clamped; the largest stored one comes back as given.
    for tokens in [json!(-1), json!(u64::MAX), json!(1.5), json!("3")] {
        let e = t.err(
            "messages.append",
            json!({"thread_id": th, "role": "user", "content": "x", "tokens": tokens}),
            "invalid_argument",
        );
        assert_eq!(e.details["field"], "tokens");
    }
    let big = t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": "x", "tokens": i64::MAX}),
    );
    assert_eq!(big["message"]["tokens"], i64::MAX);
    t.err(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": "x", "id": m["id"]}),
        "conflict",
    );
    t.err(
        "messages.append",
        json!({"thread_id": th, "role": "user"}),
        "invalid_argument",
    );
    for role in ["system", "tool"] {
        t.ok(
            "messages.append",
            json!({"thread_id": th, "role": role, "content": "x"}),
        );
    }
}

fn collect(t: &TestProfile, thread_id: &str, order: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut req = json!({"thread_id": thread_id, "order": order, "limit": limit});
        if !cursor.is_null() {
            req["cursor"] = cursor.clone();
        }
        let page = t.ok("messages.list", req);
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return ids;
        }
    }
}

#[test]
fn thousand_messages_with_one_timestamp_page_without_skips_or_repeats() {
    let t = TestProfile::new();
    let th = thread(&t);
    let mut appended = Vec::new();
    for i in 0..1000 {
        let m = t.ok(
            "messages.append",
            json!({"thread_id": th, "role": "user", "content": format!("m{i}"), "created_at": 1_000}),
        );
        appended.push(m["message"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(collect(&t, &th, "asc", 7), appended);
    let mut reversed = appended.clone();
    reversed.reverse();
    assert_eq!(collect(&t, &th, "desc", 13), reversed);
    // Default order is asc; a desc cursor is not an asc cursor.
    let page = t.ok(
        "messages.list",
        json!({"thread_id": th, "order": "desc", "limit": 3}),
    );
    t.err(
        "messages.list",
        json!({"thread_id": th, "cursor": page["next_cursor"]}),
        "invalid_argument",
    );
    t.err(
        "messages.list",
        json!({"thread_id": th, "order": "DESC"}),
        "invalid_argument",
    );
    t.err("messages.list", json!({"thread_id": "nope"}), "not_found");
}

#[test]
fn desc_returns_the_latest_n_newest_first() {
    let t = TestProfile::new();
    let th = thread(&t);
    for i in 0..30 {
        t.ok("messages.append", json!({"thread_id": th, "role": "user", "content": format!("m{i}"), "created_at": 100 + i}));
    }
    let page = t.ok(
        "messages.list",
        json!({"thread_id": th, "order": "desc", "limit": 5}),
    );
    let contents: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["m29", "m28", "m27", "m26", "m25"]);
    let asc = t.ok("messages.list", json!({"thread_id": th, "limit": 2}));
    assert_eq!(asc["items"][0]["content"], "m0");
}

#[test]
fn message_delete_removes_one_message() {
    let t = TestProfile::new();
    let th = thread(&t);
    let m = t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": "x"}),
    )["message"]["id"]
        .clone();
    t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "user", "content": "y"}),
    );
    assert_eq!(
        t.ok("messages.delete", json!({"id": m})),
        json!({"deleted": 1, "erased": true})
    );
    t.err("messages.delete", json!({"id": m}), "not_found");
    let page = t.ok("messages.list", json!({"thread_id": th}));
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["content"], "y");
}

/// A list by parent sees a parent's delete whole or not at all: while
/// threads are deleted, `messages.list {thread_id}` answers every message
/// of the thread or `not_found`, never an empty page of a thread that
/// still exists (the parent check and the page are one snapshot).
#[test]
fn a_list_never_shows_half_of_its_parents_delete() {
    let t = TestProfile::new();
    let threads: Vec<String> = (0..40)
        .map(|_| {
            let id = thread(&t);
            for i in 0..5 {
                t.ok(
                    "messages.append",
                    json!({"thread_id": id, "role": "user", "content": format!("m{i}")}),
                );
            }
            id
        })
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let torn = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    for id in &threads {
                        if let Ok(page) = t.call("messages.list", json!({"thread_id": id})) {
                            let n = page["items"].as_array().unwrap().len();
                            if n != 5 {
                                torn.lock().unwrap().push(format!("{id}: {n} messages"));
                            }
                        }
                    }
                }
            });
        }
        for id in &threads {
            t.ok("threads.delete", json!({"id": id}));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let torn = torn.into_inner().unwrap();
    common::assert_none(torn, "torn pages");
}
