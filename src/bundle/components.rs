//! What each bundle component's records are, and how they are exported and
//! imported.
//!
//! Records are the contract's objects (the domains' own row mappers write
//! them), in list order, oldest first; three carry one extra field so they
//! survive the trip to another profile:
//! - a memory's `embedding` is `{model, vector}` instead of `{model, dim}`;
//! - a bookmark carries `folder_path`, the folder names from the top;
//! - a tab carries `current_visit`, `{url, visited_at}` of its current visit,
//!   re-resolved to a local history row on import;
//! - a document is its own record shape ([`DocumentRecord`]): its text and
//!   chunks with their embeddings (`{model, vector}`); host, digest and
//!   counts are derived again on import.
//!
//! Import stores records as exported and triggers none of the side effects
//! of the ordinary operations (no task events, no thread or tab touches, no
//! audit entries). String ids are kept; history, bookmark and folder ids are
//! local numbers, so imported ones get new ids. Dedupe: string-id records by
//! id, visits by `(url, visited_at)`, bookmarks by `(url, folder path)`,
//! documents by `url`.

use super::format::{BundleWriter, Component};
use super::{Outcome, Policy};
use crate::browser::bookmarks::{self, Bookmark};
use crate::browser::history::{self, Visit};
use crate::browser::tabs::{self, Tab};
use crate::browser::visits::NewVisit;
use crate::db::id_key::id_key;
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::hydraflow::memory::{self, EmbeddingInput, Memory};
use crate::hydraflow::messages::{self, Message};
use crate::hydraflow::tasks::{self, Task, TaskEvent};
use crate::hydraflow::threads::{self, Thread};
use crate::knowledge::{self, Source};
use crate::types::{now_ms, Millis};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension, Statement, ToSql};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::Digest;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;

/// A tab's current visit, by the natural key of history rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct VisitKey {
    url: String,
    visited_at: Millis,
}

/// What an import learns before it writes ([`ImportState::learn`]), and
/// as it writes.
#[derive(Debug, Default)]
pub(super) struct ImportState {
    /// The ids of the tabs the import brings (tabs are a component being
    /// imported), so a visit's `tab_id` survives although tabs are
    /// imported after history.
    bundle_tabs: HashSet<String>,
    /// Thread ids known to be stored (one lookup per thread instead of one
    /// per message).
    known_threads: HashSet<String>,
}

/// The `id` of a record (the rest is read when the record is imported).
#[derive(Deserialize)]
struct RecordId {
    id: String,
}

impl ImportState {
    /// Whether [`ImportState::learn`] wants the records of `component`
    /// (the verify pass reads no other record).
    pub(super) fn learns_from(component: Component) -> bool {
        matches!(component, Component::Tabs | Component::Documents)
    }

    /// Called in the verify pass, before anything is written, with every
    /// record of a component being imported that it
    /// [learns from](ImportState::learns_from): learns the ids of the
    /// bundle's tabs, and checks a document record against every rule a
    /// stored document keeps ([`check_document_record`]; documents are
    /// parsed twice, here and when imported: they are few beside the
    /// records of the other components, whose checks run as they are
    /// imported, in the same one transaction).
    pub(super) fn learn(&mut self, component: Component, record: &RawValue) -> Result<()> {
        match component {
            Component::Tabs => {
                // A tab record that does not fit fails when it is imported.
                if let Ok(tab) = serde_json::from_str::<RecordId>(record.get()) {
                    self.bundle_tabs.insert(tab.id);
                }
                Ok(())
            }
            Component::Documents => {
                check_document_record(&parse_raw::<DocumentRecord>(component, record)?)
            }
            _ => Ok(()),
        }
    }
}

