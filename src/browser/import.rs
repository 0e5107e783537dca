//! `history.import`: visits from a Chrome `History` or Firefox
//! `places.sqlite` file, run as a job of type `history_import`.
//!
//! The browser may hold its file locked, keeps recent changes in a `-wal`
//! beside it, and a browser killed mid-write leaves a hot `-journal` whose
//! rows were never committed. So the file is first copied, with its WAL and
//! its journal, into a private temporary directory inside the profile, and
//! the copy is opened the way the browser would reopen it: SQLite replays
//! the WAL and rolls the hot journal back, so only committed rows are
//! read. The copy is removed when the import ends (one left by a crash is
//! removed at the next open). The original is only ever read.
//!
//! Files of every schema era are read: the columns a file has are looked up
//! first and a missing optional one (Chrome before schema 21 has no
//! `visit_duration`) reads as absent. A file is `corrupt` only when it lacks
//! the tables and columns that make it that browser's history at all.
//!
//! Timestamps are converted to Unix milliseconds (Chrome counts
//! microseconds since 1601-01-01, Firefox microseconds since 1970). Visits
//! are recorded oldest first through the same insert as `visits.record`, so
//! a `(url, visited_at)` already stored counts as a duplicate and a re-run
//! imports nothing twice. They are written in chunks of [`CHUNK`] per
//! transaction, with progress after each chunk, so a long import never
//! holds the writer for long; a job that fails or is cancelled part-way
//! keeps the chunks already committed (running it again completes it).
//! A row the importer cannot use is skipped and counted, and the job goes
//! on: a URL that is missing, not text or not absolute; a time that is
//! missing, not an integer, before 1970, or out of range (converted with
//! checked arithmetic, so `i64::MIN` never wraps into the far future).

use crate::browser::urls;
use crate::browser::visits::{self, NewVisit};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{Channel, JobContext, JobLinks, ProgressMeter};
use crate::profile::Profile;
use crate::types::{now_ms, Id, Millis};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// The browsers whose history files can be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceBrowser {
    Chrome,
    Firefox,
}

/// Request of `history.import`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub browser: SourceBrowser,
    pub path: String,
    /// Wait for the job and return its counts beside `job_id`.
    #[serde(default)]
    pub wait: bool,
    /// Stored on the job (must exist).
    #[serde(default)]
    pub thread_id: Option<Id>,
    /// Stored on the job (must exist).
    #[serde(default)]
    pub task_id: Option<Id>,
}

/// The result of an import job.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct ImportOutcome {
    /// Visits stored.
    pub imported: u64,
    /// Visits whose `(url, visited_at)` was already stored.
    pub duplicates: u64,
    /// Visits left out: a URL or time the importer cannot use (missing,
    /// not text / not an integer, not absolute, before 1970, out of range).
    pub skipped: u64,
}

/// Progress after each chunk: visits handled so far out of the file's total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    pub done: u64,
    pub total: u64,
}

/// Visits recorded per write transaction.
pub const CHUNK: usize = 2_000;

/// Microseconds between 1601-01-01 and 1970-01-01 (Chrome's epoch offset).
const CHROME_EPOCH_OFFSET_US: i64 = 11_644_473_600_000_000;

/// One visit as read from the source file.
struct SourceVisit {
    url: String,
    title: Option<String>,
    visited_at: Millis,
    transition: Option<String>,
    duration_ms: Option<Millis>,
}

