//! The operation registry: every operation of the contract, declared once.
//!
//! One line per operation gives its name, the typed method of [`Profile`]
//! that calls it, its request and response types, its handler, whether it
//! only reads, a one-line summary and the error codes it can return beyond
//! [`ErrorCode::UNIVERSAL`]. From this table come:
//! - [`call_json`], the JSON dispatcher behind `hydra_call`, the CLI and the
//!   bindings;
//! - the typed Rust API (`profile.threads_create(req)`, ...);
//! - [`OPERATIONS`], the catalogue `meta.operations` returns, with a JSON
//!   Schema of each request and response derived from the Rust types;
//! - one C function `hydra_<method>` per operation (`crate::ffi` expands
//!   [`operation_table!`] with its own macro, so the table is read by the
//!   compiler, never parsed as text);
//! - the generated files (`include/hydra_core.h`, `docs/operations.md`),
//!   written by `scripts/generate` from [`OPERATIONS`].
//!
//! Adding an operation is one line here plus its handler; then run
//! `scripts/generate`.

use crate::error::{Error, ErrorCode, Result};
use crate::profile::{Domain, OpenOptions, Profile};
use once_cell::sync::Lazy;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// The largest request the library reads (16 MiB).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// One entry of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The dotted name (`"history.purge"`).
    pub name: &'static str,
    /// The C function that runs it (`"hydra_history_purge"`).
    pub c_function: &'static str,
    /// True exactly when the operation never writes.
    pub read_only: bool,
    /// One line for people.
    pub summary: &'static str,
    /// The codes it can return beyond [`ErrorCode::UNIVERSAL`].
    pub errors: &'static [ErrorCode],
    /// JSON Schema (draft 2020-12) of its request, as it is read.
    pub request_schema: fn() -> Value,
    /// JSON Schema (draft 2020-12) of its response data, as it is written.
    pub response_schema: fn() -> Value,
    /// Decodes a request without running it: the same checks, in the same
    /// order, as a call (used to prove the documented examples valid).
    pub check_request: fn(&[u8]) -> Result<()>,
}

/// One item of `meta.operations`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OperationInfo {
    /// The dotted name (`"history.purge"`).
    pub name: &'static str,
    /// True exactly when the operation never writes.
    pub read_only: bool,
    /// One line for people.
    pub summary: &'static str,
    /// The error codes it can return beyond the universal ones
    /// (`invalid_json`, `invalid_argument`, `payload_too_large`, `closed`,
    /// `internal`, `io`, `busy`).
    pub errors: Vec<ErrorCode>,
    /// JSON Schema (draft 2020-12) of the request.
    pub request_schema: Value,
    /// JSON Schema (draft 2020-12) of the response data.
    pub response_schema: Value,
}

impl Operation {
    /// Its catalogue entry, with the schemas generated.
    pub fn info(&self) -> OperationInfo {
        OperationInfo {
            name: self.name,
            read_only: self.read_only,
            summary: self.summary,
            errors: self.errors.to_vec(),
            request_schema: (self.request_schema)(),
            response_schema: (self.response_schema)(),
        }
    }
}

/// The schema of a request type: what deserialization accepts (fields with
/// a default are optional).
fn request_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// The schema of a response type: what serialization writes.
fn response_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

fn check_request<Req: DeserializeOwned + JsonSchema + 'static>(request: &[u8]) -> Result<()> {
    parse_operation_request::<Req>(request).map(drop)
}

/// An operation's request: [`parse_request`], then the array check below.
fn parse_operation_request<Req: DeserializeOwned + JsonSchema + 'static>(
    request: &[u8],
) -> Result<Req> {
    let parsed = parse_request::<Req>(request)?;
    refuse_arrays_for_objects::<Req>(request)?;
    Ok(parsed)
}

/// serde's derived structs also read a JSON array, field by field in order
/// (`"retrieve": ["words"]` as `{"query": "words"}`); the contract wants a
/// wrong JSON type refused. serde has no switch for it, so a request that
/// parsed and holds an array at all (most hold none: one byte scan) is
/// walked beside its request schema, and an array where the schema allows
/// only an object is `invalid_argument` naming the field. The top level
/// is refused earlier ([`parse_request`]).
fn refuse_arrays_for_objects<Req: JsonSchema + 'static>(request: &[u8]) -> Result<()> {
    if memchr::memchr(b'[', request).is_none() {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(request) else {
        return Ok(());
    };
    let schema = cached_request_schema::<Req>();
    let mut path = String::new();
    let Some(field) = array_for_object(&value, &schema, &schema, &mut path) else {
        return Ok(());
    };
    let message = format!("{field}: expected an object");
    Err(invalid_field(field, message))
}

/// [`request_schema`] of `Req`, generated once per type.
fn cached_request_schema<Req: JsonSchema + 'static>() -> std::sync::Arc<Value> {
    static SCHEMAS: Lazy<parking_lot::Mutex<HashMap<std::any::TypeId, std::sync::Arc<Value>>>> =
        Lazy::new(Default::default);
    SCHEMAS
        .lock()
        .entry(std::any::TypeId::of::<Req>())
        .or_insert_with(|| std::sync::Arc::new(request_schema::<Req>()))
        .clone()
}

