//! Messages: the rows of a conversation, appended one at a time and listed
//! oldest or newest first by keyset, so the latest N of a thread of any
//! size cost one index seek.

use super::{metadata_of, require_text, require_thread, DeletedResponse, IdRequest};
use crate::db::id_key::id_key;
use crate::db::paging::{Keyset, Order};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::{now_ms, Id, ListLimit, Metadata, Millis, Page, Timestamp, TokenCount};
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }

    fn parse(text: &str) -> rusqlite::Result<Role> {
        Ok(match text {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" => Role::System,
            "tool" => Role::Tool,
            _ => {
                return Err(rusqlite::Error::InvalidColumnType(
                    4,
                    "role".into(),
                    rusqlite::types::Type::Text,
                ))
            }
        })
    }
}

/// A message as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Message {
    pub id: String,
    pub thread_id: String,
    pub parent_id: Option<String>,
    pub role: Role,
    pub content: String,
    pub tokens: Option<i64>,
    pub created_at: Millis,
    pub metadata: Map<String, Value>,
}

/// The condition that finds a message by id: its key (the index
/// `llm_messages_by_id_key`, migration 0014) and then the id itself (two ids
/// may share a key). Binds `?1` = [`id_key`] of the id, `?2` = the id.
pub(crate) const BY_ID: &str = "id_key = ?1 AND id = ?2";

/// Whether a message with this id (and its key, [`id_key`]) is stored.
pub(crate) fn exists_by_id(conn: &Connection, id: &str, key: i64) -> Result<bool> {
    conn.exists(
        &format!("SELECT 1 FROM llm_messages WHERE {BY_ID}"),
        params![key, id],
    )
}

/// `bundle.import`'s statements for a message, bound as `?1` id, `?2`
/// thread_id, `?3` parent_id, `?4` role, `?5` content, `?6` tokens, `?7`
/// created_at, `?8` metadata, `?9` [`id_key`] of the id. The import looks
/// the id up first ([`IMPORT_STORED_TIME`], its uniqueness check), then
/// inserts a new message or overwrites every column of the stored one.
/// Two statements, not one `INSERT ... SELECT ... WHERE NOT EXISTS`: an
/// insert that reads its own table goes through a temporary table and a
/// statement journal (measured: the import fell from ~90% to 67% of the
/// raw bare rate).
pub(crate) const IMPORT_INSERT: &str =
    "INSERT INTO llm_messages (id, thread_id, parent_id, role, content, tokens, created_at,
                              metadata, id_key)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
/// See [`IMPORT_INSERT`].
pub(crate) const IMPORT_UPDATE: &str =
    "UPDATE llm_messages SET thread_id = ?2, parent_id = ?3, role = ?4, content = ?5,
         tokens = ?6, created_at = ?7, metadata = ?8
     WHERE id_key = ?9 AND id = ?1";
/// The stored message's `created_at` (the import policy compares it):
/// `?1` id, `?2` its [`id_key`].
pub(crate) const IMPORT_STORED_TIME: &str =
    "SELECT created_at FROM llm_messages WHERE id_key = ?2 AND id = ?1";

pub(crate) const COLUMNS: &str =
    "id, thread_id, parent_id, role, content, tokens, created_at, metadata, seq";

impl Message {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
        Ok(Message {
            id: row.get(0)?,
            thread_id: row.get(1)?,
            parent_id: row.get(2)?,
            role: Role::parse(row.get_ref(3)?.as_str()?)?,
            content: row.get(4)?,
            tokens: row.get(5)?,
            created_at: row.get(6)?,
            metadata: metadata_of(&row.get::<_, String>(7)?),
        })
    }
}

/// A message to write. The thread must exist (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Option<Id>,
    pub thread_id: String,
    pub parent_id: Option<Id>,
    pub role: Role,
    pub content: String,
    pub tokens: Option<TokenCount>,
    pub created_at: Option<Timestamp>,
    pub metadata: Metadata,
}

