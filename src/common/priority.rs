//! Background work at a lower CPU priority than the pipeline and the API.

/// Nice value of background threads (0 is normal, 19 the lowest priority).
pub const BACKGROUND_NICE: i32 = 10;

/// Run the calling thread at [`BACKGROUND_NICE`]: on a busy machine the
/// kernel gives latency-critical threads the CPU first, and background work
/// still gets all idle CPU. Linux applies nice per thread (`who = 0` is the
/// calling thread).
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority(2) on the calling thread; no memory is involved.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
    }
}
