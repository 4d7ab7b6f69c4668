// SPDX-License-Identifier: MIT OR Apache-2.0
// Helper process for the cross-process memory tests: imports a memfd inherited as fd 3 and
// reads, writes, or tries to write it, reporting through its exit status.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "parallax/segment.h"

using namespace parallax;
using namespace parallax::memory;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: segment_peer read|write|try-write SIZE [BYTE]\n");
    return 64;
  }
  const std::string mode = argv[1];
  const std::size_t size = std::strtoull(argv[2], nullptr, 10);
  const int byte = argc > 3 ? std::atoi(argv[3]) : 0;
  const Access access = mode == "write" ? Access::read_write : Access::read_only;
  auto seg = Segment::import(UniqueFd(3), access, size, "peer");
  if (!seg.ok()) {
    std::fprintf(stderr, "import failed: %s\n", seg.error().to_string().c_str());
    return 2;
  }
  if (mode == "read") {
    for (std::size_t i = 0; i < size; ++i)
      if (seg->data()[i] != static_cast<std::byte>(byte)) return 1;
    return 0;
  }
  if (mode == "write") {
    std::memset(seg->writable_data(), byte, size);
    return 0;
  }
  if (mode == "try-write") {
    void* base = const_cast<std::byte*>(seg->data());
    if (mprotect(base, size, PROT_READ | PROT_WRITE) == 0) return 3;
    if (mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, seg->fd(), 0) != MAP_FAILED)
      return 4;
    // The last resort: a plain store must fault. Our own handler reports it as exit code 77
    // (sanitizer runtimes would otherwise turn the signal into their own exit codes).
    struct sigaction sa {};
    sa.sa_handler = [](int) { _exit(77); };
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    static_cast<volatile std::byte*>(base)[0] = std::byte{1};
    return 5;
  }
  return 64;
}
