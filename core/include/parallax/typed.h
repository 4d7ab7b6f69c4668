// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax::typed: pipelines of sources, operators and sinks whose types are checked at compile
// time and whose stages are composed into one inlinable push chain (no std::function, no virtual).
//
//   auto r = pipeline(from_iter(std::vector{1, 2, 3, 4}))
//                .then(filter([](const int& x) { return x % 2 == 0; }))
//                .then(map([](int x) { return x * 10; }))
//                .sink(collect<int>())
//                .run();                       // Result<std::vector<int>>: {20, 40}
//
// How it works (why it is fast): every builder object (map(f), filter(p), ...) is a small value.
// run() turns the list of builders into a chain of *nodes*, built from the sink backwards, each
// node holding the next one by value. The source then pushes items into the first node in a
// plain loop; every push is a direct, inlinable template call. Items travel as references (the
// "reference type" of a stage, like std::ranges' range_reference_t): a borrowed source pushes
// `const T&`, an owned one `T&&`, a map pushes its result as a temporary. Nothing is copied that
// a stage does not copy itself.
//
// Node protocol (internal): `bool push(U&&)` returns false when downstream wants no more items
// (take reached its count, an error happened, a sink stopped); `bool open()` says whether any item
// is wanted at all (take(0)); `void finish()` is called exactly once at the end, whatever the
// reason; `sink_node()` reaches the sink to fetch the result.
//
// The parts live in parallax/typed/: traits.h (tags, concepts), diagnostic.h (compile errors),
// run_context.h, nodes.h and thread_nodes.h (the run-time chain), sources.h, operators.h,
// sinks.h, pipeline.h; bounded_queue.h and spsc_queue.h are the thread stages' queues.
#pragma once

#include <parallax/typed/bounded_queue.h>
#include <parallax/typed/diagnostic.h>
#include <parallax/typed/operators.h>
#include <parallax/typed/pipeline.h>
#include <parallax/typed/run_context.h>
#include <parallax/typed/sinks.h>
#include <parallax/typed/sources.h>
#include <parallax/typed/spsc_queue.h>
#include <parallax/typed/traits.h>
