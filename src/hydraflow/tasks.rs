//! Tasks and their event history. Status changes are recorded as events
//! (`status_changed` with exactly `{from, to}`), and `closed_at` follows the
//! status: set on entering `completed`, `failed` or `cancelled`, cleared on
//! leaving them.

use super::{
    json_of, json_text, metadata_of, not_null, require_filter_thread, require_text, require_thread,
};
use super::{DeletedResponse, IdRequest};
use crate::db::paging::{Keyset, Order};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::{now_ms, Id, ListLimit, Metadata, Millis, Page, Patch, Timestamp};
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Blocked,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    /// The stored (and JSON) name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<TaskStatus> {
        [
            TaskStatus::Pending,
            TaskStatus::InProgress,
            TaskStatus::Blocked,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// True for the statuses that close a task.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// A task as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Task {
    pub id: String,
    pub thread_id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Option<i64>,
    pub due_at: Option<Millis>,
    pub owner: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub closed_at: Option<Millis>,
    pub metadata: Map<String, Value>,
    pub result: Value,
}

pub(crate) const COLUMNS: &str =
    "id, thread_id, title, description, status, priority, due_at, owner, \
     created_at, updated_at, closed_at, metadata, result, seq";

impl Task {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
        let status = row.get_ref(4)?.as_str()?;
        Ok(Task {
            id: row.get(0)?,
            thread_id: row.get(1)?,
            title: row.get(2)?,
            description: row.get(3)?,
            status: TaskStatus::parse(status).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(4, "status".into(), rusqlite::types::Type::Text)
            })?,
            priority: row.get(5)?,
            due_at: row.get(6)?,
            owner: row.get(7)?,
            created_at: row.get(8)?,
            updated_at: row.get(9)?,
            closed_at: row.get(10)?,
            metadata: metadata_of(&row.get::<_, String>(11)?),
            result: json_of(row.get(12)?),
        })
    }

    /// Writes every field of this (existing) task back.
    fn store(&self, conn: &Connection) -> Result<()> {
        conn.run(
            "UPDATE tasks SET thread_id = ?2, title = ?3, description = ?4, status = ?5,
                 priority = ?6, due_at = ?7, owner = ?8, updated_at = ?9, closed_at = ?10,
                 metadata = ?11, result = ?12
             WHERE id = ?1",
            params![
                self.id,
                self.thread_id,
                self.title,
                self.description,
                self.status.as_str(),
                self.priority,
                self.due_at,
                self.owner,
                self.updated_at,
                self.closed_at,
                Value::Object(self.metadata.clone()).to_string(),
                json_text(&self.result)
            ],
        )?;
        Ok(())
    }
}

/// The task `id`, if it exists.
pub fn load(conn: &Connection, id: &str) -> Result<Option<Task>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"),
        [id],
        Task::from_row,
    )
}

fn require(conn: &Connection, id: &str, field: &str) -> Result<Task> {
    load(conn, id)?.ok_or_else(|| Error::not_found("task", field))
}

/// The open tasks (`pending`, `in_progress`, `blocked`) of a thread,
/// newest `updated_at` first.
pub fn open_of_thread(conn: &Connection, thread_id: &str) -> Result<Vec<Task>> {
    conn.query_all(
        &format!(
            "SELECT {COLUMNS} FROM tasks
             WHERE thread_id = ?1 AND status IN ('pending', 'in_progress', 'blocked')
             ORDER BY updated_at DESC, seq DESC"
        ),
        [thread_id],
        Task::from_row,
    )
}

/// Links a task to a thread (chat's `task_ids`); `not_found` for an
/// unknown task. Touches `updated_at` only when the link changes.
pub fn link_to_thread(conn: &Connection, id: &str, thread_id: &str, now: Millis) -> Result<()> {
    require(conn, id, "task_ids")?;
    conn.run(
        "UPDATE tasks SET thread_id = ?2, updated_at = ?3
         WHERE id = ?1 AND thread_id IS NOT ?2",
        params![id, thread_id, now],
    )?;
    Ok(())
}

/// A task event as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskEvent {
    pub id: String,
    pub task_id: String,
    pub event_type: String,
    pub payload: Value,
    pub created_at: Millis,
}

/// The columns [`TaskEvent::from_row`] reads, then `seq` for paging.
pub(crate) const EVENT_COLUMNS: &str = "id, task_id, event_type, payload, created_at, seq";

impl TaskEvent {
    /// Reads a row selected with [`EVENT_COLUMNS`].
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<TaskEvent> {
        Ok(TaskEvent {
            id: r.get(0)?,
            task_id: r.get(1)?,
            event_type: r.get(2)?,
            payload: json_of(r.get(3)?),
            created_at: r.get(4)?,
        })
    }
}

