#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "riffle/detail/frame.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

using riffle::ErrorMessage;
using riffle::ErrorName;
using riffle::ManualClock;
using riffle::ShardIteratorType;
using riffle::Stream;
using riffle::StreamOptions;

namespace {

std::unique_ptr<Stream> MakeStream(ManualClock& clock, int shards = 1,
                                   uint64_t ring = uint64_t{1} << 20,
                                   uint64_t max_record = 64 << 10) {
  StreamOptions o;
  o.stream_name = "orders";
  o.shard_count = shards;
  o.ring_capacity_bytes = ring;
  o.max_record_size_bytes = max_record;
  o.clock = &clock;
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  return *std::move(s);
}

riffle::ShardIterator Iter(Stream& s, std::string_view shard, ShardIteratorType type,
                           std::string_view seq = {}) {
  riffle::GetShardIteratorRequest r;
  r.shard_id = shard;
  r.type = type;
  r.starting_sequence_number = seq;
  auto it = s.GetShardIterator(r);
  REQUIRE(it.ok());
  return *it;
}

std::vector<std::string> ReadAll(Stream& s, riffle::ShardIterator it, uint64_t* missed = nullptr) {
  std::vector<std::string> out;
  riffle::GetRecordsResult r;
  for (;;) {
    REQUIRE(s.GetRecords(it, r).ok());
    if (missed) *missed += r.missed_records;
    for (const auto& rec : r.records) out.emplace_back(rec.data);
    if (r.records.empty() || !r.next_shard_iterator) break;
    it = *r.next_shard_iterator;
  }
  return out;
}

}  // namespace

TEST_CASE("a put is read back exactly, with key, number and arrival time", "[stream]") {
  ManualClock clock(absl::FromUnixMillis(1'700'000'000'123));
  auto s = MakeStream(clock);
  auto put = s->PutRecord("user-1", "hello");
  REQUIRE(put.ok());
  CHECK(put->shard_id == "shardId-000000000000");
  CHECK(put->sequence_number.ToString().size() == 56);
  auto r = s->GetRecords(Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon));
  REQUIRE(r.ok());
  REQUIRE(r->records.size() == 1);
  CHECK(r->records[0].partition_key == "user-1");
  CHECK(r->records[0].data == "hello");
  CHECK(r->records[0].sequence_number == put->sequence_number);
  CHECK(r->records[0].approximate_arrival_timestamp == absl::FromUnixMillis(1'700'000'000'123));
  CHECK(r->millis_behind_latest == 0);
  CHECK(r->missed_records == 0);
  REQUIRE(r->next_shard_iterator.has_value());
}

TEST_CASE("empty data and binary data round-trip", "[stream]") {
  ManualClock clock;
  auto s = MakeStream(clock);
  const std::string binary("\0\x01\xff\x00z", 5);
  REQUIRE(s->PutRecord("k", "").ok());
  REQUIRE(s->PutRecord("k", binary).ok());
  auto got = ReadAll(*s, Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon));
  REQUIRE(got.size() == 2);
  CHECK(got[0].empty());
  CHECK(got[1] == binary);
}

TEST_CASE("every key and data length up to a few words round-trips byte for byte", "[stream]") {
  // Key and data meet inside one ring word unless the key is a multiple of 8 bytes long:
  // every split of that word, and every short tail, is covered.
  ManualClock clock;
  auto s = MakeStream(clock, 1, uint64_t{4} << 20);
  std::vector<std::pair<std::string, std::string>> sent;
  for (std::size_t k = 1; k <= 26; ++k) {
    for (std::size_t d = 0; d <= 26; ++d) {
      std::string key, data;
      for (std::size_t i = 0; i < k; ++i) key.push_back(static_cast<char>('A' + (i * 7 + k) % 26));
      for (std::size_t i = 0; i < d; ++i) data.push_back(static_cast<char>(0x80 + i * 3 + k));
      REQUIRE(s->PutRecord(key, data).ok());
      sent.emplace_back(std::move(key), std::move(data));
    }
  }
  auto it = Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon);
  std::size_t n = 0;
  while (n < sent.size()) {
    auto r = s->GetRecords(it, 10000);
    REQUIRE(r.ok());
    REQUIRE(!r->records.empty());
    for (const auto& record : r->records) {
      REQUIRE(n < sent.size());
      CHECK(record.partition_key == sent[n].first);
      CHECK(record.data == sent[n].second);
      ++n;
    }
    it = *r->next_shard_iterator;
  }
  CHECK(n == sent.size());
}

