// The account's Kinesis API by name and ARN, its data plane: PutRecord(s) and GetRecords,
// request validation, consumers and SubscribeToShard, allocation in steady state, and
// producers racing streams that come and go. The control plane: test_account.cpp.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "support/alloc_counter.h"

using account_test::CreateStream;
using account_test::Error;
using account_test::ErrorOf;
using account_test::kOrdersArn;
using account_test::MakeAccount;
using account_test::ShardIds;
using riffle::ManualClock;

TEST_CASE("PutRecord and PutRecords by name and ARN; GetRecords by the iterator string",
          "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  auto one = kinesis.PutRecord({.stream_name = "orders", .partition_key = "k1", .data = "first"});
  REQUIRE(one.ok());
  CHECK(one->shard_id == "shardId-000000000000");
  CHECK(one->encryption_type == riffle::EncryptionType::kNone);
  std::vector<riffle::PutRecordsRequestEntry> batch = {{"k2", "second", {}}, {"k3", "third", {}}};
  auto many = kinesis.PutRecords({.stream_arn = kOrdersArn, .records = batch});
  REQUIRE(many.ok());
  CHECK(many->failed_record_count == 0);
  REQUIRE(many->records.size() == 2);
  CHECK(*many->records[0].sequence_number > one->sequence_number);

  auto it =
      kinesis.GetShardIterator({.stream_arn = kOrdersArn,
                                .shard_id = "shardId-000000000000",
                                .shard_iterator_type = riffle::ShardIteratorType::kTrimHorizon});
  REQUIRE(it.ok());
  riffle::GetRecordsOutput out;
  REQUIRE(kinesis.GetRecords({.shard_iterator = it->shard_iterator, .limit = 2}, out).ok());
  REQUIRE(out.result.records.size() == 2);
  CHECK(out.result.records[0].data == "first");
  CHECK(out.result.records[1].partition_key == "k2");
  REQUIRE_FALSE(out.next_shard_iterator.empty());
  const std::string next = out.next_shard_iterator;
  REQUIRE(kinesis.GetRecords({.shard_iterator = next, .stream_arn = kOrdersArn}, out).ok());
  REQUIRE(out.result.records.size() == 1);
  CHECK(out.result.records[0].data == "third");
  auto after = kinesis.GetShardIterator(
      {.stream_name = "orders",
       .shard_id = "shardId-000000000000",
       .shard_iterator_type = riffle::ShardIteratorType::kAfterSequenceNumber,
       .starting_sequence_number = many->records[0].sequence_number->ToString()});
  CHECK(kinesis.GetRecords({.shard_iterator = after->shard_iterator})->result.records[0].data ==
        "third");

  // An altered or unknown iterator string, the wrong stream, an expired iterator.
  std::string altered = it->shard_iterator;
  altered.back() = altered.back() == '1' ? '2' : '1';
  CHECK(ErrorOf(kinesis.GetRecords({.shard_iterator = altered})) ==
        Error{riffle::kInvalidArgumentException, "Invalid ShardIterator."});
  CHECK(ErrorOf(kinesis.GetRecords({.shard_iterator = "not-an-iterator"})) ==
        Error{riffle::kInvalidArgumentException, "Invalid ShardIterator."});
  CreateStream(kinesis, "other", 1);
  CHECK(riffle::IsInvalidArgumentException(
      kinesis.GetRecords({.shard_iterator = next, .stream_arn = account->StreamArn("other")})
          .status()));
  // A StreamARN of the wrong shape is the member's ValidationException, as elsewhere.
  CHECK(ErrorOf(kinesis.GetRecords({.shard_iterator = next, .stream_arn = "foo"})) ==
        Error{riffle::kValidationException,
              "1 validation error detected: Value 'foo' at 'streamARN' failed to satisfy "
              "constraint: Member must satisfy regular expression pattern: "
              "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+"});
  const std::string long_arn = account->StreamArn("orders") + std::string(2048, 'a');
  CHECK(riffle::IsValidationException(
      kinesis.GetRecords({.shard_iterator = next, .stream_arn = long_arn}).status()));
  clock.Advance(absl::Minutes(5) + absl::Milliseconds(1));
  auto expired = kinesis.GetRecords({.shard_iterator = next});
  CHECK(riffle::IsExpiredIteratorException(expired.status()));
  CHECK_THAT(
      riffle::ErrorMessage(expired.status()),
      Catch::Contains("Iterator expired. The iterator was created at time Thu Jan 01 "
                      "00:00:00 UTC 2026 while right now it is Thu Jan 01 00:05:00 UTC 2026"));
  // After the stream is deleted, its iterators name it.
  auto fresh =
      kinesis.GetShardIterator({.stream_name = "orders", .shard_id = "shardId-000000000000"});
  REQUIRE(kinesis.DeleteStream({.stream_name = "orders"}).ok());
  CHECK(ErrorOf(kinesis.GetRecords({.shard_iterator = fresh->shard_iterator})) ==
        Error{riffle::kResourceNotFoundException,
              "Shard shardId-000000000000 in stream orders under account 000000000000 does not "
              "exist"});
  CHECK(ErrorOf(kinesis.GetShardIterator(
            {.stream_name = "other", .shard_id = "shardId-000000000009"})) ==
        Error{riffle::kResourceNotFoundException,
              "Shard shardId-000000000009 in stream other under account 000000000000 does not "
              "exist"});
}

