// SPDX-License-Identifier: MIT OR Apache-2.0
// Two real processes (a spawned segment_peer) share a memfd segment: each sees the other's
// writes, and a read-only import cannot write by any means.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "child_process.h"
#include "parallax/segment.h"

using namespace parallax;
using namespace parallax::memory;

namespace {

// Runs segment_peer with `fd` as its fd 3; returns its exit code (128 + signal if killed).
int run_peer(int fd, const std::vector<std::string>& args) {
  const char* peer = std::getenv("PLX_SEGMENT_PEER");
  if (peer == nullptr) ADD_FAILURE() << "PLX_SEGMENT_PEER is not set";
  std::vector<std::string> argv{peer ? peer : "segment_peer"};
  argv.insert(argv.end(), args.begin(), args.end());
  test::SpawnOptions o;
  o.fds = {{fd, 3}};
  test::Process p(argv, o);
  EXPECT_TRUE(p.started());
  return p.wait();
}

TEST(MultiProcess, PeerSeesOurWritesThroughReadOnlyImport) {
  auto seg = SharedMemorySegment::create("plx-mp", 1 << 16);
  ASSERT_TRUE(seg.ok());
  std::memset(seg->writable_data(), 0x5A, seg->size());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok());
  int st = run_peer(fd->get(), {"read", std::to_string(seg->size()), std::to_string(0x5A)});
  EXPECT_EQ(st, 0);
  // And the check can fail: a different pattern is reported as a mismatch.
  st = run_peer(fd->get(), {"read", std::to_string(seg->size()), std::to_string(0x11)});
  EXPECT_EQ(st, 1);
}

TEST(MultiProcess, WeSeeThePeersWritesThroughReadWriteImport) {
  auto seg = SharedMemorySegment::create("plx-mp-rw", 1 << 16);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_write);
  ASSERT_TRUE(fd.ok());
  int st = run_peer(fd->get(), {"write", std::to_string(seg->size()), std::to_string(0x33)});
  ASSERT_EQ(st, 0);
  for (std::size_t i = 0; i < seg->size(); i += 4096)
    EXPECT_EQ(seg->data()[i], std::byte{0x33});
}

TEST(MultiProcess, ReadOnlyImportCannotWriteByAnyMeans) {
  auto seg = SharedMemorySegment::create("plx-mp-ro", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok());
  int st = run_peer(fd->get(), {"try-write", "4096"});
  EXPECT_EQ(st, 77) << "3: mprotect allowed, 4: writable mmap allowed, "
                       "5: a plain store did not fault";
  EXPECT_EQ(seg->data()[0], std::byte{0});
}

TEST(MultiProcess, PeerRefusesAReadOnlyFdForWriting) {
  auto seg = SharedMemorySegment::create("plx-mp-ro2", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok());
  int st = run_peer(fd->get(), {"write", "4096", "1"});
  EXPECT_EQ(st, 2);  // import refused
  EXPECT_EQ(seg->data()[0], std::byte{0});
}

}  // namespace
