// The services' limits, on the account's clock: the same throttles on every run.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

using account_test::CreateStream;
using account_test::Error;
using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::ManualClock;

namespace {

constexpr char kThrottled[] =
    "Rate exceeded for shard shardId-000000000000 in stream s under account 000000000000.";

int Open(riffle::Kinesis& kinesis, std::string_view name) {
  return kinesis.DescribeStreamSummary({.stream_name = name})
      ->stream_description_summary.open_shard_count;
}

}  // namespace

TEST_CASE("writes: 1,000 records/s per shard, throttled entry by entry", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, /*limits=*/true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) keys.push_back(fmt::format("k{}", i));
  std::vector<riffle::PutRecordsRequestEntry> batch;
  for (const auto& k : keys) batch.push_back({k, "x", {}});
  riffle::PutRecordsOutput out;
  REQUIRE(kinesis.PutRecords({.stream_name = "s", .records = batch}, out).ok());
  CHECK(out.failed_record_count == 0);
  REQUIRE(kinesis.PutRecords({.stream_name = "s", .records = batch}, out).ok());
  CHECK(out.failed_record_count == 0);  // one second of burst: 1,000 records
  REQUIRE(kinesis.PutRecords({.stream_name = "s", .records = batch}, out).ok());
  CHECK(out.failed_record_count == 500);
  CHECK(out.records[0].error_code == riffle::kProvisionedThroughputExceededException);
  CHECK(out.records[0].error_message == kThrottled);
  CHECK_FALSE(out.records[0].sequence_number.has_value());
  clock.Advance(absl::Milliseconds(100));  // 100 records' worth
  REQUIRE(kinesis.PutRecords({.stream_name = "s", .records = batch}, out).ok());
  CHECK(out.failed_record_count == 400);
  // The first 100 entries got in, the rest were throttled: entry by entry, in order.
  CHECK(out.records[99].error_code.empty());
  CHECK(out.records[100].error_code == riffle::kProvisionedThroughputExceededException);
  CHECK(ErrorOf(kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = "v"})) ==
        Error{riffle::kProvisionedThroughputExceededException, kThrottled});

  // Without the switch nothing is throttled.
  auto free = MakeAccount(clock);
  CreateStream(free->kinesis(), "s", 1);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(free->kinesis().PutRecords({.stream_name = "s", .records = batch}, out).ok());
    CHECK(out.failed_record_count == 0);
  }
}

TEST_CASE("writes: 1 MiB/s per shard, partition keys counted", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  // Key + data is exactly 1 MiB: the whole second's budget.
  const std::string data((1 << 20) - 3, 'x');
  REQUIRE(kinesis.PutRecord({.stream_name = "s", .partition_key = "key", .data = data}).ok());
  CHECK(riffle::IsProvisionedThroughputExceededException(
      kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = ""}).status()));
  clock.Advance(absl::Milliseconds(1));  // 1,048 bytes come back
  CHECK(
      kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = std::string(1047, 'y')})
          .ok());
  CHECK(riffle::IsProvisionedThroughputExceededException(
      kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = ""}).status()));
  // Each shard has its own budget.
  CreateStream(kinesis, "two", 2);
  const std::string full((1 << 20) - 1, 'x');  // with the key "a": 1 MiB
  std::vector<riffle::PutRecordsRequestEntry> big = {
      {"a", full, "0"}, {"a", full, "340282366920938463463374607431768211455"}, {"a", "z", "1"}};
  auto r = kinesis.PutRecords({.stream_name = "two", .records = big});
  REQUIRE(r.ok());
  CHECK(r->records[0].shard_id == "shardId-000000000000");
  CHECK(r->records[1].shard_id == "shardId-000000000001");
  CHECK(r->records[2].error_code == riffle::kProvisionedThroughputExceededException);
  CHECK(r->failed_record_count == 1);
}

