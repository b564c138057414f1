// riffle::kafka: the same streams on Apache Kafka, through librdkafka (optional component
// riffle::kafka, CMake option RIFFLE_WITH_KAFKA). Moving a pipeline from one process to a
// cluster changes how the stream is built, not the code that puts, reads or consumes:
//
//   riffle::kafka::StreamOptions options;
//   options.bootstrap_servers = "kafka-1:9092,kafka-2:9092";
//   options.topic = "orders";                       // partitions are the shards
//   auto stream = riffle::kafka::Stream::Create(options).value();
//   auto put = stream->PutRecord("customer-42", "{\"total\":12.5}");  // once acknowledged
//   riffle::LineageReader reader(*stream);           // any RecordSource reader works
//
// What maps and what does not is in docs/kafka.md. In short: a shard is a partition of one
// topic, and its hash key range is the partition's part of UniformHashKeyRanges(partitions),
// so a key routes to the "same" shard as on riffle::Stream (MD5 or XXH3, explicit hash keys
// too) and keeps its order. A sequence number is the 56-digit form with position = record
// index = the Kafka offset; the stream tag is a hash of the topic name, so numbers and
// checkpoints stay valid across restarts of the host. Partitions never close: Kafka can
// only add partitions, which moves keys between them, so resharding is refused.
//
// Threads: librdkafka runs threads of its own in every client (the producer, each reader,
// each checkpoint group); riffle starts none here unless asked (Mirror::Start). Errors:
// the service's names (status.h) where Kafka means the same, otherwise kKafkaException
// with Kafka's text and KafkaErrorCode().
#ifndef RIFFLE_KAFKA_H_
#define RIFFLE_KAFKA_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/checkpoint_store.h"
#include "riffle/clock.h"
#include "riffle/hash_key.h"
#include "riffle/record_source.h"
#include "riffle/status.h"
#include "riffle/stream.h"

namespace riffle::detail {
class OwnThread;
}  // namespace riffle::detail

namespace riffle::kafka {

// ---- Errors ----

// A Kafka error with no counterpart among the service's names: the message is Kafka's
// own text, KafkaErrorCode() its code. Canonical codes: kUnavailable for what a retry may
// fix (brokers down, timeouts, leader changes), kPermissionDenied for authorization,
// kFailedPrecondition for a fatal producer error (recreate the Stream; KafkaErrorCode() is
// its cause), kInternal else.
inline constexpr std::string_view kKafkaException = "KafkaException";
// A call this backend does not offer (resharding); canonical code kUnimplemented.
inline constexpr std::string_view kUnsupportedOperationException = "UnsupportedOperationException";

// librdkafka's error code (rd_kafka_resp_err_t) when `status` came from Kafka.
std::optional<int> KafkaErrorCode(const absl::Status& status);
inline bool IsKafkaException(const absl::Status& s) { return HasErrorName(s, kKafkaException); }
inline bool IsUnsupportedOperationException(const absl::Status& s) {
  return HasErrorName(s, kUnsupportedOperationException);
}

// ---- A Kafka cluster inside the process, for tests and demos ----

// librdkafka's mock cluster: brokers that speak the Kafka protocol on loopback, in this
// process, on librdkafka's threads. It implements what producers and consumers use
// (produce, fetch, offsets, consumer group offsets) but not everything: offsets-for-times
// answers -1 (no record), CreateTopics is not served (use CreateTopic), and data lives in
// memory. Thread safety: any thread.
class MockCluster {
 public:
  // 1..16 brokers, ids 1..broker_count.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MockCluster>> Create(int broker_count = 3);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // For StreamOptions::bootstrap_servers.
  const std::string& bootstrap_servers() const { return bootstrap_servers_; }
  int broker_count() const { return broker_count_; }