/// The JSON path (as `details.field` writes it) of the first array in
/// `value` where `schema` allows only an object; `root` holds the `$defs`.
fn array_for_object(
    value: &Value,
    schema: &Value,
    root: &Value,
    path: &mut String,
) -> Option<String> {
    if !(value.is_array() || value.is_object()) {
        return None;
    }
    let alternatives = alternatives(schema, root);
    match value {
        Value::Array(items) => {
            let allows = |kind: &str| alternatives.iter().any(|s| schema_allows(s, kind));
            if !allows("array") && allows("object") {
                return Some(path.clone());
            }
            let item_schema = alternatives
                .iter()
                .find(|s| schema_allows(s, "array"))
                .and_then(|s| s.get("items"));
            let item_schema = item_schema?;
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = array_for_object(item, item_schema, root, path);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                let field_schema = alternatives.iter().find_map(|s| {
                    s.get("properties")
                        .and_then(|p| p.get(key))
                        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
                });
                let Some(field_schema) = field_schema else {
                    continue;
                };
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let found = array_for_object(field, field_schema, root, path);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ => None,
    }
}

/// The schemas a value may match: `schema` itself with its `$ref`
/// followed, or each branch of its `anyOf` / `oneOf` / `allOf`.
fn alternatives<'s>(schema: &'s Value, root: &'s Value) -> Vec<&'s Value> {
    alternatives_within(schema, root, 8)
}

/// [`alternatives`], following at most `depth` nested references or
/// branches (a recursive schema must not recurse forever).
fn alternatives_within<'s>(schema: &'s Value, root: &'s Value, depth: u32) -> Vec<&'s Value> {
    if depth == 0 {
        return vec![&Value::Bool(true)];
    }
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name))
            .unwrap_or(schema),
        None => schema,
    };
    let branches: Vec<&Value> = ["anyOf", "oneOf", "allOf"]
        .iter()
        .filter_map(|k| resolved.get(*k).and_then(Value::as_array))
        .flatten()
        .flat_map(|branch| alternatives_within(branch, root, depth - 1))
        .collect();
    if branches.is_empty() {
        vec![resolved]
    } else {
        branches
    }
}

/// Whether `schema` (one alternative) admits a JSON value of type `kind`
/// (`"array"` or `"object"`): by its `type`, or by the keywords of that
/// type when it names none; a schema without either admits anything.
fn schema_allows(schema: &Value, kind: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == kind,
        Some(Value::Array(types)) => types.iter().any(|t| t == kind),
        _ => match kind {
            "object" => true,
            _ => {
                !(schema.get("properties").is_some()
                    || schema.get("enum").is_some()
                    || schema.get("const").is_some())
            }
        },
    }
}

macro_rules! operations {
    ($( $name:literal => $method:ident($req:ty) -> $resp:ty = $handler:path, $access:ident, $summary:literal, errors[$($error:ident),* $(,)?]; )*) => {
        /// Every operation, in registry order.
        pub const OPERATIONS: &[Operation] = &[
            $(Operation {
                name: $name,
                c_function: concat!("hydra_", stringify!($method)),
                read_only: operations!(@read_only $access),
                summary: $summary,
                errors: &[$(crate::error::code::$error),*],
                request_schema: request_schema::<$req>,
                response_schema: response_schema::<$resp>,
                check_request: check_request::<$req>,
            },)*
        ];

        /// Runs the operation `name` on a JSON request; returns the JSON text
        /// of its response data.
        pub fn call_json(profile: &Profile, name: &str, request: &[u8]) -> Result<String> {
            match name {
                $($name => run_json::<$req, $resp>(profile, request, $handler),)*
                _ => Err(Error::new(ErrorCode::UnknownOperation, "unknown operation")
                    .with_detail("operation", name.chars().take(128).collect::<String>())),
            }
        }

        /// The typed Rust API: one method per operation.
        impl Profile {
            $(
                #[doc = concat!("`", $name, "`: ", $summary)]
                pub fn $method(&self, request: $req) -> Result<$resp> {
                    let _call = self.enter()?;
                    $handler(self, request)
                }
            )*
        }
    };
    (@read_only read) => { true };
    (@read_only write) => { false };
}

