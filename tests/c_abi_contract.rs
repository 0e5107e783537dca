//! The C ABI keeps section 1 of the contract for every kind of bad input:
//! NULL and invalid UTF-8 strings, non-JSON, oversize requests, unknown
//! fields and operations, zero/unknown/closed handles. Guards against a shell
//! crashing, leaking or getting an ambiguous answer from a malformed call.

// The per-operation C functions live in `ffi::operations` under their
// method names; their exported symbols are `hydra_<method>`.
use hydra_core::testing::ffi::operations::meta_version as hydra_meta_version;
use hydra_core::testing::ffi::{
    hydra_call, hydra_close, hydra_open, hydra_string_free, hydra_version,
};
use serde_json::Value;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;

/// Takes ownership of a returned string, frees it, returns its JSON.
fn take(s: *mut c_char) -> Value {
    assert!(!s.is_null());
    // SAFETY: `s` is a NUL-terminated string returned by the library.
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_owned();
    // SAFETY: returned by the library, freed once.
    unsafe { hydra_string_free(s) };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn code(envelope: &Value) -> &str {
    assert_eq!(envelope["ok"], Value::Bool(false), "{envelope}");
    envelope["error"]["code"].as_str().unwrap()
}

fn open(dir: &std::path::Path) -> u64 {
    let options = CString::new(serde_json::json!({ "profile_dir": dir }).to_string()).unwrap();
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: valid C string and out-pointer.
    let handle = unsafe { hydra_open(options.as_ptr(), &mut err) };
    assert_ne!(handle, 0, "open failed: {}", take(err));
    assert!(err.is_null());
    handle
}

fn call(handle: u64, op: &[u8], request: Option<&[u8]>) -> Value {
    let op = CString::new(op).unwrap();
    let request = request.map(|r| CString::new(r).unwrap());
    let request_ptr = request.as_ref().map_or(ptr::null(), |r| r.as_ptr());
    // SAFETY: NUL-terminated strings (or NULL) alive across the call.
    take(unsafe { hydra_call(handle, op.as_ptr(), request_ptr) })
}

#[test]
fn success_envelope_and_version_agree() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path());
    let v = call(h, b"meta.version", Some(b"{}"));
    assert_eq!(v["ok"], Value::Bool(true));
    // SAFETY: static string.
    let version = unsafe { CStr::from_ptr(hydra_version()) }.to_str().unwrap();
    assert_eq!(v["data"]["version"], version);
    // NULL and "" requests mean {}.
    assert_eq!(call(h, b"meta.version", None)["ok"], true);
    assert_eq!(call(h, b"meta.version", Some(b""))["ok"], true);
    // The per-operation function is the same call.
    // SAFETY: NULL request is allowed.
    let direct = take(unsafe { hydra_meta_version(h, ptr::null()) });
    assert_eq!(direct, v);
    // SAFETY: NULL options are allowed.
    assert_eq!(take(unsafe { hydra_close(h, ptr::null()) })["ok"], true);
}

