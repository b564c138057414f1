// FanOut: a stream's enhanced fan-out registry and what hangs off it: registered consumers,
// their lossless gates, the subscription bookkeeping of the 5-second rule, producers
// blocked in PutRecordBlocking, the polling read budget and the write limit. Everything here is
// control plane or cold; the only per-put state (the wake signal) lives in StreamCore.
//
// Memory: a deregistered consumer's record is released by the registry at once; the shard
// logs' gate lists that point at its gates are replaced and the old lists retired through
// the epoch domain, and the record itself is retired the same way, so a producer that
// still reads a gate inside its put's guard never reads freed memory. Subscriptions hold
// the record by reference until they end.
#ifndef RIFFLE_STREAM_FANOUT_H_
#define RIFFLE_STREAM_FANOUT_H_

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/detail/stream_core.h"
#include "riffle/detail/token_bucket.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"

namespace riffle::detail {

// A consumer's push budget on one shard (SubscriptionOptions::max_bytes_per_second). Shared
// by its subscriptions: a replaced one may still be in its last poll when the new one starts.
struct PushBudget {
  explicit PushBudget(uint64_t rate) : bucket(rate, rate) {}
  std::mutex mu;
  TokenBucket bucket;
};

struct ConsumerShardState {
  int64_t last_subscribe_ms = INT64_MIN;
  // Set to end the newest subscription when a later one replaces it.
  std::shared_ptr<std::atomic<bool>> revoked;
  std::shared_ptr<PushBudget> push;  // created by the first subscription with a budget
};

struct ConsumerRecord {
  std::string name;
  std::string arn;
  absl::Time created;
  bool lossless = false;
  std::atomic<bool> deregistered{false};
  // Guarded by FanOut::mu_. Gates are boxed: shard logs hold their addresses, and a
  // subscription shares its own.
  absl::flat_hash_map<uint64_t, std::shared_ptr<std::atomic<uint64_t>>> gates;
  absl::flat_hash_map<uint64_t, ConsumerShardState> shards;
  // Both maps drop the entries of expired shards when they reach this many entries (then
  // twice what is left): FanOut::PruneConsumerLocked.
  std::size_t prune_at = 64;
};

// One shard's polling budget: calls in the current clock second, and bytes read beyond
// what the byte rate has paid back since. As the service documents it, a read of a second's
// budget or more throttles the shard until the byte rate has paid it all back (a 10 MiB
// read at 2 MiB/s: the next 5 seconds).
struct ReadWindow {
  int64_t second = INT64_MIN;
  int calls = 0;
  uint64_t byte_debt = 0;          // in thousandths of a byte: paid back exactly, millisecond by ms
  int64_t debt_at_ms = INT64_MIN;  // the latest time the debt was paid to (never earlier)
  bool repaying = false;           // byte_debt reached a second's budget and is not yet paid back
};

class FanOut {
 public:
  FanOut(StreamCore& core, OverflowPolicy policy, int max_consumers,
         std::optional<StreamOptions::ReadBudget> read_budget,
         std::optional<StreamOptions::WriteLimit> write_limit)
      : core_(core),
        policy_(policy),
        max_consumers_(max_consumers),
        read_budget_(read_budget),
        write_limit_(write_limit) {}

  absl::StatusOr<ConsumerDescription> Register(std::string_view name,
                                               RegisterStreamConsumerOptions options);
  absl::Status Deregister(std::string_view name_or_arn);
  absl::StatusOr<ConsumerDescription> Describe(std::string_view name_or_arn) const;
  std::vector<ConsumerDescription> List() const;
  int ConsumerCount() const;

  // Checks the options, the consumer, the start (`start` turns the request's starting
  // position into an iterator) and the 5-second rule, and builds a subscription.
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      std::shared_ptr<StreamCore> core, const SubscribeToShardRequest& request,
      SubscribeToShardHandler handler, const SubscriptionOptions& options,
      const std::function<absl::StatusOr<ShardIterator>()>& start);

