// riffle::Consumer: reads every shard of a stream through a user RecordProcessor, like the
// Kinesis Client Library: one lease per shard shared among the workers of an application,
// checkpoints in a CheckpointStore, parents before children after a reshard.
//
//   riffle::InMemoryCheckpointStore checkpoints;
//   auto consumer = riffle::Consumer::Create(
//       {.stream = stream.get(), .application_name = "billing",
//        .checkpoint_store = &checkpoints,
//        .processor_factory = [] { return std::make_unique<MyProcessor>(); }});
//   (void)(*consumer)->Start();  // or call (*consumer)->Poll() from the host's loop
//
// Delivery is at-least-once: after a restart or a lease moving to another worker,
// processing resumes after the shard's last checkpoint, so records processed but not yet
// checkpointed are delivered again; none is skipped. Parents are processed before their
// children by the lineage engine's rules (src/consumer/lineage.h): a child starts once
// every parent still listed is checkpointed at SHARD_END, and at its first record.
//
// Thread safety: a Consumer is driven by one thread: the host calling Poll(), or its own
// thread after Start(). Stop() and the destructor are called by the owner; a processor's
// callback may call Stop() (it takes effect when the callback returns), never the
// destructor. Processor callbacks for one Consumer never run concurrently. A LeaseTable
// and a CheckpointStore may be shared by any number of Consumers and threads.
#ifndef RIFFLE_CONSUMER_H_
#define RIFFLE_CONSUMER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/checkpoint_store.h"
#include "riffle/clock.h"
#include "riffle/record_source.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"
#include "riffle/user_record.h"

namespace riffle {

enum class ConsumerMode {
  kPolling,         // GetRecords, sharing each shard's read budget with other pollers
  kEnhancedFanOut,  // SubscribeToShard (host-driven subscriptions, no extra threads)
};

// Where a shard without a checkpoint starts: kTrimHorizon, kLatest or kAtTimestamp (the
// KCL's InitialPositionInStream; the same enum as every other start position).
using InitialPosition = ShardIteratorType;

enum class ShutdownReason {
  kRequested,  // Stop(), or the lease is handed to another worker: Checkpoint() works
  kLeaseLost,  // another worker took the expired lease: Checkpoint() fails
};

// What a Consumer does with a checkpoint the stream does not recognise: one written for an
// earlier Stream object (an in-process stream does not survive a restart of its host), or
// a damaged one.
enum class InvalidCheckpointPolicy {
  // The shard is not processed; Consumer::last_error() reports InvalidCheckpointException
  // naming the shard and the checkpoint, until the checkpoint is replaced.
  kReport,
  // The shard starts again at the initial position (as if it had no checkpoint); the
  // event is counted in invalid_checkpoints().
  kRestartFromInitialPosition,
};

struct ProcessRecordsInput {
  // Valid during the call. With ConsumerOptions::deaggregator, the user records (those of
  // an aggregate share its sequence number).
  std::span<const Record> records;
  int64_t millis_behind_latest = 0;
  uint64_t missed_records = 0;  // trimmed before this application read them
  // With ConsumerOptions::deaggregator: the same records with their sub-sequence numbers
  // (user_records[i] is records[i]); empty otherwise.
  std::span<const UserRecord> user_records;
};

class Consumer;
struct ShardTask;
namespace detail {
class OwnThread;
}  // namespace detail

// Passed to a processor's callbacks. Checkpoint() records the last record delivered so
// far (in ShardEnded: SHARD_END, which releases the shard's children). A checkpoint at a
// record lies between the last checkpoint and the last record delivered, as the KCL's:
// InvalidArgumentException otherwise (a checkpoint never moves back). In ShardEnded, a
// checkpoint at the shard's last record (its last user record) is SHARD_END too.
class Checkpointer {
 public:
  [[nodiscard]] absl::Status Checkpoint();
  // A record of this shard already delivered (retention may have trimmed it since).
  // InvalidArgumentException for a number of another stream or shard, after the last
  // record delivered, or of no record (a restart could not resume from it). A number
  // outside the batch being processed is checked with the stream (GetShardIterator).
  [[nodiscard]] absl::Status Checkpoint(const SequenceNumber& sequence_number);
  // A user record of an aggregate already delivered: a restart resumes with the user
  // record after it (SubRecordCheckpoint). Needs ConsumerOptions::deaggregator to resume
  // inside the aggregate; without one the whole aggregate is delivered again.
  [[nodiscard]] absl::Status Checkpoint(const SequenceNumber& sequence_number,
                                        uint64_t sub_sequence_number);
  // A user record already delivered: by sub-sequence number when it is aggregated.
  [[nodiscard]] absl::Status Checkpoint(const UserRecord& record);

