// SPDX-License-Identifier: MIT OR Apache-2.0
// Segment backends: anonymous heap mappings, sealed memfds, huge-page memfds and mapped files,
// plus the import path that maps a memfd received from another process.
#include "parallax/segment.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "base/fd.h"
#include "parallax/log.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace parallax::memory {

// Seals every shareable memfd carries once sized: its size can never change again (so a
// receiver that verified the size can never SIGBUS), and nobody may add or remove seals.
constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;
constexpr int kAppliedSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

std::string_view to_string(Backend b) noexcept {
  switch (b) {
    case Backend::heap:
      return "heap";
    case Backend::memfd:
      return "memfd";
    case Backend::hugepage:
      return "hugepage";
    case Backend::file:
      return "file";
  }
  return "unknown";
}

std::string_view to_string(HugePages h) noexcept {
  switch (h) {
    case HugePages::none:
      return "none";
    case HugePages::hugetlb:
      return "hugetlb";
    case HugePages::transparent:
      return "transparent";
  }
  return "unknown";
}

namespace {

std::atomic<std::uint64_t> g_next_segment_id{1};

Result<void> check_size(std::size_t size) {
  if (size == 0) return err(Errc::invalid_argument, "segment size is zero");
  if (size > kMaxSegmentSize)
    return err(Errc::invalid_argument,
               "segment size " + std::to_string(size) + " exceeds the 1 TiB limit");
  return {};
}

// A base-layer error said in the import's words.
Error in_import(Error e) {
  e.message = "import: " + e.message;
  return e;
}

Result<std::byte*> map_fd(int fd, std::size_t size, Access access) {
  int prot = access == Access::read_write ? PROT_READ | PROT_WRITE : PROT_READ;
  void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap");
  return static_cast<std::byte*>(p);
}

std::size_t huge_page_size() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::size_t value = 0;
  std::string unit;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "Hugepagesize:") return value * 1024;
  }
  return std::size_t{2} << 20;
}

}  // namespace

// Builds Segments; a friend so the fields stay private to users.
struct SegmentFactory {
  static Segment make(std::byte* base, std::size_t size, std::size_t map_size, UniqueFd fd,
                      std::string name, Backend backend, Access access, HugePages huge) {
    Segment s;
    s.base_ = base;
    s.size_ = size;
    s.map_size_ = map_size;
    s.fd_ = std::move(fd);
    s.name_ = std::move(name);
    s.id_ = g_next_segment_id.fetch_add(1, std::memory_order_relaxed);
    s.backend_ = backend;
    s.access_ = access;
    s.huge_ = huge;
    return s;
  }

  static Result<Segment> memfd(std::string_view name, std::size_t size, unsigned extra_flags,
                               std::size_t map_size, Backend backend, HugePages huge) {
    PLX_ASSIGN(UniqueFd fd, base::make_memfd(name, extra_flags));
    if (::ftruncate(fd.get(), static_cast<off_t>(map_size)) != 0)
      return Error::from_errno("ftruncate(memfd)");
    if (huge == HugePages::hugetlb) {
      // hugetlbfs: a hole punched into the file makes the next read of a mapping fault in a
      // huge page the system may not have (SIGBUS in the subscriber), so importers require a
      // write seal (Segment::import). F_SEAL_FUTURE_WRITE after our own writable mapping: it
      // forbids fallocate(PUNCH_HOLE), write() and new writable mappings, not this one.
      PLX_TRY(base::add_seals(fd.get(), F_SEAL_SHRINK | F_SEAL_GROW));
      PLX_ASSIGN(std::byte * base, map_fd(fd.get(), map_size, Access::read_write));
      if (auto sealed = base::add_seals(fd.get(), F_SEAL_FUTURE_WRITE | F_SEAL_SEAL); !sealed) {
        ::munmap(base, map_size);
        return err(sealed.error().code,
                   "F_SEAL_FUTURE_WRITE on hugetlbfs: " + sealed.error().message);
      }
      return make(base, size, map_size, std::move(fd), std::string(name), backend,
                  Access::read_write, huge);
    }
    PLX_TRY(base::add_seals(fd.get(), kAppliedSeals));
    PLX_ASSIGN(std::byte * base, map_fd(fd.get(), map_size, Access::read_write));
    return make(base, size, map_size, std::move(fd), std::string(name), backend, Access::read_write,
                huge);
  }
};

