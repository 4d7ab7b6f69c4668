// SPDX-License-Identifier: MIT OR Apache-2.0
// The original README's multi-process example in C++: a publisher process and a subscriber
// process sharing one memfd segment, buffers crossing as descriptors (no payload copy).
//   multi_process                    run both (the publisher re-executes this binary as subscriber)
//   multi_process publish PATH       only the publisher
//   multi_process subscribe PATH     only the subscriber
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "parallax/ipc.h"
#include "parallax/pool.h"
#include "parallax/segment.h"

using namespace parallax;
using namespace std::chrono_literals;

static int publish(const std::string& path, int subscribers) {
  // Process A: a 1 MiB memfd segment carved into 4 KiB slots, offered on a Unix socket.
  auto segment = memory::SharedMemorySegment::create("my-pipeline", 1024 * 1024);
  if (!segment) return std::fprintf(stderr, "%s\n", segment.error().to_string().c_str()), 1;
  auto pool = memory::MemoryPool::create(std::move(*segment), 4096);
  if (!pool) return std::fprintf(stderr, "%s\n", pool.error().to_string().c_str()), 1;
  link::PublisherOptions options;
  options.pool = *pool;
  auto publisher = link::IpcPublisher::bind(path, options);
  if (!publisher) return std::fprintf(stderr, "%s\n", publisher.error().to_string().c_str()), 1;
  if (!publisher->wait_for_subscribers(subscribers, 10s)) return 1;
  (void)publisher->set_format("text/x-greeting");
  for (int i = 0; i < 5; ++i) {
    auto loan = publisher->loan();  // a slot of the shared segment: write in place
    if (!loan) return 1;
    const std::string text =
        "hello #" + std::to_string(i) + " from pid " + std::to_string(::getpid());
    (void)loan->set_size(text.size());
    std::memcpy(loan->data().data(), text.data(), text.size());
    loan->metadata().sequence = i;
    if (auto r = publisher->send(std::move(*loan)); !r)
      return std::fprintf(stderr, "%s\n", r.error().to_string().c_str()), 1;
  }
  (void)publisher->send_eos();
  auto st = publisher->stats();
  std::printf("publisher: sent %llu buffers, %llu copied\n",
              static_cast<unsigned long long>(st.buffers_sent),
              static_cast<unsigned long long>(st.copies));
  return 0;
}

static int subscribe(const std::string& path) {
  // Process B: zero-copy, read-only access to the publisher's slots.
  link::SubscriberOptions options;
  options.connect_timeout = 5s;
  auto subscriber = link::IpcSubscriber::connect(path, options);
  if (!subscriber) return std::fprintf(stderr, "%s\n", subscriber.error().to_string().c_str()), 1;
  for (;;) {
    auto buffer = subscriber->recv();
    if (!buffer) return std::fprintf(stderr, "%s\n", buffer.error().to_string().c_str()), 1;
    if (!*buffer) break;  // end of stream
    const auto bytes = (*buffer)->data();
    std::printf("subscriber pid %d got [%s] (%.*s)\n", static_cast<int>(::getpid()),
                subscriber->format().value_or("?").c_str(), static_cast<int>(bytes.size()),
                reinterpret_cast<const char*>(bytes.data()));
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "publish") == 0) return publish(argv[2], 1);
  if (argc == 3 && std::strcmp(argv[1], "subscribe") == 0) return subscribe(argv[2]);
  if (argc != 1) {
    std::fprintf(stderr, "usage: %s [publish PATH | subscribe PATH]\n", argv[0]);
    return 64;
  }
  const std::string path = "/tmp/parallax-example-" + std::to_string(::getpid()) + ".sock";
  pid_t child = ::fork();
  if (child == 0) {
    ::execl("/proc/self/exe", argv[0], "subscribe", path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int rc = publish(path, 1);
  int st = 0;
  ::waitpid(child, &st, 0);
  return rc != 0 ? rc : (WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}
