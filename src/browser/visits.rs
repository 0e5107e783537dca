//! Recording visits: `visits.record`, `visits.record_batch`, and the one
//! insert routine they share with history imports.
//!
//! A visit is stored once per `(url, visited_at)`; a repeat returns the
//! existing id (`duplicate`). A visit with a `tab_id` creates the tab if
//! needed and moves the tab's pointer (and cached url, title and time) to
//! itself only when it is the tab's newest visit, so recording visits out of
//! order never makes a tab show an older page.
//!
//! A duplicate stores nothing and moves no pointer, but a named tab is still
//! created if missing (the contract creates the tab of any `visits.record`
//! call that names one).

use crate::browser::{tabs, urls};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::types::{now_ms, Id, Millis, Timestamp};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// Request of `visits.record`, and one entry of `visits.record_batch`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitInput {
    pub url: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub tab_id: Option<Id>,
    /// Defaults to now.
    #[serde(default)]
    pub visited_at: Option<Timestamp>,
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Free text (`"link"`, `"typed"`, `"reload"`, ...): the contract lists
    /// no fixed set, and imports bring their browsers' own names.
    #[serde(default)]
    pub transition: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<Timestamp>,
}

/// Response of `visits.record`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct RecordResponse {
    pub id: i64,
    pub duplicate: bool,
}

/// Request of `visits.record_batch`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBatchRequest {
    #[schemars(length(min = 1, max = MAX_BATCH))]
    pub visits: Vec<VisitInput>,
}

/// Response of `visits.record_batch`: `ids[i]` belongs to `visits[i]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct RecordBatchResponse {
    pub ids: Vec<i64>,
    pub inserted: u64,
    pub duplicates: u64,
}

/// The most visits one batch may carry.
pub const MAX_BATCH: usize = 10_000;

/// A validated visit, ready to insert.
#[derive(Debug, Clone)]
pub struct NewVisit {
    pub url: String,
    pub host: Option<String>,
    pub rev_host: Option<String>,
    pub title: Option<String>,
    pub visited_at: Millis,
    pub tab_id: Option<String>,
    pub referrer: Option<String>,
    pub status_code: Option<u16>,
    pub content_type: Option<String>,
    pub transition: Option<String>,
    pub duration_ms: Option<Millis>,
}

impl NewVisit {
    /// Validates a request entry (`url` must be absolute); `now` fills a
    /// missing `visited_at`.
    pub fn from_input(input: VisitInput, now: Millis) -> Result<NewVisit> {
        let facts = urls::parse_url("url", &input.url)?;
        Ok(NewVisit {
            rev_host: facts.rev_host(),
            host: facts.host,
            url: input.url,
            title: input.title,
            visited_at: input.visited_at.map_or(now, |t| t.0),
            tab_id: input.tab_id.map(Id::into_string),
            referrer: input.referrer,
            status_code: input.status_code,
            content_type: input.content_type,
            transition: input.transition,
            duration_ms: input.duration_ms.map(|d| d.0),
        })
    }
}

/// `visits.record`.
pub fn record(profile: &Profile, req: VisitInput) -> Result<RecordResponse> {
    let now = now_ms();
    let visit = NewVisit::from_input(req, now)?;
    profile.db().write(|tx| {
        let (id, duplicate) = insert(tx, &visit, now)?;
        Ok(RecordResponse { id, duplicate })
    })
}

/// `visits.record_batch`: every entry is validated before the transaction
/// starts; the first invalid one fails the call with its `details.index`.
pub fn record_batch(profile: &Profile, req: RecordBatchRequest) -> Result<RecordBatchResponse> {
    if req.visits.is_empty() || req.visits.len() > MAX_BATCH {
        return Err(Error::invalid(
            "visits",
            format!("must hold 1..{MAX_BATCH} visits"),
        ));
    }
    let now = now_ms();
    let visits = req
        .visits
        .into_iter()
        .enumerate()
        .map(|(i, v)| NewVisit::from_input(v, now).map_err(|e| at_index(e, i)))
        .collect::<Result<Vec<_>>>()?;
    profile.db().write(|tx| {
        let mut response = RecordBatchResponse {
            ids: Vec::with_capacity(visits.len()),
            inserted: 0,
            duplicates: 0,
        };
        for visit in &visits {
            let (id, duplicate) = insert(tx, visit, now)?;
            response.ids.push(id);
            if duplicate {
                response.duplicates += 1;
            } else {
                response.inserted += 1;
            }
        }
        Ok(response)
    })
}

