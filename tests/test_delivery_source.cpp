// DeliveryStream with a Stream source: LATEST start, exactly-once per-key order, iterator
// refresh after idle, trimmed records, backpressure, the delivery thread, refused puts.
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "delivery_test_helpers.h"
#include "fmt/format.h"
#include "riffle/delivery_stream.h"
#include "riffle/sink.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

namespace riffle_test {
namespace {

std::unique_ptr<riffle::Stream> MakeSourceStream(riffle::Clock* clock, int shards,
                                                 uint64_t ring = uint64_t{8} << 20,
                                                 uint64_t max_record = uint64_t{1} << 20) {
  riffle::StreamOptions o;
  o.stream_name = "source";
  o.shard_count = shards;
  o.ring_capacity_bytes = ring;
  o.max_record_size_bytes = max_record;
  o.clock = clock;
  auto s = riffle::Stream::Create(o);
  REQUIRE(s.ok());
  return *std::move(s);
}

// Records the objects in the order the sink accepted them (MemorySink sorts by key).
struct RecordingSink {
  riffle::MemorySink store;
  std::mutex mu;
  std::vector<std::string> bodies;
  std::atomic<bool> failing{false};
  riffle::CallbackSink sink{[this](std::string_view key, std::string_view data) {
    if (failing.load()) return absl::UnavailableError("sink down");
    std::lock_guard<std::mutex> lock(mu);
    bodies.emplace_back(data);
    return store.PutObject(key, data);
  }};

  // Newline-delimited records, in delivery order.
  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> out;
    for (const auto& body : bodies) {
      size_t start = 0;
      for (size_t i = body.find('\n'); i != std::string::npos; i = body.find('\n', start)) {
        out.push_back(body.substr(start, i - start));
        start = i + 1;
      }
      REQUIRE(start == body.size());
    }
    return out;
  }
};

// "key|n": checks each record once and, per key, n increasing by 1 from 0.
void CheckExactlyOnceInKeyOrder(const std::vector<std::string>& lines,
                                const std::map<std::string, int>& expected_per_key) {
  std::map<std::string, int> next;
  std::set<std::string> seen;
  for (const auto& line : lines) {
    INFO(line);
    CHECK(seen.insert(line).second);
    const size_t bar = line.find('|');
    REQUIRE(bar != std::string::npos);
    const std::string key = line.substr(0, bar);
    CHECK(std::stoi(line.substr(bar + 1)) == next[key]);
    ++next[key];
  }
  CHECK(next == expected_per_key);
}

DeliveryStreamOptions SourceOptions(riffle::Sink* sink, riffle::Clock* clock,
                                    riffle::Stream* stream) {
  DeliveryStreamOptions o = BaseOptions(sink, clock);
  o.source = riffle::StreamSource{stream};
  o.append_newline_delimiter = true;
  return o;
}

}  // namespace

TEST_CASE("A Stream source refuses direct puts with the service's message", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  auto missing = o;
  missing.source = riffle::StreamSource{nullptr};
  CHECK(riffle::ErrorName(DeliveryStream::Create(missing).status()) == "InvalidArgumentException");
  auto stream = MakeSourceStream(&clock, 2);
  o.source = riffle::StreamSource{stream.get()};
  auto ds = MustCreate(o);
  const std::string message =
      "This operation is not permitted on KinesisStreamAsSource delivery stream type.";
  auto r = ds->PutRecord("x");
  REQUIRE_FALSE(r.ok());
  CHECK(riffle::ErrorName(r.status()) == "InvalidArgumentException");
  CHECK(riffle::ErrorMessage(r.status()) == message);
  std::vector<std::string_view> batch{"x"};
  auto b = ds->PutRecordBatch(batch);
  REQUIRE_FALSE(b.ok());
  CHECK(riffle::ErrorName(b.status()) == "InvalidArgumentException");
  CHECK(riffle::ErrorMessage(b.status()) == message);
  auto bad_interval = o;
  bad_interval.source_poll_interval = absl::ZeroDuration();
  auto created = DeliveryStream::Create(bad_interval);
  CHECK(riffle::ErrorMessage(created.status()) ==
        "SourcePollInterval is 0; it must be between 1ms and 1h.");
}

