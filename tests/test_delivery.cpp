// DeliveryStream: limits, buffering rules, Close, retries, backpressure, threads.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "delivery/compression.h"
#include "delivery_test_helpers.h"
#include "fmt/format.h"
#include "riffle/delivery_stream.h"
#include "riffle/sink.h"
#include "support/alloc_counter.h"

namespace riffle_test {

namespace {

// Threads that put Record(p * per_producer + j) for j < per_producer, in batches of
// `batch`, producer p on thread p; a refused batch or record counts in `failures`.
std::vector<std::thread> StartProducers(DeliveryStream& ds, int producers, int per_producer,
                                        int batch, std::atomic<int>& failures) {
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&ds, &failures, p, per_producer, batch] {
      std::vector<std::string> records;
      std::vector<std::string_view> views;
      for (int i = 0; i < per_producer; i += batch) {
        records.clear();
        for (int j = i; j < i + batch && j < per_producer; ++j) {
          records.push_back(Record(p * per_producer + j));
        }
        views.assign(records.begin(), records.end());
        auto r = ds.PutRecordBatch(views);
        if (!r.ok() || r->failed_put_count != 0) failures.fetch_add(1);
      }
    });
  }
  return threads;
}

// Adds the records of `sink`'s objects to `seen`, checking that each is under its
// partition's prefix ("p=<the record number's last digit>") and seen once only.
void CollectPartitioned(const riffle::MemorySink& sink, std::set<std::string>& seen) {
  for (const auto& [key, body] : sink.Objects()) {
    REQUIRE(StartsWith(key, "p="));
    for (auto& r : SplitRecords(body)) {
      CHECK(r[r.size() - 2] == key[2]);
      CHECK(seen.insert(r).second);
    }
  }
}

}  // namespace

TEST_CASE("DeliveryStream options are validated with Firehose-style messages", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  auto expect = [&](auto mutate, std::string_view message) {
    DeliveryStreamOptions o = BaseOptions(&sink, &clock);
    mutate(o);
    auto ds = DeliveryStream::Create(std::move(o));
    REQUIRE_FALSE(ds.ok());
    CHECK(riffle::HasErrorName(ds.status(), riffle::kInvalidArgumentException));
    CHECK(riffle::ErrorMessage(ds.status()) == message);
  };
  expect([](auto& o) { o.buffering_hints.size_in_mbs = 0; },
         "BufferingHints.SizeInMBs is 0; it must be between 1 and 128.");
  expect([](auto& o) { o.buffering_hints.size_in_mbs = 129; },
         "BufferingHints.SizeInMBs is 129; it must be between 1 and 128.");
  expect([](auto& o) { o.buffering_hints.interval_in_seconds = 901; },
         "BufferingHints.IntervalInSeconds is 901; it must be between 0 and 900.");
  expect([](auto& o) { o.retry_options.duration_in_seconds = 7201; },
         "RetryOptions.DurationInSeconds is 7201; it must be between 0 and 7200.");
  expect([](auto& o) { o.delivery_stream_name = ""; },
         "DeliveryStreamName is 0 characters; it must be between 1 and 64.");
  expect([](auto& o) { o.delivery_stream_name = "a b"; },
         "DeliveryStreamName 'a b' contains ' '; it must match [a-zA-Z0-9_.-]+.");
  expect([](auto& o) { o.sink = nullptr; },
         "Sink is null; a DeliveryStream needs a destination Sink.");
  expect([](auto& o) { o.prefix = "x/!{timestamp:yyyy/ww}/"; },
         "Prefix has the timestamp pattern letter 'w', which is not supported; supported are G "
         "y u Q q M L d D E a H k h K m s S, and text in single quotes.");
  expect([](auto& o) { o.prefix = "x/!{timestamp:yyyy/ddd}/"; },
         "Prefix has the timestamp pattern 'yyyy/ddd': too many pattern letters 'd' (3; at most "
         "2).");
  expect([](auto& o) { o.prefix = "x/!{timestamp:yyyy[MM]}/"; },
         "Prefix has the timestamp pattern 'yyyy[MM]', whose '[' is reserved (optional sections "
         "are not supported); quote it to use it as text.");
  expect([](auto& o) { o.prefix = "!{partitionKeyFromQuery:id}/"; },
         "Prefix uses !{partitionKeyFrom...} expressions but dynamic partitioning is not "
         "enabled (partition_key_function is empty).");

  DeliveryStreamOptions defaults;
  CHECK(defaults.buffering_hints.size_in_mbs == 5);
  CHECK(defaults.buffering_hints.interval_in_seconds == 300);
  CHECK(defaults.retry_options.duration_in_seconds == 300);
  CHECK(defaults.max_active_partitions == 500);
}

TEST_CASE("PutRecord and PutRecordBatch enforce Firehose limits", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  auto ds = MustCreate(BaseOptions(&sink, &clock));

  const std::string too_big(riffle::kMaxDeliveryRecordBytes + 1, 'x');
  auto r = ds->PutRecord(too_big);
  REQUIRE_FALSE(r.ok());
  CHECK(riffle::HasErrorName(r.status(), riffle::kInvalidArgumentException));
  CHECK(riffle::ErrorMessage(r.status()) ==
        "Record.Data is 1024001 bytes; it must be at most 1024000 bytes (1,000 KiB).");
  CHECK(ds->PutRecord(std::string(riffle::kMaxDeliveryRecordBytes, 'x')).ok());

  std::vector<std::string_view> many(501, "x");
  auto b = ds->PutRecordBatch(many);
  REQUIRE_FALSE(b.ok());
  CHECK(riffle::ErrorMessage(b.status()) ==
        "Records has 501 entries; it must have between 1 "
        "and 500.");
  CHECK(riffle::ErrorMessage(ds->PutRecordBatch({}).status()) ==
        "Records has 0 entries; it must have between 1 and 500.");

  const std::string mib(1'000'000, 'y');
  std::vector<std::string_view> heavy(5, mib);
  b = ds->PutRecordBatch(heavy);
  REQUIRE_FALSE(b.ok());
  CHECK(riffle::ErrorMessage(b.status()) ==
        "Records total 5000000 bytes; PutRecordBatch accepts at most 4194304 bytes (4 MiB).");

  std::vector<std::string_view> ok(500, "z");
  b = ds->PutRecordBatch(ok);
  REQUIRE(b.ok());
  CHECK(b->failed_put_count == 0);
  REQUIRE(b->request_responses.size() == 500);
  for (size_t i = 1; i < 500; ++i) {
    CHECK(b->request_responses[i].record_id == b->request_responses[i - 1].record_id + 1);
  }
  CHECK(ds->GetMetrics().incoming_records == 501);
}