/// Writes a message inside the caller's transaction and updates its
/// thread's `updated_at` (to `now`) and `last_user_message_at` /
/// `last_assistant_message_at` (to the latest message time of that role).
/// An existing id is `conflict`.
pub fn insert(conn: &Connection, new: NewMessage, now: Millis) -> Result<Message> {
    let mut messages = insert_all(conn, vec![new], now)?;
    messages
        .pop()
        .ok_or_else(|| Error::internal("message insert returned nothing"))
}

/// Writes several messages with ONE insert statement, then updates their
/// threads as [`insert`] does. One statement matters: FTS5 flushes its
/// pending index data into a new segment whenever a later statement opens a
/// savepoint, so a chat turn's two messages cost one segment, not two.
/// The thread row is rewritten only when one of its values changes
/// (appends within one millisecond share them).
pub fn insert_all(conn: &Connection, news: Vec<NewMessage>, now: Millis) -> Result<Vec<Message>> {
    let messages: Vec<Message> = news
        .into_iter()
        .map(|new| Message {
            id: new.id.unwrap_or_else(Id::generate).into_string(),
            thread_id: new.thread_id,
            parent_id: new.parent_id.map(Id::into_string),
            role: new.role,
            content: new.content,
            tokens: new.tokens.map(|t| t.0),
            created_at: new.created_at.map_or(now, |t| t.0),
            metadata: new.metadata.0,
        })
        .collect();
    // Ids are unique, checked here (one seek on the key index each):
    // the table has no UNIQUE index on the text id (migration 0014).
    let keys: Vec<i64> = messages.iter().map(|m| id_key(&m.id)).collect();
    for (i, (m, key)) in messages.iter().zip(&keys).enumerate() {
        let twice = messages[..i].iter().any(|earlier| earlier.id == m.id);
        if twice || exists_by_id(conn, &m.id, *key)? {
            return Err(Error::conflict("a message with this id exists").with_detail("field", "id"));
        }
    }
    let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; messages.len()].join(", ");
    let sql = format!(
        "INSERT INTO llm_messages (id, id_key, thread_id, parent_id, role, content, tokens, created_at, metadata)
         VALUES {rows}"
    );
    let metadata: Vec<String> = messages
        .iter()
        .map(|m| {
            if m.metadata.is_empty() {
                "{}".to_owned()
            } else {
                Value::Object(m.metadata.clone()).to_string()
            }
        })
        .collect();
    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(messages.len() * 9);
    for ((m, metadata), key) in messages.iter().zip(&metadata).zip(&keys) {
        values.extend([
            &m.id as &dyn rusqlite::ToSql,
            key,
            &m.thread_id,
            &m.parent_id,
            &m.role,
            &m.content,
            &m.tokens,
            &m.created_at,
            metadata,
        ]);
    }
    let inserted = conn.run(&sql, values.as_slice())?;
    if inserted != messages.len() {
        return Err(Error::internal(
            "a message insert wrote fewer rows than asked",
        ));
    }
    for m in &messages {
        conn.run(
            "UPDATE llm_threads SET updated_at = ?2,
                 last_user_message_at = CASE WHEN ?3 = 'user'
                     THEN max(coalesce(last_user_message_at, ?4), ?4) ELSE last_user_message_at END,
                 last_assistant_message_at = CASE WHEN ?3 = 'assistant'
                     THEN max(coalesce(last_assistant_message_at, ?4), ?4) ELSE last_assistant_message_at END
             WHERE id = ?1 AND (updated_at IS NOT ?2
                 OR (?3 = 'user' AND coalesce(last_user_message_at, ?4 - 1) < ?4)
                 OR (?3 = 'assistant' AND coalesce(last_assistant_message_at, ?4 - 1) < ?4))",
            params![m.thread_id, now, m.role.as_str(), m.created_at],
        )?;
    }
    Ok(messages)
}

impl rusqlite::ToSql for Role {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

/// The latest `n` messages of a thread, oldest first.
pub fn latest(conn: &Connection, thread_id: &str, n: usize) -> Result<Vec<Message>> {
    let mut messages = conn.query_all(
        &format!(
            "SELECT {COLUMNS} FROM llm_messages WHERE thread_id = ?1
             ORDER BY created_at DESC, seq DESC LIMIT ?2"
        ),
        params![thread_id, n as i64],
        Message::from_row,
    )?;
    messages.reverse();
    Ok(messages)
}

/// `messages.append`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    pub thread_id: Id,
    pub role: Role,
    pub content: String,
    pub id: Option<Id>,
    pub parent_id: Option<Id>,
    pub tokens: Option<TokenCount>,
    #[serde(default)]
    pub metadata: Metadata,
    pub created_at: Option<Timestamp>,
}

