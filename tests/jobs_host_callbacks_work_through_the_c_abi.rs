//! The callback registrations of §9 through the real C ABI: a C job handler
//! (with `user_data`) runs `focused_crawl` jobs, calls back into the library
//! to report progress, and its result, NULL or `{"error":..}` ends the job;
//! a NULL function unregisters; the event callback receives `job.updated`.
//! Guards against a shell (C, Python ctypes, Node koffi) whose crawler is
//! never called, whose `user_data` is lost, or whose bad pointers crash.

mod polling;

use hydra_core::testing::ffi::callbacks::{hydra_register_job_handler, hydra_set_event_callback};
use hydra_core::testing::ffi::{hydra_call, hydra_close, hydra_open, hydra_string_free};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::ptr;

/// Takes ownership of a returned string, frees it, returns its JSON.
fn take(s: *mut c_char) -> Value {
    assert!(!s.is_null());
    // SAFETY: `s` is a NUL-terminated string returned by the library.
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_owned();
    // SAFETY: returned by the library, freed once.
    unsafe { hydra_string_free(s) };
    serde_json::from_str(&text).unwrap()
}

fn call(handle: u64, op: &str, request: Value) -> Value {
    let op = CString::new(op).unwrap();
    let request = CString::new(request.to_string()).unwrap();
    // SAFETY: NUL-terminated strings alive across the call.
    take(unsafe { hydra_call(handle, op.as_ptr(), request.as_ptr()) })
}

/// What the host passes as `user_data`.
struct Host {
    handle: u64,
    seen: Mutex<Vec<Value>>,
    events: Mutex<Vec<Value>>,
}

fn malloc_string(text: &str) -> *mut c_char {
    let text = CString::new(text).unwrap();
    // SAFETY: duplicates a valid C string with malloc, as the contract asks.
    unsafe { libc::strdup(text.as_ptr()) }
}