/// **The table.** Expands to `$consumer! { <one line per operation> }`, so
/// that each face is a macro over the same lines: [`operations!`] here, the
/// C functions in `crate::ffi`. Line shape:
/// `"name" => method(Request) -> Response = handler, read|write, "summary", errors[code, ...];`
/// with the codes as they appear on the wire (see `crate::error::code`).
macro_rules! operation_table {
    ($consumer:ident) => {
        $consumer! {
            "meta.version" => meta_version(crate::meta::VersionRequest) -> crate::meta::Version = crate::meta::version, read, "Library, ABI, schema and SQLite versions.", errors[];
            "meta.operations" => meta_operations(OperationsRequest) -> OperationsResponse = operations_catalogue, read, "Every operation with its access, summary, error codes and request and response JSON Schemas.", errors[];
            "profile.info" => profile_info(crate::meta::ProfileInfoRequest) -> crate::meta::ProfileInfo = crate::meta::profile_info, read, "Profile directory, schema version and database file sizes.", errors[];
            "overview" => overview(crate::overview::OverviewRequest) -> crate::overview::Overview = crate::overview::overview, read, "Counts of every domain and storage sizes (walks cached for 300 s).", errors[];
            "profile.maintenance" => profile_maintenance(crate::meta::MaintenanceRequest) -> crate::meta::MaintenanceReport = crate::meta::maintenance, write, "Optimize, checkpoint and optionally vacuum the database.", errors[];
            "threads.create" => threads_create(crate::hydraflow::threads::CreateRequest) -> crate::hydraflow::threads::ThreadResponse = crate::hydraflow::threads::create, write, "Create a thread.", errors[conflict];
            "threads.get" => threads_get(crate::hydraflow::IdRequest) -> crate::hydraflow::threads::ThreadResponse = crate::hydraflow::threads::get, read, "Get a thread by id.", errors[not_found];
            "threads.update" => threads_update(crate::hydraflow::threads::UpdateRequest) -> crate::hydraflow::threads::ThreadResponse = crate::hydraflow::threads::update, write, "Update a thread's title, description or metadata.", errors[not_found];
            "threads.list" => threads_list(crate::hydraflow::threads::ListRequest) -> crate::types::Page<crate::hydraflow::threads::Thread> = crate::hydraflow::threads::list, read, "List threads, newest updated first.", errors[];
            "threads.delete" => threads_delete(crate::hydraflow::IdRequest) -> crate::privacy::Purged<crate::hydraflow::threads::DeleteResponse> = crate::hydraflow::threads::delete, write, "Delete a thread with its messages, tasks and memories; detach its tabs and jobs.", errors[not_found];
            "messages.append" => messages_append(crate::hydraflow::messages::AppendRequest) -> crate::hydraflow::messages::MessageResponse = crate::hydraflow::messages::append, write, "Append a message to a thread.", errors[not_found, conflict];
            "messages.list" => messages_list(crate::hydraflow::messages::ListRequest) -> crate::types::Page<crate::hydraflow::messages::Message> = crate::hydraflow::messages::list, read, "List a thread's messages, oldest or newest first.", errors[not_found];
            "messages.delete" => messages_delete(crate::hydraflow::IdRequest) -> crate::privacy::Purged<crate::hydraflow::DeletedResponse> = crate::hydraflow::messages::delete, write, "Delete a message.", errors[not_found];
            "chat" => chat(crate::hydraflow::chat::ChatRequest) -> crate::hydraflow::chat::ChatResponse = crate::hydraflow::chat::chat, write, "One chat turn: user message, assistant reply or model answer, and context.", errors[not_found, conflict];
            "hydraflow.context" => hydraflow_context(crate::hydraflow::context::ContextRequest) -> crate::hydraflow::context::ThreadContext = crate::hydraflow::context::context, read, "A thread with its recent messages, open tasks, memories and bound tabs.", errors[not_found];
            "tasks.create" => tasks_create(crate::hydraflow::tasks::CreateRequest) -> crate::hydraflow::tasks::TaskResponse = crate::hydraflow::tasks::create, write, "Create a task.", errors[not_found, conflict];
            "tasks.get" => tasks_get(crate::hydraflow::IdRequest) -> crate::hydraflow::tasks::TaskResponse = crate::hydraflow::tasks::get, read, "Get a task by id.", errors[not_found];
            "tasks.update" => tasks_update(crate::hydraflow::tasks::UpdateRequest) -> crate::hydraflow::tasks::TaskResponse = crate::hydraflow::tasks::update, write, "Update a task; a status change records an event.", errors[not_found];
            "tasks.list" => tasks_list(crate::hydraflow::tasks::ListRequest) -> crate::types::Page<crate::hydraflow::tasks::Task> = crate::hydraflow::tasks::list, read, "List tasks, newest updated first.", errors[not_found];
            "tasks.delete" => tasks_delete(crate::hydraflow::IdRequest) -> crate::privacy::Purged<crate::hydraflow::DeletedResponse> = crate::hydraflow::tasks::delete, write, "Delete a task and its events.", errors[not_found];
            "tasks.add_event" => tasks_add_event(crate::hydraflow::tasks::AddEventRequest) -> crate::hydraflow::tasks::EventResponse = crate::hydraflow::tasks::add_event, write, "Record an event on a task.", errors[not_found];
            "tasks.events" => tasks_events(crate::hydraflow::tasks::EventsRequest) -> crate::types::Page<crate::hydraflow::tasks::TaskEvent> = crate::hydraflow::tasks::events, read, "List a task's events, oldest first.", errors[not_found];
            "memory.upsert" => memory_upsert(crate::hydraflow::memory::UpsertRequest) -> crate::hydraflow::memory::UpsertResponse = crate::hydraflow::memory::upsert, write, "Insert or update a memory, optionally with an embedding.", errors[not_found];
            "memory.get" => memory_get(crate::hydraflow::IdRequest) -> crate::hydraflow::memory::MemoryResponse = crate::hydraflow::memory::get, read, "Get a memory by id.", errors[not_found];
            "memory.list" => memory_list(crate::hydraflow::memory::ListRequest) -> crate::types::Page<crate::hydraflow::memory::Memory> = crate::hydraflow::memory::list, read, "List memories, newest first.", errors[not_found];
            "memory.delete" => memory_delete(crate::hydraflow::memory::DeleteRequest) -> crate::privacy::Purged<crate::hydraflow::DeletedResponse> = crate::hydraflow::memory::delete, write, "Delete a memory by id or by filters.", errors[not_found, filter_required];
            "memory.search" => memory_search(crate::hydraflow::search::SearchRequest) -> crate::hydraflow::search::SearchResponse = crate::hydraflow::search::search, write, "Search memories by embedding or full text.", errors[not_found];
            "tabs.bind_thread" => tabs_bind_thread(crate::hydraflow::tab_binding::BindRequest) -> crate::hydraflow::tab_binding::BindResponse = crate::hydraflow::tab_binding::bind_thread, write, "Bind a tab to a thread, creating the tab or thread if needed.", errors[not_found];
            "tabs.unbind_thread" => tabs_unbind_thread(crate::hydraflow::tab_binding::UnbindRequest) -> crate::hydraflow::tab_binding::TabResponse = crate::hydraflow::tab_binding::unbind_thread, write, "Unbind a tab from its thread.", errors[not_found];
            "tabs.upsert" => tabs_upsert(crate::browser::tabs::UpsertRequest) -> crate::browser::tabs::TabResponse = crate::browser::tabs::upsert, write, "Create a tab or update its thread binding.", errors[not_found];
            "tabs.get" => tabs_get(crate::browser::tabs::IdRequest) -> crate::browser::tabs::TabResponse = crate::browser::tabs::get_op, read, "One tab by id.", errors[not_found];
            "tabs.list" => tabs_list(crate::browser::tabs::ListRequest) -> crate::types::Page<crate::browser::tabs::Tab> = crate::browser::tabs::list, read, "Tabs, newest updated_at first.", errors[];
            "tabs.close" => tabs_close(crate::browser::tabs::IdRequest) -> crate::privacy::Purged<crate::browser::tabs::CloseResponse> = crate::browser::tabs::close, write, "Remove a tab and detach its history rows.", errors[not_found];
            "visits.record" => visits_record(crate::browser::visits::VisitInput) -> crate::browser::visits::RecordResponse = crate::browser::visits::record, write, "Record one visit (deduplicated by url and time).", errors[not_found];
            "visits.record_batch" => visits_record_batch(crate::browser::visits::RecordBatchRequest) -> crate::browser::visits::RecordBatchResponse = crate::browser::visits::record_batch, write, "Record up to 10,000 visits in one transaction, all or nothing.", errors[not_found];
            "history.list" => history_list(crate::browser::history::ListRequest) -> crate::types::Page<crate::browser::history::Visit> = crate::browser::history::list, read, "Visits newest first, filtered by text, host, time or tab.", errors[not_found];
            "history.visited" => history_visited(crate::browser::history::VisitedRequest) -> crate::browser::history::VisitedResponse = crate::browser::history::visited, read, "Whether each URL has been visited.", errors[];
            "history.delete" => history_delete(crate::browser::history::DeleteRequest) -> crate::privacy::Purged<crate::browser::history::DeleteResponse> = crate::browser::history::delete, write, "Delete one visit, leaving no trace in the profile files.", errors[not_found];
            "history.purge" => history_purge(crate::browser::history::PurgeRequest) -> crate::privacy::Purged<crate::browser::history::PurgeResponse> = crate::browser::history::purge, write, "Delete visits by host and time range (or all), leaving no trace.", errors[filter_required];
            "history.import" => history_import(crate::browser::import::ImportRequest) -> crate::browser::import::ImportResponse = crate::browser::import::import, write, "Import visits from a Chrome or Firefox history file, as a job.", errors[not_found, corrupt, cancelled, interrupted];
            "bookmarks.add" => bookmarks_add(crate::browser::bookmarks::AddRequest) -> crate::browser::bookmarks::BookmarkResponse = crate::browser::bookmarks::add, write, "Add a bookmark.", errors[not_found];
            "bookmarks.list" => bookmarks_list(crate::browser::bookmarks::ListRequest) -> crate::types::Page<crate::browser::bookmarks::Bookmark> = crate::browser::bookmarks::list, read, "Bookmarks newest first, in one folder or all.", errors[not_found];
            "bookmarks.update" => bookmarks_update(crate::browser::bookmarks::UpdateRequest) -> crate::browser::bookmarks::BookmarkResponse = crate::browser::bookmarks::update, write, "Change a bookmark's url, title, folder or tags.", errors[not_found];
            "bookmarks.delete" => bookmarks_delete(crate::browser::bookmarks::IdRequest) -> crate::privacy::Purged<crate::browser::bookmarks::DeleteResponse> = crate::browser::bookmarks::delete, write, "Delete a bookmark, leaving no trace.", errors[not_found];
            "bookmarks.create_folder" => bookmarks_create_folder(crate::browser::bookmarks::CreateFolderRequest) -> crate::browser::bookmarks::FolderResponse = crate::browser::bookmarks::create_folder, write, "Create a bookmark folder.", errors[not_found];
            "bookmarks.delete_folder" => bookmarks_delete_folder(crate::browser::bookmarks::IdRequest) -> crate::privacy::Purged<crate::browser::bookmarks::DeleteFolderResponse> = crate::browser::bookmarks::delete_folder, write, "Delete a folder with its subfolders and bookmarks.", errors[not_found];
            "documents.upsert" => documents_upsert(crate::knowledge::documents::UpsertRequest) -> crate::knowledge::documents::UpsertResponse = crate::knowledge::documents::upsert, write, "Store a page's text by url, cut into chunks (with optional embeddings).", errors[not_found, conflict];
            "documents.get" => documents_get(crate::knowledge::documents::GetRequest) -> crate::knowledge::documents::GetResponse = crate::knowledge::documents::get, read, "One document by id or url, with its text and optionally its chunks.", errors[not_found];
            "documents.list" => documents_list(crate::knowledge::documents::ListRequest) -> crate::types::Page<crate::knowledge::documents::Document> = crate::knowledge::documents::list, read, "Documents newest updated first, filtered by host or source.", errors[];
            "documents.delete" => documents_delete(crate::knowledge::documents::DeleteRequest) -> crate::privacy::Purged<crate::knowledge::documents::DeleteResponse> = crate::knowledge::documents::delete, write, "Delete documents by id, url, host or all, leaving no trace.", errors[filter_required, not_found];
            "documents.search" => documents_search(crate::knowledge::search::SearchRequest) -> crate::knowledge::search::SearchResponse = crate::knowledge::search::search, read, "Search chunks by words (BM25), embedding (cosine) or both (rank fusion).", errors[];
            "documents.embed" => documents_embed(crate::knowledge::embed::EmbedRequest) -> crate::knowledge::embed::EmbedResponse = crate::knowledge::embed::embed, write, "Embed every chunk lacking a model's embedding through the host's embedder, as a job.", errors[not_found, no_handler, cancelled, interrupted];
            "privacy.forget_site" => privacy_forget_site(crate::knowledge::forget::ForgetSiteRequest) -> crate::privacy::Purged<crate::knowledge::forget::ForgetSiteResponse> = crate::knowledge::forget::forget_site, write, "Forget a site: its visits, documents, chunks and embeddings; clear its tabs, keep bookmarks.", errors[];
            "bundle.export" => bundle_export(crate::bundle::ExportRequest) -> crate::bundle::JobSubmitted = crate::bundle::export, write, "Export components of the profile to a verifiable bundle file, as a job.", errors[not_found, cancelled, interrupted];
            "bundle.import" => bundle_import(crate::bundle::ImportRequest) -> crate::bundle::JobSubmitted = crate::bundle::import, write, "Verify a bundle, then import it in one transaction, as a job.", errors[not_found, corrupt, incompatible_version, conflict, cancelled, interrupted];
            "bundle.list" => bundle_list(crate::bundle::ListRequest) -> crate::bundle::BundleList = crate::bundle::list, read, "The bundles in the profile's bundles folder with their manifests.", errors[];
            "jobs.list" => jobs_list(crate::jobs::ListRequest) -> crate::types::Page<crate::jobs::Job> = crate::jobs::list, read, "List jobs newest first, filtered by status and type.", errors[];
            "jobs.get" => jobs_get(crate::jobs::JobIdRequest) -> crate::jobs::JobResponse = crate::jobs::get, read, "Get one job.", errors[not_found];
            "jobs.status" => jobs_status(crate::jobs::JobIdRequest) -> crate::jobs::StatusResponse = crate::jobs::status, read, "A job's status and progress fraction from the ledger.", errors[not_found];
            "jobs.wait" => jobs_wait(crate::jobs::WaitRequest) -> crate::jobs::JobResponse = crate::jobs::wait, read, "Wait until a job is finished, up to a timeout.", errors[not_found, timeout];
            "jobs.cancel" => jobs_cancel(crate::jobs::JobIdRequest) -> crate::jobs::JobResponse = crate::jobs::cancel, write, "Cancel a queued job, or ask a running one to stop.", errors[not_found, conflict];
            "jobs.progress" => jobs_progress(crate::jobs::ProgressRequest) -> crate::jobs::JobResponse = crate::jobs::progress, write, "Report progress of a running job.", errors[not_found, conflict, cancelled];
            "jobs.prune" => jobs_prune(crate::jobs::PruneRequest) -> crate::privacy::Purged<crate::jobs::PruneResponse> = crate::jobs::prune, write, "Delete finished jobs older than a number of days.", errors[];
            "refresh.focused_crawl" => refresh_focused_crawl(crate::jobs::FocusedCrawlRequest) -> crate::jobs::SubmittedResponse = crate::jobs::focused_crawl, write, "Queue a focused crawl run by the host's handler.", errors[not_found, no_handler];
            "repo.register" => repo_register(crate::repo::registry::RegisterRequest) -> crate::repo::registry::RepoResponse = crate::repo::registry::register, write, "Register a repository (or update one): root, permissions, check command, budgets.", errors[];
            "repo.unregister" => repo_unregister(crate::repo::registry::UnregisterRequest) -> crate::repo::registry::UnregisterResponse = crate::repo::registry::unregister, write, "Forget a repository and its change ledger; its files are untouched.", errors[not_found];
            "repo.list" => repo_list(crate::repo::registry::ListRequest) -> crate::repo::registry::ListResponse = crate::repo::registry::list, read, "Every registered repository.", errors[];
            "repo.status" => repo_status(crate::repo::status::StatusRequest) -> crate::repo::status::RepoStatus = crate::repo::status::status, read, "Branch, upstream, ahead/behind and changed paths of a repository (git).", errors[not_found, forbidden];
            "repo.changes" => repo_changes(crate::repo::registry::ChangesRequest) -> crate::types::Page<crate::repo::registry::Change> = crate::repo::registry::changes, read, "The change ledger of a repository, newest first.", errors[not_found];
            "repo.propose_patch" => repo_propose_patch(crate::repo::patch::PatchRequest) -> crate::repo::patch::ProposeResponse = crate::repo::patch::propose, read, "Check and measure a patch against the path rule, budgets and preconditions; writes nothing.", errors[not_found, forbidden, path_escape, budget_exceeded, conflict];
            "repo.apply_patch" => repo_apply_patch(crate::repo::patch::PatchRequest) -> crate::repo::patch::ApplyResponse = crate::repo::patch::apply, write, "Apply a patch all or nothing, recorded as a job and a change.", errors[not_found, forbidden, path_escape, budget_exceeded, conflict, cancelled];
            "repo.run_checks" => repo_run_checks(crate::repo::checks::ChecksRequest) -> crate::repo::checks::ChecksResponse = crate::repo::checks::run_checks, write, "Run the repository's configured check command in a sandbox, as a job.", errors[not_found, forbidden, no_check_command, command_not_allowed, check_failed, timeout, cancelled, interrupted];
        }
    };
}
pub(crate) use operation_table;