TEST_CASE("A batch is delivered exactly when the size hint is reached", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.buffering_hints = {1, 900};
  auto ds = MustCreate(o);

  const std::string chunk(1000, 'a');
  size_t total = 0;
  std::string expected;
  while (total + chunk.size() < kMiB) {
    REQUIRE(ds->PutRecord(chunk).ok());
    total += chunk.size();
    expected += chunk;
  }
  const std::string rest(kMiB - total - 1, 'b');
  REQUIRE(ds->PutRecord(rest).ok());
  expected += rest;
  CHECK(ds->Poll() == 0);  // one byte short of 1 MiB
  CHECK(sink.size() == 0);

  REQUIRE(ds->PutRecord("c").ok());
  expected += "c";
  CHECK(ds->Poll() == 1);
  REQUIRE(sink.size() == 1);
  CHECK(sink.Objects().begin()->second == expected);
  CHECK(expected.size() == kMiB);
  CHECK(ds->GetMetrics().delivery_bytes == kMiB);
}

TEST_CASE("A batch is delivered when the interval elapses on the ManualClock", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.buffering_hints = {5, 60};
  auto ds = MustCreate(o);

  REQUIRE(ds->PutRecord("one;").ok());
  clock.Advance(absl::Seconds(30));
  REQUIRE(ds->PutRecord("two;").ok());  // the interval counts from the first record
  clock.Advance(absl::Seconds(30) - absl::Milliseconds(1));
  CHECK(ds->Poll() == 0);
  CHECK(ds->GetMetrics().data_freshness == absl::Seconds(60) - absl::Milliseconds(1));
  clock.Advance(absl::Milliseconds(1));
  CHECK(ds->Poll() == 1);
  REQUIRE(sink.size() == 1);
  CHECK(sink.Objects().begin()->second == "one;two;");
  CHECK(ds->GetMetrics().data_freshness == absl::ZeroDuration());

  SECTION("interval 0 delivers at the next Poll") {
    riffle::MemorySink sink0;
    DeliveryStreamOptions o0 = BaseOptions(&sink0, &clock);
    o0.buffering_hints.interval_in_seconds = 0;
    auto ds0 = MustCreate(o0);
    REQUIRE(ds0->PutRecord("now;").ok());
    CHECK(ds0->Poll() == 1);
    CHECK(sink0.Objects().begin()->second == "now;");
  }
}

TEST_CASE("Flush and Close deliver what is buffered; Close refuses later puts", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  auto ds = MustCreate(BaseOptions(&sink, &clock));
  REQUIRE(ds->PutRecord("a;").ok());
  CHECK(ds->Flush() == 1);
  REQUIRE(ds->PutRecord("b;").ok());
  CHECK(ds->status() == riffle::DeliveryStreamStatus::kActive);
  REQUIRE(ds->Close().ok());
  CHECK(sink.size() == 2);
  CHECK(ds->status() == riffle::DeliveryStreamStatus::kDeleting);
  auto r = ds->PutRecord("c;");
  REQUIRE_FALSE(r.ok());
  CHECK(riffle::HasErrorName(r.status(), riffle::kResourceInUseException));
  CHECK(riffle::ErrorMessage(r.status()) ==
        "Firehose stream orders is DELETING; puts need an ACTIVE stream.");
  REQUIRE(ds->Close().ok());  // idempotent
}

TEST_CASE("A sink failing 30% of calls: every record delivered or in the error output",
          "[delivery]") {
  riffle::MemorySink store, errors;
  riffle::ManualClock clock;
  std::mt19937 rng(1234);
  uint64_t failures = 0;
  riffle::CallbackSink flaky([&](std::string_view key, std::string_view data) {
    if (rng() % 10 < 3) {
      ++failures;
      return riffle::MakeError(absl::StatusCode::kUnavailable, "S3.SlowDown", "Please reduce.");
    }
    return store.PutObject(key, data);
  });
  DeliveryStreamOptions o = BaseOptions(&flaky, &clock);
  o.error_sink = &errors;
  o.buffering_hints = {1, 1};
  o.retry_options.duration_in_seconds = 3;
  o.compression = CompressionFormat::kGzip;
  auto ds = MustCreate(o);

  constexpr int kRecords = 200000;
  int next = 0;
  while (next < kRecords) {
    std::vector<std::string> batch;
    for (int i = 0; i < 400 && next < kRecords; ++i) batch.push_back(Record(next++));
    std::vector<std::string_view> views(batch.begin(), batch.end());
    auto r = ds->PutRecordBatch(views);
    REQUIRE(r.ok());
    REQUIRE(r->failed_put_count == 0);
    clock.Advance(absl::Milliseconds(250));
    ds->Poll();
  }
  for (int i = 0; i < 100; ++i) {
    clock.Advance(absl::Milliseconds(500));
    ds->Poll();
  }
  REQUIRE(ds->Close().ok());
  CHECK(failures > 0);

  std::set<std::string> seen;
  uint64_t delivered = 0, errored = 0;
  for (const auto& [key, body] : store.Objects()) {
    for (auto& r : SplitRecords(Gunzip(body))) {
      CHECK(seen.insert(r).second);
      ++delivered;
    }
  }
  for (const auto& [key, body] : errors.Objects()) {
    CHECK(StartsWith(key, "delivery-failed/"));
    ErrorLines e = ParseErrorObject(body);
    for (size_t i = 0; i < e.raw.size(); ++i) {
      CHECK(e.codes[i] == "S3.SlowDown");
      CHECK(seen.insert(e.raw[i]).second);
      ++errored;
    }
  }
  CHECK(seen.size() == kRecords);
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == kRecords);
  CHECK(m.delivery_records == delivered);
  CHECK(m.error_output_records == errored);
  CHECK(m.delivery_failed_records == errored);
  CHECK(m.delivery_records + m.error_output_records == kRecords);
  CHECK(m.delivery_attempts == m.delivery_objects + failures);
  CHECK(m.DeliverySuccess() < 0.8);
  CHECK(m.buffered_bytes == 0);
}

