//! The process's memory policy: transparent huge pages off unless the config asks for them.
//! `inventoryd` applies it first thing in `main`; so do the in-process benches (`benches`), so
//! that their figures are the shipped server's.
//!
//! mimalloc (the server's allocator) asks the kernel for huge pages on its arenas. A fault
//! on one zeroes 2 MiB — or, with memory fragmented, compacts memory first — on the thread
//! that touched it, which may be holding a shard lock or answering a request. Under a load
//! that keeps growing the ledger (holds arriving faster than they end) that showed as stalls
//! of 100–250 ms: catalog holds in batches of 64 at half capacity, p99 70–140 ms with huge
//! pages, 14–31 ms without (BENCHMARKS.md, Load test, session 11). Throughput did not suffer
//! (`ExecuteBatch` 1.15× without them). In process, durable ops from 512 tasks: ack p99 10.2 →
//! 6.8 ms and max 80 → 29 ms without them, throughput level (BENCHMARKS.md, Engine, session 12).

/// Applies the `transparent_huge_pages` setting to this process: nothing when they are
/// allowed, else [`disable_transparent_huge_pages`]. Call it first thing in `main`, before the
/// runtime and the engine allocate.
pub fn apply_transparent_huge_pages(allowed: bool) -> std::io::Result<()> {
    if allowed {
        Ok(())
    } else {
        disable_transparent_huge_pages()
    }
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`): every
/// later fault maps a 4 KiB page, whatever the allocator advised. Pages already mapped stay.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether transparent huge pages are off for this process (`prctl(PR_GET_THP_DISABLE)`).
pub fn transparent_huge_pages_disabled() -> std::io::Result<bool> {
    // SAFETY: as above; the flag comes back as the return value.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turning_huge_pages_off_sticks() {
        disable_transparent_huge_pages().unwrap();
        assert!(transparent_huge_pages_disabled().unwrap());
    }
}
