//! Build script: writes generated code into `$OUT_DIR` only, never into the
//! source tree (a `cargo build` leaves a clean checkout clean).
//!
//! - `src/db/migrations/NNNN_*.sql` -> `$OUT_DIR/migrations.rs` (the ordered
//!   list `db::migrate` runs).
//! - cbindgen over `src/ffi` -> `$OUT_DIR/hydra_core_base.h`: the fixed
//!   entry points and callback types. cbindgen cannot expand the registry's
//!   macros, so the per-operation declarations are added by the
//!   `hydra-generate` tool (`scripts/generate`), which reads the registry
//!   itself and writes the committed `include/hydra_core.h`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    link_with_soname();
    write_if_changed(&out_dir.join("migrations.rs"), &migrations(&crate_dir));
    generate_base_header(&crate_dir, &out_dir);
}

// `ABI_VERSION`: the one number that names the C ABI (the SONAME,
// `HYDRA_ABI_VERSION` in the header, `meta.version`), the same file the
// crate includes in `src/meta.rs`.
include!("src/abi_version.rs");

/// Versions the shared library the way distributions expect: programs
/// linked against it record `libhydra_core.so.<ABI_VERSION>` (a macOS
/// install name likewise), so an ABI bump never loads into an old program.
fn link_with_soname() {
    let abi = ABI_VERSION;
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("macos") => println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libhydra_core.{abi}.dylib"
        ),
        Ok("windows") => {}
        _ => println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhydra_core.so.{abi}"),
    }
}

/// The migration files in version order, as a Rust slice expression.
fn migrations(crate_dir: &Path) -> String {
    let dir = crate_dir.join("src/db/migrations");
    let mut files: Vec<(u32, String, PathBuf)> = std::fs::read_dir(&dir)
        .expect("src/db/migrations exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".sql")?;
            let version: u32 = stem.split('_').next()?.parse().ok()?;
            Some((version, stem.to_owned(), e.path()))
        })
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for (version, name, path) in files {
        writeln!(
            out,
            "    ({version}, {name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push(']');
    out
}

fn generate_base_header(crate_dir: &Path, out_dir: &Path) {
    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(format!(
        "\n/* The C ABI this header declares; also meta.version's abi_version and the\n   \
         shared library's SONAME (libhydra_core.so.N). */\n\
         #define HYDRA_ABI_VERSION {abi}\n\
         /* The library version this header was generated with. */\n\
         #define HYDRA_VERSION \"{version}\"\n",
        abi = ABI_VERSION,
        version = std::env::var("CARGO_PKG_VERSION").unwrap(),
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut text = Vec::new();
    bindings.write(&mut text);
    let text = String::from_utf8(text).expect("header is UTF-8");
    write_if_changed(&out_dir.join("hydra_core_base.h"), &text);
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }
}
