// The read side of a stream: shards with their lineage, iterators, records, and the
// RecordSource interface through which LineageReader, Consumer and a DeliveryStream's
// stream source read. riffle::Stream implements it in process; another backend (a
// Kafka-backed stream) implements the same calls, and everything built on them runs
// unchanged.
//
// Thread safety (contract for implementers): every method may be called from any thread.
#ifndef RIFFLE_RECORD_SOURCE_H_
#define RIFFLE_RECORD_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/clock.h"
#include "riffle/hash_key.h"
#include "riffle/sequence_number.h"

namespace riffle {

// Where a reader starts in a shard (GetShardIterator's ShardIteratorType; the same five
// positions start a subscription and a Consumer's shards).
enum class ShardIteratorType {
  kAtSequenceNumber,     // a record's number (or, to subscribe, a ContinuationSequenceNumber)
  kAfterSequenceNumber,  // a record's number
  kAtTimestamp,          // the first record that arrived at or after a time
  kTrimHorizon,          // the oldest retained record
  kLatest,               // just after the newest record
};
std::string_view ShardIteratorTypeName(ShardIteratorType type);  // "TRIM_HORIZON", ...

// A start position: the one type for iterators, subscriptions and consumers.
struct StartingPosition {
  ShardIteratorType type = ShardIteratorType::kLatest;
  std::string sequence_number{};          // AT_/AFTER_SEQUENCE_NUMBER only
  std::optional<absl::Time> timestamp{};  // AT_TIMESTAMP only
};
// The names the subscription API used; the same type.
using StartingPositionType = ShardIteratorType;

struct GetShardIteratorRequest {
  std::string_view shard_id;
  ShardIteratorType type = ShardIteratorType::kTrimHorizon;
  std::string_view starting_sequence_number;  // AT_/AFTER_SEQUENCE_NUMBER only
  std::optional<absl::Time> timestamp;        // AT_TIMESTAMP only
};

struct Record {
  std::string_view partition_key;
  std::string_view data;
  SequenceNumber sequence_number;
  absl::Time approximate_arrival_timestamp;  // millisecond precision
};

struct ChildShard {
  std::string shard_id;
  std::vector<std::string> parent_shards;
  HashKeyRange hash_key_range;
};

class GetRecordsResult;
namespace detail {
struct RecordsStorage;
}  // namespace detail

// What GetRecords returns. Reuse one per reader: its buffers keep their capacity, so a
// steady-state GetRecords allocates nothing. Records point into this object and stay valid
// until the next GetRecords into it (a move keeps them valid; copying is not allowed).
class GetRecordsResult {
 public:
  GetRecordsResult() = default;
  GetRecordsResult(GetRecordsResult&&) noexcept = default;
  GetRecordsResult& operator=(GetRecordsResult&&) noexcept = default;
  GetRecordsResult(const GetRecordsResult&) = delete;
  GetRecordsResult& operator=(const GetRecordsResult&) = delete;

  std::vector<Record> records;
  // Empty once a closed shard has been read to its end.
  std::optional<ShardIterator> next_shard_iterator;
  int64_t millis_behind_latest = 0;
  // Records between the iterator and what this call returned that were trimmed by retention
  // (time or ring capacity) before this reader got to them. 0 for a reader that keeps up.
  uint64_t missed_records = 0;
  std::vector<ChildShard> child_shards;  // at the end of a closed shard

 private:
  friend struct detail::RecordsStorage;
  // Frames copied out of the shard (layout in detail/frame.h) that `records` point into,
  // and for each its (arena word, log position).
  std::vector<uint64_t> arena_;
  std::vector<std::pair<std::size_t, uint64_t>> frames_;
};

struct SequenceNumberRange {
  SequenceNumber starting_sequence_number;
  std::optional<SequenceNumber> ending_sequence_number;  // set once the shard is closed
};

// A shard as ListShards describes it.
struct Shard {
  std::string shard_id;
  std::optional<std::string> parent_shard_id;
  std::optional<std::string> adjacent_parent_shard_id;
  HashKeyRange hash_key_range;
  SequenceNumberRange sequence_number_range;
};

enum class ShardFilterType {
  kAfterShardId,
  kAtTrimHorizon,
  kFromTrimHorizon,
  kAtLatest,
  kAtTimestamp,
  kFromTimestamp,
};

struct ListShardsRequest {
  std::optional<ShardFilterType> filter;  // none: every shard not yet expired
  std::string_view shard_id;              // kAfterShardId; also ExclusiveStartShardId
  std::optional<absl::Time> timestamp;    // kAtTimestamp, kFromTimestamp
};

// The read side of a stream. Errors carry the service's names (status.h):
// ResourceNotFoundException for a shard that does not exist (or expired),
// ExpiredIteratorException, InvalidArgumentException for a malformed or foreign position,
// ProvisionedThroughputExceededException when a read budget is exhausted.
class RecordSource {
 public:
  virtual ~RecordSource() = default;

  virtual const std::string& name() const = 0;
  virtual Clock& clock() const = 0;
  // How long an iterator from GetShardIterator or GetRecords stays valid.
  virtual absl::Duration iterator_lifetime() const = 0;

  // Every shard not yet expired (parents with their children), filtered as requested.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Shard>> ListShards(
      const ListShardsRequest& request) const = 0;
  [[nodiscard]] virtual absl::StatusOr<ShardIterator> GetShardIterator(
      const GetShardIteratorRequest& request) = 0;
  // Reads up to `limit` (1..10,000) records into `out`, replacing its contents.
  [[nodiscard]] virtual absl::Status GetRecords(const ShardIterator& iterator,
                                                GetRecordsResult& out, int limit) = 0;
  // The same position with a fresh lifetime, for a reader that keeps reading the shard (the
  // lineage engine renews before an iterator expires). InvalidArgumentException for an
  // iterator this source did not issue; works on an expired one.
  [[nodiscard]] virtual absl::StatusOr<ShardIterator> RenewShardIterator(
      const ShardIterator& iterator) = 0;
  // How many records a closed shard held (the index after its last), also once it aged out
  // of retention and the calls above answer ResourceNotFoundException for it: a reader
  // counts what it had not read as missed. nullopt when unknown (the default).
  virtual std::optional<uint64_t> ClosedShardRecordCount(std::string_view shard_id) const {
    (void)shard_id;
    return std::nullopt;
  }
};

namespace detail {

// Access to a GetRecordsResult's storage for the code that fills it: the shard log's read
// path, and other backends (through AppendRecord).
struct RecordsStorage {
  static std::vector<uint64_t>& arena(GetRecordsResult& r) { return r.arena_; }
  static std::vector<std::pair<std::size_t, uint64_t>>& frames(GetRecordsResult& r) {
    return r.frames_;
  }
  // Clears the records and the storage, keeping capacity.
  static void Reset(GetRecordsResult& r);
  // For a backend other than the ring: stages a copy of one record. Call BuildRecords()
  // after the last one (views are made once the storage stops growing).
  static void AppendRecord(GetRecordsResult& r, uint64_t position, uint64_t record_index,
                           int64_t arrival_ms, std::string_view key, std::string_view data);
  // Makes `records` from every staged frame: sequence numbers {stream_tag, shard_index,
  // position, record index}.
  static void BuildRecords(GetRecordsResult& r, uint64_t stream_tag, uint64_t shard_index);
};

}  // namespace detail
}  // namespace riffle

#endif  // RIFFLE_RECORD_SOURCE_H_