TEST_CASE("PutRecords refuses a request with an invalid entry whole", "[account][validation]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  const std::string big((1 << 20) + 1, 'x');
  std::vector<riffle::PutRecordsRequestEntry> batch = {
      {"ok", "1", {}}, {"", "2", {}}, {"ok", big, {}}, {"ok", "4", "abc"}};
  auto r = kinesis.PutRecords({.stream_name = "orders", .records = batch});
  CHECK(ErrorOf(r) ==
        Error{riffle::kValidationException,
              "3 validation errors detected: Value '' at 'records.2.member.partitionKey' failed to "
              "satisfy constraint: Member must have length greater than or equal to 1; Value "
              "'java.nio.HeapByteBuffer[pos=0 lim=1048577 cap=1048577]' at "
              "'records.3.member.data' failed to satisfy constraint: Member must have length less "
              "than or equal to 1048576; Value 'abc' at 'records.4.member.explicitHashKey' failed "
              "to satisfy constraint: Member must satisfy regular expression pattern: "
              "0|([1-9]\\d{0,38})"});
  std::vector<riffle::PutRecordsRequestEntry> many(12, {"", "x", {}});
  auto ten = kinesis.PutRecords({.stream_name = "orders", .records = many});
  CHECK_THAT(riffle::ErrorMessage(ten.status()),
             Catch::StartsWith("10 validation errors detected"));
  auto it = kinesis.GetShardIterator({.stream_name = "orders", .shard_id = "shardId-000000000000"});
  CHECK(kinesis.GetRecords({.shard_iterator = it->shard_iterator})->result.records.empty());
}

