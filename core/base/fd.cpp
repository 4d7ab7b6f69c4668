// SPDX-License-Identifier: MIT OR Apache-2.0
// File-descriptor helpers of the base layer (see fd.h).
#include "base/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

namespace parallax::base {

namespace {
constexpr std::uint64_t kHugetlbfsMagic = 0x958458f6;  // linux/magic.h HUGETLBFS_MAGIC
constexpr std::size_t kMaxMemfdName = 249;             // NAME_MAX minus the "memfd:" prefix
}  // namespace

Result<UniqueFd> make_memfd(std::string_view name, unsigned extra_flags) {
  std::string n(name.empty() ? "parallax" : name);
  if (n.size() > kMaxMemfdName) n.resize(kMaxMemfdName);
  // The raw syscall: glibc's wrapper is newer than some toolchains we build with.
  const int fd = static_cast<int>(
      ::syscall(SYS_memfd_create, n.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | extra_flags));
  if (fd < 0) return Error::from_errno("memfd_create(" + n + ")");
  return UniqueFd(fd);
}

Result<void> add_seals(int fd, int seals) {
  if (::fcntl(fd, F_ADD_SEALS, seals) != 0) return Error::from_errno("fcntl(F_ADD_SEALS)");
  return {};
}

Result<int> get_seals(int fd) {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals >= 0) return seals;
  if (errno == EINVAL)
    return err(Errc::data_loss, "fd is not a sealable memfd (F_GET_SEALS: EINVAL)");
  return Error::from_errno("F_GET_SEALS");
}

Result<UniqueFd> dup_fd(int fd) {
  const int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return Error::from_errno("dup");
  return UniqueFd(d);
}

Result<UniqueFd> reopen_read_only(int fd) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  const int r = ::open(path, O_RDONLY | O_CLOEXEC);
  if (r < 0) return Error::from_errno("reopen read-only");
  return UniqueFd(r);
}

Result<bool> is_writable(int fd) {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return Error::from_errno("F_GETFL");
  return (fl & O_ACCMODE) != O_RDONLY;
}

Result<std::uint64_t> file_size(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::from_errno("fstat");
  return static_cast<std::uint64_t>(st.st_size);
}

Result<bool> on_hugetlbfs(int fd) {
  struct statfs sfs {};
  if (::fstatfs(fd, &sfs) != 0) return Error::from_errno("fstatfs");
  return static_cast<std::uint64_t>(sfs.f_type) == kHugetlbfsMagic;
}

std::size_t count_open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n > 0 ? n - 1 : 0;  // the directory's own fd
}

}  // namespace parallax::base