TEST_CASE("A sink that always fails: records reach the error output after the retry duration",
          "[delivery]") {
  riffle::MemorySink errors;
  riffle::ManualClock clock;
  int calls = 0;
  riffle::CallbackSink broken([&](std::string_view, std::string_view) {
    ++calls;
    return absl::UnavailableError("endpoint down");
  });
  DeliveryStreamOptions o = BaseOptions(&broken, &clock);
  o.error_sink = &errors;
  o.retry_options.duration_in_seconds = 60;
  auto ds = MustCreate(o);
  for (int i = 0; i < 1000; ++i) REQUIRE(ds->PutRecord(Record(i)).ok());
  CHECK(ds->Flush() == 0);
  CHECK(calls == 1);
  for (int s = 0; s < 59; ++s) {
    clock.Advance(absl::Seconds(1));
    ds->Poll();
  }
  CHECK(errors.size() == 0);
  const int calls_before_deadline = calls;
  CHECK(calls_before_deadline >= 6);  // 1 s doubling with jitter, capped at 30 s
  CHECK(calls_before_deadline <= 12);
  clock.Advance(absl::Seconds(1));
  ds->Poll();
  REQUIRE(errors.size() == 1);
  ErrorLines e = ParseErrorObject(errors.Objects().begin()->second);
  REQUIRE(e.raw.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(e.raw[i] == Record(i));
  CHECK(e.codes[0] == "InternalFailure");
  CHECK(e.attempts[0] == calls);
  REQUIRE(ds->Close().ok());
  const auto m = ds->GetMetrics();
  CHECK(m.error_output_records == 1000);
  CHECK(m.delivery_records == 0);
  CHECK(m.DeliverySuccess() == 0.0);
}

TEST_CASE("DataFreshness counts records still on their way to the error output", "[delivery]") {
  riffle::MemorySink errors;
  riffle::ManualClock clock;
  bool error_sink_up = false;
  riffle::CallbackSink broken(
      [](std::string_view, std::string_view) { return absl::UnavailableError("endpoint down"); });
  riffle::CallbackSink error_sink([&](std::string_view key, std::string_view data) {
    return error_sink_up ? errors.PutObject(key, data) : absl::UnavailableError("also down");
  });
  DeliveryStreamOptions o = BaseOptions(&broken, &clock);
  o.error_sink = &error_sink;
  o.retry_options.duration_in_seconds = 0;
  auto ds = MustCreate(o);
  REQUIRE(ds->PutRecord("hello").ok());
  clock.Advance(absl::Seconds(60));
  ds->Poll();  // the delivery fails for good; the error object fails too
  for (int i = 0; i < 60; ++i) {
    clock.Advance(absl::Seconds(60));
    ds->Poll();
  }
  CHECK(errors.size() == 0);
  CHECK(ds->GetMetrics().data_freshness == absl::Minutes(61));
  error_sink_up = true;
  clock.Advance(absl::Seconds(60));
  ds->Poll();
  CHECK(errors.size() == 1);
  CHECK(ds->GetMetrics().data_freshness == absl::ZeroDuration());
}

TEST_CASE("Backpressure: past max_buffered_bytes puts fail with ServiceUnavailableException",
          "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.max_buffered_bytes = 1000;
  auto ds = MustCreate(o);
  const std::string rec(100, 'r');
  std::vector<std::string_view> batch(12, rec);
  auto r = ds->PutRecordBatch(batch);
  REQUIRE(r.ok());
  CHECK(r->failed_put_count == 2);
  CHECK(r->request_responses[10].error_code == "ServiceUnavailableException");
  CHECK(r->request_responses[10].error_message == "Slow down.");
  CHECK(r->request_responses[9].error_code.empty());
  auto one = ds->PutRecord(rec);
  REQUIRE_FALSE(one.ok());
  CHECK(riffle::HasErrorName(one.status(), riffle::kServiceUnavailableException));
  CHECK(ds->GetMetrics().throttled_records == 3);
  CHECK(ds->Flush() == 1);
  CHECK(ds->PutRecord(rec).ok());  // delivered bytes free the budget
}

TEST_CASE("PutRecordBatch allocates nothing in steady state", "[delivery]") {
  riffle::ManualClock clock;
  riffle::CallbackSink null_sink(
      [](std::string_view, std::string_view) { return absl::OkStatus(); });
  DeliveryStreamOptions o = BaseOptions(&null_sink, &clock);
  o.buffering_hints = {1, 900};
  auto ds = MustCreate(o);
  const std::string rec(100, 'p');
  std::vector<std::string_view> batch(500, rec);
  riffle::PutRecordBatchResult result;
  for (int i = 0; i < 200; ++i) {  // warm up buffers across several deliveries
    REQUIRE(ds->PutRecordBatch(batch, result).ok());
    ds->Poll();
  }
  uint64_t allocations = 0;
  for (int i = 0; i < 50; ++i) {
    {
      riffle_test::AllocationCounter counter;
      REQUIRE(ds->PutRecordBatch(batch, result).ok());
      allocations += counter.allocations();
    }
    ds->Poll();  // the pump allocates (keys, formatting); producers do not
  }
  CHECK(allocations == 0);
}

TEST_CASE("Puts with dynamic partitioning allocate nothing in steady state", "[delivery]") {
  riffle::ManualClock clock;
  riffle::CallbackSink null_sink(
      [](std::string_view, std::string_view) { return absl::OkStatus(); });
  DeliveryStreamOptions o = BaseOptions(&null_sink, &clock);
  o.buffering_hints = {1, 900};
  o.prefix = "p=!{partitionKeyFromQuery:p}/";
  o.partition_key_function = [](std::string_view data, const riffle::RecordMetadata&,
                                riffle::PartitionKeys& keys) {
    keys.Set("p", data.substr(0, 1));
    return true;
  };
  auto ds = MustCreate(o);
  std::vector<std::string> records;
  for (char p : {'a', 'b', 'c'}) records.push_back(std::string(100, p));
  std::vector<std::string_view> batch;
  for (int i = 0; i < 500; ++i) batch.push_back(records[i % 3]);
  riffle::PutRecordBatchResult result;
  for (int i = 0; i < 200; ++i) {  // warm up: every partition seals and reopens
    REQUIRE(ds->PutRecordBatch(batch, result).ok());
    ds->Poll();
  }
  uint64_t allocations = 0;
  for (int i = 0; i < 50; ++i) {
    {
      riffle_test::AllocationCounter counter;
      REQUIRE(ds->PutRecordBatch(batch, result).ok());
      allocations += counter.allocations();
    }
    ds->Poll();
  }
  CHECK(allocations == 0);
  CHECK(ds->GetMetrics().partitioning_failed_records == 0);

  // Names and values past the strings' inline capacity (15 bytes): PartitionKeys keeps
  // their storage from one record to the next (it allocated a string or two a record).
  riffle::PartitionKeys keys;
  const std::string values[] = {std::string(24, 'a'), std::string(30, 'b'), std::string(20, 'c')};
  for (const auto& v : values) {  // storage grows to the largest value
    keys.Clear();
    keys.Set("customer_identifier", v);
    keys.Set("region_of_the_customer", v);
  }
  riffle_test::AllocationCounter keys_counter;
  for (int i = 0; i < 300; ++i) {
    keys.Clear();
    keys.Set("customer_identifier", values[i % 3]);
    keys.Set("region_of_the_customer", values[(i + 1) % 3]);
    keys.Set("customer_identifier", values[(i + 2) % 3]);  // replaced, not added
  }
  CHECK(keys_counter.allocations() == 0);
  REQUIRE(keys.values().size() == 2);
  CHECK(keys.values()[0].first == "customer_identifier");
  CHECK(keys.values()[0].second == values[(299 + 2) % 3]);
  CHECK(keys.values()[1].second == values[(299 + 1) % 3]);
}

TEST_CASE("The delivery thread delivers on ManualClock moves", "[delivery][stress]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.buffering_hints = {1, 10};
  auto ds = MustCreate(o);
  REQUIRE(ds->Start().ok());
  CHECK(riffle::HasErrorName(ds->Start(), riffle::kResourceInUseException));
  REQUIRE(ds->PutRecord("tick;").ok());
  clock.Advance(absl::Seconds(10));
  for (int i = 0; i < 5000 && sink.size() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(sink.size() == 1);
  // Size-triggered, no clock move.
  REQUIRE(ds->PutRecord(std::string(1'000'000, 's')).ok());
  REQUIRE(ds->PutRecord(std::string(kMiB - 1'000'000, 's')).ok());
  for (int i = 0; i < 5000 && sink.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(sink.size() == 2);
  REQUIRE(ds->Close().ok());
}

TEST_CASE("Stop ends the delivery thread without delivering; the host then polls", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.buffering_hints = {1, 60};
  auto ds = MustCreate(o);
  ds->Stop();  // no thread yet: nothing to join, but the thread can no longer start
  CHECK(riffle::IsResourceInUseException(ds->Start()));

  auto threaded = MustCreate(o);
  REQUIRE(threaded->Start().ok());
  REQUIRE(threaded->PutRecord("kept;").ok());
  threaded->Stop();
  threaded->Stop();  // idempotent
  CHECK(riffle::IsResourceInUseException(threaded->Start()));
  clock.Advance(absl::Seconds(60));  // due now, but no thread delivers it
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(sink.size() == 0);
  CHECK(threaded->GetMetrics().buffered_bytes == 5);
  CHECK(threaded->Poll() == 1);  // the host takes over
  REQUIRE(sink.size() == 1);
  CHECK(sink.Objects().begin()->second == "kept;");
  REQUIRE(threaded->PutRecord("closed;").ok());
  REQUIRE(threaded->Close().ok());  // drains on the calling thread
  CHECK(sink.size() == 2);
  CHECK(threaded->GetMetrics().delivery_records == 2);
}

TEST_CASE("status() keeps the error of the last step that could not deliver", "[delivery]") {
  riffle::MemorySink store;
  riffle::ManualClock clock;
  int calls = 0;
  riffle::CallbackSink flaky([&](std::string_view key, std::string_view data) {
    if (++calls <= 2) return riffle::ServiceUnavailableError("bucket down");
    return store.PutObject(key, data);
  });
  DeliveryStreamOptions o = BaseOptions(&flaky, &clock);
  o.retry_options = {60, absl::Seconds(1), absl::Seconds(1)};
  auto ds = MustCreate(o);
  CHECK(ds->last_error().ok());
  REQUIRE(ds->PutRecord("a;").ok());
  CHECK(ds->Flush() == 0);
  CHECK(riffle::IsServiceUnavailableException(ds->last_error()));
  CHECK(riffle::ErrorMessage(ds->last_error()) == "bucket down");
  CHECK(ds->Poll() == 0);  // waiting for the backoff: nothing written, status unchanged
  CHECK(riffle::IsServiceUnavailableException(ds->last_error()));
  clock.Advance(absl::Seconds(1));
  CHECK(ds->Poll() == 0);  // the retry fails too
  CHECK(riffle::IsServiceUnavailableException(ds->last_error()));
  clock.Advance(absl::Seconds(1));
  CHECK(ds->Pump() == 1);  // Pump is Poll
  CHECK(ds->last_error().ok());
  CHECK(store.size() == 1);
  REQUIRE(ds->Close().ok());
}

TEST_CASE("Close under concurrent producers loses nothing", "[delivery][stress]") {
  riffle::MemorySink store;
  std::atomic<int> failures{0};
  std::atomic<uint64_t> calls{0};
  riffle::CallbackSink flaky([&](std::string_view key, std::string_view data) {
    if (calls.fetch_add(1) % 4 == 1) {
      failures.fetch_add(1);
      return absl::UnavailableError("flaky");
    }
    return store.PutObject(key, data);
  });
  DeliveryStreamOptions o;
  o.delivery_stream_name = "orders";
  o.sink = &flaky;
  o.buffering_hints = {1, 0};
  o.retry_options = {300, absl::Milliseconds(1), absl::Milliseconds(4)};
  o.max_buffered_bytes = 4 << 20;
  auto ds = MustCreate(o);
  REQUIRE(ds->Start().ok());

  constexpr int kProducers = 4;
  const int per_producer = 50000 / riffle_test::StressDivisor();
  std::vector<std::vector<std::string>> accepted(kProducers);
  std::atomic<int> throttled{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> producers;
  std::atomic<bool> go{false};
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < per_producer; ++i) {
        const std::string r = Record(p * per_producer + i);
        auto result = ds->PutRecord(r);
        if (result.ok()) {
          accepted[p].push_back(r);
        } else if (riffle::HasErrorName(result.status(), riffle::kServiceUnavailableException)) {
          throttled.fetch_add(1);
        } else {
          // Catch2 assertions are not thread-safe: count here, check after the join.
          if (!riffle::IsResourceInUseException(result.status())) {
            unexpected.fetch_add(1);
          }
          break;  // closed
        }
      }
    });
  }
  go.store(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(ds->Close().ok());
  for (auto& t : producers) t.join();
  CHECK(unexpected.load() == 0);

  std::set<std::string> delivered;
  for (const auto& [key, body] : store.Objects()) {
    for (auto& r : SplitRecords(body)) CHECK(delivered.insert(r).second);
  }
  size_t total = 0;
  for (const auto& list : accepted) {
    total += list.size();
    for (const auto& r : list) {
      if (!delivered.count(r)) FAIL_CHECK("accepted record lost: " << r);
    }
  }
  CHECK(delivered.size() == total);
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == total);
  CHECK(m.delivery_records == total);
  CHECK(m.throttled_records == static_cast<uint64_t>(throttled.load()));
}

