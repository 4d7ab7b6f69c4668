// SPDX-License-Identifier: MIT OR Apache-2.0
// Shared helpers of the IPC tests: checksummed payloads, unique socket paths, child processes.
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

/// A private directory for sockets, traversable by other users (mode 0755), removed at exit.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/plx-ipc-XXXXXX";
    path_ = ::mkdtemp(tmpl);
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    std::string cmd = "rm -rf '" + path_ + "'";
    (void)std::system(cmd.c_str());
  }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// A child process running the helper binary; killed (SIGKILL) if still running at destruction.
class Child {
 public:
  Child() = default;
  explicit Child(const std::vector<std::string>& args, bool capture_stdout = false,
                 bool pipe_stdin = false) {
    int pipefd[2] = {-1, -1};
    int infd[2] = {-1, -1};
    if (capture_stdout && ::pipe2(pipefd, O_CLOEXEC) != 0) return;
    if (pipe_stdin && ::pipe2(infd, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      if (capture_stdout) ::dup2(pipefd[1], 1);
      if (pipe_stdin) ::dup2(infd[0], 0);
      std::vector<char*> argv;
      for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (capture_stdout) {
      ::close(pipefd[1]);
      out_ = pipefd[0];
    }
    if (pipe_stdin) {
      ::close(infd[0]);
      in_ = infd[1];
    }
  }
  /// Writes one line to the child's stdin (pipe_stdin).
  void write_line(const std::string& s) {
    const std::string l = s + "\n";
    (void)!::write(in_, l.data(), l.size());
  }
  /// Closes the child's stdin (pipe_stdin): it reads end of file.
  void close_stdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  Child(Child&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)),
        out_(std::exchange(o.out_, -1)),
        in_(std::exchange(o.in_, -1)) {}
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(out_, o.out_);
    std::swap(in_, o.in_);
    return *this;
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (in_ >= 0) ::close(in_);
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  /// Reads one line from the child's stdout (blocking).
  std::string read_line() {
    std::string s;
    char c;
    while (::read(out_, &c, 1) == 1 && c != '\n')
      s += c;
    return s;
  }
  /// Exit status (-1 when killed by a signal, -2 on timeout: the child is then killed).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    int st = 0;
    for (;;) {
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() >= until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return -2;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  void kill9() {
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_{-1};
  int out_{-1};
  int in_{-1};
};

inline std::string peer_binary() {
  const char* p = std::getenv("PLX_IPC_PEER");
  return p ? p : "./ipc_peer";
}

}  // namespace ipc_test
