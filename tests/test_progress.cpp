// Producers never wait for one another: a producer parked between its claim and its commit
// does not stop the others; readers resume as soon as it commits.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
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

ParkingLot claim_lot;    // between a claim and its commit (test_claim_hook)
ParkingLot publish_lot;  // after a commit whose predecessor is unpublished (test_publish_hook)

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
                                         uint64_t ring = uint64_t{1} << 20) {
  riffle::StreamOptions o;
  o.stream_name = "progress";
  o.shard_count = 1;
  o.ring_capacity_bytes = ring;
  o.max_record_size_bytes = 1024;
  o.single_producer = single_producer;
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

// A producer whose predecessor was unpublished when it committed is descheduled before
// its handshake; a helper publishes its frame and the ring laps it three times. When it
// runs again it must write nothing into the ring: a late store of its check word once
// landed on the frame now at that storage, which then never counted as committed (the
// shard's producers waited for it forever) and stopped every reader there.
TEST_CASE("a producer descheduled in its publication handshake writes nothing into a later lap",
          "[stream][progress]") {
  HookGuard<claim_lot> hook(riffle::detail::test_claim_hook);
  HookGuard<publish_lot> publish_hook(riffle::detail::test_publish_hook);
  auto stream = OneShard(false, uint64_t{16} << 10);  // 4 KiB segments of 64-byte frames
  const auto data = [](char c, int i) { return fmt::format("{}{:030}", c, i); };  // 31 bytes
  claim_lot.armed = true;
  std::atomic<bool> a_ok{false}, b_ok{false};
  std::thread a([&] { a_ok = stream->PutRecord("a", data('a', 0)).ok(); });
  while (!claim_lot.parked.load()) std::this_thread::yield();
  publish_lot.armed = true;
  std::thread b([&] { b_ok = stream->PutRecord("b", data('b', 0)).ok(); });
  while (!publish_lot.parked.load()) std::this_thread::yield();
  claim_lot.release = true;  // a commits and publishes b's frame too
  a.join();
  CHECK(a_ok.load());
  const riffle::GetShardIteratorRequest horizon{"shardId-000000000000",
                                                riffle::ShardIteratorType::kTrimHorizon};
  riffle::GetRecordsResult out;
  REQUIRE(stream->GetRecords(*stream->GetShardIterator(horizon), out).ok());
  REQUIRE(out.records.size() == 2);  // b's frame is readable before b returns
  // Three laps and a bit: the frame at b's storage is now a later record.
  constexpr int kPuts = 12 * 63 - 2 + 10;  // 63 records and one padding frame a segment
  for (int i = 0; i < kPuts; ++i) REQUIRE(stream->PutRecord("c", data('c', i)).ok());
  publish_lot.release = true;
  b.join();
  CHECK(b_ok.load());

  // Every retained record is readable up to the end of the log, in order.
  auto it = *stream->GetShardIterator(horizon);
  int next = -1;
  for (;;) {
    REQUIRE(stream->GetRecords(it, out).ok());
    for (const auto& r : out.records) {
      const int v = std::stoi(std::string(r.data.substr(1)));
      if (next >= 0) CHECK(v == next);
      next = v + 1;
    }
    it = *out.next_shard_iterator;
    if (out.records.empty()) break;
  }
  CHECK(next == kPuts);
  const auto latest =
      *stream->GetShardIterator({"shardId-000000000000", riffle::ShardIteratorType::kLatest});
  CHECK(it.position == latest.position);
  CHECK(it.next_record_index == latest.next_record_index);
  // And the producers are not stuck: a whole ring more goes in.
  for (int i = 0; i < 300; ++i) REQUIRE(stream->PutRecord("c", data('c', kPuts + i)).ok());
}

TEST_CASE("more producers than cores on one shard: every record once, in order per key",
          "[stream][progress][stress]") {
  auto stream = OneShard(false, uint64_t{32} << 20);  // retains the whole run
  const int producers = 8;
  const int per_producer = 20000 / riffle_test::StressDivisor();
  std::vector<std::thread> threads;
  std::atomic<int> failed_puts{0};
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) {
        if (!stream->PutRecord(fmt::format("p{}", p), fmt::format("{}", i)).ok()) ++failed_puts;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failed_puts.load() == 0);
  auto it = *stream->GetShardIterator(
      {"shardId-000000000000", riffle::ShardIteratorType::kTrimHorizon, {}, {}});
  std::vector<int> next(producers, 0);
  uint64_t total = 0, index = 0;
  riffle::GetRecordsResult out;
  for (;;) {
    REQUIRE(stream->GetRecords(it, out).ok());
    for (const auto& r : out.records) {
      const int p = std::stoi(std::string(r.partition_key.substr(1)));
      CHECK(std::stoi(std::string(r.data)) == next[p]++);
      CHECK(r.sequence_number.record_index == index++);
      ++total;
    }
    it = *out.next_shard_iterator;
    if (out.records.empty()) break;
  }
  CHECK(total == static_cast<uint64_t>(producers) * per_producer);
  CHECK(out.missed_records == 0);
}

TEST_CASE("single-producer mode keeps every promise with one producer thread",
          "[stream][progress]") {
  auto stream = OneShard(/*single_producer=*/true);
  auto it = *stream->GetShardIterator(
      {"shardId-000000000000", riffle::ShardIteratorType::kLatest, {}, {}});
  for (int i = 0; i < 50000; ++i) {
    REQUIRE(stream->PutRecord(fmt::format("k{}", i % 3), fmt::format("{}", i)).ok());
  }
  riffle::GetRecordsResult out;
  int expected = 0;
  uint64_t missed = 0;
  for (;;) {
    REQUIRE(stream->GetRecords(it, out).ok());
    missed += out.missed_records;
    for (const auto& r : out.records) {
      const int v = std::stoi(std::string(r.data));
      CHECK(v >= expected);
      expected = v + 1;
    }
    it = *out.next_shard_iterator;
    if (out.records.empty()) break;
  }
  CHECK(expected == 50000);
  CHECK(missed > 0);  // the 1 MiB ring trimmed the oldest records, and said so
  // Another thread after the first (not at the same time) may put too.
  bool later_ok = false;
  std::thread([&] { later_ok = stream->PutRecord("k", "later").ok(); }).join();
  CHECK(later_ok);
}
