// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target for the metadata entries a peer sends that become GstMetas
// (parallax::gst::metadata_to_gst, bridge/convert.cpp): "gst.video-meta" (its planes must fit
// the payload) and "gst.reference-timestamps". Input: u32 payload size (mod 16 KiB + 1), u16
// length of the video-meta entry, that entry, the rest = the reference-timestamps entry.
// The payload is an exact-size heap block (ASan sees every byte past it). When a video meta is
// accepted, every line of the frame is read the way videoconvert reads it (the format's unpack
// function over the frame mapped through the meta): a plane outside the payload is a crash.
#include <gst/gst.h>
#include <gst/video/video.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_gst.h"
#include "parallax-gst/convert.h"

namespace {

constexpr std::size_t kMaxPayload = 16 * 1024;

void read_every_line(GstBuffer* buf, const GstVideoMeta* vm) {
  GstVideoInfo info;
  if (!gst_video_info_set_format(&info, vm->format, vm->width, vm->height)) std::abort();
  GstVideoFrame frame;
  // With a video meta on the buffer, the frame's planes are the meta's offsets and strides.
  if (!gst_video_frame_map(&frame, &info, buf, GST_MAP_READ)) std::abort();
  const GstVideoFormatInfo* fi = info.finfo;
  if (fi->unpack_func != nullptr) {
    // Unpacked pixels are at most 4 components of 16 bits.
    std::vector<std::uint8_t> line(static_cast<std::size_t>(vm->width) * 8 + 64);
    for (guint y = 0; y < vm->height; ++y)
      fi->unpack_func(fi, GST_VIDEO_PACK_FLAG_NONE, line.data(), frame.data, frame.info.stride, 0,
                      static_cast<gint>(y), static_cast<gint>(vm->width));
  }
  gst_video_frame_unmap(&frame);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 6) return 0;
  std::uint32_t payload_size = 0;
  std::uint16_t vm_len = 0;
  std::memcpy(&payload_size, data, 4);
  std::memcpy(&vm_len, data + 4, 2);
  payload_size %= kMaxPayload + 1;
  data += 6;
  size -= 6;
  const std::size_t n_vm = vm_len < size ? vm_len : size;

  parallax::Metadata meta;
  meta.entries.push_back({std::string(parallax::gst::kVideoMetaKey),
                          std::vector<std::byte>(reinterpret_cast<const std::byte*>(data),
                                                 reinterpret_cast<const std::byte*>(data + n_vm))});
  if (size > n_vm)
    meta.entries.push_back(
        {std::string(parallax::gst::kReferenceTimestampsKey),
         std::vector<std::byte>(reinterpret_cast<const std::byte*>(data + n_vm),
                                reinterpret_cast<const std::byte*>(data + size))});

  // g_malloc is malloc: the block ends exactly at payload_size for ASan.
  void* payload = g_malloc(payload_size == 0 ? 1 : payload_size);
  std::memset(payload, 0x5a, payload_size);
  GstBuffer* buf = gst_buffer_new_wrapped(payload, payload_size);
  parallax::gst::metadata_to_gst(meta, buf, payload_size);
  if (const GstVideoMeta* vm = gst_buffer_get_video_meta(buf)) read_every_line(buf, vm);
  gst_buffer_unref(buf);
  return 0;
}
