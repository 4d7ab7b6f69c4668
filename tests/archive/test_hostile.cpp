// SPDX-License-Identifier: MIT OR Apache-2.0
// Hostile archives: byte-flip and truncation sweeps over valid archives (every mutation is
// rejected or read safely; run under ASan/UBSan to make "safely" mean something), and crafted
// archives for each rule of the validator, with the error's path and byte offset.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "parallax/archive.h"
#include "test_types.h"

namespace {

namespace ar = parallax::archive;
using namespace plxtest;
using parallax::Errc;

// An exact-size heap copy, so that ASan flags a read one byte past the end.
struct ExactBytes {
  explicit ExactBytes(std::span<const std::byte> src)
      : p(new std::byte[src.size()]), n(src.size()) {
    if (n != 0) std::memcpy(p.get(), src.data(), n);
  }
  std::span<const std::byte> span() const { return {p.get(), n}; }
  std::unique_ptr<std::byte[]> p;
  std::size_t n;
};

// Reads every byte a view reaches; the result is used so the reads cannot be optimised away.
std::uint64_t touch(const ar::Archived<Everything>& a) {
  const Everything e = ar::deserialize<Everything>(a);
  std::uint64_t h = e.u64 ^ static_cast<std::uint64_t>(e.text.size());
  for (const auto& w : e.words)
    h += w.size();
  for (const auto& [k, v] : e.counts)
    h += k.size() + v;
  if (const auto* s = a.choice.get_if<1>()) h += s->utf8().ok();
  return h;
}
std::uint64_t touch(const ar::Archived<Logs>& a) {
  std::uint64_t h = 0;
  for (const auto& l : a.logs)
    h += l.identity.size() + l.request.view().size() + l.code + l.size;
  return h + ar::deserialize<Logs>(a).logs.size();
}

template <typename T>
struct SweepResult {
  std::size_t accepted = 0;
  std::size_t rejected = 0;
};

template <typename T>
void check_one(std::span<const std::byte> bytes, ar::Validation level, SweepResult<T>& r,
               std::uint64_t& sink) {
  ExactBytes copy(bytes);
  auto view = ar::access<T>(copy.span(), {.level = level});
  if (view.ok()) {
    ++r.accepted;
    sink += touch(**view);
  } else {
    ++r.rejected;
    EXPECT_FALSE(view.error().message.empty());
  }
}

template <typename T>
SweepResult<T> flip_sweep(const std::vector<std::byte>& valid, ar::Validation level) {
  SweepResult<T> r;
  std::uint64_t sink = 0;
  std::vector<std::byte> m = valid;
  for (std::size_t i = 0; i < m.size(); ++i) {
    for (std::uint8_t x : {0x01, 0x02, 0x10, 0x80, 0xFF}) {
      m[i] ^= std::byte{x};
      check_one<T>(m, level, r, sink);
      m[i] = valid[i];
    }
    for (std::uint8_t v : {0x00, 0x7F, 0xC0}) {
      m[i] = std::byte{v};
      check_one<T>(m, level, r, sink);
      m[i] = valid[i];
    }
  }
  EXPECT_NE(sink, 1u);  // keeps the reads alive
  return r;
}

template <typename T>
SweepResult<T> truncation_sweep(const std::vector<std::byte>& valid) {
  SweepResult<T> r;
  std::uint64_t sink = 0;
  for (std::size_t n = 0; n < valid.size(); ++n) {
    check_one<T>(std::span(valid).first(n), ar::Validation::full, r, sink);    // cut the end
    check_one<T>(std::span(valid).subspan(n), ar::Validation::full, r, sink);  // cut the start
  }
  EXPECT_NE(sink, 1u);
  return r;
}

TEST(ArchiveHostile, ByteFlipSweepEverything) {
  for (std::uint64_t seed : {3u, 11u, 29u}) {
    Rng rng(seed);
    const auto valid = ar::serialize(random_everything(rng)).value();
    for (auto level : {ar::Validation::full, ar::Validation::structural}) {
      const auto r = flip_sweep<Everything>(valid, level);
      // Most mutations are caught; none crashes (ASan/UBSan builds check the accepted ones).
      EXPECT_GT(r.rejected, 0u);
      EXPECT_GT(r.accepted, 0u);  // flips in plain numbers are legal values
    }
  }
}

TEST(ArchiveHostile, ByteFlipSweepLogs) {
  const auto valid = ar::serialize(make_logs(4)).value();
  const auto r = flip_sweep<Logs>(valid, ar::Validation::full);
  EXPECT_GT(r.rejected, 0u);
}

TEST(ArchiveHostile, TruncationSweep) {
  Rng rng(5);
  const auto valid = ar::serialize(random_everything(rng)).value();
  const auto r = truncation_sweep<Everything>(valid);
  EXPECT_GT(r.rejected, valid.size());  // at least every cut end
  const auto logs = ar::serialize(make_logs(6)).value();
  const auto rl = truncation_sweep<Logs>(logs);
  EXPECT_GT(rl.rejected, logs.size());
}

// ---- crafted archives -----------------------------------------------------------------------

// Position of a field inside the archive, and a patcher for its relative pointer.
std::size_t pos_of(const std::vector<std::byte>& bytes, const void* field) {
  return static_cast<std::size_t>(static_cast<const std::byte*>(field) - bytes.data());
}
void put_u32(std::vector<std::byte>& bytes, std::size_t pos, std::uint32_t v) {
  for (std::size_t k = 0; k < 4; ++k)
    bytes.at(pos + k) = static_cast<std::byte>(v >> (8 * k));
}
void put_i32(std::vector<std::byte>& bytes, std::size_t pos, std::int32_t v) {
  put_u32(bytes, pos, static_cast<std::uint32_t>(v));
}

struct LogFixture : ::testing::Test {
  void SetUp() override {
    logs = make_logs(20);
    logs.logs[1].identity = logs.logs[0].identity;  // same content, so aliasing would be "valid"
    bytes = ar::serialize(logs).value();
    view = *ar::access<Logs>(bytes);
  }
  parallax::Error reject(ar::AccessOptions opts = {}) {
    auto r = ar::access<Logs>(bytes, opts);
    EXPECT_FALSE(r.ok());
    return r.ok() ? parallax::Error{} : r.error();
  }
  std::size_t field(const void* f) { return pos_of(bytes, f); }
  Logs logs;
  std::vector<std::byte> bytes;
  const ar::Archived<Logs>* view = nullptr;
};

TEST_F(LogFixture, AliasingTwoStringsOnTheSameBytesIsRejected) {
  const std::size_t target = field(view->logs[0].identity.data());
  const std::size_t f1 = field(&view->logs[1].identity);
  put_i32(bytes, f1, static_cast<std::int32_t>(target) - static_cast<std::int32_t>(f1));

  const auto e = reject();

  EXPECT_EQ(e.code, Errc::data_loss);
  EXPECT_NE(e.message.find("logs[1].identity: "), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("already claimed"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("at byte " + std::to_string(f1)), std::string::npos) << e.message;
}

TEST_F(LogFixture, PartiallyOverlappingClaimIsRejected) {
  // userid claims the last byte of identity's range too.
  const auto& rec = view->logs[2];
  const std::size_t target = field(rec.identity.data()) + rec.identity.size() - 1;
  const std::size_t f = field(&rec.userid);
  put_i32(bytes, f, static_cast<std::int32_t>(target) - static_cast<std::int32_t>(f));
  EXPECT_NE(reject().message.find("logs[2].userid"), std::string::npos);
}

TEST_F(LogFixture, SiblingsOutOfOrderAreRejected) {
  // Swapping the pointers of identity and userid keeps every byte in bounds and unaliased, but
  // claims go backwards: rkyv's ordered-claims rule refuses it.
  const auto& rec = view->logs[3];
  const std::size_t fi = field(&rec.identity), fu = field(&rec.userid);
  const std::size_t ti = field(rec.identity.data()), tu = field(rec.userid.data());
  const std::uint32_t li = static_cast<std::uint32_t>(rec.identity.size());
  const std::uint32_t lu = static_cast<std::uint32_t>(rec.userid.size());
  put_i32(bytes, fi, static_cast<std::int32_t>(tu) - static_cast<std::int32_t>(fi));
  put_u32(bytes, fi + 4, lu);
  put_i32(bytes, fu, static_cast<std::int32_t>(ti) - static_cast<std::int32_t>(fu));
  put_u32(bytes, fu + 4, li);
  EXPECT_NE(reject().message.find("logs[3].userid"), std::string::npos);
}

TEST_F(LogFixture, OffsetsOutOfBoundsAreRejected) {
  const std::size_t f = field(&view->logs[4].date);
  for (std::int32_t rel : {INT32_MIN, -static_cast<std::int32_t>(f) - 1, 1 << 30, INT32_MAX}) {
    auto saved = bytes;
    put_i32(bytes, f, rel);
    const auto e = reject();
    EXPECT_NE(e.message.find("outside the"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("logs[4].date"), std::string::npos) << e.message;
    bytes = saved;
  }
}

TEST_F(LogFixture, ForwardPointerIntoTheParentIsRejected) {
  // Point request at the record's own bytes (after the field): children must precede parents.
  const std::size_t f = field(&view->logs[5].request);
  put_i32(bytes, f, 0);
  EXPECT_NE(reject().message.find("children must precede parents"), std::string::npos);
}

TEST_F(LogFixture, HugeLengthsAreRejected) {
  put_u32(bytes, field(&view->logs) + 4, 0xFFFFFFFFu);
  EXPECT_NE(reject().message.find("logs: relative pointer"), std::string::npos);
  bytes = ar::serialize(logs).value();
  view = *ar::access<Logs>(bytes);
  put_u32(bytes, field(&view->logs[6].request) + 4, 0x7FFFFFFFu);
  EXPECT_NE(reject().message.find("logs[6].request"), std::string::npos);
}

TEST_F(LogFixture, InvalidUtf8NamesPathAndByte) {
  const std::size_t at = field(view->logs[17].request.data()) + 3;
  bytes[at] = std::byte{0xFF};

  const auto e = reject();

  EXPECT_EQ(e.message, "logs[17].request: invalid UTF-8 at byte " + std::to_string(at));
  // structural validation leaves UTF-8 to the reader, who can check one string on demand.
  auto lazy = ar::access<Logs>(bytes, {.level = ar::Validation::structural});
  ASSERT_TRUE(lazy.ok());
  EXPECT_FALSE((*lazy)->logs[17].request.utf8().ok());
  EXPECT_TRUE((*lazy)->logs[16].request.utf8().ok());
}

TEST_F(LogFixture, TooShortOrMisalignedBuffers) {
  EXPECT_EQ(ar::access<Logs>(std::span(bytes).first(0)).error().code, Errc::data_loss);
  EXPECT_EQ(ar::access<Logs>(std::span(bytes).first(7)).error().code, Errc::data_loss);
  // A buffer starting off its 8-byte alignment.
  std::vector<std::byte> shifted(bytes.size() + 1);
  std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
  EXPECT_EQ(ar::access<Logs>(std::span(shifted).subspan(1)).error().code, Errc::invalid_argument);
  // Root not aligned.
  EXPECT_NE(
      ar::access<Logs>(std::span(bytes).first(bytes.size() - 1)).error().message.find("aligned"),
      std::string::npos);
}

TEST(ArchiveHostileCrafted, MisalignedVectorIsRejected) {
  const std::vector<std::uint32_t> v{1, 2, 3, 4};
  auto bytes = ar::serialize(v).value();
  const std::size_t f = bytes.size() - 8;  // the root ArchivedVec
  std::int32_t rel;
  std::memcpy(&rel, bytes.data() + f, 4);
  put_i32(bytes, f, rel + 1);
  put_u32(bytes, f + 4, 3);

  auto r = ar::access<std::vector<std::uint32_t>>(bytes);

  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("misaligned"), std::string::npos) << r.error().message;
}

TEST(ArchiveHostileCrafted, PlainVectorNeedsOnlyBoundsAndAlignment) {
  // Any u32 bit pattern is a valid element, so validation never looks at the elements: a vector
  // of a million garbage u32 is accepted (the benchmark shows the time does not depend on n).
  std::vector<std::uint32_t> big(1 << 20);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint32_t>(i * 2654435761u);
  const auto bytes = ar::serialize(big).value();
  auto r = ar::access<std::vector<std::uint32_t>>(bytes);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->size(), big.size());
  EXPECT_FALSE(ar::Traits<std::uint32_t>::kHasInvariants);
  EXPECT_FALSE(ar::Traits<Address>::kHasInvariants);
  EXPECT_TRUE(ar::Traits<Log>::kHasInvariants);
}

TEST(ArchiveHostileCrafted, DeepNestingHitsTheDepthLimit) {
  // chain(n) nests n-1 levels of child vectors; the default limit is 64.
  EXPECT_TRUE(ar::access<Node>(ar::serialize(chain(65)).value()).ok());

  auto deep = ar::serialize(chain(66)).value();
  auto r = ar::access<Node>(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nesting deeper than the limit of 64"), std::string::npos);

  auto deeper = ar::serialize(chain(500)).value();
  EXPECT_FALSE(ar::access<Node>(deeper).ok());
  EXPECT_TRUE(ar::access<Node>(deeper, {.max_depth = 600}).ok());
}

// Patches a field of a valid Everything archive and expects `message` in the error.
class EverythingFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    Rng rng(1);
    value = random_everything(rng);
    value.maybe_point = Point{1, 2};
    value.choice = std::string("variant");
    value.index = {{1, {"a"}}, {5, {"b"}}, {9, {}}};
    bytes = ar::serialize(value).value();
    view = *ar::access<Everything>(bytes);
  }
  void expect_rejected(std::size_t pos, std::uint8_t byte, const std::string& message) {
    auto m = bytes;
    m[pos] = std::byte{byte};
    auto r = ar::access<Everything>(m);
    ASSERT_FALSE(r.ok()) << message;
    EXPECT_NE(r.error().message.find(message), std::string::npos) << r.error().message;
  }
  std::size_t field(const void* f) { return pos_of(bytes, f); }
  Everything value;
  std::vector<std::byte> bytes;
  const ar::Archived<Everything>* view = nullptr;
};