TEST_CASE("a frame's key and data are gathered into ring words, the last word zero-padded",
          "[stream]") {
  unsigned char a[40], b[40];
  for (int i = 0; i < 40; ++i) {
    a[i] = static_cast<unsigned char>(0x10 + i);
    b[i] = static_cast<unsigned char>(0xa0 + i);
  }
  for (std::size_t na = 0; na <= 33; ++na) {
    for (std::size_t nb = 0; nb <= 33; ++nb) {
      uint64_t words[10];
      std::memset(words, 0xee, sizeof(words));  // stale bytes of an earlier lap
      riffle::detail::GatherToWords(words, a, na, b, nb);
      const auto* bytes = reinterpret_cast<const unsigned char*>(words);
      const std::size_t n = na + nb, padded = (n + 7) / 8 * 8;
      std::size_t bad = 0;
      for (std::size_t i = 0; i < sizeof(words); ++i) {
        const unsigned expected = i < na ? a[i] : i < n ? b[i - na] : i < padded ? 0 : 0xee;
        if (bytes[i] != expected) ++bad;
      }
      INFO("key bytes " << na << ", data bytes " << nb);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("sequence numbers increase within a shard and parse back", "[stream]") {
  ManualClock clock;
  auto s = MakeStream(clock);
  riffle::SequenceNumber prev{};
  for (int i = 0; i < 100; ++i) {
    auto put = s->PutRecord("k", std::string(static_cast<std::size_t>(i), 'x'));
    REQUIRE(put.ok());
    const std::string text = put->sequence_number.ToString();
    auto parsed = riffle::SequenceNumber::Parse(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == put->sequence_number);
    if (i > 0) {
      CHECK(put->sequence_number > prev);
      CHECK(text > prev.ToString());  // decimal order too
    }
    prev = put->sequence_number;
  }
}

TEST_CASE("records of one key keep their order across many puts and reads", "[stream]") {
  ManualClock clock;
  auto s = MakeStream(clock, 4);
  std::map<std::string, int> next;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "key-" + std::to_string(i % 37);
    REQUIRE(s->PutRecord(key, key + ":" + std::to_string(next[key]++)).ok());
  }
  std::map<std::string, int> seen;
  auto shards = s->ListShards();
  REQUIRE(shards.ok());
  REQUIRE(shards->size() == 4);
  riffle::GetRecordsResult r;
  int total = 0;
  for (const auto& shard : *shards) {
    auto it = Iter(*s, shard.shard_id, ShardIteratorType::kTrimHorizon);
    for (;;) {
      REQUIRE(s->GetRecords(it, r, 100).ok());
      for (const auto& rec : r.records) {
        const std::string key(rec.partition_key);
        CHECK(rec.data == key + ":" + std::to_string(seen[key]++));
        ++total;
      }
      if (r.records.empty()) break;
      it = *r.next_shard_iterator;
    }
  }
  CHECK(total == 2000);
  CHECK(seen == next);
}

TEST_CASE("GetRecords honours Limit and continues with the next iterator", "[stream]") {
  ManualClock clock;
  auto s = MakeStream(clock);
  for (int i = 0; i < 25; ++i) REQUIRE(s->PutRecord("k", std::to_string(i)).ok());
  auto it = Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon);
  auto r = s->GetRecords(it, 10);
  REQUIRE(r.ok());
  REQUIRE(r->records.size() == 10);
  CHECK(r->records[9].data == "9");
  CHECK(r->millis_behind_latest == 0);  // same millisecond as the newest record
  auto r2 = s->GetRecords(*r->next_shard_iterator, 10000);
  REQUIRE(r2.ok());
  REQUIRE(r2->records.size() == 15);
  CHECK(r2->records.front().data == "10");
  auto r3 = s->GetRecords(*r2->next_shard_iterator);
  REQUIRE(r3.ok());
  CHECK(r3->records.empty());
  CHECK(r3->next_shard_iterator.has_value());  // an open shard never ends
}

TEST_CASE("iterator types start where the service starts them", "[stream]") {
  ManualClock clock;
  auto s = MakeStream(clock);
  std::vector<riffle::SequenceNumber> seqs;
  for (int i = 0; i < 10; ++i) {
    clock.Advance(absl::Seconds(1));
    seqs.push_back(s->PutRecord("k", std::to_string(i))->sequence_number);
  }
  const std::string shard = "shardId-000000000000";
  auto latest = Iter(*s, shard, ShardIteratorType::kLatest);
  CHECK(s->GetRecords(latest)->records.empty());
  REQUIRE(s->PutRecord("k", "10").ok());
  auto after_latest = s->GetRecords(latest);
  REQUIRE(after_latest->records.size() == 1);
  CHECK(after_latest->records[0].data == "10");

  auto at = ReadAll(*s, Iter(*s, shard, ShardIteratorType::kAtSequenceNumber, seqs[4].ToString()));
  REQUIRE(at.size() == 7);
  CHECK(at.front() == "4");
  auto after =
      ReadAll(*s, Iter(*s, shard, ShardIteratorType::kAfterSequenceNumber, seqs[4].ToString()));
  REQUIRE(after.size() == 6);
  CHECK(after.front() == "5");

  riffle::GetShardIteratorRequest ts;
  ts.shard_id = shard;
  ts.type = ShardIteratorType::kAtTimestamp;
  ts.timestamp = absl::FromUnixMillis(clock.NowMillis()) - absl::Milliseconds(3500);
  auto at_time = ReadAll(*s, *s->GetShardIterator(ts));
  REQUIRE(at_time.size() == 5);  // put 3, 2, 1 and 0 seconds ago, and "10"
  CHECK(at_time.front() == "6");
  ts.timestamp = absl::FromUnixMillis(0);
  CHECK(ReadAll(*s, *s->GetShardIterator(ts)).size() == 11);  // before the horizon: TRIM_HORIZON
}

TEST_CASE("iterators expire after five minutes of clock time", "[stream][errors]") {
  ManualClock clock;
  auto s = MakeStream(clock);
  auto it = Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon);
  clock.Advance(absl::Minutes(5));
  CHECK(s->GetRecords(it).ok());
  clock.Advance(absl::Milliseconds(1));
  auto r = s->GetRecords(it);
  REQUIRE_FALSE(r.ok());
  CHECK(ErrorName(r.status()) == "ExpiredIteratorException");
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("records older than the retention period are gone and counted as missed", "[stream]") {
  ManualClock clock;
  auto s = MakeStream(clock);
  REQUIRE(s->PutRecord("k", "old").ok());
  clock.Advance(absl::Hours(23));
  REQUIRE(s->PutRecord("k", "new").ok());
  clock.Advance(absl::Minutes(59));
  auto it = Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon);
  clock.Advance(absl::Minutes(2));  // "old" is now 24 h 1 min old
  riffle::GetRecordsResult r;
  REQUIRE(s->GetRecords(it, r).ok());
  REQUIRE(r.records.size() == 1);
  CHECK(r.records[0].data == "new");
  CHECK(r.missed_records == 1);
  // A fresh TRIM_HORIZON starts after the expired record: nothing missed.
  REQUIRE(s->GetRecords(Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon), r).ok());
  REQUIRE(r.records.size() == 1);
  CHECK(r.missed_records == 0);
  // A call whose one frame had aged out returns no record, but is not caught up: "new" is
  // still to read, a minute and more behind (0 would tell a poller to sleep).
  REQUIRE(s->GetRecords(it, r, 1).ok());
  CHECK(r.records.empty());
  CHECK(r.missed_records == 1);
  CHECK(r.millis_behind_latest == absl::ToInt64Milliseconds(absl::Hours(23)));
  REQUIRE(s->GetRecords(*r.next_shard_iterator, r, 1).ok());
  REQUIRE(r.records.size() == 1);
  CHECK(r.records[0].data == "new");
  CHECK(r.millis_behind_latest == 0);
}