operation_table!(operations);

/// The built-in job types: run by the library on its worker pool. One line
/// per type (each domain adds its own); `rerun_after_crash` says whether a
/// job left `running` by a crash is queued again at the next open instead of
/// ending `failed` / `interrupted`. A host handler registered for one of
/// these names runs its jobs instead (see `crate::jobs`).
pub const JOB_TYPES: &[crate::jobs::JobType] = &[
    crate::jobs::JobType {
        name: crate::browser::import::JOB_TYPE,
        rerun_after_crash: false,
        run: crate::browser::import::run_job,
    },
    crate::jobs::JobType {
        name: crate::bundle::EXPORT_JOB,
        rerun_after_crash: false,
        run: crate::bundle::run_export,
    },
    crate::jobs::JobType {
        name: crate::bundle::IMPORT_JOB,
        rerun_after_crash: false,
        run: crate::bundle::run_import,
    },
    crate::jobs::JobType {
        name: crate::knowledge::embed::JOB_TYPE,
        rerun_after_crash: false,
        run: crate::knowledge::embed::run_job,
    },
    crate::jobs::JobType {
        name: crate::repo::checks::CHECKS_JOB_TYPE,
        rerun_after_crash: false,
        run: crate::repo::checks::run_queued_job,
    },
];

/// What each layer above the core asks of the profile at open and close
/// (recovery, temp-file folders, per-profile state, start and close hooks),
/// in the order the profile runs them: the repo journal's recovery finishes
/// the patches whose swaps were durable before the jobs ledger fails the
/// other running jobs as interrupted.
pub(crate) const DOMAINS: &[Domain] = &[
    Domain {
        name: "repo",
        recover: Some(crate::repo::patch::recover),
        temp_dirs: &[crate::repo::journal::JOURNAL_DIR],
        ..Domain::NONE
    },
    crate::browser::DOMAIN,
    Domain {
        name: "bundle",
        temp_dirs: &[crate::bundle::BUNDLES_DIR],
        ..Domain::NONE
    },
    crate::knowledge::DOMAIN,
    Domain {
        name: "jobs",
        repair: Some(|db| crate::jobs::Jobs::recover(db, JOB_TYPES).map(drop)),
        state: Some(|options| crate::jobs::state(options, JOB_TYPES)),
        start: Some(crate::jobs::start),
        close: Some(crate::jobs::close),
        ..Domain::NONE
    },
];