fn record_event(
    conn: &Connection,
    task_id: &str,
    event_type: &str,
    payload: Value,
    now: Millis,
) -> Result<TaskEvent> {
    let event = TaskEvent {
        id: crate::types::new_id(),
        task_id: task_id.to_owned(),
        event_type: event_type.to_owned(),
        payload,
        created_at: now,
    };
    conn.run(
        "INSERT INTO task_events (id, task_id, event_type, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            event.id,
            event.task_id,
            event.event_type,
            json_text(&event.payload),
            now
        ],
    )?;
    Ok(event)
}

/// `tasks.create`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub title: String,
    pub id: Option<Id>,
    pub thread_id: Option<Id>,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<i64>,
    pub due_at: Option<Timestamp>,
    pub owner: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub result: Value,
}

/// `{task}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskResponse {
    pub task: Task,
}

/// `tasks.create`: status defaults to `pending`; records one `created`
/// event (payload `{status}`: the status the task starts in).
pub fn create(profile: &Profile, req: CreateRequest) -> Result<TaskResponse> {
    require_text("title", &req.title)?;
    let now = now_ms();
    let status = req.status.unwrap_or(TaskStatus::Pending);
    let task = Task {
        id: req.id.unwrap_or_else(Id::generate).into_string(),
        thread_id: req.thread_id.map(Id::into_string),
        title: req.title,
        description: req.description,
        status,
        priority: req.priority,
        due_at: req.due_at.map(|t| t.0),
        owner: req.owner,
        created_at: now,
        updated_at: now,
        closed_at: status.is_closed().then_some(now),
        metadata: req.metadata.0,
        result: req.result,
    };
    profile.db().write(|tx| {
        if let Some(thread_id) = &task.thread_id {
            require_thread(tx, thread_id, "thread_id")?;
        }
        let inserted = tx.run(
            "INSERT INTO tasks (id, title, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO NOTHING",
            params![task.id, task.title, status.as_str(), now],
        )?;
        if inserted == 0 {
            return Err(Error::conflict("a task with this id exists").with_detail("field", "id"));
        }
        task.store(tx)?;
        record_event(tx, &task.id, "created", json!({ "status": status }), now)?;
        Ok(())
    })?;
    Ok(TaskResponse { task })
}

/// `tasks.get`.
pub fn get(profile: &Profile, req: IdRequest) -> Result<TaskResponse> {
    let task = profile.db().read(|c| require(c, req.id.as_str(), "id"))?;
    Ok(TaskResponse { task })
}

/// `tasks.update`: omitted fields are kept; `null` clears a nullable one.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub id: Id,
    #[serde(default)]
    pub title: Patch<String>,
    #[serde(default)]
    pub description: Patch<String>,
    #[serde(default)]
    pub status: Patch<TaskStatus>,
    #[serde(default)]
    pub priority: Patch<i64>,
    #[serde(default)]
    pub due_at: Patch<Timestamp>,
    #[serde(default)]
    pub owner: Patch<String>,
    #[serde(default)]
    pub thread_id: Patch<Id>,
    #[serde(default)]
    pub metadata: Patch<Metadata>,
    #[serde(default)]
    pub result: Patch<Value>,
}

/// `tasks.update`. A status change records `status_changed` `{from, to}`
/// (none for the same status) and moves `closed_at`: set to now on entering
/// a closed status (also from another closed one), cleared on leaving.
pub fn update(profile: &Profile, req: UpdateRequest) -> Result<TaskResponse> {
    let title = not_null("title", req.title)?;
    if let Some(title) = &title {
        require_text("title", title)?;
    }
    let status = not_null("status", req.status)?;
    let task = profile.db().write(|tx| {
        let mut task = require(tx, req.id.as_str(), "id")?;
        let now = now_ms();
        if let Some(thread_id) = req.thread_id.into_update() {
            if let Some(thread_id) = &thread_id {
                require_thread(tx, thread_id.as_str(), "thread_id")?;
            }
            task.thread_id = thread_id.map(Id::into_string);
        }
        if let Some(title) = title {
            task.title = title;
        }
        if let Some(description) = req.description.into_update() {
            task.description = description;
        }
        if let Some(priority) = req.priority.into_update() {
            task.priority = priority;
        }
        if let Some(due_at) = req.due_at.into_update() {
            task.due_at = due_at.map(|t| t.0);
        }
        if let Some(owner) = req.owner.into_update() {
            task.owner = owner;
        }
        if let Some(metadata) = req.metadata.into_update() {
            task.metadata = metadata.map(|m| m.0).unwrap_or_default();
        }
        if let Some(result) = req.result.into_update() {
            task.result = result.unwrap_or(Value::Null);
        }
        if let Some(to) = status.filter(|&to| to != task.status) {
            let from = task.status;
            record_event(
                tx,
                &task.id,
                "status_changed",
                json!({"from": from, "to": to}),
                now,
            )?;
            task.status = to;
            task.closed_at = to.is_closed().then_some(now);
        }
        task.updated_at = now;
        task.store(tx)?;
        Ok(task)
    })?;
    Ok(TaskResponse { task })
}

