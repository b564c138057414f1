// riffle::Stream: a Kinesis data stream in process. N shards, each a lock-free ring of
// records; a record's partition key picks its shard through the 128-bit hash key (MD5 as
// the service does, or XXH3-128); records of one key are read in the order their puts
// returned. Records stay readable, and replayable from any retained sequence number, until
// retention (time, or the ring's capacity) trims them.
//
// Stream is a thin facade: validation and the AWS-shaped calls live here; the shard log
// (detail/shard_log.h), the shard set (detail/shard_set.h: routing, resharding, expiry,
// reclamation) and fan-out (src/stream/fanout.h) do the work.
//
// Thread safety: every method may be called from any thread at any time (put from one thread
// at a time with StreamOptions::single_producer). PutRecord and the GetRecords form that
// fills a caller-owned result take no lock and allocate nothing in steady state, and a put
// never waits for another producer (shard_log.h), except when a whole ring was claimed past
// a frame still being written. Control-plane calls take internal mutexes. Destroying a Stream while
// other threads call it is undefined; a Subscription may outlive it (it then ends, see
// subscription.h).
//
// Errors (status.h), worded as the service words them: ValidationException (a request
// member breaks its constraint), InvalidArgumentException, ResourceNotFoundException,
// ExpiredIteratorException, ProvisionedThroughputExceededException, LimitExceededException,
// ResourceInUseException.
#ifndef RIFFLE_STREAM_H_
#define RIFFLE_STREAM_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/clock.h"
#include "riffle/detail/epoch.h"
#include "riffle/detail/hash_key_cache.h"
#include "riffle/detail/read_path.h"
#include "riffle/detail/stream_core.h"
#include "riffle/hash_key.h"
#include "riffle/record_source.h"
#include "riffle/sequence_number.h"
#include "riffle/status.h"

namespace riffle {

enum class OverflowPolicy {
  // A full ring trims its oldest records (Kinesis retention). A reader that falls behind is
  // moved to the oldest retained record and told how many it missed.
  kTrimOldest,
  // A put that would overwrite records a lossless reader has not read yet fails with
  // ProvisionedThroughputExceededException (Disruptor-style gating); without lossless
  // readers the ring trims as with kTrimOldest.
  kRejectPut,
};

enum class StreamStatus { kCreating, kActive, kUpdating, kDeleting };
std::string_view StreamStatusName(StreamStatus status);  // "ACTIVE", ...

// A stream's capacity mode, encryption and enhanced monitoring: kept and reported by an
// Account (riffle/kinesis.h); a Stream alone reports the defaults.
enum class StreamMode { kProvisioned, kOnDemand };
std::string_view StreamModeName(StreamMode mode);  // "PROVISIONED", "ON_DEMAND"
enum class EncryptionType { kNone, kKms };
std::string_view EncryptionTypeName(EncryptionType type);  // "NONE", "KMS"
enum class ShardLevelMetric {
  kIncomingBytes,
  kIncomingRecords,
  kOutgoingBytes,
  kOutgoingRecords,
  kWriteProvisionedThroughputExceeded,
  kReadProvisionedThroughputExceeded,
  kIteratorAgeMilliseconds,
  kAll,  // in requests only: every metric above
};
std::string_view ShardLevelMetricName(ShardLevelMetric metric);  // "IncomingBytes", ...

// The service's default largest record (partition key + data).
inline constexpr uint64_t kDefaultMaxRecordSizeBytes = uint64_t{1} << 20;

struct StreamOptions {
  // Required: 1..128 characters of [a-zA-Z0-9_.-].
  std::string stream_name;
  // Open shards at creation, laid out uniformly over the hash key space. 1..shard_limit.
  int shard_count = 1;
  // Bytes of ring per shard: a power of two, more than 4 frames of the largest record
  // (8 MiB fits the default 1 MiB records), at most 8 GiB. Mapped lazily: untouched pages
  // cost nothing. Bounds retention together with time.
  uint64_t ring_capacity_bytes = uint64_t{8} << 20;
  // How long records stay readable: 24 h .. 8,760 h.
  absl::Duration retention_period = absl::Hours(24);
  RoutingMode routing = RoutingMode::kMd5;
  OverflowPolicy overflow_policy = OverflowPolicy::kTrimOldest;
  // The owner promises that at most one thread puts into this stream at a time (the usual
  // game and trading layout; PutRecordBlocking and PutRecords count as puts). Claims then
  // take no locked instruction. Default false. Debug builds abort on a concurrent put.
  bool single_producer = false;
  // Partition key + data, in bytes: 1 .. 10 MiB (the service's default is 1 MiB).
  uint64_t max_record_size_bytes = kDefaultMaxRecordSizeBytes;
  // Most open shards the stream may have (the service's shard quota counts open shards;
  // closed ones do not count while they wait to expire). Default 500.
  int shard_limit = 500;
  // How long an iterator stays valid after it is issued.
  absl::Duration iterator_lifetime = absl::Minutes(5);
  // Not owned; nullptr means SystemClock::Default(). Must outlive the stream.
  Clock* clock = nullptr;
  // Emulated duration of a reshard on `clock`: a reshard takes effect at once, then the
  // stream stays UPDATING (and refuses another reshard) until the clock passes this much
  // time. 0 .. 365 days; default zero: back to ACTIVE as soon as the call returns.
  absl::Duration reshard_duration = absl::ZeroDuration();

