//! Threads: the conversations everything else in HydraFlow hangs from, and
//! the one delete that removes a conversation and all it holds.

use super::{metadata_of, IdRequest};
use crate::db::paging::{Keyset, Order};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::jobs::ledger::{detach as detach_jobs, Link};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::{now_ms, Id, ListLimit, Metadata, Millis, Page, Patch};
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat thread as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Thread {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub origin: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub last_user_message_at: Option<Millis>,
    pub last_assistant_message_at: Option<Millis>,
    pub metadata: Map<String, Value>,
}

pub(crate) const COLUMNS: &str = "id, title, description, origin, created_at, updated_at, \
     last_user_message_at, last_assistant_message_at, metadata, updated_at, seq";

impl Thread {
    /// Reads a row selected with `COLUMNS`.
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Thread> {
        Ok(Thread {
            id: row.get(0)?,
            title: row.get(1)?,
            description: row.get(2)?,
            origin: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
            last_user_message_at: row.get(6)?,
            last_assistant_message_at: row.get(7)?,
            metadata: metadata_of(&row.get::<_, String>(8)?),
        })
    }
}

/// The thread `id`, if it exists.
pub fn load(conn: &Connection, id: &str) -> Result<Option<Thread>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM llm_threads WHERE id = ?1"),
        [id],
        Thread::from_row,
    )
}

/// The thread `id`, or `not_found` naming `field`.
pub fn require(conn: &Connection, id: &str, field: &str) -> Result<Thread> {
    load(conn, id)?.ok_or_else(|| Error::not_found("thread", field))
}

/// The fields of a new thread.
#[derive(Debug, Clone, Default)]
pub struct NewThread {
    pub id: Option<Id>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub origin: Option<String>,
    pub metadata: Metadata,
}

/// Inserts a thread inside the caller's transaction; an existing id is
/// `conflict`. Chat and tab binding create threads through this too.
pub fn insert(conn: &Connection, new: NewThread, now: Millis) -> Result<Thread> {
    let id = new.id.unwrap_or_else(Id::generate).into_string();
    let inserted = conn.run(
        "INSERT INTO llm_threads (id, title, description, origin, metadata, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (id) DO NOTHING",
        params![
            id,
            new.title,
            new.description,
            new.origin,
            new.metadata.to_json(),
            now
        ],
    )?;
    if inserted == 0 {
        return Err(Error::conflict("a thread with this id exists").with_detail("field", "id"));
    }
    Ok(Thread {
        id,
        title: new.title,
        description: new.description,
        origin: new.origin,
        created_at: now,
        updated_at: now,
        last_user_message_at: None,
        last_assistant_message_at: None,
        metadata: new.metadata.0,
    })
}

/// `threads.create`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub id: Option<Id>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub origin: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// `{thread}`: the answer of threads.create / get / update.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThreadResponse {
    pub thread: Thread,
}

/// `threads.create`: a new thread; an existing id is `conflict`.
pub fn create(profile: &Profile, req: CreateRequest) -> Result<ThreadResponse> {
    let new = NewThread {
        id: req.id,
        title: req.title,
        description: req.description,
        origin: req.origin,
        metadata: req.metadata,
    };
    let thread = profile.db().write(|tx| insert(tx, new, now_ms()))?;
    Ok(ThreadResponse { thread })
}

/// `threads.get`.
pub fn get(profile: &Profile, req: IdRequest) -> Result<ThreadResponse> {
    let thread = profile.db().read(|c| require(c, req.id.as_str(), "id"))?;
    Ok(ThreadResponse { thread })
}

/// `threads.update`: omitted fields are kept, `null` clears.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub id: Id,
    #[serde(default)]
    pub title: Patch<String>,
    #[serde(default)]
    pub description: Patch<String>,
    #[serde(default)]
    pub metadata: Patch<Metadata>,
}