TEST_CASE("A Stream source delivers what is put after Create, once each, in per-key order",
          "[delivery]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 4);
  RecordingSink rec;
  for (int i = 0; i < 100; ++i) {  // before Create: LATEST skips them
    REQUIRE(stream->PutRecord(fmt::format("key{}", i % 20), fmt::format("before{}|0", i)).ok());
  }
  DeliveryStreamOptions o = SourceOptions(&rec.sink, &clock, stream.get());
  o.buffering_hints = {1, 0};
  auto ds = MustCreate(o);
  std::map<std::string, int> per_key;
  std::set<std::string> shards_used;
  for (int i = 0; i < 4000; ++i) {
    const std::string key = fmt::format("key{}", i % 40);
    auto put = stream->PutRecord(key, fmt::format("{}|{}", key, per_key[key]++));
    REQUIRE(put.ok());
    shards_used.insert(std::string(put->shard_id));
    if (i % 97 == 0) ds->Pump();
    if (i % 500 == 0) clock.Advance(absl::Seconds(1));
  }
  CHECK(shards_used.size() == 4);
  ds->Pump();
  REQUIRE(ds->Close().ok());
  CheckExactlyOnceInKeyOrder(rec.Lines(), per_key);
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == 4000);
  CHECK(m.delivery_records == 4000);
  CHECK(m.source_records_missed == 0);
  CHECK(rec.bodies.size() > 1);
}

TEST_CASE("Stream metadata reaches the processor: key, shard, sequence number, arrival",
          "[delivery]") {
  riffle::ManualClock clock(absl::FromUnixMillis(1'767'225'600'123));
  auto stream = MakeSourceStream(&clock, 4);
  riffle::MemorySink sink;
  std::vector<std::string> seen;
  DeliveryStreamOptions o = SourceOptions(&sink, &clock, stream.get());
  o.processor = [&](std::span<const riffle::ProcessorInput> in) {
    std::vector<riffle::ProcessorOutput> out;
    for (const auto& r : in) {
      seen.push_back(fmt::format("{} {} {} {}", r.metadata.partition_key, r.metadata.shard_id,
                                 r.metadata.sequence_number,
                                 r.metadata.approximate_arrival_timestamp_ms));
      out.push_back({r.record_id, ProcessingResult::kOk, std::string(r.data)});
    }
    return out;
  };
  auto ds = MustCreate(o);
  std::vector<std::string> expected;
  for (int i = 0; i < 3; ++i) {
    const std::string key = fmt::format("k{}", i);
    auto put = stream->PutRecord(key, "d");
    REQUIRE(put.ok());
    expected.push_back(fmt::format("{} {} {} {}", key, put->shard_id,
                                   put->sequence_number.ToString(), clock.NowMillis()));
    clock.Advance(absl::Milliseconds(7));
  }
  REQUIRE(ds->Close().ok());  // Close reads nothing more: Pump first
  CHECK(seen.empty());

  auto ds2 = MustCreate(o);
  expected.clear();
  for (int i = 0; i < 3; ++i) {
    const std::string key = fmt::format("k{}", i);
    auto put = stream->PutRecord(key, "d");
    REQUIRE(put.ok());
    expected.push_back(fmt::format("{} {} {} {}", key, put->shard_id,
                                   put->sequence_number.ToString(), clock.NowMillis()));
  }
  ds2->Pump();
  REQUIRE(ds2->Close().ok());
  std::sort(seen.begin(), seen.end());
  std::sort(expected.begin(), expected.end());
  CHECK(seen == expected);
}

TEST_CASE("ManualClock: interval delivery, and reading resumes after more than 5 idle minutes",
          "[delivery]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 4);
  RecordingSink rec;
  DeliveryStreamOptions o = SourceOptions(&rec.sink, &clock, stream.get());
  o.buffering_hints = {1, 60};
  auto ds = MustCreate(o);
  std::map<std::string, int> per_key;
  auto put = [&](const std::string& key) {
    REQUIRE(stream->PutRecord(key, fmt::format("{}|{}", key, per_key[key]++)).ok());
  };
  for (int i = 0; i < 10; ++i) put("only");  // one shard read, the other three not yet
  CHECK(ds->Pump() == 0);
  CHECK(ds->GetMetrics().incoming_records == 10);
  clock.Advance(absl::Seconds(59));
  CHECK(ds->Pump() == 0);
  clock.Advance(absl::Seconds(1));
  CHECK(ds->Pump() == 1);  // the interval, on the ManualClock
  CHECK(rec.Lines().size() == 10);

  // Idle past the 5-minute iterator lifetime, with records put before and after.
  clock.Advance(absl::Minutes(6));
  for (int i = 0; i < 200; ++i) put(fmt::format("key{}", i % 16));
  clock.Advance(absl::Minutes(6));
  for (int i = 0; i < 200; ++i) put(fmt::format("key{}", i % 16));
  CHECK(ds->Pump() == 0);
  CHECK(ds->GetMetrics().incoming_records == 410);
  clock.Advance(absl::Seconds(60));
  CHECK(ds->Pump() == 1);
  clock.Advance(absl::Minutes(30));  // idle again, nothing new
  CHECK(ds->Pump() == 0);
  put("only");
  clock.Advance(absl::Minutes(30));
  CHECK(ds->Flush() == 1);
  REQUIRE(ds->Close().ok());
  CheckExactlyOnceInKeyOrder(rec.Lines(), per_key);
  CHECK(ds->GetMetrics().source_records_missed == 0);
}