  // ---- Consumers (subscription.h, consumer.h) ----
  // Most enhanced fan-out consumers registered at once (LimitExceededException beyond).
  int max_stream_consumers = 20;
  // The shared-throughput budget of polling readers, per shard and counted on `clock`:
  // GetRecords beyond it fails with ProvisionedThroughputExceededException. Off (nullopt)
  // by default: in process, reads are meant to be fast; a test double turns it on to
  // exercise a caller's retry logic. Enhanced fan-out subscriptions are not charged.
  struct ReadBudget {
    int calls_per_second = 5;
    uint64_t bytes_per_second = uint64_t{2} << 20;
  };
  std::optional<ReadBudget> read_budget{};

  // ---- Identity: what the stream's ARNs and messages name ----
  // The stream's ARN is arn:aws:kinesis:<region>:<account_id>:stream/<stream_name> (the
  // service's form; consumer ARNs extend it). An Account sets both to its own.
  std::string region = "us-east-1";         // 1..64 characters of [a-z0-9-]
  std::string account_id = "000000000000";  // 12 digits

  // ---- The write limit (the service's per-shard write throughput) ----
  // Per shard, counted on `clock`: at most `bytes_per_second` (partition keys counted) and
  // `records_per_second`, with one second of burst; a put beyond either fails with
  // ProvisionedThroughputExceededException (in PutRecords, that entry alone). Off (nullopt)
  // by default: a put then pays one predictable branch for it. An Account with its limits
  // on sets it.
  struct WriteLimit {
    uint64_t bytes_per_second = uint64_t{1} << 20;
    int records_per_second = 1000;
  };
  std::optional<WriteLimit> write_limit{};
};

struct PutRecordRequest {
  std::string_view partition_key;  // 1..256 Unicode characters (valid UTF-8)
  std::string_view data;           // may be empty
  // Decimal 0..2^128-1; replaces the MD5 of the partition key for routing when not empty.
  std::string_view explicit_hash_key;
  // The previous record's number for this key; the new one is guaranteed to be larger.
  std::string_view sequence_number_for_ordering;
};

struct PutRecordResult {
  // A view of the shard's id, valid until the shard expires (its records aged out of
  // retention, so at least the retention period after the put) or the stream is destroyed:
  // copy it to keep it longer.
  std::string_view shard_id;
  SequenceNumber sequence_number;
};

struct PutRecordsRequestEntry {
  std::string_view partition_key;
  std::string_view data;
  std::string_view explicit_hash_key;
};

struct PutRecordsResultEntry {
  // On success: the shard (a view, valid as PutRecordResult::shard_id is) and the number.
  std::string_view shard_id;
  std::optional<SequenceNumber> sequence_number;
  // On failure: one of the status.h constants, only ever
  // kProvisionedThroughputExceededException or kInternalFailure, and the service's message.
  std::string_view error_code;
  std::string error_message;
};

// Reuse one across calls: a steady-state PutRecords into it allocates nothing.
struct PutRecordsResult {
  int failed_record_count = 0;
  std::vector<PutRecordsResultEntry> records;  // one per request entry, in request order
};

struct StreamDescriptionSummary {
  std::string stream_name;
  std::string stream_arn;
  StreamStatus stream_status = StreamStatus::kActive;
  int retention_period_hours = 24;
  absl::Time stream_creation_timestamp;
  int open_shard_count = 0;
  int consumer_count = 0;
  // Kept by an Account; a Stream alone reports these defaults.
  StreamMode stream_mode = StreamMode::kProvisioned;  // StreamModeDetails.StreamMode
  std::vector<ShardLevelMetric> enhanced_monitoring;  // EnhancedMonitoring's ShardLevelMetrics
  EncryptionType encryption_type = EncryptionType::kNone;
  std::string key_id;
};

// Memory and shard counts (Stream::Stats).
struct StreamStats {
  int open_shards = 0;
  int closed_shards = 0;        // closed, still within retention (readable)
  int live_shard_logs = 0;      // shard logs whose memory is still held
  uint64_t reserved_bytes = 0;  // ring bytes mapped by those logs
  uint64_t shards_created = 0;  // since creation (shard ids are this counter)
};

// ---- Resharding types (SplitShard, MergeShards, UpdateShardCount) ----

enum class ScalingType { kUniformScaling };

struct UpdateShardCountResult {
  std::string stream_name;
  int current_shard_count = 0;  // open shards before the call
  int target_shard_count = 0;
};

class Subscription;
struct SubscribeToShardRequest;
struct SubscribeToShardEvent;
struct SubscriptionOptions;
using SubscribeToShardHandler = std::function<void(const SubscribeToShardEvent&)>;

enum class ConsumerStatus { kCreating, kDeleting, kActive };
std::string_view ConsumerStatusName(ConsumerStatus status);  // "ACTIVE", ...

struct RegisterStreamConsumerOptions {
  // A lossless consumer gates the stream's producers: a put that would overwrite records
  // it has not read yet fails with ProvisionedThroughputExceededException (PutRecordBlocking
  // waits instead). Requires OverflowPolicy::kRejectPut. Default: false (a lapped consumer
  // is told how many records it missed).
  bool lossless = false;
};

struct ConsumerDescription {
  std::string consumer_name;
  std::string consumer_arn;
  ConsumerStatus consumer_status = ConsumerStatus::kActive;
  absl::Time consumer_creation_timestamp;
  std::string stream_arn;
  bool lossless = false;
};

class Stream final : public RecordSource {
 public:
  // Validates `options` (InvalidArgumentException naming the field and its limit);
  // LimitExceededException when the system refuses the ring memory.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Stream>> Create(StreamOptions options);
  ~Stream() override;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Appends one record to the shard that owns its hash key.
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(const PutRecordRequest& request);
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(std::string_view partition_key,
                                                          std::string_view data) {
    return PutRecord(PutRecordRequest{partition_key, data, {}, {}});
  }

