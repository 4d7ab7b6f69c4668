#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# install-check.sh BUILD_DIR: installs BUILD_DIR into its own --prefix (which must be a
# directory outside the loader's default path, e.g. $PWD/build/prefix) and checks that what a
# user gets works there with no LD_LIBRARY_PATH: the tools run, the GStreamer plugin is found
# through GST_PLUGIN_PATH=<prefix>/<libdir>/gstreamer-1.0, and programs built with the two
# pkg-config files (parallax-1.0, parallax-gst-1.0) compile and run, the header-only typed and
# archive areas included.
set -euo pipefail
B=$(realpath "${1:?usage: install-check.sh BUILD_DIR}")
prefix=$(meson introspect "$B" --buildoptions | python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
libdir=$(meson introspect "$B" --buildoptions | python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"))')
case $prefix in /usr | /usr/local) echo "install-check: prefix $prefix is a system prefix; configure the build with --prefix=<a scratch dir>"; exit 2 ;; esac
rm -rf "$prefix"
fail() { echo "install-check: FAIL: $*"; exit 1; }
if ! meson install -C "$B" --quiet >"$B/install-check.log" 2>&1; then
  cat "$B/install-check.log"
  fail "meson install -C $B failed (output above)"
fi
unset LD_LIBRARY_PATH GST_PLUGIN_PATH PKG_CONFIG_PATH

"$prefix/bin/parallax-inspect" >/dev/null || fail "installed parallax-inspect does not run"
"$prefix/bin/parallax-launch" --help >/dev/null || fail "installed parallax-launch does not run"

plugdir=$prefix/$libdir/gstreamer-1.0
[ -f "$plugdir/libgstparallax.so" ] || fail "plugin not installed into $plugdir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GST_PLUGIN_PATH=$plugdir GST_REGISTRY=$tmp/registry.bin gst-inspect-1.0 parallaxsink >/dev/null ||
  fail "gst-inspect-1.0 does not find parallaxsink through GST_PLUGIN_PATH=$plugdir"

export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
cat >"$tmp/core.cpp" <<'EOF'
#include <parallax/pool.h>
#include <cstdio>
int main() {
  auto seg = parallax::memory::SharedMemorySegment::create("install-check", 1 << 16);
  if (!seg.ok()) return 1;
  auto pool = parallax::memory::MemoryPool::create(std::move(seg).value(), 4096);
  if (!pool.ok()) return 1;
  std::printf("%zu slots\n", (*pool)->capacity());
  return (*pool)->capacity() == 16 ? 0 : 1;
}
EOF
# The header-only areas through their umbrellas (parallax/typed.h, parallax/archive.h): a header
# of theirs missing from the install fails here.
cat >"$tmp/typed.cpp" <<'EOF'
#include <parallax/archive.h>
#include <parallax/typed.h>
#include <string>
struct Point { int x; std::string name; };
PLX_ARCHIVE(Point, x, name);
int main() {
  using namespace parallax::typed;
  auto v = pipeline(range(0, 4)).then(map([](int i) { return i * i; })).sink(collect<int>()).run();
  auto bytes = parallax::archive::serialize(Point{v.value().back(), "p"});
  auto back = parallax::archive::from_bytes<Point>(bytes.value());
  return back.ok() && back->x == 9 ? 0 : 1;
}
EOF
cat >"$tmp/gst.cpp" <<'EOF'
#include <parallax-gst/allocator.h>
#include <parallax/pool.h>
int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  GstAllocator* a = parallax::gst::allocator_new_readonly();
  if (a == nullptr) return 1;
  gst_object_unref(a);
  return 0;
}
EOF
# The .pc files give -L; a prefix outside the loader's path also needs an rpath (or
# LD_LIBRARY_PATH), exactly as docs/getting-started.md tells users.
rpath="-Wl,-rpath,$(pkg-config --variable=libdir parallax-1.0)"
g++ -std=c++20 "$tmp/core.cpp" -o "$tmp/core" $(pkg-config --cflags --libs parallax-1.0) "$rpath" ||
  fail "a program does not build with pkg-config parallax-1.0"
"$tmp/core" >/dev/null || fail "a program built with parallax-1.0 does not run"
g++ -std=c++20 "$tmp/typed.cpp" -o "$tmp/typed" $(pkg-config --cflags --libs parallax-1.0) "$rpath" ||
  fail "a program using parallax/typed.h and parallax/archive.h does not build with parallax-1.0"
"$tmp/typed" || fail "a program using parallax/typed.h and parallax/archive.h does not run"
g++ -std=c++20 "$tmp/gst.cpp" -o "$tmp/gst" $(pkg-config --cflags --libs parallax-gst-1.0) "$rpath" ||
  fail "a program does not build with pkg-config parallax-gst-1.0"
"$tmp/gst" || fail "a program built with parallax-gst-1.0 does not run"
echo "install-check: ok (prefix $prefix: tools, plugin via GST_PLUGIN_PATH, parallax-1.0 and parallax-gst-1.0)"