TEST_F(EverythingFixture, BadTagsAndBools) {
  expect_rejected(field(&view->flag), 2, "flag: invalid bool byte 2");
  expect_rejected(field(&view->color), 3, "color: invalid Color tag 3");
  expect_rejected(field(&view->sparse), 2, "sparse: invalid Sparse tag ");
  expect_rejected(field(&view->maybe_point), 2, "maybe_point: invalid option tag 2");
  expect_rejected(field(&view->choice), 4, "choice: invalid variant tag 4");
  if (!view->bits.empty()) expect_rejected(field(&view->bits[0]), 0x10, "bits[0]: invalid bool");
}

TEST_F(EverythingFixture, UnsortedMapKeysAreRejected) {
  auto m = bytes;
  const auto* entries = view->index.begin();
  std::uint32_t k = 5;
  std::memcpy(m.data() + field(&entries[0].first), &k, 4);  // 5, 5, 9
  auto r = ar::access<Everything>(m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("index[1]: map keys not strictly increasing"), std::string::npos)
      << r.error().message;
}

TEST_F(EverythingFixture, OptionNoneIgnoresItsStorage) {
  // A none option's storage bytes are never read, whatever they hold.
  value.maybe_point.reset();
  bytes = ar::serialize(value).value();
  view = *ar::access<Everything>(bytes);
  bytes[field(&view->maybe_point) + 8] = std::byte{0x5A};
  EXPECT_TRUE(ar::access<Everything>(bytes).ok());
}

