// End to end through the account: records put to a Kinesis stream are delivered by a
// KinesisStreamAsSource delivery stream into a bucket, on a ManualClock driven by the
// test, and read back through ListObjectsV2 and GetObject: every record exactly once.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/firehose.h"
#include "riffle/kpl.h"

using account_test::CreateStream;
using account_test::MakeAccount;
using riffle::ManualClock;

namespace {

// Every object under `prefix`, read by pages of `page_size` keys.
std::map<std::string, std::string> ReadAll(riffle::S3& s3, std::string_view bucket,
                                           std::string_view prefix, int page_size) {
  std::map<std::string, std::string> objects;
  std::string token;
  do {
    auto page = s3.ListObjectsV2(
        {.bucket = bucket, .prefix = prefix, .max_keys = page_size, .continuation_token = token});
    REQUIRE(page.ok());
    for (const riffle::S3Object& o : page->contents) {
      auto got = s3.GetObject({.bucket = bucket, .key = o.key});
      REQUIRE(got.ok());
      CHECK(got->etag == o.etag);
      CHECK(got->content_length == o.size);
      objects[o.key] = got->body;
    }
    token = page->next_continuation_token;
  } while (!token.empty());
  return objects;
}

// Counts each newline-terminated record of every object.
std::map<std::string, int> CountRecords(const std::map<std::string, std::string>& objects) {
  std::map<std::string, int> counts;
  for (const auto& [key, body] : objects) {
    std::size_t start = 0;
    while (start < body.size()) {
      std::size_t nl = body.find('\n', start);
      REQUIRE(nl != std::string::npos);  // every record ends with the delimiter
      ++counts[body.substr(start, nl - start)];
      start = nl + 1;
    }
  }
  return counts;
}

}  // namespace

TEST_CASE("A Kinesis stream delivered into a bucket: every record exactly once",
          "[account][firehose][s3]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  riffle::Firehose& firehose = account->firehose();
  riffle::S3& s3 = account->s3();
  CreateStream(kinesis, "orders", 2);
  REQUIRE(s3.CreateBucket({.bucket = "deliveries"}).ok());
  const std::string stream_arn = account->StreamArn("orders");
  riffle::DeliveryStreamOptions extra;
  extra.random_seed = 7;
  REQUIRE(firehose
              .CreateDeliveryStream(
                  {.delivery_stream_name = "from-orders",
                   .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
                   .kinesis_stream_source_configuration =
                       riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn = stream_arn},
                   .extended_s3_destination_configuration =
                       riffle::ExtendedS3DestinationConfiguration{
                           .bucket_arn = "arn:aws:s3:::deliveries",
                           .prefix = "orders/",
                           .buffering_hints =
                               riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = 60},
                           .processing_configuration = {.enabled = true,
                                                        .append_delimiter_to_record = true}},
                   .delivery_stream_options = &extra})
              .ok());

  // 2,000 records over 40 keys, in batches of 100, spread over three minutes of clock.
  constexpr int kRecords = 2000;
  std::vector<std::string> keys, data;
  for (int i = 0; i < kRecords; ++i) {
    keys.push_back(fmt::format("key-{}", i % 40));
    data.push_back(fmt::format("record-{:05}", i));
  }
  riffle::PutRecordsOutput out;
  for (int b = 0; b < kRecords / 100; ++b) {
    std::vector<riffle::PutRecordsRequestEntry> batch;
    for (int i = b * 100; i < (b + 1) * 100; ++i) batch.push_back({keys[i], data[i], {}});
    REQUIRE(kinesis.PutRecords({.stream_name = "orders", .records = batch}, out).ok());
    REQUIRE(out.failed_record_count == 0);
    clock.Advance(absl::Seconds(9));
    (void)firehose.Poll();  // the host drives delivery
  }
  // Nothing is written before a buffer's interval ends; then everything is.
  riffle::DeliveryStream* ds = firehose.FindDeliveryStream("from-orders");
  REQUIRE(ds != nullptr);
  for (int i = 0; i < 20 && ds->GetMetrics().delivery_records < kRecords; ++i) {
    clock.Advance(absl::Seconds(30));
    (void)firehose.Poll();
  }
  const riffle::DeliveryStreamMetrics m = ds->GetMetrics();
  CHECK(m.incoming_records == kRecords);
  CHECK(m.delivery_records == kRecords);
  CHECK(m.error_output_records == 0);
  CHECK(m.source_records_missed == 0);

  const auto objects = ReadAll(s3, "deliveries", "orders/", /*page_size=*/2);
  CHECK(objects.size() == m.delivery_objects);
  CHECK(objects.size() >= 3);  // one per minute of clock at least
  const std::regex layout(
      "orders/2026/01/01/00/from-orders-1-2026-01-01-00-[0-5][0-9]-[0-5][0-9]-"
      "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  for (const auto& [key, body] : objects) {
    INFO(key);
    CHECK(std::regex_match(key, layout));
  }
  const auto counts = CountRecords(objects);
  CHECK(counts.size() == kRecords);
  for (const std::string& d : data) {
    INFO(d);
    auto it = counts.find(d);
    REQUIRE(it != counts.end());
    CHECK(it->second == 1);
  }
  // The hour's common prefix, as a reader of Firehose output lists it.
  auto hours = s3.ListObjectsV2({.bucket = "deliveries", .prefix = "orders/", .delimiter = "/"});
  REQUIRE(hours->common_prefixes.size() == 1);
  CHECK(hours->common_prefixes[0].prefix == "orders/2026/");
}

