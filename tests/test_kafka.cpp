// riffle::kafka against librdkafka's mock cluster (3 brokers on loopback, in this process):
// puts route like riffle::Stream and read back in per-key order; iterators and errors; a
// Consumer processes every record exactly once across a restart from checkpoints kept in
// committed offsets; a broker taken down and brought back loses and reorders nothing that
// was acknowledged. The mirror's tests: test_kafka_mirror.cpp (same binary); shared helpers:
// kafka_test_helpers.h.
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "kafka_test_helpers.h"
#include "riffle/consumer.h"
#include "riffle/kafka.h"
#include "riffle/lineage_reader.h"
#include "riffle/stream.h"

using riffle::ErrorName;
namespace kafka = riffle::kafka;
using namespace riffle_test::kafka_test;

TEST_CASE("Puts route like riffle::Stream and read back in per-key order", "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "orders", 4);
  riffle::StreamOptions local_options;
  local_options.stream_name = "orders";
  local_options.shard_count = 4;
  local_options.ring_capacity_bytes = uint64_t{8} << 20;
  auto local = *riffle::Stream::Create(local_options);

  // The same key lands on the same shard in both backends; numbers are shard and offset.
  for (int k = 0; k < 16; ++k) {
    auto put = stream->PutRecord(Key(k), Data(k, 0));
    REQUIRE(put.ok());
    auto in_process = local->PutRecord(Key(k), Data(k, 0));
    REQUIRE(in_process.ok());
    CHECK(put->shard_id == in_process->shard_id);
    CHECK(put->sequence_number.stream_tag == stream->stream_tag());
    CHECK(riffle::FormatShardId(put->sequence_number.shard_index) == put->shard_id);
    CHECK(put->sequence_number.position == put->sequence_number.record_index);
    // The record is there: AT_SEQUENCE_NUMBER reads it first.
    auto it =
        stream->GetShardIterator({.shard_id = put->shard_id,
                                  .type = riffle::ShardIteratorType::kAtSequenceNumber,
                                  .starting_sequence_number = put->sequence_number.ToString()});
    REQUIRE(it.ok());
    auto got = ReadN(*stream, *it, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].key == Key(k));
    CHECK(got[0].data == Data(k, 0));
    CHECK(got[0].number == put->sequence_number);
  }
  // An explicit hash key picks the shard whose range holds it.
  const auto ranges = riffle::UniformHashKeyRanges(4);
  auto explicit_put =
      stream->PutRecord({.partition_key = "any",
                         .data = "x:0",
                         .explicit_hash_key = riffle::FormatHashKey(ranges[2].starting_hash_key)});
  REQUIRE(explicit_put.ok());
  CHECK(explicit_put->shard_id == "shardId-000000000002");

  // Synchronous batches, then asynchronous ones, then a reader of the whole stream.
  PutBatches(*stream, 16, 100, 1);
  std::vector<std::string> names, data;
  for (int c = 101; c < 200; ++c) {
    for (int k = 0; k < 16; ++k) {
      names.push_back(Key(k));
      data.push_back(Data(k, c));
    }
  }
  std::vector<riffle::PutRecordsRequestEntry> entries;
  for (std::size_t i = 0; i < names.size(); ++i) entries.push_back({names[i], data[i], {}});
  int callbacks = 0, failed = 0;
  for (std::size_t i = 0; i < entries.size(); i += 400) {
    const std::size_t n = std::min<std::size_t>(400, entries.size() - i);
    REQUIRE(stream
                ->PutRecordsAsync(std::span(entries).subspan(i, n),
                                  [&](const riffle::PutRecordsResult& r) {
                                    ++callbacks;
                                    failed += r.failed_record_count;
                                  })
                .ok());
  }
  REQUIRE(stream->Flush(absl::Seconds(20)).ok());
  CHECK(callbacks == 4);
  CHECK(failed == 0);
  CHECK(stream->pending_records() == 0);
  CHECK(stream->last_error().ok());

  const uint64_t total = 16 * 200 + 1;
  Seen seen = ReadAll(*stream, total);
  CHECK(seen.records == total);
  CHECK(seen.duplicates == 0);
  seen.by_key.erase("any");
  CHECK(seen.Complete(16, 200));
}

