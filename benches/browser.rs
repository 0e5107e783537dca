//! Browser benchmarks with the targets of issue 5, each printed as a median
//! and, where the target is relative, as a ratio against raw rusqlite doing
//! the same storage work in the same run (same schema, same pragmas):
//! - `visits.record` one call at a time through `hydra_call` >= 70% of the
//!   rate of a raw single-row autocommit insert;
//! - `visits.record_batch` (1,000 visits) >= 40% of the rate of a raw
//!   prepared insert of the same rows in one transaction;
//! - on a 1,000,000-visit profile: `history.list` newest 200 < 5 ms, newest
//!   200 of one host < 5 ms, `history.visited` for 100 urls < 2 ms, and a
//!   purge of one host holding 1% of the rows (checkpoint included) within
//!   1.5x of a raw `DELETE` + `wal_checkpoint(TRUNCATE)` of the same rows.
//!
//! Purges destroy their rows, so they are timed by hand: a few interleaved
//! samples, each on a different host of the same size.

use criterion::{criterion_group, criterion_main, Criterion};
use hydra_core::testing::ffi::{hydra_call, hydra_close, hydra_open, hydra_string_free};
use rusqlite::Connection;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::Path;
use std::time::{Duration, Instant};

/// Rows of the large profile, spread evenly over `HOSTS` hosts (1% each).
const LARGE_ROWS: i64 = 1_000_000;
const HOSTS: i64 = 100;
const BATCH: usize = 1_000;

