// Subscription: a shard reader that pushes. See subscription.h for the contract.
#include "riffle/subscription.h"

#include <algorithm>
#include <climits>
#include <mutex>

#include "common/futex.h"
#include "fmt/format.h"
#include "riffle/detail/read_path.h"
#include "stream/fanout.h"

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
    case SubscriptionEnd::kStreamDeleted:
      return "STREAM_DELETED";
  }
  return "?";
}

Subscription::Subscription(detail::SubscriptionInit init, SubscribeToShardHandler handler,
                           const SubscriptionOptions& options)
    : init_(std::move(init)),
      shard_id_(init_.shard->id),
      handler_(std::move(handler)),
      options_(options),
      deadline_ms_(detail::AddMillis(init_.core->clock->NowMillis(), options.lifetime)),
      iterator_(init_.start) {}

Subscription::~Subscription() { Stop(); }

absl::Status Subscription::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_ || stop_.load(std::memory_order_acquire)) {
    return ResourceInUseError(fmt::format("The subscription to shard {} was already {}.", shard_id_,
                                          started_ ? "started" : "stopped"));
  }
  started_ = true;
  if (options_.wait == WaitStrategy::kBlock && init_.core->clock->IsManual()) {
    // A manual clock's move must wake a sleeping subscription to end its lifetime.
    detail::StreamCore* core = init_.core.get();
    clock_wake_ = core->clock->OnTimeChange([core] { core->wake.WakeAll(); });
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Subscription::Stop() {
  stop_.store(true, std::memory_order_seq_cst);
  // The handler, on the subscription's own thread: the flag is enough (it cannot join itself,
  // and a Stop() in progress elsewhere holds the lock while it joins this thread).
  if (running_on_.load(std::memory_order_acquire) == std::this_thread::get_id()) return;
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (thread_.joinable()) {
    init_.core->wake.WakeAll();
    thread_.join();
  }
  clock_wake_.Reset();
}

size_t Subscription::Poll() { return PollOnce() ? 1 : 0; }

SequenceNumber Subscription::Continuation(const ShardIterator& next) const {
  // Where the next record will be, with the index of the record before it: no record has
  // this number, so AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER both resume exactly there
  // (GetShardIterator recognises it). Before a shard's first record there is no record
  // before: position 0 with the largest index, which no record of position 0 has
  // (docs/consumers.md).
  if (next.next_record_index == 0) {
    return init_.core->MakeSequenceNumber(init_.shard->index, 0, SequenceNumber::kMaxRecordIndex);
  }
  return init_.core->MakeSequenceNumber(init_.shard->index, next.position,
                                        next.next_record_index - 1);
}

void Subscription::Deliver(SubscriptionEnd end, uint64_t missed,
                           std::span<const ChildShard> children) {
  SubscribeToShardEvent e;
  e.continuation_sequence_number = Continuation(iterator_);
  e.missed_records = missed;
  e.child_shards = children;
  e.end = end;
  handler_(e);
  end_.store(end, std::memory_order_release);
  done_.store(true, std::memory_order_release);
}

void Subscription::DeliverExpired() {
  // The closed shard aged out before this subscription read it to its end: what was left
  // unread is counted as missed (exactly, when the index of the next record is known), and
  // the children are named, so that a consumer following the lineage goes on to them.
  const detail::ShardState& shard = *init_.shard;
  const uint64_t held = shard.final_state.next_index;
  const uint64_t missed = iterator_.next_record_index_known && held > iterator_.next_record_index
                              ? held - iterator_.next_record_index
                              : 0;
  result_.child_shards.clear();
  {
    detail::EpochGuard guard;
    detail::DescribeChildren(*init_.core, shard, result_.child_shards);
  }
  iterator_.position = shard.final_state.end;
  iterator_.next_record_index = held;
  iterator_.next_record_index_known = true;
  Deliver(SubscriptionEnd::kShardNotFound, missed, result_.child_shards);
}

void Subscription::MoveGate(uint64_t position) {
  // Release: the records were consumed (the handler returned) before producers may
  // overwrite them.
  std::atomic<uint64_t>* gate = init_.gate.get();
  uint64_t g = gate->load(std::memory_order_relaxed);
  while (g < position && !gate->compare_exchange_weak(g, position, std::memory_order_release,
                                                      std::memory_order_relaxed)) {
  }
  init_.core->fanout->NotifyPutWaiters();
}

bool Subscription::PollOnce() {
  if (done_.load(std::memory_order_relaxed) || stop_.load(std::memory_order_acquire)) return false;
  const detail::StreamCore& core = *init_.core;
  if (core.deleted.load(std::memory_order_acquire)) {
    Deliver(SubscriptionEnd::kStreamDeleted);
    return true;
  }
  if (init_.consumer->deregistered.load(std::memory_order_acquire)) {
    Deliver(SubscriptionEnd::kConsumerDeregistered);
    return true;
  }
  if (init_.revoked->load(std::memory_order_acquire)) {
    Deliver(SubscriptionEnd::kReplaced);
    return true;
  }
  const int64_t now_ms = core.clock->NowMillis();
  const detail::ShardState& shard = *init_.shard;
  // One clock read per poll; the shard is held. An expired closed shard ends it, also past
  // the lifetime: a new subscription could not count what it left unread.
  if (core.shards.Expired(shard, now_ms)) {
    DeliverExpired();
    return true;
  }
  if (now_ms >= deadline_ms_) {
    Deliver(SubscriptionEnd::kLifetimeExpired);
    return true;
  }
  uint64_t max_bytes = detail::kMaxGetRecordsBytes;
  if (detail::PushBudget* push = init_.push.get()) {
    // What was pushed beyond the budget is paid back on the clock before the next read, and
    // an event holds what the budget has (the read takes one record at least).
    std::lock_guard<std::mutex> lock(push->mu);
    const int64_t wait_ms = push->bucket.MillisUntil(1, now_ms);
    if (wait_ms > 0) {
      throttled_until_ms_ = now_ms + wait_ms;
      return false;
    }
    throttled_until_ms_ = INT64_MIN;
    max_bytes = std::min(max_bytes, push->bucket.Available(now_ms));
  }
  {
    detail::EpochGuard guard;  // the read may look up child shards in the snapshot
    detail::ReadShard(core, shard, iterator_, result_, options_.max_records_per_event, now_ms,
                      max_bytes);
  }
  if (detail::PushBudget* push = init_.push.get(); push != nullptr && !result_.records.empty()) {
    uint64_t bytes = 0;
    for (const Record& r : result_.records) bytes += r.partition_key.size() + r.data.size();
    std::lock_guard<std::mutex> lock(push->mu);
    push->bucket.TakeWithDebt(bytes, now_ms);
  }
  const bool ended = !result_.next_shard_iterator.has_value();
  ShardIterator next = iterator_;
  if (ended) {
    next.position = shard.final_state.end;
    next.next_record_index = shard.final_state.next_index;
  } else {
    next = *result_.next_shard_iterator;
  }
  const bool moved = next.position != iterator_.position;
  iterator_ = next;
  const bool deliver = ended || !result_.records.empty() || result_.missed_records > 0;
  if (deliver) {
    SubscribeToShardEvent e;
    e.records = result_.records;
    e.continuation_sequence_number = Continuation(next);
    e.millis_behind_latest = result_.millis_behind_latest;
    e.missed_records = result_.missed_records;
    e.child_shards = result_.child_shards;
    e.end = ended ? SubscriptionEnd::kShardEnded : SubscriptionEnd::kNone;
    handler_(e);
  }
  if (init_.gate != nullptr && moved) MoveGate(next.position);
  if (ended) {
    end_.store(SubscriptionEnd::kShardEnded, std::memory_order_release);
    done_.store(true, std::memory_order_release);
  }
  return deliver;
}

void Subscription::Run() {
  running_on_.store(std::this_thread::get_id(), std::memory_order_release);
  while (!stop_.load(std::memory_order_acquire) && !done_.load(std::memory_order_relaxed)) {
    if (PollOnce()) continue;
    if (done_.load(std::memory_order_relaxed)) break;
    Wait();
  }
}

void Subscription::Wait() {
  detail::StreamCore& core = *init_.core;
  const detail::ShardLog& log = init_.shard->log;
  const Clock& clock = *core.clock;
  // Paced by the push budget: new records do not end the wait, the clock does.
  const bool throttled =
      throttled_until_ms_ != INT64_MIN && clock.NowMillis() < throttled_until_ms_;
  auto ready = [&] {
    return (!throttled && log.Readable(iterator_.position)) || log.closed() ||
           stop_.load(std::memory_order_relaxed) || core.deleted.load(std::memory_order_relaxed);
  };
  switch (options_.wait) {
    case WaitStrategy::kBusySpin:
      // Bounded, so that the lifetime and stop flags are re-checked by PollOnce().
      for (int i = 0; i < 4096; ++i) {
        if (ready()) return;
        detail::CpuRelax();
      }
      return;
    case WaitStrategy::kYield:
      if (!ready()) std::this_thread::yield();
      return;
    case WaitStrategy::kBlock:
      break;
  }
  // Under load the next put is usually microseconds away: look briefly before sleeping,
  // so that producers rarely pay for a wake-up (a futex syscall).
  for (int i = 0; i < 256; ++i) {
    if (ready()) return;
    if (i < 192) {
      detail::CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  // Count ourselves, read the wake word, then look for a claim (seq_cst throughout): a
  // producer that claims after our look sees the count and bumps the word, so the futex
  // either sees the bump or is woken by it.
  core.wake.sleepers.fetch_add(1, std::memory_order_seq_cst);
  // A single producer claims with a plain store: the heavy side of the barrier pairs with it.
  if (log.single_producer()) detail::HeavyBarrier();
  const uint32_t seen = core.wake.word.load(std::memory_order_seq_cst);
  // Everything that ends the wait is checked after `seen` was read: a change made before
  // that read is visible here, one made after it changes the word and wakes the futex.
  const bool still_throttled = throttled && clock.NowMillis() < throttled_until_ms_;
  if (!stop_.load(std::memory_order_seq_cst) &&
      (still_throttled || !log.HasClaimsAfter(iterator_.position)) &&
      !init_.revoked->load(std::memory_order_seq_cst) &&
      !init_.consumer->deregistered.load(std::memory_order_seq_cst) &&
      !core.deleted.load(std::memory_order_seq_cst) && clock.NowMillis() < deadline_ms_) {
    int64_t timeout_ns = -1;
    if (deadline_ms_ != INT64_MAX && !clock.IsManual()) {
      timeout_ns = std::max<int64_t>(0, deadline_ms_ - clock.NowMillis()) * 1'000'000 + 1'000'000;
    }
    if (still_throttled && !clock.IsManual()) {
      const int64_t pace_ns =
          std::max<int64_t>(0, throttled_until_ms_ - clock.NowMillis()) * 1'000'000 + 1'000'000;
      timeout_ns = timeout_ns < 0 ? pace_ns : std::min(timeout_ns, pace_ns);
    }
    detail::FutexWait(&core.wake.word, seen, timeout_ns);
  }
  core.wake.sleepers.fetch_sub(1, std::memory_order_relaxed);
  wakeups_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace riffle
