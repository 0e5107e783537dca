//! Memories: what the assistant keeps about the user, a thread, a task or a
//! document, with an optional embedding (little-endian f32 vector of a named
//! model) and an audit trail of actions and times (never the text).
//! Searching them lives in `search.rs`.

use super::{
    metadata_of, not_null, require_filter_thread, require_task, require_text, require_thread,
};
use super::{DeletedResponse, IdRequest};
use crate::db::paging::{Keyset, Order};
use crate::db::ConnExt;
use crate::error::{Error, ErrorCode, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::{now_ms, Id, ListLimit, Metadata, Millis, Page, Patch};
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a memory is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Global,
    User,
    Thread,
    Task,
    Doc,
}

impl Scope {
    /// The stored (and JSON) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::User => "user",
            Scope::Thread => "thread",
            Scope::Task => "task",
            Scope::Doc => "doc",
        }
    }

    fn parse(text: &str) -> Option<Scope> {
        [
            Scope::Global,
            Scope::User,
            Scope::Thread,
            Scope::Task,
            Scope::Doc,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Which model made a stored embedding, and its dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EmbeddingInfo {
    pub model: String,
    pub dim: u32,
}

/// A memory as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Memory {
    pub id: String,
    pub scope: Scope,
    pub scope_ref: Option<String>,
    pub key: Option<String>,
    pub value: String,
    pub metadata: Map<String, Value>,
    pub strength: f64,
    pub thread_id: Option<String>,
    pub task_id: Option<String>,
    pub source_message_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub last_accessed_at: Option<Millis>,
    pub embedding: Option<EmbeddingInfo>,
}

/// The columns [`Memory::from_row`] reads (from `memories m` left-joined
/// with `memory_embeddings e`), then `created_at` and `seq` for paging.
pub(crate) const COLUMNS: &str = "m.id, m.scope, m.scope_ref, m.key, m.value, m.metadata, \
     m.strength, m.thread_id, m.task_id, m.source_message_id, m.created_at, m.updated_at, \
     m.last_accessed_at, e.model, e.dim, m.seq";

/// `FROM` clause matching [`COLUMNS`].
pub(crate) const FROM: &str = "memories m LEFT JOIN memory_embeddings e ON e.memory_seq = m.seq";

impl Memory {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Memory> {
        let scope = row.get_ref(1)?.as_str()?;
        let model: Option<String> = row.get(13)?;
        Ok(Memory {
            id: row.get(0)?,
            scope: Scope::parse(scope).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(1, "scope".into(), rusqlite::types::Type::Text)
            })?,
            scope_ref: row.get(2)?,
            key: row.get(3)?,
            value: row.get(4)?,
            metadata: metadata_of(&row.get::<_, String>(5)?),
            strength: row.get(6)?,
            thread_id: row.get(7)?,
            task_id: row.get(8)?,
            source_message_id: row.get(9)?,
            created_at: row.get(10)?,
            updated_at: row.get(11)?,
            last_accessed_at: row.get(12)?,
            embedding: match model {
                Some(model) => Some(EmbeddingInfo {
                    model,
                    dim: row.get(14)?,
                }),
                None => None,
            },
        })
    }
}

/// The memory `id`, if it exists.
pub fn load(conn: &Connection, id: &str) -> Result<Option<Memory>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM {FROM} WHERE m.id = ?1"),
        [id],
        Memory::from_row,
    )
}

/// The memories of a thread (`thread_id` = id, or `scope: thread` with
/// `scope_ref` = id): strongest first, then most recently used (accessed,
/// else updated), then newest.
pub fn of_thread(conn: &Connection, thread_id: &str, limit: usize) -> Result<Vec<Memory>> {
    conn.query_all(
        &format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE m.thread_id = ?1 OR (m.scope = 'thread' AND m.scope_ref = ?1)
             ORDER BY m.strength DESC, coalesce(m.last_accessed_at, m.updated_at) DESC, m.seq DESC
             LIMIT ?2"
        ),
        params![thread_id, limit as i64],
        Memory::from_row,
    )
}

