// SPDX-License-Identifier: MIT OR Apache-2.0
// How each supported type is written, validated and read back: Archived<T> (archived_of.h), the
// writer and validation context (codec.h), Traits<T> per standard type (std_traits.h) and for
// PLX_ARCHIVE / PLX_ARCHIVE_ENUM types (user_traits.h, with the macros), and schema_hash_v.
#pragma once

#include <cstdint>

#include "parallax/archive/archived_of.h"
#include "parallax/archive/codec.h"
#include "parallax/archive/std_traits.h"
#include "parallax/archive/user_traits.h"

namespace parallax::archive {

/// A stable 64-bit hash of T's archived shape (type names, field names and order, enum values).
template <typename T>
inline constexpr std::uint64_t schema_hash_v = Traits<T>::template schema<detail::kSchemaDepth>();

}  // namespace parallax::archive
