// The Stream's put and read paths beside the physical floor of a put and two peer queues,
// all in one binary and run so that ratios mean something on a shared machine:
//   build/release/benchmarks/riffle_bench
//   --benchmark_filter='BM_PutRecord_|BM_Floor_|BM_Stream_1P1C|BM_Peer_.*_1P1C'
#include <benchmark/benchmark.h>
#include <concurrentqueue.h>

#include <array>
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/clock.h"
#include "riffle/detail/shard_log.h"
#include "riffle/stream.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace {

constexpr std::size_t kKeyBytes = 16;
constexpr std::size_t kDataBytes = 100;
constexpr std::size_t kHotKeys = 64;
// 16-byte key + 100-byte data + riffle's 32-byte header, rounded: the peers move records of
// the same size (128 bytes).
constexpr std::size_t kRecordBytes = 128;

std::vector<std::string> Keys(std::size_t n) {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < n; ++i) keys.push_back(fmt::format("key-{:012}", i * 7919));
  return keys;
}

std::unique_ptr<riffle::Stream> MakeStream(int shards, uint64_t ring, riffle::RoutingMode mode) {
  riffle::StreamOptions o;
  o.stream_name = "bench";
  o.shard_count = shards;
  o.ring_capacity_bytes = ring;
  o.max_record_size_bytes = 64 << 10;
  o.routing = mode;
  return *riffle::Stream::Create(o);
}

void PutLoop(benchmark::State& state, riffle::RoutingMode mode) {
  auto stream = MakeStream(4, uint64_t{1} << 20, mode);
  const auto keys = Keys(kHotKeys);
  const std::string data(kDataBytes, 'd');
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = stream->PutRecord(keys[i++ % kHotKeys], data);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// One thread, 16-byte keys (64 hot keys, as producers reuse keys), 100-byte data, 4 shards.
void BM_PutRecord_XxHash(benchmark::State& state) { PutLoop(state, riffle::RoutingMode::kXxh3); }
void BM_PutRecord_Md5(benchmark::State& state) { PutLoop(state, riffle::RoutingMode::kMd5); }
BENCHMARK(BM_PutRecord_XxHash);
BENCHMARK(BM_PutRecord_Md5);

// MD5 routing when every key is new (the per-thread hash key cache never hits).
void BM_PutRecord_Md5_UniqueKeys(benchmark::State& state) {
  auto stream = MakeStream(4, uint64_t{1} << 20, riffle::RoutingMode::kMd5);
  const auto keys = Keys(1 << 16);
  const std::string data(kDataBytes, 'd');
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = stream->PutRecord(keys[i++ & (keys.size() - 1)], data);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_PutRecord_Md5_UniqueKeys);

// The floor: one fetch_add claim on a preallocated power-of-two byte ring, XXH3 of the key,
// a memcpy of the 128-byte frame and one release store. Nothing real can beat it.
// kStamped adds what every put must also do and the floor leaves out: read the wall clock
// for the record's arrival time (riffle's TSC clock, as the Stream's system clock reads it)
// and write it into the frame.
template <bool kStamped>
void FloorRingPut(benchmark::State& state) {
  constexpr std::size_t kRing = std::size_t{4} << 20;
  auto ring = std::make_unique<std::array<unsigned char, kRing>>();
  std::memset(ring->data(), 0, kRing);
  alignas(64) std::atomic<uint64_t> tail{0};
  alignas(64) std::atomic<uint64_t> published{0};
  const auto keys = Keys(kHotKeys);
  unsigned char frame[kRecordBytes] = {};
  std::memset(frame + kKeyBytes, 'd', kDataBytes);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ % kHotKeys];
    const uint64_t t = tail.fetch_add(kRecordBytes, std::memory_order_relaxed);
    const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
    std::memcpy(frame, key.data(), kKeyBytes);
    if constexpr (kStamped) {
      // The hash and the time in the frame's last 16 bytes (the data's last 4 included).
      const int64_t now_ms = riffle::detail::TscWallClock::NowMillis();
      std::memcpy(frame + kRecordBytes - 16, &h, 8);
      std::memcpy(frame + kRecordBytes - 8, &now_ms, 8);
    } else {
      std::memcpy(frame + kKeyBytes + kDataBytes, &h, 8);
    }
    std::memcpy(ring->data() + (t & (kRing - 1)), frame, kRecordBytes);
    published.store(t + kRecordBytes, std::memory_order_release);
  }
  benchmark::DoNotOptimize(published.load());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
