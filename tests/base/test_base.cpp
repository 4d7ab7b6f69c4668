// SPDX-License-Identifier: MIT OR Apache-2.0
// The base layer: memfd and seal helpers, read-only reopening, fd counting, eventfds, the
// interruptible waits (one fd, several fds) with a deadline, futex waits and wake-ups
// (threads and processes), and the futex mutex.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/memfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/futex.h"
#include "base/futex_mutex.h"
#include "base/wait.h"

using namespace parallax;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

TEST(BaseFd, MemfdTakesSealsAndKeepsItsSize) {
  auto fd = base::make_memfd("plx-base-memfd");
  ASSERT_TRUE(fd.ok()) << fd.error().to_string();
  ASSERT_EQ(::ftruncate(fd->get(), 8192), 0);
  EXPECT_EQ(base::get_seals(fd->get()).value(), 0);
  ASSERT_TRUE(base::add_seals(fd->get(), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL).ok());
  EXPECT_EQ(base::get_seals(fd->get()).value(), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_EQ(base::file_size(fd->get()).value(), 8192u);
  EXPECT_NE(::ftruncate(fd->get(), 4096), 0);                   // sealed against shrinking
  EXPECT_FALSE(base::add_seals(fd->get(), F_SEAL_WRITE).ok());  // F_SEAL_SEAL: no more seals
  EXPECT_FALSE(base::on_hugetlbfs(fd->get()).value());
}

TEST(BaseFd, ALongMemfdNameIsCutNotRefused) {
  EXPECT_TRUE(base::make_memfd(std::string(400, 'n')).ok());
  EXPECT_TRUE(base::make_memfd("").ok());
}

TEST(BaseFd, SealsOfSomethingElseThanAMemfdAreDataLoss) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  auto seals = base::get_seals(r.get());
  ASSERT_FALSE(seals.ok());
  EXPECT_EQ(seals.error().code, Errc::data_loss);
  EXPECT_NE(seals.error().message.find("not a sealable memfd"), std::string::npos);
}

TEST(BaseFd, ReadOnlyReopenCannotBeMappedWritableAndDupKeepsTheMode) {
  auto fd = base::make_memfd("plx-base-ro");
  ASSERT_TRUE(fd.ok());
  ASSERT_EQ(::ftruncate(fd->get(), 4096), 0);
  auto ro = base::reopen_read_only(fd->get());
  ASSERT_TRUE(ro.ok()) << ro.error().to_string();
  EXPECT_FALSE(base::is_writable(ro->get()).value());
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro->get(), 0), MAP_FAILED);
  EXPECT_EQ(errno, EACCES);
  auto dup = base::dup_fd(fd->get());
  ASSERT_TRUE(dup.ok());
  EXPECT_NE(dup->get(), fd->get());
  EXPECT_TRUE(base::is_writable(dup->get()).value());
  EXPECT_TRUE(::fcntl(dup->get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_FALSE(base::is_writable(-1).ok());
  EXPECT_FALSE(base::dup_fd(-1).ok());
}

TEST(BaseFd, CountOpenFdsFollowsOpensAndCloses) {
  const std::size_t before = base::count_open_fds();
  {
    auto a = base::make_memfd("plx-count-a").value();
    auto b = base::make_memfd("plx-count-b").value();
    EXPECT_EQ(base::count_open_fds(), before + 2);
  }
  EXPECT_EQ(base::count_open_fds(), before);
}

TEST(BaseWait, ReadyTimedOutAndInterrupted) {
  auto fd = base::make_eventfd().value();
  auto irq = base::make_eventfd().value();
  const auto t0 = Clock::now();
  EXPECT_EQ(base::wait_fd(fd.get(), POLLIN, irq.get(), t0 + 30ms).value(), base::Wait::timed_out);
  EXPECT_GE(Clock::now() - t0, 30ms);  // not early: ppoll takes the time left in nanoseconds
  base::signal_eventfd(fd.get());
  EXPECT_EQ(base::wait_fd(fd.get(), POLLIN, irq.get(), Clock::now() + 1s).value(),
            base::Wait::ready);
  // A deadline already past still reports a ready fd.
  EXPECT_EQ(base::wait_fd(fd.get(), POLLIN, -1, t0).value(), base::Wait::ready);
  base::signal_eventfd(irq.get());  // the interrupt wins over a ready fd
  EXPECT_EQ(base::wait_fd(fd.get(), POLLIN, irq.get()).value(), base::Wait::interrupted);
  base::drain_eventfd(irq.get());
  base::drain_eventfd(fd.get());
  EXPECT_EQ(base::wait_fd(fd.get(), POLLIN, irq.get(), Clock::now()).value(),
            base::Wait::timed_out);
}

TEST(BaseWait, AnotherThreadInterruptsAnUnboundedWait) {
  auto fd = base::make_eventfd().value();
  auto irq = base::make_eventfd().value();
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    base::signal_eventfd(irq.get());
  });
  const auto t0 = Clock::now();
  auto w = base::wait_fd(fd.get(), POLLIN, irq.get());
  const auto took = Clock::now() - t0;
  t.join();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, base::Wait::interrupted);
  EXPECT_LT(took, 5s);
}