/// Imports every visit of `path` into `profile`. `progress` is called
/// before the first row and after every row read (the caller decides when
/// to report); an error from it (a cancelled job) stops the import after
/// the chunks already committed.
pub fn import_file(
    profile: &Profile,
    browser: SourceBrowser,
    path: &Path,
    progress: &mut dyn FnMut(ImportProgress) -> Result<()>,
) -> Result<ImportOutcome> {
    remove_stale_copies(profile.dir());
    let copy_dir = tempfile::Builder::new()
        .prefix(COPY_PREFIX)
        .tempdir_in(profile.dir())?;
    let copy = copy_dir.path().join("source.sqlite");
    std::fs::copy(path, &copy)?;
    for suffix in SIDE_FILES {
        let side = with_suffix(path, suffix);
        if side.is_file() {
            std::fs::copy(&side, with_suffix(&copy, suffix))?;
        }
    }
    // Read-write on the private copy: SQLite must be able to roll a hot
    // journal back and replay a WAL, as the browser would at its next start.
    let source = Connection::open_with_flags(
        &copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|_| not_history(browser))?;
    let outcome = import_from(profile, browser, &source, progress);
    drop(source);
    profile.invalidate_storage_cache();
    outcome
}

/// The files SQLite keeps beside a database that hold part of its state: a
/// WAL (committed pages not yet checkpointed) and a rollback journal (the
/// pages to restore when a writer died mid-transaction).
const SIDE_FILES: [&str; 2] = ["-wal", "-journal"];

/// The name prefix of the temporary directories holding source copies.
const COPY_PREFIX: &str = ".history-import-";

/// Copies older than this were left by a crash mid-import, never by a live
/// import, and are removed at the start of the next one.
const STALE_COPY_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes every source copy in the profile directory. Run by
/// `Profile::open` while it holds the profile lock, when no import can be
/// running, so every copy there was left by a crash (best effort: one that
/// cannot be removed now is tried again later).
pub fn remove_copies_left_by_a_crash(dir: &Path) {
    remove_copies(dir, std::time::Duration::ZERO);
}

/// Removes source copies a crashed import left in the profile directory
/// (best effort: a copy that cannot be removed now is tried next time).
fn remove_stale_copies(dir: &Path) {
    remove_copies(dir, STALE_COPY_AGE);
}

