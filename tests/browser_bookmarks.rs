//! Bookmarks and folders: duplicates allowed, tags kept in order, folders
//! nest and take their subfolders and bookmarks with them, lists by folder
//! or overall newest first, updates that keep omitted fields and clear with
//! null. Guards against lost tag order, orphaned bookmarks in deleted
//! folders and updates that silently drop fields.

mod common;
use common::TestProfile;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn add_keeps_tags_in_order_and_allows_duplicates() {
    let t = TestProfile::new();
    let a = t.ok(
        "bookmarks.add",
        json!({"url": "https://a.example/", "title": "A", "tags": ["zeta", "alpha", "mid", "alpha"]}),
    )["bookmark"]
        .clone();
    assert_eq!(a["tags"], json!(["zeta", "alpha", "mid", "alpha"]));
    assert_eq!(a["folder_id"], Value::Null);
    assert_eq!(a["created_at"], a["updated_at"]);
    let b = t.ok("bookmarks.add", json!({"url": "https://a.example/"}))["bookmark"].clone();
    assert_ne!(a["id"], b["id"]);
    assert_eq!(
        (b["title"].clone(), b["tags"].clone()),
        (Value::Null, json!([]))
    );
    assert_eq!(
        ids(&t.ok("bookmarks.list", json!({}))),
        [b["id"].as_i64().unwrap(), a["id"].as_i64().unwrap()]
    );
    t.err(
        "bookmarks.add",
        json!({"url": "a.example"}),
        "invalid_argument",
    );
    t.err(
        "bookmarks.add",
        json!({"url": "https://a.example/", "folder_id": 99}),
        "not_found",
    );
    t.err(
        "bookmarks.add",
        json!({"url": "https://a.example/", "tags": "x"}),
        "invalid_argument",
    );
    t.err(
        "bookmarks.add",
        json!({"url": "https://a.example/", "tags": [1]}),
        "invalid_argument",
    );
}

#[test]
fn folders_nest_list_directly_and_delete_whole_subtrees() {
    let t = TestProfile::new();
    let work = t.ok("bookmarks.create_folder", json!({"name": "Work"}))["folder"].clone();
    assert_eq!(work["parent_id"], Value::Null);
    let rust = t.ok(
        "bookmarks.create_folder",
        json!({"name": "Rust", "parent_id": work["id"]}),
    )["folder"]
        .clone();
    assert_eq!(rust["parent_id"], work["id"]);
    let other = t.ok("bookmarks.create_folder", json!({"name": "Other"}))["folder"].clone();
    t.err(
        "bookmarks.create_folder",
        json!({"name": "x", "parent_id": 999}),
        "not_found",
    );
    t.err(
        "bookmarks.create_folder",
        json!({"name": ""}),
        "invalid_argument",
    );
    t.err("bookmarks.create_folder", json!({}), "invalid_argument");

    let top =
        t.ok("bookmarks.add", json!({"url": "https://top.example/"}))["bookmark"]["id"].clone();
    let in_work = t.ok(
        "bookmarks.add",
        json!({"url": "https://w.example/", "folder_id": work["id"]}),
    )["bookmark"]["id"]
        .clone();
    let in_rust = t.ok(
        "bookmarks.add",
        json!({"url": "https://r.example/", "folder_id": rust["id"]}),
    )["bookmark"]["id"]
        .clone();
    let in_other = t.ok(
        "bookmarks.add",
        json!({"url": "https://o.example/", "folder_id": other["id"]}),
    )["bookmark"]["id"]
        .clone();

    assert_eq!(
        ids(&t.ok("bookmarks.list", json!({"folder_id": work["id"]}))),
        [in_work.as_i64().unwrap()]
    );
    assert_eq!(
        ids(&t.ok("bookmarks.list", json!({"folder_id": rust["id"]}))),
        [in_rust.as_i64().unwrap()]
    );
    assert_eq!(ids(&t.ok("bookmarks.list", json!({}))).len(), 4);
    t.err("bookmarks.list", json!({"folder_id": 999}), "not_found");

    let r = t.ok("bookmarks.delete_folder", json!({"id": work["id"]}));
    assert_eq!(
        r,
        json!({"deleted": 1, "stats": {"subfolders": 1, "bookmarks": 2}, "erased": true})
    );
    let left = ids(&t.ok("bookmarks.list", json!({})));
    assert_eq!(left, [in_other.as_i64().unwrap(), top.as_i64().unwrap()]);
    t.err(
        "bookmarks.list",
        json!({"folder_id": rust["id"]}),
        "not_found",
    );
    t.err(
        "bookmarks.delete_folder",
        json!({"id": work["id"]}),
        "not_found",
    );
}

