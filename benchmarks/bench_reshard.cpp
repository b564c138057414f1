// Put rate after resharding: the routing snapshot of a stream that went through K random
// splits and merges (an uneven layout, hundreds of closed shards) against K = 0.
//   build/release/benchmarks/riffle_bench --benchmark_filter='BM_PutRecord_AfterReshards'
//   --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "riffle/stream.h"

namespace {

// One random split (anywhere inside a shard) or merge of adjacent shards; 2..8 stay open.
void RandomReshard(riffle::Stream& stream, std::mt19937_64& rng) {
  auto open = *stream.ListShards({riffle::ShardFilterType::kAtLatest, {}, {}});
  std::sort(open.begin(), open.end(), [](const auto& a, const auto& b) {
    return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
  });
  const std::size_t n = open.size();
  if (n <= 2 || (n < 8 && rng() % 2 == 0)) {
    const riffle::Shard& s = open[rng() % n];
    const riffle::HashKey width =
        s.hash_key_range.ending_hash_key - s.hash_key_range.starting_hash_key;
    const riffle::HashKey key =
        s.hash_key_range.starting_hash_key + 2 + absl::MakeUint128(rng(), rng()) % (width - 3);
    (void)stream.SplitShard(s.shard_id, riffle::FormatHashKey(key));
  } else {
    const std::size_t i = rng() % (n - 1);
    (void)stream.MergeShards(open[i].shard_id, open[i + 1].shard_id);
  }
}

void BM_PutRecord_AfterReshards(benchmark::State& state) {
  riffle::StreamOptions o;
  o.stream_name = "bench";
  o.shard_count = 4;
  o.ring_capacity_bytes = uint64_t{1} << 20;
  o.max_record_size_bytes = 1024;
  // XXH3 keeps hashing cheap, so routing is a larger share of the put than with MD5.
  o.routing = riffle::RoutingMode::kXxh3;
  auto stream = *riffle::Stream::Create(o);
  std::mt19937_64 rng(7);
  for (int64_t i = 0; i < state.range(0); ++i) RandomReshard(*stream, rng);

  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) keys.push_back(fmt::format("key-{}", i));
  const std::string data(64, 'x');
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = stream->PutRecord(keys[i], data);
    benchmark::DoNotOptimize(r);
    i = (i + 1) & (keys.size() - 1);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["open_shards"] = stream->DescribeStreamSummary().open_shard_count;
  state.counters["all_shards"] = static_cast<double>(stream->ListShards()->size());
}
BENCHMARK(BM_PutRecord_AfterReshards)->Arg(0)->Arg(16)->Arg(256);

}  // namespace