void BM_Floor_RingPut(benchmark::State& state) { FloorRingPut<false>(state); }
void BM_Floor_RingPutStamped(benchmark::State& state) { FloorRingPut<true>(state); }
BENCHMARK(BM_Floor_RingPut);
BENCHMARK(BM_Floor_RingPutStamped);

constexpr uint64_t kBatch = 1 << 16;  // records moved per benchmark iteration

// One producer thread puts into a 1-shard stream; this thread drains it with GetRecords into
// a reused result, 256 records per call at most (the peers pop 256 at a time). items/s
// counts records delivered to the consumer.
void OneProducerOneConsumer(benchmark::State& state, bool single_producer) {
  riffle::StreamOptions o;
  o.stream_name = "bench";
  o.shard_count = 1;
  o.ring_capacity_bytes = uint64_t{64} << 20;
  o.max_record_size_bytes = 64 << 10;
  o.routing = riffle::RoutingMode::kXxh3;
  o.single_producer = single_producer;
  auto stream = *riffle::Stream::Create(o);
  const auto keys = Keys(kHotKeys);
  const std::string data(kDataBytes, 'd');
  riffle::GetShardIteratorRequest req;
  req.shard_id = "shardId-000000000000";
  req.type = riffle::ShardIteratorType::kLatest;
  riffle::ShardIterator it = *stream->GetShardIterator(req);
  riffle::GetRecordsResult result;
  uint64_t delivered = 0, missed = 0;
  for (auto _ : state) {
    std::thread producer([&] {
      for (uint64_t i = 0; i < kBatch; ++i) {
        auto r = stream->PutRecord(keys[i % kHotKeys], data);
        benchmark::DoNotOptimize(r);
      }
    });
    uint64_t got = 0;
    while (got < kBatch) {  // records plus records reported missed
      (void)stream->GetRecords(it, result, 256);
      got += result.records.size() + result.missed_records;
      missed += result.missed_records;
      for (const auto& r : result.records) benchmark::DoNotOptimize(r.data.data());
      it = *result.next_shard_iterator;
    }
    producer.join();
    delivered += got;
  }
  state.SetItemsProcessed(static_cast<int64_t>(delivered - missed));
  state.counters["missed"] = static_cast<double>(missed);
}

void BM_Stream_1P1C(benchmark::State& state) { OneProducerOneConsumer(state, false); }
BENCHMARK(BM_Stream_1P1C)->UseRealTime();
// The same with StreamOptions::single_producer: no locked instruction on the claim.
void BM_Stream_1P1C_SingleProducer(benchmark::State& state) { OneProducerOneConsumer(state, true); }
BENCHMARK(BM_Stream_1P1C_SingleProducer)->UseRealTime();

struct Record128 {
  std::array<unsigned char, kRecordBytes> bytes;
};

void BM_Peer_BoostSpsc_1P1C(benchmark::State& state) {
  auto queue = std::make_unique<
      boost::lockfree::spsc_queue<Record128, boost::lockfree::capacity<1 << 16>>>();
  Record128 in{};
  uint64_t delivered = 0;
  for (auto _ : state) {
    std::thread producer([&] {
      for (uint64_t i = 0; i < kBatch; ++i) {
        in.bytes[0] = static_cast<unsigned char>(i);
        while (!queue->push(in)) riffle::detail::CpuRelax();
      }
    });
    Record128 out[256];
    for (uint64_t got = 0; got < kBatch;) {
      const std::size_t n = queue->pop(out, 256);
      benchmark::DoNotOptimize(out);
      got += n;
    }
    producer.join();
    delivered += kBatch;
  }
  state.SetItemsProcessed(static_cast<int64_t>(delivered));
}
BENCHMARK(BM_Peer_BoostSpsc_1P1C)->UseRealTime();

void BM_Peer_Moodycamel_1P1C(benchmark::State& state) {
  moodycamel::ConcurrentQueue<Record128> queue(1 << 16);
  uint64_t delivered = 0;
  for (auto _ : state) {
    std::thread producer([&] {
      moodycamel::ProducerToken token(queue);
      Record128 in{};
      for (uint64_t i = 0; i < kBatch; ++i) {
        in.bytes[0] = static_cast<unsigned char>(i);
        while (!queue.enqueue(token, in)) riffle::detail::CpuRelax();
      }
    });
    Record128 out[256];
    for (uint64_t got = 0; got < kBatch;) {
      const std::size_t n = queue.try_dequeue_bulk(out, 256);
      benchmark::DoNotOptimize(out);
      got += n;
    }
    producer.join();
    delivered += kBatch;
  }
  state.SetItemsProcessed(static_cast<int64_t>(delivered));
}
BENCHMARK(BM_Peer_Moodycamel_1P1C)->UseRealTime();

}  // namespace

