//! Reading and deleting history: `history.list`, `history.visited`,
//! `history.delete`, `history.purge`.
//!
//! Lists are newest `visited_at` first with ties broken by insertion order
//! (the visit id). Visits are stored as small `visits` rows pointing at one
//! `places` row per url (migration 0012); reads go through the `history`
//! view that joins them. A host filter finds the host's places by their
//! `rev_host` index and their visits by `(place_id, visited_at)`; with
//! subdomains, each matching host is read on its own and the pages merged.
//!
//! A `query` asks the in-memory index (`browser::history_index`) which
//! visits match. With no other filter, the index's own visits are walked
//! newest first (each place tested once) until the page is full, for at
//! most `NEWEST_FIRST_BUDGET` visits: a 10%-matching query fills 200 rows
//! within ~2,000. Otherwise, few matches: they are fetched by id, together
//! with the rows the index does not cover yet (`id > watermark`), every
//! other filter in SQL. Many: the table is walked newest first and each
//! row's own text tested in SQL. Every way tests the row's text with the
//! same fold, so the answer never depends on the index's state.
//!
//! Every delete goes through [`crate::privacy::purge`] (one transaction, then
//! a WAL checkpoint), deletes the places its visits leave without a visit
//! (so no url of a deleted visit remains), drops its rows from the index
//! inside that transaction ([`Removal`]), and clears the tabs that pointed
//! at a deleted visit.

