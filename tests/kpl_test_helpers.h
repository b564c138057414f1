// Helpers shared by the KPL tests (test_kpl.cpp: the format, vectors and the Aggregator;
// test_kpl_consume.cpp: de-aggregating readers, checkpoints, throughput, the MD5 lanes).
#ifndef RIFFLE_TESTS_KPL_TEST_HELPERS_H_
#define RIFFLE_TESTS_KPL_TEST_HELPERS_H_

#include <catch2/catch.hpp>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "riffle/kpl.h"
#include "riffle/lineage_reader.h"
#include "riffle/stream.h"

namespace riffle_test::kpl {

using riffle::HashKeyRange;
using riffle::ManualClock;
using riffle::PutRecordsRequestEntry;
using riffle::Record;
using riffle::Stream;
using riffle::UserRecord;
using riffle::kpl::Aggregate;

// ---- Records ----

inline const riffle::SequenceNumber kSeq{1, 0, 64, 7};
inline const absl::Time kArrival = absl::FromUnixMillis(1767225600123);

inline Record KinesisRecord(std::string_view key, std::string_view data) {
  return Record{key, data, kSeq, kArrival};
}

// ---- Streams and shard maps ----

inline std::unique_ptr<Stream> MakeStream(riffle::Clock* clock, int shards,
                                          uint64_t ring = uint64_t{16} << 20) {
  riffle::StreamOptions o;
  o.stream_name = "kpl";
  o.shard_count = shards;
  o.ring_capacity_bytes = ring;
  o.clock = clock;
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  return *std::move(s);
}

inline std::vector<riffle::Shard> OneShardMap() {
  riffle::Shard s;
  s.shard_id = riffle::FormatShardId(0);
  return {s};
}

inline std::unique_ptr<riffle::kpl::Aggregator> MakeAggregator(
    riffle::kpl::AggregatorOptions o, std::span<const riffle::Shard> shards) {
  auto a = riffle::kpl::Aggregator::Create(o);
  REQUIRE(a.ok());
  std::vector<Aggregate> none;
  (*a)->SetShardMap(shards, none);
  REQUIRE(none.empty());
  return *std::move(a);
}

// Puts aggregates with PutRecords (batches within its limits); returns the shard of each.
inline std::vector<std::string> PutAll(Stream& stream, const std::vector<Aggregate>& aggregates) {
  std::vector<std::string> shards;
  std::vector<PutRecordsRequestEntry> batch;
  uint64_t bytes = 0;
  auto flush = [&] {
    if (batch.empty()) return;
    auto r = stream.PutRecords(batch);
    REQUIRE(r.ok());
    REQUIRE(r->failed_record_count == 0);
    for (const auto& e : r->records) shards.emplace_back(e.shard_id);
    batch.clear();
    bytes = 0;
  };
  for (const Aggregate& a : aggregates) {
    if (batch.size() == 500 || bytes + a.data.size() + a.partition_key.size() > (5u << 20)) flush();
    batch.push_back(a.Entry());
    bytes += a.data.size() + a.partition_key.size();
  }
  flush();
  return shards;
}

// Every user record of the stream, parents before children, through a LineageReader.
inline std::vector<std::string> ReadUserData(Stream& stream,
                                             const riffle::UserRecordDecoder* decoder) {
  riffle::LineageReader reader(stream, {.deaggregator = decoder});
  std::vector<std::string> data;
  while (reader.PollUserRecords(
             [&](const auto&, const UserRecord& u) { data.emplace_back(u.data); }) > 0) {
  }
  REQUIRE(reader.last_error().ok());
  return data;
}

}  // namespace riffle_test::kpl

#endif  // RIFFLE_TESTS_KPL_TEST_HELPERS_H_