TEST_CASE("A failing error sink is retried until it accepts; Close waits for it", "[delivery]") {
  riffle::ManualClock clock;
  riffle::MemorySink errors;
  int error_calls = 0;
  riffle::CallbackSink late_errors([&](std::string_view key, std::string_view data) {
    if (++error_calls <= 3) return absl::UnavailableError("error bucket down");
    return errors.PutObject(key, data);
  });
  riffle::CallbackSink broken(
      [](std::string_view, std::string_view) { return absl::UnavailableError("down"); });
  DeliveryStreamOptions o = BaseOptions(&broken, &clock);
  o.error_sink = &late_errors;
  o.retry_options.duration_in_seconds = 0;  // one attempt, then the error output
  auto ds = MustCreate(o);
  for (int i = 0; i < 10; ++i) REQUIRE(ds->PutRecord(Record(i)).ok());
  std::atomic<bool> closed{false};
  std::thread closer([&] {
    (void)ds->Close();
    closed = true;
  });
  // Close waits on backoff deadlines of the ManualClock: move it until Close returns.
  for (int i = 0; i < 100000 && !closed.load(); ++i) {
    clock.Advance(absl::Seconds(1));
    std::this_thread::yield();
  }
  closer.join();
  CHECK(error_calls == 4);
  REQUIRE(errors.size() == 1);
  CHECK(ParseErrorObject(errors.Objects().begin()->second).raw.size() == 10);
  const auto m = ds->GetMetrics();
  CHECK(m.error_output_records == 10);
  CHECK(m.error_output_attempts == 4);
  CHECK(m.buffered_bytes == 0);
}