#[test]
fn list_query_and_paging() {
    let t = TestProfile::new();
    for i in 0..9 {
        t.ok(
            "bookmarks.add",
            json!({"url": format!("https://s{i}.example/"), "title": format!("Item {i}")}),
        );
    }
    t.ok(
        "bookmarks.add",
        json!({"url": "https://x.example/50%_off", "title": "Sale"}),
    );
    let hits = t.ok("bookmarks.list", json!({"query": "ITEM 3"}));
    assert_eq!(hits["items"][0]["title"], json!("Item 3"));
    assert_eq!(ids(&hits).len(), 1);
    assert_eq!(
        ids(&t.ok("bookmarks.list", json!({"query": "%_"}))).len(),
        1
    );
    assert_eq!(
        ids(&t.ok("bookmarks.list", json!({"query": "s_.ex"}))).len(),
        0
    );
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = t.ok("bookmarks.list", json!({"limit": 4, "cursor": cursor}));
        seen.extend(ids(&page));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let mut expected = seen.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 10);
}

#[test]
fn update_keeps_omitted_and_clears_null() {
    let t = TestProfile::ticking();
    let folder = t.ok("bookmarks.create_folder", json!({"name": "F"}))["folder"].clone();
    let b = t.ok(
        "bookmarks.add",
        json!({"url": "https://a.example/", "title": "A", "tags": ["b", "a"], "folder_id": folder["id"]}),
    )["bookmark"]
        .clone();
    let id = b["id"].clone();
    t.tick();
    let u = t.ok("bookmarks.update", json!({"id": id, "title": "B"}))["bookmark"].clone();
    assert_eq!(u["title"], json!("B"));
    assert_eq!(u["tags"], json!(["b", "a"]));
    assert_eq!(u["folder_id"], folder["id"]);
    assert!(u["updated_at"].as_i64() > b["updated_at"].as_i64());
    assert_eq!(u["created_at"], b["created_at"]);
    let u = t.ok(
        "bookmarks.update",
        json!({"id": id, "title": null, "folder_id": null, "tags": ["c", "b", "a"], "url": "https://b.example/"}),
    )["bookmark"]
        .clone();
    assert_eq!(
        (
            u["title"].clone(),
            u["folder_id"].clone(),
            u["tags"].clone(),
            u["url"].clone()
        ),
        (
            Value::Null,
            Value::Null,
            json!(["c", "b", "a"]),
            json!("https://b.example/")
        )
    );
    t.err(
        "bookmarks.update",
        json!({"id": id, "url": null}),
        "invalid_argument",
    );
    t.err(
        "bookmarks.update",
        json!({"id": id, "url": "nope"}),
        "invalid_argument",
    );
    t.err(
        "bookmarks.update",
        json!({"id": id, "folder_id": 999}),
        "not_found",
    );
    t.err(
        "bookmarks.update",
        json!({"id": 999, "title": "x"}),
        "not_found",
    );
    let r = t.ok("bookmarks.delete", json!({"id": id}));
    assert_eq!(r, json!({"deleted": 1, "erased": true}));
    t.err("bookmarks.delete", json!({"id": id}), "not_found");
}