TEST_CASE("KPL aggregates read from a Kinesis source are delivered as their user records",
          "[account][firehose][kpl]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
  // The Lambda event's kinesisRecordMetadata: a user record of an aggregate has its
  // subsequenceNumber, a plain record none.
  std::vector<std::string> seen;
  riffle::Processor processor = [&](std::span<const riffle::ProcessorInput> in) {
    std::vector<riffle::ProcessorOutput> out;
    for (const riffle::ProcessorInput& r : in) {
      const auto& sub = r.metadata.subsequence_number;
      seen.push_back(fmt::format("{}@{}", r.data, sub ? std::to_string(*sub) : "-"));
      out.push_back({r.record_id, riffle::ProcessingResult::kOk, std::string(r.data)});
    }
    return out;
  };
  REQUIRE(account->firehose()
              .CreateDeliveryStream(
                  {.delivery_stream_name = "from-orders",
                   .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
                   .kinesis_stream_source_configuration =
                       riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn =
                                                                    account->StreamArn("orders")},
                   .extended_s3_destination_configuration =
                       riffle::ExtendedS3DestinationConfiguration{
                           .bucket_arn = "arn:aws:s3:::deliveries",
                           .buffering_hints =
                               riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = 60},
                           .processing_configuration = {.enabled = true,
                                                        .processor = processor,
                                                        .append_delimiter_to_record = true}}})
              .ok());
  // An aggregate of three user records (one with its own explicit hash key), then a plain
  // record, then bytes that only start like an aggregate (passed through as they are).
  const std::vector<riffle::PutRecordsRequestEntry> users = {
      {"user-a", "one", {}}, {"user-b", "two", "42"}, {"user-a", "three", {}}};
  const std::string aggregate = riffle::kpl::EncodeAggregate(users);
  REQUIRE(
      kinesis.PutRecord({.stream_name = "orders", .partition_key = "a", .data = aggregate}).ok());
  REQUIRE(kinesis.PutRecord({.stream_name = "orders", .partition_key = "p", .data = "plain"}).ok());
  const std::string corrupt = aggregate.substr(0, aggregate.size() - 1) + "x";
  REQUIRE(kinesis.PutRecord({.stream_name = "orders", .partition_key = "c", .data = corrupt}).ok());
  riffle::DeliveryStream* ds = account->firehose().FindDeliveryStream("from-orders");
  REQUIRE(ds != nullptr);
  for (int i = 0; i < 5 && ds->GetMetrics().delivery_records < 5; ++i) {
    clock.Advance(absl::Seconds(30));
    (void)account->firehose().Poll();
  }
  const riffle::DeliveryStreamMetrics m = ds->GetMetrics();
  CHECK(m.incoming_records == 5);
  CHECK(m.delivery_records == 5);
  const auto objects = ReadAll(account->s3(), "deliveries", "", 100);
  REQUIRE(objects.size() == 1);
  CHECK(objects.begin()->second == "one\ntwo\nthree\nplain\n" + corrupt + "\n");
  REQUIRE(seen.size() == 5);
  CHECK(std::vector<std::string>(seen.begin(), seen.begin() + 4) ==
        std::vector<std::string>{"one@0", "two@1", "three@2", "plain@-"});
  CHECK(seen[4].ends_with("@-"));
}

