// Firehose in the account: validation with the service's names and messages, the two
// delivery stream types, states on the clock, listing, deletion, puts and tags.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/firehose.h"

using account_test::CreateStream;
using account_test::Error;
using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::DeliveryStreamStatus;
using riffle::DeliveryStreamType;
using riffle::ManualClock;

namespace {

constexpr std::string_view kBucketArn = "arn:aws:s3:::deliveries";

riffle::ExtendedS3DestinationConfiguration Dest(std::string_view prefix = "") {
  return {.bucket_arn = kBucketArn, .prefix = prefix};
}

riffle::CreateDeliveryStreamInput DirectPut(std::string_view name) {
  return {.delivery_stream_name = name, .extended_s3_destination_configuration = Dest()};
}

struct Fixture {
  ManualClock clock;
  std::unique_ptr<riffle::Account> account;
  explicit Fixture(riffle::AccountOptions options = {}) {
    account = MakeAccount(clock, false, std::move(options));
    REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
  }
  riffle::Firehose& firehose() { return account->firehose(); }
};

}  // namespace

TEST_CASE("CreateDeliveryStream: ValidationException for members out of their shape",
          "[account][firehose]") {
  Fixture f;
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(DirectPut(""))) ==
        Error{riffle::kValidationException,
              "2 validation errors detected: Value '' at 'deliveryStreamName' failed to satisfy "
              "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; "
              "Value '' at 'deliveryStreamName' failed to satisfy constraint: Member must have "
              "length greater than or equal to 1"});
  const std::string long_name(65, 'a');
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(DirectPut(long_name))) ==
        Error{riffle::kValidationException,
              fmt::format("1 validation error detected: Value '{}' at 'deliveryStreamName' "
                          "failed to satisfy constraint: Member must have length less than or "
                          "equal to 64",
                          long_name)});
  CHECK(f.firehose().CreateDeliveryStream(DirectPut(std::string(64, 'a'))).ok());
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(DirectPut("a b"))).name ==
        riffle::kValidationException);

  auto in = DirectPut("s");
  in.extended_s3_destination_configuration->buffering_hints =
      riffle::BufferingHints{.size_in_mbs = 0, .interval_in_seconds = 901};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)) ==
        Error{riffle::kValidationException,
              "2 validation errors detected: Value '0' at "
              "'extendedS3DestinationConfiguration.bufferingHints.sizeInMBs' failed to satisfy "
              "constraint: Member must have value greater than or equal to 1; Value '901' at "
              "'extendedS3DestinationConfiguration.bufferingHints.intervalInSeconds' failed to "
              "satisfy constraint: Member must have value less than or equal to 900"});
  in.extended_s3_destination_configuration->buffering_hints =
      riffle::BufferingHints{.size_in_mbs = 129, .interval_in_seconds = 0};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)).name == riffle::kValidationException);

  in = DirectPut("s");
  in.extended_s3_destination_configuration->compression_format = "LZ4";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value 'LZ4' at "
              "'extendedS3DestinationConfiguration.compressionFormat' failed to satisfy "
              "constraint: Member must satisfy enum value set: [UNCOMPRESSED, GZIP, ZIP, Snappy, "
              "HADOOP_SNAPPY]"});
  in.extended_s3_destination_configuration->compression_format = "gzip";  // case matters
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)).name == riffle::kValidationException);

  in = DirectPut("s");
  in.extended_s3_destination_configuration->bucket_arn = "deliveries";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value 'deliveries' at "
              "'extendedS3DestinationConfiguration.bucketARN' failed to satisfy constraint: "
              "Member must satisfy regular expression pattern: arn:.*:s3:::[\\w\\.\\-]{1,255}"});
  // An integer cast to DeliveryStreamType was taken as DirectPut.
  in = DirectPut("t");
  in.delivery_stream_type = static_cast<riffle::DeliveryStreamType>(7);
  const Error type_error{riffle::kValidationException,
                         "1 validation error detected: Value '7' at 'deliveryStreamType' failed to "
                         "satisfy constraint: Member must satisfy enum value set: [DirectPut, "
                         "KinesisStreamAsSource, MSKAsSource, DatabaseAsSource]"};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)) == type_error);
  CHECK(ErrorOf(f.firehose().ListDeliveryStreams(
            {.delivery_stream_type = static_cast<riffle::DeliveryStreamType>(7)})) == type_error);
  CHECK(f.firehose().ListDeliveryStreams()->delivery_stream_names.size() == 1);
}

