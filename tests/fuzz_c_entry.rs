//! `hydra_call` survives arbitrary input: 10,000+ random byte strings and
//! random JSON values, sent to every registered operation and to made-up
//! names, each answered with a well-formed envelope; and every operation's
//! valid requests (the seed corpus `tests/fuzz_corpus/requests.ndjson`),
//! mutated field by field and byte by byte with hostile strings (NUL,
//! 20,000 characters, bidi controls, LIKE and SQL metacharacters), are
//! answered without `internal`. Guards against a panic, abort, malformed
//! reply or internal error crossing the C boundary on input no test author
//! thought of.

mod common;
use common::fuzz::Rng;
use hydra_core::testing::ffi::{hydra_call, hydra_close, hydra_open, hydra_string_free};
use serde_json::{json, Value};
use std::ffi::{CStr, CString};
use std::ptr;

fn call(handle: u64, op: &CStr, request: &[u8]) -> Value {
    let request = CString::new(request).unwrap();
    // SAFETY: NUL-terminated strings alive across the call.
    let out = unsafe { hydra_call(handle, op.as_ptr(), request.as_ptr()) };
    assert!(!out.is_null());
    // SAFETY: returned by the library.
    let text = unsafe { CStr::from_ptr(out) }
        .to_str()
        .expect("envelopes are UTF-8")
        .to_owned();
    // SAFETY: freed once.
    unsafe { hydra_string_free(out) };
    let v: Value = serde_json::from_str(&text).expect("envelopes are JSON");
    match v["ok"] {
        Value::Bool(true) => assert!(v.get("data").is_some()),
        Value::Bool(false) => {
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{v}"
            );
            assert!(v["error"]["details"].is_object(), "{v}");
        }
        _ => panic!("no ok flag: {v}"),
    }
    v
}

#[test]
fn random_bytes_and_json_never_break_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let options = CString::new(json!({ "profile_dir": dir.path() }).to_string()).unwrap();
    // SAFETY: valid options, NULL error out-pointer.
    let handle = unsafe { hydra_open(options.as_ptr(), ptr::null_mut()) };
    assert_ne!(handle, 0);

    // Read-only and harmless operations get random input; profile.maintenance
    // with vacuum would make the test slow, so it gets bytes only.
    let mut names: Vec<CString> = hydra_core::ops::OPERATIONS
        .iter()
        .map(|op| CString::new(op.name).unwrap())
        .collect();
    names.push(CString::new("meta.nope").unwrap());
    names.push(CString::new("").unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut errors = 0;
    for i in 0..12_000u32 {
        let op = &names[rng.below(names.len() as u64) as usize];
        let request = if i % 2 == 0 {
            rng.bytes(200)
        } else {
            rng.value(0).to_string().into_bytes()
        };
        if op.to_bytes() == b"profile.maintenance" && request.windows(6).any(|w| w == b"vacuum") {
            continue;
        }
        if call(handle, op, &request)["ok"] == false {
            errors += 1;
        }
    }
    // Most random input is refused; the point is that each refusal is an envelope.
    assert!(errors > 6_000, "only {errors} errors");
    // The handle still works afterwards.
    assert_eq!(call(handle, c"meta.version", b"{}")["ok"], true);
    // SAFETY: NULL options are allowed.
    unsafe { hydra_string_free(hydra_close(handle, ptr::null())) };
}

fn open_handle(dir: &std::path::Path) -> u64 {
    let options = CString::new(json!({ "profile_dir": dir }).to_string()).unwrap();
    // SAFETY: valid options, NULL error out-pointer.
    let handle = unsafe { hydra_open(options.as_ptr(), ptr::null_mut()) };
    assert_ne!(handle, 0);
    handle
}

fn ok(handle: u64, op: &str, request: Value) -> Value {
    let op = CString::new(op).unwrap();
    let v = call(handle, &op, request.to_string().as_bytes());
    assert_eq!(v["ok"], true, "{v}");
    v["data"].clone()
}

#[test]
fn mutated_valid_requests_of_every_operation_never_answer_internal() {
    let dir = tempfile::tempdir().unwrap();
    let handle = open_handle(dir.path());
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("src")).unwrap();
    std::fs::write(root.path().join("old.txt"), "old\n").unwrap();
    ok(handle, "threads.create", json!({"id": "t1"}));
    ok(handle, "tasks.create", json!({"id": "k1", "title": "k"}));
    ok(
        handle,
        "memory.upsert",
        json!({"id": "m1", "value": "v", "scope": "global"}),
    );
    ok(
        handle,
        "repo.register",
        json!({"id": "r", "root_path": root.path(), "allowed_ops": ["read", "write"]}),
    );
    let corpus: Vec<(String, Value)> = include_str!("fuzz_corpus/requests.ndjson")
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["op"].as_str().unwrap().to_owned(), v["request"].clone())
        })
        .collect();
    // Every seed is valid as committed: the mutations start from requests
    // that reach the handlers, not from ones the parser already refuses.
    for (op, request) in &corpus {
        let v = call(
            handle,
            &CString::new(op.as_str()).unwrap(),
            request.to_string().as_bytes(),
        );
        assert!(
            v["ok"] == true || v["error"]["code"] == "not_found",
            "{op}: {v}"
        );
    }
    let mut rng = Rng(0x5EED_F00D);
    let mut executions = 0u32;
    for i in 0..6_000u32 {
        let (op, seed) = rng.pick(&corpus).clone();
        let request = if i % 4 == 0 {
            rng.mutate_bytes(seed.to_string().as_bytes())
        } else {
            let mut v = rng.mutate_json(&seed, true);
            for _ in 0..rng.below(3) {
                v = rng.mutate_json(&v, true);
            }
            v.to_string().into_bytes()
        };
        // The C string ends at a NUL byte anyway.
        let request: Vec<u8> = request.into_iter().filter(|b| *b != 0).collect();
        let v = call(handle, &CString::new(op.as_str()).unwrap(), &request);
        executions += 1;
        assert_ne!(
            v["error"]["code"],
            "internal",
            "{op} {}: {v}",
            String::from_utf8_lossy(&request)
        );
    }
    assert!(executions > 5_000);
    eprintln!(
        "fuzz: {executions} mutated requests over {} seeds",
        corpus.len()
    );
    // SAFETY: NULL options are allowed.
    unsafe { hydra_string_free(hydra_close(handle, ptr::null())) };
}