TEST_CASE(
    "a record near a segment's size pads one segment's end at most: the ring keeps what "
    "it holds",
    "[stream]") {
  // A frame just short of a segment, claimed again after crossing a segment's end, crossed
  // the next one too, and the next: one put padded laps of the ring, and every record on
  // it was lost.
  struct Case {
    uint64_t ring;
    uint64_t max_record;
    std::size_t small_data;
    int small_records;
  };
  for (const Case& c : {Case{4096, 976, 31, 20}, Case{16 << 10, 4000, 100, 30},
                        Case{4 << 20, 1048476, 1000, 200}}) {
    ManualClock clock;
    auto s = MakeStream(clock, 1, c.ring, c.max_record);
    auto it = Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon);
    for (int i = 0; i < c.small_records; ++i) {
      REQUIRE(s->PutRecord("k", std::string(c.small_data, 'a')).ok());
    }
    const std::string big(c.max_record - 1, 'B');  // with the key: the largest record
    REQUIRE(s->PutRecord("k", big).ok());
    riffle::GetRecordsResult r;
    REQUIRE(s->GetRecords(it, r, 10000).ok());
    INFO("ring " << c.ring << ", largest record " << c.max_record);
    CHECK(r.missed_records == 0);
    REQUIRE(r.records.size() == static_cast<std::size_t>(c.small_records) + 1);
    CHECK(r.records.back().data == big);
  }
}

