// SPDX-License-Identifier: MIT OR Apache-2.0
// Tracing across two real processes: this binary re-executes itself as a typed publisher and a
// typed subscriber, both with PARALLAX_TRACE set (nothing else turns tracing on), and the test
// loads the two files they write at exit with nlohmann_json: the Chrome trace event structure,
// one file and one pid per process, the hot-path span names, their nesting, per-thread order
// and the shared clock.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "parallax/typed_ipc.h"
#include "trace_check.h"

using namespace parallax;
using namespace std::chrono_literals;
using nlohmann::json;

namespace plxtest {

struct Sample {
  std::uint64_t seq{0};
  std::string text;
};
PLX_ARCHIVE(Sample, seq, text);

constexpr int kMessages = 40;

int run_publisher(const std::string& sock) {
  link::PublisherOptions o;
  o.slot_size = 4096;
  o.slot_count = 16;
  auto pub = link::TypedPublisher<Sample>::bind(sock, o);
  if (!pub) return std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str()), 2;
  if (!pub->wait_for_subscribers(1, 10s)) return 2;
  for (int i = 0; i < kMessages; ++i) {
    if (!pub->send(Sample{static_cast<std::uint64_t>(i), "sample " + std::to_string(i)})) return 3;
    std::this_thread::sleep_for(2ms);  // the subscriber goes to sleep: wake-ups are traced
  }
  if (!pub->send_eos()) return 3;
  for (int i = 0; i < 1000 && pub->subscriber_count() > 0; ++i)
    std::this_thread::sleep_for(10ms);
  pub->close();
  return 0;  // the trace is written at exit
}

int run_subscriber(const std::string& sock) {
  std::optional<link::TypedSubscriber<Sample>> sub;
  for (int i = 0; i < 1000 && !sub; ++i) {
    if (auto s = link::TypedSubscriber<Sample>::connect(sock); s)
      sub.emplace(std::move(*s));
    else
      std::this_thread::sleep_for(10ms);
  }
  if (!sub) return 2;
  int n = 0;
  for (;;) {
    auto r = sub->recv();
    if (!r) return std::fprintf(stderr, "recv: %s\n", r.error().to_string().c_str()), 3;
    if (!r->has_value()) break;
    if ((**r)->seq != static_cast<std::uint64_t>(n)) return 4;
    ++n;
  }
  return n == kMessages ? 0 : 5;
}

pid_t spawn(const char* self, const char* role, const std::string& sock, const std::string& trace) {
  // The environment is built before fork(): the child only calls execve.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "PARALLAX_TRACE", 14) != 0) env_strings.emplace_back(*e);
  env_strings.push_back("PARALLAX_TRACE=" + trace);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string role_s = role, sock_s = sock;
  char* argv[] = {const_cast<char*>(self), const_cast<char*>("--trace-peer"), role_s.data(),
                  sock_s.data(), nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execve(self, argv, envp.data());
    ::_exit(127);
  }
  return pid;
}

// Exit status of pid, killing it after `limit`.
int reap(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int st = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1;
    }
    std::this_thread::sleep_for(10ms);
  }
}

std::string self_path;

std::multiset<std::string> names_of(const std::vector<json>& spans) {
  std::multiset<std::string> out;
  for (const auto& e : spans)
    out.insert(e["name"].get<std::string>());
  return out;
}

double begin_of(const json& e) {
  return e["ts"].get<double>();
}
double end_of(const json& e) {
  return e["ts"].get<double>() + e["dur"].get<double>();
}

// Every span named `inner` lies within a span named `outer` of the same thread.
void expect_nested(const std::vector<json>& spans, const std::string& inner,
                   const std::string& outer) {
  for (const auto& i : spans) {
    if (i["name"] != inner) continue;
    bool inside = false;
    for (const auto& o : spans)
      if (o["name"] == outer && o["tid"] == i["tid"] && begin_of(o) <= begin_of(i) &&
          end_of(i) <= end_of(o) + 0.001)
        inside = true;
    EXPECT_TRUE(inside) << inner << " outside any " << outer << ": " << i;
  }
}