TEST_CASE("reads: 5 GetRecords calls and 2 MiB per second per shard", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  auto it = kinesis.GetShardIterator({.stream_name = "s", .shard_id = "shardId-000000000000"});
  REQUIRE(it.ok());
  riffle::GetRecordsOutput out;
  for (int i = 0; i < 5; ++i)
    REQUIRE(kinesis.GetRecords({.shard_iterator = it->shard_iterator}, out).ok());
  CHECK(ErrorOf(kinesis.GetRecords({.shard_iterator = it->shard_iterator}, out)) ==
        Error{riffle::kProvisionedThroughputExceededException, kThrottled});
  clock.Advance(absl::Seconds(1));
  CHECK(kinesis.GetRecords({.shard_iterator = it->shard_iterator}, out).ok());
  // GetShardIterator: five calls per second per shard.
  clock.Advance(absl::Seconds(1));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(
        kinesis.GetShardIterator({.stream_name = "s", .shard_id = "shardId-000000000000"}).ok());
  }
  CHECK(
      ErrorOf(kinesis.GetShardIterator({.stream_name = "s", .shard_id = "shardId-000000000000"})) ==
      Error{riffle::kProvisionedThroughputExceededException, kThrottled});
}

TEST_CASE("reads: after a 10 MiB GetRecords the shard's reads throttle for 5 seconds", "[limits]") {
  ManualClock clock;
  riffle::AccountOptions o;
  o.stream_defaults.ring_capacity_bytes = uint64_t{32} << 20;
  auto account = MakeAccount(clock, true, o);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  auto it = kinesis.GetShardIterator({.stream_name = "s", .shard_id = "shardId-000000000000"});
  REQUIRE(it.ok());
  // 10 MiB in records of 1 MiB (key included), one a second (the write limit is 1 MiB/s).
  const std::string chunk((1 << 20) - 1, 'x');
  for (int i = 0; i < 10; ++i) {
    REQUIRE(kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = chunk}).ok());
    clock.Advance(absl::Seconds(1));
  }
  riffle::GetRecordsOutput out;
  REQUIRE(kinesis.GetRecords({.shard_iterator = it->shard_iterator}, out).ok());
  CHECK(out.result.records.size() == 10);
  const std::string next = out.next_shard_iterator;
  // A clock set back meanwhile, then forward again, credits no time twice.
  const absl::Time read_at = clock.Now();
  clock.Set(read_at - absl::Seconds(5));
  CHECK(riffle::IsProvisionedThroughputExceededException(
      kinesis.GetRecords({.shard_iterator = next}, out)));
  clock.Set(read_at + absl::Milliseconds(4999));
  CHECK(ErrorOf(kinesis.GetRecords({.shard_iterator = next}, out)) ==
        Error{riffle::kProvisionedThroughputExceededException, kThrottled});
  clock.Advance(absl::Milliseconds(1));
  CHECK(kinesis.GetRecords({.shard_iterator = next}, out).ok());
}

TEST_CASE("writes: a record larger than a second of bytes bursts through, then the shard repays",
          "[limits]") {
  // Records may be up to 10 MiB: the shard takes one when its second of bytes is all
  // there, and writes nothing more until the average is back under 1 MiB/s.
  ManualClock clock;
  riffle::AccountOptions o;
  o.stream_defaults.ring_capacity_bytes = uint64_t{64} << 20;
  o.stream_defaults.max_record_size_bytes = 10 << 20;
  auto account = MakeAccount(clock, true, o);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  const std::string two_mib((2 << 20) - 1, 'x');  // with the key "k": 2 MiB
  REQUIRE(kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = two_mib}).ok());
  CHECK(ErrorOf(kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = "d"})) ==
        Error{riffle::kProvisionedThroughputExceededException, kThrottled});
  clock.Advance(absl::Seconds(1));  // the second MiB repaid, nothing held yet
  CHECK(riffle::IsProvisionedThroughputExceededException(
      kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = "d"}).status()));
  clock.Advance(absl::Milliseconds(1));
  CHECK(kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = "d"}).ok());
  // Not before the bucket is full again: a second large record waits for its whole second.
  CHECK(riffle::IsProvisionedThroughputExceededException(
      kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = two_mib}).status()));
  clock.Advance(absl::Seconds(1));
  CHECK(kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = two_mib}).ok());
}

