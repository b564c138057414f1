// KPL aggregation and KCL de-aggregation, byte for byte as the AWS libraries do them.
//
// Producers written for AWS pack many small user records into one Kinesis record (the
// Kinesis Producer Library's format) to get past a shard's 1,000 records/s write limit;
// consumers (the KCL) unpack them. An aggregated record's data is
//
//   F3 89 9A C2 | AggregatedRecord (protobuf, proto2) | MD5 of the AggregatedRecord bytes
//
//   AggregatedRecord { repeated string partition_key_table = 1;
//                      repeated string explicit_hash_key_table = 2; repeated Record records = 3; }
//   Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
//            required bytes data = 3; repeated Tag tags = 4; }
//   Tag { required string key = 1; optional string value = 2; }
//
// Producer side: an Aggregator packs user records by predicted shard; a Producer puts the
// aggregates with PutRecords, retries throttled ones and re-sends what a reshard sent to a
// shard that does not own it. Consumer side: Deaggregate() unpacks one record; a
// Deaggregator plugs into Consumer, LineageReader and subscriptions (DeaggregatingHandler).
//
//   riffle::kpl::Deaggregator deaggregator;              // counts what it drops
//   consumer_options.deaggregator = &deaggregator;       // processors see user records
//
// docs/kpl.md: the rules, the options, compatibility and the measured figures.
#ifndef RIFFLE_KPL_H_
#define RIFFLE_KPL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/clock.h"
#include "riffle/hash_key.h"
#include "riffle/record_source.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"
#include "riffle/user_record.h"

namespace riffle::kpl {

// The first four bytes of an aggregated record's data.
inline constexpr std::string_view kMagic = "\xF3\x89\x9A\xC2";
// The MD5 that ends it.
inline constexpr std::size_t kDigestBytes = 16;
// The KPL's default AggregationMaxSize.
inline constexpr uint64_t kDefaultMaxAggregateBytes = 51200;
// The partition key of every aggregate of two or more records (the KPL's; routing uses the
// explicit hash key).
inline constexpr std::string_view kAggregatePartitionKey = "a";

// ---- De-aggregation (the KCL's side) ----

// What one Kinesis record turned out to be.
enum class RecordKind : uint8_t {
  // Passed through untouched: one user record, sub-sequence number 0, aggregated = false.
  // Anything whose magic, length, MD5 or protobuf does not check out is such a record.
  kNotAggregated,
  // An aggregate: its user records.
  kAggregate,
  // An aggregate holding a user record whose hash key is outside the range of the shard it
  // was read from (a producer predicted its shard from a stale shard map): dropped whole,
  // as the KCL drops it, unless DeaggregationOptions::deliver_misplaced.
  kMisplacedAggregate,
};

struct DeaggregationOptions {
  // Deliver the user records of misplaced aggregates instead of dropping them. The KCL
  // drops them (the KPL re-sends such records, see Producer), so delivering them usually
  // means delivering those records twice. Default false.
  bool deliver_misplaced = false;
};

// Parses `data` as an aggregate. True when the magic, the length, the MD5, the protobuf
// and every table index check out: its user records are appended to `out` (partition key,
// explicit hash key and data as views into `data`; sub-sequence numbers 0, 1, ...;
// aggregated = true; sequence number and arrival time left default). False otherwise,
// with `out` unchanged. Takes any bytes (a fuzz target's entry point); never throws;
// allocates only when `out` grows.
bool DecodeAggregate(std::string_view data, std::vector<UserRecord>& out);

// The user records of one Kinesis record read from a shard owning `shard_range`, appended
// to `out` with the record's sequence number and arrival time. The default range (the
// whole key space) checks nothing.
RecordKind Deaggregate(const Record& record, std::vector<UserRecord>& out,
                       const HashKeyRange& shard_range = {},
                       const DeaggregationOptions& options = {});

// Counts kept by a Deaggregator, from its creation.
struct DeaggregatorStats {
  uint64_t records = 0;               // Kinesis records decoded
  uint64_t aggregates = 0;            // of which aggregates (misplaced ones included)
  uint64_t user_records = 0;          // user records delivered
  uint64_t misplaced_aggregates = 0;  // aggregates with a user record outside the shard
  uint64_t dropped_user_records = 0;  // user records of misplaced aggregates not delivered
};

// The KPL format for Consumer, LineageReader and subscriptions (a UserRecordDecoder).
// Decoding a batch checks the MD5s of its aggregates together, several per instruction
// where the processor has vector lanes (AVX2, AVX-512), which is several times faster
// than one Deaggregate() call per record. Allocates nothing once `out` and the calling
// thread's scratch space have grown.
// Thread safety: Decode and stats() may be called from any thread.
class Deaggregator final : public UserRecordDecoder {
 public:
  explicit Deaggregator(DeaggregationOptions options = {}) : options_(options) {}

  void Decode(std::span<const Record> records, const HashKeyRange& shard_range,
              std::vector<UserRecord>& out) const override;

  DeaggregatorStats stats() const;
  const DeaggregationOptions& options() const { return options_; }

