//! Host callbacks: the C function pointer types of `spec/OPERATIONS.md` §9,
//! their wrapping into safe Rust closures ([`HostJsonFn`], [`HostEventFn`])
//! that the rest of the library calls, and the registrations
//! `hydra_register_job_handler` and `hydra_set_event_callback`.
//!
//! A `hydra_json_fn` returns a string allocated with `malloc` or, the
//! portable way, with `hydra_string_alloc` (copied here, then released with
//! `free`, the allocator both use), or NULL for a failure; a returned
//! `{"error":{"code","message"}}` also reports a failure.

#![allow(non_camel_case_types)]

use super::{guarded, profile_for, required_str};
use crate::error::{Error, ErrorCode, Result};
use crate::profile::Profile;
use crate::types::{HostEventFn, HostJsonFn, HostTextFn};
use serde_json::Value;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::sync::Arc;

/// A host function that takes a JSON string and returns a JSON string made
/// with `hydra_string_alloc` (or `malloc`), which the library releases, or
/// NULL for a failure. `user_data` is passed back unchanged.
pub type hydra_json_fn =
    Option<unsafe extern "C" fn(json: *const c_char, user_data: *mut c_void) -> *mut c_char>;

/// A host function that receives an event as a JSON string. The string is
/// valid only during the call.
pub type hydra_event_fn = Option<unsafe extern "C" fn(json: *const c_char, user_data: *mut c_void)>;

/// The host's `user_data` pointer. The library never dereferences it; it
/// only passes it back, from whichever thread runs the callback, as the
/// registration's contract allows.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);

// SAFETY: the pointer is opaque to the library and only handed back to the
// host function it was registered with; the host chose to share it.
unsafe impl Send for UserData {}
// SAFETY: as above; the library never reads or writes through it.
unsafe impl Sync for UserData {}

/// Wraps a C JSON function into a [`HostJsonFn`].
pub(crate) fn wrap_json_fn(
    f: unsafe extern "C" fn(*const c_char, *mut c_void) -> *mut c_char,
    user_data: *mut c_void,
) -> HostJsonFn {
    let text = wrap_text_fn(f, user_data);
    Arc::new(move |input: &Value| parse_host_reply(&text(input)?))
}

/// Wraps a C JSON function into a [`HostTextFn`]: its reply, copied, not
/// parsed (a NULL reply is a failure).
pub(crate) fn wrap_text_fn(
    f: unsafe extern "C" fn(*const c_char, *mut c_void) -> *mut c_char,
    user_data: *mut c_void,
) -> HostTextFn {
    let user_data = UserData(user_data);
    Arc::new(move |input: &Value| {
        let user_data = user_data;
        let text = CString::new(input.to_string())
            .map_err(|_| Error::internal("callback input held a NUL byte"))?;
        // SAFETY: `f` is the host's function for this registration; `text`
        // is a valid NUL-terminated string for the duration of the call.
        let out = unsafe { f(text.as_ptr(), user_data.0) };
        if out.is_null() {
            return Err(Error::new(
                ErrorCode::Internal,
                "the host callback reported a failure",
            ));
        }
        // SAFETY: the contract says a non-NULL result is a NUL-terminated
        // string from `malloc`; it is copied before being freed.
        let copied = unsafe { CStr::from_ptr(out) }.to_bytes().to_vec();
        // SAFETY: the string was allocated with `malloc` by the host and is
        // released exactly once, here.
        unsafe { libc::free(out.cast()) };
        Ok(copied)
    })
}

/// Wraps a C event function into a [`HostEventFn`].
pub(crate) fn wrap_event_fn(
    f: unsafe extern "C" fn(*const c_char, *mut c_void),
    user_data: *mut c_void,
) -> HostEventFn {
    let user_data = UserData(user_data);
    Arc::new(move |event: &Value| {
        let user_data = user_data;
        if let Ok(text) = CString::new(event.to_string()) {
            // SAFETY: `f` is the host's function for this registration and
            // `text` outlives the call.
            unsafe { f(text.as_ptr(), user_data.0) };
        }
    })
}

/// Registers `fn` as the handler of jobs of `job_type` (e.g.
/// `"focused_crawl"`); registering again replaces the previous function and
/// a NULL `fn` unregisters. The handler runs on a worker thread; it receives
/// the Job object as JSON, may report progress with `jobs.progress` (which
/// fails with `cancelled` once the job was asked to stop), and returns a
/// `malloc`ed JSON result (the job ends `succeeded`), or NULL or
/// `{"error":{"code","message"}}` (the job ends `failed`). `user_data` is
/// passed back unchanged, from whichever thread runs the job.
///
/// Returns an envelope `{"ok":true,"data":{"job_type":..,"registered":bool}}`
/// (`closed`, or `invalid_argument` for a NULL or malformed `job_type`) that
/// the caller frees with `hydra_string_free`.
///
/// # Safety
/// `job_type` is NULL or a NUL-terminated string; `fn` is NULL or a
/// function safe to call with `user_data` from any thread until it is
/// unregistered or the profile is closed.
#[no_mangle]
pub unsafe extern "C" fn hydra_register_job_handler(
    handle: u64,
    job_type: *const c_char,
    r#fn: hydra_json_fn,
    user_data: *mut c_void,
) -> *mut c_char {
    guarded(|| {
        let profile = profile_for(handle)?;
        profile.ensure_open()?;
        // SAFETY: the caller's promise about `job_type` is passed on.
        let job_type = unsafe { required_str(job_type, "job_type") }?;
        let handler = r#fn.map(|f| wrap_json_fn(f, user_data));
        let registered = handler.is_some();
        profile.jobs().register_host_handler(job_type, handler)?;
        Ok(serde_json::json!({"job_type": job_type, "registered": registered}).to_string())
    })
}

