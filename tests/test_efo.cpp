// Enhanced fan-out: registration rules, host-driven determinism, lifetime and the 5-second
// rule under a ManualClock, lapped and lossless subscribers, and (under [stress]) two
// fan-out consumers beside a polling reader on a 4-shard stream with 2 producers.
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/consumer.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"
#include "support/alloc_counter.h"

using riffle::ErrorMessage;
using riffle::ErrorName;
using riffle::ManualClock;
using riffle::StartingPositionType;
using riffle::Stream;
using riffle::SubscribeToShardEvent;
using riffle::SubscriptionEnd;
using riffle::SubscriptionOptions;

namespace {

std::unique_ptr<Stream> MakeStream(
    riffle::Clock* clock, int shards = 1, uint64_t ring = uint64_t{1} << 20,
    riffle::OverflowPolicy policy = riffle::OverflowPolicy::kTrimOldest) {
  riffle::StreamOptions o;
  o.stream_name = "orders";
  o.shard_count = shards;
  o.ring_capacity_bytes = ring;
  o.max_record_size_bytes = 1024;
  o.overflow_policy = policy;
  o.clock = clock;
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  return *std::move(s);
}

const std::string kShard0 = riffle::FormatShardId(0);

// What a handler saw, in a comparable form.
struct Transcript {
  std::vector<std::string> lines;
  std::vector<std::string> data;
  uint64_t missed = 0;
  SubscriptionEnd end = SubscriptionEnd::kNone;
  riffle::SequenceNumber continuation;

  riffle::SubscribeToShardHandler Handler() {
    return [this](const SubscribeToShardEvent& e) {
      std::string line =
          fmt::format("n={} missed={} behind={} end={} cont={}", e.records.size(), e.missed_records,
                      e.millis_behind_latest, riffle::SubscriptionEndName(e.end),
                      e.continuation_sequence_number.ToString());
      for (const auto& r : e.records) {
        line += fmt::format(" {}:{}@{}", r.partition_key, r.data, r.sequence_number.ToString());
        data.emplace_back(r.data);
      }
      lines.push_back(std::move(line));
      missed += e.missed_records;
      end = e.end;
      continuation = e.continuation_sequence_number;
    };
  }
};

riffle::SubscribeToShardRequest Req(std::string_view consumer, std::string_view shard,
                                    StartingPositionType type, std::string seq = {}) {
  return riffle::SubscribeToShardRequest{consumer, shard, {type, std::move(seq), std::nullopt}};
}

}  // namespace

TEST_CASE("consumers register, describe, list and deregister with the service's errors",
          "[efo][errors]") {
  ManualClock clock;
  auto stream = MakeStream(&clock);
  auto d = stream->RegisterStreamConsumer("audit");
  REQUIRE(d.ok());
  CHECK(d->consumer_name == "audit");
  CHECK(d->consumer_arn ==
        fmt::format("arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/audit:{}",
                    absl::ToUnixSeconds(clock.Now())));
  CHECK(riffle::ConsumerStatusName(d->consumer_status) == "ACTIVE");

  auto dup = stream->RegisterStreamConsumer("audit");
  CHECK(ErrorName(dup.status()) == "ResourceInUseException");
  CHECK(ErrorName(stream->RegisterStreamConsumer("bad name").status()) == "ValidationException");
  CHECK(stream->DescribeStreamConsumer(d->consumer_arn)->consumer_name == "audit");
  CHECK(ErrorName(stream->DescribeStreamConsumer("nope").status()) == "ResourceNotFoundException");
  CHECK(ErrorName(stream->DeregisterStreamConsumer("nope")) == "ResourceNotFoundException");

  for (int i = 1; i < 20; ++i) REQUIRE(stream->RegisterStreamConsumer(fmt::format("c{}", i)).ok());
  auto over = stream->RegisterStreamConsumer("c20");
  CHECK(ErrorName(over.status()) == "LimitExceededException");
  CHECK(ErrorMessage(over.status()) ==
        "Stream orders already has 20 registered consumers; the limit is 20 (MaxStreamConsumers).");
  CHECK(stream->DescribeStreamSummary().consumer_count == 20);
  auto list = stream->ListStreamConsumers();
  REQUIRE(list.size() == 20);
  CHECK(list[0].consumer_name == "audit");
  CHECK(list[19].consumer_name == "c19");

  REQUIRE(stream->DeregisterStreamConsumer("audit").ok());
  CHECK(ErrorName(stream->DescribeStreamConsumer("audit").status()) == "ResourceNotFoundException");
  CHECK(stream->RegisterStreamConsumer("c20").ok());
  // The same name again, in the same clock second: a new ARN, and the old one names nothing.
  REQUIRE(stream->DeregisterStreamConsumer("c20").ok());
  auto again = stream->RegisterStreamConsumer("audit");
  REQUIRE(again.ok());
  CHECK(again->consumer_arn != d->consumer_arn);
  CHECK(ErrorName(stream->DescribeStreamConsumer(d->consumer_arn).status()) ==
        "ResourceNotFoundException");
  CHECK(stream->DescribeStreamConsumer(again->consumer_arn)->consumer_name == "audit");
  REQUIRE(stream->DeregisterStreamConsumer(again->consumer_arn).ok());
  // Many names later, with the clock set back to that second: still a new ARN.
  const absl::Time registered = clock.Now();
  for (int i = 0; i < 200; ++i) {
    clock.Advance(absl::Seconds(1));
    const std::string name = fmt::format("churn{}", i);
    REQUIRE(stream->RegisterStreamConsumer(name).ok());
    REQUIRE(stream->DeregisterStreamConsumer(name).ok());
  }
  clock.Set(registered);
  auto third = stream->RegisterStreamConsumer("audit");
  REQUIRE(third.ok());
  CHECK(third->consumer_arn != again->consumer_arn);
  CHECK(third->consumer_arn != d->consumer_arn);
  CHECK(ErrorName(stream->DescribeStreamConsumer(again->consumer_arn).status()) ==
        "ResourceNotFoundException");
  REQUIRE(stream->DeregisterStreamConsumer(third->consumer_arn).ok());

  Transcript t;
  auto unknown =
      stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest), t.Handler());
  CHECK(ErrorName(unknown.status()) == "ResourceNotFoundException");
  auto bad_shard = stream->SubscribeToShard(
      Req("c1", "shardId-000000000009", StartingPositionType::kLatest), t.Handler());
  CHECK(ErrorName(bad_shard.status()) == "ResourceNotFoundException");
}

