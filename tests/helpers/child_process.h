// SPDX-License-Identifier: MIT OR Apache-2.0
// The benchmarks' subscriber process: re-executes the benchmark itself as `self sub PATH MODE`
// with its stdout on a pipe, and collects what it printed once it exits.
#pragma once

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace parallax::test {

struct Child {
  pid_t pid;
  int out;  ///< the read end of the child's stdout
};

inline Child spawn_sub(const char* self, const std::string& path, const char* mode) {
  int p[2];
  if (::pipe(p) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    ::execl(self, self, "sub", path.c_str(), mode, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[1]);
  return {pid, p[0]};
}

/// Everything the child printed, after it exited.
inline std::string finish(Child c) {
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(c.out, buf, sizeof buf)) > 0)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(c.out);
  int st = 0;
  ::waitpid(c.pid, &st, 0);
  return out;
}

}  // namespace parallax::test
