// FifoQueue's state and the functions that work on it, shared by fifo_queue.cc (the public
// calls) and fifo_queue_impl.cc (staging, draining, taking, deleting and attempts under the
// queue's locks). The locks and what each guards are described beside the members.
#ifndef RIFFLE_FIFO_FIFO_QUEUE_IMPL_H_
#define RIFFLE_FIFO_FIFO_QUEUE_IMPL_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "fifo/fifo_core.h"
#include "fifo/fifo_text.h"
#include "riffle/fifo_queue.h"

namespace riffle {
namespace detail {

inline constexpr int64_t kNanosPerSecond = 1'000'000'000;
// The latest clock reading the queue uses, in milliseconds: far enough below INT64_MAX
// nanoseconds that every deadline it adds to a reading (retention, at most 14 days, the
// longest) stays in range. A clock set later (ManualClock at absl::InfiniteFuture(), about
// the year 2262) reads as this.
inline constexpr int64_t kMaxClockMillis = INT64_MAX / 1'000'000 - int64_t{30} * 86'400'000;

// The queue's critical sections last a fraction of a microsecond, while parking a thread in
// the kernel and waking it again costs microseconds: try a little before blocking, as
// glibc's adaptive mutexes do.
inline std::unique_lock<std::mutex> LockQueue(std::mutex& mu) {
  for (int i = 0; i < 100; ++i) {
    if (mu.try_lock()) return std::unique_lock<std::mutex>(mu, std::adopt_lock);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  return std::unique_lock<std::mutex>(mu);
}

// A receipt handle decoded outside the lock.
struct FifoHandle {
  std::string_view text;
  bool well_formed;
  uint32_t slot;
  uint32_t generation;
};

}  // namespace detail

struct FifoQueue::Impl {
  // What a send needs after validation, computed outside the lock.
  struct PreparedSend {
    std::string_view group;
    std::string_view body;
    std::string_view dedup_id;
    std::string_view trace_header;
    absl::uint128 fingerprint;
    const MessageAttributes* attributes;
    char content_hash[64];
  };
  // A message taken by a receive, formatted after the lock is released.
  struct Taken {
    absl::uint128 message_id;
    uint64_t serial;
    uint32_t slot;
    uint32_t generation;
  };
  struct Attempt {
    int64_t expires_ns;
    std::vector<std::pair<uint32_t, uint32_t>> handles;  // (slot, generation)
  };
  // A message accepted by a send and not yet in the core. Its strings circulate between
  // the staging buffers and the slots (swapped, not copied), so none is allocated once
  // they have grown.
  struct Staged {
    uint64_t serial = 0;
    int64_t enqueued_ns = 0;
    int64_t sent_ms = 0;
    // A moved message keeps these from its source queue; a sent one starts at 0.
    int32_t receive_count = 0;
    int64_t first_receive_ms = 0;
    absl::uint128 message_id = 0;
    std::string group;
    std::string body;
    std::string dedup_id;
    std::string trace_header;
    std::string dead_letter_source;  // The source queue's name, for a moved message.
    std::unique_ptr<MessageAttributes> attributes;
  };

  explicit Impl(FifoQueueOptions o)
      : options(std::move(o)),
        clock(options.clock ? options.clock : &SystemClock::Default()),
        core({int64_t{options.message_retention_period_seconds} * detail::kNanosPerSecond,
              int64_t{options.delay_seconds} * detail::kNanosPerSecond}),
        redrive(options.redrive_policy) {
    StoreScalars(options);
    std::random_device rd;
    tag = (uint64_t{rd()} << 32) ^ rd() ^ reinterpret_cast<uintptr_t>(this);
    created_s = absl::ToUnixSeconds(clock->Now());
    if (clock->IsManual()) {
      subscription = clock->OnTimeChange([this] {
        std::lock_guard<std::mutex> lock(mu);
        cv.notify_all();
      });
    }
  }

  // The clock is read before taking a lock (it is not free), then made monotonic under
  // it. Milliseconds are all SQS semantics need, and NowMillis is several times cheaper
  // than Now() on the system clock. Times before 1970 read as 1970 (the queue's time
  // starts there), times past kMaxClockMillis as kMaxClockMillis.
  int64_t ReadClock() const {
    return std::clamp<int64_t>(clock->NowMillis(), 0, detail::kMaxClockMillis) * 1'000'000;
  }
  int64_t NowLocked(int64_t read) {
    last_now = std::max(last_now, read);
    return last_now;
  }

