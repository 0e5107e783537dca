//! Eight threads share one handle and call every domain at once for a
//! while (visits, batches, threads and messages, tasks, memories with
//! vectors, bookmarks, thread deletes, history purges, searches, overview,
//! bundle exports, history imports, patch applies, jobs). No call may fail
//! with `busy` or `internal` (the library absorbs its own contention), none
//! may hang (a watchdog aborts the process when no call completes for 60 s),
//! and at the end every count the library reports is exactly what the
//! threads wrote. Guards against lock-order deadlocks, `SQLITE_BUSY`
//! leaking to callers, and lost or doubled writes under concurrency.
//!
//! The test command runs a short soak (3 s); `HYDRA_SOAK_SECS=600 cargo
//! test --test soak -- --nocapture` runs a long one by hand.

mod browser_fixtures;
mod common;
use common::polling;

use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 8;

/// What one thread wrote (net of its own deletes).
#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    visits: u64,
    threads: u64,
    messages: u64,
    tasks: u64,
    memories: u64,
    bookmarks: u64,
    changes: u64,
    exports: u64,
    imports: u64,
    calls: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.visits += o.visits;
        self.threads += o.threads;
        self.messages += o.messages;
        self.tasks += o.tasks;
        self.memories += o.memories;
        self.bookmarks += o.bookmarks;
        self.changes += o.changes;
        self.exports += o.exports;
        self.imports += o.imports;
        self.calls += o.calls;
    }
}

struct Worker {
    profile: Profile,
    t: usize,
    counts: Counts,
    heartbeat: Arc<AtomicU64>,
    history_file: PathBuf,
}

impl Worker {
    /// Calls `op`; any error fails the soak (and `busy` / `internal` are
    /// the ones it exists to catch).
    fn call(&mut self, op: &str, request: Value) -> Value {
        let result = common::call(&self.profile, op, request.clone());
        self.counts.calls += 1;
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(v) => v,
            Err(e) => panic!(
                "thread {}: {op} failed with {} ({}): {request}",
                self.t,
                e.code.as_str(),
                e.message
            ),
        }
    }

    fn round(&mut self, n: u64) {
        let tag = format!("t{}n{n}", self.t);
        self.call(
            "visits.record",
            json!({"url": format!("https://soak.example/{tag}"), "title": tag}),
        );
        self.counts.visits += 1;
        let batch: Vec<Value> = (0..3)
            .map(|i| json!({"url": format!("https://soak.example/{tag}/{i}"), "visited_at": n}))
            .collect();
        self.call("visits.record_batch", json!({"visits": batch}));
        self.counts.visits += 3;
        let thread = self.call("threads.create", json!({"title": tag}))["thread"]["id"].clone();
        self.counts.threads += 1;
        for i in 0..2 {
            self.call(
                "messages.append",
                json!({"thread_id": thread, "role": "user", "content": format!("{tag} {i}")}),
            );
            self.counts.messages += 1;
        }
        self.call("tasks.create", json!({"title": tag}));
        self.counts.tasks += 1;
        let vector: Vec<f64> = (0..16).map(|i| ((n as usize + i) % 5) as f64).collect();
        self.call(
            "memory.upsert",
            json!({"value": tag, "scope": "global", "embedding": {"model": "soak", "vector": vector}}),
        );
        self.counts.memories += 1;
        self.call(
            "bookmarks.add",
            json!({"url": format!("https://soak.example/bm/{tag}")}),
        );
        self.counts.bookmarks += 1;
        // Reads racing the writes.
        self.call("history.list", json!({"query": "soak", "limit": 20}));
        self.call(
            "memory.search",
            json!({"embedding": {"model": "soak", "vector": vec![1.0; 16]}, "limit": 5}),
        );
        self.call("overview", json!({}));
        self.call("jobs.list", json!({"limit": 10}));
        if n.is_multiple_of(5) {
            // A thread with private content, deleted (privacy purge).
            let doomed = self.call("threads.create", json!({}))["thread"]["id"].clone();
            self.call(
                "messages.append",
                json!({"thread_id": doomed, "role": "user", "content": "private"}),
            );
            self.call("threads.delete", json!({"id": doomed}));
            let host = format!("purge-{tag}.example");
            self.call("visits.record", json!({"url": format!("https://{host}/")}));
            self.call("history.purge", json!({"host": host}));
        }
        if n.is_multiple_of(10) {
            let r = self.call(
                "repo.apply_patch",
                json!({"id": "r", "files": [{"path": format!("{tag}.txt"), "content": tag}]}),
            );
            assert!(r["change_id"].is_string());
            self.counts.changes += 1;
            self.call(
                "bundle.export",
                json!({"components": ["tasks"], "wait": true}),
            );
            self.counts.exports += 1;
        }
        if n.is_multiple_of(20) {
            let r = self.call(
                "history.import",
                json!({"browser": "chrome", "path": self.history_file, "wait": true}),
            );
            self.counts.visits += r["imported"].as_u64().unwrap();
            self.counts.imports += 1;
        }
    }
}

