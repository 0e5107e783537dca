//! `hydraflow.context`: what the shell shows beside a conversation, read in
//! one snapshot: the thread, its recent messages, open tasks, memories and
//! bound tabs.

use super::memory::{self, Memory};
use super::messages::{self, Message};
use super::tasks::{self, Task};
use super::threads::{self, Thread};
use crate::browser::tabs::{Tab, TAB_COLUMNS};
use crate::db::ConnExt;
use crate::error::Result;
use crate::profile::Profile;
use crate::types::{Bounded, Id};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// `hydraflow.context`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextRequest {
    pub thread_id: Id,
    #[serde(default)]
    pub messages_limit: Bounded<20, 500>,
    #[serde(default)]
    pub memories_limit: Bounded<20, 500>,
}

/// `{thread, messages, tasks, memories, tabs}`: the latest messages oldest
/// first, the open tasks (`pending`, `in_progress`, `blocked`) newest
/// updated first, the thread's memories strongest and most recently used
/// first, and the tabs bound to the thread newest updated first.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThreadContext {
    pub thread: Thread,
    pub messages: Vec<Message>,
    pub tasks: Vec<Task>,
    pub memories: Vec<Memory>,
    pub tabs: Vec<Tab>,
}

/// `hydraflow.context`. Unknown thread: `not_found`.
pub fn context(profile: &Profile, req: ContextRequest) -> Result<ThreadContext> {
    profile.db().read(|conn| read(conn, &req))
}

fn read(conn: &Connection, req: &ContextRequest) -> Result<ThreadContext> {
    let id = req.thread_id.as_str();
    Ok(ThreadContext {
        thread: threads::require(conn, id, "thread_id")?,
        messages: messages::latest(conn, id, req.messages_limit.get())?,
        tasks: tasks::open_of_thread(conn, id)?,
        memories: memory::of_thread(conn, id, req.memories_limit.get())?,
        tabs: conn.query_all(
            &format!(
                "SELECT {TAB_COLUMNS} FROM tabs WHERE thread_id = ?1 ORDER BY updated_at DESC, seq DESC"
            ),
            [id],
            Tab::from_row,
        )?,
    })
}
