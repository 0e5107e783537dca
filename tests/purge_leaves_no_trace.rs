//! After any browser delete returns (`history.delete`, `history.purge`,
//! `tabs.close`, `bookmarks.delete`, `bookmarks.delete_folder`), the deleted
//! URL, title and tab id are in no file of the profile directory: not in
//! free pages, not in the WAL, not in the full-text index. Scanned raw while
//! the profile is still open and again after close. Guards against a purge
//! that only hides rows while the text survives on disk.

mod common;
use common::polling;
use common::{any_file_contains, TestProfile};
use serde_json::{json, Value};

const SECRET_URL: &str = "https://zebra-quokka-4821.example/marmalade-path";
const SECRET_TITLE: &str = "Aardvark Marmalade Confession 9913";
const SECRET_TAB: &str = "tab-pangolin-5521";

/// Ordinary rows around the secret one, so that the deleted row shares its
/// pages with rows that stay (a freed whole page proves less).
fn filler(t: &TestProfile) {
    let visits: Vec<Value> = (0..300)
        .map(|i| json!({"url": format!("https://filler{i}.example/p"), "title": format!("Filler {i}"), "visited_at": i}))
        .collect();
    t.ok("visits.record_batch", json!({"visits": visits}));
    for i in 0..50 {
        t.ok(
            "bookmarks.add",
            json!({"url": format!("https://bm{i}.example/"), "title": "keep"}),
        );
    }
}

fn record_secret(t: &TestProfile) -> Value {
    t.ok(
        "visits.record",
        json!({"url": SECRET_URL, "title": SECRET_TITLE, "visited_at": 150, "tab_id": SECRET_TAB}),
    )
}

fn assert_gone(t: &TestProfile, needles: &[&str]) {
    for needle in needles {
        if let Some(file) = any_file_contains(t.dir.path(), needle.as_bytes()) {
            panic!("{needle:?} still in {} while open", file.display());
        }
    }
    t.close();
    for needle in needles {
        if let Some(file) = any_file_contains(t.dir.path(), needle.as_bytes()) {
            panic!("{needle:?} still in {} after close", file.display());
        }
    }
}

/// The text is really on disk before the delete (so the scan can see it).
fn assert_present(t: &TestProfile, needle: &str) {
    hydra_core::db::checkpoint_truncate(&t.profile.db().writer()).unwrap();
    assert!(any_file_contains(t.dir.path(), needle.as_bytes()).is_some());
}

#[test]
fn history_delete_leaves_no_trace() {
    let t = TestProfile::new();
    filler(&t);
    let id = record_secret(&t)["id"].clone();
    assert_present(&t, SECRET_URL);
    t.ok("history.delete", json!({"id": id}));
    assert_gone(&t, &[SECRET_URL, SECRET_TITLE]);
}

#[test]
fn host_purge_leaves_no_trace() {
    let t = TestProfile::new();
    filler(&t);
    record_secret(&t);
    t.ok(
        "visits.record",
        json!({"url": format!("{SECRET_URL}/2"), "title": SECRET_TITLE, "visited_at": 151}),
    );
    assert_present(&t, SECRET_TITLE);
    let r = t.ok(
        "history.purge",
        json!({"host": "zebra-quokka-4821.example"}),
    );
    assert_eq!(r["deleted_count"], json!(2));
    assert_gone(&t, &[SECRET_URL, SECRET_TITLE]);
}

#[test]
fn time_purge_leaves_no_trace() {
    let t = TestProfile::new();
    filler(&t);
    record_secret(&t);
    t.ok("history.purge", json!({"from": 150, "to": 150}));
    assert_gone(&t, &[SECRET_URL, SECRET_TITLE]);
}

/// A url is stored once for all its visits (migration 0012): deleting one
/// of its visits keeps it (the other visit still shows it), deleting the
/// last one takes the url with it, whichever delete path does it.
#[test]
fn a_urls_last_visit_deleted_takes_the_url_with_it() {
    let t = TestProfile::new();
    filler(&t);
    let first = record_secret(&t)["id"].clone();
    let second = t.ok(
        "visits.record",
        json!({"url": SECRET_URL, "title": "Other Title", "visited_at": 250}),
    );
    assert_present(&t, SECRET_URL);
    t.ok("history.delete", json!({"id": first}));
    let left = t.ok("history.list", json!({"query": "zebra-quokka"}));
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert_eq!(left["items"][0]["id"], second["id"]);
    assert_eq!(left["items"][0]["url"], json!(SECRET_URL));
    assert_eq!(
        t.ok("history.visited", json!({"urls": [SECRET_URL]}))["visited"],
        json!([true])
    );
    t.ok("history.purge", json!({"from": 200, "to": 300}));
    assert_eq!(
        t.ok("history.visited", json!({"urls": [SECRET_URL]}))["visited"],
        json!([false])
    );
    assert_gone(&t, &[SECRET_URL, SECRET_TITLE]);
}

