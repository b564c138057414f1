// FanOut: the consumer registry, SubscribeToShard, lossless gates, the blocking put and the
// polling read budget; and the Stream calls that delegate to it.
#include "stream/fanout.h"

#include <algorithm>

#include "common/futex.h"
#include "common/names.h"
#include "common/validation.h"
#include "fmt/format.h"
#include "stream/stream_errors.h"

namespace riffle {
namespace detail {
namespace {

constexpr int64_t kResubscribeMs = 5000;

// Keeps a deregistered consumer's gates alive until no producer can be reading them.
struct RetiredConsumer {
  std::shared_ptr<ConsumerRecord> consumer;
};

// The same for the gates of expired shards that a consumer no longer keeps.
struct RetiredGates {
  std::vector<std::shared_ptr<std::atomic<uint64_t>>> gates;
};

}  // namespace

void WakeSignal::WakeAll() {
  word.fetch_add(1, std::memory_order_seq_cst);
  FutexWakeAll(&word);
}

ConsumerDescription FanOut::DescribeLocked(const ConsumerRecord& c) const {
  return ConsumerDescription{c.name,    c.arn,     ConsumerStatus::kActive,
                             c.created, core_.arn, c.lossless};
}

std::shared_ptr<ConsumerRecord> FanOut::FindLocked(std::string_view name_or_arn) const {
  for (const auto& c : consumers_) {
    if (c->name == name_or_arn || c->arn == name_or_arn) return c;
  }
  return nullptr;
}

std::vector<const std::atomic<uint64_t>*> FanOut::GatesForLocked(uint64_t shard_index) {
  std::vector<const std::atomic<uint64_t>*> gates;
  for (const auto& c : consumers_) {
    if (!c->lossless) continue;
    if (c->gates.size() >= c->prune_at) PruneConsumerLocked(*c);
    auto& gate = c->gates[shard_index];
    // A shard born after registration (a reshard's child) is gated from its start.
    if (!gate) gate = std::make_shared<std::atomic<uint64_t>>(0);
    gates.push_back(gate.get());
  }
  return gates;
}

void FanOut::InstallGatesLocked() {
  EpochGuard guard;
  for (ShardState* shard : core_.shards.snapshot().live) {
    shard->log.SetGates(GatesForLocked(shard->index));
  }
}

void FanOut::GateNewShard(ShardState& shard) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const std::atomic<uint64_t>*> gates = GatesForLocked(shard.index);
  if (!gates.empty()) shard.log.SetGates(std::move(gates));
}

absl::StatusOr<ConsumerDescription> FanOut::Register(std::string_view name,
                                                     RegisterStreamConsumerOptions options) {
  {
    Violations v;
    v.Name("consumerName", name);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (options.lossless && policy_ != OverflowPolicy::kRejectPut) {
    return InvalidArgumentError(fmt::format(
        "A lossless consumer needs OverflowPolicy kRejectPut; stream {} uses kTrimOldest, "
        "whose producers never wait for readers.",
        core_.name));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (FindLocked(name) != nullptr) {
    return ResourceInUseError(
        fmt::format("Consumer {} already exists for stream {}.", name, core_.name));
  }
  if (static_cast<int>(consumers_.size()) >= max_consumers_) {
    return LimitExceededError(
        fmt::format("Stream {} already has {} registered consumers; the limit is {} "
                    "(MaxStreamConsumers).",
                    core_.name, consumers_.size(), max_consumers_));
  }
  auto c = std::make_shared<ConsumerRecord>();
  c->name = std::string(name);
  c->created = core_.clock->Now();
  const int64_t now_s = absl::ToUnixSeconds(c->created);
  if (arn_seconds_.size() >= arn_seconds_prune_at_) PruneArnSecondsLocked(now_s);
  const int64_t first_second =
      arn_pruned_second_ == INT64_MIN ? now_s : std::max(now_s, arn_pruned_second_ + 1);
  auto [seen, first] = arn_seconds_.try_emplace(c->name, first_second);
  if (!first) seen->second = std::max(now_s, seen->second + 1);
  const int64_t second = seen->second;
  c->arn = fmt::format("{}/consumer/{}:{}", core_.arn, name, second);
  c->lossless = options.lossless;
  if (c->lossless) {
    EpochGuard guard;
    for (ShardState* shard : core_.shards.snapshot().live) {
      c->gates[shard->index] =
          std::make_shared<std::atomic<uint64_t>>(shard->log.CommittedPrefix());
    }
  }
  consumers_.push_back(c);
  if (c->lossless) InstallGatesLocked();
  return DescribeLocked(*c);
}

absl::Status FanOut::Deregister(std::string_view name_or_arn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<ConsumerRecord> c = FindLocked(name_or_arn);
    if (c == nullptr) {
      return ResourceNotFoundError(fmt::format("Consumer {} does not exist for stream {}.",
                                               name_or_arn.substr(0, 300), core_.name));
    }
    c->deregistered.store(true, std::memory_order_seq_cst);
    std::erase(consumers_, c);
    if (c->lossless) InstallGatesLocked();  // old gate lists are retired first
    RetireObject(new RetiredConsumer{std::move(c)});
  }
  core_.wake.WakeAll();  // a blocked subscription notices it ended
  WakePutWaiters();      // blocked producers retry without the gates
  CollectRetired();
  return absl::OkStatus();
}

absl::StatusOr<ConsumerDescription> FanOut::Describe(std::string_view name_or_arn) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<ConsumerRecord> c = FindLocked(name_or_arn);
  if (c == nullptr) {
    return ResourceNotFoundError(fmt::format("Consumer {} does not exist for stream {}.",
                                             name_or_arn.substr(0, 300), core_.name));
  }
  return DescribeLocked(*c);
}

std::vector<ConsumerDescription> FanOut::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ConsumerDescription> out;
  for (const auto& c : consumers_) out.push_back(DescribeLocked(*c));
  return out;
}

