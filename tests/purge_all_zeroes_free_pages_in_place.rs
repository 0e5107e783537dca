//! `history.purge {all: true}` frees most of a profile's pages at once, and
//! zeroes them in the database file after the commit rather than through
//! the WAL (src/db/free_pages.rs). What a user depends on stays the same as
//! for every privacy delete: when the call says `erased: true`, no byte of
//! a deleted visit is in any file of the profile, including pages SQLite
//! reuses afterwards; a reader outside the library makes it `erased: false`
//! and the erasure completes when it leaves; and a crash between the commit
//! and the zeroing is finished by the next open.

mod common;
use common::{any_file_contains, outside_reader, polling, TestProfile};
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "quetzal-fjord-90417";
const MARKER: &str = "hydra.sqlite3-free-pages";

/// Enough visits carrying the secret to free a few thousand pages: several
/// freelist trunk pages, each of which was a page of visits before.
fn secret_visits(profile: &Profile, n: usize) {
    let padding = "lorem ipsum ".repeat(12);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"url": format!("https://site{}.example/{SECRET}/{i}", i % 53),
                       "title": format!("{SECRET} {i} {padding}"), "visited_at": 1_000 + *i as i64})
            })
            .collect();
        call(profile, "visits.record_batch", json!({"visits": batch}));
    }
}

fn call(profile: &Profile, op: &str, request: Value) -> Value {
    common::call(profile, op, request.clone())
        .unwrap_or_else(|e| panic!("{op} {request} failed: {e:?}"))
}

fn integrity(profile: &Profile) -> Value {
    call(
        profile,
        "profile.maintenance",
        json!({"integrity_check": true}),
    )["integrity"]
        .clone()
}

fn secret_file(dir: &Path) -> Option<std::path::PathBuf> {
    any_file_contains(dir, SECRET.as_bytes())
}

#[test]
fn emptying_the_history_leaves_no_byte_of_it_even_in_pages_reused_later() {
    let t = TestProfile::new();
    secret_visits(&t.profile, 40_000);
    t.ok("profile.maintenance", json!({}));
    assert!(
        secret_file(t.dir.path()).is_some(),
        "the visits are on disk before the purge"
    );

    let purged = t.ok("history.purge", json!({"all": true}));
    assert_eq!(purged["deleted_count"], 40_000);
    assert_eq!(purged["erased"], true, "{purged}");
    if let Some(file) = secret_file(t.dir.path()) {
        panic!("the secret is still in {}", file.display());
    }
    assert!(!t.dir.path().join(MARKER).exists());
    assert_eq!(t.ok("history.list", json!({}))["items"], json!([]));
    assert_eq!(integrity(&t.profile), "ok");

    // New writes take the freed pages, the trunk pages of the freelist
    // among them (SQLite reuses a trunk as it is, so a stale cached copy
    // would carry the deleted bytes back): large messages (overflow pages)
    // and visits, more than was freed.
    let thread = t.ok("threads.create", json!({"title": "after"}));
    let big = "a plain sentence with no secret in it. ".repeat(2_500);
    for _ in 0..150 {
        t.ok(
            "messages.append",
            json!({"thread_id": thread["thread"]["id"], "role": "user", "content": big}),
        );
    }
    let visits: Vec<Value> = (0..20_000)
        .map(|i| json!({"url": format!("https://new.example/{i}"), "title": format!("new page {i}")}))
        .collect();
    for chunk in visits.chunks(5_000) {
        t.ok("visits.record_batch", json!({"visits": chunk}));
    }
    t.ok("profile.maintenance", json!({}));
    if let Some(file) = secret_file(t.dir.path()) {
        panic!(
            "reused pages brought the secret back into {}",
            file.display()
        );
    }
    assert_eq!(integrity(&t.profile), "ok");

    // Later privacy deletes still zero what they free.
    t.ok(
        "visits.record",
        json!({"url": format!("https://late.example/{SECRET}"), "title": SECRET}),
    );
    t.ok("profile.maintenance", json!({}));
    let purged = t.ok("history.purge", json!({"host": "late.example"}));
    assert_eq!(purged["erased"], true);
    assert!(secret_file(t.dir.path()).is_none());
}

#[test]
fn an_outside_reader_makes_it_pending_and_the_erasure_completes_when_it_leaves() {
    let t = TestProfile::new();
    secret_visits(&t.profile, 10_000);
    t.ok("profile.maintenance", json!({}));
    let reader = outside_reader(t.dir.path());

    let started = Instant::now();
    let purged = t.ok("history.purge", json!({"all": true}));
    let took = started.elapsed();
    assert_eq!(purged["erased"], false, "{purged}");
    assert_eq!(purged["deleted_count"], 10_000);
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The freed pages were overwritten through SQLite instead: nothing is
    // left for a later open to do.
    assert!(!t.dir.path().join(MARKER).exists());
    let info = t.ok("profile.info", json!({}));
    assert_eq!(info["pending_erasure"]["count"], 1, "{info}");
    // Writes go on meanwhile.
    t.ok(
        "visits.record",
        json!({"url": "https://during.example/", "title": "during"}),
    );

    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(3);
    while secret_file(t.dir.path()).is_some() {
        assert!(
            Instant::now() < deadline,
            "the secret stayed after the reader left"
        );
        polling::pause();
    }
    assert_eq!(integrity(&t.profile), "ok");
    assert_eq!(
        t.ok("history.list", json!({}))["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let closed = t.profile.close(CloseOptions::default()).unwrap();
    assert!(closed.erased);
    assert!(secret_file(t.dir.path()).is_none());
}

#[test]
fn a_crash_between_the_commit_and_the_zeroing_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    secret_visits(&profile, 10_000);
    profile.close(CloseOptions::default()).unwrap();
    drop(profile);

    // The state a kill right after the commit leaves: the delete committed
    // with `secure_delete = FAST` (freed pages keep their bytes), the WAL
    // checkpointed, the marker in place.
    {
        let conn = rusqlite::Connection::open(dir.path().join("hydra.sqlite3")).unwrap();
        conn.execute_batch(
            "PRAGMA secure_delete = FAST;
             BEGIN IMMEDIATE; DELETE FROM visits; DELETE FROM places; COMMIT;",
        )
        .unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    std::fs::write(dir.path().join(MARKER), b"").unwrap();
    assert!(
        secret_file(dir.path()).is_some(),
        "FAST leaves freed pages as they were"
    );

    let profile = Profile::open(OpenOptions::new(dir.path())).unwrap();
    if let Some(file) = secret_file(dir.path()) {
        panic!("the open left the secret in {}", file.display());
    }
    assert!(!dir.path().join(MARKER).exists());
    assert!(profile.pending_erasure().is_none());
    assert_eq!(
        call(&profile, "history.list", json!({}))["items"],
        json!([])
    );
    assert_eq!(integrity(&profile), "ok");
    profile.close(CloseOptions::default()).unwrap();
}
