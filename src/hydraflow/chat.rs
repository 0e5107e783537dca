//! `chat`: one conversational turn. Resolves the thread (given, bound to
//! the tab, or new and bound), writes the user message and the assistant
//! message (the caller's `reply`, the host model's answer, or none), links
//! the listed tasks and memories, and returns the context the turn saw.
//!
//! The model runs on the caller's thread with no database lock held: the
//! turn is first planned from a read snapshot (thread resolution, the
//! context the model receives), then the model is called, then everything
//! is written in one transaction. A model error writes nothing.

use super::memory;
use super::messages::{self, Message, NewMessage, Role};
use super::tab_binding;
use super::tasks;
use super::threads::{self, NewThread};
use super::{require_text, require_thread};
use crate::browser::tabs::{self, Tab};
use crate::db::ConnExt;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::types::{now_ms, Bounded, Id, Metadata, Millis, Timestamp, TokenCount};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// How many memories the context of a turn holds.
pub const CONTEXT_MEMORIES: usize = 20;

/// `chat`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub message: String,
    pub thread_id: Option<Id>,
    pub tab_id: Option<Id>,
    pub reply: Option<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub task_ids: Vec<Id>,
    #[serde(default)]
    pub memory_ids: Vec<Id>,
    #[serde(default)]
    pub context_messages: Bounded<20, 500>,
    #[serde(default)]
    pub metadata: Metadata,
    /// Documents to retrieve into `context.documents` (spec §10).
    #[serde(default)]
    pub retrieve: Option<crate::knowledge::search::Retrieve>,
}

/// What the turn saw: the latest messages (ending with the user message),
/// the thread's memories and the tab.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChatContext {
    pub messages: Vec<Message>,
    pub memories: Vec<memory::Memory>,
    pub tab: Option<Tab>,
    /// The retrieved chunks (`documents.search` items); `[]` without
    /// `retrieve`.
    #[serde(default)]
    pub documents: Vec<crate::knowledge::search::SearchItem>,
}

/// `{thread_id, tab_id, user_message, assistant_message, context}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChatResponse {
    pub thread_id: String,
    pub tab_id: Option<String>,
    pub user_message: Message,
    pub assistant_message: Option<Message>,
    pub context: ChatContext,
}

/// The model's answer: `{content, model?, tokens?}`.
#[derive(Debug, Clone, Deserialize)]
struct ModelReply {
    content: String,
    model: Option<String>,
    tokens: Option<TokenCount>,
}

/// The assistant message a turn writes.
struct Assistant {
    content: String,
    model: Option<String>,
    tokens: Option<TokenCount>,
}

/// One turn, with the ids and time fixed before any lock is taken so the
/// model sees the same user message and thread id that are then written.
struct Turn {
    req: ChatRequest,
    user_message_id: Id,
    new_thread_id: Id,
    started_at: Millis,
}

/// `chat`.
pub fn chat(profile: &Profile, req: ChatRequest) -> Result<ChatResponse> {
    require_text("message", &req.message)?;
    if let Some(reply) = &req.reply {
        require_text("reply", reply)?;
    }
    let turn = Turn {
        req,
        user_message_id: Id::generate(),
        new_thread_id: Id::generate(),
        started_at: now_ms(),
    };
    let documents = match &turn.req.retrieve {
        Some(retrieve) => crate::knowledge::search::retrieve(profile, retrieve, &turn.req.message)
            .map_err(|e| e.within("retrieve"))?,
        None => Vec::new(),
    };
    // With a model, the thread it was asked about: the turn is written
    // there or not at all.
    let mut asked_about = None;
    let assistant = match (&turn.req.reply, profile.model()) {
        (Some(reply), _) => Some(Assistant {
            content: reply.clone(),
            model: turn.req.model.clone(),
            tokens: None,
        }),
        (None, Some(model)) => {
            let input = profile
                .db()
                .read(|conn| turn.model_input(conn, &documents))?;
            asked_about = input["thread_id"].as_str().map(str::to_owned);
            Some(parse_reply(model(&input)?, &turn.req.model)?)
        }
        (None, None) => None,
    };
    profile
        .db()
        .write(|tx| turn.write(tx, assistant, documents, asked_about.as_deref()))
}

