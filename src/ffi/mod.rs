//! The C ABI (`spec/OPERATIONS.md` §1): the only `unsafe` code of the crate.
//!
//! Rules every entry point keeps:
//! - handles are numbers from [`HANDLES`], never pointers; a zero, unknown or
//!   closed handle is `closed`;
//! - a NULL request means `{}`; a NULL operation name is `invalid_argument`;
//!   request bytes go untouched to [`ops::parse_request`], the one place
//!   that checks size, UTF-8, JSON and fields, in that order;
//! - every panic is caught and becomes `internal`;
//! - every returned string is a `malloc`ed NUL-terminated string given to
//!   the caller, who releases it with [`hydra_string_free`].

#![deny(unsafe_op_in_unsafe_fn)]

pub mod callbacks;
pub mod model;

use crate::error::{Error, ErrorCode, Result};
use crate::ops;
use crate::profile::{CloseOptions, OpenOptions, Profile};
use once_cell::sync::Lazy;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// Open profiles by handle. Handles start at 1 and are never reused.
static HANDLES: Lazy<RwLock<HashMap<u64, Profile, HandleHash>>> =
    Lazy::new(|| RwLock::new(HashMap::default()));

/// Hashing of handles for [`HANDLES`], looked up on every call: handles are
/// numbers the library itself hands out (never chosen by an attacker), so a
/// multiplicative hash replaces SipHash's per-call cost.
type HandleHash = std::hash::BuildHasherDefault<HandleHasher>;

/// See [`HandleHash`].
#[derive(Default)]
struct HandleHasher(u64);

impl std::hash::Hasher for HandleHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// The profile behind a handle, or `closed`.
pub(crate) fn profile_for(handle: u64) -> Result<Profile> {
    HANDLES.read().get(&handle).cloned().ok_or_else(|| {
        Error::new(
            ErrorCode::Closed,
            "the handle is closed or was never opened",
        )
    })
}

/// Runs `f`, turning an error or a panic into a failure envelope.
pub(crate) fn guarded(f: impl FnOnce() -> Result<String>) -> *mut c_char {
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::internal(
            "the library hit an internal error; the call was abandoned",
        ))
    });
    envelope_to_c(&result)
}

/// The envelope of `result` ([`ops::envelope`]) handed to the caller, in
/// memory from the C allocator (`malloc`): every string that crosses the
/// boundary, either way, is a `malloc`ed NUL-terminated string, so
/// [`hydra_string_free`], `hydra_string_alloc` and the callbacks' replies
/// share one rule. A success envelope is written straight into its one
/// `malloc`ed block (no intermediate `String`, `CString` or copy: the
/// per-call cost of every operation).
fn envelope_to_c(result: &Result<String>) -> *mut c_char {
    match result {
        Ok(data) => malloc_joined(&[OK_OPEN.as_bytes(), data.as_bytes(), OK_CLOSE.as_bytes()]),
        Err(_) => malloc_joined(&[ops::envelope(result).as_bytes()]),
    }
}

/// How [`ops::envelope`] wraps a success's data (checked by a test).
const OK_OPEN: &str = "{\"ok\":true,\"data\":";
const OK_CLOSE: &str = "}";

/// `parts` joined into one `malloc`ed NUL-terminated string. Envelopes are
/// JSON, which escapes NUL, so the fallback is never expected to run.
fn malloc_joined(parts: &[&[u8]]) -> *mut c_char {
    const NUL_HELD: &[u8] = b"{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"response held a NUL byte\",\"details\":{}}}";
    let parts = if parts.iter().any(|part| part.contains(&0)) {
        &[NUL_HELD][..]
    } else {
        parts
    };
    let len: usize = parts.iter().map(|part| part.len()).sum();
    // SAFETY: `malloc` of a non-zero size; checked for NULL below.
    let out = unsafe { libc::malloc(len + 1) }.cast::<u8>();
    if out.is_null() {
        std::process::abort(); // out of memory: the C caller cannot be told otherwise
    }
    let mut at = 0;
    for part in parts {
        // SAFETY: `out` has `len + 1` bytes and `at + part.len() <= len`;
        // `part` is a live slice that cannot overlap the fresh block.
        unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), out.add(at), part.len()) };
        at += part.len();
    }
    // SAFETY: `at == len`, the last byte of the block.
    unsafe { out.add(at).write(0) };
    out.cast()
}

