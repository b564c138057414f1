// FifoQueue::Impl's work under the queue's locks: preparing and staging sends, draining
// them into the core, taking messages for a receive, deletes, visibility changes and
// receive attempts.
#include "fifo/fifo_queue_impl.h"

#include <algorithm>
#include <iterator>

#include "fmt/format.h"
#define XXH_INLINE_ALL
#include "xxhash.h"

namespace riffle {
namespace {

using detail::CheckRange;
using detail::FifoCore;
using detail::FifoHandle;
using detail::FifoSlot;
using detail::InvalidParameterValue;
using detail::kMaxVisibilitySeconds;
using detail::kNanosPerSecond;
using detail::LockQueue;
using detail::ReceiptHandleIsInvalid;
using detail::SqsError;
using detail::ValidateFifoId;

}  // namespace

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
  e.receive_count = 0;
  e.first_receive_ms = 0;
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
    // As SQS: the receive count and first receive time carry over, so the dead-letter
    // queue's first receive counts maxReceiveCount + 1.
    e.receive_count = from.receive_count;
    e.first_receive_ms = from.first_receive_ms;
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
  const int64_t next_before = core.NextWakeNs();
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
    slot.receive_count = e.receive_count;
    slot.first_receive_ms = e.first_receive_ms;
    slot.attributes = std::move(e.attributes);
    slot.trace_header.swap(e.trace_header);
    slot.dead_letter_source.swap(e.dead_letter_source);
  }
  // A delayed message drained here (by any caller) may end before what the long polls
  // sleep until.
  if (DeadlineMovedEarlier(next_before)) cv.notify_all();
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
absl::Status FifoQueue::Impl::DeleteLocked(const FifoHandle& handle) {
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

absl::Status FifoQueue::Impl::ChangeVisibilityLocked(const FifoHandle& handle, int timeout,
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
  auto it = attempts.find(absl::string_view(attempt_id.data(), attempt_id.size()));
  if (it == attempts.end()) return 0;
  if (it->second.expires_ns <= now) {  // its 5 minutes are over
    RetireAttemptLocked(it);
    return 0;
  }
  // As SQS documents: the attempt holds while none of its messages was modified. A delete,
  // a successful visibility change or the end of the visibility timeout (after which
  // anyone may receive the message, with a new handle) ends it.
  for (auto [s, gen] : it->second.handles) {
    if (core.Lookup(s, gen) != FifoCore::HandleState::kCurrent || core.slot(s).visibility_changed) {
      RetireAttemptLocked(it);
      return 0;
    }
  }
  int n = 0;
  for (auto [s, gen] : it->second.handles) {
    // The retry restarts the visibility timeout, within the 12 hours from the receive that
    // ChangeMessageVisibility keeps to as well.
    const int64_t cap = core.slot(s).received_ns + int64_t{kMaxVisibilitySeconds} * kNanosPerSecond;
    core.SetDeadline(s, std::min(now + visibility_ns, cap), now);
    EmitLocked(s, out, taken, n++);
  }
  return n;
}

void FifoQueue::Impl::RecordAttemptLocked(std::string_view attempt_id, int64_t now,
                                          const Taken* taken, int n) {
  auto it = attempts.find(absl::string_view(attempt_id.data(), attempt_id.size()));
  if (it == attempts.end()) {
    // A new id: the expired attempts' nodes are taken back first (a sweep at most every
    // 100 ms of clock time, so that the map holds little more than the live window).
    if (spare_attempts.empty() && now >= next_attempts_sweep_ns) {
      for (auto i = attempts.begin(); i != attempts.end();) {
        auto next = std::next(i);
        if (i->second.expires_ns <= now) RetireAttemptLocked(i);
        i = next;
      }
      next_attempts_sweep_ns = now + detail::kNanosPerSecond / 10;
    }
    if (!spare_attempts.empty()) {
      auto node = std::move(spare_attempts.back());
      spare_attempts.pop_back();
      node.key().assign(attempt_id.data(), attempt_id.size());
      it = attempts.insert(std::move(node)).position;
    } else {
      it = attempts.try_emplace(std::string(attempt_id)).first;
    }
  }
  Attempt& attempt = it->second;
  attempt.expires_ns = now + detail::FifoDedup::kWindowNs;
  attempt.handles.clear();
  for (int i = 0; i < n; ++i) attempt.handles.emplace_back(taken[i].slot, taken[i].generation);
}

void FifoQueue::Impl::RetireAttemptLocked(absl::flat_hash_map<std::string, Attempt>::iterator it) {
  // As many as the attempts live now (at least 1024): what the next window's ids reuse,
  // never more than the map itself held at its peak.
  if (spare_attempts.size() < std::max<std::size_t>(1024, attempts.size())) {
    spare_attempts.push_back(attempts.extract(it));
  } else {
    attempts.erase(it);
  }
}

}  // namespace riffle