/// The memories chat shows with a thread: the thread's (see [`of_thread`])
/// plus the listed ones, in the same order.
pub fn of_thread_and(
    conn: &Connection,
    thread_id: &str,
    ids: &[Id],
    limit: usize,
) -> Result<Vec<Memory>> {
    let ids = serde_json::to_string(ids).map_err(|e| Error::internal(e.to_string()))?;
    conn.query_all(
        &format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE m.thread_id = ?1 OR (m.scope = 'thread' AND m.scope_ref = ?1)
                OR m.id IN (SELECT value FROM json_each(?3))
             ORDER BY m.strength DESC, coalesce(m.last_accessed_at, m.updated_at) DESC, m.seq DESC
             LIMIT ?2"
        ),
        params![thread_id, limit as i64, ids],
        Memory::from_row,
    )
}

/// Links a memory to a thread (chat's `memory_ids`); `not_found` for an
/// unknown memory. Touches `updated_at` only when the link changes.
pub fn link_to_thread(conn: &Connection, id: &str, thread_id: &str, now: Millis) -> Result<()> {
    if !conn.exists("SELECT 1 FROM memories WHERE id = ?1", [id])? {
        return Err(Error::not_found("memory", "memory_ids"));
    }
    conn.run(
        "UPDATE memories SET thread_id = ?2, updated_at = ?3
         WHERE id = ?1 AND thread_id IS NOT ?2",
        params![id, thread_id, now],
    )?;
    Ok(())
}

pub(crate) use crate::search::vectors::vector_blob;
pub use crate::search::vectors::{EmbeddingInput, MAX_DIM};

/// `memory.upsert`. Without `id` (or with an unknown one) it inserts;
/// with a stored id it updates `value` and `scope` and every optional field
/// given (omitted ones keep their stored value, `null` clears).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    pub value: String,
    pub scope: Scope,
    pub id: Option<Id>,
    #[serde(default)]
    pub scope_ref: Patch<String>,
    #[serde(default)]
    pub key: Patch<String>,
    #[serde(default)]
    pub metadata: Patch<Metadata>,
    #[serde(default)]
    pub strength: Patch<f64>,
    #[serde(default)]
    pub thread_id: Patch<Id>,
    #[serde(default)]
    pub task_id: Patch<Id>,
    #[serde(default)]
    pub source_message_id: Patch<Id>,
    #[serde(default)]
    pub embedding: Patch<EmbeddingInput>,
}

/// `{memory, created}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpsertResponse {
    pub memory: Memory,
    pub created: bool,
}

/// `{memory}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemoryResponse {
    pub memory: Memory,
}

/// `memory.upsert`.
pub fn upsert(profile: &Profile, req: UpsertRequest) -> Result<UpsertResponse> {
    require_text("value", &req.value)?;
    let strength = not_null("strength", req.strength)?;
    if let Some(s) = strength {
        if !(0.0..=1.0).contains(&s) {
            return Err(Error::invalid("strength", "must be 0..1"));
        }
    }
    let embedding = match req.embedding.into_update() {
        None => None,
        Some(None) => Some(None),
        Some(Some(e)) => Some(Some((e.to_f32("embedding")?, e.model))),
    };
    profile.db().write(|tx| {
        let now = now_ms();
        let existing = match &req.id {
            Some(id) => load(tx, id.as_str())?,
            None => None,
        };
        let created = existing.is_none();
        let mut memory = existing.unwrap_or_else(|| Memory {
            id: req.id.clone().unwrap_or_else(Id::generate).into_string(),
            scope: req.scope,
            scope_ref: None,
            key: None,
            value: String::new(),
            metadata: Map::new(),
            strength: 1.0,
            thread_id: None,
            task_id: None,
            source_message_id: None,
            created_at: now,
            updated_at: now,
            last_accessed_at: None,
            embedding: None,
        });
        memory.value = req.value;
        memory.scope = req.scope;
        memory.updated_at = now;
        if let Some(v) = req.scope_ref.into_update() {
            memory.scope_ref = v;
        }
        if let Some(v) = req.key.into_update() {
            memory.key = v;
        }
        if let Some(v) = req.metadata.into_update() {
            memory.metadata = v.map(|m| m.0).unwrap_or_default();
        }
        if let Some(v) = strength {
            memory.strength = v;
        }
        if let Some(v) = req.thread_id.into_update() {
            if let Some(id) = &v {
                require_thread(tx, id.as_str(), "thread_id")?;
            }
            memory.thread_id = v.map(Id::into_string);
        }
        if let Some(v) = req.task_id.into_update() {
            if let Some(id) = &v {
                require_task(tx, id.as_str(), "task_id")?;
            }
            memory.task_id = v.map(Id::into_string);
        }
        if let Some(v) = req.source_message_id.into_update() {
            memory.source_message_id = v.map(Id::into_string);
        }
        let seq = store(tx, &memory, created)?;
        match embedding {
            None => {}
            Some(None) => {
                tx.run("DELETE FROM memory_embeddings WHERE memory_seq = ?1", [seq])?;
                memory.embedding = None;
            }
            Some(Some((vector, model))) => {
                store_embedding(tx, seq, &model, &vector, "embedding.vector")?;
                memory.embedding = Some(EmbeddingInfo {
                    model,
                    dim: vector.len() as u32,
                });
            }
        }
        let action = if created { "created" } else { "updated" };
        tx.run(
            "INSERT INTO memory_audit (memory_seq, action, at) VALUES (?1, ?2, ?3)",
            params![seq, action, now],
        )?;
        Ok(UpsertResponse { memory, created })
    })
}

