//! The generated files are what the registry generates now, and they say
//! what the registry says. Guards against a header or an operation reference
//! edited by hand or left stale after an operation changed, and against a
//! `meta.operations` catalogue that drifts from the registry it describes.

use hydra_core::ops::{self, OPERATIONS};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GENERATOR: &str = env!("CARGO_BIN_EXE_hydra-generate");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn generator(args: &[&str]) -> Output {
    Command::new(GENERATOR)
        .args(args)
        .output()
        .expect("hydra-generate runs")
}

fn check(root: &Path) -> Output {
    generator(&["--check", "--root", root.to_str().unwrap()])
}

/// The paths (relative to the repository) of every generated file.
fn generated_paths() -> Vec<String> {
    let out = generator(&["--list"]);
    assert!(out.status.success());
    let paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(paths.contains(&"include/hydra_core.h".to_owned()));
    assert!(paths.contains(&"docs/operations.md".to_owned()));
    paths
}

/// A copy of the repository's generated files under a temporary root.
fn copy_of_generated(paths: &[String]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for path in paths {
        let to: PathBuf = root.path().join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(REPO).join(path), &to).unwrap();
    }
    root
}

#[test]
fn check_passes_on_the_committed_tree() {
    let out = check(Path::new(REPO));
    assert!(
        out.status.success(),
        "generated files are stale; run scripts/generate:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_fails_when_any_generated_file_is_edited_by_hand_or_missing() {
    let paths = generated_paths();
    for path in &paths {
        let root = copy_of_generated(&paths);
        assert!(check(root.path()).status.success(), "the copy is fresh");

        // One character changed in the middle of the file.
        let file = root.path().join(path);
        let mut text = std::fs::read_to_string(&file).unwrap();
        let middle = (text.len() / 2..text.len())
            .find(|&i| {
                text.is_char_boundary(i) && text[i..].starts_with(|c: char| c.is_ascii_alphabetic())
            })
            .unwrap();
        let replacement = if text[middle..].starts_with('x') {
            "y"
        } else {
            "x"
        };
        text.replace_range(middle..middle + 1, replacement);
        std::fs::write(&file, &text).unwrap();
        let out = check(root.path());
        assert!(!out.status.success(), "an edit of {path} went unnoticed");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(path.as_str()),
            "the failure names {path}"
        );

        std::fs::remove_file(&file).unwrap();
        assert!(
            !check(root.path()).status.success(),
            "a missing {path} went unnoticed"
        );
    }
}

/// `meta.operations` as a caller sees it.
fn catalogue() -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let p = hydra_core::Profile::open(hydra_core::OpenOptions::new(dir.path())).unwrap();
    let data = ops::call_json(&p, "meta.operations", b"{}").unwrap();
    let v: Value = serde_json::from_str(&data).unwrap();
    v["items"].as_array().unwrap().clone()
}

#[test]
fn meta_operations_returns_the_registry_with_errors_and_schemas() {
    let items = catalogue();
    assert_eq!(items.len(), OPERATIONS.len());
    for (item, op) in items.iter().zip(OPERATIONS) {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "errors",
                "name",
                "read_only",
                "request_schema",
                "response_schema",
                "summary"
            ]
        );
        assert_eq!(item["name"], op.name);
        assert_eq!(item["read_only"], op.read_only);
        assert_eq!(item["summary"], op.summary);
        let errors: Vec<&str> = op.errors.iter().map(|c| c.as_str()).collect();
        assert_eq!(item["errors"], serde_json::json!(errors));
        assert_eq!(item["request_schema"], (op.request_schema)());
        assert_eq!(item["response_schema"], (op.response_schema)());
        assert_eq!(item["request_schema"]["type"], "object", "{}", op.name);
    }
}

/// The section of `docs/operations.md` about one operation.
fn section<'a>(doc: &'a str, name: &str) -> &'a str {
    let heading = format!("\n## `{name}`\n");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("docs/operations.md has no section for {name}"));
    let rest = &doc[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The top-level field names of a schema (through `$ref` and `anyOf`).
fn field_names(schema: &Value) -> Vec<String> {
    let resolve = |s: &Value| -> Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => schema["$defs"][r.rsplit('/').next().unwrap()].clone(),
            None => s.clone(),
        }
    };
    let mut shapes = vec![schema.clone()];
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            shapes.extend(options.iter().map(resolve));
        }
    }
    shapes
        .iter()
        .filter_map(|s| s.get("properties").and_then(Value::as_object))
        .flat_map(|p| p.keys().cloned())
        .collect()
}

#[test]
fn operations_doc_documents_every_operation_with_its_fields_and_errors() {
    let doc = std::fs::read_to_string(Path::new(REPO).join("docs/operations.md")).unwrap();
    let items = catalogue();
    assert_eq!(
        doc.matches("\n## `").count(),
        items.len(),
        "one section per operation"
    );
    for item in &items {
        let name = item["name"].as_str().unwrap();
        let text = section(&doc, name);
        assert!(
            text.contains(item["summary"].as_str().unwrap()),
            "{name}: summary"
        );
        let request = text.split("### Response").next().unwrap();
        for field in field_names(&item["request_schema"]) {
            assert!(
                request.contains(&format!("| `{field}` |")),
                "{name}: request field {field}"
            );
        }
        let response = text.split("### Response").nth(1).unwrap();
        for field in field_names(&item["response_schema"]) {
            assert!(
                response.contains(&format!("| `{field}` |")),
                "{name}: response field {field}"
            );
        }
        for code in item["errors"].as_array().unwrap() {
            assert!(
                text.contains(&format!("`{}`", code.as_str().unwrap())),
                "{name}: {code}"
            );
        }
        let access = if item["read_only"] == true {
            "read-only"
        } else {
            "writes"
        };
        assert!(
            text.contains(&format!("- Access: {access}")),
            "{name}: access"
        );
    }
}

#[test]
fn every_documented_example_request_is_accepted() {
    let doc = std::fs::read_to_string(Path::new(REPO).join("docs/operations.md")).unwrap();
    for op in OPERATIONS {
        let text = section(&doc, op.name);
        let example = text
            .split("### Example request\n\n```json\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .unwrap_or_else(|| panic!("{}: no example", op.name));
        if let Err(e) = (op.check_request)(example.as_bytes()) {
            panic!("{}: the example {example} is refused: {e}", op.name);
        }
    }
}