TEST_CASE("writes: a put refused because the ring is full uses none of the shard's rate",
          "[limits]") {
  ManualClock clock;
  riffle::StreamOptions o;
  o.stream_name = "s";
  o.shard_count = 1;
  o.ring_capacity_bytes = uint64_t{1} << 20;
  o.max_record_size_bytes = 200 << 10;
  o.overflow_policy = riffle::OverflowPolicy::kRejectPut;
  o.write_limit = riffle::StreamOptions::WriteLimit{};
  o.clock = &clock;
  auto stream = *riffle::Stream::Create(o);
  REQUIRE(stream->RegisterStreamConsumer("gate", {.lossless = true}).ok());
  const std::string chunk(100 << 10, 'x');
  int accepted = 0;
  for (int i = 0; i < 100; ++i) {
    if (!stream->PutRecord("k", chunk).ok()) break;
    ++accepted;
    clock.Advance(absl::Milliseconds(200));  // well under the rate
  }
  REQUIRE(accepted > 0);
  REQUIRE(accepted < 100);          // the ring filled: the lossless consumer read nothing
  clock.Advance(absl::Seconds(1));  // a full second of bytes and records
  for (int i = 0; i < 20; ++i) {
    auto refused = stream->PutRecord("k", chunk);
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(std::string(riffle::ErrorMessage(refused.status())),
               Catch::Contains("a lossless reader has not yet read the space"));
  }
  REQUIRE(stream->DeregisterStreamConsumer("gate").ok());
  // Twenty refused puts of 100 KiB took nothing: the second's budget is whole.
  for (int i = 0; i < 10; ++i) CHECK(stream->PutRecord("k", chunk).ok());
}

TEST_CASE("at most 5 consumers of a stream are CREATING at once", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true, {.create_duration = absl::Seconds(30)});
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  clock.Advance(absl::Seconds(30));  // the stream is ACTIVE
  const std::string arn = account->StreamArn("s");
  for (int i = 0; i < 5; ++i) {
    REQUIRE(
        kinesis.RegisterStreamConsumer({.stream_arn = arn, .consumer_name = fmt::format("c{}", i)})
            .ok());
  }
  clock.Advance(absl::Seconds(1));  // past the call rate
  auto sixth = kinesis.RegisterStreamConsumer({.stream_arn = arn, .consumer_name = "c5"});
  CHECK(riffle::IsLimitExceededException(sixth.status()));
  clock.Advance(absl::Seconds(30));  // the five are ACTIVE
  CHECK(kinesis.RegisterStreamConsumer({.stream_arn = arn, .consumer_name = "c5"}).ok());
}

TEST_CASE("enhanced fan-out pushes at most 2 MiB/s per consumer and shard", "[limits]") {
  ManualClock clock;
  riffle::AccountOptions o;
  o.stream_defaults.ring_capacity_bytes = uint64_t{32} << 20;  // holds the whole run
  auto account = MakeAccount(clock, true, o);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  auto c =
      kinesis.RegisterStreamConsumer({.stream_arn = account->StreamArn("s"), .consumer_name = "c"});
  REQUIRE(c.ok());
  // 8 MiB in 512 KiB records, put over 8 seconds (the write limit is 1 MiB/s).
  const std::string chunk((512 << 10) - 1, 'x');
  for (int i = 0; i < 16; ++i) {
    REQUIRE(kinesis.PutRecord({.stream_name = "s", .partition_key = "k", .data = chunk}).ok());
    if (i % 2 == 1) clock.Advance(absl::Seconds(1));
  }
  uint64_t bytes = 0;
  riffle::SubscriptionOptions options;
  options.max_records_per_event = 2;  // 1 MiB per event
  options.lifetime = absl::InfiniteDuration();
  auto sub = kinesis.SubscribeToShard(
      {.consumer_arn = c->consumer.consumer_arn,
       .shard_id = "shardId-000000000000",
       .starting_position = {riffle::ShardIteratorType::kTrimHorizon}},
      [&](const riffle::SubscribeToShardEvent& e) {
        for (const auto& r : e.records) bytes += r.partition_key.size() + r.data.size();
      },
      options);
  REQUIRE(sub.ok());
  // At one instant: the 2 MiB of burst.
  while ((*sub)->Poll() == 1) {
  }
  CHECK(bytes == uint64_t{2} << 20);
  // Then 2 MiB per second of clock time.
  clock.Advance(absl::Seconds(1));
  while ((*sub)->Poll() == 1) {
  }
  CHECK(bytes == uint64_t{4} << 20);
  clock.Advance(absl::Milliseconds(500));
  while ((*sub)->Poll() == 1) {
  }
  CHECK(bytes == uint64_t{5} << 20);

  // The budget is the consumer's on the shard: a subscription that replaces this one, at
  // the same instant, goes on from what it spent.
  clock.Advance(absl::Milliseconds(4500));  // 5 s since the subscription: 2 MiB again
  while ((*sub)->Poll() == 1) {
  }
  CHECK(bytes == uint64_t{7} << 20);
  uint64_t taken_over = 0;
  auto next = kinesis.SubscribeToShard(
      {.consumer_arn = c->consumer.consumer_arn,
       .shard_id = "shardId-000000000000",
       .starting_position = {riffle::ShardIteratorType::kTrimHorizon}},
      [&](const riffle::SubscribeToShardEvent& e) {
        for (const auto& r : e.records) taken_over += r.partition_key.size() + r.data.size();
      },
      options);
  REQUIRE(next.ok());
  CHECK((*next)->Poll() == 0);
  CHECK(taken_over == 0);
  clock.Advance(absl::Seconds(1));
  while ((*next)->Poll() == 1) {
  }
  CHECK(taken_over == uint64_t{2} << 20);
}

