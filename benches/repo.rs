//! Cost of `repo.propose_patch` and `repo.apply_patch` on the issue's
//! workload: 50 files x 80 lines, each file rewriting 8 of its lines.
//! Targets (issue 6): apply median under 50 ms, propose median under 10 ms.
//!
//! [`PatchWorkload`] is the reusable harness: it builds a registered repo
//! of `files x lines` and two alternating patches (A -> B, B -> A), so every
//! measured apply really rewrites every file (with fsyncs) and the tree
//! never drifts. The medians are printed first from a plain timed loop,
//! then criterion measures the same calls.
//!
//! The disk is shared and fsync latency swings widely, so the loop also
//! times a raw baseline of the same durable work done naively, interleaved
//! with the applies: each of the 50 files written with
//! `fsutil::write_atomic` (temp file, fsync, rename, directory fsync), with
//! no checks, journal, rollback or ledger. The ratio apply / baseline is
//! the library's overhead under the same conditions.
//!
//! `HYDRA_BENCH_DIR` places the trees and the profile in another folder,
//! e.g. `/dev/shm` (tmpfs, where fsync costs nothing) to measure the
//! library's own work apart from the disk.

use criterion::{criterion_group, criterion_main, Criterion};
use hydra_core::{ops, OpenOptions, Profile};
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A registered repo and two patches that flip it between two states.
pub struct PatchWorkload {
    pub profile: Profile,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    /// Requests (JSON bytes) taking the tree to state B and back to A.
    pub to_b: Vec<u8>,
    pub to_a: Vec<u8>,
    flips: usize,
}

/// A temporary folder under `HYDRA_BENCH_DIR` (default: the system's).
fn bench_tempdir() -> tempfile::TempDir {
    match std::env::var_os("HYDRA_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn content(file: usize, lines: usize, variant: char) -> String {
    (0..lines)
        .map(|l| {
            let v = if l % 10 == 3 { variant } else { 'A' };
            format!("fn item_{file}_{l}() -> u32 {{ {l} }} // variant {v}\n")
        })
        .collect()
}

impl PatchWorkload {
    pub fn new(files: usize, lines: usize) -> PatchWorkload {
        let profile_dir = bench_tempdir();
        let root = bench_tempdir();
        let path = |i: usize| format!("src/mod{}/file{i}.rs", i % 5);
        for i in 0..files {
            let p = root.path().join(path(i));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content(i, lines, 'A')).unwrap();
        }
        let profile = Profile::open(OpenOptions::new(profile_dir.path())).unwrap();
        let register = json!({"id": "bench", "root_path": root.path(), "allowed_ops": ["write"],
                              "budgets": {"max_files": files.max(1), "max_lines": 1_000_000}});
        ops::call_json(&profile, "repo.register", register.to_string().as_bytes()).unwrap();
        let request = |variant: char| {
            let files: Vec<_> = (0..files)
                .map(|i| json!({"path": path(i), "content": content(i, lines, variant)}))
                .collect();
            serde_json::to_vec(&json!({"id": "bench", "files": files})).unwrap()
        };
        PatchWorkload {
            profile,
            to_b: request('B'),
            to_a: request('A'),
            _dirs: (profile_dir, root),
            flips: 0,
        }
    }

    /// Proposes the A -> B patch (the tree stays at A).
    pub fn propose(&self) -> String {
        ops::call_json(&self.profile, "repo.propose_patch", &self.to_b).unwrap()
    }

    /// The baseline: the same files written one by one with
    /// `fsutil::write_atomic`, into a scratch copy of the tree.
    pub fn raw_writes(&self, scratch: &std::path::Path) {
        let request: serde_json::Value = serde_json::from_slice(&self.to_b).unwrap();
        for f in request["files"].as_array().unwrap() {
            let path = scratch.join(f["path"].as_str().unwrap());
            hydra_core::fsutil::write_atomic(&path, f["content"].as_str().unwrap().as_bytes())
                .unwrap();
        }
    }

    /// Applies the next flip (A -> B or B -> A).
    pub fn apply(&mut self) -> String {
        let request = if self.flips.is_multiple_of(2) {
            &self.to_b
        } else {
            &self.to_a
        };
        self.flips += 1;
        ops::call_json(&self.profile, "repo.apply_patch", request).unwrap()
    }
}

fn median_ms(mut run: impl FnMut(), n: usize) -> f64 {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[n / 2]
}

fn patches(c: &mut Criterion) {
    let mut w = PatchWorkload::new(50, 80);
    let propose = median_ms(|| drop(black_box(w.propose())), 40);
    let scratch = bench_tempdir();
    for i in 0..5 {
        std::fs::create_dir_all(scratch.path().join(format!("src/mod{i}"))).unwrap();
    }
    let (mut applies, mut raws) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        applies.push(median_ms(|| drop(black_box(w.apply())), 1));
        raws.push(median_ms(|| w.raw_writes(scratch.path()), 1));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (apply, raw) = (median(&mut applies), median(&mut raws));
    println!("repo.propose_patch 50x80 median: {propose:.2} ms (target < 10 ms)");
    println!("repo.apply_patch   50x80 median: {apply:.2} ms (target < 50 ms)");
    println!(
        "raw write_atomic x50 baseline median: {raw:.2} ms (apply / raw = {:.2})",
        apply / raw
    );

    let mut group = c.benchmark_group("repo 50 files x 80 lines");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);
    group.bench_function("repo.propose_patch", |b| b.iter(|| black_box(w.propose())));
    group.bench_function("repo.apply_patch", |b| b.iter(|| black_box(w.apply())));
    group.finish();
}

criterion_group!(benches, patches);
criterion_main!(benches);