/// How many records [`export`] writes for `component` from `conn` (one
/// per row of its table), for the export's progress.
pub(super) fn count(conn: &Connection, component: Component) -> Result<u64> {
    let from = match component {
        Component::Threads => "llm_threads",
        Component::Messages => "llm_messages",
        Component::Tasks => "tasks",
        Component::TaskEvents => "task_events",
        Component::Memories => memory::FROM,
        Component::BrowserHistory => "visits",
        Component::Bookmarks => "bookmarks",
        Component::Tabs => "tabs",
        Component::Documents => "documents",
    };
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {from}"), [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Writes every record of `component` from the snapshot `conn`.
pub(super) fn export(
    conn: &Connection,
    component: Component,
    w: &mut BundleWriter<'_>,
) -> Result<()> {
    match component {
        Component::Threads => rows(conn, w, THREAD_ROWS, Thread::from_row),
        Component::Messages => rows(conn, w, MESSAGE_ROWS, Message::from_row),
        Component::Tasks => rows(conn, w, TASK_ROWS, Task::from_row),
        Component::TaskEvents => rows(conn, w, TASK_EVENT_ROWS, TaskEvent::from_row),
        Component::Memories => conn.for_each_row(
            &format!(
                "SELECT {}, e.vector FROM {} ORDER BY m.created_at, m.seq",
                memory::COLUMNS,
                memory::FROM
            ),
            [],
            |row| Ok((Memory::from_row(row)?, row.get::<_, Option<Vec<u8>>>(16)?)),
            |(memory, vector)| w.record(&memory_record(memory, vector)?),
        ),
        Component::BrowserHistory => rows(conn, w, VISIT_ROWS, Visit::from_row),
        Component::Bookmarks => conn.for_each_row(
            &format!(
                "SELECT {} FROM bookmarks ORDER BY created_at, id",
                bookmarks::BOOKMARK_COLUMNS
            ),
            [],
            Bookmark::from_row,
            |b| {
                let path = bookmarks::folder_path(conn, b.folder_id)?;
                w.record(&with_field(
                    &b,
                    "folder_path",
                    serde_json::to_value(path).unwrap_or_default(),
                )?)
            },
        ),
        Component::Tabs => conn.for_each_row(
            &format!(
                "SELECT {} FROM tabs ORDER BY updated_at, seq",
                tabs::TAB_COLUMNS
            ),
            [],
            Tab::from_row,
            |t| {
                let current = match t.current_history_id {
                    Some(id) => conn.query_opt(
                        "SELECT url, visited_at FROM history WHERE id = ?1",
                        [id],
                        |r| {
                            Ok(VisitKey {
                                url: r.get(0)?,
                                visited_at: r.get(1)?,
                            })
                        },
                    )?,
                    None => None,
                };
                w.record(&with_field(
                    &t,
                    "current_visit",
                    serde_json::to_value(current).unwrap_or_default(),
                )?)
            },
        ),
        Component::Documents => export_documents(conn, w),
    }
}

/// The columns and the `FROM ... ORDER BY ...` of the records of a component
/// exported row by row.
type Select = (&'static str, &'static str);
const THREAD_ROWS: Select = (threads::COLUMNS, "llm_threads ORDER BY updated_at, seq");
const MESSAGE_ROWS: Select = (messages::COLUMNS, "llm_messages ORDER BY created_at, seq");
const TASK_ROWS: Select = (tasks::COLUMNS, "tasks ORDER BY updated_at, seq");
const TASK_EVENT_ROWS: Select = (tasks::EVENT_COLUMNS, "task_events ORDER BY created_at, seq");
const VISIT_ROWS: Select = (history::VISIT_COLUMNS, "history ORDER BY visited_at, id");

/// Writes every row `select` finds, each read by `from_row`, as one record.
fn rows<T: Serialize>(
    conn: &Connection,
    w: &mut BundleWriter<'_>,
    (columns, from): Select,
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<()> {
    let sql = format!("SELECT {columns} FROM {from}");
    conn.for_each_row(&sql, [], from_row, |r| w.record(&r))
}

/// A record object with one more field.
fn with_field<T: Serialize>(record: &T, key: &str, value: Value) -> Result<Value> {
    let mut object = serde_json::to_value(record)
        .map_err(|e| Error::internal(format!("record encoding: {e}")))?;
    if let Value::Object(map) = &mut object {
        map.insert(key.to_owned(), value);
    }
    Ok(object)
}

fn memory_record(memory: Memory, vector: Option<Vec<u8>>) -> Result<Value> {
    let embedding = match (&memory.embedding, vector) {
        (Some(info), Some(blob)) => {
            let vector: Vec<f32> = blob
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            serde_json::json!({ "model": info.model, "vector": vector })
        }
        _ => Value::Null,
    };
    with_field(&memory, "embedding", embedding)
}

/// Takes one extra field out of a record before it is read as its object.
fn take_field(record: &mut Value, key: &str) -> Value {
    record
        .as_object_mut()
        .and_then(|m| m.remove(key))
        .unwrap_or(Value::Null)
}

fn not_fitting(component: Component) -> Error {
    Error::invalid("record", "a record does not fit its component").with_detail(
        "component",
        serde_json::to_value(component).unwrap_or_default(),
    )
}

fn parse<T: DeserializeOwned>(component: Component, record: Value) -> Result<T> {
    serde_json::from_value(record).map_err(|_| not_fitting(component))
}

/// A record read straight from its JSON text into its type.
fn parse_raw<T: DeserializeOwned>(component: Component, record: &RawValue) -> Result<T> {
    serde_json::from_str(record.get()).map_err(|_| not_fitting(component))
}

/// Whether to write a record whose key is stored with time `stored`.
fn decide(stored: Option<Millis>, incoming: Millis, policy: Policy) -> Outcome {
    match (stored, policy) {
        (None, _) => Outcome::Inserted,
        (Some(_), Policy::SkipExisting) => Outcome::Skipped,
        (Some(t), Policy::NewerWins) if incoming > t => Outcome::Updated,
        (Some(_), Policy::NewerWins) => Outcome::Skipped,
    }
}

/// The stored time of the row `id` of `table` (`time` is the column).
fn exists(conn: &Connection, table: &str, id: &str) -> Result<bool> {
    conn.exists(&format!("SELECT 1 FROM {table} WHERE id = ?1"), [id])
}

/// The two statements that write a record kept by id: the plain insert
/// (`ON CONFLICT (id) DO NOTHING`) and the same insert as an upsert that
/// overwrites every column (`DO UPDATE SET ...`).
/// With them, the query of the stored row's time (`time` of `table`) that
/// the import policy compares.
macro_rules! by_id {
    ($table:literal, $time:literal, $insert:literal, $set:literal) => {
        ById {
            insert: concat!($insert, " ON CONFLICT (id) DO NOTHING"),
            upsert: concat!($insert, " ON CONFLICT (id) DO UPDATE SET ", $set),
            stored_time: concat!("SELECT ", $time, " FROM ", $table, " WHERE id = ?1"),
        }
    };
}

struct ById {
    insert: &'static str,
    upsert: &'static str,
    stored_time: &'static str,
}

/// The writer's connection while an import runs, holding the insert
/// statement of each component prepared for the whole import. (The
/// connection's statement cache would look each one up by its SQL text
/// for every record: hashing a few hundred bytes and moving the entry in
/// and out of its LRU list, a few percent of the writer's time.)
pub(super) struct ImportConn<'c> {
    conn: &'c Connection,
    /// The statements prepared so far, by their SQL (a few, one per
    /// component written).
    held: RefCell<Vec<(&'static str, Statement<'c>)>>,
}

impl<'c> ImportConn<'c> {
    pub(super) fn new(conn: &'c Connection) -> ImportConn<'c> {
        ImportConn {
            conn,
            held: RefCell::new(Vec::new()),
        }
    }

    /// Runs `sql` with `params` through its held statement (prepared on
    /// first use); the number of rows changed.
    fn run_held(&self, sql: &'static str, params: &[&dyn ToSql]) -> Result<usize> {
        let mut held = self.held.borrow_mut();
        let at = match held
            .iter()
            .position(|(text, _)| text.as_ptr() == sql.as_ptr() || *text == sql)
        {
            Some(at) => at,
            None => {
                held.push((sql, self.conn.prepare(sql)?));
                held.len() - 1
            }
        };
        Ok(held[at].1.execute(params)?)
    }
}

impl std::ops::Deref for ImportConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// Writes a record kept by id. The insert is tried first: a new id (every
/// record of an import into an empty profile) costs that one statement.
/// Only an id already stored is looked up and decided by `policy`.
fn write_by_id(
    conn: &ImportConn<'_>,
    sql: &ById,
    (id, time): (&str, Millis),
    policy: Policy,
    params: &[&dyn ToSql],
) -> Result<Outcome> {
    if conn.run_held(sql.insert, params)? == 1 {
        return Ok(Outcome::Inserted);
    }
    let stored = conn.query_opt(sql.stored_time, [id], |r| r.get(0))?;
    let outcome = decide(stored, time, policy);
    if outcome == Outcome::Updated {
        conn.run(sql.upsert, params)?;
    }
    Ok(outcome)
}

/// The metadata object as stored (`{}` without re-encoding when empty).
fn metadata_text(metadata: &serde_json::Map<String, Value>) -> Cow<'static, str> {
    if metadata.is_empty() {
        Cow::Borrowed("{}")
    } else {
        Cow::Owned(Value::Object(metadata.clone()).to_string())
    }
}

impl ImportState {
    /// Whether thread `id` is stored. A thread once seen stays (an import
    /// never deletes), so positive answers are remembered.
    fn thread_exists(&mut self, conn: &Connection, id: &str) -> Result<bool> {
        if self.known_threads.contains(id) {
            return Ok(true);
        }
        let found = exists(conn, "llm_threads", id)?;
        if found {
            self.known_threads.insert(id.to_owned());
        }
        Ok(found)
    }

    /// `id` if that thread is stored, else `None`.
    fn kept_thread(&mut self, conn: &Connection, id: Option<String>) -> Result<Option<String>> {
        match id {
            Some(id) if self.thread_exists(conn, &id)? => Ok(Some(id)),
            _ => Ok(None),
        }
    }
}

/// `id` if the row exists in `table` (or, for tabs, arrives in the bundle).
fn kept_link(
    conn: &Connection,
    table: &str,
    id: Option<String>,
    also: Option<&HashSet<String>>,
) -> Result<Option<String>> {
    match id {
        Some(id) if also.is_some_and(|s| s.contains(&id)) || exists(conn, table, &id)? => {
            Ok(Some(id))
        }
        _ => Ok(None),
    }
}

fn json_text(value: &Value) -> Option<String> {
    (!value.is_null()).then(|| value.to_string())
}

const THREADS: ById = by_id!(
    "llm_threads",
    "updated_at",
    "INSERT INTO llm_threads (id, title, description, origin, metadata, created_at, updated_at,
                              last_user_message_at, last_assistant_message_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    "title = excluded.title, description = excluded.description,
     origin = excluded.origin, metadata = excluded.metadata, created_at = excluded.created_at,
     updated_at = excluded.updated_at, last_user_message_at = excluded.last_user_message_at,
     last_assistant_message_at = excluded.last_assistant_message_at"
);

/// Messages are found by `id_key` and id (no UNIQUE index on the id since
/// migration 0014, so no `ON CONFLICT (id)`): see `messages::IMPORT_*`.
const MESSAGES: ById = ById {
    insert: messages::IMPORT_INSERT,
    upsert: messages::IMPORT_UPDATE,
    stored_time: messages::IMPORT_STORED_TIME,
};

const TASKS: ById = by_id!(
    "tasks",
    "updated_at",
    "INSERT INTO tasks (id, thread_id, title, description, status, priority, due_at, owner,
                        created_at, updated_at, closed_at, metadata, result)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    "thread_id = excluded.thread_id, title = excluded.title,
     description = excluded.description, status = excluded.status, priority = excluded.priority,
     due_at = excluded.due_at, owner = excluded.owner, created_at = excluded.created_at,
     updated_at = excluded.updated_at, closed_at = excluded.closed_at,
     metadata = excluded.metadata, result = excluded.result"
);

