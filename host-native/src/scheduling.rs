//! How the server's threads ask the kernel's scheduler to
//! treat them.

/// Marks the calling thread as a batch thread (Linux `SCHED_BATCH`; a no-op
/// elsewhere): when it wakes up it no longer preempts the thread running on
/// its core, it runs once that thread blocks or its time slice ends. Its
/// share of the CPU is unchanged (same nice value, same weight).
///
/// For the group-commit thread. It wakes at every completed log write
/// (thousands of times a second under load); as a normal thread it preempted
/// a request worker each time, often in the middle of a request or while
/// that worker held the engine lock the committer was about to take. The
/// workers block on their sockets every few microseconds, so a commit
/// waits little for a core. Measured on 2 cores, durable mode, same-run
/// A/B, 4 rounds each: append-hot 51.8k -> 57.3k/s, json-append 49.4k ->
/// 56.3k/s, append-many 47.1k -> 48.5k/s (see the issue 8 notes).
///
/// Also called on the main thread before the runtime starts when
/// [`crate::config::Settings::batch_scheduling`] says so (by default with
/// durable storage; why and what it measured is said there), so every
/// thread the server starts inherits the policy.
///
/// Threads the calling thread spawns afterwards inherit the policy (the
/// committer spawns none). Returns whether the policy was set.
pub fn yield_on_wake() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` that outlives the call;
        // pid 0 is the calling thread; SCHED_BATCH with priority 0 needs no
        // privilege and changes only this thread's scheduling policy.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_becomes_a_batch_thread_and_others_keep_their_policy() {
        // SAFETY: pid 0 is the calling thread; no pointers.
        #[allow(unsafe_code)]
        let before = unsafe { libc::sched_getscheduler(0) };
        let policy = std::thread::spawn(|| {
            assert!(super::yield_on_wake());
            // SAFETY: pid 0 is the calling thread; no pointers.
            #[allow(unsafe_code)]
            unsafe {
                libc::sched_getscheduler(0)
            }
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
        #[allow(unsafe_code)]
        let after = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(after, before);
    }
}
