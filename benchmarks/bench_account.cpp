// The account as a test double: what naming a stream costs on the put path, and a whole
// test's worth of Kinesis calls. Run beside the Stream's own put:
//   build/release/benchmarks/riffle_bench
//   --benchmark_filter='BM_Account_|BM_PutRecord_XxHash' --benchmark_repetitions=3
//   --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/stream.h"

namespace {

constexpr std::size_t kHotKeys = 64;
constexpr std::size_t kDataBytes = 100;

std::vector<std::string> Keys(std::size_t n, std::size_t stride) {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < n; ++i) keys.push_back(fmt::format("key-{:012}", i * stride));
  return keys;
}

[[noreturn]] void Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::abort();
}

// PutRecord by stream name through the account, limits off: BM_PutRecord_XxHash's stream
// (4 shards, 1 MiB rings, XXH3 routing) and records (64 hot 16-byte keys, 100-byte data).
void BM_Account_PutRecord(benchmark::State& state) {
  riffle::AccountOptions o;
  o.stream_defaults.ring_capacity_bytes = uint64_t{1} << 20;
  o.stream_defaults.max_record_size_bytes = 64 << 10;
  o.stream_defaults.routing = riffle::RoutingMode::kXxh3;
  auto account = *riffle::Account::Create(o);
  riffle::Kinesis& kinesis = account->kinesis();
  if (absl::Status s = kinesis.CreateStream({.stream_name = "bench", .shard_count = 4}); !s.ok()) {
    Fail("CreateStream", s);
  }
  const auto keys = Keys(kHotKeys, 7919);
  const std::string data(kDataBytes, 'd');
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = kinesis.PutRecord(
        {.stream_name = "bench", .partition_key = keys[i++ % kHotKeys], .data = data});
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_Account_PutRecord);

// What a unit test of AWS-written code does against a Kinesis emulator: create a stream,
// put 10,000 records (distinct keys, 100-byte data) in PutRecords batches of 500, read
// everything back with GetShardIterator and GetRecords by iterator string, delete the
// stream. The service's defaults: MD5 routing, 1 MiB records, 4 shards. scenario_us is the
// wall time of one whole scenario.
void BM_Account_TestDoubleScenario(benchmark::State& state) {
  constexpr int kRecords = 10000;
  constexpr int kBatch = 500;
  constexpr int kShards = 4;
  auto account = *riffle::Account::Create();
  riffle::Kinesis& kinesis = account->kinesis();
  const auto keys = Keys(kRecords, 1);
  const std::string data(kDataBytes, 'd');
  std::vector<riffle::PutRecordsRequestEntry> entries;
  for (const auto& k : keys) entries.push_back({k, data, {}});
  riffle::PutRecordsOutput put;
  riffle::GetRecordsOutput got;
  std::string iterator;
  double total_us = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = kinesis.CreateStream({.stream_name = "scenario", .shard_count = kShards});
        !s.ok()) {
      Fail("CreateStream", s);
    }
    for (int b = 0; b < kRecords; b += kBatch) {
      const std::span<const riffle::PutRecordsRequestEntry> batch(entries.data() + b, kBatch);
      absl::Status s = kinesis.PutRecords({.stream_name = "scenario", .records = batch}, put);
      if (!s.ok() || put.failed_record_count != 0) Fail("PutRecords", s);
    }
    std::size_t read = 0;
    auto shards = kinesis.ListShards({.stream_name = "scenario"});
    if (!shards.ok()) Fail("ListShards", shards.status());
    for (const riffle::Shard& shard : shards->shards) {
      auto it = kinesis.GetShardIterator({.stream_name = "scenario", .shard_id = shard.shard_id});
      if (!it.ok()) Fail("GetShardIterator", it.status());
      iterator = it->shard_iterator;
      for (;;) {
        if (absl::Status s = kinesis.GetRecords({.shard_iterator = iterator}, got); !s.ok()) {
          Fail("GetRecords", s);
        }
        read += got.result.records.size();
        if (got.result.records.empty()) break;
        iterator.assign(got.next_shard_iterator);
      }
    }
    if (read != kRecords) Fail("read back", absl::InternalError(fmt::format("{} records", read)));
    if (absl::Status s = kinesis.DeleteStream({.stream_name = "scenario"}); !s.ok()) {
      Fail("DeleteStream", s);
    }
    total_us +=
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  }
  state.counters["scenario_us"] = benchmark::Counter(total_us, benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRecords);
}
BENCHMARK(BM_Account_TestDoubleScenario)->Unit(benchmark::kMicrosecond);

// The same scenario straight on riffle::Stream (no names, no iterator strings): what the
// account adds to it.
void BM_Account_TestDoubleScenarioOnStream(benchmark::State& state) {
  constexpr int kRecords = 10000;
  constexpr int kBatch = 500;
  const auto keys = Keys(kRecords, 1);
  const std::string data(kDataBytes, 'd');
  std::vector<riffle::PutRecordsRequestEntry> entries;
  for (const auto& k : keys) entries.push_back({k, data, {}});
  riffle::PutRecordsResult put;
  riffle::GetRecordsResult got;
  double total_us = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    riffle::StreamOptions o;
    o.stream_name = "scenario";
    o.shard_count = 4;
    auto stream = riffle::Stream::Create(o);
    if (!stream.ok()) Fail("Create", stream.status());
    for (int b = 0; b < kRecords; b += kBatch) {
      const std::span<const riffle::PutRecordsRequestEntry> batch(entries.data() + b, kBatch);
      absl::Status s = (*stream)->PutRecords(batch, put);
      if (!s.ok() || put.failed_record_count != 0) Fail("PutRecords", s);
    }
    std::size_t read = 0;
    auto shards = (*stream)->ListShards();
    if (!shards.ok()) Fail("ListShards", shards.status());
    for (const riffle::Shard& shard : *shards) {
      auto it = (*stream)->GetShardIterator({.shard_id = shard.shard_id});
      if (!it.ok()) Fail("GetShardIterator", it.status());
      riffle::ShardIterator iterator = *it;
      for (;;) {
        if (absl::Status s = (*stream)->GetRecords(iterator, got); !s.ok()) Fail("GetRecords", s);
        read += got.records.size();
        if (got.records.empty()) break;
        iterator = *got.next_shard_iterator;
      }
    }
    if (read != kRecords) Fail("read back", absl::InternalError(fmt::format("{} records", read)));
    stream->reset();
    total_us +=
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  }
  state.counters["scenario_us"] = benchmark::Counter(total_us, benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRecords);
}
BENCHMARK(BM_Account_TestDoubleScenarioOnStream)->Unit(benchmark::kMicrosecond);

}  // namespace
