// The account's Kinesis API by name and ARN, its control plane: naming, creating and
// deleting streams, describing and listing them, resharding, modes, retention, tags,
// encryption and monitoring; every operation's happy path and its errors by name and
// message, as the service gives them. The data plane: test_account_data.cpp (same binary).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"

using account_test::CreateStream;
using account_test::Error;
using account_test::ErrorOf;
using account_test::kOrdersArn;
using account_test::MakeAccount;
using account_test::ShardIds;
using riffle::ManualClock;

TEST_CASE(
    "an account in the China or GovCloud regions names its partition; other partitions' "
    "ARNs name none of its resources",
    "[account]") {
  riffle::ManualClock clock;
  auto cn = MakeAccount(clock, false, {.region = "cn-north-1"});
  CreateStream(cn->kinesis(), "orders", 1);
  const std::string arn = "arn:aws-cn:kinesis:cn-north-1:000000000000:stream/orders";
  CHECK(cn->StreamArn("orders") == arn);
  CHECK(cn->kinesis()
            .DescribeStreamSummary({.stream_name = "orders"})
            ->stream_description_summary.stream_arn == arn);
  CHECK(cn->kinesis().DescribeStreamSummary({.stream_arn = arn}).ok());
  CHECK(ErrorOf(cn->kinesis().DescribeStreamSummary(
                    {.stream_arn = "arn:aws:kinesis:cn-north-1:000000000000:stream/orders"}))
            .name == riffle::kResourceNotFoundException);
  auto q = cn->sqs().CreateQueue({.queue_name = "q.fifo", .attributes = {{"FifoQueue", "true"}}});
  REQUIRE(q.ok());
  CHECK(q->queue_url == "https://sqs.cn-north-1.amazonaws.com.cn/000000000000/q.fifo");
  CHECK(cn->sqs().QueueArn("q.fifo") == "arn:aws-cn:sqs:cn-north-1:000000000000:q.fifo");
  auto gov = MakeAccount(clock, false, {.region = "us-gov-west-1"});
  CHECK(gov->StreamArn("orders") ==
        "arn:aws-us-gov:kinesis:us-gov-west-1:000000000000:stream/orders");
  // A us-east-1 account: the same ARN in another partition is not its stream.
  auto us = MakeAccount(clock);
  CreateStream(us->kinesis(), "orders", 1);
  for (std::string_view other : {"arn:aws-cn:kinesis:us-east-1:000000000000:stream/orders",
                                 "arn:aws-us-gov:kinesis:us-east-1:000000000000:stream/orders",
                                 "arn:awsx:kinesis:us-east-1:000000000000:stream/orders"}) {
    INFO(other);
    CHECK(ErrorOf(us->kinesis().PutRecord({.stream_arn = other, .partition_key = "k", .data = "d"}))
              .name == riffle::kResourceNotFoundException);
  }
}

