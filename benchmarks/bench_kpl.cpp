// KPL aggregation and de-aggregation beside BM_Peer_Memcpy (bench_delivery.cpp), on 100-byte
// user records with 16-byte partition keys ("user-" and 11 digits; 4,096 distinct keys, or
// every key distinct with keys:0):
//   BM_Kpl_Aggregate      Aggregator::Add, 4-shard map, 51,200-byte aggregates
//   BM_Kpl_Deaggregate    Deaggregator::Decode of one GetRecords batch of one shard's
//                         aggregates, checking every user record's hash key against the
//                         shard's range as the KCL does (check:0 passes the whole key space:
//                         nothing to check, as for a stream of one shard). 20 aggregates
//                         (1 MiB: one second of a shard at its write limit) or 200 (10 MiB, the
//                         most GetRecords returns)
//   BM_Kpl_DeaggregateOne Deaggregate() record by record (scalar MD5), 20 aggregates
//   BM_Kpl_Md5            the multi-buffer MD5 alone on 200 aggregates, by lane count
// bytes_per_second counts user data (100 bytes a record), the bytes BM_Peer_Memcpy moves;
// kinesis_bytes_per_second counts the aggregates read.
// Run: build/release/benchmarks/riffle_bench --benchmark_filter='BM_Kpl_|BM_Peer_Memcpy'
#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/md5_lanes.h"
#include "fmt/format.h"
#include "riffle/kpl.h"

namespace {

constexpr size_t kDataBytes = 100;
constexpr size_t kKeys = 4096;

// The key of user record i: one of 4,096, or (distinct) its own.
std::string Key(size_t i, bool distinct) {
  return fmt::format("user-{:011}", (distinct ? i : i % kKeys) * 7919);
}

std::string Data(size_t i) {
  std::string d = fmt::format("{{\"seq\":{},\"event\":\"click\",\"value\":{}}}", i, i * 31 % 1000);
  d.resize(kDataBytes - 1, ' ');
  d.push_back('\n');
  return d;
}

std::vector<riffle::Shard> FourShards() {
  const auto ranges = riffle::UniformHashKeyRanges(4);
  std::vector<riffle::Shard> shards(4);
  for (int i = 0; i < 4; ++i) {
    shards[i].shard_id = riffle::FormatShardId(i);
    shards[i].hash_key_range = ranges[i];
  }
  return shards;
}

void BM_Kpl_Aggregate(benchmark::State& state) {
  auto aggregator = *riffle::kpl::Aggregator::Create({});
  std::vector<riffle::kpl::Aggregate> ready;
  aggregator->SetShardMap(FourShards(), ready);
  std::vector<std::string> keys, data;
  for (size_t i = 0; i < kKeys; ++i) {
    keys.push_back(Key(i, false));
    data.push_back(Data(i));
  }
  size_t next = 0;
  for (auto _ : state) {
    if (!aggregator->Add({keys[next], data[next], ""}, ready).ok()) state.SkipWithError("Add");
    if (ready.size() >= 64) ready.clear();
    next = (next + 1) % kKeys;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kDataBytes));
}
BENCHMARK(BM_Kpl_Aggregate);

// One shard's aggregates, as a GetRecords batch would hold them (about 51,200 bytes each).
struct Batch {
  std::vector<std::string> data;
  std::vector<riffle::Record> records;
  riffle::HashKeyRange range;
  uint64_t user_records = 0;
  uint64_t bytes = 0;
};

Batch MakeBatch(size_t aggregates, bool distinct_keys) {
  {
    Batch b;
    const auto shards = FourShards();
    b.range = shards[0].hash_key_range;
    auto aggregator = *riffle::kpl::Aggregator::Create({});
    std::vector<riffle::kpl::Aggregate> ready;
    aggregator->SetShardMap(shards, ready);
    for (size_t i = 0; b.data.size() < aggregates; ++i) {
      (void)aggregator->Add({Key(i, distinct_keys), Data(i), ""}, ready);
      for (auto& a : ready) {
        if (a.shard_id != shards[0].shard_id || b.data.size() == aggregates) continue;
        b.user_records += a.user_records;
        b.bytes += a.data.size();
        b.data.push_back(std::move(a.data));
      }
      ready.clear();
    }
    for (const std::string& d : b.data) {
      b.records.push_back(riffle::Record{riffle::kpl::kAggregatePartitionKey, d, {}, {}});
    }
    return b;
  }
}

// Batches made once: (aggregates, distinct keys).
const Batch& ShardBatch(size_t aggregates, bool distinct_keys) {
  static std::map<std::pair<size_t, bool>, Batch> batches;
  auto it = batches.find({aggregates, distinct_keys});
  if (it == batches.end()) {
    it = batches.emplace(std::pair(aggregates, distinct_keys), MakeBatch(aggregates, distinct_keys))
             .first;
  }
  return it->second;
}

void Report(benchmark::State& state, const Batch& b) {
  const auto iterations = static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * b.user_records));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * b.user_records * kDataBytes));
  state.counters["kinesis_bytes_per_second"] =
      benchmark::Counter(iterations * static_cast<double>(b.bytes), benchmark::Counter::kIsRate);
}

void BM_Kpl_Deaggregate(benchmark::State& state) {
  const Batch& b = ShardBatch(static_cast<size_t>(state.range(0)), state.range(1) == 0);
  riffle::kpl::Deaggregator deaggregator;
  std::vector<riffle::UserRecord> out;
  const riffle::HashKeyRange range = state.range(2) != 0 ? b.range : riffle::HashKeyRange{};
  for (auto _ : state) {
    out.clear();
    deaggregator.Decode(b.records, range, out);
    benchmark::DoNotOptimize(out.data());
  }
  if (out.size() != b.user_records || deaggregator.stats().misplaced_aggregates != 0) {
    state.SkipWithError("wrong user records");
  }
  state.counters["md5_lanes"] = riffle::detail::Md5Lanes();
  Report(state, b);
}
BENCHMARK(BM_Kpl_Deaggregate)
    ->ArgNames({"aggregates", "keys", "check"})
    ->Args({20, kKeys, 1})
    ->Args({20, 0, 1})
    ->Args({200, kKeys, 1})
    ->Args({20, kKeys, 0})
    ->Unit(benchmark::kMicrosecond);

void BM_Kpl_DeaggregateOne(benchmark::State& state) {
  const Batch& b = ShardBatch(20, false);
  std::vector<riffle::UserRecord> out;
  for (auto _ : state) {
    out.clear();
    for (const riffle::Record& r : b.records) riffle::kpl::Deaggregate(r, out, b.range);
    benchmark::DoNotOptimize(out.data());
  }
  if (out.size() != b.user_records) state.SkipWithError("wrong user records");
  Report(state, b);
}
BENCHMARK(BM_Kpl_DeaggregateOne)->Unit(benchmark::kMicrosecond);

void BM_Kpl_Md5(benchmark::State& state) {
  const Batch& b = ShardBatch(200, false);
  std::vector<riffle::detail::Md5Job> jobs(b.data.size());
  int used = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      jobs[i] = {};
      jobs[i].data = reinterpret_cast<const unsigned char*>(b.data[i].data());
      jobs[i].size = b.data[i].size();
    }
    used = riffle::detail::Md5JobsWith(static_cast<int>(state.range(0)), jobs.data(), jobs.size());
    benchmark::DoNotOptimize(jobs.data());
  }
  state.counters["lanes_used"] = used;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * b.bytes));
}
BENCHMARK(BM_Kpl_Md5)->ArgName("lanes")->Arg(1)->Arg(16)->Arg(32)->Unit(benchmark::kMillisecond);

}  // namespace