TEST_CASE("CreateDeliveryStream: InvalidArgumentException for what the operation refuses",
          "[account][firehose]") {
  Fixture f;
  auto in = DirectPut("s");
  in.extended_s3_destination_configuration->bucket_arn = "arn:aws:s3:::missing";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)) ==
        Error{riffle::kInvalidArgumentException,
              "Bucket missing does not exist in account 000000000000: create it with "
              "CreateBucket first."});
  // Any partition has the model's shape (arn:.*:s3:::...); another than the account's names
  // none of its buckets.
  REQUIRE(f.account->s3().CreateBucket({.bucket = "other"}).ok());
  in.extended_s3_destination_configuration->bucket_arn = "arn:aws-cn:s3:::other";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(in)) ==
        Error{riffle::kInvalidArgumentException,
              "Bucket other does not exist in account 000000000000: create it with "
              "CreateBucket first."});

  riffle::CreateDeliveryStreamInput k{
      .delivery_stream_name = "k",
      .delivery_stream_type = DeliveryStreamType::kKinesisStreamAsSource,
      .extended_s3_destination_configuration = Dest()};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(k)) ==
        Error{riffle::kInvalidArgumentException,
              "KinesisStreamSourceConfiguration is required for the KinesisStreamAsSource "
              "delivery stream type."});
  k.kinesis_stream_source_configuration = riffle::KinesisStreamSourceConfiguration{
      .kinesis_stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/orders"};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(k)) ==
        Error{riffle::kInvalidArgumentException,
              "Stream orders under account 000000000000 not found."});
  k.kinesis_stream_source_configuration->kinesis_stream_arn =
      "arn:aws:kinesis:us-west-2:000000000000:stream/orders";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(k)) ==
        Error{riffle::kInvalidArgumentException,
              "KinesisStreamARN arn:aws:kinesis:us-west-2:000000000000:stream/orders is not a "
              "stream of account 000000000000 in region us-east-1."});
  k.kinesis_stream_source_configuration->kinesis_stream_arn = "orders";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(k)).name == riffle::kValidationException);
  // The region part's pattern is [a-zA-Z0-9\-]+.
  k.kinesis_stream_source_configuration->kinesis_stream_arn =
      "arn:aws:kinesis:us_east_1:000000000000:stream/orders";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(k)).name == riffle::kValidationException);

  auto d = DirectPut("d");
  d.kinesis_stream_source_configuration = riffle::KinesisStreamSourceConfiguration{
      .kinesis_stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/orders"};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(d)) ==
        Error{riffle::kInvalidArgumentException,
              "KinesisStreamSourceConfiguration is only allowed for the KinesisStreamAsSource "
              "delivery stream type."});

  riffle::CreateDeliveryStreamInput no_dest{.delivery_stream_name = "n"};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(no_dest)).name ==
        riffle::kInvalidArgumentException);
  auto p = DirectPut("p");
  p.extended_s3_destination_configuration->processing_configuration.enabled = true;
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)).name == riffle::kInvalidArgumentException);
  p.extended_s3_destination_configuration->processing_configuration.processor =
      [](std::span<const riffle::ProcessorInput>) {
        return std::vector<riffle::ProcessorOutput>{};
      };
  p.extended_s3_destination_configuration->processing_configuration.number_of_retries = 301;
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)) ==
        Error{riffle::kInvalidArgumentException,
              "NumberOfRetries is 301; the Lambda processor's NumberOfRetries must be between 0 "
              "and 300."});
  p = DirectPut("p");
  p.extended_s3_destination_configuration->dynamic_partitioning_configuration.enabled = true;
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)).name == riffle::kInvalidArgumentException);
  // With a partition key function: the service also requires an ErrorOutputPrefix, and
  // refuses zero buffering.
  p.extended_s3_destination_configuration->dynamic_partitioning_configuration
      .partition_key_function = [](std::string_view, const riffle::RecordMetadata&,
                                   riffle::PartitionKeys&) { return true; };
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)) ==
        Error{riffle::kInvalidArgumentException,
              "ErrorOutputPrefix is required when DynamicPartitioningConfiguration is enabled."});
  p.extended_s3_destination_configuration->prefix = "!{partitionKeyFromQuery:k}/";
  p.extended_s3_destination_configuration->error_output_prefix = "errors/";
  p.extended_s3_destination_configuration->buffering_hints =
      riffle::BufferingHints{.size_in_mbs = 64, .interval_in_seconds = 0};
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)) ==
        Error{riffle::kInvalidArgumentException,
              "BufferingHints IntervalInSeconds 0 (zero buffering) is not available with "
              "DynamicPartitioningConfiguration enabled."});
  // The same hints through the options given beside the request: the stream would buffer
  // by them, so they are refused alike.
  riffle::DeliveryStreamOptions zero_interval;
  zero_interval.buffering_hints =
      riffle::BufferingHints{.size_in_mbs = 64, .interval_in_seconds = 0};
  p.extended_s3_destination_configuration->buffering_hints.reset();
  p.delivery_stream_options = &zero_interval;
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)) ==
        Error{riffle::kInvalidArgumentException,
              "BufferingHints IntervalInSeconds 0 (zero buffering) is not available with "
              "DynamicPartitioningConfiguration enabled."});
  p.delivery_stream_options = nullptr;
  p.extended_s3_destination_configuration->buffering_hints =
      riffle::BufferingHints{.size_in_mbs = 64, .interval_in_seconds = 60};
  CHECK(f.firehose().CreateDeliveryStream(p).ok());
  REQUIRE(f.firehose().DeleteDeliveryStream({.delivery_stream_name = "p"}).ok());
  // The guide's rule: ErrorOutputPrefix can be empty only if Prefix has no expressions.
  p = DirectPut("p");
  p.extended_s3_destination_configuration->prefix = "!{timestamp:yyyy/MM/dd}";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)) ==
        Error{riffle::kInvalidArgumentException,
              "Ths supplied prefix(es) do not satisfy the following constraint: ErrorOutputPrefix "
              "cannot be null or empty when Prefix contains expressions"});
  p.extended_s3_destination_configuration->error_output_prefix =
      "errors/!{firehose:error-output-type}/";
  CHECK(f.firehose().CreateDeliveryStream(p).ok());
  REQUIRE(f.firehose().DeleteDeliveryStream({.delivery_stream_name = "p"}).ok());
  // DeliveryStream's own check of the prefix expressions.
  p = DirectPut("p");
  p.extended_s3_destination_configuration->prefix = "!{nope:x}/";
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(p)).name == riffle::kInvalidArgumentException);

  REQUIRE(f.firehose().CreateDeliveryStream(DirectPut("s")).ok());
  CHECK(ErrorOf(f.firehose().CreateDeliveryStream(DirectPut("s"))) ==
        Error{riffle::kResourceInUseException,
              "Firehose s under accountId 000000000000 already exists"});
  CHECK(f.firehose().ListDeliveryStreams()->delivery_stream_names == std::vector<std::string>{"s"});
}