use crate::browser::history_index::{self, Removal};
use crate::browser::urls::HostMatch;
use crate::db::paging::{Keyset, Order};
use crate::db::text_match::{fold_case, url_or_title_contains};
use crate::db::ConnExt;
use crate::error::{Error, ErrorCode, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::search::substring::Lookup;
use crate::types::{now_ms, Bounded, Id, Millis, Page, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

/// A visit (history row) as the contract shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Visit {
    pub id: i64,
    pub url: String,
    pub host: Option<String>,
    pub title: Option<String>,
    pub visited_at: Millis,
    pub tab_id: Option<String>,
    pub referrer: Option<String>,
    pub status_code: Option<i64>,
    pub content_type: Option<String>,
    pub transition: Option<String>,
    pub duration_ms: Option<i64>,
}

pub(crate) const VISIT_COLUMNS: &str =
    "id, url, host, title, visited_at, tab_id, referrer, status_code, \
                             content_type, transition, duration_ms";

impl Visit {
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Visit> {
        Ok(Visit {
            id: r.get(0)?,
            url: r.get(1)?,
            host: r.get(2)?,
            title: r.get(3)?,
            visited_at: r.get(4)?,
            tab_id: r.get(5)?,
            referrer: r.get(6)?,
            status_code: r.get(7)?,
            content_type: r.get(8)?,
            transition: r.get(9)?,
            duration_ms: r.get(10)?,
        })
    }
}

/// Request of `history.list`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    /// Default true, as in `history.purge`.
    #[serde(default)]
    pub include_subdomains: Option<bool>,
    #[serde(default)]
    pub from: Option<Timestamp>,
    #[serde(default)]
    pub to: Option<Timestamp>,
    /// Only this tab's visits (the tab must exist: `not_found`).
    #[serde(default)]
    pub tab_id: Option<Id>,
    #[serde(default)]
    pub limit: Bounded<200, 1000>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Bounds of a time filter, inclusive at both ends; `from > to` is refused.
fn time_bounds(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<(Millis, Millis)> {
    let from = from.map_or(0, |t| t.0);
    let to = to.map_or(Millis::MAX, |t| t.0);
    if from > to {
        return Err(Error::invalid("from", "must not be after `to`"));
    }
    Ok((from, to))
}

/// A WHERE clause under construction with numbered parameters.
#[derive(Default)]
struct Where {
    terms: Vec<String>,
    params: Vec<SqlValue>,
    /// A term reads a column of `places` (url, host): the rows are read
    /// from the `history` view (visits joined to places), not `visits`.
    places: bool,
}

impl Where {
    /// Adds `value` and returns its placeholder (`?N`).
    fn bind(&mut self, value: impl Into<SqlValue>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    /// The table (or view) the terms read.
    fn source(&self) -> &'static str {
        if self.places {
            "history"
        } else {
            "visits"
        }
    }

    fn sql(&self) -> String {
        if self.terms.is_empty() {
            "1".to_owned()
        } else {
            self.terms.join(" AND ")
        }
    }
}

/// The filters of `history.list` and `history.purge`, normalized.
#[derive(Debug, Clone, Default)]
struct Filters {
    query: Option<String>,
    host: Option<HostMatch>,
    from: Option<Millis>,
    to: Option<Millis>,
    tab_id: Option<String>,
}

impl Filters {
    /// Only a `query` (and the cursor): no host, time or tab filter.
    fn query_only(&self) -> bool {
        self.host.is_none() && self.from.is_none() && self.to.is_none() && self.tab_id.is_none()
    }

    /// Adds the filter terms (all but the host, which the caller picks
    /// between an exact `rev_host` and a range).
    fn push_common(&self, w: &mut Where) {
        if let Some(from) = self.from {
            let p = w.bind(from);
            w.terms.push(format!("visited_at >= {p}"));
        }
        if let Some(to) = self.to {
            let p = w.bind(to);
            w.terms.push(format!("visited_at <= {p}"));
        }
        if let Some(tab) = &self.tab_id {
            let p = w.bind(tab.clone());
            w.terms.push(format!("tab_id = {p}"));
        }
        if let Some(q) = &self.query {
            let term = query_term(w, &fold_case(q));
            w.terms.push(term);
        }
    }

    /// Adds the host term matching every host of the filter.
    fn push_host_range(&self, w: &mut Where) {
        if let Some(h) = &self.host {
            w.places = true;
            if h.include_subdomains {
                let (low, high) = h.rev_range();
                let (a, b) = (w.bind(low), w.bind(high));
                w.terms.push(format!("rev_host >= {a} AND rev_host < {b}"));
            } else {
                let p = w.bind(h.rev_exact());
                w.terms.push(format!("rev_host = {p}"));
            }
        }
    }

    fn scope(&self) -> String {
        format!(
            "history.list|q={:?}|host={:?}|from={:?}|to={:?}|tab={:?}",
            self.query, self.host, self.from, self.to, self.tab_id
        )
    }
}

/// The `query` term: the folded url or title contains the folded query
/// (see `db::text_match`: one Unicode fold for every length, no wildcard).
fn query_term(w: &mut Where, folded: &str) -> String {
    let p = w.bind(folded.to_owned());
    w.places = true;
    url_or_title_contains(&p)
}

/// How many distinct hosts a subdomain filter may expand to before the list
/// falls back to one range scan.
const MAX_MERGED_HOSTS: usize = 64;

/// `history.list`.
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Visit>> {
    let (from, to) = time_bounds(req.from, req.to)?;
    let filters = Filters {
        query: req.query.filter(|q| !q.is_empty()),
        host: req
            .host
            .as_deref()
            .map(|h| HostMatch::new(h, req.include_subdomains.unwrap_or(true)))
            .transpose()?,
        from: req.from.map(|_| from),
        to: req.to.map(|_| to),
        tab_id: req.tab_id.map(Id::into_string),
    };
    let ks = Keyset::new(
        filters.scope(),
        Order::Desc,
        req.limit.get(),
        req.cursor.as_deref(),
    )?;
    profile.db().read(|conn| {
        if filters.query.is_some() {
            // The read's first statement: the rows the catch-up adds come
            // from a snapshot that starts after the index state it starts
            // from (an older one could still hold rows a delete removed).
            history_index::catch_up_for_search(profile, conn)?;
        }
        if let Some(tab) = &filters.tab_id {
            conn.require_id("tabs", tab, "tab", "tab_id")?;
        }
        if let Some(q) = &filters.query {
            let wanted = req.limit.get() + 1;
            let index = profile.history_text_index();
            let folded = fold_case(q);
            // Nothing else to filter: the newest matches come from the
            // index's own newest-first walk. A common query fills the page
            // within a few thousand documents; a rarer one gives up after
            // `NEWEST_FIRST_BUDGET` and is looked up whole below.
            let newest = |budget| -> Result<Option<Vec<(Visit, i64, i64)>>> {
                let Some(Lookup::Found { hits, watermark }) =
                    index.newest_matches(&folded, ks.bounds(), wanted, budget)
                else {
                    return Ok(None);
                };
                let every_match = hits.len() < wanted;
                let rows = rows_by_id(conn, &filters, &ks, hits, watermark)?;
                // Each row re-checks its own text; should one fail (it
                // cannot while the index is exact), the table walk below
                // answers instead.
                Ok((every_match || rows.len() >= wanted).then_some(rows))
            };
            if filters.query_only() {
                if let Some(rows) = newest(NEWEST_FIRST_BUDGET)? {
                    return Ok(ks.finish(rows));
                }
            }
            match index.search(&folded, index_lookup_limit(profile, wanted)) {
                Lookup::Found { hits, watermark } => {
                    let rows = rows_by_id(conn, &filters, &ks, hits, watermark)?;
                    return Ok(ks.finish(rows));
                }
                Lookup::TooMany { .. } if filters.query_only() => {
                    if let Some(rows) = newest(usize::MAX)? {
                        return Ok(ks.finish(rows));
                    }
                }
                Lookup::TooMany { .. } => {}
            }
        }
        let rows = match &filters.host {
            Some(h) if h.include_subdomains => match matching_hosts(conn, h)? {
                Some(hosts) => {
                    let mut rows = Vec::new();
                    for rev in hosts {
                        rows.extend(page_rows(conn, &filters, &ks, |w| {
                            w.places = true;
                            let p = w.bind(rev.clone());
                            w.terms.push(format!("rev_host = {p}"));
                        })?);
                    }
                    rows.sort_by_key(|row: &(Visit, i64, i64)| std::cmp::Reverse((row.1, row.2)));
                    rows.truncate(req.limit.get() + 1);
                    rows
                }
                None => page_rows(conn, &filters, &ks, |w| filters.push_host_range(w))?,
            },
            _ => page_rows(conn, &filters, &ks, |w| filters.push_host_range(w))?,
        };
        Ok(ks.finish(rows))
    })
}

/// How many documents a query-only list walks newest first before it
/// looks the query up whole instead: a query matching 10% of the visits
/// fills a page of 200 within about 2,000; one matching 0.1% would need
/// 200,000, which the whole lookup answers in less.
const NEWEST_FIRST_BUDGET: usize = 4_000;

/// Up to how many matching visits the index hands over by id; beyond it a
/// walk of the table newest first, testing each row, finds the page sooner.
/// Fetching `m` matches by id costs about `m` row reads; the walk reads
/// about `wanted * total / m`; they cross at `m = sqrt(wanted * total)`.
fn index_lookup_limit(profile: &Profile, wanted: usize) -> usize {
    let total = profile.history_text_index().stats().docs.max(1);
    (((wanted * total) as f64).sqrt() as usize).clamp(1_000, 50_000)
}

/// One page of the visits the index found (`hits`, `(visited_at, id)`, all
/// `id <= watermark`) plus the rows it does not cover yet (`id >
/// watermark`), every other filter applied in SQL; the query term
/// re-checks each row's own text. The hits are taken newest first in
/// chunks, so a page reads about `limit` rows, not every match.
fn rows_by_id(
    conn: &Connection,
    filters: &Filters,
    ks: &Keyset,
    mut hits: Vec<(i64, i64)>,
    watermark: i64,
) -> Result<Vec<(Visit, i64, i64)>> {
    let mut w = Where::default();
    filters.push_host_range(&mut w);
    filters.push_common(&mut w);
    let ids = w.bind(SqlValue::Null);
    let top = w.bind(watermark);
    let (key, seq) = ks.bounds();
    let first = w.params.len() + 1;
    w.params.push(key.into());
    w.params.push(seq.into());
    let filter = format!(
        "{} AND {}",
        w.sql(),
        ks.condition("visited_at", "id", first)
    );
    let page = format!(
        "{} {}",
        // NOT INDEXED: by rowid only, never by walking a time or host index.
        format_args!(
            "SELECT {VISIT_COLUMNS} FROM rarray({ids}) AS found
               CROSS JOIN visits NOT INDEXED ON visits.id = found.value
               CROSS JOIN places USING (place_id) WHERE {filter}"
        ),
        ks.order_and_limit("visited_at", "id"),
    );
    let tail = format!(
        "SELECT {VISIT_COLUMNS} FROM visits NOT INDEXED CROSS JOIN places USING (place_id)
         WHERE id > {top} AND {filter} {}",
        ks.order_and_limit("visited_at", "id"),
    );
    let slot = ids
        .trim_start_matches('?')
        .parse::<usize>()
        .expect("placeholder")
        - 1;
    let run = |sql: &str, chunk: &[(i64, i64)]| -> Result<Vec<(Visit, i64, i64)>> {
        let array: rusqlite::vtab::array::Array =
            std::rc::Rc::new(chunk.iter().map(|h| SqlValue::Integer(h.1)).collect());
        let mut params: Vec<&dyn rusqlite::ToSql> = w.params.iter().map(|v| v as _).collect();
        params[slot] = &array;
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params.as_slice(), |r| {
            let v = Visit::from_row(r)?;
            let (key, seq) = (v.visited_at, v.id);
            Ok((v, key, seq))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    };
    let wanted = ks.order_and_limit_rows();
    hits.retain(|hit| *hit < (key, seq));
    hits.sort_unstable_by(|a, b| b.cmp(a));
    let mut rows = run(&tail, &[])?;
    let mut taken = 0;
    let mut chunk = wanted;
    let mut found = 0;
    while found < wanted && taken < hits.len() {
        let end = (taken + chunk).min(hits.len());
        let got = run(&page, &hits[taken..end])?;
        found += got.len();
        rows.extend(got);
        taken = end;
        chunk *= 2;
    }
    rows.sort_by_key(|row| std::cmp::Reverse((row.1, row.2)));
    rows.truncate(wanted);
    Ok(rows)
}

/// The distinct stored `rev_host`s inside a subdomain range, found by
/// seeking the index once per host; `None` when there are too many to merge.
fn matching_hosts(conn: &Connection, h: &HostMatch) -> Result<Option<Vec<String>>> {
    let (low, high) = h.rev_range();
    let mut hosts: Vec<String> = Vec::new();
    loop {
        let next = match hosts.last() {
            None => conn.query_opt(
                "SELECT rev_host FROM places WHERE rev_host >= ?1 AND rev_host < ?2
                 ORDER BY rev_host LIMIT 1",
                [&low, &high],
                |r| r.get::<_, String>(0),
            )?,
            Some(last) => conn.query_opt(
                "SELECT rev_host FROM places WHERE rev_host > ?1 AND rev_host < ?2
                 ORDER BY rev_host LIMIT 1",
                [last, &high],
                |r| r.get::<_, String>(0),
            )?,
        };
        match next {
            Some(rev) if hosts.len() < MAX_MERGED_HOSTS => hosts.push(rev),
            Some(_) => return Ok(None),
            None => return Ok(Some(hosts)),
        }
    }
}

/// One page (limit + 1 rows) of visits matching the filters plus the term
/// `host_term` adds, newest first after the cursor.
fn page_rows(
    conn: &Connection,
    filters: &Filters,
    ks: &Keyset,
    host_term: impl FnOnce(&mut Where),
) -> Result<Vec<(Visit, i64, i64)>> {
    let mut w = Where::default();
    host_term(&mut w);
    filters.push_common(&mut w);
    let (key, seq) = ks.bounds();
    let first = w.params.len() + 1;
    w.params.push(key.into());
    w.params.push(seq.into());
    let sql = format!(
        "SELECT {VISIT_COLUMNS} FROM history WHERE {} AND {} {}",
        w.sql(),
        ks.condition("visited_at", "id", first),
        ks.order_and_limit("visited_at", "id"),
    );
    conn.query_all(&sql, params_from_iter(w.params.iter()), |r| {
        let v = Visit::from_row(r)?;
        let (key, seq) = (v.visited_at, v.id);
        Ok((v, key, seq))
    })
}

/// Request of `history.visited`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitedRequest {
    pub urls: Vec<String>,
}

/// Response of `history.visited`: `visited[i]` answers `urls[i]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct VisitedResponse {
    pub visited: Vec<bool>,
}

/// `history.visited`: whether each URL (compared exactly as stored) has at
/// least one visit.
pub fn visited(profile: &Profile, req: VisitedRequest) -> Result<VisitedResponse> {
    profile.db().read(|conn| {
        let visited = req
            .urls
            .iter()
            // A place exists exactly while it has a visit.
            .map(|url| conn.exists("SELECT 1 FROM places WHERE url = ?1", [url]))
            .collect::<Result<Vec<bool>>>()?;
        Ok(VisitedResponse { visited })
    })
}

/// Request of `history.delete`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    pub id: i64,
}

