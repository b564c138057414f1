// DeliveryStream's state and the functions that work on it, shared by delivery_stream.cc
// (options, the put path, buffering, the delivery thread, Close), delivery_pump.cc
// (processing, compression, sink I/O, retries, the error output) and delivery_source.cc
// (the Stream reader).
//
// Locks: mu_ guards the producers' state (buffers, ready and retry queues, counters);
// pump_mu_ serializes the pump and guards its state. The pump takes mu_ only briefly, never
// while it calls the processor, compresses or calls a sink. Lock order: close_mu_, then
// thread_mu_, then pump_mu_, then mu_.
#ifndef RIFFLE_DELIVERY_DELIVERY_STREAM_IMPL_H_
#define RIFFLE_DELIVERY_DELIVERY_STREAM_IMPL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "delivery/compression.h"
#include "delivery/delivery_batch.h"
#include "delivery/object_key.h"
#include "riffle/clock.h"
#include "riffle/delivery_stream.h"

namespace riffle {

struct DeliveryStream::Impl {
  struct IngestRecord {
    std::string_view data;
    RecordMetadata metadata;
  };

  Impl(DeliveryStreamOptions options, detail::PrefixTemplate prefix,
       detail::PrefixTemplate error_prefix);
  ~Impl();

  const std::string& name() const { return options_.delivery_stream_name; }

  // The public operations (delivery_stream.cc).
  absl::StatusOr<DeliveryPutRecordResult> PutRecord(std::string_view data);
  absl::Status PutRecordBatch(std::span<const std::string_view> records, PutRecordBatchResult& out);
  size_t Poll();
  size_t Flush();
  absl::Status last_error() const;
  absl::Status Start();
  void Stop();
  absl::Status Close();
  DeliveryStreamStatus status() const;
  DeliveryStreamMetrics GetMetrics() const;
  absl::Status UpdateDestination(const DestinationUpdate& update);
  int version() const;
  absl::Status TEST_Ingest(std::string_view data, const RecordMetadata& metadata);

  absl::Status CheckCanPut() const;
  absl::Status CheckActive() const;
  absl::Status NotActiveErrorLocked() const;

  // The single entry point for accepted data, from DirectPut and the Stream reader. Assigns
  // record ids, partitions, appends and seals full buffers. With `backpressure`, a record that
  // would pass max_buffered_bytes is refused and reported in entries[i]
  // (ServiceUnavailableException) and *failed_count. `get(i)` returns record i.
  template <class GetRecord>
  absl::Status IngestImpl(size_t count, GetRecord get, bool backpressure,
                          PutRecordBatchResponseEntry* entries, int* failed_count);
  // Per-call working storage of the put path, used outside mu_: the partition values
  // computed before the lock, and the entries Ingest() reports into. Leased from a pool
  // owned by this stream, so concurrent producers each have their own and a partition key
  // function that puts into another DeliveryStream cannot touch this stream's. The pool
  // grows to the number of concurrent puts, then allocates nothing.
  struct IngestScratch {
    struct Partitioned {
      PartitionKeys keys;
      bool found = false;  // the function returned keys (the Prefix's are checked under mu_)
      std::string id;      // (size, name, size, value) per key, by name: the partition's identity
      std::string error;   // empty when the record has a partition
    };
    std::vector<Partitioned> partitioned;  // one per record of the call
    std::vector<uint32_t> order;           // sorts one record's keys by name
    std::vector<PutRecordBatchResponseEntry> entries;
  };
  class ScratchLease {
   public:
    explicit ScratchLease(Impl& impl);  // takes a scratch from the pool (or a new one)
    ~ScratchLease();                    // returns it
    ScratchLease(const ScratchLease&) = delete;
    ScratchLease& operator=(const ScratchLease&) = delete;
    IngestScratch* operator->() const { return scratch_.get(); }

   private:
    Impl& impl_;
    std::unique_ptr<IngestScratch> scratch_;
  };

  // For records already read from a Stream: accepts all of them, also while Close() is
  // under way (the reader checks the buffer budget and the status before it reads, so
  // nothing it has read is ever refused).
  absl::Status Ingest(std::span<const IngestRecord> records);

  // The Stream reader (delivery_source.cc). Its state is touched only at Create and under
  // pump_mu_.
  struct SourceState;
  struct SourceStateDeleter {
    void operator()(SourceState* state) const;
  };
  // At Create: one LATEST iterator per open shard.
  absl::Status InitStreamSource();
  // Reads new records from the StreamSource and Ingest()s them; called at the start of every
  // pump. One GetRecords per readable shard; nothing while buffered bytes are at or above
  // max_buffered_bytes (the Stream retains the records). Returns the records ingested.
  size_t PollStreamSource();

  // Under mu_.
  void SealLocked(std::unique_ptr<detail::Batch>& slot);
  void SealDueLocked(absl::Time now, bool all);
  std::unique_ptr<detail::Batch> TakeFreeBatchLocked();
  bool HasPendingLocked() const;
  absl::Time NextDeadlineLocked(absl::Time now) const;
  void WakeLocked();

