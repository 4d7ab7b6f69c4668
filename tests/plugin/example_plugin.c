/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A Parallax plugin written in plain C, for the plugin tests and as the reference example:
 * a counting source, an inverting transform and a checksumming sink. Compiled several times
 * with -DPLX_TEST_VARIANT=n to produce deliberately broken plugins for negative tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallax/plugin_abi.h"

#ifndef PLX_TEST_VARIANT
#define PLX_TEST_VARIANT 0
#endif

/* ---- counter source ---- */
typedef struct {
  unsigned long long num_buffers, fill, produced;
} Counter;

static void* counter_create(void) {
  return calloc(1, sizeof(Counter));
}
static void counter_destroy(void* self) {
  free(self);
}
static PlxStatus counter_set(void* self, const char* name, const char* value, char* err,
                             size_t len) {
  Counter* c = (Counter*)self;
  if (strcmp(name, "num-buffers") == 0)
    c->num_buffers = strtoull(value, NULL, 10);
  else if (strcmp(name, "fill") == 0)
    c->fill = strtoull(value, NULL, 10);
  else {
    snprintf(err, len, "no property %s", name);
    return PLX_ERROR;
  }
  return PLX_OK;
}
static PlxStatus counter_produce(void* self, PlxBufferOut* out, char* err, size_t len) {
  Counter* c = (Counter*)self;
  (void)err;
  (void)len;
  if (c->produced >= c->num_buffers) return PLX_EOS;
  memset(out->data, (int)c->fill, out->capacity);
  out->size = out->capacity;
  out->meta.pts = c->produced * 1000u;
  out->meta.sequence = c->produced;
  c->produced++;
  return PLX_OK;
}
static const PlxPropertyDesc counter_props[] = {
    {"num-buffers", PLX_PROP_UINT, "10", "Buffers to produce before EOS", 0, 1e12},
#if PLX_TEST_VARIANT == 4
    {"fill", PLX_PROP_UINT, "abc", "Byte value to fill buffers with", 0, 255},
#else
    {"fill", PLX_PROP_UINT, "42", "Byte value to fill buffers with", 0, 255},
#endif
};
static const PlxElementClass counter_class = {
    sizeof(PlxElementClass),
    PLX_ELEMENT_SOURCE,
#if PLX_TEST_VARIANT == 3
    "nullsink", /* collides with a built-in element */
#else
    "c-counter-src",
#endif
    "Source/Test",
    "Produces num-buffers buffers of 64 bytes filled with `fill`",
    counter_props,
    2,
    "application/x-test",
    64,
    counter_create,
    counter_destroy,
    counter_set,
    NULL,
    NULL,
    counter_produce,
    NULL,
    NULL};

/* ---- inverting transform ---- */
typedef struct {
  int passthrough;
  unsigned long long fail_at, seen;
} Invert;
static void* invert_create(void) {
  return calloc(1, sizeof(Invert));
}
static void invert_destroy(void* self) {
  free(self);
}
static PlxStatus invert_set(void* self, const char* name, const char* value, char* err,
                            size_t len) {
  Invert* v = (Invert*)self;
  if (strcmp(name, "passthrough") == 0)
    v->passthrough = strcmp(value, "true") == 0;
  else if (strcmp(name, "fail-at") == 0)
    v->fail_at = strtoull(value, NULL, 10);
  else {
    snprintf(err, len, "no property %s", name);
    return PLX_ERROR;
  }
  return PLX_OK;
}
__attribute__((unused)) static PlxStatus invert_transform(void* self, const PlxBufferIn* in,
                                                          PlxBufferOut* out, char* err,
                                                          size_t len) {
  Invert* v = (Invert*)self;
  size_t i;
  v->seen++;
  if (v->fail_at != 0 && v->seen == v->fail_at) {
    snprintf(err, len, "refusing buffer %llu as asked", v->seen);
    return PLX_ERROR;
  }
  if (v->passthrough) {
    out->passthrough = 1;
    return PLX_OK;
  }
  if (in->size > out->capacity) {
    snprintf(err, len, "input of %zu bytes is larger than %zu", in->size, out->capacity);
    return PLX_ERROR;
  }
  for (i = 0; i < in->size; ++i)
    out->data[i] = (uint8_t)(255u - in->data[i]);
  out->size = in->size;
  return PLX_OK;
}
static const PlxPropertyDesc invert_props[] = {
    {"passthrough", PLX_PROP_BOOL, "false", "Forward buffers unchanged (no copy)", 0, 0},
    {"fail-at", PLX_PROP_UINT, "0", "Fail on this buffer number (0 = never)", 0, 1e12},
};
static const PlxElementClass invert_class = {sizeof(PlxElementClass),
                                             PLX_ELEMENT_TRANSFORM,
                                             "c-invert",
                                             "Filter/Effect",
                                             "Inverts every byte (255 - x) into a new buffer",
                                             invert_props,
                                             2,
                                             NULL,
                                             1 << 16,
                                             invert_create,
                                             invert_destroy,
                                             invert_set,
                                             NULL,
                                             NULL,
                                             NULL,
#if PLX_TEST_VARIANT == 5
                                             NULL, /* a transform without its callback */
#else
                                             invert_transform,
#endif
                                             NULL};

