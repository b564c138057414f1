// Producers racing random splits and merges: nothing lost, duplicated or misrouted, and
// per-key order holds across lineage for a reader that reads parents before children.
// Run under TSan and ASan+UBSan in CI.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/lineage_reader.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

namespace {

constexpr int kProducers = 4;
constexpr int kKeysPerProducer = 16;  // 64 keys in all

struct Tally {
  uint64_t records = 0;
  uint64_t out_of_order = 0;  // includes duplicates and gaps: counters must be consecutive
  uint64_t misrouted = 0;
  uint64_t torn = 0;
  std::string error;
  std::vector<std::vector<int64_t>> last =
      std::vector<std::vector<int64_t>>(kProducers, std::vector<int64_t>(kKeysPerProducer, -1));
};

// Records are "<producer>:<key>:<counter>" under the key "p<producer>-k<key>".
void Check(Tally& t, const riffle::LineageReader::ShardInfo& shard, const riffle::Record& r) {
  int p = -1, k = -1;
  long long c = -1;
  const std::string data(r.data);
  if (std::sscanf(data.c_str(), "%d:%d:%lld", &p, &k, &c) != 3 || p < 0 || p >= kProducers ||
      k < 0 || k >= kKeysPerProducer || r.partition_key != fmt::format("p{}-k{}", p, k) ||
      data != fmt::format("{}:{}:{}", p, k, c)) {
    ++t.torn;
    return;
  }
  if (!shard.range.Contains(riffle::Xxh3HashKey(r.partition_key))) ++t.misrouted;
  int64_t& prev = t.last[p][k];
  if (c != prev + 1) ++t.out_of_order;
  prev = c;
  ++t.records;
}

// Reads until `done` is set and a full pass finds nothing new.
Tally ReadFollowingLineage(riffle::Stream& stream, const std::atomic<bool>* done) {
  Tally t;
  riffle::LineageReader reader(stream);
  for (;;) {
    const bool finished = done == nullptr || done->load(std::memory_order_acquire);
    auto progress =
        reader.Poll([&](const auto& shard, const riffle::Record& r) { Check(t, shard, r); });
    if (!reader.last_error().ok()) {
      t.error = std::string(riffle::ErrorName(reader.last_error())) + ": " +
                riffle::ErrorMessage(reader.last_error());
      return t;
    }
    if (finished && progress == 0) break;
    if (progress == 0) std::this_thread::yield();
  }
  if (reader.missed_records() > 0) t.error = fmt::format("missed {}", reader.missed_records());
  return t;
}

// One random split or merge of the current open layout; keeps 2..12 shards open.
absl::Status RandomReshard(riffle::Stream& stream, std::mt19937_64& rng) {
  auto open = stream.ListShards({riffle::ShardFilterType::kAtLatest, {}, {}});
  if (!open.ok()) return open.status();
  std::sort(open->begin(), open->end(), [](const auto& a, const auto& b) {
    return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
  });
  const std::size_t n = open->size();
  const bool split = n <= 2 || (n < 12 && rng() % 2 == 0);
  if (split) {
    const riffle::Shard& s = (*open)[rng() % n];
    const riffle::HashKey width =
        s.hash_key_range.ending_hash_key - s.hash_key_range.starting_hash_key;
    if (width < 8) return absl::OkStatus();
    // Anywhere strictly inside, so the layout drifts far from uniform.
    const riffle::HashKey offset = 2 + absl::MakeUint128(rng(), rng()) % (width - 3);
    return stream.SplitShard(s.shard_id,
                             riffle::FormatHashKey(s.hash_key_range.starting_hash_key + offset));
  }
  const std::size_t i = rng() % (n - 1);
  return stream.MergeShards((*open)[i].shard_id, (*open)[i + 1].shard_id);
}

// One run on a fresh stream: producers, a resharder and a lineage reader at once, then a
// second lineage reader over everything.
void RunRound(uint64_t seed) {
  INFO("seed " << seed);
  riffle::StreamOptions o;
  o.stream_name = "reshard-stress";
  o.shard_count = 1 + static_cast<int>(seed % 5);
  // Every record of the run fits in one ring, so nothing can be trimmed.
  o.ring_capacity_bytes = uint64_t{4} << 20;
  o.max_record_size_bytes = 1024;
  o.routing = riffle::RoutingMode::kXxh3;
  auto stream = *riffle::Stream::Create(o);

  const uint64_t per_producer = 12'500 / riffle_test::StressDivisor();
  const int max_reshards = 300 / riffle_test::StressDivisor();
  // Producers wait for the resharder when they get ahead, so that puts are spread over at
  // least this many reshards even on a loaded machine.
  const int min_reshards = 80 / riffle_test::StressDivisor();
  std::atomic<bool> resharding{true};
  std::atomic<int> producers_left{kProducers};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> put_errors{0};
  std::atomic<int> reshards{0};
  std::atomic<int> reshard_errors{0};
  std::string first_reshard_error;

  Tally live;
  std::thread reader([&] { live = ReadFollowingLineage(*stream, &done); });
  std::thread resharder([&] {
    std::mt19937_64 rng(seed);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (producers_left.load() > 0 && reshards.load() < max_reshards &&
           std::chrono::steady_clock::now() < deadline) {
      absl::Status s = RandomReshard(*stream, rng);
      if (!s.ok() && reshard_errors.fetch_add(1) == 0) first_reshard_error = s.ToString();
      reshards.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    resharding.store(false);
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<std::string> keys;
      std::vector<int64_t> counters(kKeysPerProducer, 0);
      for (int k = 0; k < kKeysPerProducer; ++k) keys.push_back(fmt::format("p{}-k{}", p, k));
      for (uint64_t i = 0; i < per_producer; ++i) {
        const int k = static_cast<int>(i % kKeysPerProducer);
        if (!stream->PutRecord(keys[k], fmt::format("{}:{}:{}", p, k, counters[k]++)).ok()) {
          put_errors.fetch_add(1);
        }
        // Paced, so that puts keep racing reshards for the whole run.
        if (i % 32 == 31) {
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          const int due = static_cast<int>(min_reshards * i / per_producer);
          while (reshards.load() < due && resharding.load()) {
            std::this_thread::sleep_for(std::chrono::microseconds(100));
          }
        }
      }
      producers_left.fetch_sub(1);
    });
  }
  for (auto& t : producers) t.join();
  resharder.join();
  done.store(true, std::memory_order_release);
  reader.join();

  INFO(first_reshard_error << " (" << reshards.load() << " reshards)");
  CHECK(reshard_errors.load() == 0);
  CHECK(reshards.load() >= min_reshards / 2);
  REQUIRE(put_errors.load() == 0);
  const uint64_t put = kProducers * per_producer;
  // The reader that ran alongside, then one that starts after everything.
  const Tally after = ReadFollowingLineage(*stream, nullptr);
  for (const Tally* t : {static_cast<const Tally*>(&live), &after}) {
    CHECK(t->error.empty());
    CHECK(t->records == put);
    CHECK(t->out_of_order == 0);
    CHECK(t->misrouted == 0);
    CHECK(t->torn == 0);
    for (const auto& per_key : t->last) {
      for (int k = 0; k < kKeysPerProducer; ++k) {
        CHECK(per_key[k] + 1 == static_cast<int64_t>((per_producer - k + 15) / kKeysPerProducer));
      }
    }
  }
}

}  // namespace

TEST_CASE("4 producers on 64 keys race random splits and merges: nothing lost, order kept",
          "[reshard][stress]") {
  // Fresh streams (each round's rings hold all its records) for about two seconds.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int rounds = 0;
  for (uint64_t seed = 1; rounds < 3 || (std::chrono::steady_clock::now() < deadline &&
                                         rounds < 40 / riffle_test::StressDivisor());
       ++seed, ++rounds) {
    RunRound(seed);
  }
}