/// Response of `history.delete`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct DeleteResponse {
    pub deleted: u64,
    pub deleted_id: i64,
    pub tabs_cleared: u64,
}

/// `history.delete`.
pub fn delete(profile: &Profile, req: DeleteRequest) -> Result<Purged<DeleteResponse>> {
    let removal = Removal::begin(profile);
    let response = crate::privacy::purge(profile, |tx| {
        let mut w = Where::default();
        let p = w.bind(req.id);
        w.terms.push(format!("id = {p}"));
        let tabs_cleared = clear_tabs(tx, &w, now_ms())?;
        let deleted = delete_rows(tx, &w, &removal)?;
        if deleted == 0 {
            return Err(Error::not_found("visit", "id"));
        }
        Ok(DeleteResponse {
            deleted,
            deleted_id: req.id,
            tabs_cleared,
        })
    })?;
    removal.confirm();
    Ok(response)
}

/// Request of `history.purge`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub include_subdomains: Option<bool>,
    #[serde(default)]
    pub from: Option<Timestamp>,
    #[serde(default)]
    pub to: Option<Timestamp>,
    #[serde(default)]
    pub all: Option<bool>,
}

/// The filters a purge applied, echoed back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct PurgeFilters {
    pub host: Option<String>,
    pub include_subdomains: bool,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub all: bool,
}

