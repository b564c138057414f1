// Helpers shared by the tests of riffle::kafka against librdkafka's mock cluster
// (test_kafka.cpp: streams, iterators, errors, consumers, a broker down; test_kafka_mirror.cpp:
// the mirror and a DeliveryStream on a Kafka-backed stream).
#ifndef RIFFLE_TESTS_KAFKA_TEST_HELPERS_H_
#define RIFFLE_TESTS_KAFKA_TEST_HELPERS_H_

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/kafka.h"
#include "riffle/lineage_reader.h"
#include "riffle/stream.h"

namespace riffle_test::kafka_test {

using Clock = std::chrono::steady_clock;

inline std::unique_ptr<riffle::kafka::MockCluster> MakeCluster() {
  auto cluster = riffle::kafka::MockCluster::Create(3);
  REQUIRE(cluster.ok());
  return *std::move(cluster);
}

inline riffle::kafka::StreamOptions Options(const riffle::kafka::MockCluster& cluster,
                                            std::string topic, riffle::Clock* clock = nullptr) {
  riffle::kafka::StreamOptions o;
  o.bootstrap_servers = cluster.bootstrap_servers();
  o.topic = std::move(topic);
  o.clock = clock;
  o.request_timeout = absl::Seconds(10);
  // A broker taken down makes librdkafka log connection errors; they are expected here.
  o.config = {{"log_level", "2"}};
  return o;
}

inline std::unique_ptr<riffle::kafka::Stream> MakeStream(riffle::kafka::MockCluster& cluster,
                                                         const std::string& topic, int partitions,
                                                         riffle::Clock* clock = nullptr) {
  REQUIRE(cluster.CreateTopic(topic, partitions, 3).ok());
  auto stream = riffle::kafka::Stream::Create(Options(cluster, topic, clock));
  REQUIRE(stream.ok());
  return *std::move(stream);
}

// "<key index>:<counter>" keeps each key's order checkable from the data alone.
inline std::string Key(int k) { return fmt::format("key-{}", k); }
inline std::string Data(int k, int counter) { return fmt::format("{}:{}", k, counter); }

struct Seen {
  std::map<std::string, std::vector<int>> by_key;           // counters in read order
  std::set<std::string> numbers;                            // sequence numbers (duplicates show)
  std::map<std::string, riffle::SequenceNumber> number_of;  // by data
  std::map<std::string, std::set<std::string>> shards_of;   // by key
  uint64_t records = 0;
  uint64_t duplicates = 0;

  void Add(const riffle::Record& r, const std::string& shard_id = {}) {
    const std::string d(r.data);
    by_key[std::string(r.partition_key)].push_back(std::stoi(d.substr(d.find(':') + 1)));
    if (!numbers.insert(r.sequence_number.ToString()).second) ++duplicates;
    number_of[d] = r.sequence_number;
    if (!shard_id.empty()) shards_of[std::string(r.partition_key)].insert(shard_id);
    ++records;
  }
  // Every key has exactly the counters 0..per_key-1, in order.
  bool Complete(int keys, int per_key) const {
    for (int k = 0; k < keys; ++k) {
      auto it = by_key.find(Key(k));
      if (it == by_key.end() || static_cast<int>(it->second.size()) != per_key) return false;
      for (int c = 0; c < per_key; ++c) {
        if (it->second[static_cast<std::size_t>(c)] != c) return false;
      }
    }
    return true;
  }
};

// Reads the whole stream with a LineageReader until `expected` records or the deadline.
inline Seen ReadAll(riffle::RecordSource& source, uint64_t expected,
                    std::chrono::seconds timeout = std::chrono::seconds(20)) {
  Seen seen;
  riffle::LineageReader reader(source);
  const auto deadline = Clock::now() + timeout;
  while (seen.records < expected && Clock::now() < deadline) {
    const size_t progress = reader.Poll(
        [&](const auto& shard, const riffle::Record& r) { seen.Add(r, shard.shard_id); });
    REQUIRE(reader.last_error().ok());
    if (progress == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(reader.missed_records() == 0);
  return seen;
}

// Puts `per_key` records for each of `keys` keys (counters in order) in PutRecords batches.
inline void PutBatches(riffle::kafka::Stream& stream, int keys, int per_key, int from = 0) {
  std::vector<std::string> data;
  std::vector<std::string> names;
  std::vector<riffle::PutRecordsRequestEntry> entries;
  for (int c = from; c < from + per_key; ++c) {
    for (int k = 0; k < keys; ++k) {
      names.push_back(Key(k));
      data.push_back(Data(k, c));
    }
  }
  for (std::size_t i = 0; i < data.size(); ++i) entries.push_back({names[i], data[i], {}});
  for (std::size_t i = 0; i < entries.size(); i += 500) {
    const std::size_t n = std::min<std::size_t>(500, entries.size() - i);
    auto r = stream.PutRecords(std::span(entries).subspan(i, n));
    REQUIRE(r.ok());
    REQUIRE(r->failed_record_count == 0);
  }
}

struct Copy {
  std::string key, data;
  riffle::SequenceNumber number;
  absl::Time arrival;
};

// Follows next_shard_iterator from `it` until `n` records were read (or 10 s passed); the
// last iterator is left in *next.
inline std::vector<Copy> ReadN(riffle::kafka::Stream& stream, riffle::ShardIterator it,
                               std::size_t n, riffle::ShardIterator* next = nullptr) {
  std::vector<Copy> out;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  riffle::GetRecordsResult result;
  while (out.size() < n && Clock::now() < deadline) {
    REQUIRE(stream.GetRecords(it, result, static_cast<int>(n - out.size())).ok());
    CHECK(result.missed_records == 0);
    for (const riffle::Record& r : result.records) {
      out.push_back({std::string(r.partition_key), std::string(r.data), r.sequence_number,
                     r.approximate_arrival_timestamp});
    }
    REQUIRE(result.next_shard_iterator.has_value());
    it = *result.next_shard_iterator;
    if (result.records.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (next != nullptr) *next = it;
  return out;
}

// An in-process stream to mirror from.
inline std::unique_ptr<riffle::Stream> MakeLocal(int shards) {
  riffle::StreamOptions o;
  o.stream_name = "local";
  o.shard_count = shards;
  o.ring_capacity_bytes = uint64_t{8} << 20;
  return *riffle::Stream::Create(o);
}

}  // namespace riffle_test::kafka_test

#endif  // RIFFLE_TESTS_KAFKA_TEST_HELPERS_H_