TEST(TracingAcrossProcesses, PublisherAndSubscriberEachWriteAChromeTraceOfTheirOwn) {
  char tmpl[] = "/tmp/plx-trace-ipc-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string sock = dir + "/s.sock";
  const std::string trace = dir + "/trace.json";

  const pid_t pub = spawn(self_path.c_str(), "pub", sock, trace);
  const pid_t sub = spawn(self_path.c_str(), "sub", sock, trace);
  ASSERT_GT(pub, 0);
  ASSERT_GT(sub, 0);
  EXPECT_EQ(reap(sub, 30s), 0);
  EXPECT_EQ(reap(pub, 30s), 0);

  // out.json -> out.<pid>.json, one per process; nothing else in the directory.
  const std::string pub_file = dir + "/trace." + std::to_string(pub) + ".json";
  const std::string sub_file = dir + "/trace." + std::to_string(sub) + ".json";
  std::set<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().extension() == ".json") files.insert(f.path().string());
  EXPECT_EQ(files, (std::set<std::string>{pub_file, sub_file}));

  const json pdoc = load_trace(pub_file);
  const json sdoc = load_trace(sub_file);
  const auto pspans = check_trace(pdoc);
  const auto sspans = check_trace(sdoc);
  EXPECT_EQ(pdoc["otherData"]["dropped_events"], 0);
  EXPECT_EQ(sdoc["otherData"]["dropped_events"], 0);

  // One pid per file, the process's own, and a name for it and for every tracing thread.
  for (const auto& [doc, pid] : {std::pair<const json&, pid_t>{pdoc, pub}, {sdoc, sub}}) {
    std::set<std::int64_t> pids, tids;
    int process_names = 0;
    for (const auto& e : doc["traceEvents"]) {
      pids.insert(e["pid"].get<std::int64_t>());
      if (e["ph"] == "X") tids.insert(e["tid"].get<std::int64_t>());
      if (e["name"] == "process_name") ++process_names;
    }
    EXPECT_EQ(pids, std::set<std::int64_t>{pid});
    EXPECT_EQ(process_names, 1);
    const auto names = trace_thread_names(doc);
    for (auto tid : tids)
      EXPECT_EQ(names.count(tid), 1u) << "no thread_name for tid " << tid;
  }

  // The hot paths of each side.
  const auto pn = names_of(pspans);
  const auto sn = names_of(sspans);
  for (const char* n : {"typed.send", "pool.loan", "ipc.send", "ipc.ring_write", "ipc.wake"})
    EXPECT_GE(pn.count(n), 1u) << "publisher has no " << n;
  for (const char* n : {"typed.receive", "ipc.receive", "archive.validate", "ipc.sleep"})
    EXPECT_GE(sn.count(n), 1u) << "subscriber has no " << n;
  EXPECT_EQ(pn.count("typed.send"), std::size_t{kMessages});
  EXPECT_EQ(pn.count("ipc.send"), std::size_t{kMessages});
  EXPECT_EQ(sn.count("archive.validate"), std::size_t{kMessages});
  // recv() of each message and of the end of stream.
  EXPECT_EQ(sn.count("typed.receive"), std::size_t{kMessages} + 1);
  for (const auto& e : pspans) {
    if (e["name"] == "ipc.send") {
      EXPECT_GT(e["args"]["bytes"].get<std::int64_t>(), 0) << e;
    }
  }

  // Nesting on the same thread: a send loans and writes the ring; a receive validates.
  expect_nested(pspans, "ipc.send", "typed.send");
  expect_nested(pspans, "pool.loan", "typed.send");
  expect_nested(sspans, "archive.validate", "typed.receive");
  plxtest::expect_monotonic_per_thread(pspans);
  plxtest::expect_monotonic_per_thread(sspans);

  // One clock for both processes: the subscriber reads the first record after the publisher
  // began writing it, and its last receive is not before the last send began.
  double first_write = 1e300, first_receive = 1e300, last_send = 0, last_receive = 0;
  for (const auto& e : pspans) {
    if (e["name"] == "ipc.ring_write") first_write = std::min(first_write, begin_of(e));
    if (e["name"] == "ipc.send") last_send = std::max(last_send, begin_of(e));
  }
  for (const auto& e : sspans) {
    if (e["name"] != "ipc.receive") continue;
    first_receive = std::min(first_receive, begin_of(e));
    last_receive = std::max(last_receive, end_of(e));
  }
  EXPECT_LE(first_write, first_receive);
  EXPECT_LE(last_send, last_receive);

  std::filesystem::remove_all(dir);
}

}  // namespace plxtest

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--trace-peer") == 0) {
    const std::string role = argv[2];
    if (role == "pub") return plxtest::run_publisher(argv[3]);
    if (role == "sub") return plxtest::run_subscriber(argv[3]);
    return 64;
  }
  plxtest::self_path = std::filesystem::read_symlink("/proc/self/exe").string();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