/// Response of `history.purge`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct PurgeResponse {
    pub deleted_count: u64,
    pub tabs_cleared: u64,
    pub filters: PurgeFilters,
}

/// `history.purge`. Every rule is checked before the transaction starts:
/// no filter and no `all` is `filter_required`; `all` with a filter, or
/// `from > to`, is `invalid_argument` (bad timestamps already failed to
/// parse). `include_subdomains` only shapes `host` and is no filter itself.
pub fn purge(profile: &Profile, req: PurgeRequest) -> Result<Purged<PurgeResponse>> {
    let all = req.all.unwrap_or(false);
    let has_filter = req.host.is_some() || req.from.is_some() || req.to.is_some();
    if all && has_filter {
        return Err(Error::invalid(
            "all",
            "cannot be combined with host, from or to",
        ));
    }
    if !all && !has_filter {
        return Err(Error::new(
            ErrorCode::FilterRequired,
            "name a host, from or to, or pass all: true to purge everything",
        ));
    }
    let (from, to) = time_bounds(req.from, req.to)?;
    let include_subdomains = req.include_subdomains.unwrap_or(true);
    let filters = Filters {
        host: req
            .host
            .as_deref()
            .map(|h| HostMatch::new(h, include_subdomains))
            .transpose()?,
        from: req.from.map(|_| from),
        to: req.to.map(|_| to),
        ..Filters::default()
    };
    let mut w = Where::default();
    filters.push_host_range(&mut w);
    filters.push_common(&mut w);
    let echo = PurgeFilters {
        host: filters.host.as_ref().map(|h| h.host.clone()),
        include_subdomains,
        from: filters.from,
        to: filters.to,
        all,
    };
    let removal = Removal::begin(profile);
    let delete = |tx: &rusqlite::Transaction<'_>| {
        let tabs_cleared = clear_tabs(tx, &w, now_ms())?;
        let deleted_count = delete_rows(tx, &w, &removal)?;
        Ok(PurgeResponse {
            deleted_count,
            tabs_cleared,
            filters: echo,
        })
    };
    // Emptying the history frees most of a profile's pages: they are
    // zeroed in place rather than through the WAL.
    let response = if all {
        crate::privacy::purge_in_bulk(profile, delete)?
    } else {
        crate::privacy::purge(profile, delete)?
    };
    removal.confirm();
    Ok(response)
}

