//! Concurrent writers on one handle share commits (group commit) without
//! losing anyone's guarantees: every acknowledged write is committed and
//! visible to a fresh reader when its call returns, and a caller whose work
//! fails (an error or a panic) rolls back only its own changes while the
//! others of the same shared transaction commit.

mod common;

use common::TestProfile;
use hydra_core::db::ConnExt;
use hydra_core::error::Error;
use serde_json::json;
use std::sync::Arc;

const THREADS: usize = 8;
const PER_THREAD: usize = 150;

fn count(t: &TestProfile, sql: &str) -> i64 {
    t.profile.db().read(|c| c.query_i64(sql, [])).unwrap()
}

#[test]
fn every_acknowledged_visit_is_committed_and_visible_at_return() {
    let t = Arc::new(TestProfile::new());
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let url = format!("https://t{thread}.example/{i}");
                    let r = t.ok("visits.record", json!({"url": url, "visited_at": i}));
                    let id = r["id"].as_i64().unwrap();
                    // Acknowledged = committed: a reader sees it right now.
                    let stored: String = t
                        .profile
                        .db()
                        .read(|c| {
                            Ok(
                                c.query_row("SELECT url FROM history WHERE id = ?1", [id], |r| {
                                    r.get(0)
                                })?,
                            )
                        })
                        .unwrap();
                    assert_eq!(stored, url);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        count(&t, "SELECT count(*) FROM history"),
        (THREADS * PER_THREAD) as i64
    );
}

#[test]
fn a_failing_or_panicking_caller_rolls_back_only_its_own_work() {
    let t = Arc::new(TestProfile::new());
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let url = format!("https://t{thread}.example/{i}");
                    let insert = |c: &rusqlite::Connection| {
                        c.run(
                            "INSERT INTO history (url, visited_at) VALUES (?1, ?2)",
                            rusqlite::params![url, i as i64],
                        )
                    };
                    match i % 3 {
                        0 => {
                            t.profile.db().write(insert).unwrap();
                        }
                        1 => {
                            let failed: Result<(), Error> = t.profile.db().write(|c| {
                                insert(c)?;
                                Err(Error::conflict("this caller changes its mind"))
                            });
                            assert!(failed.is_err());
                        }
                        _ => {
                            let panicked =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    let _ = t.profile.db().write(|c| -> Result<(), Error> {
                                        insert(c)?;
                                        panic!("a bug inside one caller's closure");
                                    });
                                }));
                            assert!(panicked.is_err());
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let kept: Vec<(String, i64)> = t
        .profile
        .db()
        .read(|c| {
            c.query_all(
                "SELECT url, visited_at FROM history ORDER BY url",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    let mut expected: Vec<(String, i64)> = (0..THREADS)
        .flat_map(|thread| {
            (0..PER_THREAD)
                .filter(|i| i % 3 == 0)
                .map(move |i| (format!("https://t{thread}.example/{i}"), i as i64))
        })
        .collect();
    expected.sort();
    assert_eq!(kept, expected);
    // The writer is still usable after the panics.
    t.ok("visits.record", json!({"url": "https://after.example/"}));
}

#[test]
fn concurrent_records_of_one_visit_store_it_once() {
    let t = Arc::new(TestProfile::new());
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let r = t.ok(
                            "visits.record",
                            json!({"url": format!("https://same.example/{i}"), "visited_at": i}),
                        );
                        (r["id"].as_i64().unwrap(), r["duplicate"].as_bool().unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<(i64, bool)>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for i in 0..50 {
        let ids: Vec<(i64, bool)> = results.iter().map(|r| r[i]).collect();
        assert!(
            ids.iter().all(|(id, _)| *id == ids[0].0),
            "one id per visit"
        );
        assert_eq!(ids.iter().filter(|(_, dup)| !dup).count(), 1, "stored once");
    }
    assert_eq!(count(&t, "SELECT count(*) FROM history"), 50);
}
