// SPDX-License-Identifier: MIT OR Apache-2.0
// GstBuffer <-> parallax::memory::Buffer: timestamps, offsets, flags, GstVideoMeta (plane
// offsets and strides) and reference-timestamp metas as Metadata entries; caps as the format
// string; slot sizes from raw caps.
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "parallax/buffer.h"
#include "parallax/event.h"
#include "parallax/ipc.h"
#include "parallax/metadata.h"

namespace parallax::gst {

/// Metadata entry keys. Values are little-endian byte records (see convert.cpp for layouts);
/// each record starts with a u32 version so a later layout can be told apart.
inline constexpr std::string_view kVideoMetaKey = "gst.video-meta";
inline constexpr std::string_view kReferenceTimestampsKey = "gst.reference-timestamps";

/// The GstBufferFlags Parallax carries (all the ones defined as buffer flags, not the
/// mini-object lock bits).
inline constexpr std::uint32_t kCarriedFlags = 0x1FFF0u;

/// GstFormat <-> SegmentFormat. The core's values are GStreamer's (static_asserts in
/// convert.cpp keep them so); formats registered at run time pass through as their number.
[[nodiscard]] SegmentFormat segment_format_from_gst(GstFormat f) noexcept;
[[nodiscard]] GstFormat segment_format_to_gst(SegmentFormat f) noexcept;

/// GstSegment <-> StreamSegment (every field; the format through segment_format_*_gst).
[[nodiscard]] StreamSegment segment_from_gst(const GstSegment& seg) noexcept;
void segment_to_gst(const StreamSegment& s, GstSegment& seg) noexcept;

/// The Parallax event (parallax/event.h, what the transport carries) of a downstream GstEvent:
/// stream-start (id, group id), caps (the gst_caps_to_string text, kept whole by
/// Caps::from_text), segment, eos, flush-start, flush-stop (reset-time), and as `custom`
/// events named by gst_event_type_get_name(): tag (the tag list as text),
/// custom-downstream[-oob|-sticky] and custom-both[-oob] (the structure as text).
/// std::nullopt for anything else (GStreamer-internal events, a custom event without a
/// structure).
[[nodiscard]] std::optional<Event> event_from_gst(GstEvent* event);
/// The GstEvent of an event (a new reference), the inverse of event_from_gst; nullptr when it
/// has no GStreamer form: a custom event of another name, or whose text GStreamer cannot parse
/// (a peer's bad input: the caller drops it), caps text gst_caps_from_string refuses.
[[nodiscard]] GstEvent* event_to_gst(const Event& event);

/// Fills `meta` (all fields replaced) from `buf`: pts, dts, duration, offset, offset_end,
/// flags, GstVideoMeta, GstReferenceTimestampMeta. `sequence` becomes meta.sequence.
void metadata_from_gst(GstBuffer* buf, std::uint64_t sequence, Metadata& meta);
/// Applies `meta` to `buf` (writable): timestamps, offsets, flags and the metas above. The
/// entries come from a peer: a video meta whose planes do not all fit in `payload_size` bytes
/// (the buffer's payload) is dropped with a warning, as are malformed entries.
void metadata_to_gst(const Metadata& meta, GstBuffer* buf, gsize payload_size);

/// A GstBuffer whose single memory wraps `buffer` read-only (no copy), with `buffer`'s
/// metadata applied. `allocator` is a read-only Parallax allocator.
GstBuffer* to_gst(GstAllocator* allocator, memory::Buffer buffer);

/// The slot behind `buf` with `meta` set, when `buf` is exactly one Parallax memory of
/// `allocator` (the zero-copy case); std::nullopt otherwise (the caller copies).
std::optional<memory::Buffer> to_parallax_zero_copy(GstBuffer* buf, GstAllocator* allocator,
                                                    const Metadata& meta);

/// The format string of `caps` (gst_caps_to_string) and back (nullptr when unparsable, and
/// for text whose structure names GStreamer would assert on: a peer's text is checked first).
std::string caps_to_format(const GstCaps* caps);
GstCaps* caps_from_format(std::string_view format);

/// Bytes one buffer of `caps` needs: the frame size of raw video, 200 ms (at least 64 KiB)
/// of raw audio, std::nullopt when the caps do not say (encoded streams, unfixed caps).
std::optional<std::size_t> buffer_size_for_caps(const GstCaps* caps);

}  // namespace parallax::gst