const TASK_EVENTS: ById = by_id!(
    "task_events",
    "created_at",
    "INSERT INTO task_events (id, task_id, event_type, payload, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5)",
    "task_id = excluded.task_id, event_type = excluded.event_type,
     payload = excluded.payload, created_at = excluded.created_at"
);

const TABS: ById = ById {
    insert: crate::browser::tabs::BUNDLE_INSERT,
    upsert: crate::browser::tabs::BUNDLE_UPSERT,
    stored_time: "SELECT updated_at FROM tabs WHERE id = ?1",
};

/// A record read into its type, ready for [`import`]. Parsing needs no
/// database, so a bulk import does it on another thread while the writer
/// inserts (see `format::for_each_parsed`).
pub(super) enum Parsed {
    Thread(Thread),
    Message(Message),
    Task(Task),
    TaskEvent(TaskEvent),
    Visit(Visit),
    Document(Box<DocumentRecord>),
    /// A memory, bookmark or tab: an object with an extra field that
    /// [`import`] takes out first.
    Object(Value),
}

/// Reads one record of `component` into its type (`invalid_argument` when
/// it does not fit).
pub(super) fn parse_record(component: Component, raw: &RawValue) -> Result<Parsed> {
    Ok(match component {
        Component::Threads => Parsed::Thread(parse_raw(component, raw)?),
        Component::Messages => Parsed::Message(parse_raw(component, raw)?),
        Component::Tasks => Parsed::Task(parse_raw(component, raw)?),
        Component::TaskEvents => Parsed::TaskEvent(parse_raw(component, raw)?),
        Component::BrowserHistory => Parsed::Visit(parse_raw(component, raw)?),
        Component::Documents => Parsed::Document(Box::new(parse_raw(component, raw)?)),
        Component::Memories | Component::Bookmarks | Component::Tabs => {
            Parsed::Object(raw_value(raw)?)
        }
    })
}

