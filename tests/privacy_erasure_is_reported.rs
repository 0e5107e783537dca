//! A privacy delete reports its erasure instead of assuming it: `erased:
//! true` only when no file of the profile holds the deleted text at return.
//! Guards against the stall of issue 10 (a purge racing an export waited
//! for the 5 s busy timeout, then returned ok with the text still in
//! `hydra.sqlite3` and its WAL), and against a reader outside the library
//! making the library lie: then the call returns `erased: false` within
//! 1 s, `profile.info` shows `pending_erasure`, and the erasure completes
//! in the background as soon as that reader leaves.

mod common;
use common::polling;
use common::{any_file_contains, outside_reader, TestProfile};
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SECRET: &str = "okapi-nebula-31337";

/// A file of the profile (outside `bundles/`, which holds the user's own
/// copies) that contains `needle`.
fn profile_file_containing(dir: &Path, needle: &str) -> Option<PathBuf> {
    any_file_contains(dir, needle.as_bytes()).filter(|path| !path.starts_with(dir.join("bundles")))
}

fn visits(t: &TestProfile, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"url": format!("https://site{}.example/page/{i}", i % 97), "title": format!("Ordinary page {i}"), "visited_at": 1_000 + *i as i64}))
            .collect();
        t.ok("visits.record_batch", json!({"visits": batch}));
    }
}

fn record_secret_visit(t: &TestProfile) {
    t.ok(
        "visits.record",
        json!({"url": format!("https://secret.example/{SECRET}"), "title": format!("Title {SECRET}"), "visited_at": 5_000}),
    );
}

/// Polls `check` until it holds or `limit` passes; true when it held.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        polling::pause();
    }
}

#[test]
fn purge_racing_an_export_returns_fast_with_the_text_gone() {
    let t = TestProfile::new();
    visits(&t, 4_000);
    for attempt in 0..5 {
        record_secret_visit(&t);
        t.ok("profile.maintenance", json!({}));
        let export = t.ok("bundle.export", json!({}));
        let started = Instant::now();
        let purged = t.ok("history.purge", json!({"host": "secret.example"}));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "attempt {attempt}: purge took {took:?}"
        );
        assert_eq!(purged["deleted_count"], 1);
        assert_eq!(purged["erased"], true, "attempt {attempt}: {purged}");
        if let Some(file) = profile_file_containing(t.dir.path(), SECRET) {
            panic!(
                "attempt {attempt}: the secret is still in {}",
                file.display()
            );
        }
        let job = t.ok(
            "jobs.wait",
            json!({"id": export["job_id"], "timeout_ms": 60_000}),
        );
        assert_eq!(job["job"]["status"], "succeeded", "{job}");
    }
    let info = t.ok("profile.info", json!({}));
    assert_eq!(info["pending_erasure"], Value::Null);
}

#[test]
fn an_outside_reader_gives_erased_false_then_erasure_completes_when_it_leaves() {
    let t = TestProfile::new();
    visits(&t, 500);
    let thread = t.ok(
        "threads.create",
        json!({"title": format!("Thread {SECRET}")}),
    );
    t.ok(
        "messages.append",
        json!({"thread_id": thread["thread"]["id"], "role": "user", "content": format!("Message {SECRET}")}),
    );
    t.ok("profile.maintenance", json!({}));
    let reader = outside_reader(t.dir.path());

    let started = Instant::now();
    let deleted = t.ok("threads.delete", json!({"id": thread["thread"]["id"]}));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        deleted["erased"], false,
        "an outside reader holds old pages: {deleted}"
    );
    assert_eq!(deleted["deleted"], 1);

    let info = t.ok("profile.info", json!({}));
    assert_eq!(info["pending_erasure"]["count"], 1, "{info}");
    assert!(info["pending_erasure"]["since"].as_i64().unwrap() > 0);
    // A second delete while the reader stays adds to the count.
    record_secret_visit(&t);
    let purged = t.ok("history.purge", json!({"host": "secret.example"}));
    assert_eq!(purged["erased"], false);
    let info = t.ok("profile.info", json!({}));
    assert_eq!(info["pending_erasure"]["count"], 2, "{info}");

    drop(reader);
    let clean = within(Duration::from_secs(1), || {
        profile_file_containing(t.dir.path(), SECRET).is_none()
    });
    assert!(clean, "the secret stayed on disk after the reader left");
    assert!(within(Duration::from_secs(1), || {
        t.ok("profile.info", json!({}))["pending_erasure"].is_null()
    }));
    let closed = t.profile.close(CloseOptions::default()).unwrap();
    assert!(closed.erased);
    assert!(profile_file_containing(t.dir.path(), SECRET).is_none());
}

#[test]
fn close_reports_an_erasure_it_could_not_complete_and_the_next_open_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    let t = TestProfileRef(&profile);
    let memory = t.ok(
        "memory.upsert",
        json!({"value": format!("Memory {SECRET}"), "scope": "user"}),
    );
    t.ok("profile.maintenance", json!({}));
    let reader = outside_reader(dir.path());
    let deleted = t.ok("memory.delete", json!({"id": memory["memory"]["id"]}));
    assert_eq!(deleted["erased"], false);

    let started = Instant::now();
    let closed = profile.close(CloseOptions::default()).unwrap();
    assert!(
        !closed.erased,
        "close cannot erase while the reader holds old pages"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "close wait is bounded"
    );
    drop(reader);

    let again = Profile::open(OpenOptions::new(dir.path())).unwrap();
    assert!(profile_file_containing(dir.path(), SECRET).is_none());
    assert!(again.pending_erasure().is_none());
    assert!(again.close(CloseOptions::default()).unwrap().erased);
}

#[test]
fn every_privacy_delete_reports_erased() {
    let t = TestProfile::new();
    let thread = t.ok("threads.create", json!({"title": "t"}));
    let thread_id = thread["thread"]["id"].clone();
    let message = t.ok(
        "messages.append",
        json!({"thread_id": thread_id, "role": "user", "content": "m"}),
    );
    let task = t.ok("tasks.create", json!({"title": "task"}));
    let memory = t.ok("memory.upsert", json!({"value": "mem", "scope": "user"}));
    let visit = t.ok(
        "visits.record",
        json!({"url": "https://a.example/", "tab_id": "tab-1"}),
    );
    let bookmark = t.ok("bookmarks.add", json!({"url": "https://b.example/"}));
    let folder = t.ok("bookmarks.create_folder", json!({"name": "f"}));
    let calls = [
        ("messages.delete", json!({"id": message["message"]["id"]})),
        ("threads.delete", json!({"id": thread_id})),
        ("tasks.delete", json!({"id": task["task"]["id"]})),
        ("memory.delete", json!({"id": memory["memory"]["id"]})),
        ("tabs.close", json!({"id": "tab-1"})),
        ("history.delete", json!({"id": visit["id"]})),
        ("history.purge", json!({"all": true})),
        (
            "bookmarks.delete",
            json!({"id": bookmark["bookmark"]["id"]}),
        ),
        (
            "bookmarks.delete_folder",
            json!({"id": folder["folder"]["id"]}),
        ),
    ];
    for (op, request) in calls {
        let data = t.ok(op, request);
        assert_eq!(data["erased"], true, "{op}: {data}");
    }
}

/// `TestProfile`'s call helpers for a profile this test opens itself.
struct TestProfileRef<'a>(&'a Profile);

impl TestProfileRef<'_> {
    fn ok(&self, op: &str, request: Value) -> Value {
        common::call(self.0, op, request.clone())
            .unwrap_or_else(|e| panic!("{op} {request} failed: {e:?}"))
    }
}