  // Creates a topic whose partitions have `replication_factor` replicas (at most
  // broker_count), leaders spread over the brokers.
  [[nodiscard]] absl::Status CreateTopic(std::string_view topic, int partitions,
                                         int replication_factor = 3);
  // Takes a broker off the network (connections close, new ones are refused) and back.
  // Its partitions keep their leader: clients wait for it, or move leadership below.
  // A put in flight when its broker goes down may be appended twice: the mock drops
  // retried batches only for transactional producers (docs/kafka.md).
  [[nodiscard]] absl::Status SetBrokerDown(int broker_id);
  [[nodiscard]] absl::Status SetBrokerUp(int broker_id);
  [[nodiscard]] absl::Status SetPartitionLeader(std::string_view topic, int partition,
                                                int broker_id);
  // The cluster's next requests of Kafka API `api_key` (0 Produce, 1 Fetch, 2 ListOffsets,
  // 8 OffsetCommit, ...) fail with these Kafka error codes, one request a code, in order
  // (e.g. 46 DUPLICATE_SEQUENCE_NUMBER: the batch was stored before, its offsets unknown).
  [[nodiscard]] absl::Status PushRequestErrors(int api_key, std::span<const int> error_codes);

 private:
  struct Impl;
  MockCluster(std::unique_ptr<Impl> impl, std::string bootstrap_servers, int broker_count);
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_servers_;
  int broker_count_;
};

// ---- The Kafka-backed stream ----

struct StreamOptions {
  // REQUIRED: librdkafka's bootstrap.servers, "host:port[,host:port...]".
  std::string bootstrap_servers;
  // REQUIRED: the topic, which is also the stream's name: 1..249 characters of
  // [a-zA-Z0-9._-].
  std::string topic;
  // 0 (default): the topic must exist (ResourceNotFoundException otherwise) and its
  // partitions are the shards. N > 0: a missing topic is created with N partitions
  // (CreateTopics); an existing one with another count is InvalidArgumentException, since
  // the hash key ranges, hence where each key goes, follow the count.
  int shard_count = 0;
  // Replicas of a topic Create makes; -1 (default): the broker's default.
  int replication_factor = -1;
  // Must match the riffle::Stream a pipeline moves from, for keys to keep their shards.
  RoutingMode routing = RoutingMode::kMd5;
  // Partition key + data, 1 byte .. 10 MiB; the broker's message.max.bytes must allow it.
  // Default 1 MiB, as the service.
  uint64_t max_record_size_bytes = uint64_t{1} << 20;
  // How long an iterator stays valid after it is issued. Default 5 minutes.
  absl::Duration iterator_lifetime = absl::Minutes(5);
  // How long the producer retries a record before its put fails (librdkafka's
  // message.timeout.ms, Kafka's delivery.timeout.ms). Default 2 minutes.
  absl::Duration delivery_timeout = absl::Minutes(2);
  // How long the producer waits to fill a batch (linger.ms). Default 0: a synchronous put
  // is sent at once; batches still form while earlier requests are in flight.
  absl::Duration linger = absl::ZeroDuration();
  // How long a GetRecords call that finds nothing fetched waits for the first record, when
  // the shard may hold more (a shard known to be read to its end returns at once).
  // Default 100 ms; zero: never wait.
  absl::Duration read_wait = absl::Milliseconds(100);
  // Bound on metadata, offset and commit requests. Default 30 s.
  absl::Duration request_timeout = absl::Seconds(30);
  // Readers (librdkafka consumers, assigned partitions, never subscribed) kept per shard;
  // each holds its own position and prefetches from it. More concurrent GetRecords calls on
  // one shard than this are ProvisionedThroughputExceededException. Default 4.
  int max_readers_per_shard = 4;
  // Not owned; nullptr means SystemClock::Default(). Stamps puts (the record's Kafka
  // timestamp) and ages iterators. Must outlive the stream.
  Clock* clock = nullptr;
  // More librdkafka properties for every client (security.protocol, sasl.*, ssl.*,
  // log_level, ...), applied after riffle's own.
  std::map<std::string, std::string> config{};
};

// Called once per PutRecordsAsync batch, when every record of it was acknowledged or
// failed, on the thread that calls Poll() or Flush(). The result is valid during the call.
// What it throws leaves that Poll() or Flush(); the batches it had not run yet are run by
// the next Poll().
using PutRecordsCallback = std::function<void(const PutRecordsResult&)>;

namespace detail {
class Core;
}  // namespace detail

// A stream over one Kafka topic, with riffle::Stream's put, list, iterator and read calls
// and errors. It is a RecordSource: LineageReader and Consumer (polling mode) run on it.
//
// Thread safety: every method may be called from any thread, except that Poll() and Flush()
// (which run callbacks) are called by one thread at a time. Destroying the stream while
// other threads call it is undefined.
class Stream final : public RecordSource {
 public:
  // Connects, checks (or creates) the topic and validates `options`
  // (InvalidArgumentException naming the field). ResourceNotFoundException for a missing
  // topic with shard_count 0; kKafkaException when the cluster cannot be reached within
  // request_timeout.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Stream>> Create(StreamOptions options);
  // Waits for puts not yet acknowledged (at most delivery_timeout), without running their
  // callbacks: call Flush() first for that.
  ~Stream() override;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Appends one record to the partition that owns its hash key and returns once the
  // brokers acknowledged it (acks=all, idempotent producer: retries never duplicate or
  // reorder). Waits while librdkafka's local buffer is full.
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(const PutRecordRequest& request);
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(std::string_view partition_key,
                                                          std::string_view data) {
    return PutRecord(PutRecordRequest{partition_key, data, {}, {}});
  }
  // 1..500 entries, 5 MiB in all, returning once every entry was acknowledged or failed. A
  // bad entry fails alone; the result lists every entry in request order.
  [[nodiscard]] absl::StatusOr<PutRecordsResult> PutRecords(
      std::span<const PutRecordsRequestEntry> entries);
  // The asynchronous form, for throughput: the same limits and per-entry results, but it
  // returns once the records are handed to the producer (the entries' bytes are copied);
  // `done` (may be empty) gets the result from Poll() or Flush(). Records of one key keep
  // their order across calls from one thread. The request errors of PutRecords only.
  [[nodiscard]] absl::Status PutRecordsAsync(std::span<const PutRecordsRequestEntry> entries,
                                             PutRecordsCallback done = {});
  // Runs the callbacks of asynchronous batches that completed; returns how many records
  // they held (0 when none completed). Never blocks on the network.
  size_t Poll();
  // Waits until every asynchronous put so far completed (at most `timeout`), then Poll()s.
  // kKafkaException (code _TIMED_OUT) when some are still outstanding.
  [[nodiscard]] absl::Status Flush(absl::Duration timeout = absl::InfiniteDuration());
  // OK, or the first failure among the records of the batches the last Poll() completed
  // (OK again after a Poll() whose batches all succeeded).
  absl::Status last_error() const;
  // Records handed to PutRecordsAsync whose batch has not completed yet.
  uint64_t pending_records() const;

