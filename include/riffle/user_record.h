// User records: what a producer put before a library packed several into one Kinesis record
// (the Kinesis Producer Library's aggregation; riffle/kpl.h). A reader that unpacks them
// hands its application user records instead of Kinesis records, as the KCL does.
//
// UserRecordDecoder is the seam: Consumer, LineageReader and subscriptions take one
// through their options and know nothing of the format; riffle::kpl::Deaggregator
// (riffle::kpl) is the implementation for KPL aggregates.
#ifndef RIFFLE_USER_RECORD_H_
#define RIFFLE_USER_RECORD_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "riffle/hash_key.h"
#include "riffle/record_source.h"

namespace riffle {

// One user record. The Record part is what a reader that does not unpack would see for a
// record that was not aggregated; for an aggregate's user records, partition_key and data
// are the user record's own, and sequence_number and approximate_arrival_timestamp are the
// Kinesis record's (all of them share it). Views point into the Kinesis record's data and
// are valid as long as it is.
struct UserRecord : Record {
  // The user record's explicit hash key (decimal), empty when it had none.
  std::string_view explicit_hash_key;
  // 0, 1, 2, ... in an aggregate, in the order they were added; 0 for a record that was
  // not aggregated. (sequence_number, sub_sequence_number) orders a shard's user records.
  uint64_t sub_sequence_number = 0;
  // True for a user record unpacked from an aggregate.
  bool aggregated = false;
};

// Turns the Kinesis records of one shard into user records.
// Thread safety: Decode may be called from several threads at once (one decoder may serve
// a Consumer, a LineageReader and subscriptions together).
class UserRecordDecoder {
 public:
  virtual ~UserRecordDecoder() = default;
  // Appends the user records of `records`, in order, to `out` (which is not cleared).
  // `shard_range` is the hash key range of the shard they were read from; the whole key
  // space (the default HashKeyRange) checks nothing. Should allocate nothing once `out`
  // (and the decoder's own buffers) have grown: this runs on every read.
  virtual void Decode(std::span<const Record> records, const HashKeyRange& shard_range,
                      std::vector<UserRecord>& out) const = 0;
};

}  // namespace riffle

#endif  // RIFFLE_USER_RECORD_H_