/// Imports one record (read by [`parse_record`]) inside the caller's transaction.
pub(super) fn import(
    conn: &ImportConn<'_>,
    state: &mut ImportState,
    component: Component,
    parsed: Parsed,
    policy: Policy,
) -> Result<Outcome> {
    match (component, parsed) {
        (Component::Threads, Parsed::Thread(t)) => {
            check_record(
                &[("record.id", Some(&t.id))],
                &[
                    ("record.created_at", Some(t.created_at)),
                    ("record.updated_at", Some(t.updated_at)),
                    ("record.last_user_message_at", t.last_user_message_at),
                    (
                        "record.last_assistant_message_at",
                        t.last_assistant_message_at,
                    ),
                ],
            )?;
            let outcome = write_by_id(
                conn,
                &THREADS,
                (&t.id, t.updated_at),
                policy,
                params![
                    t.id,
                    t.title,
                    t.description,
                    t.origin,
                    metadata_text(&t.metadata),
                    t.created_at,
                    t.updated_at,
                    t.last_user_message_at,
                    t.last_assistant_message_at
                ],
            )?;
            state.known_threads.insert(t.id);
            Ok(outcome)
        }
        (Component::Messages, Parsed::Message(m)) => {
            check_record(
                &[
                    ("record.id", Some(&m.id)),
                    ("record.thread_id", Some(&m.thread_id)),
                    ("record.parent_id", m.parent_id.as_ref()),
                ],
                &[("record.created_at", Some(m.created_at))],
            )?;
            // A message cannot exist without its thread: one whose thread is
            // in neither the bundle nor the profile is skipped.
            if !state.thread_exists(conn, &m.thread_id)? {
                return Ok(Outcome::Skipped);
            }
            let key = id_key(&m.id);
            let params = params![
                m.id,
                m.thread_id,
                m.parent_id,
                m.role.as_str(),
                m.content,
                m.tokens,
                m.created_at,
                metadata_text(&m.metadata),
                key
            ];
            let stored = conn.query_opt(MESSAGES.stored_time, params![m.id, key], |r| r.get(0))?;
            let outcome = decide(stored, m.created_at, policy);
            match outcome {
                Outcome::Inserted => conn.run_held(MESSAGES.insert, params)?,
                Outcome::Updated => conn.run(MESSAGES.upsert, params)?,
                Outcome::Skipped => 0,
            };
            Ok(outcome)
        }
        (Component::Tasks, Parsed::Task(t)) => {
            check_record(
                &[
                    ("record.id", Some(&t.id)),
                    ("record.thread_id", t.thread_id.as_ref()),
                ],
                &[
                    ("record.created_at", Some(t.created_at)),
                    ("record.updated_at", Some(t.updated_at)),
                    ("record.due_at", t.due_at),
                    ("record.closed_at", t.closed_at),
                ],
            )?;
            let thread_id = state.kept_thread(conn, t.thread_id)?;
            write_by_id(
                conn,
                &TASKS,
                (&t.id, t.updated_at),
                policy,
                params![
                    t.id,
                    thread_id,
                    t.title,
                    t.description,
                    t.status.as_str(),
                    t.priority,
                    t.due_at,
                    t.owner,
                    t.created_at,
                    t.updated_at,
                    t.closed_at,
                    metadata_text(&t.metadata),
                    json_text(&t.result)
                ],
            )
        }
        (Component::TaskEvents, Parsed::TaskEvent(e)) => {
            check_record(
                &[
                    ("record.id", Some(&e.id)),
                    ("record.task_id", Some(&e.task_id)),
                ],
                &[("record.created_at", Some(e.created_at))],
            )?;
            // Events belong to their task: one whose task is nowhere is skipped.
            if !exists(conn, "tasks", &e.task_id)? {
                return Ok(Outcome::Skipped);
            }
            write_by_id(
                conn,
                &TASK_EVENTS,
                (&e.id, e.created_at),
                policy,
                params![
                    e.id,
                    e.task_id,
                    e.event_type,
                    json_text(&e.payload),
                    e.created_at
                ],
            )
        }
        (Component::Memories, Parsed::Object(record)) => import_memory(conn, state, record, policy),
        (Component::BrowserHistory, Parsed::Visit(v)) => {
            check_record(
                &[("record.tab_id", v.tab_id.as_ref())],
                &[
                    ("record.visited_at", Some(v.visited_at)),
                    ("record.duration_ms", v.duration_ms),
                ],
            )?;
            let status_code = v
                .status_code
                .map(u16::try_from)
                .transpose()
                .map_err(|_| Error::invalid("record.status_code", "must be 0..65535"))?;
            let mut visit = NewVisit::from_input(
                crate::browser::visits::VisitInput {
                    url: v.url,
                    title: v.title,
                    tab_id: None,
                    visited_at: Some(crate::types::Timestamp(v.visited_at)),
                    referrer: v.referrer,
                    status_code,
                    content_type: v.content_type,
                    transition: v.transition,
                    duration_ms: v.duration_ms.map(crate::types::Timestamp),
                },
                v.visited_at,
            )?;
            visit.tab_id = kept_link(conn, "tabs", v.tab_id, Some(&state.bundle_tabs))?;
            Ok(match crate::browser::visits::insert_row(conn, &visit)? {
                Some(_) => Outcome::Inserted,
                None => Outcome::Skipped,
            })
        }
        (Component::Bookmarks, Parsed::Object(mut record)) => {
            let path: Vec<String> = parse(component, take_field(&mut record, "folder_path"))?;
            let b: Bookmark = parse(component, record)?;
            check_record(
                &[],
                &[
                    ("record.created_at", Some(b.created_at)),
                    ("record.updated_at", Some(b.updated_at)),
                ],
            )?;
            import_bookmark(conn, b, &path, policy)
        }
        (Component::Tabs, Parsed::Object(mut record)) => {
            let current: Option<VisitKey> =
                parse(component, take_field(&mut record, "current_visit"))?;
            let t: Tab = parse(component, record)?;
            check_record(
                &[
                    ("record.id", Some(&t.id)),
                    ("record.thread_id", t.thread_id.as_ref()),
                ],
                &[
                    ("record.last_visited_at", t.last_visited_at),
                    ("record.created_at", Some(t.created_at)),
                    ("record.updated_at", Some(t.updated_at)),
                ],
            )?;
            let thread_id = state.kept_thread(conn, t.thread_id)?;
            let current_id: Option<i64> = match &current {
                Some(key) => conn.query_opt(
                    "SELECT id FROM history WHERE url = ?1 AND visited_at = ?2",
                    params![key.url, key.visited_at],
                    |r| r.get(0),
                )?,
                None => None,
            };
            // Without its visit a tab keeps no cached url, title or time.
            let (url, title, at) = match current_id {
                Some(_) => (t.current_url, t.current_title, t.last_visited_at),
                None => (None, None, None),
            };
            write_by_id(
                conn,
                &TABS,
                (&t.id, t.updated_at),
                policy,
                params![
                    t.id,
                    thread_id,
                    current_id,
                    url,
                    title,
                    at,
                    t.created_at,
                    t.updated_at
                ],
            )
        }
        (Component::Documents, Parsed::Document(d)) => import_document(conn, *d, policy),
        _ => Err(Error::internal("a record was read as another component's")),
    }
}

/// A record as a JSON value, for the components whose records carry an
/// extra field to take out first.
fn raw_value(raw: &RawValue) -> Result<Value> {
    serde_json::from_str(raw.get()).map_err(|_| Error::internal("a verified line did not parse"))
}

