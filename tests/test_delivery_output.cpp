// DeliveryStream output: object keys, compression, processor, dynamic partitions.
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "delivery/compression.h"
#include "delivery_test_helpers.h"
#include "riffle/delivery_stream.h"
#include "riffle/sink.h"
#include "support/alloc_counter.h"

namespace riffle_test {

TEST_CASE("Object keys follow Firehose's format and prefix rules", "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock(
      absl::FromCivil(absl::CivilSecond(2026, 3, 7, 9, 59, 58), absl::UTCTimeZone()));
  auto keys_for = [&](std::string prefix, CompressionFormat compression) {
    sink.Clear();
    DeliveryStreamOptions o = BaseOptions(&sink, &clock);
    o.prefix = std::move(prefix);
    o.compression = compression;
    auto ds = MustCreate(o);
    REQUIRE(ds->PutRecord("x;").ok());
    clock.Advance(absl::Seconds(3));  // delivered in the next hour
    REQUIRE(ds->Flush() == 1);
    return sink.Keys();
  };
  const std::string uuid = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";
  auto k = keys_for("", CompressionFormat::kUncompressed);
  REQUIRE(k.size() == 1);
  // The prefix is the oldest record's hour; the name carries the delivery time.
  CHECK(std::regex_match(k[0], std::regex("2026/03/07/09/orders-1-2026-03-07-10-00-01-" + uuid)));
  k = keys_for("logs/", CompressionFormat::kGzip);
  CHECK(std::regex_match(
      k[0], std::regex("logs/2026/03/07/10/orders-1-2026-03-07-10-00-04-" + uuid + "\\.gz")));
  k = keys_for("t=!{timestamp:yyyy-MM-dd}/r=!{firehose:random-string}/", CompressionFormat::kZip);
  CHECK(std::regex_match(k[0], std::regex("t=2026-03-07/r=[0-9a-zA-Z]{11}/orders-1-2026-03-07-"
                                          "10-00-07-" +
                                          uuid + "\\.zip")));

  // Same seed, same clock: the same key.
  riffle::ManualClock clock_a, clock_b;
  riffle::MemorySink sink_a, sink_b;
  for (auto [s, c] : {std::pair{&sink_a, &clock_a}, std::pair{&sink_b, &clock_b}}) {
    auto ds = MustCreate(BaseOptions(s, c));
    REQUIRE(ds->PutRecord("x").ok());
    REQUIRE(ds->Close().ok());
  }
  CHECK(sink_a.Keys() == sink_b.Keys());
}

TEST_CASE("Compressed objects decompress to the exact concatenation", "[delivery]") {
  riffle::ManualClock clock;
  std::string expected;
  std::vector<std::string> records;
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    records.push_back("{\"id\":" + std::to_string(i) + ",\"v\":" + std::to_string(rng() % 1000) +
                      "}");
    expected += records.back();
  }
  for (auto format : {CompressionFormat::kGzip, CompressionFormat::kZip, CompressionFormat::kSnappy,
                      CompressionFormat::kHadoopSnappy}) {
    riffle::MemorySink sink;
    DeliveryStreamOptions o = BaseOptions(&sink, &clock);
    o.compression = format;
    auto ds = MustCreate(o);
    for (const auto& r : records) REQUIRE(ds->PutRecord(r).ok());
    REQUIRE(ds->Close().ok());
    REQUIRE(sink.size() == 1);
    const std::string object = sink.Objects().begin()->second;
    CHECK(object.size() < expected.size() / 2);
    if (format == CompressionFormat::kGzip) CHECK(Gunzip(object) == expected);
    std::string out;
    REQUIRE(riffle::detail::Decompress(format, object, &out).ok());
    CHECK(out == expected);
  }
}

TEST_CASE("CRC-32C matches the published check value", "[delivery]") {
  CHECK(riffle::detail::Crc32c("123456789") == 0xe3069283u);
  CHECK(riffle::detail::Crc32c("") == 0u);
}

TEST_CASE("The processor transforms, drops and fails records; failures go to the error output",
          "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.append_newline_delimiter = true;
  std::vector<riffle::ProcessorInput> seen;
  o.processor = [&](std::span<const riffle::ProcessorInput> in) {
    std::vector<riffle::ProcessorOutput> out;
    for (const auto& r : in) {
      seen.push_back(r);
      const std::string data(r.data);
      if (data == "drop") {
        out.push_back({r.record_id, ProcessingResult::kDropped, ""});
      } else if (data == "fail") {
        out.push_back({r.record_id, ProcessingResult::kProcessingFailed, ""});
      } else if (data == "ignore") {
        // no answer
      } else {
        out.push_back({r.record_id, ProcessingResult::kOk, "<" + data + ">"});
      }
    }
    return out;
  };
  auto ds = MustCreate(o);
  for (const char* r : {"a", "drop", "b", "fail", "ignore", "c"}) REQUIRE(ds->PutRecord(r).ok());
  REQUIRE(ds->Close().ok());

  REQUIRE(seen.size() == 6);
  CHECK(seen[0].metadata.approximate_arrival_timestamp_ms == clock.NowMillis());
  auto objects = sink.Objects();
  REQUIRE(objects.size() == 2);
  std::string delivered, errors;
  for (const auto& [key, body] : objects) {
    if (StartsWith(key, "processing-failed/2026/01/01/00/orders-1-")) {
      errors = body;
    } else {
      CHECK(StartsWith(key, "2026/01/01/00/orders-1-"));
      delivered = body;
    }
  }
  CHECK(delivered == "<a>\n<b>\n<c>\n");
  ErrorLines e = ParseErrorObject(errors);
  CHECK(e.raw == std::vector<std::string>{"fail", "ignore"});
  CHECK(e.codes == std::vector<std::string>{"Lambda.ProcessingFailed", "Lambda.MissingRecordId"});
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == 6);
  CHECK(m.delivery_records == 3);
  CHECK(m.dropped_records == 1);
  CHECK(m.processing_failed_records == 2);
  CHECK(m.error_output_records == 2);
  CHECK(m.buffered_bytes == 0);

  SECTION("a processor that throws fails the whole batch") {
    riffle::MemorySink sink2;
    DeliveryStreamOptions o2 = BaseOptions(&sink2, &clock);
    o2.processor =
        [](std::span<const riffle::ProcessorInput>) -> std::vector<riffle::ProcessorOutput> {
      throw std::runtime_error("boom");
    };
    auto ds2 = MustCreate(o2);
    REQUIRE(ds2->PutRecord("x").ok());
    REQUIRE(ds2->Close().ok());
    REQUIRE(sink2.size() == 1);
    ErrorLines e2 = ParseErrorObject(sink2.Objects().begin()->second);
    CHECK(e2.codes == std::vector<std::string>{"Lambda.FunctionError"});
  }
}

