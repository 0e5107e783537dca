//! What a C or C++ program relies on when it links the library the way
//! distributions ship it: a versioned SONAME, `HYDRA_ABI_VERSION` in the
//! header equal to `meta.version`'s `abi_version`, only prefixed names in the
//! header (no `Millis` colliding with the application's own), and a shared
//! library that exports nothing but `hydra_*` (no `sqlite3_*` to clash with
//! the host's SQLite). `scripts/install` checks the static library the same
//! way, and `scripts/test` builds the C example through pkg-config.

use std::path::PathBuf;
use std::process::Command;

const HEADER: &str = include_str!("../include/hydra_core.h");

fn shared_library() -> PathBuf {
    // Integration tests run from target/<profile>/deps.
    let exe = std::env::current_exe().unwrap();
    let lib = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libhydra_core.so");
    assert!(lib.is_file(), "{} not built", lib.display());
    lib
}

fn tool(program: &str, args: &[&str], lib: &PathBuf) -> String {
    let out = Command::new(program)
        .args(args)
        .arg(lib)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(out.status.success(), "{program} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn shared_library_records_a_versioned_soname() {
    let dynamic = tool("readelf", &["-d"], &shared_library());
    let expected = format!(
        "Library soname: [libhydra_core.so.{}]",
        hydra_core::meta::ABI_VERSION
    );
    assert!(dynamic.contains(&expected), "no {expected} in:\n{dynamic}");
}

#[test]
fn shared_library_exports_only_hydra_names() {
    let symbols = tool("nm", &["-D", "--defined-only"], &shared_library());
    let foreign: Vec<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|name| !name.starts_with("hydra_"))
        .collect();
    assert!(foreign.is_empty(), "exported beyond hydra_*: {foreign:?}");
}

#[test]
fn header_names_its_abi_version() {
    let line = format!(
        "#define HYDRA_ABI_VERSION {}",
        hydra_core::meta::ABI_VERSION
    );
    assert!(HEADER.lines().any(|l| l == line), "header lacks `{line}`");
}

#[test]
fn every_name_the_header_declares_is_prefixed() {
    let mut names = Vec::new();
    for line in HEADER.lines().map(str::trim) {
        if line.starts_with("//") || line.starts_with("/*") || line.starts_with('*') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#define ") {
            names.push(rest.split_whitespace().next().unwrap().to_owned());
        } else if let Some(rest) = line.strip_prefix("typedef ") {
            // `typedef int64_t Name;` or `typedef char *(*name)(...);`
            let name = match rest.split_once("(*") {
                Some((_, after)) => after.split(')').next().unwrap(),
                None => rest
                    .trim_end_matches(';')
                    .rsplit([' ', '*'])
                    .next()
                    .unwrap(),
            };
            names.push(name.to_owned());
        } else if line.contains('(') && line.ends_with(");") {
            let before = line.split('(').next().unwrap();
            names.push(before.rsplit([' ', '*']).next().unwrap().to_owned());
        }
    }
    assert!(names.len() > 10, "parsed too few declarations: {names:?}");
    let unprefixed: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("hydra_") && !n.starts_with("HYDRA_"))
        .collect();
    assert!(unprefixed.is_empty(), "unprefixed C names: {unprefixed:?}");
}
