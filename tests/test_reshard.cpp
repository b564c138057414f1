// Resharding: the service's layouts and lineage, validation, status, ListShards filters and
// reading closed shards to their end. Multi-threaded invariants are in the [stress] cases.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>

#include "fmt/format.h"
#include "riffle/lineage_reader.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

using riffle::ErrorMessage;
using riffle::ErrorName;
using riffle::FormatHashKey;
using riffle::ManualClock;
using riffle::ShardFilterType;
using riffle::Stream;
using riffle::StreamOptions;

namespace {

const std::string kMid = "85070591730234615865843651857942052864";    // 2^126
const std::string kHalf = "170141183460469231731687303715884105728";  // 2^127
const std::string kMax = "340282366920938463463374607431768211455";
const std::string kS0 = "shardId-000000000000", kS1 = "shardId-000000000001",
                  kS2 = "shardId-000000000002", kS3 = "shardId-000000000003",
                  kS4 = "shardId-000000000004";

std::unique_ptr<Stream> MakeStream(ManualClock& clock, int shards,
                                   absl::Duration reshard = absl::ZeroDuration(),
                                   int shard_limit = 500) {
  StreamOptions o;
  o.stream_name = "orders";
  o.shard_count = shards;
  o.ring_capacity_bytes = uint64_t{1} << 16;
  o.max_record_size_bytes = 1024;
  o.clock = &clock;
  o.reshard_duration = reshard;
  o.shard_limit = shard_limit;
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  return *std::move(s);
}

std::map<std::string, riffle::Shard> List(Stream& s, riffle::ListShardsRequest r = {}) {
  auto shards = s.ListShards(r);
  REQUIRE(shards.ok());
  std::map<std::string, riffle::Shard> out;
  for (auto& sh : *shards) out.emplace(sh.shard_id, sh);
  return out;
}

std::vector<std::string> Ids(Stream& s, riffle::ListShardsRequest r) {
  std::vector<std::string> out;
  for (auto& [id, sh] : List(s, r)) out.push_back(id);
  return out;
}

std::string Range(const riffle::Shard& s) {
  return FormatHashKey(s.hash_key_range.starting_hash_key) + ".." +
         FormatHashKey(s.hash_key_range.ending_hash_key);
}

// The open shards' ranges in hash key order (ListShards lists by shard id).
std::vector<riffle::HashKeyRange> OpenRanges(Stream& s) {
  auto open = s.ListShards({ShardFilterType::kAtLatest, {}, {}});
  REQUIRE(open.ok());
  std::vector<riffle::HashKeyRange> out;
  for (const auto& sh : *open) out.push_back(sh.hash_key_range);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.starting_hash_key < b.starting_hash_key; });
  return out;
}

std::string Opt(const std::optional<std::string>& s) { return s.value_or("-"); }

absl::StatusOr<riffle::PutRecordResult> PutAt(Stream& s, const std::string& hash_key,
                                              std::string_view data) {
  return s.PutRecord(riffle::PutRecordRequest{"k", data, hash_key, {}});
}

std::vector<std::string> ReadToEnd(Stream& s, const std::string& shard,
                                   riffle::GetRecordsResult* last) {
  riffle::GetShardIteratorRequest r;
  r.shard_id = shard;
  auto it = s.GetShardIterator(r);
  REQUIRE(it.ok());
  std::vector<std::string> out;
  for (int i = 0; i < 100; ++i) {
    REQUIRE(s.GetRecords(*it, *last).ok());
    for (const auto& rec : last->records) out.emplace_back(rec.data);
    if (!last->next_shard_iterator || last->records.empty()) break;
    it = *last->next_shard_iterator;
  }
  return out;
}

}  // namespace

