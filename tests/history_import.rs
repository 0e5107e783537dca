//! History import from real browser file layouts: Chrome `History` (`urls` +
//! `visits`, microseconds since 1601) and Firefox `places.sqlite`
//! (`moz_places` + `moz_historyvisits`, microseconds since 1970, WAL mode with
//! recent visits still in the `-wal` while the browser runs). Guards against
//! wrong time conversion, double imports, and imports that write to or
//! depend on a lock of the browser's own file.

mod common;
use common::TestProfile;
use hydra_core::browser::import::{import_file, ImportOutcome, ImportProgress, SourceBrowser};
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};

const CHROME_SCHEMA: &str = "
CREATE TABLE meta(key LONGVARCHAR NOT NULL UNIQUE PRIMARY KEY, value LONGVARCHAR);
CREATE TABLE urls(id INTEGER PRIMARY KEY AUTOINCREMENT,url LONGVARCHAR,title LONGVARCHAR,
    visit_count INTEGER DEFAULT 0 NOT NULL,typed_count INTEGER DEFAULT 0 NOT NULL,
    last_visit_time INTEGER NOT NULL,hidden INTEGER DEFAULT 0 NOT NULL);
CREATE TABLE visits(id INTEGER PRIMARY KEY AUTOINCREMENT,url INTEGER NOT NULL,
    visit_time INTEGER NOT NULL,from_visit INTEGER,external_referrer_url TEXT,
    transition INTEGER DEFAULT 0 NOT NULL,segment_id INTEGER,
    visit_duration INTEGER DEFAULT 0 NOT NULL,
    incremented_omnibox_typed_score BOOLEAN DEFAULT FALSE NOT NULL,opener_visit INTEGER,
    originator_cache_guid TEXT,originator_visit_id INTEGER,originator_from_visit INTEGER,
    originator_opener_visit INTEGER,is_known_to_sync BOOLEAN DEFAULT FALSE NOT NULL,
    consider_for_ntp_most_visited BOOLEAN DEFAULT FALSE NOT NULL,
    visited_link_id INTEGER DEFAULT 0 NOT NULL, app_id TEXT);
CREATE INDEX visits_url_index ON visits (url);
CREATE INDEX visits_time_index ON visits (visit_time);
";

const FIREFOX_SCHEMA: &str = "
CREATE TABLE moz_origins ( id INTEGER PRIMARY KEY, prefix TEXT NOT NULL, host TEXT NOT NULL,
    frecency INTEGER NOT NULL, recalc_frecency INTEGER NOT NULL DEFAULT 0,
    alt_frecency INTEGER, recalc_alt_frecency INTEGER NOT NULL DEFAULT 0, UNIQUE (prefix, host) );
CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url LONGVARCHAR, title LONGVARCHAR,
    rev_host LONGVARCHAR, visit_count INTEGER DEFAULT 0, hidden INTEGER DEFAULT 0 NOT NULL,
    typed INTEGER DEFAULT 0 NOT NULL, frecency INTEGER DEFAULT -1 NOT NULL,
    last_visit_date INTEGER , guid TEXT, foreign_count INTEGER DEFAULT 0 NOT NULL,
    url_hash INTEGER DEFAULT 0 NOT NULL , description TEXT, preview_image_url TEXT,
    site_name TEXT, origin_id INTEGER REFERENCES moz_origins(id),
    recalc_frecency INTEGER NOT NULL DEFAULT 0, alt_frecency INTEGER,
    recalc_alt_frecency INTEGER NOT NULL DEFAULT 0);
CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, from_visit INTEGER,
    place_id INTEGER, visit_date INTEGER, visit_type INTEGER, session INTEGER,
    source INTEGER DEFAULT 0 NOT NULL, triggeringPlaceId INTEGER);
CREATE INDEX moz_historyvisits_dateindex ON moz_historyvisits (visit_date);
";