  // TRIM_HORIZON is the partition's oldest offset, LATEST its end, AT_TIMESTAMP goes
  // through offsets-for-times (the first record whose timestamp is at or after the time;
  // none: LATEST; a time after the stream's clock is InvalidArgumentException, as on
  // riffle::Stream), AT_/AFTER_SEQUENCE_NUMBER take a number of this stream and shard whose
  // record exists or was trimmed (reading it then reports what was missed).
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      const GetShardIteratorRequest& request) override;
  // Reads up to `limit` (1..10,000) records and at most 10 MiB into `out`, replacing its
  // contents, through a reader positioned at the iterator (one already there is reused, so
  // a reader that follows next_shard_iterator reads what was prefetched). Waits at most
  // options().read_wait for a first record, 100 ms more right after a reader was moved to
  // another position (a fetch still held by a broker for the old one returns first);
  // an empty result with a next iterator is normal. Gaps in offsets (records removed by the
  // topic's retention) are reported in missed_records. next_shard_iterator is always set:
  // a partition never closes.
  [[nodiscard]] absl::Status GetRecords(const ShardIterator& iterator, GetRecordsResult& out,
                                        int limit) override;
  [[nodiscard]] absl::Status GetRecords(const ShardIterator& iterator, GetRecordsResult& out) {
    return GetRecords(iterator, out, 10000);
  }
  [[nodiscard]] absl::StatusOr<GetRecordsResult> GetRecords(const ShardIterator& iterator,
                                                            int limit = 10000);
  [[nodiscard]] absl::StatusOr<ShardIterator> RenewShardIterator(
      const ShardIterator& iterator) override;

