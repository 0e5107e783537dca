//! `history.import` reads the history files real browsers leave behind, of
//! every schema era, in every state: Chrome `History` schemas 16 to current
//! (16 and 20 have no `visit_duration`), Firefox places from the
//! pre-WAL Firefox 3.x layout to today's, a file whose browser was killed
//! mid-write (a hot `-journal`), and rows no browser should have written
//! (TEXT or REAL times, `i64::MIN`, NULL or BLOB URLs). Guards against an
//! import that fails a whole file over a missing optional column, imports
//! uncommitted rows, wraps a time into the far future, stops a job at the
//! first odd row, or drops what a failed job's error named.

mod browser_fixtures;
mod common;
use browser_fixtures::*;
use common::TestProfile;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::path::Path;

/// Every stored visit, oldest first.
fn stored(t: &TestProfile) -> Vec<Value> {
    let mut items = t.ok("history.list", json!({"limit": 1000}))["items"]
        .as_array()
        .unwrap()
        .clone();
    items.reverse();
    items
}

fn import_wait(t: &TestProfile, browser: &str, path: &Path) -> Value {
    t.ok(
        "history.import",
        json!({"browser": browser, "path": path, "wait": true}),
    )
}

fn assert_stored(t: &TestProfile, expected: &[Expected], what: &str) {
    let items = stored(t);
    assert_eq!(items.len(), expected.len(), "{what}: {items:?}");
    for (item, want) in items.iter().zip(expected) {
        assert_eq!(item["url"], json!(want.url), "{what}");
        assert_eq!(item["title"], json!(want.title), "{what}: {}", want.url);
        assert_eq!(item["visited_at"], json!(want.visited_at), "{what}");
        assert_eq!(item["transition"], json!(want.transition), "{what}");
        assert_eq!(item["duration_ms"], json!(want.duration_ms), "{what}");
    }
}

#[test]
fn every_chrome_schema_era_imports_every_visit() {
    let src = tempfile::tempdir().unwrap();
    for era in CHROME_ERAS {
        let t = TestProfile::new();
        let path = chrome_history(src.path(), era);
        let before = std::fs::read(&path).unwrap();
        let r = import_wait(&t, "chrome", &path);
        assert_eq!(
            (r["imported"].clone(), r["duplicates"].clone()),
            (json!(4), json!(0)),
            "Chrome schema {}",
            era.version
        );
        let has_duration = era.version > 20;
        assert_stored(
            &t,
            &expected_visits(true, has_duration),
            &format!("Chrome schema {}", era.version),
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "source modified");
        // The non-ASCII visit got its punycode host.
        assert_eq!(stored(&t)[1]["host"], json!("xn--r8jz45g.xn--zckzah"));
    }
}

#[test]
fn every_firefox_places_era_imports_every_visit() {
    let src = tempfile::tempdir().unwrap();
    for era in FIREFOX_ERAS {
        let t = TestProfile::new();
        let (path, browser) = firefox_places(src.path(), era);
        let r = import_wait(&t, "firefox", &path);
        assert_eq!(
            (r["imported"].clone(), r["duplicates"].clone()),
            (json!(4), json!(0)),
            "Firefox places {}",
            era.version
        );
        assert_stored(
            &t,
            &expected_visits(false, false),
            &format!("Firefox places {}", era.version),
        );
        drop(browser);
    }
}