TEST_CASE("golden: split shard 0 of 2 at its midpoint, then merge shard 3 with shard 1",
          "[reshard]") {
  ManualClock clock;
  auto s = MakeStream(clock, 2);
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  auto shards = List(*s);
  REQUIRE(shards.size() == 4);
  CHECK(Range(shards[kS0]) == "0..170141183460469231731687303715884105727");
  CHECK(Range(shards[kS1]) == kHalf + ".." + kMax);
  CHECK(Range(shards[kS2]) == "0..85070591730234615865843651857942052863");
  CHECK(Range(shards[kS3]) == kMid + "..170141183460469231731687303715884105727");
  CHECK(Opt(shards[kS2].parent_shard_id) == kS0);
  CHECK(Opt(shards[kS3].parent_shard_id) == kS0);
  CHECK(!shards[kS2].adjacent_parent_shard_id);
  CHECK(!shards[kS3].adjacent_parent_shard_id);
  CHECK(shards[kS0].sequence_number_range.ending_sequence_number.has_value());
  CHECK(!shards[kS1].sequence_number_range.ending_sequence_number);
  CHECK(!shards[kS0].parent_shard_id);

  REQUIRE(s->MergeShards(kS3, kS1).ok());
  shards = List(*s);
  REQUIRE(shards.size() == 5);
  CHECK(Range(shards[kS4]) == kMid + ".." + kMax);
  CHECK(Opt(shards[kS4].parent_shard_id) == kS3);
  CHECK(Opt(shards[kS4].adjacent_parent_shard_id) == kS1);
  for (const auto& id : {kS0, kS1, kS3}) {
    INFO(id);
    CHECK(shards[id].sequence_number_range.ending_sequence_number.has_value());
  }
  for (const auto& id : {kS2, kS4}) {
    INFO(id);
    CHECK(!shards[id].sequence_number_range.ending_sequence_number);
  }
  CHECK(Ids(*s, {ShardFilterType::kAtLatest, {}, {}}) == std::vector<std::string>{kS2, kS4});
  CHECK(s->DescribeStreamSummary().open_shard_count == 2);
}

TEST_CASE("a split parent is read to its end, then its children; numbers keep growing",
          "[reshard]") {
  ManualClock clock;
  auto s = MakeStream(clock, 2);
  auto before = PutAt(*s, "5", "before");
  REQUIRE(before.ok());
  CHECK(before->shard_id == kS0);
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  auto low = PutAt(*s, "5", "low");
  auto high = PutAt(*s, kMid, "high");
  REQUIRE(low.ok());
  REQUIRE(high.ok());
  CHECK(low->shard_id == kS2);
  CHECK(high->shard_id == kS3);
  CHECK(low->sequence_number > before->sequence_number);
  CHECK(high->sequence_number > low->sequence_number);

  riffle::GetRecordsResult last;
  CHECK(ReadToEnd(*s, kS0, &last) == std::vector<std::string>{"before"});
  CHECK(!last.next_shard_iterator);
  REQUIRE(last.child_shards.size() == 2);
  CHECK(last.child_shards[0].shard_id == kS2);
  CHECK(last.child_shards[0].parent_shards == std::vector<std::string>{kS0});
  CHECK(FormatHashKey(last.child_shards[0].hash_key_range.ending_hash_key) ==
        "85070591730234615865843651857942052863");
  CHECK(last.child_shards[1].shard_id == kS3);
  CHECK(FormatHashKey(last.child_shards[1].hash_key_range.starting_hash_key) == kMid);
  // The parent's EndingSequenceNumber is its last record.
  CHECK(List(*s)[kS0].sequence_number_range.ending_sequence_number == before->sequence_number);
  CHECK(ReadToEnd(*s, kS2, &last) == std::vector<std::string>{"low"});
  CHECK(last.next_shard_iterator.has_value());

  // After a merge, both parents name the child, which names both parents.
  REQUIRE(s->MergeShards(kS3, kS1).ok());
  CHECK(ReadToEnd(*s, kS1, &last).empty());
  CHECK(!last.next_shard_iterator);
  REQUIRE(last.child_shards.size() == 1);
  CHECK(last.child_shards[0].shard_id == kS4);
  CHECK(last.child_shards[0].parent_shards == std::vector<std::string>{kS3, kS1});
  CHECK(ReadToEnd(*s, kS3, &last) == std::vector<std::string>{"high"});
  CHECK(last.child_shards.size() == 1);
  // An empty closed shard ends at its start.
  auto s1 = List(*s)[kS1];
  CHECK(s1.sequence_number_range.ending_sequence_number ==
        s1.sequence_number_range.starting_sequence_number);
}