  // The attributes read without a lock (atomics: SetAttributes may change them).
  void StoreScalars(const FifoQueueOptions& o) {
    visibility_timeout_seconds.store(o.visibility_timeout_seconds, std::memory_order_relaxed);
    maximum_message_size.store(o.maximum_message_size, std::memory_order_relaxed);
    receive_message_wait_time_seconds.store(o.receive_message_wait_time_seconds,
                                            std::memory_order_relaxed);
    content_based_deduplication.store(o.content_based_deduplication, std::memory_order_relaxed);
    group_scope.store(o.deduplication_scope == DeduplicationScope::kMessageGroup,
                      std::memory_order_relaxed);
  }

  [[nodiscard]] absl::Status Prepare(std::string_view group, std::string_view body,
                                     const std::optional<std::string_view>& dedup_id,
                                     const MessageAttributes& attributes,
                                     const std::optional<int>& delay,
                                     const std::optional<std::string_view>& trace_header,
                                     PreparedSend* out) const;
  // Under send_mu: stage a message or recognise a duplicate; returns the serial.
  uint64_t StageLocked(const PreparedSend& p, int64_t now);
  Staged& NextStagingEntry() {
    if (staged == staging.size()) staging.emplace_back();
    return staging[staged++];
  }
  // After staging, outside every lock: wakes long polls. A poll sleeps only after seeing
  // the staging area empty, so only the send that made it non-empty (`first`) needs to
  // wake anyone; later sends would make a system call for nothing. Taking mu (an empty
  // critical section) orders the notification after the waiter's last look.
  void WakeAfterStaging(bool first) {
    if (!first || waiters.load() == 0) return;
    { std::lock_guard<std::mutex> lock(mu); }
    cv.notify_all();
  }
  // Under mu: moves staged messages into the core, in serial order.
  void DrainLocked();
  // Sent messages' ids derive from their serial, so a duplicate needs only the serial.
  absl::uint128 MessageIdFor(uint64_t serial) const {
    return absl::MakeUint128(detail::Mix64(tag ^ serial), detail::Mix64(serial + tag));
  }
  // A message moved here by the redrive policy of the queue named `source`, whose
  // dead-letter queue this is; takes send_mu.
  void AcceptMoved(detail::FifoSlot& from, std::string_view group, std::string_view source);
  // Under the lock: fills `out` from index 0 (growing it if needed); returns how many.
  int TakeLocked(int max, int64_t now, int64_t visibility_ns, std::vector<Message>& out,
                 Taken* taken);
  void EmitLocked(uint32_t s, std::vector<Message>& out, Taken* taken, int index);
  // ReceiveRequestAttemptId, under the lock. A retry returns the attempt's messages with
  // the same handles, restarting their visibility, while the attempt holds; returns how
  // many (0: receive afresh).
  int ReplayAttemptLocked(std::string_view attempt_id, int64_t now, int64_t visibility_ns,
                          std::vector<Message>& out, Taken* taken);
  void RecordAttemptLocked(std::string_view attempt_id, int64_t now, const Taken* taken, int n);
  // Moves an ended attempt's node to spare_attempts (at most as many as live attempts, or
  // 1024), or frees it.
  void RetireAttemptLocked(absl::flat_hash_map<std::string, Attempt>::iterator it);
  detail::FifoHandle Parse(std::string_view text) const {
    detail::FifoHandle h{text, false, 0, 0};
    h.well_formed = detail::ParseReceiptHandle(text, tag, &h.slot, &h.generation);
    return h;
  }
  [[nodiscard]] absl::Status DeleteLocked(const detail::FifoHandle& handle);
  [[nodiscard]] absl::Status ChangeVisibilityLocked(const detail::FifoHandle& handle, int timeout,
                                                    int64_t now);
  // Waiters sleep only while no group is ready, so only the change from none to some
  // needs a wake-up: senders and deleters on a busy queue make no system call.
  bool ShouldWake(bool was_ready) const {
    return !was_ready && core.HasReady() && waiters.load() > 0;
  }
  // Whether the long polls must look again: the earliest delay or visibility deadline moved
  // before `next_before` (each sleeps until the earliest one it saw). REQUIRES mu.
  bool DeadlineMovedEarlier(int64_t next_before) const {
    return waiters.load() > 0 && core.NextWakeNs() < next_before;
  }

