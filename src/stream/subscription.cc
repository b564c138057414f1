// Subscription: a shard reader that pushes. See subscription.h for the contract.
#include "riffle/subscription.h"

#include <climits>

#include "common/futex.h"

namespace riffle {

std::string_view SubscriptionEndName(SubscriptionEnd end) {
  switch (end) {
    case SubscriptionEnd::kNone:
      return "NONE";
    case SubscriptionEnd::kLifetimeExpired:
      return "LIFETIME_EXPIRED";
    case SubscriptionEnd::kShardEnded:
      return "SHARD_ENDED";
    case SubscriptionEnd::kReplaced:
      return "REPLACED";
    case SubscriptionEnd::kConsumerDeregistered:
      return "CONSUMER_DEREGISTERED";
    case SubscriptionEnd::kShardNotFound:
      return "SHARD_NOT_FOUND";
  }
  return "?";
}

Subscription::Subscription(Stream* stream, std::shared_ptr<detail::ConsumerRecord> consumer,
                           detail::ShardState* shard, ShardIterator start,
                           std::atomic<uint64_t>* gate, std::shared_ptr<std::atomic<bool>> revoked,
                           SubscribeToShardHandler handler, const SubscriptionOptions& options)
    : stream_(stream),
      consumer_(std::move(consumer)),
      shard_(shard),
      shard_id_(shard->id),
      revoked_(std::move(revoked)),
      handler_(std::move(handler)),
      options_(options),
      gate_(gate),
      deadline_ms_(options.lifetime == absl::InfiniteDuration()
                       ? INT64_MAX
                       : stream->clock().NowMillis() + absl::ToInt64Milliseconds(options.lifetime)),
      iterator_(start) {}

Subscription::~Subscription() { Stop(); }

void Subscription::Start() {
  if (options_.wait == WaitStrategy::kBlock && stream_->clock().IsManual()) {
    // A manual clock's move must wake a sleeping subscription to end its lifetime.
    Stream* stream = stream_;
    clock_wake_ = stream_->clock().OnTimeChange([stream] { stream->WakeSubscribers(); });
  }
  thread_ = std::thread([this] { Run(); });
}

void Subscription::Stop() {
  stop_.store(true, std::memory_order_seq_cst);
  if (thread_.joinable()) {
    stream_->WakeSubscribers();
    thread_.join();
  }
  clock_wake_.Reset();
}

bool Subscription::Poll() { return PollOnce(); }

void Subscription::Deliver(SubscriptionEnd end) {
  SubscribeToShardEvent e;
  e.continuation_sequence_number = SequenceNumber{stream_->stream_tag(), shard_->index,
                                                  iterator_.position, iterator_.next_record_index};
  e.end = end;
  handler_(e);
  end_.store(end, std::memory_order_release);
  done_.store(true, std::memory_order_release);
}

bool Subscription::PollOnce() {
  if (done_.load(std::memory_order_relaxed) || stop_.load(std::memory_order_acquire)) return false;
  if (consumer_->deregistered.load(std::memory_order_acquire)) {
    Deliver(SubscriptionEnd::kConsumerDeregistered);
    return true;
  }
  if (revoked_->load(std::memory_order_acquire)) {
    Deliver(SubscriptionEnd::kReplaced);
    return true;
  }
  const int64_t now_ms = stream_->clock().NowMillis();
  if (now_ms >= deadline_ms_) {
    Deliver(SubscriptionEnd::kLifetimeExpired);
    return true;
  }
  // One clock read per poll; the shard is known. Only an expired closed shard stops it.
  if (stream_->Expired(*shard_, now_ms)) {
    Deliver(SubscriptionEnd::kShardNotFound);
    return true;
  }
  if (!stream_->ReadShard(*shard_, iterator_, result_, options_.max_records_per_event, now_ms)
           .ok()) {
    Deliver(SubscriptionEnd::kShardNotFound);
    return true;
  }
  const bool ended = !result_.next_shard_iterator.has_value();
  ShardIterator next = iterator_;
  if (ended) {
    next.position = shard_->final_state.published;
    next.next_record_index = shard_->final_state.next_index;
  } else {
    next = *result_.next_shard_iterator;
  }
  const bool moved = next.position != iterator_.position;
  iterator_ = next;
  const bool deliver = ended || !result_.records.empty() || result_.missed_records > 0;
  if (deliver) {
    SubscribeToShardEvent e;
    e.records = result_.records;
    e.continuation_sequence_number =
        SequenceNumber{stream_->stream_tag(), shard_->index, next.position, next.next_record_index};
    e.millis_behind_latest = result_.millis_behind_latest;
    e.missed_records = result_.missed_records;
    e.child_shards = result_.child_shards;
    e.end = ended ? SubscriptionEnd::kShardEnded : SubscriptionEnd::kNone;
    handler_(e);
  }
  if (gate_ != nullptr && moved) {
    // Release: the records were consumed (the handler returned) before producers may
    // overwrite them.
    uint64_t g = gate_->load(std::memory_order_relaxed);
    while (g < next.position &&
           !gate_->compare_exchange_weak(g, next.position, std::memory_order_release,
                                         std::memory_order_relaxed)) {
    }
    stream_->consumers_->NotifyPutWaiters();
  }
  if (ended) {
    end_.store(SubscriptionEnd::kShardEnded, std::memory_order_release);
    done_.store(true, std::memory_order_release);
  }
  return deliver;
}

void Subscription::Run() {
  while (!stop_.load(std::memory_order_acquire) && !done_.load(std::memory_order_relaxed)) {
    if (PollOnce()) continue;
    if (done_.load(std::memory_order_relaxed)) break;
    Wait();
  }
}

void Subscription::Wait() {
  const detail::ShardRing& ring = shard_->ring;
  switch (options_.wait) {
    case WaitStrategy::kBusySpin:
      // Bounded, so that the lifetime and stop flags are re-checked by PollOnce().
      for (int i = 0; i < 4096; ++i) {
        if (ring.published() != iterator_.position || ring.closed() ||
            stop_.load(std::memory_order_relaxed)) {
          return;
        }
        detail::CpuRelax();
      }
      return;
    case WaitStrategy::kYield:
      if (ring.published() == iterator_.position) std::this_thread::yield();
      return;
    case WaitStrategy::kBlock:
      break;
  }
  // Under load the next put is usually microseconds away: look briefly before sleeping,
  // so that producers rarely pay for a wake-up (a futex syscall).
  for (int i = 0; i < 256; ++i) {
    if (ring.published() != iterator_.position || ring.closed() ||
        stop_.load(std::memory_order_relaxed)) {
      return;
    }
    if (i < 192) {
      detail::CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  // Count ourselves, read the wake word, then look for a claim (seq_cst throughout): a
  // producer that claims after our look sees the count and bumps the word, so the futex
  // either sees the bump or is woken by it.
  stream_->sleeping_subscribers_.fetch_add(1, std::memory_order_seq_cst);
  const uint32_t seen = stream_->subscriber_wake_.load(std::memory_order_seq_cst);
  // Everything that ends the wait is checked after `seen` was read: a change made before
  // that read is visible here, one made after it changes the word and wakes the futex.
  const Clock& clock = stream_->clock();
  if (!stop_.load(std::memory_order_seq_cst) && !ring.HasClaimsAfter(iterator_.position) &&
      !revoked_->load(std::memory_order_seq_cst) &&
      !consumer_->deregistered.load(std::memory_order_seq_cst) &&
      clock.NowMillis() < deadline_ms_) {
    int64_t timeout_ns = -1;
    if (deadline_ms_ != INT64_MAX && !clock.IsManual()) {
      timeout_ns = std::max<int64_t>(0, deadline_ms_ - clock.NowMillis()) * 1'000'000 + 1'000'000;
    }
    detail::FutexWait(&stream_->subscriber_wake_, seen, timeout_ns);
  }
  stream_->sleeping_subscribers_.fetch_sub(1, std::memory_order_relaxed);
  wakeups_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace riffle
