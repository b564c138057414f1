// The KPL format's two halves, shared by the Aggregator, the Producer and the decoders:
// AggregateBuilder writes an aggregate one user record at a time, knowing its exact size
// before each record is added; the parse and range-check functions read one.
#ifndef RIFFLE_KPL_CODEC_H_
#define RIFFLE_KPL_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/md5_lanes.h"
#include "kpl/protobuf.h"
#include "riffle/hash_key.h"
#include "riffle/kpl.h"
#include "riffle/user_record.h"

namespace riffle::kpl::detail {

using ::riffle::detail::Md5Job;
using ::riffle::detail::Md5JobHashKey;
using ::riffle::detail::Md5Jobs;
using ::riffle::detail::Md5Lanes;

// Bytes outside the protobuf: the magic and the MD5.
inline constexpr uint64_t kFramingBytes = 4 + 16;

class AggregateBuilder {
 public:
  // Bytes of the aggregate (magic, protobuf, MD5) with one more record of these sizes and
  // keys. `explicit_hash_key` empty: none.
  uint64_t SizeWith(std::string_view partition_key, std::string_view explicit_hash_key,
                    uint64_t data_size) const;
  void Add(std::string_view partition_key, std::string_view explicit_hash_key,
           std::string_view data);
  // Bytes of the aggregate as it is (0 when empty).
  uint64_t size() const { return count_ == 0 ? 0 : kFramingBytes + protobuf_bytes_; }
  uint64_t count() const { return count_; }
  // Appends magic | AggregatedRecord | MD5 to `out`, then empties the builder (keeping its
  // capacity).
  void Finish(std::string& out);
  void Clear();

 private:
  // Index of `key` in `table`, adding it (and its bytes to protobuf_bytes_) when new.
  uint64_t IndexOf(std::string_view key, std::vector<std::string>& table,
                   absl::flat_hash_map<std::string, uint64_t>& index);
  uint64_t RecordBytes(uint64_t key_index, std::optional<uint64_t> ehk_index,
                       uint64_t data_size) const;

  std::vector<std::string> keys_;
  std::vector<std::string> explicit_hash_keys_;
  absl::flat_hash_map<std::string, uint64_t> key_index_;
  absl::flat_hash_map<std::string, uint64_t> explicit_hash_key_index_;
  std::string records_;  // the encoded `records` fields
  uint64_t protobuf_bytes_ = 0;
  uint64_t count_ = 0;
};

// Per-thread space for decoding (grows to the largest batch seen, then allocates no more).
struct DecodeScratch {
  // The aggregate being parsed: its tables; for the range check, the entries already met
  // (each distinct partition key's MD5 is queued once, each explicit hash key checked once);
  // the user records that named an entry not seen yet (resolved once the tables are complete).
  std::vector<std::string_view> keys;
  std::vector<std::string_view> explicit_hash_keys;
  std::vector<uint8_t> key_met;
  std::vector<uint8_t> explicit_hash_key_met;
  struct Unresolved {
    size_t user;  // index in `out`
    uint64_t key, explicit_hash_key;
  };
  std::vector<Unresolved> unresolved;
  // A chunk of the batch: the MD5s of its aggregates and of the partition keys the range
  // check needs (each aggregate's distinct keys), run in lanes together.
  std::vector<Md5Job> body_jobs;
  std::vector<Md5Job> key_jobs;
  struct Parsed {
    size_t record;                // index in the batch
    size_t first_user, end_user;  // its user records in `out`
    size_t first_job, end_job;    // its partition keys in key_jobs (its chunk's)
    bool misplaced;               // a hash key outside the range
  };
  std::vector<Parsed> aggregates;
  std::vector<uint8_t> matched;  // a chunk decoded again: whose digest matched, per record
};
DecodeScratch& ThreadScratch();

inline constexpr uint64_t kNoIndex = ~uint64_t{0};
// An explicit_hash_key_index read from a record: present, so never kNoIndex (that value,
// 2^64-1, is past every table as any other out-of-range index is).
inline constexpr uint64_t PresentIndex(uint64_t index) {
  return index == kNoIndex ? kNoIndex - 1 : index;
}

// True when `data` has the magic and room for a protobuf and an MD5 (the KCL's first test).
inline bool HasAggregateFraming(std::string_view data) {
  return data.size() > kFramingBytes && data.substr(0, 4) == std::string_view("\xF3\x89\x9A\xC2");
}
// The protobuf between the magic and the MD5. REQUIRES: HasAggregateFraming(data).
inline std::string_view AggregateBody(std::string_view data) {
  return data.substr(4, data.size() - kFramingBytes);
}
// True when the MD5 state words of the body match the digest that ends `data`.
bool DigestMatches(std::string_view data, const uint32_t state[4]);

// The KCL's range check, gathered while an aggregate is parsed: the MD5 of each distinct
// partition key that gives a user record's hash key is queued in `key_jobs` (not yet run);
// each distinct explicit hash key is checked at once.
struct RangeCheck {
  const HashKeyRange& range;
  std::vector<Md5Job>& key_jobs;
  bool explicit_outside = false;  // an explicit hash key outside `range` (or malformed)
  bool long_key = false;          // a partition key queued of over 55 bytes (two blocks)
};

// Parses an AggregatedRecord (`body`) into user records appended to `out` (sub-sequence
// numbers 0, 1, ...; the sequence number and arrival time of `outer`). With `check`, gathers
// the range check (above). False, `out` and check->key_jobs unchanged, when it is not a
// valid message of the KPL's schema or an index is outside its table. Never throws.
bool ParseAggregatedRecord(std::string_view body, const Record& outer, RangeCheck* check,
                           std::vector<UserRecord>& out, DecodeScratch& scratch);

// What a batch held, for the counters.
struct DecodeCounts {
  uint64_t aggregates = 0;
  uint64_t misplaced = 0;
  uint64_t dropped = 0;
};

// The KCL's de-aggregation of a batch of one shard's records, appended to `out`, chunk by
// chunk: the parses of up to 32 aggregates, then their MD5s and those of the partition keys
// the range check needs, all at once. `kinds`, when not null, gets one entry per record.
void DecodeRecords(std::span<const Record> records, const HashKeyRange& range,
                   bool deliver_misplaced, std::vector<UserRecord>& out, DecodeCounts& counts,
                   RecordKind* kinds);

// An explicit hash key as the KCL reads it for the range check (Java's BigInteger): an
// optional sign, decimal digits, leading zeros allowed. nullopt: outside every range (not a
// number, negative, or above 2^128-1). Allocates nothing (ParseHashKey builds an error
// message).
std::optional<HashKey> ParseKclHashKey(std::string_view text);

// The full key space: nothing to check.
inline bool IsWholeKeySpace(const HashKeyRange& r) {
  return r.starting_hash_key == 0 && r.ending_hash_key == kMaxHashKey;
}

}  // namespace riffle::kpl::detail

#endif  // RIFFLE_KPL_CODEC_H_