TEST_CASE("SplitShard and MergeShards validate like the service", "[reshard][errors]") {
  ManualClock clock;
  auto s = MakeStream(clock, 2);
  auto split = s->SplitShard("shardId-000000000009", kMid);
  CHECK(ErrorName(split) == "ResourceNotFoundException");
  CHECK(ErrorMessage(split) ==
        "Could not find shard shardId-000000000009 in stream orders under account 000000000000.");
  CHECK(ErrorName(s->SplitShard("nonsense", kMid)) == "ResourceNotFoundException");

  split = s->SplitShard(kS0, "1");  // StartingHashKey + 1
  CHECK(ErrorName(split) == "InvalidArgumentException");
  CHECK(ErrorMessage(split) ==
        "NewStartingHashKey 1 used in SplitShard() on shard shardId-000000000000 in stream "
        "orders under account 000000000000 is not both greater than one plus the shard's "
        "StartingHashKey 0 and less than the shard's EndingHashKey "
        "170141183460469231731687303715884105727.");
  CHECK(ErrorName(s->SplitShard(kS0, "170141183460469231731687303715884105727")) ==
        "InvalidArgumentException");                                         // EndingHashKey
  CHECK(ErrorName(s->SplitShard(kS1, kMid)) == "InvalidArgumentException");  // below the range
  split = s->SplitShard(kS0, "12x");
  CHECK(ErrorName(split) == "ValidationException");
  CHECK(ErrorMessage(split) ==
        "1 validation error detected: Value '12x' at 'newStartingHashKey' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})");
  CHECK(List(*s).size() == 2);  // nothing changed

  REQUIRE(s->SplitShard(kS0, "2").ok());  // the smallest key allowed
  auto shards = List(*s);
  CHECK(Range(shards[kS2]) == "0..1");
  split = s->SplitShard(kS0, kMid);
  CHECK(ErrorName(split) == "InvalidArgumentException");
  CHECK(ErrorMessage(split) ==
        "Shard shardId-000000000000 in stream orders under account 000000000000 has already "
        "been merged or split, and thus is not eligible for merging or splitting.");
  // A shard with a two-key range cannot be split at all.
  CHECK(ErrorName(s->SplitShard(kS2, "1")) == "InvalidArgumentException");

  auto merge = s->MergeShards(kS2, kS1);
  CHECK(ErrorName(merge) == "InvalidArgumentException");
  CHECK(ErrorMessage(merge) ==
        "Shards shardId-000000000002 and shardId-000000000001 in stream orders under account "
        "000000000000 are not an adjacent pair of shards eligible for merging");
  CHECK(ErrorName(s->MergeShards(kS2, kS2)) == "InvalidArgumentException");
  CHECK(ErrorName(s->MergeShards(kS0, kS1)) == "InvalidArgumentException");  // kS0 closed
  CHECK(ErrorName(s->MergeShards(kS3, "shardId-000000000042")) == "ResourceNotFoundException");
  // ShardToMerge is the lower of an adjacent pair: the other order is refused as a pair that
  // does not touch (as the service answers it).
  auto inverted = s->MergeShards(kS1, kS3);
  CHECK(ErrorName(inverted) == "InvalidArgumentException");
  CHECK(ErrorMessage(inverted) ==
        "Shards shardId-000000000001 and shardId-000000000003 in stream orders under account "
        "000000000000 are not an adjacent pair of shards eligible for merging");
  REQUIRE(s->MergeShards(kS3, kS1).ok());
  shards = List(*s);
  CHECK(Opt(shards[kS4].parent_shard_id) == kS3);
  CHECK(Opt(shards[kS4].adjacent_parent_shard_id) == kS1);
  CHECK(Range(shards[kS4]) == "2.." + kMax);
}