int FanOut::ConsumerCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(consumers_.size());
}

absl::StatusOr<std::unique_ptr<Subscription>> FanOut::Subscribe(
    std::shared_ptr<StreamCore> core, const SubscribeToShardRequest& request,
    SubscribeToShardHandler handler, const SubscriptionOptions& options,
    const std::function<absl::StatusOr<ShardIterator>()>& start) {
  if (!handler) return InvalidArgumentError("SubscribeToShard needs a handler.");
  if (options.max_records_per_event < 1 || options.max_records_per_event > kMaxGetRecordsLimit) {
    return InvalidArgumentError(
        fmt::format("MaxRecordsPerEvent is {}; it must be between 1 and {}.",
                    options.max_records_per_event, kMaxGetRecordsLimit));
  }
  if (options.lifetime <= absl::ZeroDuration()) {
    return InvalidArgumentError(
        "Subscription lifetime must be positive (InfiniteDuration: unlimited).");
  }
  if (options.max_bytes_per_second && *options.max_bytes_per_second < 1) {
    return InvalidArgumentError("MaxBytesPerSecond must be at least 1 when set.");
  }
  if (options.wait != WaitStrategy::kBusySpin && options.wait != WaitStrategy::kYield &&
      options.wait != WaitStrategy::kBlock) {
    return InvalidArgumentError(
        fmt::format("Wait is {}; it must be WaitStrategy::kBusySpin, WaitStrategy::kYield or "
                    "WaitStrategy::kBlock.",
                    static_cast<int>(options.wait)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<ConsumerRecord> consumer = FindLocked(request.consumer);
  if (consumer == nullptr) {
    return ResourceNotFoundError(fmt::format("Consumer {} does not exist for stream {}.",
                                             request.consumer.substr(0, 300), core_.name));
  }
  absl::StatusOr<ShardIterator> it = start();
  if (!it.ok()) return it.status();
  std::shared_ptr<ShardState> shard = core_.shards.Acquire(it->shard_index);
  if (shard == nullptr) {
    return ResourceNotFoundError(fmt::format("Shard {} in stream {} does not exist.",
                                             request.shard_id.substr(0, 200), core_.name));
  }
  const int64_t now_ms = core_.clock->NowMillis();
  if (consumer->shards.size() >= consumer->prune_at) PruneConsumerLocked(*consumer);
  ConsumerShardState& state = consumer->shards[shard->index];
  if (state.last_subscribe_ms != INT64_MIN && now_ms - state.last_subscribe_ms < kResubscribeMs) {
    // The service's words first; then which shard, and the 5-second rule.
    return ResourceInUseError(fmt::format(
        "Another active subscription exists for this consumer: {} on shard {} (a consumer may "
        "subscribe to a shard once every 5 seconds; {} ms since the last).",
        consumer->arn, shard->id, now_ms - state.last_subscribe_ms));
  }
  if (state.revoked) state.revoked->store(true, std::memory_order_seq_cst);
  state.revoked = std::make_shared<std::atomic<bool>>(false);
  state.last_subscribe_ms = now_ms;
  if (options.max_bytes_per_second &&
      (!state.push || state.push->bucket.rate() != *options.max_bytes_per_second)) {
    state.push = std::make_shared<PushBudget>(*options.max_bytes_per_second);
  }
  std::shared_ptr<std::atomic<uint64_t>> gate;
  if (consumer->lossless) {
    // Looked up again after InstallGatesLocked, which adds to the map (a rehash moves it).
    if (!consumer->gates[shard->index]) InstallGatesLocked();
    gate = consumer->gates[shard->index];
    uint64_t v = gate->load(std::memory_order_relaxed);
    while (v < it->position &&
           !gate->compare_exchange_weak(v, it->position, std::memory_order_release)) {
    }
  }
  auto sub = std::make_unique<Subscription>(
      SubscriptionInit{std::move(core), consumer, std::move(shard), *it, std::move(gate),
                       state.revoked, options.max_bytes_per_second ? state.push : nullptr},
      std::move(handler), options);
  core_.wake.WakeAll();  // a replaced subscription that sleeps notices
  return sub;
}

void FanOut::NotifyPutWaiters() {
  // The gate store before this fence, and the producer's fence after counting itself,
  // make one of the two see the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (put_waiters_.load(std::memory_order_relaxed) == 0) return;
  WakePutWaiters();
}

void FanOut::WakePutWaiters() {
  {
    std::lock_guard<std::mutex> lock(put_mu_);
    ++put_epoch_;
  }
  put_cv_.notify_all();
}

absl::StatusOr<PutRecordResult> FanOut::PutBlocking(
    const std::function<absl::StatusOr<PutRecordResult>()>& put, absl::Time deadline) {
  absl::StatusOr<PutRecordResult> r = put();
  if (r.ok() || !IsProvisionedThroughputExceededException(r.status())) return r;
  // Subscribed before taking put_mu_: ManualClock runs listeners under its own lock.
  ClockSubscription wake = core_.clock->OnTimeChange([this] {
    std::lock_guard<std::mutex> lock(put_mu_);
    put_cv_.notify_all();
  });
  put_waiters_.fetch_add(1, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lock(put_mu_);
    for (;;) {
      const uint64_t epoch = put_epoch_;
      lock.unlock();
      // Pairs with NotifyPutWaiters(): either it sees this waiter, or this put sees its gate.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      r = put();
      lock.lock();
      if (r.ok() || !IsProvisionedThroughputExceededException(r.status())) break;
      if (core_.deleted.load(std::memory_order_acquire)) break;
      // A write-limited stream is refused for time, not only for space: wait at most a
      // millisecond of clock time before trying again.
      const absl::Time round = core_.write_limited
                                   ? std::min(deadline, core_.clock->Now() + absl::Milliseconds(1))
                                   : deadline;
      if (!WaitUntil(*core_.clock, put_cv_, lock, round, [&] { return put_epoch_ != epoch; }) &&
          core_.clock->Now() >= deadline) {
        break;  // timed out: the last error stands
      }
    }
  }
  put_waiters_.fetch_sub(1, std::memory_order_relaxed);
  return r;
}

void FanOut::PruneArnSecondsLocked(int64_t now_s) {
  // A name whose latest second is before now would get now anyway (max(now, seen + 1)),
  // unless the clock goes back: arn_pruned_second_ keeps the latest second pruned for that.
  absl::erase_if(arn_seconds_, [this, now_s](const auto& entry) {
    if (entry.second >= now_s) return false;
    arn_pruned_second_ = std::max(arn_pruned_second_, entry.second);
    return true;
  });
  arn_seconds_prune_at_ = std::max<std::size_t>(64, 2 * arn_seconds_.size());
}

void FanOut::PruneBudgetsLocked() {
  EpochGuard guard;
  const RoutingSnapshot& snapshot = core_.shards.snapshot();
  auto expired = [&snapshot](const auto& entry) { return snapshot.Find(entry.first) == nullptr; };
  absl::erase_if(budgets_, expired);
  absl::erase_if(write_buckets_, expired);
  budgets_prune_at_ =
      std::max<std::size_t>(64, 2 * std::max(budgets_.size(), write_buckets_.size()));
}

void FanOut::PruneConsumerLocked(ConsumerRecord& c) {
  // Only shards that expired: a reshard gates its children before it publishes them, and
  // their logs already hold the gates' addresses.
  auto retired = std::make_unique<RetiredGates>();
  core_.shards.EraseExpired(
      c.gates, [&](auto& entry) { retired->gates.push_back(std::move(entry.second)); });
  core_.shards.EraseExpired(c.shards, [](const auto&) {});
  if (!retired->gates.empty()) RetireObject(retired.release());
  c.prune_at = std::max<std::size_t>(64, 2 * std::max(c.gates.size(), c.shards.size()));
}

absl::Status FanOut::ChargeReadCall(uint64_t shard_index, int64_t now_ms) {
  const StreamOptions::ReadBudget& budget = *read_budget_;
  std::lock_guard<std::mutex> lock(budget_mu_);
  if (budgets_.size() >= budgets_prune_at_) PruneBudgetsLocked();
  ReadWindow& w = budgets_[shard_index];
  const int64_t elapsed =
      w.debt_at_ms == INT64_MIN ? 0 : std::max<int64_t>(0, now_ms - w.debt_at_ms);
  // bytes_per_second thousandths of a byte a millisecond (without overflowing on long idles).
  const uint64_t ms = static_cast<uint64_t>(elapsed);
  w.byte_debt =
      ms > w.byte_debt / budget.bytes_per_second ? 0 : w.byte_debt - ms * budget.bytes_per_second;
  // Like TokenBucket, a clock that steps back repays and refills nothing: both marks only
  // move forward, so stepping back and then forward again never credits a time twice.
  w.debt_at_ms = std::max(w.debt_at_ms, now_ms);
  const int64_t second = now_ms >= 0 ? now_ms / 1000 : (now_ms - 999) / 1000;
  if (second > w.second) {
    w.second = second;
    w.calls = 0;
  }
  if (w.byte_debt == 0) w.repaying = false;
  if (w.calls >= budget.calls_per_second || w.repaying) {
    return ShardRateExceededError(core_, shard_index);
  }
  ++w.calls;
  return absl::OkStatus();
}

void FanOut::ChargeReadBytes(uint64_t shard_index, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(budget_mu_);
  ReadWindow& w = budgets_[shard_index];
  w.byte_debt += bytes * 1000;
  if (w.byte_debt / 1000 >= read_budget_->bytes_per_second) w.repaying = true;
}

absl::Status FanOut::ChargeWrite(uint64_t shard_index, uint64_t bytes, int64_t now_ms) {
  const StreamOptions::WriteLimit& limit = *write_limit_;
  {
    std::lock_guard<std::mutex> lock(budget_mu_);
    if (write_buckets_.size() >= budgets_prune_at_) PruneBudgetsLocked();
    auto [it, added] = write_buckets_.try_emplace(shard_index);
    WriteBuckets& b = it->second;
    if (added) {
      // One second of burst, as the service allows.
      b.bytes = TokenBucket(limit.bytes_per_second, limit.bytes_per_second);
      b.records = TokenBucket(static_cast<uint64_t>(limit.records_per_second),
                              static_cast<uint64_t>(limit.records_per_second));
    }
    // Both or neither: a refused record takes nothing. A record larger than a second of
    // bytes is taken when the bytes are all there and leaves a debt: the shard bursts past
    // its rate for it, then writes nothing more until the average is back under the rate,
    // as the service does with large records (never refused for ever).
    const bool bytes_there =
        bytes > limit.bytes_per_second ? b.bytes.Full(now_ms) : b.bytes.Has(bytes, now_ms);
    if (bytes_there && b.records.Has(1, now_ms)) {
      b.bytes.TakeWithDebt(bytes, now_ms);
      (void)b.records.TryTake(1, now_ms);
      return absl::OkStatus();
    }
  }
  return ShardRateExceededError(core_, shard_index);
}

void FanOut::RefundWrite(uint64_t shard_index, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(budget_mu_);
  auto it = write_buckets_.find(shard_index);
  if (it == write_buckets_.end()) return;
  it->second.bytes.Give(bytes);
  it->second.records.Give(1);
}

}  // namespace detail

// ---- Stream's fan-out calls ----

std::string_view ConsumerStatusName(ConsumerStatus status) {
  switch (status) {
    case ConsumerStatus::kCreating:
      return "CREATING";
    case ConsumerStatus::kDeleting:
      return "DELETING";
    case ConsumerStatus::kActive:
      return "ACTIVE";
  }
  return "?";
}

absl::StatusOr<ConsumerDescription> Stream::RegisterStreamConsumer(
    std::string_view consumer_name, RegisterStreamConsumerOptions options) {
  return core_->fanout->Register(consumer_name, options);
}

absl::Status Stream::DeregisterStreamConsumer(std::string_view consumer_name_or_arn) {
  return core_->fanout->Deregister(consumer_name_or_arn);
}

absl::StatusOr<ConsumerDescription> Stream::DescribeStreamConsumer(
    std::string_view consumer_name_or_arn) const {
  return core_->fanout->Describe(consumer_name_or_arn);
}

std::vector<ConsumerDescription> Stream::ListStreamConsumers() const {
  return core_->fanout->List();
}

absl::StatusOr<std::unique_ptr<Subscription>> Stream::SubscribeToShard(
    const SubscribeToShardRequest& request, SubscribeToShardHandler handler) {
  return SubscribeToShard(request, std::move(handler), SubscriptionOptions{});
}

absl::StatusOr<std::unique_ptr<Subscription>> Stream::SubscribeToShard(
    const SubscribeToShardRequest& request, SubscribeToShardHandler handler,
    const SubscriptionOptions& options) {
  // The starting position, through GetShardIterator's rules and messages (which accept a
  // ContinuationSequenceNumber a previous subscription took, padded since or not).
  auto start = [&]() -> absl::StatusOr<ShardIterator> {
    const StartingPosition& position = request.starting_position;
    return GetShardIterator(GetShardIteratorRequest{request.shard_id, position.type,
                                                    position.sequence_number, position.timestamp});
  };
  return core_->fanout->Subscribe(core_, request, std::move(handler), options, start);
}

absl::StatusOr<PutRecordResult> Stream::PutRecordBlocking(const PutRecordRequest& request,
                                                          absl::Duration timeout) {
  const absl::Time deadline = core_->clock->Now() + timeout;
  return core_->fanout->PutBlocking([&] { return PutRecord(request); }, deadline);
}

absl::Status Stream::GetRecordsBudgeted(const ShardIterator& iterator, GetRecordsResult& out,
                                        int limit) {
  if (limit < 1 || limit > detail::kMaxGetRecordsLimit) return detail::GetRecordsLimitError(limit);
  detail::StreamCore& core = *core_;
  const int64_t now_ms = core.clock->NowMillis();
  {
    detail::EpochGuard guard;
    const detail::ShardState* shard = detail::ShardForIterator(core, iterator, now_ms);
    if (shard == nullptr) return detail::IteratorError(core, iterator, now_ms);
    if (absl::Status s = core.fanout->ChargeReadCall(iterator.shard_index, now_ms); !s.ok()) {
      return s;
    }
    detail::ReadShard(core, *shard, iterator, out, limit, now_ms);
  }
  uint64_t bytes = 0;
  for (const Record& r : out.records) bytes += r.partition_key.size() + r.data.size();
  core.fanout->ChargeReadBytes(iterator.shard_index, bytes);
  return absl::OkStatus();
}

}  // namespace riffle
