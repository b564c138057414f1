// Firehose's DirectPut rates per delivery stream and its control-plane call rates, with the
// limits on: token buckets on the account's clock, the same throttles on every run.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/firehose.h"

using account_test::Error;
using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::ManualClock;

namespace {

const Error kSlowDown{riffle::kServiceUnavailableException, "Slow down."};

std::unique_ptr<riffle::Account> AccountWithStream(ManualClock& clock, bool limits,
                                                   std::string region = "us-east-1") {
  auto account = MakeAccount(clock, limits, {.region = std::move(region)});
  REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
  REQUIRE(account->firehose()
              .CreateDeliveryStream({.delivery_stream_name = "s",
                                     .extended_s3_destination_configuration =
                                         riffle::ExtendedS3DestinationConfiguration{
                                             .bucket_arn = "arn:aws:s3:::deliveries"}})
              .ok());
  return account;
}

// A limits-on account with a one-shard stream "orders" and a bucket "deliveries".
std::unique_ptr<riffle::Account> AccountWithSourceStream(ManualClock& clock) {
  auto account = MakeAccount(clock, /*limits=*/true);
  REQUIRE(account->kinesis().CreateStream({.stream_name = "orders", .shard_count = 1}).ok());
  REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
  return account;
}

// A delivery stream named `name` reading "orders" into "deliveries".
riffle::DeliveryStream* CreateOrdersDelivery(riffle::Account& account, const std::string& name) {
  REQUIRE(account.firehose()
              .CreateDeliveryStream(
                  {.delivery_stream_name = name,
                   .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
                   .kinesis_stream_source_configuration =
                       riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn =
                                                                    account.StreamArn("orders")},
                   .extended_s3_destination_configuration =
                       riffle::ExtendedS3DestinationConfiguration{.bucket_arn =
                                                                      "arn:aws:s3:::deliveries"}})
              .ok());
  return account.firehose().FindDeliveryStream(name);
}

}  // namespace

TEST_CASE("DirectPut: 2,000 requests/s per delivery stream in us-east-1", "[account][firehose]") {
  ManualClock clock;
  auto account = AccountWithStream(clock, /*limits=*/true);
  riffle::Firehose& firehose = account->firehose();
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(firehose.PutRecord({.delivery_stream_name = "s", .record = {"x"}}).ok());
  }
  CHECK(ErrorOf(firehose.PutRecord({.delivery_stream_name = "s", .record = {"x"}})) == kSlowDown);
  const std::vector<riffle::FirehoseRecord> one{{"x"}};
  CHECK(ErrorOf(firehose.PutRecordBatch({.delivery_stream_name = "s", .records = one})) ==
        kSlowDown);
  clock.Advance(absl::Milliseconds(1));  // 2 requests flow in per millisecond
  CHECK(firehose.PutRecord({.delivery_stream_name = "s", .record = {"x"}}).ok());
  CHECK(firehose.PutRecordBatch({.delivery_stream_name = "s", .records = one}).ok());
  CHECK_FALSE(firehose.PutRecord({.delivery_stream_name = "s", .record = {"x"}}).ok());
  CHECK(firehose.FindDeliveryStream("s")->GetMetrics().incoming_records == 2002);
}

