//! A chat turn lands in the right thread (given, bound to the tab, or new
//! and bound), writes the user message and the assistant message from the
//! caller's reply, the host model (Rust closure or C callback) or nothing,
//! links the listed tasks and memories, and returns the context it saw; a
//! model error writes nothing. Also `hydraflow.context` and tab binding.
//! Guards against replies filed under the wrong conversation, half-written
//! turns, and a model called while the database is locked.

mod common;
use common::TestProfile;
use hydra_core::db::ConnExt;
use hydra_core::testing::ffi::model::hydra_register_model;
use hydra_core::testing::ffi::{hydra_call, hydra_close, hydra_open, hydra_string_free};
use hydra_core::{Error, ErrorCode};
use serde_json::{json, Value};
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::sync::{Arc, Mutex};

fn count(t: &TestProfile, table: &str) -> i64 {
    t.profile
        .db()
        .read(|c| c.query_i64(&format!("SELECT count(*) FROM {table}"), []))
        .unwrap()
}

#[test]
fn reply_thread_resolution_through_tab_and_context() {
    let t = TestProfile::new();
    // No thread, no tab: a new thread with origin chat.
    let r = t.ok("chat", json!({"message": "hello", "reply": "hi there"}));
    let th = r["thread_id"].as_str().unwrap().to_owned();
    assert_eq!(
        t.ok("threads.get", json!({"id": th}))["thread"]["origin"],
        "chat"
    );
    assert_eq!(r["tab_id"], Value::Null);
    assert_eq!(r["user_message"]["role"], "user");
    assert_eq!(r["user_message"]["content"], "hello");
    assert_eq!(r["assistant_message"]["role"], "assistant");
    assert_eq!(r["assistant_message"]["content"], "hi there");
    assert_eq!(r["context"]["tab"], Value::Null);
    let ctx: Vec<&str> = r["context"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(ctx, ["hello"], "context ends with the user message");

    // A tab with no thread: new thread with origin browser, bound to the (new) tab.
    let r = t.ok(
        "chat",
        json!({"message": "on page", "tab_id": "tab-1", "reply": "ok"}),
    );
    let tab_thread = r["thread_id"].as_str().unwrap().to_owned();
    assert_ne!(tab_thread, th);
    assert_eq!(
        t.ok("threads.get", json!({"id": tab_thread}))["thread"]["origin"],
        "browser"
    );
    assert_eq!(r["tab_id"], "tab-1");
    assert_eq!(r["context"]["tab"]["id"], "tab-1");
    assert_eq!(r["context"]["tab"]["thread_id"], tab_thread.as_str());

    // The same tab again: the bound thread is reused; context holds the history.
    let r = t.ok(
        "chat",
        json!({"message": "again", "tab_id": "tab-1", "reply": "sure", "context_messages": 2}),
    );
    assert_eq!(r["thread_id"], tab_thread.as_str());
    let ctx: Vec<&str> = r["context"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(ctx, ["ok", "again"]);
    // An explicit thread wins over the tab's.
    let r = t.ok(
        "chat",
        json!({"message": "x", "thread_id": th, "tab_id": "tab-1"}),
    );
    assert_eq!(r["thread_id"], th.as_str());
    assert_eq!(
        r["assistant_message"],
        Value::Null,
        "no reply and no model: none"
    );

    // An explicit thread with a new tab: the tab is created and bound to it.
    let r = t.ok(
        "chat",
        json!({"message": "y", "thread_id": th, "tab_id": "tab-new", "reply": "z"}),
    );
    assert_eq!(r["context"]["tab"]["thread_id"], th.as_str());
    assert_eq!(
        t.ok("tabs.unbind_thread", json!({"tab_id": "tab-new"}))["tab"]["id"],
        "tab-new"
    );

    let listed = t.ok("messages.list", json!({"thread_id": tab_thread}));
    assert_eq!(listed["items"].as_array().unwrap().len(), 4);
    let thread = t.ok("threads.get", json!({"id": tab_thread}))["thread"].clone();
    assert!(thread["last_user_message_at"].is_i64());
    assert!(thread["last_assistant_message_at"].is_i64());

    t.err(
        "chat",
        json!({"message": "x", "thread_id": "nope"}),
        "not_found",
    );
    t.err("chat", json!({"message": ""}), "invalid_argument");
    t.err(
        "chat",
        json!({"message": "x", "reply": ""}),
        "invalid_argument",
    );
    t.err(
        "chat",
        json!({"message": "x", "context_messages": 0}),
        "invalid_argument",
    );
    t.err(
        "chat",
        json!({"message": "x", "tab_id": "bad tab"}),
        "invalid_argument",
    );
    t.err(
        "chat",
        json!({"message": "x", "extra": 1}),
        "invalid_argument",
    );
}

#[test]
fn links_tasks_and_memories_and_refuses_unknown_ones() {
    let t = TestProfile::new();
    let task = t.ok("tasks.create", json!({"title": "T"}))["task"]["id"].clone();
    let mem = t.ok(
        "memory.upsert",
        json!({"value": "likes tea", "scope": "user"}),
    )["memory"]["id"]
        .clone();
    let r = t.ok(
        "chat",
        json!({"message": "m", "reply": "r", "task_ids": [task], "memory_ids": [mem]}),
    );
    let th = r["thread_id"].clone();
    assert_eq!(
        t.ok("tasks.get", json!({"id": task}))["task"]["thread_id"],
        th
    );
    assert_eq!(
        t.ok("memory.get", json!({"id": mem}))["memory"]["thread_id"],
        th
    );
    assert_eq!(r["context"]["memories"][0]["id"], mem);

    let (messages, threads) = (count(&t, "llm_messages"), count(&t, "llm_threads"));
    let e = t.err(
        "chat",
        json!({"message": "m", "reply": "r", "task_ids": [task, "nope"]}),
        "not_found",
    );
    assert_eq!(e.details["field"], "task_ids[1]", "the missing entry");
    let e = t.err(
        "chat",
        json!({"message": "m", "reply": "r", "memory_ids": ["nope"]}),
        "not_found",
    );
    assert_eq!(e.details["field"], "memory_ids[0]");
    t.err(
        "chat",
        json!({"message": "m", "tab_id": "tab-z", "memory_ids": ["nope"]}),
        "not_found",
    );
    assert_eq!(
        (
            count(&t, "llm_messages"),
            count(&t, "llm_threads"),
            count(&t, "tabs")
        ),
        (messages, threads, 0)
    );
}

#[test]
fn rust_model_is_called_outside_the_lock_and_errors_write_nothing() {
    let t = TestProfile::new();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let profile = t.profile.clone();
    let log = seen.clone();
    t.profile.set_model(Some(Arc::new(move |input: &Value| {
        log.lock().unwrap().push(input.clone());
        // The database is not locked: a write from inside the callback works.
        profile.threads_create(Default::default())?;
        if input["message"] == "fail" {
            return Err(Error::new(ErrorCode::Timeout, "model too slow"));
        }
        Ok(json!({"content": format!("echo: {}", input["message"].as_str().unwrap()), "model": "m-1", "tokens": 7}))
    })));
    let r = t.ok("chat", json!({"message": "ping", "tab_id": "tb"}));
    assert_eq!(r["assistant_message"]["content"], "echo: ping");
    assert_eq!(r["assistant_message"]["tokens"], 7);
    assert_eq!(r["assistant_message"]["metadata"]["model"], "m-1");
    let input = seen.lock().unwrap()[0].clone();
    assert_eq!(input["thread_id"], r["thread_id"]);
    assert_eq!(input["message"], "ping");
    assert_eq!(input["context"]["messages"][0]["content"], "ping");
    assert_eq!(
        input["context"]["messages"][0]["id"],
        r["user_message"]["id"]
    );
    assert!(input["context"].get("memories").is_some() && input["context"].get("tab").is_some());

    let messages = count(&t, "llm_messages");
    let e = t.err(
        "chat",
        json!({"message": "fail", "thread_id": r["thread_id"]}),
        "timeout",
    );
    assert!(!e.message.contains("fail"));
    assert_eq!(
        count(&t, "llm_messages"),
        messages,
        "a model error writes nothing"
    );

    // A reply wins over the model; unregistering returns to "none".
    let calls = seen.lock().unwrap().len();
    let r2 = t.ok("chat", json!({"message": "x", "reply": "given"}));
    assert_eq!(r2["assistant_message"]["content"], "given");
    assert_eq!(seen.lock().unwrap().len(), calls);
    t.profile.set_model(None);
    assert_eq!(
        t.ok("chat", json!({"message": "x"}))["assistant_message"],
        Value::Null
    );
}

unsafe extern "C" fn c_model(json: *const c_char, user_data: *mut c_void) -> *mut c_char {
    // SAFETY: the library passes a valid NUL-terminated string for the call.
    let input: Value = serde_json::from_slice(unsafe { CStr::from_ptr(json) }.to_bytes()).unwrap();
    // SAFETY: the test registered a pointer to a live AtomicUsize.
    let calls = unsafe { &*(user_data as *const std::sync::atomic::AtomicUsize) };
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let reply = if input["message"] == "boom" {
        json!({"error": {"code": "timeout", "message": "slow"}}).to_string()
    } else {
        json!({"content": format!("C says {}", input["message"].as_str().unwrap())}).to_string()
    };
    let reply = CString::new(reply).unwrap();
    // SAFETY: strdup copies a valid C string with malloc, as the contract asks.
    unsafe { libc::strdup(reply.as_ptr()) }
}

fn take(s: *mut c_char) -> Value {
    // SAFETY: a string returned by the library, freed once.
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_owned();
    // SAFETY: as above.
    unsafe { hydra_string_free(s) };
    serde_json::from_str(&text).unwrap()
}

fn c_call(h: u64, op: &str, req: Value) -> Value {
    let op = CString::new(op).unwrap();
    let req = CString::new(req.to_string()).unwrap();
    // SAFETY: valid NUL-terminated strings alive across the call.
    take(unsafe { hydra_call(h, op.as_ptr(), req.as_ptr()) })
}

#[test]
fn c_model_registered_through_the_abi() {
    let dir = tempfile::tempdir().unwrap();
    let options = CString::new(json!({"profile_dir": dir.path()}).to_string()).unwrap();
    // SAFETY: valid string; NULL error out-pointer is allowed.
    let h = unsafe { hydra_open(options.as_ptr(), std::ptr::null_mut()) };
    assert_ne!(h, 0);
    let calls = Box::new(std::sync::atomic::AtomicUsize::new(0));
    let user_data = &*calls as *const _ as *mut c_void;
    // SAFETY: c_model is thread-safe; user_data outlives the registration.
    let reg = take(unsafe { hydra_register_model(h, Some(c_model), user_data) });
    assert_eq!(reg["ok"], true, "{reg}");
    let r = c_call(h, "chat", json!({"message": "hi"}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["data"]["assistant_message"]["content"], "C says hi");
    let e = c_call(h, "chat", json!({"message": "boom"}));
    assert_eq!(e["error"]["code"], "timeout");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // SAFETY: a NULL fn unregisters.
    let reg = take(unsafe { hydra_register_model(h, None, std::ptr::null_mut()) });
    assert_eq!(reg["ok"], true);
    let r = c_call(h, "chat", json!({"message": "hi"}));
    assert_eq!(r["data"]["assistant_message"], Value::Null);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // SAFETY: NULL options mean {}.
    take(unsafe { hydra_close(h, std::ptr::null()) });
    // SAFETY: a closed handle is `closed`, not undefined behaviour.
    let reg = take(unsafe { hydra_register_model(h, Some(c_model), user_data) });
    assert_eq!(reg["error"]["code"], "closed");
}

#[test]
fn context_shows_recent_messages_open_tasks_memories_and_tabs() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({"title": "T"}))["thread"]["id"].clone();
    for i in 0..5 {
        t.ok(
            "messages.append",
            json!({"thread_id": th, "role": "user", "content": format!("m{i}")}),
        );
    }
    for (id, status) in [
        ("a", "pending"),
        ("b", "in_progress"),
        ("c", "blocked"),
        ("d", "completed"),
        ("e", "failed"),
    ] {
        t.ok(
            "tasks.create",
            json!({"id": id, "title": "t", "status": status, "thread_id": th}),
        );
    }
    t.ok(
        "memory.upsert",
        json!({"id": "weak", "value": "w", "scope": "user", "thread_id": th, "strength": 0.2}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "strong", "value": "s", "scope": "thread", "scope_ref": th, "strength": 0.9}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "elsewhere", "value": "e", "scope": "user"}),
    );
    t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "tab-a", "thread_id": th}),
    );
    let c = t.ok(
        "hydraflow.context",
        json!({"thread_id": th, "messages_limit": 2, "memories_limit": 5}),
    );
    assert_eq!(c["thread"]["title"], "T");
    let msgs: Vec<&str> = c["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["m3", "m4"]);
    let mut tasks: Vec<&str> = c["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    tasks.sort();
    assert_eq!(tasks, ["a", "b", "c"]);
    let mems: Vec<&str> = c["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(mems, ["strong", "weak"]);
    assert_eq!(c["tabs"][0]["id"], "tab-a");
    t.err(
        "hydraflow.context",
        json!({"thread_id": "nope"}),
        "not_found",
    );
    t.err(
        "hydraflow.context",
        json!({"thread_id": th, "messages_limit": 0}),
        "invalid_argument",
    );
}

#[test]
fn bind_and_unbind_thread() {
    let t = TestProfile::new();
    let r = t.ok("tabs.bind_thread", json!({"tab_id": "t1", "title": "Page"}));
    assert_eq!(r["thread"]["origin"], "browser");
    assert_eq!(r["thread"]["title"], "Page");
    assert_eq!(r["tab"]["thread_id"], r["thread_id"]);
    assert_eq!(r["thread"]["id"], r["thread_id"]);
    let other = t.ok("threads.create", json!({"title": "Keep"}))["thread"]["id"].clone();
    let r2 = t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "t1", "thread_id": other, "title": "Ignored"}),
    );
    assert_eq!(
        r2["thread"]["title"], "Keep",
        "existing thread fields are not overwritten"
    );
    assert_eq!(r2["tab"]["thread_id"], other, "rebound");
    t.err(
        "tabs.bind_thread",
        json!({"tab_id": "t2", "thread_id": "nope"}),
        "not_found",
    );
    assert_eq!(count(&t, "tabs"), 1, "failed bind created no tab");
    let u = t.ok("tabs.unbind_thread", json!({"tab_id": "t1"}));
    assert_eq!(u["tab"]["thread_id"], Value::Null);
    t.ok("threads.get", json!({"id": other}));
    t.err("tabs.unbind_thread", json!({"tab_id": "nope"}), "not_found");
    t.err("tabs.bind_thread", json!({}), "invalid_argument");
}