#[test]
fn bad_requests_get_their_codes_in_contract_order() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path());
    assert_eq!(
        code(&call(h, b"meta.version", Some(b"{not json"))),
        "invalid_json"
    );
    assert_eq!(
        code(&call(h, b"meta.version", Some(b"[]"))),
        "invalid_argument"
    );
    assert_eq!(
        code(&call(h, b"meta.version", Some(b"null"))),
        "invalid_argument"
    );
    let e = call(h, b"meta.version", Some(br#"{"verbose":true}"#));
    assert_eq!(code(&e), "invalid_argument");
    assert_eq!(e["error"]["details"]["field"], "verbose");
    // An unknown key is the caller's text (here a URL): details.field names
    // it, the message does not (messages never hold URLs).
    let secret = "https://secret.example.com/path?q=1";
    for (op, request, field) in [
        (
            "meta.version",
            format!(r#"{{"{secret}":1}}"#),
            secret.to_owned(),
        ),
        (
            "visits.record_batch",
            format!(r#"{{"visits":[{{"url":"https://a.example/","{secret}":1}}]}}"#),
            format!("visits[0].{secret}"),
        ),
    ] {
        let e = call(h, op.as_bytes(), Some(request.as_bytes()));
        assert_eq!(code(&e), "invalid_argument", "{e}");
        assert_eq!(e["error"]["details"]["field"], field.as_str());
        let message = e["error"]["message"].as_str().unwrap();
        assert!(!message.contains("secret"), "{message}");
        assert!(message.ends_with("unknown field"), "{message}");
    }
    // Valid JSON of the wrong type for an enumeration is the field's fault
    // (serde_json calls it a syntax error): invalid_argument naming it,
    // and nothing is written.
    let t = call(h, b"threads.create", Some(br#"{"title":"t"}"#));
    let thread = t["data"]["thread"]["id"].as_str().unwrap().to_owned();
    let counts = |o: Value| (o["data"]["tasks"].clone(), o["data"]["llm"].clone());
    let before = counts(call(h, b"overview", Some(b"{}")));
    for (op, request, field) in [
        (
            "tasks.create",
            r#"{"title":"x","status":true}"#.to_owned(),
            "status",
        ),
        (
            "tasks.list",
            r#"{"status":["pending"]}"#.to_owned(),
            "status",
        ),
        (
            "memory.upsert",
            r#"{"value":"v","scope":{}}"#.to_owned(),
            "scope",
        ),
        ("memory.list", r#"{"scope":5}"#.to_owned(), "scope"),
        (
            "messages.append",
            format!(r#"{{"thread_id":"{thread}","role":1,"content":"x"}}"#),
            "role",
        ),
        (
            "messages.list",
            format!(r#"{{"thread_id":"{thread}","order":["asc"]}}"#),
            "order",
        ),
    ] {
        let e = call(h, op.as_bytes(), Some(request.as_bytes()));
        assert_eq!(code(&e), "invalid_argument", "{op} {request}: {e}");
        assert_eq!(e["error"]["details"]["field"], field, "{op} {request}");
    }
    assert_eq!(counts(call(h, b"overview", Some(b"{}"))), before);
    // serde reads a struct from an array too (fields in order): a nested
    // object given as an array is refused, naming it, and writes nothing.
    for (op, request, field) in [
        (
            "chat",
            r#"{"message":"m","reply":"ok","retrieve":["words"]}"#,
            "retrieve",
        ),
        (
            "documents.search",
            r#"{"embedding":["m",[1,0]],"limit":2}"#,
            "embedding",
        ),
        (
            "documents.upsert",
            r#"{"url":"https://arr.example/","text":"x","chunks":[["hello"]]}"#,
            "chunks[0]",
        ),
        (
            "documents.upsert",
            r#"{"url":"https://arr.example/","text":"x","chunks":[{"text":"x","embedding":["m",[1]]}]}"#,
            "chunks[0].embedding",
        ),
        (
            "memory.upsert",
            r#"{"value":"v","scope":"global","embedding":["m",[1,0]]}"#,
            "embedding",
        ),
    ] {
        let e = call(h, op.as_bytes(), Some(request.as_bytes()));
        assert_eq!(code(&e), "invalid_argument", "{op} {request}: {e}");
        assert_eq!(e["error"]["details"]["field"], field, "{op} {request}");
    }
    assert_eq!(counts(call(h, b"overview", Some(b"{}"))), before);
    let docs = call(h, b"documents.list", Some(b"{}"));
    assert_eq!(docs["data"]["items"], serde_json::json!([]));
    // Arrays where arrays belong still pass.
    let ok = call(
        h,
        b"visits.record_batch",
        Some(br#"{"visits":[{"url":"https://a.example/","visited_at":1}]}"#),
    );
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(
        code(&call(h, b"no.such_op", Some(b"{}"))),
        "unknown_operation"
    );
    assert_eq!(code(&call(h, b"", Some(b"{}"))), "unknown_operation");

    // Invalid UTF-8 in the request and in the operation name.
    assert_eq!(
        code(&call(h, b"meta.version", Some(b"{\"a\":\"\xff\"}"))),
        "invalid_argument"
    );
    assert_eq!(
        code(&call(h, b"meta.\xc3", Some(b"{}"))),
        "invalid_argument"
    );
    // NULL operation name.
    // SAFETY: NULL op is allowed and must be refused.
    assert_eq!(
        code(&take(unsafe { hydra_call(h, ptr::null(), ptr::null()) })),
        "invalid_argument"
    );

    // Oversize is checked first: a 16 MiB + 1 request of invalid UTF-8 and
    // invalid JSON is still payload_too_large.
    let mut big = vec![b'\xff'; 16 * 1024 * 1024 + 1];
    big[0] = b'{';
    assert_eq!(
        code(&call(h, b"meta.version", Some(&big))),
        "payload_too_large"
    );
    // Exactly 16 MiB is read (and here is valid JSON padded with spaces).
    let mut limit = vec![b' '; 16 * 1024 * 1024];
    limit[0] = b'{';
    limit[16 * 1024 * 1024 - 1] = b'}';
    assert_eq!(call(h, b"meta.version", Some(&limit))["ok"], true);
    // SAFETY: NULL options are allowed.
    take(unsafe { hydra_close(h, ptr::null()) });
}

#[test]
fn zero_unknown_and_closed_handles_are_closed() {
    assert_eq!(code(&call(0, b"meta.version", None)), "closed");
    assert_eq!(code(&call(u64::MAX, b"meta.version", None)), "closed");
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path());
    // SAFETY: NULL options are allowed.
    assert_eq!(take(unsafe { hydra_close(h, ptr::null()) })["ok"], true);
    assert_eq!(code(&call(h, b"meta.version", None)), "closed");
    // SAFETY: as above; closing twice is refused, not undefined.
    assert_eq!(
        code(&take(unsafe { hydra_close(h, ptr::null()) })),
        "closed"
    );
    // SAFETY: as above.
    assert_eq!(
        code(&take(unsafe { hydra_close(0, ptr::null()) })),
        "closed"
    );
    // Unknown close options are refused and the handle stays open.
    let h = open(dir.path());
    let bad = CString::new(r#"{"cancel_runing":true}"#).unwrap();
    // SAFETY: valid C string.
    assert_eq!(
        code(&take(unsafe { hydra_close(h, bad.as_ptr()) })),
        "invalid_argument"
    );
    assert_eq!(call(h, b"meta.version", None)["ok"], true);
    // SAFETY: NULL options are allowed.
    take(unsafe { hydra_close(h, ptr::null()) });
}

#[test]
fn open_failures_fill_the_error_envelope_or_nothing() {
    let cases: &[(&[u8], &str)] = &[
        (b"{", "invalid_json"),
        (b"{}", "invalid_argument"),
        (
            br#"{"profile_dir":"/tmp/x","workers":0}"#,
            "invalid_argument",
        ),
        (
            br#"{"profile_dir":"/tmp/x","workers":65}"#,
            "invalid_argument",
        ),
        (
            br#"{"profile_dir":"/tmp/x","synchronous":"FULL"}"#,
            "invalid_argument",
        ),
        (br#"{"profile_dir":"/tmp/x","color":1}"#, "invalid_argument"),
        (br#"{"profile_dir":""}"#, "invalid_argument"),
    ];
    for (options, expected) in cases {
        let options = CString::new(*options).unwrap();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: valid C string and out-pointer.
        let handle = unsafe { hydra_open(options.as_ptr(), &mut err) };
        assert_eq!(handle, 0);
        assert_eq!(code(&take(err)), *expected);
        // A NULL out-pointer is allowed: the error is simply not reported.
        // SAFETY: valid C string, NULL out-pointer.
        assert_eq!(unsafe { hydra_open(options.as_ptr(), ptr::null_mut()) }, 0);
    }
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: NULL options are `{}`, which lacks profile_dir.
    assert_eq!(unsafe { hydra_open(ptr::null(), &mut err) }, 0);
    assert_eq!(code(&take(err)), "invalid_argument");
}

#[test]
fn second_open_of_a_profile_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path());
    let options =
        CString::new(serde_json::json!({ "profile_dir": dir.path() }).to_string()).unwrap();
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: valid C string and out-pointer.
    assert_eq!(unsafe { hydra_open(options.as_ptr(), &mut err) }, 0);
    assert_eq!(code(&take(err)), "profile_locked");
    // SAFETY: NULL options are allowed.
    take(unsafe { hydra_close(h, ptr::null()) });
    let again = open(dir.path());
    // SAFETY: NULL options are allowed.
    take(unsafe { hydra_close(again, ptr::null()) });
}

#[test]
fn one_handle_serves_many_threads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..200 {
                    assert_eq!(call(h, b"profile.info", None)["ok"], true);
                    assert_eq!(
                        call(h, b"profile.maintenance", Some(br#"{"optimize":false}"#))["ok"],
                        true
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // SAFETY: NULL options are allowed.
    take(unsafe { hydra_close(h, ptr::null()) });
}