Segment::Segment(Segment&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      map_size_(std::exchange(o.map_size_, 0)),
      fd_(std::move(o.fd_)),
      name_(std::move(o.name_)),
      id_(std::exchange(o.id_, 0)),
      backend_(o.backend_),
      access_(o.access_),
      huge_(o.huge_) {}

Segment& Segment::operator=(Segment&& o) noexcept {
  if (this != &o) {
    this->~Segment();
    new (this) Segment(std::move(o));
  }
  return *this;
}

Segment::~Segment() {
  if (base_ != nullptr) ::munmap(base_, map_size_);
  base_ = nullptr;
}

Result<UniqueFd> Segment::export_fd(Access access) const {
  if (!fd_.valid()) return err(Errc::failed_precondition, "a heap segment cannot be shared");
  if (access == Access::read_write) {
    if (access_ != Access::read_write)
      return err(Errc::permission_denied, "a read-only segment cannot export a writable fd");
    return base::dup_fd(fd_.get());
  }
  // A new open file description that is O_RDONLY: the receiver cannot mmap it PROT_WRITE nor
  // mprotect a mapping of it to writable.
  return base::reopen_read_only(fd_.get());
}

Result<Segment> Segment::import(UniqueFd fd, Access access, std::size_t expected_size,
                                std::string_view name, ImportRules rules) {
  if (!fd.valid()) return err(Errc::invalid_argument, "import: invalid fd");
  PLX_TRY(check_size(expected_size));
  auto seals = base::get_seals(fd.get());
  if (!seals) return in_import(std::move(seals).error());
  if ((*seals & kRequiredSeals) != kRequiredSeals)
    return err(Errc::data_loss, "import: memfd is not sealed against shrink and grow (seals=" +
                                    std::to_string(*seals) + ")");
  // hugetlbfs: without a write seal the sender can punch holes (fallocate) and our next read of
  // the hole faults in a huge page the system may not have: SIGBUS instead of an error.
  auto hugetlbfs = base::on_hugetlbfs(fd.get());
  if (!hugetlbfs) return in_import(std::move(hugetlbfs).error());
  if (*hugetlbfs && (*seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) == 0)
    return err(Errc::data_loss,
               "import: hugetlbfs memfd not sealed against writes (F_SEAL_WRITE or "
               "F_SEAL_FUTURE_WRITE): its sender could punch holes that fault as SIGBUS");
  auto size = base::file_size(fd.get());
  if (!size) return in_import(std::move(size).error());
  if (*size != expected_size)
    return err(Errc::data_loss, "import: memfd size " + std::to_string(*size) +
                                    " differs from the announced " + std::to_string(expected_size));
  auto fd_writable = base::is_writable(fd.get());
  if (!fd_writable) return in_import(std::move(fd_writable).error());
  if (access == Access::read_write && !*fd_writable)
    return err(Errc::permission_denied, "import: fd is read-only, cannot map read-write");
  if (rules.read_only_fd && *fd_writable)
    return err(Errc::data_loss,
               "import: the peer sent a writable fd where a read-only one is required");
  PLX_ASSIGN(std::byte * base, map_fd(fd.get(), expected_size, access));
  HugePages huge = *hugetlbfs ? HugePages::hugetlb : HugePages::none;
  return SegmentFactory::make(base, expected_size, expected_size, std::move(fd), std::string(name),
                              Backend::memfd, access, huge);
}

Result<void> Segment::prefault() {
  if (base_ == nullptr) return err(Errc::failed_precondition, "empty segment");
  const bool writable = access_ == Access::read_write;
  if (::madvise(base_, map_size_, writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0)
    return {};
  const int e = errno;
  if (e == ENOMEM || e == EFAULT || e == EHWPOISON)
    return err(Errc::resource_exhausted, "cannot commit the " + std::to_string(map_size_) +
                                             " bytes of segment '" + name_ +
                                             "': " + std::strerror(e));
  if (e != EINVAL) return Error::from_errno("madvise(MADV_POPULATE)", e);
  // Kernel without MADV_POPULATE_*: touch every page (SIGBUS instead of an error if the
  // memory cannot be backed, as any first touch would).
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  for (std::size_t off = 0; off < map_size_; off += page) {
    auto* p = reinterpret_cast<volatile std::byte*>(base_ + off);
    const std::byte v = *p;
    if (writable) *p = v;
  }
  return {};
}

Result<void> Segment::bind_to_numa_node(unsigned node) {
  if (base_ == nullptr) return err(Errc::failed_precondition, "empty segment");
  if (node >= 64) return err(Errc::invalid_argument, "NUMA node out of range");
  unsigned long mask = 1UL << node;
  // mbind(addr, len, MPOL_BIND=2, mask, maxnode, MPOL_MF_MOVE=2): pages go to that node only,
  // pages already faulted move. (Bind, not preferred: a preference silently lands elsewhere.)
  // The hwloc path with checks and verification is topology::place_memory (parallax/affinity.h).
  long rc = ::syscall(SYS_mbind, base_, map_size_, 2, &mask, 65UL, 2U);
  if (rc != 0) return Error::from_errno("mbind");
  return {};
}

Result<Segment> HeapSegment::create(std::size_t size) {
  PLX_TRY(check_size(size));
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap(heap segment)");
  return SegmentFactory::make(static_cast<std::byte*>(p), size, size, UniqueFd(), "heap",
                              Backend::heap, Access::read_write, HugePages::none);
}

Result<Segment> SharedMemorySegment::create(std::string_view name, std::size_t size) {
  PLX_TRY(check_size(size));
  return SegmentFactory::memfd(name, size, 0, size, Backend::memfd, HugePages::none);
}

Result<Segment> HugePageSegment::create(std::string_view name, std::size_t size) {
#ifndef PARALLAX_HUGE_PAGES
  (void)name;
  (void)size;
  return err(Errc::unsupported, "built without huge page support (-Dhuge-pages=false)");
#else
  PLX_TRY(check_size(size));
  const std::size_t hp = huge_page_size();
  const std::size_t rounded = (size + hp - 1) / hp * hp;
  auto tlb = SegmentFactory::memfd(name, size, MFD_HUGETLB, rounded, Backend::hugepage,
                                   HugePages::hugetlb);
  if (tlb.ok()) {
    PLX_LOG(info, "memory", "segment '%.*s': %zu bytes in reserved huge pages (hugetlbfs)",
            static_cast<int>(name.size()), name.data(), rounded);
    return tlb;
  }
  // No reserved huge pages (ENOMEM at ftruncate/mmap, or EINVAL without hugetlbfs): use a
  // regular memfd and ask for transparent huge pages. Said once per segment, at info level.
  PLX_LOG(info, "memory",
          "segment '%.*s': no reserved huge pages (%s); falling back to transparent huge pages",
          static_cast<int>(name.size()), name.data(), tlb.error().message.c_str());
  PLX_ASSIGN(Segment s, SegmentFactory::memfd(name, size, 0, rounded, Backend::hugepage,
                                              HugePages::transparent));
  if (::madvise(s.writable_data(), rounded, MADV_HUGEPAGE) != 0)
    PLX_LOG(warn, "memory", "madvise(MADV_HUGEPAGE) failed: transparent huge pages unavailable");
  return s;
#endif
}

Result<Segment> MappedFileSegment::create(std::string_view path, std::size_t size) {
  PLX_TRY(check_size(size));
  std::string p(path);
  UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::from_errno("open(" + p + ")");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return Error::from_errno("ftruncate(" + p + ")");
  PLX_ASSIGN(std::byte * base, map_fd(fd.get(), size, Access::read_write));
  return SegmentFactory::make(base, size, size, std::move(fd), p, Backend::file, Access::read_write,
                              HugePages::none);
}

Result<Segment> MappedFileSegment::open(std::string_view path, Access access) {
  std::string p(path);
  UniqueFd fd(::open(p.c_str(), (access == Access::read_write ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!fd) return Error::from_errno("open(" + p + ")");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("fstat(" + p + ")");
  if (!S_ISREG(st.st_mode)) return err(Errc::invalid_argument, p + " is not a regular file");
  PLX_TRY(check_size(static_cast<std::size_t>(st.st_size)));
  const auto size = static_cast<std::size_t>(st.st_size);
  PLX_ASSIGN(std::byte * base, map_fd(fd.get(), size, access));
  return SegmentFactory::make(base, size, size, std::move(fd), p, Backend::file, access,
                              HugePages::none);
}

}  // namespace parallax::memory