 private:
  DeaggregationOptions options_;
  mutable std::atomic<uint64_t> records_{0};
  mutable std::atomic<uint64_t> aggregates_{0};
  mutable std::atomic<uint64_t> user_records_{0};
  mutable std::atomic<uint64_t> misplaced_aggregates_{0};
  mutable std::atomic<uint64_t> dropped_user_records_{0};
};

// A subscription handler's view with de-aggregation: `event` as pushed, except that its
// records are the user records (an aggregate's share its sequence number); `user_records`
// are the same records with their sub-sequence numbers. Valid during the call.
using UserRecordsHandler = std::function<void(const SubscribeToShardEvent& event,
                                              std::span<const UserRecord> user_records)>;

// Wraps `handler` for Stream::SubscribeToShard. `shard_range`: the subscribed shard's
// (from ListShards). REQUIRED, not owned: `decoder` outlives the subscription.
SubscribeToShardHandler DeaggregatingHandler(const UserRecordDecoder& decoder,
                                             HashKeyRange shard_range, UserRecordsHandler handler);

// ---- Aggregation (the KPL's side) ----

// `records` (at least one, each valid) as one aggregate, exactly as the KPL and the AWS
// aggregation libraries encode it: each distinct partition key and explicit hash key once
// in its table, in order of first use; the tables, then the records; no tags.
std::string EncodeAggregate(std::span<const PutRecordsRequestEntry> records);

struct AggregatorOptions {
  // Largest aggregate, in bytes of record data (magic, protobuf and MD5): the KPL's
  // AggregationMaxSize. 64 .. 1 MiB. Default 51,200. Larger aggregates need fewer puts
  // per user record but wait longer to fill and are re-sent whole after a reshard.
  uint64_t max_aggregate_bytes = kDefaultMaxAggregateBytes;
  // Most user records in one aggregate: the KPL's AggregationMaxCount. At least 1.
  // Default 4,294,967,295.
  uint64_t max_aggregate_records = 4294967295;
  // Largest user record, partition key plus data (the stream's record limit). Default 1 MiB.
  // An aggregate with its partition key stays within it too, whatever max_aggregate_bytes.
  uint64_t max_record_bytes = uint64_t{1} << 20;
  // Not owned; nullptr means SystemClock::Default(). Must outlive the aggregator. Only
  // FlushOlderThan reads it.
  Clock* clock = nullptr;
};

// A Kinesis record ready to put: an aggregate, or a user record sent alone.
struct Aggregate {
  std::string shard_id;           // the predicted shard; empty without a prediction
  std::string partition_key;      // kAggregatePartitionKey, or a lone user record's own
  std::string explicit_hash_key;  // decimal: the (first) user record's hash key
  std::string data;               // the aggregate, or a lone user record's data
  uint64_t user_records = 0;
  // The lowest and highest hash key of its user records: the aggregate is delivered by the
  // KCL only from a shard whose range holds both.
  HashKey min_hash_key = 0;
  HashKey max_hash_key = 0;

  // The PutRecords entry (views into this aggregate).
  PutRecordsRequestEntry Entry() const { return {partition_key, data, explicit_hash_key}; }
};

// Packs user records into aggregates as the KPL does: one open aggregate per predicted
// shard; a record that would make it exceed max_aggregate_bytes or max_aggregate_records
// closes it first; an aggregate of one record is sent as that record (raw). A record's
// hash key is the MD5 of its partition key or its explicit hash key, as Kinesis routes it;
// the aggregate goes out with the first record's as its explicit hash key, so it lands on
// that record's shard.
// Thread safety: one thread at a time.
class Aggregator {
 public:
  // InvalidArgumentException for options out of range.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Aggregator>> Create(
      AggregatorOptions options);
  ~Aggregator();
  Aggregator(const Aggregator&) = delete;
  Aggregator& operator=(const Aggregator&) = delete;

  // Predicts shards from `shards` (ListShards; the open ones count). Without a map, or
  // for a hash key no open shard holds, records go alone, as the KPL sends them without
  // one. Open aggregates whose shard is no longer open with the same range are unpacked
  // and their records added again; aggregates this closes are appended to `ready`.
  void SetShardMap(std::span<const Shard> shards, std::vector<Aggregate>& ready);

  // Adds one user record; aggregates it closes are appended to `ready`.
  // InvalidArgumentException (nothing added) for a partition key of other than 1..256
  // characters, a malformed explicit hash key, or key plus data over max_record_bytes.
  [[nodiscard]] absl::Status Add(const PutRecordsRequestEntry& record,
                                 std::vector<Aggregate>& ready);

  // Closes every open aggregate into `ready`.
  void Flush(std::vector<Aggregate>& ready);
  // Closes the open aggregates whose first record was added `age` or longer ago.
  void FlushOlderThan(absl::Duration age, std::vector<Aggregate>& ready);

  // User records in open aggregates.
  uint64_t buffered_records() const { return buffered_records_; }
  const AggregatorOptions& options() const { return options_; }

