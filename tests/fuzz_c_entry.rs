//! `hydra_call` survives arbitrary input: 10,000+ random byte strings and
//! random JSON values, sent to every registered operation and to made-up
//! names, each answered with a well-formed envelope. Guards against a panic,
//! abort or malformed reply crossing the C boundary on input no test
//! author thought of.

use hydra_core::ffi::{hydra_call, hydra_close, hydra_open, hydra_string_free};
use serde_json::{json, Value};
use std::ffi::{CStr, CString};
use std::ptr;

/// xorshift64*: a small deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max);
        // No interior NUL: the C string ends at the first one anyway.
        (0..len).map(|_| (self.below(255) + 1) as u8).collect()
    }
    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            "-",
            ".",
            ":",
            "_",
            " ",
            "é",
            "\"",
            "\\",
            "https://x.example/",
            "%",
            "\u{1F600}",
        ];
        (0..self.below(12))
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 3 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => json!(self.next() as i64 >> self.below(64)),
            3 => json!((self.next() as f64) / 3.0 - 1e18),
            4 | 5 => Value::String(self.string()),
            6 => Value::Array((0..self.below(5)).map(|_| self.value(depth + 1)).collect()),
            _ => {
                const KEYS: &[&str] = &[
                    "id",
                    "limit",
                    "cursor",
                    "url",
                    "title",
                    "thread_id",
                    "vacuum",
                    "optimize",
                    "checkpoint",
                    "x",
                    "order",
                    "status",
                ];
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    map.insert(
                        KEYS[self.below(KEYS.len() as u64) as usize].to_owned(),
                        self.value(depth + 1),
                    );
                }
                Value::Object(map)
            }
        }
    }
}

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