  // 1..500 entries, 5 MiB in all including keys. As the service: a request with an invalid
  // entry is refused whole (ValidationException listing the members, or
  // InvalidArgumentException) and nothing is put; otherwise every entry is tried, and a
  // throttled one fails alone. `out` lists every entry in request order, replacing its
  // contents; reused, it makes the steady state allocate nothing.
  [[nodiscard]] absl::Status PutRecords(std::span<const PutRecordsRequestEntry> entries,
                                        PutRecordsResult& out);
  [[nodiscard]] absl::StatusOr<PutRecordsResult> PutRecords(
      std::span<const PutRecordsRequestEntry> entries);
  // The request-level checks of PutRecords alone: what would refuse `entries` whole.
  [[nodiscard]] absl::Status CheckPutRecords(std::span<const PutRecordsRequestEntry> entries) const;

  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      const GetShardIteratorRequest& request) override;

  // Reads up to `limit` (1..10,000) records and at most 10 MiB into `out`, replacing its
  // contents. Allocates nothing once `out` has grown to its working size.
  [[nodiscard]] absl::Status GetRecords(const ShardIterator& iterator, GetRecordsResult& out,
                                        int limit) override;
  [[nodiscard]] absl::Status GetRecords(const ShardIterator& iterator, GetRecordsResult& out) {
    return GetRecords(iterator, out, detail::kMaxGetRecordsLimit);
  }
  [[nodiscard]] absl::StatusOr<GetRecordsResult> GetRecords(const ShardIterator& iterator,
                                                            int limit = 10000);
  [[nodiscard]] absl::StatusOr<ShardIterator> RenewShardIterator(
      const ShardIterator& iterator) override;
  // The latest 1,024 shards that expired are remembered.
  std::optional<uint64_t> ClosedShardRecordCount(std::string_view shard_id) const override;

  [[nodiscard]] absl::StatusOr<std::vector<Shard>> ListShards(
      const ListShardsRequest& request) const override;
  [[nodiscard]] absl::StatusOr<std::vector<Shard>> ListShards() const {
    return ListShards(ListShardsRequest{});
  }
  StreamDescriptionSummary DescribeStreamSummary() const;
  [[nodiscard]] absl::Status IncreaseStreamRetentionPeriod(int retention_period_hours);
  [[nodiscard]] absl::Status DecreaseStreamRetentionPeriod(int retention_period_hours);