TEST(BaseWait, AnotherThreadInterruptsAWaitOnSeveralFds) {
  auto a = base::make_eventfd().value();
  auto b = base::make_eventfd().value();
  auto irq = base::make_eventfd().value();
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    base::signal_eventfd(irq.get());
  });
  pollfd fds[2] = {{a.get(), POLLIN, 0}, {b.get(), POLLIN, 0}};
  const auto t0 = Clock::now();
  auto w = base::wait_fds(fds, irq.get());
  const auto took = Clock::now() - t0;
  t.join();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, base::Wait::interrupted);
  EXPECT_LT(took, 5s);
}

TEST(BaseWait, AHangUpCountsAsReady) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  w.reset();
  EXPECT_EQ(base::wait_fd(r.get(), POLLIN, -1, Clock::now() + 1s).value(), base::Wait::ready);
}

// Wakes `word` until the kernel reports a sleeper woken (so the waiter was really asleep in
// futex_wait, not merely about to call it), or gives up after `limit`. Returns the number woken.
int wake_a_sleeper(const std::uint32_t* word, base::FutexScope scope,
                   std::chrono::milliseconds limit = 10s) {
  const auto give_up = Clock::now() + limit;
  while (Clock::now() < give_up) {
    if (const int n = base::futex_wake_one(word, scope); n != 0) return n;
    std::this_thread::sleep_for(1ms);
  }
  return 0;
}

TEST(BaseFutex, ASleepingWaitIsWokenByAnotherThread) {
  std::atomic<std::uint32_t> word{7};
  base::FutexWait how = base::FutexWait::timed_out;
  bool ok = false;
  std::thread waiter([&] {
    // The word stays 7: only a wake (not a changed value) can end this wait before 20 s.
    auto w = base::futex_wait(word, 7, Clock::now() + 20s);
    ok = w.ok();
    if (ok) how = *w;
  });
  const int woken = wake_a_sleeper(reinterpret_cast<const std::uint32_t*>(&word),
                                   base::FutexScope::process_private);
  if (woken == 0) base::futex_wake_all(word);  // let the thread end before the test fails
  waiter.join();
  EXPECT_EQ(woken, 1);
  ASSERT_TRUE(ok);
  EXPECT_EQ(how, base::FutexWait::woken);
  EXPECT_EQ(base::futex_wake_all(word), 0);  // nobody sleeps on it any more
}

