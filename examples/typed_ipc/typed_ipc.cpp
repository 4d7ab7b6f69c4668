// SPDX-License-Identifier: MIT OR Apache-2.0
// Typed IPC in two processes: the publisher serializes a small struct straight into shared
// memory slots; the subscriber validates each archive once and reads it in place.
//   typed_ipc                    run both (the publisher re-executes this binary as subscriber)
//   typed_ipc publish PATH       only the publisher
//   typed_ipc subscribe PATH     only the subscriber
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "parallax/typed_ipc.h"

using namespace parallax;
using namespace std::chrono_literals;

struct Telemetry {
  std::uint32_t frame{0};
  std::string camera;
  std::vector<float> temperatures;
  std::optional<std::string> alert;
};
PLX_ARCHIVE(Telemetry, frame, camera, temperatures, alert);

static int publish(const std::string& path) {
  link::PublisherOptions options;
  options.slot_size = 4096;  // each archive is written into one 4 KiB slot of a memfd pool
  options.slot_count = 16;
  auto publisher = link::TypedPublisher<Telemetry>::bind(path, options);
  if (!publisher) return std::fprintf(stderr, "%s\n", publisher.error().to_string().c_str()), 1;
  if (auto r = publisher->wait_for_subscribers(1, 10s); !r)
    return std::fprintf(stderr, "%s\n", r.error().to_string().c_str()), 1;
  for (std::uint32_t i = 0; i < 5; ++i) {
    Telemetry t{i, "cam-" + std::to_string(i % 2), {20.5f + i, 21.0f, 19.75f}, std::nullopt};
    if (i == 3) t.alert = "fan speed low";
    if (auto r = publisher->send(t); !r)  // serialized in place: no copy after this
      return std::fprintf(stderr, "%s\n", r.error().to_string().c_str()), 1;
  }
  (void)publisher->send_eos();
  std::printf("publisher pid %d: sent 5 x Telemetry as '%s'\n", static_cast<int>(::getpid()),
              link::archive_format<Telemetry>().c_str());
  // Wait for the subscriber to finish reading before going away.
  for (int i = 0; i < 500 && publisher->subscriber_count() > 0; ++i)
    ::usleep(10000);
  return 0;
}

static int subscribe(const std::string& path) {
  link::TypedSubscriberOptions options;
  options.ipc.connect_timeout = 5s;
  auto subscriber = link::TypedSubscriber<Telemetry>::connect(path, options);
  if (!subscriber) return std::fprintf(stderr, "%s\n", subscriber.error().to_string().c_str()), 1;
  for (;;) {
    auto next = subscriber->recv();  // validated once; a malformed archive is data_loss
    if (!next) return std::fprintf(stderr, "%s\n", next.error().to_string().c_str()), 1;
    if (!*next) break;                         // end of stream
    const link::Typed<Telemetry>& t = **next;  // reads the publisher's read-only slot in place
    std::printf("subscriber pid %d: frame %u from %.*s, %zu temperatures (first %.2f)%s%.*s\n",
                static_cast<int>(::getpid()), t->frame, static_cast<int>(t->camera.size()),
                t->camera.data(), t->temperatures.size(), t->temperatures[0],
                t->alert.has_value() ? ", alert: " : "",
                t->alert.has_value() ? static_cast<int>(t->alert.get()->size()) : 0,
                t->alert.has_value() ? t->alert.get()->data() : "");
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "publish") == 0) return publish(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "subscribe") == 0) return subscribe(argv[2]);
  if (argc != 1) {
    std::fprintf(stderr, "usage: %s [publish PATH | subscribe PATH]\n", argv[0]);
    return 64;
  }
  const std::string path = "/tmp/parallax-typed-ipc-" + std::to_string(::getpid()) + ".sock";
  const pid_t child = ::fork();
  if (child < 0) return std::perror("fork"), 1;
  if (child == 0) {
    ::execl("/proc/self/exe", argv[0], "subscribe", path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const int rc = publish(path);
  int st = 0;
  ::waitpid(child, &st, 0);
  return rc != 0 ? rc : (WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}