impl Profile {
    /// Opens (creating or migrating) the profile in `options.profile_dir`:
    /// takes its lock, migrates the database, recovers what a crash
    /// interrupted and starts the job workers.
    pub fn open(options: OpenOptions) -> Result<Profile> {
        Profile::open_with(options, DOMAINS)
    }
}

/// The job types the library queues but only a host handler runs
/// (`hydra_register_job_handler`). Their jobs never re-run after a crash;
/// while no handler is registered, operations that queue them fail with
/// `no_handler`, and queued ones recovered at open wait for a handler.
pub const HOST_JOB_TYPES: &[&str] = &[crate::jobs::FOCUSED_CRAWL];

/// Request of `meta.operations` (no fields).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationsRequest {}

/// Response of `meta.operations`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OperationsResponse {
    pub items: Vec<OperationInfo>,
}

/// The catalogue, generated once per process: the schemas never change
/// while the library runs.
static CATALOGUE: Lazy<Vec<OperationInfo>> =
    Lazy::new(|| OPERATIONS.iter().map(Operation::info).collect());

fn operations_catalogue(_: &Profile, _: OperationsRequest) -> Result<OperationsResponse> {
    Ok(OperationsResponse {
        items: CATALOGUE.clone(),
    })
}

/// The JSON envelope of a result: `{"ok":true,"data":...}` or
/// `{"ok":false,"error":{code,message,details}}`. `data` is the response's
/// JSON text as [`call_json`] returns it.
pub fn envelope(result: &Result<String>) -> String {
    match result {
        Ok(data) => format!("{{\"ok\":true,\"data\":{data}}}"),
        Err(e) => {
            let error = serde_json::to_string(&e.to_public()).unwrap_or_else(|_| "{}".to_owned());
            format!("{{\"ok\":false,\"error\":{error}}}")
        }
    }
}