/* ---- checksum sink ---- */
typedef struct {
  char location[512];
  unsigned long long sum, buffers;
} Checksum;
static void* checksum_create(void) {
  return calloc(1, sizeof(Checksum));
}
static void checksum_destroy(void* self) {
  free(self);
}
static PlxStatus checksum_set(void* self, const char* name, const char* value, char* err,
                              size_t len) {
  Checksum* c = (Checksum*)self;
  if (strcmp(name, "location") == 0) {
    snprintf(c->location, sizeof c->location, "%s", value);
    return PLX_OK;
  }
  snprintf(err, len, "no property %s", name);
  return PLX_ERROR;
}
static PlxStatus checksum_consume(void* self, const PlxBufferIn* in, char* err, size_t len) {
  Checksum* c = (Checksum*)self;
  size_t i;
  (void)err;
  (void)len;
  for (i = 0; i < in->size; ++i)
    c->sum += in->data[i];
  c->buffers++;
  return PLX_OK;
}
static void checksum_stop(void* self) {
  Checksum* c = (Checksum*)self;
  FILE* f;
  if (c->location[0] == '\0') return;
  f = fopen(c->location, "w");
  if (f == NULL) return;
  fprintf(f, "%llu %llu\n", c->buffers, c->sum);
  fclose(f);
}
static const PlxPropertyDesc checksum_props[] = {
    {"location", PLX_PROP_STRING, "", "File to write \"<buffers> <sum>\" to at stop", 0, 0},
};
static const PlxElementClass checksum_class = {sizeof(PlxElementClass),
                                               PLX_ELEMENT_SINK,
                                               "c-checksum-sink",
                                               "Sink",
                                               "Sums every byte it receives",
                                               checksum_props,
                                               1,
                                               NULL,
                                               0,
                                               checksum_create,
                                               checksum_destroy,
                                               checksum_set,
                                               NULL,
                                               checksum_stop,
                                               NULL,
                                               NULL,
                                               checksum_consume};

static const PlxElementClass* const classes[] = {&counter_class, &invert_class, &checksum_class};

__attribute__((unused)) static const PlxPlugin plugin = {
#if PLX_TEST_VARIANT == 1
    99, /* an ABI this Parallax does not speak */
#else
    PLX_PLUGIN_ABI_VERSION,
#endif
    sizeof(PlxPlugin),
#if PLX_TEST_VARIANT == 0
    "ctest",
#else
    "ctest-broken",
#endif
    "1.0",
    "Test elements written in C",
    "MIT",
    classes,
    3};

#if PLX_TEST_VARIANT != 2 /* variant 2 exports no entry point */
PLX_PLUGIN_EXPORT const PlxPlugin* parallax_plugin_entry(void) {
  return &plugin;
}
#endif
