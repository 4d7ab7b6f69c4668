// SPDX-License-Identifier: MIT OR Apache-2.0
// Test helper: `parallaxsrc copy-threshold=0 socket-path=PATH ! queue ! fakesink` in its own
// process, checking every buffer that reaches fakesink as a downstream element sees it: one memory,
// fd memory (gst_is_fd_memory), its fd read-only (O_RDONLY, a writable shared mmap refused), and
// the fd's bytes at the memory's offset equal to the mapped buffer. Prints "where INODE OFFSET" per
// buffer (the memfd and the offset in it) and a summary line; exit 0 when every buffer passed
// and the stream ended with EOS.
//   plx_fd_probe PATH
#include <fcntl.h>
#include <gst/allocators/gstfdmemory.h>
#include <gst/gst.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {
struct Counts {
  guint64 buffers{0}, fd_memory{0}, identical{0}, read_only_fd{0};
};

GstPadProbeReturn check_buffer(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* c = static_cast<Counts*>(data);
  GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
  ++c->buffers;
  if (gst_buffer_n_memory(buf) != 1) return GST_PAD_PROBE_OK;
  GstMemory* mem = gst_buffer_peek_memory(buf, 0);
  if (!gst_is_fd_memory(mem)) return GST_PAD_PROBE_OK;
  const int fd = gst_fd_memory_get_fd(mem);
  struct stat sb {};
  if (fd < 0 || ::fstat(fd, &sb) != 0) return GST_PAD_PROBE_OK;
  ++c->fd_memory;
  std::printf("where %lu %zu\n", static_cast<unsigned long>(sb.st_ino), mem->offset);
  const int fl = ::fcntl(fd, F_GETFL);
  void* w = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && w == MAP_FAILED) ++c->read_only_fd;
  if (w != MAP_FAILED) ::munmap(w, 4096);
  GstMapInfo m;
  if (!gst_memory_map(mem, &m, GST_MAP_READ)) return GST_PAD_PROBE_OK;
  std::vector<guint8> bytes(m.size);
  const ssize_t n = ::pread(fd, bytes.data(), m.size, static_cast<off_t>(mem->offset));
  if (n == static_cast<ssize_t>(m.size) && std::memcmp(bytes.data(), m.data, m.size) == 0)
    ++c->identical;
  gst_memory_unmap(mem, &m);
  return GST_PAD_PROBE_OK;
}
}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: plx_fd_probe SOCKET_PATH\n");
    return 2;
  }
  // copy-threshold=0: never copy. By default parallaxsrc copies a payload while the queue
  // holds half its quota (a copy is plain memory, not fd memory: tested in-process by
  // SrcFixture.HoldingMoreThanTheCopyThreshold...); here every buffer must be the slot itself.
  const std::string desc =
      std::string("parallaxsrc timeout=20000000000 copy-threshold=0 socket-path=") + argv[1] +
      " ! queue ! fakesink name=f";
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(desc.c_str(), &error);
  if (pipeline == nullptr) {
    std::fprintf(stderr, "parse: %s\n", error ? error->message : "?");
    return 2;
  }
  Counts counts;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "f");
  GstPad* pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, check_buffer, &counts, nullptr);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg = gst_bus_timed_pop_filtered(
      bus, 60 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const bool eos = msg != nullptr && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS;
  if (msg != nullptr) gst_message_unref(msg);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  std::printf("buffers %" G_GUINT64_FORMAT " fd-memory %" G_GUINT64_FORMAT
              " identical %" G_GUINT64_FORMAT " read-only-fd %" G_GUINT64_FORMAT " eos %d\n",
              counts.buffers, counts.fd_memory, counts.identical, counts.read_only_fd, eos);
  gst_object_unref(pad);
  gst_object_unref(sink);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  const bool all = counts.buffers > 0 && counts.fd_memory == counts.buffers &&
                   counts.identical == counts.buffers && counts.read_only_fd == counts.buffers;
  return eos && all ? 0 : 1;
}
