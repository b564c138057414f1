// The checks of put requests, iterators and iterator requests that every backend shares, so
// that riffle::Stream and the Kafka-backed stream answer the same input with the same error
// name and message. Defined in src/stream/stream_put.cc (puts) and stream.cc (iterators).
#ifndef RIFFLE_STREAM_REQUEST_CHECKS_H_
#define RIFFLE_STREAM_REQUEST_CHECKS_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/validation.h"
#include "riffle/record_source.h"
#include "riffle/stream.h"

namespace riffle::detail {

// The checks of a PutRecord request that need no stream state but its largest record:
// ValidationException for member constraints (worded as the service words them),
// InvalidArgumentException for a key that is not UTF-8, a record over `max_record_bytes`
// or an ExplicitHashKey outside [0, 2^128-1]. SequenceNumberForOrdering is checked for
// form only: whether it came from the stream is the stream's to say.
absl::Status CheckPutRecordRequest(const PutRecordRequest& request, uint64_t max_record_bytes);
// Its member constraints alone, recorded in `v` (for callers that check them before the
// stream is looked up, with the stream's name among them).
void AddPutRecordViolations(const PutRecordRequest& request, uint64_t max_record_bytes,
                            Violations& v);

// The checks of a PutRecords request that refuse it whole: 1 to 500 entries, at most 5 MiB,
// and every entry valid (one invalid entry refuses the request, as the service does).
absl::Status CheckPutRecordsRequest(std::span<const PutRecordsRequestEntry> entries,
                                    uint64_t max_record_bytes);
// Its member constraints alone (records 1..500, each entry's members), recorded in `v`.
void AddPutRecordsViolations(std::span<const PutRecordsRequestEntry> entries,
                             uint64_t max_record_bytes, Violations& v);

// Enum members the service checks against their value set: each records a violation
// (ValidationException, "Member must satisfy enum value set") when the member holds none
// of its enumerators, an integer cast to the enum type. Named as in the service's requests.
void CheckShardIteratorType(ShardIteratorType type, Violations& v);  // shardIteratorType
void CheckShardFilterType(ShardFilterType type, Violations& v);      // shardFilter.type
void CheckScalingType(ScalingType type, Violations& v);              // scalingType
void CheckStreamMode(StreamMode mode, Violations& v);                // streamModeDetails.streamMode

// ValidationException for member constraints (shardId, shardIteratorType,
// startingSequenceNumber); InvalidArgumentException when the request's members do not fit
// its ShardIteratorType (a sequence number for AT_/AFTER_SEQUENCE_NUMBER only, a timestamp
// for AT_TIMESTAMP only).
absl::Status CheckIteratorRequest(const GetShardIteratorRequest& request);
// Its member constraints alone, recorded in `v`.
void AddIteratorViolations(const GetShardIteratorRequest& request, Violations& v);

// ValidationException for a ShardFilter type outside the enum; InvalidArgumentException when
// a ListShards request's ShardFilter lacks the member its type needs, or its ShardId does
// not parse. Returns the shard index to list after
// (nullopt: from the first).
absl::StatusOr<std::optional<uint64_t>> CheckListShardsRequest(const ListShardsRequest& request);

// The member constraints of Increase/DecreaseStreamRetentionPeriod, SplitShard and
// MergeShards (ValidationException), which the service checks before it looks the stream up.
absl::Status CheckRetentionHours(int hours);
absl::Status CheckSplitShardRequest(std::string_view shard_to_split,
                                    std::string_view new_starting_hash_key);
absl::Status CheckMergeShardsRequest(std::string_view shard_to_merge,
                                     std::string_view adjacent_shard_to_merge);
void AddSplitShardViolations(std::string_view shard_to_split,
                             std::string_view new_starting_hash_key, Violations& v);
void AddMergeShardsViolations(std::string_view shard_to_merge,
                              std::string_view adjacent_shard_to_merge, Violations& v);

// InvalidArgumentException "Invalid ShardIterator.", the service's words for an iterator
// the stream did not issue (altered, forged, another stream's).
absl::Status IteratorNotIssuedError();

// ExpiredIteratorException when `it` is older than `lifetime_ms` at `now_ms`; OK otherwise.
// An iterator issued "in the future" (a clock set back) is not expired.
absl::Status IteratorAgeError(const ShardIterator& it, int64_t now_ms, int64_t lifetime_ms);

}  // namespace riffle::detail

#endif  // RIFFLE_STREAM_REQUEST_CHECKS_H_
