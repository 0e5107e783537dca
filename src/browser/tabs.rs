//! Tabs: the rows behind `tabs.*`, and the small API chat uses to find,
//! create and bind a tab inside its own transaction.

use crate::db::paging::{Keyset, Order};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::{now_ms, Id, ListLimit, Millis, Page, Patch};
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};

/// A browser tab as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tab {
    pub id: String,
    pub thread_id: Option<String>,
    pub current_history_id: Option<i64>,
    pub current_url: Option<String>,
    pub current_title: Option<String>,
    pub last_visited_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The columns [`Tab::from_row`] reads, in order.
pub const TAB_COLUMNS: &str =
    "id, thread_id, current_history_id, current_url, current_title, last_visited_at, created_at, updated_at";

impl Tab {
    /// Reads a row selected with [`TAB_COLUMNS`].
    pub fn from_row(row: &Row<'_>) -> rusqlite::Result<Tab> {
        Ok(Tab {
            id: row.get(0)?,
            thread_id: row.get(1)?,
            current_history_id: row.get(2)?,
            current_url: row.get(3)?,
            current_title: row.get(4)?,
            last_visited_at: row.get(5)?,
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
        })
    }
}

/// The tab `id`, if it exists.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Tab>> {
    conn.query_opt(
        &format!("SELECT {TAB_COLUMNS} FROM tabs WHERE id = ?1"),
        [id],
        Tab::from_row,
    )
}

/// Creates the tab `id` if it does not exist; returns true when it did not.
pub fn ensure(conn: &Connection, id: &str, now: Millis) -> Result<bool> {
    let inserted = conn.run(
        "INSERT INTO tabs (id, created_at, updated_at) VALUES (?1, ?2, ?2)
         ON CONFLICT (id) DO NOTHING",
        params![id, now],
    )?;
    Ok(inserted == 1)
}

/// Binds the tab to `thread_id` (or unbinds it with `None`) and touches
/// `updated_at`. The tab must exist.
pub fn set_thread(conn: &Connection, id: &str, thread_id: Option<&str>, now: Millis) -> Result<()> {
    conn.run(
        "UPDATE tabs SET thread_id = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, thread_id, now],
    )?;
    Ok(())
}

/// Points the tab at visit `visit_id` (its URL, title and time) unless the
/// tab has a later visit (an equal time counts as newer for the later
/// insert). `visits.add` calls this.
pub(crate) fn point_at_visit_if_newest(
    conn: &Connection,
    tab_id: &str,
    visit: (i64, &str, Option<&str>, Millis),
    now: Millis,
) -> Result<()> {
    let (visit_id, url, title, visited_at) = visit;
    conn.run(
        "UPDATE tabs SET current_history_id = ?2, current_url = ?3, current_title = ?4,
                         last_visited_at = ?5, updated_at = ?6
         WHERE id = ?1
           AND NOT EXISTS (SELECT 1 FROM visits
                           WHERE tab_id = ?1 AND visited_at > ?5)",
        params![tab_id, visit_id, url, title, visited_at, now],
    )?;
    Ok(())
}

/// Clears the current-visit pointer of the tabs that point at a visit
/// matching `visit_filter` (`(from, condition)`: the visits' source, e.g.
/// `visits v JOIN places p ...`, and an SQL condition over it binding
/// `params`; `None`: every pointer), before those visits are deleted.
/// `now` is bound after `params`. Returns how many tabs changed.
pub(crate) fn clear_visit_pointers(
    conn: &Connection,
    visit_filter: Option<(&str, &str)>,
    mut params: Vec<rusqlite::types::Value>,
    now: Millis,
) -> Result<u64> {
    params.push(now.into());
    let pointing = match visit_filter {
        None => "current_history_id IS NOT NULL".to_owned(),
        Some((from, filter)) => {
            format!("current_history_id IN (SELECT id FROM {from} WHERE {filter})")
        }
    };
    let sql = format!(
        "UPDATE tabs SET current_history_id = NULL, current_url = NULL, current_title = NULL,
                         last_visited_at = NULL, updated_at = ?{}
         WHERE {pointing}",
        params.len(),
    );
    Ok(conn.run(&sql, rusqlite::params_from_iter(params.iter()))? as u64)
}

/// Unbinds every tab bound to thread `thread_id` (the thread is being
/// deleted); returns how many.
pub(crate) fn unbind_thread(conn: &Connection, thread_id: &str, now: Millis) -> Result<usize> {
    conn.run(
        "UPDATE tabs SET thread_id = NULL, updated_at = ?2 WHERE thread_id = ?1",
        params![thread_id, now],
    )
}

/// The statements a bundle import writes a tab record with: insert if new,
/// and update (when the import policy says so) the one already stored.
pub(crate) const BUNDLE_INSERT: &str =
    "INSERT INTO tabs (id, thread_id, current_history_id, current_url, current_title,
                       last_visited_at, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING";
