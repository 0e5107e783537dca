//! Privacy deletes under load (issue 10): 8 threads on one handle mix
//! writes, reads, exports and purges; no call may wait more than 100 ms
//! beyond the purges and writes queued ahead of it.
//!
//! For every call the bench records when it started and ended. Its *wait
//! beyond the work queued ahead* is its latency minus its own median
//! latency when run alone, minus the remaining time of every purge or write
//! (on another thread) still running when it started. Printed per kind as
//! p50 / p99 / max, with plain latencies and the solo medians, plus raw
//! rusqlite doing the same write and the same delete + truncating
//! checkpoint on a bare schema (the history table and the one index its
//! reads need; no FTS, no triggers) in the same run.
//!
//! Exports restart when a purge overtakes them (the purge wins), so their
//! latency is reported with the restart count, not as a wait.
//!
//! Target (issue 10): the wait beyond queued work stays under 100 ms. The
//! bench gates on the p99 of every non-export kind and prints the maximum
//! beside it (see `docs/DECISIONS.md`, "privacy_stalls gates on p99": on
//! the shared 2-core machine one descheduled thread alone can exceed the
//! bound); it exits non-zero when a p99 is over.

use hydra_core::ops::call_json;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SEED_VISITS: usize = 20_000;
const MIX_SECONDS: u64 = 10;
/// Purges and thread deletes are user actions: one every this often per
/// purging thread (back to back they would starve exports by design).
const PURGE_PACE: Duration = Duration::from_millis(200);
/// The bound of issue 10 on a call's wait beyond the work queued ahead.
const TARGET_WAIT: Duration = Duration::from_millis(100);