TEST(BaseFutex, AWaitTimesOutAtItsDeadlineAndNotBefore) {
  std::atomic<std::uint32_t> word{0};
  const auto t0 = Clock::now();
  auto w = base::futex_wait(word, 0, t0 + 40ms);
  const auto took = Clock::now() - t0;
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  EXPECT_EQ(*w, base::FutexWait::timed_out);
  EXPECT_GE(took, 40ms);
  EXPECT_LT(took, 5s);
  // A deadline already past: no sleep at all.
  EXPECT_EQ(base::futex_wait(word, 0, t0).value(), base::FutexWait::timed_out);
  EXPECT_EQ(base::futex_wait(word, 0, Clock::time_point{}).value(), base::FutexWait::timed_out);
}

TEST(BaseFutex, AWordThatDiffersReturnsAtOnce) {
  std::atomic<std::uint32_t> word{1};
  const auto t0 = Clock::now();
  EXPECT_EQ(base::futex_wait(word, 0, t0 + 10s).value(), base::FutexWait::value_changed);
  EXPECT_EQ(base::futex_wait(word, 0).value(), base::FutexWait::value_changed);  // no deadline
  EXPECT_LT(Clock::now() - t0, 5s);
}

std::atomic<int> g_signals{0};
void count_signal(int) {
  g_signals.fetch_add(1, std::memory_order_relaxed);
}

TEST(BaseFutex, ASignalDoesNotEndTheWaitBeforeItsDeadline) {
  // A handler without SA_RESTART: the kernel returns EINTR from the futex call; the helper
  // resumes until the same deadline.
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = count_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  g_signals.store(0);
  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> done{false};
  base::FutexWait how = base::FutexWait::woken;
  bool ok = false;
  Clock::duration took{};
  std::thread waiter([&] {
    const auto t0 = Clock::now();
    auto w = base::futex_wait(word, 0, t0 + 300ms);
    took = Clock::now() - t0;
    ok = w.ok();
    if (ok) how = *w;
    done.store(true);
  });
  const pthread_t tid = waiter.native_handle();
  while (!done.load()) {
    ::pthread_kill(tid, SIGUSR1);
    std::this_thread::sleep_for(20ms);
  }
  waiter.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  // Signals were sent every 20 ms during the wait (ThreadSanitizer defers running the handler
  // to the thread's next intercepted call, so it may count only one).
  EXPECT_GE(g_signals.load(), 1);
  ASSERT_TRUE(ok);
  EXPECT_EQ(how, base::FutexWait::timed_out);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 10s);
}

TEST(BaseFutex, AProcessSleepingOnASharedMappingIsWokenByAnother) {
  // A shared anonymous mapping inherited over fork(): two processes, one word.
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* word = static_cast<std::uint32_t*>(mem);
  *word = 3;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The word stays 3: only the parent's wake ends this before the deadline.
    auto w = base::futex_wait(word, 3, Clock::now() + 20s, base::FutexScope::shared);
    ::_exit(!w.ok() ? 2 : *w == base::FutexWait::woken ? 0 : 3);
  }
  // A private wake never reaches a shared waiter (the child may not be asleep yet either way).
  EXPECT_EQ(base::futex_wake_all(word, base::FutexScope::process_private), 0);
  const int woken = wake_a_sleeper(word, base::FutexScope::shared);
  int status = 0;
  if (woken == 0 && child > 0) ::kill(child, SIGKILL);  // never signal pid <= 0
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::munmap(mem, 4096);
  EXPECT_EQ(woken, 1);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(BaseWait, SeveralFdsReportEachReadyOneAndTheInterruptWins) {
  auto a = base::make_eventfd().value();
  auto b = base::make_eventfd().value();
  auto irq = base::make_eventfd().value();
  pollfd fds[2] = {{a.get(), POLLIN, 0}, {b.get(), POLLIN, 0}};
  const auto t0 = Clock::now();
  EXPECT_EQ(base::wait_fds(fds, irq.get(), t0 + 30ms).value(), base::Wait::timed_out);
  EXPECT_GE(Clock::now() - t0, 30ms);
  EXPECT_EQ(fds[0].revents | fds[1].revents, 0);
  base::signal_eventfd(b.get());
  EXPECT_EQ(base::wait_fds(fds, irq.get(), Clock::now() + 1s).value(), base::Wait::ready);
  EXPECT_EQ(fds[0].revents, 0);
  EXPECT_EQ(fds[1].revents, POLLIN);
  // The interrupt wins, and the ready fds are still reported.
  base::signal_eventfd(irq.get());
  EXPECT_EQ(base::wait_fds(fds, irq.get()).value(), base::Wait::interrupted);
  EXPECT_EQ(fds[1].revents, POLLIN);
  base::drain_eventfd(irq.get());
  // No interrupt fd; a deadline already past still reports a ready fd.
  EXPECT_EQ(base::wait_fds(fds, -1, t0).value(), base::Wait::ready);
  base::drain_eventfd(b.get());
  EXPECT_EQ(base::wait_fds(fds, -1, Clock::now()).value(), base::Wait::timed_out);
}

