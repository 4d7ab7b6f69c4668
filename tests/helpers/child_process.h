// SPDX-License-Identifier: MIT OR Apache-2.0
// The tests' and benchmarks' helper processes and scratch directories, once for every suite: a
// child process (posix_spawn, so it is safe from a process running threads, GStreamer's included)
// with its stdin/stdout/stderr on pipes or in files and extra fds passed down, killed and reaped
// when the test is done; a temporary directory removed at the end; unique temporary paths.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace parallax::test {

/// A path in the temp dir that no other test (or parallel test process) uses.
inline std::string unique_path(const std::string& stem) {
  static std::atomic<int> counter{0};
  return (std::filesystem::temp_directory_path() /
          ("plx-" + stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
      .string();
}

/// A fresh directory under the temp dir, traversable by other users (mode 0755: the setuid
/// tests connect to sockets in it as another uid), removed with its contents at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "plx-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
    ::chmod(path_.c_str(), 0755);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct SpawnOptions {
  bool capture_stdout{false};  ///< stdout on a pipe: read_line(), read_all_stdout()
  bool capture_stderr{false};  ///< stderr on a pipe: read_all_stderr()
  bool pipe_stdin{false};      ///< stdin on a pipe: write_line()
  /// Non-empty: stdout and stderr go to the files <output_files>.out / .err (out(), err()),
  /// removed at destruction. For chatty children nobody drains while waiting.
  std::string output_files;
  /// Fds of this process the child gets, as {ours, the child's number} (e.g. {seg_fd, 3}).
  std::vector<std::pair<int, int>> fds;
};

/// A child process; SIGKILLed and reaped at destruction if it is still running.
class Process {
 public:
  Process() = default;
  /// Runs argv[0] (a path) with argv. started() is false when it could not be spawned.
  explicit Process(const std::vector<std::string>& argv, SpawnOptions o = {}) {
    start(argv, std::move(o));
  }
  /// The IPC tests' short form.
  Process(const std::vector<std::string>& argv, bool capture_stdout, bool pipe_stdin = false) {
    SpawnOptions o;
    o.capture_stdout = capture_stdout;
    o.pipe_stdin = pipe_stdin;
    start(argv, std::move(o));
  }
  Process(Process&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)),
        in_(std::exchange(o.in_, -1)),
        out_(std::exchange(o.out_, -1)),
        err_(std::exchange(o.err_, -1)),
        files_(std::exchange(o.files_, {})) {}
  Process& operator=(Process&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(in_, o.in_);
    std::swap(out_, o.out_);
    std::swap(err_, o.err_);
    std::swap(files_, o.files_);
    return *this;
  }
  ~Process() {
    if (pid_ > 0) kill9();
    for (int fd : {in_, out_, err_})
      if (fd >= 0) ::close(fd);
    if (!files_.empty()) {
      ::unlink((files_ + ".out").c_str());
      ::unlink((files_ + ".err").c_str());
    }
  }

  [[nodiscard]] bool started() const { return pid_ > 0; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int stdout_fd() const { return out_; }
  [[nodiscard]] int stderr_fd() const { return err_; }

  /// Writes one line to the child's stdin (pipe_stdin).
  void write_line(const std::string& s) {
    const std::string l = s + "\n";
    (void)!::write(in_, l.data(), l.size());  // a child that died shows in its exit status
  }
  /// Closes the child's stdin (pipe_stdin): it reads end of file.
  void close_stdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  /// Reads one line from the child's stdout (capture_stdout; blocks; empty at end of file).
  std::string read_line() {
    std::string s;
    char c;
    while (::read(out_, &c, 1) == 1 && c != '\n')
      s += c;
    return s;
  }
  /// Everything up to the end of the child's stdout / stderr (blocks until it closes them).
  std::string read_all_stdout() { return read_all(out_); }
  std::string read_all_stderr() { return read_all(err_); }
  /// The output files' contents so far (output_files).
  [[nodiscard]] std::string out() const { return slurp(files_ + ".out"); }
  [[nodiscard]] std::string err() const { return slurp(files_ + ".err"); }

  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  /// The exit code; 128 + the signal when a signal ended it; -1 when it had not exited within
  /// `timeout` (it is then killed) or was never started.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0) return -1;
    const auto until = std::chrono::steady_clock::now() + timeout;
    int st = 0;
    while (::waitpid(pid_, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= until) {
        kill9();
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  /// SIGKILL and reap.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  void start(const std::vector<std::string>& args, SpawnOptions o) {
    // Everything is prepared before the spawn: the child only runs the file actions.
    std::vector<char*> argv;
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    std::vector<int> temps;
    bool ok = true;
    if (o.pipe_stdin) ok = ok && ::pipe2(in, O_CLOEXEC) == 0;
    if (o.capture_stdout) ok = ok && ::pipe2(out, O_CLOEXEC) == 0;
    if (o.capture_stderr) ok = ok && ::pipe2(err, O_CLOEXEC) == 0;
    if (ok) {
      // dup2 onto the child's number clears close-on-exec on the copy only.
      if (in[0] >= 0) posix_spawn_file_actions_adddup2(&fa, in[0], 0);
      if (out[1] >= 0) posix_spawn_file_actions_adddup2(&fa, out[1], 1);
      if (err[1] >= 0) posix_spawn_file_actions_adddup2(&fa, err[1], 2);
      if (!o.output_files.empty()) {
        files_ = o.output_files;
        posix_spawn_file_actions_addopen(&fa, 1, (files_ + ".out").c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_addopen(&fa, 2, (files_ + ".err").c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
      }
      for (const auto& [ours, theirs] : o.fds) {
        // Through a close-on-exec copy: dup2 of an fd onto itself would keep its flags.
        const int tmp = ::fcntl(ours, F_DUPFD_CLOEXEC, 64);
        if (tmp < 0) {
          ok = false;
          break;
        }
        temps.push_back(tmp);
        posix_spawn_file_actions_adddup2(&fa, tmp, theirs);
      }
    }
    if (ok && ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    for (int t : temps)
      ::close(t);
    for (int fd : {in[0], out[1], err[1]})
      if (fd >= 0) ::close(fd);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
  }
  static std::string read_all(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
      s.append(buf, static_cast<std::size_t>(n));
    return s;
  }
  static std::string slurp(const std::string& f) {
    std::ifstream in(f, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  pid_t pid_{-1};
  int in_{-1};
  int out_{-1};
  int err_{-1};
  std::string files_;
};

/// This executable's path (to re-execute it as a peer).
inline std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

/// The benchmarks' subscriber process: the benchmark itself re-executed as `self sub PATH MODE`
/// with its stdout on a pipe; finish() collects what it printed once it exits.
using Child = Process;

inline Process spawn_sub(const char* self, const std::string& path, const char* mode) {
  Process p({self, "sub", path, mode}, /*capture_stdout=*/true);
  if (!p.started()) std::abort();
  return p;
}

/// Everything the child printed, after it exited.
inline std::string finish(Process& c) {
  std::string out = c.read_all_stdout();
  c.wait(std::chrono::hours(1));  // the output is the result; a crash shows as none
  return out;
}

}  // namespace parallax::test