/// The registry entry of an operation, if it exists.
pub fn find(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.name == name)
}

fn run_json<Req: DeserializeOwned + JsonSchema + 'static, Resp: Serialize>(
    profile: &Profile,
    request: &[u8],
    handler: fn(&Profile, Req) -> Result<Resp>,
) -> Result<String> {
    let request = parse_operation_request::<Req>(request)?;
    let _call = profile.enter()?;
    let response = handler(profile, request)?;
    serde_json::to_string(&response).map_err(|e| Error::internal(format!("response encoding: {e}")))
}

/// Decodes a request in the contract's order of checks: size
/// (`payload_too_large`), UTF-8 (`invalid_argument`, field `request`), JSON
/// syntax (`invalid_json`), then fields (`invalid_argument` with
/// `details.field` naming the JSON path at fault). An empty request means
/// `{}`. This is the only place a request is checked: the C ABI hands its
/// bytes here untouched. A valid request is parsed once, straight into
/// `Req` (without path tracking); only a refused one is parsed again, with
/// the path tracked, and scanned, to tell a syntax error further on
/// (`invalid_json`) from a bad field.
pub fn parse_request<Req: DeserializeOwned>(request: &[u8]) -> Result<Req> {
    if request.len() > MAX_REQUEST_BYTES {
        return Err(Error::new(
            ErrorCode::PayloadTooLarge,
            "the request is larger than 16 MiB",
        )
        .with_detail("limit_bytes", MAX_REQUEST_BYTES));
    }
    if std::str::from_utf8(request).is_err() {
        return Err(Error::invalid("request", "the request is not valid UTF-8"));
    }
    let request: &[u8] = if request.is_empty() { b"{}" } else { request };
    let invalid_json = || Error::new(ErrorCode::InvalidJson, "the request is not valid JSON");
    let is_json = || serde_json::from_slice::<serde::de::IgnoredAny>(request).is_ok();
    let starts_with_object = request
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    if !starts_with_object {
        if !is_json() {
            return Err(invalid_json());
        }
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "the request must be a JSON object",
        )
        .with_detail("field", ""));
    }
    // The usual case, a valid request: one plain parse. Only a refused one
    // is parsed again, tracking the path to name the field at fault.
    if let Ok(value) = serde_json::from_slice::<Req>(request) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(request);
    let parsed = serde_path_to_error::deserialize(&mut de);
    match parsed {
        Ok(value) if de.end().is_ok() => Ok(value),
        Ok(_) => Err(invalid_json()),
        // Valid JSON that does not fit is a field's fault, whatever serde
        // calls it: serde_json reports a number, array or `{}` given for an
        // enumeration as a syntax error ("expected value").
        Err(e) if is_json() => Err(field_error(&e)),
        Err(_) => Err(invalid_json()),
    }
}

