// SPDX-License-Identifier: MIT OR Apache-2.0
// bench_archive: the `log` dataset of rust_serialization_benchmark (10,000 records, fixed seed):
// serialize, validate, access, deserialize and a memcpy of the same bytes, all reporting bytes/s
// so validate/memcpy is visible; plus validation of plain u32 vectors of growing length.
#include <benchmark/benchmark.h>

#include <cstring>

#include "parallax/archive.h"
#include "test_types.h"

namespace {

namespace ar = parallax::archive;
using plxtest::Logs;

const Logs& dataset() {
  static const Logs logs = plxtest::make_logs(10'000, 42);
  return logs;
}
const std::vector<std::byte>& archive_bytes() {
  static const std::vector<std::byte> bytes = ar::serialize(dataset()).value();
  return bytes;
}

void set_bytes(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(archive_bytes().size()));
  state.counters["archive_bytes"] = static_cast<double>(archive_bytes().size());
}

void BM_log_serialize(benchmark::State& state) {
  std::vector<std::byte> out;
  out.reserve(archive_bytes().size());
  for (auto _ : state) {
    auto r = ar::serialize_into(dataset(), out);
    benchmark::DoNotOptimize(out.data());
    if (!r.ok()) state.SkipWithError("serialize failed");
  }
  set_bytes(state);
}
BENCHMARK(BM_log_serialize);

void BM_log_serialize_fixed_buffer(benchmark::State& state) {
  std::vector<std::byte> out(archive_bytes().size());
  for (auto _ : state) {
    auto r = ar::serialize_into(dataset(), std::span(out));
    benchmark::DoNotOptimize(out.data());
    if (!r.ok()) state.SkipWithError("serialize failed");
  }
  set_bytes(state);
}
BENCHMARK(BM_log_serialize_fixed_buffer);

void BM_log_validate(benchmark::State& state) {
  const auto& bytes = archive_bytes();
  for (auto _ : state) {
    auto r = ar::access<Logs>(bytes);
    benchmark::DoNotOptimize(r);
    if (!r.ok()) state.SkipWithError("validation failed");
  }
  set_bytes(state);
}
BENCHMARK(BM_log_validate);

// The same records with one multi-byte character in every request: the coalesced pass finds
// non-ASCII text and hands over to the exact per-string pass (see ValidateCtx::flush_utf8).
void BM_log_validate_non_ascii(benchmark::State& state) {
  static const std::vector<std::byte> bytes = [] {
    Logs logs = dataset();
    for (auto& l : logs.logs)
      l.request += "\xc3\xa9";
    return ar::serialize(logs).value();
  }();
  for (auto _ : state) {
    auto r = ar::access<Logs>(bytes);
    benchmark::DoNotOptimize(r);
    if (!r.ok()) state.SkipWithError("validation failed");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes.size()));
}
BENCHMARK(BM_log_validate_non_ascii);

void BM_log_validate_structural(benchmark::State& state) {
  const auto& bytes = archive_bytes();
  for (auto _ : state) {
    auto r = ar::access<Logs>(bytes, {.level = ar::Validation::structural});
    benchmark::DoNotOptimize(r);
  }
  set_bytes(state);
}
BENCHMARK(BM_log_validate_structural);

std::uint64_t read_all(const ar::Archived<Logs>& logs) {
  std::uint64_t h = 0;
  for (const auto& l : logs.logs) {
    h += l.address.x0 + l.address.x1 + l.address.x2 + l.address.x3;
    h += l.identity.size() + l.userid.size() + l.date.size() + l.request.size();
    h += static_cast<std::uint64_t>(l.identity.data()[0]) + l.code + l.size;
  }
  return h;
}

void BM_log_access_unchecked(benchmark::State& state) {
  const auto& bytes = archive_bytes();
  for (auto _ : state) {
    const auto& logs = ar::access_unchecked_i_know_this_is_trusted<Logs>(bytes);
    benchmark::DoNotOptimize(read_all(logs));
  }
  set_bytes(state);
}
BENCHMARK(BM_log_access_unchecked);

void BM_log_validate_and_read(benchmark::State& state) {
  const auto& bytes = archive_bytes();
  for (auto _ : state) {
    auto r = ar::access<Logs>(bytes);
    benchmark::DoNotOptimize(read_all(**r));
  }
  set_bytes(state);
}
BENCHMARK(BM_log_validate_and_read);

void BM_log_deserialize(benchmark::State& state) {
  const auto& bytes = archive_bytes();
  for (auto _ : state) {
    const auto& logs = ar::access_unchecked_i_know_this_is_trusted<Logs>(bytes);
    Logs out = ar::deserialize<Logs>(logs);
    benchmark::DoNotOptimize(out.logs.data());
  }
  set_bytes(state);
}
BENCHMARK(BM_log_deserialize);

void BM_log_memcpy(benchmark::State& state) {
  const auto& bytes = archive_bytes();
  std::vector<std::byte> out(bytes.size());
  for (auto _ : state) {
    std::memcpy(out.data(), bytes.data(), bytes.size());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}
BENCHMARK(BM_log_memcpy);

// Plain-data arrays: validation is bounds + alignment, independent of the element count.
void BM_u32_vector_validate(benchmark::State& state) {
  const std::vector<std::uint32_t> v(static_cast<std::size_t>(state.range(0)), 7);
  const auto bytes = ar::serialize(v).value();
  for (auto _ : state) {
    auto r = ar::access<std::vector<std::uint32_t>>(bytes);
    benchmark::DoNotOptimize(r);
  }
  state.counters["elements"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_u32_vector_validate)->Arg(16)->Arg(1 << 10)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
