// DeliveryStream output: object keys, compression, processor, dynamic partitions.
#include <sys/resource.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "delivery/compression.h"
#include "delivery/object_key.h"
#include "delivery/time_pattern.h"
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
  CHECK(std::regex_match(k[0], std::regex("t=2026-03-07/r=[0-9a-f]{11}/orders-1-2026-03-07-"
                                          "10-00-07-" +
                                          uuid + "\\.zip")));
  // Expressions but no timestamp: the service appends !{timestamp:yyyy/MM/dd/HH/}.
  k = keys_for("r=!{firehose:random-string}/", CompressionFormat::kUncompressed);
  CHECK(std::regex_match(
      k[0], std::regex("r=[0-9a-f]{11}/2026/03/07/10/orders-1-2026-03-07-10-00-10-" + uuid)));

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

TEST_CASE("Timestamp expressions format as java.time's DateTimeFormatter does", "[delivery]") {
  using riffle::detail::AppendTimePattern;
  const absl::TimeZone utc = absl::UTCTimeZone();
  // Saturday 7 March 2026 (day 66), 09:05:03.042 UTC.
  const absl::Time t =
      absl::FromCivil(absl::CivilSecond(2026, 3, 7, 9, 5, 3), utc) + absl::Milliseconds(42);
  auto format = [](std::string_view pattern, absl::Time when) {
    REQUIRE(riffle::detail::CheckTimePattern(pattern, "Prefix").ok());
    std::string out;
    AppendTimePattern(pattern, when, &out);
    CHECK(out.size() <= riffle::detail::MaxTimePatternLength(pattern));
    return out;
  };
  CHECK(format("yyyy-MM-dd HH:mm:ss.SSS", t) == "2026-03-07 09:05:03.042");
  CHECK(format("y/M/d H:m:s", t) == "2026/3/7 9:5:3");
  CHECK(format("yy|yyyyy|uuuu", t) == "26|02026|2026");
  CHECK(format("D|DD|DDD", t) == "66|66|066");
  CHECK(format("E|EEE|EEEE|EEEEE", t) == "Sat|Sat|Saturday|S");
  CHECK(format("MMM|MMMM|MMMMM|LL", t) == "Mar|March|M|03");
  CHECK(format("Q|QQ|QQQ|QQQQ", t) == "1|01|Q1|1st quarter");
  CHECK(format("G|GGGG|GGGGG", t) == "AD|Anno Domini|A");
  CHECK(format("S|SS|SSSSSS", t) == "0|04|042000");
  CHECK(format("a h K k|hh", t) == "AM 9 9 9|09");
  const absl::Time midnight = absl::FromCivil(absl::CivilSecond(2026, 12, 31, 0, 30, 0), utc);
  CHECK(format("a h K k H|D|QQQQ", midnight) == "AM 12 0 24 0|365|4th quarter");
  const absl::Time afternoon = absl::FromCivil(absl::CivilSecond(2026, 7, 1, 13, 0, 0), utc);
  CHECK(format("a hh KK kk HH|EEEE", afternoon) == "PM 01 01 13 13|Wednesday");
  CHECK(format("'year='yyyy", t) == "year=2026");
  CHECK(format("''|'it''s'|'MM'MM", t) == "'|it's|MM03");
  CHECK(riffle::detail::MaxTimePatternLength("EEEE MMMM") == 19);
  for (std::string_view bad :
       {"yyyy'", "YYYY", "ww", "Z", "ddd", "HHH", "aa", "SSSSSSSSSS", "{yyyy}", "#"}) {
    INFO(bad);
    CHECK(riffle::HasErrorName(riffle::detail::CheckTimePattern(bad, "Prefix"),
                               riffle::kInvalidArgumentException));
  }
}