/// The host's crawler: reports progress through `hydra_call`, then answers
/// according to the job's query.
unsafe extern "C" fn crawler(json: *const c_char, user_data: *mut c_void) -> *mut c_char {
    // SAFETY: `user_data` is the `Host` the test registered; it outlives the profile.
    let host = unsafe { &*(user_data as *const Host) };
    // SAFETY: the library passes a valid NUL-terminated string.
    let job: Value = serde_json::from_slice(unsafe { CStr::from_ptr(json) }.to_bytes()).unwrap();
    host.seen.lock().push(job.clone());
    let progress = call(
        host.handle,
        "jobs.progress",
        json!({"id": job["id"], "steps_total": 2, "steps_completed": 1}),
    );
    assert_eq!(progress["ok"], true, "{progress}");
    match job["payload"]["query"].as_str() {
        Some("null") => ptr::null_mut(),
        Some("error") => malloc_string(r#"{"error":{"code":"timeout","message":"site too slow"}}"#),
        _ => malloc_string(r#"{"pages":2,"zeta":1,"alpha":[true]}"#),
    }
}

unsafe extern "C" fn on_event(json: *const c_char, user_data: *mut c_void) {
    // SAFETY: `user_data` is the `Host` the test registered.
    let host = unsafe { &*(user_data as *const Host) };
    // SAFETY: the library passes a valid NUL-terminated string.
    let event = serde_json::from_slice(unsafe { CStr::from_ptr(json) }.to_bytes()).unwrap();
    host.events.lock().push(event);
}

fn crawl_and_wait(handle: u64, query: &str) -> Value {
    let r = call(handle, "refresh.focused_crawl", json!({"query": query}));
    assert_eq!(r["ok"], true, "{r}");
    let r = call(
        handle,
        "jobs.wait",
        json!({"id": r["data"]["job_id"], "timeout_ms": 10_000}),
    );
    r["data"]["job"].clone()
}

#[test]
fn a_c_job_handler_and_event_callback_work_through_the_abi() {
    let dir = tempfile::tempdir().unwrap();
    let options = CString::new(json!({"profile_dir": dir.path()}).to_string()).unwrap();
    // SAFETY: valid C string; NULL error out-pointer is allowed.
    let handle = unsafe { hydra_open(options.as_ptr(), ptr::null_mut()) };
    assert_ne!(handle, 0);
    let host = Box::new(Host {
        handle,
        seen: Mutex::new(Vec::new()),
        events: Mutex::new(Vec::new()),
    });
    let user_data = &*host as *const Host as *mut c_void;
    let job_type = CString::new("focused_crawl").unwrap();

    let r = call(handle, "refresh.focused_crawl", json!({"query": "x"}));
    assert_eq!(r["error"]["code"], "no_handler");

    // SAFETY: valid handle, C string, function and user_data that outlive the profile.
    let r = take(unsafe { hydra_set_event_callback(handle, Some(on_event), user_data) });
    assert_eq!(r, json!({"ok": true, "data": {"registered": true}}));
    // SAFETY: as above.
    let r = take(unsafe {
        hydra_register_job_handler(handle, job_type.as_ptr(), Some(crawler), user_data)
    });
    assert_eq!(
        r,
        json!({"ok": true, "data": {"job_type": "focused_crawl", "registered": true}})
    );

    let job = crawl_and_wait(handle, "rust");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        job["result"],
        json!({"pages": 2, "zeta": 1, "alpha": [true]})
    );
    assert_eq!(job["progress"]["steps_completed"], 1);
    let seen = host.seen.lock().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["status"], "running");
    assert_eq!(seen[0]["payload"], json!({"query": "rust"}));

    let job = crawl_and_wait(handle, "null");
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "internal");
    let job = crawl_and_wait(handle, "error");
    assert_eq!(job["status"], "failed");
    assert_eq!(
        job["error"],
        json!({"code": "timeout", "message": "site too slow"})
    );

    // Events: queued, running, progress, finished for each of the 3 jobs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host.events.lock().len() < 12 && std::time::Instant::now() < deadline {
        polling::pause();
    }
    let events = host.events.lock().clone();
    assert_eq!(events.len(), 12);
    assert!(events.iter().all(|e| e["type"] == "job.updated"));
    assert_eq!(events[0]["job"]["status"], "queued");
    assert_eq!(events[3]["job"]["status"], "succeeded");

    // Bad pointers and handles are refused, never followed.
    // SAFETY: NULL job type is part of what is tested.
    let r =
        take(unsafe { hydra_register_job_handler(handle, ptr::null(), Some(crawler), user_data) });
    assert_eq!(r["error"]["code"], "invalid_argument");
    assert_eq!(r["error"]["details"]["field"], "job_type");
    let bad = CString::new("bad type").unwrap();
    // SAFETY: valid C string.
    let r =
        take(unsafe { hydra_register_job_handler(handle, bad.as_ptr(), None, ptr::null_mut()) });
    assert_eq!(r["error"]["code"], "invalid_argument");
    for h in [0, handle + 1000] {
        // SAFETY: unknown handles are part of what is tested.
        let r = take(unsafe {
            hydra_register_job_handler(h, job_type.as_ptr(), None, ptr::null_mut())
        });
        assert_eq!(r["error"]["code"], "closed");
        // SAFETY: as above.
        let r = take(unsafe { hydra_set_event_callback(h, None, ptr::null_mut()) });
        assert_eq!(r["error"]["code"], "closed");
    }

    // NULL unregisters.
    // SAFETY: valid handle and C string.
    let r = take(unsafe {
        hydra_register_job_handler(handle, job_type.as_ptr(), None, ptr::null_mut())
    });
    assert_eq!(r["data"]["registered"], false);
    let r = call(handle, "refresh.focused_crawl", json!({"query": "x"}));
    assert_eq!(r["error"]["code"], "no_handler");
    // SAFETY: valid handle.
    let r = take(unsafe { hydra_set_event_callback(handle, None, ptr::null_mut()) });
    assert_eq!(r["data"]["registered"], false);

    // SAFETY: valid handle; NULL options mean {}.
    let r = take(unsafe { hydra_close(handle, ptr::null()) });
    assert_eq!(r["ok"], true);
    // SAFETY: the closed handle is part of what is tested.
    let r = take(unsafe {
        hydra_register_job_handler(handle, job_type.as_ptr(), None, ptr::null_mut())
    });
    assert_eq!(r["error"]["code"], "closed");
    drop(host);
}
