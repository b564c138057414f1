// Faults in Firehose: the account's plan fails Firehose operations by name, and a bucket
// that fails writes makes the delivery stream retry, then write its error output.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "account_test_helpers.h"
#include "riffle/account.h"
#include "riffle/firehose.h"

using account_test::Error;
using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::FaultRule;
using riffle::ManualClock;

namespace {

struct Fixture {
  ManualClock clock;
  std::unique_ptr<riffle::Account> account;

  explicit Fixture(int retry_seconds) {
    account = MakeAccount(clock);
    REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
    riffle::DeliveryStreamOptions extra;
    extra.retry_options.duration_in_seconds = retry_seconds;
    extra.retry_options.initial_backoff = absl::Seconds(1);
    extra.retry_options.max_backoff = absl::Seconds(1);
    extra.random_seed = 1;
    REQUIRE(account->firehose()
                .CreateDeliveryStream(
                    {.delivery_stream_name = "s",
                     .extended_s3_destination_configuration =
                         riffle::ExtendedS3DestinationConfiguration{
                             .bucket_arn = "arn:aws:s3:::deliveries",
                             .prefix = "data/",
                             .error_output_prefix = "errors/!{firehose:error-output-type}/",
                             .buffering_hints = riffle::BufferingHints{.size_in_mbs = 1,
                                                                       .interval_in_seconds = 0}},
                     .delivery_stream_options = &extra})
                .ok());
  }
  riffle::Firehose& firehose() { return account->firehose(); }
  std::vector<riffle::S3Object> Objects(std::string_view prefix) {
    return account->s3().ListObjectsV2({.bucket = "deliveries", .prefix = prefix})->contents;
  }
};

}  // namespace

TEST_CASE("The fault plan fails Firehose operations by their names", "[account][firehose]") {
  Fixture f(300);
  f.account->faults().Add(
      FaultRule::FailNext("PutRecord", 2, riffle::kServiceUnavailableException).OnResource("s"));
  f.account->faults().Add(FaultRule::FailNext("DescribeDeliveryStream", 1, riffle::kInternalFailure)
                              .WithMessage("Internal failure."));
  f.account->faults().Add(FaultRule::Delay("PutRecordBatch", absl::Milliseconds(40)));
  const Error unavailable{riffle::kServiceUnavailableException, "Service Unavailable"};
  CHECK(ErrorOf(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"a"}})) ==
        unavailable);
  CHECK(ErrorOf(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"a"}})) ==
        unavailable);
  CHECK(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"a"}}).ok());
  CHECK(ErrorOf(f.firehose().DescribeDeliveryStream({.delivery_stream_name = "s"})) ==
        Error{riffle::kInternalFailure, "Internal failure."});
  CHECK(f.firehose().DescribeDeliveryStream({.delivery_stream_name = "s"}).ok());
  // The service's wording for a delivery stream when the rule gives no message.
  f.account->faults().Add(
      FaultRule::FailNext("ListTagsForDeliveryStream", 1, riffle::kResourceNotFoundException));
  CHECK(ErrorOf(f.firehose().ListTagsForDeliveryStream({.delivery_stream_name = "s"})) ==
        Error{riffle::kResourceNotFoundException,
              "Firehose s under account 000000000000 not found."});
  const absl::Time before = f.clock.Now();
  const std::vector<riffle::FirehoseRecord> one{{"b"}};
  CHECK(f.firehose().PutRecordBatch({.delivery_stream_name = "s", .records = one}).ok());
  CHECK(f.clock.Now() - before == absl::Milliseconds(40));
  CHECK(f.account->faults().Injected("PutRecord") == 2);
  // Nothing was accepted by a failed call.
  CHECK(f.firehose().FindDeliveryStream("s")->GetMetrics().incoming_records == 2);
}

TEST_CASE("A bucket that fails writes: the delivery stream retries, then succeeds",
          "[account][firehose][s3]") {
  Fixture f(300);
  f.account->faults().Add(
      FaultRule::FailNext("PutObject", 2, riffle::kInternalError).OnResource("deliveries"));
  REQUIRE(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"r1\n"}}).ok());
  CHECK(f.firehose().Poll() == 0);  // the first attempt fails
  riffle::DeliveryStream* ds = f.firehose().FindDeliveryStream("s");
  CHECK(riffle::ErrorName(ds->last_error()) == riffle::kInternalError);
  for (int i = 0; i < 10 && ds->GetMetrics().delivery_records == 0; ++i) {
    f.clock.Advance(absl::Seconds(1));
    (void)f.firehose().Poll();
  }
  const riffle::DeliveryStreamMetrics m = ds->GetMetrics();
  CHECK(m.delivery_records == 1);
  CHECK(m.delivery_attempts == 3);
  CHECK(m.error_output_records == 0);
  const auto data = f.Objects("data/");
  REQUIRE(data.size() == 1);
  CHECK(f.account->s3().GetObject({.bucket = "deliveries", .key = data[0].key})->body == "r1\n");
  CHECK(f.Objects("errors/").empty());
}

TEST_CASE("A bucket that keeps failing: the records go to the error output prefix",
          "[account][firehose][s3]") {
  Fixture f(/*retry_seconds=*/0);  // one attempt
  // The delivery fails; the error output (a key under errors/) is written.
  f.account->faults().Add(
      FaultRule::FailNext("PutObject", 1, riffle::kInternalError).OnResource("deliveries"));
  REQUIRE(f.firehose().PutRecord({.delivery_stream_name = "s", .record = {"lost?"}}).ok());
  (void)f.firehose().Poll();
  for (int i = 0; i < 5; ++i) {
    f.clock.Advance(absl::Seconds(1));
    (void)f.firehose().Poll();
  }
  const riffle::DeliveryStreamMetrics m = f.firehose().FindDeliveryStream("s")->GetMetrics();
  CHECK(m.delivery_records == 0);
  CHECK(m.delivery_failed_records == 1);
  CHECK(m.error_output_records == 1);
  CHECK(f.Objects("data/").empty());
  const auto errors = f.Objects("errors/delivery-failed/");
  REQUIRE(errors.size() == 1);
  const std::string body =
      f.account->s3().GetObject({.bucket = "deliveries", .key = errors[0].key})->body;
  CHECK(body.find("\"errorCode\":\"InternalError\"") != std::string::npos);
  CHECK(body.find("\"rawData\":\"bG9zdD8=\"") != std::string::npos);  // base64("lost?")
  CHECK(body.find("\"deliveryStreamName\":\"s\"") != std::string::npos);
}