/// The context ends with the user message even when the thread holds a
/// message stamped later than the turn's start (appended meanwhile, or
/// with a `created_at` ahead of the clock).
#[test]
fn the_context_ends_with_the_user_message() {
    let t = TestProfile::new();
    let th = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let ahead = hydra_core::types::now_ms() + 60_000;
    t.ok(
        "messages.append",
        json!({"thread_id": th, "role": "system", "content": "later", "created_at": ahead}),
    );
    let r = t.ok(
        "chat",
        json!({"thread_id": th, "message": "hello", "reply": "hi"}),
    );
    let context = r["context"]["messages"].as_array().unwrap();
    assert_eq!(context.last().unwrap()["id"], r["user_message"]["id"]);
    let listed = t.ok("messages.list", json!({"thread_id": th}))["items"].clone();
    let roles: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant"]);
}

/// A model is asked about a tab's thread; if the tab is bound to another
/// thread while it answers, the turn is refused (`conflict`) and nothing
/// is written, rather than stored in a thread the model never saw.
#[test]
fn a_turn_whose_tab_changed_thread_during_the_model_call_writes_nothing() {
    let t = TestProfile::new();
    let a = t.ok("tabs.bind_thread", json!({"tab_id": "tab"}))["thread"]["id"].clone();
    let other = t.ok("threads.create", json!({}))["thread"]["id"].clone();
    let profile = t.profile.clone();
    let rebind_to = other.clone();
    t.profile.set_model(Some(Arc::new(move |input: &Value| {
        hydra_core::ops::call_json(
            &profile,
            "tabs.bind_thread",
            json!({"tab_id": "tab", "thread_id": rebind_to})
                .to_string()
                .as_bytes(),
        )?;
        Ok(json!({"content": format!("about {}", input["thread_id"])}))
    })));
    let messages = count(&t, "llm_messages");
    t.err("chat", json!({"tab_id": "tab", "message": "q"}), "conflict");
    assert_eq!(count(&t, "llm_messages"), messages, "nothing written");
    t.profile.set_model(None);
    assert_ne!(a, other);
}