TEST_CASE("a lossless consumer needs the kRejectPut overflow policy", "[efo][errors]") {
  ManualClock clock;
  auto stream = MakeStream(&clock);
  auto r = stream->RegisterStreamConsumer("pipeline", {.lossless = true});
  CHECK(ErrorName(r.status()) == "InvalidArgumentException");
  CHECK(ErrorMessage(r.status()).find("OverflowPolicy kRejectPut") != std::string::npos);
}

TEST_CASE("subscription options: a wait strategy out of range is refused, any lifetime works",
          "[efo][errors]") {
  ManualClock clock;
  auto stream = MakeStream(&clock);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  Transcript t;
  auto bad = stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest),
                                      t.Handler(), {.wait = static_cast<riffle::WaitStrategy>(9)});
  CHECK(ErrorName(bad.status()) == "InvalidArgumentException");
  CHECK(ErrorMessage(bad.status()) ==
        "Wait is 9; it must be WaitStrategy::kBusySpin, WaitStrategy::kYield or "
        "WaitStrategy::kBlock.");
  // A lifetime past the clock's range never ends (it does not wrap into the past).
  auto longest = stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest),
                                          t.Handler(), {.lifetime = absl::Hours(int64_t{1} << 45)});
  REQUIRE(longest.ok());
  REQUIRE(stream->PutRecord("k", "a").ok());
  clock.Advance(absl::Hours(1));
  CHECK((*longest)->Poll() == 1);
  CHECK(t.data == std::vector<std::string>{"a"});
  CHECK(t.end == SubscriptionEnd::kNone);
}

TEST_CASE("host-driven subscriptions deliver the same events on every run", "[efo]") {
  auto run = [] {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1, 64 << 10);
    REQUIRE(stream->RegisterStreamConsumer("audit").ok());
    Transcript t;
    auto sub = stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kTrimHorizon),
                                        t.Handler(), {.max_records_per_event = 7});
    REQUIRE(sub.ok());
    for (int round = 0; round < 50; ++round) {
      for (int i = 0; i < round % 13; ++i) {
        REQUIRE(stream->PutRecord(fmt::format("k{}", i % 3), fmt::format("r{}-{}", round, i)).ok());
        clock.Advance(absl::Milliseconds(3));
      }
      while ((*sub)->Poll()) {
      }
    }
    CHECK_FALSE((*sub)->Poll());  // idle: no event
    return t.lines;
  };
  const auto first = run();
  CHECK(first.size() > 50);
  // Stream tags differ per stream: compare everything but the numbers.
  auto strip = [](std::vector<std::string> lines) {
    for (auto& l : lines) {
      std::string out;
      for (std::size_t i = 0; i < l.size(); ++i) {
        if (l[i] == '4' && i + 56 <= l.size() &&
            std::all_of(l.begin() + i, l.begin() + i + 56,
                        [](char c) { return c >= '0' && c <= '9'; })) {
          out += fmt::format("#{}", l.substr(i + 18, 38));  // shard, position, index
          i += 55;
        } else {
          out += l[i];
        }
      }
      l = out;
    }
    return lines;
  };
  CHECK(strip(run()) == strip(first));
}

