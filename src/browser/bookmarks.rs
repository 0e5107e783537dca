//! Bookmarks and their folder tree: `bookmarks.*`.
//!
//! A bookmark lives at the top level (`folder_id` null) or in one folder;
//! folders nest through `parent_id`. Deleting a folder deletes its subfolders
//! and every bookmark in them (foreign-key cascades), through the privacy
//! purge. History purges never touch bookmarks.

use crate::browser::urls::parse_url;
use crate::db::paging::{Keyset, Order};
use crate::db::text_match::{fold_case, url_or_title_contains};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::{now_ms, ListLimit, Millis, Page, Patch};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};
use serde::{Deserialize, Serialize};

/// A bookmark as the contract shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Bookmark {
    pub id: i64,
    pub url: String,
    pub title: Option<String>,
    pub folder_id: Option<i64>,
    pub tags: Vec<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

pub(crate) const BOOKMARK_COLUMNS: &str = "id, url, title, folder_id, tags, created_at, updated_at";

impl Bookmark {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Bookmark> {
        let tags: String = r.get(4)?;
        Ok(Bookmark {
            id: r.get(0)?,
            url: r.get(1)?,
            title: r.get(2)?,
            folder_id: r.get(3)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
        })
    }
}

/// A bookmark folder as the contract shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Folder {
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    pub created_at: Millis,
}

/// Request of `bookmarks.add`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    pub url: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub folder_id: Option<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Response of the bookmark operations that return one bookmark.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct BookmarkResponse {
    pub bookmark: Bookmark,
}

/// Request of `bookmarks.list`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default)]
    pub folder_id: Option<i64>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub limit: ListLimit,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Request of `bookmarks.update`. Absent fields are kept; `title: null`
/// clears the title, `folder_id: null` moves to the top level, `tags: null`
/// clears the tags; `url` cannot be null.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub id: i64,
    #[serde(default)]
    pub url: Patch<String>,
    #[serde(default)]
    pub title: Patch<String>,
    #[serde(default)]
    pub folder_id: Patch<i64>,
    #[serde(default)]
    pub tags: Patch<Vec<String>>,
}

/// Request of `bookmarks.delete` and `bookmarks.delete_folder`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    pub id: i64,
}

/// Response of `bookmarks.delete`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct DeleteResponse {
    pub deleted: u64,
}

/// Request of `bookmarks.create_folder`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFolderRequest {
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<i64>,
}

/// Response of `bookmarks.create_folder`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FolderResponse {
    pub folder: Folder,
}

/// What went with a deleted folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FolderDeleteStats {
    pub subfolders: u64,
    pub bookmarks: u64,
}

/// Response of `bookmarks.delete_folder`: `{deleted: 1, stats}`, shaped
/// like `threads.delete`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct DeleteFolderResponse {
    pub deleted: u64,
    pub stats: FolderDeleteStats,
}

/// `bookmarks.add` (duplicates allowed).
pub fn add(profile: &Profile, req: AddRequest) -> Result<BookmarkResponse> {
    parse_url("url", &req.url)?;
    let tags = serde_json::to_string(&req.tags).map_err(|e| Error::internal(e.to_string()))?;
    profile.db().write(|tx| {
        if let Some(folder) = req.folder_id {
            require_folder(tx, folder, "folder_id")?;
        }
        let now = now_ms();
        let id = tx.query_i64(
            "INSERT INTO bookmarks (url, title, folder_id, tags, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
            params![req.url, req.title, req.folder_id, tags, now],
        )?;
        bookmark(tx, id).map(|bookmark| BookmarkResponse { bookmark })
    })
}

/// `bookmarks.list`: newest first; with `folder_id`, only the bookmarks
/// directly in that folder (which must exist).
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Bookmark>> {
    let query = req.query.filter(|q| !q.is_empty());
    let scope = format!("bookmarks.list|folder={:?}|q={:?}", req.folder_id, query);
    let ks = Keyset::new(scope, Order::Desc, req.limit.get(), req.cursor.as_deref())?;
    let mut terms = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    if let Some(folder) = req.folder_id {
        values.push(folder.into());
        terms.push(format!("folder_id = ?{}", values.len()));
    }
    if let Some(q) = &query {
        // As in history.list: one Unicode fold, no wildcards (a scan is
        // fine, bookmarks are few).
        values.push(fold_case(q).into_owned().into());
        terms.push(url_or_title_contains(&format!("?{}", values.len())));
    }
    let (key, seq) = ks.bounds();
    let first = values.len() + 1;
    values.push(key.into());
    values.push(seq.into());
    terms.push(ks.condition("created_at", "id", first));
    let sql = format!(
        "SELECT {BOOKMARK_COLUMNS} FROM bookmarks WHERE {} {}",
        terms.join(" AND "),
        ks.order_and_limit("created_at", "id")
    );
    profile.db().read(|conn| {
        if let Some(folder) = req.folder_id {
            require_folder(conn, folder, "folder_id")?;
        }
        let rows = conn.query_all(&sql, params_from_iter(values.iter()), |r| {
            let b = Bookmark::from_row(r)?;
            let (key, seq) = (b.created_at, b.id);
            Ok((b, key, seq))
        })?;
        Ok(ks.finish(rows))
    })
}

