// SPDX-License-Identifier: MIT OR Apache-2.0
// Shared helpers of the IPC tests: checksummed payloads, the peer binary; TempDir and Child are
// tests/helpers/child_process.h.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "child_process.h"
#include "parallax/buffer.h"

namespace ipc_test {

inline std::uint64_t fnv1a(std::span<const std::byte> b) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::byte x : b)
    h = (h ^ static_cast<std::uint8_t>(x)) * 1099511628211ull;
  return h;
}

/// Fills a loan with a pattern derived from `seq` and records the checksum in the metadata.
inline void fill_payload(parallax::memory::Loan& l, std::uint64_t seq, std::size_t size) {
  (void)l.set_size(size);
  auto d = l.data();
  for (std::size_t j = 0; j < d.size(); ++j)
    d[j] = static_cast<std::byte>((seq * 31 + j * 7 + (j >> 8)) & 0xff);
  l.metadata().sequence = seq;
  l.metadata().pts = seq * 1000;
  l.metadata().set("fnv", fnv1a(d));
  l.metadata().set("label", std::string("buf-") + std::to_string(seq));
}

/// Empty string when the buffer's payload matches its checksum and metadata.
inline std::string check_payload(const parallax::memory::Buffer& b) {
  const auto* sum = b.metadata().get_as<std::uint64_t>("fnv");
  if (sum == nullptr) return "no checksum entry";
  if (*sum != fnv1a(b.data())) return "checksum mismatch";
  const auto* label = b.metadata().get_as<std::string>("label");
  if (label == nullptr || *label != "buf-" + std::to_string(b.metadata().sequence))
    return "label entry mismatch";
  if (!b.metadata().pts || *b.metadata().pts != b.metadata().sequence * 1000) return "pts mismatch";
  return {};
}

// The scratch directory and the child process are the shared test helpers (tests/helpers).
using TempDir = parallax::test::TempDir;
using Child = parallax::test::Process;

inline std::string peer_binary() {
  const char* p = std::getenv("PLX_IPC_PEER");
  return p ? p : "./ipc_peer";
}

// The stats/metrics test peer (tests/ipc/stats_peer.cpp).
inline std::string stats_peer() {
  const char* p = std::getenv("PLX_STATS_PEER");
  return p ? p : "./stats_peer";
}

}  // namespace ipc_test
