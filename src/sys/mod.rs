//! Small calls into the C library that have no safe wrapper (the only
//! place besides `src/ffi` allowed `unsafe`; each block says why it holds).

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