/// Sets `fn` as the receiver of `{"type":"job.updated","job":{...}}` events,
/// sent on every job change from the library's event thread, never while a
/// database lock is held. Setting again replaces the previous function; a
/// NULL `fn` unregisters. The JSON string is valid only during the call.
///
/// Returns an envelope `{"ok":true,"data":{"registered":bool}}` (`closed`
/// for a handle that is not open) that the caller frees with
/// `hydra_string_free`.
///
/// # Safety
/// `fn` is NULL or a function safe to call with `user_data` from another
/// thread until it is unregistered or the profile is closed.
#[no_mangle]
pub unsafe extern "C" fn hydra_set_event_callback(
    handle: u64,
    r#fn: hydra_event_fn,
    user_data: *mut c_void,
) -> *mut c_char {
    register_callback(
        handle,
        || r#fn.map(|f| wrap_event_fn(f, user_data)),
        Profile::set_event_callback,
    )
}

/// The body of the entry points that register one host function on a
/// profile (event callback, chat model, embedder): an open profile gets
/// the function `wrap` makes (`None` unregisters); the envelope's data is
/// `{"registered":bool}`.
pub(super) fn register_callback<F>(
    handle: u64,
    wrap: impl FnOnce() -> Option<F>,
    set: fn(&Profile, Option<F>),
) -> *mut c_char {
    guarded(|| {
        let profile = profile_for(handle)?;
        profile.ensure_open()?;
        let callback = wrap();
        let registered = callback.is_some();
        set(&profile, callback);
        Ok(format!("{{\"registered\":{registered}}}"))
    })
}

/// A host reply: JSON, where `{"error":{"code","message"}}` is a failure.
fn parse_host_reply(bytes: &[u8]) -> Result<Value> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| {
        Error::new(
            ErrorCode::Internal,
            "the host callback returned invalid JSON",
        )
    })?;
    if let Some(error) = value.get("error").filter(|e| e.is_object()) {
        let code = error
            .get("code")
            .and_then(Value::as_str)
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the host callback failed")
            .chars()
            .take(500)
            .collect::<String>();
        return Err(Error::new(code, message));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn echo(json: *const c_char, _: *mut c_void) -> *mut c_char {
        // SAFETY: test callback; `json` is valid for the call.
        unsafe { libc::strdup(json) }
    }

    unsafe extern "C" fn fail(_: *const c_char, _: *mut c_void) -> *mut c_char {
        // SAFETY: a static NUL-terminated string duplicated with malloc.
        unsafe { libc::strdup(c"{\"error\":{\"code\":\"timeout\",\"message\":\"slow\"}}".as_ptr()) }
    }

    unsafe extern "C" fn library_owned(_: *const c_char, _: *mut c_void) -> *mut c_char {
        // SAFETY: a static NUL-terminated string, copied by the library.
        unsafe { crate::ffi::hydra_string_alloc(c"{\"pages\":3}".as_ptr()) }
    }

    #[test]
    fn a_reply_made_with_hydra_string_alloc_is_read_and_released() {
        let f = wrap_json_fn(library_owned, std::ptr::null_mut());
        for _ in 0..1000 {
            assert_eq!(f(&Value::Null).unwrap(), serde_json::json!({"pages": 3}));
        }
        // SAFETY: NULL in gives NULL out; a copy not handed back is freed.
        unsafe {
            assert!(crate::ffi::hydra_string_alloc(std::ptr::null()).is_null());
            crate::ffi::hydra_string_free(crate::ffi::hydra_string_alloc(c"x".as_ptr()));
        }
    }

    unsafe extern "C" fn null(_: *const c_char, _: *mut c_void) -> *mut c_char {
        std::ptr::null_mut()
    }

    #[test]
    fn replies_are_copied_and_errors_recognised() {
        let f = wrap_json_fn(echo, std::ptr::null_mut());
        let input = serde_json::json!({"a": [1, 2]});
        assert_eq!(f(&input).unwrap(), input);
        let f = wrap_json_fn(fail, std::ptr::null_mut());
        assert_eq!(f(&input).unwrap_err().code(), ErrorCode::Timeout);
        let f = wrap_json_fn(null, std::ptr::null_mut());
        assert_eq!(f(&input).unwrap_err().code(), ErrorCode::Internal);
    }
}