impl Turn {
    /// The thread this turn goes to: the given one (must exist), else the
    /// live thread bound to the tab, else a new one (`None`).
    fn resolve(&self, conn: &Connection) -> Result<Option<String>> {
        if let Some(id) = &self.req.thread_id {
            require_thread(conn, id.as_str(), "thread_id")?;
            return Ok(Some(id.to_string()));
        }
        let bound = match &self.req.tab_id {
            Some(tab) => tabs::get(conn, tab.as_str())?.and_then(|t| t.thread_id),
            None => None,
        };
        match bound {
            Some(id) if threads::load(conn, &id)?.is_some() => Ok(Some(id)),
            _ => Ok(None),
        }
    }

    /// `not_found` unless every listed task and memory exists.
    fn check_links(&self, conn: &Connection) -> Result<()> {
        // `details.field` is the path of the missing entry (`task_ids[2]`).
        for (i, id) in self.req.task_ids.iter().enumerate() {
            conn.require_id("tasks", id.as_str(), "task", &format!("task_ids[{i}]"))?;
        }
        for (i, id) in self.req.memory_ids.iter().enumerate() {
            conn.require_id(
                "memories",
                id.as_str(),
                "memory",
                &format!("memory_ids[{i}]"),
            )?;
        }
        Ok(())
    }

    fn user_message(&self, thread_id: &str, created_at: Millis) -> NewMessage {
        NewMessage {
            id: Some(self.user_message_id.clone()),
            thread_id: thread_id.to_owned(),
            parent_id: None,
            role: Role::User,
            content: self.req.message.clone(),
            tokens: None,
            created_at: Some(Timestamp(created_at)),
            metadata: self.req.metadata.clone(),
        }
    }

    /// What the model receives, `{thread_id, message, context}` (plus
    /// `model` when the caller named one), read before the user message is
    /// written: the context is the one the turn will return.
    fn model_input(
        &self,
        conn: &Connection,
        documents: &[crate::knowledge::search::SearchItem],
    ) -> Result<Value> {
        self.check_links(conn)?;
        let existing = self.resolve(conn)?;
        let thread_id = existing
            .clone()
            .unwrap_or_else(|| self.new_thread_id.to_string());
        let keep = self.req.context_messages.get() - 1;
        let mut history = match &existing {
            Some(id) if keep > 0 => messages::latest(conn, id, keep)?,
            _ => Vec::new(),
        };
        let user = self.user_message(&thread_id, self.started_at);
        history.push(Message {
            id: self.user_message_id.to_string(),
            thread_id: thread_id.clone(),
            parent_id: None,
            role: Role::User,
            content: user.content,
            tokens: None,
            created_at: self.started_at,
            metadata: user.metadata.0,
        });
        let context = ChatContext {
            messages: history,
            memories: memory::of_thread_and(
                conn,
                &thread_id,
                &self.req.memory_ids,
                CONTEXT_MEMORIES,
            )?,
            tab: match &self.req.tab_id {
                Some(tab) => tabs::get(conn, tab.as_str())?,
                None => None,
            },
            documents: documents.to_vec(),
        };
        let mut input = json!({
            "thread_id": thread_id,
            "message": self.req.message,
            "context": context,
        });
        if let Some(model) = &self.req.model {
            input["model"] = Value::String(model.clone());
        }
        Ok(input)
    }