TEST_CASE("Delivery streams are CREATING for create_duration, then ACTIVE; DELETING, then gone",
          "[account][firehose]") {
  Fixture f({.create_duration = absl::Seconds(10), .delete_duration = absl::Seconds(5)});
  auto created = f.firehose().CreateDeliveryStream(DirectPut("s"));
  REQUIRE(created.ok());
  CHECK(created->delivery_stream_arn == "arn:aws:firehose:us-east-1:000000000000:deliverystream/s");
  CHECK(f.firehose().DeliveryStreamArn("s") == created->delivery_stream_arn);
  auto status = [&] {
    return f.firehose()
        .DescribeDeliveryStream({.delivery_stream_name = "s"})
        ->delivery_stream_description.delivery_stream_status;
  };
  CHECK(status() == DeliveryStreamStatus::kCreating);
  // Puts find no delivery stream while it is CREATING, as on the service.
  CHECK(ErrorOf(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"x"}})) ==
        Error{riffle::kResourceNotFoundException,
              "Firehose s under account 000000000000 not found."});
  f.clock.Advance(absl::Milliseconds(9999));
  CHECK(status() == DeliveryStreamStatus::kCreating);
  // Nor can it be deleted while CREATING.
  CHECK(ErrorOf(f.firehose().DeleteDeliveryStream({.delivery_stream_name = "s"})).name ==
        riffle::kResourceInUseException);
  f.clock.Advance(absl::Milliseconds(1));
  CHECK(status() == DeliveryStreamStatus::kActive);
  CHECK(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"x\n"}}).ok());

  REQUIRE(f.firehose().DeleteDeliveryStream({.delivery_stream_name = "s"}).ok());
  CHECK(status() == DeliveryStreamStatus::kDeleting);
  REQUIRE(f.firehose().DeleteDeliveryStream({.delivery_stream_name = "s"}).ok());  // again: OK
  f.clock.Advance(absl::Seconds(5));
  // Gone for every call, whichever comes first.
  const Error not_found{riffle::kResourceNotFoundException,
                        "Firehose s under account 000000000000 not found."};
  CHECK(ErrorOf(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"y\n"}})) ==
        not_found);
  const std::vector<riffle::Tag> tags = {{"team", "a"}};
  CHECK(ErrorOf(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = tags})) ==
        not_found);
  CHECK(ErrorOf(f.firehose().ListTagsForDeliveryStream({.delivery_stream_name = "s"})) ==
        not_found);
  CHECK(ErrorOf(f.firehose().Flush("s")) == not_found);
  CHECK(f.firehose().FindDeliveryStream("s") == nullptr);
  CHECK(ErrorOf(f.firehose().DescribeDeliveryStream({.delivery_stream_name = "s"})) == not_found);
  CHECK(riffle::IsResourceNotFoundException(
      f.firehose().DeleteDeliveryStream({.delivery_stream_name = "s"})));
  // What it had accepted was delivered when it went.
  auto objects = f.account->s3().ListObjectsV2({.bucket = "deliveries"});
  REQUIRE(objects->contents.size() == 1);
  CHECK(
      f.account->s3().GetObject({.bucket = "deliveries", .key = objects->contents[0].key})->body ==
      "x\n");
}

