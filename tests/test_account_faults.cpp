// The account's fault plan, and a caller's retry loop proven against it.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"

using account_test::CreateStream;
using account_test::Error;
using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::FaultRule;
using riffle::ManualClock;

namespace {

std::vector<std::string> ReadAll(riffle::Kinesis& kinesis, std::string_view stream) {
  std::vector<std::string> data;
  auto shards = kinesis.ListShards({.stream_name = stream});
  REQUIRE(shards.ok());
  for (const auto& shard : shards->shards) {
    auto it = kinesis.GetShardIterator({.stream_name = stream, .shard_id = shard.shard_id});
    REQUIRE(it.ok());
    riffle::GetRecordsOutput out;
    std::string iterator = it->shard_iterator;
    for (;;) {
      REQUIRE(kinesis.GetRecords({.shard_iterator = iterator}, out).ok());
      for (const auto& r : out.result.records) data.emplace_back(r.data);
      if (out.result.records.empty()) break;
      iterator = out.next_shard_iterator;
    }
  }
  return data;
}

}  // namespace

TEST_CASE("FailNext, Every and Fraction fail the calls they name, before anything changes",
          "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  CreateStream(kinesis, "other", 1);
  riffle::FaultPlan& faults = account->faults();
  CHECK_FALSE(faults.active());

  faults.Add(FaultRule::FailNext("PutRecord", 2, riffle::kServiceUnavailable));
  auto put = [&](std::string_view stream) {
    return kinesis.PutRecord({.stream_name = stream, .partition_key = "k", .data = "v"});
  };
  auto first = put("orders");
  CHECK(ErrorOf(first) == Error{riffle::kServiceUnavailable, "Service Unavailable"});
  CHECK(first.status().code() == absl::StatusCode::kUnavailable);
  CHECK(put("other").status().code() == absl::StatusCode::kUnavailable);
  CHECK(put("orders").ok());
  CHECK(ReadAll(kinesis, "orders").size() == 1);  // the failed calls wrote nothing

  faults.Clear();
  faults.Add(FaultRule::Every("DescribeStreamSummary", 3, riffle::kLimitExceededException)
                 .OnResource("orders"));
  std::vector<bool> failed;
  for (int i = 0; i < 8; ++i) {
    failed.push_back(!kinesis.DescribeStreamSummary({.stream_name = "orders"}).ok());
    CHECK(kinesis.DescribeStreamSummary({.stream_name = "other"}).ok());  // another resource
  }
  CHECK(failed == std::vector<bool>{false, false, true, false, false, true, false, false});
  CHECK(ErrorOf(kinesis.DescribeStreamSummary({.stream_arn = account->StreamArn("orders")})) ==
        Error{riffle::kLimitExceededException,
              "Rate exceeded for stream orders under account 000000000000."});

  // A seeded fraction picks the same calls on every run.
  auto pattern = [&](uint64_t seed) {
    riffle::FaultPlan plan;
    plan.Add(FaultRule::Fraction("GetShardIterator", 0.25, seed, riffle::kInternalFailure));
    std::string calls;
    for (int i = 0; i < 400; ++i) {
      calls += plan.Evaluate("GetShardIterator", "orders", "", "", riffle::FaultScope::kRequest)
                   ? 'x'
                   : '.';
    }
    return calls;
  };
  const std::string a = pattern(7);
  CHECK(a == pattern(7));
  CHECK(a != pattern(8));
  const auto n = std::count(a.begin(), a.end(), 'x');
  CHECK(n > 70);
  CHECK(n < 130);

  // Shard-scoped: only calls on that shard.
  faults.Clear();
  CreateStream(kinesis, "two", 2);
  faults.Add(FaultRule::FailNext("GetShardIterator", 100, riffle::kKMSThrottlingException)
                 .OnShard("shardId-000000000001"));
  CHECK(kinesis.GetShardIterator({.stream_name = "two", .shard_id = "shardId-000000000000"}).ok());
  auto kms = kinesis.GetShardIterator({.stream_name = "two", .shard_id = "shardId-000000000001"});
  CHECK(riffle::HasErrorName(kms.status(), riffle::kKMSThrottlingException));
  CHECK(kms.status().code() == absl::StatusCode::kResourceExhausted);
}