/// `tasks.list`: newest `updated_at` first, by `status` and `thread_id`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    pub status: Option<TaskStatus>,
    /// Only this thread's tasks (the thread must exist: `not_found`).
    pub thread_id: Option<Id>,
    #[serde(default)]
    pub limit: ListLimit,
    pub cursor: Option<String>,
}

/// `tasks.list`.
pub fn list(profile: &Profile, req: ListRequest) -> Result<Page<Task>> {
    let status = req.status.map(TaskStatus::as_str);
    let thread_id = req.thread_id.as_ref().map(Id::as_str);
    let scope = format!("tasks.list|{status:?}|{thread_id:?}");
    let ks = Keyset::new(scope, Order::Desc, req.limit.get(), req.cursor.as_deref())?;
    let (key, seq) = ks.bounds();
    // Each filter is either an indexable equality or a no-op on its
    // (NULL) parameter, so the statement text matches the filters in use.
    let by_status = if status.is_some() {
        "status = ?3"
    } else {
        "?3 IS NULL"
    };
    let by_thread = if thread_id.is_some() {
        "thread_id = ?4"
    } else {
        "?4 IS NULL"
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks WHERE {by_status} AND {by_thread} AND {} {}",
        ks.condition("updated_at", "seq", 1),
        ks.order_and_limit("updated_at", "seq")
    );
    let rows = profile.db().read(|c| {
        require_filter_thread(c, thread_id)?;
        c.query_all(&sql, params![key, seq, status, thread_id], |r| {
            Ok((Task::from_row(r)?, r.get(9)?, r.get(13)?))
        })
    })?;
    Ok(ks.finish(rows))
}

/// `tasks.delete`: the task and its events. Memories and jobs that named
/// the task keep existing with `task_id` null.
pub fn delete(profile: &Profile, req: IdRequest) -> Result<Purged<DeletedResponse>> {
    crate::privacy::purge(profile, |tx| {
        crate::jobs::ledger::detach(tx, crate::jobs::ledger::Link::Task, req.id.as_str())?;
        match tx.run("DELETE FROM tasks WHERE id = ?1", [req.id.as_str()])? {
            0 => Err(Error::not_found("task", "id")),
            n => Ok(DeletedResponse { deleted: n as u64 }),
        }
    })
}

/// `tasks.add_event`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEventRequest {
    pub task_id: Id,
    pub event_type: String,
    #[serde(default)]
    pub payload: Value,
}

/// `{event}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventResponse {
    pub event: TaskEvent,
}

/// `tasks.add_event`: any caller event type (1..128 characters).
pub fn add_event(profile: &Profile, req: AddEventRequest) -> Result<EventResponse> {
    require_text("event_type", &req.event_type)?;
    if req.event_type.chars().count() > 128 {
        return Err(Error::invalid(
            "event_type",
            "must be at most 128 characters",
        ));
    }
    let event = profile.db().write(|tx| {
        require(tx, req.task_id.as_str(), "task_id")?;
        record_event(
            tx,
            req.task_id.as_str(),
            &req.event_type,
            req.payload,
            now_ms(),
        )
    })?;
    Ok(EventResponse { event })
}

/// `tasks.events`: oldest first.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsRequest {
    pub task_id: Id,
    #[serde(default)]
    pub limit: ListLimit,
    pub cursor: Option<String>,
}

/// `tasks.events`.
pub fn events(profile: &Profile, req: EventsRequest) -> Result<Page<TaskEvent>> {
    let scope = format!("tasks.events|{}", req.task_id);
    let ks = Keyset::new(scope, Order::Asc, req.limit.get(), req.cursor.as_deref())?;
    let (key, seq) = ks.bounds();
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id = ?3 AND {} {}",
        ks.condition("created_at", "seq", 1),
        ks.order_and_limit("created_at", "seq")
    );
    let rows = profile.db().read(|c| {
        require(c, req.task_id.as_str(), "task_id")?;
        c.query_all(&sql, params![key, seq, req.task_id.as_str()], |r| {
            Ok((TaskEvent::from_row(r)?, r.get(4)?, r.get(5)?))
        })
    })?;
    Ok(ks.finish(rows))
}