/// `bookmarks.update`.
pub fn update(profile: &Profile, req: UpdateRequest) -> Result<BookmarkResponse> {
    if req.url == Patch::Null {
        return Err(Error::invalid("url", "cannot be null"));
    }
    if let Patch::Value(url) = &req.url {
        parse_url("url", url)?;
    }
    let tags = match req.tags.into_update() {
        None => None,
        Some(tags) => Some(
            serde_json::to_string(&tags.unwrap_or_default())
                .map_err(|e| Error::internal(e.to_string()))?,
        ),
    };
    profile.db().write(|tx| {
        let current = bookmark(tx, req.id)?;
        if let Patch::Value(folder) = req.folder_id {
            require_folder(tx, folder, "folder_id")?;
        }
        let url = req.url.as_value().cloned().unwrap_or(current.url);
        let title = req.title.into_update().unwrap_or(current.title);
        let folder_id = req.folder_id.into_update().unwrap_or(current.folder_id);
        let tags = tags.unwrap_or_else(|| serde_json::to_string(&current.tags).unwrap_or_default());
        tx.run(
            "UPDATE bookmarks SET url = ?2, title = ?3, folder_id = ?4, tags = ?5, updated_at = ?6
             WHERE id = ?1",
            params![req.id, url, title, folder_id, tags, now_ms()],
        )?;
        bookmark(tx, req.id).map(|bookmark| BookmarkResponse { bookmark })
    })
}

/// `bookmarks.delete`.
pub fn delete(profile: &Profile, req: IdRequest) -> Result<Purged<DeleteResponse>> {
    crate::privacy::purge(profile, |tx| {
        let deleted = tx.run("DELETE FROM bookmarks WHERE id = ?1", [req.id])?;
        if deleted == 0 {
            return Err(Error::not_found("bookmark", "id"));
        }
        Ok(DeleteResponse {
            deleted: deleted as u64,
        })
    })
}

/// `bookmarks.create_folder`.
pub fn create_folder(profile: &Profile, req: CreateFolderRequest) -> Result<FolderResponse> {
    if req.name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    profile.db().write(|tx| {
        if let Some(parent) = req.parent_id {
            require_folder(tx, parent, "parent_id")?;
        }
        let folder = tx
            .query_opt(
                "INSERT INTO bookmark_folders (name, parent_id, created_at) VALUES (?1, ?2, ?3)
                 RETURNING id, name, parent_id, created_at",
                params![req.name, req.parent_id, now_ms()],
                folder_from_row,
            )?
            .ok_or_else(|| Error::internal("insert returned no row"))?;
        Ok(FolderResponse { folder })
    })
}

/// `bookmarks.delete_folder`: the folder, its subfolders at any depth and
/// every bookmark in them.
pub fn delete_folder(profile: &Profile, req: IdRequest) -> Result<Purged<DeleteFolderResponse>> {
    crate::privacy::purge(profile, |tx| {
        require_folder(tx, req.id, "id")?;
        let subtree = "WITH RECURSIVE tree(id) AS (
                           SELECT ?1 UNION SELECT f.id FROM bookmark_folders f JOIN tree ON f.parent_id = tree.id)";
        let folders = tx.query_i64(&format!("{subtree} SELECT count(*) FROM tree"), [req.id])?;
        let bookmarks = tx.query_i64(
            &format!(
                "{subtree} SELECT count(*) FROM bookmarks WHERE folder_id IN (SELECT id FROM tree)"
            ),
            [req.id],
        )?;
        // Foreign-key cascades remove the subfolders and their bookmarks.
        tx.run("DELETE FROM bookmark_folders WHERE id = ?1", [req.id])?;
        Ok(DeleteFolderResponse {
            deleted: 1,
            stats: FolderDeleteStats {
                subfolders: (folders - 1) as u64,
                bookmarks: bookmarks as u64,
            },
        })
    })
}

/// The names of the folders from the top down to `folder_id` (empty for the
/// top level): how bundles name a bookmark's place across profiles.
pub fn folder_path(conn: &Connection, folder_id: Option<i64>) -> Result<Vec<String>> {
    let mut path = Vec::new();
    let mut next = folder_id;
    while let Some(id) = next {
        let folder = conn
            .query_opt(
                "SELECT id, name, parent_id, created_at FROM bookmark_folders WHERE id = ?1",
                [id],
                folder_from_row,
            )?
            .ok_or_else(|| Error::not_found("folder", "folder_id"))?;
        path.push(folder.name);
        next = folder.parent_id;
    }
    path.reverse();
    Ok(path)
}

fn folder_from_row(r: &Row<'_>) -> rusqlite::Result<Folder> {
    Ok(Folder {
        id: r.get(0)?,
        name: r.get(1)?,
        parent_id: r.get(2)?,
        created_at: r.get(3)?,
    })
}

fn require_folder(conn: &Connection, id: i64, field: &str) -> Result<()> {
    if conn.exists("SELECT 1 FROM bookmark_folders WHERE id = ?1", [id])? {
        Ok(())
    } else {
        Err(Error::not_found("folder", field))
    }
}

fn bookmark(conn: &Connection, id: i64) -> Result<Bookmark> {
    conn.query_opt(
        &format!("SELECT {BOOKMARK_COLUMNS} FROM bookmarks WHERE id = ?1"),
        [id],
        Bookmark::from_row,
    )?
    .ok_or_else(|| Error::not_found("bookmark", "id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_paths_run_from_the_top() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO bookmark_folders (id, name, parent_id, created_at) VALUES
                (1, 'Work', NULL, 1), (2, 'Rust', 1, 2), (3, 'Async', 2, 3);",
        )
        .unwrap();
        assert_eq!(
            folder_path(&conn, Some(3)).unwrap(),
            ["Work", "Rust", "Async"]
        );
        assert_eq!(folder_path(&conn, Some(1)).unwrap(), ["Work"]);
        assert!(folder_path(&conn, None).unwrap().is_empty());
        assert!(folder_path(&conn, Some(9)).is_err());
    }
}
