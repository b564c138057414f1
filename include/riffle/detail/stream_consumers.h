// The enhanced fan-out registry of a Stream: registered consumers, their lossless gates,
// the subscription bookkeeping the 5-second rule needs, blocked producers of
// PutRecordBlocking, and the polling read budget. Everything here is control plane or
// cold; the only per-put state (the sleeping-subscriber count) lives in Stream itself.
#ifndef RIFFLE_DETAIL_STREAM_CONSUMERS_H_
#define RIFFLE_DETAIL_STREAM_CONSUMERS_H_

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace riffle::detail {

struct ConsumerShardState {
  int64_t last_subscribe_ms = INT64_MIN;
  // Set to end the newest subscription when a later one replaces it.
  std::shared_ptr<std::atomic<bool>> revoked;
};

struct ConsumerRecord {
  std::string name;
  std::string arn;
  absl::Time created;
  bool lossless = false;
  std::atomic<bool> deregistered{false};
  // Guarded by StreamConsumers::mu. Gates are boxed: shard rings hold their addresses, and
  // a deregistered record is retired, never freed, while the stream lives.
  absl::flat_hash_map<uint64_t, std::unique_ptr<std::atomic<uint64_t>>> gates;
  absl::flat_hash_map<uint64_t, ConsumerShardState> shards;
};

// One shard's polling budget: calls in the current clock second, and bytes read beyond
// what the byte rate has paid back since (a large read throttles the following seconds).
struct ReadWindow {
  int64_t second = INT64_MIN;
  int calls = 0;
  uint64_t byte_debt = 0;
  int64_t debt_at_ms = 0;
};

struct StreamConsumers {
  mutable std::mutex mu;                                   // guards consumers and retired
  std::vector<std::shared_ptr<ConsumerRecord>> consumers;  // registration order
  std::vector<std::shared_ptr<ConsumerRecord>> retired;

  // PutRecordBlocking: producers wait for put_epoch to move; a lossless subscription that
  // advanced its gate bumps it when put_waiters is non-zero.
  std::mutex put_mu;
  std::condition_variable put_cv;
  uint64_t put_epoch = 0;  // guarded by put_mu
  std::atomic<int> put_waiters{0};

  std::mutex budget_mu;
  absl::flat_hash_map<uint64_t, ReadWindow> budgets;  // by shard index

  void NotifyPutWaiters() {
    // The gate store before this fence, and the producer's fence after counting itself,
    // make one of the two see the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (put_waiters.load(std::memory_order_relaxed) == 0) return;
    std::lock_guard<std::mutex> lock(put_mu);
    ++put_epoch;
    put_cv.notify_all();
  }
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_STREAM_CONSUMERS_H_
