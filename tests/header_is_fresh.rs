//! The header, `meta.operations` and the shared library's exported symbols
//! name the same operations. Guards against an operation reachable one way
//! and missing another. (That the committed header is what the registry
//! generates now is proved by `generated_files.rs`.)

use std::collections::BTreeSet;

const COMMITTED: &str = include_str!("../include/hydra_core.h");

/// The C symbol of an operation name.
fn symbol(op: &str) -> String {
    format!("hydra_{}", op.replace('.', "_"))
}

/// The functions the header declares.
fn declared_functions(header: &str) -> BTreeSet<String> {
    header
        .lines()
        .filter(|l| !l.trim_start().starts_with("//") && !l.contains("typedef"))
        .filter_map(|l| {
            let before_paren = l.split('(').next()?;
            let name = before_paren.rsplit([' ', '*']).next()?;
            name.starts_with("hydra_").then(|| name.to_owned())
        })
        .collect()
}

/// The entry points that are not operations.
const FIXED: &[&str] = &[
    "hydra_open",
    "hydra_close",
    "hydra_call",
    "hydra_string_free",
    "hydra_string_alloc",
    "hydra_version",
];

fn operation_symbols() -> BTreeSet<String> {
    hydra_core::ops::OPERATIONS
        .iter()
        .map(|op| symbol(op.name))
        .collect()
}

#[test]
fn header_declares_every_operation_and_nothing_else_unexpected() {
    let declared = declared_functions(COMMITTED);
    for sym in operation_symbols() {
        assert!(declared.contains(&sym), "header lacks {sym}");
    }
    for sym in FIXED {
        assert!(declared.contains(*sym), "header lacks {sym}");
    }
    let known: BTreeSet<String> = operation_symbols()
        .into_iter()
        .chain(FIXED.iter().map(|s| s.to_string()))
        .collect();
    for sym in &declared {
        let is_registration = sym.starts_with("hydra_register_") || sym.starts_with("hydra_set_");
        assert!(
            known.contains(sym) || is_registration,
            "header declares unknown {sym}"
        );
    }
}

#[test]
fn shared_library_exports_every_declared_function() {
    // Integration tests run from target/<profile>/deps; the cdylib sits in
    // target/<profile>.
    let exe = std::env::current_exe().unwrap();
    let lib = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libhydra_core.so");
    assert!(lib.is_file(), "{} not built", lib.display());
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("nm runs");
    assert!(out.status.success());
    let exported: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|s| s.starts_with("hydra_"))
        .map(str::to_owned)
        .collect();
    assert_eq!(exported, declared_functions(COMMITTED));
}

#[test]
fn meta_operations_lists_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let p = hydra_core::Profile::open(hydra_core::OpenOptions::new(dir.path())).unwrap();
    let data = hydra_core::ops::call_json(&p, "meta.operations", b"{}").unwrap();
    let v: serde_json::Value = serde_json::from_str(&data).unwrap();
    let listed: BTreeSet<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| symbol(i["name"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, operation_symbols());
    for item in v["items"].as_array().unwrap() {
        assert!(
            item["read_only"].is_boolean()
                && item["summary"].as_str().is_some_and(|s| !s.is_empty())
        );
    }
}
