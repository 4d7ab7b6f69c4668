// SPDX-License-Identifier: MIT OR Apache-2.0
// stats-interval on parallaxsink / parallaxsrc (docs/observability.md): element messages read
// from the bus of an in-process pipeline whose peer is a real gst-launch-1.0 process, and the
// elements' debug-category lines about that peer (connects, disconnects with its pid).
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;

namespace {

struct TmpDir {
  std::string path;
  TmpDir() {
    char t[] = "/tmp/plx-gststats-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TmpDir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
};

// gst-launch-1.0 with `args` as its pipeline; killed (SIGKILL) by kill() or the destructor.
struct GstLaunch {
  pid_t pid{-1};
  explicit GstLaunch(const std::vector<std::string>& args) {
    std::vector<std::string> all{"gst-launch-1.0", "-q"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid, "gst-launch-1.0", nullptr, nullptr, argv.data(), environ) != 0) pid = -1;
  }
  void kill() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
    pid = -1;
  }
  ~GstLaunch() { kill(); }
};

// The element messages named `name` posted on `pipeline`'s bus within `d` (the pipeline runs).
std::vector<GstStructure*> collect(GstElement* pipeline, const char* name,
                                   std::chrono::milliseconds d) {
  std::vector<GstStructure*> out;
  GstBus* bus = gst_element_get_bus(pipeline);
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 20 * GST_MSECOND,
        static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR));
    if (m == nullptr) continue;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* e = nullptr;
      gst_message_parse_error(m, &e, nullptr);
      ADD_FAILURE() << "pipeline error: " << (e ? e->message : "?");
      if (e) g_error_free(e);
      gst_message_unref(m);
      break;
    }
    const GstStructure* s = gst_message_get_structure(m);
    if (s != nullptr && gst_structure_has_name(s, name)) out.push_back(gst_structure_copy(s));
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  return out;
}

guint64 u64(const GstStructure* s, const char* field) {
  guint64 v = 0;
  EXPECT_TRUE(gst_structure_get_uint64(s, field, &v)) << field;
  return v;
}

// Lines logged in one debug category (with their level), captured by a log function.
struct LogCapture {
  std::mutex mu;
  std::vector<std::string> lines;
  std::string category;
  static void fn(GstDebugCategory* cat, GstDebugLevel level, const gchar*, const gchar*, gint,
                 GObject*, GstDebugMessage* msg, gpointer user) {
    auto* self = static_cast<LogCapture*>(user);
    if (self->category != gst_debug_category_get_name(cat)) return;
    std::lock_guard l(self->mu);
    self->lines.push_back(std::string(gst_debug_level_get_name(level)) + " " +
                          gst_debug_message_get(msg));
  }
  bool has(const std::string& level, const std::string& text) {
    std::lock_guard l(mu);
    for (const auto& s : lines)
      if (s.rfind(level + " ", 0) == 0 && s.find(text) != std::string::npos) return true;
    return false;
  }
};

TEST(ParallaxStatsInterval, SinkPostsItsStatsAndLogsItsSubscriberByPid) {
  TmpDir dir;
  const std::string sock = dir.path + "/s.sock";
  LogCapture log;
  log.category = "parallaxsink";
  gst_debug_add_log_function(&LogCapture::fn, &log, nullptr);
  gst_debug_set_threshold_for_name("parallaxsink", GST_LEVEL_DEBUG);
  GstElement* p = gst_parse_launch(
      ("videotestsrc is-live=true ! video/x-raw,format=GRAY8,width=64,height=48,framerate=100/1 "
       "! parallaxsink name=sink stats-interval=100000000 socket-path=" +
       sock)
          .c_str(),
      nullptr);
  ASSERT_NE(p, nullptr);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_NE(gst_element_set_state(p, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstLaunch consumer({"parallaxsrc", "socket-path=" + sock, "!", "fakesink", "sync=false"});
  ASSERT_GT(consumer.pid, 0);
  auto msgs = collect(p, "parallaxsink-stats", 1500ms);
  // Every 100 ms for 1.5 s: about 15 (a loaded machine may delay some). The messages queue on
  // the bus from PLAYING on, so the upper bound counts from there (spawning the consumer can
  // take a while under load): never more than one per 100 ms of that time, plus the first.
  const auto posted_for = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  EXPECT_GE(msgs.size(), 8u);
  EXPECT_LE(msgs.size(), static_cast<std::size_t>(posted_for.count() / 100 + 1))
      << "in " << posted_for.count() << " ms";
  ASSERT_FALSE(msgs.empty());
  guint64 prev = 0;
  for (auto* s : msgs) {
    const guint64 b = u64(s, "buffers");
    EXPECT_GE(b, prev);
    prev = b;
  }
  EXPECT_GT(prev, 0u);
  guint subs = 0;
  EXPECT_TRUE(gst_structure_get_uint(msgs.back(), "subscribers", &subs));
  EXPECT_EQ(subs, 1u);
  const std::string pid = std::to_string(consumer.pid);
  EXPECT_TRUE(log.has("INFO", "connected: pid " + pid)) << "no connect line for pid " << pid;
  consumer.kill();
  for (auto* s : collect(p, "parallaxsink-stats", 600ms))
    gst_structure_free(s);
  EXPECT_TRUE(log.has("INFO", "(pid " + pid + ") disconnected"));
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  gst_debug_remove_log_function_by_data(&log);
  gst_debug_set_threshold_for_name("parallaxsink", GST_LEVEL_NONE);
  for (auto* s : msgs)
    gst_structure_free(s);
}

TEST(ParallaxStatsInterval, SrcPostsLatencyAndThePublisherPid) {
  TmpDir dir;
  const std::string sock = dir.path + "/s.sock";
  GstLaunch producer({"videotestsrc", "is-live=true", "!",
                      "video/x-raw,format=GRAY8,width=64,height=48,framerate=100/1", "!",
                      "parallaxsink", "socket-path=" + sock});
  ASSERT_GT(producer.pid, 0);
  GstElement* p = gst_parse_launch(
      ("parallaxsrc timeout=5000000000 stats-interval=100000000 socket-path=" + sock +
       " ! fakesink sync=false")
          .c_str(),
      nullptr);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(gst_element_set_state(p, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto msgs = collect(p, "parallaxsrc-stats", 1500ms);
  ASSERT_GE(msgs.size(), 5u);
  const GstStructure* last = msgs.back();
  gint pub_pid = 0;
  EXPECT_TRUE(gst_structure_get_int(last, "publisher-pid", &pub_pid));
  EXPECT_EQ(pub_pid, producer.pid);
  EXPECT_GT(u64(last, "buffers"), 0u);
  EXPECT_GT(u64(last, "latency-count"), 0u);
  EXPECT_GT(u64(last, "latency-p50"), 0u);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  for (auto* s : msgs)
    gst_structure_free(s);
}

TEST(ParallaxStatsInterval, ZeroIsOffAndTheDefault) {
  TmpDir dir;
  GstElement* p = gst_parse_launch(
      ("videotestsrc is-live=true ! video/x-raw,format=GRAY8,width=64,height=48 ! parallaxsink "
       "name=sink wait-for-connection=false socket-path=" +
       dir.path + "/z.sock")
          .c_str(),
      nullptr);
  ASSERT_NE(p, nullptr);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(p), "sink");
  guint64 iv = 1;
  g_object_get(sink, "stats-interval", &iv, nullptr);
  EXPECT_EQ(iv, 0u);
  gst_object_unref(sink);
  ASSERT_NE(gst_element_set_state(p, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(collect(p, "parallaxsink-stats", 500ms).empty());
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