TEST_CASE("request members are checked as the service checks them", "[account][validation]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  const std::string long_name(129, 'a');
  struct Case {
    absl::Status status;
    std::string message;
  };
  const Case cases[] = {
      {kinesis.CreateStream({.stream_name = "", .shard_count = 0}),
       "3 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: "
       "Member must have value greater than or equal to 1; Value '' at 'streamName' failed to "
       "satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; "
       "Value '' at 'streamName' failed to satisfy constraint: Member must have length greater "
       "than or equal to 1"},
      {kinesis.DeleteStream({.stream_name = long_name}),
       "1 validation error detected: Value '" + long_name +
           "' at 'streamName' failed to satisfy constraint: Member must have length less than or "
           "equal to 128"},
      {kinesis
           .PutRecord(
               {.stream_name = "orders", .partition_key = std::string(257, 'k'), .data = "d"})
           .status(),
       "1 validation error detected: Value '" + std::string(257, 'k') +
           "' at 'partitionKey' failed to satisfy constraint: Member must have length less than "
           "or equal to 256"},
      {kinesis.GetRecords({.shard_iterator = "", .limit = 0}).status(),
       "2 validation errors detected: Value '0' at 'limit' failed to satisfy constraint: Member "
       "must have value greater than or equal to 1; Value '' at 'shardIterator' failed to "
       "satisfy constraint: Member must have length greater than or equal to 1"},
      {kinesis.ListStreams({.limit = 0}).status(),
       "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member "
       "must have value greater than or equal to 1"},
      {kinesis.UpdateShardCount({.stream_name = "orders", .target_shard_count = 0}).status(),
       "1 validation error detected: Value '0' at 'targetShardCount' failed to satisfy "
       "constraint: Member must have value greater than or equal to 1"},
      {kinesis.IncreaseStreamRetentionPeriod(
           {.stream_name = "orders", .retention_period_hours = 0}),
       "1 validation error detected: Value '0' at 'retentionPeriodHours' failed to satisfy "
       "constraint: Member must have value greater than or equal to 1"},
      {kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "bad name"})
           .status(),
       "1 validation error detected: Value 'bad name' at 'consumerName' failed to satisfy "
       "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"},
      {kinesis.UpdateStreamMode({}),
       "1 validation error detected: Value null at 'streamARN' failed to satisfy constraint: "
       "Member must not be null"},
      {kinesis.StartStreamEncryption({.stream_name = "orders", .key_id = ""}),
       "1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: Member "
       "must have length greater than or equal to 1"},
      {kinesis.EnableEnhancedMonitoring({.stream_name = "orders"}).status(),
       "1 validation error detected: Value '[]' at 'shardLevelMetrics' failed to satisfy "
       "constraint: Member must have length greater than or equal to 1"},
      {kinesis.AddTagsToStream({.stream_name = "orders"}),
       "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: Member "
       "must have length greater than or equal to 1"},
      {kinesis.RemoveTagsFromStream({.stream_name = "orders"}),
       "1 validation error detected: Value '[]' at 'tagKeys' failed to satisfy constraint: "
       "Member must have length greater than or equal to 1"},
      {kinesis.GetShardIterator({.stream_name = "orders", .shard_id = ""}).status(),
       "2 validation errors detected: Value '' at 'shardId' failed to satisfy constraint: "
       "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at 'shardId' "
       "failed to satisfy constraint: Member must have length greater than or equal to 1"},
      {kinesis
           .SubscribeToShard({.consumer_arn = "c", .shard_id = "shardId-000000000000"},
                             [](const riffle::SubscribeToShardEvent&) {})
           .status(),
       "1 validation error detected: Value 'c' at 'consumerARN' failed to satisfy constraint: "
       "Member must satisfy regular expression pattern: "
       "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/"
       "[a-zA-Z0-9_.-]+:[0-9]+"},
      // The pattern's names: [a-zA-Z0-9_.-]+ for the stream and the consumer.
      {kinesis
           .DescribeStreamConsumer(
               {.consumer_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s$/consumer/c:1"})
           .status(),
       "1 validation error detected: Value "
       "'arn:aws:kinesis:us-east-1:000000000000:stream/s$/consumer/c:1' at 'consumerARN' failed "
       "to satisfy constraint: Member must satisfy regular expression pattern: "
       "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/"
       "[a-zA-Z0-9_.-]+:[0-9]+"},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    CHECK(riffle::IsValidationException(c.status));
    CHECK(c.status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(riffle::ErrorMessage(c.status) == c.message);
  }
}
TEST_CASE("consumers and SubscribeToShard through the account", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  std::vector<std::string> arns;
  for (int i = 0; i < 3; ++i) {
    auto c = kinesis.RegisterStreamConsumer(
        {.stream_arn = kOrdersArn, .consumer_name = fmt::format("c{}", i)});
    REQUIRE(c.ok());
    CHECK(c->consumer.stream_arn == kOrdersArn);
    // The service always answers a registration with CREATING; with no create_duration the
    // consumer is ACTIVE at once.
    CHECK(c->consumer.consumer_status == riffle::ConsumerStatus::kCreating);
    CHECK(kinesis.DescribeStreamConsumer({.consumer_arn = c->consumer.consumer_arn})
              ->consumer_description.consumer_status == riffle::ConsumerStatus::kActive);
    arns.push_back(c->consumer.consumer_arn);
  }
  CHECK(kinesis.DescribeStreamConsumer({.consumer_arn = arns[1]})
            ->consumer_description.consumer_name == "c1");
  CHECK(kinesis.DescribeStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "c2"})
            ->consumer_description.consumer_arn == arns[2]);
  auto page = kinesis.ListStreamConsumers({.stream_arn = kOrdersArn, .max_results = 2});
  REQUIRE(page.ok());
  REQUIRE(page->consumers.size() == 2);
  REQUIRE_FALSE(page->next_token.empty());
  auto rest =
      kinesis.ListStreamConsumers({.stream_arn = kOrdersArn, .next_token = page->next_token});
  REQUIRE(rest->consumers.size() == 1);
  CHECK(rest->consumers[0].consumer_name == "c2");
  {
    // A consumer of the first page deregistered before the next: the next page is the same.
    REQUIRE(
        kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "gone"}).ok());
    auto first = kinesis.ListStreamConsumers({.stream_arn = kOrdersArn, .max_results = 2});
    REQUIRE(first.ok());
    REQUIRE(kinesis.DeregisterStreamConsumer({.consumer_arn = arns[0]}).ok());
    auto second =
        kinesis.ListStreamConsumers({.stream_arn = kOrdersArn, .next_token = first->next_token});
    REQUIRE(second.ok());
    REQUIRE(second->consumers.size() == 2);
    CHECK(second->consumers[0].consumer_name == "c2");
    CHECK(second->consumers[1].consumer_name == "gone");
    REQUIRE(
        kinesis.DeregisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "gone"}).ok());
    auto again = kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "c0"});
    REQUIRE(again.ok());
    arns[0] = again->consumer.consumer_arn;
  }
  CHECK(kinesis.DescribeStreamSummary({.stream_name = "orders"})
            ->stream_description_summary.consumer_count == 3);

  REQUIRE(
      kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "pushed"}).ok());
  std::vector<std::string> seen;
  auto sub =
      kinesis.SubscribeToShard({.consumer_arn = arns[0],
                                .shard_id = "shardId-000000000000",
                                .starting_position = {riffle::ShardIteratorType::kTrimHorizon}},
                               [&](const riffle::SubscribeToShardEvent& e) {
                                 for (const auto& r : e.records) seen.emplace_back(r.data);
                               });
  REQUIRE(sub.ok());
  CHECK((*sub)->Poll() == 1);
  CHECK(seen == std::vector<std::string>{"pushed"});

  REQUIRE(kinesis.DeregisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "c1"}).ok());
  CHECK(riffle::IsResourceNotFoundException(
      kinesis.DescribeStreamConsumer({.consumer_arn = arns[1]}).status()));
  CHECK(ErrorOf(kinesis.DescribeStreamConsumer({.consumer_name = "c0"})) ==
        Error{riffle::kInvalidArgumentException,
              "Name the consumer by ConsumerARN, or by StreamARN and ConsumerName."});
  const std::string elsewhere =
      "arn:aws:kinesis:us-east-1:000000000000:stream/missing/consumer/c0:1767225600";
  CHECK(ErrorOf(kinesis.SubscribeToShard(
            {.consumer_arn = elsewhere, .shard_id = "shardId-000000000000"},
            [](const riffle::SubscribeToShardEvent&) {})) ==
        Error{riffle::kResourceNotFoundException,
              "Stream missing under account 000000000000 not found."});
  REQUIRE(kinesis.DeregisterStreamConsumer({.consumer_arn = arns[0]}).ok());
  CHECK((*sub)->Poll() == 1);  // the end event
  CHECK((*sub)->end_reason() == riffle::SubscriptionEnd::kConsumerDeregistered);
}