fn import_memory(
    conn: &Connection,
    state: &mut ImportState,
    mut record: Value,
    policy: Policy,
) -> Result<Outcome> {
    let embedding: Option<EmbeddingInput> =
        parse(Component::Memories, take_field(&mut record, "embedding"))?;
    let m: Memory = parse(Component::Memories, record)?;
    check_record(
        &[
            ("record.id", Some(&m.id)),
            ("record.thread_id", m.thread_id.as_ref()),
            ("record.task_id", m.task_id.as_ref()),
            ("record.source_message_id", m.source_message_id.as_ref()),
        ],
        &[
            ("record.created_at", Some(m.created_at)),
            ("record.updated_at", Some(m.updated_at)),
            ("record.last_accessed_at", m.last_accessed_at),
        ],
    )?;
    let vector = embedding
        .as_ref()
        .map(|e| e.to_f32("record.embedding"))
        .transpose()?;
    if !(0.0..=1.0).contains(&m.strength) {
        return Err(Error::invalid("record.strength", "must be 0..1"));
    }
    let outcome = decide(
        conn.query_opt(
            "SELECT updated_at FROM memories WHERE id = ?1",
            [&m.id],
            |r| r.get(0),
        )?,
        m.updated_at,
        policy,
    );
    if outcome == Outcome::Skipped {
        return Ok(outcome);
    }
    let mut m = m;
    m.thread_id = state.kept_thread(conn, m.thread_id.take())?;
    m.task_id = kept_link(conn, "tasks", m.task_id.take(), None)?;
    let seq = memory::store(conn, &m, outcome == Outcome::Inserted)?;
    match (embedding, vector) {
        (Some(e), Some(v)) => {
            memory::store_embedding(conn, seq, &e.model, &v, "record.embedding.vector")?
        }
        _ => {
            conn.run("DELETE FROM memory_embeddings WHERE memory_seq = ?1", [seq])?;
        }
    }
    Ok(outcome)
}

/// The folder at `path` (names from the top), created when `create`.
fn folder_at(conn: &Connection, path: &[String], create: bool) -> Result<Option<Option<i64>>> {
    let mut parent: Option<i64> = None;
    for name in path {
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM bookmark_folders WHERE name = ?1 AND parent_id IS ?2 ORDER BY id LIMIT 1")?
            .query_row(params![name, parent], |r| r.get(0))
            .optional()?;
        parent = match (found, create) {
            (Some(id), _) => Some(id),
            (None, false) => return Ok(None),
            (None, true) => Some(conn.query_row(
                "INSERT INTO bookmark_folders (name, parent_id, created_at) VALUES (?1, ?2, ?3) RETURNING id",
                params![name, parent, now_ms()],
                |r| r.get(0),
            )?),
        };
    }
    Ok(Some(parent))
}

fn import_bookmark(
    conn: &Connection,
    b: Bookmark,
    path: &[String],
    policy: Policy,
) -> Result<Outcome> {
    let stored: Option<(i64, Millis)> = match folder_at(conn, path, false)? {
        Some(folder) => conn.query_opt(
            "SELECT id, updated_at FROM bookmarks WHERE url = ?1 AND folder_id IS ?2 ORDER BY id LIMIT 1",
            params![b.url, folder],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
        None => None,
    };
    let tags = serde_json::to_string(&b.tags).unwrap_or_else(|_| "[]".to_owned());
    let outcome = decide(stored.map(|s| s.1), b.updated_at, policy);
    match (outcome, stored) {
        (Outcome::Inserted, _) => {
            let folder = folder_at(conn, path, true)?.flatten();
            conn.run(
                "INSERT INTO bookmarks (url, title, folder_id, tags, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![b.url, b.title, folder, tags, b.created_at, b.updated_at],
            )?;
        }
        (Outcome::Updated, Some((id, _))) => {
            conn.run(
                "UPDATE bookmarks SET title = ?2, tags = ?3, created_at = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, b.title, tags, b.created_at, b.updated_at],
            )?;
        }
        _ => {}
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema still has exactly the checks [`TYPED_CHECKS`] names (a
    /// migration that changes one must update it, or imports lose the
    /// fast path without a word).
    #[test]
    fn typed_checks_match_the_schema() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        let checks = TypedChecks::new(&conn).unwrap();
        assert_eq!(checks.allowed, [Component::Messages, Component::Tasks]);
    }

    #[test]
    fn newer_wins_skips_equal_times() {
        assert_eq!(decide(None, 5, Policy::SkipExisting), Outcome::Inserted);
        assert_eq!(decide(Some(5), 6, Policy::NewerWins), Outcome::Updated);
        assert_eq!(decide(Some(5), 5, Policy::NewerWins), Outcome::Skipped);
        assert_eq!(decide(Some(5), 4, Policy::NewerWins), Outcome::Skipped);
        assert_eq!(decide(Some(5), 9, Policy::SkipExisting), Outcome::Skipped);
    }
}

/// A document as a bundle carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DocumentRecord {
    id: String,
    url: String,
    title: Option<String>,
    source: Source,
    content_type: Option<String>,
    text: String,
    chunk_chars: Option<i64>,
    fetched_at: Option<Millis>,
    created_at: Millis,
    updated_at: Millis,
    metadata: serde_json::Map<String, Value>,
    job_id: Option<String>,
    thread_id: Option<String>,
    chunks: Vec<ChunkRecord>,
}

/// A chunk of a [`DocumentRecord`], with its embeddings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkRecord {
    text: String,
    start: Option<i64>,
    end: Option<i64>,
    embeddings: Vec<EmbeddingInput>,
}