TEST_CASE("DescribeDeliveryStream reports the type, source and destination",
          "[account][firehose]") {
  Fixture f;
  CreateStream(f.account->kinesis(), "orders", 2);
  const std::string stream_arn = f.account->StreamArn("orders");
  riffle::CreateDeliveryStreamInput in{
      .delivery_stream_name = "from-orders",
      .delivery_stream_type = DeliveryStreamType::kKinesisStreamAsSource,
      .kinesis_stream_source_configuration =
          riffle::KinesisStreamSourceConfiguration{
              .kinesis_stream_arn = stream_arn,
              .role_arn = "arn:aws:iam::000000000000:role/firehose"},
      .extended_s3_destination_configuration = riffle::ExtendedS3DestinationConfiguration{
          .bucket_arn = kBucketArn,
          .prefix = "orders/",
          .error_output_prefix = "errors/!{firehose:error-output-type}/",
          .buffering_hints = riffle::BufferingHints{.size_in_mbs = 64, .interval_in_seconds = 60},
          .compression_format = "GZIP"}};
  REQUIRE(f.firehose().CreateDeliveryStream(in).ok());
  auto d = f.firehose().DescribeDeliveryStream({.delivery_stream_name = "from-orders"});
  REQUIRE(d.ok());
  const riffle::DeliveryStreamDescription& desc = d->delivery_stream_description;
  CHECK(desc.delivery_stream_name == "from-orders");
  CHECK(desc.delivery_stream_status == DeliveryStreamStatus::kActive);
  CHECK(desc.delivery_stream_type == DeliveryStreamType::kKinesisStreamAsSource);
  CHECK(riffle::DeliveryStreamTypeName(desc.delivery_stream_type) == "KinesisStreamAsSource");
  CHECK(desc.version_id == "1");
  CHECK(desc.create_timestamp == f.clock.Now());
  REQUIRE(desc.source.has_value());
  CHECK(desc.source->kinesis_stream_arn == stream_arn);
  CHECK(desc.source->role_arn == "arn:aws:iam::000000000000:role/firehose");
  CHECK(desc.source->delivery_start_timestamp == f.clock.Now());
  REQUIRE(desc.destinations.size() == 1);
  CHECK(desc.destinations[0].destination_id == "destinationId-000000000001");
  const auto& s3d = desc.destinations[0].extended_s3_destination_description;
  CHECK(s3d.bucket_arn == kBucketArn);
  CHECK(s3d.prefix == "orders/");
  CHECK(s3d.error_output_prefix == "errors/!{firehose:error-output-type}/");
  CHECK(s3d.buffering_hints.size_in_mbs == 64);
  CHECK(s3d.buffering_hints.interval_in_seconds == 60);
  CHECK(s3d.compression_format == "GZIP");
  CHECK_FALSE(desc.has_more_destinations);
  // Past the only destination.
  auto past = f.firehose().DescribeDeliveryStream(
      {.delivery_stream_name = "from-orders",
       .exclusive_start_destination_id = "destinationId-000000000001"});
  CHECK(past->delivery_stream_description.destinations.empty());
  CHECK(ErrorOf(f.firehose().DescribeDeliveryStream({.delivery_stream_name = "x", .limit = 0}))
            .name == riffle::kValidationException);

  // Defaults of a DirectPut stream: the service's 5 MiB / 300 s, UNCOMPRESSED.
  REQUIRE(f.firehose().CreateDeliveryStream(DirectPut("direct")).ok());
  auto direct = f.firehose().DescribeDeliveryStream({.delivery_stream_name = "direct"});
  CHECK(direct->delivery_stream_description.delivery_stream_type == DeliveryStreamType::kDirectPut);
  CHECK_FALSE(direct->delivery_stream_description.source.has_value());
  const auto& dd =
      direct->delivery_stream_description.destinations[0].extended_s3_destination_description;
  CHECK(dd.buffering_hints.size_in_mbs == 5);
  CHECK(dd.buffering_hints.interval_in_seconds == 300);
  CHECK(dd.compression_format == "UNCOMPRESSED");
  CHECK(dd.encryption_configuration.no_encryption_config == "NoEncryption");
  CHECK(dd.s3_backup_mode == "Disabled");
}