TEST_CASE("Dynamic partitions land under their prefixes, each with its own buffer", "[delivery]") {
  riffle::MemorySink sink, errors;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.error_sink = &errors;
  o.prefix = "customer=!{partitionKeyFromQuery:customer}/!{timestamp:yyyy}/";
  o.buffering_hints = {1, 60};
  o.max_active_partitions = 3;
  o.partition_key_function = [](std::string_view data, const riffle::RecordMetadata&,
                                riffle::PartitionKeys& keys) {
    if (data.empty() || data[0] == '?') return false;
    keys.Set("customer", data.substr(0, 1));
    return true;
  };
  auto ds = MustCreate(o);
  for (const char* r : {"a1;", "b1;", "a2;", "?;", "c1;", "d1;", "b2;"}) {
    REQUIRE(ds->PutRecord(r).ok());
  }
  CHECK(ds->GetMetrics().active_partitions == 3);
  // A partition filling its size is delivered alone.
  REQUIRE(ds->PutRecord(std::string(1'000'000, 'c')).ok());
  CHECK(ds->Poll() == 1);  // the error object only: c has 3 + 1,000,000 bytes
  REQUIRE(ds->PutRecord(std::string(kMiB - 1'000'003, 'c')).ok());
  CHECK(ds->Poll() == 1);  // c's object and the error object
  clock.Advance(absl::Seconds(60));
  CHECK(ds->Poll() == 2);
  REQUIRE(ds->Close().ok());

  std::map<std::string, std::string> by_prefix;
  for (const auto& [key, body] : sink.Objects()) {
    by_prefix[key.substr(0, key.find("/orders-"))] += body;
  }
  CHECK(by_prefix["customer=a/2026"] == "a1;a2;");
  CHECK(by_prefix["customer=b/2026"] == "b1;b2;");
  CHECK(by_prefix["customer=c/2026"] == "c1;" + std::string(kMiB - 3, 'c'));
  CHECK(by_prefix.size() == 3);
  REQUIRE(errors.size() == 1);
  CHECK(StartsWith(errors.Keys()[0], "partitioning-failed/2026/01/01/00/orders-1-"));
  ErrorLines e = ParseErrorObject(errors.Objects().begin()->second);
  CHECK(e.raw == std::vector<std::string>{"?;", "d1;"});
  CHECK(e.codes == std::vector<std::string>{"DynamicPartitioning.MetadataExtractionFailed",
                                            "DynamicPartitioning.ActivePartitionsLimitExceeded"});
  CHECK(ds->GetMetrics().partitioning_failed_records == 2);
}

TEST_CASE("Records with Stream metadata reach the processor through the ingestion path",
          "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock;
  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  std::vector<std::string> seen;
  o.processor = [&](std::span<const riffle::ProcessorInput> in) {
    std::vector<riffle::ProcessorOutput> out;
    for (const auto& r : in) {
      seen.push_back(std::string(r.metadata.partition_key) + "|" +
                     std::string(r.metadata.shard_id) + "|" +
                     std::string(r.metadata.sequence_number) + "|" +
                     std::to_string(r.metadata.approximate_arrival_timestamp_ms));
      out.push_back({r.record_id, ProcessingResult::kOk, std::string(r.data)});
    }
    return out;
  };
  auto ds = MustCreate(o);
  REQUIRE(ds->PutRecord("direct;").ok());
  REQUIRE(ds->TEST_Ingest("from-stream;", {"pk", "shardId-000000000001", "4960", 1234}).ok());
  REQUIRE(ds->Close().ok());
  CHECK(seen == std::vector<std::string>{"|||" + std::to_string(clock.NowMillis()),
                                         "pk|shardId-000000000001|4960|1234"});
  CHECK(sink.Objects().begin()->second == "direct;from-stream;");
  // The default prefix uses the oldest arrival time (1234 ms after the epoch).
  CHECK(StartsWith(sink.Keys()[0], "1970/01/01/00/"));
}

}  // namespace riffle_test
