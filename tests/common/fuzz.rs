//! Deterministic fuzzing helpers shared by the fuzz, crash and soak tests:
//! a seeded generator (a failure reproduces from its seed), random JSON,
//! and mutations of valid inputs (the committed corpus in
//! `tests/fuzz_corpus/`).

use serde_json::{json, Value};

/// xorshift64*: a small deterministic generator, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max);
        // No interior NUL: the C string ends at the first one anyway.
        (0..len).map(|_| (self.below(255) + 1) as u8).collect()
    }
    pub fn string(&mut self) -> String {
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
    pub fn value(&mut self, depth: u32) -> Value {
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

impl Rng {
    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `bytes` with one of: a few bytes flipped, a cut, a duplicated or
    /// removed slice, random bytes inserted.
    pub fn mutate_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        if out.is_empty() {
            return self.bytes(64);
        }
        let at = self.below(out.len() as u64) as usize;
        match self.below(5) {
            0 => {
                for _ in 0..1 + self.below(4) {
                    let i = self.below(out.len() as u64) as usize;
                    out[i] ^= 1 << self.below(8);
                }
            }
            1 => out.truncate(at),
            2 => {
                let end = (at + 1 + self.below(64) as usize).min(out.len());
                let slice = out[at..end].to_vec();
                out.splice(at..at, slice);
            }
            3 => {
                let end = (at + 1 + self.below(64) as usize).min(out.len());
                out.drain(at..end);
            }
            _ => {
                let noise = self.bytes(16);
                out.splice(at..at, noise);
            }
        }
        out
    }

    /// A string no caller should send but any may: NUL, controls, huge,
    /// odd Unicode, SQL and LIKE metacharacters.
    pub fn hostile_string(&mut self) -> String {
        match self.below(8) {
            0 => "a\u{0}b".to_owned(),
            1 => "x".repeat(1 + self.below(20_000) as usize),
            2 => "%_\\'\";--".to_owned(),
            3 => "\u{202E}\u{FEFF}\u{10FFFF}".to_owned(),
            4 => "\r\n\t\u{7}".to_owned(),
            5 => String::new(),
            6 => "https://例え.テスト/\u{0}".to_owned(),
            _ => self.string(),
        }
    }

    /// `value` with one leaf replaced, a key removed or a key added.
    pub fn mutate_json(&mut self, value: &Value, hostile: bool) -> Value {
        let mut out = value.clone();
        let mut leaves = Vec::new();
        collect_paths(&out, &mut Vec::new(), &mut leaves);
        if leaves.is_empty() {
            return self.value(0);
        }
        let path = self.pick(&leaves).clone();
        let replacement = match self.below(4) {
            0 if hostile => Value::String(self.hostile_string()),
            1 => json!(self.next() as i64 >> self.below(64)),
            _ => self.value(1),
        };
        let slot = path.iter().fold(&mut out, |v, k| match v {
            Value::Object(map) => map.get_mut(k.as_str()).unwrap(),
            Value::Array(items) => &mut items[k.parse::<usize>().unwrap()],
            _ => unreachable!(),
        });
        match self.below(6) {
            0 => *slot = Value::Null,
            _ => *slot = replacement,
        }
        if self.below(8) == 0 {
            if let Value::Object(map) = &mut out {
                if let Some(key) = map.keys().next().cloned() {
                    map.remove(&key);
                }
                map.insert(self.string(), self.value(2));
            }
        }
        out
    }
}

/// Paths (keys / indexes) of every leaf and container of `v`.
fn collect_paths(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if !here.is_empty() {
        out.push(here.clone());
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                here.push(k.clone());
                collect_paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                here.push(i.to_string());
                collect_paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}