TEST_CASE("SubscribeToShard: one call per second per consumer and shard, failed calls too",
          "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 2);
  auto c =
      kinesis.RegisterStreamConsumer({.stream_arn = account->StreamArn("s"), .consumer_name = "c"});
  REQUIRE(c.ok());
  auto subscribe = [&](std::string shard, riffle::ShardIteratorType type, std::string seq = {}) {
    return kinesis.SubscribeToShard({.consumer_arn = c->consumer.consumer_arn,
                                     .shard_id = std::move(shard),
                                     .starting_position = {type, std::move(seq)}},
                                    [](const riffle::SubscribeToShardEvent&) {});
  };
  // A refused starting position counts as a call.
  CHECK(riffle::IsInvalidArgumentException(
      subscribe("shardId-000000000000", riffle::ShardIteratorType::kAtSequenceNumber, "7")
          .status()));
  CHECK(ErrorOf(subscribe("shardId-000000000000", riffle::ShardIteratorType::kLatest)) ==
        Error{riffle::kLimitExceededException,
              fmt::format("Rate exceeded for consumer {} and shard shardId-000000000000 in stream "
                          "s under account 000000000000: at most one SubscribeToShard call per "
                          "second.",
                          c->consumer.consumer_arn)});
  // Another shard has its own rate.
  CHECK(subscribe("shardId-000000000001", riffle::ShardIteratorType::kLatest).ok());
  clock.Advance(absl::Seconds(1));
  CHECK(subscribe("shardId-000000000000", riffle::ShardIteratorType::kLatest).ok());
}

TEST_CASE("control-plane calls are rate limited with LimitExceededException", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  for (int i = 0; i < 10; ++i) REQUIRE(kinesis.DescribeStream({.stream_name = "s"}).ok());
  // The account's rate, but the message names the stream the call is about, as the
  // service's does (tools that retry on throttling match "Rate exceeded for stream").
  CHECK(ErrorOf(kinesis.DescribeStream({.stream_name = "s"})) ==
        Error{riffle::kLimitExceededException,
              "Rate exceeded for stream s under account 000000000000."});
  clock.Advance(absl::Milliseconds(100));  // one call's worth
  CHECK(kinesis.DescribeStream({.stream_name = "s"}).ok());
  CHECK(riffle::IsLimitExceededException(kinesis.DescribeStream({.stream_name = "s"}).status()));
  // Per stream: ListShards 1,000 per second for each stream.
  CreateStream(kinesis, "t", 1);
  for (int i = 0; i < 1000; ++i) REQUIRE(kinesis.ListShards({.stream_name = "s"}).ok());
  CHECK(ErrorOf(kinesis.ListShards({.stream_name = "s"})) ==
        Error{riffle::kLimitExceededException,
              "Rate exceeded for stream s under account 000000000000."});
  CHECK(kinesis.ListShards({.stream_name = "t"}).ok());
  REQUIRE(kinesis.DescribeLimits().ok());
  CHECK(riffle::IsLimitExceededException(kinesis.DescribeLimits().status()));  // 1 per second
  // Without the switch: no rate.
  auto free = MakeAccount(clock);
  CreateStream(free->kinesis(), "s", 1);
  for (int i = 0; i < 100; ++i) REQUIRE(free->kinesis().DescribeStream({.stream_name = "s"}).ok());
}