TEST_CASE("An error output that fails for 24 hours is discarded and counted; Close then ends",
          "[delivery]") {
  riffle::ManualClock clock;
  int error_calls = 0;
  riffle::CallbackSink dead_errors([&](std::string_view, std::string_view) {
    ++error_calls;
    return absl::UnavailableError("error bucket down");
  });
  riffle::CallbackSink broken(
      [](std::string_view, std::string_view) { return absl::UnavailableError("down"); });
  DeliveryStreamOptions o = BaseOptions(&broken, &clock);
  o.error_sink = &dead_errors;
  o.retry_options.duration_in_seconds = 0;  // one attempt, then the error output
  auto ds = MustCreate(o);
  for (int i = 0; i < 10; ++i) REQUIRE(ds->PutRecord(Record(i)).ok());
  (void)ds->Flush();
  // Host-driven: the error output is retried with backoff, and kept until 24 hours after
  // its first attempt.
  absl::Duration elapsed;
  while (elapsed < absl::Hours(24) - absl::Minutes(1)) {
    clock.Advance(absl::Seconds(30));
    elapsed += absl::Seconds(30);
    (void)ds->Poll();
  }
  auto m = ds->GetMetrics();
  CHECK(m.error_output_discarded_records == 0);
  CHECK(m.buffered_bytes > 0);
  const int calls_in_a_day = error_calls;
  CHECK(calls_in_a_day > 10);
  clock.Advance(absl::Minutes(2));
  (void)ds->Poll();
  m = ds->GetMetrics();
  CHECK(m.error_output_discarded_records == 10);
  CHECK(m.error_output_records == 0);
  CHECK(m.buffered_bytes == 0);
  CHECK(m.incoming_records == m.delivery_records + m.dropped_records + m.error_output_records +
                                  m.error_output_discarded_records);
  CHECK(ds->Close().ok());  // nothing left to wait for
  CHECK(error_calls == calls_in_a_day + 1);
}