 private:
  friend class Consumer;
  Checkpointer(Consumer* consumer, ShardTask* task) : consumer_(consumer), task_(task) {}
  Consumer* consumer_;
  ShardTask* task_;
};

// The application's code, one instance per shard lease. Callbacks of one instance are
// called in order, never concurrently.
class RecordProcessor {
 public:
  virtual ~RecordProcessor() = default;
  // `checkpoint`: where processing resumes (a sequence number, or a SubRecordCheckpoint),
  // empty for the initial position.
  virtual void Initialize(std::string_view shard_id, std::string_view checkpoint) = 0;
  virtual void ProcessRecords(const ProcessRecordsInput& input, Checkpointer& checkpointer) = 0;
  // The shard was closed by a reshard and every record was delivered. REQUIRED: call
  // checkpointer.Checkpoint(), or the children are never processed (the shard is leased
  // and processed again from its last checkpoint instead).
  virtual void ShardEnded(Checkpointer& checkpointer) = 0;
  virtual void Shutdown(ShutdownReason reason, Checkpointer& checkpointer) {
    (void)reason;
    (void)checkpointer;
  }
};

// Who processes which shard, among the workers of one or more applications in this process.
// A lease not renewed within its duration (clock time) may be taken by another worker; a
// worker that did not heartbeat within the lease duration no longer counts for balancing.
// Thread safety: any thread.
class LeaseTable {
 public:
  explicit LeaseTable(Clock* clock = nullptr);

  // The shard's current owner, if any (expired leases keep their owner until taken).
  std::optional<std::string> Owner(std::string_view application, std::string_view shard_id) const;
  // shard id -> owner, for every leased shard of the application.
  std::map<std::string, std::string> Owners(std::string_view application) const;

  // Used by Consumer.
  void Heartbeat(std::string_view application, std::string_view worker, absl::Duration ttl);
  void RemoveWorker(std::string_view application, std::string_view worker);
  int LiveWorkers(std::string_view application) const;
  // Takes the lease if it is free, expired or already the worker's; true on success.
  bool TryAcquire(std::string_view application, std::string_view shard_id, std::string_view worker,
                  absl::Duration ttl);
  bool Renew(std::string_view application, std::string_view shard_id, std::string_view worker,
             absl::Duration ttl);
  void Release(std::string_view application, std::string_view shard_id, std::string_view worker);
  // Leases per live owner (owners with none are absent).
  std::map<std::string, int> Counts(std::string_view application) const;