TEST_CASE("the shard limit counts open shards", "[reshard][errors]") {
  ManualClock clock;
  auto s = MakeStream(clock, 2, absl::ZeroDuration(), /*shard_limit=*/3);
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  auto split = s->SplitShard(kS1, "200000000000000000000000000000000000000");
  CHECK(ErrorName(split) == "LimitExceededException");
  CHECK(ErrorMessage(split) ==
        "SplitShard would raise the open shard count of stream orders from 3 to 4, above its "
        "ShardLimit of 3.");
  REQUIRE(s->MergeShards(kS3, kS1).ok());  // 2 open, 5 in all
  CHECK(s->SplitShard(kS4, kHalf).ok());
  auto update = s->UpdateShardCount(4);
  CHECK(ErrorName(update.status()) == "LimitExceededException");
  CHECK(ErrorMessage(update.status()) ==
        "Target shard count or number of open shards cannot be greater than 3. Current open "
        "shard count: 3, Target shard count: 4");
}

TEST_CASE("status goes UPDATING for the emulated duration; a second reshard waits", "[reshard]") {
  ManualClock clock(absl::FromUnixSeconds(1'700'000'000));
  auto s = MakeStream(clock, 2, absl::Seconds(30));
  CHECK(s->DescribeStreamSummary().stream_status == riffle::StreamStatus::kActive);
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  CHECK(s->DescribeStreamSummary().stream_status == riffle::StreamStatus::kUpdating);
  // The new layout is in effect at once: reads and writes go on while UPDATING.
  auto put = PutAt(*s, "7", "x");
  REQUIRE(put.ok());
  CHECK(put->shard_id == kS2);
  auto again = s->MergeShards(kS3, kS1);
  CHECK(ErrorName(again) == "ResourceInUseException");
  CHECK(ErrorMessage(again) ==
        "Stream orders under account 000000000000 not ACTIVE, instead in state UPDATING");
  CHECK(ErrorName(s->UpdateShardCount(4).status()) == "ResourceInUseException");
  clock.Advance(absl::Seconds(29));
  CHECK(s->DescribeStreamSummary().stream_status == riffle::StreamStatus::kUpdating);
  clock.Advance(absl::Seconds(1));
  CHECK(s->DescribeStreamSummary().stream_status == riffle::StreamStatus::kActive);
  CHECK(s->MergeShards(kS3, kS1).ok());
}

TEST_CASE("the longest reshard_duration, 365 days, ends on time", "[reshard]") {
  // Durations past it are refused at Create (test_stream_errors.cpp): an infinite one
  // overflowed the UPDATING deadline here.
  ManualClock clock(absl::FromUnixSeconds(1'700'000'000));
  auto s = MakeStream(clock, 2, absl::Hours(24 * 365));
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  clock.Advance(absl::Hours(24 * 365) - absl::Milliseconds(1));
  CHECK(s->DescribeStreamSummary().stream_status == riffle::StreamStatus::kUpdating);
  CHECK(ErrorName(s->MergeShards(kS3, kS1)) == "ResourceInUseException");
  clock.Advance(absl::Milliseconds(1));
  CHECK(s->DescribeStreamSummary().stream_status == riffle::StreamStatus::kActive);
  CHECK(s->MergeShards(kS3, kS1).ok());
  // From the ManualClock's last instant (about 2262) the deadline stays in range too.
  clock.Set(absl::InfiniteFuture());
  REQUIRE(s->UpdateShardCount(4).ok());
  CHECK(s->DescribeStreamSummary().stream_status == riffle::StreamStatus::kUpdating);
}

TEST_CASE("UpdateShardCount reaches the uniform layout through splits and merges", "[reshard]") {
  // Total shard counts after the call, as the service reports them for these cases.
  struct Case {
    int from, to, total;
  };
  for (const Case c :
       {Case{2, 4, 6}, Case{4, 5, 15}, Case{4, 2, 6}, Case{1, 2, 3}, Case{3, 3, 3}}) {
    INFO(fmt::format("{} -> {}", c.from, c.to));
    ManualClock clock;
    auto s = MakeStream(clock, c.from);
    auto r = s->UpdateShardCount(c.to);
    REQUIRE(r.ok());
    CHECK(r->stream_name == "orders");
    CHECK(r->current_shard_count == c.from);
    CHECK(r->target_shard_count == c.to);
    CHECK(OpenRanges(*s) == riffle::UniformHashKeyRanges(c.to));
    CHECK(List(*s).size() == static_cast<std::size_t>(c.total));
  }
}

TEST_CASE("UpdateShardCount from an uneven layout, and its bounds", "[reshard][errors]") {
  ManualClock clock;
  auto s = MakeStream(clock, 3);
  REQUIRE(s->SplitShard(kS1, "150000000000000000000000000000000000000").ok());  // 4 open
  auto r = s->UpdateShardCount(7);
  REQUIRE(r.ok());
  CHECK(r->current_shard_count == 4);
  CHECK(OpenRanges(*s) == riffle::UniformHashKeyRanges(7));
  // Every shard but the open ones is closed, and every child's parents are listed.
  auto all = List(*s);
  for (const auto& [id, sh] : all) {
    for (const auto& p : {sh.parent_shard_id, sh.adjacent_parent_shard_id}) {
      if (p) CHECK(all.count(*p) == 1);
    }
  }

  // The service's scaling bounds are LimitExceededException; a count below 1 breaks the
  // member's constraint.
  auto up = s->UpdateShardCount(15);
  CHECK(ErrorName(up.status()) == "LimitExceededException");
  CHECK(ErrorMessage(up.status()) ==
        "UpdateShardCount cannot scale up over double your current open shard count. Current "
        "open shard count: 7, Target shard count: 15");
  auto down = s->UpdateShardCount(3);
  CHECK(ErrorName(down.status()) == "LimitExceededException");
  CHECK(ErrorMessage(down.status()) ==
        "UpdateShardCount cannot scale down below half your current open shard count. Current "
        "open shard count: 7, Target shard count: 3");
  CHECK(ErrorName(s->UpdateShardCount(0).status()) == "ValidationException");
  // A ScalingType outside the enum was ignored.
  auto scaling = s->UpdateShardCount(4, static_cast<riffle::ScalingType>(9));
  CHECK(ErrorName(scaling.status()) == "ValidationException");
  CHECK(ErrorMessage(scaling.status()) ==
        "1 validation error detected: Value '9' at 'scalingType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [UNIFORM_SCALING]");
  CHECK(s->DescribeStreamSummary().open_shard_count == 7);
  REQUIRE(s->UpdateShardCount(4).ok());
  CHECK(s->DescribeStreamSummary().open_shard_count == 4);
}

TEST_CASE("ListShards filters follow the service across reshards and expiry", "[reshard]") {
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  ManualClock clock(t0);
  auto s = MakeStream(clock, 2);
  clock.Advance(absl::Hours(1));
  const absl::Time t1 = clock.Now();
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  clock.Advance(absl::Hours(1));
  const absl::Time t2 = clock.Now();
  REQUIRE(s->MergeShards(kS3, kS1).ok());
  using V = std::vector<std::string>;
  const V everything{kS0, kS1, kS2, kS3, kS4};
  CHECK(Ids(*s, {}) == everything);
  CHECK(Ids(*s, {ShardFilterType::kFromTrimHorizon, {}, {}}) == everything);
  CHECK(Ids(*s, {ShardFilterType::kAtTrimHorizon, {}, {}}) == V{kS0, kS1});
  CHECK(Ids(*s, {ShardFilterType::kAtLatest, {}, {}}) == V{kS2, kS4});
  CHECK(Ids(*s, {ShardFilterType::kAfterShardId, kS2, {}}) == V{kS3, kS4});
  CHECK(Ids(*s, {ShardFilterType::kAtTimestamp, {}, t0}) == V{kS0, kS1});
  CHECK(Ids(*s, {ShardFilterType::kAtTimestamp, {}, t0 - absl::Hours(5)}) == V{kS0, kS1});
  // At the instant of a reshard both the parent and its children are open.
  CHECK(Ids(*s, {ShardFilterType::kAtTimestamp, {}, t1}) == V{kS0, kS1, kS2, kS3});
  CHECK(Ids(*s, {ShardFilterType::kAtTimestamp, {}, t1 + absl::Minutes(1)}) == V{kS1, kS2, kS3});
  CHECK(Ids(*s, {ShardFilterType::kAtTimestamp, {}, t2 + absl::Minutes(1)}) == V{kS2, kS4});
  CHECK(Ids(*s, {ShardFilterType::kFromTimestamp, {}, t1 + absl::Minutes(1)}) ==
        V{kS1, kS2, kS3, kS4});
  CHECK(ErrorName(s->ListShards({ShardFilterType::kAtTimestamp, {}, {}}).status()) ==
        "InvalidArgumentException");
  // A filter type outside the enum listed as if there were no filter.
  auto bad = s->ListShards({static_cast<ShardFilterType>(99), {}, {}});
  CHECK(ErrorName(bad.status()) == "ValidationException");
  CHECK(ErrorMessage(bad.status()) ==
        "1 validation error detected: Value '99' at 'shardFilter.type' failed to satisfy "
        "constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, "
        "FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]");

  // A closed shard expires one retention period after it closed.
  clock.Set(t1 + absl::Hours(24));
  CHECK(Ids(*s, {}) == everything);
  clock.Advance(absl::Milliseconds(1));
  CHECK(Ids(*s, {}) == V{kS1, kS2, kS3, kS4});
  CHECK(Ids(*s, {ShardFilterType::kAtTrimHorizon, {}, {}}) == V{kS1, kS2, kS3});
  riffle::GetShardIteratorRequest r;
  r.shard_id = kS0;
  CHECK(ErrorName(s->GetShardIterator(r).status()) == "ResourceNotFoundException");
  CHECK(ErrorName(s->SplitShard(kS0, kMid)) == "ResourceNotFoundException");
  clock.Set(t2 + absl::Hours(24) + absl::Milliseconds(1));
  CHECK(Ids(*s, {}) == V{kS2, kS4});
}

TEST_CASE("a lineage reader keeps per-key order through many reshards", "[reshard]") {
  ManualClock clock;
  auto s = MakeStream(clock, 2);
  std::map<std::string, int> next;
  int put = 0;
  auto put_some = [&] {
    for (int k = 0; k < 16; ++k) {
      const std::string key = fmt::format("key-{}", k);
      REQUIRE(s->PutRecord(key, std::to_string(next[key]++)).ok());
      ++put;
    }
  };
  put_some();
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  put_some();
  REQUIRE(s->MergeShards(kS3, kS1).ok());
  put_some();
  REQUIRE(s->UpdateShardCount(3).ok());
  put_some();
  REQUIRE(s->UpdateShardCount(5).ok());
  put_some();
  REQUIRE(s->UpdateShardCount(3).ok());
  put_some();

  riffle::LineageReader reader(*s);
  std::map<std::string, int> seen;
  int read = 0, out_of_order = 0, misrouted = 0;
  for (;;) {
    auto progress = reader.Poll([&](const auto& shard, const riffle::Record& r) {
      const std::string key(r.partition_key);
      if (std::stoi(std::string(r.data)) != seen[key]++) ++out_of_order;
      if (!shard.range.Contains(riffle::Md5HashKey(key))) ++misrouted;
      ++read;
    });
    REQUIRE(reader.last_error().ok());
    if (progress == 0) break;
  }
  CHECK(read == put);
  CHECK(out_of_order == 0);
  CHECK(misrouted == 0);
  CHECK(reader.waiting() == 0);
}

TEST_CASE("a lineage reader at LATEST or AT_TIMESTAMP does not read what came before",
          "[reshard]") {
  // Shards closed before the reader began hold only older records; their children start at
  // the reader's position, as every other shard of the first listing.
  ManualClock clock;
  auto s = MakeStream(clock, 2);
  REQUIRE(s->PutRecord("k", "old-parent").ok());
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  for (int i = 0; i < 8; ++i) REQUIRE(s->PutRecord(fmt::format("k{}", i), "old").ok());
  for (riffle::ShardIteratorType position :
       {riffle::ShardIteratorType::kLatest, riffle::ShardIteratorType::kAtTimestamp}) {
    clock.Advance(absl::Seconds(1));
    const absl::Time start = clock.Now();
    riffle::LineageReader reader(*s, {.initial_position = position, .timestamp = start});
    std::vector<std::string> read;
    auto drain = [&] {
      for (int round = 0; round < 10; ++round) {
        if (reader.Poll([&](const auto&, const riffle::Record& r) { read.emplace_back(r.data); }) ==
            0) {
          break;
        }
      }
      REQUIRE(reader.last_error().ok());
    };
    drain();
    CHECK(read.empty());
    REQUIRE(s->PutRecord("k0", "new").ok());
    drain();
    CHECK(read == std::vector<std::string>{"new"});
  }
}

TEST_CASE("PutRecord after reshards allocates nothing", "[reshard][alloc]") {
  ManualClock clock;
  auto s = MakeStream(clock, 2);
  REQUIRE(s->SplitShard(kS0, kMid).ok());
  REQUIRE(s->MergeShards(kS3, kS1).ok());
  REQUIRE(s->PutRecord("warm", "x").ok());
  int failed = 0;
  riffle_test::AllocationCounter counter;
  for (int i = 0; i < 100; ++i) failed += s->PutRecord("warm", "x").ok() ? 0 : 1;
  CHECK(counter.allocations() == 0);
  CHECK(failed == 0);
}

// After splits the layout is not uniform and routing searches the open shards' starts
// (bounded by a bucket of the key's top bits). Shards crowded into one bucket, shards
// spanning many, and the keys at every boundary must all land in the shard that holds them.
TEST_CASE("after uneven splits every hash key is routed to the open shard that holds it",
          "[reshard][routing]") {
  ManualClock clock;
  auto s = MakeStream(clock, 1);
  std::mt19937_64 rng(7);
  const auto random_key = [&] { return absl::MakeUint128(rng(), rng()); };
  // 40 splits: half at random points, half crowded just above the smallest open start
  // after zero, so that many shards share the first bucket.
  for (int i = 0; i < 40; ++i) {
    const auto ranges = OpenRanges(*s);
    riffle::HashKey at;
    if (i % 2 == 0) {
      at = random_key();
    } else {
      at = ranges.size() > 1 ? ranges[1].starting_hash_key / 2 + 1 : riffle::HashKey{1} << 100;
    }
    auto open = s->ListShards({ShardFilterType::kAtLatest, {}, {}});
    REQUIRE(open.ok());
    for (const auto& sh : *open) {
      if (sh.hash_key_range.starting_hash_key < at && at <= sh.hash_key_range.ending_hash_key) {
        REQUIRE(s->SplitShard(sh.shard_id, FormatHashKey(at)).ok());
        break;
      }
    }
  }
  auto open = s->ListShards({ShardFilterType::kAtLatest, {}, {}});
  REQUIRE(open.ok());
  REQUIRE(open->size() > 30);
  const auto owner = [&](riffle::HashKey k) -> std::string {
    for (const auto& sh : *open) {
      if (sh.hash_key_range.Contains(k)) return sh.shard_id;
    }
    return "none";
  };
  std::vector<riffle::HashKey> keys = {0, riffle::kMaxHashKey};
  for (const auto& sh : *open) {
    keys.push_back(sh.hash_key_range.starting_hash_key);
    keys.push_back(sh.hash_key_range.ending_hash_key);
  }
  for (int i = 0; i < 2000; ++i) keys.push_back(random_key());
  for (int i = 0; i < 2000; ++i) keys.push_back(random_key() >> (8 + rng() % 32));  // crowded
  int misrouted = 0;
  for (const riffle::HashKey k : keys) {
    auto r = PutAt(*s, FormatHashKey(k), "x");
    REQUIRE(r.ok());
    if (std::string(r->shard_id) != owner(k)) ++misrouted;
  }
  CHECK(misrouted == 0);
}