TEST_CASE("Iterators: every type, expiry, forgery, and the errors of riffle::Stream", "[kafka]") {
  auto cluster = MakeCluster();
  riffle::ManualClock clock;
  auto stream = MakeStream(*cluster, "events", 2, &clock);
  PutBatches(*stream, 16, 10);
  auto shards = stream->ListShards();
  REQUIRE(shards.ok());
  REQUIRE(shards->size() == 2);
  CHECK((*shards)[0].hash_key_range == riffle::UniformHashKeyRanges(2)[0]);
  CHECK((*shards)[1].hash_key_range.ending_hash_key == riffle::kMaxHashKey);
  CHECK_FALSE((*shards)[1].sequence_number_range.ending_sequence_number.has_value());
  auto after = stream->ListShards(
      {.filter = riffle::ShardFilterType::kAfterShardId, .shard_id = "shardId-000000000000"});
  REQUIRE(after.ok());
  CHECK(after->size() == 1);

  const std::string shard = "shardId-000000000000";
  std::size_t on_shard = 0;  // records of the 16 keys that hash to shard 0
  std::string key_on_shard_0;
  for (int k = 0; k < 16; ++k) {
    if (riffle::UniformLayout(2).ShardIndex(riffle::Md5HashKey(Key(k))) == 0) {
      on_shard += 10;
      key_on_shard_0 = Key(k);
    }
  }
  REQUIRE(on_shard >= 20);

  // LATEST is the end of the partition: its offset is the number of records.
  auto latest =
      stream->GetShardIterator({.shard_id = shard, .type = riffle::ShardIteratorType::kLatest});
  REQUIRE(latest.ok());
  CHECK(latest->position == on_shard);
  auto horizon = stream->GetShardIterator(
      {.shard_id = shard, .type = riffle::ShardIteratorType::kTrimHorizon});
  REQUIRE(horizon.ok());
  CHECK(horizon->position == 0);
  const std::vector<Copy> all = ReadN(*stream, *horizon, on_shard);
  REQUIRE(all.size() == on_shard);
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].number.position == i);
  CHECK(all[0].arrival == absl::FromUnixMillis(clock.NowMillis()));

  // AFTER_SEQUENCE_NUMBER of the first record starts at the second.
  auto after_first =
      stream->GetShardIterator({.shard_id = shard,
                                .type = riffle::ShardIteratorType::kAfterSequenceNumber,
                                .starting_sequence_number = all[0].number.ToString()});
  REQUIRE(after_first.ok());
  const std::vector<Copy> second = ReadN(*stream, *after_first, 1);
  REQUIRE(second.size() == 1);
  CHECK(second[0].number == all[1].number);

  // At LATEST nothing is there until the next put.
  riffle::GetRecordsResult none;
  REQUIRE(stream->GetRecords(*latest, none).ok());
  CHECK(none.records.empty());
  CHECK(none.next_shard_iterator->position == latest->position);

  // AT_TIMESTAMP goes through offsets-for-times. The mock answers -1 ("no record at or after
  // that time") whatever the time, so this can check only that the iterator is then the
  // end of the shard, that a record put afterwards is read from it, and the validation.
  auto at_time = stream->GetShardIterator({.shard_id = shard,
                                           .type = riffle::ShardIteratorType::kAtTimestamp,
                                           .timestamp = absl::FromUnixMillis(0)});
  REQUIRE(at_time.ok());
  CHECK(at_time->position == latest->position);
  auto put = stream->PutRecord(key_on_shard_0, Data(99, 0));
  REQUIRE(put.ok());
  const std::vector<Copy> from_time = ReadN(*stream, *at_time, 1);
  REQUIRE(from_time.size() == 1);
  CHECK(from_time[0].number == put->sequence_number);
  auto no_time = stream->GetShardIterator(
      {.shard_id = shard, .type = riffle::ShardIteratorType::kAtTimestamp});
  CHECK(riffle::IsInvalidArgumentException(no_time.status()));
  // A time after the stream's clock: refused with riffle::Stream's name and words.
  riffle::StreamOptions local_options;
  local_options.stream_name = "events";
  local_options.shard_count = 2;
  local_options.clock = &clock;
  auto local = *riffle::Stream::Create(local_options);
  const riffle::GetShardIteratorRequest future{.shard_id = shard,
                                               .type = riffle::ShardIteratorType::kAtTimestamp,
                                               .timestamp = clock.Now() + absl::Milliseconds(1)};
  auto refused = stream->GetShardIterator(future);
  auto refused_locally = local->GetShardIterator(future);
  CHECK(riffle::IsInvalidArgumentException(refused.status()));
  CHECK(ErrorName(refused.status()) == ErrorName(refused_locally.status()));
  CHECK(riffle::ErrorMessage(refused.status()) == riffle::ErrorMessage(refused_locally.status()));
  CHECK(stream
            ->GetShardIterator({.shard_id = shard,
                                .type = riffle::ShardIteratorType::kAtTimestamp,
                                .timestamp = clock.Now()})
            .ok());

  // A second Stream object over the topic (a restarted host) has the same tag and takes
  // the first one's numbers; iterators stay with the object that issued them.
  auto again = kafka::Stream::Create(Options(*cluster, "events", &clock));
  REQUIRE(again.ok());
  CHECK((*again)->stream_tag() == stream->stream_tag());
  auto resumed =
      (*again)->GetShardIterator({.shard_id = shard,
                                  .type = riffle::ShardIteratorType::kAtSequenceNumber,
                                  .starting_sequence_number = put->sequence_number.ToString()});
  REQUIRE(resumed.ok());
  CHECK(riffle::IsInvalidArgumentException((*again)->GetRecords(*horizon).status()));

  // Errors, by constant.
  riffle::ShardIterator altered = *horizon;
  altered.position += 1;
  CHECK(riffle::IsInvalidArgumentException(stream->GetRecords(altered).status()));
  CHECK(riffle::IsValidationException(stream->GetRecords(*horizon, 0).status()));
  CHECK(riffle::IsResourceNotFoundException(
      stream->GetShardIterator({.shard_id = "shardId-000000000002"}).status()));
  // Shard ids as riffle::Stream reads them.
  for (const char* id : {"shardId-1", "shard-1", "1"}) {
    auto lenient = stream->GetShardIterator({.shard_id = id});
    REQUIRE(lenient.ok());
    CHECK(lenient->shard_index == 1);
  }
  auto other = MakeStream(*cluster, "other", 2);
  auto foreign = other->PutRecord(key_on_shard_0, "x");
  REQUIRE(foreign.ok());
  CHECK(riffle::IsInvalidArgumentException(
      stream
          ->GetShardIterator({.shard_id = shard,
                              .type = riffle::ShardIteratorType::kAtSequenceNumber,
                              .starting_sequence_number = foreign->sequence_number.ToString()})
          .status()));
  riffle::SequenceNumber beyond = put->sequence_number;
  beyond.position = beyond.record_index = beyond.position + 100;
  CHECK(riffle::IsInvalidArgumentException(
      stream
          ->GetShardIterator({.shard_id = shard,
                              .type = riffle::ShardIteratorType::kAtSequenceNumber,
                              .starting_sequence_number = beyond.ToString()})
          .status()));

  // Expiry follows the stream's clock; a renewed iterator reads on.
  clock.Advance(absl::Minutes(6));
  CHECK(riffle::IsExpiredIteratorException(stream->GetRecords(*horizon).status()));
  auto renewed = stream->RenewShardIterator(*horizon);
  REQUIRE(renewed.ok());
  CHECK(ReadN(*stream, *renewed, on_shard + 1).size() == on_shard + 1);
  CHECK(riffle::IsInvalidArgumentException(stream->RenewShardIterator(altered).status()));

  // Resharding is refused, with the reason.
  auto split = stream->SplitShard(shard, "1000");
  CHECK(kafka::IsUnsupportedOperationException(split));
  CHECK(split.code() == absl::StatusCode::kUnimplemented);
  CHECK_THAT(riffle::ErrorMessage(split), Catch::Contains("per-key order"));
  CHECK(kafka::IsUnsupportedOperationException(stream->MergeShards(shard, "shardId-000000000001")));
  CHECK(kafka::IsUnsupportedOperationException(stream->UpdateShardCount(4).status()));
}
TEST_CASE("Create and put validate like riffle::Stream; Kafka's own errors keep its text",
          "[kafka]") {
  auto cluster = MakeCluster();
  REQUIRE(cluster->CreateTopic("four", 4).ok());

  auto missing = kafka::Stream::Create(Options(*cluster, "missing"));
  CHECK(riffle::IsResourceNotFoundException(missing.status()));
  auto o = Options(*cluster, "four");
  o.shard_count = 3;
  auto mismatch = kafka::Stream::Create(o);
  CHECK(riffle::IsInvalidArgumentException(mismatch.status()));
  CHECK_THAT(riffle::ErrorMessage(mismatch.status()), Catch::Contains("has 4 partitions"));
  o = Options(*cluster, "bad topic");
  CHECK(riffle::IsInvalidArgumentException(kafka::Stream::Create(o).status()));
  o = Options(*cluster, "four");
  o.max_readers_per_shard = 0;
  CHECK(riffle::IsInvalidArgumentException(kafka::Stream::Create(o).status()));

  // Nobody listens there: Kafka's error, with its code and text.
  o = Options(*cluster, "four");
  o.bootstrap_servers = "127.0.0.1:1";
  o.request_timeout = absl::Milliseconds(500);
  auto unreachable = kafka::Stream::Create(o);
  REQUIRE_FALSE(unreachable.ok());
  CHECK(kafka::IsKafkaException(unreachable.status()));
  CHECK(unreachable.status().code() == absl::StatusCode::kUnavailable);
  CHECK(kafka::KafkaErrorCode(unreachable.status()).has_value());

  auto stream = kafka::Stream::Create(Options(*cluster, "four"));
  REQUIRE(stream.ok());
  CHECK((*stream)->shard_count() == 4);
  // Bad input: the same error name and message as riffle::Stream gives.
  auto local = MakeLocal(4);
  auto same = [&](const absl::Status& kafka_status, const absl::Status& local_status) {
    CHECK_FALSE(kafka_status.ok());
    CHECK(riffle::ErrorName(kafka_status) == riffle::ErrorName(local_status));
    CHECK(riffle::ErrorMessage(kafka_status) == riffle::ErrorMessage(local_status));
  };
  const std::string too_big((1 << 20) + 1, 'x');
  CHECK(riffle::IsValidationException((*stream)->PutRecord("", "x").status()));
  same((*stream)->PutRecord("", "x").status(), local->PutRecord("", "x").status());
  same((*stream)->PutRecord("k", too_big).status(), local->PutRecord("k", too_big).status());
  const riffle::PutRecordRequest bad_hash_key{
      .partition_key = "k", .data = "x", .explicit_hash_key = "-1"};
  same((*stream)->PutRecord(bad_hash_key).status(), local->PutRecord(bad_hash_key).status());
  const std::string above_max_hash_key(39, '9');  // the pattern allows it; 2^128-1 does not
  const riffle::PutRecordRequest out_of_range{
      .partition_key = "k", .data = "x", .explicit_hash_key = above_max_hash_key};
  CHECK(riffle::IsInvalidArgumentException((*stream)->PutRecord(out_of_range).status()));
  same((*stream)->PutRecord(out_of_range).status(), local->PutRecord(out_of_range).status());
  std::vector<riffle::PutRecordsRequestEntry> too_many(501, {"k", "x", {}});
  CHECK(riffle::IsValidationException((*stream)->PutRecords(too_many).status()));
  same((*stream)->PutRecords(too_many).status(), local->PutRecords(too_many).status());
  // One invalid entry refuses the whole request, as the service does.
  std::vector<riffle::PutRecordsRequestEntry> mixed = {
      {"a", "1", {}}, {"", "2", {}}, {"c", "3", {}}};
  same((*stream)->PutRecords(mixed).status(), local->PutRecords(mixed).status());
  CHECK_THAT(riffle::ErrorMessage((*stream)->PutRecords(mixed).status()),
             Catch::Contains("records.2.member.partitionKey"));
}