TEST_CASE("UpdateShardCount at most 10 times in a rolling 24 hours", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(kinesis.UpdateShardCount({.stream_name = "s", .target_shard_count = i % 2 == 0 ? 2 : 1})
                .ok());
    clock.Advance(absl::Minutes(10));
  }
  CHECK(ErrorOf(kinesis.UpdateShardCount({.stream_name = "s", .target_shard_count = 2})) ==
        Error{riffle::kLimitExceededException,
              "UpdateShardCount has scaled stream s under account 000000000000 10 times in the "
              "last 24 hours, the most allowed."});
  // A refused call does not count; the first of the ten leaves the window 24 h after it.
  clock.Advance(absl::Hours(24) - absl::Minutes(100) - absl::Milliseconds(1));
  CHECK(riffle::IsLimitExceededException(
      kinesis.UpdateShardCount({.stream_name = "s", .target_shard_count = 2}).status()));
  clock.Advance(absl::Milliseconds(1));
  CHECK(kinesis.UpdateShardCount({.stream_name = "s", .target_shard_count = 2}).ok());
}

TEST_CASE("capacity mode switches and encryption changes have 24-hour quotas", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  const std::string arn = account->StreamArn("s");
  REQUIRE(kinesis
              .UpdateStreamMode(
                  {.stream_arn = arn, .stream_mode_details = {riffle::StreamMode::kOnDemand}})
              .ok());
  REQUIRE(kinesis
              .UpdateStreamMode(
                  {.stream_arn = arn, .stream_mode_details = {riffle::StreamMode::kProvisioned}})
              .ok());
  CHECK(ErrorOf(kinesis.UpdateStreamMode(
            {.stream_arn = arn, .stream_mode_details = {riffle::StreamMode::kOnDemand}})) ==
        Error{riffle::kLimitExceededException,
              "Stream s under account 000000000000 has switched its capacity mode twice in the "
              "last 24 hours, the most allowed."});
  clock.Advance(absl::Hours(24));
  CHECK(kinesis
            .UpdateStreamMode(
                {.stream_arn = arn, .stream_mode_details = {riffle::StreamMode::kOnDemand}})
            .ok());

  for (int i = 0; i < 25; ++i) {
    absl::Status s = i % 2 == 0 ? kinesis.StartStreamEncryption({.stream_name = "s", .key_id = "k"})
                                : kinesis.StopStreamEncryption({.stream_name = "s", .key_id = "k"});
    REQUIRE(s.ok());
  }
  CHECK(riffle::IsLimitExceededException(
      kinesis.StopStreamEncryption({.stream_name = "s", .key_id = "k"})));
}

TEST_CASE("ON_DEMAND streams start at 4 shards and grow to twice their peak", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, true);
  riffle::Kinesis& kinesis = account->kinesis();
  REQUIRE(kinesis
              .CreateStream(
                  {.stream_name = "od",
                   .stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand}})
              .ok());
  CHECK(Open(kinesis, "od") == 4);
  // Second 0: 3,000 records are accepted (within 4 shards' 4,000 records/s).
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) keys.push_back(fmt::format("key-{}", i));
  std::vector<riffle::PutRecordsRequestEntry> batch;
  for (const auto& k : keys) batch.push_back({k, "x", {}});
  uint64_t accepted = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = kinesis.PutRecords({.stream_name = "od", .records = batch});
    REQUIRE(r.ok());
    accepted += 500 - static_cast<uint64_t>(r->failed_record_count);
  }
  CHECK(Open(kinesis, "od") == 4);
  // The next second's first write closes second 0: twice its peak needs 2 * accepted / 1,000
  // shards; the stream grows by at most double per step.
  clock.Advance(absl::Seconds(1));
  REQUIRE(kinesis.PutRecord({.stream_name = "od", .partition_key = "k", .data = "x"}).ok());
  const int target = static_cast<int>((2 * accepted + 999) / 1000);
  CHECK(Open(kinesis, "od") == std::min(8, std::max(4, target)));
  // Nothing scales without the switch.
  auto free = MakeAccount(clock);
  REQUIRE(free->kinesis()
              .CreateStream(
                  {.stream_name = "od",
                   .stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand}})
              .ok());
  for (int i = 0; i < 20; ++i)
    REQUIRE(free->kinesis().PutRecords({.stream_name = "od", .records = batch}).ok());
  clock.Advance(absl::Seconds(1));
  REQUIRE(free->kinesis().PutRecord({.stream_name = "od", .partition_key = "k", .data = "x"}).ok());
  CHECK(Open(free->kinesis(), "od") == 4);
}