TEST_CASE("a lapped reader is moved to the oldest retained record and told how many it missed",
          "[stream]") {
  ManualClock clock;
  auto s = MakeStream(clock, 1, 4096, 200);  // 4 segments of 1 KiB
  auto it = Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon);
  const int kPuts = 500;
  for (int i = 0; i < kPuts; ++i) {
    REQUIRE(s->PutRecord("k", fmt::format("{:08}", i)).ok());
  }
  uint64_t missed = 0;
  auto got = ReadAll(*s, it, &missed);
  REQUIRE_FALSE(got.empty());
  CHECK(got.size() + missed == kPuts);
  // What survived is the newest records, contiguous and in order.
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == fmt::format("{:08}", kPuts - got.size() + i));
  }
}

TEST_CASE("PutRecord and GetRecords into a reused result allocate nothing", "[stream][alloc]") {
  for (auto mode : {riffle::RoutingMode::kMd5, riffle::RoutingMode::kXxh3}) {
    riffle::StreamOptions o;
    o.stream_name = "alloc";
    o.shard_count = 4;
    o.ring_capacity_bytes = 1 << 20;
    o.max_record_size_bytes = 4096;
    o.routing = mode;
    auto stream = *riffle::Stream::Create(o);
    const std::string data(100, 'd');
    const std::string keys[4] = {"0123456789abcdef", "fedcba9876543210", "AAAAAAAAAAAAAAAA",
                                 "BBBBBBBBBBBBBBBB"};
    std::vector<riffle::ShardIterator> its;
    for (int s = 0; s < 4; ++s) {
      riffle::GetShardIteratorRequest r;
      std::string id = riffle::FormatShardId(s);
      r.shard_id = id;
      r.type = riffle::ShardIteratorType::kLatest;
      its.push_back(*stream->GetShardIterator(r));
    }
    riffle::GetRecordsResult result;
    auto cycle = [&] {
      for (int i = 0; i < 1000; ++i) REQUIRE(stream->PutRecord(keys[i % 4], data).ok());
      for (auto& it : its) {
        REQUIRE(stream->GetRecords(it, result).ok());
        it = *result.next_shard_iterator;
      }
    };
    cycle();  // warm up: the result grows to its working size, caches fill
    riffle_test::AllocationCounter counter;
    for (int round = 0; round < 20; ++round) cycle();  // wraps the 1 MiB rings several times
    CHECK(counter.allocations() == 0);
  }
}

TEST_CASE("a reader far behind never follows a length it reads out of overwritten data",
          "[stream]") {
  // Records whose data words all look like frame headers of 1000 bytes: a reader that is
  // lapped lands on such words, and must neither trust them nor read outside the ring.
  ManualClock clock;
  auto s = MakeStream(clock, 1, 4096, 200);  // segments of 1 KiB
  const uint64_t fake = riffle::detail::PackWord0(1000, 0, 0);
  std::string data;
  for (int i = 0; i < 20; ++i) data.append(reinterpret_cast<const char*>(&fake), 8);
  const std::string key = "kkkkkkkk";  // keeps the data 8-byte aligned in the frame
  std::vector<riffle::ShardIterator> stale;
  for (int i = 0; i < 40; ++i) {
    stale.push_back(Iter(*s, "shardId-000000000000", ShardIteratorType::kLatest));
    REQUIRE(s->PutRecord(key, data).ok());
  }
  for (int i = 0; i < 400; ++i) REQUIRE(s->PutRecord(key, data).ok());
  riffle::GetRecordsResult r;
  for (const auto& it : stale) {
    REQUIRE(s->GetRecords(it, r).ok());
    CHECK(r.missed_records > 0);
    for (const auto& rec : r.records) {
      CHECK(rec.partition_key == key);
      CHECK(rec.data == data);
    }
  }
}

