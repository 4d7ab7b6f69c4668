// SPDX-License-Identifier: MIT OR Apache-2.0
// The "parallaxaffinity" GstTracer: pins the streaming threads of a pipeline by rules, with no
// application code. GStreamer posts STREAM_STATUS (ENTER) from a GstTask's thread itself when it
// starts (sources, queues, aggregators, demuxers: every pad task); the tracer's
// element-post-message-pre hook runs there, so it can pin the calling thread.
//
//   GST_TRACERS='parallaxaffinity(rules="parallaxsrc0:numa:1|queue*:core:2-3|*:numa:0")'
//
// ('|' between rules: GStreamer splits GST_TRACERS at ';' before the tracer sees its parameters.)
// Rules: parallax/affinity.h (AffinityRules), docs/topology.md. A rule that cannot be applied
// is an element error on the thread's element (best-effort=true makes it a warning).
#include "gstparallaxaffinity.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <string>
#include <utility>

#include "parallax/affinity.h"

GST_DEBUG_CATEGORY_STATIC(parallax_affinity_debug);
#define GST_CAT_DEFAULT parallax_affinity_debug

namespace topo = parallax::topology;

namespace {

// One per tracer, built in constructed() and only read afterwards (hooks run on any thread).
struct TracerState {
  topo::AffinityRules rules;
  bool best_effort{false};
  std::optional<std::string> config_error;  // reported on the first thread that starts
  // One error for a configuration error, not one per thread: gst-launch-1.0 1.22 sometimes
  // keeps waiting in its main loop when a second ERROR arrives while it handles the first.
  std::atomic<bool> config_error_reported{false};
};

}  // namespace

struct _GstParallaxAffinityTracer {
  GstTracer parent;
  TracerState* state;
};

G_DEFINE_TYPE(GstParallaxAffinityTracer, gst_parallax_affinity_tracer, GST_TYPE_TRACER)

namespace {

std::string factory_name(GstElement* e) {
  GstElementFactory* f = gst_element_get_factory(e);
  return f != nullptr ? gst_plugin_feature_get_name(GST_PLUGIN_FEATURE(f)) : "";
}

// An error found while the STREAM_STATUS message is being posted, posted once that message is
// out (element-post-message-post, same thread): ENTER then ERROR, in that order on the bus.
struct PendingError {
  GstElement* owner{nullptr};  // a ref
  GstTask* task{nullptr};      // a ref
  std::string title, detail;
};
thread_local PendingError pending;

void defer_error(GstElement* owner, GstMessage* message, std::string title, std::string detail) {
  pending.owner = GST_ELEMENT(gst_object_ref(owner));
  const GValue* v = gst_message_get_stream_status_object(message);
  if (v != nullptr && G_VALUE_HOLDS(v, GST_TYPE_TASK))
    pending.task = GST_TASK(gst_object_ref(g_value_get_object(v)));
  pending.title = std::move(title);
  pending.detail = std::move(detail);
}

// The element-post-message-post hook: posts the deferred error. A tracer cannot return
// GST_FLOW_ERROR as an element would: it pauses the thread's task instead, so the thread does
// not stream after its error (the pipeline then shuts down as after any streaming error).
void on_post_message_post(GObject* /*object*/, GstClockTime /*ts*/, GstElement* /*element*/,
                          gboolean /*result*/) {
  if (pending.owner == nullptr) return;
  GstElement* owner = std::exchange(pending.owner, nullptr);
  GstTask* task = std::exchange(pending.task, nullptr);
  GST_ELEMENT_ERROR(owner, RESOURCE, SETTINGS, ("%s", pending.title.c_str()),
                    ("%s", pending.detail.c_str()));
  if (task != nullptr) {
    gst_task_pause(task);
    gst_object_unref(task);
  }
  gst_object_unref(owner);
}

// The element-post-message-pre hook: on STREAM_STATUS ENTER (posted by the starting thread),
// pin that thread by the first matching rule.
void on_post_message_pre(GObject* object, GstClockTime /*ts*/, GstElement* /*element*/,
                         GstMessage* message) {
  if (GST_MESSAGE_TYPE(message) != GST_MESSAGE_STREAM_STATUS) return;
  GstStreamStatusType type;
  GstElement* owner = nullptr;
  gst_message_parse_stream_status(message, &type, &owner);
  if (type != GST_STREAM_STATUS_TYPE_ENTER || owner == nullptr) return;
  auto* self = reinterpret_cast<GstParallaxAffinityTracer*>(object);
  TracerState& st = *self->state;
  const std::string name = GST_OBJECT_NAME(owner) ? GST_OBJECT_NAME(owner) : "";
  const long tid = ::syscall(SYS_gettid);
  if (st.config_error) {
    if (!st.config_error_reported.exchange(true))
      defer_error(owner, message, "parallaxaffinity tracer: the rules cannot be applied",
                  *st.config_error);
    return;
  }
  const std::string factory = factory_name(owner);
  auto pinned = topo::pin_by_rules(st.rules, name, factory);
  if (!pinned) {
    if (st.best_effort) {
      GST_WARNING("%s (thread %ld) not pinned (best effort): %s", name.c_str(), tid,
                  pinned.error().message.c_str());
      GST_ELEMENT_WARNING(owner, RESOURCE, SETTINGS, ("Could not pin the streaming thread"),
                          ("%s", pinned.error().message.c_str()));
    } else {
      GST_ERROR("%s (thread %ld): %s", name.c_str(), tid, pinned.error().message.c_str());
      defer_error(
          owner, message, "Could not pin the streaming thread",
          pinned.error().message + " (set best-effort=true in the tracer's parameters to go on)");
    }
    return;
  }
  if (pinned->rule == nullptr) {
    GST_DEBUG("%s (%s, thread %ld): no rule matches", name.c_str(), factory.c_str(), tid);
    return;
  }
  if (pinned->cpus.empty()) {
    GST_INFO("%s (%s, thread %ld): rule '%s:none', left alone", name.c_str(), factory.c_str(), tid,
             pinned->rule->pattern.c_str());
    return;
  }
  // Read back from the thread itself what the kernel applied.
  auto now = topo::current_thread_affinity();
  GST_INFO("pinned %s (%s) thread %ld to CPUs %s by rule '%s:%s'; sched_getaffinity: %s",
           name.c_str(), factory.c_str(), tid, pinned->cpus.to_string().c_str(),
           pinned->rule->pattern.c_str(), pinned->rule->affinity.c_str(),
           now ? now->to_string().c_str() : now.error().message.c_str());
}

}  // namespace