pub(crate) const BUNDLE_UPSERT: &str =
    "INSERT INTO tabs (id, thread_id, current_history_id, current_url, current_title,
                       last_visited_at, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO UPDATE SET thread_id = excluded.thread_id,
     current_history_id = excluded.current_history_id, current_url = excluded.current_url,
     current_title = excluded.current_title, last_visited_at = excluded.last_visited_at,
     created_at = excluded.created_at, updated_at = excluded.updated_at";

/// Request of `tabs.upsert`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    pub id: Id,
    /// Absent: keep the binding; `null`: unbind; an id: bind (the thread
    /// must exist).
    #[serde(default)]
    pub thread_id: Patch<Id>,
}

/// Request of `tabs.get` and `tabs.close`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    pub id: Id,
}

/// Request of `tabs.list`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default)]
    pub limit: ListLimit,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Response of the tab operations that return one tab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TabResponse {
    pub tab: Tab,
}

/// Response of `tabs.close`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct CloseResponse {
    pub deleted: u64,
    /// History rows of the tab, now with `tab_id` null.
    pub history_detached: u64,
}

/// `tabs.upsert`: creates the tab or touches it (`updated_at`), binding or
/// unbinding its thread when `thread_id` is named.
pub fn upsert(profile: &Profile, req: UpsertRequest) -> Result<TabResponse> {
    profile.db().write(|tx| {
        let now = now_ms();
        if let Patch::Value(thread) = &req.thread_id {
            tx.require_id("llm_threads", thread.as_str(), "thread", "thread_id")?;
        }
        ensure(tx, req.id.as_str(), now)?;
        match req.thread_id.into_update() {
            Some(thread) => set_thread(tx, req.id.as_str(), thread.as_ref().map(Id::as_str), now)?,
            None => {
                tx.run(
                    "UPDATE tabs SET updated_at = ?2 WHERE id = ?1",
                    params![req.id.as_str(), now],
                )?;
            }
        }
        existing(tx, req.id.as_str()).map(|tab| TabResponse { tab })
    })
}

/// `tabs.get`.
pub fn get_op(profile: &Profile, req: IdRequest) -> Result<TabResponse> {
    profile
        .db()
        .read(|conn| existing(conn, req.id.as_str()).map(|tab| TabResponse { tab }))
}

/// `tabs.list`: newest `updated_at` first.
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Tab>> {
    let ks = Keyset::new(
        "tabs.list",
        Order::Desc,
        req.limit.get(),
        req.cursor.as_deref(),
    )?;
    let (key, seq) = ks.bounds();
    let sql = format!(
        "SELECT {TAB_COLUMNS}, seq FROM tabs WHERE {} {}",
        ks.condition("updated_at", "seq", 1),
        ks.order_and_limit("updated_at", "seq")
    );
    profile.db().read(|conn| {
        let rows = conn.query_all(&sql, [key, seq], |r| {
            let tab = Tab::from_row(r)?;
            let seq: i64 = r.get(8)?;
            let updated = tab.updated_at;
            Ok((tab, updated, seq))
        })?;
        Ok(ks.finish(rows))
    })
}

/// `tabs.close`: removes the tab (and with it its cached url and title,
/// through the privacy purge) and detaches its history rows.
pub fn close(profile: &Profile, req: IdRequest) -> Result<Purged<CloseResponse>> {
    crate::privacy::purge(profile, |tx| {
        let deleted = tx.run("DELETE FROM tabs WHERE id = ?1", [req.id.as_str()])?;
        if deleted == 0 {
            return Err(Error::not_found("tab", "id"));
        }
        let history_detached = tx.run(
            "UPDATE visits SET tab_id = NULL WHERE tab_id = ?1",
            [req.id.as_str()],
        )?;
        Ok(CloseResponse {
            deleted: deleted as u64,
            history_detached: history_detached as u64,
        })
    })
}

/// The tab `id`, or `not_found`.
fn existing(conn: &Connection, id: &str) -> Result<Tab> {
    get(conn, id)?.ok_or_else(|| Error::not_found("tab", "id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_creates_once_and_binding_moves() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        assert!(ensure(&conn, "t1", 10).unwrap());
        assert!(!ensure(&conn, "t1", 20).unwrap());
        set_thread(&conn, "t1", Some("th"), 30).unwrap();
        let tab = get(&conn, "t1").unwrap().unwrap();
        assert_eq!(tab.thread_id.as_deref(), Some("th"));
        assert_eq!((tab.created_at, tab.updated_at), (10, 30));
        set_thread(&conn, "t1", None, 40).unwrap();
        assert_eq!(get(&conn, "t1").unwrap().unwrap().thread_id, None);
        assert!(get(&conn, "nope").unwrap().is_none());
    }
}
