//! `hydra_register_model` and `hydra_register_embedder`: the host's chat
//! model and embedder (`spec/OPERATIONS.md` §9).
//!
//! `chat` calls the registered function on the caller's thread, with no
//! database lock held, when a turn has no `reply`. It receives
//! `{thread_id, message, context}` and returns `{content, model?, tokens?}`
//! (or `{"error":{code,message}}`, or NULL, for a failure).

use super::callbacks::{hydra_json_fn, register_callback, wrap_json_fn, wrap_text_fn};
use crate::profile::Profile;
use std::ffi::c_void;
use std::os::raw::c_char;

/// Registers the chat model of a profile handle, replacing any previous one;
/// a NULL `fn` unregisters it. `user_data` is passed back to every call.
/// Returns an envelope (`{"registered":bool}`, or `closed` for a handle that
/// is not open) the caller frees with `hydra_string_free`.
///
/// # Safety
/// `fn`, when not NULL, must be callable from any thread for as long as it
/// stays registered, and `user_data` must stay valid for it that long.
#[no_mangle]
pub unsafe extern "C" fn hydra_register_model(
    handle: u64,
    r#fn: hydra_json_fn,
    user_data: *mut c_void,
) -> *mut c_char {
    register_callback(
        handle,
        || r#fn.map(|f| wrap_json_fn(f, user_data)),
        Profile::set_model,
    )
}

/// Registers the embedder of a profile handle (spec §9), replacing any
/// previous one; a NULL `fn` unregisters it. `documents_embed` jobs call it
/// on a worker thread with `{model, texts}`; it returns `{vectors}` (one
/// vector per text, in order), or NULL or `{"error":{code,message}}` for a
/// failure of that batch. It may call back into the library. Returns an
/// envelope (`{"registered":bool}`, or `closed` for a handle that is not
/// open) the caller frees with `hydra_string_free`.
///
/// # Safety
/// `fn`, when not NULL, must be callable from any thread for as long as it
/// stays registered, and `user_data` must stay valid for it that long.
#[no_mangle]
pub unsafe extern "C" fn hydra_register_embedder(
    handle: u64,
    r#fn: hydra_json_fn,
    user_data: *mut c_void,
) -> *mut c_char {
    register_callback(
        handle,
        || r#fn.map(|f| wrap_text_fn(f, user_data)),
        Profile::set_embedder_text,
    )
}