TEST_CASE("latency passes on the account's clock", "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  const int id = account->faults().Add(FaultRule::Delay("DescribeStream", absl::Milliseconds(200)));
  account->faults().Add(FaultRule::FailNext("DescribeStream", 1, riffle::kInternalFailure)
                            .WithLatency(absl::Milliseconds(50))
                            .WithMessage("boom"));
  const absl::Time t0 = clock.Now();
  CHECK(ErrorOf(kinesis.DescribeStream({.stream_name = "orders"})) ==
        Error{riffle::kInternalFailure, "boom"});
  CHECK(clock.Now() - t0 == absl::Milliseconds(250));
  CHECK(kinesis.DescribeStream({.stream_name = "orders"}).ok());
  CHECK(clock.Now() - t0 == absl::Milliseconds(450));
  const riffle::FaultCounters c = account->faults().Counters();
  CHECK(c.injected == 1);
  CHECK(c.delayed == 3);
  CHECK(c.latency_added == absl::Milliseconds(450));
  REQUIRE(c.rules.size() == 2);
  CHECK(c.rules[0].matched == 2);
  CHECK(c.rules[0].delayed == 2);
  CHECK(c.rules[1].injected == 1);
  CHECK(account->faults().Injected("DescribeStream") == 1);
  CHECK(account->faults().Injected("PutRecord") == 0);
  CHECK(account->faults().Remove(id));
  CHECK_FALSE(account->faults().Remove(id));
  CHECK(kinesis.DescribeStream({.stream_name = "orders"}).ok());
  CHECK(clock.Now() - t0 == absl::Milliseconds(450));
}

TEST_CASE("inside PutRecords faults apply entry by entry", "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 2);
  account->faults().Add(FaultRule::FailNext("PutRecords", 3, riffle::kInternalFailure));
  std::vector<std::string> data;
  for (int i = 0; i < 10; ++i) data.push_back(fmt::format("r{}", i));
  std::vector<riffle::PutRecordsRequestEntry> batch;
  for (const auto& d : data) batch.push_back({d, d, {}});
  riffle::PutRecordsOutput out;
  REQUIRE(kinesis.PutRecords({.stream_name = "orders", .records = batch}, out).ok());
  CHECK(out.failed_record_count == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(out.records[i].error_code == riffle::kInternalFailure);
    CHECK(out.records[i].error_message == "Internal Service Failure");
  }
  CHECK(out.records[3].error_code.empty());
  CHECK(out.records[3].sequence_number.has_value());
  auto written = ReadAll(kinesis, "orders");
  std::sort(written.begin(), written.end());
  CHECK(written == std::vector<std::string>(data.begin() + 3, data.end()));

  // Only the entries routed to the named shard.
  account->faults().Clear();
  account->faults().Add(
      FaultRule::Every("PutRecords", 1, riffle::kProvisionedThroughputExceededException)
          .OnShard("shardId-000000000001"));
  REQUIRE(kinesis.PutRecords({.stream_name = "orders", .records = batch}, out).ok());
  int on_shard_1 = 0;
  for (const auto& r : out.records) {
    if (r.error_code.empty()) {
      CHECK(r.shard_id == "shardId-000000000000");
    } else {
      ++on_shard_1;
      CHECK(r.error_code == riffle::kProvisionedThroughputExceededException);
      CHECK(r.error_message ==
            "Rate exceeded for shard shardId-000000000001 in stream orders under account "
            "000000000000.");
    }
  }
  CHECK(on_shard_1 == out.failed_record_count);
  CHECK(on_shard_1 > 0);

  // Any other error fails the whole request; an invalid request is refused before faults.
  account->faults().Clear();
  account->faults().Add(FaultRule::FailNext("PutRecords", 1, riffle::kServiceUnavailable));
  std::vector<riffle::PutRecordsRequestEntry> bad = {{"", "x", {}}};
  CHECK(riffle::IsValidationException(
      kinesis.PutRecords({.stream_name = "orders", .records = bad}).status()));
  CHECK(ErrorOf(kinesis.PutRecords({.stream_name = "orders", .records = batch})) ==
        Error{riffle::kServiceUnavailable, "Service Unavailable"});
  CHECK(account->faults().Counters().rules[0].injected == 1);

  // A "*" rule with a per-entry code is per entry inside PutRecords too, and still fails
  // other operations whole.
  account->faults().Clear();
  account->faults().Add(FaultRule::FailNext("*", 2, riffle::kInternalFailure));
  REQUIRE(kinesis.PutRecords({.stream_name = "orders", .records = batch}, out).ok());
  CHECK(out.failed_record_count == 2);
  CHECK(out.records[0].error_code == riffle::kInternalFailure);
  CHECK(out.records[1].error_code == riffle::kInternalFailure);
  CHECK(out.records[2].sequence_number.has_value());
  account->faults().Clear();
  account->faults().Add(FaultRule::FailNext("*", 1, riffle::kInternalFailure));
  CHECK(ErrorOf(kinesis.DescribeStreamSummary({.stream_name = "orders"})).name ==
        riffle::kInternalFailure);
}