  // Lossless consumers gate a new shard (a reshard's child) from its first record.
  void GateNewShard(ShardState& shard);

  // PutRecordBlocking: waits for a lossless consumer's progress, up to `deadline`, and
  // retries `put` until it is not refused for a full ring.
  absl::StatusOr<PutRecordResult> PutBlocking(
      const std::function<absl::StatusOr<PutRecordResult>()>& put, absl::Time deadline);
  // A lossless subscription moved its gate: wake blocked producers (cheap when none).
  void NotifyPutWaiters();
  // Wakes blocked producers unconditionally (consumer gone, stream gone).
  void WakePutWaiters();

  // The polling read budget: charges a GetRecords call before the read (error when the
  // shard's budget is spent), then its bytes after it.
  absl::Status ChargeReadCall(uint64_t shard_index, int64_t now_ms);
  void ChargeReadBytes(uint64_t shard_index, uint64_t bytes);

  // The write limit: takes one record of `bytes` from the shard's buckets, or refuses it
  // (ProvisionedThroughputExceededException) and takes nothing.
  absl::Status ChargeWrite(uint64_t shard_index, uint64_t bytes, int64_t now_ms);
  // Gives back what ChargeWrite took for a record the shard then did not take (its ring
  // full, or closed by a reshard): a record not written uses none of the shard's rate.
  void RefundWrite(uint64_t shard_index, uint64_t bytes);

 private:
  std::shared_ptr<ConsumerRecord> FindLocked(std::string_view name_or_arn) const;
  // Replaces every shard's gate list after lossless consumers changed. REQUIRES: mu_.
  void InstallGatesLocked();
  std::vector<const std::atomic<uint64_t>*> GatesForLocked(uint64_t shard_index);
  ConsumerDescription DescribeLocked(const ConsumerRecord& c) const;

  StreamCore& core_;
  const OverflowPolicy policy_;
  const int max_consumers_;
  const std::optional<StreamOptions::ReadBudget> read_budget_;
  const std::optional<StreamOptions::WriteLimit> write_limit_;

  mutable std::mutex mu_;                                   // guards consumers_
  std::vector<std::shared_ptr<ConsumerRecord>> consumers_;  // registration order
  // The creation second in each name's latest ARN: a name registered again gets a later
  // one, so a stale ARN never names the new consumer (as the service's ARNs never repeat).
  absl::flat_hash_map<std::string, int64_t> arn_seconds_;
  std::size_t arn_seconds_prune_at_ = 64;  // then twice what is left (PruneArnSecondsLocked)
  // The latest second of the names pruned: a name seen for the first time gets a later one
  // even when the clock went back (it may be a pruned name).
  int64_t arn_pruned_second_ = INT64_MIN;

  // PutRecordBlocking: producers wait for put_epoch_ to move; a lossless subscription that
  // advanced its gate bumps it when put_waiters_ is non-zero.
  std::mutex put_mu_;
  std::condition_variable put_cv_;
  uint64_t put_epoch_ = 0;  // guarded by put_mu_
  std::atomic<int> put_waiters_{0};

  std::mutex budget_mu_;
  absl::flat_hash_map<uint64_t, ReadWindow> budgets_;  // by shard index
  struct WriteBuckets {
    TokenBucket bytes;
    TokenBucket records;
  };
  absl::flat_hash_map<uint64_t, WriteBuckets> write_buckets_;  // by shard index; budget_mu_
  // The two tables drop the entries of expired shards when they reach this many entries
  // (then twice what is left): a stream that reshards for months keeps no record of the
  // shards it no longer has. Guarded by budget_mu_.
  std::size_t budgets_prune_at_ = 64;
  void PruneBudgetsLocked();
  // Drops what `c` keeps for shards that expired (gates retired: a producer in a put may
  // still read one). REQUIRES: mu_.
  void PruneConsumerLocked(ConsumerRecord& c);
  void PruneArnSecondsLocked(int64_t now_s);
};

}  // namespace riffle::detail

#endif  // RIFFLE_STREAM_FANOUT_H_
