// SPDX-License-Identifier: MIT OR Apache-2.0
// The base layer's file-descriptor helpers (private to libparallax): memfds and their seals,
// duplicating and read-only reopening, an fd's access mode, size and filesystem. One copy for
// memory (segments), ipc and the elements; errors follow the taxonomy of parallax/result.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::base {

/// memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING | extra_flags), e.g. MFD_HUGETLB. The name is
/// what /proc/PID/fd shows: "parallax" when empty, cut to the kernel's 249 bytes.
[[nodiscard]] Result<UniqueFd> make_memfd(std::string_view name, unsigned extra_flags = 0);

/// F_ADD_SEALS.
[[nodiscard]] Result<void> add_seals(int fd, int seals);

/// F_GET_SEALS. data_loss when the fd cannot carry seals (not a memfd: EINVAL), which is what a
/// receiver says of a peer's fd; other failures map their errno.
[[nodiscard]] Result<int> get_seals(int fd);

/// A new fd on the same open file description (F_DUPFD_CLOEXEC): same access mode, same flags.
[[nodiscard]] Result<UniqueFd> dup_fd(int fd);

/// A new, O_RDONLY open file description of the same file, reopened through /proc/self/fd:
/// whoever receives it can neither mmap it PROT_WRITE nor mprotect a mapping of it to writable.
[[nodiscard]] Result<UniqueFd> reopen_read_only(int fd);

/// Whether `fd` was opened for writing (its F_GETFL access mode is not O_RDONLY).
[[nodiscard]] Result<bool> is_writable(int fd);

/// The size of the file behind `fd` (fstat).
[[nodiscard]] Result<std::uint64_t> file_size(int fd);

/// Whether the file behind `fd` lives on hugetlbfs (fstatfs, HUGETLBFS_MAGIC).
[[nodiscard]] Result<bool> on_hugetlbfs(int fd);

/// Number of open fds of this process (/proc/self/fd), for tests and stats.
[[nodiscard]] std::size_t count_open_fds();

}  // namespace parallax::base