TEST_CASE("a fault rule that could never fire as written is refused, named", "[faults]") {
  auto invalid = [](const FaultRule& r) { return ErrorOf(riffle::FaultPlan::Validate(r)); };
  FaultRule unknown = FaultRule::FailNext("PutRecord", 5, riffle::kInternalFailure);
  unknown.trigger = static_cast<riffle::FaultTrigger>(77);
  CHECK(invalid(unknown) ==
        Error{riffle::kInvalidArgumentException,
              "FaultRule.trigger is 77; it must be kNextCalls, kEveryKth or kFraction."});
  CHECK(invalid(FaultRule::Every("PutRecord", 0, riffle::kInternalFailure)) ==
        Error{riffle::kInvalidArgumentException,
              "FaultRule.count is 0; Every(k) needs k >= 1 (the k-th, 2k-th, ... call)."});
  CHECK(invalid(FaultRule::Fraction("PutRecord", 7.5, 1, riffle::kInternalFailure)) ==
        Error{riffle::kInvalidArgumentException,
              "FaultRule.fraction is 7.5; it must be between 0 and 1."});
  CHECK(invalid(FaultRule::Fraction("PutRecord", std::nan(""), 1, riffle::kInternalFailure)).name ==
        riffle::kInvalidArgumentException);
  CHECK(invalid(FaultRule::Delay("PutRecord", absl::Seconds(-1))) ==
        Error{riffle::kInvalidArgumentException,
              "FaultRule.latency is -1s; it must not be negative."});
  CHECK(invalid(FaultRule::FailNext("", 1, riffle::kInternalFailure)) ==
        Error{riffle::kInvalidArgumentException,
              "FaultRule.operation is empty; name an operation, or \"*\"."});
  CHECK(
      riffle::FaultPlan::Validate(FaultRule::Fraction("*", 1.0, 1, riffle::kInternalFailure)).ok());
  // A rule for no call, and a whole-request PutRecords rule aimed at one shard (a request
  // names no one shard), never fire either.
  CHECK(invalid(FaultRule::FailNext("PutRecord", 0, riffle::kInternalFailure)) ==
        Error{riffle::kInvalidArgumentException,
              "FaultRule.count is 0; FailNext(n) needs n >= 1 (a rule for no call never fires)."});
  CHECK(invalid(FaultRule::FailNext("PutRecords", 5, riffle::kServiceUnavailable)
                    .OnShard("shardId-000000000000")) ==
        Error{riffle::kInvalidArgumentException,
              "FaultRule.shard_id is shardId-000000000000 on a PutRecords rule whose error is not "
              "a per-entry code (InternalFailure, ProvisionedThroughputExceededException): it "
              "would never fire."});
  CHECK(riffle::FaultPlan::Validate(FaultRule::FailNext("PutRecords", 5, riffle::kInternalFailure)
                                        .OnShard("shardId-000000000000"))
            .ok());
  riffle::FaultPlan plan;
  CHECK(plan.Add(unknown) == 0);
  CHECK_FALSE(plan.active());
  CHECK(plan.Add(FaultRule::FailNext("PutRecord", 1, riffle::kInternalFailure)) == 1);
}