TEST_CASE("ListDeliveryStreams: Limit, ExclusiveStartDeliveryStreamName, type filter",
          "[account][firehose]") {
  Fixture f;
  CreateStream(f.account->kinesis(), "orders", 1);
  for (int i = 0; i < 7; ++i) {
    REQUIRE(f.firehose().CreateDeliveryStream(DirectPut(fmt::format("d{}", i))).ok());
  }
  const std::string stream_arn = f.account->StreamArn("orders");
  for (int i = 0; i < 3; ++i) {
    const std::string name = fmt::format("k{}", i);
    riffle::CreateDeliveryStreamInput in{
        .delivery_stream_name = name,
        .delivery_stream_type = DeliveryStreamType::kKinesisStreamAsSource,
        .kinesis_stream_source_configuration = riffle::KinesisStreamSourceConfiguration{stream_arn},
        .extended_s3_destination_configuration = Dest()};
    REQUIRE(f.firehose().CreateDeliveryStream(in).ok());
  }
  auto first = f.firehose().ListDeliveryStreams();  // default Limit: 10
  REQUIRE(first.ok());
  CHECK(first->delivery_stream_names.size() == 10);
  CHECK_FALSE(first->has_more_delivery_streams);

  std::vector<std::string> seen;
  std::string start;
  bool more = true;
  while (more) {
    auto page = f.firehose().ListDeliveryStreams(
        {.limit = 3, .exclusive_start_delivery_stream_name = start});
    REQUIRE(page.ok());
    CHECK(page->delivery_stream_names.size() <= 3);
    for (auto& n : page->delivery_stream_names) seen.push_back(n);
    more = page->has_more_delivery_streams;
    start = page->delivery_stream_names.back();
  }
  CHECK(seen == first->delivery_stream_names);

  auto kinesis_only = f.firehose().ListDeliveryStreams(
      {.delivery_stream_type = DeliveryStreamType::kKinesisStreamAsSource});
  CHECK(kinesis_only->delivery_stream_names == std::vector<std::string>{"k0", "k1", "k2"});
  auto direct =
      f.firehose().ListDeliveryStreams({.limit = 2,
                                        .delivery_stream_type = DeliveryStreamType::kDirectPut,
                                        .exclusive_start_delivery_stream_name = "d4"});
  CHECK(direct->delivery_stream_names == std::vector<std::string>{"d5", "d6"});
  CHECK_FALSE(direct->has_more_delivery_streams);
  CHECK(ErrorOf(f.firehose().ListDeliveryStreams({.limit = 0})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
              "Member must have value greater than or equal to 1"});
}

