// SPDX-License-Identifier: MIT OR Apache-2.0
// The out-of-line parts of parallax::archive: UTF-8 beyond ASCII, and the cold error paths of
// validation (kept out of the inlined hot loop so that a valid archive pays for none of them).
#include <algorithm>
#include <cstring>
#include <string>

#include "parallax/archive.h"

namespace parallax::archive {
namespace detail {

// Unicode 15, table 3-7 (well-formed UTF-8 byte sequences): rejects overlong forms, surrogates
// and code points above U+10FFFF.
bool utf8_valid_slow(const unsigned char* p, std::size_t n, std::size_t i,
                     std::size_t& bad) noexcept {
  while (i < n) {
    if (n - i >= 16) {  // skip ASCII 16 bytes at a time
      std::uint64_t a;
      std::uint64_t b;
      std::memcpy(&a, p + i, 8);
      std::memcpy(&b, p + i + 8, 8);
      if (((a | b) & 0x8080808080808080ULL) == 0) {
        i += 16;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      bad = i;
      return false;
    }
    if (n - i < len) {
      bad = i;
      return false;
    }
    if (p[i + 1] < lo || p[i + 1] > hi) {
      bad = i;
      return false;
    }
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) {
        bad = i;
        return false;
      }
    }
    i += len;
  }
  return true;
}

bool ValidateCtx::fail(std::size_t at_byte, std::string message) {
  at = at_byte;
  what = std::move(message);
  return false;
}

void ValidateCtx::push_field(std::string_view name) {
  path_rev.emplace_back(name);
}

void ValidateCtx::push_index(std::size_t i) {
  path_rev.push_back("[" + std::to_string(i) + "]");
}

bool ValidateCtx::claim_failed(std::size_t field_pos, std::int64_t target, std::uint64_t bytes,
                               std::size_t align) {
  const std::string range = "[" + std::to_string(target) + ", " +
                            std::to_string(target + static_cast<std::int64_t>(bytes)) + ")";
  if (target < 0 || static_cast<std::uint64_t>(target) + bytes > len)
    return fail(field_pos, "relative pointer to " + range + " outside the " + std::to_string(len) +
                               "-byte buffer");
  if ((static_cast<std::uint64_t>(target) & (align - 1)) != 0)
    return fail(field_pos, "relative pointer to " + range + " misaligned (needs " +
                               std::to_string(align) + "-byte alignment)");
  if (static_cast<std::size_t>(target) < begin)
    return fail(field_pos, "relative pointer to " + range +
                               " overlaps bytes already claimed or skipped (aliasing or out of "
                               "order; allowed from " +
                               std::to_string(begin) + ")");
  return fail(field_pos, "relative pointer to " + range + " does not end before its parent at " +
                             std::to_string(end) + " (children must precede parents)");
}

bool ValidateCtx::utf8_not_ascii() {
  need_utf8_pass = true;
  return fail(utf8_begin, "non-ASCII text in an ASCII run (validated again as UTF-8)");
}

bool ValidateCtx::utf8_failed(std::size_t at_byte) {
  return fail(at_byte, "invalid UTF-8");
}

std::string ValidateCtx::path() const {
  if (path_rev.empty()) return "(root)";
  std::string out;
  for (auto it = path_rev.rbegin(); it != path_rev.rend(); ++it) {
    if (!out.empty() && (*it)[0] != '[') out += '.';
    out += *it;
  }
  return out;
}

Error validation_error(const ValidateCtx& c) {
  return err(Errc::data_loss, c.path() + ": " + c.what + " at byte " + std::to_string(c.at));
}

Error size_error(std::size_t size) {
  return err(Errc::invalid_argument, "archive of " + std::to_string(size) +
                                         " bytes exceeds the 2 GiB limit of 32-bit offsets");
}

Error header_error(std::span<const std::byte> bytes, std::uint64_t expected) {
  if (bytes.size() < sizeof(ArchiveHeader))
    return err(Errc::data_loss, "archive of " + std::to_string(bytes.size()) +
                                    " bytes is too short for its 16-byte header");
  ArchiveHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.magic != kArchiveMagic) return err(Errc::data_loss, "archive header: bad magic");
  if (h.version != kArchiveVersion)
    return err(Errc::data_loss, "archive header: format version " + std::to_string(h.version) +
                                    ", expected " + std::to_string(kArchiveVersion));
  char buf[80];
  std::snprintf(buf, sizeof buf, "archive header: schema hash %016llx, expected %016llx",
                static_cast<unsigned long long>(h.schema_hash),
                static_cast<unsigned long long>(expected));
  return err(Errc::data_loss, buf);
}

Error root_error(std::span<const std::byte> bytes, std::size_t body_begin, std::size_t root_size,
                 std::size_t root_align) {
  if (bytes.size() > kMaxArchiveSize) return size_error(bytes.size());
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % kBufferAlignment != 0)
    return err(Errc::invalid_argument, "archive buffer is not 8-byte aligned");
  if (bytes.size() < body_begin + root_size)
    return err(Errc::data_loss, "archive of " + std::to_string(bytes.size() - body_begin) +
                                    " bytes is shorter than its " + std::to_string(root_size) +
                                    "-byte root");
  return err(Errc::data_loss, "root at byte " + std::to_string(bytes.size() - root_size) +
                                  " is not " + std::to_string(root_align) + "-byte aligned");
}

}  // namespace detail

Result<std::string_view> ArchivedString::utf8() const {
  std::size_t bad;
  if (!detail::utf8_valid(reinterpret_cast<const unsigned char*>(data()), len_, bad))
    return err(Errc::data_loss, "invalid UTF-8 at character " + std::to_string(bad));
  return view();
}

}  // namespace parallax::archive