 private:
  struct Lease {
    std::string owner;
    int64_t expires_ms = 0;
  };
  using Key = std::pair<std::string, std::string>;
  Clock* const clock_;
  mutable std::mutex mu_;
  std::map<Key, Lease, std::less<>> leases_;     // (application, shard)
  std::map<Key, int64_t, std::less<>> workers_;  // (application, worker) -> expiry
};

using RecordProcessorFactory = std::function<std::unique_ptr<RecordProcessor>()>;

struct ConsumerOptions {
  // REQUIRED, not owned: the stream to read (riffle::Stream, or another RecordSource;
  // kEnhancedFanOut needs a riffle::Stream). Must outlive the consumer.
  RecordSource* stream = nullptr;
  // Required: 1..128 characters of [a-zA-Z0-9_.-]; names checkpoints and leases.
  std::string application_name;
  // Unique among the application's workers. Default "worker".
  std::string worker_id = "worker";
  ConsumerMode mode = ConsumerMode::kPolling;
  // kEnhancedFanOut: the registered stream consumer to subscribe with (registered if
  // missing). Default: application_name.
  std::string stream_consumer_name{};
  // Where a shard without a checkpoint starts: kTrimHorizon (default), kLatest or
  // kAtTimestamp. A child of a shard this application processed always starts at its
  // first record. As the KCL does for a new application (no checkpoint for any shard),
  // kLatest starts at the open shards and kAtTimestamp at the shards open at the timestamp:
  // the shards closed before are not processed (they get SHARD_END), and the start shards
  // get kLatestCheckpoint / kAtTimestampCheckpoint until they checkpoint a record.
  InitialPosition initial_position = InitialPosition::kTrimHorizon;
  std::optional<absl::Time> initial_timestamp{};  // kAtTimestamp only
  // Required, not owned; shared by the application's workers.
  CheckpointStore* checkpoint_store = nullptr;
  // Not owned; shared by the application's workers in this process. nullptr: a table of
  // the consumer's own (a single worker).
  LeaseTable* lease_table = nullptr;
  // A lease not renewed for this long (clock time) may be taken. Default 10 s; positive,
  // at most 365 days, more than lease_refresh_interval.
  absl::Duration lease_duration = absl::Seconds(10);
  // How often Poll() renews, balances and takes leases (clock time; the first Poll always
  // does). Default 1 s; 0 (every Poll) to 365 days.
  absl::Duration lease_refresh_interval = absl::Seconds(1);
  // Records per GetRecords call or fan-out event, 1..10,000. Default 10,000.
  int max_records = 10000;
  // Start(): how long the thread sleeps (real time) after a Poll() that found nothing.
  // Default 1 ms; 0 to 365 days.
  absl::Duration idle_sleep = absl::Milliseconds(1);
  // Not owned; nullptr means the stream's clock.
  Clock* clock = nullptr;
  // Default kReport.
  InvalidCheckpointPolicy invalid_checkpoint = InvalidCheckpointPolicy::kReport;
  // Not owned; must outlive the consumer. When set (for KPL aggregates, a
  // riffle::kpl::Deaggregator), processors see user records (ProcessRecordsInput) and may
  // checkpoint inside an aggregate; Checkpoint() still names the last Kinesis record
  // delivered. Default nullptr: records as they were put.
  const UserRecordDecoder* deaggregator = nullptr;
  // REQUIRED: makes the processor of each leased shard. A factory that returns nullptr (or
  // throws) is reported in last_error() and the lease released; the next lease pass tries
  // again.
  RecordProcessorFactory processor_factory;
};

class Consumer {
 public:
  // InvalidArgumentException for bad options; in fan-out mode, errors of
  // RegisterStreamConsumer other than "already registered". REQUIRES: the stream, the store
  // and the lease table outlive the consumer.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Consumer>> Create(ConsumerOptions options);
  ~Consumer();  // Stop()
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // One host-driven step: leases when due, then one read of every owned shard. Returns
  // the number of records (user records, with a deaggregator) delivered to processors.
  size_t Poll();
  // Runs Poll() on a thread of the consumer's own until Stop(). ResourceInUseException
  // when already started or stopped.
  [[nodiscard]] absl::Status Start();
  // Processors get Shutdown(kRequested), leases are released for other workers. Idempotent.
  // From a processor's callback, it takes effect when the callback returns: no processor
  // is called again but for Shutdown; after Start(), the owner's Stop() (or the
  // destructor) still ends the thread.
  void Stop();