TEST(BaseWait, ManyFdsAndANegativeOneAreWatched) {
  // More fds than wait_fds keeps on its stack, one of them -1 (skipped, as poll does).
  std::vector<UniqueFd> efds;
  std::vector<pollfd> fds;
  for (int i = 0; i < 20; ++i) {
    efds.push_back(base::make_eventfd().value());
    fds.push_back({efds.back().get(), POLLIN, 0});
  }
  fds[3].fd = -1;
  base::signal_eventfd(efds[17].get());
  base::signal_eventfd(efds[3].get());  // not watched: fds[3] is -1
  EXPECT_EQ(base::wait_fds(fds, -1, Clock::now() + 1s).value(), base::Wait::ready);
  for (std::size_t i = 0; i < fds.size(); ++i)
    EXPECT_EQ(fds[i].revents, i == 17 ? POLLIN : 0) << i;
}

// ---- FutexMutex ------------------------------------------------------------------------------

// Four threads adding to a plain counter under the lock, with every path taken (free, spun,
// slept on): not one increment lost (and TSan, in the tsan suite, sees no race).
TEST(BaseFutexMutex, ExcludesUnderContention) {
  base::FutexMutex mu;
  std::uint64_t count = 0;
  constexpr int kThreads = 4, kEach = 50000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::lock_guard lk(mu);
        ++count;
        if ((i + t) % 5000 == 0) std::this_thread::sleep_for(100us);  // make others sleep
      }
    });
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(count, std::uint64_t{kThreads} * kEach);
}

TEST(BaseFutexMutex, TryLockFailsWhileHeld) {
  base::FutexMutex mu;
  ASSERT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock());
  bool other = true;
  std::thread([&] { other = mu.try_lock(); }).join();
  EXPECT_FALSE(other);
  mu.unlock();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

// A waiter behind a long hold sleeps on the futex instead of spinning, and is woken by the
// unlock: it takes the lock within moments of the release, and it used little CPU meanwhile.
TEST(BaseFutexMutex, AWaiterSleepsThroughALongHoldAndIsWokenByTheUnlock) {
  base::FutexMutex mu;
  mu.lock();
  std::atomic<bool> got{false};
  Clock::time_point got_at{};
  double cpu_ms = -1;
  std::thread waiter([&] {
    timespec a{}, b{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    mu.lock();
    got_at = Clock::now();
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    got.store(true);
    mu.unlock();
    cpu_ms = static_cast<double>(b.tv_sec - a.tv_sec) * 1e3 +
             static_cast<double>(b.tv_nsec - a.tv_nsec) / 1e6;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(got.load());
  const auto released = Clock::now();
  mu.unlock();
  waiter.join();
  ASSERT_TRUE(got.load());
  EXPECT_LT(got_at - released, 100ms);  // woken, not left to a timeout (there is none)
  EXPECT_LT(cpu_ms, 50.0) << "the waiter spun through a 200 ms hold";
}

}  // namespace