TEST_CASE("quotas hold with or without the switch", "[limits]") {
  ManualClock clock;
  riffle::AccountOptions o;
  o.quotas.on_demand_stream_limit = 1;
  o.quotas.tags_per_stream = 2;
  auto account = MakeAccount(clock, false, o);
  riffle::Kinesis& kinesis = account->kinesis();
  const riffle::StreamModeDetails on_demand{riffle::StreamMode::kOnDemand};
  REQUIRE(kinesis.CreateStream({.stream_name = "a", .stream_mode_details = on_demand}).ok());
  CHECK(ErrorOf(kinesis.CreateStream({.stream_name = "b", .stream_mode_details = on_demand})) ==
        Error{riffle::kLimitExceededException,
              "This request would exceed the on-demand stream limit of 1 for the account "
              "000000000000 in us-east-1."});
  std::vector<riffle::Tag> three = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
  CHECK(riffle::IsInvalidArgumentException(
      kinesis.AddTagsToStream({.stream_name = "a", .tags = three})));
  // With the switch: at most five streams CREATING or DELETING at once.
  const Error busy{riffle::kLimitExceededException,
                   "This request would have exceed the limit on the number of streams "
                   "that can simultaneously be in CREATING or DELETING for the account "
                   "000000000000. Limit: 5."};
  auto limited = MakeAccount(
      clock, true, {.create_duration = absl::Seconds(30), .delete_duration = absl::Seconds(30)});
  for (int i = 0; i < 5; ++i) CreateStream(limited->kinesis(), fmt::format("s{}", i), 1);
  clock.Advance(absl::Seconds(1));  // past CreateStream's 5 calls per second
  CHECK(ErrorOf(limited->kinesis().CreateStream({.stream_name = "s5", .shard_count = 1})) == busy);
  clock.Advance(absl::Seconds(29));
  CHECK(limited->kinesis().CreateStream({.stream_name = "s5", .shard_count = 1}).ok());
  clock.Advance(absl::Seconds(30));  // all six ACTIVE; four of them deleted, s5 created again
  for (int i = 0; i < 4; ++i) {
    REQUIRE(limited->kinesis().DeleteStream({.stream_name = fmt::format("s{}", i)}).ok());
  }
  clock.Advance(absl::Seconds(1));
  REQUIRE(limited->kinesis().CreateStream({.stream_name = "t0", .shard_count = 1}).ok());
  CHECK(ErrorOf(limited->kinesis().CreateStream({.stream_name = "t1", .shard_count = 1})) == busy);
  clock.Advance(absl::Seconds(30));  // the deletions completed
  CHECK(limited->kinesis().CreateStream({.stream_name = "t1", .shard_count = 1}).ok());
  // A throttled CreateStream names the stream it would have created.
  for (int i = 2; i < 6; ++i) {
    (void)limited->kinesis().CreateStream({.stream_name = fmt::format("t{}", i), .shard_count = 1});
  }
  CHECK(ErrorOf(limited->kinesis().CreateStream({.stream_name = "u", .shard_count = 1})).message ==
        "Rate exceeded for stream u under account 000000000000.");
}