TEST_CASE("a subscription ends after its lifetime and resumes exactly from its continuation",
          "[efo]") {
  ManualClock clock;
  auto stream = MakeStream(&clock);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  Transcript t;
  auto sub =
      *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest), t.Handler());
  for (int i = 0; i < 3; ++i) REQUIRE(stream->PutRecord("k", fmt::format("a{}", i)).ok());
  CHECK(sub->Poll());
  CHECK(t.data == std::vector<std::string>{"a0", "a1", "a2"});
  clock.Advance(absl::Minutes(5) - absl::Milliseconds(1));
  CHECK_FALSE(sub->Poll());
  REQUIRE(stream->PutRecord("k", "b0").ok());
  clock.Advance(absl::Milliseconds(1));
  CHECK(sub->Poll());  // the end event, without the record put before it
  CHECK(t.end == SubscriptionEnd::kLifetimeExpired);
  CHECK(sub->done());
  CHECK_FALSE(sub->Poll());
  REQUIRE(stream->PutRecord("k", "b1").ok());

  // The end event's continuation is no record's number: AFTER_SEQUENCE_NUMBER (the KCL's
  // reconnect) skips nothing either.
  Transcript after;
  auto resumed = stream->SubscribeToShard(
      Req("audit", kShard0, StartingPositionType::kAfterSequenceNumber, t.continuation.ToString()),
      after.Handler());
  REQUIRE(resumed.ok());
  CHECK((*resumed)->Poll());
  CHECK(after.data == std::vector<std::string>{"b0", "b1"});
  clock.Advance(absl::Seconds(5));

  Transcript t2;
  auto again = stream->SubscribeToShard(
      Req("audit", kShard0, StartingPositionType::kAtSequenceNumber, t.continuation.ToString()),
      t2.Handler());
  REQUIRE(again.ok());
  CHECK((*again)->Poll());
  CHECK(t2.data == std::vector<std::string>{"b0", "b1"});

  // Continuation at the end of the log (nothing put yet) is valid too.
  clock.Advance(absl::Minutes(6));
  CHECK((*again)->Poll());
  CHECK(t2.end == SubscriptionEnd::kLifetimeExpired);
  Transcript t3;
  auto third = stream->SubscribeToShard(
      Req("audit", kShard0, StartingPositionType::kAtSequenceNumber, t2.continuation.ToString()),
      t3.Handler(), {.lifetime = absl::InfiniteDuration()});
  REQUIRE(third.ok());
  clock.Advance(absl::Hours(30 * 24));
  REQUIRE(stream->PutRecord("k", "c0").ok());
  CHECK((*third)->Poll());
  CHECK(t3.data == std::vector<std::string>{"c0"});
  CHECK(t3.end == SubscriptionEnd::kNone);
}

namespace {

// GetShardIterator of shard 0 AT_ and AFTER_SEQUENCE_NUMBER of `continuation`.
std::pair<riffle::ShardIterator, riffle::ShardIterator> IteratorsAtAndAfter(
    riffle::Stream& stream, const std::string& continuation) {
  auto at = stream.GetShardIterator(
      {kShard0, riffle::ShardIteratorType::kAtSequenceNumber, continuation, {}});
  auto after = stream.GetShardIterator(
      {kShard0, riffle::ShardIteratorType::kAfterSequenceNumber, continuation, {}});
  REQUIRE(at.ok());
  REQUIRE(after.ok());
  return {*at, *after};
}

// Subscribes "audit" to shard 0 AFTER_, then AT_SEQUENCE_NUMBER of `continuation` (each
// after the 5-second rule): both deliver `expected` in one event, nothing missed.
void ResubscribeAtAndAfter(riffle::Stream& stream, ManualClock& clock,
                           const std::string& continuation,
                           const std::vector<std::string>& expected) {
  for (StartingPositionType type :
       {StartingPositionType::kAfterSequenceNumber, StartingPositionType::kAtSequenceNumber}) {
    clock.Advance(absl::Seconds(6));
    Transcript again;
    auto resumed =
        stream.SubscribeToShard(Req("audit", kShard0, type, continuation), again.Handler());
    REQUIRE(resumed.ok());
    REQUIRE((*resumed)->Poll());
    CHECK(again.data == expected);
    CHECK(again.missed == 0);
  }
}

}  // namespace

TEST_CASE("a continuation resumes exactly with AT_ and AFTER_SEQUENCE_NUMBER, polled or pushed",
          "[efo]") {
  // The KCL resubscribes AFTER_SEQUENCE_NUMBER of the last continuation: nothing may be
  // skipped or repeated, whether the next record was put before or after the resumption.
  ManualClock clock;
  auto stream = MakeStream(&clock);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  REQUIRE(stream->PutRecord("k", "first").ok());
  Transcript t;
  auto sub = *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kTrimHorizon),
                                       t.Handler());
  REQUIRE(sub->Poll());
  REQUIRE(t.data == std::vector<std::string>{"first"});
  const std::string continuation = t.continuation.ToString();
  // No record has the continuation's number.
  auto records = stream->GetRecords(
      *stream->GetShardIterator({kShard0, riffle::ShardIteratorType::kTrimHorizon, {}, {}}));
  REQUIRE(records.ok());
  CHECK(records->records[0].sequence_number != t.continuation);
  // Polled: iterators taken before the next put read it once it comes.
  const auto [at, after] = IteratorsAtAndAfter(*stream, continuation);
  REQUIRE(stream->PutRecord("k", "second").ok());
  REQUIRE(stream->PutRecord("k", "third").ok());
  for (const riffle::ShardIterator& it : {at, after}) {
    auto r = stream->GetRecords(it);
    REQUIRE(r.ok());
    REQUIRE(r->records.size() == 2);
    CHECK(r->records[0].data == "second");
    CHECK(r->missed_records == 0);
  }
  // Pushed: after the 5-second rule, both types resume at "second".
  ResubscribeAtAndAfter(*stream, clock, continuation, {"second", "third"});
}