namespace {

// P producer threads put into ONE shard (MD5 routing is irrelevant: one shard), each with
// 64 keys of its own and 100-byte data; only the puts are timed. The peer: the same threads
// enqueue 128-byte items into one moodycamel::ConcurrentQueue (each with a producer token).
// The baseline: the same threads claim with one fetch_add on a shared tail and copy the
// frame riffle would write (160 bytes) at the claimed place in a ring of the stream's size.
constexpr uint64_t kManyRecords = 1 << 17;  // per iteration, split across the threads
constexpr uint64_t kManyRing = uint64_t{64} << 20;

// Runs body(p, start) on `producers` threads; each calls start() once its untimed setup is
// done. Returns the seconds from the start signal until the last thread finished.
template <class Body>
double TimeProducers(int producers, Body body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      body(p, [&] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) riffle::detail::CpuRelax();
      });
    });
  }
  while (ready.load() < producers) std::this_thread::yield();
  const auto start = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<std::vector<std::string>> ProducerKeys(int producers) {
  std::vector<std::vector<std::string>> keys(producers);
  for (int p = 0; p < producers; ++p) {
    for (std::size_t k = 0; k < kHotKeys; ++k)
      keys[p].push_back(fmt::format("p{:03}-key-{:06}", p, k));
  }
  return keys;
}

void BM_Stream_ManyProducers(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  auto stream = MakeStream(1, kManyRing, riffle::RoutingMode::kXxh3);
  const auto keys = ProducerKeys(producers);
  const std::string data(kDataBytes, 'd');
  const uint64_t per_thread = kManyRecords / static_cast<uint64_t>(producers);
  for (auto _ : state) {
    state.SetIterationTime(TimeProducers(producers, [&](int p, auto start) {
      start();
      for (uint64_t i = 0; i < per_thread; ++i) {
        auto r = stream->PutRecord(keys[p][i % kHotKeys], data);
        benchmark::DoNotOptimize(r);
      }
    }));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_thread * producers));
}
BENCHMARK(BM_Stream_ManyProducers)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->UseManualTime();

void BM_Peer_Moodycamel_ManyProducers(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const uint64_t per_thread = kManyRecords / static_cast<uint64_t>(producers);
  moodycamel::ConcurrentQueue<Record128> queue(kManyRecords + 4096);
  for (auto _ : state) {
    state.SetIterationTime(TimeProducers(producers, [&](int, auto start) {
      moodycamel::ProducerToken token(queue);
      Record128 in{};
      start();
      for (uint64_t i = 0; i < per_thread; ++i) {
        in.bytes[0] = static_cast<unsigned char>(i);
        queue.enqueue(token, in);
      }
    }));
    Record128 out[256];  // drained outside the timed part
    while (queue.try_dequeue_bulk(out, 256) > 0) {
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_thread * producers));
}
BENCHMARK(BM_Peer_Moodycamel_ManyProducers)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Arg(16)
    ->UseManualTime();

// What every log that all producers append to does, and nothing else: how fast one shared
// log can grow here at P threads, whatever else a put does. Not a floor: with two cores
// writing side by side, the lines of the log's tail move between the cores on every claim,
// and back-to-back claims collide more often than puts with work between them do.
void BM_Baseline_SharedLogPut(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const uint64_t per_thread = kManyRecords / static_cast<uint64_t>(producers);
  constexpr uint64_t kFrame = riffle::detail::FrameBytes(15, kDataBytes);  // as riffle's
  std::vector<unsigned char> ring(kManyRing);
  alignas(64) std::atomic<uint64_t> tail{0};
  for (auto _ : state) {
    state.SetIterationTime(TimeProducers(producers, [&](int p, auto start) {
      std::array<unsigned char, kFrame> frame{};
      frame.fill(static_cast<unsigned char>(p));
      start();
      for (uint64_t i = 0; i < per_thread; ++i) {
        const uint64_t t = tail.fetch_add(kFrame, std::memory_order_seq_cst);
        std::memcpy(ring.data() + (t & (kManyRing - 1)), frame.data(), kFrame);
      }
    }));
  }
  benchmark::DoNotOptimize(ring.data());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_thread * producers));
}
BENCHMARK(BM_Baseline_SharedLogPut)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->UseManualTime();

}  // namespace
