// The whole read side at once: producers (more threads than cores) put into one stream
// while a thread splits and merges its shards, and four readers follow it: a
// LineageReader, a Consumer in polling mode, a Consumer in enhanced fan-out mode and a
// DeliveryStream with the stream as its source. Each reader must see every record of
// every key exactly once and in put order, or count it as missed; the rings hold the
// whole run, so none may be missed. Bounded in time (StressDivisor shrinks it under the
// sanitizers); CI runs it under ThreadSanitizer.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/consumer.h"
#include "riffle/delivery_stream.h"
#include "riffle/lineage_reader.h"
#include "riffle/sink.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

namespace {

constexpr int kProducers = 4;
constexpr int kKeysPerProducer = 8;  // 32 keys

// What one reader saw, checked per key: counters must run 0, 1, 2, ... with nothing
// repeated or skipped. Used by one thread at a time.
struct Tally {
  uint64_t records = 0;
  uint64_t missed = 0;
  uint64_t out_of_order = 0;  // a counter that is not the key's previous + 1
  uint64_t malformed = 0;     // data that does not match its key
  uint64_t checkpoint_errors = 0;
  std::vector<std::vector<int64_t>> last =
      std::vector<std::vector<int64_t>>(kProducers, std::vector<int64_t>(kKeysPerProducer, -1));
  std::atomic<uint64_t> seen{0};  // records, readable from other threads

  void Add(std::string_view key, std::string_view data) {
    int p = -1, k = -1;
    long long c = -1;
    const std::string text(data);
    if (std::sscanf(text.c_str(), "%d:%d:%lld", &p, &k, &c) != 3 || p < 0 || p >= kProducers ||
        k < 0 || k >= kKeysPerProducer || key != fmt::format("p{}-k{}", p, k)) {
      ++malformed;
      return;
    }
    int64_t& previous = last[p][k];
    if (c != previous + 1) ++out_of_order;
    previous = c;
    ++records;
    seen.fetch_add(1, std::memory_order_relaxed);
  }
};

// Feeds a Consumer's records into a tally; checkpoints every batch and at shard ends.
class TallyProcessor : public riffle::RecordProcessor {
 public:
  explicit TallyProcessor(Tally* tally) : tally_(tally) {}
  void Initialize(std::string_view, std::string_view) override {}
  void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
    for (const riffle::Record& r : in.records) tally_->Add(r.partition_key, r.data);
    tally_->missed += in.missed_records;
    if (!cp.Checkpoint().ok()) ++tally_->checkpoint_errors;
  }
  void ShardEnded(riffle::Checkpointer& cp) override {
    if (!cp.Checkpoint().ok()) ++tally_->checkpoint_errors;
  }

 private:
  Tally* tally_;  // the processors of one Consumer never run at once
};

// One random split or merge; keeps 2..8 shards open.
absl::Status RandomReshard(riffle::Stream& stream, std::mt19937_64& rng) {
  auto open = stream.ListShards({riffle::ShardFilterType::kAtLatest, {}, {}});
  if (!open.ok()) return open.status();
  std::sort(open->begin(), open->end(), [](const auto& a, const auto& b) {
    return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
  });
  const size_t n = open->size();
  if (n <= 2 || (n < 8 && rng() % 2 == 0)) {
    const riffle::Shard& s = (*open)[rng() % n];
    const riffle::HashKey width =
        s.hash_key_range.ending_hash_key - s.hash_key_range.starting_hash_key;
    if (width < 8) return absl::OkStatus();
    const riffle::HashKey offset = 2 + absl::MakeUint128(rng(), rng()) % (width - 3);
    return stream.SplitShard(s.shard_id,
                             riffle::FormatHashKey(s.hash_key_range.starting_hash_key + offset));
  }
  const size_t i = rng() % (n - 1);
  return stream.MergeShards((*open)[i].shard_id, (*open)[i + 1].shard_id);
}

std::string Summary(const char* name, const Tally& t) {
  return fmt::format(
      "{}: {} records, {} missed, {} out of order, {} malformed, {} checkpoint errors", name,
      t.records, t.missed, t.out_of_order, t.malformed, t.checkpoint_errors);
}