/// Microseconds between 1601-01-01 and 1970-01-01.
const CHROME_OFFSET_US: i64 = 11_644_473_600_000_000;

fn chrome_history(dir: &Path) -> PathBuf {
    let path = dir.join("History");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(CHROME_SCHEMA).unwrap();
    conn.execute_batch(
        "INSERT INTO urls (id, url, title, visit_count, last_visit_time) VALUES
            (1, 'https://www.Example.com/a', 'Example A', 2, 0),
            (2, 'https://rust-lang.org/', '', 1, 0),
            (3, 'not a url at all', 'bad', 1, 0);",
    )
    .unwrap();
    let t = |ms: i64| ms * 1000 + CHROME_OFFSET_US;
    let mut stmt = conn
        .prepare("INSERT INTO visits (url, visit_time, transition, visit_duration) VALUES (?1, ?2, ?3, ?4)")
        .unwrap();
    // transition 0x30000001: typed with qualifier bits; 805306368 = 0x30000000 (link).
    stmt.execute(rusqlite::params![
        1,
        t(1_700_000_000_000),
        0x3000_0001_i64,
        2_500_000
    ])
    .unwrap();
    stmt.execute(rusqlite::params![
        1,
        t(1_700_000_100_000),
        0x3000_0000_i64,
        0
    ])
    .unwrap();
    stmt.execute(rusqlite::params![2, t(1_700_000_050_123), 8, 1000])
        .unwrap();
    stmt.execute(rusqlite::params![3, t(1_700_000_060_000), 0, 0])
        .unwrap();
    // Before 1970: skipped.
    stmt.execute(rusqlite::params![2, 1_000, 0, 0]).unwrap();
    path
}

/// A Firefox file in WAL mode whose visits are still in the `-wal` (as when
/// the browser is running); the returned connection keeps it that way.
fn firefox_places(dir: &Path) -> (PathBuf, Connection) {
    let path = dir.join("places.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
        .unwrap();
    conn.execute_batch(FIREFOX_SCHEMA).unwrap();
    conn.execute_batch(
        "INSERT INTO moz_places (id, url, title, rev_host) VALUES
            (1, 'https://developer.mozilla.org/en-US/', 'MDN Web Docs', 'gro.allizom.repoleved.'),
            (2, 'place:sort=8&maxResults=10', NULL, NULL),
            (3, 'https://example.org/x', 'Ex', 'gro.elpmaxe.');
         INSERT INTO moz_historyvisits (from_visit, place_id, visit_date, visit_type, session) VALUES
            (0, 1, 1700000000000000, 2, 0),
            (0, 3, 1700000000500999, 1, 0),
            (0, 3, 1700000000900000, 9, 0),
            (0, 2, 1700000001000000, 1, 0);",
    )
    .unwrap();
    (path, conn)
}

fn no_progress() -> impl FnMut(ImportProgress) -> hydra_core::Result<()> {
    |_| Ok(())
}

#[test]
fn chrome_visits_are_converted_and_deduplicated() {
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path());
    let before = std::fs::read(&path).unwrap();
    let mut seen = Vec::new();
    let outcome = import_file(&t.profile, SourceBrowser::Chrome, &path, &mut |p| {
        seen.push(p);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        outcome,
        ImportOutcome {
            imported: 3,
            duplicates: 0,
            skipped: 2
        }
    );
    let last = seen.last().unwrap();
    assert_eq!((last.done, last.total), (5, 5));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the source file was modified"
    );

    let items = t.ok("history.list", json!({}))["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 3);
    assert_eq!(items[0]["url"], json!("https://www.Example.com/a"));
    assert_eq!(items[0]["visited_at"], json!(1_700_000_100_000_i64));
    assert_eq!(items[0]["transition"], json!("link"));
    assert_eq!(items[1]["url"], json!("https://rust-lang.org/"));
    assert_eq!(items[1]["visited_at"], json!(1_700_000_050_123_i64));
    assert_eq!(items[1]["title"], json!(null));
    assert_eq!(items[1]["transition"], json!("reload"));
    assert_eq!(items[2]["host"], json!("www.example.com"));
    assert_eq!(items[2]["title"], json!("Example A"));
    assert_eq!(items[2]["transition"], json!("typed"));
    assert_eq!(items[2]["duration_ms"], json!(2500));

    // A second import stores nothing new.
    let again = import_file(&t.profile, SourceBrowser::Chrome, &path, &mut no_progress()).unwrap();
    assert_eq!(
        again,
        ImportOutcome {
            imported: 0,
            duplicates: 3,
            skipped: 2
        }
    );
    // No temporary copy is left in the profile.
    let leftovers = std::fs::read_dir(t.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".history-import")
        })
        .count();
    assert_eq!(leftovers, 0);
    assert!(common::any_file_contains(t.dir.path(), b"CREATE TABLE urls").is_none());
}

