//! Gives the heap memory freed after a large review back to the operating system, so that one
//! large review does not leave the process's resident memory at its peak. With glibc, whose
//! per-thread arenas otherwise keep freed memory, this is `malloc_trim`; with other allocators it
//! does nothing. Calls into the C library; no other I/O.

/// Returns the heap's free memory, in every arena, to the operating system.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases memory that is free; it takes no pointer and may be called
    // from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
