//! `overview` counts what the profile holds and sizes its storage roots,
//! caching walks until something that changes sizes invalidates them.
//! Guards against a dashboard that shows stale sizes after a privacy delete,
//! counts a hard-linked file twice, or walks out of a root through a symlink.

mod common;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::json;

#[test]
fn counts_follow_the_data() {
    let t = common::TestProfile::new();
    let empty = t.ok("overview", json!({}));
    assert_eq!(empty["llm"]["threads"]["total"], 0);
    assert_eq!(
        empty["browser"]["history"],
        json!({"entries": 0, "last_visit_at": null})
    );
    assert_eq!(empty["tasks"]["by_status"]["pending"], 0);
    assert_eq!(empty["jobs"]["by_type"], json!({}));
    assert_eq!(empty["knowledge"]["documents"], 0);

    t.ok("threads.create", json!({"id": "th"}));
    t.ok(
        "messages.append",
        json!({"thread_id": "th", "role": "user", "content": "hi"}),
    );
    t.ok("memory.upsert", json!({"value": "v", "scope": "global"}));
    t.ok("tasks.create", json!({"title": "a"}));
    t.ok("tasks.create", json!({"title": "b", "status": "blocked"}));
    t.ok(
        "visits.record",
        json!({"url": "https://x.example/", "visited_at": 5, "tab_id": "t1"}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://y.example/", "visited_at": 9}),
    );
    t.ok("tabs.upsert", json!({"id": "t2"}));
    t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "t1", "thread_id": "th"}),
    );
    t.ok("bookmarks.add", json!({"url": "https://z.example/"}));
    t.ok(
        "bundle.export",
        json!({"components": ["threads"], "wait": true}),
    );

    let o = t.ok("overview", json!({}));
    assert_eq!(
        o["llm"],
        json!({"threads": {"total": 1}, "messages": {"total": 1}, "memories": {"total": 1}})
    );
    assert_eq!(o["browser"]["tabs"], json!({"total": 2, "linked": 1}));
    assert_eq!(
        o["browser"]["history"],
        json!({"entries": 2, "last_visit_at": 9})
    );
    assert_eq!(o["browser"]["bookmarks"]["total"], 1);
    assert_eq!(o["tasks"]["total"], 2);
    assert_eq!(o["tasks"]["by_status"]["blocked"], 1);
    assert_eq!(o["tasks"]["by_status"]["pending"], 1);
    assert_eq!(o["jobs"]["total"], 1);
    assert_eq!(o["jobs"]["by_status"]["succeeded"], 1);
    assert_eq!(o["jobs"]["by_type"], json!({"bundle_export": 1}));
}

#[test]
fn storage_walks_are_cached_and_invalidated_by_privacy_deletes() {
    let t = common::TestProfile::new();
    let first = t.ok("overview", json!({}));
    assert_eq!(first["storage"]["cached"], false);
    let root = &first["storage"]["roots"]["profile"];
    assert_eq!(root["path"], json!(t.profile.dir()));
    assert!(root["bytes"].as_u64().unwrap() > 0 && root["files"].as_u64().unwrap() > 0);
    assert!(first["storage"]["db_bytes"].as_u64().unwrap() > 0);

    let second = t.ok("overview", json!({}));
    assert_eq!(second["storage"]["cached"], true);
    assert_eq!(
        second["storage"]["computed_at"],
        first["storage"]["computed_at"]
    );
    // An ordinary write does not invalidate the walk...
    t.ok(
        "visits.record",
        json!({"url": "https://x.example/", "visited_at": 1}),
    );
    assert_eq!(t.ok("overview", json!({}))["storage"]["cached"], true);
    // ...nor does pruning jobs (erased like a privacy delete, but not one of
    // the operations section 6 names)...
    t.ok("jobs.prune", json!({"statuses": ["succeeded", "failed"]}));
    assert_eq!(t.ok("overview", json!({}))["storage"]["cached"], true);
    // ...a privacy delete does, and so does refresh_storage.
    t.ok("history.purge", json!({"all": true}));
    assert_eq!(t.ok("overview", json!({}))["storage"]["cached"], false);
    assert_eq!(
        t.ok("overview", json!({"refresh_storage": true}))["storage"]["cached"],
        false
    );
    t.err(
        "overview",
        json!({"refresh_storage": "yes"}),
        "invalid_argument",
    );
}

#[test]
fn extra_roots_are_walked_without_following_symlinks_or_double_counting_links() {
    let profile_dir = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("a.md"), b"12345").unwrap();
    std::fs::hard_link(docs.path().join("a.md"), docs.path().join("a-again.md")).unwrap();
    std::fs::write(docs.path().join("b.md"), b"123").unwrap();
    std::fs::write(outside.path().join("big"), vec![0u8; 50_000]).unwrap();
    std::os::unix::fs::symlink(outside.path(), docs.path().join("escape")).unwrap();

    let mut options = OpenOptions::new(profile_dir.path());
    options
        .storage_roots
        .insert("docs".into(), docs.path().to_owned());
    let p = Profile::open(options).unwrap();
    let o = common::call(&p, "overview", json!({})).unwrap();
    assert_eq!(o["storage"]["roots"]["docs"]["bytes"], 8);
    assert_eq!(o["storage"]["roots"]["docs"]["files"], 2);
    // knowledge counts the documents store (spec §10), never files of a root.
    assert_eq!(
        o["knowledge"],
        json!({"documents": 0, "chunks": 0, "embedded_chunks": 0})
    );
    p.close(CloseOptions::default()).unwrap();

    let mut bad = OpenOptions::new(profile_dir.path());
    bad.storage_roots
        .insert("profile".into(), docs.path().to_owned());
    assert_eq!(
        Profile::open(bad).err().unwrap().code().as_str(),
        "invalid_argument"
    );
}
