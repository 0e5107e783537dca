//! The lock order of `src/db/mod.rs` holds under load: no code path waits
//! for the writer while it holds a read snapshot. Before it did, an export
//! (holding a snapshot, reporting progress through the writer) and a purge
//! (holding the writer, checkpointing against that snapshot) waited for
//! each other until the 5 s busy timeout, and every other call queued
//! behind them. A watchdog times every call while exports, purges, writes
//! and reads overlap, and fails on any call slower than the bound.

mod common;
use common::polling;
use common::{call, TestProfile};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Far above any call's own work here, far below the 5 s stall it guards
/// against (debug build, shared machine).
const WATCHDOG: Duration = Duration::from_secs(2);

static RESTARTS: AtomicU64 = AtomicU64::new(0);

/// Finished exports, purges and thread deletes, and the end of the run.
static EXPORTS: AtomicU64 = AtomicU64::new(0);
static PURGES: AtomicU64 = AtomicU64::new(0);
static DELETES: AtomicU64 = AtomicU64::new(0);
static PURGED_ALL: AtomicU64 = AtomicU64::new(0);
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Paces the `i`-th privacy delete: each makes a running export start over
/// (the delete wins), so back-to-back deletes would starve exports by
/// design; a user's deletes are far apart. Here one export finishes
/// between two deletes of a kind.
fn after_export(i: u64) {
    polling::until_true(
        Duration::from_secs(120),
        "an export between deletes",
        || EXPORTS.load(Ordering::SeqCst) >= i || STOPPING.load(Ordering::SeqCst),
    );
}

#[test]
fn purges_exports_writes_and_reads_never_stall_each_other() {
    let t = TestProfile::new();
    let batch: Vec<_> = (0..3_000)
        .map(|i| json!({"url": format!("https://site{}.example/{i}", i % 40), "title": format!("Page {i}"), "visited_at": i}))
        .collect();
    t.ok("visits.record_batch", json!({"visits": batch}));

    let stop = Arc::new(AtomicBool::new(false));
    let slowest: Arc<Mutex<Vec<(String, Duration)>>> = Arc::default();
    // A call's allowance: the watchdog bound, once more for every time it
    // had to start over behind a purge (exports only).
    let worker = |name: &'static str, body: fn(&hydra_core::Profile, u64) -> u64| {
        let (profile, stop, slowest) = (t.profile.clone(), stop.clone(), slowest.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                if matches!(name, "purge" | "purge-all" | "thread-delete") {
                    after_export(i); // paced, outside the timed call
                }
                let started = Instant::now();
                let restarts = body(&profile, i);
                let allowance = WATCHDOG * (1 + restarts as u32);
                let took = started.elapsed();
                assert!(
                    took < allowance,
                    "{name}: one call took {took:?} ({restarts} restarts)"
                );
                worst = worst.max(took);
                i += 1;
            }
            slowest
                .lock()
                .unwrap()
                .push((format!("{name} x{i}"), worst));
        })
    };
    let threads = vec![
        worker("export", |p, _| {
            let r = call(p, "bundle.export", json!({"wait": true})).unwrap();
            let restarts = r["restarts"].as_u64().unwrap();
            RESTARTS.fetch_add(restarts, Ordering::SeqCst);
            std::fs::remove_file(r["path"].as_str().unwrap()).unwrap();
            EXPORTS.fetch_add(1, Ordering::SeqCst);
            restarts
        }),
        worker("purge", |p, i| {
            // Paced by `after_export`.
            let host = format!("purge{i}.example");
            call(
                p,
                "visits.record",
                json!({"url": format!("https://{host}/x"), "title": "secret"}),
            )
            .unwrap();
            let r = call(p, "history.purge", json!({"host": host})).unwrap();
            assert_eq!(r["erased"], true, "no outside reader here: {r}");
            PURGES.fetch_add(1, Ordering::SeqCst);
            0
        }),
        // Emptying the history holds the writer from its delete through
        // its checkpoint and the zeroing of the freed pages in place
        // (src/db/free_pages.rs): it must not stall the others either.
        worker("purge-all", |p, i| {
            let visits: Vec<_> = (0..200)
                .map(|k| json!({"url": format!("https://all{i}.example/{k}"), "title": "secret"}))
                .collect();
            call(p, "visits.record_batch", json!({"visits": visits})).unwrap();
            let r = call(p, "history.purge", json!({"all": true})).unwrap();
            assert_eq!(r["erased"], true, "no outside reader here: {r}");
            PURGED_ALL.fetch_add(1, Ordering::SeqCst);
            0
        }),
        worker("write", |p, i| {
            call(
                p,
                "visits.record",
                json!({"url": format!("https://w.example/{i}")}),
            )
            .unwrap();
            0
        }),
        worker("read", |p, _| {
            call(p, "history.list", json!({"limit": 100})).unwrap();
            0
        }),
        worker("thread-delete", |p, _| {
            let th = call(p, "threads.create", json!({"title": "x"})).unwrap();
            let r = call(p, "threads.delete", json!({"id": th["thread"]["id"]})).unwrap();
            assert_eq!(r["erased"], true, "{r}");
            DELETES.fetch_add(1, Ordering::SeqCst);
            0
        }),
    ];
    // The run lasts until every kind of call overlapped the others a few
    // times (not a fixed time).
    polling::until_true(
        Duration::from_secs(300),
        "enough overlapping rounds",
        || {
            [&EXPORTS, &PURGES, &PURGED_ALL, &DELETES]
                .iter()
                .all(|n| n.load(Ordering::SeqCst) >= 6)
        },
    );
    STOPPING.store(true, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().expect("a worker failed");
    }
    let slowest = slowest.lock().unwrap();
    assert_eq!(slowest.len(), 6);
    eprintln!(
        "{slowest:?}; export restarts: {}",
        RESTARTS.load(Ordering::SeqCst)
    );
}
