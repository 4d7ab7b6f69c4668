// SPDX-License-Identifier: MIT OR Apache-2.0
// Example: a memfd-backed pool, loans filled in place, frozen into refcounted buffers, and a
// second process (fork) reading the same bytes through a read-only mapping of the segment.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

#include "parallax/pool.h"

using namespace parallax;
using namespace parallax::memory;

int main() {
  // 16 slots of 64 KiB in one sealed memfd segment.
  auto segment = SharedMemorySegment::create("memory-pool-example", 16 * 65536);
  if (!segment.ok()) {
    std::fprintf(stderr, "segment: %s\n", segment.error().to_string().c_str());
    return 1;
  }
  auto pool = MemoryPool::create(std::move(segment).value(), 65536);
  if (!pool.ok()) {
    std::fprintf(stderr, "pool: %s\n", pool.error().to_string().c_str());
    return 1;
  }
  auto& p = *pool;

  std::vector<Buffer> frames;
  for (int i = 0; i < 8; ++i) {
    auto loan = p->try_loan();
    if (!loan.ok()) return 1;
    std::memset(loan->data().data(), 'a' + i, loan->size());  // written in place, in the memfd
    loan->metadata().pts = static_cast<std::uint64_t>(i) * 33'333'333;
    loan->metadata().sequence = static_cast<std::uint64_t>(i);
    frames.push_back(std::move(loan).value().freeze());
  }
  Buffer copy = frames[3];                                  // one atomic increment
  Buffer head = std::move(frames[3].slice(0, 16)).value();  // shares the slot
  std::printf("pool: %zu slots of %zu bytes, %zu in use\n", p->capacity(), p->slot_size(),
              p->in_use());
  std::printf(
      "frame 3: pts=%llu refs=%u first byte '%c', slice of %zu bytes at the same address: %s\n",
      static_cast<unsigned long long>(*copy.metadata().pts), copy.use_count(),
      static_cast<char>(copy.data()[0]), head.size(),
      head.data().data() == copy.data().data() ? "yes" : "no");

  // Another process maps the segment read-only (here a fork inherits the fd; the IPC layer
  // sends it with SCM_RIGHTS instead) and checksums frame 3 in place.
  auto fd = p->segment(0).export_fd(Access::read_only);
  if (!fd.ok()) return 1;
  const std::size_t off = copy.segment_offset();
  const std::size_t seg_size = p->segment(0).size();
  const unsigned long expect =
      std::accumulate(copy.data().begin(), copy.data().end(), 0UL,
                      [](unsigned long a, std::byte b) { return a + static_cast<unsigned>(b); });
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    auto view = Segment::import(std::move(fd).value(), Access::read_only, seg_size, "reader");
    if (!view.ok()) _exit(2);
    unsigned long sum = 0;
    for (std::size_t i = 0; i < 65536; ++i)
      sum += static_cast<unsigned>(view->data()[off + i]);
    std::printf("child %d: checksum of frame 3 through a read-only mapping: %lu (%s)\n", getpid(),
                sum, sum == expect ? "matches" : "MISMATCH");
    std::fflush(stdout);
    _exit(sum == expect ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  frames.clear();
  copy = Buffer();
  head = Buffer();
  auto st = p->stats();
  std::printf("after release: %zu in use, high water %zu, failed loans %llu\n", st.in_use,
              st.high_water, static_cast<unsigned long long>(st.failed_loans));
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