/// A Chrome file as a browser killed mid-transaction leaves it: the
/// database file already holds pages of an uncommitted transaction (spilled
/// from the cache) and `History-journal` holds the pages to restore.
fn history_with_hot_journal(dir: &Path) -> std::path::PathBuf {
    let live = tempfile::tempdir().unwrap();
    let path = chrome_history(live.path(), CHROME_ERAS.last().unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA cache_size = 2; BEGIN IMMEDIATE;")
        .unwrap();
    for i in 0..300 {
        conn.execute(
            "INSERT INTO urls (url, title, last_visit_time) VALUES (?1, ?2, 0)",
            params![format!("https://uncommitted.example/{i}"), "x".repeat(200)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO visits (url, visit_time, transition) VALUES (last_insert_rowid(), ?1, 1)",
            params![CHROME_OFFSET_US + 1_650_000_000_000_000 + i],
        )
        .unwrap();
    }
    // "Killed" here: copy the file and its journal as they are on disk.
    let killed = dir.join("History");
    std::fs::copy(&path, &killed).unwrap();
    std::fs::copy(
        live.path().join(format!(
            "{}-journal",
            path.file_name().unwrap().to_str().unwrap()
        )),
        dir.join("History-journal"),
    )
    .unwrap();
    drop(conn);
    killed
}

#[test]
fn a_hot_rollback_journal_is_rolled_back_not_imported() {
    let src = tempfile::tempdir().unwrap();
    let path = history_with_hot_journal(src.path());
    let journal = src.path().join("History-journal");
    // The fixture is what it claims: without its journal the file shows
    // uncommitted visits, or is malformed by the half-written pages.
    let bare = tempfile::tempdir().unwrap();
    std::fs::copy(&path, bare.path().join("History")).unwrap();
    let without_journal: rusqlite::Result<i64> = Connection::open(bare.path().join("History"))
        .unwrap()
        .query_row("SELECT count(*) FROM visits", [], |r| r.get(0));
    assert!(
        without_journal.as_ref().map_or(true, |n| *n > 4),
        "no uncommitted page reached the file: {without_journal:?}"
    );

    let (file_before, journal_before) = (
        std::fs::read(&path).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    let t = TestProfile::new();
    let r = import_wait(&t, "chrome", &path);
    assert_eq!(r["imported"], json!(4), "uncommitted rows were imported");
    assert_stored(&t, &expected_visits(true, true), "after rollback");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        file_before,
        "source modified"
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        journal_before,
        "journal modified"
    );
}

#[test]
fn unreadable_rows_are_skipped_and_counted_and_the_job_goes_on() {
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path(), CHROME_ERAS.last().unwrap());
    let conn = Connection::open(&path).unwrap();
    // More good visits than one import chunk (2,000), then rows no browser
    // writes, then more good ones.
    let base = CHROME_OFFSET_US + 1_700_000_000_000_000;
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..2_100i64 {
        conn.execute(
            "INSERT INTO urls (url, title, last_visit_time) VALUES (?1, 't', 0)",
            params![format!("https://bulk.example/{i}")],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO visits (url, visit_time, transition) VALUES (last_insert_rowid(), ?1, 0)",
            params![base + i * 1000],
        )
        .unwrap();
    }
    conn.execute_batch(
        "INSERT INTO urls (id, url, title, last_visit_time) VALUES
            (9001, NULL, 'no url', 0),
            (9002, x'68747470733a2f2f626c6f622e6578616d706c652f', 'blob url', 0),
            (9003, 'https://odd-times.example/', 'odd', 0),
            (9004, 'https://late.example/', 'late', 0);
         COMMIT;",
    )
    .unwrap();
    let bad_times: [rusqlite::types::Value; 5] = [
        "yesterday".to_owned().into(),
        12_345.5f64.into(),
        i64::MIN.into(),
        (i64::MIN + 1).into(),
        // Before 1970.
        (CHROME_OFFSET_US - 1000).into(),
    ];
    for time in bad_times {
        conn.execute(
            "INSERT INTO visits (url, visit_time, transition) VALUES (9003, ?1, 0)",
            params![time],
        )
        .unwrap();
    }
    conn.execute_batch(&format!(
        "INSERT INTO visits (url, visit_time, transition) VALUES
            (9001, {t}, 0), (9002, {t}, 0), (9004, {t2}, 0),
            (9999, {t}, 0);",
        t = base + 5_000_000_000,
        t2 = base + 6_000_000_000
    ))
    .unwrap();
    // Two unusable urls, five unusable times, one visit whose url row is
    // missing.
    let skipped_expected = 2 + 5 + 1;
    drop(conn);

    let t = TestProfile::new();
    let r = import_wait(&t, "chrome", &path);
    assert_eq!(r["imported"], json!(4 + 2_100 + 1), "{r}");
    assert_eq!(r["duplicates"], json!(0));
    let job = t.ok("jobs.get", json!({"id": r["job_id"]}))["job"].clone();
    assert_eq!(job["status"], json!("succeeded"));
    assert_eq!(job["result"]["skipped"], json!(skipped_expected));
    let newest = t.ok("history.list", json!({"limit": 1}))["items"][0].clone();
    assert_eq!(newest["url"], json!("https://late.example/"));
    assert_eq!(newest["visited_at"], json!(1_700_006_000_000_i64));
    let overview = t.ok("overview", json!({}));
    assert_eq!(
        overview["browser"]["history"]["last_visit_at"],
        json!(1_700_006_000_000_i64),
        "a wrapped time leaked into the overview"
    );
}

#[test]
fn same_url_and_time_with_another_transition_counts_as_a_duplicate() {
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path(), CHROME_ERAS.last().unwrap());
    let conn = Connection::open(&path).unwrap();
    let time = CHROME_OFFSET_US + 1_600_000_000_000 * 1000 + 789;
    // Same url (id 1), same microsecond as the typed visit, a reload; and
    // one 100 µs later (same millisecond after truncation), a link.
    conn.execute_batch(&format!(
        "INSERT INTO visits (url, visit_time, transition) VALUES (1, {time}, 8), (1, {}, 0);",
        time + 100
    ))
    .unwrap();
    drop(conn);
    let t = TestProfile::new();
    let r = import_wait(&t, "chrome", &path);
    assert_eq!(
        (r["imported"].clone(), r["duplicates"].clone()),
        (json!(4), json!(2))
    );
    let job = t.ok("jobs.get", json!({"id": r["job_id"]}))["job"].clone();
    assert_eq!(job["result"]["skipped"], json!(0));
    // The first visit of that time is the one kept.
    assert_eq!(stored(&t)[0]["transition"], json!("typed"));
}

