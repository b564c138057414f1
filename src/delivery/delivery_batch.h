// The buffers of a DeliveryStream. A Batch holds one partition's records from the first
// append until the object is delivered or its records are in the error output; then it is
// reset and reused, so steady-state buffering allocates nothing.
//
//   Batch::data     record bytes, concatenated in acceptance order (what size hints count)
//   Batch::records  one BufferedRecord per record, record ids strictly increasing
//   Batch::meta     partition key | shard id | sequence number per record (Stream source),
//                   indexed by meta_index[i] for i < meta_index.size()
//
// Thread safety: a Batch in a partition slot or the ready queue is guarded by the stream's
// mutex; once the pump takes it, only the pump touches it until it is handed back.
#ifndef RIFFLE_DELIVERY_DELIVERY_BATCH_H_
#define RIFFLE_DELIVERY_DELIVERY_BATCH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "delivery/object_key.h"

namespace riffle::detail {

// 24 bytes: a 1 MiB batch of 100-byte records holds ~10,000 of them, and their stores
// are a large share of the put path's cache misses.
struct BufferedRecord {
  uint64_t record_id;
  int64_t arrival_ms;
  uint32_t data_offset;
  uint32_t data_size;
};

// Where a record's partition key, shard id and sequence number sit in Batch::meta. Only
// records from a Stream source carry them; DirectPut batches leave meta_index empty.
struct RecordMeta {
  uint32_t offset = 0;
  uint16_t partition_key_size = 0;
  uint16_t shard_id_size = 0;
  uint16_t sequence_number_size = 0;
  std::optional<uint64_t> subsequence_number;
};

// A record as delivered (after processing): a slice of Batch::data or Batch::processed.
struct OutputRecord {
  uint64_t record_id;
  int64_t arrival_ms;
  uint32_t offset;
  uint32_t size;
  uint32_t source_size;  // the accepted bytes it came from, for buffered-byte accounting
};

struct Batch {
  // Filled while the batch is open.
  std::string partition_id;  // canonical partition values; "" without dynamic partitioning
  PartitionValueList partition_values;
  std::string data;
  std::vector<BufferedRecord> records;
  std::string meta;
  std::vector<RecordMeta> meta_index;
  absl::Time opened;  // when the first record arrived: the interval rule counts from here
  int64_t oldest_arrival_ms = 0;

  // Filled by the pump on the first delivery attempt and kept across retries, so a retry
  // writes the same key and bytes (an idempotent overwrite).
  bool prepared = false;
  bool transformed = false;  // output slices point into `processed`, not `data`
  std::string processed;
  std::string compressed;
  std::string_view payload;  // into data, processed or compressed
  // Untransformed batches deliver `records` as they are and leave `output` empty: the hot
  // path then builds no per-record index.
  std::vector<OutputRecord> output;
  uint64_t output_records = 0;       // records in the object; 0 once resolved
  uint64_t output_bytes = 0;         // after processing, before compression
  uint64_t output_source_bytes = 0;  // accepted bytes they came from
  std::string key;
  int attempts = 0;
  absl::Time first_attempt;
  absl::Time next_attempt;

  std::string_view OutputData(const OutputRecord& r) const {
    return std::string_view(transformed ? processed : data).substr(r.offset, r.size);
  }

  void Reset() {
    partition_id.clear();
    partition_values.clear();
    data.clear();
    records.clear();
    meta.clear();
    meta_index.clear();
    prepared = transformed = false;
    processed.clear();
    compressed.clear();
    payload = {};
    output.clear();
    output_records = output_bytes = output_source_bytes = 0;
    key.clear();
    attempts = 0;
  }
};

// A record bound for the error output, with what Firehose writes about it.
struct ErrorRecord {
  std::string_view output_type;  // one of the k*Output constants (object_key.h)
  std::string error_code;
  std::string error_message;
  uint64_t record_id = 0;
  int attempts = 0;
  int64_t arrival_ms = 0;
  int64_t attempt_ending_ms = 0;
  std::string raw_data;
  uint64_t accounted_bytes = 0;  // accepted bytes released once written
};

// One error-output object, retried until the error sink takes it.
struct ErrorObject {
  std::string key;
  std::string body;  // JSON lines
  uint64_t records = 0;
  uint64_t accounted_bytes = 0;
  int attempts = 0;
  absl::Time first_attempt;
  absl::Time next_attempt;
  int64_t oldest_arrival_ms = 0;  // of its records: what DataFreshness counts
};

}  // namespace riffle::detail

#endif  // RIFFLE_DELIVERY_DELIVERY_BATCH_H_