TEST_CASE("an account names its streams by name and by ARN", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  CHECK(account->region() == "us-east-1");
  CHECK(account->account_id() == "000000000000");
  CHECK(account->StreamArn("orders") == kOrdersArn);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 2);

  auto by_name = kinesis.DescribeStreamSummary({.stream_name = "orders"});
  auto by_arn = kinesis.DescribeStreamSummary({.stream_arn = kOrdersArn});
  auto by_both = kinesis.DescribeStreamSummary({.stream_name = "orders", .stream_arn = kOrdersArn});
  REQUIRE(by_name.ok());
  REQUIRE(by_arn.ok());
  REQUIRE(by_both.ok());
  CHECK(by_name->stream_description_summary.stream_arn == kOrdersArn);
  CHECK(by_arn->stream_description_summary.stream_name == "orders");
  CHECK(by_name->stream_description_summary.open_shard_count == 2);
  CHECK(kinesis.FindStream("orders") == kinesis.FindStream(kOrdersArn));
  CHECK(kinesis.FindStream("orders")->arn() == kOrdersArn);

  CHECK(ErrorOf(kinesis.DescribeStreamSummary({.stream_name = "nope"})) ==
        Error{riffle::kResourceNotFoundException,
              "Stream nope under account 000000000000 not found."});
  CHECK(ErrorOf(kinesis.DescribeStreamSummary(
            {.stream_arn = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"})) ==
        Error{riffle::kResourceNotFoundException,
              "Stream orders under account 111122223333 not found."});
  CHECK(
      ErrorOf(kinesis.DescribeStreamSummary({.stream_name = "other", .stream_arn = kOrdersArn})) ==
      Error{riffle::kInvalidArgumentException,
            "StreamARN arn:aws:kinesis:us-east-1:000000000000:stream/orders and StreamName other "
            "do not name the same stream."});
  CHECK(
      ErrorOf(kinesis.DescribeStreamSummary({})) ==
      Error{riffle::kInvalidArgumentException, "Either StreamName or StreamARN must be provided."});
  CHECK(ErrorOf(kinesis.DescribeStreamSummary({.stream_arn = "arn:aws:sqs:us-east-1:1:q"})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value 'arn:aws:sqs:us-east-1:1:q' at 'streamARN' "
              "failed to satisfy constraint: Member must satisfy regular expression pattern: "
              "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+"});

  // Another account: its own region and id in every ARN, consumer ARNs included.
  auto other = MakeAccount(clock, false, {.region = "eu-west-1", .account_id = "123456789012"});
  CreateStream(other->kinesis(), "orders", 1);
  const std::string arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders";
  CHECK(other->kinesis()
            .DescribeStreamSummary({.stream_name = "orders"})
            ->stream_description_summary.stream_arn == arn);
  auto consumer =
      other->kinesis().RegisterStreamConsumer({.stream_arn = arn, .consumer_name = "c"});
  REQUIRE(consumer.ok());
  CHECK(consumer->consumer.consumer_arn ==
        fmt::format("{}/consumer/c:{}", arn, absl::ToUnixSeconds(clock.Now())));
  CHECK(ErrorOf(other->kinesis().DescribeStreamSummary({.stream_arn = kOrdersArn})) ==
        Error{riffle::kResourceNotFoundException,
              "Stream orders under account 000000000000 not found."});
  CHECK(
      ErrorOf(riffle::Account::Create({.account_id = "12"})) ==
      Error{riffle::kInvalidArgumentException, "AccountId '12' is invalid: it must be 12 digits."});
}

TEST_CASE("CreateStream and DeleteStream, with CREATING and DELETING on the clock", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(
      clock, false, {.create_duration = absl::Seconds(10), .delete_duration = absl::Seconds(5)});
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 3);
  auto status = [&] {
    return kinesis.DescribeStreamSummary({.stream_name = "orders"})
        ->stream_description_summary.stream_status;
  };
  CHECK(status() == riffle::StreamStatus::kCreating);
  CHECK(kinesis.DescribeStream({.stream_name = "orders"})->stream_description.shards.empty());
  const Error not_found{riffle::kResourceNotFoundException,
                        "Stream orders under account 000000000000 not found."};
  CHECK(ErrorOf(kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "v"})) ==
        not_found);
  CHECK(ErrorOf(kinesis.ListShards({.stream_name = "orders"})) ==
        Error{riffle::kResourceInUseException,
              "Stream orders under account 000000000000 not ACTIVE, instead in state CREATING"});
  CHECK(ErrorOf(kinesis.SplitShard({.stream_name = "orders",
                                    .shard_to_split = "shardId-000000000000",
                                    .new_starting_hash_key = "1000"})) ==
        Error{riffle::kResourceInUseException,
              "Stream orders under account 000000000000 not ACTIVE, instead in state CREATING"});
  CHECK(ErrorOf(kinesis.CreateStream({.stream_name = "orders", .shard_count = 1})) ==
        Error{riffle::kResourceInUseException,
              "Stream orders under account 000000000000 already exists."});
  CHECK(ErrorOf(kinesis.DeleteStream({.stream_name = "orders"})) ==
        Error{riffle::kResourceInUseException,
              "Stream orders under account 000000000000 not ACTIVE, instead in state CREATING"});
  clock.Advance(absl::Seconds(10));
  CHECK(status() == riffle::StreamStatus::kActive);
  REQUIRE(kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "v"}).ok());

  // Consumers must be deregistered first, or deleted with the stream.
  REQUIRE(
      kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "audit"}).ok());
  CHECK(ErrorOf(kinesis.DeleteStream({.stream_name = "orders"})) ==
        Error{riffle::kResourceInUseException,
              std::string("DeleteStream can't delete ") + kOrdersArn +
                  " because there are consumers associated with this data stream. To delete "
                  "orders anyway, set the EnforceConsumerDeletion parameter to true to force the "
                  "deletion of all the consumers that are associated with it."});
  REQUIRE(kinesis.DeleteStream({.stream_arn = kOrdersArn, .enforce_consumer_deletion = true}).ok());
  CHECK(status() == riffle::StreamStatus::kDeleting);
  // The service may go on reading and writing while DELETING.
  CHECK(kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "v"}).ok());
  CHECK(kinesis.ListStreams()->stream_names == std::vector<std::string>{"orders"});
  clock.Advance(absl::Seconds(5));
  CHECK(ErrorOf(kinesis.DescribeStreamSummary({.stream_name = "orders"})) == not_found);
  CHECK(ErrorOf(kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "v"})) ==
        not_found);
  CHECK(kinesis.ListStreams()->stream_names.empty());
  CHECK(ErrorOf(kinesis.DeleteStream({.stream_name = "orders"})) == not_found);
  // The name is free again.
  CHECK(kinesis.CreateStream({.stream_name = "orders", .shard_count = 1}).ok());
}