TEST_CASE(
    "a continuation taken at the log's end resumes after the padding put there since, "
    "however much",
    "[efo]") {
  // The next put crossed segment ends: two padding frames (crossing once), or three (a frame
  // over half a segment crossing twice) sit between the continuation and the record.
  // GetShardIterator refused such a continuation, and SubscribeToShard gave up after two.
  struct Case {
    int fillers;           // 48-byte frames before the continuation
    std::size_t big_data;  // the next record's data
  };
  for (const Case& c : {Case{16, 479}, Case{1, 975}, Case{16, 975}}) {
    INFO(c.fillers << " fillers, then " << c.big_data << " bytes");
    ManualClock clock;
    riffle::StreamOptions o;
    o.stream_name = "orders";
    o.shard_count = 1;
    o.ring_capacity_bytes = 4096;  // segments of 1 KiB
    o.max_record_size_bytes = 976;
    o.clock = &clock;
    auto stream = *Stream::Create(o);
    REQUIRE(stream->RegisterStreamConsumer("audit").ok());
    for (int i = 0; i < c.fillers; ++i) REQUIRE(stream->PutRecord("k", "first").ok());
    Transcript t;
    auto sub = *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kTrimHorizon),
                                         t.Handler());
    REQUIRE(sub->Poll());
    REQUIRE(t.data.size() == static_cast<std::size_t>(c.fillers));
    sub.reset();
    const std::string continuation = t.continuation.ToString();
    const std::string big(c.big_data, 'B');
    REQUIRE(stream->PutRecord("k", big).ok());
    const auto [at, after] = IteratorsAtAndAfter(*stream, continuation);
    for (const riffle::ShardIterator& it : {at, after}) {
      auto r = stream->GetRecords(it);
      REQUIRE(r.ok());
      REQUIRE(r->records.size() == 1);
      CHECK(r->records[0].data == big);
      CHECK(r->missed_records == 0);
    }
    ResubscribeAtAndAfter(*stream, clock, continuation, {big});
  }
}

TEST_CASE("an empty shard's continuation resumes at its first record, AT_ or AFTER_", "[efo]") {
  // A KCL worker whose subscription to a shard not written yet expires resubscribes
  // AFTER_SEQUENCE_NUMBER of the continuation: the first record may not be skipped.
  ManualClock clock;
  auto stream = MakeStream(&clock);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  Transcript t;
  auto sub =
      *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest), t.Handler());
  clock.Advance(absl::Minutes(5));
  REQUIRE(sub->Poll());
  REQUIRE(t.end == SubscriptionEnd::kLifetimeExpired);
  const std::string continuation = t.continuation.ToString();
  const auto [at, after] = IteratorsAtAndAfter(*stream, continuation);
  REQUIRE(stream->PutRecord("k", "first").ok());
  REQUIRE(stream->PutRecord("k", "second").ok());
  auto records = stream->GetRecords(at);
  REQUIRE(records.ok());
  REQUIRE(records->records.size() == 2);
  CHECK(records->records[0].sequence_number != t.continuation);
  CHECK(stream->GetRecords(after)->records.size() == 2);
  ResubscribeAtAndAfter(*stream, clock, continuation, {"first", "second"});
}

TEST_CASE("a consumer may subscribe to a shard once every 5 seconds; the newer replaces the older",
          "[efo][errors]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 2);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  REQUIRE(stream->RegisterStreamConsumer("other").ok());
  Transcript t1, t2, t3, t4;
  auto first =
      *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest), t1.Handler());
  clock.Advance(absl::Milliseconds(4999));
  auto second =
      stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest), t2.Handler());
  CHECK(ErrorName(second.status()) == "ResourceInUseException");
  CHECK_THAT(ErrorMessage(second.status()),
             Catch::StartsWith("Another active subscription exists for this consumer: "));
  // Another shard, or another consumer, is not affected.
  CHECK(stream
            ->SubscribeToShard(
                Req("audit", riffle::FormatShardId(1), StartingPositionType::kLatest), t3.Handler())
            .ok());
  CHECK(stream->SubscribeToShard(Req("other", kShard0, StartingPositionType::kLatest), t4.Handler())
            .ok());
  clock.Advance(absl::Milliseconds(1));
  second =
      stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest), t2.Handler());
  REQUIRE(second.ok());
  CHECK(first->Poll());
  CHECK(t1.end == SubscriptionEnd::kReplaced);
  REQUIRE(stream->PutRecord("k", "x").ok());
  // The shard of "k" decides which subscription sees it; at least one consumer of the two
  // does, and the replaced one never does.
  CHECK_FALSE(first->Poll());
  CHECK(t1.data.empty());
}