/// `threads.update`.
pub fn update(profile: &Profile, req: UpdateRequest) -> Result<ThreadResponse> {
    let thread = profile.db().write(|tx| {
        let mut thread = require(tx, req.id.as_str(), "id")?;
        if let Some(title) = req.title.into_update() {
            thread.title = title;
        }
        if let Some(description) = req.description.into_update() {
            thread.description = description;
        }
        if let Some(metadata) = req.metadata.into_update() {
            thread.metadata = metadata.map(|m| m.0).unwrap_or_default();
        }
        thread.updated_at = now_ms();
        tx.run(
            "UPDATE llm_threads SET title = ?2, description = ?3, metadata = ?4, updated_at = ?5
             WHERE id = ?1",
            params![
                thread.id,
                thread.title,
                thread.description,
                Value::Object(thread.metadata.clone()).to_string(),
                thread.updated_at
            ],
        )?;
        Ok(thread)
    })?;
    Ok(ThreadResponse { thread })
}

/// `threads.list`: newest `updated_at` first, optionally by `origin`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default)]
    pub limit: ListLimit,
    pub cursor: Option<String>,
    pub origin: Option<String>,
}

/// `threads.list`.
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Thread>> {
    let scope = format!("threads.list|origin={:?}", req.origin);
    let ks = Keyset::new(scope, Order::Desc, req.limit.get(), req.cursor.as_deref())?;
    let (key, seq) = ks.bounds();
    let origin_filter = if req.origin.is_some() {
        "origin = ?3 AND"
    } else {
        "?3 IS NULL AND"
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM llm_threads WHERE {origin_filter} {} {}",
        ks.condition("updated_at", "seq", 1),
        ks.order_and_limit("updated_at", "seq")
    );
    let rows = profile.db().read(|c| {
        c.query_all(&sql, params![key, seq, req.origin], |r| {
            Ok((Thread::from_row(r)?, r.get(9)?, r.get(10)?))
        })
    })?;
    Ok(ks.finish(rows))
}

/// What `threads.delete` removed or detached.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct DeleteStats {
    pub messages: u64,
    pub tasks: u64,
    pub task_events: u64,
    pub memories: u64,
    pub tabs_detached: u64,
    pub jobs_detached: u64,
}

/// `{deleted, stats}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeleteResponse {
    pub deleted: u64,
    pub stats: DeleteStats,
}

/// `threads.delete`: the thread, its messages, its tasks and their events,
/// every memory tied to it (by `thread_id`, or `scope: thread` with
/// `scope_ref` = id, with their embeddings and audit entries, through
/// foreign-key cascades) go in one transaction; bound tabs and linked jobs
/// are detached. The privacy purge then makes the deletion physical.
pub fn delete(profile: &Profile, req: IdRequest) -> Result<Purged<DeleteResponse>> {
    let id = req.id.as_str();
    let purged = crate::privacy::purge(profile, |tx| {
        require(tx, id, "id")?;
        let count = |n: usize| n as u64;
        let task_events = count(tx.run(
            "DELETE FROM task_events WHERE task_id IN (SELECT id FROM tasks WHERE thread_id = ?1)",
            [id],
        )?);
        let stats = DeleteStats {
            messages: count(tx.run("DELETE FROM llm_messages WHERE thread_id = ?1", [id])?),
            memories: count(tx.run(
                "DELETE FROM memories WHERE thread_id = ?1 OR (scope = 'thread' AND scope_ref = ?1)",
                [id],
            )?),
            tasks: {
                // Jobs keep their ledger rows; their links to the deleted
                // tasks are cleared (not counted: `jobs_detached` counts
                // the jobs linked to the thread).
                for task in tx.query_all("SELECT id FROM tasks WHERE thread_id = ?1", [id], |r| {
                    r.get::<_, String>(0)
                })? {
                    detach_jobs(tx, Link::Task, &task)?;
                }
                count(tx.run("DELETE FROM tasks WHERE thread_id = ?1", [id])?)
            },
            task_events,
            tabs_detached: count(crate::browser::tabs::unbind_thread(tx, id, now_ms())?),
            jobs_detached: count(detach_jobs(tx, Link::Thread, id)?),
        };
        tx.run("DELETE FROM llm_threads WHERE id = ?1", [id])?;
        Ok(stats)
    })?;
    Ok(purged.map(|stats| DeleteResponse { deleted: 1, stats }))
}