    /// Writes the turn in the caller's transaction. `asked_about` is the
    /// thread the model was given: when the tab's thread changed since
    /// (rebound, or deleted), nothing is written (`conflict`), rather than
    /// an answer stored in a conversation the model never saw.
    fn write(
        &self,
        tx: &Connection,
        assistant: Option<Assistant>,
        documents: Vec<crate::knowledge::search::SearchItem>,
        asked_about: Option<&str>,
    ) -> Result<ChatResponse> {
        self.check_links(tx)?;
        let now = now_ms();
        let resolved = self.resolve(tx)?;
        if let Some(asked) = asked_about {
            let now_resolves_to = resolved.as_deref().unwrap_or(self.new_thread_id.as_str());
            if now_resolves_to != asked {
                return Err(Error::conflict(
                    "the tab's thread changed while the model answered; nothing was written",
                ));
            }
        }
        let thread_id = match resolved {
            Some(id) => id,
            None => {
                let origin = if self.req.tab_id.is_some() {
                    "browser"
                } else {
                    "chat"
                };
                let new = NewThread {
                    id: Some(self.new_thread_id.clone()),
                    origin: Some(origin.to_owned()),
                    ..NewThread::default()
                };
                threads::insert(tx, new, now)?.id
            }
        };
        let tab = match &self.req.tab_id {
            Some(tab) => Some(self.attach_tab(tx, tab.as_str(), &thread_id, now)?),
            None => None,
        };
        // The user message is the thread's newest as it is written (the
        // context "ends with it"), also when messages were appended since
        // the turn began.
        let newest: Option<Millis> = tx.query_row(
            "SELECT max(created_at) FROM llm_messages WHERE thread_id = ?1",
            [&thread_id],
            |r| r.get(0),
        )?;
        let user_at = newest.map_or(self.started_at, |n| n.max(self.started_at));
        let mut news = vec![self.user_message(&thread_id, user_at)];
        if let Some(a) = assistant {
            news.push(NewMessage {
                id: None,
                thread_id: thread_id.clone(),
                parent_id: Some(self.user_message_id.clone()),
                role: Role::Assistant,
                content: a.content,
                tokens: a.tokens,
                created_at: Some(Timestamp(now.max(user_at))),
                metadata: Metadata(model_metadata(a.model)),
            });
        }
        let mut written = messages::insert_all(tx, news, now)?.into_iter();
        let user_message = written
            .next()
            .ok_or_else(|| Error::internal("user message not written"))?;
        let assistant_message = written.next();
        // The context is counted as of the user message: the latest
        // messages without the assistant's answer.
        let n = self.req.context_messages.get();
        let mut context_messages = messages::latest(tx, &thread_id, n + 1)?;
        if let Some(a) = &assistant_message {
            context_messages.retain(|m| m.id != a.id);
        }
        if context_messages.len() > n {
            context_messages.drain(..context_messages.len() - n);
        }
        for id in &self.req.task_ids {
            tasks::link_to_thread(tx, id.as_str(), &thread_id, now)?;
        }
        for id in &self.req.memory_ids {
            memory::link_to_thread(tx, id.as_str(), &thread_id, now)?;
        }
        let memories = memory::of_thread(tx, &thread_id, CONTEXT_MEMORIES)?;
        Ok(ChatResponse {
            thread_id,
            tab_id: self.req.tab_id.as_ref().map(Id::to_string),
            user_message,
            assistant_message,
            context: ChatContext {
                messages: context_messages,
                memories,
                tab,
                documents,
            },
        })
    }

    /// Creates the tab if needed; binds it to the thread when it has no
    /// live thread (a tab bound to another thread stays there: moving it is
    /// `tabs.bind_thread`'s job).
    fn attach_tab(
        &self,
        tx: &Connection,
        tab_id: &str,
        thread_id: &str,
        now: Millis,
    ) -> Result<Tab> {
        let bound = tabs::get(tx, tab_id)?.and_then(|t| t.thread_id);
        let live = match &bound {
            Some(id) => threads::load(tx, id)?.is_some(),
            None => false,
        };
        if live {
            tabs::get(tx, tab_id)?.ok_or_else(|| Error::internal("tab vanished"))
        } else {
            tab_binding::bind(tx, tab_id, thread_id, now)
        }
    }
}

/// The assistant message's metadata: `{model}` when a model is known.
fn model_metadata(model: Option<String>) -> Map<String, Value> {
    let mut map = Map::new();
    if let Some(model) = model {
        map.insert("model".to_owned(), Value::String(model));
    }
    map
}

/// Reads the model's `{content, model?, tokens?}`; anything else is
/// `internal` (the host broke the callback contract).
fn parse_reply(value: Value, requested: &Option<String>) -> Result<Assistant> {
    let reply: ModelReply = serde_json::from_value(value).map_err(|_| {
        Error::internal("the model callback returned no {content, model?, tokens?}")
    })?;
    if reply.content.trim().is_empty() {
        return Err(Error::internal("the model callback returned empty content"));
    }
    Ok(Assistant {
        content: reply.content,
        model: reply.model.or_else(|| requested.clone()),
        tokens: reply.tokens,
    })
}