/// Removes the source copies older than `min_age`.
fn remove_copies(dir: &Path, min_age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if stale && entry.file_name().to_string_lossy().starts_with(COPY_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(suffix);
    os.into()
}

fn not_history(browser: SourceBrowser) -> Error {
    let what = match browser {
        SourceBrowser::Chrome => "a Chrome History database (tables urls, visits)",
        SourceBrowser::Firefox => {
            "a Firefox places.sqlite database (tables moz_places, moz_historyvisits)"
        }
    };
    Error::new(ErrorCode::Corrupt, format!("the file is not {what}")).with_detail("field", "path")
}

/// The file is that browser's history but part of it cannot be read.
fn unreadable() -> Error {
    Error::new(
        ErrorCode::Corrupt,
        "the history file is damaged: a page could not be read",
    )
    .with_detail("field", "path")
}

/// The queries that read a browser's visits, oldest first: count, then rows
/// of `(url, title, time in the browser's unit, transition code, duration)`,
/// built from the columns the file has. `None` when the file lacks a table
/// or column every version of that browser's history has.
fn source_sql(browser: SourceBrowser, source: &Connection) -> Option<(String, String)> {
    // (places table, visits table, join column of visits, time column,
    //  transition column, duration column)
    let (places, visits, place_ref, time, transition, duration) = match browser {
        SourceBrowser::Chrome => (
            "urls",
            "visits",
            "url",
            "visit_time",
            "transition",
            "visit_duration",
        ),
        SourceBrowser::Firefox => (
            "moz_places",
            "moz_historyvisits",
            "place_id",
            "visit_date",
            "visit_type",
            "",
        ),
    };
    let place_columns = table_columns(source, places)?;
    let visit_columns = table_columns(source, visits)?;
    let required = ["id", "url"].iter().all(|c| place_columns.contains(*c))
        && [place_ref, time].iter().all(|c| visit_columns.contains(*c));
    if !required {
        return None;
    }
    let optional = |columns: &HashSet<String>, table: &str, column: &str| {
        if !column.is_empty() && columns.contains(column) {
            format!("{table}.{column}")
        } else {
            "NULL".to_owned()
        }
    };
    let title = optional(&place_columns, "p", "title");
    let transition = optional(&visit_columns, "v", transition);
    let duration = optional(&visit_columns, "v", duration);
    // A visit whose url row is missing is read with a NULL url, then
    // skipped and counted like any other unusable row.
    let from = format!("{visits} v LEFT JOIN {places} p ON p.id = v.{place_ref}");
    Some((
        format!("SELECT count(*) FROM {from}"),
        format!(
            "SELECT p.url, {title}, v.{time}, {transition}, {duration}
             FROM {from} ORDER BY v.{time}, v.rowid"
        ),
    ))
}

/// The column names of `table`, or `None` when the file has no such table
/// (or is not a database).
fn table_columns(source: &Connection, table: &str) -> Option<HashSet<String>> {
    let mut stmt = source
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .ok()?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .ok()?
        .collect::<rusqlite::Result<HashSet<String>>>()
        .ok()?;
    (!names.is_empty()).then_some(names)
}

fn import_from(
    profile: &Profile,
    browser: SourceBrowser,
    source: &Connection,
    progress: &mut dyn FnMut(ImportProgress) -> Result<()>,
) -> Result<ImportOutcome> {
    let (count_sql, rows_sql) = source_sql(browser, source).ok_or_else(|| not_history(browser))?;
    let total: i64 = source
        .query_row(&count_sql, [], |r| r.get(0))
        .map_err(|_| not_history(browser))?;
    let mut stmt = source
        .prepare(&rows_sql)
        .map_err(|_| not_history(browser))?;
    let mut rows = stmt.query([]).map_err(|_| not_history(browser))?;
    let mut outcome = ImportOutcome::default();
    let mut chunk: Vec<NewVisit> = Vec::with_capacity(CHUNK);
    let mut done = 0u64;
    let total = total.max(0) as u64;
    progress(ImportProgress { done, total })?;
    // A page the copy cannot read is damage to the file, not to us.
    while let Some(row) = rows.next().map_err(|_| unreadable())? {
        done += 1;
        match convert(browser, row) {
            Some(visit) => chunk.push(visit),
            None => outcome.skipped += 1,
        }
        if chunk.len() >= CHUNK {
            record_chunk(profile, &chunk, &mut outcome)?;
            chunk.clear();
        }
        progress(ImportProgress {
            done,
            total: total.max(done),
        })?;
    }
    if !chunk.is_empty() {
        record_chunk(profile, &chunk, &mut outcome)?;
    }
    progress(ImportProgress {
        done,
        total: total.max(done),
    })?;
    Ok(outcome)
}

fn record_chunk(profile: &Profile, chunk: &[NewVisit], outcome: &mut ImportOutcome) -> Result<()> {
    let now = now_ms();
    profile.db().write(|tx| {
        for visit in chunk {
            let (_, duplicate) = visits::insert(tx, visit, now)?;
            if duplicate {
                outcome.duplicates += 1;
            } else {
                outcome.imported += 1;
            }
        }
        Ok(())
    })
}

/// A source row as a visit, or `None` when it cannot be one (its URL or
/// time is unusable). Optional fields of an unexpected type read as absent.
fn convert(browser: SourceBrowser, row: &rusqlite::Row<'_>) -> Option<NewVisit> {
    let value = |idx: usize| row.get_ref(idx).unwrap_or(ValueRef::Null);
    let integer = |idx: usize| match value(idx) {
        ValueRef::Integer(v) => Some(v),
        _ => None,
    };
    let ValueRef::Text(url) = value(0) else {
        return None;
    };
    let url = std::str::from_utf8(url).ok()?.to_owned();
    let raw = SourceVisit {
        title: match value(1) {
            ValueRef::Text(t) if !t.is_empty() => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        },
        visited_at: unix_ms(browser, integer(2)?)?,
        transition: integer(3)
            .and_then(|code| transition_name(browser, code))
            .map(str::to_owned),
        duration_ms: integer(4).map(|us| us / 1000).filter(|d| *d >= 0),
        url,
    };
    let facts = urls::parse_url("url", &raw.url).ok()?;
    Some(NewVisit {
        rev_host: facts.rev_host(),
        host: facts.host,
        url: raw.url,
        title: raw.title,
        visited_at: raw.visited_at,
        tab_id: None,
        referrer: None,
        status_code: None,
        content_type: None,
        transition: raw.transition,
        duration_ms: raw.duration_ms,
    })
}

/// A browser time as Unix milliseconds (truncated), or `None` when it is
/// before 1970 or does not fit (checked: no wrap-around).
fn unix_ms(browser: SourceBrowser, time: i64) -> Option<Millis> {
    let unix_us = match browser {
        SourceBrowser::Chrome => time.checked_sub(CHROME_EPOCH_OFFSET_US)?,
        SourceBrowser::Firefox => time,
    };
    (unix_us >= 0).then_some(unix_us / 1000)
}

/// The browser's transition code as a name (Chrome: the core type in the
/// low byte; Firefox: `visit_type`).
fn transition_name(browser: SourceBrowser, code: i64) -> Option<&'static str> {
    match browser {
        SourceBrowser::Chrome => Some(match code & 0xFF {
            0 => "link",
            1 => "typed",
            2 => "auto_bookmark",
            3 => "auto_subframe",
            4 => "manual_subframe",
            5 => "generated",
            6 => "auto_toplevel",
            7 => "form_submit",
            8 => "reload",
            9 => "keyword",
            10 => "keyword_generated",
            _ => return None,
        }),
        SourceBrowser::Firefox => Some(match code {
            1 => "link",
            2 => "typed",
            3 => "bookmark",
            4 => "embed",
            5 => "redirect_permanent",
            6 => "redirect_temporary",
            7 => "download",
            8 => "framed_link",
            9 => "reload",
            _ => return None,
        }),
    }
}

