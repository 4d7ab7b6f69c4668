// SPDX-License-Identifier: MIT OR Apache-2.0
// GstBuffer <-> parallax::Buffer conversions and the byte layouts of the GStreamer metas that
// travel as Metadata entries.
#include "parallax-gst/convert.h"

#include <gst/audio/audio.h>
#include <gst/video/video.h>

#include <cstring>
#include <string>
#include <vector>

#include "parallax-gst/allocator.h"

namespace parallax::gst {
namespace {

// Little-endian record writer/reader for the meta entries (x86 and arm64 are little-endian;
// the static_assert keeps it honest).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);

struct Writer {
  std::vector<std::byte> out;
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void put_bytes(std::string_view s) {
    put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  }
};

struct Reader {
  const std::vector<std::byte>& in;
  std::size_t pos{0};
  bool ok{true};
  template <typename T>
  T get() {
    T v{};
    if (!ok || in.size() - pos < sizeof(T)) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string get_string() {
    const auto n = get<std::uint32_t>();
    if (!ok || in.size() - pos < n) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(in.data() + pos), n);
    pos += n;
    return s;
  }
  [[nodiscard]] bool done() const { return ok && pos == in.size(); }
};

// gst.video-meta v1: u32 version, u32 format, u32 flags, u32 width, u32 height, u32 n_planes,
// u64 offset[4], i32 stride[4].
constexpr std::uint32_t kVideoMetaVersion = 1;
// gst.reference-timestamps v1: u32 version, u32 count, then count x {u64 timestamp,
// u64 duration, u32 len + caps string}.
constexpr std::uint32_t kRefTsVersion = 1;

std::optional<std::uint64_t> opt_time(GstClockTime t) {
  return GST_CLOCK_TIME_IS_VALID(t) ? std::optional<std::uint64_t>(t) : std::nullopt;
}
std::optional<std::uint64_t> opt_offset(guint64 o) {
  return o != GST_BUFFER_OFFSET_NONE ? std::optional<std::uint64_t>(o) : std::nullopt;
}

// Whether `format` is one of the raw video formats of the GStreamer we run with.
bool is_raw_video_format(std::uint32_t format) {
  static const std::vector<bool> known = [] {
    std::vector<bool> k;
    guint n = 0;
    const GstVideoFormat* all = gst_video_formats_raw(&n);
    for (guint i = 0; i < n; ++i) {
      const auto v = static_cast<std::size_t>(all[i]);
      if (v >= k.size()) k.resize(v + 1, false);
      k[v] = true;
    }
    return k;
  }();
  return format < known.size() && known[format];
}

// Whether a video meta announced by a peer describes planes that all lie inside `size` bytes:
// a known, non-tiled format, its number of planes, and for each plane a positive stride at
// least one row long with offset + stride x plane height <= size. Anything else is dropped
// (GStreamer elements read every plane the meta describes, e.g. videoconvert).
bool video_meta_fits(std::uint32_t format, std::uint32_t width, std::uint32_t height,
                     std::uint32_t n_planes, const gsize* offset, const gint* stride, gsize size,
                     std::string& why) {
  const auto f = static_cast<GstVideoFormat>(format);
  // gst_video_format_get_info() g_return_val_if_fail()s (a CRITICAL) on a number past its
  // table: only ask about formats this GStreamer lists as raw formats.
  const GstVideoFormatInfo* fi =
      is_raw_video_format(format) ? gst_video_format_get_info(f) : nullptr;
  if (fi == nullptr || GST_VIDEO_FORMAT_INFO_FORMAT(fi) == GST_VIDEO_FORMAT_UNKNOWN) {
    why = "unknown video format " + std::to_string(format);
    return false;
  }
  if (GST_VIDEO_FORMAT_INFO_IS_TILED(fi)) {
    why = "tiled formats are not carried";
    return false;
  }
  if (width == 0 || height == 0 || width > 65536 || height > 65536) {
    why = "frame size " + std::to_string(width) + "x" + std::to_string(height);
    return false;
  }
  if (n_planes != GST_VIDEO_FORMAT_INFO_N_PLANES(fi)) {
    why = std::to_string(n_planes) + " planes for a format of " +
          std::to_string(GST_VIDEO_FORMAT_INFO_N_PLANES(fi));
    return false;
  }
  GstVideoInfo def;
  if (!gst_video_info_set_format(&def, f, width, height)) {
    why = "format and size rejected by GStreamer";
    return false;
  }
  for (std::uint32_t p = 0; p < n_planes; ++p) {
    // The plane's height and minimum row length, from its first component.
    std::uint64_t rows = height, row_bytes = static_cast<std::uint64_t>(def.stride[p]);
    for (guint c = 0; c < GST_VIDEO_FORMAT_INFO_N_COMPONENTS(fi); ++c) {
      if (GST_VIDEO_FORMAT_INFO_PLANE(fi, c) != p) continue;
      rows = static_cast<std::uint64_t>(GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT(fi, c, height));
      const int ps = GST_VIDEO_FORMAT_INFO_PSTRIDE(fi, c);
      if (ps > 0)
        row_bytes = static_cast<std::uint64_t>(GST_VIDEO_FORMAT_INFO_SCALE_WIDTH(fi, c, width)) *
                    static_cast<std::uint64_t>(ps);
      break;
    }
    if (stride[p] <= 0 || static_cast<std::uint64_t>(stride[p]) < row_bytes) {
      why = "plane " + std::to_string(p) + " stride " + std::to_string(stride[p]) +
            " shorter than a row (" + std::to_string(row_bytes) + " bytes)";
      return false;
    }
    const std::uint64_t span = static_cast<std::uint64_t>(stride[p]) * rows;  // < 2^47
    if (offset[p] > size || span > size - offset[p]) {
      why = "plane " + std::to_string(p) + " [" + std::to_string(offset[p]) + ", +" +
            std::to_string(span) + ") outside the buffer of " + std::to_string(size) + " bytes";
      return false;
    }
  }
  return true;
}

constexpr std::uint32_t kMaxReferenceTimestamps = 64;

// GStreamer parses nested values (arrays <>, lists {}, ranges [], casts ()) recursively, one
// stack frame chain per level, with no depth limit: 30,000 '{' or '[' (60,000 '<'), well within
// a 64 KiB event record, overflow an 8 MiB stack and crash the process (seen with
// gst_caps_from_string on GStreamer 1.22). Caps, tags and custom-event structures never nest
// more than a few levels; a peer's text nested deeper than this is refused before GStreamer
// parses it. Counted conservatively: every opener, quoted or not, raises the depth.
constexpr int kMaxValueNesting = 32;

bool nesting_within_bounds(std::string_view text) {
  int depth = 0;
  for (const char c : text) {
    if (c == '<' || c == '{' || c == '[' || c == '(') {
      if (++depth > kMaxValueNesting) return false;
    } else if ((c == '>' || c == '}' || c == ']' || c == ')') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// gst_caps_from_string() g_return_if_fail()s (a CRITICAL) on a structure name that
// gst_structure_validate_name() refuses (it must start with a letter) instead of failing
// quietly, so a peer's caps text is checked first, conservatively: the text's start and what
// follows every ';' (a new structure, wherever the ';' is: inside a quoted string or a caps
// features section too, since fuzz_caps_text found such sections ending a structure early)
// are optional spaces and then a letter or the end; no NUL. Valid caps with a quoted ';' not
// followed by a letter are refused too: a caps event a parallaxsrc cannot take.
bool plausible_caps_text(std::string_view caps) {
  if (caps.find('\0') != std::string_view::npos) return false;
  if (!nesting_within_bounds(caps)) return false;
  bool at_start = true;
  for (const char c : caps) {
    if (at_start) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
      if (!g_ascii_isalpha(c)) return false;
      at_start = false;
    }
    if (c == ';') at_start = true;
  }
  return true;
}

// A reference is one structure (timestamp/x-ntp, host=...): its name must be valid as
// gst_structure_validate_name() says (a letter, then letters, digits and "/-_.:+"), followed
// by the end, a comma or a space; no ';' (a second structure).
bool plausible_reference_caps(std::string_view caps) {
  if (caps.empty() || caps.size() > 4096 || !g_ascii_isalpha(caps[0])) return false;
  if (!plausible_caps_text(caps)) return false;
  if (caps.find(';') != std::string_view::npos) return false;
  // A reference carries no buffers; GStreamer 1.22 logs a CRITICAL (gst_buffer_unmap) when a
  // (buffer) value fails to deserialize (found by fuzz_caps_text).
  if (caps.find("buffer)") != std::string_view::npos) return false;
  std::size_t i = 1;
  while (i < caps.size() && (g_ascii_isalnum(caps[i]) || std::strchr("/-_.:+", caps[i]) != nullptr))
    ++i;
  return i == caps.size() || caps[i] == ',' || caps[i] == ' ';
}

}  // namespace

// The core's SegmentFormat values are GStreamer's: the mapping is a cast, kept true here.
static_assert(static_cast<int>(SegmentFormat::undefined) == GST_FORMAT_UNDEFINED);
static_assert(static_cast<int>(SegmentFormat::default_units) == GST_FORMAT_DEFAULT);
static_assert(static_cast<int>(SegmentFormat::bytes) == GST_FORMAT_BYTES);
static_assert(static_cast<int>(SegmentFormat::time) == GST_FORMAT_TIME);
static_assert(static_cast<int>(SegmentFormat::buffers) == GST_FORMAT_BUFFERS);
static_assert(static_cast<int>(SegmentFormat::percent) == GST_FORMAT_PERCENT);

SegmentFormat segment_format_from_gst(GstFormat f) noexcept {
  return static_cast<SegmentFormat>(static_cast<std::uint32_t>(f));
}

GstFormat segment_format_to_gst(SegmentFormat f) noexcept {
  return static_cast<GstFormat>(static_cast<std::uint32_t>(f));
}

// --- Events ----------------------------------------------------------------------------------
StreamSegment segment_from_gst(const GstSegment& seg) noexcept {
  StreamSegment s;
  s.format = segment_format_from_gst(seg.format);
  s.flags = static_cast<std::uint32_t>(seg.flags);
  s.rate = seg.rate;
  s.applied_rate = seg.applied_rate;
  s.base = seg.base;
  s.offset = seg.offset;
  s.start = seg.start;
  s.stop = seg.stop;
  s.time = seg.time;
  s.position = seg.position;
  s.duration = seg.duration;
  return s;
}

void segment_to_gst(const StreamSegment& s, GstSegment& seg) noexcept {
  gst_segment_init(&seg, segment_format_to_gst(s.format));
  seg.flags = static_cast<GstSegmentFlags>(s.flags);
  seg.rate = s.rate;
  seg.applied_rate = s.applied_rate;
  seg.base = s.base;
  seg.offset = s.offset;
  seg.start = s.start;
  seg.stop = s.stop;
  seg.time = s.time;
  seg.position = s.position;
  seg.duration = s.duration;
}

namespace {

// Custom events travel under their GStreamer type name (gst_event_type_get_name).
constexpr struct {
  const char* name;
  GstEventType type;
} kCustomTypes[] = {
    {"custom-downstream", GST_EVENT_CUSTOM_DOWNSTREAM},
    {"custom-downstream-oob", GST_EVENT_CUSTOM_DOWNSTREAM_OOB},
    {"custom-downstream-sticky", GST_EVENT_CUSTOM_DOWNSTREAM_STICKY},
    {"custom-both", GST_EVENT_CUSTOM_BOTH},
    {"custom-both-oob", GST_EVENT_CUSTOM_BOTH_OOB},
};

std::string take_string(gchar* s) {
  std::string out = s ? s : "";
  g_free(s);
  return out;
}

}  // namespace

std::optional<Event> event_from_gst(GstEvent* event) {
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_STREAM_START: {
      const gchar* id = nullptr;
      guint group = 0;
      gst_event_parse_stream_start(event, &id);
      if (!gst_event_parse_group_id(event, &group)) group = 0;
      return Event::stream_start(id ? id : "", group);
    }
    case GST_EVENT_CAPS: {
      GstCaps* caps = nullptr;
      gst_event_parse_caps(event, &caps);
      if (caps == nullptr) return std::nullopt;
      return Event::make_caps(Caps::from_text(caps_to_format(caps)));
    }
    case GST_EVENT_SEGMENT: {
      const GstSegment* seg = nullptr;
      gst_event_parse_segment(event, &seg);
      if (seg == nullptr) return std::nullopt;
      return Event::make_segment(segment_from_gst(*seg));
    }
    case GST_EVENT_EOS:
      return Event::eos();
    case GST_EVENT_FLUSH_START:
      return Event::flush_start();
    case GST_EVENT_FLUSH_STOP: {
      gboolean reset = TRUE;
      gst_event_parse_flush_stop(event, &reset);
      return Event::flush_stop(reset != FALSE);
    }
    case GST_EVENT_TAG: {
      GstTagList* tags = nullptr;
      gst_event_parse_tag(event, &tags);
      if (tags == nullptr) return std::nullopt;
      return Event::custom(gst_event_type_get_name(GST_EVENT_TYPE(event)),
                           take_string(gst_tag_list_to_string(tags)));
    }
    case GST_EVENT_CUSTOM_DOWNSTREAM:
    case GST_EVENT_CUSTOM_DOWNSTREAM_OOB:
    case GST_EVENT_CUSTOM_DOWNSTREAM_STICKY:
    case GST_EVENT_CUSTOM_BOTH:
    case GST_EVENT_CUSTOM_BOTH_OOB: {
      const GstStructure* s = gst_event_get_structure(event);
      if (s == nullptr) return std::nullopt;
      return Event::custom(gst_event_type_get_name(GST_EVENT_TYPE(event)),
                           take_string(gst_structure_to_string(s)));
    }
    default:
      return std::nullopt;
  }
}

GstEvent* event_to_gst(const Event& e) {
  switch (e.type) {
    case EventType::stream_start: {
      GstEvent* ev = gst_event_new_stream_start(e.stream_id.c_str());
      if (e.group_id != 0) gst_event_set_group_id(ev, e.group_id);
      return ev;
    }
    case EventType::caps: {
      GstCaps* caps = caps_from_format(e.caps.text());
      if (caps == nullptr) return nullptr;
      GstEvent* ev = gst_event_new_caps(caps);
      gst_caps_unref(caps);
      return ev;
    }
    case EventType::segment: {
      GstSegment seg;
      segment_to_gst(e.segment, seg);
      return gst_event_new_segment(&seg);
    }
    case EventType::eos:
      return gst_event_new_eos();
    case EventType::flush_start:
      return gst_event_new_flush_start();
    case EventType::flush_stop:
      return gst_event_new_flush_stop(e.reset_time);
    case EventType::custom: {
      // Parsed by GStreamer from a peer's text: bounded nesting first (see above).
      if (!nesting_within_bounds(e.data)) {
        GST_WARNING("refusing a '%s' event nested deeper than %d levels", e.name.c_str(),
                    kMaxValueNesting);
        return nullptr;
      }
      if (e.name == "tag") {
        GstTagList* tags = gst_tag_list_new_from_string(e.data.c_str());
        return tags ? gst_event_new_tag(tags) : nullptr;
      }
      for (const auto& t : kCustomTypes) {
        if (e.name == t.name) {
          GstStructure* s = gst_structure_from_string(e.data.c_str(), nullptr);
          return s ? gst_event_new_custom(t.type, s) : nullptr;
        }
      }
      return nullptr;
    }
  }
  return nullptr;
}

void metadata_from_gst(GstBuffer* buf, std::uint64_t sequence, Metadata& meta) {
  meta.pts = opt_time(GST_BUFFER_PTS(buf));
  meta.dts = opt_time(GST_BUFFER_DTS(buf));
  meta.duration = opt_time(GST_BUFFER_DURATION(buf));
  meta.offset = opt_offset(GST_BUFFER_OFFSET(buf));
  meta.offset_end = opt_offset(GST_BUFFER_OFFSET_END(buf));
  meta.sequence = sequence;
  meta.flags = GST_BUFFER_FLAGS(buf) & kCarriedFlags;
  meta.entries.clear();

  if (GstVideoMeta* vm = gst_buffer_get_video_meta(buf)) {
    Writer w;
    w.put<std::uint32_t>(kVideoMetaVersion);
    w.put<std::uint32_t>(vm->format);
    w.put<std::uint32_t>(vm->flags);
    w.put<std::uint32_t>(vm->width);
    w.put<std::uint32_t>(vm->height);
    w.put<std::uint32_t>(vm->n_planes);
    for (int i = 0; i < 4; ++i)
      w.put<std::uint64_t>(vm->offset[i]);
    for (int i = 0; i < 4; ++i)
      w.put<std::int32_t>(vm->stride[i]);
    meta.entries.push_back({std::string(kVideoMetaKey), std::move(w.out)});
  }

  gpointer state = nullptr;
  Writer refs;
  std::uint32_t count = 0;
  while (GstMeta* m =
             gst_buffer_iterate_meta_filtered(buf, &state, GST_REFERENCE_TIMESTAMP_META_API_TYPE)) {
    auto* rm = reinterpret_cast<GstReferenceTimestampMeta*>(m);
    refs.put<std::uint64_t>(rm->timestamp);
    refs.put<std::uint64_t>(rm->duration);
    gchar* caps = rm->reference ? gst_caps_to_string(rm->reference) : g_strdup("");
    refs.put_bytes(caps);
    g_free(caps);
    ++count;
  }
  if (count > 0) {
    Writer w;
    w.put<std::uint32_t>(kRefTsVersion);
    w.put<std::uint32_t>(count);
    w.out.insert(w.out.end(), refs.out.begin(), refs.out.end());
    meta.entries.push_back({std::string(kReferenceTimestampsKey), std::move(w.out)});
  }
}

void metadata_to_gst(const Metadata& meta, GstBuffer* buf, gsize payload_size) {
  GST_BUFFER_PTS(buf) = meta.pts.value_or(GST_CLOCK_TIME_NONE);
  GST_BUFFER_DTS(buf) = meta.dts.value_or(GST_CLOCK_TIME_NONE);
  GST_BUFFER_DURATION(buf) = meta.duration.value_or(GST_CLOCK_TIME_NONE);
  GST_BUFFER_OFFSET(buf) = meta.offset.value_or(GST_BUFFER_OFFSET_NONE);
  GST_BUFFER_OFFSET_END(buf) = meta.offset_end.value_or(GST_BUFFER_OFFSET_NONE);
  GST_BUFFER_FLAG_UNSET(buf, kCarriedFlags);
  GST_BUFFER_FLAG_SET(buf, meta.flags & kCarriedFlags);

  if (const auto* vm = meta.get_as<std::vector<std::byte>>(kVideoMetaKey)) {
    Reader r{*vm};
    if (r.get<std::uint32_t>() == kVideoMetaVersion) {
      const auto format = r.get<std::uint32_t>();
      const auto flags = r.get<std::uint32_t>();
      const auto width = r.get<std::uint32_t>();
      const auto height = r.get<std::uint32_t>();
      const auto n_planes = r.get<std::uint32_t>();
      gsize offset[GST_VIDEO_MAX_PLANES] = {};
      gint stride[GST_VIDEO_MAX_PLANES] = {};
      for (int i = 0; i < 4; ++i)
        offset[i] = r.get<std::uint64_t>();
      for (int i = 0; i < 4; ++i)
        stride[i] = r.get<std::int32_t>();
      std::string why = "malformed record";
      if (r.done() && n_planes >= 1 && n_planes <= GST_VIDEO_MAX_PLANES &&
          video_meta_fits(format, width, height, n_planes, offset, stride, payload_size, why)) {
        gst_buffer_add_video_meta_full(buf, static_cast<GstVideoFrameFlags>(flags),
                                       static_cast<GstVideoFormat>(format), width, height, n_planes,
                                       offset, stride);
      } else {
        GST_WARNING("dropping the peer's video meta: %s", why.c_str());
      }
    }
  }

  if (const auto* rt = meta.get_as<std::vector<std::byte>>(kReferenceTimestampsKey)) {
    Reader r{*rt};
    if (r.get<std::uint32_t>() == kRefTsVersion) {
      const auto count = r.get<std::uint32_t>();
      if (count > kMaxReferenceTimestamps)
        GST_WARNING("dropping reference timestamps beyond the first %u", kMaxReferenceTimestamps);
      for (std::uint32_t i = 0; i < count && i < kMaxReferenceTimestamps && r.ok; ++i) {
        const auto ts = r.get<std::uint64_t>();
        const auto dur = r.get<std::uint64_t>();
        const std::string caps_str = r.get_string();
        if (!r.ok) break;
        if (!GST_CLOCK_TIME_IS_VALID(ts)) {
          // gst_buffer_add_reference_timestamp_meta() refuses it (a CRITICAL).
          GST_WARNING("dropping a reference timestamp without a timestamp");
          continue;
        }
        if (!plausible_reference_caps(caps_str)) {
          GST_WARNING("dropping a reference timestamp with caps '%.64s'", caps_str.c_str());
          continue;
        }
        GstCaps* caps = gst_caps_from_string(caps_str.c_str());
        if (caps == nullptr) continue;
        gst_buffer_add_reference_timestamp_meta(buf, caps, ts, dur);
        gst_caps_unref(caps);
      }
    }
  }
}

GstBuffer* to_gst(GstAllocator* allocator, memory::Buffer buffer) {
  // Metadata first, read in place: the Buffer is moved into the memory afterwards (no copy of
  // the Metadata on this per-buffer path).
  GstBuffer* buf = gst_buffer_new();
  metadata_to_gst(buffer.metadata(), buf, buffer.size());
  GstMemory* mem = wrap_buffer(allocator, std::move(buffer));
  if (mem == nullptr) {
    gst_buffer_unref(buf);
    return nullptr;
  }
  gst_buffer_append_memory(buf, mem);
  return buf;
}

std::optional<memory::Buffer> to_parallax_zero_copy(GstBuffer* buf, GstAllocator* allocator,
                                                    const Metadata& meta) {
  if (gst_buffer_n_memory(buf) != 1) return std::nullopt;
  GstMemory* mem = gst_buffer_peek_memory(buf, 0);
  if (mem->allocator != allocator) return std::nullopt;
  return memory_to_buffer(mem, &meta);
}

std::string caps_to_format(const GstCaps* caps) {
  gchar* s = gst_caps_to_string(caps);
  std::string out = s ? s : "";
  g_free(s);
  return out;
}

GstCaps* caps_from_format(std::string_view format) {
  if (!plausible_caps_text(format)) {
    GST_WARNING("refusing caps text with an invalid structure name or nested too deep: '%.64s'",
                std::string(format).c_str());
    return nullptr;
  }
  const std::string s(format);
  return gst_caps_from_string(s.c_str());
}

std::optional<std::size_t> buffer_size_for_caps(const GstCaps* caps) {
  if (caps == nullptr || !gst_caps_is_fixed(caps)) return std::nullopt;
  GstVideoInfo vinfo;
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  if (gst_structure_has_name(s, "video/x-raw") && gst_video_info_from_caps(&vinfo, caps))
    return GST_VIDEO_INFO_SIZE(&vinfo);
  GstAudioInfo ainfo;
  if (gst_structure_has_name(s, "audio/x-raw") && gst_audio_info_from_caps(&ainfo, caps)) {
    const std::size_t bytes_200ms =
        static_cast<std::size_t>(GST_AUDIO_INFO_BPF(&ainfo)) * GST_AUDIO_INFO_RATE(&ainfo) / 5;
    return std::max<std::size_t>(bytes_200ms, 64 * 1024);
  }
  return std::nullopt;
}

}  // namespace parallax::gst