TEST_CASE("CreateStream: modes, shard counts and the shard quota", "[account]") {
  ManualClock clock;
  riffle::AccountOptions o;
  o.quotas.shard_limit = 10;
  auto account = MakeAccount(clock, false, o);
  riffle::Kinesis& kinesis = account->kinesis();
  CHECK(account->shard_limit() == 10);
  CHECK(MakeAccount(clock)->shard_limit() == 20000);  // us-east-1
  CHECK(MakeAccount(clock, false, {.region = "ap-south-1"})->shard_limit() == 1000);

  REQUIRE(kinesis
              .CreateStream(
                  {.stream_name = "od",
                   .stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand}})
              .ok());
  auto od = kinesis.DescribeStreamSummary({.stream_name = "od"});
  CHECK(od->stream_description_summary.open_shard_count == 4);  // the service's starting capacity
  CHECK(od->stream_description_summary.stream_mode == riffle::StreamMode::kOnDemand);
  CHECK(ErrorOf(kinesis.CreateStream({.stream_name = "p"})) ==
        Error{riffle::kInvalidArgumentException,
              "ShardCount is required for a stream in PROVISIONED mode."});
  CHECK(ErrorOf(kinesis.CreateStream(
            {.stream_name = "p",
             .shard_count = 2,
             .stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand}})) ==
        Error{riffle::kInvalidArgumentException,
              "ShardCount must not be given for a stream in ON_DEMAND mode."});
  CHECK(ErrorOf(kinesis.CreateStream({.stream_name = "big", .shard_count = 7})) ==
        Error{riffle::kLimitExceededException,
              "This request would exceed the shard limit for the account 000000000000 in "
              "us-east-1. Current shard count for the account: 4. Limit: 10. Number of additional "
              "shards that would have resulted from this request: 7. Refer to the AWS Service "
              "Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) "
              "for current limits and how to request higher limits."});
  CHECK(kinesis.CreateStream({.stream_name = "fits", .shard_count = 6}).ok());
  // A reshard beyond the quota is refused the same way.
  CHECK(ErrorOf(kinesis.SplitShard({.stream_name = "fits",
                                    .shard_to_split = "shardId-000000000000",
                                    .new_starting_hash_key = "1000"}))
            .name == riffle::kLimitExceededException);
  auto limits = kinesis.DescribeLimits();
  REQUIRE(limits.ok());
  CHECK(limits->shard_limit == 10);
  CHECK(limits->open_shard_count == 10);
  CHECK(limits->on_demand_stream_count == 1);
  CHECK(limits->on_demand_stream_count_limit == 50);

  // A stream whose deletion has finished holds no quota, before any call sweeps it away.
  o.delete_duration = absl::Seconds(1);
  o.quotas.on_demand_stream_limit = 1;
  auto other = MakeAccount(clock, false, o);
  riffle::Kinesis& k2 = other->kinesis();
  REQUIRE(k2.CreateStream({.stream_name = "a", .shard_count = 5}).ok());
  REQUIRE(k2.CreateStream({.stream_name = "b", .shard_count = 1}).ok());
  REQUIRE(k2.CreateStream(
                {.stream_name = "od",
                 .stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand}})
              .ok());
  REQUIRE(k2.DeleteStream({.stream_name = "a"}).ok());
  REQUIRE(k2.DeleteStream({.stream_name = "od"}).ok());
  clock.Advance(absl::Seconds(2));
  CHECK(k2.UpdateShardCount({.stream_name = "b", .target_shard_count = 2}).ok());
  CHECK(k2.SplitShard({.stream_name = "b",
                       .shard_to_split = "shardId-000000000001",
                       .new_starting_hash_key = "1000"})
            .ok());
  CHECK(k2.UpdateStreamMode(
              {.stream_arn = other->StreamArn("b"),
               .stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand}})
            .ok());
}