/// For the crate's unit tests: runs `op` through [`call_json`] and answers
/// its data, panicking (with the public error) when it fails.
#[cfg(test)]
pub(crate) fn call_ok(
    profile: &Profile,
    op: &str,
    request: serde_json::Value,
) -> serde_json::Value {
    let text = call_json(profile, op, request.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{op}: {:?}", e.to_public()));
    serde_json::from_str(&text).expect("responses are JSON")
}

/// Turns a serde error into `invalid_argument` with the path of the field at
/// fault. serde's own messages quote the rejected value, which may be
/// private text, so they are reduced to what was expected.
fn field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let text = e.inner().to_string();
    let text = text.split(" at line ").next().unwrap_or_default();
    let quoted = |s: &str| s.split('`').nth(1).unwrap_or_default().to_owned();
    let (field, reason) = if text.starts_with("unknown field ") {
        // The unknown key is the caller's own text (a URL, say): it ends
        // `details.field` (serde_path_to_error's path) but never the
        // message, which names only the known part of the path.
        let segments: Vec<_> = e.path().iter().collect();
        let mut parent = String::new();
        for segment in &segments[..segments.len().saturating_sub(1)] {
            if !parent.is_empty() && !matches!(segment, serde_path_to_error::Segment::Seq { .. }) {
                parent.push('.');
            }
            parent.push_str(&segment.to_string());
        }
        let message = if parent.is_empty() {
            "unknown field".to_owned()
        } else {
            format!("{parent}: unknown field")
        };
        return invalid_field(path, message);
    } else if let Some(rest) = text.strip_prefix("missing field ") {
        (join(&quoted(rest)), "required field is missing".to_owned())
    } else if let Some(rest) = text.strip_prefix("duplicate field ") {
        // serde names a duplicate only among the known fields: no caller
        // text reaches the message.
        (join(&quoted(rest)), "given more than once".to_owned())
    } else if text.starts_with("unknown variant ") {
        let expected = text
            .split_once(", expected ")
            .map(|x| x.1)
            .unwrap_or("a listed value");
        (path, format!("not an allowed value, expected {expected}"))
    } else if text.starts_with("invalid type: ")
        || text.starts_with("invalid value: ")
        || text.starts_with("invalid length ")
    {
        let expected = text
            .split_once(", expected ")
            .map(|x| x.1)
            .unwrap_or("another value");
        (path, format!("expected {}", plain_expected(expected)))
    } else if !e.inner().is_data() {
        // A syntax error on valid JSON: a value of the wrong type for an
        // enumeration (the only case serde_json reports so).
        (
            path,
            "expected one of the listed values (a string)".to_owned(),
        )
    } else {
        (path, text.to_owned())
    };
    let message = format!("{field}: {reason}");
    invalid_field(field, message)
}

/// `invalid_argument` naming `field`; a bad entry of a list request
/// (`visits[3].url`) also names its position, as the handlers' own
/// per-entry checks do.
fn invalid_field(field: String, message: String) -> Error {
    let index = first_array_index(&field);
    let error = Error::new(ErrorCode::InvalidArgument, message).with_detail("field", field);
    match index {
        Some(i) => error.with_detail("index", i),
        None => error,
    }
}

/// serde's "expected" phrase in plain words: Rust type names (`i64`,
/// `struct Visit`, `a sequence`) mean nothing to a caller of a JSON API.
fn plain_expected(expected: &str) -> String {
    let expected = expected.trim();
    let plain = match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "f32" | "f64" => "a number",
        "a sequence" | "a tuple" => "an array",
        "a map" | "unit" => "an object",
        "a borrowed string" | "a char" => "a string",
        "a boolean" => "true or false",
        _ if expected.starts_with("struct ") || expected.starts_with("tuple struct ") => {
            "an object"
        }
        _ if expected.starts_with("enum ") => "one of the listed values",
        _ => expected,
    };
    plain.to_owned()
}

