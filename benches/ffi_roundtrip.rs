//! Round-trip cost of one operation through each face of the library:
//! the C ABI (`hydra_call`, string in, envelope out, free), the JSON
//! dispatcher, and the typed Rust API. Target (issue 2): `meta.version`
//! through `hydra_call` under 3 µs median. The C-side figure comes from
//! `examples/c/bench_roundtrip.c` (run by `scripts/bench`).

use criterion::{criterion_group, criterion_main, Criterion};
use hydra_core::testing::ffi::{hydra_call, hydra_close, hydra_open, hydra_string_free};
use std::ffi::CString;
use std::hint::black_box;
use std::time::Duration;

fn roundtrip(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let options =
        CString::new(serde_json::json!({ "profile_dir": dir.path() }).to_string()).unwrap();
    // SAFETY: valid options string; NULL error pointer is allowed.
    let handle = unsafe { hydra_open(options.as_ptr(), std::ptr::null_mut()) };
    assert_ne!(handle, 0);
    let op = c"meta.version";
    let request = c"{}";

    let mut group = c.benchmark_group("meta.version");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    group.bench_function("hydra_call (C ABI from Rust)", |b| {
        b.iter(|| {
            // SAFETY: static NUL-terminated strings; the result is freed once.
            unsafe {
                hydra_string_free(black_box(hydra_call(handle, op.as_ptr(), request.as_ptr())))
            }
        })
    });
    let profile =
        hydra_core::Profile::open(hydra_core::OpenOptions::new(dir.path().join("typed"))).unwrap();
    group.bench_function("ops::call_json", |b| {
        b.iter(|| black_box(hydra_core::ops::call_json(&profile, "meta.version", b"{}").unwrap()))
    });
    group.bench_function("typed Profile::meta_version", |b| {
        b.iter(|| black_box(profile.meta_version(Default::default()).unwrap()))
    });
    group.finish();
    // SAFETY: NULL options are allowed; the envelope is freed once.
    unsafe { hydra_string_free(hydra_close(handle, std::ptr::null())) };
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
