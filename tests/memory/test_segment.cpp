// SPDX-License-Identifier: MIT OR Apache-2.0
// Segment contract tests, run over every backend, plus import/export validation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "parallax/segment.h"
#include "test_util.h"

using namespace parallax;
using namespace parallax::memory;

namespace {

struct HeapBackend {
  static Result<Segment> make(std::size_t n) { return HeapSegment::create(n); }
};
struct MemfdBackend {
  static Result<Segment> make(std::size_t n) { return SharedMemorySegment::create("plx-test", n); }
};
struct HugeBackend {
  static Result<Segment> make(std::size_t n) { return HugePageSegment::create("plx-huge", n); }
};
struct FileBackend {
  static Result<Segment> make(std::size_t n) {
    return MappedFileSegment::create(test::unique_path("seg") + ".bin", n);
  }
};

template <typename B>
class SegmentContract : public ::testing::Test {};
using Backends = ::testing::Types<HeapBackend, MemfdBackend, HugeBackend, FileBackend>;
TYPED_TEST_SUITE(SegmentContract, Backends);

TYPED_TEST(SegmentContract, CreatesWritableZeroedRegionOfAtLeastTheSize) {
  auto seg = TypeParam::make(8192);
  ASSERT_TRUE(seg.ok()) << seg.error().to_string();
  EXPECT_TRUE(seg->valid());
  EXPECT_EQ(seg->size(), 8192u);
  ASSERT_NE(seg->writable_data(), nullptr);
  for (std::size_t i = 0; i < seg->size(); i += 512)
    EXPECT_EQ(seg->data()[i], std::byte{0});
  std::memset(seg->writable_data(), 0xAB, seg->size());
  EXPECT_EQ(seg->data()[8191], std::byte{0xAB});
}

TYPED_TEST(SegmentContract, RejectsZeroAndAbsurdSizes) {
  auto zero = TypeParam::make(0);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code, Errc::invalid_argument);
  auto huge = TypeParam::make(kMaxSegmentSize + 1);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, Errc::invalid_argument);
}

TYPED_TEST(SegmentContract, IdsAreUniqueAndMoveTransfersOwnership) {
  auto a = TypeParam::make(4096);
  auto b = TypeParam::make(4096);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->id(), b->id());
  const auto id = a->id();
  Segment moved = std::move(a).value();
  EXPECT_EQ(moved.id(), id);
  EXPECT_TRUE(moved.valid());
}

// Pages of the mapping that are resident (backed) right now.
std::size_t resident_pages(const Segment& seg) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((seg.size() + page - 1) / page);
  if (::mincore(const_cast<std::byte*>(seg.data()), seg.size(), vec.data()) != 0) return 0;
  std::size_t n = 0;
  for (unsigned char v : vec)
    n += v & 1;
  return n;
}

TYPED_TEST(SegmentContract, PrefaultCommitsEveryPageAndKeepsTheContents) {
  const std::size_t size = 64 * 4096;
  auto seg = TypeParam::make(size);
  ASSERT_TRUE(seg.ok()) << seg.error().to_string();
  std::memcpy(seg->writable_data() + 3 * 4096 + 17, "kept", 4);
  auto r = seg->prefault();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(resident_pages(*seg), size / 4096);
  EXPECT_EQ(std::memcmp(seg->data() + 3 * 4096 + 17, "kept", 4), 0);
  EXPECT_EQ(seg->data()[size - 1], std::byte{0});
}

TEST(SegmentPrefault, EmptySegmentIsAnError) {
  Segment empty;
  auto r = empty.prefault();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
}