TEST_CASE("An idle first read after Create still skips what was put before it", "[delivery]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 4);
  RecordingSink rec;
  for (int i = 0; i < 64; ++i) {
    REQUIRE(stream->PutRecord(fmt::format("key{}", i % 16), "before|0").ok());
  }
  DeliveryStreamOptions o = SourceOptions(&rec.sink, &clock, stream.get());
  auto ds = MustCreate(o);          // same millisecond as the puts above
  clock.Advance(absl::Minutes(6));  // every LATEST iterator expires unused
  std::map<std::string, int> per_key;
  for (int i = 0; i < 64; ++i) {
    const std::string key = fmt::format("key{}", i % 16);
    REQUIRE(stream->PutRecord(key, fmt::format("{}|{}", key, per_key[key]++)).ok());
  }
  ds->Pump();
  REQUIRE(ds->Close().ok());
  CheckExactlyOnceInKeyOrder(rec.Lines(), per_key);
  CHECK(ds->GetMetrics().source_records_missed == 0);
}

TEST_CASE("Records trimmed from the Stream before they are read count as missed", "[delivery]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 1, uint64_t{1} << 16, 1024);
  riffle::MemorySink sink;
  DeliveryStreamOptions o = SourceOptions(&sink, &clock, stream.get());
  auto ds = MustCreate(o);
  const std::string data(200, 'm');
  constexpr int kPuts = 2000;  // ~450 KiB of frames through a 64 KiB ring
  for (int i = 0; i < kPuts; ++i) REQUIRE(stream->PutRecord("k", data).ok());
  ds->Pump();
  REQUIRE(ds->Close().ok());
  const auto m = ds->GetMetrics();
  CHECK(m.source_records_missed > 0);
  CHECK(m.incoming_records > 0);
  CHECK(m.incoming_records + m.source_records_missed == kPuts);
  CHECK(m.delivery_records == m.incoming_records);
}

TEST_CASE("Records of a closed parent that aged out unread count as missed, with the children's",
          "[delivery]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 1, uint64_t{1} << 20, 1024);
  riffle::MemorySink sink;
  auto ds = MustCreate(SourceOptions(&sink, &clock, stream.get()));
  for (int i = 0; i < 10; ++i) REQUIRE(stream->PutRecord(fmt::format("k{}", i), "parent").ok());
  REQUIRE(
      stream->SplitShard(riffle::FormatShardId(0), "170141183460469231731687303715884105728").ok());
  for (int i = 0; i < 10; ++i) REQUIRE(stream->PutRecord(fmt::format("k{}", i), "child").ok());
  // Nothing was read before the retention period passed: the parent aged out whole, and the
  // children's records too.
  clock.Advance(absl::Hours(25));
  for (int i = 0; i < 5; ++i) ds->Pump();
  REQUIRE(ds->Close().ok());
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == 0);
  CHECK(m.source_records_missed == 20);
}

TEST_CASE("Backpressure: a Stream source stops reading, the Stream keeps the records",
          "[delivery]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 4);
  RecordingSink rec;
  rec.failing = true;
  DeliveryStreamOptions o = SourceOptions(&rec.sink, &clock, stream.get());
  o.buffering_hints = {1, 0};
  o.max_buffered_bytes = 100;
  o.retry_options = {7200, absl::Seconds(1), absl::Seconds(1)};
  auto ds = MustCreate(o);
  std::map<std::string, int> per_key;
  constexpr int kPuts = 400;
  for (int i = 0; i < kPuts; ++i) {
    const std::string key = fmt::format("key{}", i % 8);
    REQUIRE(stream->PutRecord(key, fmt::format("{}|{}", key, per_key[key]++)).ok());
  }
  ds->Pump();
  const uint64_t read_first = ds->GetMetrics().incoming_records;
  CHECK(read_first > 0);
  CHECK(read_first < kPuts);  // one shard's read, then the budget is spent
  for (int i = 0; i < 20; ++i) {
    clock.Advance(absl::Seconds(1));
    ds->Pump();
  }
  CHECK(ds->GetMetrics().incoming_records == read_first);  // nothing read while full
  rec.failing = false;
  for (int i = 0; i < 200 && ds->GetMetrics().incoming_records < kPuts; ++i) {
    clock.Advance(absl::Seconds(1));
    ds->Pump();
  }
  REQUIRE(ds->Close().ok());
  CheckExactlyOnceInKeyOrder(rec.Lines(), per_key);
  const auto m = ds->GetMetrics();
  CHECK(m.delivery_records == kPuts);
  CHECK(m.source_records_missed == 0);
  CHECK(m.error_output_records == 0);
}