TEST_CASE("DescribeStream pages shards with Limit and ExclusiveStartShardId", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 5);
  REQUIRE(kinesis
              .AddTagsToStream(
                  {.stream_name = "orders", .tags = std::vector<riffle::Tag>{{"team", "a"}}})
              .ok());
  auto d = kinesis.DescribeStream({.stream_name = "orders", .limit = 2});
  REQUIRE(d.ok());
  const riffle::StreamDescription& sd = d->stream_description;
  CHECK(sd.stream_name == "orders");
  CHECK(sd.stream_arn == kOrdersArn);
  CHECK(sd.stream_status == riffle::StreamStatus::kActive);
  CHECK(sd.retention_period_hours == 24);
  CHECK(sd.stream_creation_timestamp == clock.Now());
  CHECK(sd.encryption_type == riffle::EncryptionType::kNone);
  CHECK(ShardIds(sd.shards) ==
        std::vector<std::string>{"shardId-000000000000", "shardId-000000000001"});
  CHECK(sd.has_more_shards);
  auto next = kinesis.DescribeStream(
      {.stream_name = "orders", .exclusive_start_shard_id = "shardId-000000000001"});
  CHECK(ShardIds(next->stream_description.shards) ==
        std::vector<std::string>{"shardId-000000000002", "shardId-000000000003",
                                 "shardId-000000000004"});
  CHECK_FALSE(next->stream_description.has_more_shards);
  CHECK(ErrorOf(kinesis.DescribeStream({.stream_name = "orders", .limit = 100000})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value '100000' at 'limit' failed to satisfy "
              "constraint: Member must have value less than or equal to 10000"});
}

TEST_CASE("ListStreams pages with Limit, ExclusiveStartStreamName and NextToken", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  for (std::string name : {"e", "b", "d", "a", "c"}) CreateStream(kinesis, name, 1);
  auto page = kinesis.ListStreams({.limit = 2});
  REQUIRE(page.ok());
  CHECK(page->stream_names == std::vector<std::string>{"a", "b"});
  CHECK(page->has_more_streams);
  REQUIRE(page->stream_summaries.size() == 2);
  CHECK(page->stream_summaries[1].stream_arn == account->StreamArn("b"));
  CHECK(page->stream_summaries[1].stream_status == riffle::StreamStatus::kActive);
  auto second = kinesis.ListStreams({.limit = 2, .next_token = page->next_token});
  CHECK(second->stream_names == std::vector<std::string>{"c", "d"});
  auto last = kinesis.ListStreams({.next_token = second->next_token});
  CHECK(last->stream_names == std::vector<std::string>{"e"});
  CHECK_FALSE(last->has_more_streams);
  CHECK(last->next_token.empty());
  CHECK(kinesis.ListStreams({.exclusive_start_stream_name = "c"})->stream_names ==
        std::vector<std::string>{"d", "e"});
  // Tokens live 300 s and cannot be forged.
  clock.Advance(absl::Seconds(301));
  auto expired = kinesis.ListStreams({.next_token = page->next_token});
  CHECK(riffle::IsExpiredNextTokenException(expired.status()));
  CHECK_THAT(riffle::ErrorMessage(expired.status()),
             Catch::StartsWith("The pagination token passed to the operation is expired"));
  std::string forged = page->next_token;
  forged.back() = forged.back() == 'a' ? 'b' : 'a';
  CHECK(riffle::IsInvalidArgumentException(kinesis.ListStreams({.next_token = forged}).status()));
}

