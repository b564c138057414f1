// The state behind riffle::kafka::Stream, shared with the mirror and the checkpoint store:
// the stream's identity and routing, the producer with its delivery reports, iterators,
// and the readers.
//
// Puts. Every record handed to librdkafka carries a PutSlot as its opaque. Delivery
// reports are served on librdkafka's background thread (the producer's main queue is
// forwarded to it), which fills the slot and counts down its PutBatch; the last report
// completes the batch: a synchronous batch wakes its caller, an asynchronous one waits in
// `completed` until Poll() runs its callback on the host's thread. No user code runs on
// librdkafka's threads.
//
// Thread safety: immutable after Create() except what the mutexes and atomics guard.
#ifndef RIFFLE_KAFKA_CORE_H_
#define RIFFLE_KAFKA_CORE_H_

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kafka/client.h"
#include "kafka/reader_pool.h"
#include "riffle/kafka.h"

namespace riffle::kafka::detail {

struct PutBatch;

// One record in flight.
struct PutSlot {
  PutBatch* batch = nullptr;
  int32_t partition = -1;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  int64_t offset = -1;
  absl::Status refused;  // refused before it was sent (validation)
};

// Records put together: one PutRecord(s) call, one PutRecordsAsync call, or one mirror step.
struct PutBatch {
  explicit PutBatch(std::size_t n) : owned(new PutSlot[n]), slots(owned.get(), n), remaining(n) {
    for (PutSlot& s : slots) s.batch = this;
  }
  std::unique_ptr<PutSlot[]> owned;
  std::span<PutSlot> slots;
  std::atomic<std::size_t> remaining;
  // Synchronous: the caller waits on `done`. Asynchronous: `callback` (may be empty).
  bool sync = true;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  PutRecordsCallback callback;
};

// A record to produce; the two headers are sent when not empty (the mirror's).
struct OutRecord {
  int32_t partition = 0;
  std::string_view key;
  std::string_view data;
  int64_t timestamp_ms = 0;
  std::string_view seq_header;
  std::string_view batch_header;
};

inline constexpr char kSeqHeader[] = "riffle.seq";
inline constexpr char kBatchHeader[] = "riffle.batch";

class Core {
 public:
  // Connects and finds (or creates) the topic. Validates the options first.
  static absl::StatusOr<std::unique_ptr<Core>> Create(StreamOptions options);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  const StreamOptions& options() const { return options_; }
  const std::string& topic() const { return options_.topic; }
  Clock& clock() const { return *clock_; }
  uint64_t tag() const { return tag_; }
  int partitions() const { return partitions_; }
  const UniformLayout& layout() const { return layout_; }
  const std::string& shard_id(int32_t partition) const {
    return shard_ids_[static_cast<std::size_t>(partition)];
  }
  ReaderPool& readers() { return *readers_; }

  // ---- Puts ----
  // The partition of a record, or the error that refuses it (InvalidArgumentException
  // naming PartitionKey, the record size or ExplicitHashKey).
  absl::StatusOr<int32_t> Route(std::string_view partition_key, std::size_t data_bytes,
                                std::string_view explicit_hash_key) const;
  // Hands slot `i` of `batch` to the producer; a record refused at once (or after a fatal
  // producer error) completes its slot with the error.
  void Send(PutBatch& batch, std::size_t i, const OutRecord& record);
  // Completes a slot that is not sent (slot.refused says why).
  void Refuse(PutBatch& batch, std::size_t i, absl::Status why);
  // The producer's fatal error (FatalKafkaError of its cause). REQUIRES: librdkafka raised
  // one.
  absl::Status Fatal();
  void TEST_FailProducer(rd_kafka_resp_err_t err);  // see Stream::TEST_FailProducer
  // Waits until every slot of a synchronous batch completed.
  void Wait(PutBatch& batch);
  // The status of a completed slot, and its entry of a PutRecords result.
  absl::Status SlotStatus(const PutSlot& slot) const;
  PutRecordsResultEntry ResultEntry(const PutSlot& slot) const;
  // An asynchronous batch: counted as pending until its last slot completes.
  void BeginAsync(PutBatch& batch);
  // Completed asynchronous batches, oldest first; the caller deletes them.
  std::vector<PutBatch*> TakeCompleted();
  // Puts `batches` (taken, not yet run) back before the completed ones, for the next take.
  void ReturnCompleted(std::span<PutBatch* const> batches);
  // Waits until no asynchronous batch is pending; false on timeout.
  bool WaitAsync(absl::Duration timeout);
  uint64_t pending_records() const { return pending_records_.load(std::memory_order_relaxed); }

  // ---- Iterators ----
  ShardIterator MakeIterator(uint64_t shard, int64_t offset, int64_t now_ms) const;
  // InvalidArgumentException (not issued here, or altered), ExpiredIteratorException,
  // ResourceNotFoundException (no such partition).
  absl::Status CheckIterator(const ShardIterator& it, int64_t now_ms) const;
  bool Issued(const ShardIterator& it) const;

  // ---- Offsets (network calls bounded by request_timeout) ----
  // (low, high) watermarks: the oldest offset and the end of the partition.
  absl::StatusOr<std::pair<int64_t, int64_t>> Watermarks(int32_t partition) const;
  // One ListOffsets lookup: the first offset at or after `timestamp` (ms), or the oldest /
  // the next offset for RD_KAFKA_OFFSET_BEGINNING / RD_KAFKA_OFFSET_END. Bounded by
  // `timeout_ms` (at least 1 ms), or request_timeout when it is negative.
  absl::StatusOr<int64_t> ListOffset(int32_t partition, int64_t timestamp, std::string_view context,
                                     int timeout_ms = -1) const;
  // The first offset whose timestamp is at or after `ms`, or -1 when there is none.
  absl::StatusOr<int64_t> OffsetForTime(int32_t partition, int64_t ms) const;

 private:
  Core(StreamOptions options, Clock* clock, int partitions);
  absl::Status Connect();
  void Complete(PutBatch& batch);
  static void OnEvent(rd_kafka_t* rk, rd_kafka_event_t* event, void* opaque);
  uint64_t IteratorCheck(const ShardIterator& it) const;

  const StreamOptions options_;
  Clock* const clock_;
  const uint64_t tag_;
  const uint64_t secret_;
  int partitions_;
  UniformLayout layout_;
  std::vector<std::string> shard_ids_;

  Handle producer_;
  rd_kafka_topic_t* topic_handle_ = nullptr;
  Queue main_queue_;
  Queue background_queue_;
  std::unique_ptr<ReaderPool> readers_;

  // Set once by a fatal producer error (idempotence can no longer be guaranteed), by the
  // first of its error event and a put that meets it.
  std::mutex fatal_mu_;
  absl::Status fatal_;
  std::atomic<bool> has_fatal_{false};

  std::mutex async_mu_;
  std::condition_variable async_cv_;
  std::vector<PutBatch*> completed_;
  std::size_t pending_batches_ = 0;
  std::atomic<uint64_t> pending_records_{0};
};

}  // namespace riffle::kafka::detail

#endif  // RIFFLE_KAFKA_CORE_H_