TEST(SharedMemorySegment, IsSealedAgainstResizing) {
  auto seg = SharedMemorySegment::create("plx-seal", 4096);
  ASSERT_TRUE(seg.ok());
  int seals = fcntl(seg->fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_NE(ftruncate(seg->fd(), 8192), 0);
  EXPECT_NE(ftruncate(seg->fd(), 1024), 0);
  EXPECT_TRUE(fcntl(seg->fd(), F_GETFD) & FD_CLOEXEC);
}

TEST(SharedMemorySegment, NameIsTheMemfdDebugName) {
  auto seg = SharedMemorySegment::create("plx-named-segment", 4096);
  ASSERT_TRUE(seg.ok());
  char link[256] = {};
  std::string p = "/proc/self/fd/" + std::to_string(seg->fd());
  ASSERT_GT(readlink(p.c_str(), link, sizeof link - 1), 0);
  EXPECT_NE(std::string(link).find("memfd:plx-named-segment"), std::string::npos) << link;
}

TEST(HeapSegment, CannotBeShared) {
  auto seg = HeapSegment::create(4096);
  ASSERT_TRUE(seg.ok());
  EXPECT_FALSE(seg->shareable());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code, Errc::failed_precondition);
}

TEST(HugePageSegment, SaysWhichKindOfHugePagesItGot) {
  auto seg = HugePageSegment::create("plx-huge", 1000);
  ASSERT_TRUE(seg.ok()) << seg.error().to_string();
  EXPECT_EQ(seg->backend(), Backend::hugepage);
  EXPECT_NE(seg->huge_pages(), HugePages::none);
  EXPECT_EQ(seg->size(), 1000u);  // the visible size; the mapping is rounded to a huge page
}

TEST(SegmentImport, ReadOnlyImportSeesWritesAndCannotBeMadeWritable) {
  auto seg = SharedMemorySegment::create("plx-ro", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok()) << fd.error().to_string();
  const int raw = fd->get();
  auto imported = Segment::import(std::move(fd).value(), Access::read_only, 4096);
  ASSERT_TRUE(imported.ok()) << imported.error().to_string();
  EXPECT_EQ(imported->writable_data(), nullptr);
  seg->writable_data()[100] = std::byte{42};
  EXPECT_EQ(imported->data()[100], std::byte{42});
  // Neither mprotect nor a new writable mapping of the received fd may succeed.
  void* base = const_cast<std::byte*>(imported->data());
  EXPECT_NE(mprotect(base, 4096, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, raw, 0), MAP_FAILED);
  EXPECT_EQ(errno, EACCES);
  // Prefaulting the read-only mapping maps the pages readable and still cannot write them.
  auto r = imported->prefault();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(imported->data()[100], std::byte{42});
  EXPECT_EQ(imported->writable_data(), nullptr);
}

TEST(SegmentImport, ReadOnlyFdCannotBeImportedReadWrite) {
  auto seg = SharedMemorySegment::create("plx-ro2", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok());
  auto imported = Segment::import(std::move(fd).value(), Access::read_write, 4096);
  ASSERT_FALSE(imported.ok());
  EXPECT_EQ(imported.error().code, Errc::permission_denied);
}

TEST(SegmentImport, ReadOnlyFdRuleRefusesAWritableFd) {
  auto seg = SharedMemorySegment::create("plx-ro-rule", 4096);
  ASSERT_TRUE(seg.ok());
  auto rw = seg->export_fd(Access::read_write);
  ASSERT_TRUE(rw.ok());
  auto refused = Segment::import(std::move(rw).value(), Access::read_only, 4096, "rule",
                                 {.read_only_fd = true});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::data_loss);
  EXPECT_NE(refused.error().message.find("writable fd"), std::string::npos);
  // The same rule accepts a read-only fd; without the rule a writable one maps read-only.
  auto ro = seg->export_fd(Access::read_only);
  ASSERT_TRUE(ro.ok());
  EXPECT_TRUE(Segment::import(std::move(ro).value(), Access::read_only, 4096, "rule",
                              {.read_only_fd = true})
                  .ok());
  auto rw2 = seg->export_fd(Access::read_write);
  ASSERT_TRUE(rw2.ok());
  auto lax = Segment::import(std::move(rw2).value(), Access::read_only, 4096);
  ASSERT_TRUE(lax.ok());
  EXPECT_EQ(lax->writable_data(), nullptr);
}

