// Enhanced fan-out: SubscribeToShard pushes a shard's records to a handler.
//
//   auto consumer = stream->RegisterStreamConsumer("audit");
//   auto sub = stream->SubscribeToShard(
//       {"audit", "shardId-000000000000", {riffle::StartingPositionType::kTrimHorizon}},
//       [](const riffle::SubscribeToShardEvent& e) { for (auto& r : e.records) Use(r); },
//       {.run_on_thread = true});
//
// A subscription keeps its own position in the shard's ring and reads it when polled (the
// GetRecords read path); producers do no work per subscriber. Driven either by the host
// (Poll(), no thread) or by its own thread with a wait strategy.
//
// Thread safety: with run_on_thread the handler runs on the subscription's thread and the
// host must not call Poll(); otherwise Poll() is called by one host thread at a time.
// Stop(), done(), end_reason() and the destructor may be called from any thread (not from
// the handler). REQUIRES: the Stream outlives its subscriptions.
#ifndef RIFFLE_SUBSCRIPTION_H_
#define RIFFLE_SUBSCRIPTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "absl/time/time.h"
#include "riffle/clock.h"
#include "riffle/stream.h"

namespace riffle {

enum class StartingPositionType {
  kAtSequenceNumber,     // a record's number, or a ContinuationSequenceNumber
  kAfterSequenceNumber,  // a record's number
  kTrimHorizon,
  kLatest,
  kAtTimestamp,
};

struct StartingPosition {
  StartingPositionType type = StartingPositionType::kLatest;
  std::string sequence_number{};          // AT_/AFTER_SEQUENCE_NUMBER only
  std::optional<absl::Time> timestamp{};  // AT_TIMESTAMP only
};

enum class WaitStrategy {
  kBusySpin,  // lowest latency; burns a core while idle
  kYield,     // spins through the scheduler; burns a core, but cedes it to other work
  kBlock,     // sleeps on a futex until a put wakes it: an idle subscription costs no CPU
};

// Why a subscription ended. The event that carries a reason is its last.
enum class SubscriptionEnd {
  kNone,
  kLifetimeExpired,  // resubscribe AT_SEQUENCE_NUMBER continuation_sequence_number
  kShardEnded,       // closed shard read to its end: child_shards lists the children
  kReplaced,         // a newer subscription of the consumer took this shard
  kConsumerDeregistered,
  kShardNotFound,  // the shard expired (aged out of retention) under the subscription
};
std::string_view SubscriptionEndName(SubscriptionEnd end);

// One push. Views are valid only during the handler call.
struct SubscribeToShardEvent {
  std::span<const Record> records;
  // Where this consumer's next record will be (it advances past trimmed records and
  // padding even when no record is delivered). Resubscribe and checkpoint with it, using
  // StartingPositionType::kAtSequenceNumber.
  SequenceNumber continuation_sequence_number;
  int64_t millis_behind_latest = 0;
  // Records trimmed (ring capacity or retention) before this lossy subscriber got to them.
  uint64_t missed_records = 0;
  std::span<const ChildShard> child_shards;  // with kShardEnded
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
  // Run on a thread of the subscription's own; default false: the host calls Poll().
  bool run_on_thread = false;
  // How the thread waits for records (ignored for host-driven subscriptions). Default kBlock.
  WaitStrategy wait = WaitStrategy::kBlock;
  // Most records per event, 1..10,000. Default 10,000.
  int max_records_per_event = 10000;
};

class Subscription {
 public:
  ~Subscription();  // Stop()
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Host-driven step: reads the shard once and delivers at most one event (records, missed
  // records, or an end). Returns true if it delivered one. Allocates nothing once the
  // internal buffers have grown. REQUIRES: not run_on_thread.
  bool Poll();

  // Ends the subscription (its thread is joined; no event is delivered).
  void Stop();

  bool done() const { return done_.load(std::memory_order_acquire); }
  SubscriptionEnd end_reason() const { return end_.load(std::memory_order_acquire); }
  const std::string& shard_id() const { return shard_id_; }
  // Times the thread returned from a wait (kBlock: wake-ups; an idle subscription has few).
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  friend class Stream;
  Subscription(Stream* stream, std::shared_ptr<detail::ConsumerRecord> consumer,
               detail::ShardState* shard, ShardIterator start, std::atomic<uint64_t>* gate,
               std::shared_ptr<std::atomic<bool>> revoked, SubscribeToShardHandler handler,
               const SubscriptionOptions& options);
  void Start();  // the thread, when asked
  bool PollOnce();
  void Run();
  void Wait();
  void Deliver(SubscriptionEnd end);  // the last event

  Stream* const stream_;
  const std::shared_ptr<detail::ConsumerRecord> consumer_;
  detail::ShardState* const shard_;
  const std::string shard_id_;
  const std::shared_ptr<std::atomic<bool>> revoked_;
  const SubscribeToShardHandler handler_;
  const SubscriptionOptions options_;
  std::atomic<uint64_t>* const gate_;  // lossless consumers only
  const int64_t deadline_ms_;          // INT64_MAX: unlimited
  ShardIterator iterator_;
  GetRecordsResult result_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::atomic<SubscriptionEnd> end_{SubscriptionEnd::kNone};
  std::atomic<uint64_t> wakeups_{0};
  ClockSubscription clock_wake_;
  std::thread thread_;
};

}  // namespace riffle

#endif  // RIFFLE_SUBSCRIPTION_H_
