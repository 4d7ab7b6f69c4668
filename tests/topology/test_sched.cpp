// SPDX-License-Identifier: MIT OR Apache-2.0
// EEVDF time slices (parallax/sched.h) on real threads: set, read back from the kernel,
// inherited, reset; bad values and policies refused. Each case runs in a thread of its own so
// the test runner's thread keeps its slice.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>

#include <cerrno>

#include <chrono>
#include <thread>

#include "parallax/sched.h"

using namespace parallax;
using namespace std::chrono_literals;

namespace {

// Runs `f` on a fresh thread; skips when the kernel has no custom slices (before 6.12), which
// set_current_thread_slice() reports as unsupported: this case checks that report instead.
template <class F>
void on_thread(F f) {
  bool skip = false;
  std::thread t([&] {
    if (auto r = sched::set_current_thread_slice(1ms); !r) {
      ASSERT_EQ(r.error().code, Errc::unsupported) << r.error().to_string();
      skip = true;
      return;
    }
    ASSERT_TRUE(sched::set_current_thread_slice(0ns));
    f();
  });
  t.join();
  if (skip) GTEST_SKIP() << "this kernel has no custom time slices (Linux 6.12 or later)";
}

TEST(Sched, ASliceIsSetAndReadBackFromTheKernel) {
  on_thread([] {
    auto before = sched::current_thread_slice();
    ASSERT_TRUE(before) << before.error().to_string();
    ASSERT_TRUE(sched::set_current_thread_slice(100us));
    auto now = sched::current_thread_slice();
    ASSERT_TRUE(now);
    EXPECT_EQ(*now, 100us);
    ASSERT_TRUE(sched::set_current_thread_slice(2500us));
    EXPECT_EQ(*sched::current_thread_slice(), 2500us);
    // 0: the kernel's default again.
    ASSERT_TRUE(sched::set_current_thread_slice(0ns));
    EXPECT_EQ(*sched::current_thread_slice(), *before);
  });
}

TEST(Sched, ThreadsStartedAfterwardsInheritIt) {
  on_thread([] {
    ASSERT_TRUE(sched::set_current_thread_slice(300us));
    std::chrono::nanoseconds child{0};
    std::thread([&] {
      auto s = sched::current_thread_slice();
      if (s) child = *s;
    }).join();
    EXPECT_EQ(child, 300us);
  });
}

TEST(Sched, ValuesOutsideTheKernelsRangeAreRefusedNotClamped) {
  on_thread([] {
    ASSERT_TRUE(sched::set_current_thread_slice(400us));
    for (auto bad : {std::chrono::nanoseconds(99us), std::chrono::nanoseconds(100ms + 1us),
                     std::chrono::nanoseconds(-1)}) {
      auto r = sched::set_current_thread_slice(bad);
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, Errc::invalid_argument);
      EXPECT_NE(r.error().message.find("100-100000 us"), std::string::npos) << r.error().message;
    }
    // The value as given: a whole number of microseconds, else nanoseconds.
    EXPECT_NE(sched::set_current_thread_slice(99us).error().message.find("of 99 us"),
              std::string::npos);
    EXPECT_NE(sched::set_current_thread_slice(std::chrono::nanoseconds(-1))
                  .error()
                  .message.find("of -1 ns"),
              std::string::npos);
    EXPECT_EQ(*sched::current_thread_slice(), 400us);  // unchanged
    EXPECT_TRUE(sched::set_current_thread_slice(sched::kMinSlice));
    EXPECT_TRUE(sched::set_current_thread_slice(sched::kMaxSlice));
  });
}

TEST(Sched, TheThreadKeepsItsNiceValueAndResetOnFork) {
  on_thread([] {
    sched_param p{};
    ASSERT_EQ(::sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &p), 0);
    ASSERT_EQ(::setpriority(PRIO_PROCESS, 0, 5), 0);  // raising nice needs no privilege
    ASSERT_TRUE(sched::set_current_thread_slice(200us));
    EXPECT_EQ(*sched::current_thread_slice(), 200us);
    EXPECT_EQ(::sched_getscheduler(0), SCHED_OTHER | SCHED_RESET_ON_FORK);
    errno = 0;
    EXPECT_EQ(::getpriority(PRIO_PROCESS, 0), 5);
    EXPECT_EQ(errno, 0);
  });
}

TEST(Sched, AThreadOfAnotherPolicyIsRefused) {
  on_thread([] {
    // SCHED_IDLE needs no privilege to enter (and none to stay in: the thread ends here).
    sched_param p{};
    ASSERT_EQ(::sched_setscheduler(0, SCHED_IDLE, &p), 0);
    auto r = sched::set_current_thread_slice(100us);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::failed_precondition);
    EXPECT_EQ(sched::current_thread_slice().error().code, Errc::failed_precondition);
    EXPECT_EQ(::sched_getscheduler(0), SCHED_IDLE);  // left as it was
  });
}

}  // namespace
