// Enhanced fan-out: SubscribeToShard pushes a shard's records to a handler.
//
//   auto consumer = stream->RegisterStreamConsumer("audit");
//   auto sub = stream->SubscribeToShard(
//       {"audit", "shardId-000000000000", {riffle::ShardIteratorType::kTrimHorizon}},
//       [](const riffle::SubscribeToShardEvent& e) { for (auto& r : e.records) Use(r); });
//   (*sub)->Start();  // or call (*sub)->Poll() from the host's loop
//
// A subscription keeps its own position in the shard's log and reads it when polled (the
// GetRecords read path); producers do no work per subscriber. Driven either by the host
// (Poll(), no thread) or by its own thread (Start()) with a wait strategy.
//
// Thread safety: after Start() the handler runs on the subscription's thread and the host
// must not call Poll(); otherwise Poll() is called by one host thread at a time. Stop(),
// done(), end_reason() and the destructor may be called from any thread (not from the
// handler). A subscription may outlive its Stream: it then ends with kStreamDeleted.
#ifndef RIFFLE_SUBSCRIPTION_H_
#define RIFFLE_SUBSCRIPTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "absl/time/time.h"
#include "riffle/clock.h"
#include "riffle/detail/token_bucket.h"
#include "riffle/record_source.h"
#include "riffle/stream.h"

namespace riffle {

enum class WaitStrategy {
  kBusySpin,  // lowest latency; burns a core while idle
  kYield,     // spins through the scheduler; burns a core, but cedes it to other work
  kBlock,     // sleeps on a futex until a put wakes it: an idle subscription costs no CPU
};

// Why a subscription ended. The event that carries a reason is its last.
enum class SubscriptionEnd {
  kNone,
  kLifetimeExpired,  // resubscribe AT_/AFTER_SEQUENCE_NUMBER continuation_sequence_number
  kShardEnded,       // closed shard read to its end: child_shards lists the children
  kReplaced,         // a newer subscription of the consumer took this shard
  kConsumerDeregistered,
  kShardNotFound,  // the shard aged out of retention under the subscription: the event
                   // counts what was left unread as missed and lists the children
  kStreamDeleted,  // the Stream object was destroyed
};
std::string_view SubscriptionEndName(SubscriptionEnd end);

// One push. Views are valid only during the handler call.
struct SubscribeToShardEvent {
  std::span<const Record> records;
  // Where this consumer's next record will be (it advances past trimmed records and
  // padding even when no record is delivered), a number no record has. Resubscribe and
  // checkpoint with it, using ShardIteratorType::kAtSequenceNumber or
  // kAfterSequenceNumber: both resume at the next record (docs/consumers.md).
  SequenceNumber continuation_sequence_number;
  int64_t millis_behind_latest = 0;
  // Records trimmed (ring capacity or retention) before this lossy subscriber got to them.
  uint64_t missed_records = 0;
  std::span<const ChildShard> child_shards;  // with kShardEnded and kShardNotFound
  SubscriptionEnd end = SubscriptionEnd::kNone;
};

struct SubscribeToShardRequest {
  std::string_view consumer{};  // name or ARN of a registered consumer
  std::string_view shard_id{};
  StartingPosition starting_position{};
};

struct SubscriptionOptions {
  // How long the subscription lasts, in the stream's clock time (the service: 5 minutes).
  // absl::InfiniteDuration() means unlimited.
  absl::Duration lifetime = absl::Minutes(5);
  // How the subscription's own thread waits for records (Start()). Default kBlock.
  WaitStrategy wait = WaitStrategy::kBlock;
  // Most records per event, 1..10,000. Default 10,000.
  int max_records_per_event = 10000;
  // The service pushes at most 2 MiB/s of a shard to each consumer. With this set, events
  // are paced to it on the stream's clock (keys and data counted): an event holds what the
  // budget has (at least one record), and the budget belongs to the consumer and shard, so a
  // subscription that replaces another, or resubscribes, goes on from what that one spent.
  // Off (nullopt) by default; an Account with its limits on sets 2 MiB.
  std::optional<uint64_t> max_bytes_per_second{};
};

namespace detail {
struct StreamCore;
struct ShardState;
struct ConsumerRecord;
struct PushBudget;
// What Stream::SubscribeToShard hands a new subscription.
struct SubscriptionInit {
  std::shared_ptr<StreamCore> core;
  std::shared_ptr<ConsumerRecord> consumer;
  std::shared_ptr<ShardState> shard;
  ShardIterator start;
  std::shared_ptr<std::atomic<uint64_t>> gate;  // lossless consumers only
  std::shared_ptr<std::atomic<bool>> revoked;
  std::shared_ptr<PushBudget> push;  // options.max_bytes_per_second set only
};
}  // namespace detail

class Subscription {
 public:
  // Internal: use Stream::SubscribeToShard.
  Subscription(detail::SubscriptionInit init, SubscribeToShardHandler handler,
               const SubscriptionOptions& options);
  ~Subscription();  // Stop()
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Host-driven step: reads the shard once and delivers at most one event (records, missed
  // records, or an end). Returns the number of events delivered (0 or 1). Allocates nothing
  // once the internal buffers have grown. REQUIRES: not started.
  size_t Poll();

  // Runs the subscription on a thread of its own with options().wait until it ends or
  // Stop(). ResourceInUseException when already started or stopped.
  [[nodiscard]] absl::Status Start();
  // Ends the subscription (its thread is joined; no further event is delivered). Idempotent;
  // any thread, concurrently with Start() or another Stop(); from the handler it only asks
  // (the thread ends after the handler returns).
  void Stop();

  bool done() const { return done_.load(std::memory_order_acquire); }
  SubscriptionEnd end_reason() const { return end_.load(std::memory_order_acquire); }
  const std::string& shard_id() const { return shard_id_; }
  // Times the thread returned from a wait (kBlock: wake-ups; an idle subscription has few).
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  bool PollOnce();
  void Run();
  void Wait();
  // The last event (the continuation where iterator_ stands).
  void Deliver(SubscriptionEnd end, uint64_t missed = 0, std::span<const ChildShard> children = {});
  void DeliverExpired();  // the last event of a shard that aged out: missed count, children
  SequenceNumber Continuation(const ShardIterator& next) const;  // of an event ending at next
  void MoveGate(uint64_t position);

  const detail::SubscriptionInit init_;
  const std::string shard_id_;
  const SubscribeToShardHandler handler_;
  const SubscriptionOptions options_;
  const int64_t deadline_ms_;  // INT64_MAX: unlimited
  ShardIterator iterator_;
  GetRecordsResult result_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::atomic<SubscriptionEnd> end_{SubscriptionEnd::kNone};
  std::atomic<uint64_t> wakeups_{0};
  int64_t throttled_until_ms_ = INT64_MIN;
  std::mutex lifecycle_mu_;                    // Start() and Stop() from different threads
  std::atomic<std::thread::id> running_on_{};  // the thread Start() made, once it runs
  bool started_ = false;                       // guarded by lifecycle_mu_
  ClockSubscription clock_wake_;
  std::thread thread_;  // guarded by lifecycle_mu_
};

}  // namespace riffle

#endif  // RIFFLE_SUBSCRIPTION_H_
