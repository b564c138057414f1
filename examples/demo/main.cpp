// riffle-demo: producers put keyed records into a Stream while readers, each reading every
// shard, verify per-key order and count what they got. A progress line shows the rates; a
// summary (and with --json, one JSON object as the last line) ends the run.
//
//   riffle-demo [--producers N] [--shards S] [--readers K] [--records R]
//               [--record-bytes B] [--ring-bytes BYTES] [--json]
#include <algorithm>
#include <bit>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/stream.h"
#include "verifier.h"

namespace {

struct Flags {
  int producers = 2;
  int shards = 4;
  int readers = 2;
  uint64_t records = 1'000'000;
  std::size_t record_bytes = 100;
  uint64_t ring_bytes = 0;  // 0: large enough to retain the whole run
  int keys_per_producer = 64;
  bool json = false;
};

[[noreturn]] void Usage(const char* error) {
  std::fprintf(stderr,
               "riffle-demo: %s\n"
               "usage: riffle-demo [--producers N] [--shards S] [--readers K] [--records R]\n"
               "                   [--record-bytes B] [--ring-bytes BYTES] [--json]\n",
               error);
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> long long {
      if (i + 1 >= argc) Usage(fmt::format("{} needs a value", arg).c_str());
      char* end = nullptr;
      const long long v = std::strtoll(argv[++i], &end, 10);
      if (*end != '\0' || v < 0) Usage(fmt::format("{} needs a non-negative number", arg).c_str());
      return v;
    };
    if (arg == "--producers") f.producers = static_cast<int>(value());
    else if (arg == "--shards") f.shards = static_cast<int>(value());
    else if (arg == "--readers") f.readers = static_cast<int>(value());
    else if (arg == "--records") f.records = static_cast<uint64_t>(value());
    else if (arg == "--record-bytes") f.record_bytes = static_cast<std::size_t>(value());
    else if (arg == "--ring-bytes") f.ring_bytes = static_cast<uint64_t>(value());
    else if (arg == "--json") f.json = true;
    else if (arg == "--help" || arg == "-h") Usage("help");
    else Usage(fmt::format("unknown flag {}", arg).c_str());
  }
  if (f.producers < 1 || f.shards < 1 || f.readers < 0) Usage("producers and shards must be >= 1");
  if (f.record_bytes < 32) Usage("--record-bytes must be at least 32 (key, counter, filler)");
  return f;
}

uint64_t AutoRingBytes(const Flags& f) {
  // Room for every record of the run in each shard's share, with slack for uneven hashing.
  const uint64_t frame = riffle::detail::FrameBytes(16, f.record_bytes);
  const uint64_t per_shard = f.records * frame * 3 / 2 / static_cast<uint64_t>(f.shards) + (1 << 20);
  return std::max<uint64_t>(std::bit_ceil(per_shard), uint64_t{8} << 20);
}