TEST_CASE("DirectPut into a bucket backed by a directory, GZIP objects",
          "[account][firehose][s3]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("riffle-test-firehose-{}", ::getpid());
  std::filesystem::remove_all(dir);
  {
    ManualClock clock;
    auto account = MakeAccount(clock);
    REQUIRE(account->s3().CreateBucket({.bucket = "archive", .directory = dir.string()}).ok());
    REQUIRE(account->firehose()
                .CreateDeliveryStream(
                    {.delivery_stream_name = "direct",
                     .extended_s3_destination_configuration =
                         riffle::ExtendedS3DestinationConfiguration{
                             .bucket_arn = "arn:aws:s3:::archive",
                             .buffering_hints =
                                 riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = 0},
                             .compression_format = "GZIP"}})
                .ok());
    std::vector<riffle::FirehoseRecord> records(10, riffle::FirehoseRecord{"line\n"});
    auto put =
        account->firehose().PutRecordBatch({.delivery_stream_name = "direct", .records = records});
    REQUIRE(put.ok());
    CHECK(put->failed_put_count == 0);
    CHECK(account->firehose().Poll() == 1);  // interval 0: delivered at the next Poll
    auto list = account->s3().ListObjectsV2({.bucket = "archive"});
    REQUIRE(list->contents.size() == 1);
    const std::string key = list->contents[0].key;
    CHECK(key.starts_with("2026/01/01/00/direct-1-2026-01-01-00-00-00-"));
    CHECK(key.ends_with(".gz"));
    CHECK(std::filesystem::exists(dir / key));
    auto got = account->s3().GetObject({.bucket = "archive", .key = key});
    REQUIRE(got.ok());
    CHECK(got->body.substr(0, 2) == "\x1f\x8b");  // a gzip member
    CHECK(static_cast<int64_t>(std::filesystem::file_size(dir / key)) == got->content_length);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("A directory bucket refuses a Prefix whose keys it cannot hold as files, at creation",
          "[account][firehose][s3]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("riffle-test-prefix-{}", ::getpid());
  std::filesystem::remove_all(dir);
  {
    ManualClock clock;
    auto account = MakeAccount(clock);
    REQUIRE(account->s3().CreateBucket({.bucket = "archive", .directory = dir.string()}).ok());
    REQUIRE(account->s3().CreateBucket({.bucket = "memory"}).ok());
    auto create = [&](std::string_view bucket, std::string_view name, std::string prefix) {
      return account->firehose().CreateDeliveryStream(
          {.delivery_stream_name = std::string(name),
           .extended_s3_destination_configuration = riffle::ExtendedS3DestinationConfiguration{
               .bucket_arn = fmt::format("arn:aws:s3:::{}", bucket), .prefix = prefix}});
    };
    for (const char* bad : {"/orders/", "orders//", "a/../", "./x/"}) {
      INFO(bad);
      auto refused = create("archive", "refused", bad);
      REQUIRE_FALSE(refused.ok());
      CHECK(riffle::ErrorName(refused.status()) == "InvalidArgumentException");
      CHECK_THAT(riffle::ErrorMessage(refused.status()),
                 Catch::Contains("cannot be stored in the directory of bucket archive"));
      // An S3 bucket in memory takes such keys, as S3 does.
      REQUIRE(create("memory", "taken", bad).ok());
      REQUIRE(account->firehose().DeleteDeliveryStream({.delivery_stream_name = "taken"}).ok());
    }
    REQUIRE(create("archive", "ok", "orders/").ok());
    auto update = account->firehose().UpdateDestination(
        {.delivery_stream_name = "ok",
         .current_delivery_stream_version_id = "1",
         .destination_id = "destinationId-000000000001",
         .extended_s3_destination_update = riffle::ExtendedS3DestinationUpdate{.prefix = "/x/"}});
    CHECK(riffle::ErrorName(update.status()) == "InvalidArgumentException");
    // Nothing is left retrying: deleting the delivery stream returns.
    REQUIRE(account->firehose().PutRecord({.delivery_stream_name = "ok", .record = {"r\n"}}).ok());
    CHECK(account->firehose().DeleteDeliveryStream({.delivery_stream_name = "ok"}).ok());
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("Deleting the source stream while a delivery stream reads it is safe",
          "[account][firehose][s3]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  CreateStream(account->kinesis(), "orders", 1);
  REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
  const std::string stream_arn = account->StreamArn("orders");
  REQUIRE(account->firehose()
              .CreateDeliveryStream(
                  {.delivery_stream_name = "k",
                   .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
                   .kinesis_stream_source_configuration =
                       riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn = stream_arn},
                   .extended_s3_destination_configuration =
                       riffle::ExtendedS3DestinationConfiguration{
                           .bucket_arn = "arn:aws:s3:::deliveries",
                           .buffering_hints =
                               riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = 0}}})
              .ok());
  REQUIRE(account->kinesis()
              .PutRecord({.stream_name = "orders", .partition_key = "p", .data = "before"})
              .ok());
  REQUIRE(account->kinesis().DeleteStream({.stream_name = "orders"}).ok());
  for (int i = 0; i < 3; ++i) {
    (void)account->firehose().Poll();
    clock.Advance(absl::Seconds(1));
  }
  auto list = account->s3().ListObjectsV2({.bucket = "deliveries"});
  REQUIRE(list->contents.size() == 1);
  CHECK(account->s3().GetObject({.bucket = "deliveries", .key = list->contents[0].key})->body ==
        "before");
  // The delivery stream is still described; a new one cannot name the deleted stream.
  CHECK(account->firehose().DescribeDeliveryStream({.delivery_stream_name = "k"}).ok());
  CHECK(riffle::IsInvalidArgumentException(
      account->firehose()
          .CreateDeliveryStream(
              {.delivery_stream_name = "k2",
               .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
               .kinesis_stream_source_configuration =
                   riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn = stream_arn},
               .extended_s3_destination_configuration =
                   riffle::ExtendedS3DestinationConfiguration{.bucket_arn =
                                                                  "arn:aws:s3:::deliveries"}})
          .status()));
}