TEST_CASE("DirectPut: 5 MiB/s per delivery stream, record by record in a batch",
          "[account][firehose]") {
  ManualClock clock;
  auto account = AccountWithStream(clock, /*limits=*/true);
  riffle::Firehose& firehose = account->firehose();
  const std::string record(10'000, 'r');
  const std::vector<riffle::FirehoseRecord> batch(400, riffle::FirehoseRecord{record});
  auto first = firehose.PutRecordBatch({.delivery_stream_name = "s", .records = batch});
  REQUIRE(first.ok());
  CHECK(first->failed_put_count == 0);
  // 5,242,880 - 4,000,000 bytes left: 124 records of 10,000 bytes, in order.
  auto second = firehose.PutRecordBatch({.delivery_stream_name = "s", .records = batch});
  REQUIRE(second.ok());
  CHECK(second->failed_put_count == 276);
  CHECK(second->request_responses[123].error_code.empty());
  CHECK_FALSE(second->request_responses[123].record_id.empty());
  CHECK(second->request_responses[124].error_code == "ServiceUnavailableException");
  CHECK(second->request_responses[124].error_message == "Slow down.");
  CHECK(second->request_responses[124].record_id.empty());
  clock.Advance(absl::Seconds(1));
  auto third = firehose.PutRecordBatch({.delivery_stream_name = "s", .records = batch});
  CHECK(third->failed_put_count == 0);
}

TEST_CASE("DirectPut: 100,000 records/s, 1,000 requests/s, 1 MiB/s in the other regions",
          "[account][firehose]") {
  ManualClock clock;
  auto account = AccountWithStream(clock, /*limits=*/true, "eu-central-1");
  riffle::Firehose& firehose = account->firehose();
  const std::vector<riffle::FirehoseRecord> batch(500, riffle::FirehoseRecord{"r"});
  for (int i = 0; i < 200; ++i) {
    auto put = firehose.PutRecordBatch({.delivery_stream_name = "s", .records = batch});
    REQUIRE(put.ok());
    REQUIRE(put->failed_put_count == 0);
  }
  auto over = firehose.PutRecordBatch({.delivery_stream_name = "s", .records = batch});
  REQUIRE(over.ok());
  CHECK(over->failed_put_count == 500);
  clock.Advance(absl::Milliseconds(2));  // 100 records per millisecond
  over = firehose.PutRecordBatch({.delivery_stream_name = "s", .records = batch});
  CHECK(over->failed_put_count == 300);
  clock.Advance(absl::Seconds(1));
  // 1 MiB/s: a 1,048,577-byte batch cannot pass in one second.
  const std::string large(1'000'000, 'b'), rest(48'577, 'b');
  const std::vector<riffle::FirehoseRecord> bytes{{large}, {rest}};
  auto big = firehose.PutRecordBatch({.delivery_stream_name = "s", .records = bytes});
  CHECK(big->failed_put_count == 1);
  CHECK(big->request_responses[1].error_code == "ServiceUnavailableException");
}

TEST_CASE("The rates are off without the limits switch", "[account][firehose]") {
  ManualClock clock;
  auto account = AccountWithStream(clock, /*limits=*/false);
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(account->firehose().PutRecord({.delivery_stream_name = "s", .record = {"x"}}).ok());
  }
  for (int i = 0; i < 10; ++i) {
    REQUIRE(account->firehose().DescribeDeliveryStream({.delivery_stream_name = "s"}).ok());
  }
}

TEST_CASE("Control plane: five calls per second per operation", "[account][firehose]") {
  ManualClock clock;
  auto account = AccountWithStream(clock, /*limits=*/true);  // one CreateDeliveryStream
  riffle::Firehose& firehose = account->firehose();
  for (int i = 0; i < 4; ++i) {
    const std::string name = fmt::format("d{}", i);
    REQUIRE(firehose
                .CreateDeliveryStream({.delivery_stream_name = name,
                                       .extended_s3_destination_configuration =
                                           riffle::ExtendedS3DestinationConfiguration{
                                               .bucket_arn = "arn:aws:s3:::deliveries"}})
                .ok());
  }
  CHECK(
      ErrorOf(firehose.CreateDeliveryStream({.delivery_stream_name = "d9",
                                             .extended_s3_destination_configuration =
                                                 riffle::ExtendedS3DestinationConfiguration{
                                                     .bucket_arn = "arn:aws:s3:::deliveries"}})) ==
      Error{riffle::kLimitExceededException,
            "Rate exceeded for CreateDeliveryStream under account 000000000000: at most 5 calls "
            "per second."});
  for (int i = 0; i < 5; ++i) REQUIRE(firehose.ListDeliveryStreams().ok());
  CHECK(riffle::IsLimitExceededException(firehose.ListDeliveryStreams().status()));
  clock.Advance(absl::Milliseconds(200));  // one call flows in per 200 ms
  CHECK(firehose.ListDeliveryStreams().ok());
  CHECK(firehose.DescribeDeliveryStream({.delivery_stream_name = "s"}).ok());
}

TEST_CASE("KinesisStreamAsSource reads each shard once per second with the limits on",
          "[account][firehose]") {
  ManualClock clock;
  auto account = AccountWithSourceStream(clock);
  riffle::DeliveryStream* ds = CreateOrdersDelivery(*account, "k");
  auto put = [&](std::string_view data) {
    REQUIRE(account->kinesis()
                .PutRecord({.stream_name = "orders", .partition_key = "p", .data = data})
                .ok());
  };
  put("a");
  (void)account->firehose().Poll();
  CHECK(ds->GetMetrics().incoming_records == 1);
  put("b");
  for (int i = 0; i < 3; ++i) (void)account->firehose().Poll();
  CHECK(ds->GetMetrics().incoming_records == 1);  // not again within the second
  // The shard's other readers still have their reads in this second.
  auto it = account->kinesis().GetShardIterator(
      {.stream_name = "orders",
       .shard_id = "shardId-000000000000",
       .shard_iterator_type = riffle::ShardIteratorType::kTrimHorizon});
  REQUIRE(it.ok());
  auto read = account->kinesis().GetRecords({.shard_iterator = it->shard_iterator});
  REQUIRE(read.ok());
  CHECK(read->result.records.size() == 2);
  clock.Advance(absl::Milliseconds(999));
  (void)account->firehose().Poll();
  CHECK(ds->GetMetrics().incoming_records == 1);
  clock.Advance(absl::Milliseconds(1));
  (void)account->firehose().Poll();
  CHECK(ds->GetMetrics().incoming_records == 2);
}

TEST_CASE("KinesisStreamAsSource: more readers than the shard's 5 reads/s all take turns",
          "[account][firehose]") {
  ManualClock clock;
  auto account = AccountWithSourceStream(clock);
  // Six delivery streams read the shard once a second each: six reads a second against five.
  constexpr int kReaders = 6;
  for (int i = 0; i < kReaders; ++i) {
    REQUIRE(CreateOrdersDelivery(*account, fmt::format("k{}", i)) != nullptr);
    clock.Advance(absl::Milliseconds(250));  // the control plane's 5 calls/s
  }
  clock.Advance(absl::Seconds(10));  // all ACTIVE
  (void)account->firehose().Poll();  // each has its iterator: records from now on
  for (int j = 0; j < 10; ++j) {
    REQUIRE(account->kinesis()
                .PutRecord(
                    {.stream_name = "orders", .partition_key = "p", .data = fmt::format("r{}", j)})
                .ok());
  }
  // A read the shard refuses is no read: the refused stream tries again at the next poll,
  // and the first place of the round moves, so no stream is always the one refused.
  for (int s = 0; s < 30; ++s) {
    clock.Advance(absl::Seconds(1));
    (void)account->firehose().Poll();
  }
  for (int i = 0; i < kReaders; ++i) {
    INFO("delivery stream k" << i);
    riffle::DeliveryStream* ds = account->firehose().FindDeliveryStream(fmt::format("k{}", i));
    REQUIRE(ds != nullptr);
    CHECK(ds->GetMetrics().incoming_records == 10);
  }
}

TEST_CASE("KinesisStreamAsSource: a read the shard refused does not use the second's slot",
          "[account][firehose]") {
  ManualClock clock;  // starts on a whole second
  auto account = AccountWithSourceStream(clock);
  riffle::DeliveryStream* ds = CreateOrdersDelivery(*account, "k");
  clock.Advance(absl::Seconds(10));
  (void)account->firehose().Poll();  // its read of this second (nothing there yet)
  REQUIRE(account->kinesis()
              .PutRecord({.stream_name = "orders", .partition_key = "p", .data = "a"})
              .ok());
  // 1.9 s later the stream's other readers take the shard's five reads of that second, so
  // the delivery stream's read is refused by the shard.
  clock.Advance(absl::Milliseconds(1900));
  auto it = account->kinesis().GetShardIterator(
      {.stream_name = "orders",
       .shard_id = "shardId-000000000000",
       .shard_iterator_type = riffle::ShardIteratorType::kTrimHorizon});
  REQUIRE(it.ok());
  for (int i = 0; i < 5; ++i) {
    REQUIRE(account->kinesis().GetRecords({.shard_iterator = it->shard_iterator}).ok());
  }
  (void)account->firehose().Poll();
  CHECK(ds->GetMetrics().incoming_records == 0);
  // The next second: the shard has reads again, and the refused read was no read, so the
  // delivery stream reads now rather than a second after the refusal.
  clock.Advance(absl::Milliseconds(100));
  (void)account->firehose().Poll();
  CHECK(ds->GetMetrics().incoming_records == 1);
}
