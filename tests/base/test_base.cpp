// SPDX-License-Identifier: MIT OR Apache-2.0
// The base layer: memfd and seal helpers, read-only reopening, fd counting, eventfds and the
// interruptible waits (one fd, several fds) with a deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/memfd.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "base/fd.h"
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

// wait_fds: which of several fds is ready comes back in their revents, whatever the result
// (the interrupt still wins over a ready fd, and the ready fd's revents are filled in too).
TEST(BaseWait, SeveralFdsReportWhichIsReady) {
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
  base::signal_eventfd(irq.get());
  EXPECT_EQ(base::wait_fds(fds, irq.get()).value(), base::Wait::interrupted);
  EXPECT_EQ(fds[1].revents, POLLIN);
  // Without an interrupt fd, a deadline already past still reports the ready fd.
  EXPECT_EQ(base::wait_fds(fds, -1, t0).value(), base::Wait::ready);
  base::drain_eventfd(b.get());
  EXPECT_EQ(base::wait_fds(fds, -1, base::Deadline{}).value(), base::Wait::timed_out);
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

}  // namespace