TEST_CASE(
    "a bad PutRecord is refused for what it is before any fault, however it names the "
    "stream",
    "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  account->faults().Add(FaultRule::FailNext("PutRecord", 10, riffle::kServiceUnavailable));
  const std::string arn = account->StreamArn("orders");
  for (const riffle::PutRecordInput& bad :
       {riffle::PutRecordInput{.stream_name = "orders", .partition_key = "", .data = "x"},
        riffle::PutRecordInput{.stream_arn = arn, .partition_key = "", .data = "x"}}) {
    CHECK(ErrorOf(kinesis.PutRecord(bad)) ==
          Error{riffle::kValidationException,
                "1 validation error detected: Value '' at 'partitionKey' failed to satisfy "
                "constraint: Member must have length greater than or equal to 1"});
  }
  CHECK(riffle::IsInvalidArgumentException(
      kinesis
          .PutRecord({.stream_name = "orders",
                      .partition_key = "k",
                      .data = "x",
                      .explicit_hash_key = "340282366920938463463374607431768211456"})
          .status()));
  // None of them used the rule: the next good put is its first call.
  CHECK(account->faults().Counters().rules.at(0).matched == 0);
  CHECK(ErrorOf(kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "x"}))
            .name == riffle::kServiceUnavailable);
}

TEST_CASE("a rule's shard matches the shard however the call names it", "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 2);
  account->faults().Add(FaultRule::FailNext("GetShardIterator", 3, riffle::kInternalFailure)
                            .OnShard("shardId-000000000001"));
  for (std::string_view id : {"shardId-000000000001", "shardId-1", "1"}) {
    INFO(id);
    CHECK(ErrorOf(kinesis.GetShardIterator({.stream_name = "orders", .shard_id = id})) ==
          Error{riffle::kInternalFailure, "Internal Service Failure"});
  }
  CHECK(kinesis.GetShardIterator({.stream_name = "orders", .shard_id = "shardId-0"}).ok());
}

TEST_CASE("injected S3 errors carry S3's text and name their bucket and key", "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
  auto& faults = account->faults();
  faults.Add(FaultRule::FailNext("PutObject", 1, riffle::kSlowDown));
  faults.Add(FaultRule::FailNext("GetObject", 1, riffle::kNoSuchKey));
  auto field = [](const absl::Status& s, std::string_view name) {
    auto payload = s.GetPayload(std::string(riffle::kErrorFieldPayloadPrefix) + std::string(name));
    return payload ? std::string(*payload) : std::string("(none)");
  };
  const absl::Status slow =
      account->s3().PutObject({.bucket = "deliveries", .key = "a/b", .body = "x"}).status();
  CHECK(ErrorOf(slow) == Error{riffle::kSlowDown, "Please reduce your request rate."});
  CHECK(field(slow, "BucketName") == "deliveries");
  CHECK(field(slow, "Key") == "a/b");
  faults.Add(FaultRule::FailNext("PutObject", 1, riffle::kInternalError));
  const absl::Status internal =
      account->s3().PutObject({.bucket = "deliveries", .key = "a/b", .body = "x"}).status();
  CHECK(ErrorOf(internal) ==
        Error{riffle::kInternalError, "We encountered an internal error. Please try again."});
  REQUIRE(account->s3().PutObject({.bucket = "deliveries", .key = "a/b", .body = "x"}).ok());
  const absl::Status missing =
      account->s3().GetObject({.bucket = "deliveries", .key = "a/b"}).status();
  CHECK(ErrorOf(missing) == Error{riffle::kNoSuchKey, "The specified key does not exist."});
  CHECK(field(missing, "Key") == "a/b");
}