/// Per-iteration times of each benchmark, in seconds.
#[derive(Default)]
struct Medians(RefCell<BTreeMap<&'static str, Vec<f64>>>);

impl Medians {
    fn push(&self, name: &'static str, seconds: f64) {
        self.0.borrow_mut().entry(name).or_default().push(seconds);
    }

    fn median(&self, name: &str) -> f64 {
        let mut v = self.0.borrow().get(name).cloned().unwrap_or_default();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// A profile opened through the C ABI.
struct Handle(u64);

impl Handle {
    fn open(dir: &Path) -> Handle {
        let options = CString::new(serde_json::json!({ "profile_dir": dir }).to_string()).unwrap();
        // SAFETY: valid NUL-terminated options; NULL error pointer is allowed.
        let handle = unsafe { hydra_open(options.as_ptr(), std::ptr::null_mut()) };
        assert_ne!(handle, 0, "open failed");
        Handle(handle)
    }

    /// Calls `op` and checks the envelope says ok.
    fn call(&self, op: &CStr, request: &CStr) {
        // SAFETY: NUL-terminated strings; the envelope is read, then freed once.
        unsafe {
            let out = hydra_call(self.0, op.as_ptr(), request.as_ptr());
            let ok = CStr::from_ptr(out).to_bytes().starts_with(b"{\"ok\":true");
            if !ok {
                panic!("{op:?} failed: {:?}", CStr::from_ptr(out));
            }
            hydra_string_free(out);
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: NULL options are allowed; the envelope is freed once.
        unsafe { hydra_string_free(hydra_close(self.0, std::ptr::null())) };
    }
}

/// A raw connection to a database migrated to the library's schema, with
/// the library's pragmas, for the baselines.
fn raw_connection(dir: &Path) -> Connection {
    drop(Handle::open(dir));
    let conn = Connection::open(dir.join("hydra.sqlite3")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;
         PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
    )
    .unwrap();
    conn
}

const RAW_INSERT: &str = "INSERT INTO history (url, host, rev_host, title, visited_at)
                          VALUES (?1, ?2, ?3, ?4, ?5)";

fn url_of(prefix: &str, n: u64) -> String {
    format!("https://{prefix}.example/page/{n}")
}

fn host_of(prefix: &str) -> (String, String) {
    let host = format!("{prefix}.example");
    let rev: String = host.chars().rev().chain(std::iter::once('.')).collect();
    (host, rev)
}

fn record_benches(c: &mut Criterion, m: &Medians) {
    let ours_dir = tempfile::tempdir().unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    let handle = Handle::open(ours_dir.path());
    let raw = raw_connection(raw_dir.path());
    let op = c"visits.record";
    let batch_op = c"visits.record_batch";
    let mut group = c.benchmark_group("visits");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let counter = RefCell::new(0u64);
    let next = || {
        let mut n = counter.borrow_mut();
        *n += 1;
        *n
    };
    group.bench_function("visits.record via hydra_call", |b| {
        b.iter_custom(|iters| {
            let requests: Vec<CString> = (0..iters)
                .map(|_| {
                    let n = next();
                    let req = serde_json::json!({"url": url_of("rec", n), "title": "Title", "visited_at": n});
                    CString::new(req.to_string()).unwrap()
                })
                .collect();
            let start = Instant::now();
            for req in &requests {
                handle.call(op, req);
            }
            let took = start.elapsed();
            m.push("record_ours", took.as_secs_f64() / iters as f64);
            took
        })
    });
    let (host, rev) = host_of("rec");
    // Raw single-row autocommit inserts on the same schema (since migration
    // 0008 it has no full-text index: see benches/history_scale.rs).
    {
        let (name, conn, metric) = ("raw autocommit insert", &raw, "record_raw");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let rows: Vec<(String, u64)> = (0..iters)
                    .map(|_| {
                        let n = next();
                        (url_of("rec", n), n)
                    })
                    .collect();
                let mut stmt = conn.prepare_cached(RAW_INSERT).unwrap();
                let start = Instant::now();
                for (url, n) in &rows {
                    stmt.execute(rusqlite::params![url, host, rev, "Title", *n as i64])
                        .unwrap();
                }
                let took = start.elapsed();
                m.push(metric, took.as_secs_f64() / iters as f64);
                took
            })
        });
    }

    group.bench_function("visits.record_batch 1000 via hydra_call", |b| {
        b.iter_custom(|iters| {
            let requests: Vec<CString> = (0..iters)
                .map(|_| {
                    let visits: Vec<_> = (0..BATCH)
                        .map(|_| {
                            let n = next();
                            serde_json::json!({"url": url_of("batch", n), "title": "Title", "visited_at": n})
                        })
                        .collect();
                    CString::new(serde_json::json!({ "visits": visits }).to_string()).unwrap()
                })
                .collect();
            let start = Instant::now();
            for req in &requests {
                handle.call(batch_op, req);
            }
            let took = start.elapsed();
            m.push("batch_ours", took.as_secs_f64() / iters as f64);
            took
        })
    });
    let (bhost, brev) = host_of("batch");
    group.bench_function("raw prepared insert of 1000 in one transaction", |b| {
        b.iter_custom(|iters| {
            let batches: Vec<Vec<(String, u64)>> = (0..iters)
                .map(|_| {
                    (0..BATCH)
                        .map(|_| {
                            let n = next();
                            (url_of("batch", n), n)
                        })
                        .collect()
                })
                .collect();
            let start = Instant::now();
            for rows in &batches {
                let tx = raw.unchecked_transaction().unwrap();
                {
                    let mut stmt = tx.prepare_cached(RAW_INSERT).unwrap();
                    for (url, n) in rows {
                        stmt.execute(rusqlite::params![url, bhost, brev, "Title", *n as i64])
                            .unwrap();
                    }
                }
                tx.commit().unwrap();
            }
            let took = start.elapsed();
            m.push("batch_raw", took.as_secs_f64() / iters as f64);
            took
        })
    });
    group.finish();
}