  FifoQueue* dead_letter_queue() const { return redrive ? redrive->dead_letter_queue : nullptr; }

  const FifoQueueOptions options;  // As created; the name and clock never change.
  std::atomic<int> visibility_timeout_seconds{0};
  std::atomic<int> maximum_message_size{0};
  std::atomic<int> receive_message_wait_time_seconds{0};
  std::atomic<bool> content_based_deduplication{false};
  std::atomic<bool> group_scope{false};  // DeduplicationScope::kMessageGroup
  Clock* const clock;
  uint64_t tag = 0;  // Distinguishes this queue's receipt handles and message ids.
  int64_t created_s = 0;
  // Queues whose dead-letter queue this is, alive now: checks the lifetime requirement.
  std::atomic<int> redrive_sources{0};

  // Senders take only send_mu; receivers, deleters and the rest take mu and drain the
  // staging area into the core. So a sender never waits behind a receive, and the two
  // locks meet once per drained batch. Lock order: mu, then send_mu; a queue's locks
  // before its dead-letter queue's. The two sides start on their own cache lines: a
  // sender writing its fields must not evict the receiver's lock (measured: it did).
  alignas(64) std::mutex send_mu;
  detail::FifoDedup dedup;             // Guarded by send_mu.
  uint64_t next_serial = 1;            // Guarded by send_mu.
  int64_t last_send_now = 0;           // Guarded by send_mu.
  std::vector<Staged> staging;         // Guarded by send_mu; [0, staged) are live.
  size_t staged = 0;                   // Guarded by send_mu.
  std::atomic<size_t> staged_hint{0};  // staged > 0, readable without send_mu.

  alignas(64) std::mutex mu;
  std::condition_variable cv;
  std::atomic<int> waiters{0};  // Long polls blocked on cv (changed under mu).
  int64_t last_now = 0;
  std::vector<Staged> draining;  // Guarded by mu: the staging buffer being drained.
  detail::FifoCore core;
  // Guarded by mu; changed under RedriveTopologyMutex() too.
  std::optional<RedrivePolicy> redrive;
  // ReceiveRequestAttemptIds within their 5 minutes. Expired ones are swept when a new id
  // finds no spare node (at most every 100 ms); an attempt that ends keeps its node (the
  // id's string and the handles' storage) in spare_attempts for the next one, so receives
  // with attempt ids allocate nothing in steady state.
  absl::flat_hash_map<std::string, Attempt> attempts;
  std::vector<absl::flat_hash_map<std::string, Attempt>::node_type> spare_attempts;
  int64_t next_attempts_sweep_ns = 0;
  ClockSubscription subscription;  // Last member: unsubscribed before the rest dies.

  // Moves time forward, runs op(i, now) for i in [0, n) under the lock, then wakes
  // receivers if a group became ready. Shared by deletes and visibility changes.
  template <typename Op>
  void ForEachLocked(size_t n, Op op) {
    bool wake;
    {
      const int64_t read = ReadClock();
      auto lock = detail::LockQueue(mu);
      const bool was_ready = core.HasReady();
      const int64_t now = NowLocked(read);
      core.Advance(now);
      const int64_t next_before = core.NextWakeNs();
      for (size_t i = 0; i < n; ++i) op(i, now);
      wake = ShouldWake(was_ready) || DeadlineMovedEarlier(next_before);
    }
    if (wake) cv.notify_all();
  }

  // A batch of receipt-handle operations: op(handle, entry, now) per entry, one lock.
  template <typename Entries, typename Op>
  BatchResult RunBatch(const Entries& entries, Op op) {
    std::array<detail::FifoHandle, detail::kMaxBatchEntries> handles;
    for (size_t i = 0; i < entries.size(); ++i) handles[i] = Parse(entries[i].receipt_handle);
    std::array<absl::Status, detail::kMaxBatchEntries> status;
    ForEachLocked(entries.size(),
                  [&](size_t i, int64_t now) { status[i] = op(handles[i], entries[i], now); });
    BatchResult result;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (status[i].ok()) {
        result.successful.emplace_back(entries[i].id);
      } else {
        const std::string name(ErrorName(status[i]));
        result.failed.push_back({std::string(entries[i].id), name, ErrorMessage(status[i]),
                                 !HasErrorName(status[i], kMessageNotInflight)});
      }
    }
    return result;
  }
};

}  // namespace riffle

#endif  // RIFFLE_FIFO_FIFO_QUEUE_IMPL_H_