TEST_CASE("a lapped lossy subscriber is told exactly how many records it missed", "[efo]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1, 16 << 10);  // 4 segments of 4 KiB
  REQUIRE(stream->RegisterStreamConsumer("slow").ok());
  Transcript t;
  auto sub = *stream->SubscribeToShard(Req("slow", kShard0, StartingPositionType::kTrimHorizon),
                                       t.Handler(), {.max_records_per_event = 100});
  uint64_t put = 0;
  for (int round = 0; round < 20; ++round) {
    const int n = round % 2 == 0 ? 700 : 30;  // some rounds lap the reader
    for (int i = 0; i < n; ++i, ++put)
      REQUIRE(stream->PutRecord("k", fmt::format("{:06}", put)).ok());
    while (sub->Poll()) {
    }
  }
  CHECK(t.missed > 0);
  CHECK(t.data.size() + t.missed == put);
  // What it did get is in order and without gaps other than the counted ones.
  for (std::size_t i = 1; i < t.data.size(); ++i) CHECK(t.data[i - 1] < t.data[i]);
}

TEST_CASE("a lossless subscriber loses nothing and throttles the producer", "[efo]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1, 16 << 10, riffle::OverflowPolicy::kRejectPut);
  REQUIRE(stream->RegisterStreamConsumer("pipeline", {.lossless = true}).ok());
  Transcript t;
  auto sub = *stream->SubscribeToShard(Req("pipeline", kShard0, StartingPositionType::kTrimHorizon),
                                       t.Handler(), {.max_records_per_event = 50});
  uint64_t put = 0, rejected = 0;
  std::vector<std::string> expected;
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 300; ++i) {
      const std::string d = fmt::format("{:06}", put);
      auto r = stream->PutRecord("k", d);
      if (r.ok()) {
        expected.push_back(d);
        ++put;
      } else {
        CHECK(ErrorName(r.status()) == "ProvisionedThroughputExceededException");
        ++rejected;
      }
    }
    sub->Poll();  // reads at most 50 per round: the producer outruns it
  }
  while (sub->Poll()) {
  }
  CHECK(rejected > 0);
  CHECK(t.missed == 0);
  CHECK(t.data == expected);
}