/// Stores the embedding of memory `seq`, replacing any previous one. One
/// dimension per model, so a search knows what to compare: a vector whose
/// dimension differs from the model's stored ones is `invalid_argument`
/// (naming `field`).
pub(crate) fn store_embedding(
    conn: &Connection,
    seq: i64,
    model: &str,
    vector: &[f32],
    field: &str,
) -> Result<()> {
    if conn.exists(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM memory_embeddings
                                WHERE model = ?1 AND dim < ?2 AND memory_seq <> ?3)
                     OR EXISTS (SELECT 1 FROM memory_embeddings
                                WHERE model = ?1 AND dim > ?2 AND memory_seq <> ?3)",
        params![model, vector.len() as i64, seq],
    )? {
        return Err(Error::invalid(
            field,
            "dimension differs from the stored vectors of this model",
        ));
    }
    conn.run(
        "INSERT INTO memory_embeddings (memory_seq, model, dim, vector)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (memory_seq) DO UPDATE
         SET model = excluded.model, dim = excluded.dim, vector = excluded.vector",
        params![seq, model, vector.len() as i64, vector_blob(vector)],
    )?;
    Ok(())
}

/// Writes the memory's row (insert or full update); returns its `seq`.
pub(crate) fn store(conn: &Connection, m: &Memory, insert: bool) -> Result<i64> {
    let sql = if insert {
        "INSERT INTO memories (id, scope, scope_ref, key, value, metadata, strength, thread_id,
             task_id, source_message_id, created_at, updated_at, last_accessed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         RETURNING seq"
    } else {
        "UPDATE memories SET scope = ?2, scope_ref = ?3, key = ?4, value = ?5, metadata = ?6,
             strength = ?7, thread_id = ?8, task_id = ?9, source_message_id = ?10,
             created_at = ?11, updated_at = ?12, last_accessed_at = ?13
         WHERE id = ?1 RETURNING seq"
    };
    let seq = conn
        .query_opt(
            sql,
            params![
                m.id,
                m.scope.as_str(),
                m.scope_ref,
                m.key,
                m.value,
                Value::Object(m.metadata.clone()).to_string(),
                m.strength,
                m.thread_id,
                m.task_id,
                m.source_message_id,
                m.created_at,
                m.updated_at,
                m.last_accessed_at
            ],
            |r| r.get(0),
        )?
        .ok_or_else(|| Error::internal("memory row vanished inside its transaction"))?;
    Ok(seq)
}

/// `memory.get`.
pub fn get(profile: &Profile, req: IdRequest) -> Result<MemoryResponse> {
    let memory = profile
        .db()
        .read(|c| load(c, req.id.as_str()))?
        .ok_or_else(|| Error::not_found("memory", "id"))?;
    Ok(MemoryResponse { memory })
}

/// The filters shared by `memory.list`, `memory.delete` and `memory.search`
/// (combined with AND; `thread_id` matches that column only).
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters<'a> {
    pub scope: Option<Scope>,
    pub scope_ref: Option<&'a str>,
    pub thread_id: Option<&'a str>,
}