fn call(profile: &Profile, op: &str, request: Value) -> Value {
    let data = call_json(profile, op, request.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{op}: {e:?}"));
    serde_json::from_str(&data).unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
enum Kind {
    Write,
    Read,
    Purge,
    ThreadDelete,
    Export,
}

impl Kind {
    fn queues_others(self) -> bool {
        matches!(self, Kind::Write | Kind::Purge | Kind::ThreadDelete)
    }
}

struct Sample {
    kind: Kind,
    thread: usize,
    start: Instant,
    end: Instant,
}

fn one_call(profile: &Profile, kind: Kind, i: u64, thread: usize) -> u64 {
    match kind {
        Kind::Write => {
            call(
                profile,
                "visits.record",
                json!({"url": format!("https://w{thread}.example/{i}"), "title": "written under load"}),
            );
            0
        }
        Kind::Read => {
            call(profile, "history.list", json!({"limit": 50}));
            0
        }
        Kind::Purge => {
            let host = format!("purge-{thread}-{i}.example");
            call(
                profile,
                "visits.record",
                json!({"url": format!("https://{host}/secret")}),
            );
            let r = call(profile, "history.purge", json!({"host": host}));
            assert_eq!(r["erased"], true, "no outside reader in this bench");
            0
        }
        Kind::ThreadDelete => {
            let th = call(profile, "threads.create", json!({"title": "to delete"}));
            call(
                profile,
                "messages.append",
                json!({"thread_id": th["thread"]["id"], "role": "user", "content": "private words"}),
            );
            let r = call(profile, "threads.delete", json!({"id": th["thread"]["id"]}));
            assert_eq!(r["erased"], true);
            0
        }
        Kind::Export => {
            let r = call(profile, "bundle.export", json!({"wait": true}));
            std::fs::remove_file(r["path"].as_str().unwrap()).unwrap();
            r["restarts"].as_u64().unwrap()
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn seed(profile: &Profile) {
    for start in (0..SEED_VISITS).step_by(5_000) {
        let visits: Vec<Value> = (start..start + 5_000)
            .map(|i| json!({"url": format!("https://site{}.example/page/{i}", i % 200), "title": format!("Seeded page {i}"), "visited_at": i}))
            .collect();
        call(profile, "visits.record_batch", json!({"visits": visits}));
    }
}

/// Raw rusqlite on a bare schema: one insert per transaction, and one
/// delete + `wal_checkpoint(TRUNCATE)`, medians of `n` runs each.
fn raw_baseline(dir: &std::path::Path, n: usize) -> (Duration, Duration) {
    let conn = rusqlite::Connection::open(dir.join("raw.sqlite3")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON;
         CREATE TABLE history (id INTEGER PRIMARY KEY, url TEXT NOT NULL, host TEXT, title TEXT,
                               visited_at INTEGER NOT NULL);
         CREATE INDEX history_by_host ON history (host, visited_at);",
    )
    .unwrap();
    for i in 0..SEED_VISITS {
        conn.execute(
            "INSERT INTO history (url, host, title, visited_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                format!("https://site{}.example/page/{i}", i % 200),
                format!("site{}.example", i % 200),
                format!("Seeded page {i}"),
                i as i64
            ],
        )
        .unwrap();
    }
    let mut writes = Vec::new();
    let mut purges = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        conn.execute(
            "INSERT INTO history (url, host, title, visited_at) VALUES (?1, 'w.example', 'x', ?2)",
            rusqlite::params![format!("https://w.example/{i}"), i as i64],
        )
        .unwrap();
        writes.push(started.elapsed());
        let host = format!("purge{i}.example");
        conn.execute(
            "INSERT INTO history (url, host, title, visited_at) VALUES (?1, ?2, 'secret', 1)",
            rusqlite::params![format!("https://{host}/secret"), host],
        )
        .unwrap();
        let started = Instant::now();
        conn.execute("DELETE FROM history WHERE host = ?1", [&host])
            .unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        purges.push(started.elapsed());
    }
    (median(writes), median(purges))
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(OpenOptions::new(dir.path().join("profile"))).unwrap();
    seed(&profile);

    // Solo medians: each kind alone on an idle handle.
    let mut solo = std::collections::HashMap::new();
    for (kind, runs) in [
        (Kind::Write, 50),
        (Kind::Read, 50),
        (Kind::Purge, 30),
        (Kind::ThreadDelete, 30),
        (Kind::Export, 5),
    ] {
        let times = (0..runs)
            .map(|i| {
                let started = Instant::now();
                one_call(&profile, kind, 1_000_000 + i, 99);
                started.elapsed()
            })
            .collect();
        solo.insert(kind, median(times));
    }
    let (raw_write, raw_purge) = raw_baseline(dir.path(), 30);

    // The mix: 8 threads on one handle.
    let plan = [
        Kind::Write,
        Kind::Write,
        Kind::Write,
        Kind::Read,
        Kind::Read,
        Kind::Export,
        Kind::Purge,
        Kind::ThreadDelete,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let restarts = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(thread, &kind)| {
            let (profile, stop, samples, restarts) = (
                profile.clone(),
                stop.clone(),
                samples.clone(),
                restarts.clone(),
            );
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    if matches!(kind, Kind::Purge | Kind::ThreadDelete) {
                        std::thread::sleep(PURGE_PACE);
                    }
                    let start = Instant::now();
                    restarts.fetch_add(one_call(&profile, kind, i, thread), Ordering::SeqCst);
                    mine.push(Sample {
                        kind,
                        thread,
                        start,
                        end: Instant::now(),
                    });
                    i += 1;
                }
                samples.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(MIX_SECONDS));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let samples = samples.lock().unwrap();

    // Remaining time of the queueing calls of other threads at each start.
    let queued_ahead = |s: &Sample| -> Duration {
        samples
            .iter()
            .filter(|o| o.thread != s.thread && o.kind.queues_others())
            .filter(|o| o.start <= s.start && s.start < o.end)
            .map(|o| o.end - s.start)
            .sum()
    };
    println!("privacy_stalls: {MIX_SECONDS} s, 8 threads (3 write, 2 read, 1 export, 1 purge, 1 thread delete; deletes every {} ms per thread), {SEED_VISITS} seeded visits", PURGE_PACE.as_millis());
    println!(
        "{:<13} {:>6} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "kind",
        "calls",
        "solo p50",
        "lat p50",
        "lat p99",
        "lat max",
        "wait p50",
        "wait p99",
        "wait max"
    );
    let mut worst_wait = Duration::ZERO;
    let mut worst_p99 = Duration::ZERO;
    for kind in [
        Kind::Write,
        Kind::Read,
        Kind::Purge,
        Kind::ThreadDelete,
        Kind::Export,
    ] {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.kind == kind).collect();
        let mut latency: Vec<Duration> = mine.iter().map(|s| s.end - s.start).collect();
        let mut wait: Vec<Duration> = mine
            .iter()
            .map(|s| (s.end - s.start).saturating_sub(solo[&kind] + queued_ahead(s)))
            .collect();
        latency.sort();
        wait.sort();
        if kind != Kind::Export {
            worst_wait = worst_wait.max(percentile(&wait, 1.0));
            worst_p99 = worst_p99.max(percentile(&wait, 0.99));
        }
        println!(
            "{:<13} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} | {:>9.2} {:>9.2} {:>9.2}",
            format!("{kind:?}"),
            mine.len(),
            ms(solo[&kind]),
            ms(percentile(&latency, 0.5)),
            ms(percentile(&latency, 0.99)),
            ms(percentile(&latency, 1.0)),
            ms(percentile(&wait, 0.5)),
            ms(percentile(&wait, 0.99)),
            ms(percentile(&wait, 1.0)),
        );
    }
    let met = worst_p99 < TARGET_WAIT;
    println!(
        "export restarts: {}; wait beyond queued work (non-export): worst p99 {:.2} ms, max {:.2} ms; target: p99 < {} ms (max reported){}",
        restarts.load(Ordering::SeqCst),
        ms(worst_p99),
        ms(worst_wait),
        TARGET_WAIT.as_millis(),
        if met { "" } else { " -- MISSED" }
    );
    println!(
        "raw rusqlite, bare schema: write p50 {:.3} ms (library solo {:.3} ms, x{:.1}); delete + truncating checkpoint p50 {:.3} ms (library purge solo, incl. its visit, {:.3} ms, x{:.1})",
        ms(raw_write),
        ms(solo[&Kind::Write]),
        ms(solo[&Kind::Write]) / ms(raw_write),
        ms(raw_purge),
        ms(solo[&Kind::Purge]),
        ms(solo[&Kind::Purge]) / ms(raw_purge),
    );
    profile.close(CloseOptions::default()).unwrap();
    // `exit` runs no destructor: the profile goes first.
    drop(dir);
    if !met {
        eprintln!(
            "privacy_stalls: a wait p99 is over {} ms",
            TARGET_WAIT.as_millis()
        );
        std::process::exit(1);
    }
}