TEST_CASE("every S3 call consults the fault plan first, a put to a missing bucket too",
          "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  auto& faults = account->faults();
  for (const char* operation : {"PutObject", "GetObject", "HeadObject", "ListObjectsV2"}) {
    INFO(operation);
    faults.Add(FaultRule::FailNext(operation, 1, riffle::kInternalError).OnResource("missing"));
    absl::Status s;
    const std::string op = operation;
    if (op == "PutObject") {
      s = account->s3().PutObject({.bucket = "missing", .key = "k", .body = "x"}).status();
    } else if (op == "GetObject") {
      s = account->s3().GetObject({.bucket = "missing", .key = "k"}).status();
    } else if (op == "HeadObject") {
      s = account->s3().HeadObject({.bucket = "missing", .key = "k"}).status();
    } else {
      s = account->s3().ListObjectsV2({.bucket = "missing"}).status();
    }
    CHECK(riffle::ErrorName(s) == riffle::kInternalError);
    CHECK(faults.Injected(operation) == 1);
  }
  // With the rule spent, the bucket's absence answers.
  CHECK(riffle::ErrorName(
            account->s3().PutObject({.bucket = "missing", .key = "k", .body = "x"}).status()) ==
        "NoSuchBucket");
}

TEST_CASE("an S3 rule by ARN matches the bucket's ARN in the account's partition", "[faults]") {
  ManualClock clock;
  auto account = MakeAccount(clock, false, {.region = "cn-north-1"});
  REQUIRE(account->s3().CreateBucket({.bucket = "deliveries"}).ok());
  CHECK(account->s3().ArnOf("deliveries") == "arn:aws-cn:s3:::deliveries");
  account->faults().Add(FaultRule::FailNext("PutObject", 1, riffle::kInternalError)
                            .OnResource("arn:aws-cn:s3:::deliveries"));
  CHECK(riffle::ErrorName(
            account->s3().PutObject({.bucket = "deliveries", .key = "k", .body = "x"}).status()) ==
        riffle::kInternalError);
  CHECK(account->s3().PutObject({.bucket = "deliveries", .key = "k", .body = "x"}).ok());
}

TEST_CASE("a delay rule on a reshard holds up no call on another stream", "[faults]") {
  // A real clock: the delay sleeps. It used to sleep under the account's registry lock, so
  // every call that takes it (CreateStream, DescribeLimits, other streams' reshards) waited.
  auto account = *riffle::Account::Create({});
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  CreateStream(kinesis, "other", 1);
  account->faults().Add(FaultRule::Delay("SplitShard", absl::Seconds(3)).OnResource("orders"));
  absl::Status slow_split;  // checked on this thread: Catch2's assertions are not thread-safe
  std::thread slow([&] {
    slow_split =
        kinesis.SplitShard({.stream_name = "orders",
                            .shard_to_split = "shardId-000000000000",
                            .new_starting_hash_key = "170141183460469231731687303715884105728"});
  });
  while (account->faults().Counters().rules.at(0).matched == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto start = std::chrono::steady_clock::now();
  CHECK(kinesis.CreateStream({.stream_name = "third", .shard_count = 1}).ok());
  CHECK(kinesis
            .SplitShard({.stream_name = "other",
                         .shard_to_split = "shardId-000000000000",
                         .new_starting_hash_key = "170141183460469231731687303715884105728"})
            .ok());
  CHECK(kinesis.DescribeLimits().ok());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  slow.join();
  CHECK(slow_split.ok());
  CHECK(kinesis.DescribeStreamSummary({.stream_name = "orders"})
            ->stream_description_summary.open_shard_count == 2);
}

// A producer written for the service: batches of PutRecords with at most one record per
// key in flight (so that a failed entry cannot be overtaken by a later record of its key),
// retrying failed entries in the next batch; after a throttle or an unavailable service it
// backs off exponentially on the clock (50 ms doubling, at most 1.6 s).
struct RetryRun {
  std::map<std::string, std::vector<std::string>> read;  // key -> data in read order
  absl::Duration elapsed;
  uint64_t calls = 0;
  uint64_t injected = 0;
  uint64_t throttled_entries = 0;
};

RetryRun ProduceWithRetries() {
  ManualClock clock;
  auto account = MakeAccount(clock, /*limits=*/true);
  riffle::Kinesis& kinesis = account->kinesis();
  CreateStream(kinesis, "orders", 1);
  riffle::FaultPlan& faults = account->faults();
  faults.Add(FaultRule::Fraction("PutRecords", 0.05, /*seed=*/42, riffle::kInternalFailure));
  faults.Add(FaultRule::Every("PutRecords", 25, riffle::kServiceUnavailable));
  faults.Add(FaultRule::Delay("PutRecords", absl::Milliseconds(20)));

  constexpr int kKeys = 64;
  constexpr int kPerKey = 50;
  std::vector<std::vector<std::string>> pending(kKeys);
  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) {
    keys.push_back(fmt::format("user-{}", k));
    for (int i = 0; i < kPerKey; ++i) pending[k].push_back(fmt::format("{}:{:03}", k, i));
  }
  std::vector<std::size_t> next(kKeys, 0);
  const absl::Time t0 = clock.Now();
  RetryRun run;
  riffle::PutRecordsOutput out;
  int failures_in_a_row = 0;
  for (;;) {
    std::vector<riffle::PutRecordsRequestEntry> batch;
    std::vector<int> key_of;
    for (int k = 0; k < kKeys; ++k) {
      if (next[k] == pending[k].size()) continue;
      batch.push_back({keys[k], pending[k][next[k]], {}});
      key_of.push_back(k);
    }
    if (batch.empty()) break;
    ++run.calls;
    absl::Status s = kinesis.PutRecords({.stream_name = "orders", .records = batch}, out);
    bool back_off = !s.ok();
    if (s.ok()) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (out.records[i].error_code.empty()) {
          ++next[key_of[i]];
        } else if (out.records[i].error_code == riffle::kProvisionedThroughputExceededException) {
          ++run.throttled_entries;
          back_off = true;
        }  // InternalFailure: retried in the next batch at once
      }
    } else {
      REQUIRE(s.code() == absl::StatusCode::kUnavailable);  // retryable
    }
    if (back_off) {
      clock.Advance(absl::Milliseconds(50) * (1 << std::min(failures_in_a_row, 5)));
      ++failures_in_a_row;
    } else {
      failures_in_a_row = 0;
    }
  }
  run.elapsed = clock.Now() - t0;
  run.injected = faults.Counters().injected;
  faults.Clear();
  // Read back: one shard, so this is the order of the puts.
  auto it = kinesis.GetShardIterator({.stream_name = "orders", .shard_id = "shardId-000000000000"});
  riffle::GetRecordsOutput got;
  std::string iterator = it->shard_iterator;
  for (;;) {
    clock.Advance(absl::Seconds(1));  // within the read budget
    REQUIRE(kinesis.GetRecords({.shard_iterator = iterator}, got).ok());
    for (const auto& r : got.result.records)
      run.read[std::string(r.partition_key)].emplace_back(r.data);
    if (got.result.records.empty()) break;
    iterator = got.next_shard_iterator;
  }
  return run;
}