TEST_CASE("Prefixes follow Firehose's semantic rules: quotes, error output defaults and times",
          "[delivery]") {
  riffle::MemorySink sink;
  riffle::ManualClock clock(
      absl::FromCivil(absl::CivilSecond(2018, 7, 6, 23, 30, 0), absl::UTCTimeZone()));
  // Every record fails processing, so each run writes one error object.
  auto failing = [](std::span<const riffle::ProcessorInput> in) {
    std::vector<riffle::ProcessorOutput> out;
    for (const auto& r : in) out.push_back({r.record_id, ProcessingResult::kProcessingFailed, ""});
    return out;
  };
  auto error_key = [&](std::string prefix, std::string error_prefix) {
    sink.Clear();
    DeliveryStreamOptions o = BaseOptions(&sink, &clock);
    o.prefix = std::move(prefix);
    o.error_output_prefix = std::move(error_prefix);
    o.processor = failing;
    auto ds = MustCreate(o);
    REQUIRE(ds->PutRecord("x").ok());
    clock.Advance(absl::Hours(2));  // the prefix keeps the record's hour
    REQUIRE(ds->Close().ok());
    const auto keys = sink.Keys();
    REQUIRE(keys.size() == 1);
    clock.Advance(-absl::Hours(2));
    return keys[0].substr(0, keys[0].find("orders-1-"));
  };
  // The guide's example: quoted text is literal.
  CHECK(error_key("",
                  "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/"
                  "!{firehose:error-output-type}") ==
        "myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed");
  CHECK(error_key("", "e/!{firehose:error-output-type}/!{timestamp:yyyy''MM'%'}/") ==
        "e/processing-failed/2018'07%/");
  // Without an ErrorOutputPrefix: the Prefix (when it has no expressions), the type, the hour.
  CHECK(error_key("myFirehosePrefix/", "") == "myFirehosePrefix/processing-failed/2018/07/06/23/");
  CHECK(error_key("", "") == "processing-failed/2018/07/06/23/");
  CHECK(error_key("t=!{timestamp:yyyy}/", "") == "processing-failed/2018/07/06/23/");

  DeliveryStreamOptions o = BaseOptions(&sink, &clock);
  o.error_output_prefix = "errors/!{timestamp:yyyy}/";
  auto missing_type = riffle::DeliveryStream::Create(o);
  CHECK(riffle::IsInvalidArgumentException(missing_type.status()));
  CHECK(missing_type.status().message() ==
        "ErrorOutputPrefix has expressions but no !{firehose:error-output-type}; an "
        "ErrorOutputPrefix with expressions must contain it at least once.");
  o.error_output_prefix = "";
  o.prefix = "!{timestamp:'yyyy}";
  CHECK(riffle::IsInvalidArgumentException(riffle::DeliveryStream::Create(o).status()));
  // At most 512 characters once evaluated (a plain prefix gets "yyyy/MM/dd/HH/", 14 more).
  o.prefix = std::string(498, 'p');
  CHECK(riffle::DeliveryStream::Create(o).ok());
  o.prefix = std::string(499, 'p');
  auto too_long = riffle::DeliveryStream::Create(o);
  CHECK(riffle::IsInvalidArgumentException(too_long.status()));
  CHECK(too_long.status().message() ==
        "Prefix can evaluate to 513 characters; it must be at most 512 characters after it is "
        "evaluated.");
  o.prefix = "";
  o.error_output_prefix = std::string(494, 'e') + "!{firehose:error-output-type}";
  CHECK(riffle::IsInvalidArgumentException(riffle::DeliveryStream::Create(o).status()));
  o.error_output_prefix = std::string(493, 'e') + "!{firehose:error-output-type}";
  CHECK(riffle::DeliveryStream::Create(o).ok());
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

namespace {

// Peak resident memory of this process, in KiB.
long PeakRssKiB() {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// VmData of this process, in bytes (0 when /proc is not there).
uint64_t DataBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmData:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
  }
  return 0;
}

}  // namespace

