/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The C ABI of Parallax plugins: a shared library exports one function,
 * parallax_plugin_entry(), returning a static description of its elements. Plain C (C99),
 * fixed-width types, versioned: a plugin states the ABI version and the struct sizes it was
 * built with, and the host refuses what it does not understand. See docs/plugins.md. */
#ifndef PARALLAX_PLUGIN_ABI_H
#define PARALLAX_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change; the host loads only plugins with the same version. */
#define PLX_PLUGIN_ABI_VERSION 1u
/* "None" for the time and offset fields of PlxMeta (GST_CLOCK_TIME_NONE). */
#define PLX_NONE UINT64_MAX
/* Size of the error text buffer the host passes to callbacks. */
#define PLX_ERROR_LEN 256u

typedef enum PlxStatus {
  PLX_OK = 0,    /* done; for sources: `out` holds a buffer */
  PLX_ERROR = 1, /* failed; the callback wrote a message into `err` */
  PLX_EOS = 2    /* sources only: the stream is over */
} PlxStatus;

typedef enum PlxElementKind {
  PLX_ELEMENT_SOURCE = 0,    /* produce() fills host buffers */
  PLX_ELEMENT_TRANSFORM = 1, /* transform() maps one input to one output (or passes it on) */
  PLX_ELEMENT_SINK = 2       /* consume() reads each input */
} PlxElementKind;

typedef enum PlxPropType {
  PLX_PROP_BOOL = 0,
  PLX_PROP_INT = 1,    /* int64 within [min, max] */
  PLX_PROP_UINT = 2,   /* uint64 within [min, max] */
  PLX_PROP_DOUBLE = 3, /* double within [min, max] */
  PLX_PROP_STRING = 4
} PlxPropType;

typedef struct PlxPropertyDesc {
  const char* name; /* lowercase-dashed, e.g. "block-size" */
  PlxPropType type;
  const char* default_value; /* text form, e.g. "4096", "true", "" */
  const char* description;
  double min; /* numeric bounds (inclusive); ignored for bool/string */
  double max;
} PlxPropertyDesc;

/* Buffer metadata; times in nanoseconds, PLX_NONE when unset. Flags are GstBufferFlags. */
typedef struct PlxMeta {
  uint64_t pts;
  uint64_t dts;
  uint64_t duration;
  uint64_t offset;
  uint64_t offset_end;
  uint64_t sequence;
  uint32_t flags;
  uint32_t reserved;
} PlxMeta;

/* A read-only input buffer, valid for the duration of the call. */
typedef struct PlxBufferIn {
  const uint8_t* data;
  size_t size;
  PlxMeta meta;
} PlxBufferIn;

/* A writable output buffer owned by the host (a pool slot of `capacity` bytes). The plugin
 * writes data, sets size (<= capacity) and meta. A transform may instead set passthrough = 1
 * to forward its input unchanged (no copy). */
typedef struct PlxBufferOut {
  uint8_t* data;
  size_t capacity;
  size_t size;
  PlxMeta meta;
  uint32_t passthrough;
  uint32_t reserved;
} PlxBufferOut;

typedef struct PlxElementClass {
  uint32_t struct_size; /* sizeof(PlxElementClass) as the plugin saw it */
  PlxElementKind kind;
  const char* name;        /* factory name used in pipelines */
  const char* klass;       /* "Source/Test", "Filter/Effect", "Sink" ... */
  const char* description; /* one sentence */
  const PlxPropertyDesc* properties;
  uint32_t n_properties;
  const char* caps;       /* sources: the format announced before the first buffer, or NULL */
  size_t max_output_size; /* sources and transforms: capacity of each output buffer */

  void* (*create)(void); /* a new instance; NULL on failure */
  void (*destroy)(void* self);
  /* Called at start for every property with its validated value in text form. */
  PlxStatus (*set_property)(void* self, const char* name, const char* value, char* err,
                            size_t err_len);
  PlxStatus (*start)(void* self, char* err, size_t err_len); /* may be NULL */
  void (*stop)(void* self);                                  /* may be NULL */
  PlxStatus (*produce)(void* self, PlxBufferOut* out, char* err, size_t err_len);
  PlxStatus (*transform)(void* self, const PlxBufferIn* in, PlxBufferOut* out, char* err,
                         size_t err_len);
  PlxStatus (*consume)(void* self, const PlxBufferIn* in, char* err, size_t err_len);
} PlxElementClass;

typedef struct PlxPlugin {
  uint32_t abi_version; /* PLX_PLUGIN_ABI_VERSION */
  uint32_t struct_size; /* sizeof(PlxPlugin) */
  const char* name;
  const char* version;
  const char* description;
  const char* license;
  const PlxElementClass* const* elements;
  uint32_t n_elements;
} PlxPlugin;

/* The one symbol a plugin exports. */
#define PLX_PLUGIN_ENTRY_SYMBOL "parallax_plugin_entry"
typedef const PlxPlugin* (*PlxPluginEntryFn)(void);

#if defined(__GNUC__)
#define PLX_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PLX_PLUGIN_EXPORT
#endif

#ifdef __cplusplus
}
#endif

#endif /* PARALLAX_PLUGIN_ABI_H */