TEST_CASE("PutRecord and PutRecordBatch: the service's limits and errors", "[account][firehose]") {
  Fixture f;
  CreateStream(f.account->kinesis(), "orders", 1);
  REQUIRE(f.firehose().CreateDeliveryStream(DirectPut("s")).ok());
  const std::string stream_arn = f.account->StreamArn("orders");
  riffle::CreateDeliveryStreamInput k{
      .delivery_stream_name = "k",
      .delivery_stream_type = DeliveryStreamType::kKinesisStreamAsSource,
      .kinesis_stream_source_configuration = riffle::KinesisStreamSourceConfiguration{stream_arn},
      .extended_s3_destination_configuration = Dest()};
  REQUIRE(f.firehose().CreateDeliveryStream(k).ok());

  const Error not_permitted{
      riffle::kInvalidArgumentException,
      "This operation is not permitted on KinesisStreamAsSource delivery stream type."};
  CHECK(ErrorOf(f.firehose().PutRecord({.delivery_stream_name = "k", .record = {"x"}})) ==
        not_permitted);
  const std::vector<riffle::FirehoseRecord> one{{"x"}};
  CHECK(ErrorOf(f.firehose().PutRecordBatch({.delivery_stream_name = "k", .records = one})) ==
        not_permitted);
  CHECK(ErrorOf(f.firehose().PutRecord({.delivery_stream_name = "nope", .record = {"x"}})) ==
        Error{riffle::kResourceNotFoundException,
              "Firehose nope under account 000000000000 not found."});

  auto put = f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"x"}});
  REQUIRE(put.ok());
  CHECK_FALSE(put->record_id.empty());
  CHECK_FALSE(put->encrypted);

  // A record: at most 1,000 KiB.
  const std::string max_record(1'024'000, 'r');
  const std::string too_big(1'024'001, 'r');
  CHECK(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {max_record}}).ok());
  CHECK(ErrorOf(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {too_big}})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=1024001 "
              "cap=1024001]' at 'record.data' failed to satisfy constraint: Member must have "
              "length less than or equal to 1024000"});

  // A batch: 1..500 records, 4 MiB in all, every record at most 1,000 KiB.
  std::vector<riffle::FirehoseRecord> batch(500, riffle::FirehoseRecord{"b"});
  auto ok = f.firehose().PutRecordBatch({.delivery_stream_name = "s", .records = batch});
  REQUIRE(ok.ok());
  CHECK(ok->failed_put_count == 0);
  REQUIRE(ok->request_responses.size() == 500);
  CHECK(ok->request_responses[0].record_id != ok->request_responses[1].record_id);
  batch.push_back({"b"});
  CHECK(ErrorOf(f.firehose().PutRecordBatch({.delivery_stream_name = "s", .records = batch})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value '[501 entries]' at 'records' failed to satisfy "
              "constraint: Member must have length less than or equal to 500"});
  CHECK(ErrorOf(f.firehose().PutRecordBatch({.delivery_stream_name = "s", .records = {}})).name ==
        riffle::kValidationException);
  std::vector<riffle::FirehoseRecord> big(5, riffle::FirehoseRecord{max_record});
  CHECK(ErrorOf(f.firehose().PutRecordBatch({.delivery_stream_name = "s", .records = big})) ==
        Error{riffle::kInvalidArgumentException, "Records size exceeds 4 MB limit"});
  std::vector<riffle::FirehoseRecord> with_big{{"a"}, {too_big}};
  CHECK(ErrorOf(f.firehose().PutRecordBatch({.delivery_stream_name = "s", .records = with_big}))
            .message ==
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=1024001 "
        "cap=1024001]' at 'records.2.member.data' failed to satisfy constraint: Member must have "
        "length less than or equal to 1024000");
  CHECK(f.firehose().FindDeliveryStream("s")->GetMetrics().incoming_records == 502);
}