/// Every document, oldest `updated_at` first, with chunks and vectors.
fn export_documents(conn: &Connection, w: &mut BundleWriter) -> Result<()> {
    conn.for_each_row(
        "SELECT seq, id, url, title, source, content_type, text, chunk_chars, fetched_at,
                created_at, updated_at, metadata, job_id, thread_id
         FROM documents ORDER BY updated_at, seq",
        [],
        |r| {
            let source: String = r.get(4)?;
            let metadata: String = r.get(11)?;
            Ok((
                r.get::<_, i64>(0)?,
                DocumentRecord {
                    id: r.get(1)?,
                    url: r.get(2)?,
                    title: r.get(3)?,
                    source: Source::parse(&source).unwrap_or(Source::User),
                    content_type: r.get(5)?,
                    text: r.get(6)?,
                    chunk_chars: r.get(7)?,
                    fetched_at: r.get(8)?,
                    created_at: r.get(9)?,
                    updated_at: r.get(10)?,
                    metadata: match serde_json::from_str(&metadata) {
                        Ok(Value::Object(m)) => m,
                        _ => Default::default(),
                    },
                    job_id: r.get(12)?,
                    thread_id: r.get(13)?,
                    chunks: Vec::new(),
                },
            ))
        },
        |(seq, mut record)| {
            record.chunks = conn
                .query_all(
                    "SELECT seq, text, start, end FROM document_chunks
                 WHERE document_seq = ?1 ORDER BY idx",
                    [seq],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            ChunkRecord {
                                text: r.get(1)?,
                                start: r.get(2)?,
                                end: r.get(3)?,
                                embeddings: Vec::new(),
                            },
                        ))
                    },
                )?
                .into_iter()
                .map(|(chunk_seq, mut chunk)| {
                    chunk.embeddings = conn.query_all(
                    "SELECT model, vector FROM chunk_embeddings WHERE chunk_seq = ?1 ORDER BY seq",
                    [chunk_seq],
                    |r| {
                        let blob: Vec<u8> = r.get(1)?;
                        Ok(EmbeddingInput {
                            model: r.get(0)?,
                            vector: blob
                                .chunks_exact(4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                                .collect(),
                        })
                    },
                )?;
                    Ok(chunk)
                })
                .collect::<Result<Vec<_>>>()?;
            w.record(&record)
        },
    )
}

/// Section 2's rules for a record that did not come through the
/// operations (a bundle is checksummed, not trusted): every id present has
/// the id form, every time present is at least 0. Any failure fails the
/// whole import (its one transaction), so a bad bundle imports nothing.
fn check_record(ids: &[(&str, Option<&String>)], times: &[(&str, Option<Millis>)]) -> Result<()> {
    for (field, id) in ids {
        if id.is_some_and(|id| !crate::types::is_valid_id(id)) {
            return Err(Error::invalid(
                *field,
                "ids are 1..128 characters of [A-Za-z0-9_.:-]",
            ));
        }
    }
    for (field, time) in times {
        if time.is_some_and(|t| t < 0) {
            return Err(Error::invalid(
                *field,
                "times are non-negative milliseconds",
            ));
        }
    }
    Ok(())
}

/// Every rule a stored document keeps, whichever way it was made, checked
/// on a bundle's document record in the verify pass, before anything is
/// written (a bundle is checksummed, not trusted). `documents.upsert`'s
/// rules: a url of `visits.record`'s rules, ids of §2's form, times of at
/// least 0, a text of 1..8,000,000 characters; then, by how its chunks
/// were made:
/// - cut by the library (`chunk_chars` 200..8000): every chunk has offsets
///   (Unicode scalars) that slice its text from the document's (`text ==
///   doc_text[start:end]`) and 1..`chunk_chars` characters; the first
///   starts at 0, the last ends at the text's length, each starts at or
///   before the previous one's end (overlapping it by at most `chunk_chars
///   / 5`) and ends after it; a text of at most `chunk_chars` characters
///   is one chunk;
/// - given by the caller (`chunk_chars` null): 1..10,000 chunks of
///   1..32,000 characters, none with offsets;
///
/// and every embedding follows `memory.upsert`'s rules, one dimension per
/// model within the document (the profile's own dimensions are checked as
/// it is written). `created_at` after `updated_at` is accepted, as for
/// every other component (no operation promises the order: times are the
/// wall clock's).
fn check_document_record(d: &DocumentRecord) -> Result<()> {
    use knowledge::documents::{ChunkChars, MAX_CHUNKS, MAX_CHUNK_CHARS, MAX_TEXT_CHARS};
    crate::browser::urls::parse_url("record.url", &d.url)?;
    check_record(
        &[
            ("record.id", Some(&d.id)),
            ("record.job_id", d.job_id.as_ref()),
            ("record.thread_id", d.thread_id.as_ref()),
        ],
        &[
            ("record.created_at", Some(d.created_at)),
            ("record.updated_at", Some(d.updated_at)),
            ("record.fetched_at", d.fetched_at),
        ],
    )?;
    let text_chars = d.text.chars().count();
    if !(1..=MAX_TEXT_CHARS).contains(&text_chars) {
        return Err(Error::invalid(
            "record.text",
            "must have 1..8000000 characters",
        ));
    }
    let window = match d.chunk_chars {
        None => None,
        Some(n) if (ChunkChars::MIN as i64..=ChunkChars::MAX as i64).contains(&n) => {
            Some(n as usize)
        }
        Some(_) => {
            return Err(Error::invalid(
                "record.chunk_chars",
                "must be 200..8000 (null for chunks the caller gave)",
            ))
        }
    };
    match window {
        Some(_) if d.chunks.is_empty() => {
            return Err(Error::invalid("record.chunks", "must not be empty"))
        }
        None if !(1..=MAX_CHUNKS).contains(&d.chunks.len()) => {
            return Err(Error::invalid("record.chunks", "must have 1..10000 items"))
        }
        _ => {}
    }
    let longest = window.unwrap_or(MAX_CHUNK_CHARS);
    // The previous cut chunk's end: in characters, and in bytes of the text.
    let mut previous: Option<(usize, usize)> = None;
    let mut dims: std::collections::HashMap<&str, usize> = Default::default();
    for (i, chunk) in d.chunks.iter().enumerate() {
        let field = |name: &str| format!("record.chunks[{i}].{name}");
        let chars = chunk.text.chars().count();
        if !(1..=longest).contains(&chars) {
            return Err(Error::invalid(
                field("text"),
                format!("must have 1..{longest} characters"),
            ));
        }
        let span = match (window, chunk.start, chunk.end) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err(Error::invalid(
                    field("start"),
                    "chunks the caller gave (chunk_chars null) have no offsets",
                ))
            }
            (Some(window), Some(start), Some(end)) => Some((window, start, end)),
            (Some(_), _, _) => {
                return Err(Error::invalid(
                    field("start"),
                    "chunks the library cut have a start and an end",
                ))
            }
        };
        if let Some((window, start, end)) = span {
            let offset = |v: i64| usize::try_from(v).ok();
            let (Some(start), Some(end)) = (offset(start), offset(end)) else {
                return Err(Error::invalid(field("start"), "offsets are at least 0"));
            };
            // Where the chunk starts in the text, in bytes: from the end of
            // the previous chunk, at most `window / 5` characters back.
            let start_byte = match previous {
                None if start == 0 => 0,
                None => return Err(Error::invalid(field("start"), "the first chunk starts at 0")),
                Some((prev_end, prev_byte)) if start <= prev_end && prev_end - start <= window / 5 => {
                    match prev_end - start {
                        0 => prev_byte,
                        back => d.text[..prev_byte]
                            .char_indices()
                            .rev()
                            .nth(back - 1)
                            .map_or(0, |(b, _)| b),
                    }
                }
                Some(_) => {
                    return Err(Error::invalid(
                        field("start"),
                        "a chunk starts at or before the previous one's end, overlapping it by at most chunk_chars / 5",
                    ))
                }
            };
            if previous.is_some_and(|(prev_end, _)| end <= prev_end) {
                return Err(Error::invalid(
                    field("end"),
                    "a chunk ends after the previous one's end",
                ));
            }
            if end.checked_sub(start) != Some(chars)
                || !d.text[start_byte..].starts_with(&chunk.text)
            {
                return Err(Error::invalid(
                    field("start"),
                    "the chunk's offsets must slice its text from the document's",
                ));
            }
            previous = Some((end, start_byte + chunk.text.len()));
        }
        for e in &chunk.embeddings {
            let field = field("embedding");
            let dim = e.to_f32(&field)?.len();
            if *dims.entry(e.model.as_str()).or_insert(dim) != dim {
                return Err(Error::invalid(
                    format!("{field}.vector"),
                    "one dimension per model",
                ));
            }
        }
    }
    if let Some(window) = window {
        let last = d.chunks.len() - 1;
        if previous.map(|(end, _)| end) != Some(text_chars) {
            return Err(Error::invalid(
                format!("record.chunks[{last}].end"),
                "the last chunk ends at the text's end",
            ));
        }
        if text_chars <= window && last > 0 {
            return Err(Error::invalid(
                "record.chunks",
                "a text of at most chunk_chars characters is one chunk",
            ));
        }
    }
    Ok(())
}