impl Filters<'_> {
    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        self.scope.is_none() && self.scope_ref.is_none() && self.thread_id.is_none()
    }

    /// An SQL condition on `m` binding `?{first}..?{first+2}` (each an
    /// indexable equality, or a no-op on its NULL parameter).
    pub fn condition(&self, first: usize) -> String {
        let part = |set: bool, col: &str, n: usize| {
            if set {
                format!("m.{col} = ?{n}")
            } else {
                format!("?{n} IS NULL")
            }
        };
        format!(
            "{} AND {} AND {}",
            part(self.scope.is_some(), "scope", first),
            part(self.scope_ref.is_some(), "scope_ref", first + 1),
            part(self.thread_id.is_some(), "thread_id", first + 2)
        )
    }

    /// The values for [`Filters::condition`].
    pub fn values(&self) -> (Option<&'static str>, Option<&str>, Option<&str>) {
        (
            self.scope.map(Scope::as_str),
            self.scope_ref,
            self.thread_id,
        )
    }
}

/// `memory.list`: newest `created_at` first (an upsert does not move a
/// memory while the caller pages), by `scope`, `scope_ref`, `thread_id`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    pub scope: Option<Scope>,
    pub scope_ref: Option<String>,
    /// Only memories tied to this thread (the thread must exist: `not_found`).
    pub thread_id: Option<Id>,
    #[serde(default)]
    pub limit: ListLimit,
    pub cursor: Option<String>,
}

/// `memory.list`.
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Memory>> {
    let filters = Filters {
        scope: req.scope,
        scope_ref: req.scope_ref.as_deref(),
        thread_id: req.thread_id.as_ref().map(Id::as_str),
    };
    let (scope, scope_ref, thread_id) = filters.values();
    let key = format!("memory.list|{scope:?}|{scope_ref:?}|{thread_id:?}");
    let ks = Keyset::new(key, Order::Desc, req.limit.get(), req.cursor.as_deref())?;
    let (k, s) = ks.bounds();
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {} AND {} {}",
        filters.condition(3),
        ks.condition("m.created_at", "m.seq", 1),
        ks.order_and_limit("m.created_at", "m.seq")
    );
    let rows = profile.db().read(|c| {
        require_filter_thread(c, thread_id)?;
        c.query_all(&sql, params![k, s, scope, scope_ref, thread_id], |r| {
            Ok((Memory::from_row(r)?, r.get(10)?, r.get(15)?))
        })
    })?;
    Ok(ks.finish(rows))
}

/// `memory.delete`: `{id}`, or any combination of `scope`, `scope_ref`,
/// `thread_id` (AND). No filter is `filter_required`; `id` together with a
/// filter is `invalid_argument` (one or the other).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    pub id: Option<Id>,
    pub scope: Option<Scope>,
    pub scope_ref: Option<String>,
    pub thread_id: Option<Id>,
}

/// `memory.delete`: the memories with their embeddings and audit entries
/// (foreign-key cascades) and full-text entries (trigger), made physical.
pub fn delete(profile: &Profile, req: DeleteRequest) -> Result<Purged<DeletedResponse>> {
    let filters = Filters {
        scope: req.scope,
        scope_ref: req.scope_ref.as_deref(),
        thread_id: req.thread_id.as_ref().map(Id::as_str),
    };
    match (&req.id, filters.is_empty()) {
        (Some(_), false) => {
            return Err(Error::invalid(
                "id",
                "give either id or filters (scope, scope_ref, thread_id), not both",
            ))
        }
        (None, true) => {
            return Err(Error::new(
                ErrorCode::FilterRequired,
                "memory.delete needs id or at least one of scope, scope_ref, thread_id",
            ))
        }
        _ => {}
    }
    crate::privacy::purge(profile, |tx| {
        if let Some(id) = &req.id {
            return match tx.run("DELETE FROM memories WHERE id = ?1", [id.as_str()])? {
                0 => Err(Error::not_found("memory", "id")),
                n => Ok(DeletedResponse { deleted: n as u64 }),
            };
        }
        let (scope, scope_ref, thread_id) = filters.values();
        let sql = format!(
            "DELETE FROM memories WHERE seq IN (SELECT m.seq FROM memories m WHERE {})",
            filters.condition(1)
        );
        let n = tx.run(&sql, params![scope, scope_ref, thread_id])?;
        Ok(DeletedResponse { deleted: n as u64 })
    })
}