// A polling reader: its own iterator per shard, round-robin GetRecords into one reused result.
void PollingReader(riffle::Stream& stream, const std::atomic<bool>& producers_done,
                   demo::OrderVerifier& verifier, uint64_t* missed) {
  std::vector<riffle::ShardIterator> iterators;
  const std::vector<riffle::Shard> shards = *stream.ListShards();
  for (const riffle::Shard& shard : shards) {
    riffle::GetShardIteratorRequest r;
    r.shard_id = shard.shard_id;
    r.type = riffle::ShardIteratorType::kTrimHorizon;
    iterators.push_back(*stream.GetShardIterator(r));
  }
  riffle::GetRecordsResult result;
  for (;;) {
    const bool done = producers_done.load(std::memory_order_acquire);
    bool progressed = false;
    for (auto& it : iterators) {
      if (absl::Status s = stream.GetRecords(it, result); !s.ok()) {
        std::fprintf(stderr, "GetRecords: %s\n", s.ToString().c_str());
        std::exit(1);
      }
      for (const riffle::Record& r : result.records) verifier.See(r.partition_key, r.data);
      *missed += result.missed_records;
      progressed = progressed || !result.records.empty();
      it = *result.next_shard_iterator;
    }
    if (done && !progressed) return;
    if (!progressed) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  riffle::StreamOptions options;
  options.stream_name = "riffle-demo";
  options.shard_count = flags.shards;
  options.ring_capacity_bytes = flags.ring_bytes != 0 ? flags.ring_bytes : AutoRingBytes(flags);
  options.max_record_size_bytes = std::max<uint64_t>(flags.record_bytes + 64, 4096);
  auto created = riffle::Stream::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "riffle-demo: %s\n", created.status().ToString().c_str());
    return 2;
  }
  riffle::Stream& stream = **created;

  std::atomic<bool> producers_done{false};
  std::atomic<uint64_t> put{0}, put_errors{0};
  std::vector<std::unique_ptr<demo::OrderVerifier>> verifiers;
  std::vector<uint64_t> missed(static_cast<std::size_t>(flags.readers), 0);
  std::vector<std::thread> readers;
  for (int r = 0; r < flags.readers; ++r) {
    verifiers.push_back(std::make_unique<demo::OrderVerifier>(flags.producers, flags.keys_per_producer));
    readers.emplace_back(PollingReader, std::ref(stream), std::cref(producers_done),
                         std::ref(*verifiers.back()), &missed[static_cast<std::size_t>(r)]);
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> producers;
  for (int p = 0; p < flags.producers; ++p) {
    producers.emplace_back([&, p] {
      const uint64_t share = flags.records / static_cast<uint64_t>(flags.producers) +
                             (static_cast<uint64_t>(p) < flags.records % flags.producers ? 1 : 0);
      std::vector<std::string> keys;
      for (int k = 0; k < flags.keys_per_producer; ++k) keys.push_back(demo::KeyName(p, k));
      std::vector<uint64_t> counters(keys.size(), 0);
      std::string data;
      for (uint64_t i = 0; i < share; ++i) {
        const std::size_t k = i % keys.size();
        data = demo::MakeData(keys[k], counters[k]++, flags.record_bytes);
        if (stream.PutRecord(keys[k], data).ok()) {
          put.fetch_add(1, std::memory_order_relaxed);
        } else {
          put_errors.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }

  // Progress line on stderr while the producers run.
  std::atomic<bool> all_done{false};
  std::thread progress([&] {
    uint64_t last_put = 0;
    auto last = std::chrono::steady_clock::now();
    while (!all_done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      const auto now = std::chrono::steady_clock::now();
      const uint64_t p = put.load();
      const double secs = std::chrono::duration<double>(now - last).count();
      uint64_t read = 0;
      for (const auto& v : verifiers) read += v->records();
      std::fprintf(stderr, "\r  put %10llu (%6.2f M/s)  read %10llu by %d readers   ",
                   static_cast<unsigned long long>(p), (p - last_put) / secs / 1e6,
                   static_cast<unsigned long long>(read), flags.readers);
      last_put = p;
      last = now;
    }
    std::fprintf(stderr, "\n");
  });

  for (auto& t : producers) t.join();
  const double put_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  producers_done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  all_done.store(true);
  progress.join();

  const uint64_t records_put = put.load();
  uint64_t order_violations = 0, lost = 0, corrupt = 0, reported_missed = 0;
  std::map<std::string, uint64_t> records_read;
  for (int r = 0; r < flags.readers; ++r) {
    const auto& v = *verifiers[static_cast<std::size_t>(r)];
    records_read[fmt::format("poller-{}", r)] = v.records();
    order_violations += v.order_violations();
    corrupt += v.corrupt();
    lost += records_put > v.records() ? records_put - v.records() : 0;
    reported_missed += missed[static_cast<std::size_t>(r)];
  }

  std::printf("riffle-demo: %d producers, %d shards, %d readers, %zu-byte records\n",
              flags.producers, flags.shards, flags.readers, flags.record_bytes);
  std::printf("  put      %llu records in %.2f s (%.2f M records/s), %llu put errors\n",
              static_cast<unsigned long long>(records_put), put_seconds,
              records_put / put_seconds / 1e6,
              static_cast<unsigned long long>(put_errors.load()));
  for (const auto& [name, n] : records_read) {
    std::printf("  %-8s read %llu records\n", name.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("  order violations %llu, lost %llu (reported missed %llu), corrupt %llu, %.2f s total\n",
              static_cast<unsigned long long>(order_violations), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(reported_missed), static_cast<unsigned long long>(corrupt),
              seconds);
  if (flags.json) {
    std::string readers_json;
    for (const auto& [name, n] : records_read) {
      readers_json += fmt::format("{}\"{}\":{}", readers_json.empty() ? "" : ",", name, n);
    }
    std::printf(
        "{\"records_put\":%llu,\"records_read\":{%s},\"order_violations\":%llu,\"lost\":%llu,"
        "\"missed_reported\":%llu,\"corrupt\":%llu,\"put_errors\":%llu,\"producers\":%d,"
        "\"shards\":%d,\"record_bytes\":%zu,\"seconds\":%.3f,\"put_records_per_second\":%.0f}\n",
        static_cast<unsigned long long>(records_put), readers_json.c_str(),
        static_cast<unsigned long long>(order_violations), static_cast<unsigned long long>(lost),
        static_cast<unsigned long long>(reported_missed), static_cast<unsigned long long>(corrupt),
        static_cast<unsigned long long>(put_errors.load()), flags.producers, flags.shards,
        flags.record_bytes, seconds, records_put / put_seconds);
  }
  return order_violations == 0 && lost == 0 && corrupt == 0 ? 0 : 1;
}