TEST_CASE("A prefix whose keys the sink can never store is refused at creation and update",
          "[delivery]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("riffle-prefix-{}", ::getpid());
  auto files = riffle::FileSink::Create({.directory = dir.string()});
  REQUIRE(files.ok());
  riffle::MemorySink memory;
  for (const char* bad : {"/orders/", "a/../b/", "./x/", ".riffle-tmp/"}) {
    INFO(bad);
    DeliveryStreamOptions o = BaseOptions(files->get(), nullptr);
    o.prefix = bad;
    auto ds = DeliveryStream::Create(o);
    REQUIRE_FALSE(ds.ok());
    CHECK(riffle::ErrorName(ds.status()) == "InvalidArgumentException");
    CHECK_THAT(
        riffle::ErrorMessage(ds.status()),
        Catch::StartsWith(fmt::format("Prefix '{}' makes object keys the sink cannot store", bad)));
    // S3 itself takes any such key: a memory sink accepts the prefix.
    o.sink = &memory;
    CHECK(DeliveryStream::Create(o).ok());
  }
  // The default error output prefix starts with the Prefix; an explicit one is checked too.
  DeliveryStreamOptions o = BaseOptions(files->get(), nullptr);
  o.error_output_prefix = "errors/../!{firehose:error-output-type}/";
  auto refused = DeliveryStream::Create(o);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(riffle::ErrorMessage(refused.status()),
             Catch::StartsWith("ErrorOutputPrefix 'errors/../!{firehose:error-output-type}/'"));
  o.error_output_prefix.clear();
  o.prefix = "ok/";
  auto ds = MustCreate(o);
  riffle::DestinationUpdate u;
  u.prefix = "/absolute/";
  auto updated = ds->UpdateDestination(u);
  CHECK(riffle::ErrorName(updated) == "InvalidArgumentException");
  u.prefix = "fine/";
  CHECK(ds->UpdateDestination(u).ok());
  ds.reset();
  files->reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("Close attempts a batch waiting for its retry at once, with or without a thread",
          "[delivery]") {
  for (bool threaded : {false, true}) {
    INFO((threaded ? "delivery thread" : "host-driven"));
    riffle::ManualClock clock;
    riffle::MemorySink objects;
    int calls = 0;
    riffle::CallbackSink once_down([&](std::string_view key, std::string_view data) {
      if (++calls == 1) return absl::UnavailableError("bucket down for a moment");
      return objects.PutObject(key, data);
    });
    auto ds = MustCreate(BaseOptions(&once_down, &clock));
    for (int i = 0; i < 10; ++i) REQUIRE(ds->PutRecord(Record(i)).ok());
    CHECK(ds->Flush() == 0);  // the write failed: the batch waits for its backoff
    if (threaded) REQUIRE(ds->Start().ok());
    // The clock never moves: Close must not wait for the backoff of a sink that recovered.
    REQUIRE(ds->Close().ok());
    CHECK(calls == 2);
    REQUIRE(objects.size() == 1);
    CHECK(ds->GetMetrics().buffered_bytes == 0);
  }
}

TEST_CASE("Callbacks that call back into their DeliveryStream get an error, not a deadlock",
          "[delivery]") {
  for (bool threaded : {false, true}) {
    INFO((threaded ? "delivery thread" : "host-driven"));
    riffle::ManualClock clock;
    riffle::MemorySink objects;
    DeliveryStream* self = nullptr;
    std::vector<absl::Status> answers;
    size_t polled = 0;
    riffle::CallbackSink sink([&](std::string_view key, std::string_view data) {
      polled += self->Poll() + self->Flush();
      self->Stop();
      answers.push_back(self->Close());
      answers.push_back(self->UpdateDestination({.prefix = "other/"}));
      return objects.PutObject(key, data);
    });
    auto ds = MustCreate(BaseOptions(&sink, &clock));
    self = ds.get();
    for (int i = 0; i < 10; ++i) REQUIRE(ds->PutRecord(Record(i)).ok());
    if (threaded) REQUIRE(ds->Start().ok());
    REQUIRE(ds->Close().ok());
    CHECK(polled == 0);
    REQUIRE(answers.size() == 2);
    CHECK(riffle::HasErrorName(answers[0], riffle::kResourceInUseException));
    CHECK(riffle::ErrorMessage(answers[0]) ==
          "Close was called from inside a callback (processor or sink) of delivery stream "
          "orders, which would wait for that callback to return; call it from another thread.");
    CHECK(riffle::HasErrorName(answers[1], riffle::kResourceInUseException));
    REQUIRE(objects.size() == 1);
    CHECK(ds->version() == 1);
    CHECK(ds->GetMetrics().buffered_bytes == 0);
  }
}

TEST_CASE("Concurrent producers with dynamic partitions: every record under its prefix once",
          "[delivery][stress]") {
  riffle::MemorySink store;
  std::atomic<uint64_t> calls{0};
  riffle::CallbackSink flaky([&](std::string_view key, std::string_view data) {
    if (calls.fetch_add(1) % 5 == 2) return absl::UnavailableError("flaky");
    return store.PutObject(key, data);
  });
  DeliveryStreamOptions o;
  o.delivery_stream_name = "orders";
  o.sink = &flaky;
  o.prefix = "p=!{partitionKeyFromQuery:p}/";
  o.buffering_hints = {1, 0};
  o.retry_options = {300, absl::Milliseconds(1), absl::Milliseconds(4)};
  o.partition_key_function = [](std::string_view data, const riffle::RecordMetadata&,
                                riffle::PartitionKeys& keys) {
    keys.Set("p", data.substr(data.size() - 2, 1));  // the record number's last digit
    return true;
  };
  auto ds = MustCreate(o);
  REQUIRE(ds->Start().ok());
  constexpr int kProducers = 4;
  const int per_producer = 20000 / riffle_test::StressDivisor();
  std::atomic<int> failures{0};
  for (auto& t : StartProducers(*ds, kProducers, per_producer, 100, failures)) t.join();
  REQUIRE(ds->Close().ok());
  CHECK(failures.load() == 0);
  std::set<std::string> seen;
  CollectPartitioned(store, seen);
  CHECK(seen.size() == static_cast<size_t>(kProducers * per_producer));
  CHECK(ds->GetMetrics().delivery_records == seen.size());
}

TEST_CASE("UpdateDestination delivers what is buffered as it was, then applies the update",
          "[delivery]") {
  riffle::MemorySink sink, other;
  riffle::ManualClock clock(absl::FromUnixSeconds(1767225600));  // 2026-01-01 00:00 UTC
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.prefix = "a/";
  auto ds = MustCreate(o);
  CHECK(ds->version() == 1);
  REQUIRE(ds->PutRecord("x;").ok());

  // Refused updates change nothing and deliver nothing.
  DestinationUpdate bad;
  bad.buffering_hints = riffle::BufferingHints{.size_in_mbs = 0, .interval_in_seconds = 60};
  CHECK(riffle::IsInvalidArgumentException(ds->UpdateDestination(bad)));
  bad = {};
  bad.prefix = "!{partitionKeyFromQuery:k}/";
  CHECK(riffle::IsInvalidArgumentException(ds->UpdateDestination(bad)));
  bad = {};
  bad.expected_version = 7;
  const absl::Status stale = ds->UpdateDestination(bad);
  CHECK(riffle::HasErrorName(stale, riffle::kConcurrentModificationException));
  CHECK(riffle::ErrorMessage(stale) ==
        "Firehose orders is at version 1, not 7: it was updated since.");
  CHECK(sink.size() == 0);
  CHECK(ds->version() == 1);

  DestinationUpdate u;
  u.prefix = "b/";
  u.compression = riffle::CompressionFormat::kGzip;
  u.buffering_hints = riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = 10};
  u.expected_version = 1;
  REQUIRE(ds->UpdateDestination(u).ok());
  CHECK(ds->version() == 2);
  // "x;" went out under the old configuration, at once.
  auto keys = sink.Keys();
  REQUIRE(keys.size() == 1);
  CHECK(StartsWith(keys[0], "a/2026/01/01/00/orders-1-"));
  CHECK(sink.Objects().begin()->second == "x;");

  // The next records: the new prefix, version, compression and interval.
  REQUIRE(ds->PutRecord("y;").ok());
  clock.Advance(absl::Seconds(9));
  CHECK(ds->Poll() == 0);
  clock.Advance(absl::Seconds(1));
  CHECK(ds->Poll() == 1);
  keys = sink.Keys();
  REQUIRE(keys.size() == 2);
  CHECK(std::regex_match(keys[1], std::regex("b/2026/01/01/00/orders-2-.*\\.gz")));
  std::string plain;
  REQUIRE(riffle::detail::Decompress(riffle::CompressionFormat::kGzip, sink.Objects().at(keys[1]),
                                     &plain)
              .ok());
  CHECK(plain == "y;");

  // Another sink; a processor.
  DestinationUpdate v;
  v.sink = &other;
  v.processor = [](std::span<const riffle::ProcessorInput> in) {
    std::vector<riffle::ProcessorOutput> out;
    for (const auto& r : in) {
      out.push_back({r.record_id, ProcessingResult::kOk, "<" + std::string(r.data) + ">"});
    }
    return out;
  };
  v.compression = riffle::CompressionFormat::kUncompressed;
  REQUIRE(ds->UpdateDestination(v).ok());
  CHECK(ds->version() == 3);
  REQUIRE(ds->PutRecord("z;").ok());
  REQUIRE(ds->Flush() == 1);
  CHECK(sink.size() == 2);
  REQUIRE(other.size() == 1);
  CHECK(StartsWith(other.Keys()[0], "b/2026/01/01/00/orders-3-"));
  CHECK(other.Objects().begin()->second == "<z;>");

  REQUIRE(ds->Close().ok());
  CHECK(riffle::IsResourceInUseException(ds->UpdateDestination(u)));
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == 3);
  CHECK(m.delivery_records == 3);
}