/// The job type of history imports.
pub const JOB_TYPE: &str = "history_import";

/// Response of `history.import`: `{job_id}`, plus the job's counts when the
/// call waited.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ImportResponse {
    pub job_id: String,
    #[serde(flatten)]
    pub outcome: Option<ImportOutcome>,
}

/// `history.import`: checks the request (the file exists, the linked thread
/// and task exist) before any job exists, then queues a `history_import`
/// job, and with `wait` returns its counts (or its error).
pub fn import(profile: &Profile, mut req: ImportRequest) -> Result<ImportResponse> {
    let path = Path::new(&req.path);
    if !path.is_file() {
        return Err(Error::invalid("path", "must name an existing file"));
    }
    // Workers may run with another working directory than the caller's.
    req.path = path.canonicalize()?.to_string_lossy().into_owned();
    let links = JobLinks::of(&req.thread_id, &req.task_id);
    let (job_id, outcome) = profile
        .jobs()
        .submit_request(JOB_TYPE, &req, links, req.wait)?;
    Ok(ImportResponse { job_id, outcome })
}

/// The `history_import` job: imports the payload's file, reporting
/// progress (phase `importing`) as source rows handled out of the file's
/// total, every 1% or 250 ms.
pub fn run_job(ctx: &JobContext) -> Result<serde_json::Value> {
    let req: ImportRequest = serde_json::from_value(ctx.payload().clone())
        .map_err(|_| Error::invalid("payload", "not a history.import request"))?;
    let mut meter: Option<ProgressMeter> = None;
    let outcome =
        import_file(
            ctx.profile(),
            req.browser,
            Path::new(&req.path),
            &mut |p| match &mut meter {
                Some(meter) => meter.advance_to(p.done),
                None => {
                    meter = Some(ProgressMeter::start(
                        ctx,
                        "importing",
                        p.total,
                        Channel::Direct,
                    )?);
                    Ok(())
                }
            },
        )?;
    if let Some(meter) = meter {
        meter.finish(Channel::Direct)?;
    }
    serde_json::to_value(outcome).map_err(|_| Error::internal("result encoding failed"))
}