  // Shard and memory figures. Also frees shards that expired (as every control-plane call).
  StreamStats Stats();

  // ---- Resharding (src/stream/reshard.cc). Producers never block on these: a put racing
  // a reshard lands in the parent before its EndingSequenceNumber or in the right child.
  // Each needs the stream ACTIVE (ResourceInUseException while UPDATING) and leaves it
  // UPDATING for options().reshard_duration. Closed shards are freed once they expire.

  // Closes an open shard and opens two children, [start, key - 1] and [key, end], which
  // take the next shard ids (the lower range the lower id) and name it as parent.
  // REQUIRED: StartingHashKey + 1 < new_starting_hash_key < EndingHashKey.
  [[nodiscard]] absl::Status SplitShard(std::string_view shard_to_split,
                                        std::string_view new_starting_hash_key);
  // Closes two open shards with contiguous ranges and opens one child over both, naming
  // shard_to_merge as ParentShardId and the other as AdjacentParentShardId. shard_to_merge
  // is the lower range, as the service requires (InvalidArgumentException otherwise).
  [[nodiscard]] absl::Status MergeShards(std::string_view shard_to_merge,
                                         std::string_view adjacent_shard_to_merge);
  // Splits and merges until the open shards are exactly UniformHashKeyRanges(target).
  // REQUIRED: target within [half, double] of the open count and at most shard_limit.
  [[nodiscard]] absl::StatusOr<UpdateShardCountResult> UpdateShardCount(
      int target_shard_count, ScalingType scaling_type = ScalingType::kUniformScaling);
  // ---- end of resharding ----

  // ---- Enhanced fan-out (src/stream/fanout.cc, subscription.h) ----
  // Names are 1..128 characters of [a-zA-Z0-9_.-]; at most options().max_stream_consumers
  // (LimitExceededException); a registered name is ResourceInUseException. A lossless
  // consumer on a kTrimOldest stream is InvalidArgumentException (naming OverflowPolicy):
  // that policy promises producers never wait. A lossless consumer's gates start at each
  // shard's end of log at registration (it holds what is put from then on).
  [[nodiscard]] absl::StatusOr<ConsumerDescription> RegisterStreamConsumer(
      std::string_view consumer_name, RegisterStreamConsumerOptions options = {});
  // Ends the consumer's subscriptions (at their next poll) and releases its gates.
  [[nodiscard]] absl::Status DeregisterStreamConsumer(std::string_view consumer_name_or_arn);
  [[nodiscard]] absl::StatusOr<ConsumerDescription> DescribeStreamConsumer(
      std::string_view consumer_name_or_arn) const;
  std::vector<ConsumerDescription> ListStreamConsumers() const;  // registration order
  // Pushes a shard's records to `handler` (see subscription.h).
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      const SubscribeToShardRequest& request, SubscribeToShardHandler handler,
      const SubscriptionOptions& options);
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      const SubscribeToShardRequest& request, SubscribeToShardHandler handler);
  // PutRecord that, while a lossless consumer has not read the space it needs, waits for
  // that consumer's progress (no busy loop) up to `timeout` of clock time instead of failing.
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecordBlocking(
      const PutRecordRequest& request, absl::Duration timeout = absl::InfiniteDuration());

  // The open shard that owns `hash_key` now: a view of its id, valid until that shard expires
  // (its records aged out of retention after a reshard closed it) or the stream is destroyed.
  std::string_view ShardIdForHashKey(HashKey hash_key) const;

  const std::string& name() const override { return options_.stream_name; }
  const std::string& arn() const { return core_->arn; }
  Clock& clock() const override { return *core_->clock; }
  absl::Duration iterator_lifetime() const override { return options_.iterator_lifetime; }
  const StreamOptions& options() const { return options_; }
  uint64_t stream_tag() const { return core_->tag; }

 private:
  Stream(StreamOptions options, std::shared_ptr<detail::StreamCore> core);

  absl::Status PutError(const PutRecordRequest& request) const;  // the cold path of PutRecord
  // Routes and appends one checked record whose hash key is known (PutRecord, PutRecords).
  // REQUIRES: an EpochGuard.
  absl::StatusOr<PutRecordResult> PutHashed(std::string_view key, std::string_view data,
                                            HashKey hash_key, int64_t now_ms);
  // The write limit's charge (cold: only when options().write_limit is set).
  absl::Status ChargeWrite(const detail::ShardState& shard, uint64_t bytes, int64_t now_ms);
  void RefundWrite(const detail::ShardState& shard, uint64_t bytes);  // not written after all
  absl::Status ShardFullError(const detail::ShardState& shard) const;
  absl::Status GetRecordsBudgeted(const ShardIterator& iterator, GetRecordsResult& out, int limit);
  absl::Status ChangeRetention(int hours, bool increase);
  Shard Describe(const detail::ShardState& shard) const;

  // ---- Resharding internals (src/stream/reshard.cc) ----
  struct ReshardPlan;
  // ResourceInUseException while a reshard's emulated duration runs.
  absl::Status CheckActiveForReshard(int64_t now_ms) const;
  // Publishes the plan's layout, then closes its parents. REQUIRES: reshard_mu held.
  absl::Status CommitReshard(ReshardPlan& plan);
  // ACTIVE, or UPDATING while a reshard's emulated duration runs.
  StreamStatus CurrentStatus(int64_t now_ms) const;
  std::atomic<int64_t> updating_until_ms_{0};

  const StreamOptions options_;
  const std::shared_ptr<detail::StreamCore> core_;
  const absl::Time created_at_;
  std::mutex retention_mu_;
};

