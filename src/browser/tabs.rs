//! Tabs: the rows behind `tabs.*`, and the small API chat uses to find,
//! create and bind a tab inside its own transaction.

use crate::db::ConnExt;
use crate::error::Result;
use crate::types::Millis;
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};

/// A browser tab as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