/// Imports one document (checked in the verify pass by
/// [`check_document_record`]): deduplicated by `url` (`newer_wins` by
/// `updated_at`); a replaced document loses its old chunks. Links to jobs
/// and threads in neither bundle nor profile become null; an id already
/// used by another url is replaced by a fresh one.
fn import_document(conn: &Connection, d: DocumentRecord, policy: Policy) -> Result<Outcome> {
    let facts = crate::browser::urls::parse_url("record.url", &d.url)?;
    let stored: Option<(i64, Millis)> = conn.query_opt(
        "SELECT seq, updated_at FROM documents WHERE url = ?1",
        [&d.url],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let outcome = decide(stored.map(|s| s.1), d.updated_at, policy);
    if outcome == Outcome::Skipped {
        return Ok(outcome);
    }
    let job_id = kept_link(conn, "jobs", d.job_id.clone(), None)?;
    let thread_id = kept_link(conn, "llm_threads", d.thread_id.clone(), None)?;
    let sha = crate::types::hex(&sha2::Sha256::digest(d.text.as_bytes()));
    let text_chars = d.text.chars().count() as i64;
    let metadata = Value::Object(d.metadata.clone()).to_string();
    let seq = match stored {
        Some((seq, _)) => {
            conn.run("DELETE FROM document_chunks WHERE document_seq = ?1", [seq])?;
            conn.run(
                "UPDATE documents SET title = ?2, source = ?3, content_type = ?4, text = ?5,
                     text_chars = ?6, content_sha256 = ?7, chunk_chars = ?8, fetched_at = ?9,
                     metadata = ?10, job_id = ?11, thread_id = ?12, created_at = ?13,
                     updated_at = ?14
                 WHERE seq = ?1",
                params![
                    seq,
                    d.title,
                    d.source.as_str(),
                    d.content_type,
                    d.text,
                    text_chars,
                    sha,
                    d.chunk_chars,
                    d.fetched_at,
                    metadata,
                    job_id,
                    thread_id,
                    d.created_at,
                    d.updated_at
                ],
            )?;
            seq
        }
        None => {
            let id = if exists(conn, "documents", &d.id)? {
                crate::types::new_id()
            } else {
                d.id.clone()
            };
            conn.run(
                "INSERT INTO documents (id, url, host, rev_host, title, source, content_type, text,
                     text_chars, content_sha256, chunk_chars, fetched_at, metadata, job_id,
                     thread_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                params![
                    id, d.url, facts.host, facts.rev_host(), d.title, d.source.as_str(),
                    d.content_type, d.text, text_chars, sha, d.chunk_chars, d.fetched_at,
                    metadata, job_id, thread_id, d.created_at, d.updated_at
                ],
            )?;
            conn.last_insert_rowid()
        }
    };
    let mut embedded = false;
    for (i, chunk) in d.chunks.iter().enumerate() {
        let span = chunk.start.zip(chunk.end);
        let chunk_seq = knowledge::documents::insert_chunk(conn, seq, i as i64, &chunk.text, span)?;
        for e in &chunk.embeddings {
            let field = format!("record.chunks[{i}].embedding");
            let vector = e.to_f32(&field)?;
            knowledge::documents::require_dimension(conn, &e.model, vector.len(), &field)?;
            knowledge::documents::store_embedding(conn, chunk_seq, &e.model, &vector)?;
            embedded = true;
        }
    }
    if embedded {
        knowledge::documents::bump_vectors_version(conn)?;
    }
    Ok(outcome)
}

/// The triggers `llm_messages` may carry for the fast path of
/// [`MessageCounter`]: its row counter, nothing else.
const MESSAGE_COUNT_TRIGGERS: &str = "llm_messages_count_delete,llm_messages_count_insert";

/// Keeps `overview`'s message counter exact while messages are imported
/// without their per-row insert trigger.
///
/// The trigger only counts (`row_counts`, migration 0009), but a statement
/// with a trigger makes SQLite open a statement journal around every
/// insert, copying each page it touches first: per message, that and the
/// trigger program cost about as much as the insert itself. So while the
/// records of `messages` are imported the writer's triggers are off
/// (`SQLITE_DBCONFIG_ENABLE_TRIGGER`, this connection only), and
/// [`MessageCounter::finish`] counts the imported rows in once, in the
/// same transaction: the counter is exact at commit, and a kill leaves
/// neither rows nor count. Only when the table's triggers are exactly its
/// two counters; otherwise every trigger stays on.
pub(super) struct MessageCounter<'c> {
    conn: &'c Connection,
    /// Whether triggers may be turned off at all (see above).
    allowed: bool,
    /// Whether this connection's triggers are off now.
    off: bool,
    /// The largest message key before the first message imported without
    /// the trigger.
    before: Option<i64>,
}