  // OK, or what keeps a shard from being processed (an unusable checkpoint under
  // InvalidCheckpointPolicy::kReport, a failing checkpoint store, a processor_factory that
  // returned nullptr: InvalidArgumentException), or what a processor's callback threw
  // (InternalFailure naming the callback and the shard: the consumer goes on, as the KCL
  // does; a throwing Initialize is retried with a new processor at the next lease pass).
  // Cleared at each lease pass. Call from the driving thread, or after Stop().
  absl::Status last_error() const;
  // Checkpoints the stream did not recognise and that were restarted from the initial
  // position (InvalidCheckpointPolicy::kRestartFromInitialPosition).
  uint64_t invalid_checkpoints() const { return invalid_checkpoints_; }

  // Shards this worker holds leases on. Call from the driving thread, or after Stop().
  std::vector<std::string> OwnedShards() const;

 private:
  friend class Checkpointer;
  explicit Consumer(ConsumerOptions options);
  void RefreshLeases(int64_t now_ms);
  // A new application at LATEST or AT_TIMESTAMP: the shards it starts from get the
  // position's checkpoint, those closed before it SHARD_END (added to `checkpoints`).
  void StartNewApplication(const std::vector<Shard>& shards,
                           std::map<std::string, std::string, std::less<>>& checkpoints);
  // False when the processor's Initialize threw (the lease is released).
  bool TakeShard(const std::string& shard_id, const std::optional<std::string>& checkpoint,
                 bool after_parents);
  void DropShard(std::size_t i, ShutdownReason reason, bool release);
  int PollShard(ShardTask& task, int64_t now_ms);
  int PollPolling(ShardTask& task, int64_t now_ms);
  int PollFanOut(ShardTask& task, int64_t now_ms);
  // Where a shard starts: after its checkpoint, at its first record (a child), or at the
  // initial position. nullopt when the checkpoint is unusable (reported).
  std::optional<StartingPosition> StartOf(ShardTask& task);
  // The invalid-checkpoint policy for a checkpoint the stream refused (`cause`): true when
  // the shard starts again at its initial position, false when it waits (reported).
  bool OnUnusableCheckpoint(ShardTask& task, const absl::Status& cause);
  void Deliver(ShardTask& task, std::span<const Record> records, int64_t behind, uint64_t missed);
  void EndShard(ShardTask& task);
  absl::Status WriteCheckpoint(ShardTask& task, std::string_view value);
  // After a parent's SHARD_END: its children without a checkpoint get TRIM_HORIZON.
  void SeedChildren(std::string_view parent);
  // Checkpointer::Checkpoint at a record (`sub`: a user record of it) between the last
  // checkpoint and the last record delivered; the shard's last record during ShardEnded
  // writes SHARD_END.
  absl::Status CheckpointAt(ShardTask& task, const SequenceNumber& sequence_number,
                            std::optional<uint64_t> sub);
  // Why `n` cannot name a record delivered to the task's processor (of another stream or
  // shard, after the last one delivered); empty when it can.
  std::string NotDelivered(const ShardTask& task, const SequenceNumber& n) const;
  // Whether `n`, at most the last record delivered, is a record's number.
  bool IsRecord(const ShardTask& task, const SequenceNumber& n);
  // Stop() without the thread: every processor shut down, leases released.
  void StopProcessing();
  // Stop() requested from a processor's callback, once the callback returned.
  void FinishRequestedStop();

  ConsumerOptions options_;
  RecordSource& stream_;
  Stream* const local_stream_;  // the same, when it is a riffle::Stream (fan-out)
  Clock& clock_;
  std::unique_ptr<LeaseTable> own_leases_;
  LeaseTable* leases_;
  std::vector<std::unique_ptr<ShardTask>> tasks_;
  int64_t next_refresh_ms_ = INT64_MIN;
  absl::Status status_;
  uint64_t invalid_checkpoints_ = 0;
  bool stopped_ = false;
  bool stop_requested_ = false;  // Stop() from a processor's callback
  // Start() was called: Poll() runs on the own thread, which a Stop() there cannot join.
  std::atomic<bool> own_thread_{false};
  std::unique_ptr<detail::OwnThread> thread_;  // Start()
};

}  // namespace riffle

#endif  // RIFFLE_CONSUMER_H_
