//! The WAL is copied into the database by a checkpoint thread of its own,
//! not inside the commits that fill it (`src/db/checkpointer.rs`), and it
//! stays bounded under a long stream of writes. Guards against a profile
//! whose WAL grows without end (the writer's hook replaces SQLite's own
//! auto-checkpoint, so nothing else would copy it) and against losing the
//! background checkpoints (every commit would checkpoint inline again).

mod common;
use common::{polling, TestProfile};
use serde_json::json;
use std::time::Duration;

const PAGE: u64 = 4096;

fn file_len(t: &TestProfile, name: &str) -> u64 {
    std::fs::metadata(t.dir.path().join(name)).map_or(0, |m| m.len())
}

/// Records `n` visits with ~1 KB titles in one `record_batch` call.
fn record_batch(t: &TestProfile, from: u64, n: u64) {
    let title = "t".repeat(1000);
    let visits: Vec<_> = (from..from + n)
        .map(|i| json!({"url": format!("https://site{}.example/{i}", i % 97), "title": title, "visited_at": i}))
        .collect();
    t.ok("visits.record_batch", json!({ "visits": visits }));
}

#[test]
fn a_full_wal_is_checkpointed_in_the_background() {
    let t = TestProfile::new();
    t.ok("profile.maintenance", json!({}));
    let database_before = file_len(&t, "hydra.sqlite3");
    // About 2,000 new pages, in commits small enough that none reaches the
    // writer's own (inline) checkpoint threshold.
    for k in 0..10 {
        record_batch(&t, k * 800, 800);
    }
    // Nothing but a checkpoint grows the database file: new pages go to
    // the WAL first.
    polling::until_true(
        Duration::from_secs(30),
        "the checkpoint thread to copy the WAL into the database",
        || file_len(&t, "hydra.sqlite3") >= database_before + 500 * PAGE,
    );
}

#[test]
fn the_wal_stays_bounded_under_a_stream_of_writes() {
    let t = TestProfile::new();
    // About 40 MB of visits, ten times the largest WAL the library lets
    // grow before the writer checkpoints itself.
    let mut largest_wal = 0;
    for k in 0..50 {
        record_batch(&t, k * 800, 800);
        largest_wal = largest_wal.max(file_len(&t, "hydra.sqlite3-wal"));
    }
    assert!(
        largest_wal < 6_000 * PAGE,
        "the WAL grew to {} pages",
        largest_wal / PAGE
    );
    let listed = t.ok("history.list", json!({"limit": 1}));
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}
