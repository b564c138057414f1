// SequenceNumber and ShardIterator: the positions a reader holds.
//
// A sequence number is unique in its stream and strictly increasing within a shard. Like the
// service's, it prints as a 56-digit decimal string; riffle's digits are, in order:
//   "4" | stream tag (9) | shard index (8) | log position (20) | record index (18)
// so decimal order is shard order then position order, a reader can seek to one in O(1),
// and one from another stream or shard is recognised.
#ifndef RIFFLE_SEQUENCE_NUMBER_H_
#define RIFFLE_SEQUENCE_NUMBER_H_

#include <climits>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace riffle {

struct SequenceNumber {
  static constexpr std::size_t kDigits = 56;
  static constexpr uint64_t kMaxStreamTag = 999'999'999;
  static constexpr uint64_t kMaxShardIndex = 99'999'999;
  static constexpr uint64_t kMaxRecordIndex = 999'999'999'999'999'999;

  uint64_t stream_tag = 0;    // identifies the stream (1..kMaxStreamTag)
  uint64_t shard_index = 0;   // the shard's counter, as in shardId-000000000007
  uint64_t position = 0;      // byte offset of the record in the shard's log
  uint64_t record_index = 0;  // ordinal of the record within its shard

  // Writes exactly kDigits characters to `out`; allocates nothing.
  void FormatTo(char* out) const;
  std::string ToString() const;

  // InvalidArgumentException naming `parameter` unless `text` is one of riffle's numbers.
  static absl::StatusOr<SequenceNumber> Parse(std::string_view text,
                                              std::string_view parameter = "SequenceNumber");

  friend auto operator<=>(const SequenceNumber&, const SequenceNumber&) = default;
};

// Where a GetRecords call starts. Cheap to copy; valid for the stream's iterator lifetime
// (5 minutes of clock time) from issued_at_ms. ToString()/Parse() give the opaque string
// form the service uses. Only the stream that issued an iterator can make its `check`:
// an iterator whose fields were changed (or a string forged) is InvalidArgumentException.
struct ShardIterator {
  uint64_t stream_tag = 0;
  uint64_t shard_index = 0;
  uint64_t position = 0;
  // Index the next record is expected to have; a gap is reported as missed records.
  uint64_t next_record_index = 0;
  bool next_record_index_known = false;
  int64_t issued_at_ms = 0;
  // The latest arrival time this reader was handed: later records are reported no earlier,
  // so arrival times never decrease in a reader's order (producers racing across a
  // millisecond may store them a millisecond out of order).
  int64_t arrival_floor_ms = INT64_MIN;
  uint64_t check = 0;  // keyed hash of the fields above, made by the issuing stream

  std::string ToString() const;
  // ToString() into `out`, replacing its contents: no allocation once `out` has the room.
  void FormatTo(std::string& out) const;
  static absl::StatusOr<ShardIterator> Parse(std::string_view text);

  friend bool operator==(const ShardIterator&, const ShardIterator&) = default;
};

}  // namespace riffle

#endif  // RIFFLE_SEQUENCE_NUMBER_H_