/// `{message}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageResponse {
    pub message: Message,
}

/// `messages.append`: unknown thread is `not_found`, empty content
/// `invalid_argument`. `parent_id` is recorded as given (it is a reference,
/// not a requirement: the parent may be deleted later).
pub fn append(profile: &Profile, req: AppendRequest) -> Result<MessageResponse> {
    require_text("content", &req.content)?;
    let new = NewMessage {
        id: req.id,
        thread_id: req.thread_id.into_string(),
        parent_id: req.parent_id,
        role: req.role,
        content: req.content,
        tokens: req.tokens,
        created_at: req.created_at,
        metadata: req.metadata,
    };
    let message = profile.db().write(|tx| {
        require_thread(tx, &new.thread_id, "thread_id")?;
        insert(tx, new, now_ms())
    })?;
    Ok(MessageResponse { message })
}

/// `messages.list`: `asc` (default) oldest first, `desc` newest first;
/// ties in `created_at` break by insertion order.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    pub thread_id: Id,
    #[serde(default)]
    pub limit: ListLimit,
    pub cursor: Option<String>,
    #[serde(default)]
    pub order: Order,
}

/// `messages.list`.
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Message>> {
    let scope = format!("messages.list|{}|{:?}", req.thread_id, req.order);
    let ks = Keyset::new(scope, req.order, req.limit.get(), req.cursor.as_deref())?;
    let (key, seq) = ks.bounds();
    let sql = format!(
        "SELECT {COLUMNS} FROM llm_messages WHERE thread_id = ?3 AND {} {}",
        ks.condition("created_at", "seq", 1),
        ks.order_and_limit("created_at", "seq")
    );
    let rows = profile.db().read(|c| {
        require_thread(c, req.thread_id.as_str(), "thread_id")?;
        c.query_all(&sql, params![key, seq, req.thread_id.as_str()], |r| {
            Ok((Message::from_row(r)?, r.get(6)?, r.get(8)?))
        })
    })?;
    Ok(ks.finish(rows))
}

/// `messages.delete`: removes the message (and its full-text entry) and
/// makes the removal physical.
pub fn delete(profile: &Profile, req: IdRequest) -> Result<Purged<DeletedResponse>> {
    crate::privacy::purge(profile, |tx| {
        let id = req.id.as_str();
        match tx.run(
            &format!("DELETE FROM llm_messages WHERE {BY_ID}"),
            params![id_key(id), id],
        )? {
            0 => Err(Error::not_found("message", "id")),
            n => Ok(DeletedResponse { deleted: n as u64 }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // Parameters left unbound are NULL: the plan does not depend on them.
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps
    }

    #[test]
    fn every_lookup_by_id_seeks_the_key_index() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        // Without statistics and with them: the plan must not depend on
        // what ANALYZE learned.
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch("ANALYZE").unwrap();
            }
            for sql in [
                format!("SELECT 1 FROM llm_messages WHERE {BY_ID}"),
                format!("DELETE FROM llm_messages WHERE {BY_ID}"),
                IMPORT_UPDATE.to_owned(),
                IMPORT_STORED_TIME.to_owned(),
            ] {
                let steps = plan(&conn, &sql);
                assert!(
                    steps
                        .iter()
                        .any(|s| s.contains("USING INDEX llm_messages_by_id_key (id_key=?)")),
                    "{sql}: {steps:?}"
                );
                assert!(
                    !steps.iter().any(|s| s.starts_with("SCAN llm_messages")),
                    "{sql} scans the table: {steps:?}"
                );
            }
            // What the checks above would see without the key: a scan.
            let steps = plan(&conn, "SELECT 1 FROM llm_messages WHERE id = ?1");
            assert!(
                steps.iter().any(|s| s.starts_with("SCAN llm_messages")),
                "{steps:?}"
            );
        }
    }
}
