// FifoQueue's public calls: validation outside the locks, then the work of
// fifo_queue_impl.cc under them; the attributes and the redrive topology.
#include "riffle/fifo_queue.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <mutex>

#include "fifo/fifo_core.h"
#include "fifo/fifo_queue_impl.h"
#include "fifo/fifo_text.h"
#include "fmt/format.h"

namespace riffle {
namespace {

using detail::CheckRange;
using detail::FifoCore;
using detail::FifoHandle;
using detail::kMaxBatchEntries;
using detail::kMaxVisibilitySeconds;
using detail::kNanosPerSecond;
using detail::LockQueue;
using detail::SqsError;
using detail::ValidateBatch;
using detail::ValidateFifoId;

// Serializes changes of redrive policies, so that the check for a loop of dead-letter
// queues sees every queue's current dead-letter queue. (A loop would make a receive that
// moves a message wait on a lock its own thread, or another receive, holds.)
std::mutex& RedriveTopologyMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

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
  if (absl::Status s = ValidateBatch(entries, "SendMessageBatchRequestEntry"); !s.ok()) return s;
  Impl& q = *impl_;
  if (absl::Status s =
          detail::CheckBatchBytes(entries, q.maximum_message_size.load(std::memory_order_relaxed));
      !s.ok()) {
    return s;
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
      const int64_t next_before = q.core.NextWakeNs();
      n = q.ReplayAttemptLocked(attempt_id, now, visibility_ns, out, taken.data());
      if (q.DeadlineMovedEarlier(next_before)) q.cv.notify_all();
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
        WaitUntil(*q.clock, q.cv, lock, wake_at, [&] {
          return q.staged_hint.load() > 0 || q.core.HasReady() ||
                 absl::FromUnixNanos(q.core.NextWakeNs()) < wake_at;
        });
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
  const FifoHandle handle = q.Parse(receipt_handle);
  absl::Status status;
  q.ForEachLocked(1, [&](size_t, int64_t) { status = q.DeleteLocked(handle); });
  return status;
}

absl::StatusOr<BatchResult> FifoQueue::DeleteMessageBatch(
    std::span<const DeleteMessageBatchRequestEntry> entries) {
  if (absl::Status s = ValidateBatch(entries, "DeleteMessageBatchRequestEntry"); !s.ok()) return s;
  Impl& q = *impl_;
  return q.RunBatch(entries, [&q](const FifoHandle& h, const auto&, int64_t) {
    absl::Status s = q.DeleteLocked(h);
    // A batch entry's expired handle is worded as the service words it there.
    if (HasErrorName(s, kInvalidParameterValue)) {
      return detail::SqsError(kReceiptHandleIsInvalid, "The receipt handle has expired");
    }
    return s;
  });
}

absl::Status FifoQueue::ChangeMessageVisibility(std::string_view receipt_handle,
                                                int visibility_timeout) {
  Impl& q = *impl_;
  const FifoHandle handle = q.Parse(receipt_handle);
  absl::Status status;
  q.ForEachLocked(1, [&](size_t, int64_t now) {
    status = q.ChangeVisibilityLocked(handle, visibility_timeout, now);
  });
  return status;
}

absl::StatusOr<BatchResult> FifoQueue::ChangeMessageVisibilityBatch(
    std::span<const ChangeMessageVisibilityBatchRequestEntry> entries) {
  if (absl::Status s = ValidateBatch(entries, "ChangeMessageVisibilityBatchRequestEntry");
      !s.ok()) {
    return s;
  }
  Impl& q = *impl_;
  return q.RunBatch(entries, [&q](const FifoHandle& h, const auto& entry, int64_t now) {
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
  // As on the service, a purge also forgets the deduplication ids: the same id sent again
  // is a new message.
  std::lock_guard<std::mutex> send_lock(q.send_mu);
  q.dedup.Clear();
}

}  // namespace riffle
