// SPDX-License-Identifier: MIT OR Apache-2.0
// EEVDF time slices (parallax/sched.h): sched_setattr(2) with sched_runtime on a thread of a
// normal policy, read back with sched_getattr(2) so that a kernel which ignores the field
// (before 6.12) is an error, not a silent no-op.
#include "parallax/sched.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace parallax::sched {
namespace {

// struct sched_attr (include/uapi/linux/sched/types.h); glibc 2.36 has no declaration.
struct SchedAttr {
  std::uint32_t size;
  std::uint32_t sched_policy;
  std::uint64_t sched_flags;
  std::int32_t sched_nice;
  std::uint32_t sched_priority;
  std::uint64_t sched_runtime;
  std::uint64_t sched_deadline;
  std::uint64_t sched_period;
  std::uint32_t sched_util_min;
  std::uint32_t sched_util_max;
};

Result<SchedAttr> get_attr() {
  SchedAttr a{};
  if (::syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0)
    return Error::from_errno("sched_getattr");
  return a;
}

constexpr std::uint64_t kResetOnFork = 0x01;  // SCHED_FLAG_RESET_ON_FORK (linux/sched.h)

bool normal_policy(std::uint32_t policy) {
  return policy == SCHED_OTHER || policy == SCHED_BATCH;
}

}  // namespace

Result<void> check_slice(std::chrono::nanoseconds slice) {
  if (slice.count() == 0 || (slice >= kMinSlice && slice <= kMaxSlice)) return {};
  return err(Errc::invalid_argument,
             "time slice of " +
                 (slice.count() % 1000 == 0 ? std::to_string(slice.count() / 1000) + " us"
                                            : std::to_string(slice.count()) + " ns") +
                 ": must be 0 (the default) or " + std::to_string(kMinSlice.count()) + "-" +
                 std::to_string(kMaxSlice.count()) + " us");
}

Result<void> set_current_thread_slice(std::chrono::nanoseconds slice) {
  PLX_TRY(check_slice(slice));
  PLX_ASSIGN(SchedAttr a, get_attr());
  if (!normal_policy(a.sched_policy))
    return err(Errc::failed_precondition,
               "time slices are for threads of the normal policies (SCHED_OTHER, SCHED_BATCH); "
               "this one has policy " +
                   std::to_string(a.sched_policy));
  // Policy, nice, utilization clamps and reset-on-fork as they are; only the slice changes
  // (clamps are kept by not passing SCHED_FLAG_UTIL_CLAMP; SCHED_FLAG_RESET_ON_FORK, which
  // sched_getattr reports, has to be passed again or it would be cleared).
  a.size = sizeof a;
  a.sched_flags &= kResetOnFork;
  a.sched_runtime = static_cast<std::uint64_t>(slice.count());
  if (::syscall(SYS_sched_setattr, 0, &a, 0) != 0) return Error::from_errno("sched_setattr");
  if (slice.count() == 0) return {};
  PLX_ASSIGN(const SchedAttr now, get_attr());
  if (now.sched_runtime != static_cast<std::uint64_t>(slice.count()))
    return err(Errc::unsupported,
               "the kernel did not take the time slice (custom slices need Linux 6.12 or later)");
  return {};
}

Result<std::chrono::nanoseconds> current_thread_slice() {
  PLX_ASSIGN(const SchedAttr a, get_attr());
  if (!normal_policy(a.sched_policy))
    return err(Errc::failed_precondition, "the thread has no time slice (not a normal policy)");
  if (a.sched_runtime == 0)
    return err(Errc::unsupported, "the kernel reports no time slice (Linux 6.12 or later)");
  return std::chrono::nanoseconds(static_cast<std::int64_t>(a.sched_runtime));
}

}  // namespace parallax::sched
