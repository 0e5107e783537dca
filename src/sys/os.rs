//! Small safe wrappers over the POSIX calls std does not offer: directory
//! file descriptors walked with `openat` + `O_NOFOLLOW`, and the `*at`
//! calls (`mkdirat`, `renameat`, `linkat`, `unlinkat`, `fstatat`) relative to
//! them, plus `killpg`.
//!
//! The repository tooling writes into a user's tree on behalf of an AI agent.
//! Resolving a path string again at every step would let a symlink swapped
//! in between the check and the write redirect it outside the tree; working
//! from directory descriptors opened without following symlinks closes that
//! race: once a [`Dir`] is open, every name used with it is a single
//! component resolved inside that very directory, never through a link.
//!
//! Each `unsafe` block below is a plain system call on a descriptor this
//! module owns and a NUL-terminated copy of a name; none keeps a pointer.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a directory entry is, seen without following a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// An entry's kind, permission bits (`st_mode & 0o7777`) and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryStat {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// An open directory. Names passed to its methods are single components:
/// a name containing `/` or NUL is refused with `InvalidInput`.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

fn component(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single path component",
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

impl Dir {
    /// Opens the directory at an absolute `path`; its last component must
    /// not be a symlink (earlier ones are the caller's responsibility: the
    /// repository root is stored canonical and re-checked).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: `c` is a valid NUL-terminated string for the whole call.
        let fd = unsafe { libc::open(c.as_ptr(), DIR_FLAGS) };
        Self::from_fd(fd)
    }

    fn from_fd(fd: libc::c_int) -> io::Result<Dir> {
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the subdirectory `name` without following a symlink
    /// (`ELOOP`/`ENOTDIR` when `name` is a link or not a directory).
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let c = component(name)?;
        // SAFETY: valid dirfd owned by `self`, NUL-terminated name.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), DIR_FLAGS) };
        Self::from_fd(fd)
    }

    /// Creates the subdirectory `name` with `mode` (before umask).
    pub fn mkdir(&self, name: &str, mode: u32) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: valid dirfd owned by `self`, NUL-terminated name.
        check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })
    }

    /// Opens the regular file `name` for reading, refusing a symlink.
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        let c = component(name)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: valid dirfd owned by `self`, NUL-terminated name.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Creates the new file `name` for writing; fails if anything (file,
    /// link, directory) already has that name.
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        let c = component(name)?;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid dirfd owned by `self`, NUL-terminated name; the mode is
        // passed as the variadic third argument openat expects with O_CREAT.
        let fd =
            unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// The kind and mode of `name` without following a symlink; `None` when
    /// nothing has that name.
    pub fn stat(&self, name: &str) -> io::Result<Option<EntryStat>> {
        let c = component(name)?;
        // SAFETY: `libc::stat` is plain old data; all-zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid dirfd, NUL-terminated name, `st` is a writable stat buffer.
        let ret = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if ret < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        Ok(Some(EntryStat {
            kind,
            mode: (st.st_mode & 0o7777) as u32,
            uid: st.st_uid,
            gid: st.st_gid,
        }))
    }

    /// Renames `from` to `to`, both in this directory (replacing `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (a, b) = (component(from)?, component(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid dirfd, two NUL-terminated names.
        check(unsafe { libc::renameat(fd, a.as_ptr(), fd, b.as_ptr()) })
    }

    /// Gives the file `from` a second name `to` in this directory; fails
    /// with `AlreadyExists` if `to` exists (never replaces). Symlinks are
    /// not followed.
    pub fn link(&self, from: &str, to: &str) -> io::Result<()> {
        let (a, b) = (component(from)?, component(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid dirfd, two NUL-terminated names; flags 0 = no follow.
        check(unsafe { libc::linkat(fd, a.as_ptr(), fd, b.as_ptr(), 0) })
    }

    /// Removes the file (not directory) `name`.
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: valid dirfd, NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) })
    }

    /// Removes the empty subdirectory `name`.
    pub fn rmdir(&self, name: &str) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: valid dirfd, NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// Makes the directory's entries (creations, renames, removals) durable.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: valid descriptor owned by `self`.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) })
    }
}

impl AsRawFd for Dir {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sends `signal` to every process of the process group `pgid`. A group
/// that no longer exists is not an error.
pub fn kill_process_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pgid out of range"))?;
    if pgid <= 1 {
        // killpg(0) would hit our own group and 1 is init: never.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing pgid <= 1",
        ));
    }
    // SAFETY: plain system call with integer arguments.
    match check(unsafe { libc::killpg(pgid, signal) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn refuses_symlinked_dirs_and_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("ld")).unwrap();
        std::os::unix::fs::symlink(t.path().join("f"), t.path().join("lf")).unwrap();
        let d = Dir::open(t.path()).unwrap();
        assert!(d.open_dir("real").is_ok());
        assert!(d.open_dir("ld").is_err());
        assert!(d.open_file("lf").is_err());
        assert!(d.open_dir("..").is_err());
        assert!(d.open_dir("a/b").is_err());
        assert_eq!(d.stat("ld").unwrap().unwrap().kind, EntryKind::Symlink);
        assert_eq!(d.stat("none").unwrap(), None);
        assert!(Dir::open(&t.path().join("ld")).is_err());
    }

    #[test]
    fn create_link_rename_unlink() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        let mut f = d.create_new("a", 0o600).unwrap();
        f.write_all(b"1").unwrap();
        assert!(d.create_new("a", 0o600).is_err());
        d.link("a", "b").unwrap();
        assert_eq!(
            d.link("a", "b").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        d.rename("b", "c").unwrap();
        d.unlink("a").unwrap();
        d.mkdir("sub", 0o755).unwrap();
        d.rmdir("sub").unwrap();
        d.sync().unwrap();
        assert_eq!(std::fs::read(t.path().join("c")).unwrap(), b"1");
        assert_eq!(d.stat("c").unwrap().unwrap().mode, 0o600);
    }
}