TEST_CASE("Reading a Stream source allocates nothing in steady state", "[delivery]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 4);
  riffle::CallbackSink null_sink(
      [](std::string_view, std::string_view) { return absl::OkStatus(); });
  DeliveryStreamOptions o = SourceOptions(&null_sink, &clock, stream.get());
  o.append_newline_delimiter = false;
  o.buffering_hints = {1, 900};
  auto ds = MustCreate(o);
  const std::string data(100, 'a');
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i) keys.push_back(fmt::format("key{}", i));
  auto put_some = [&] {
    for (int i = 0; i < 256; ++i) REQUIRE(stream->PutRecord(keys[i % keys.size()], data).ok());
  };
  for (int i = 0; i < 150; ++i) {  // several full 1 MiB batches: buffers reach their size
    put_some();
    ds->Pump();
  }
  ds->Flush();
  uint64_t allocations = 0;
  for (int i = 0; i < 20; ++i) {  // 20 x 256 x 100 B stays under the 1 MiB hint: no delivery
    put_some();
    riffle_test::AllocationCounter counter;
    ds->Pump();
    allocations += counter.allocations();
  }
  CHECK(ds->GetMetrics().incoming_records == 170 * 256);
  CHECK(allocations == 0);
}

TEST_CASE("Two producers into a Stream, the delivery thread reading: each record once, in order",
          "[delivery][stress]") {
  auto stream = MakeSourceStream(nullptr, 4, uint64_t{16} << 20);
  RecordingSink rec;
  DeliveryStreamOptions o = SourceOptions(&rec.sink, nullptr, stream.get());
  o.buffering_hints = {1, 0};
  o.max_buffered_bytes = 256 << 10;
  auto ds = MustCreate(o);
  REQUIRE(ds->Start().ok());

  constexpr int kProducers = 2;
  const int per_producer = 40000 / riffle_test::StressDivisor();
  std::atomic<int> failures{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<int> next(16, 0);
      for (int i = 0; i < per_producer; ++i) {
        const std::string key = fmt::format("p{}-k{}", p, i % 16);
        if (!stream->PutRecord(key, fmt::format("{}|{}", key, next[i % 16]++)).ok()) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  CHECK(failures.load() == 0);
  const uint64_t total = uint64_t{kProducers} * per_producer;
  for (int i = 0; i < 10000 && ds->GetMetrics().incoming_records < total; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(ds->Close().ok());
  std::map<std::string, int> per_key;
  for (int p = 0; p < kProducers; ++p) {
    for (int k = 0; k < 16; ++k) {
      per_key[fmt::format("p{}-k{}", p, k)] = per_producer / 16 + (k < per_producer % 16 ? 1 : 0);
    }
  }
  CheckExactlyOnceInKeyOrder(rec.Lines(), per_key);
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == total);
  CHECK(m.delivery_records == total);
  CHECK(m.source_records_missed == 0);
}

TEST_CASE("Close while a Stream is being written: everything read is delivered",
          "[delivery][stress]") {
  auto stream = MakeSourceStream(nullptr, 4, uint64_t{16} << 20);
  RecordingSink rec;
  DeliveryStreamOptions o = SourceOptions(&rec.sink, nullptr, stream.get());
  o.buffering_hints = {1, 60};
  auto ds = MustCreate(o);
  REQUIRE(ds->Start().ok());
  std::atomic<bool> stop{false};
  std::atomic<int> put_count{0};
  std::thread producer([&] {
    std::vector<int> next(8, 0);
    for (int i = 0; !stop.load(); ++i) {
      const std::string key = fmt::format("k{}", i % 8);
      if (stream->PutRecord(key, fmt::format("{}|{}", key, next[i % 8]++)).ok()) {
        put_count.fetch_add(1);
      }
      if (i >= 200000) break;
    }
  });
  for (int i = 0; i < 10000 && ds->GetMetrics().incoming_records < 1000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(ds->Close().ok());  // the 60 s interval is not waited for
  stop.store(true);
  producer.join();
  const auto lines = rec.Lines();
  const auto m = ds->GetMetrics();
  CHECK(m.delivery_records == m.incoming_records);
  CHECK(lines.size() == m.incoming_records);
  // Per key, a prefix of what was put, once each.
  std::map<std::string, int> next;
  for (const auto& line : lines) {
    const size_t bar = line.find('|');
    const std::string key = line.substr(0, bar);
    CHECK(std::stoi(line.substr(bar + 1)) == next[key]++);
  }
}

TEST_CASE("A Stream source follows splits and merges: parents before children, once each",
          "[delivery][reshard]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 2);
  RecordingSink rec;
  DeliveryStreamOptions o = SourceOptions(&rec.sink, &clock, stream.get());
  o.buffering_hints = {1, 0};
  auto ds = MustCreate(o);
  std::map<std::string, int> per_key;
  auto put_some = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const std::string key = fmt::format("key{}", i % 30);
      REQUIRE(stream->PutRecord(key, fmt::format("{}|{}", key, per_key[key]++)).ok());
    }
  };
  put_some(300);
  ds->Pump();
  put_some(300);  // left unread in the parents across the split
  REQUIRE(
      stream->SplitShard("shardId-000000000000", "85070591730234615865843651857942052864").ok());
  put_some(300);  // now in the children
  ds->Pump();
  put_some(300);
  REQUIRE(stream->MergeShards("shardId-000000000003", "shardId-000000000001").ok());
  put_some(300);  // in the merge child, which must wait for both parents
  for (int i = 0; i < 6; ++i) {
    clock.Advance(absl::Seconds(1));
    ds->Pump();
  }
  put_some(300);
  for (int i = 0; i < 4; ++i) ds->Pump();
  REQUIRE(ds->Close().ok());
  CheckExactlyOnceInKeyOrder(rec.Lines(), per_key);
  CHECK(ds->GetMetrics().source_records_missed == 0);
}

}  // namespace riffle_test