  // One shard per partition, all open, with their hash key ranges. Lists the partitions
  // counted when the stream was created (no network call).
  [[nodiscard]] absl::StatusOr<std::vector<Shard>> ListShards(
      const ListShardsRequest& request) const override;
  [[nodiscard]] absl::StatusOr<std::vector<Shard>> ListShards() const {
    return ListShards(ListShardsRequest{});
  }

  // Refused with UnsupportedOperationException: Kafka can only add partitions, and adding
  // one moves keys to other partitions, which breaks per-key order (docs/kafka.md).
  [[nodiscard]] absl::Status SplitShard(std::string_view shard_to_split,
                                        std::string_view new_starting_hash_key);
  [[nodiscard]] absl::Status MergeShards(std::string_view shard_to_merge,
                                         std::string_view adjacent_shard_to_merge);
  [[nodiscard]] absl::StatusOr<UpdateShardCountResult> UpdateShardCount(
      int target_shard_count, ScalingType scaling_type = ScalingType::kUniformScaling);

  const std::string& name() const override;
  Clock& clock() const override;
  absl::Duration iterator_lifetime() const override;
  const StreamOptions& options() const;
  uint64_t stream_tag() const;
  int shard_count() const;

  // Test hook: the producer fails as on a fatal Kafka error caused by `kafka_error` (an
  // rd_kafka_resp_err_t; librdkafka's rd_kafka_test_fatal_error). Not for production use.
  void TEST_FailProducer(int kafka_error);

 private:
  friend class Mirror;
  friend class OffsetCheckpointStore;
  explicit Stream(std::unique_ptr<detail::Core> core);
  std::unique_ptr<detail::Core> core_;
  mutable std::mutex status_mu_;
  absl::Status status_;
};

// ---- Checkpoints in Kafka's committed offsets ----

struct OffsetCheckpointStoreOptions {
  // REQUIRED, not owned: the stream whose shards are checkpointed. Must outlive the store.
  Stream* stream = nullptr;
  // An application's checkpoints are the committed offsets of the consumer group
  // group_prefix + application name. Default "".
  std::string group_prefix{};
};

// A CheckpointStore for Consumer on a Kafka-backed stream: a checkpoint of shard N is the
// committed offset of partition N for the application's consumer group, so Kafka's own
// tools show each application's lag. A sequence number commits its offset + 1 with the
// number as the commit's metadata; any other checkpoint string is kept in the metadata (at
// the current offset). An offset committed by another Kafka client (no metadata) reads back
// as the number of the record before it, offset 0 as kTrimHorizonCheckpoint (the shard is
// processed from its oldest record). The group must not have active members of a
// subscribing Kafka consumer (their generation would refuse the commits).
//
// Thread safety: any thread. Durable once PutCheckpoint returns (a synchronous commit).
class OffsetCheckpointStore final : public CheckpointStore {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<OffsetCheckpointStore>> Create(
      OffsetCheckpointStoreOptions options);
  ~OffsetCheckpointStore() override;

  // InvalidArgumentException for an invalid application name or a shard id that is not one
  // of the stream's; kKafkaException when the group coordinator does not answer.
  absl::StatusOr<std::optional<std::string>> GetCheckpoint(std::string_view application,
                                                           std::string_view shard_id) override;
  absl::Status PutCheckpoint(std::string_view application, std::string_view shard_id,
                             std::string_view checkpoint) override;

  std::string GroupId(std::string_view application) const;

 private:
  class Groups;
  explicit OffsetCheckpointStore(OffsetCheckpointStoreOptions options);
  OffsetCheckpointStoreOptions options_;
  std::unique_ptr<Groups> groups_;
};

// ---- Mirroring an in-process stream into a topic ----

