// SPDX-License-Identifier: MIT OR Apache-2.0
#include "gststatsticker.h"

namespace parallax::gst {

namespace {
struct TickData {
  GstElement* element;  // a reference: the element outlives every tick
  bool post;
  const char* name;
  std::function<GstStructure*()> make;
  std::function<void()> watch;
};

gboolean on_tick(GstClock*, GstClockTime, GstClockID, gpointer user_data) {
  auto* d = static_cast<TickData*>(user_data);
  if (d->watch) d->watch();
  if (d->post) {
    GstStructure* s = d->make();
    gst_structure_set_name(s, d->name);
    gst_element_post_message(d->element, gst_message_new_element(GST_OBJECT(d->element), s));
  }
  return TRUE;
}

void free_tick(gpointer user_data) {
  auto* d = static_cast<TickData*>(user_data);
  gst_object_unref(d->element);
  delete d;
}
}  // namespace

void StatsTicker::start(GstElement* element, GstClockTime interval_ns, bool post,
                        const char* message_name, std::function<GstStructure*()> make,
                        std::function<void()> watch) {
  stop();
  if (interval_ns == 0) return;
  clock_ = gst_system_clock_obtain();
  id_ = gst_clock_new_periodic_id(clock_, gst_clock_get_time(clock_) + interval_ns, interval_ns);
  auto* d = new TickData{GST_ELEMENT(gst_object_ref(element)), post, message_name, std::move(make),
                         std::move(watch)};
  if (gst_clock_id_wait_async(id_, on_tick, d, free_tick) != GST_CLOCK_OK) {
    GST_WARNING_OBJECT(element, "cannot schedule the stats tick");
  }
}

void StatsTicker::stop() {
  if (id_ != nullptr) {
    gst_clock_id_unschedule(id_);
    gst_clock_id_unref(id_);
    id_ = nullptr;
  }
  if (clock_ != nullptr) {
    gst_object_unref(clock_);
    clock_ = nullptr;
  }
}

GstClockTime tick_period(GstClockTime stats_interval, GstDebugCategory* category) {
  if (stats_interval != 0) return stats_interval;
  if (gst_debug_category_get_threshold(category) >= GST_LEVEL_INFO) return 100 * GST_MSECOND;
  return 0;
}

}  // namespace parallax::gst