TEST_CASE(
    "ListStreamConsumers pages skip no consumer registered throughout, whatever is "
    "deregistered between the pages",
    "[account]") {
  // Each case deregisters some of c0..c5 after a first page of two (c0 c1); the next pages
  // must list every consumer still registered after c1, once.
  struct Case {
    std::vector<int> deregistered;
    bool same_millisecond;  // all registered at one clock time
  };
  const std::vector<Case> cases = {
      {{0, 2}, false}, {{1, 2}, false}, {{0, 1, 2}, false}, {{2, 3}, false}, {{1, 2, 3}, false},
      {{0, 2}, true},  {{0, 1}, true},  {{0, 1, 2}, true},  {{5}, true},     {{}, false},
  };
  for (const Case& c : cases) {
    ManualClock clock;
    auto account = MakeAccount(clock);
    riffle::Kinesis& kinesis = account->kinesis();
    CreateStream(kinesis, "orders", 1);
    for (int i = 0; i < 6; ++i) {
      REQUIRE(kinesis
                  .RegisterStreamConsumer(
                      {.stream_arn = kOrdersArn, .consumer_name = fmt::format("c{}", i)})
                  .ok());
      if (!c.same_millisecond) clock.Advance(absl::Seconds(1));
    }
    auto page = kinesis.ListStreamConsumers({.stream_arn = kOrdersArn, .max_results = 2});
    REQUIRE(page.ok());
    REQUIRE(page->consumers.size() == 2);
    for (int i : c.deregistered) {
      REQUIRE(kinesis
                  .DeregisterStreamConsumer(
                      {.stream_arn = kOrdersArn, .consumer_name = fmt::format("c{}", i)})
                  .ok());
    }
    std::vector<std::string> rest;
    std::string token = page->next_token;
    while (!token.empty()) {
      auto next = kinesis.ListStreamConsumers({.stream_arn = kOrdersArn, .next_token = token});
      REQUIRE(next.ok());
      for (const auto& consumer : next->consumers) rest.push_back(consumer.consumer_name);
      token = next->next_token;
    }
    std::vector<std::string> expected;
    for (int i = 2; i < 6; ++i) {
      if (std::find(c.deregistered.begin(), c.deregistered.end(), i) == c.deregistered.end())
        expected.push_back(fmt::format("c{}", i));
    }
    INFO("deregistered " << c.deregistered.size() << ", same millisecond " << c.same_millisecond);
    CHECK(rest == expected);
  }
}