TEST_CASE("Tags: TagDeliveryStream, UntagDeliveryStream, ListTagsForDeliveryStream",
          "[account][firehose]") {
  Fixture f;
  const std::vector<riffle::Tag> initial{{"team", "data"}, {"env", "test"}};
  auto in = DirectPut("s");
  in.tags = initial;
  REQUIRE(f.firehose().CreateDeliveryStream(in).ok());
  auto tags = f.firehose().ListTagsForDeliveryStream({.delivery_stream_name = "s"});
  REQUIRE(tags.ok());
  REQUIRE(tags->tags.size() == 2);
  CHECK(tags->tags[0].key == "env");
  CHECK(tags->tags[1].value == "data");

  std::vector<riffle::Tag> more;
  for (int i = 0; i < 48; ++i) more.push_back({fmt::format("k{:02}", i), "v"});
  REQUIRE(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = more}).ok());
  const std::vector<riffle::Tag> one_more{{"last", "x"}};
  CHECK(ErrorOf(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = one_more})) ==
        Error{riffle::kLimitExceededException,
              "Firehose s under account 000000000000 would have 51 tags: a delivery stream has "
              "at most 50."});
  // The API's Tag patterns: "aws:" keys and characters outside letters, separators, digits
  // and _ . : / = + - @ % fail them.
  const std::vector<riffle::Tag> reserved{{"aws:x", "y"}};
  CHECK(ErrorOf(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = reserved})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value 'aws:x' at 'tags.1.member.key' failed to "
              "satisfy constraint: Member must satisfy regular expression pattern: "
              "^(?!aws:)[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@%]*$"});
  const std::vector<riffle::Tag> hash_value{{"team", "a#b"}};
  CHECK(ErrorOf(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = hash_value}))
            .name == riffle::kValidationException);
  const std::vector<std::string_view> bad_key{"k#"};
  CHECK(
      ErrorOf(f.firehose().UntagDeliveryStream({.delivery_stream_name = "s", .tag_keys = bad_key}))
          .name == riffle::kValidationException);
  const std::vector<riffle::Tag> long_key{{std::string(129, 'k'), "v"}};
  CHECK(ErrorOf(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = long_key}))
            .name == riffle::kValidationException);
  // Lengths count characters: 128 two-byte letters make a valid key, 256 a valid value.
  std::string wide_key, wide_value;
  for (int i = 0; i < 128; ++i) wide_key += "\u00e9";
  for (int i = 0; i < 256; ++i) wide_value += "\u00e9";
  const std::vector<std::string_view> k00{"k00"};  // room for one more (50 at most)
  REQUIRE(f.firehose().UntagDeliveryStream({.delivery_stream_name = "s", .tag_keys = k00}).ok());
  const std::vector<riffle::Tag> wide{{wide_key, wide_value}};
  CHECK(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = wide}).ok());
  const std::vector<std::string_view> wide_keys{wide_key};
  CHECK(
      f.firehose().UntagDeliveryStream({.delivery_stream_name = "s", .tag_keys = wide_keys}).ok());
  const std::vector<riffle::Tag> k00_back{{"k00", "v"}};
  REQUIRE(f.firehose().TagDeliveryStream({.delivery_stream_name = "s", .tags = k00_back}).ok());

  auto page = f.firehose().ListTagsForDeliveryStream(
      {.delivery_stream_name = "s", .exclusive_start_tag_key = "k45", .limit = 3});
  REQUIRE(page.ok());
  REQUIRE(page->tags.size() == 3);
  CHECK(page->tags[0].key == "k46");
  CHECK(page->tags[2].key == "team");
  CHECK_FALSE(page->has_more_tags);
  auto first = f.firehose().ListTagsForDeliveryStream({.delivery_stream_name = "s", .limit = 1});
  CHECK(first->has_more_tags);

  const std::vector<std::string_view> remove{"team", "unknown"};
  REQUIRE(f.firehose().UntagDeliveryStream({.delivery_stream_name = "s", .tag_keys = remove}).ok());
  CHECK(f.firehose().ListTagsForDeliveryStream({.delivery_stream_name = "s"})->tags.size() == 49);
  CHECK(riffle::IsResourceNotFoundException(
      f.firehose().UntagDeliveryStream({.delivery_stream_name = "x", .tag_keys = remove})));
}