TEST_CASE("PutRecordBlocking waits for a lossless subscriber's progress", "[efo][stress]") {
  auto stream = MakeStream(nullptr, 1, 16 << 10, riffle::OverflowPolicy::kRejectPut);
  REQUIRE(stream->RegisterStreamConsumer("pipeline", {.lossless = true}).ok());
  std::vector<std::string> got;  // written by the subscription's thread until Stop()
  std::atomic<int> count{0};
  auto sub = *stream->SubscribeToShard(
      Req("pipeline", kShard0, StartingPositionType::kTrimHorizon),
      [&](const SubscribeToShardEvent& e) {
        for (const auto& r : e.records) got.emplace_back(r.data);
        count.fetch_add(static_cast<int>(e.records.size()));
        std::this_thread::sleep_for(std::chrono::microseconds(50));  // a slow stage
      },
      {.wait = riffle::WaitStrategy::kBlock, .max_records_per_event = 20});
  REQUIRE(sub->Start().ok());
  const int n = 20000 / riffle_test::StressDivisor();
  int failures = 0;
  for (int i = 0; i < n; ++i) {
    if (!stream->PutRecordBlocking({"k", fmt::format("{:06}", i), {}, {}}).ok()) ++failures;
  }
  CHECK(failures == 0);
  for (int spins = 0; count.load() < n && spins < 100000; ++spins) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  sub->Stop();
  REQUIRE(got.size() == static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) REQUIRE(got[i] == fmt::format("{:06}", i));
  // Without a reader, a blocking put gives up at its timeout.
  riffle::ManualClock clock;
  auto s2 = MakeStream(&clock, 1, 16 << 10, riffle::OverflowPolicy::kRejectPut);
  REQUIRE(s2->RegisterStreamConsumer("stalled", {.lossless = true}).ok());
  absl::Status last;
  for (int i = 0; i < 1000 && last.ok(); ++i)
    last = s2->PutRecord("k", std::string(100, 'x')).status();
  // Then records as small as the blocked one, until they no longer fit either.
  last = absl::OkStatus();
  for (int i = 0; i < 1000 && last.ok(); ++i) last = s2->PutRecord("k", "y").status();
  REQUIRE(ErrorName(last) == "ProvisionedThroughputExceededException");
  // The clock moves until the blocked put gives up, whenever it took its deadline: the
  // test cannot depend on the put having started before a single move.
  std::atomic<bool> returned{false};
  std::thread mover([&] {
    while (!returned.load()) {
      clock.Advance(absl::Milliseconds(500));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto blocked = s2->PutRecordBlocking({"k", "y", {}, {}}, absl::Seconds(1));
  returned.store(true);
  mover.join();
  CHECK(ErrorName(blocked.status()) == "ProvisionedThroughputExceededException");
}

TEST_CASE("an idle blocked subscription sleeps, and wakes for a put and for Stop",
          "[efo][stress]") {
  auto stream = MakeStream(nullptr, 1);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  std::atomic<int> seen{0};
  auto sub = *stream->SubscribeToShard(
      Req("audit", kShard0, StartingPositionType::kLatest),
      [&](const SubscribeToShardEvent& e) { seen.fetch_add(static_cast<int>(e.records.size())); },
      {.wait = riffle::WaitStrategy::kBlock});
  REQUIRE(sub->Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(sub->wakeups() <= 2);  // no polling while idle
  REQUIRE(stream->PutRecord("k", "x").ok());
  for (int i = 0; i < 5000 && seen.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(seen.load() == 1);
  sub->Stop();
  CHECK(sub->done() == false);  // stopped, not ended
}

TEST_CASE("a blocked subscription ends at its lifetime when a ManualClock moves", "[efo][stress]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  std::atomic<int> ended{0};
  auto sub = *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest),
                                       [&](const SubscribeToShardEvent& e) {
                                         if (e.end == SubscriptionEnd::kLifetimeExpired)
                                           ended.fetch_add(1);
                                       },
                                       {.lifetime = absl::Seconds(10)});
  REQUIRE(sub->Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  clock.Advance(absl::Seconds(10));
  for (int i = 0; i < 5000 && !sub->done(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(sub->done());
  CHECK(ended.load() == 1);
}

namespace {

// A stream whose shard 0 holds r0..r4 and was split (children 1 and 2), with the consumer
// "audit" registered.
std::unique_ptr<Stream> ClosedParentOfFive(ManualClock& clock) {
  auto stream = MakeStream(&clock, 1);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  for (int i = 0; i < 5; ++i) REQUIRE(stream->PutRecord("k", fmt::format("r{}", i)).ok());
  REQUIRE(stream->SplitShard(kShard0, "170141183460469231731687303715884105728").ok());
  return stream;
}

}  // namespace

TEST_CASE(
    "a blocked subscription ends with the children when its shard is split, with no put after",
    "[efo][stress]") {
  auto stream = MakeStream(nullptr, 1);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  REQUIRE(stream->PutRecord("k", "before").ok());
  std::mutex mu;
  std::vector<std::string> children;
  std::atomic<int> records{0};
  auto sub = *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kTrimHorizon),
                                       [&](const SubscribeToShardEvent& e) {
                                         records.fetch_add(static_cast<int>(e.records.size()));
                                         std::lock_guard<std::mutex> lock(mu);
                                         for (const auto& c : e.child_shards)
                                           children.push_back(c.shard_id);
                                       },
                                       {.wait = riffle::WaitStrategy::kBlock});
  REQUIRE(sub->Start().ok());
  for (int i = 0; i < 5000 && records.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(records.load() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // asleep on the open shard
  REQUIRE(stream->SplitShard(kShard0, "170141183460469231731687303715884105728").ok());
  // The reshard itself wakes it: no record follows to do so.
  for (int i = 0; i < 5000 && !sub->done(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(sub->done());
  CHECK(sub->end_reason() == SubscriptionEnd::kShardEnded);
  std::lock_guard<std::mutex> lock(mu);
  CHECK(children == std::vector<std::string>{riffle::FormatShardId(1), riffle::FormatShardId(2)});
}

TEST_CASE("a closed shard that aged out past the lifetime still ends with its missed count",
          "[efo]") {
  ManualClock clock;
  auto stream = ClosedParentOfFive(clock);
  Transcript t;
  auto sub = *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kTrimHorizon),
                                       t.Handler());
  clock.Advance(absl::Hours(24) + absl::Minutes(1));  // past both the lifetime and retention
  while (sub->Poll() != 0) {
  }
  CHECK(t.end == SubscriptionEnd::kShardNotFound);
  CHECK(t.missed == 5);
}

TEST_CASE("a lossless consumer's gates on a reshard's children hold, whatever it keeps",
          "[efo][memory]") {
  // 64 shards: the consumer keeps 64 gates, enough for its table to be pruned while the
  // children of a reshard are gated and not yet published.
  auto stream = MakeStream(nullptr, 64, uint64_t{16} << 10, riffle::OverflowPolicy::kRejectPut);
  REQUIRE(stream->RegisterStreamConsumer("gated", {.lossless = true}).ok());
  REQUIRE(stream->SplitShard(kShard0, "2658455991569831745807614120560689152").ok());
  const std::string data(100, 'd');
  for (const char* child : {"shardId-000000000064", "shardId-000000000065"}) {
    INFO(child);
    auto shards = stream->ListShards();
    REQUIRE(shards.ok());
    std::string key;
    for (const riffle::Shard& s : *shards) {
      if (s.shard_id == child) key = riffle::FormatHashKey(s.hash_key_range.starting_hash_key);
    }
    REQUIRE_FALSE(key.empty());
    // Puts into the child until the unread lossless consumer holds them back.
    int accepted = 0;
    for (int i = 0; i < 1000; ++i) {
      riffle::PutRecordRequest put{.partition_key = "k", .data = data, .explicit_hash_key = key};
      if (!stream->PutRecord(put).ok()) break;
      ++accepted;
    }
    CHECK(accepted < 1000);
    // Everything accepted is there for the consumer, nothing overwritten.
    Transcript t;
    auto sub = *stream->SubscribeToShard(Req("gated", child, StartingPositionType::kTrimHorizon),
                                         t.Handler());
    while (sub->Poll() != 0) {
    }
    CHECK(t.missed == 0);
    CHECK(t.data.size() == static_cast<size_t>(accepted));
  }
}

TEST_CASE("Start and Stop from different threads, and Stop from the handler, are safe",
          "[efo][stress]") {
  auto stream = MakeStream(nullptr, 1);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  REQUIRE(stream->PutRecord("k", "x").ok());
  for (int round = 0; round < 100; ++round) {
    // A consumer per round: the same one could subscribe to the shard once every 5 seconds.
    const std::string name = fmt::format("c{}", round);
    REQUIRE(stream->RegisterStreamConsumer(name).ok());
    auto sub = *stream->SubscribeToShard(Req(name, kShard0, StartingPositionType::kTrimHorizon),
                                         [](const SubscribeToShardEvent&) {},
                                         {.wait = riffle::WaitStrategy::kBlock});
    std::thread starter([&] { (void)sub->Start(); });
    std::thread stopper([&] { sub->Stop(); });
    starter.join();
    stopper.join();
    sub->Stop();  // whatever the order was, the thread (if any) is joined
    CHECK_FALSE(sub->Start().ok());
    REQUIRE(stream->DeregisterStreamConsumer(name).ok());
  }
  // A handler that stops its own subscription: the thread ends once the handler returns.
  std::atomic<int> events{0};
  riffle::Subscription* self = nullptr;
  auto sub = *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kTrimHorizon),
                                       [&](const SubscribeToShardEvent&) {
                                         events.fetch_add(1);
                                         self->Stop();
                                       });
  self = sub.get();
  REQUIRE(sub->Start().ok());
  for (int i = 0; i < 5000 && events.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  sub->Stop();
  CHECK(events.load() == 1);
}

TEST_CASE(
    "a closed shard that ages out under a subscription counts its unread records as missed "
    "and names its children",
    "[efo]") {
  ManualClock clock;
  auto stream = ClosedParentOfFive(clock);
  clock.Advance(absl::Hours(24) - absl::Minutes(1));
  uint64_t missed = 0;
  size_t delivered = 0;
  std::vector<std::string> children;
  SubscriptionEnd end = SubscriptionEnd::kNone;
  riffle::SequenceNumber continuation;
  auto sub = *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kTrimHorizon),
                                       [&](const SubscribeToShardEvent& e) {
                                         missed += e.missed_records;
                                         delivered += e.records.size();
                                         for (const auto& c : e.child_shards)
                                           children.push_back(c.shard_id);
                                         end = e.end;
                                         continuation = e.continuation_sequence_number;
                                       });
  clock.Advance(absl::Minutes(2));  // the closed parent is now past retention
  while (sub->Poll() != 0) {
  }
  CHECK(sub->done());
  CHECK(end == SubscriptionEnd::kShardNotFound);
  CHECK(delivered + missed == 5);
  CHECK(missed == 5);
  CHECK(children == std::vector<std::string>{riffle::FormatShardId(1), riffle::FormatShardId(2)});
}

namespace {

// Per-key order and exactly-once for one reader: counters of each key must arrive as
// 0, 1, 2, ... with nothing missing or repeated.
struct KeyChecker {
  std::map<std::string, int64_t> next;
  uint64_t records = 0;
  uint64_t violations = 0;
  void See(std::string_view key, std::string_view data) {
    const int64_t c = std::stoll(std::string(data.substr(data.find(':') + 1)));
    int64_t& n = next[std::string(key)];
    if (c != n) ++violations;
    n = c + 1;
    ++records;
  }
};

}  // namespace

TEST_CASE("two fan-out consumers and a polling Consumer each see every record once, in key order",
          "[efo][stress]") {
  constexpr int kShards = 4;
  constexpr int kProducers = 2;
  constexpr int kKeys = 8;
  const int per_producer = 100000 / riffle_test::StressDivisor();
  // Rings large enough that nobody is lapped: the point is exactly-once, not loss.
  auto stream = MakeStream(nullptr, kShards, uint64_t{16} << 20);
  REQUIRE(stream->RegisterStreamConsumer("spin").ok());
  REQUIRE(stream->RegisterStreamConsumer("block").ok());

  KeyChecker checkers[2][kShards];  // one per subscription: each runs on its own thread
  std::atomic<uint64_t> missed{0};
  std::atomic<uint64_t> delivered[2] = {0, 0};
  std::vector<std::unique_ptr<riffle::Subscription>> subs;
  const char* names[2] = {"spin", "block"};
  // One yielding subscription: more would hog this 2-core machine's scheduler and the
  // test would measure it rather than riffle.
  auto wait_of = [](int c, int s) {
    return c == 0 && s == 0 ? riffle::WaitStrategy::kYield : riffle::WaitStrategy::kBlock;
  };
  for (int c = 0; c < 2; ++c) {
    for (int s = 0; s < kShards; ++s) {
      const std::string shard = riffle::FormatShardId(s);
      KeyChecker* checker = &checkers[c][s];
      std::atomic<uint64_t>* count = &delivered[c];
      auto sub =
          stream->SubscribeToShard(Req(names[c], shard, StartingPositionType::kTrimHorizon),
                                   [checker, count, &missed](const SubscribeToShardEvent& e) {
                                     missed.fetch_add(e.missed_records);
                                     for (const auto& r : e.records)
                                       checker->See(r.partition_key, r.data);
                                     count->fetch_add(e.records.size());
                                   },
                                   {.wait = wait_of(c, s), .max_records_per_event = 500});
      REQUIRE(sub.ok());
      REQUIRE((*sub)->Start().ok());
      subs.push_back(*std::move(sub));
    }
  }
  // The polling consumer: riffle::Consumer on its own thread, one worker (no hand-over,
  // so exactly once).
  struct Checking : riffle::RecordProcessor {
    KeyChecker* checker;
    std::atomic<uint64_t>* count;
    uint64_t* missed;
    void Initialize(std::string_view, std::string_view) override {}
    void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
      *missed += in.missed_records;
      for (const auto& r : in.records) checker->See(r.partition_key, r.data);
      count->fetch_add(in.records.size());
      (void)cp.Checkpoint();
    }
    void ShardEnded(riffle::Checkpointer& cp) override { (void)cp.Checkpoint(); }
  };
  KeyChecker poller;  // written by the consumer's thread until Stop()
  uint64_t poll_missed = 0;
  std::atomic<uint64_t> polled{0};
  riffle::InMemoryCheckpointStore store;
  auto polling = *riffle::Consumer::Create({.stream = stream.get(),
                                            .application_name = "poller",
                                            .checkpoint_store = &store,
                                            .max_records = 1000,
                                            .processor_factory = [&] {
                                              auto p = std::make_unique<Checking>();
                                              p->checker = &poller;
                                              p->count = &polled;
                                              p->missed = &poll_missed;
                                              return p;
                                            }});
  REQUIRE(polling->Start().ok());
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<int64_t> counters(kKeys, 0);
      for (int i = 0; i < per_producer; ++i) {
        const int k = i % kKeys;
        auto r = stream->PutRecord(fmt::format("p{}k{}", p, k), fmt::format("x:{}", counters[k]++));
        if (!r.ok()) FAIL_CHECK("put failed");
      }
    });
  }
  for (auto& t : producers) t.join();
  const uint64_t total = uint64_t{kProducers} * per_producer;
  // Wait for the subscription threads to drain, then join them (Stop) before reading.
  for (int i = 0; i < 20000 && (delivered[0].load() < total || delivered[1].load() < total ||
                                polled.load() < total);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& s : subs) s->Stop();
  polling->Stop();
  CHECK(missed.load() == 0);
  CHECK(poll_missed == 0);
  CHECK(poller.records == total);
  CHECK(poller.violations == 0);
  for (int c = 0; c < 2; ++c) {
    uint64_t seen = 0, violations = 0;
    for (int s = 0; s < kShards; ++s) {
      seen += checkers[c][s].records;
      violations += checkers[c][s].violations;
    }
    CHECK(seen == total);
    CHECK(violations == 0);
  }
}

TEST_CASE("a host-driven Poll allocates nothing in steady state, nor does a put with subscribers",
          "[efo][alloc]") {
  auto stream = MakeStream(nullptr, 1, 1 << 20);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  uint64_t seen = 0;
  auto sub =
      *stream->SubscribeToShard(Req("audit", kShard0, StartingPositionType::kLatest),
                                [&](const SubscribeToShardEvent& e) { seen += e.records.size(); });
  const std::string data(100, 'd');
  auto cycle = [&] {
    for (int i = 0; i < 1000; ++i) REQUIRE(stream->PutRecord("key", data).ok());
    while (sub->Poll()) {
    }
  };
  cycle();
  riffle_test::AllocationCounter counter;
  for (int round = 0; round < 20; ++round) cycle();
  CHECK(counter.allocations() == 0);
  CHECK(seen == 21000);
}