TEST_CASE("UpdateDestination under concurrent producers and a delivery thread loses nothing",
          "[delivery][stress]") {
  riffle::MemorySink first, second;
  DeliveryStreamOptions o;
  o.delivery_stream_name = "orders";
  o.sink = &first;
  o.prefix = "p=!{partitionKeyFromQuery:p}/v1/";
  o.error_output_prefix = "errors/!{firehose:error-output-type}/";
  o.buffering_hints = {1, 0};
  o.partition_key_function = [](std::string_view data, const riffle::RecordMetadata&,
                                riffle::PartitionKeys& keys) {
    keys.Set("p", data.substr(data.size() - 2, 1));
    return true;
  };
  auto ds = MustCreate(o);
  REQUIRE(ds->Start().ok());
  constexpr int kProducers = 3;
  const int per_producer = 12000 / riffle_test::StressDivisor();
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::atomic<int> updates{0};
  std::thread updater([&] {
    for (int i = 0; !done.load(); ++i) {
      DestinationUpdate u;
      u.prefix = fmt::format("p=!{{partitionKeyFromQuery:p}}/v{}/", i + 2);
      u.sink = i % 2 == 0 ? &second : &first;
      u.buffering_hints = riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = i % 3};
      if (!ds->UpdateDestination(u).ok()) failures.fetch_add(1);
      updates.fetch_add(1);
      std::this_thread::yield();
    }
  });
  // The producers start once the updater runs, so that updates and puts overlap (a fast
  // machine could otherwise finish the puts before the first update).
  while (updates.load() == 0) std::this_thread::yield();
  for (auto& t : StartProducers(*ds, kProducers, per_producer, 50, failures)) t.join();
  done.store(true);
  updater.join();
  REQUIRE(ds->Close().ok());
  CHECK(failures.load() == 0);
  CHECK(ds->version() > 1);
  std::set<std::string> seen;
  CollectPartitioned(first, seen);
  CollectPartitioned(second, seen);
  CHECK(seen.size() == static_cast<size_t>(kProducers * per_producer));
  CHECK(ds->GetMetrics().delivery_records == seen.size());
}