TEST(ArchiveHostileCrafted, PointerIntoTheHeaderIsRejected) {
  auto bytes = ar::serialize(std::string("hello"), {.header = true}).value();
  const std::size_t f = bytes.size() - 8;
  put_i32(bytes, f, -static_cast<std::int32_t>(f));  // the header's first byte
  auto r = ar::access<std::string>(bytes, {.header = true});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("already claimed"), std::string::npos) << r.error().message;
}

TEST(ArchiveUtf8, AcceptsWellFormedRejectsEverythingElse) {
  auto check = [](std::string_view s) {
    std::size_t bad = 0;
    return ar::detail::utf8_valid(reinterpret_cast<const unsigned char*>(s.data()), s.size(), bad);
  };
  EXPECT_TRUE(check(""));
  EXPECT_TRUE(check("plain ascii that is longer than sixteen bytes"));
  EXPECT_TRUE(check("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf"));
  for (std::string_view bad : {"\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
                               "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                               "\xe2\x82", "\xff", "abcdefghijklmnopq\xe2\x28\xa1"}) {
    EXPECT_FALSE(check(bad)) << testing::PrintToString(std::string(bad));
  }
  std::size_t at = 0;
  const std::string_view s = "0123456789abcdefghij\xc3(";
  EXPECT_FALSE(
      ar::detail::utf8_valid(reinterpret_cast<const unsigned char*>(s.data()), s.size(), at));
  EXPECT_EQ(at, 20u);
}

TEST(ArchiveUtf8, CharacterSplitAcrossTwoStringsIsRejected) {
  // identity ends with the lead byte of "é" and userid starts with its continuation byte: the
  // bytes are contiguous and valid UTF-8 together, but neither string is.
  Logs logs = make_logs(2);
  logs.logs[0].identity = "ab\xc3";
  logs.logs[0].userid =
      "\xa9"
      "cd";
  const auto bytes = ar::serialize(logs).value();

  auto r = ar::access<Logs>(bytes);

  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("logs[0].identity: invalid UTF-8"), std::string::npos)
      << r.error().message;
  logs.logs[0].identity = "ab";
  logs.logs[0].userid =
      "\xc3\xa9"
      "cd";
  EXPECT_TRUE(ar::access<Logs>(ar::serialize(logs).value()).ok());
}

