// Producers never wait for one another: a producer parked between its claim and its commit
// does not stop the others; readers resume as soon as it commits.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"
#include "support/alloc_counter.h"

namespace {

// A parking lot at a producer hook: the first producer to reach the hook after `armed` is
// set waits there until `release` is set.
struct ParkingLot {
  std::atomic<bool> armed{false};
  std::atomic<bool> parked{false};
  std::atomic<bool> release{false};

  void ParkOnce() {
    bool expected = true;
    if (!armed.compare_exchange_strong(expected, false)) return;
    parked.store(true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
};

ParkingLot claim_lot;  // between a claim and its commit (test_claim_hook)

// Installs a hook that parks at `lot` for the guard's life.
template <ParkingLot& lot>
class HookGuard {
 public:
  explicit HookGuard(std::atomic<riffle::detail::ClaimHook>& hook) : hook_(hook) {
    lot.armed = false;
    lot.parked = false;
    lot.release = false;
    hook_.store([](const void*, uint64_t) { lot.ParkOnce(); });
  }
  ~HookGuard() { hook_.store(nullptr); }

 private:
  std::atomic<riffle::detail::ClaimHook>& hook_;
};

std::unique_ptr<riffle::Stream> OneShard(bool single_producer = false,
                                         uint64_t ring = uint64_t{1} << 20,
                                         riffle::Clock* clock = nullptr) {
  riffle::StreamOptions o;
  o.stream_name = "progress";
  o.shard_count = 1;
  o.ring_capacity_bytes = ring;
  o.max_record_size_bytes = 1024;
  o.single_producer = single_producer;
  if (clock != nullptr) o.clock = clock;
  return *riffle::Stream::Create(o);
}

}  // namespace

TEST_CASE("a producer parked between claim and commit does not stop the others",
          "[stream][progress]") {
  HookGuard<claim_lot> hook(riffle::detail::test_claim_hook);
  auto stream = OneShard();
  auto it = *stream->GetShardIterator(
      {"shardId-000000000000", riffle::ShardIteratorType::kTrimHorizon, {}, {}});
  claim_lot.armed = true;
  std::atomic<bool> first_ok{false};  // Catch2 assertions stay on the test's thread
  std::thread parked_producer([&] { first_ok = stream->PutRecord("a", "first").ok(); });
  while (!claim_lot.parked.load()) std::this_thread::yield();

  // 1,000 more puts from another thread complete while the first is parked.
  auto others = std::async(std::launch::async, [&] {
    for (int i = 0; i < 1000; ++i) {
      if (!stream->PutRecord(fmt::format("k{}", i % 8), fmt::format("{}", i)).ok()) return false;
    }
    return true;
  });
  REQUIRE(others.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  CHECK(others.get());

  // Readers stop at the first frame not yet committed: nothing is readable yet.
  riffle::GetRecordsResult out;
  REQUIRE(stream->GetRecords(it, out).ok());
  CHECK(out.records.empty());
  CHECK(out.missed_records == 0);
  it = *out.next_shard_iterator;

  // As soon as the parked producer commits, everything is readable, in put order.
  claim_lot.release = true;
  parked_producer.join();
  CHECK(first_ok.load());
  REQUIRE(stream->GetRecords(it, out).ok());
  REQUIRE(out.records.size() == 1001);
  CHECK(out.records[0].data == "first");
  for (std::size_t i = 1; i < out.records.size(); ++i) {
    CHECK(out.records[i].data == fmt::format("{}", i - 1));
    CHECK(out.records[i].sequence_number > out.records[i - 1].sequence_number);
    CHECK(out.records[i].sequence_number.record_index == i);  // dense indexes
    CHECK(out.records[i].approximate_arrival_timestamp >=
          out.records[i - 1].approximate_arrival_timestamp);
  }
}

TEST_CASE("a subscription waits for a parked producer and resumes when it commits",
          "[stream][progress]") {
  HookGuard<claim_lot> hook(riffle::detail::test_claim_hook);
  auto stream = OneShard();
  REQUIRE(stream->RegisterStreamConsumer("c").ok());
  std::atomic<int> seen{0};
  std::vector<std::string> order;
  std::mutex mu;
  auto sub = *stream->SubscribeToShard(
      {"c", "shardId-000000000000", {riffle::ShardIteratorType::kTrimHorizon}},
      [&](const riffle::SubscribeToShardEvent& e) {
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& r : e.records) order.emplace_back(r.data);
        seen.fetch_add(static_cast<int>(e.records.size()));
      },
      {.lifetime = absl::InfiniteDuration(), .wait = riffle::WaitStrategy::kBlock});
  REQUIRE(sub->Start().ok());
  claim_lot.armed = true;
  std::atomic<bool> first_ok{false};
  std::thread parked_producer([&] { first_ok = stream->PutRecord("a", "first").ok(); });
  while (!claim_lot.parked.load()) std::this_thread::yield();
  for (int i = 0; i < 100; ++i) REQUIRE(stream->PutRecord("b", fmt::format("{}", i)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(seen.load() == 0);  // waiting, not reading past the parked frame
  claim_lot.release = true;
  parked_producer.join();
  CHECK(first_ok.load());
  for (int i = 0; i < 5000 && seen.load() < 101; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  sub->Stop();
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(order.size() == 101);
  CHECK(order[0] == "first");
  CHECK(order[100] == "99");
}

// Readers find committed frames themselves, so the frames after a parked producer's are
// committed while its own is not. No way into the shard may skip the parked frame: a seek
// by time (whose segment skipping once looked only at segment starts), TRIM_HORIZON, and a
// reader already waiting there all see it once it commits. A sequence number handed out
// for a record after it is usable at once.
TEST_CASE("no reader skips a frame still being written", "[stream][progress]") {
  HookGuard<claim_lot> hook(riffle::detail::test_claim_hook);
  riffle::ManualClock clock;
  auto stream = OneShard(false, uint64_t{16} << 10, &clock);         // 4 KiB segments
  const auto data = [](int i) { return fmt::format("{:031}", i); };  // 64-byte frames
  const riffle::GetShardIteratorRequest horizon{"shardId-000000000000",
                                                riffle::ShardIteratorType::kTrimHorizon};
  auto waiting = *stream->GetShardIterator(horizon);
  claim_lot.armed = true;
  std::atomic<bool> parked_ok{false};
  std::thread parked_producer([&] { parked_ok = stream->PutRecord("p", "parked").ok(); });
  while (!claim_lot.parked.load()) std::this_thread::yield();

  // Two segments and more behind the parked frame, older than the last record.
  std::optional<riffle::SequenceNumber> after_parked;
  for (int i = 0; i < 150; ++i) {
    auto r = stream->PutRecord("k", data(i));
    REQUIRE(r.ok());
    if (i == 0) after_parked = r->sequence_number;
  }
  clock.Advance(absl::Milliseconds(5));
  REQUIRE(stream->PutRecord("k", data(150)).ok());
  const absl::Time late = clock.Now();

  // The parked record will carry the newest arrival time: a seek to `late` must find it.
  riffle::GetShardIteratorRequest at_late{"shardId-000000000000",
                                          riffle::ShardIteratorType::kAtTimestamp};
  at_late.timestamp = late;
  auto by_time = *stream->GetShardIterator(at_late);
  auto from_horizon = *stream->GetShardIterator(horizon);
  riffle::GetRecordsResult out;
  for (riffle::ShardIterator* it : {&waiting, &by_time, &from_horizon}) {
    REQUIRE(stream->GetRecords(*it, out).ok());
    CHECK(out.records.empty());
    *it = *out.next_shard_iterator;
  }
  // AFTER_SEQUENCE_NUMBER of a record behind the parked frame: valid now.
  riffle::GetShardIteratorRequest after{"shardId-000000000000",
                                        riffle::ShardIteratorType::kAfterSequenceNumber};
  const std::string after_text = after_parked->ToString();
  after.starting_sequence_number = after_text;
  auto it_after = stream->GetShardIterator(after);
  REQUIRE(it_after.ok());
  REQUIRE(stream->GetRecords(*it_after, out).ok());
  REQUIRE(out.records.size() == 150);
  CHECK(out.records.front().data == data(1));

  claim_lot.release = true;
  parked_producer.join();
  CHECK(parked_ok.load());
  for (riffle::ShardIterator* it : {&waiting, &by_time, &from_horizon}) {
    std::vector<std::string> seen;
    for (int round = 0; round < 10; ++round) {
      REQUIRE(stream->GetRecords(*it, out).ok());
      for (const auto& r : out.records) seen.emplace_back(r.data);
      *it = *out.next_shard_iterator;
      if (out.records.empty()) break;
    }
    REQUIRE(seen.size() == 152);
    CHECK(seen.front() == "parked");
    for (int i = 0; i <= 150; ++i) CHECK(seen[static_cast<std::size_t>(i) + 1] == data(i));
  }
}

// A number whose frame is still being written says nothing yet: GetShardIterator waits for
// the frame (it refused a shard's StartingSequenceNumber, or a continuation, while a put
// was in flight there).
TEST_CASE("GetShardIterator at a number whose put is in flight waits for its commit",
          "[stream][progress]") {
  HookGuard<claim_lot> hook(riffle::detail::test_claim_hook);
  auto stream = OneShard();
  const std::string start =
      stream->ListShards()->front().sequence_number_range.starting_sequence_number.ToString();
  claim_lot.armed = true;
  std::atomic<bool> put_ok{false};
  std::thread parked_producer([&] { put_ok = stream->PutRecord("a", "first").ok(); });
  while (!claim_lot.parked.load()) std::this_thread::yield();
  auto at = std::async(std::launch::async, [&] {
    return stream->GetShardIterator(
        {"shardId-000000000000", riffle::ShardIteratorType::kAtSequenceNumber, start, {}});
  });
  CHECK(at.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);
  claim_lot.release = true;
  parked_producer.join();
  CHECK(put_ok.load());
  auto it = at.get();
  REQUIRE(it.ok());
  auto records = stream->GetRecords(*it);
  REQUIRE(records.ok());
  REQUIRE(records->records.size() == 1);
  CHECK(records->records[0].data == "first");

  // A subscription's continuation, while the next record's put is in flight.
  REQUIRE(stream->RegisterStreamConsumer("c").ok());
  std::optional<riffle::SequenceNumber> continuation;
  auto sub = stream->SubscribeToShard(
      {"c", "shardId-000000000000", {riffle::ShardIteratorType::kTrimHorizon, {}, {}}},
      [&](const riffle::SubscribeToShardEvent& e) {
        continuation = e.continuation_sequence_number;
      });
  REQUIRE(sub.ok());
  REQUIRE((*sub)->Poll() == 1);
  REQUIRE(continuation.has_value());
  claim_lot.parked = false;
  claim_lot.release = false;
  claim_lot.armed = true;
  std::thread second([&] { put_ok = stream->PutRecord("a", "second").ok(); });
  while (!claim_lot.parked.load()) std::this_thread::yield();
  const std::string text = continuation->ToString();
  auto resume = [&](riffle::ShardIteratorType type) {
    return std::async(std::launch::async, [&stream, &text, type] {
      return stream->GetShardIterator({"shardId-000000000000", type, text, {}});
    });
  };
  auto at_next = resume(riffle::ShardIteratorType::kAtSequenceNumber);
  auto after_next = resume(riffle::ShardIteratorType::kAfterSequenceNumber);
  CHECK(at_next.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);
  claim_lot.release = true;
  second.join();
  for (auto* f : {&at_next, &after_next}) {
    auto next = f->get();
    REQUIRE(next.ok());
    auto read = stream->GetRecords(*next);
    REQUIRE(read.ok());
    REQUIRE(read->records.size() == 1);
    CHECK(read->records[0].data == "second");
  }
}

// A subscription that began while the shard's first put was in flight, and ended before it
// committed: its continuation is not that record's number (AFTER_SEQUENCE_NUMBER of it, the
// KCL's reconnect, skipped the record).
TEST_CASE("a continuation taken while the first put is in flight resumes at that record",
          "[stream][progress]") {
  HookGuard<claim_lot> hook(riffle::detail::test_claim_hook);
  riffle::ManualClock clock;
  auto stream = OneShard(false, uint64_t{1} << 20, &clock);
  REQUIRE(stream->RegisterStreamConsumer("c").ok());
  claim_lot.armed = true;
  std::atomic<bool> put_ok{false};
  std::thread parked_producer([&] { put_ok = stream->PutRecord("a", "first").ok(); });
  while (!claim_lot.parked.load()) std::this_thread::yield();
  std::optional<riffle::SubscribeToShardEvent> end;
  auto sub = stream->SubscribeToShard(
      {"c", "shardId-000000000000", {riffle::ShardIteratorType::kTrimHorizon, {}, {}}},
      [&](const riffle::SubscribeToShardEvent& e) {
        if (e.end != riffle::SubscriptionEnd::kNone) end = e;
      });
  REQUIRE(sub.ok());
  clock.Advance(absl::Minutes(5));
  REQUIRE((*sub)->Poll() == 1);
  REQUIRE(end.has_value());
  claim_lot.release = true;
  parked_producer.join();
  CHECK(put_ok.load());
  REQUIRE(stream->PutRecord("a", "second").ok());
  auto after = stream->GetShardIterator({"shardId-000000000000",
                                         riffle::ShardIteratorType::kAfterSequenceNumber,
                                         end->continuation_sequence_number.ToString(),
                                         {}});
  REQUIRE(after.ok());
  auto read = stream->GetRecords(*after);
  REQUIRE(read.ok());
  REQUIRE(read->records.size() == 2);
  CHECK(read->records[0].data == "first");
}