struct MirrorOptions {
  // REQUIRED, not owned: the in-process stream to copy. Must outlive the mirror.
  riffle::Stream* source = nullptr;
  // REQUIRED, not owned: where to copy it; the same RoutingMode as the source
  // (InvalidArgumentException otherwise). Must outlive the mirror.
  Stream* destination = nullptr;
  // Where shards start that the topic holds nothing of and whose parents were not copied:
  // kTrimHorizon (default) or kLatest.
  ShardIteratorType initial_position = ShardIteratorType::kTrimHorizon;
  // Records read from each shard per Poll(), 1..10,000. Default 1,000.
  int max_batch_records = 1000;
  // How often Poll() lists the source's shards again (the source's clock), 0..365 days.
  // Default 1 s.
  absl::Duration shard_refresh_interval = absl::Seconds(1);
  // Start(): how long the thread sleeps (real time) after a Poll() that copied nothing,
  // 0..365 days (a day at most is slept at once). Default 1 ms.
  absl::Duration idle_sleep = absl::Milliseconds(1);
  // Records per partition the resume reads back, at most, looking for what was copied.
  // A shard not found within it is copied again from its start (duplicates, never a gap).
  // Default 10,000,000.
  uint64_t resume_scan_limit = 10'000'000;
};

struct MirrorStats {
  uint64_t copied_records = 0;   // produced and acknowledged by this mirror
  uint64_t skipped_records = 0;  // found already in the topic when resuming
  uint64_t missed_records = 0;   // trimmed from the source before they were copied
  uint64_t resumes = 0;          // scans of the topic: the first Poll, and after a failure
};

// Copies an in-process riffle::Stream into a Kafka-backed stream, continuously: each shard
// in order, parents before children (the lineage engine's rules), each record to the
// partition a direct put of its partition key would pick (an explicit hash key is not kept
// by the source: such a record goes to the partition of its partition key's hash clamped to
// its shard's range). Each copied record carries two headers, riffle.seq (its source
// sequence number) and riffle.batch (the first number of its batch); the mirror waits for
// every batch of a Poll() to be acknowledged before it reads further. So when a mirror
// starts (or recovers from a failed batch) it resumes from what the topic holds: it reads
// the end of each partition back until it has met every source shard that routes there,
// rereads each shard from the start of its last batch and sends only the records the
// topic does not have. Records of another source stream (another tag) are ignored. After a
// failed batch a shard is read again from its first record that failed, and such a record
// is sent again unless the topic ends with it (a timed-out send may have landed, so a
// record may then be in the topic twice; never missing). A record larger than the
// destination's max_record_size_bytes is never sent: its shard stops there (nothing after
// it is copied, its children do not start) and last_error() names it at every Poll(),
// until a mirror with a destination that takes it resumes from the topic.
//
// Thread safety: driven by one thread, the host's Poll() or its own after Start().
class Mirror {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Mirror>> Create(MirrorOptions options);
  ~Mirror();  // Stop()
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  // One host-driven step: resumes first if needed, then reads one batch from every shard
  // that may be read, sends them and waits for their acknowledgement. Returns the records
  // copied (0 when idle, or after an error: see status()).
  size_t Poll();
  // Runs Poll() on a thread of the mirror's own until Stop(). ResourceInUseException when
  // already started or stopped.
  [[nodiscard]] absl::Status Start();
  // Finishes the Poll() in progress and joins the thread. Idempotent.
  void Stop();

  // OK, or the error that kept the last Poll() from copying (it resumes at the next one),
  // or InvalidArgumentException for a shard stopped at a record the destination refuses.
  // Call from the driving thread, or after Stop().
  absl::Status last_error() const;
  // Any thread.
  MirrorStats stats() const;

 private:
  struct State;
  explicit Mirror(MirrorOptions options);
  size_t Step();
  absl::Status Resume();
  size_t CopyBatches();

  MirrorOptions options_;
  std::unique_ptr<State> state_;
  bool stopped_ = false;
  std::unique_ptr<riffle::detail::OwnThread> thread_;  // Start()
};

}  // namespace riffle::kafka

#endif  // RIFFLE_KAFKA_H_