TEST_CASE("ListShards pages with MaxResults and a NextToken that expires", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 5);
  auto page = kinesis.ListShards({.stream_name = "orders", .max_results = 2});
  REQUIRE(page.ok());
  CHECK(ShardIds(page->shards) ==
        std::vector<std::string>{"shardId-000000000000", "shardId-000000000001"});
  REQUIRE_FALSE(page->next_token.empty());
  CHECK(ErrorOf(kinesis.ListShards({.stream_name = "orders", .next_token = page->next_token})) ==
        Error{riffle::kInvalidArgumentException,
              "NextToken and StreamName cannot be provided together."});
  auto second = kinesis.ListShards({.next_token = page->next_token, .max_results = 2});
  CHECK(ShardIds(second->shards) ==
        std::vector<std::string>{"shardId-000000000002", "shardId-000000000003"});
  clock.Advance(absl::Seconds(299));
  auto third = kinesis.ListShards({.next_token = second->next_token});
  CHECK(ShardIds(third->shards) == std::vector<std::string>{"shardId-000000000004"});
  CHECK(third->next_token.empty());
  clock.Advance(absl::Seconds(2));  // the first token is now 301 s old
  auto expired = kinesis.ListShards({.next_token = second->next_token});
  CHECK(riffle::IsExpiredNextTokenException(expired.status()));
  CHECK(expired.status().code() == absl::StatusCode::kInvalidArgument);

  CHECK(ShardIds(kinesis
                     .ListShards({.stream_arn = kOrdersArn,
                                  .exclusive_start_shard_id = "shardId-000000000003"})
                     ->shards) == std::vector<std::string>{"shardId-000000000004"});
  REQUIRE(kinesis
              .SplitShard({.stream_name = "orders",
                           .shard_to_split = "shardId-000000000000",
                           .new_starting_hash_key = "1000"})
              .ok());
  auto latest =
      kinesis.ListShards({.stream_name = "orders",
                          .shard_filter = riffle::ShardFilter{riffle::ShardFilterType::kAtLatest}});
  CHECK(latest->shards.size() == 6);  // the parent is closed
  // ShardFilter.ShardId counts with AFTER_SHARD_ID only.
  CHECK(kinesis
            .ListShards({.stream_name = "orders",
                         .shard_filter = riffle::ShardFilter{riffle::ShardFilterType::kAtLatest,
                                                             "shardId-000000000003"}})
            ->shards.size() == 6);
  CHECK(kinesis.ListShards({.stream_name = "orders"})->shards.size() == 7);
  CHECK(ErrorOf(kinesis.ListShards({})) ==
        Error{riffle::kInvalidArgumentException,
              "Either NextToken or StreamName should be provided."});
  CHECK(ErrorOf(kinesis.ListShards({.stream_name = "orders", .max_results = 0})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value '0' at 'maxResults' failed to satisfy "
              "constraint: Member must have value greater than or equal to 1"});
}
TEST_CASE("resharding by name: SplitShard, MergeShards, UpdateShardCount", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock, false, {.update_duration = absl::Seconds(30)});
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 2);
  REQUIRE(kinesis
              .SplitShard({.stream_name = "orders",
                           .shard_to_split = "shardId-000000000000",
                           .new_starting_hash_key = "1000"})
              .ok());
  CHECK(ErrorOf(kinesis.MergeShards({.stream_name = "orders",
                                     .shard_to_merge = "shardId-000000000002",
                                     .adjacent_shard_to_merge = "shardId-000000000003"})) ==
        Error{riffle::kResourceInUseException,
              "Stream orders under account 000000000000 not ACTIVE, instead in state UPDATING"});
  clock.Advance(absl::Seconds(30));
  REQUIRE(kinesis
              .MergeShards({.stream_arn = kOrdersArn,
                            .shard_to_merge = "shardId-000000000002",
                            .adjacent_shard_to_merge = "shardId-000000000003"})
              .ok());
  clock.Advance(absl::Seconds(30));
  CHECK(ErrorOf(kinesis.SplitShard({.stream_name = "orders",
                                    .shard_to_split = "shardId-000000000009",
                                    .new_starting_hash_key = "1000"})) ==
        Error{riffle::kResourceNotFoundException,
              "Could not find shard shardId-000000000009 in stream orders under account "
              "000000000000."});
  auto update = kinesis.UpdateShardCount({.stream_name = "orders", .target_shard_count = 4});
  REQUIRE(update.ok());
  CHECK(update->stream_name == "orders");
  CHECK(update->stream_arn == kOrdersArn);
  CHECK(update->current_shard_count == 2);
  CHECK(update->target_shard_count == 4);
  clock.Advance(absl::Seconds(30));
  CHECK(ErrorOf(kinesis.UpdateShardCount({.stream_name = "orders", .target_shard_count = 9})) ==
        Error{riffle::kLimitExceededException,
              "UpdateShardCount cannot scale up over double your current open shard count. "
              "Current open shard count: 4, Target shard count: 9"});

  // ON_DEMAND streams are resharded by the service, not the caller.
  REQUIRE(kinesis
              .CreateStream(
                  {.stream_name = "od",
                   .stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand}})
              .ok());
  CHECK(ErrorOf(kinesis.UpdateShardCount({.stream_name = "od", .target_shard_count = 8})) ==
        Error{riffle::kValidationException,
              "Stream od under account 000000000000 is in ON_DEMAND mode: UpdateShardCount is only "
              "supported for data streams with the provisioned capacity mode."});
  CHECK(riffle::IsValidationException(kinesis.SplitShard({.stream_name = "od",
                                                          .shard_to_split = "shardId-000000000000",
                                                          .new_starting_hash_key = "1000"})));
}

TEST_CASE("UpdateStreamMode switches the capacity mode", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 2);
  REQUIRE(kinesis
              .UpdateStreamMode({.stream_arn = kOrdersArn,
                                 .stream_mode_details = {riffle::StreamMode::kOnDemand}})
              .ok());
  auto d = kinesis.DescribeStream({.stream_name = "orders"});
  CHECK(d->stream_description.stream_mode_details.stream_mode == riffle::StreamMode::kOnDemand);
  CHECK(kinesis.ListStreams()->stream_summaries[0].stream_mode_details.stream_mode ==
        riffle::StreamMode::kOnDemand);
  CHECK(ErrorOf(kinesis.UpdateStreamMode(
            {.stream_arn = kOrdersArn, .stream_mode_details = {riffle::StreamMode::kOnDemand}})) ==
        Error{riffle::kInvalidArgumentException,
              "Stream orders under account 000000000000 is already in ON_DEMAND mode."});
  REQUIRE(kinesis
              .UpdateStreamMode({.stream_arn = kOrdersArn,
                                 .stream_mode_details = {riffle::StreamMode::kProvisioned}})
              .ok());
  CHECK(kinesis.DescribeLimits()->on_demand_stream_count == 0);
}

