// SPDX-License-Identifier: MIT OR Apache-2.0
// The calling thread's time slice under Linux's EEVDF scheduler (Linux 6.12 or later, threads
// of the normal policies SCHED_OTHER and SCHED_BATCH). A thread with a short slice gets an
// early virtual deadline when it wakes, so it preempts the task running on its CPU at once
// instead of waiting for that task's slice to end. That is what a sleeping consumer wants when
// the producer that wakes it runs on the same CPU: on the 2-vCPU VM of docs/benchmarks.md the
// woken subscriber preempted the publisher in ~50 % of the wake-ups with the default slice and
// in 91-99 % with 100 us, and the sleeping IPC latency p50 fell by about a third. It costs the
// preempted task (the producer) a context switch per wake-up. No privilege is needed.
// docs/topology.md, "Time slices".
#pragma once

#include <chrono>

#include "parallax/result.h"

namespace parallax::sched {

/// The shortest and the longest slice the kernel accepts (it clamps anything else; we refuse
/// instead).
inline constexpr std::chrono::microseconds kMinSlice{100};
inline constexpr std::chrono::microseconds kMaxSlice{100'000};

/// Checks a slice without setting it: 0 or within [kMinSlice, kMaxSlice]; invalid_argument
/// otherwise, naming the value and the range (what set_current_thread_slice() refuses). For
/// configuration checked before the thread that takes the slice runs.
[[nodiscard]] Result<void> check_slice(std::chrono::nanoseconds slice);

/// Sets the calling thread's slice; 0 gives it back the kernel's default. Errors:
/// invalid_argument (outside [kMinSlice, kMaxSlice] and not 0), failed_precondition (the
/// thread has a real-time or deadline policy: slices are for the normal ones), unsupported
/// (the kernel ignored it: before Linux 6.12), or the system call's error. The thread keeps
/// its policy and nice value. It keeps the slice until it is changed (threads it creates
/// inherit it).
[[nodiscard]] Result<void> set_current_thread_slice(std::chrono::nanoseconds slice);

/// The calling thread's slice as the kernel reports it (its default when none was set;
/// unsupported before Linux 6.12, which reports none).
[[nodiscard]] Result<std::chrono::nanoseconds> current_thread_slice();

}  // namespace parallax::sched