  // The pump (under pump_mu_; delivery_pump.cc).
  size_t PumpLocked(bool flush_all);
  // The stream whose pump runs on this thread: its callbacks (processor, sinks) may not
  // Poll, Flush, UpdateDestination, Stop or Close it, which would wait for themselves.
  static thread_local const Impl* pumping_;
  bool InCallback() const { return pumping_ == this; }
  absl::Status CalledFromCallbackError(std::string_view call) const;
  void Prepare(detail::Batch& batch, absl::Time now);
  // Returns true when the batch is finished (delivered or moved to the error output).
  bool Attempt(detail::Batch& batch, absl::Time now);
  void ExhaustRetries(detail::Batch& batch, const absl::Status& status, absl::Time now);
  void BuildErrorObjects(absl::Time now);
  enum class ErrorObjectOutcome { kWritten, kRetry, kDiscarded };
  ErrorObjectOutcome AttemptErrorObject(detail::ErrorObject& object, absl::Time now);
  absl::Duration Backoff(int attempts);
  // Records the outcome of a write (or compression) for status().
  void NoteWrite(const absl::Status& status);

  void DeliveryLoop();

  // What UpdateDestination changes (options_'s destination members, the sinks, prefixes,
  // size and interval) is written with both pump_mu_ and mu_ held: readers hold either.
  // The rest is set at Create.
  DeliveryStreamOptions options_;
  Clock* const clock_;
  Sink* error_sink_;
  detail::PrefixTemplate prefix_;
  detail::PrefixTemplate error_prefix_;
  const bool stream_source_;
  size_t size_hint_bytes_;
  absl::Duration interval_;
  const absl::Duration retry_duration_;

  // Producers' state (under mu_).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  DeliveryStreamStatus status_ = DeliveryStreamStatus::kActive;
  uint64_t next_record_id_ = 1;
  std::unique_ptr<detail::Batch> default_batch_;  // when not partitioning
  absl::flat_hash_map<std::string, std::unique_ptr<detail::Batch>> partitions_;
  std::vector<std::unique_ptr<detail::Batch>> ready_;
  std::vector<std::unique_ptr<detail::Batch>> retrying_;
  std::vector<std::unique_ptr<detail::Batch>> free_batches_;
  std::vector<detail::ErrorRecord> put_errors_;
  std::vector<detail::ErrorObject> error_retrying_;
  absl::Time earliest_due_ = absl::InfiniteFuture();  // no open batch is due before it
  int in_pump_ = 0;                                   // batches and error objects the pump holds
  int64_t in_pump_oldest_ms_ = 0;
  int64_t buffered_bytes_ = 0;
  uint64_t incoming_records_ = 0;
  uint64_t incoming_bytes_ = 0;
  uint64_t throttled_records_ = 0;
  uint64_t partitioning_failed_records_ = 0;
  bool thread_running_ = false;
  bool thread_stopped_ = false;  // Stop(): the thread ends and cannot start again
  bool stopping_ = false;        // Close(): the thread drains, then ends
  // Close(): the next pump attempts the batches and error objects waiting for a retry at
  // once, without waiting for their backoff (later failures wait as usual).
  bool retry_now_ = false;
  absl::Status step_status_;  // last_error(): set by every pump that wrote
  bool wake_ = false;
  absl::Time wake_deadline_ = absl::InfinitePast();     // the delivery thread's sleep target
  absl::Time source_next_poll_ = absl::InfinitePast();  // Stream source: next thread poll

  std::mutex scratch_mu_;  // guards free_scratch_ only; never held while calling out
  std::vector<std::unique_ptr<IngestScratch>> free_scratch_;

  // Pump state (under pump_mu_).
  std::mutex pump_mu_;
  std::unique_ptr<detail::Compressor> compressor_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<detail::Batch>> pump_work_;
  std::vector<std::unique_ptr<detail::Batch>> pump_done_;
  std::vector<std::unique_ptr<detail::Batch>> pump_retry_;
  std::vector<detail::ErrorRecord> pump_errors_;
  std::vector<detail::ErrorObject> pump_error_objects_;
  std::vector<ProcessorInput> processor_inputs_;
  int64_t pump_released_bytes_ = 0;
  bool pump_wrote_ = false;  // this pump attempted a sink write (or compression)
  absl::Status pump_error_;  // the first failure of this pump
  std::unique_ptr<SourceState, SourceStateDeleter> source_;

  // Pump counters, read by GetMetrics without pump_mu_.
  std::atomic<uint64_t> delivery_records_{0}, delivery_bytes_{0}, delivery_objects_{0},
      delivery_attempts_{0}, dropped_records_{0}, processing_failed_records_{0},
      delivery_failed_records_{0}, error_output_records_{0}, error_output_attempts_{0},
      error_output_objects_{0}, error_output_discarded_records_{0}, source_records_missed_{0};

  ClockSubscription clock_subscription_;
  std::mutex close_mu_;   // serializes Close()
  std::mutex thread_mu_;  // serializes joining thread_ (Stop, Close)
  std::thread thread_;
};

}  // namespace riffle

#endif  // RIFFLE_DELIVERY_DELIVERY_STREAM_IMPL_H_