#[test]
fn a_failed_import_job_keeps_its_error_details() {
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path(), CHROME_ERAS.last().unwrap());
    let t = TestProfile::new();
    let e = t.err(
        "history.import",
        json!({"browser": "firefox", "path": path, "wait": true}),
        "corrupt",
    );
    assert_eq!(e.details.get("field"), Some(&json!("path")));
    let job = t.ok("jobs.list", json!({}))["items"][0].clone();
    assert_eq!(job["status"], json!("failed"));
    assert_eq!(job["error"]["code"], json!("corrupt"));
    assert_eq!(job["error"]["details"], json!({"field": "path"}));
    assert_eq!(job["error"]["message"], json!(e.message));
    // The same through jobs.get and jobs.wait.
    let got = t.ok("jobs.get", json!({"id": job["id"]}))["job"].clone();
    assert_eq!(got["error"], job["error"]);
}

#[test]
fn a_file_without_the_browsers_tables_is_corrupt_and_one_with_them_is_not() {
    let src = tempfile::tempdir().unwrap();
    let t = TestProfile::new();
    // Firefox tables without the visit time column: not places.
    let odd = src.path().join("odd.sqlite");
    Connection::open(&odd)
        .unwrap()
        .execute_batch(
            "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT);
             CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, place_id INTEGER);",
        )
        .unwrap();
    t.err(
        "history.import",
        json!({"browser": "firefox", "path": odd, "wait": true}),
        "corrupt",
    );
    // The minimal Chrome layout (no title, transition or duration) imports.
    let minimal = src.path().join("minimal");
    Connection::open(&minimal)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT);
             CREATE TABLE visits (id INTEGER PRIMARY KEY, url INTEGER, visit_time INTEGER);
             INSERT INTO urls VALUES (1, 'https://minimal.example/');
             INSERT INTO visits VALUES (1, 1, {});",
            CHROME_OFFSET_US + 1_000_000
        ))
        .unwrap();
    let r = import_wait(&t, "chrome", &minimal);
    assert_eq!(r["imported"], json!(1));
    let item = stored(&t)[0].clone();
    assert_eq!(item["visited_at"], json!(1000));
    assert_eq!(
        (item["title"].clone(), item["transition"].clone()),
        (json!(null), json!(null))
    );
}

#[test]
fn source_copies_left_by_a_crash_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let open = || hydra_core::Profile::open(hydra_core::OpenOptions::new(dir.path())).unwrap();
    open().close(Default::default()).unwrap();
    // A kill mid-import leaves its fresh copy (younger than the 24 h an
    // import waits before removing another's).
    let copy = dir.path().join(".history-import-killed");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("source.sqlite"), "private history").unwrap();
    let p = open();
    assert!(!copy.exists(), "a crashed import's copy survived the open");
    p.close(Default::default()).unwrap();
}
