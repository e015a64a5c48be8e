//! The CPU scheduler's time slice of the threads a reply waits on (`thread_slice_micros`,
//! off by default).
//!
//! Linux's fair scheduler (EEVDF, 6.6 on) lets the thread it picked run out its slice — 1.4 ms
//! by default here (`sched_getattr` of a fresh thread) — before a thread that just woke may
//! take the core, unless the woken one asks for a shorter slice than the running one's
//! (`PREEMPT_SHORT`, 6.12 on). On two cores shared by the request handlers, the WAL writer, the
//! export's DuckDB work and a load generator, a handler woken by a group commit can wait out
//! most of someone else's slice. Threads that ask for a short slice are scheduled as soon as
//! they wake, and give the core back sooner when others wake: the tail latency falls, and the
//! extra switches cost CPU at saturation — a trade, hence off by default (the figures are in
//! [`crate::limits::THREAD_SLICE_MICROS_DEFAULT`]'s doc). A slice does not change a thread's
//! share of the CPU (its nice weight does).
//!
//! A thread inherits its creator's slice, so background threads started from a request-path
//! thread (the export, snapshots, segment zero-filling) put themselves back on the default
//! with [`become_background`] — which also lowers their priority where asked (the export's
//! nice value), in the same call.
//!
//! `sched_setattr` with a custom `sched_runtime` for a `SCHED_OTHER` thread is that request. On
//! kernels without it the call fails or is ignored; callers log and go on.

use std::io;

/// `struct sched_attr` of `sched_setattr(2)`, its first published layout (48 bytes, "VER0").
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime_nanos: u64,
    deadline_nanos: u64,
    period_nanos: u64,
}

const SCHED_ATTR_SIZE_VER0: u32 = 48;

/// Asks the kernel to give the calling thread slices of `slice_micros` (clamped by the kernel
/// to 0.1–100 ms); 0 restores the kernel's default. Keeps the thread's policy and nice value.
pub fn set_current_thread_slice(slice_micros: u64) -> io::Result<()> {
    let attr = current_attr()?;
    let nice = attr.nice;
    set_current_fair(attr, nice, slice_micros)
}

/// Makes the calling thread a background one: nice `nice` if that is lower priority than its
/// own (a thread may not raise its priority; Linux's range ends at 19), and the kernel's
/// default slice, in one call; threads it starts inherit both. A failure is logged, naming
/// `thread`: it then runs as it was started.
pub fn become_background(thread: &str, nice: i32) {
    let lowered = current_attr().and_then(|attr| {
        let nice = attr.nice.max(nice.min(crate::limits::NICE_MAX));
        set_current_fair(attr, nice, 0)
    });
    if let Err(e) = lowered {
        tracing::warn!(thread, nice, error = %e, "could not make the thread a background one; it runs as started");
    }
}

/// Sets the calling thread's nice value and slice (0: the kernel's default), `attr` being its
/// current attributes. Real-time and idle policies have neither: they are left as they are.
fn set_current_fair(mut attr: SchedAttr, nice: i32, slice_micros: u64) -> io::Result<()> {
    if attr.policy != libc::SCHED_OTHER as u32 && attr.policy != libc::SCHED_BATCH as u32 {
        return Ok(());
    }
    attr.size = SCHED_ATTR_SIZE_VER0;
    attr.flags = 0;
    attr.nice = nice;
    attr.runtime_nanos = slice_micros.saturating_mul(1_000);
    attr.deadline_nanos = 0;
    attr.period_nanos = 0;
    // SAFETY: `attr` is a live, correctly sized `sched_attr` (its `size` says VER0, which every
    // kernel with the call accepts); tid 0 is the calling thread; the kernel only reads it.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The slice in microseconds of thread `tid` (0: the calling thread), as the kernel reports
/// it (its default when none was asked for).
pub fn thread_slice_micros(tid: i32) -> io::Result<u64> {
    Ok(attr_of(tid)?.runtime_nanos / 1_000)
}

fn current_attr() -> io::Result<SchedAttr> {
    attr_of(0)
}

fn attr_of(tid: i32) -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: the kernel writes at most `size` (the third argument) bytes into `attr`, which
    // is that large and lives across the call; tid 0 is the calling thread.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            tid,
            &mut attr as *mut SchedAttr,
            SCHED_ATTR_SIZE_VER0,
            0u32,
        )
    };
    if rc == 0 {
        Ok(attr)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run on a thread of its own: the slice is per thread and the test harness reuses threads.
    #[test]
    fn a_slice_asked_for_is_the_slice_reported_and_nice_is_kept() {
        std::thread::spawn(|| {
            let nice_before = current_attr().unwrap().nice;
            let default = thread_slice_micros(0).unwrap();
            set_current_thread_slice(200).unwrap();
            assert_eq!(thread_slice_micros(0).unwrap(), 200);
            assert_eq!(current_attr().unwrap().nice, nice_before);
            set_current_thread_slice(0).unwrap();
            assert_eq!(thread_slice_micros(0).unwrap(), default);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_background_thread_gets_the_default_slice_and_never_a_higher_priority() {
        std::thread::spawn(|| {
            let default = thread_slice_micros(0).unwrap();
            let nice_before = current_attr().unwrap().nice;
            set_current_thread_slice(300).unwrap();
            become_background("test", nice_before + 3);
            assert_eq!(thread_slice_micros(0).unwrap(), default);
            assert_eq!(current_attr().unwrap().nice, nice_before + 3);
            // Asking for the server's priority again is not a raise: the nice value stays.
            become_background("test", nice_before);
            assert_eq!(current_attr().unwrap().nice, nice_before + 3);
        })
        .join()
        .unwrap();
    }
}