/// The bytes of a caller's request (NULL is `{}`), for
/// [`ops::parse_request`] to check.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn request_bytes<'a>(ptr: *const c_char) -> &'a [u8] {
    if ptr.is_null() {
        return b"{}";
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(ptr) }.to_bytes()
}

/// A required string argument (an operation or job type name).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::invalid(what, "must not be NULL"));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|_| Error::invalid(what, "must be valid UTF-8"))
}

/// The body of `hydra_call` and of every generated `hydra_<op>`.
///
/// # Safety
/// `request_json` is NULL or points to a NUL-terminated string.
unsafe fn call_named(handle: u64, name: &str, request_json: *const c_char) -> *mut c_char {
    guarded(|| {
        let profile = profile_for(handle)?;
        // SAFETY: passed on from the caller's contract.
        let request = unsafe { request_bytes(request_json) };
        ops::call_json(&profile, name, request)
    })
}

/// Opens (creating or migrating) a profile and returns its handle.
///
/// `options_json`: `{"profile_dir": "...", "workers"?: 1..64,
/// "synchronous"?: "normal"|"full", "storage_roots"?: {label: path}}`.
/// Returns a non-zero handle, or 0 on failure; then, if `error_json_out` is
/// not NULL, `*error_json_out` receives an error envelope the caller frees
/// with `hydra_string_free` (codes: `invalid_json`, `invalid_argument`,
/// `profile_locked`, `incompatible_version`, `corrupt`, `io`).
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `error_json_out` is
/// NULL or points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn hydra_open(
    options_json: *const c_char,
    error_json_out: *mut *mut c_char,
) -> u64 {
    let mut handle = 0;
    let envelope = guarded(|| {
        // SAFETY: passed on from the caller's contract.
        let request = unsafe { request_bytes(options_json) };
        let options: OpenOptions = ops::parse_request(request)?;
        let profile = Profile::open(options)?;
        handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        HANDLES.write().insert(handle, profile);
        Ok(format!("{{\"handle\":{handle}}}"))
    });
    if handle != 0 || error_json_out.is_null() {
        // SAFETY: `envelope` came from `guarded` just above.
        unsafe { hydra_string_free(envelope) };
    } else {
        // SAFETY: the caller promised `error_json_out` is writable.
        unsafe { error_json_out.write(envelope) };
    }
    handle
}

/// Closes a profile handle: stops accepting calls, waits for running jobs
/// (or cancels them with `{"cancel_running": true}`, waiting at most
/// `"cancel_timeout_ms"`, default 5000, for them to stop; queued jobs stay
/// queued for the next open), completes a pending privacy erasure (at most
/// 1 s), checkpoints the WAL and releases the profile lock. Returns an
/// envelope whose data is `{closed: true, erased}` (`erased: false` when a
/// pending erasure could not complete; `closed` error for a handle that is
/// not open); the caller frees it with `hydra_string_free`.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hydra_close(handle: u64, options_json: *const c_char) -> *mut c_char {
    guarded(|| {
        // SAFETY: passed on from the caller's contract.
        let request = unsafe { request_bytes(options_json) };
        let options: CloseOptions = ops::parse_request(request)?;
        // The handle stays in the map while close drains the jobs, so that a
        // running job's host handler can still report progress through it;
        // the profile itself refuses every other call from now on.
        let profile = profile_for(handle)?;
        let closed = match profile.close(options) {
            // Refused options leave the profile open and the handle usable.
            Err(e) if e.code() == ErrorCode::InvalidArgument => return Err(e),
            closed => {
                HANDLES.write().remove(&handle);
                closed?
            }
        };
        serde_json::to_string(&closed).map_err(|_| Error::internal("close report encoding failed"))
    })
}