/// Deletes every visit of `host` (and its subdomains, per the match) and
/// clears the tabs that showed one, inside the caller's transaction (the
/// caller runs it through [`crate::privacy::purge`]); returns
/// `(visits deleted, tabs cleared)`. `privacy.forget_site` uses it, with a
/// [`Removal`] begun before the transaction and confirmed after it commits.
pub(crate) fn purge_host_in(
    conn: &Connection,
    host: HostMatch,
    now: Millis,
    removal: &Removal<'_>,
) -> Result<(u64, u64)> {
    let filters = Filters {
        host: Some(host),
        ..Filters::default()
    };
    let mut w = Where::default();
    filters.push_host_range(&mut w);
    let tabs_cleared = clear_tabs(conn, &w, now)?;
    let deleted = delete_rows(conn, &w, removal)?;
    Ok((deleted, tabs_cleared))
}

/// Clears the pointer and cached url/title/time of every tab that points at
/// a visit matching `w` (before those visits are deleted).
fn clear_tabs(conn: &Connection, w: &Where, now: Millis) -> Result<u64> {
    let filter = (!w.terms.is_empty()).then(|| w.sql());
    let filter = filter.as_deref().map(|sql| (w.source(), sql));
    crate::browser::tabs::clear_visit_pointers(conn, filter, w.params.clone(), now)
}