/// Fills a fresh profile with `LARGE_ROWS` visits (host `site{k}.example`
/// for k in 0..HOSTS, times increasing) with one raw transaction.
fn build_large_profile(dir: &Path) {
    let started = Instant::now();
    let conn = raw_connection(dir);
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt = tx.prepare(RAW_INSERT).unwrap();
        let hosts: Vec<(String, String)> =
            (0..HOSTS).map(|k| host_of(&format!("site{k}"))).collect();
        for i in 0..LARGE_ROWS {
            let (host, rev) = &hosts[(i % HOSTS) as usize];
            let url = format!("https://{host}/p/{i}");
            stmt.execute(rusqlite::params![
                url,
                host,
                rev,
                format!("Page {i}"),
                1_600_000_000_000 + i * 1000
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    eprintln!(
        "built a {LARGE_ROWS}-visit profile in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn large_profile_benches(c: &mut Criterion, m: &Medians) {
    let dir = tempfile::tempdir().unwrap();
    build_large_profile(dir.path());
    let handle = Handle::open(dir.path());
    let mut group = c.benchmark_group("history (1M visits)");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let cases: [(&'static str, &CStr, CString); 3] = [
        (
            "list_newest",
            c"history.list",
            CString::new(r#"{"limit":200}"#).unwrap(),
        ),
        (
            "list_host",
            c"history.list",
            CString::new(r#"{"limit":200,"host":"site42.example"}"#).unwrap(),
        ),
        ("visited_100", c"history.visited", {
            let urls: Vec<String> = (0..100)
                .map(|i| {
                    if i % 2 == 0 {
                        format!(
                            "https://site{}.example/p/{}",
                            (i * 9_973) % HOSTS,
                            i * 9_973
                        )
                    } else {
                        format!("https://never.example/{i}")
                    }
                })
                .collect();
            CString::new(serde_json::json!({ "urls": urls }).to_string()).unwrap()
        }),
    ];
    for (name, op, req) in &cases {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    handle.call(op, req);
                }
                let took = start.elapsed();
                m.push(name, took.as_secs_f64() / iters as f64);
                took
            })
        });
    }
    group.finish();

    // Purges: ours through hydra_call, the baseline through a raw
    // connection to the same database, alternating, one host (1%) each.
    let raw = Connection::open(dir.path().join("hydra.sqlite3")).unwrap();
    raw.execute_batch("PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON;")
        .unwrap();
    for sample in 0..4 {
        let ours_host = format!("site{}.example", sample * 2);
        let req = CString::new(serde_json::json!({ "host": ours_host }).to_string()).unwrap();
        let start = Instant::now();
        handle.call(c"history.purge", &req);
        m.push("purge_ours", start.elapsed().as_secs_f64());

        let (_, rev) = host_of(&format!("site{}", sample * 2 + 1));
        let start = Instant::now();
        let deleted = raw
            .execute("DELETE FROM history WHERE rev_host = ?1", [&rev])
            .unwrap();
        raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        m.push("purge_raw", start.elapsed().as_secs_f64());
        assert_eq!(deleted as i64, LARGE_ROWS / HOSTS);
    }
    // For information: clearing the whole (still ~990,000-visit) history.
    let start = Instant::now();
    handle.call(c"history.purge", c"{\"all\":true}");
    m.push("purge_all", start.elapsed().as_secs_f64());
}

fn report(m: &Medians) {
    let ms = |name: &str| m.median(name) * 1e3;
    let ratio = |ours: &str, raw: &str| m.median(raw) / m.median(ours);
    let line = |what: &str, value: String, target: &str, pass: bool| {
        println!(
            "{what:<52} {value:>24}  target {target:<10} {}",
            if pass { "PASS" } else { "MISS" }
        );
    };
    println!("\n== browser targets (medians) ==");
    let r = ratio("record_ours", "record_raw");
    line(
        "visits.record via hydra_call vs raw autocommit",
        format!(
            "{:.1} vs {:.1} us = {:.0}%",
            ms("record_ours") * 1e3,
            ms("record_raw") * 1e3,
            r * 100.0
        ),
        ">= 70%",
        r >= 0.70,
    );
    let r = ratio("batch_ours", "batch_raw");
    line(
        "visits.record_batch (1000) vs raw one transaction",
        format!(
            "{:.1} vs {:.1} ms = {:.0}%",
            ms("batch_ours"),
            ms("batch_raw"),
            r * 100.0
        ),
        ">= 40%",
        r >= 0.40,
    );
    line(
        "history.list newest 200 (1M)",
        format!("{:.3} ms", ms("list_newest")),
        "< 5 ms",
        ms("list_newest") < 5.0,
    );
    line(
        "history.list newest 200 of one host (1M)",
        format!("{:.3} ms", ms("list_host")),
        "< 5 ms",
        ms("list_host") < 5.0,
    );
    line(
        "history.visited 100 urls (1M)",
        format!("{:.3} ms", ms("visited_100")),
        "< 2 ms",
        ms("visited_100") < 2.0,
    );
    let r = m.median("purge_ours") / m.median("purge_raw");
    line(
        "history.purge 1% host vs raw DELETE + checkpoint",
        format!(
            "{:.0} vs {:.0} ms = {:.2}x",
            ms("purge_ours"),
            ms("purge_raw"),
            r
        ),
        "<= 1.5x",
        r <= 1.5,
    );
    println!(
        "{:<52} {:>24}  (information)",
        "history.purge all (~990k visits)",
        format!("{:.0} ms", ms("purge_all"))
    );
}

fn browser(c: &mut Criterion) {
    let m = Medians::default();
    record_benches(c, &m);
    large_profile_benches(c, &m);
    report(&m);
}

criterion_group!(benches, browser);
criterion_main!(benches);
