// SPDX-License-Identifier: MIT OR Apache-2.0
// Benchmark helper: the ceiling of any sink that copies each buffer once. Per iteration it does
// what `fakesrc filltype=nothing` plus a copying sink do with the payload and nothing else:
// g_malloc a buffer of BYTES, copy it into the next of SLOTS slots of a shared-memory (memfd)
// mapping, g_free it. Prints the iterations per second (median of 5 runs of N). The slot count
// matters: a destination that no longer fits the caches halves the rate at 256 KiB here.
//   plx_memcpy_floor --size BYTES --buffers N [--slots SLOTS (16)]
#include <glib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  std::size_t size = 4096;
  unsigned long n = 10000;
  std::size_t slots = 16;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--size") == 0) size = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--buffers") == 0) n = std::strtoul(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--slots") == 0) slots = std::strtoull(argv[i + 1], nullptr, 10);
  }
  if (size == 0 || slots == 0) {
    std::fprintf(stderr, "plx_memcpy_floor: --size and --slots must be > 0\n");
    return 1;
  }
  const std::size_t kSlots = slots;
  const int fd = memfd_create("plx-memcpy-floor", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size * kSlots)) != 0) {
    std::perror("memfd");
    return 1;
  }
  void* map = mmap(nullptr, size * kSlots, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  auto* base = static_cast<unsigned char*>(map);
  std::memset(base, 0, size * kSlots);  // fault the slots in, as a warmed-up pool is
  std::array<double, 5> rates{};
  for (double& rate : rates) {
    const gint64 t0 = g_get_monotonic_time();
    for (unsigned long i = 0; i < n; ++i) {
      void* data = g_malloc(size);
      std::memcpy(base + (i % kSlots) * size, data, size);
      g_free(data);
    }
    rate = static_cast<double>(n) * 1e6 / static_cast<double>(g_get_monotonic_time() - t0);
  }
  std::sort(rates.begin(), rates.end());
  std::printf("memcpy floor: size %zu slots %zu rate %.0f buffers/s %.1f MB/s\n", size, kSlots,
              rates[2], rates[2] * static_cast<double>(size) / 1e6);
  munmap(map, size * kSlots);
  close(fd);
  return 0;
}