TEST_CASE("emulated durations are 0 to 365 days; the longest ends on time", "[limits][errors]") {
  // An infinite duration passed (only negatives were refused) and overflowed the deadline
  // of CreateStream, DeleteStream or UpdateShardCount.
  ManualClock clock;
  auto refused = [&](riffle::AccountOptions o) {
    o.clock = &clock;
    return ErrorOf(riffle::Account::Create(std::move(o)));
  };
  CHECK(refused({.create_duration = absl::InfiniteDuration()}) ==
        Error{riffle::kInvalidArgumentException,
              "CreateDuration is inf; it must be between 0 and 365 days."});
  CHECK(refused({.delete_duration = absl::Hours(24 * 365) + absl::Seconds(1)}) ==
        Error{riffle::kInvalidArgumentException,
              "DeleteDuration is 8760h1s; it must be between 0 and 365 days."});
  CHECK(refused({.update_duration = -absl::Seconds(1)}) ==
        Error{riffle::kInvalidArgumentException,
              "UpdateDuration is -1s; it must be between 0 and 365 days."});

  constexpr absl::Duration kYear = absl::Hours(24 * 365);
  auto account = MakeAccount(
      clock, false, {.create_duration = kYear, .delete_duration = kYear, .update_duration = kYear});
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  auto status = [&] {
    return kinesis.DescribeStreamSummary({.stream_name = "s"})
        ->stream_description_summary.stream_status;
  };
  CHECK(status() == riffle::StreamStatus::kCreating);
  clock.Advance(kYear);
  CHECK(status() == riffle::StreamStatus::kActive);
  REQUIRE(kinesis.UpdateShardCount({.stream_name = "s", .target_shard_count = 2}).ok());
  CHECK(status() == riffle::StreamStatus::kUpdating);
  clock.Advance(kYear);
  CHECK(status() == riffle::StreamStatus::kActive);
  REQUIRE(kinesis.DeleteStream({.stream_name = "s"}).ok());
  CHECK(status() == riffle::StreamStatus::kDeleting);
  clock.Advance(kYear);
  CHECK(riffle::IsResourceNotFoundException(
      kinesis.DescribeStreamSummary({.stream_name = "s"}).status()));
}

