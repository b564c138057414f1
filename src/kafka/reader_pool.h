// Readers of a topic's partitions for GetRecords: librdkafka consumers whose partitions are
// assigned (never subscribed: no consumer group, no rebalancing), each partition read from
// a queue of its own.
//
// A GetRecords iterator names a (partition, offset); a reader is a slot (consumer k,
// partition p) with the offset it will deliver next. A read takes, in order of preference:
// an idle slot of p already at the offset (it keeps what it prefetched), the idle slot of p
// used least recently (sought to the offset), or a new slot on the first consumer that does
// not have p yet (at most max_readers_per_shard consumers). A slot is used by one read at a
// time; slots idle for a minute are unassigned, so that they stop prefetching.
//
//   consumer 0: [p0 @ 1200] [p1 @ 88]  [p2 --]    (slots; "--" not assigned)
//   consumer 1: [p0 @ 40]   [p1 --]    [p2 --]
//
// Thread safety: any thread. The slot table is guarded by one mutex held only to pick and
// return slots; consuming runs outside it, on the slot the read holds.
#ifndef RIFFLE_KAFKA_READER_POOL_H_
#define RIFFLE_KAFKA_READER_POOL_H_

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/client.h"
#include "riffle/kafka.h"

namespace riffle::kafka::detail {

class ReaderPool {
 public:
  ReaderPool(const StreamOptions& options, int partitions);
  ~ReaderPool();
  ReaderPool(const ReaderPool&) = delete;
  ReaderPool& operator=(const ReaderPool&) = delete;

  struct Outcome {
    int64_t next_offset = 0;      // after the last message handed out (`offset` if none)
    int64_t high_watermark = -1;  // the partition's end as last fetched (-1: unknown)
  };
  // Hands `on_message` the data messages of `partition` from `offset` on, in offset order:
  // at most `limit`, and no more once `max_bytes` of keys and values were handed out (the
  // first always is). Waits up to `wait` for a first message unless the partition is known
  // to end at `offset`. Errors: ProvisionedThroughputExceededException when every reader
  // of the partition is busy; Kafka's errors from positioning or fetching.
  absl::StatusOr<Outcome> Read(int32_t partition, int64_t offset, int limit, uint64_t max_bytes,
                               absl::Duration wait,
                               absl::FunctionRef<void(const rd_kafka_message_t&)> on_message);

 private:
  struct Slot;
  struct Reader;
  enum class Positioning { kNone, kSeek, kAssign };

  // Picks a slot for (partition, offset) and marks it busy. REQUIRES: mu_ held.
  absl::StatusOr<Slot*> Acquire(int32_t partition, int64_t offset, Positioning* positioning);
  absl::Status Position(Slot& slot, int32_t partition, int64_t offset, Positioning positioning);
  void Release(Slot& slot, bool positioned, int64_t next_offset);
  // Unassigns slots idle for longer than kIdleUnassign.
  void Sweep();

  const StreamOptions& options_;
  const int partitions_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Reader>> readers_;  // up to max_readers_per_shard
  int64_t next_sweep_ns_ = 0;
};

}  // namespace riffle::kafka::detail

#endif  // RIFFLE_KAFKA_READER_POOL_H_
