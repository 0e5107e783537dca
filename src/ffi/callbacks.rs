//! Host callbacks: the C function pointer types of `spec/OPERATIONS.md` §9
//! and their wrapping into safe Rust closures ([`HostJsonFn`],
//! [`HostEventFn`]) that the rest of the library calls.
//!
//! A `hydra_json_fn` returns a string allocated with `malloc` (copied here,
//! then released with `free`), or NULL for a failure; a returned
//! `{"error":{"code","message"}}` also reports a failure.

#![allow(non_camel_case_types)]
// The registrations that use these wrappers arrive with the jobs and chat
// domains; remove this allow when they do.
#![allow(dead_code)]

use crate::error::{Error, ErrorCode, Result};
use crate::types::{HostEventFn, HostJsonFn};
use serde_json::Value;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::sync::Arc;

/// A host function that takes a JSON string and returns a `malloc`ed JSON
/// string (or NULL for a failure). `user_data` is passed back unchanged.
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
        parse_host_reply(&copied)
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