TEST_CASE("a subscription ends when its stream is deleted through the account", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  auto c = kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "c"});
  auto sub = kinesis.SubscribeToShard(
      {.consumer_arn = c->consumer.consumer_arn, .shard_id = "shardId-000000000000"},
      [](const riffle::SubscribeToShardEvent&) {});
  REQUIRE(sub.ok());
  REQUIRE(kinesis.DeleteStream({.stream_name = "orders", .enforce_consumer_deletion = true}).ok());
  CHECK((*sub)->Poll() == 1);
  CHECK((*sub)->done());
}

TEST_CASE("PutRecords and GetRecords through the account allocate nothing in steady state",
          "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 4);
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) keys.push_back(fmt::format("key-{}", i));
  std::vector<riffle::PutRecordsRequestEntry> batch;
  for (const auto& k : keys) batch.push_back({k, "payload", {}});
  riffle::PutRecordsOutput put;
  riffle::GetRecordsOutput got;
  auto it = kinesis.GetShardIterator({.stream_name = "orders",
                                      .shard_id = "shardId-000000000000",
                                      .shard_iterator_type = riffle::ShardIteratorType::kLatest});
  REQUIRE(it.ok());
  std::string iterator = it->shard_iterator;
  iterator.reserve(256);  // a reused buffer: iterators gain digits as positions grow
  auto round = [&] {
    REQUIRE(kinesis.PutRecords({.stream_name = "orders", .records = batch}, put).ok());
    REQUIRE(kinesis.GetRecords({.shard_iterator = iterator}, got).ok());
    iterator.assign(got.next_shard_iterator);
  };
  for (int i = 0; i < 3; ++i) round();  // buffers grow to their working size
  riffle_test::AllocationCounter counter;
  for (int i = 0; i < 20; ++i) round();
  CHECK(counter.allocations() == 0);
  CHECK(put.failed_record_count == 0);
  CHECK(put.records.size() == 100);
  CHECK_FALSE(got.result.records.empty());
  // The stream named by its ARN, and entries with explicit hash keys, take the request's
  // full check: it formats nothing while nothing is wrong (it formatted three member names
  // an entry).
  std::vector<riffle::PutRecordsRequestEntry> explicit_keys;
  for (const auto& k : keys)
    explicit_keys.push_back({k, "payload", "170141183460469231731687303715884105728"});
  for (int i = 0; i < 2; ++i) {
    REQUIRE(kinesis.PutRecords({.stream_arn = kOrdersArn, .records = explicit_keys}, put).ok());
  }
  riffle_test::AllocationCounter by_arn;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(kinesis.PutRecords({.stream_arn = kOrdersArn, .records = batch}, put).ok());
    REQUIRE(kinesis.PutRecords({.stream_arn = kOrdersArn, .records = explicit_keys}, put).ok());
  }
  CHECK(by_arn.allocations() == 0);
  CHECK(put.failed_record_count == 0);
}