// ---- Hot paths, inline so that they compile into the caller. ----

inline absl::StatusOr<PutRecordResult> Stream::PutRecord(const PutRecordRequest& request) {
  detail::StreamCore& core = *core_;
  const std::string_view key = request.partition_key;
  const std::string_view data = request.data;
  // The clock first: its read (rdtsc) then overlaps the checks and the hash.
  const int64_t now_ms = core.PutTimeMillis();
  // Fast checks first; anything unusual goes to the cold path, which names the problem.
  if (key.size() + data.size() > core.max_record_bytes || !ValidatePartitionKey(key).ok() ||
      !request.explicit_hash_key.empty() || !request.sequence_number_for_ordering.empty()) {
    absl::Status error = PutError(request);
    if (!error.ok()) return error;
  }
  HashKey hash_key;
  if (!request.explicit_hash_key.empty()) {
    hash_key = *ParseHashKey(request.explicit_hash_key);  // validated by PutError
  } else if (core.routing == RoutingMode::kMd5) {
    hash_key = detail::CachedMd5HashKey(key);
  } else {
    hash_key = Xxh3HashKey(key);
  }
  detail::EpochGuard guard;
  return PutHashed(key, data, hash_key, now_ms);
}

[[gnu::always_inline]] inline absl::StatusOr<PutRecordResult> Stream::PutHashed(
    std::string_view key, std::string_view data, HashKey hash_key, int64_t now_ms) {
  detail::StreamCore& core = *core_;
  for (;;) {
    detail::ShardState* shard = core.shards.snapshot().Route(hash_key);
    if (core.write_limited) [[unlikely]] {
      if (absl::Status s = ChargeWrite(*shard, key.size() + data.size(), now_ms); !s.ok()) return s;
    }
    detail::AppendResult r;
    const detail::AppendStatus status = shard->log.Append(key, data, now_ms, r);
    if (status == detail::AppendStatus::kOk) {
      if (core.wake.sleepers.load(std::memory_order_seq_cst) != 0) core.wake.WakeAll();
      return PutRecordResult{shard->id,
                             core.MakeSequenceNumber(shard->index, r.position, r.record_index)};
    }
    if (core.write_limited) [[unlikely]]
      RefundWrite(*shard, key.size() + data.size());
    if (status == detail::AppendStatus::kFull) return ShardFullError(*shard);
    // kClosed: a reshard closed the shard after publishing its children; route again.
  }
}

inline absl::Status Stream::GetRecords(const ShardIterator& iterator, GetRecordsResult& out,
                                       int limit) {
  if (options_.read_budget) return GetRecordsBudgeted(iterator, out, limit);  // cold
  if (limit < 1 || limit > detail::kMaxGetRecordsLimit) return detail::GetRecordsLimitError(limit);
  const detail::StreamCore& core = *core_;
  const int64_t now_ms = core.clock->NowMillis();
  detail::EpochGuard guard;
  const detail::ShardState* shard = detail::ShardForIterator(core, iterator, now_ms);
  if (shard == nullptr) return detail::IteratorError(core, iterator, now_ms);
  detail::ReadShard(core, *shard, iterator, out, limit, now_ms);
  return absl::OkStatus();
}

inline absl::StatusOr<GetRecordsResult> Stream::GetRecords(const ShardIterator& iterator,
                                                           int limit) {
  GetRecordsResult result;
  absl::Status s = GetRecords(iterator, result, limit);
  if (!s.ok()) return s;
  return result;
}

}  // namespace riffle

#endif  // RIFFLE_STREAM_H_