/// At scale, with the in-memory search index holding the secret: a large
/// host purge (thousands of rows over many pages, the old FTS's merge case)
/// leaves the text in no file, and searches no longer find it.
#[test]
fn large_host_purge_with_a_warm_index_leaves_no_trace() {
    let t = TestProfile::new();
    filler(&t);
    for chunk in 0..4 {
        let visits: Vec<Value> = (0..2_000)
            .map(|i| json!({"url": format!("{SECRET_URL}/{chunk}/{i}"), "title": SECRET_TITLE, "visited_at": 1_000 + chunk * 2_000 + i}))
            .collect();
        t.ok("visits.record_batch", json!({ "visits": visits }));
    }
    // The first search starts the background builder; wait until it has
    // indexed every row.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while t.profile.history_text_index().stats().docs < 8_300 {
        let found = t.ok(
            "history.list",
            json!({"query": "marmalade confession", "limit": 5}),
        );
        assert_eq!(found["items"].as_array().unwrap().len(), 5);
        assert!(
            std::time::Instant::now() < deadline,
            "index never caught up"
        );
        polling::pause();
    }
    assert_present(&t, SECRET_TITLE);
    let r = t.ok(
        "history.purge",
        json!({"host": "zebra-quokka-4821.example"}),
    );
    assert_eq!(r["deleted_count"], json!(8_000));
    let found = t.ok("history.list", json!({"query": "marmalade confession"}));
    assert!(found["items"].as_array().unwrap().is_empty());
    assert_eq!(t.profile.history_text_index().stats().docs, 300);
    assert_gone(&t, &[SECRET_URL, SECRET_TITLE]);
}

#[test]
fn purge_all_leaves_no_trace() {
    let t = TestProfile::new();
    filler(&t);
    record_secret(&t);
    t.ok("history.purge", json!({"all": true}));
    assert_gone(&t, &[SECRET_URL, SECRET_TITLE, "filler299.example"]);
}

#[test]
fn tab_close_leaves_no_trace_of_the_tab() {
    let t = TestProfile::new();
    filler(&t);
    record_secret(&t);
    assert_present(&t, SECRET_TAB);
    let r = t.ok("tabs.close", json!({"id": SECRET_TAB}));
    assert_eq!(
        r,
        json!({"deleted": 1, "history_detached": 1, "erased": true})
    );
    // The visit itself stays (closing a tab is not a history purge), but
    // nothing names the tab any more.
    assert_gone(&t, &[SECRET_TAB]);
}

#[test]
fn bookmark_deletes_leave_no_trace() {
    let t = TestProfile::new();
    filler(&t);
    let b = t.ok(
        "bookmarks.add",
        json!({"url": SECRET_URL, "title": SECRET_TITLE, "tags": ["x"]}),
    );
    let folder = t.ok(
        "bookmarks.create_folder",
        json!({"name": "Hidden Folder Ocelot"}),
    );
    let sub = t.ok(
        "bookmarks.create_folder",
        json!({"name": "Inner", "parent_id": folder["folder"]["id"]}),
    );
    t.ok(
        "bookmarks.add",
        json!({"url": format!("{SECRET_URL}/in-folder"), "title": "Folder Secret Iguana", "folder_id": sub["folder"]["id"]}),
    );
    assert_present(&t, "Folder Secret Iguana");
    t.ok("bookmarks.delete", json!({"id": b["bookmark"]["id"]}));
    let r = t.ok(
        "bookmarks.delete_folder",
        json!({"id": folder["folder"]["id"]}),
    );
    assert_eq!(
        r,
        json!({"deleted": 1, "stats": {"subfolders": 1, "bookmarks": 1}, "erased": true})
    );
    assert_gone(
        &t,
        &[
            SECRET_URL,
            SECRET_TITLE,
            "Hidden Folder Ocelot",
            "Folder Secret Iguana",
        ],
    );
}