// One run on a fresh stream with fresh readers.
void RunRound(uint64_t seed) {
  INFO("seed " << seed);
  const int64_t per_producer = 25000 / riffle_test::StressDivisor();
  const int max_reshards = 400 / riffle_test::StressDivisor();
  const int min_reshards = 200 / riffle_test::StressDivisor();
  const uint64_t total = kProducers * static_cast<uint64_t>(per_producer);

  riffle::StreamOptions o;
  o.stream_name = "pipeline";
  o.shard_count = 1 + static_cast<int>(seed % 4);
  o.routing = riffle::RoutingMode::kXxh3;
  o.max_record_size_bytes = 1024;
  o.ring_capacity_bytes = uint64_t{4} << 20;  // every shard holds the whole run: nothing trims
  auto stream = std::move(riffle::Stream::Create(o)).value();

  // The delivery stream reads from LATEST as of its creation: created before any put.
  std::mutex delivered_mu;
  std::vector<std::string> bodies;  // objects in the order the sink received them
  riffle::MemorySink memory;
  riffle::CallbackSink sink([&](std::string_view key, std::string_view data) {
    std::lock_guard<std::mutex> lock(delivered_mu);
    bodies.emplace_back(data);
    return memory.PutObject(key, data);
  });
  riffle::DeliveryStreamOptions d;
  d.delivery_stream_name = "pipeline-delivery";
  d.source = riffle::StreamSource{stream.get()};
  d.sink = &sink;
  d.buffering_hints = {1, 0};
  d.append_newline_delimiter = true;
  auto delivery = std::move(riffle::DeliveryStream::Create(d)).value();
  REQUIRE(delivery->Start().ok());

  Tally polled, pushed;
  riffle::InMemoryCheckpointStore checkpoints;
  auto make_consumer = [&](const char* app, riffle::ConsumerMode mode, Tally* tally) {
    return std::move(riffle::Consumer::Create(
                         {.stream = stream.get(),
                          .application_name = app,
                          .mode = mode,
                          .checkpoint_store = &checkpoints,
                          .processor_factory =
                              [tally] { return std::make_unique<TallyProcessor>(tally); }}))
        .value();
  };
  auto poller = make_consumer("poller", riffle::ConsumerMode::kPolling, &polled);
  auto efo = make_consumer("efo", riffle::ConsumerMode::kEnhancedFanOut, &pushed);
  REQUIRE(poller->Start().ok());
  REQUIRE(efo->Start().ok());

  Tally lineage;
  std::atomic<bool> stop_reader{false};
  std::string lineage_error;
  std::thread reader([&] {
    riffle::LineageReader r(*stream);
    while (!stop_reader.load(std::memory_order_acquire)) {
      const size_t progress = r.Poll([&](const auto&, const riffle::Record& rec) {
        lineage.Add(rec.partition_key, rec.data);
      });
      if (!r.last_error().ok()) lineage_error = r.last_error().ToString();
      if (progress == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    lineage.missed = r.missed_records();
  });

  std::atomic<int> producers_left{kProducers};
  std::atomic<int> reshards{0};
  std::atomic<bool> resharding{true};
  std::atomic<uint64_t> put_errors{0};
  std::string reshard_error;
  std::thread resharder([&] {
    std::mt19937_64 rng(seed);
    while (producers_left.load() > 0 && reshards.load() < max_reshards) {
      if (absl::Status s = RandomReshard(*stream, rng); !s.ok() && reshard_error.empty()) {
        reshard_error = s.ToString();
      }
      reshards.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    resharding.store(false);
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<int64_t> counters(kKeysPerProducer, 0);
      for (int64_t i = 0; i < per_producer; ++i) {
        const int k = static_cast<int>(i % kKeysPerProducer);
        const std::string key = fmt::format("p{}-k{}", p, k);
        if (!stream->PutRecord(key, fmt::format("{}:{}:{}", p, k, counters[k]++)).ok()) {
          put_errors.fetch_add(1);
        }
        if (i % 64 == 63) {
          // Paced, and held back until enough reshards happened, so that puts race
          // resharding for the whole run.
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

  // Every reader catches up (or the deadline passes and the checks below say who did not).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto delivered = [&] {
    const riffle::DeliveryStreamMetrics m = delivery->GetMetrics();
    return m.incoming_records + m.source_records_missed;
  };
  while (std::chrono::steady_clock::now() < deadline &&
         (lineage.seen.load() < total || polled.seen.load() < total || pushed.seen.load() < total ||
          delivered() < total)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop_reader.store(true, std::memory_order_release);
  reader.join();
  poller->Stop();
  efo->Stop();
  REQUIRE(delivery->Close().ok());

  Tally from_delivery;
  {
    std::lock_guard<std::mutex> lock(delivered_mu);
    for (const std::string& body : bodies) {
      size_t start = 0;
      for (size_t end = body.find('\n'); end != std::string::npos; end = body.find('\n', start)) {
        const std::string line = body.substr(start, end - start);
        start = end + 1;
        int p = -1, k = -1;
        if (std::sscanf(line.c_str(), "%d:%d:", &p, &k) != 2) {
          ++from_delivery.malformed;
          continue;
        }
        from_delivery.Add(fmt::format("p{}-k{}", p, k), line);
      }
    }
  }
  from_delivery.missed = delivery->GetMetrics().source_records_missed;

  INFO(fmt::format("{} records put, {} reshards ({})", total, reshards.load(), reshard_error));
  CHECK(put_errors.load() == 0);
  CHECK(reshard_error.empty());
  CHECK(reshards.load() >= min_reshards / 2);
  CHECK(lineage_error.empty());
  for (const auto& [name, t] : {std::pair<const char*, const Tally*>{"LineageReader", &lineage},
                                {"Consumer (polling)", &polled},
                                {"Consumer (enhanced fan-out)", &pushed},
                                {"DeliveryStream", &from_delivery}}) {
    INFO(Summary(name, *t));
    CHECK(t->records == total);
    CHECK(t->missed == 0);
    CHECK(t->out_of_order == 0);
    CHECK(t->malformed == 0);
    CHECK(t->checkpoint_errors == 0);
    for (int p = 0; p < kProducers; ++p) {
      for (int k = 0; k < kKeysPerProducer; ++k) {
        // Key k of a producer got one record in every kKeysPerProducer puts.
        CHECK(t->last[p][k] + 1 == (per_producer - k + kKeysPerProducer - 1) / kKeysPerProducer);
      }
    }
  }
}

}  // namespace

TEST_CASE(
    "Producers, four kinds of readers and a resharder on one stream: every record once, "
    "in key order",
    "[stress][lineage]") {
  // Fresh rounds for about two seconds (at least two).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int rounds = 0;
  for (uint64_t seed = 1; rounds < 2 || (std::chrono::steady_clock::now() < deadline &&
                                         rounds < 12 / riffle_test::StressDivisor());
       ++seed, ++rounds) {
    RunRound(seed);
  }
}
