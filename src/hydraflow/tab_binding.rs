//! `tabs.bind_thread` / `tabs.unbind_thread`: tie a browser tab to a chat
//! thread. They live in HydraFlow because binding may create the thread;
//! the tab rows themselves belong to `browser::tabs`.

use super::threads::{self, NewThread, Thread};
use crate::browser::tabs::{self, Tab};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::types::{now_ms, Id, Millis};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// `tabs.bind_thread`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    pub tab_id: Id,
    pub thread_id: Option<Id>,
    pub title: Option<String>,
}

/// `{tab, thread, thread_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BindResponse {
    pub tab: Tab,
    pub thread: Thread,
    pub thread_id: String,
}

/// `tabs.bind_thread`: creates the tab if needed and binds it to the given
/// thread (which must exist; its fields, `title` included, are left alone)
/// or to a new thread (origin `"browser"`, title `title`). A tab bound
/// elsewhere is rebound.
pub fn bind_thread(profile: &Profile, req: BindRequest) -> Result<BindResponse> {
    profile.db().write(|tx| {
        let now = now_ms();
        let thread = match &req.thread_id {
            Some(id) => threads::require(tx, id.as_str(), "thread_id")?,
            None => threads::insert(
                tx,
                NewThread {
                    title: req.title.clone(),
                    origin: Some("browser".to_owned()),
                    ..NewThread::default()
                },
                now,
            )?,
        };
        let tab = bind(tx, req.tab_id.as_str(), &thread.id, now)?;
        Ok(BindResponse {
            tab,
            thread_id: thread.id.clone(),
            thread,
        })
    })
}

/// Creates the tab if needed and binds it to `thread_id`; returns the tab.
pub(crate) fn bind(conn: &Connection, tab_id: &str, thread_id: &str, now: Millis) -> Result<Tab> {
    tabs::ensure(conn, tab_id, now)?;
    tabs::set_thread(conn, tab_id, Some(thread_id), now)?;
    tabs::get(conn, tab_id)?.ok_or_else(|| Error::internal("tab vanished inside its transaction"))
}

/// `tabs.unbind_thread`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnbindRequest {
    pub tab_id: Id,
}

/// `{tab}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TabResponse {
    pub tab: Tab,
}

/// `tabs.unbind_thread`: the tab's `thread_id` becomes null; the thread
/// stays. Unknown tab: `not_found`.
pub fn unbind_thread(profile: &Profile, req: UnbindRequest) -> Result<TabResponse> {
    profile.db().write(|tx| {
        let id = req.tab_id.as_str();
        if tabs::get(tx, id)?.is_none() {
            return Err(Error::not_found("tab", "tab_id"));
        }
        tabs::set_thread(tx, id, None, now_ms())?;
        let tab = tabs::get(tx, id)?
            .ok_or_else(|| Error::internal("tab vanished inside its transaction"))?;
        Ok(TabResponse { tab })
    })
}
