//! Atomic file writes: every file the library writes goes through here.
//!
//! A file is written to a temporary file in the same directory, fsynced,
//! renamed over the target, and the directory is fsynced, so a crash at any
//! instant leaves either the old file or the new one, never a torn one.

use crate::error::Result;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Replaces `path` with whatever `fill` writes, atomically and durably.
/// `fill` may stream (a bundle export never holds the whole file).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    stage(path, fill)?.commit()
}

/// The name prefix of every temporary file the library writes; a file with
/// it is never a finished one (see [`remove_temp_files`]).
pub const TEMP_PREFIX: &str = ".hydra-tmp-";

/// A fully written and fsynced temporary file waiting to replace its
/// target ([`stage`]). Dropped without [`Staged::commit`], it is removed.
pub struct Staged<'p> {
    temp: tempfile::NamedTempFile,
    path: &'p Path,
}

impl Staged<'_> {
    /// Renames the file over its target and fsyncs the directory.
    pub fn commit(self) -> Result<()> {
        self.temp.persist(self.path).map_err(|e| e.error)?;
        sync_dir(parent_dir(self.path))?;
        Ok(())
    }
}

/// Writes what `fill` writes to a temporary file beside `path` and fsyncs
/// it; the caller decides whether to [`Staged::commit`] it (an export
/// publishes only if no privacy delete overtook it).
pub fn stage(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<Staged<'_>> {
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(parent_dir(path))?;
    fill(temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    Ok(Staged { temp, path })
}

/// Removes the library's temporary files ([`TEMP_PREFIX`]) directly in
/// `dir`, left by a write that was killed before its rename. Returns how
/// many went; a missing directory has none.
pub fn remove_temp_files(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let is_temp = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
        if is_temp && entry.file_type()?.is_file() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.txt");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.txt");
        write_atomic(&target, b"old").unwrap();
        let result = write_atomic_with(&target, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("disk gone"))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
    }
}