namespace {

// Records what a Consumer delivers; checkpoints after every batch and on shutdown.
struct Delivered {
  std::mutex mu;
  Seen seen;
};

class Recorder : public riffle::RecordProcessor {
 public:
  explicit Recorder(Delivered* delivered) : delivered_(delivered) {}
  void Initialize(std::string_view, std::string_view) override {}
  void ProcessRecords(const riffle::ProcessRecordsInput& input,
                      riffle::Checkpointer& checkpointer) override {
    {
      std::lock_guard<std::mutex> lock(delivered_->mu);
      for (const riffle::Record& r : input.records) delivered_->seen.Add(r);
    }
    ok_ = ok_ && checkpointer.Checkpoint().ok();
  }
  void ShardEnded(riffle::Checkpointer& checkpointer) override {
    ok_ = ok_ && checkpointer.Checkpoint().ok();
  }
  void Shutdown(riffle::ShutdownReason, riffle::Checkpointer& checkpointer) override {
    ok_ = ok_ && checkpointer.Checkpoint().ok();
  }
  ~Recorder() override { CHECK(ok_); }

 private:
  Delivered* delivered_;
  bool ok_ = true;
};

std::unique_ptr<riffle::Consumer> MakeConsumer(
    kafka::Stream& stream, riffle::CheckpointStore& store, Delivered& delivered,
    riffle::InitialPosition initial_position = riffle::InitialPosition::kTrimHorizon) {
  auto c = riffle::Consumer::Create(
      {.stream = &stream,
       .application_name = "billing",
       .initial_position = initial_position,
       .checkpoint_store = &store,
       .lease_refresh_interval = absl::Milliseconds(100),
       .max_records = 50,
       .processor_factory = [&delivered] { return std::make_unique<Recorder>(&delivered); }});
  REQUIRE(c.ok());
  return *std::move(c);
}

uint64_t Records(Delivered& d) {
  std::lock_guard<std::mutex> lock(d.mu);
  return d.seen.records;
}

// Commits `offset` without metadata for `group`, as Kafka's own tools and consumers do.
void CommitWithKafka(const kafka::MockCluster& cluster, const std::string& group,
                     const std::string& topic, int partition, int64_t offset) {
  char error[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", cluster.bootstrap_servers().c_str(), error,
                            sizeof(error)) == RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(conf, "group.id", group.c_str(), error, sizeof(error)) ==
          RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof(error));
  REQUIRE(rk != nullptr);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
  CHECK(rd_kafka_commit(rk, list, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

}  // namespace

TEST_CASE("A Consumer processes every record once across a restart from committed offsets",
          "[kafka]") {
  auto cluster = MakeCluster();
  REQUIRE(cluster->CreateTopic("payments", 4).ok());
  Delivered delivered;
  {
    auto stream = *kafka::Stream::Create(Options(*cluster, "payments"));
    PutBatches(*stream, 8, 100);
    auto store = *kafka::OffsetCheckpointStore::Create({.stream = stream.get()});
    auto consumer = MakeConsumer(*stream, *store, delivered);
    // Half of it, then a stop (processors checkpoint on the way out).
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Records(delivered) < 400 && Clock::now() < deadline) {
      if (consumer->Poll() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(consumer->last_error().ok());
    consumer->Stop();
    CHECK(Records(delivered) < 800);
    // The checkpoints are Kafka's committed offsets: offset of the last record + 1.
    auto checkpoint = store->GetCheckpoint("billing", "shardId-000000000000");
    REQUIRE(checkpoint.ok());
    REQUIRE(checkpoint->has_value());
    auto n = riffle::SequenceNumber::Parse(**checkpoint);
    REQUIRE(n.ok());
    CHECK(n->stream_tag == stream->stream_tag());
  }
  // The host restarts: new stream, store and consumer objects; more records arrive.
  auto stream = *kafka::Stream::Create(Options(*cluster, "payments"));
  PutBatches(*stream, 8, 100, 100);
  auto store = *kafka::OffsetCheckpointStore::Create({.stream = stream.get()});
  auto consumer = MakeConsumer(*stream, *store, delivered);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Records(delivered) < 1600 && Clock::now() < deadline) {
    if (consumer->Poll() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 0; i < 5; ++i) consumer->Poll();  // nothing more arrives
  CHECK(consumer->last_error().ok());
  consumer->Stop();
  std::lock_guard<std::mutex> lock(delivered.mu);
  CHECK(delivered.seen.records == 1600);
  CHECK(delivered.seen.duplicates == 0);
  CHECK(delivered.seen.Complete(8, 200));
}

TEST_CASE("Committed-offset checkpoints: round trips, other clients' offsets, errors", "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "ledger", 2);
  auto store =
      *kafka::OffsetCheckpointStore::Create({.stream = stream.get(), .group_prefix = "riffle-"});
  CHECK(store->GroupId("app") == "riffle-app");
  auto none = store->GetCheckpoint("app", "shardId-000000000001");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  const std::string number = riffle::SequenceNumber{stream->stream_tag(), 1, 41, 41}.ToString();
  REQUIRE(store->PutCheckpoint("app", "shardId-000000000001", number).ok());
  auto back = store->GetCheckpoint("app", "shardId-000000000001");
  REQUIRE(back.ok());
  CHECK(**back == number);
  // A string that is not a number of this shard is kept as it is.
  REQUIRE(store->PutCheckpoint("app", "shardId-000000000000", riffle::kShardEndCheckpoint).ok());
  CHECK(**store->GetCheckpoint("app", "shardId-000000000000") == riffle::kShardEndCheckpoint);

  // A Kafka consumer of the same group commits offset 7 (no metadata): it reads back as the
  // number of record 6, so processing resumes at offset 7.
  CommitWithKafka(*cluster, "riffle-app", "ledger", 1, 7);
  auto moved = store->GetCheckpoint("app", "shardId-000000000001");
  REQUIRE(moved.ok());
  CHECK(**moved == riffle::SequenceNumber{stream->stream_tag(), 1, 6, 6}.ToString());

  CHECK(riffle::IsInvalidArgumentException(
      store->GetCheckpoint("bad app", "shardId-000000000000").status()));
  CHECK(riffle::IsInvalidArgumentException(
      store->PutCheckpoint("app", "shardId-000000000002", number)));
  // The checkpoint value is checked as every CheckpointStore checks it (an empty one read
  // back as TRIM_HORIZON).
  for (const std::string& bad : {std::string(), std::string(257, 'z'), std::string("a b")}) {
    CHECK(riffle::ErrorMessage(store->PutCheckpoint("app", "shardId-000000000000", bad)) ==
          "Checkpoint must be 1 to 256 characters without spaces or newlines.");
  }
  CHECK(**store->GetCheckpoint("app", "shardId-000000000000") == riffle::kShardEndCheckpoint);
  CHECK(riffle::IsInvalidArgumentException(kafka::OffsetCheckpointStore::Create({}).status()));
}

TEST_CASE("A fatal producer error is FailedPrecondition and keeps Kafka's cause", "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "fatal", 1);
  REQUIRE(stream->PutRecord(Key(0), Data(0, 0)).ok());
  stream->TEST_FailProducer(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
  auto put = stream->PutRecord(Key(0), Data(0, 1));
  REQUIRE_FALSE(put.ok());
  CHECK(kafka::IsKafkaException(put.status()));
  CHECK(put.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(kafka::KafkaErrorCode(put.status()) == RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
  CHECK_THAT(
      std::string(riffle::ErrorMessage(put.status())),
      Catch::Contains("must be recreated") && Catch::Contains("OUT_OF_ORDER_SEQUENCE_NUMBER"));
  // Every later put meets the same error.
  const std::string key = Key(1), data = Data(1, 0);  // the entries view them
  const std::vector<riffle::PutRecordsRequestEntry> entries{{key, data, {}}};
  auto puts = stream->PutRecords(entries);
  REQUIRE(puts.ok());
  REQUIRE(puts->failed_record_count == 1);
  CHECK(puts->records[0].error_code == kafka::kKafkaException);
  CHECK(put.status() == stream->PutRecord(Key(0), Data(0, 2)).status());
}

TEST_CASE("A throwing PutRecordsAsync callback leaves Poll and the next Poll runs the rest",
          "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "callbacks", 1);
  const std::string key = Key(0), data = Data(0, 0);  // the entries view them
  const std::vector<riffle::PutRecordsRequestEntry> entries{{key, data, {}}, {key, data, {}}};
  int calls = 0;
  for (int b = 0; b < 3; ++b) {
    REQUIRE(stream
                ->PutRecordsAsync(entries,
                                  [&](const riffle::PutRecordsResult& r) {
                                    CHECK(r.failed_record_count == 0);
                                    if (++calls == 1) throw std::runtime_error("processor bug");
                                  })
                .ok());
  }
  CHECK_THROWS_WITH(stream->Flush(absl::Seconds(20)).IgnoreError(), "processor bug");
  CHECK(calls == 1);
  CHECK(stream->pending_records() == 0);
  CHECK(stream->Poll() == 4);  // the two batches the exception left
  CHECK(calls == 3);
  CHECK(stream->Poll() == 0);
  CHECK(stream->last_error().ok());
}

TEST_CASE("An offset reset to the earliest by Kafka's tools moves a LATEST Consumer back",
          "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "reset", 1);
  PutBatches(*stream, 4, 5);
  // What kafka-consumer-groups --reset-offsets --to-earliest commits: offset 0, no metadata.
  CommitWithKafka(*cluster, "billing", "reset", 0, 0);
  auto store = *kafka::OffsetCheckpointStore::Create({.stream = stream.get()});
  auto checkpoint = store->GetCheckpoint("billing", "shardId-000000000000");
  REQUIRE(checkpoint.ok());
  CHECK(*checkpoint == std::optional<std::string>(riffle::kTrimHorizonCheckpoint));
  // An application that would start at LATEST processes the shard from its oldest record.
  Delivered delivered;
  auto consumer = MakeConsumer(*stream, *store, delivered, riffle::InitialPosition::kLatest);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Records(delivered) < 20 && Clock::now() < deadline) {
    if (consumer->Poll() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(consumer->last_error().ok());
  consumer->Stop();
  CHECK(delivered.seen.duplicates == 0);
  CHECK(delivered.seen.Complete(4, 5));
}

// Takes brokers down only between two puts. A real broker drops a retried batch it already
// appended (the idempotent producer's PID and sequence numbers); librdkafka 2.0.2's mock
// checks them only for transactional producers, so a Produce request the mock appended
// whose response died with the connection is appended again when the producer retries:
// the record is in the log twice, at the offset first appended and at the one acknowledged
// (docs/kafka.md, "Testing without a cluster"). Between two puts nothing is in flight, and
// the puts that follow still wait for the broker and follow the leader change.
TEST_CASE("A broker down and back loses and reorders nothing acknowledged", "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "resilient", 3);
  constexpr int kKeys = 12;
  std::mutex mu;
  std::map<std::string, riffle::SequenceNumber> acknowledged;  // data -> number
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool hold = false;     // the test asks the producer to wait before its next put
  bool holding = false;  // the producer waits: none of its records is in flight
  std::thread producer([&] {
    std::vector<int> next(kKeys, 0);
    while (!stop.load()) {
      {
        std::unique_lock<std::mutex> lock(gate_mu);
        if (hold) {
          holding = true;
          gate_cv.notify_all();
          gate_cv.wait(lock, [&] { return !hold; });
          holding = false;
        }
      }
      std::vector<std::string> names, data;
      for (int k = 0; k < kKeys; ++k) {
        names.push_back(Key(k));
        data.push_back(Data(k, next[static_cast<std::size_t>(k)]));
      }
      std::vector<riffle::PutRecordsRequestEntry> entries;
      for (int k = 0; k < kKeys; ++k) entries.push_back({names[k], data[k], {}});
      auto r = stream->PutRecords(entries);
      if (!r.ok()) {
        ++failures;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      for (int k = 0; k < kKeys; ++k) {
        const auto& e = r->records[static_cast<std::size_t>(k)];
        if (e.sequence_number) {
          acknowledged[data[static_cast<std::size_t>(k)]] = *e.sequence_number;
          ++next[static_cast<std::size_t>(k)];  // a failed record is put again, in order
        } else {
          ++failures;
        }
      }
    }
  });
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size();
  };
  auto wait_for = [&](std::size_t n) {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (count() < n && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(count() >= n);
  };
  // The producer's next put starts once the broker is down.
  auto down_between_puts = [&](int broker) {
    std::unique_lock<std::mutex> lock(gate_mu);
    hold = true;
    gate_cv.wait(lock, [&] { return holding; });
    absl::Status down = cluster->SetBrokerDown(broker);
    hold = false;
    gate_cv.notify_all();
    return down;
  };
  wait_for(500);
  // Broker 2 goes away and comes back: puts to its partitions wait, none is lost.
  REQUIRE(down_between_puts(2).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  REQUIRE(cluster->SetBrokerUp(2).ok());
  wait_for(count() + 500);
  // Broker 3 goes away and its partitions move to broker 1 while it is down.
  REQUIRE(down_between_puts(3).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int p = 0; p < 3; ++p) REQUIRE(cluster->SetPartitionLeader("resilient", p, 1).ok());
  wait_for(count() + 500);
  REQUIRE(cluster->SetBrokerUp(3).ok());
  wait_for(count() + 200);
  stop = true;
  producer.join();
  CHECK(failures == 0);

  const std::size_t total = count();
  // The topic holds the acknowledged records and nothing else (no record twice).
  uint64_t stored = 0;
  for (int p = 0; p < 3; ++p) {
    const std::string shard = riffle::FormatShardId(static_cast<uint64_t>(p));
    auto end =
        stream->GetShardIterator({.shard_id = shard, .type = riffle::ShardIteratorType::kLatest});
    REQUIRE(end.ok());
    stored += end->position;  // the partition's end offset; its first record is offset 0
  }
  CHECK(stored == total);
  Seen seen = ReadAll(*stream, total);
  CHECK(seen.records == total);
  CHECK(seen.duplicates == 0);
  // Every acknowledged record is read with the number its put returned, and each key's
  // records in the order their puts returned.
  std::size_t matched = 0;
  for (const auto& [data, number] : acknowledged) {
    auto it = seen.number_of.find(data);
    if (it != seen.number_of.end() && it->second == number) ++matched;
  }
  CHECK(matched == total);
  for (const auto& [key, counters] : seen.by_key) {
    for (std::size_t i = 0; i < counters.size(); ++i) CHECK(counters[i] == static_cast<int>(i));
  }
}

TEST_CASE("Brokers down: iterators and checkpoints fail within request_timeout, never hang",
          "[kafka]") {
  auto cluster = MakeCluster();
  REQUIRE(cluster->CreateTopic("down", 1, 3).ok());
  auto options = Options(*cluster, "down");
  options.request_timeout = absl::Seconds(2);
  auto stream = *kafka::Stream::Create(options);
  REQUIRE(stream->PutRecord("k", "x").ok());
  auto store = *kafka::OffsetCheckpointStore::Create({.stream = stream.get()});
  for (int b = 1; b <= cluster->broker_count(); ++b) REQUIRE(cluster->SetBrokerDown(b).ok());
  auto within = [](auto&& call) {
    const auto start = Clock::now();
    const absl::Status s = call();
    CHECK(Clock::now() - start < std::chrono::seconds(15));  // 2 s, and room for a slow host
    return s;
  };
  // Offsets (TRIM_HORIZON, LATEST) came from a call that waited for the leader for ever.
  for (auto type : {riffle::ShardIteratorType::kTrimHorizon, riffle::ShardIteratorType::kLatest}) {
    const absl::Status s = within([&] {
      return stream->GetShardIterator({.shard_id = "shardId-000000000000", .type = type}).status();
    });
    CHECK(kafka::IsKafkaException(s));
  }
  // A commit waited for the coordinator for ever.
  const std::string number = riffle::SequenceNumber{stream->stream_tag(), 0, 0, 0}.ToString();
  CHECK(kafka::IsKafkaException(
      within([&] { return store->PutCheckpoint("app", "shardId-000000000000", number); })));
  for (int b = 1; b <= cluster->broker_count(); ++b) REQUIRE(cluster->SetBrokerUp(b).ok());
}

TEST_CASE("A batch stored without its offsets gets no sequence number of another record",
          "[kafka]") {
  auto cluster = MakeCluster();
  REQUIRE(cluster->CreateTopic("dup", 1, 3).ok());
  auto options = Options(*cluster, "dup");
  options.linger = absl::Milliseconds(20);  // the five puts below go in one batch
  auto stream = *kafka::Stream::Create(options);
  for (int i = 0; i < 10; ++i) REQUIRE(stream->PutRecord("k", fmt::format("first-{}", i)).ok());
  // DUPLICATE_SEQUENCE_NUMBER: the broker had the batch already, and says not where.
  const int duplicate[] = {46};
  REQUIRE(cluster->PushRequestErrors(0, duplicate).ok());
  std::vector<std::string> data;
  for (int i = 0; i < 5; ++i) data.push_back(fmt::format("second-{}", i));
  std::vector<riffle::PutRecordsRequestEntry> entries;
  for (const auto& d : data) entries.push_back({"k", d, {}});
  auto put = stream->PutRecords(entries);
  REQUIRE(put.ok());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = put->records[i];
    INFO(data[i]);
    if (!e.sequence_number) {
      CHECK(e.error_code == riffle::kInternalFailure);
      continue;
    }
    // A number given back names this record: reading at it returns it.
    auto it = stream->GetShardIterator({.shard_id = "shardId-000000000000",
                                        .type = riffle::ShardIteratorType::kAtSequenceNumber,
                                        .starting_sequence_number = e.sequence_number->ToString()});
    REQUIRE(it.ok());
    riffle::GetRecordsResult got;
    for (int t = 0; t < 50 && got.records.empty(); ++t)
      REQUIRE(stream->GetRecords(*it, got, 1).ok());
    REQUIRE(got.records.size() == 1);
    CHECK(got.records[0].data == data[i]);
  }
}

TEST_CASE("An empty partition's StartingSequenceNumber starts AT and AFTER iterators there",
          "[kafka]") {
  auto cluster = MakeCluster();
  auto stream = MakeStream(*cluster, "fresh", 1);
  auto shards = stream->ListShards();
  REQUIRE(shards.ok());
  const std::string start = (*shards)[0].sequence_number_range.starting_sequence_number.ToString();
  std::vector<riffle::ShardIterator> iterators;
  for (auto type : {riffle::ShardIteratorType::kAtSequenceNumber,
                    riffle::ShardIteratorType::kAfterSequenceNumber}) {
    auto it = stream->GetShardIterator(
        {.shard_id = "shardId-000000000000", .type = type, .starting_sequence_number = start});
    REQUIRE(it.ok());
    iterators.push_back(*it);
  }
  REQUIRE(stream->PutRecord("k", "first").ok());
  for (const auto& it : iterators) {
    riffle::GetRecordsResult got;
    for (int t = 0; t < 50 && got.records.empty(); ++t) REQUIRE(stream->GetRecords(it, got).ok());
    REQUIRE_FALSE(got.records.empty());
    CHECK(got.records[0].data == "first");
  }
}