TEST(ArchiveUtf8, AsciiScanFindsAHighBitAtEveryPositionAndLength) {
  // ascii_in decides the coalesced pass: one missed high bit would let invalid UTF-8 through.
  alignas(16) std::array<std::byte, 256 + 16> buf{};
  for (std::size_t off = 0; off < 16; off += 5) {
    for (std::size_t n = 0; n <= 256; ++n) {
      std::fill(buf.begin(), buf.end(), std::byte{'a'});
      const std::byte* p = buf.data() + off;
      EXPECT_TRUE(ar::detail::ascii_in(p, n)) << n;
      for (std::size_t i = 0; i < n; ++i) {
        buf[off + i] = std::byte{0x80};
        EXPECT_FALSE(ar::detail::ascii_in(p, n)) << "n " << n << " at " << i;
        buf[off + i] = std::byte{'a'};
      }
      if (off > 0) buf[off - 1] = std::byte{0xff};  // bytes outside the range do not count
      buf[off + n] = std::byte{0xff};
      EXPECT_TRUE(ar::detail::ascii_in(p, n)) << n;
    }
  }
}

TEST(ArchiveUtf8, NonAsciiTextValidatesThroughTheExactPass) {
  // Every string multi-byte: the coalesced pass hands over to the per-string pass, which
  // accepts it; one bad string among them is still named.
  Logs logs = make_logs(300);
  for (auto& l : logs.logs) {
    l.identity += "\xc3\xa9";
    l.request = "\xe2\x82\xac" + l.request + "\xf0\x9f\x98\x80";
  }
  auto bytes = ar::serialize(logs).value();
  auto ok = ar::access<Logs>(bytes);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ((*ok)->logs[299].request.view(), logs.logs[299].request);

  logs.logs[123].userid = "x\xed\xa0\x80";  // a surrogate
  bytes = ar::serialize(logs).value();
  auto bad = ar::access<Logs>(bytes);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("logs[123].userid: invalid UTF-8"), std::string::npos)
      << bad.error().message;
}

}  // namespace