/// The index in the first segment of a field path (`visits[3].url` -> 3).
fn first_array_index(path: &str) -> Option<u64> {
    let first = path.split('.').next()?;
    let (_, rest) = first.split_once('[')?;
    rest.split_once(']')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Id, ListLimit};

    #[test]
    fn type_errors_name_json_types_not_rust_ones() {
        let message = |request: &[u8]| {
            parse_request::<Req>(request)
                .unwrap_err()
                .to_public()
                .message
        };
        assert_eq!(message(br#"{"id": 5}"#), "id: expected a string");
        assert_eq!(
            message(br#"{"id": "a", "items": {"url": 1}}"#),
            "items: expected an array"
        );
        assert_eq!(
            message(br#"{"id": "a", "items": [7]}"#),
            "items[0]: expected an object"
        );
        assert_eq!(plain_expected("i64"), "an integer");
        assert_eq!(plain_expected("u32"), "a non-negative integer");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        url: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        id: Id,
        #[serde(default)]
        limit: ListLimit,
        #[serde(default)]
        items: Vec<Inner>,
    }

    fn field_of(json: &str) -> (ErrorCode, String) {
        let e = parse_request::<Req>(json.as_bytes())
            .unwrap_err()
            .to_public();
        let field = e
            .details
            .get("field")
            .and_then(|f| f.as_str())
            .unwrap_or("-")
            .to_owned();
        (e.code, field)
    }

    #[test]
    fn checks_run_in_contract_order() {
        assert_eq!(field_of("{").0, ErrorCode::InvalidJson);
        assert_eq!(field_of("[1]").0, ErrorCode::InvalidArgument);
        assert_eq!(field_of("{}"), (ErrorCode::InvalidArgument, "id".into()));
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        let e = parse_request::<Req>(&big).unwrap_err();
        assert_eq!(e.code(), ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn utf8_and_syntax_come_before_fields() {
        let e = parse_request::<Req>(b"{\"id\":\"\xff\"}")
            .unwrap_err()
            .to_public();
        assert_eq!(
            (e.code, e.details["field"].as_str()),
            (ErrorCode::InvalidArgument, Some("request"))
        );
        // A bad field followed by broken JSON is a JSON error, not a field error.
        assert_eq!(field_of(r#"{"id":5,"limit":"#).0, ErrorCode::InvalidJson);
        assert_eq!(field_of(r#"{"id":"a"} trailing"#).0, ErrorCode::InvalidJson);
        assert_eq!(field_of("[1").0, ErrorCode::InvalidJson);
        assert_eq!(
            field_of(r#"{"id":5}"#),
            (ErrorCode::InvalidArgument, "id".into())
        );
        assert!(parse_request::<Req>(br#" {"id":"a"} "#).is_ok());
    }

    #[test]
    fn a_duplicate_key_names_its_field() {
        let e = parse_request::<Req>(br#"{"id":"a","limit":5,"limit":6}"#)
            .unwrap_err()
            .to_public();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.details["field"], "limit");
        assert_eq!(e.message, "limit: given more than once");
        let e = parse_request::<Req>(br#"{"id":"a","items":[{"url":"x","url":"y"}]}"#)
            .unwrap_err()
            .to_public();
        assert_eq!(e.details["field"], "items[0].url");
    }

    #[test]
    fn every_entry_has_schemas_and_a_c_function() {
        for op in OPERATIONS {
            assert_eq!(
                op.c_function,
                format!("hydra_{}", op.name.replace('.', "_"))
            );
            let request = (op.request_schema)();
            assert_eq!(
                request["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                op.name
            );
            assert!((op.response_schema)().is_object(), "{}", op.name);
            assert!(
                op.errors.iter().all(|e| !ErrorCode::UNIVERSAL.contains(e)),
                "{} repeats a universal code",
                op.name
            );
        }
    }

    #[test]
    fn schemas_carry_limits_defaults_and_id_rules() {
        let list = (find("threads.list").unwrap().request_schema)();
        let limit = &list["properties"]["limit"];
        assert_eq!(
            (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
            (Some(1), Some(500))
        );
        assert_eq!(limit["default"], 50);
        assert_eq!(list["additionalProperties"], false);
        let get = (find("threads.get").unwrap().request_schema)();
        assert_eq!(get["required"], serde_json::json!(["id"]));
        let id = &get["$defs"]["Id"];
        assert_eq!(id["maxLength"], 128);
        assert!(id["pattern"].as_str().is_some());
    }

    #[test]
    fn unknown_fields_are_named_at_any_depth() {
        assert_eq!(
            field_of(r#"{"id":"a","colour":1}"#),
            (ErrorCode::InvalidArgument, "colour".into())
        );
        assert_eq!(
            field_of(r#"{"id":"a","items":[{"url":"x"},{"url":"y","tilte":"t"}]}"#),
            (ErrorCode::InvalidArgument, "items[1].tilte".into())
        );
        let e = parse_request::<Req>(br#"{"id":"a","items":[{"url":"x"},{"url":1}]}"#)
            .unwrap_err()
            .to_public();
        assert_eq!(e.details["index"], 1);
        let e = parse_request::<Req>(br#"{"id":"a","colour":1}"#)
            .unwrap_err()
            .to_public();
        assert!(!e.details.contains_key("index"));
    }

    #[test]
    fn messages_do_not_echo_values() {
        let e = parse_request::<Req>(br#"{"id":"a","items":[{"url":7}],"limit":"secret-text"}"#)
            .unwrap_err()
            .to_public();
        assert!(!e.message.contains("secret-text"), "{}", e.message);
        let e = parse_request::<Req>(br#"{"id":"https://private.example/path"}"#)
            .unwrap_err()
            .to_public();
        assert!(!e.message.contains("private.example"), "{}", e.message);
        assert_eq!(e.details["field"], "id");
    }

    #[test]
    fn job_type_tables_are_distinct_valid_names() {
        let mut names: Vec<&str> = JOB_TYPES.iter().map(|t| t.name).collect();
        names.extend(HOST_JOB_TYPES);
        assert!(names.iter().all(|n| crate::types::is_valid_id(n)));
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a job type is declared twice");
    }

    #[test]
    fn registry_names_are_unique_and_dotted() {
        let mut names: Vec<&str> = OPERATIONS.iter().map(|o| o.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len());
        assert!(OPERATIONS.iter().all(|o| o
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')));
    }
}