TEST_CASE("UpdateDestination merges into the destination and moves VersionId",
          "[account][firehose]") {
  Fixture f;
  REQUIRE(f.account->s3().CreateBucket({.bucket = "archive"}).ok());
  auto in = DirectPut("s");
  in.extended_s3_destination_configuration->prefix = "v1/";
  REQUIRE(f.firehose().CreateDeliveryStream(in).ok());
  auto describe = [&] {
    return f.firehose()
        .DescribeDeliveryStream({.delivery_stream_name = "s"})
        ->delivery_stream_description;
  };
  CHECK(describe().version_id == "1");
  CHECK_FALSE(describe().last_update_timestamp.has_value());
  REQUIRE(
      f.firehose().PutRecord({.delivery_stream_name = "s", .record = {.data = "before\n"}}).ok());

  riffle::UpdateDestinationInput u{
      .delivery_stream_name = "s",
      .current_delivery_stream_version_id = "1",
      .destination_id = "destinationId-000000000001",
      .extended_s3_destination_update = riffle::ExtendedS3DestinationUpdate{
          .bucket_arn = "arn:aws:s3:::archive",
          .prefix = "v2/",
          .buffering_hints = riffle::BufferingHints{.size_in_mbs = 2, .interval_in_seconds = 60},
          .compression_format = "GZIP"}};
  // Shapes first, then the service's checks.
  auto bad = u;
  bad.current_delivery_stream_version_id = "one";
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value 'one' at 'currentDeliveryStreamVersionId' "
              "failed to satisfy constraint: Member must satisfy regular expression pattern: "
              "[0-9]+"});
  bad = u;
  bad.destination_id = "";
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)).name == riffle::kValidationException);
  bad = u;
  bad.current_delivery_stream_version_id = "2";
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)) ==
        Error{riffle::kConcurrentModificationException,
              "Cannot update Firehose s: its current version is 1, not 2."});
  bad = u;
  bad.destination_id = "destinationId-000000000002";
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)) ==
        Error{riffle::kInvalidArgumentException,
              "Destination Id destinationId-000000000002 does not exist for Firehose s."});
  bad = u;
  bad.extended_s3_destination_update->prefix = "!{timestamp:yyyy}/";
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)) ==
        Error{riffle::kInvalidArgumentException,
              "Ths supplied prefix(es) do not satisfy the following constraint: ErrorOutputPrefix "
              "cannot be null or empty when Prefix contains expressions"});
  bad = u;
  bad.extended_s3_destination_update->bucket_arn = "arn:aws:s3:::missing";
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)).name == riffle::kInvalidArgumentException);
  bad = u;
  bad.extended_s3_destination_update->dynamic_partitioning_configuration =
      riffle::DynamicPartitioningConfiguration{.enabled = true};
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)).name == riffle::kInvalidArgumentException);
  bad = u;
  bad.delivery_stream_name = "missing";
  CHECK(ErrorOf(f.firehose().UpdateDestination(bad)).name == riffle::kResourceNotFoundException);
  CHECK(describe().version_id == "1");

  f.clock.Advance(absl::Seconds(7));
  REQUIRE(f.firehose().UpdateDestination(u).ok());
  const auto d = describe();
  CHECK(d.version_id == "2");
  CHECK(d.last_update_timestamp == f.clock.Now());
  const auto& dest = d.destinations.at(0).extended_s3_destination_description;
  CHECK(dest.bucket_arn == "arn:aws:s3:::archive");
  CHECK(dest.prefix == "v2/");
  CHECK(dest.buffering_hints.size_in_mbs == 2);
  CHECK(dest.compression_format == "GZIP");
  // The record accepted before went to the old bucket under the old prefix, at once.
  auto old_objects = f.account->s3().ListObjectsV2({.bucket = "deliveries"});
  REQUIRE(old_objects->contents.size() == 1);
  CHECK(old_objects->contents[0].key.starts_with("v1/"));
  CHECK(old_objects->contents[0].key.find("/s-1-") != std::string::npos);
  // The next ones go to the new bucket, prefix and version, compressed.
  REQUIRE(
      f.firehose().PutRecord({.delivery_stream_name = "s", .record = {.data = "after\n"}}).ok());
  REQUIRE(f.firehose().Flush("s").ok());
  auto new_objects = f.account->s3().ListObjectsV2({.bucket = "archive"});
  REQUIRE(new_objects->contents.size() == 1);
  CHECK(new_objects->contents[0].key.starts_with("v2/"));
  CHECK(new_objects->contents[0].key.find("/s-2-") != std::string::npos);
  CHECK(new_objects->contents[0].key.ends_with(".gz"));
  // The old version id is now stale.
  CHECK(ErrorOf(f.firehose().UpdateDestination(u)).name ==
        riffle::kConcurrentModificationException);
}
