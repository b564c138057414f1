// riffle::kafka's mirror against librdkafka's mock cluster: it copies a stream being
// written and resumes after a stop, and after a batch that reached the topic only in part;
// it refuses a destination that routes differently; a DeliveryStream reads a Kafka-backed
// stream unchanged. Helpers: kafka_test_helpers.h; the rest of riffle::kafka: test_kafka.cpp.
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "kafka_test_helpers.h"
#include "riffle/consumer.h"
#include "riffle/delivery_stream.h"
#include "riffle/kafka.h"
#include "riffle/lineage_reader.h"
#include "riffle/sink.h"
#include "riffle/stream.h"

using riffle::ErrorName;
namespace kafka = riffle::kafka;
using namespace riffle_test::kafka_test;

namespace {

// Puts `per_key` records of each key into the in-process stream, from `from`.
void PutLocal(riffle::Stream& stream, int keys, int from, int to) {
  for (int c = from; c < to; ++c) {
    for (int k = 0; k < keys; ++k) REQUIRE(stream.PutRecord(Key(k), Data(k, c)).ok());
  }
}

}  // namespace

TEST_CASE("The mirror copies a stream being written, and resumes after a stop", "[kafka]") {
  auto cluster = MakeCluster();
  auto destination = MakeStream(*cluster, "mirrored", 4);
  auto source = MakeLocal(4);
  constexpr int kKeys = 32;
  constexpr int kPerKey = 300;
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int c = 0; c < kPerKey; ++c) {
      for (int k = 0; k < kKeys; ++k) {
        if (!source->PutRecord(Key(k), Data(k, c)).ok()) return;
      }
      written = c + 1;
      if (c == kPerKey / 2) {
        // A reshard while the mirror runs: parents are copied before their children.
        (void)source->SplitShard(
            "shardId-000000000001",
            riffle::FormatHashKey(riffle::UniformHashKeyRanges(8)[3].starting_hash_key));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  kafka::MirrorStats first;
  {
    auto mirror = kafka::Mirror::Create({.source = source.get(),
                                         .destination = destination.get(),
                                         .max_batch_records = 200,
                                         .shard_refresh_interval = absl::Milliseconds(20)});
    REQUIRE(mirror.ok());
    REQUIRE((*mirror)->Start().ok());
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while ((*mirror)->stats().copied_records < kKeys * kPerKey / 3 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    (*mirror)->Stop();
    CHECK((*mirror)->last_error().ok());
    first = (*mirror)->stats();
    CHECK(first.copied_records > 0);
    CHECK(first.resumes == 1);
  }
  // A new mirror finds what the topic holds and goes on from there.
  auto mirror = kafka::Mirror::Create({.source = source.get(),
                                       .destination = destination.get(),
                                       .max_batch_records = 200,
                                       .shard_refresh_interval = absl::Milliseconds(20)});
  REQUIRE(mirror.ok());
  const uint64_t total = kKeys * kPerKey;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  uint64_t copied = first.copied_records;
  while (copied < total && Clock::now() < deadline) {
    const size_t n = (*mirror)->Poll();
    REQUIRE((*mirror)->last_error().ok());
    copied += n;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  writer.join();
  while ((*mirror)->Poll() > 0) {
  }
  CHECK(written == kPerKey);
  CHECK(first.copied_records + (*mirror)->stats().copied_records == total);
  CHECK((*mirror)->stats().missed_records == 0);

  Seen seen = ReadAll(*destination, total);
  CHECK(seen.records == total);
  CHECK(seen.duplicates == 0);
  CHECK(seen.Complete(kKeys, kPerKey));
  // Each key is where a direct put would have sent it, and only there.
  std::size_t misplaced = 0;
  for (const auto& [key, shards] : seen.shards_of) {
    const int expected = riffle::UniformLayout(4).ShardIndex(riffle::Md5HashKey(key));
    if (shards != std::set<std::string>{riffle::FormatShardId(static_cast<uint64_t>(expected))}) {
      ++misplaced;
    }
  }
  CHECK(misplaced == 0);
}

namespace {

// Writes records to the topic as a mirror would (with its headers), bypassing riffle.
class RawProducer {
 public:
  explicit RawProducer(const std::string& bootstrap) {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof(error));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", error, sizeof(error));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  }
  ~RawProducer() { rd_kafka_destroy(rk_); }
  void Send(const std::string& topic, int partition, const riffle::Record& r,
            const riffle::SequenceNumber& batch) {
    const std::string seq = r.sequence_number.ToString(), first = batch.ToString();
    rd_kafka_headers_t* h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "riffle.seq", -1, seq.data(), static_cast<ssize_t>(seq.size()));
    rd_kafka_header_add(h, "riffle.batch", -1, first.data(), static_cast<ssize_t>(first.size()));
    REQUIRE(rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(r.partition_key.data(), r.partition_key.size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(r.data.data()), r.data.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  void Flush() { REQUIRE(rd_kafka_flush(rk_, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR); }

 private:
  rd_kafka_t* rk_;
};

}  // namespace

TEST_CASE("The mirror resumes after a batch that reached the topic only in part", "[kafka]") {
  auto cluster = MakeCluster();
  auto destination = MakeStream(*cluster, "torn", 4);
  auto source = MakeLocal(1);  // one shard whose records spread over four partitions
  constexpr int kKeys = 16;
  PutLocal(*source, kKeys, 0, 30);
  // What a mirror that died mid-batch left: records 0..199 complete (a batch of 200), then
  // of the next batch (200..399) only what went to partitions 0 and 1.
  auto it = *source->GetShardIterator({.shard_id = "shardId-000000000000"});
  auto records = *source->GetRecords(it, 400);
  REQUIRE(records.records.size() == 400);
  RawProducer raw(cluster->bootstrap_servers());
  const riffle::UniformLayout layout(4);
  std::size_t in_topic = 0;
  for (std::size_t i = 0; i < 400; ++i) {
    const riffle::Record& r = records.records[i];
    const int p = layout.ShardIndex(riffle::Md5HashKey(r.partition_key));
    const riffle::SequenceNumber& batch = records.records[i < 200 ? 0 : 200].sequence_number;
    if (i < 200 || p <= 1) {
      raw.Send("torn", p, r, batch);
      ++in_topic;
    }
  }
  raw.Flush();
  REQUIRE(in_topic < 400);

  auto mirror = *kafka::Mirror::Create({.source = source.get(), .destination = destination.get()});
  const uint64_t total = kKeys * 30;
  uint64_t copied = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (copied + in_topic < total && Clock::now() < deadline) {
    const size_t n = mirror->Poll();
    REQUIRE(mirror->last_error().ok());
    copied += n;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(copied == total - in_topic);
  CHECK(mirror->stats().skipped_records == in_topic - 200);  // reread from record 200 on
  Seen seen = ReadAll(*destination, total);
  CHECK(seen.records == total);
  CHECK(seen.duplicates == 0);
  CHECK(seen.Complete(kKeys, 30));
}

TEST_CASE("A new mirror sends nothing again after a failed record was sent late", "[kafka]") {
  // Two source shards into one partition. What a mirror that recovered left: a batch of
  // shard 0's records 0..5 whose record 1 failed, a batch of shard 1 filling more than a
  // resume scan window (10,000 offsets), then record 1 sent again in a batch of its own.
  auto cluster = MakeCluster();
  auto destination = MakeStream(*cluster, "late-resend", 1);
  auto source = MakeLocal(2);
  const riffle::UniformLayout two(2);
  std::vector<int> on_shard(2, -1);  // a key of each shard
  for (int k = 0; on_shard[0] < 0 || on_shard[1] < 0; ++k) {
    on_shard[two.ShardIndex(riffle::Md5HashKey(Key(k)))] = k;
  }
  constexpr int kShard1Records = 10'000;
  for (int c = 0; c < 6; ++c)
    REQUIRE(source->PutRecord(Key(on_shard[0]), Data(on_shard[0], c)).ok());
  for (int c = 0; c < kShard1Records; ++c) {
    REQUIRE(source->PutRecord(Key(on_shard[1]), Data(on_shard[1], c)).ok());
  }
  // The results own the records' bytes.
  auto read = [&](const char* shard, int n) {
    auto it = *source->GetShardIterator({.shard_id = shard});
    auto result = *source->GetRecords(it, n);
    REQUIRE(result.records.size() == static_cast<std::size_t>(n));
    return result;
  };
  const riffle::GetRecordsResult zero_result = read("shardId-000000000000", 6);
  const riffle::GetRecordsResult one_result = read("shardId-000000000001", kShard1Records);
  const auto& zero = zero_result.records;
  const auto& one = one_result.records;
  RawProducer raw(cluster->bootstrap_servers());
  for (std::size_t i = 0; i < zero.size(); ++i) {
    if (i != 1) raw.Send("late-resend", 0, zero[i], zero[0].sequence_number);
  }
  for (const riffle::Record& r : one) raw.Send("late-resend", 0, r, one[0].sequence_number);
  raw.Send("late-resend", 0, zero[1], zero[1].sequence_number);
  raw.Flush();

  auto mirror = *kafka::Mirror::Create({.source = source.get(), .destination = destination.get()});
  uint64_t copied = 0;
  for (int i = 0; i < 20; ++i) {
    copied += mirror->Poll();
    REQUIRE(mirror->last_error().ok());
  }
  CHECK(copied == 0);
  Seen seen = ReadAll(*destination, 6 + kShard1Records);
  CHECK(seen.records == 6 + kShard1Records);
  CHECK(seen.duplicates == 0);
}

TEST_CASE("The mirror stops a shard at a record too large for the destination", "[kafka]") {
  auto cluster = MakeCluster();
  auto destination = MakeStream(*cluster, "sized", 2);  // MaxRecordSizeBytes: 1 MiB
  riffle::StreamOptions o;
  o.stream_name = "local";
  o.shard_count = 1;
  o.ring_capacity_bytes = uint64_t{16} << 20;
  o.max_record_size_bytes = uint64_t{2} << 20;
  auto source = *riffle::Stream::Create(o);
  // One key: the three records go to one partition, in order.
  REQUIRE(source->PutRecord(Key(0), Data(0, 0)).ok());
  auto large = source->PutRecord(Key(0), Data(0, 1) + std::string(uint64_t{3} << 19, 'x'));
  REQUIRE(large.ok());
  REQUIRE(source->PutRecord(Key(0), Data(0, 2)).ok());
  // The shard is closed: its child's record waits for the parent, which cannot finish.
  REQUIRE(
      source->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
  REQUIRE(source->PutRecord(Key(0), Data(0, 3)).ok());
  {
    auto mirror =
        *kafka::Mirror::Create({.source = source.get(), .destination = destination.get()});
    for (int i = 0; i < 4; ++i) {
      mirror->Poll();
      // The error lasts, and names the record and the limit.
      CHECK(riffle::IsInvalidArgumentException(mirror->last_error()));
      CHECK_THAT(std::string(riffle::ErrorMessage(mirror->last_error())),
                 Catch::Contains(large->sequence_number.ToString()) &&
                     Catch::Contains("at most 1048576 bytes"));
    }
    // Nothing after the record was sent, so nothing is taken for copied later.
    CHECK(mirror->stats().copied_records == 1);
  }
  // A destination that takes the record: a new mirror copies the rest, in order.
  auto larger_options = Options(*cluster, "sized");
  larger_options.max_record_size_bytes = uint64_t{2} << 20;
  auto larger = *kafka::Stream::Create(larger_options);
  auto mirror = *kafka::Mirror::Create({.source = source.get(), .destination = larger.get()});
  uint64_t copied = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (copied < 3 && Clock::now() < deadline) {
    const size_t n = mirror->Poll();
    REQUIRE(mirror->last_error().ok());
    copied += n;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(copied == 3);
  Seen seen = ReadAll(*larger, 4);
  CHECK(seen.records == 4);
  CHECK(seen.Complete(1, 4));
}

TEST_CASE("A mirror started at LATEST sends a failed batch again", "[kafka]") {
  auto cluster = *kafka::MockCluster::Create(1);
  REQUIRE(cluster->CreateTopic("late", 1, 1).ok());
  auto o = Options(*cluster, "late");
  o.delivery_timeout = absl::Seconds(1);
  o.config = {{"log_level", "0"}};  // the broker is down on purpose
  auto destination = *kafka::Stream::Create(o);
  auto source = MakeLocal(1);
  REQUIRE(source->PutRecord(Key(0), Data(0, -1)).ok());  // before the start: not copied
  auto mirror = *kafka::Mirror::Create({.source = source.get(),
                                        .destination = destination.get(),
                                        .initial_position = riffle::ShardIteratorType::kLatest});
  CHECK(mirror->Poll() == 0);
  REQUIRE(mirror->last_error().ok());
  PutLocal(*source, 1, 0, 3);
  REQUIRE(cluster->SetBrokerDown(1).ok());
  CHECK(mirror->Poll() == 0);
  CHECK_FALSE(mirror->last_error().ok());
  REQUIRE(cluster->SetBrokerUp(1).ok());
  uint64_t copied = 0;
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (copied < 3 && Clock::now() < deadline) {
    const size_t n = mirror->Poll();
    copied += n;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(copied == 3);
  PutLocal(*source, 1, 3, 4);
  deadline = Clock::now() + std::chrono::seconds(10);
  while (copied < 4 && Clock::now() < deadline) {
    const size_t n = mirror->Poll();
    copied += n;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(mirror->last_error().ok());
  Seen seen = ReadAll(*destination, 4, std::chrono::seconds(5));
  CHECK(seen.records == 4);
  CHECK(seen.Complete(1, 4));
}

TEST_CASE("The mirror refuses a destination that routes differently", "[kafka]") {
  auto cluster = MakeCluster();
  REQUIRE(cluster->CreateTopic("xxh", 2).ok());
  auto o = Options(*cluster, "xxh");
  o.routing = riffle::RoutingMode::kXxh3;
  auto destination = *kafka::Stream::Create(o);
  auto source = MakeLocal(2);
  auto mirror = kafka::Mirror::Create({.source = source.get(), .destination = destination.get()});
  CHECK(riffle::IsInvalidArgumentException(mirror.status()));
  auto ok = kafka::Mirror::Create({.source = nullptr, .destination = destination.get()});
  CHECK(riffle::IsInvalidArgumentException(ok.status()));
  // Intervals are added to clock times: an infinite one is refused, not overflowed.
  REQUIRE(cluster->CreateTopic("md5", 2).ok());
  auto same = *kafka::Stream::Create(Options(*cluster, "md5"));
  REQUIRE(kafka::Mirror::Create({.source = source.get(), .destination = same.get()}).ok());
  for (auto interval : {absl::InfiniteDuration(), absl::Hours(24 * 366), -absl::Seconds(1)}) {
    auto idle = kafka::Mirror::Create(
        {.source = source.get(), .destination = same.get(), .idle_sleep = interval});
    CHECK(riffle::ErrorMessage(idle.status()) ==
          "ShardRefreshInterval and IdleSleep must be between 0 and 365 days.");
    auto refresh = kafka::Mirror::Create(
        {.source = source.get(), .destination = same.get(), .shard_refresh_interval = interval});
    CHECK(riffle::IsInvalidArgumentException(refresh.status()));
  }
}

TEST_CASE("a DeliveryStream's stream source reads a Kafka-backed stream unchanged", "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "delivered", 3);
  std::vector<std::string> objects;  // in delivery order (one pump thread: the test's)
  riffle::CallbackSink sink([&objects](std::string_view, std::string_view data) {
    objects.emplace_back(data);
    return absl::OkStatus();
  });
  riffle::DeliveryStreamOptions o;
  o.delivery_stream_name = "from-kafka";
  o.source = riffle::StreamSource{stream.get()};
  o.sink = &sink;
  o.append_newline_delimiter = true;
  o.buffering_hints = {.size_in_mbs = 1, .interval_in_seconds = 0};
  auto ds = riffle::DeliveryStream::Create(std::move(o));
  REQUIRE(ds.ok());
  const int keys = 12, per_key = 40;
  for (int c = 0; c < per_key; ++c) {
    for (int k = 0; k < keys; ++k) REQUIRE(stream->PutRecord(Key(k), Data(k, c)).ok());
  }
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while ((*ds)->GetMetrics().incoming_records < static_cast<uint64_t>(keys * per_key) &&
         Clock::now() < deadline) {
    (*ds)->Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE((*ds)->Close().ok());
  // Every record once, in per-key order.
  std::map<int, std::vector<int>> by_key;
  for (const std::string& object : objects) {
    std::size_t start = 0;
    for (std::size_t nl; (nl = object.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string line = object.substr(start, nl - start);
      by_key[std::stoi(line)].push_back(std::stoi(line.substr(line.find(':') + 1)));
    }
  }
  REQUIRE(by_key.size() == static_cast<std::size_t>(keys));
  for (const auto& [k, counters] : by_key) {
    std::vector<int> expected(per_key);
    for (int c = 0; c < per_key; ++c) expected[static_cast<std::size_t>(c)] = c;
    CHECK(counters == expected);
  }
  CHECK((*ds)->GetMetrics().source_records_missed == 0);
}
