//! `include/hydra_core.h`: cbindgen's declarations of the fixed entry points
//! (written by build.rs into `OUT_DIR`) with one declaration per operation
//! of the registry added at the top of the `extern "C"` block.

use hydra_core::ops::OPERATIONS;
use std::fmt::Write as _;

/// cbindgen's header for `src/ffi` (no per-operation functions).
const BASE: &str = include_str!(concat!(env!("OUT_DIR"), "/hydra_core_base.h"));

/// The line after which the function declarations start.
const BLOCK_START: &str = "extern \"C\" {\n#endif // __cplusplus\n\n";

pub fn render() -> String {
    let at = BASE
        .find(BLOCK_START)
        .map(|i| i + BLOCK_START.len())
        .expect("cbindgen's header opens an extern \"C\" block (cpp_compat = true)");
    let mut out = String::with_capacity(BASE.len() + OPERATIONS.len() * 600);
    out.push_str(&BASE[..at]);
    for op in OPERATIONS {
        let errors = if op.errors.is_empty() {
            "none".to_owned()
        } else {
            let names: Vec<&str> = op.errors.iter().map(|c| c.as_str()).collect();
            names.join(", ")
        };
        let access = if op.read_only { "read-only" } else { "writes" };
        write!(
            out,
            "// `{name}` ({access}): {summary}\n\
             //\n\
             // Same as `hydra_call(handle, \"{name}\", request_json)`: takes a profile\n\
             // handle and a NUL-terminated UTF-8 JSON request (NULL or \"\" means `{{}}`);\n\
             // returns a JSON envelope the caller frees with `hydra_string_free`.\n\
             // Error codes beyond the universal ones: {errors}. Fields: docs/operations.md.\n\
             //\n\
             // # Safety\n\
             // `request_json` is NULL or points to a NUL-terminated string.\n\
             char *{function}(uint64_t handle, const char *request_json);\n\n",
            name = op.name,
            summary = op.summary,
            function = op.c_function,
        )
        .expect("writing to a String");
    }
    out.push_str(&BASE[at..]);
    out
}
