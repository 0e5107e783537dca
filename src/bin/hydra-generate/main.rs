//! `hydra-generate`: writes every generated file of the repository from the
//! operation registry ([`hydra_core::ops::OPERATIONS`]), so that nothing a
//! user reads is kept in step by hand. `scripts/generate` runs it; the test
//! command runs `scripts/generate --check`, which fails when a committed
//! file differs from what the registry generates now.
//!
//! ```text
//! hydra-generate [--check] [--root DIR] [--list]
//! ```
//!
//! `--root` is the repository to write or check (default: the current
//! directory); `--list` prints the generated paths.

mod header;
mod operations_doc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One generated file: its path in the repository and its text.
struct Generated {
    path: &'static str,
    text: String,
}

/// Every generated file. Adding one (the bindings' type files) is one entry.
fn generated() -> Vec<Generated> {
    vec![
        Generated {
            path: "include/hydra_core.h",
            text: header::render(),
        },
        Generated {
            path: "docs/operations.md",
            text: operations_doc::render(),
        },
    ]
}

const USAGE: &str = "usage: hydra-generate [--check] [--root DIR] [--list]";

fn main() -> ExitCode {
    let mut check = false;
    let mut list = false;
    let mut root = PathBuf::from(".");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--list" => list = true,
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let files = generated();
    if list {
        for file in &files {
            println!("{}", file.path);
        }
        return ExitCode::SUCCESS;
    }
    if check {
        return check_files(&root, &files);
    }
    for file in &files {
        let path = root.join(file.path);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(file.text.as_str()) {
            continue;
        }
        if let Err(e) = write_replacing(&path, file.text.as_bytes()) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", file.path);
    }
    ExitCode::SUCCESS
}

/// Writes a temp file beside `path` and renames it over `path`, so a
/// reader never sees half a generated file.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Fails (exit 1) naming every generated file that is missing or differs.
fn check_files(root: &Path, files: &[Generated]) -> ExitCode {
    let stale: Vec<&str> = files
        .iter()
        .filter(|f| std::fs::read_to_string(root.join(f.path)).ok().as_deref() != Some(&f.text))
        .map(|f| f.path)
        .collect();
    if stale.is_empty() {
        println!("{} generated files are fresh", files.len());
        return ExitCode::SUCCESS;
    }
    for path in stale {
        eprintln!("stale generated file: {path} (run scripts/generate and commit it)");
    }
    ExitCode::FAILURE
}