/// Deletes the visits matching `w`, then the places (urls) left without a
/// visit, and drops the visits from the text index; returns how many
/// visits. With no filter (`all`) both tables are emptied by one `DELETE`
/// each.
fn delete_rows(conn: &Connection, w: &Where, removal: &Removal<'_>) -> Result<u64> {
    if w.terms.is_empty() {
        let deleted = delete_all_visits(conn)?;
        conn.run("DELETE FROM places", [])?;
        removal.remove_all();
        return Ok(deleted);
    }
    let sql = if w.places {
        format!(
            "DELETE FROM visits WHERE id IN (SELECT id FROM history WHERE {})
             RETURNING id, place_id",
            w.sql()
        )
    } else {
        format!(
            "DELETE FROM visits WHERE {} RETURNING id, place_id",
            w.sql()
        )
    };
    let deleted = conn.query_all(&sql, params_from_iter(w.params.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut ids: Vec<i64> = deleted.iter().map(|d| d.0).collect();
    let mut places: Vec<i64> = deleted.iter().map(|d| d.1).collect();
    places.sort_unstable();
    places.dedup();
    delete_orphan_places(conn, &places)?;
    removal.remove(conn, &mut ids)?;
    Ok(ids.len() as u64)
}

/// Deletes those of `places` that no visit uses any more (so that no url
/// of a deleted visit stays in the profile).
fn delete_orphan_places(conn: &Connection, places: &[i64]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM places WHERE place_id = ?1
           AND NOT EXISTS (SELECT 1 FROM visits WHERE place_id = ?1)",
    )?;
    for place in places {
        stmt.execute([place])?;
    }
    Ok(())
}

/// Empties `visits`. A `DELETE` without `WHERE` clears a table page by page
/// instead of row by row, but only on a table without `DELETE` triggers, so
/// the row-count trigger (migration 0012) is dropped around it, inside the
/// same transaction, and the count reset by hand.
fn delete_all_visits(conn: &Connection) -> Result<u64> {
    let trigger: Option<String> = conn.query_opt(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'visits_count_delete'",
        [],
        |r| r.get(0),
    )?;
    if let Some(sql) = &trigger {
        conn.execute_batch("DROP TRIGGER visits_count_delete")?;
        let deleted = conn.execute("DELETE FROM visits", [])? as u64;
        conn.execute_batch(sql)?;
        conn.run(
            "UPDATE row_counts SET n = 0, upto = 0 WHERE name = 'history'",
            [],
        )?;
        Ok(deleted)
    } else {
        Ok(conn.run("DELETE FROM visits", [])? as u64)
    }
}
