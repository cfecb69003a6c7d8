//! How stowage's threads share the CPU with the database they back up.
//!
//! A dump is a chain of processes: the database server, the dump tool, Docker's copiers, and
//! stowage at the end, reading the exec stream and compressing it. On a small machine they
//! compete for the same cores. Under the default policy every wake-up of a stowage thread (a
//! few kilobytes arrived on the socket, a block is ready) preempts a link upstream of it, and
//! the chain moves in small steps with many context switches. [`enter_batch`] puts the process
//! under Linux's `SCHED_BATCH` policy: the same fair share of CPU (the same nice value, so it
//! is never starved, unlike `SCHED_IDLE`), but its wake-ups no longer preempt, so the data
//! arrives in larger reads and the database side runs undisturbed. Measured on 2 cores
//! (BENCHMARKS.md, "Where stowage's CPU goes"): level-3 backups about 10% shorter. Setting it only on the compressing
//! thread measured no gain: the reading side is where the preemptions were.
//!
//! Called before the runtime starts, so every thread (the runtime's, the blocking pool, zstd's
//! workers) inherits it. Best effort: where the kernel or a seccomp profile refuses, or the
//! operator chose a policy (`chrt`), nothing changes.

use thread_priority::unix::{
    NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
    thread_native_id, thread_schedule_policy,
};
use thread_priority::{ThreadPriority, ThreadPriorityValue};

/// What [`enter_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The calling thread (and every thread it starts from now on) is `SCHED_BATCH`.
    Batch,
    /// The thread was not under the default policy (set by the operator): left alone.
    Kept(ThreadSchedulePolicy),
    /// The system refused; the default policy stays.
    Refused(String),
}

/// Moves the calling thread to `SCHED_BATCH` at its current nice value, if it is under the
/// default policy. Threads it starts afterwards inherit the policy.
pub fn enter_batch() -> Outcome {
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    let policy = match thread_schedule_policy() {
        Ok(p) => p,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    if policy != ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other) {
        return Outcome::Kept(policy);
    }
    let nice = match rustix::process::getpriority_process(None) {
        Ok(n) => n,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    match set(batch, nice) {
        Ok(()) => Outcome::Batch,
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// Sets the calling thread's policy, keeping `nice`. The crate takes a 0..=99 priority and maps
/// it to a nice value; the one that maps to `nice` is looked up with the crate's own mapping.
fn set(policy: ThreadSchedulePolicy, nice: i32) -> Result<(), thread_priority::Error> {
    let priority = (0..=99u8)
        .filter_map(|p| ThreadPriorityValue::try_from(p).ok())
        .map(ThreadPriority::Crossplatform)
        .find(|p| p.to_posix(policy).ok() == Some(nice))
        .ok_or(thread_priority::Error::Priority(
            "no priority maps to this nice value",
        ))?;
    set_thread_priority_and_policy(thread_native_id(), priority, policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThreadSchedulePolicy {
        thread_schedule_policy().unwrap()
    }

    #[test]
    fn the_thread_and_the_threads_it_starts_are_batch_at_the_same_nice_value() {
        // A fresh thread: the test harness's threads are shared.
        std::thread::spawn(|| {
            let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
            let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
            assert_eq!(policy(), normal);
            let nice = rustix::process::getpriority_process(None).unwrap();
            assert_eq!(enter_batch(), Outcome::Batch);
            assert_eq!(policy(), batch);
            assert_eq!(rustix::process::getpriority_process(None).unwrap(), nice);
            let child = std::thread::spawn(policy).join().unwrap();
            assert_eq!(child, batch);
            // Once not under the default policy, it is left as it is.
            assert_eq!(enter_batch(), Outcome::Kept(batch));
        })
        .join()
        .unwrap();
    }
}