TEST_CASE("retention, tags, encryption and monitoring are kept and reported", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  REQUIRE(
      kinesis.IncreaseStreamRetentionPeriod({.stream_name = "orders", .retention_period_hours = 48})
          .ok());
  CHECK(ErrorOf(kinesis.DecreaseStreamRetentionPeriod(
            {.stream_arn = kOrdersArn, .retention_period_hours = 72})) ==
        Error{riffle::kInvalidArgumentException,
              "Requested retention period (72 hours) for stream orders can not be longer than "
              "existing retention period (48 hours). Use IncreaseRetentionPeriod API."});
  CHECK(ErrorOf(kinesis.IncreaseStreamRetentionPeriod(
            {.stream_name = "orders", .retention_period_hours = 9000})) ==
        Error{riffle::kInvalidArgumentException,
              "Maximum allowed retention period is 8760 hours. Requested retention period (9000 "
              "hours) is too long."});
  // The request's shape is checked before the stream is looked up.
  CHECK(ErrorOf(kinesis.SplitShard({.stream_name = "missing",
                                    .shard_to_split = "shardId-000000000000",
                                    .new_starting_hash_key = "12x"}))
            .name == riffle::kValidationException);
  CHECK(
      ErrorOf(kinesis.MergeShards(
                  {.stream_name = "missing", .shard_to_merge = "", .adjacent_shard_to_merge = "a"}))
          .name == riffle::kValidationException);
  CHECK(ErrorOf(kinesis.DecreaseStreamRetentionPeriod(
            {.stream_name = "missing", .retention_period_hours = 0})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value '0' at 'retentionPeriodHours' failed to "
              "satisfy constraint: Member must have value greater than or equal to 1"});
  CHECK(kinesis.DescribeStreamSummary({.stream_name = "orders"})
            ->stream_description_summary.retention_period_hours == 48);

  // Tags: added, overwritten, listed by key, paged, removed (unknown keys ignored).
  std::vector<riffle::Tag> tags = {{"team", "a"}, {"env", "test"}, {"cost", "1"}};
  REQUIRE(kinesis.AddTagsToStream({.stream_name = "orders", .tags = tags}).ok());
  std::vector<riffle::Tag> update = {{"team", "b"}};
  REQUIRE(kinesis.AddTagsToStream({.stream_arn = kOrdersArn, .tags = update}).ok());
  auto listed = kinesis.ListTagsForStream({.stream_name = "orders", .limit = 2});
  REQUIRE(listed.ok());
  REQUIRE(listed->tags.size() == 2);
  CHECK(listed->tags[0].key == "cost");
  CHECK(listed->tags[1].key == "env");
  CHECK(listed->has_more_tags);
  auto rest =
      kinesis.ListTagsForStream({.stream_name = "orders", .exclusive_start_tag_key = "env"});
  REQUIRE(rest->tags.size() == 1);
  CHECK(rest->tags[0].value == "b");
  CHECK_FALSE(rest->has_more_tags);
  std::vector<std::string_view> keys = {"env", "missing"};
  REQUIRE(kinesis.RemoveTagsFromStream({.stream_name = "orders", .tag_keys = keys}).ok());
  CHECK(kinesis.ListTagsForStream({.stream_name = "orders"})->tags.size() == 2);
  std::vector<riffle::Tag> bad = {{"a!", "b"}};
  CHECK(ErrorOf(kinesis.AddTagsToStream({.stream_name = "orders", .tags = bad})) ==
        Error{riffle::kInvalidArgumentException,
              "Some tags contain invalid characters. Valid characters: Unicode letters, digits, "
              "white space, _ . / = + - % @."});
  // A tab is not the white space the service allows, in a key or a value, added, given at
  // creation or removed (as recorded from the service).
  std::vector<riffle::Tag> tab_key = {{"abc\tdef", "1"}}, tab_value = {{"a", "x\ty"}};
  std::vector<std::string_view> tab_keys = {"abc\tdef"};
  for (const absl::Status& s :
       {kinesis.AddTagsToStream({.stream_name = "orders", .tags = tab_key}),
        kinesis.AddTagsToStream({.stream_name = "orders", .tags = tab_value}),
        kinesis.CreateStream({.stream_name = "tabs", .shard_count = 1, .tags = tab_key})}) {
    CHECK(ErrorOf(s) == Error{riffle::kInvalidArgumentException,
                              "Some tags contain invalid characters. Valid characters: Unicode "
                              "letters, digits, white space, _ . / = + - % @."});
  }
  CHECK(ErrorOf(kinesis.RemoveTagsFromStream({.stream_name = "orders", .tag_keys = tab_keys})) ==
        Error{riffle::kInvalidArgumentException,
              "Some tags contain invalid characters. Valid characters: Unicode letters, digits, "
              "white space, _ . / = + - % @ :."});
  // Lengths count characters: a key of 128 two-byte letters and a value of 256 are valid,
  // one more character is not.
  std::string wide_key, wide_value;
  for (int i = 0; i < 128; ++i) wide_key += "\u00e9";
  for (int i = 0; i < 256; ++i) wide_value += "\u00e9";
  std::vector<riffle::Tag> wide = {{wide_key, wide_value}};
  REQUIRE(kinesis.AddTagsToStream({.stream_name = "orders", .tags = wide}).ok());
  std::vector<std::string_view> wide_keys = {wide_key};
  REQUIRE(kinesis.RemoveTagsFromStream({.stream_name = "orders", .tag_keys = wide_keys}).ok());
  wide = {{wide_key + "\u00e9", "v"}};
  CHECK(riffle::IsValidationException(
      kinesis.AddTagsToStream({.stream_name = "orders", .tags = wide})));
  // At most 10 tags a call (a shape constraint), 50 on a stream.
  std::vector<riffle::Tag> eleven;
  for (int i = 0; i < 11; ++i) eleven.push_back({fmt::format("k{}", i), "v"});
  const absl::Status too_many = kinesis.AddTagsToStream({.stream_name = "orders", .tags = eleven});
  CHECK(riffle::IsValidationException(too_many));
  CHECK_THAT(std::string(too_many.message()),
             Catch::StartsWith("1 validation error detected: Value '{") &&
                 Catch::EndsWith("}' at 'tags' failed to satisfy constraint: Member must have "
                                 "length less than or equal to 10"));
  for (int first = 0; first < 48; first += 10) {
    std::vector<riffle::Tag> some;
    for (int i = first; i < std::min(first + 10, 48); ++i) {
      some.push_back({fmt::format("k{}", i), "v"});
    }
    REQUIRE(kinesis.AddTagsToStream({.stream_name = "orders", .tags = some}).ok());
  }
  CHECK(kinesis.ListTagsForStream({.stream_name = "orders"})->tags.size() == 50);
  std::vector<riffle::Tag> one_more = {{"k48", "v"}};
  CHECK(ErrorOf(kinesis.AddTagsToStream({.stream_name = "orders", .tags = one_more})) ==
        Error{riffle::kInvalidArgumentException,
              "Failed to add tags to stream orders under account 000000000000 because a given "
              "stream cannot have more than 50 tags associated with it."});

  // Encryption: reported by the describe calls and on every put.
  REQUIRE(
      kinesis.StartStreamEncryption({.stream_name = "orders", .key_id = "alias/aws/kinesis"}).ok());
  auto summary = kinesis.DescribeStreamSummary({.stream_name = "orders"});
  CHECK(summary->stream_description_summary.encryption_type == riffle::EncryptionType::kKms);
  CHECK(summary->stream_description_summary.key_id == "alias/aws/kinesis");
  CHECK(kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "v"})
            ->encryption_type == riffle::EncryptionType::kKms);
  CHECK(ErrorOf(kinesis.StartStreamEncryption({.stream_name = "orders",
                                               .encryption_type = riffle::EncryptionType::kNone,
                                               .key_id = "k"})) ==
        Error{riffle::kInvalidArgumentException,
              "EncryptionType NONE is not valid for StartStreamEncryption: KMS is the only valid "
              "value."});
  REQUIRE(
      kinesis.StopStreamEncryption({.stream_name = "orders", .key_id = "alias/aws/kinesis"}).ok());
  CHECK(kinesis.DescribeStream({.stream_name = "orders"})->stream_description.encryption_type ==
        riffle::EncryptionType::kNone);
  {
    // Writes are encrypted once the stream is ACTIVE again, and stay so until the stop is.
    auto slow = MakeAccount(clock, false, {.update_duration = absl::Seconds(30)});
    riffle::Kinesis& k = slow->kinesis();
    CreateStream(k, "s", 1);
    auto put = [&] {
      return k.PutRecord({.stream_name = "s", .partition_key = "k", .data = "v"})->encryption_type;
    };
    REQUIRE(k.StartStreamEncryption({.stream_name = "s", .key_id = "alias/aws/kinesis"}).ok());
    CHECK(put() == riffle::EncryptionType::kNone);
    std::vector<riffle::PutRecordsRequestEntry> one = {{"k", "v", {}}};
    CHECK(k.PutRecords({.stream_name = "s", .records = one})->encryption_type ==
          riffle::EncryptionType::kNone);
    clock.Advance(absl::Seconds(30));
    CHECK(put() == riffle::EncryptionType::kKms);
    REQUIRE(k.StopStreamEncryption({.stream_name = "s", .key_id = "alias/aws/kinesis"}).ok());
    CHECK(put() == riffle::EncryptionType::kKms);
    clock.Advance(absl::Seconds(30));
    CHECK(put() == riffle::EncryptionType::kNone);
  }

  // Enhanced monitoring: current and desired, ALL expands.
  std::vector<riffle::ShardLevelMetric> m = {riffle::ShardLevelMetric::kIncomingBytes};
  auto on = kinesis.EnableEnhancedMonitoring({.stream_name = "orders", .shard_level_metrics = m});
  REQUIRE(on.ok());
  CHECK(on->current_shard_level_metrics.empty());
  CHECK(on->desired_shard_level_metrics == m);
  CHECK(on->stream_arn == kOrdersArn);
  std::vector<riffle::ShardLevelMetric> all = {riffle::ShardLevelMetric::kAll};
  auto every =
      kinesis.EnableEnhancedMonitoring({.stream_name = "orders", .shard_level_metrics = all});
  CHECK(every->desired_shard_level_metrics.size() == 7);
  auto off = kinesis.DisableEnhancedMonitoring({.stream_name = "orders", .shard_level_metrics = m});
  CHECK(off->current_shard_level_metrics.size() == 7);
  CHECK(off->desired_shard_level_metrics.size() == 6);
  auto d = kinesis.DescribeStream({.stream_name = "orders"});
  REQUIRE(d->stream_description.enhanced_monitoring.size() == 1);
  CHECK(d->stream_description.enhanced_monitoring[0].shard_level_metrics.size() == 6);
  CHECK(riffle::ShardLevelMetricName(
            d->stream_description.enhanced_monitoring[0].shard_level_metrics[0]) ==
        "IncomingRecords");
}