TEST_CASE("Decompress refuses sizes its input cannot hold, before allocating them",
          "[delivery][regression]") {
  using std::string_literals::operator""s;
  struct Case {
    std::string name;
    CompressionFormat format;
    std::string input;
  };
  const std::vector<Case> cases = {
      // A Hadoop block of 0x70000000 bytes (1.75 GiB) whose Snappy block says the same: 16
      // bytes in all. Decompress used to allocate the 1.75 GiB before finding the data short.
      {"hadoop-snappy 16 bytes", CompressionFormat::kHadoopSnappy,
       "\x70\x00\x00\x00\x00\x00\x00\x08\x80\x80\x80\x80\x07\x00\x00\x00"s},
      {"hadoop-snappy raw length beyond the input", CompressionFormat::kHadoopSnappy,
       "\xff\xff\xff\xff\x00\x00\x00\x02\x01\x00"s},
      {"hadoop-snappy chunk length beyond the input", CompressionFormat::kHadoopSnappy,
       "\x00\x00\x00\x10\xff\xff\xff\xff\x10\x00"s},
      // A framed Snappy chunk whose block declares 4 GiB - 1.
      {"snappy chunk declaring 4 GiB", CompressionFormat::kSnappy,
       "\xff\x06\x00\x00sNaPpY\x00\x0a\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\x0f\x00"s},
      // A framed chunk declaring 65,537 bytes (the format's limit is 65,536).
      {"snappy chunk over 64 KiB", CompressionFormat::kSnappy,
       "\xff\x06\x00\x00sNaPpY\x00\x09\x00\x00\x00\x00\x00\x00\x81\x80\x04\x00\x00"s},
      {"snappy chunk length beyond the input", CompressionFormat::kSnappy,
       "\xff\x06\x00\x00sNaPpY\x01\xff\xff\xff\x00\x00\x00\x00"s},
      // A ZIP entry declaring 4 GiB - 1 bytes over a two-byte deflate stream.
      {"zip declaring 4 GiB", CompressionFormat::kZip,
       "PK\x03\x04\x14\x00\x00\x08\x08\x00\x00\x00\x21\x00\x00\x00\x00\x00\x02\x00\x00\x00"
       "\xff\xff\xff\xff\x01\x00\x00\x00x\x03\x00"s},
      {"zip name beyond the input", CompressionFormat::kZip,
       "PK\x03\x04\x14\x00\x00\x08\x08\x00\x00\x00\x21\x00\x00\x00\x00\x00\x02\x00\x00\x00"
       "\x00\x00\x00\x00\xff\xff\x00\x00x"s},
      {"gzip truncated", CompressionFormat::kGzip, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"s},
      {"gzip declaring 4 GiB", CompressionFormat::kGzip,
       "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\xff\xff\xff\xff"s},
  };
#if !defined(RIFFLE_SANITIZED)
  // Outside sanitizers (whose shadow memory is data too), an allocation of more than
  // 256 MiB fails outright, so a decoder that trusted a declared size throws.
  struct rlimit old_limit {};
  REQUIRE(::getrlimit(RLIMIT_DATA, &old_limit) == 0);
  struct rlimit limit = old_limit;
  limit.rlim_cur = DataBytes() + (uint64_t{256} << 20);
  REQUIRE(::setrlimit(RLIMIT_DATA, &limit) == 0);
#endif
  const long rss_before = PeakRssKiB();
  for (const Case& c : cases) {
    INFO(c.name);
    std::string out;
    absl::Status s;
    CHECK_NOTHROW(s = riffle::detail::Decompress(c.format, c.input, &out));
    CHECK_FALSE(s.ok());
    CHECK(out.capacity() < (1 << 20));
  }
  const long rss_growth_kib = PeakRssKiB() - rss_before;
#if !defined(RIFFLE_SANITIZED)
  REQUIRE(::setrlimit(RLIMIT_DATA, &old_limit) == 0);
#endif
  CHECK(rss_growth_kib < 64 * 1024);
}

TEST_CASE("Decompress stops at max_output_bytes", "[delivery]") {
  const std::string zeros(4 * kMiB, '\0');  // 4 KiB of gzip, 190 KiB of Snappy
  for (auto format :
       {CompressionFormat::kUncompressed, CompressionFormat::kGzip, CompressionFormat::kZip,
        CompressionFormat::kSnappy, CompressionFormat::kHadoopSnappy}) {
    INFO(static_cast<int>(format));
    riffle::detail::Compressor compressor(format, 6);
    std::string object;
    REQUIRE(compressor.Compress(zeros, "zeros", &object).ok());
    std::string out;
    REQUIRE(riffle::detail::Decompress(format, object, &out, zeros.size()).ok());
    CHECK(out == zeros);
    const absl::Status s = riffle::detail::Decompress(format, object, &out, zeros.size() - 1);
    CHECK(riffle::IsInvalidArgumentException(s));
    CHECK(riffle::ErrorMessage(s).find(std::to_string(zeros.size() - 1)) != std::string::npos);
    CHECK(out.empty());
    CHECK(out.capacity() <= 2 * zeros.size());  // std::string grows by doubling
  }
}

TEST_CASE("CRC-32C matches the published check value", "[delivery]") {
  CHECK(riffle::detail::Crc32c("123456789") == 0xe3069283u);
  CHECK(riffle::detail::Crc32c("") == 0u);
}

TEST_CASE("Error output text is JSON in UTF-8 whatever bytes a message holds", "[delivery]") {
  auto json = [](std::string_view value) {
    std::string out;
    riffle::detail::AppendJsonString(value, &out);
    return out;
  };
  CHECK(json("a \"q\" \\ \n\x01") == "\"a \\\"q\\\" \\\\ \\n\\u0001\"");
  CHECK(json("Gr\xC3\xB6\xC3\x9F"
             "e") ==
        "\"Gr\xC3\xB6\xC3\x9F"
        "e\"");  // UTF-8 kept
  // An exception's text with bytes that are not UTF-8 (written raw, the object was not JSON).
  CHECK(json("bad \xff\xfe \xC3\xB6") == "\"bad \\u00ff\\u00fe \\u00c3\\u00b6\"");
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
      } else if (data == "twice") {
        out.push_back({r.record_id, ProcessingResult::kOk, "<twice>"});
        out.push_back({r.record_id, ProcessingResult::kOk, "<twice again>"});
      } else {
        out.push_back({r.record_id, ProcessingResult::kOk, "<" + data + ">"});
      }
    }
    return out;
  };
  auto ds = MustCreate(o);
  for (const char* r : {"a", "drop", "b", "fail", "ignore", "twice", "c"}) {
    REQUIRE(ds->PutRecord(r).ok());
  }
  REQUIRE(ds->Close().ok());

  REQUIRE(seen.size() == 7);
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
  CHECK(e.raw == std::vector<std::string>{"fail", "ignore", "twice"});
  CHECK(e.codes == std::vector<std::string>{"Lambda.ProcessingFailedStatus",
                                            "Lambda.MissingRecordId", "Lambda.DuplicatedRecordId"});
  CHECK(e.lambda_arns == std::vector<std::string>(3, ""));  // no processor_arn
  // The service's words for a ProcessingFailed answer (tools that replay the error output
  // match the code; the message is Firehose's own).
  CHECK(errors.find("\"errorCode\":\"Lambda.ProcessingFailedStatus\",\"errorMessage\":"
                    "\"ProcessingFailed status set for record\"") != std::string::npos);
  const auto m = ds->GetMetrics();
  CHECK(m.incoming_records == 7);
  CHECK(m.delivery_records == 3);
  CHECK(m.dropped_records == 1);
  CHECK(m.processing_failed_records == 3);
  CHECK(m.error_output_records == 3);
  CHECK(m.buffered_bytes == 0);

  SECTION("a processor that throws fails the whole batch") {
    riffle::MemorySink sink2;
    DeliveryStreamOptions o2 = BaseOptions(&sink2, &clock);
    o2.processor_arn = "arn:aws:lambda:us-east-1:000000000000:function:transform";
    int calls = 0;
    o2.processor =
        [&calls](std::span<const riffle::ProcessorInput>) -> std::vector<riffle::ProcessorOutput> {
      ++calls;
      throw std::runtime_error("boom");
    };
    auto ds2 = MustCreate(o2);
    REQUIRE(ds2->PutRecord("x").ok());
    REQUIRE(ds2->PutRecord("y").ok());
    REQUIRE(ds2->Close().ok());
    // The first call and three retries (the service's default NumberOfRetries).
    CHECK(calls == 4);
    REQUIRE(sink2.size() == 1);
    ErrorLines e2 = ParseErrorObject(sink2.Objects().begin()->second);
    CHECK(e2.raw == std::vector<std::string>{"x", "y"});
    CHECK(e2.codes == std::vector<std::string>{"Lambda.FunctionError", "Lambda.FunctionError"});
    CHECK(e2.attempts == std::vector<int>{4, 4});
    CHECK(e2.lambda_arns ==
          std::vector<std::string>(2, "arn:aws:lambda:us-east-1:000000000000:function:transform"));
    CHECK(ds2->GetMetrics().processing_failed_records == 2);
  }

  SECTION("answers that do not match the records fail the whole batch") {
    // An off-by-one processor answers each record with the next one's id: the last answer
    // names an id the batch does not hold, and no record may be delivered with a
    // neighbour's data.
    riffle::MemorySink sink4;
    DeliveryStreamOptions o4 = BaseOptions(&sink4, &clock);
    o4.processor = [](std::span<const riffle::ProcessorInput> in) {
      std::vector<riffle::ProcessorOutput> out;
      for (const auto& r : in) {
        out.push_back({r.record_id + 1, ProcessingResult::kOk, "T(" + std::string(r.data) + ")"});
      }
      return out;
    };
    auto ds4 = MustCreate(o4);
    for (const char* r : {"a", "b", "c"}) REQUIRE(ds4->PutRecord(r).ok());
    REQUIRE(ds4->Close().ok());
    REQUIRE(sink4.size() == 1);
    const auto objects4 = sink4.Objects();
    const auto& [key, body] = *objects4.begin();
    CHECK(StartsWith(key, "processing-failed/"));
    ErrorLines e4 = ParseErrorObject(body);
    CHECK(e4.raw == std::vector<std::string>{"a", "b", "c"});
    CHECK(e4.codes == std::vector<std::string>(3, "Lambda.MissingRecordId"));
    CHECK(ds4->GetMetrics().delivery_records == 0);
  }

  SECTION("a processor that throws is called again, and its next answer counts") {
    DeliveryStreamOptions o2 = BaseOptions(&sink, &clock);
    for (const int retries : {0, 1, 2}) {
      INFO("processor_retries " << retries);
      riffle::MemorySink sink3;
      o2.sink = &sink3;
      o2.processor_retries = retries;
      int calls = 0;
      o2.processor = [&calls](std::span<const riffle::ProcessorInput> in) {
        if (++calls <= 2) throw std::runtime_error("throttled");
        std::vector<riffle::ProcessorOutput> out;
        for (const auto& r : in) out.push_back({r.record_id, ProcessingResult::kOk, "ok"});
        return out;
      };
      auto ds3 = MustCreate(o2);
      REQUIRE(ds3->PutRecord("x").ok());
      REQUIRE(ds3->Close().ok());
      CHECK(calls == retries + 1);
      REQUIRE(sink3.size() == 1);
      const auto objects = sink3.Objects();
      const auto& [key, body] = *objects.begin();
      if (retries < 2) {
        CHECK(StartsWith(key, "processing-failed/"));
        CHECK(ParseErrorObject(body).attempts == std::vector<int>{retries + 1});
      } else {
        CHECK(body == "ok");
        CHECK(ds3->GetMetrics().delivery_records == 1);
      }
    }
    o2.processor_retries = 301;
    auto bad = riffle::DeliveryStream::Create(o2);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().message().find("ProcessorRetries") != std::string_view::npos);
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