TEST_CASE("GetRecordsResult keeps its storage private and cannot be copied into a dangling state",
          "[stream]") {
  static_assert(!std::is_copy_constructible_v<riffle::GetRecordsResult>);
  static_assert(!std::is_copy_assignable_v<riffle::GetRecordsResult>);
  static_assert(std::is_nothrow_move_constructible_v<riffle::GetRecordsResult>);
  riffle::StreamOptions o;
  o.stream_name = "moved";
  o.ring_capacity_bytes = 1 << 20;
  o.max_record_size_bytes = 1024;
  auto stream = *riffle::Stream::Create(o);
  REQUIRE(stream->PutRecord("k", "payload").ok());
  auto it = *stream->GetShardIterator(
      {"shardId-000000000000", riffle::ShardIteratorType::kTrimHorizon, {}, {}});
  riffle::GetRecordsResult first = *stream->GetRecords(it);
  riffle::GetRecordsResult moved = std::move(first);  // the views follow the storage
  REQUIRE(moved.records.size() == 1);
  CHECK(moved.records[0].data == "payload");
  CHECK(moved.records[0].partition_key == "k");
}

// Rings of dead logs are reused (src/stream/ring_cache.cc): the new log must never take
// what an earlier one left in the ring for frames of its own.
TEST_CASE("a stream created after another was deleted reads only its own records", "[stream]") {
  ManualClock clock;
  const uint64_t reused_before = riffle::detail::GetRingCacheStats().reused;
  const std::string old_data(100, 'o');
  const std::string new_data(100, 'n');
  for (int round = 0; round < 20; ++round) {
    auto s = MakeStream(clock, 1, uint64_t{32} << 10, 1024);
    CHECK(ReadAll(*s, Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon)).empty());
    REQUIRE(s->PutRecord("k", new_data).ok());
    const std::vector<std::string> got =
        ReadAll(*s, Iter(*s, "shardId-000000000000", ShardIteratorType::kTrimHorizon));
    REQUIRE(got.size() == 1);
    CHECK(got[0] == new_data);
    // Fill the ring for the next round's stream, without wrapping it.
    for (int i = 0; i < 100; ++i) REQUIRE(s->PutRecord("k", old_data).ok());
  }
  CHECK(riffle::detail::GetRingCacheStats().reused >= reused_before + 19);
}

TEST_CASE("a child shard on its expired parent's ring ignores the parent's frames", "[stream]") {
  // The parent and its grandchild belong to one stream, so they share the stream's secret:
  // the grandchild's log must still tell the parent's frames, at the very positions it
  // writes to, from its own (ShardLog::CheckNibble).
  ManualClock clock;
  auto s = MakeStream(clock, 1, uint64_t{32} << 10, 1024);
  const std::string data(100, 'p');
  for (int i = 0; i < 100; ++i) REQUIRE(s->PutRecord("k", data).ok());
  REQUIRE(s->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
  clock.Advance(absl::Hours(25));
  const riffle::StreamStats stats = s->Stats();
  REQUIRE(stats.closed_shards == 0);  // the parent expired, and its ring was given back
  REQUIRE(stats.live_shard_logs == 2);
  const uint64_t reused_before = riffle::detail::GetRingCacheStats().reused;
  REQUIRE(s->SplitShard("shardId-000000000001", "85070591730234615865843651857942052864").ok());
  CHECK(riffle::detail::GetRingCacheStats().reused > reused_before);
  const std::pair<const char*, const char*> children[] = {
      {"shardId-000000000003", "0"},
      {"shardId-000000000004", "85070591730234615865843651857942052864"}};
  for (const auto& [shard, hash_key] : children) {
    for (int i = 0; i < 5; ++i) {
      const std::string mine = fmt::format("{:c>100}", i);  // the parent's frame size
      auto put = s->PutRecord({"k", mine, hash_key, {}});
      REQUIRE(put.ok());
      REQUIRE(put->shard_id == shard);
      // The parent's records are older than the retention period: taken for the child's,
      // they would be skipped as aged out, and counted as missed.
      uint64_t missed = 0;
      const std::vector<std::string> got =
          ReadAll(*s, Iter(*s, shard, ShardIteratorType::kTrimHorizon), &missed);
      REQUIRE(got.size() == static_cast<std::size_t>(i + 1));
      CHECK(got.back() == mine);
      CHECK(missed == 0);
    }
  }
}