fn soak_secs() -> u64 {
    std::env::var("HYDRA_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Aborts the process when no call has completed for `limit`: a hang is a
/// failure, never a stuck test command.
fn watchdog(heartbeat: Arc<AtomicU64>, done: Arc<AtomicBool>, limit: Duration) {
    std::thread::spawn(move || {
        let mut last = heartbeat.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while !done.load(Ordering::Relaxed) {
            polling::pause();
            let now = heartbeat.load(Ordering::Relaxed);
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() > limit {
                eprintln!("soak watchdog: no call completed for {limit:?}: deadlock?");
                std::process::abort();
            }
        }
    });
}

fn total_changes(p: &Profile) -> u64 {
    let mut n = 0;
    let mut cursor = Value::Null;
    loop {
        let page = common::call(
            p,
            "repo.changes",
            json!({"id": "r", "limit": 500, "cursor": cursor}),
        )
        .unwrap();
        n += page["items"].as_array().unwrap().len() as u64;
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return n;
        }
    }
}

fn prepare(base: &Path) -> (Profile, PathBuf) {
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let history =
        browser_fixtures::chrome_history(base, browser_fixtures::CHROME_ERAS.last().unwrap());
    let profile = Profile::open(OpenOptions::new(base.join("profile"))).unwrap();
    common::call(
        &profile,
        "repo.register",
        json!({"id": "r", "root_path": root, "allowed_ops": ["write"]}),
    )
    .unwrap();
    (profile, history)
}

#[test]
fn eight_threads_on_one_handle_never_see_busy_or_internal_and_counts_are_exact() {
    let base = tempfile::tempdir().unwrap();
    let (profile, history_file) = prepare(base.path());
    let heartbeat = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    watchdog(
        Arc::clone(&heartbeat),
        Arc::clone(&done),
        Duration::from_secs(60),
    );
    let secs = soak_secs();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let mut w = Worker {
                profile: profile.clone(),
                t,
                counts: Counts::default(),
                heartbeat: Arc::clone(&heartbeat),
                history_file: history_file.clone(),
            };
            std::thread::spawn(move || {
                let mut n = 0;
                while Instant::now() < deadline {
                    w.round(n);
                    n += 1;
                }
                w.counts
            })
        })
        .collect();
    let mut total = Counts::default();
    for w in workers {
        total += w.join().expect("a soak thread failed");
    }
    done.store(true, Ordering::Relaxed);

    let o = common::call(&profile, "overview", json!({})).unwrap();
    assert_eq!(
        o["browser"]["history"]["entries"],
        json!(total.visits),
        "{total:?}"
    );
    assert_eq!(o["llm"]["threads"]["total"], json!(total.threads));
    assert_eq!(o["llm"]["messages"]["total"], json!(total.messages));
    assert_eq!(o["llm"]["memories"]["total"], json!(total.memories));
    assert_eq!(o["tasks"]["total"], json!(total.tasks));
    assert_eq!(o["browser"]["bookmarks"]["total"], json!(total.bookmarks));
    let by_type = &o["jobs"]["by_type"];
    assert_eq!(by_type["bundle_export"], json!(total.exports));
    assert_eq!(by_type["history_import"], json!(total.imports));
    assert_eq!(by_type["repo_apply_patch"], json!(total.changes));
    assert_eq!(
        o["jobs"]["by_status"]["succeeded"],
        json!(total.exports + total.imports + total.changes)
    );
    assert_eq!(total_changes(&profile), total.changes);
    let dir = profile.dir().to_owned();
    profile.close(CloseOptions::default()).unwrap();
    let integrity: String = rusqlite::Connection::open(dir.join("hydra.sqlite3"))
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    eprintln!(
        "soak: {THREADS} threads, {secs} s, {} calls, {total:?}",
        total.calls
    );
}
