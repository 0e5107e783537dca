//! Jobs ledger and pool speed (issue 3):
//! - submit-to-finish throughput of no-op jobs through the durable ledger
//!   (every job committed `queued`, `running`, `succeeded`); target 5,000
//!   jobs/s;
//! - `jobs.list` filtered pages on a 100,000-job ledger; target under 5 ms.
//!
//! Besides criterion's report, each part prints its medians on stderr; the
//! throughput is also compared with a raw rusqlite baseline doing the same
//! three durable commits per job on one thread, measured in the same run
//! (the machine is shared and noisy, so the ratio is the steadier figure).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hydra_core::jobs::ListRequest;
use hydra_core::types::Bounded;
use hydra_core::{CloseOptions, OpenOptions, Profile};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 1_000;
const LEDGER: i64 = 100_000;

fn open(dir: &std::path::Path, workers: u32) -> Profile {
    let mut options = OpenOptions::new(dir);
    options.workers = Bounded::new("workers", workers).unwrap();
    Profile::open(options).unwrap()
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`,
/// clock ticks of 10 ms); 0 elsewhere. On a shared machine this shows the
/// cost of a job apart from time spent waiting for a core.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Submits `BATCH` no-op jobs, then waits for every one.
fn run_batch(profile: &Profile) {
    let jobs = profile.jobs();
    let ids: Vec<String> = (0..BATCH)
        .map(|_| jobs.submit("noop", json!({}), Default::default()).unwrap())
        .collect();
    for id in &ids {
        jobs.wait(id, Duration::from_secs(60)).unwrap();
    }
}

fn throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let profile = open(dir.path(), 2);
    profile
        .jobs()
        .register_host_handler("noop", Some(Arc::new(|_| Ok(json!({})))))
        .unwrap();
    run_batch(&profile); // warm up
    let cpu_before = process_cpu_seconds();
    let times: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            run_batch(&profile);
            t.elapsed()
        })
        .collect();
    let cpu = process_cpu_seconds() - cpu_before;
    let m = median(times);
    eprintln!(
        "jobs submit-to-finish: median {:.1} ms per {BATCH} jobs = {:.0} jobs/s (target 5,000); \
         CPU {:.0} us per job (all threads)",
        m.as_secs_f64() * 1e3,
        BATCH as f64 / m.as_secs_f64(),
        cpu * 1e6 / (7 * BATCH) as f64
    );
    let baseline = raw_rusqlite_baseline();
    eprintln!(
        "raw rusqlite baseline (same schema and pragmas, one thread, 3 commits per job): \
         median {:.1} ms per {BATCH} jobs = {:.0} jobs/s; ledger+pool / baseline = {:.2}",
        baseline.as_secs_f64() * 1e3,
        BATCH as f64 / baseline.as_secs_f64(),
        baseline.as_secs_f64() / m.as_secs_f64()
    );
    let mut group = c.benchmark_group("jobs");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("submit_to_finish_noop_x1000", |b| {
        b.iter(|| run_batch(&profile))
    });
    group.finish();
    profile.close(CloseOptions::default()).unwrap();
}

/// The same durable work without the library: each job inserted `queued`,
/// updated `running`, updated `succeeded`, each step its own `IMMEDIATE`
/// transaction, on a profile's own writer connection (same schema, pragmas).
fn raw_rusqlite_baseline() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let profile = open(dir.path(), 1);
    let conn = profile.db().writer();
    let mut n = 0u64;
    let step = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached(sql).unwrap().execute(params).unwrap();
        conn.execute_batch("COMMIT").unwrap();
    };
    let mut batch = || {
        for _ in 0..BATCH {
            n += 1;
            let id = format!("{n:032x}");
            let now = n as i64;
            step(
                "INSERT INTO jobs (id, type, status, payload, created_at, updated_at)
                 VALUES (?1, 'noop', 'queued', '{}', ?2, ?2)",
                &[&id, &now],
            );
            step(
                "UPDATE jobs SET status = 'running', started_at = ?2, updated_at = ?2 WHERE id = ?1",
                &[&id, &now],
            );
            step(
                "UPDATE jobs SET status = 'succeeded', result = '{}', completed_at = ?2,
                     updated_at = ?2 WHERE id = ?1",
                &[&id, &now],
            );
        }
    };
    batch(); // warm up
    median(
        (0..7)
            .map(|_| {
                let t = Instant::now();
                batch();
                t.elapsed()
            })
            .collect(),
    )
}

/// Fills the ledger with `LEDGER` finished jobs of 4 types and 3 statuses.
fn fill_ledger(profile: &Profile) {
    profile
        .db()
        .write(|tx| {
            let mut stmt = tx.prepare(
                "INSERT INTO jobs (id, type, status, payload, result, error_code, error_message,
                                   created_at, updated_at, started_at, completed_at)
                 VALUES (?1, ?2, ?3, '{\"query\":\"q\"}', ?4, ?5, ?6, ?7, ?7, ?7, ?7)",
            )?;
            for i in 0..LEDGER {
                let status = match i % 20 {
                    0 => "failed",
                    1 => "cancelled",
                    _ => "succeeded",
                };
                let failed = status != "succeeded";
                stmt.execute(rusqlite::params![
                    format!("job{i:06}"),
                    [
                        "focused_crawl",
                        "bundle_export",
                        "history_import",
                        "repo_run_checks"
                    ][(i % 4) as usize],
                    status,
                    (!failed).then_some("{\"pages\":3}"),
                    failed.then_some(if status == "failed" {
                        "internal"
                    } else {
                        "cancelled"
                    }),
                    failed.then_some("x"),
                    1_700_000_000_000 + i / 3,
                ])?;
            }
            Ok(())
        })
        .unwrap();
}

fn list(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let profile = open(dir.path(), 1);
    fill_ledger(&profile);
    let cases = [
        ("unfiltered", json!({"limit": 50})),
        ("status_failed", json!({"status": ["failed"], "limit": 50})),
        (
            "status_failed_cancelled_type_crawl",
            json!({"status": ["failed", "cancelled"], "type": ["focused_crawl"], "limit": 50}),
        ),
        (
            "type_two_of_four",
            json!({"type": ["bundle_export", "focused_crawl"], "limit": 50}),
        ),
    ];
    let mut group = c.benchmark_group("jobs.list_100k");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(2));
    for (name, request) in cases {
        let req = || serde_json::from_value::<ListRequest>(request.clone()).unwrap();
        // Third page, to include a cursor seek.
        let first = profile.jobs_list(req()).unwrap();
        let mut with_cursor = request.clone();
        with_cursor["cursor"] = json!(first.next_cursor.unwrap());
        let times: Vec<Duration> = (0..51)
            .map(|_| {
                let r = serde_json::from_value::<ListRequest>(with_cursor.clone()).unwrap();
                let t = Instant::now();
                black_box(profile.jobs_list(r).unwrap());
                t.elapsed()
            })
            .collect();
        eprintln!(
            "jobs.list on {LEDGER} jobs, {name}: median {:.3} ms (target < 5 ms)",
            median(times).as_secs_f64() * 1e3
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = serde_json::from_value::<ListRequest>(with_cursor.clone()).unwrap();
                black_box(profile.jobs_list(r).unwrap())
            })
        });
    }
    group.finish();
    profile.close(CloseOptions::default()).unwrap();
}

criterion_group!(benches, throughput, list);
criterion_main!(benches);
