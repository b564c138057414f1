#include "riffle/fifo_queue.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "fifo/fifo_core.h"
#include "fifo/fifo_text.h"
#include "fmt/format.h"
#define XXH_INLINE_ALL
#include "xxhash.h"

namespace riffle {
namespace {

using detail::CheckRange;
using detail::FifoCore;
using detail::FifoSlot;
using detail::InvalidParameterValue;
using detail::kMaxBatchEntries;
using detail::kMaxVisibilitySeconds;
using detail::ReceiptHandleIsInvalid;
using detail::SlotState;
using detail::SqsError;
using detail::ValidateBatch;
using detail::ValidateFifoId;

constexpr int64_t kNanosPerSecond = 1'000'000'000;

// The queue's critical sections last a fraction of a microsecond, while parking a thread in
// the kernel and waking it again costs microseconds: try a little before blocking, as
// glibc's adaptive mutexes do.
std::unique_lock<std::mutex> LockQueue(std::mutex& mu) {
  for (int i = 0; i < 100; ++i) {
    if (mu.try_lock()) return std::unique_lock<std::mutex>(mu, std::adopt_lock);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  return std::unique_lock<std::mutex>(mu);
}

// Serializes changes of redrive policies, so that the check for a loop of dead-letter
// queues sees every queue's current dead-letter queue. (A loop would make a receive that
// moves a message wait on a lock its own thread, or another receive, holds.)
std::mutex& RedriveTopologyMutex() {
  static std::mutex mu;
  return mu;
}

// A receipt handle decoded outside the lock.
struct Handle {
  std::string_view text;
  bool well_formed;
  uint32_t slot;
  uint32_t generation;
};

}  // namespace

// ---- The queue -------------------------------------------------------------------------

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
        core({int64_t{options.message_retention_period_seconds} * kNanosPerSecond,
              int64_t{options.delay_seconds} * kNanosPerSecond}),
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
  // than Now() on the system clock.
  int64_t ReadClock() const { return clock->NowMillis() * 1'000'000; }
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
  void AcceptMoved(FifoSlot& from, std::string_view group, std::string_view source);
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
  Handle Parse(std::string_view text) const {
    Handle h{text, false, 0, 0};
    h.well_formed = detail::ParseReceiptHandle(text, tag, &h.slot, &h.generation);
    return h;
  }
  [[nodiscard]] absl::Status DeleteLocked(const Handle& handle);
  [[nodiscard]] absl::Status ChangeVisibilityLocked(const Handle& handle, int timeout, int64_t now);
  // Waiters sleep only while no group is ready, so only the change from none to some
  // needs a wake-up: senders and deleters on a busy queue make no system call.
  bool ShouldWake(bool was_ready) const {
    return !was_ready && core.HasReady() && waiters.load() > 0;
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
  FifoCore core;
  // Guarded by mu; changed under RedriveTopologyMutex() too.
  std::optional<RedrivePolicy> redrive;
  absl::flat_hash_map<std::string, Attempt> attempts;
  std::deque<std::pair<int64_t, std::string>> attempt_order;
  ClockSubscription subscription;  // Last member: unsubscribed before the rest dies.

  // Moves time forward, runs op(i, now) for i in [0, n) under the lock, then wakes
  // receivers if a group became ready. Shared by deletes and visibility changes.
  template <typename Op>
  void ForEachLocked(size_t n, Op op) {
    bool wake;
    {
      const int64_t read = ReadClock();
      auto lock = LockQueue(mu);
      const bool was_ready = core.HasReady();
      const int64_t now = NowLocked(read);
      core.Advance(now);
      for (size_t i = 0; i < n; ++i) op(i, now);
      wake = ShouldWake(was_ready);
    }
    if (wake) cv.notify_all();
  }

  // A batch of receipt-handle operations: op(handle, entry, now) per entry, one lock.
  template <typename Entries, typename Op>
  BatchResult RunBatch(const Entries& entries, Op op) {
    std::array<Handle, kMaxBatchEntries> handles;
    for (size_t i = 0; i < entries.size(); ++i) handles[i] = Parse(entries[i].receipt_handle);
    std::array<absl::Status, kMaxBatchEntries> status;
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

absl::Status FifoQueue::Impl::Prepare(std::string_view group, std::string_view body,
                                      const std::optional<std::string_view>& dedup_id,
                                      const MessageAttributes& attributes,
                                      const std::optional<int>& delay,
                                      const std::optional<std::string_view>& trace_header,
                                      PreparedSend* out) const {
  if (delay && *delay != 0) {
    return InvalidParameterValue(fmt::format(
        "DelaySeconds is {}: FIFO queues have no per-message delay, only the queue's DelaySeconds.",
        *delay));
  }
  if (absl::Status s = ValidateFifoId("MessageGroupId", group); !s.ok()) return s;
  if (dedup_id) {
    if (absl::Status s = ValidateFifoId("MessageDeduplicationId", *dedup_id); !s.ok()) return s;
  } else if (!content_based_deduplication.load(std::memory_order_relaxed)) {
    return detail::MissingDeduplicationId();
  }
  if (body.empty()) {
    return SqsError(kMissingParameter, "The request must contain the parameter MessageBody.");
  }
  size_t bytes = body.size();
  if (!attributes.empty()) {
    if (absl::Status s = detail::ValidateAttributes(attributes, &bytes); !s.ok()) return s;
  }
  const int max_size = maximum_message_size.load(std::memory_order_relaxed);
  if (bytes > static_cast<size_t>(max_size)) {
    return InvalidParameterValue(fmt::format(
        "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
        max_size));
  }
  if (trace_header) {
    uint32_t cp = 0;
    if (trace_header->empty() ||
        detail::FindInvalidBodyChar(*trace_header, &cp) != std::string_view::npos) {
      return InvalidParameterValue(
          "MessageSystemAttribute AWSTraceHeader must be a non-empty string of message "
          "characters.");
    }
    out->trace_header = *trace_header;
  } else {
    out->trace_header = {};
  }
  uint32_t cp = 0;
  if (detail::FindInvalidBodyChar(body, &cp) != std::string_view::npos) {
    return SqsError(kInvalidMessageContents,
                    fmt::format("Invalid binary character '#x{:X}' was found in the message body, "
                                "the set of allowed characters is #x9 | #xA | #xD | "
                                "[#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]",
                                cp));
  }
  out->group = group;
  out->body = body;
  out->attributes = attributes.empty() ? nullptr : &attributes;
  if (dedup_id) {
    out->dedup_id = *dedup_id;
  } else {
    detail::Sha256Hex(body, out->content_hash);
    out->dedup_id = std::string_view(out->content_hash, 64);
  }
  // In message-group scope the same id in two groups names two messages.
  const uint64_t seed =
      group_scope.load(std::memory_order_relaxed) ? XXH3_64bits(group.data(), group.size()) : 0;
  const XXH128_hash_t h = XXH3_128bits_withSeed(out->dedup_id.data(), out->dedup_id.size(), seed);
  out->fingerprint = absl::MakeUint128(h.high64, h.low64);
  return absl::OkStatus();
}

uint64_t FifoQueue::Impl::StageLocked(const PreparedSend& p, int64_t now) {
  // The deduplication probe is usually a cache miss: start it, fill the next staging
  // entry meanwhile, and commit the entry only if the message is not a duplicate.
  dedup.Prefetch(p.fingerprint);
  if (staged == staging.size()) staging.emplace_back();
  Staged& e = staging[staged];
  e.group.assign(p.group.data(), p.group.size());
  e.body.assign(p.body.data(), p.body.size());
  e.dedup_id.assign(p.dedup_id.data(), p.dedup_id.size());
  e.trace_header.assign(p.trace_header.data(), p.trace_header.size());
  e.dead_letter_source.clear();
  if (const uint64_t first = dedup.FindOrInsert(p.fingerprint, next_serial, now);
      first != next_serial) {
    return first;
  }
  ++staged;
  e.serial = next_serial++;
  e.enqueued_ns = now;
  e.sent_ms = now / 1'000'000;
  e.message_id = MessageIdFor(e.serial);
  e.attributes = p.attributes ? std::make_unique<MessageAttributes>(*p.attributes) : nullptr;
  // Only the change from empty matters to a drainer or a waiter; later sends leave the
  // shared flag (and its cache line) alone.
  if (staged == 1) staged_hint.store(1);
  return e.serial;
}

void FifoQueue::Impl::AcceptMoved(FifoSlot& from, std::string_view group, std::string_view source) {
  const int64_t read = ReadClock();
  bool first;
  {
    std::lock_guard<std::mutex> lock(send_mu);
    first = staged == 0;
    const int64_t now = last_send_now = std::max(last_send_now, read);
    Staged& e = NextStagingEntry();
    e.serial = next_serial++;
    e.enqueued_ns = now;  // Retention starts again in the dead-letter queue.
    e.sent_ms = from.sent_ms;
    e.message_id = from.message_id;
    e.group.assign(group.data(), group.size());
    e.body.swap(from.body);
    e.dedup_id.swap(from.dedup_id);
    e.trace_header.swap(from.trace_header);
    e.dead_letter_source.assign(source);
    e.attributes = std::move(from.attributes);
    if (staged == 1) staged_hint.store(1);
  }
  WakeAfterStaging(first);
}

void FifoQueue::Impl::DrainLocked() {
  if (staged_hint.load() == 0) return;
  size_t n;
  {
    auto lock = LockQueue(send_mu);
    n = staged;
    staging.swap(draining);
    staged = 0;
    staged_hint.store(0);
  }
  for (size_t i = 0; i < n; ++i) {
    Staged& e = draining[i];
    const uint32_t s = core.Enqueue(e.group, e.body, e.dedup_id, e.serial, e.enqueued_ns);
    FifoSlot& slot = core.slot(s);
    slot.message_id = e.message_id;
    slot.sent_ms = e.sent_ms;
    slot.attributes = std::move(e.attributes);
    slot.trace_header.swap(e.trace_header);
    slot.dead_letter_source.swap(e.dead_letter_source);
  }
}

void FifoQueue::Impl::EmitLocked(uint32_t s, std::vector<Message>& out, Taken* taken, int index) {
  FifoSlot& slot = core.slot(s);
  if (out.size() <= static_cast<size_t>(index)) out.resize(index + 1);
  Message& m = out[index];
  m.body.assign(slot.body);
  m.message_group_id.assign(core.group(slot.group).id);
  m.message_deduplication_id.assign(slot.dedup_id);
  m.aws_trace_header.assign(slot.trace_header);
  m.dead_letter_source_queue.assign(slot.dead_letter_source);
  if (slot.attributes)
    m.message_attributes = *slot.attributes;
  else
    m.message_attributes.clear();
  m.approximate_receive_count = slot.receive_count;
  m.sent_timestamp = slot.sent_ms;
  m.approximate_first_receive_timestamp = slot.first_receive_ms;
  taken[index] = {slot.message_id, slot.serial, s, slot.generation};
}

int FifoQueue::Impl::TakeLocked(int max, int64_t now, int64_t visibility_ns,
                                std::vector<Message>& out, Taken* taken) {
  const RedrivePolicy* policy = redrive ? &*redrive : nullptr;
  int n = 0;
  while (n < max && core.HasReady()) {
    const uint32_t g = core.FirstReadyGroup();
    // One group first, in order, while nothing in flight from before precedes its next
    // message; the group is then no longer ready, so the outer loop moves to the next one.
    uint32_t last = detail::kNil;
    while (n < max && core.HeadTakeable(g, last)) {
      const uint32_t s = core.GroupHead(g);
      FifoSlot& slot = core.slot(s);
      if (policy && slot.receive_count >= policy->max_receive_count) {
        // Lock order follows the redrive chain, which has no cycles: a queue's
        // dead-letter queue exists before the queue, and SetAttributes refuses loops.
        policy->dead_letter_queue->impl_->AcceptMoved(slot, core.group(g).id, options.name);
        core.Remove(s);
        continue;
      }
      core.MarkInFlight(s, now, now + visibility_ns);
      last = s;
      if (slot.first_receive_ms == 0) slot.first_receive_ms = now / 1'000'000;
      EmitLocked(s, out, taken, n++);
    }
  }
  return n;
}

// As SQS answers for a FIFO queue: only the current handle of a message in flight deletes
// it; any other handle the queue made has expired (its visibility timeout ended, the
// message was received again, or it is gone: deleted, moved, purged or aged out), so an OK
// always means this call deleted the message.
absl::Status FifoQueue::Impl::DeleteLocked(const Handle& handle) {
  if (!handle.well_formed) return ReceiptHandleIsInvalid(handle.text);
  switch (core.Lookup(handle.slot, handle.generation)) {
    case FifoCore::HandleState::kCurrent:
      core.Remove(handle.slot);
      return absl::OkStatus();
    case FifoCore::HandleState::kExpired:
    case FifoCore::HandleState::kSuperseded:
    case FifoCore::HandleState::kGone:
      return detail::ReceiptHandleExpired(handle.text);
    case FifoCore::HandleState::kNeverIssued:
      break;
  }
  return ReceiptHandleIsInvalid(handle.text);
}

absl::Status FifoQueue::Impl::ChangeVisibilityLocked(const Handle& handle, int timeout,
                                                     int64_t now) {
  if (!handle.well_formed) return ReceiptHandleIsInvalid(handle.text);
  const FifoCore::HandleState state = core.Lookup(handle.slot, handle.generation);
  if (state == FifoCore::HandleState::kNeverIssued) return ReceiptHandleIsInvalid(handle.text);
  if (state == FifoCore::HandleState::kSuperseded || state == FifoCore::HandleState::kGone) {
    return detail::NotAvailableForVisibilityChange(handle.text);
  }
  const uint32_t s = handle.slot;
  FifoSlot* slot = &core.slot(s);
  if (absl::Status st = CheckRange("VisibilityTimeout", timeout, 0, kMaxVisibilitySeconds);
      !st.ok()) {
    return st;
  }
  if (state == FifoCore::HandleState::kExpired) return detail::MessageNotInflight();
  const int64_t deadline = now + int64_t{timeout} * kNanosPerSecond;
  if (deadline - slot->received_ns > int64_t{kMaxVisibilitySeconds} * kNanosPerSecond) {
    return detail::InvalidParameterValueFor(
        "VisibilityTimeout", std::to_string(timeout),
        "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]");
  }
  core.SetDeadline(s, deadline, now);
  slot->visibility_changed = true;  // Ends a ReceiveRequestAttemptId retry of this receive.
  return absl::OkStatus();
}

int FifoQueue::Impl::ReplayAttemptLocked(std::string_view attempt_id, int64_t now,
                                         int64_t visibility_ns, std::vector<Message>& out,
                                         Taken* taken) {
  while (!attempt_order.empty() && attempt_order.front().first <= now) {
    auto it = attempts.find(attempt_order.front().second);
    if (it != attempts.end() && it->second.expires_ns <= now) attempts.erase(it);
    attempt_order.pop_front();
  }
  auto it = attempts.find(absl::string_view(attempt_id.data(), attempt_id.size()));
  if (it == attempts.end()) return 0;
  // As SQS documents: the attempt holds while none of its messages was modified. A delete,
  // a successful visibility change or the end of the visibility timeout (after which
  // anyone may receive the message, with a new handle) ends it.
  for (auto [s, gen] : it->second.handles) {
    if (core.Lookup(s, gen) != FifoCore::HandleState::kCurrent || core.slot(s).visibility_changed) {
      attempts.erase(it);
      return 0;
    }
  }
  int n = 0;
  for (auto [s, gen] : it->second.handles) {
    core.SetDeadline(s, now + visibility_ns, now);
    EmitLocked(s, out, taken, n++);
  }
  return n;
}

void FifoQueue::Impl::RecordAttemptLocked(std::string_view attempt_id, int64_t now,
                                          const Taken* taken, int n) {
  Attempt& attempt = attempts[std::string(attempt_id)];
  attempt.expires_ns = now + detail::FifoDedup::kWindowNs;
  attempt.handles.clear();
  for (int i = 0; i < n; ++i) attempt.handles.emplace_back(taken[i].slot, taken[i].generation);
  attempt_order.emplace_back(attempt.expires_ns, std::string(attempt_id));
}

// ---- Public API ------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<FifoQueue>> FifoQueue::Create(FifoQueueOptions options) {
  if (absl::Status s = detail::ValidateOptions(options); !s.ok()) return s;
  return std::unique_ptr<FifoQueue>(new FifoQueue(std::make_unique<Impl>(std::move(options))));
}

FifoQueue::FifoQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  if (FifoQueue* dlq = impl_->dead_letter_queue()) dlq->impl_->redrive_sources.fetch_add(1);
}

FifoQueue::~FifoQueue() {
  // REQUIRED of the caller: a dead-letter queue outlives every queue that names it.
  assert(impl_->redrive_sources.load() == 0 && "a dead-letter queue died before its source");
  if (FifoQueue* dlq = impl_->dead_letter_queue()) dlq->impl_->redrive_sources.fetch_sub(1);
}

const std::string& FifoQueue::name() const { return impl_->options.name; }

absl::StatusOr<SendMessageResult> FifoQueue::SendMessage(const SendMessageRequest& request) {
  SendMessageResult result;
  if (absl::Status s = SendMessage(request, result); !s.ok()) return s;
  return result;
}

absl::Status FifoQueue::SendMessage(const SendMessageRequest& request, SendMessageResult& out) {
  Impl& q = *impl_;
  Impl::PreparedSend p;
  if (absl::Status s = q.Prepare(request.message_group_id, request.message_body,
                                 request.message_deduplication_id, request.message_attributes,
                                 request.delay_seconds, request.aws_trace_header, &p);
      !s.ok()) {
    return s;
  }
  uint64_t serial;
  bool first;
  {
    const int64_t read = q.ReadClock();
    auto lock = LockQueue(q.send_mu);
    const size_t before = q.staged;
    const int64_t now = q.last_send_now = std::max(q.last_send_now, read);
    q.dedup.Expire(now);
    serial = q.StageLocked(p, now);
    first = before == 0 && q.staged > 0;
  }
  q.WakeAfterStaging(first);
  detail::FormatMessageId(q.MessageIdFor(serial), &out.message_id);
  detail::FormatSequenceNumber(serial, &out.sequence_number);
  return absl::OkStatus();
}

absl::StatusOr<SendMessageBatchResult> FifoQueue::SendMessageBatch(
    std::span<const SendMessageBatchRequestEntry> entries) {
  if (absl::Status s = ValidateBatch(entries); !s.ok()) return s;
  Impl& q = *impl_;
  size_t total = 0;
  for (const auto& e : entries) {
    total += e.message_body.size();
    for (const auto& [name, value] : e.message_attributes) {
      total += name.size() + value.data_type.size() + value.string_value.size() +
               value.binary_value.size();
    }
  }
  // The service's batch limit is 256 KiB whatever the queue's MaximumMessageSize, or that
  // size when it is larger.
  const size_t limit = std::max<size_t>(
      262'144, static_cast<size_t>(q.maximum_message_size.load(std::memory_order_relaxed)));
  if (total > limit) {
    return SqsError(kBatchRequestTooLong,
                    fmt::format("Batch requests cannot be longer than {} bytes. You have sent {} "
                                "bytes.",
                                limit, total));
  }
  SendMessageBatchResult result;
  std::array<Impl::PreparedSend, kMaxBatchEntries> prepared;
  std::array<absl::Status, kMaxBatchEntries> status;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    status[i] = q.Prepare(e.message_group_id, e.message_body, e.message_deduplication_id,
                          e.message_attributes, e.delay_seconds, e.aws_trace_header, &prepared[i]);
  }
  std::array<uint64_t, kMaxBatchEntries> serials;
  bool first;
  {
    const int64_t read = q.ReadClock();
    auto lock = LockQueue(q.send_mu);
    const size_t before = q.staged;
    const int64_t now = q.last_send_now = std::max(q.last_send_now, read);
    q.dedup.Expire(now);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (status[i].ok()) serials[i] = q.StageLocked(prepared[i], now);
    }
    first = before == 0 && q.staged > 0;
  }
  q.WakeAfterStaging(first);
  for (size_t i = 0; i < entries.size(); ++i) {
    if (status[i].ok()) {
      SendMessageBatchResultEntry& r = result.successful.emplace_back();
      r.id = std::string(entries[i].id);
      detail::FormatMessageId(q.MessageIdFor(serials[i]), &r.message_id);
      detail::FormatSequenceNumber(serials[i], &r.sequence_number);
    } else {
      result.failed.push_back({std::string(entries[i].id), std::string(ErrorName(status[i])),
                               ErrorMessage(status[i]), true});
    }
  }
  return result;
}

absl::StatusOr<ReceiveMessageResult> FifoQueue::ReceiveMessage(
    const ReceiveMessageRequest& request) {
  ReceiveMessageResult result;
  if (absl::Status s = ReceiveMessage(request, result.messages); !s.ok()) return s;
  return result;
}

absl::Status FifoQueue::ReceiveMessage(const ReceiveMessageRequest& request,
                                       std::vector<Message>& out) {
  Impl& q = *impl_;
  if (auto s =
          CheckRange("MaxNumberOfMessages", request.max_number_of_messages, 1, kMaxBatchEntries);
      !s.ok()) {
    return s;
  }
  const int visibility = request.visibility_timeout.value_or(
      q.visibility_timeout_seconds.load(std::memory_order_relaxed));
  if (auto s = CheckRange("VisibilityTimeout", visibility, 0, kMaxVisibilitySeconds); !s.ok())
    return s;
  const int wait = request.wait_time_seconds.value_or(
      q.receive_message_wait_time_seconds.load(std::memory_order_relaxed));
  if (auto s = CheckRange("WaitTimeSeconds", wait, 0, 20); !s.ok()) return s;
  const std::string_view attempt_id = request.receive_request_attempt_id;
  if (!attempt_id.empty()) {
    if (auto s = ValidateFifoId("ReceiveRequestAttemptId", attempt_id); !s.ok()) return s;
  }
  const int64_t visibility_ns = int64_t{visibility} * kNanosPerSecond;
  std::array<Impl::Taken, kMaxBatchEntries> taken;
  int n = 0;
  {
    const int64_t read = q.ReadClock();
    auto lock = LockQueue(q.mu);
    int64_t now = q.NowLocked(read);
    q.DrainLocked();
    q.core.Advance(now);
    // The wait is measured on the precise clock; `now` is whole milliseconds.
    const absl::Time deadline =
        wait > 0 ? q.clock->Now() + absl::Seconds(wait) : absl::InfinitePast();
    if (!attempt_id.empty()) {
      n = q.ReplayAttemptLocked(attempt_id, now, visibility_ns, out, taken.data());
    }
    if (n == 0) {
      for (;;) {
        n = q.TakeLocked(request.max_number_of_messages, now, visibility_ns, out, taken.data());
        if (n > 0 || wait == 0 || q.clock->Now() >= deadline) break;
        // Registered before the last look at the staging area (the predicate), so a
        // sender either sees the waiter or the waiter sees its message.
        q.waiters.fetch_add(1);
        // Also wake when a delay or a visibility timeout ends (the earliest event).
        const absl::Time wake_at = std::min(deadline, absl::FromUnixNanos(q.core.NextWakeNs()));
        WaitUntil(*q.clock, q.cv, lock, wake_at,
                  [&] { return q.staged_hint.load() > 0 || q.core.HasReady(); });
        q.waiters.fetch_sub(1);
        now = q.NowLocked(q.ReadClock());
        q.DrainLocked();
        q.core.Advance(now);
      }
      if (!attempt_id.empty() && n > 0) q.RecordAttemptLocked(attempt_id, now, taken.data(), n);
    }
  }
  out.resize(n);
  for (int i = 0; i < n; ++i) {
    Message& m = out[i];
    detail::FormatMessageId(taken[i].message_id, &m.message_id);
    detail::FormatSequenceNumber(taken[i].serial, &m.sequence_number);
    detail::FormatReceiptHandle(q.tag, taken[i].slot, taken[i].generation, &m.receipt_handle);
  }
  return absl::OkStatus();
}

absl::Status FifoQueue::DeleteMessage(std::string_view receipt_handle) {
  Impl& q = *impl_;
  const Handle handle = q.Parse(receipt_handle);
  absl::Status status;
  q.ForEachLocked(1, [&](size_t, int64_t) { status = q.DeleteLocked(handle); });
  return status;
}

absl::StatusOr<BatchResult> FifoQueue::DeleteMessageBatch(
    std::span<const DeleteMessageBatchRequestEntry> entries) {
  if (absl::Status s = ValidateBatch(entries); !s.ok()) return s;
  Impl& q = *impl_;
  return q.RunBatch(entries,
                    [&q](const Handle& h, const auto&, int64_t) { return q.DeleteLocked(h); });
}

absl::Status FifoQueue::ChangeMessageVisibility(std::string_view receipt_handle,
                                                int visibility_timeout) {
  Impl& q = *impl_;
  const Handle handle = q.Parse(receipt_handle);
  absl::Status status;
  q.ForEachLocked(1, [&](size_t, int64_t now) {
    status = q.ChangeVisibilityLocked(handle, visibility_timeout, now);
  });
  return status;
}

absl::StatusOr<BatchResult> FifoQueue::ChangeMessageVisibilityBatch(
    std::span<const ChangeMessageVisibilityBatchRequestEntry> entries) {
  if (absl::Status s = ValidateBatch(entries); !s.ok()) return s;
  Impl& q = *impl_;
  return q.RunBatch(entries, [&q](const Handle& h, const auto& entry, int64_t now) {
    return q.ChangeVisibilityLocked(h, entry.visibility_timeout, now);
  });
}

QueueAttributes FifoQueue::GetQueueAttributes() {
  Impl& q = *impl_;
  const int64_t read = q.ReadClock();
  auto lock = LockQueue(q.mu);
  q.DrainLocked();
  q.core.Advance(q.NowLocked(read));
  return {q.core.visible_count(), q.core.in_flight_count(), q.core.delayed_count(), q.created_s};
}

FifoQueueOptions FifoQueue::attributes() const {
  Impl& q = *impl_;
  FifoQueueOptions o;
  o.name = q.options.name;
  o.clock = q.options.clock;
  o.visibility_timeout_seconds = q.visibility_timeout_seconds.load(std::memory_order_relaxed);
  o.maximum_message_size = q.maximum_message_size.load(std::memory_order_relaxed);
  o.receive_message_wait_time_seconds =
      q.receive_message_wait_time_seconds.load(std::memory_order_relaxed);
  o.content_based_deduplication = q.content_based_deduplication.load(std::memory_order_relaxed);
  o.deduplication_scope = q.group_scope.load(std::memory_order_relaxed)
                              ? DeduplicationScope::kMessageGroup
                              : DeduplicationScope::kQueue;
  auto lock = LockQueue(q.mu);
  const FifoCore::Config c = q.core.config();
  o.message_retention_period_seconds = static_cast<int>(c.retention_ns / kNanosPerSecond);
  o.delay_seconds = static_cast<int>(c.delay_ns / kNanosPerSecond);
  o.redrive_policy = q.redrive;
  return o;
}

absl::Status FifoQueue::SetAttributes(const FifoQueueOptions& options) {
  Impl& q = *impl_;
  FifoQueueOptions o = options;
  o.name = q.options.name;
  o.clock = q.options.clock;
  if (absl::Status s = detail::ValidateOptions(o); !s.ok()) return s;
  std::lock_guard<std::mutex> topology(RedriveTopologyMutex());
  FifoQueue* const new_dlq = o.redrive_policy ? o.redrive_policy->dead_letter_queue : nullptr;
  // Walk the chain from the new dead-letter queue: reaching this queue would be a loop.
  for (FifoQueue* at = new_dlq; at != nullptr;) {
    if (at == this) {
      return SqsError(kInvalidAttributeValue,
                      fmt::format("RedrivePolicy of {} would make a loop of dead-letter queues.",
                                  q.options.name));
    }
    Impl& next = *at->impl_;
    auto lock = LockQueue(next.mu);
    at = next.dead_letter_queue();
  }
  q.StoreScalars(o);
  FifoQueue* old_dlq;
  {
    const int64_t read = q.ReadClock();
    auto lock = LockQueue(q.mu);
    q.DrainLocked();
    q.core.SetConfig({int64_t{o.message_retention_period_seconds} * kNanosPerSecond,
                      int64_t{o.delay_seconds} * kNanosPerSecond});
    q.core.Advance(q.NowLocked(read));
    old_dlq = q.dead_letter_queue();
    q.redrive = o.redrive_policy;
  }
  if (new_dlq != nullptr) new_dlq->impl_->redrive_sources.fetch_add(1);
  if (old_dlq != nullptr) old_dlq->impl_->redrive_sources.fetch_sub(1);
  // A shorter delay may have made messages visible: wake long polls to look.
  {
    std::lock_guard<std::mutex> lock(q.mu);
    q.cv.notify_all();
  }
  return absl::OkStatus();
}

void FifoQueue::PurgeQueue() {
  Impl& q = *impl_;
  auto lock = LockQueue(q.mu);
  q.DrainLocked();
  q.core.RemoveAll();
  q.attempts.clear();
  q.attempt_order.clear();
  // As on the service, a purge also forgets the deduplication ids: the same id sent again
  // is a new message.
  std::lock_guard<std::mutex> send_lock(q.send_mu);
  q.dedup.Clear();
}

}  // namespace riffle
