//! The crate's layers only point down, as `src/lib.rs` states them.
//!
//! Guards against the kinks a newcomer trips on: the core (profile, db,
//! error, ...) calling up into a domain or a service, two top-level modules
//! importing each other, the C-ABI folder's internals used by the rest of
//! the crate, and a table written behind the back of the module that owns
//! it (the jobs ledger, whose changes must emit `job.updated`; the tabs
//! table). It reads `src/` as text: the layer list in `src/lib.rs`'s docs
//! is the one source, and every top-level module must appear in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/` except the binaries (which use the crate
/// from outside), with its path relative to `src/`.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                if rel != "bin" {
                    walk(&path, root, out);
                }
            } else if rel.ends_with(".rs") && rel != "abi_version.rs" {
                // (`abi_version.rs` is not a module: one constant that
                // `meta.rs` and `build.rs` include.)
                out.push((rel, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = src_dir();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    assert!(out.len() > 20, "src/ not found");
    out
}

/// The top-level module a file belongs to (`lib` for the crate root).
fn module_of(rel: &str) -> String {
    let first = rel.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without its comments (a `//` to the end of the line;
/// a `//` inside a string only cuts a string, which holds no import) and
/// without its unit tests (a `#[cfg(test)] mod tests` at its end drives the
/// crate from the top, as a user does, and is no part of the file's layer).
fn code(text: &str) -> String {
    let text = match text.find("\n#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names through `crate::`, including
/// grouped imports (`use crate::{a, b::c}`).
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `hydra_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && item_start {
                    if c.is_alphanumeric() || c == '_' {
                        ident.push(c);
                        continue;
                    }
                    if !ident.is_empty() {
                        found.insert(std::mem::take(&mut ident));
                        item_start = false;
                    }
                }
            }
            if !ident.is_empty() {
                found.insert(ident);
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                found.insert(ident);
            }
        }
    }
    found.remove("self");
    found
}

/// The layers `src/lib.rs` states, lowest first: the lines after "Layers,
/// lowest first" of the form `//! - name: `a`, `b``.
fn layers() -> Vec<(String, Vec<String>)> {
    let lib = fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let mut lines = lib
        .lines()
        .skip_while(|l| !l.contains("Layers, lowest first"));
    assert!(lines.next().is_some(), "src/lib.rs states no layers");
    let mut layers = Vec::new();
    for line in lines {
        let Some(item) = line.strip_prefix("//! - ") else {
            if layers.is_empty() {
                continue;
            }
            break;
        };
        let (name, modules) = item.split_once(':').expect("`- name: modules`");
        let modules = modules
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        layers.push((name.trim().to_owned(), modules));
    }
    layers
}

fn rank_of_modules() -> BTreeMap<String, usize> {
    let mut rank = BTreeMap::new();
    for (n, (_, modules)) in layers().iter().enumerate() {
        for m in modules {
            rank.insert(m.clone(), n);
        }
    }
    rank.insert("lib".to_owned(), usize::MAX);
    rank
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources() {
        let module = module_of(&rel);
        let edges = graph.entry(module.clone()).or_default();
        for target in imports(&code(&text)) {
            if target != module {
                edges.insert(target);
            }
        }
    }
    graph
}

#[test]
fn lib_rs_names_every_top_level_module_once() {
    let layers = layers();
    let names: Vec<&str> = layers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["base", "storage", "core", "services", "domains", "registry", "faces"]
    );
    let mut listed = BTreeSet::new();
    for (_, modules) in &layers {
        for m in modules {
            assert!(listed.insert(m.clone()), "`{m}` is listed twice");
        }
    }
    for (rel, _) in sources() {
        let module = module_of(&rel);
        assert!(
            module == "lib" || listed.contains(&module),
            "src/{rel}: module `{module}` is in no layer of src/lib.rs"
        );
    }
}

#[test]
fn imports_never_point_up() {
    let rank = rank_of_modules();
    let mut wrong = Vec::new();
    for (rel, text) in sources() {
        let module = module_of(&rel);
        let own = rank[&module];
        for target in imports(&code(&text)) {
            let Some(&theirs) = rank.get(&target) else {
                continue; // a crate-root item (`crate::Result`)
            };
            if theirs > own {
                wrong.push(format!("src/{rel} ({module}) imports crate::{target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports pointing up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_core_never_imports_a_domain_or_a_service() {
    let layers = layers();
    let core: BTreeSet<&String> = layers[..3].iter().flat_map(|(_, m)| m).collect();
    let above: BTreeSet<&String> = layers[3..].iter().flat_map(|(_, m)| m).collect();
    for (rel, text) in sources() {
        if !core.contains(&module_of(&rel)) {
            continue;
        }
        for target in imports(&code(&text)) {
            assert!(
                !above.contains(&target),
                "core file src/{rel} imports crate::{target}"
            );
        }
    }
}

#[test]
fn top_level_modules_form_no_circle() {
    let graph = graph();
    // Depth-first search; a module met again while on the stack closes a circle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = stack.iter().position(|n| *n == node) {
            panic!("import circle: {} -> {node}", stack[at..].join(" -> "));
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next) {
                visit(next, graph, stack, done);
            }
        }
        stack.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn only_the_c_abi_imports_ffi() {
    for (rel, text) in sources() {
        if rel.starts_with("ffi/") || rel == "lib.rs" {
            continue;
        }
        assert!(
            !imports(&code(&text)).contains("ffi"),
            "src/{rel} imports crate::ffi (POSIX wrappers live in src/sys/)"
        );
    }
}

/// SQL statements that write `table`, in any spelling of the keywords.
fn writes_table(code: &str, table: &str) -> Vec<String> {
    let folded: String = code
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let mut found = Vec::new();
    for verb in [
        "update",
        "insert into",
        "insert or replace into",
        "insert or ignore into",
        "delete from",
        "replace into",
    ] {
        let needle = format!("{verb} {table}");
        let mut rest = folded.as_str();
        while let Some(at) = rest.find(&needle) {
            let after = rest[at + needle.len()..].chars().next();
            if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                found.push(needle.clone());
            }
            rest = &rest[at + needle.len()..];
        }
    }
    found
}

#[test]
fn one_module_writes_the_jobs_ledger_and_one_the_tabs() {
    let mut wrong = Vec::new();
    for (rel, text) in sources() {
        let code = code(&text);
        if !rel.starts_with("jobs/") {
            for w in writes_table(&code, "jobs") {
                wrong.push(format!(
                    "src/{rel}: `{w}` (the jobs ledger is written by src/jobs/)"
                ));
            }
        }
        if rel != "browser/tabs.rs" {
            for w in writes_table(&code, "tabs") {
                wrong.push(format!(
                    "src/{rel}: `{w}` (tabs are written by src/browser/tabs.rs)"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Tests never sleep to let time pass or to wait for something not to
/// happen: they move a `ManualClock`, or poll for the event with a deadline
/// through the one helper, `tests/polling/mod.rs`.
#[test]
fn tests_sleep_only_in_the_polling_helper() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files = Vec::new();
    walk(&tests, &mut files);
    let helper = tests.join("polling").join("mod.rs");
    assert!(files.contains(&helper), "the polling helper moved");
    let needle = ["thread", "::sleep"].concat(); // (not found in this file)
    let sleeping: Vec<String> = files
        .iter()
        .filter(|f| **f != helper)
        .filter(|f| code(&fs::read_to_string(f).unwrap()).contains(&needle))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        sleeping.is_empty(),
        "tests that sleep outside tests/polling/mod.rs: {sleeping:?}"
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    let found =
        imports("use crate::{db::Db, error::{Error, Result}};\nlet x = crate::jobs::Jobs::new();");
    assert_eq!(
        found,
        ["db", "error", "jobs"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
    assert_eq!(
        writes_table("conn.run(\"UPDATE  jobs\n SET x = 1\")", "jobs").len(),
        1
    );
    assert!(writes_table("UPDATE jobs_x SET", "jobs").is_empty());
    assert!(imports(&code("// crate::ffi in a comment")).is_empty());
}