TEST_CASE("Partition values with NUL bytes never merge two partitions into one object",
          "[delivery][regression]") {
  // {a: "x", b: "y"} and {a: "x\0b\0y"} were both "a\0x\0b\0y\0" as a partition id, so
  // the second record was delivered under the first one's prefix (a=x).
  using std::string_literals::operator""s;
  riffle::ManualClock clock;
  riffle::MemorySink sink;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.prefix = "a=!{partitionKeyFromQuery:a}/";
  o.partition_key_function = [](std::string_view data, const riffle::RecordMetadata&,
                                riffle::PartitionKeys& keys) {
    if (data == "first") {
      keys.Set("a", "x");
      keys.Set("b", "y");
    } else {
      keys.Set("a", "x\0b\0y"s);
    }
    return true;
  };
  auto ds = MustCreate(o);
  REQUIRE(ds->PutRecord("first").ok());
  REQUIRE(ds->PutRecord("second").ok());
  REQUIRE(ds->Close().ok());
  const auto objects = sink.Objects();
  REQUIRE(objects.size() == 2);
  for (const auto& [key, body] : objects) {
    CHECK(StartsWith(key, body == "first" ? "a=x/"s : "a=x\0b\0y/"s));
  }
}

TEST_CASE("A partition key function that puts into another DeliveryStream leaves the first intact",
          "[delivery][regression]") {
  // The ingest scratch was thread_local, so shared by every DeliveryStream on a thread: the
  // inner put cleared and refilled the outer record's partition keys.
  riffle::MemorySink outer_sink, inner_sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions inner_options = BaseOptions(&inner_sink, &clock);
  inner_options.prefix = "p=!{partitionKeyFromQuery:p}/";
  inner_options.partition_key_function = [](std::string_view, const riffle::RecordMetadata&,
                                            riffle::PartitionKeys& keys) {
    keys.Set("p", "inner");
    return true;
  };
  auto inner = MustCreate(inner_options);
  std::atomic<int> inner_failures{0};
  DeliveryStreamOptions outer_options = BaseOptions(&outer_sink, &clock);
  outer_options.prefix = "p=!{partitionKeyFromQuery:p}/";
  outer_options.partition_key_function = [&](std::string_view data, const riffle::RecordMetadata&,
                                             riffle::PartitionKeys& keys) {
    keys.Set("p", data.substr(0, 1));
    // An audit copy of every record, partitioned its own way.
    if (!inner->PutRecord(data).ok()) inner_failures.fetch_add(1);
    return true;
  };
  auto outer = MustCreate(outer_options);
  for (const char* r : {"a1;", "b1;", "a2;"}) REQUIRE(outer->PutRecord(r).ok());
  const std::vector<std::string_view> batch = {"b2;", "c1;", "a3;"};
  auto result = outer->PutRecordBatch(batch);
  REQUIRE(result.ok());
  CHECK(result->failed_put_count == 0);
  REQUIRE(outer->Close().ok());
  REQUIRE(inner->Close().ok());
  CHECK(inner_failures.load() == 0);

  std::map<std::string, std::string> by_prefix;
  for (const auto& [key, body] : outer_sink.Objects()) {
    by_prefix[key.substr(0, key.find('/'))] += body;
  }
  CHECK(by_prefix == std::map<std::string, std::string>{
                         {"p=a", "a1;a2;a3;"}, {"p=b", "b1;b2;"}, {"p=c", "c1;"}});
  REQUIRE(inner_sink.size() == 1);
  CHECK(StartsWith(inner_sink.Keys()[0], "p=inner/"));
  CHECK(inner_sink.Objects().begin()->second == "a1;b1;a2;b2;c1;a3;");
  CHECK(outer->GetMetrics().partitioning_failed_records == 0);
}

}  // namespace riffle_test
