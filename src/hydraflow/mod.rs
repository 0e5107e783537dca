//! HydraFlow (`spec/OPERATIONS.md` §4): chat threads and their messages,
//! chat turns with the host's model, tasks with their events, and memories
//! with embeddings and search; plus binding threads to browser tabs.
//!
//! Each submodule holds one family of operations; this module holds the
//! small pieces they share (existence checks, JSON columns).
//!
//! Choices where the contract leaves room (each also documented where it
//! is implemented):
//! - `parent_id` and `source_message_id` are references recorded as given
//!   (id rule only); they are not required to exist and may outlive the
//!   message. Only the objects the contract names must exist.
//! - `priority` is an integer; task `result` and event `payload` are any JSON
//!   value (`null` when absent); the `created` event's payload is
//!   `{status}`; `tasks.add_event` does not touch the task's `updated_at`.
//! - Entering a closed status from another closed one resets `closed_at`.
//! - `memory.list` is newest `created_at` first; `memory.delete` takes `id`
//!   or filters, not both (`invalid_argument`); an unknown `id` is
//!   `not_found`, filters matching nothing delete 0.
//! - One embedding dimension per model (an upsert with another dimension is
//!   `invalid_argument`); all-zero vectors are refused (no direction).
//!   `embedding: null` on upsert removes the stored vector.
//! - `memory.search` `query`: every whitespace-separated term must match
//!   (quoted, so no FTS syntax); score is `-bm25`.
//! - `chat` binds the tab to the turn's thread only when the tab has no
//!   live thread; a tab bound elsewhere is moved by `tabs.bind_thread` only.
//!   The model receives the user message text as `message` (plus `model`
//!   when the caller named one); the assistant message's metadata records
//!   `{model}` when known. Context memories: at most 20.

pub mod chat;
pub mod context;
pub mod memory;
pub mod messages;
pub mod search;
pub mod tab_binding;
pub mod tasks;
pub mod threads;

use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::types::Id;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request naming one object by `id` (get and delete of threads,
/// messages, tasks and memories).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    pub id: Id,
}

/// `{deleted}`: how many objects a delete removed.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeletedResponse {
    pub deleted: u64,
}

/// `not_found` (naming `field`) unless the thread `id` exists.
pub(crate) fn require_thread(conn: &Connection, id: &str, field: &str) -> Result<()> {
    conn.require_id("llm_threads", id, "thread", field)
}

/// A list or search filter by `thread_id` names a thread that must exist
/// (section 1, "Missing objects"): `not_found` unless it does; no filter
/// passes.
pub(crate) fn require_filter_thread(conn: &Connection, thread_id: Option<&str>) -> Result<()> {
    match thread_id {
        Some(id) => require_thread(conn, id, "thread_id"),
        None => Ok(()),
    }
}

/// `not_found` (naming `field`) unless the task `id` exists.
pub(crate) fn require_task(conn: &Connection, id: &str, field: &str) -> Result<()> {
    conn.require_id("tasks", id, "task", field)
}

/// A stored metadata column (JSON object text) as an object.
pub(crate) fn metadata_of(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A stored JSON value column (NULL stays `null`).
pub(crate) fn json_of(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// A JSON value for a nullable JSON column: `null` is stored as NULL.
pub(crate) fn json_text(value: &Value) -> Option<String> {
    (!value.is_null()).then(|| value.to_string())
}

/// `invalid_argument` unless `text` has a non-whitespace character.
pub(crate) fn require_text(field: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        Err(Error::invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// Refuses an explicit `null` for a field that cannot be cleared.
pub(crate) fn not_null<T>(field: &str, patch: crate::types::Patch<T>) -> Result<Option<T>> {
    match patch {
        crate::types::Patch::Absent => Ok(None),
        crate::types::Patch::Null => Err(Error::invalid(field, "cannot be null")),
        crate::types::Patch::Value(v) => Ok(Some(v)),
    }
}
