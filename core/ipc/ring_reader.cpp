// SPDX-License-Identifier: MIT OR Apache-2.0
// The consumer end of a descriptor ring (see ring_reader.h).
#include "ipc/ring_reader.h"

#include <string>

namespace parallax::link::detail {

// The publisher moved our read position (drop-oldest retraction): validate and follow.
Result<void> RingReader::follow_retraction(const RemoteConnection& c, std::uint64_t moved_to,
                                           std::uint64_t r) {
  const std::uint64_t w = c.rh->write_pos.load(std::memory_order_acquire);
  if (moved_to <= r || moved_to > w || (moved_to & 7) != 0)
    return err(Errc::data_loss, "read position moved outside the written range");
  read_pos_ = moved_to;
  ++*dropped_;
  return {};
}

Error RingReader::bad_record_size(std::uint64_t size) {
  return err(Errc::data_loss, "bad record size " + std::to_string(size));
}

}  // namespace parallax::link::detail