namespace riffle_test {

// A merge child whose other parent the source has not met yet (a child of a shard it is
// still reading) must wait for that parent: once read the child's records came before
// the parent's and then a second time.
TEST_CASE("A merge child waits for a parent the source has not met yet", "[delivery][regression]") {
  riffle::ManualClock clock;
  auto stream = MakeSourceStream(&clock, 2);  // shard 0: lower half, shard 1: upper half
  const riffle::HashKey quarter3 = riffle::kMaxHashKey / 4 * 3;
  std::vector<std::string> lower, upper_low, upper_high;  // shard 0, shard 2, shard 3
  for (int i = 0; lower.size() < 8 || upper_low.size() < 8 || upper_high.size() < 8; ++i) {
    const std::string key = fmt::format("key{}", i);
    const riffle::HashKey h = riffle::Md5HashKey(key);
    (h <= riffle::kMaxHashKey / 2 ? lower : h < quarter3 ? upper_low : upper_high).push_back(key);
  }
  RecordingSink rec;
  DeliveryStreamOptions o = SourceOptions(&rec.sink, &clock, stream.get());
  o.buffering_hints = {1, 0};
  auto ds = MustCreate(o);
  std::map<std::string, int> per_key;
  auto put = [&](const std::vector<std::string>& keys, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string& key = keys[static_cast<size_t>(i) % keys.size()];
      REQUIRE(stream->PutRecord(key, fmt::format("{}|{}", key, per_key[key]++)).ok());
    }
  };
  put(lower, 50);
  put(upper_low, 25000);  // shard 1 takes several reads: the source is still in it...
  REQUIRE(stream->SplitShard("shardId-000000000001", riffle::FormatHashKey(quarter3)).ok());
  put(upper_low, 100);  // ...when shard 0 ends, naming child 4, whose other parent is 2
  REQUIRE(stream->MergeShards("shardId-000000000000", "shardId-000000000002").ok());
  put(upper_low, 100);
  put(lower, 100);
  put(upper_high, 100);
  for (int i = 0; i < 12; ++i) {
    clock.Advance(absl::Seconds(1));
    ds->Poll();
  }
  REQUIRE(ds->Close().ok());
  CheckExactlyOnceInKeyOrder(rec.Lines(), per_key);
  CHECK(ds->GetMetrics().source_records_missed == 0);
}

}  // namespace riffle_test