TEST_CASE("PutRecords of keys never seen before allocates nothing per entry", "[account]") {
  // BM_Account_TestDoubleScenario's requests: batches of 500 entries with distinct keys,
  // each hashed by MD5 (none is in the thread's cache), 100 bytes of data each.
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "scenario", 4);
  constexpr int kBatch = 500;
  constexpr int kBatches = 12;
  std::vector<std::string> keys;
  for (int i = 0; i < kBatch * kBatches; ++i) keys.push_back(fmt::format("key-{:012}", i));
  const std::string data(100, 'd');
  std::vector<riffle::PutRecordsRequestEntry> entries;
  for (const auto& k : keys) entries.push_back({k, data, {}});
  riffle::PutRecordsOutput put;
  auto batch = [&](int b) {
    const std::span<const riffle::PutRecordsRequestEntry> records(entries.data() + b * kBatch,
                                                                  kBatch);
    REQUIRE(kinesis.PutRecords({.stream_name = "scenario", .records = records}, put).ok());
    REQUIRE(put.failed_record_count == 0);
  };
  batch(0);  // the output grows to 500 entries
  riffle_test::AllocationCounter counter;
  for (int b = 1; b < kBatches; ++b) batch(b);
  CHECK(counter.allocations() == 0);
  // Every record is there, in its shard, under its own key.
  std::size_t read = 0;
  for (const char* shard : {"shardId-000000000000", "shardId-000000000001", "shardId-000000000002",
                            "shardId-000000000003"}) {
    auto it = kinesis.GetShardIterator({.stream_name = "scenario", .shard_id = shard});
    REQUIRE(it.ok());
    riffle::GetRecordsOutput got;
    REQUIRE(kinesis.GetRecords({.shard_iterator = it->shard_iterator}, got).ok());
    for (const riffle::Record& r : got.result.records) {
      CHECK(r.data == data);
      CHECK(
          account->kinesis()
              .PutRecord({.stream_name = "scenario", .partition_key = r.partition_key, .data = ""})
              ->shard_id == shard);
    }
    read += got.result.records.size();
  }
  CHECK(read == keys.size());
}