 private:
  struct Bucket;
  explicit Aggregator(AggregatorOptions options);
  // Adds a validated record to the open aggregate of `shard`.
  void AddTo(const std::string& shard_id, HashKey hash_key, const PutRecordsRequestEntry& record,
             std::vector<Aggregate>& ready);
  void Close(Bucket& bucket, std::vector<Aggregate>& ready);
  // The most data an aggregate may hold: max_aggregate_bytes, or less where the aggregate
  // with its partition key would be over max_record_bytes.
  uint64_t AggregateBytesLimit() const {
    return std::min(options_.max_aggregate_bytes,
                    options_.max_record_bytes - kAggregatePartitionKey.size());
  }

  AggregatorOptions options_;
  Clock& clock_;
  // Open shards by starting hash key (the shard map).
  std::map<HashKey, std::pair<HashKeyRange, std::string>> open_shards_;
  std::map<std::string, std::unique_ptr<Bucket>, std::less<>> buckets_;
  uint64_t buffered_records_ = 0;
};

// PutRecords, or what fronts it (a rate-limited account, a test's fault injection).
using PutRecordsFunction = std::function<absl::StatusOr<PutRecordsResult>(
    std::span<const PutRecordsRequestEntry> entries)>;

struct ProducerOptions {
  // REQUIRED, not owned: the stream to put to (and list shards of). Must outlive the
  // producer.
  Stream* stream = nullptr;
  // How records are packed. Its clock defaults to the stream's.
  AggregatorOptions aggregation{};
  // How long a user record may wait for its aggregate to fill: the KPL's
  // RecordMaxBufferedTime. Default 100 ms (clock time). Longer: fuller aggregates, fewer
  // puts, more latency.
  absl::Duration max_buffered_time = absl::Milliseconds(100);
  // Empty (default): stream->PutRecords.
  PutRecordsFunction put_records{};
};

// Counts kept by a Producer, from its creation.
struct ProducerStats {
  uint64_t user_records_added = 0;
  // Put where a KCL will deliver them (acknowledged).
  uint64_t user_records_put = 0;
  uint64_t kinesis_records_put = 0;  // aggregates and lone records acknowledged
  uint64_t put_records_calls = 0;
  // PutRecords entries that failed (ProvisionedThroughputExceededException,
  // InternalFailure) and wait to be retried.
  uint64_t failed_entries = 0;
  // Aggregates that landed on a shard whose range does not hold all their user records
  // (the KPL's "Wrong Shard"): their user records were packed and sent again.
  uint64_t misplaced_aggregates = 0;
};

// A host-driven KPL: Add() packs user records, Poll() puts what is ready.
//
//   auto producer = riffle::kpl::Producer::Create({.stream = stream.get()});
//   (void)(*producer)->Add({"user-42", payload});
//   while ((*producer)->pending_user_records() > 0) (*producer)->Poll();
//
// Delivery is at-least-once; user records of one key keep their order unless a put is
// retried or re-sent (as with the KPL). An aggregate lands on the shard of its explicit
// hash key; when a reshard made that shard's range miss some of its user records, the KCL
// drops it, so the Producer packs those user records again with a fresh shard map and
// sends them again (the KPL's "Wrong Shard" retry). It compares ranges, not shard ids, so
// an aggregate that a merged child holds whole is not sent twice.
// Thread safety: one thread at a time.
class Producer {
 public:
  // Lists the stream's shards for the first shard map. InvalidArgumentException for bad
  // options; errors of ListShards.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Producer>> Create(ProducerOptions options);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Adds one user record (Aggregator::Add's errors).
  [[nodiscard]] absl::Status Add(const PutRecordsRequestEntry& record);
  // One host-driven step: closes aggregates older than max_buffered_time, then puts up to
  // 500 ready records (5 MiB) in one PutRecords. Failed entries are retried at the next
  // Poll, misplaced aggregates re-packed. Returns the user records acknowledged.
  size_t Poll();
  // Closes every open aggregate, so that the next Polls send everything added so far.
  void Flush();

  // Added and not yet acknowledged.
  uint64_t pending_user_records() const;
  ProducerStats stats() const { return stats_; }
  // OK, or the error of the last Poll() that could not put or list shards.
  absl::Status last_error() const { return status_; }

 private:
  explicit Producer(ProducerOptions options, std::unique_ptr<Aggregator> aggregator);
  absl::Status RefreshShards();
  // The range of a shard of the stream (listing again for one not seen yet).
  std::optional<HashKeyRange> RangeOf(std::string_view shard_id);
  void Repack(const Aggregate& aggregate);

  ProducerOptions options_;
  std::unique_ptr<Aggregator> aggregator_;
  std::deque<Aggregate> ready_;
  std::vector<Aggregate> closed_;                            // scratch for the aggregator's outputs
  std::map<std::string, HashKeyRange, std::less<>> ranges_;  // every listed shard
  ProducerStats stats_;
  absl::Status status_;
};

}  // namespace riffle::kpl

#endif  // RIFFLE_KPL_H_