TEST_CASE("members are checked before the stream is looked up, StreamName's with them",
          "[account][errors]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  // A bad member on a stream that does not exist: ValidationException, not not-found.
  auto empty_key = kinesis.PutRecord({.stream_name = "nope", .partition_key = "", .data = "v"});
  CHECK(ErrorOf(empty_key) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value '' at 'partitionKey' failed to satisfy "
              "constraint: Member must have length greater than or equal to 1"});
  riffle::PutRecordsOutput out;
  CHECK(riffle::IsValidationException(
      kinesis.PutRecords({.stream_name = "nope", .records = {}}, out)));
  CHECK(riffle::IsValidationException(
      kinesis
          .GetShardIterator({.stream_name = "nope",
                             .shard_id = "",
                             .shard_iterator_type = riffle::ShardIteratorType::kTrimHorizon})
          .status()));
  // Every violation is listed, the stream name's after the others.
  const std::string long_name(129, 's');
  auto many = kinesis.PutRecord({.stream_name = long_name,
                                 .partition_key = std::string(257, 'k'),
                                 .data = "v",
                                 .explicit_hash_key = "abc"});
  CHECK_THAT(ErrorOf(many).message,
             Catch::StartsWith("3 validation errors detected: Value '" + std::string(257, 'k') +
                               "' at 'partitionKey'") &&
                 Catch::Contains("at 'explicitHashKey'") &&
                 Catch::EndsWith("at 'streamName' failed to satisfy constraint: Member must have "
                                 "length less than or equal to 128"));
  auto split = kinesis.SplitShard(
      {.stream_name = long_name, .shard_to_split = "bad id", .new_starting_hash_key = "1"});
  CHECK_THAT(ErrorOf(split).message, Catch::StartsWith("2 validation errors detected"));
  auto merge = kinesis.MergeShards(
      {.stream_name = long_name, .shard_to_merge = "x y", .adjacent_shard_to_merge = "z w"});
  CHECK_THAT(ErrorOf(merge).message, Catch::StartsWith("3 validation errors detected"));
  // A good request on a missing stream is still not found; GetShardIterator names the shard.
  CHECK(riffle::IsResourceNotFoundException(
      kinesis.PutRecord({.stream_name = "nope", .partition_key = "k", .data = "v"}).status()));
  auto iterator_of = [&](std::string_view shard) {
    return ErrorOf(
        kinesis.GetShardIterator({.stream_name = "nope",
                                  .shard_id = shard,
                                  .shard_iterator_type = riffle::ShardIteratorType::kTrimHorizon}));
  };
  CHECK(iterator_of("2147483647") ==
        Error{riffle::kResourceNotFoundException,
              "Shard shardId-002147483647 in stream nope under account 000000000000 does not "
              "exist"});
  CHECK(iterator_of("ABKLFD8") ==
        Error{riffle::kResourceNotFoundException,
              "Could not find shard ABKLFD8 in stream nope under account 000000000000."});
}
