// SPDX-License-Identifier: MIT OR Apache-2.0
// Helper process for the observability tests (test_stats.cpp): subscribers that behave in a
// known way (stalled, holding some buffers, busy-polling) and a stats client under another uid.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "parallax/ipc.h"

using namespace parallax;
using namespace parallax::link;
using namespace std::chrono_literals;

namespace {

int usage() {
  std::fprintf(stderr,
               "stats_peer sub PATH POLICY busy|sleep|slowUSEC HOLD STOP_AFTER\n"
               "stats_peer query-as PATH UID\n"
               "stats_peer metrics-pub PATH N | metrics-sub PATH N   (both until stdin closes)\n");
  return 64;
}

// Receives STOP_AFTER buffers keeping the first HOLD of them, says "got N", then stops
// reading (and keeps what it holds) until killed. STOP_AFTER 0: never reads. `slow_us`: sleeps
// that long after each buffer (a slow consumer).
int sub(const std::string& path, const std::string& policy, bool busy, long slow_us, long hold,
        long stop) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  so.policy = policy_from_string(policy).value();
  so.busy_poll = busy;
  auto s = IpcSubscriber::connect(path, so);
  if (!s) {
    std::fprintf(stderr, "connect: %s\n", s.error().to_string().c_str());
    return 2;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<memory::Buffer> held;
  long got = 0;
  while (got < stop) {
    auto r = s->recv_for(30s);
    if (!r || !*r) {
      std::fprintf(stderr, "recv: %s\n", r ? "end of stream" : r.error().to_string().c_str());
      return 3;
    }
    ++got;
    if (static_cast<long>(held.size()) < hold) held.push_back(std::move(**r));
    if (slow_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
  }
  std::printf("got %ld\n", got);
  std::fflush(stdout);
  for (;;)
    ::pause();
}

// 0 when the publisher refuses our credentials, 1 when it answers, 2 otherwise.
int query_as(const std::string& path, uid_t uid) {
  if (::setgid(uid) != 0 || ::setuid(uid) != 0) {
    std::perror("setuid");
    return 2;
  }
  auto st = query_stats(path, 2s);
  if (st) return 1;
  std::fprintf(stderr, "refused as expected: %s\n", st.error().to_string().c_str());
  return st.error().code == Errc::permission_denied ? 0 : 2;
}

bool stdin_open() {
  pollfd p{0, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return true;
  char c;
  return ::read(0, &c, 1) > 0;
}

// For the metrics file test (PARALLAX_METRICS_FILE in the environment): a publisher that sends
// N buffers to its first subscriber, and a subscriber that receives N, both staying (the
// subscriber waiting in recv like a live consumer) until stdin closes, then exiting normally.
int metrics_pub(const std::string& path, long n) {
  PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = 32;
  auto pub = IpcPublisher::bind(path, po);
  if (!pub) return 2;
  std::printf("bound\n");
  std::fflush(stdout);
  if (!pub->wait_for_subscribers(1, 10s)) return 3;
  for (long i = 0; i < n; ++i) {
    auto l = pub->loan();
    if (!l) return 4;
    if (!l->set_size(1000)) return 4;
    std::memset(l->data().data(), static_cast<int>(i), 1000);
    if (!pub->send(std::move(*l))) return 5;
  }
  std::printf("sent %ld\n", n);
  std::fflush(stdout);
  while (stdin_open())
    std::this_thread::sleep_for(10ms);
  return 0;
}

int metrics_sub(const std::string& path, long n) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  auto s = IpcSubscriber::connect(path, so);
  if (!s) return 2;
  long got = 0;
  while (got < n) {
    auto r = s->recv_for(10s);
    if (!r || !*r) return 3;
    ++got;
  }
  std::printf("got %ld\n", got);
  std::fflush(stdout);
  while (stdin_open()) {
    auto r = s->recv_for(20ms);
    if (r && !*r) break;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string mode = argv[1];
  if (mode == "sub" && argc == 7) {
    const std::string how = argv[4];
    const long slow = how.rfind("slow", 0) == 0 ? std::atol(how.c_str() + 4) : 0;
    return sub(argv[2], argv[3], how == "busy", slow, std::atol(argv[5]), std::atol(argv[6]));
  }
  if (mode == "metrics-pub" && argc == 4) return metrics_pub(argv[2], std::atol(argv[3]));
  if (mode == "metrics-sub" && argc == 4) return metrics_sub(argv[2], std::atol(argv[3]));
  if (mode == "query-as" && argc == 4)
    return query_as(argv[2], static_cast<uid_t>(std::atol(argv[3])));
  return usage();
}