/// Renames the field of a per-visit error to `visits[i].field` and adds
/// `details.index`.
fn at_index(e: Error, index: usize) -> Error {
    match e {
        Error::Rule {
            code,
            message,
            mut details,
        } => {
            let field = details
                .get("field")
                .and_then(|f| f.as_str())
                .map(|f| format!("visits[{index}].{f}"))
                .unwrap_or_else(|| format!("visits[{index}]"));
            details.insert("field".into(), field.into());
            details.insert("index".into(), index.into());
            Error::Rule {
                code,
                message: format!("visit {index}: {message}"),
                details,
            }
        }
        other => other,
    }
}

/// Stores one visit unless its `(url, visited_at)` exists; returns its id and
/// whether it was a duplicate. Creates the visit's tab if needed and moves
/// the tab's pointer when this is the tab's newest visit. Runs inside the
/// caller's transaction.
pub fn insert(conn: &Connection, v: &NewVisit, now: Millis) -> Result<(i64, bool)> {
    if let Some(tab_id) = &v.tab_id {
        tabs::ensure(conn, tab_id, now)?;
    }
    let place = place_id(conn, v)?;
    let Some(id) = insert_visit(conn, place, v)? else {
        let existing = conn.query_i64(
            "SELECT id FROM visits WHERE place_id = ?1 AND visited_at = ?2",
            params![place, v.visited_at],
        )?;
        return Ok((existing, true));
    };
    if let Some(tab_id) = &v.tab_id {
        let visit = (id, v.url.as_str(), v.title.as_deref(), v.visited_at);
        tabs::point_at_visit_if_newest(conn, tab_id, visit, now)?;
    }
    Ok((id, false))
}

/// Stores the visit alone (no tab is created or moved): its new id, or
/// `None` when its `(url, visited_at)` is already stored.
pub fn insert_row(conn: &Connection, v: &NewVisit) -> Result<Option<i64>> {
    let place = place_id(conn, v)?;
    insert_visit(conn, place, v)
}

/// The place (one row per url, migration 0012) of the visit's url, created
/// if missing. Most visits are of a url seen before, so it is looked up
/// first.
fn place_id(conn: &Connection, v: &NewVisit) -> Result<i64> {
    if let Some(place) = conn.query_opt(
        "SELECT place_id FROM places WHERE url = ?1",
        [&v.url],
        |r| r.get::<_, i64>(0),
    )? {
        return Ok(place);
    }
    conn.run(
        "INSERT INTO places (url, host, rev_host) VALUES (?1, ?2, ?3)",
        params![v.url, v.host, v.rev_host],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Inserts the visit row of `place` unless that place has a visit at the
/// same time: its new id, or `None`.
///
/// No `RETURNING`: SQLite gathers a `RETURNING` statement's rows in an
/// ephemeral table (one more b-tree to open, fill and clear at each
/// commit); the row count and the last rowid say the same here (the counter
/// trigger's updates count in neither).
fn insert_visit(conn: &Connection, place: i64, v: &NewVisit) -> Result<Option<i64>> {
    let inserted = conn.run(
        "INSERT INTO visits (place_id, visited_at, title, tab_id, referrer, status_code,
                             content_type, transition, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (place_id, visited_at) DO NOTHING",
        params![
            place,
            v.visited_at,
            v.title,
            v.tab_id,
            v.referrer,
            v.status_code,
            v.content_type,
            v.transition,
            v.duration_ms
        ],
    )?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid()))
}
