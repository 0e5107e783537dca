//! POSIX and C-library calls std does not offer (directory descriptors,
//! `*at` calls, process groups, `malloc_trim`), wrapped safely. With
//! `ffi/`, the only place `unsafe` is allowed; every block carries a
//! `// SAFETY:` comment.

pub(crate) mod os;

/// Hands the allocator's free memory back to the system: after a large
/// build (an in-memory index) the buffers it grew and freed stay resident
/// in the heap until then. A no-op where glibc's `malloc_trim` is absent.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes a plain integer (0: keep no extra
        // padding), touches only the allocator's own free lists under its
        // own locks, and may be called at any time from any thread.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