TEST_CASE("producers put by name while other streams come and go", "[account]") {
  // The registry is swapped on every create and delete; producers that found "orders" keep
  // using it safely, and each thread's remembered lookup follows the swaps.
  auto account = *riffle::Account::Create();
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 2);
  constexpr int kProducers = 2;
  constexpr int kPerProducer = 2000;
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string name = fmt::format("churn-{}", i % 4);
      (void)kinesis.CreateStream({.stream_name = name, .shard_count = 1});
      (void)kinesis.PutRecord({.stream_name = name, .partition_key = "k", .data = "v"});
      (void)kinesis.DeleteStream({.stream_name = name});
    }
  });
  std::atomic<int> failed_puts{0};  // Catch's assertions are for the test's own thread
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      const std::string key = fmt::format("p{}", p);
      for (int i = 0; i < kPerProducer; ++i) {
        const std::string data = fmt::format("{}:{}", p, i);
        auto r = kinesis.PutRecord({.stream_name = "orders", .partition_key = key, .data = data});
        if (!r.ok()) failed_puts.fetch_add(1);
      }
    });
  }
  for (auto& t : producers) t.join();
  stop = true;
  churn.join();
  CHECK(failed_puts.load() == 0);
  std::vector<int> next(kProducers, 0);
  int read = 0;
  auto listed = kinesis.ListShards({.stream_name = "orders"});
  REQUIRE(listed.ok());
  for (const auto& shard : listed->shards) {
    auto it = kinesis.GetShardIterator({.stream_name = "orders", .shard_id = shard.shard_id});
    REQUIRE(it.ok());
    std::string iterator = it->shard_iterator;
    riffle::GetRecordsOutput out;
    for (;;) {
      REQUIRE(kinesis.GetRecords({.shard_iterator = iterator}, out).ok());
      for (const auto& r : out.result.records) {
        const int p = r.data[0] - '0';
        CHECK(r.data == fmt::format("{}:{}", p, next[p]));  // per key: in order, none missing
        ++next[p];
        ++read;
      }
      if (out.result.records.empty()) break;
      iterator = out.next_shard_iterator;
    }
  }
  CHECK(read == kProducers * kPerProducer);
}

TEST_CASE("a deregistered consumer is DELETING for delete_duration, then gone", "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock, false, {.delete_duration = absl::Seconds(5)});
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  auto first = kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "a"});
  clock.Advance(absl::Seconds(1));
  auto c = kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "audit"});
  clock.Advance(absl::Seconds(1));
  auto last = kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "z"});
  REQUIRE((first.ok() && c.ok() && last.ok()));
  const std::string arn = c->consumer.consumer_arn;
  int events = 0;
  auto sub =
      kinesis.SubscribeToShard({.consumer_arn = arn,
                                .shard_id = "shardId-000000000000",
                                .starting_position = {riffle::ShardIteratorType::kTrimHorizon}},
                               [&](const riffle::SubscribeToShardEvent&) { ++events; });
  REQUIRE(sub.ok());

  REQUIRE(kinesis.DeregisterStreamConsumer({.consumer_arn = arn}).ok());
  // Its subscription ends at once.
  (void)(*sub)->Poll();
  CHECK((*sub)->done());
  CHECK((*sub)->end_reason() == riffle::SubscriptionEnd::kConsumerDeregistered);
  // Described and listed as DELETING, in its place, by name or ARN.
  for (auto in :
       {riffle::DescribeStreamConsumerInput{.consumer_arn = arn},
        riffle::DescribeStreamConsumerInput{.stream_arn = kOrdersArn, .consumer_name = "audit"}}) {
    auto d = kinesis.DescribeStreamConsumer(in);
    REQUIRE(d.ok());
    CHECK(d->consumer_description.consumer_status == riffle::ConsumerStatus::kDeleting);
    CHECK(d->consumer_description.consumer_arn == arn);
  }
  auto list = kinesis.ListStreamConsumers({.stream_arn = kOrdersArn});
  REQUIRE(list.ok());
  REQUIRE(list->consumers.size() == 3);
  CHECK(list->consumers[0].consumer_name == "a");
  CHECK(list->consumers[1].consumer_name == "audit");
  CHECK(list->consumers[1].consumer_status == riffle::ConsumerStatus::kDeleting);
  CHECK(list->consumers[2].consumer_status == riffle::ConsumerStatus::kActive);
  // Its name stays taken; it cannot subscribe; deregistering it again finds nothing.
  CHECK(ErrorOf(
            kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "audit"})) ==
        Error{riffle::kResourceInUseException, "Consumer audit already exists for stream orders."});
  CHECK(ErrorOf(kinesis.SubscribeToShard(
                    {.consumer_arn = arn,
                     .shard_id = "shardId-000000000000",
                     .starting_position = {riffle::ShardIteratorType::kTrimHorizon}},
                    [](const riffle::SubscribeToShardEvent&) {}))
            .name == riffle::kResourceInUseException);
  CHECK(ErrorOf(kinesis.DeregisterStreamConsumer({.consumer_arn = arn})).name ==
        riffle::kResourceNotFoundException);

  clock.Advance(absl::Milliseconds(4999));
  CHECK(kinesis.DescribeStreamConsumer({.consumer_arn = arn}).ok());
  clock.Advance(absl::Milliseconds(1));
  CHECK(ErrorOf(kinesis.DescribeStreamConsumer({.consumer_arn = arn})).name ==
        riffle::kResourceNotFoundException);
  CHECK(kinesis.ListStreamConsumers({.stream_arn = kOrdersArn})->consumers.size() == 2);
  auto again = kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "audit"});
  REQUIRE(again.ok());
  CHECK(again->consumer.consumer_arn != arn);
}