impl<'c> MessageCounter<'c> {
    pub(super) fn new(conn: &'c Connection) -> Result<MessageCounter<'c>> {
        let triggers: Option<String> = conn.query_row(
            "SELECT group_concat(name, ',') FROM
                 (SELECT name FROM sqlite_schema
                  WHERE type = 'trigger' AND tbl_name = 'llm_messages' ORDER BY name)",
            [],
            |r| r.get(0),
        )?;
        Ok(MessageCounter {
            conn,
            allowed: triggers.as_deref() == Some(MESSAGE_COUNT_TRIGGERS),
            off: false,
            before: None,
        })
    }

    /// Called before each record is imported: triggers are off for the
    /// records of `messages` only.
    pub(super) fn enter(&mut self, component: Component) -> Result<()> {
        let off = self.allowed && component == Component::Messages;
        if off == self.off {
            return Ok(());
        }
        if off && self.before.is_none() {
            self.before = Some(self.conn.query_row(
                "SELECT coalesce(max(seq), 0) FROM llm_messages",
                [],
                |r| r.get(0),
            )?);
        }
        self.set_off(off)
    }

    fn set_off(&mut self, off: bool) -> Result<()> {
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, !off)?;
        self.off = off;
        Ok(())
    }

    /// Turns triggers back on and counts the messages imported without
    /// them. `row_counts` counts `n` rows up to the key `upto`, the reader
    /// adds the rows above it; every imported row has a key above
    /// `before`, so the rows above `min(upto, before)` are the imported
    /// ones plus the tail `n` did not count yet: `n` takes them all and
    /// `upto` moves to the largest key (what the trigger's fold does).
    pub(super) fn finish(mut self) -> Result<()> {
        if self.off {
            self.set_off(false)?;
        }
        if let Some(before) = self.before {
            self.conn.run(
                "UPDATE row_counts
                 SET n = n + (SELECT count(*) FROM llm_messages WHERE seq > min(row_counts.upto, ?1)),
                     upto = max(upto, (SELECT coalesce(max(seq), 0) FROM llm_messages))
                 WHERE name = 'llm_messages'",
                [before],
            )?;
        }
        Ok(())
    }
}

impl Drop for MessageCounter<'_> {
    /// A failed or panicking import must not leave the writer's triggers
    /// off (its transaction is rolled back, the connection lives on).
    fn drop(&mut self) {
        if self.off {
            let _ = self
                .conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true);
        }
    }
}

/// The tables whose every `CHECK` an imported record meets by its type,
/// with that one check as their schema writes it: a message's `role` is a
/// [`messages::Role`], a task's `status` a [`tasks::TaskStatus`] (the
/// record does not parse otherwise).
const TYPED_CHECKS: [(Component, &str, &str); 2] = [
    (
        Component::Messages,
        "llm_messages",
        "CHECK (role IN ('user', 'assistant', 'system', 'tool'))",
    ),
    (
        Component::Tasks,
        "tasks",
        "CHECK (status IN ('pending', 'in_progress', 'blocked', 'completed', 'failed', 'cancelled'))",
    ),
];

/// Lets the import skip the `CHECK`s its records meet by their type.
///
/// A check `x IN (...)` of more than two values is compiled by SQLite into
/// a temporary b-tree built and dropped on every insert (a pager, its page
/// cache, one insert per value, then freeing it all): measured, about a
/// fifth of the writer's time per imported message. While the records of
/// a component of [`TYPED_CHECKS`] are imported, the writer skips `CHECK`
/// constraints (`PRAGMA ignore_check_constraints`, this connection only),
/// only when that check is its table's only `CHECK`; `NOT NULL`, `STRICT`
/// types, foreign keys and `UNIQUE` are enforced as always. Restored when
/// the records of other components come, at the end, on error and on
/// panic.
pub(super) struct TypedChecks<'c> {
    conn: &'c Connection,
    /// The components whose table's checks may be skipped.
    allowed: Vec<Component>,
    /// Whether this connection skips checks now.
    skipping: bool,
}

impl<'c> TypedChecks<'c> {
    pub(super) fn new(conn: &'c Connection) -> Result<TypedChecks<'c>> {
        let mut allowed = Vec::new();
        for (component, table, check) in TYPED_CHECKS {
            let sql: Option<String> = conn.query_opt(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )?;
            let only_that_check = sql.is_some_and(|sql| {
                sql.to_ascii_uppercase().matches("CHECK").count() == 1 && sql.contains(check)
            });
            if only_that_check {
                allowed.push(component);
            }
        }
        Ok(TypedChecks {
            conn,
            allowed,
            skipping: false,
        })
    }

    /// Called before each record is imported.
    pub(super) fn enter(&mut self, component: Component) -> Result<()> {
        let skip = self.allowed.contains(&component);
        if skip != self.skipping {
            // Marked first: if the switch fails, dropping `self` switches
            // back (the pragma is idempotent).
            self.skipping = skip;
            self.conn
                .pragma_update(None, "ignore_check_constraints", skip)?;
        }
        Ok(())
    }

    /// Enforces checks again.
    pub(super) fn finish(mut self) -> Result<()> {
        if self.skipping {
            self.skipping = false;
            self.conn
                .pragma_update(None, "ignore_check_constraints", false)?;
        }
        Ok(())
    }
}

impl Drop for TypedChecks<'_> {
    /// A failed or panicking import must not leave the writer skipping
    /// checks (its transaction is rolled back, the connection lives on).
    fn drop(&mut self) {
        if self.skipping {
            let _ = self
                .conn
                .pragma_update(None, "ignore_check_constraints", false);
        }
    }
}