TEST_CASE(
    "a producer with backoff puts every record exactly once, in per-key order, in "
    "predictable clock time",
    "[faults][limits]") {
  const RetryRun run = ProduceWithRetries();
  REQUIRE(run.read.size() == 64);
  for (int k = 0; k < 64; ++k) {
    const auto& got = run.read.at(fmt::format("user-{}", k));
    std::vector<std::string> want;
    for (int i = 0; i < 50; ++i) want.push_back(fmt::format("{}:{:03}", k, i));
    CHECK(got == want);  // every record, once, in order
  }
  // Faults and the write limit (1,000 records/s on one shard) both had their say...
  CHECK(run.injected > 0);
  CHECK(run.throttled_entries > 0);
  CHECK(run.elapsed >= absl::Seconds(2));  // 3,200 records: 1,000 of burst, then 1,000/s
  // ... and the clock time is the same on every run, to the millisecond.
  const RetryRun again = ProduceWithRetries();
  CHECK(again.elapsed == run.elapsed);
  CHECK(again.calls == run.calls);
  CHECK(again.injected == run.injected);
  CHECK(again.throttled_entries == run.throttled_entries);
  INFO("elapsed " << absl::FormatDuration(run.elapsed) << ", " << run.calls << " calls, "
                  << run.injected << " injected, " << run.throttled_entries << " throttled");
  // The figures of this plan and seed: 71 calls of 20 ms each, the write limit's refills and
  // the backoffs after 416 throttled entries and 2 unavailable calls.
  CHECK(run.elapsed == absl::Milliseconds(2320));
  CHECK(run.calls == 71);
  CHECK(run.injected == 193);
  CHECK(run.throttled_entries == 416);
}