static void gst_parallax_affinity_tracer_constructed(GObject* object) {
  auto* self = reinterpret_cast<GstParallaxAffinityTracer*>(object);
  TracerState& st = *self->state;
  gchar* params = nullptr;
  g_object_get(object, "params", &params, nullptr);
  if (params != nullptr && params[0] != '\0') {
    // "rules=\"...\",best-effort=true" parsed as the fields of a structure.
    gchar* text = g_strdup_printf("parallaxaffinity,%s", params);
    GstStructure* s = gst_structure_from_string(text, nullptr);
    g_free(text);
    if (s == nullptr) {
      st.config_error = std::string("cannot parse the tracer parameters '") + params +
                        "': expected rules=\"PATTERN:AFFINITY|...\"[,best-effort=true] (quote the "
                        "rules)";
    } else {
      if (const gchar* rules = gst_structure_get_string(s, "rules")) {
        auto r = topo::AffinityRules::parse(rules);
        if (!r) {
          st.config_error = r.error().message;
        } else {
          st.rules = std::move(r).value();
        }
      } else {
        st.config_error = "no rules=\"...\" parameter";
      }
      gboolean be = FALSE;
      if (gst_structure_get_boolean(s, "best-effort", &be)) st.best_effort = be;
      gst_structure_free(s);
    }
  } else {
    st.config_error = "no parameters: use parallaxaffinity(rules=\"PATTERN:AFFINITY|...\")";
  }
  if (!st.config_error) {
    // Rules naming what this machine does not have fail before any thread runs.
    auto machine = topo::Topology::process();
    if (!machine) {
      st.config_error = machine.error().message;
    } else if (auto c = st.rules.check(**machine); !c) {
      if (st.best_effort)
        GST_WARNING("%s (best effort: those threads stay where they are)",
                    c.error().message.c_str());
      else
        st.config_error = c.error().message + "; this machine: " + (*machine)->describe();
    }
  }
  g_free(params);
  if (st.config_error)
    GST_ERROR("%s", st.config_error->c_str());
  else
    GST_INFO("rules '%s'%s", st.rules.to_string().c_str(), st.best_effort ? " (best effort)" : "");
  gst_tracing_register_hook(GST_TRACER(self), "element-post-message-pre",
                            G_CALLBACK(on_post_message_pre));
  gst_tracing_register_hook(GST_TRACER(self), "element-post-message-post",
                            G_CALLBACK(on_post_message_post));
  G_OBJECT_CLASS(gst_parallax_affinity_tracer_parent_class)->constructed(object);
}

static void gst_parallax_affinity_tracer_finalize(GObject* object) {
  auto* self = reinterpret_cast<GstParallaxAffinityTracer*>(object);
  delete std::exchange(self->state, nullptr);
  G_OBJECT_CLASS(gst_parallax_affinity_tracer_parent_class)->finalize(object);
}

static void gst_parallax_affinity_tracer_class_init(GstParallaxAffinityTracerClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->constructed = GST_DEBUG_FUNCPTR(gst_parallax_affinity_tracer_constructed);
  gobject_class->finalize = GST_DEBUG_FUNCPTR(gst_parallax_affinity_tracer_finalize);
  GST_DEBUG_CATEGORY_INIT(parallax_affinity_debug, "parallaxaffinity", 0,
                          "Parallax affinity tracer (thread pinning by rules)");
}

static void gst_parallax_affinity_tracer_init(GstParallaxAffinityTracer* self) {
  self->state = new TracerState();
}