// What the IPC ack area is: one memfd both sides map read-write.
TEST(SegmentImport, ReadWriteImportSharesWritesBothWays) {
  auto seg = SharedMemorySegment::create("plx-rw-shared", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_write);
  ASSERT_TRUE(fd.ok());
  auto peer = Segment::import(std::move(fd).value(), Access::read_write, 4096, "peer");
  ASSERT_TRUE(peer.ok()) << peer.error().to_string();
  ASSERT_NE(peer->writable_data(), nullptr);
  EXPECT_NE(peer->data(), seg->data());  // a mapping of its own
  seg->writable_data()[7] = std::byte{1};
  peer->writable_data()[9] = std::byte{2};
  EXPECT_EQ(peer->data()[7], std::byte{1});
  EXPECT_EQ(seg->data()[9], std::byte{2});
}

TEST(SegmentImport, RefusesWrongSize) {
  auto seg = SharedMemorySegment::create("plx-size", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok());
  auto imported = Segment::import(std::move(fd).value(), Access::read_only, 8192);
  ASSERT_FALSE(imported.ok());
  EXPECT_EQ(imported.error().code, Errc::data_loss);
  EXPECT_NE(imported.error().message.find("size"), std::string::npos);
}

TEST(SegmentImport, RefusesUnsealedMemfd) {
  UniqueFd fd(
      static_cast<int>(syscall(SYS_memfd_create, "unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(ftruncate(fd.get(), 4096), 0);
  auto imported = Segment::import(std::move(fd), Access::read_only, 4096);
  ASSERT_FALSE(imported.ok());
  EXPECT_EQ(imported.error().code, Errc::data_loss);
  EXPECT_NE(imported.error().message.find("sealed"), std::string::npos);
}

TEST(SegmentImport, RefusesAFileThatIsNotAMemfd) {
  const std::string path = test::unique_path("notmemfd");
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(ftruncate(fd.get(), 4096), 0);
  unlink(path.c_str());
  auto imported = Segment::import(std::move(fd), Access::read_only, 4096);
  ASSERT_FALSE(imported.ok());
  EXPECT_EQ(imported.error().code, Errc::data_loss);
}

TEST(SegmentImport, RefusesInvalidFdAndZeroSize) {
  EXPECT_EQ(Segment::import(UniqueFd(), Access::read_only, 4096).error().code,
            Errc::invalid_argument);
  auto seg = SharedMemorySegment::create("plx-zero", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(Segment::import(std::move(fd).value(), Access::read_only, 0).error().code,
            Errc::invalid_argument);
}

TEST(MappedFileSegment, PersistsAcrossCloseAndReopen) {
  const std::string path = test::unique_path("persist") + ".bin";
  {
    auto seg = MappedFileSegment::create(path, 4096);
    ASSERT_TRUE(seg.ok()) << seg.error().to_string();
    std::memcpy(seg->writable_data(), "parallax persists", 17);
  }
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto reopened = MappedFileSegment::open(path, Access::read_only);
  ASSERT_TRUE(reopened.ok()) << reopened.error().to_string();
  EXPECT_EQ(reopened->size(), 4096u);
  EXPECT_EQ(std::memcmp(reopened->data(), "parallax persists", 17), 0);
  EXPECT_EQ(reopened->writable_data(), nullptr);
  std::filesystem::remove(path);
}

TEST(MappedFileSegment, OpenMissingFileIsNotFound) {
  auto seg = MappedFileSegment::open("/nonexistent/parallax/file.bin", Access::read_only);
  ASSERT_FALSE(seg.ok());
  EXPECT_EQ(seg.error().code, Errc::not_found);
}

TEST(MappedFileSegment, OpenEmptyFileIsInvalid) {
  const std::string path = test::unique_path("empty");
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  auto seg = MappedFileSegment::open(path, Access::read_only);
  ASSERT_FALSE(seg.ok());
  EXPECT_EQ(seg.error().code, Errc::invalid_argument);
  std::filesystem::remove(path);
}

}  // namespace