#[test]
fn firefox_visits_in_the_wal_are_imported() {
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let (path, browser) = firefox_places(src.path());
    let outcome = import_file(
        &t.profile,
        SourceBrowser::Firefox,
        &path,
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(
        outcome,
        ImportOutcome {
            imported: 4,
            duplicates: 0,
            skipped: 0
        }
    );
    let items = t.ok("history.list", json!({}))["items"].clone();
    let times: Vec<i64> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["visited_at"].as_i64().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            1_700_000_001_000,
            1_700_000_000_900,
            1_700_000_000_500,
            1_700_000_000_000
        ]
    );
    assert_eq!(items[0]["url"], json!("place:sort=8&maxResults=10"));
    assert_eq!(items[1]["transition"], json!("reload"));
    assert_eq!(items[3]["title"], json!("MDN Web Docs"));
    assert_eq!(items[3]["transition"], json!("typed"));
    // The browser's connection still works: its file was never locked or changed.
    browser
        .execute(
            "INSERT INTO moz_places (url) VALUES ('https://later.example/')",
            [],
        )
        .unwrap();
}

#[test]
fn wrong_files_fail_with_corrupt() {
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let chrome = chrome_history(src.path());
    let e = import_file(
        &t.profile,
        SourceBrowser::Firefox,
        &chrome,
        &mut no_progress(),
    )
    .unwrap_err();
    assert_eq!(e.code(), hydra_core::ErrorCode::Corrupt);
    let text = src.path().join("notes.txt");
    std::fs::write(&text, "just text, not a database at all ........").unwrap();
    let e = import_file(&t.profile, SourceBrowser::Chrome, &text, &mut no_progress()).unwrap_err();
    assert_eq!(e.code(), hydra_core::ErrorCode::Corrupt);
    assert!(t.ok("history.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_failing_progress_report_stops_the_import() {
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path());
    let e = import_file(&t.profile, SourceBrowser::Chrome, &path, &mut |_| {
        Err(hydra_core::Error::new(
            hydra_core::ErrorCode::Cancelled,
            "cancelled",
        ))
    })
    .unwrap_err();
    assert_eq!(e.code(), hydra_core::ErrorCode::Cancelled);
    assert!(t.ok("history.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn import_runs_as_a_job_with_progress_and_links() {
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path());
    t.profile
        .db()
        .write(|tx| {
            use hydra_core::db::ConnExt;
            tx.run(
                "INSERT INTO llm_threads (id, created_at, updated_at) VALUES ('th', 1, 1)",
                [],
            )
        })
        .unwrap();
    let r = t.ok(
        "history.import",
        json!({"browser": "chrome", "path": path, "wait": true, "thread_id": "th"}),
    );
    assert_eq!(
        (r["imported"].clone(), r["duplicates"].clone()),
        (json!(3), json!(0))
    );
    let job = t.ok("jobs.get", json!({"id": r["job_id"]}))["job"].clone();
    assert_eq!(job["type"], json!("history_import"));
    assert_eq!(job["status"], json!("succeeded"));
    assert_eq!(job["thread_id"], json!("th"));
    assert_eq!(job["progress"]["steps_completed"], json!(5));
    assert_eq!(job["progress"]["steps_total"], json!(5));
    assert_eq!(job["result"]["imported"], json!(3));

    // Without wait: just the job id; the job finishes on a worker.
    let r = t.ok("history.import", json!({"browser": "chrome", "path": path}));
    assert_eq!(
        r.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["job_id"]
    );
    let job = t.ok("jobs.wait", json!({"id": r["job_id"], "timeout_ms": 30000}))["job"].clone();
    assert_eq!(job["status"], json!("succeeded"));
    assert_eq!(job["result"]["duplicates"], json!(3));
}

#[test]
fn a_long_import_reports_every_percent_with_an_eta() {
    // Issue 13: progress at least every 1% of the source's rows (or 250 ms),
    // not once per chunk of 2,000 visits.
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("History");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(CHROME_SCHEMA).unwrap();
    conn.execute_batch(
        "INSERT INTO urls (id, url, title, visit_count, last_visit_time)
         VALUES (1, 'https://example.com/', 'Example', 1, 0);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO visits (url, visit_time, transition, visit_duration)
         SELECT 1, (1700000000000 + i) * 1000 + 11644473600000000, 0, 0 FROM n;",
    )
    .unwrap();
    drop(conn);
    let updates = common::progress::Updates::collect(&t.profile);
    let r = t.ok(
        "history.import",
        json!({"browser": "chrome", "path": path, "wait": true}),
    );
    assert_eq!(r["imported"], json!(3000));
    let job = updates.of_finished_job(&r["job_id"]);
    let reports = common::progress::reports(&job, "importing");
    assert_eq!(common::progress::assert_every_percent(&reports, 0), 3000);
}

#[test]
fn bad_import_requests_create_no_job_and_bad_files_fail_the_job() {
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path());
    let missing = src.path().join("missing");
    t.err(
        "history.import",
        json!({"browser": "chrome", "path": missing}),
        "invalid_argument",
    );
    t.err(
        "history.import",
        json!({"browser": "safari", "path": path}),
        "invalid_argument",
    );
    t.err(
        "history.import",
        json!({"browser": "Chrome", "path": path}),
        "invalid_argument",
    );
    t.err(
        "history.import",
        json!({"browser": "chrome", "path": path, "thread_id": "nope"}),
        "not_found",
    );
    t.err(
        "history.import",
        json!({"browser": "chrome", "path": path, "task_id": "nope"}),
        "not_found",
    );
    t.err(
        "history.import",
        json!({"browser": "chrome"}),
        "invalid_argument",
    );
    assert!(t.ok("jobs.list", json!({}))["items"]
        .as_array()
        .unwrap()
        .is_empty());

    let e = t.err(
        "history.import",
        json!({"browser": "firefox", "path": path, "wait": true}),
        "corrupt",
    );
    assert!(!e.message.contains(path.to_str().unwrap()));
    let jobs = t.ok("jobs.list", json!({}))["items"].clone();
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["status"], json!("failed"));
    assert_eq!(jobs[0]["error"]["code"], json!("corrupt"));
}

#[test]
fn copies_left_by_a_crash_are_removed_by_the_next_import() {
    let t = TestProfile::new();
    let src = tempfile::tempdir().unwrap();
    let path = chrome_history(src.path());
    let stale = t.dir.path().join(".history-import-crashed");
    let live = t.dir.path().join(".history-import-running");
    for dir in [&stale, &live] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("source.sqlite"), "copy").unwrap();
    }
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    std::fs::File::open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    import_file(&t.profile, SourceBrowser::Chrome, &path, &mut no_progress()).unwrap();
    assert!(!stale.exists(), "a stale copy survived");
    assert!(
        live.exists(),
        "a recent copy (a running import) was removed"
    );
}