/// Runs operation `op` (e.g. `"threads.create"`) with a JSON request (NULL or
/// `""` means `{}`). Returns an envelope the caller frees with
/// `hydra_string_free`. Safe to call from any thread, concurrently.
///
/// # Safety
/// `op` and `request_json` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn hydra_call(
    handle: u64,
    op: *const c_char,
    request_json: *const c_char,
) -> *mut c_char {
    let name = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: passed on from the caller's contract.
        unsafe { required_str(op, "op") }
    }))
    .unwrap_or_else(|_| Err(Error::internal("the library hit an internal error")));
    match name {
        // SAFETY: passed on from the caller's contract.
        Ok(name) => unsafe { call_named(handle, name, request_json) },
        Err(e) => guarded(|| Err(e)),
    }
}

/// Releases a string returned by this library, or one made by
/// `hydra_string_alloc` and not handed back. NULL is fine.
///
/// # Safety
/// `s` is NULL or a pointer returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hydra_string_free(s: *mut c_char) {
    // SAFETY: the library's strings come from `malloc` (`malloc_joined`,
    // `hydra_string_alloc`); `free(NULL)` does nothing.
    unsafe { libc::free(s.cast()) }
}

/// A copy of the NUL-terminated string `s` in memory the library owns: what
/// a `hydra_json_fn` callback returns so that the library can release it,
/// whatever allocator the host uses. NULL gives NULL (as does running out of
/// memory). A copy that is not handed back is released with
/// `hydra_string_free`.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hydra_string_alloc(s: *const c_char) -> *mut c_char {
    if s.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { libc::strdup(s) }
}

/// The library version, e.g. `"0.1.0"` (same as `meta.version`'s `version`).
/// The string is static: do not free it.
#[no_mangle]
pub extern "C" fn hydra_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// Expands the registry's table ([`ops::operation_table!`]) into one C
/// function per operation, `hydra_<method>` (`hydra_threads_create`): each is
/// `hydra_call` with the name fixed. Their header lines are written by
/// `scripts/generate` from [`ops::OPERATIONS`].
macro_rules! c_functions {
    ($( $name:literal => $method:ident($req:ty) -> $resp:ty = $handler:path, $access:ident, $summary:literal, errors[$($error:ident),* $(,)?]; )*) => {
        /// The per-operation C functions (exported under `hydra_<method>`).
        pub mod operations {
            use std::os::raw::c_char;
            $(
                #[doc = concat!("`", $name, "`: ", $summary)]
                ///
                /// # Safety
                /// `request_json` is NULL or points to a NUL-terminated string.
                #[export_name = concat!("hydra_", stringify!($method))]
                pub unsafe extern "C" fn $method(handle: u64, request_json: *const c_char) -> *mut c_char {
                    // SAFETY: the caller's promise about `request_json` is passed on unchanged.
                    unsafe { super::call_named(handle, $name, request_json) }
                }
            )*
        }
    };
}

ops::operation_table!(c_functions);

#[cfg(test)]
mod tests {
    use super::*;

    fn take(out: *mut c_char) -> String {
        // SAFETY: `out` is a NUL-terminated string the library returned.
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        // SAFETY: freed once.
        unsafe { hydra_string_free(out) };
        text
    }

    #[test]
    fn envelopes_are_written_as_ops_writes_them() {
        let results: [fn() -> Result<String>; 3] = [
            || Ok("{\"version\":\"1\"}".to_owned()),
            || Ok("[]".to_owned()),
            || Err(Error::not_found("job", "id")),
        ];
        for result in results {
            assert_eq!(take(guarded(result)), ops::envelope(&result()));
        }
        let nul = take(guarded(|| Ok("\"a\0b\"".to_owned())));
        let v: serde_json::Value = serde_json::from_str(&nul).unwrap();
        assert_eq!(v["error"]["code"], "internal");
    }

    #[test]
    fn a_panic_becomes_an_internal_envelope() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let out = guarded(|| panic!("boom"));
        std::panic::set_hook(prev);
        // SAFETY: `out` was just returned by `guarded`.
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        // SAFETY: freed once.
        unsafe { hydra_string_free(out) };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "internal");
    }
}