TEST_CASE("enum members outside their value set are ValidationException, named",
          "[limits][errors]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "s", 1);
  auto enum_error = [](std::string_view value, std::string_view member, std::string_view set) {
    return Error{riffle::kValidationException,
                 fmt::format("1 validation error detected: Value '{}' at '{}' failed to satisfy "
                             "constraint: Member must satisfy enum value set: {}",
                             value, member, set)};
  };
  // CreateStream read an unknown mode as neither mode ("Value '0' at 'shardCount'", or an
  // empty ShardCount dereferenced).
  const riffle::StreamModeDetails bad_mode{static_cast<riffle::StreamMode>(7)};
  CHECK(ErrorOf(kinesis.CreateStream({.stream_name = "m", .stream_mode_details = bad_mode})) ==
        enum_error("7", "streamModeDetails.streamMode", "[PROVISIONED, ON_DEMAND]"));
  CHECK(ErrorOf(kinesis.UpdateStreamMode(
            {.stream_arn = account->StreamArn("s"), .stream_mode_details = bad_mode})) ==
        enum_error("7", "streamModeDetails.streamMode", "[PROVISIONED, ON_DEMAND]"));
  // Member constraints come before the stream is looked up, as on the service.
  CHECK(ErrorOf(kinesis.UpdateShardCount({.stream_name = "nope",
                                          .target_shard_count = 1,
                                          .scaling_type = static_cast<riffle::ScalingType>(9)})) ==
        enum_error("9", "scalingType", "[UNIFORM_SCALING]"));
  CHECK(ErrorOf(kinesis.ListShards(
            {.stream_name = "nope",
             .shard_filter = riffle::ShardFilter{static_cast<riffle::ShardFilterType>(99)}})) ==
        enum_error("99", "shardFilter.type",
                   "[AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, "
                   "FROM_TIMESTAMP]"));
  // ShardFilter.ShardId is a ShardId member: its pattern, checked like the others.
  const absl::Status bad_filter_id =
      kinesis
          .ListShards(
              {.stream_name = "nope",
               .shard_filter = riffle::ShardFilter{riffle::ShardFilterType::kAfterShardId, "a b"}})
          .status();
  CHECK(riffle::IsValidationException(bad_filter_id));
  CHECK(std::string(bad_filter_id.message()) ==
        "1 validation error detected: Value 'a b' at 'shardFilter.shardId' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
  CHECK(ErrorOf(kinesis.GetShardIterator(
            {.stream_name = "nope",
             .shard_id = "shardId-000000000000",
             .shard_iterator_type = static_cast<riffle::ShardIteratorType>(42)})) ==
        enum_error("42", "shardIteratorType",
                   "[AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, "
                   "AT_TIMESTAMP]"));
  // Encryption and enhanced monitoring were taken as NONE, or the unknown metric dropped.
  CHECK(ErrorOf(kinesis.StartStreamEncryption(
            {.stream_name = "nope",
             .encryption_type = static_cast<riffle::EncryptionType>(99),
             .key_id = "alias/aws/kinesis"})) == enum_error("99", "encryptionType", "[NONE, KMS]"));
  CHECK(ErrorOf(kinesis.StopStreamEncryption(
            {.stream_name = "s",
             .encryption_type = static_cast<riffle::EncryptionType>(-5),
             .key_id = "alias/aws/kinesis"})) == enum_error("-5", "encryptionType", "[NONE, KMS]"));
  const std::vector<riffle::ShardLevelMetric> metrics = {riffle::ShardLevelMetric::kIncomingBytes,
                                                         static_cast<riffle::ShardLevelMetric>(99)};
  const std::string metric_error =
      "1 validation error detected: Value '[IncomingBytes, 99]' at 'shardLevelMetrics' failed "
      "to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value "
      "set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, "
      "WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, "
      "IteratorAgeMilliseconds, ALL]]";
  CHECK(ErrorOf(kinesis.EnableEnhancedMonitoring(
            {.stream_name = "s", .shard_level_metrics = metrics})) ==
        Error{riffle::kValidationException, metric_error});
  CHECK(ErrorOf(kinesis.DisableEnhancedMonitoring(
            {.stream_name = "nope", .shard_level_metrics = metrics})) ==
        Error{riffle::kValidationException, metric_error});
  auto described = kinesis.DescribeStream({.stream_name = "s"});
  REQUIRE(described.ok());
  for (const riffle::EnhancedMetrics& m : described->stream_description.enhanced_monitoring) {
    CHECK(m.shard_level_metrics.empty());
  }
  CHECK(kinesis.DescribeStreamSummary({.stream_name = "m"}).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("the call rates of deleted streams are not kept for the account's life", "[limits]") {
  ManualClock clock;
  auto account = MakeAccount(clock, /*limits=*/true);
  riffle::Kinesis& kinesis = account->kinesis();
  auto cycle = [&](int i) {
    // Calls scoped by the stream's ARN and by its shard: one rate each, per stream name.
    const std::string name = fmt::format("s{}", i);
    CreateStream(kinesis, name, 1);
    clock.Advance(absl::Seconds(1));
    REQUIRE(kinesis.ListShards({.stream_name = name}).ok());
    REQUIRE(kinesis
                .GetShardIterator({.stream_name = name,
                                   .shard_id = "shardId-000000000000",
                                   .shard_iterator_type = riffle::ShardIteratorType::kLatest})
                .ok());
    REQUIRE(kinesis.DeleteStream({.stream_name = name}).ok());
    clock.Advance(absl::Seconds(1));
  };
  // Past the first prunes (the table holds about two rates a cycle), so that both figures
  // are of a table in its steady state. Without pruning it grows by ~0.4 KB a cycle.
  constexpr int kWarmUp = 1500;
  for (int i = 0; i < kWarmUp; ++i) cycle(i);
  const uint64_t before = riffle_test::HeapBytesInUse();
  const int cycles = 6000 / riffle_test::StressDivisor();
  for (int i = kWarmUp; i < kWarmUp + cycles; ++i) cycle(i);
  const uint64_t after = riffle_test::HeapBytesInUse();
  if (before == 0) return;  // sanitizer build: no heap figures
  INFO("heap in use " << before << " -> " << after << " bytes over " << cycles << " cycles");
  CHECK(after < before + (uint64_t{1} << 20));
  // The rates still hold for a stream in use.
  CreateStream(kinesis, "live", 1);
  clock.Advance(absl::Seconds(1));
  for (int i = 0; i < 1000; ++i) REQUIRE(kinesis.ListShards({.stream_name = "live"}).ok());
  CHECK(riffle::IsLimitExceededException(kinesis.ListShards({.stream_name = "live"}).status()));
}