TEST_CASE("a consumer is CREATING for create_duration and cannot subscribe until ACTIVE",
          "[account]") {
  ManualClock clock;
  auto account = MakeAccount(clock, false, {.create_duration = absl::Seconds(10)});
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  clock.Advance(absl::Seconds(10));  // the stream is ACTIVE
  auto c = kinesis.RegisterStreamConsumer({.stream_arn = kOrdersArn, .consumer_name = "audit"});
  REQUIRE(c.ok());
  const std::string arn = c->consumer.consumer_arn;
  auto status = [&] {
    return kinesis.DescribeStreamConsumer({.consumer_arn = arn})
        ->consumer_description.consumer_status;
  };
  auto subscribe = [&] {
    return kinesis.SubscribeToShard(
        {.consumer_arn = arn,
         .shard_id = "shardId-000000000000",
         .starting_position = {riffle::ShardIteratorType::kTrimHorizon}},
        [](const riffle::SubscribeToShardEvent&) {});
  };
  CHECK(c->consumer.consumer_status == riffle::ConsumerStatus::kCreating);
  CHECK(status() == riffle::ConsumerStatus::kCreating);
  CHECK(kinesis.ListStreamConsumers({.stream_arn = kOrdersArn})->consumers[0].consumer_status ==
        riffle::ConsumerStatus::kCreating);
  // The service's words, its spacing and its timestamp in seconds included.
  const int64_t created_s = absl::ToUnixSeconds(c->consumer.consumer_creation_timestamp);
  CHECK(ErrorOf(subscribe()) ==
        Error{riffle::kResourceInUseException,
              fmt::format("Consumer audit with creation timestamp {} under stream: orders , "
                          "account 000000000000 is not in ACTIVE status.",
                          created_s)});
  clock.Advance(absl::Milliseconds(9999));
  CHECK(status() == riffle::ConsumerStatus::kCreating);
  clock.Advance(absl::Milliseconds(1));
  CHECK(status() == riffle::ConsumerStatus::kActive);
  CHECK(kinesis.ListStreamConsumers({.stream_arn = kOrdersArn})->consumers[0].consumer_status ==
        riffle::ConsumerStatus::kActive);
  CHECK(subscribe().ok());
}
