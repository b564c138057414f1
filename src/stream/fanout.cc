// Stream's enhanced fan-out control plane (consumer registry, SubscribeToShard), the
// blocking put of lossless pipelines, and the polling read budget.
#include <algorithm>

#include "fmt/format.h"
#include "common/futex.h"
#include "common/names.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"

namespace riffle {
namespace {

constexpr int64_t kResubscribeMs = 5000;

ConsumerDescription DescribeConsumer(const detail::ConsumerRecord& c,
                                     const std::string& stream_arn) {
  return ConsumerDescription{c.name,    c.arn,      ConsumerStatus::kActive,
                             c.created, stream_arn, c.lossless};
}

std::string StreamArn(const std::string& name) {
  return fmt::format("arn:aws:kinesis:local:000000000000:stream/{}", name);
}

std::shared_ptr<detail::ConsumerRecord> FindConsumer(const detail::StreamConsumers& registry,
                                                     std::string_view name_or_arn) {
  for (const auto& c : registry.consumers) {
    if (c->name == name_or_arn || c->arn == name_or_arn) return c;
  }
  return nullptr;
}

// A ContinuationSequenceNumber may point at the end of the log as it was (no record there
// yet, or now a padding frame before the record that got that index).
bool IsContinuation(const detail::ShardRing& ring, const SequenceNumber& n) {
  const detail::LatestState latest = ring.Latest();
  if (n.position == latest.published) return n.record_index == latest.next_index;
  if (n.position > latest.published || n.record_index > latest.next_index) return false;
  if (n.position < ring.Horizon(ring.claimed()) || n.position % detail::kFrameAlignment != 0) {
    return false;
  }
  if (!ring.FitsInSegment(n.position, 8)) return false;
  const uint64_t* w = ring.WordsAt(n.position);
  const uint64_t w0 = detail::LoadWordRelaxed(w);
  if (!(detail::Word0Flags(w0) & detail::kFlagPadding)) return false;
  const uint64_t next = n.position + detail::AlignFrame(detail::Word0Length(w0));
  bool ok;
  if (next >= latest.published) {
    ok = next == latest.published && n.record_index == latest.next_index;
  } else {
    if (!ring.FitsInSegment(next, detail::kFrameHeaderBytes)) return false;
    const uint64_t* f = ring.WordsAt(next);
    ok = detail::LoadWordRelaxed(f + 1) == next && detail::LoadWordRelaxed(f + 2) == n.record_index;
  }
  return ok && ring.IntactAfterReads(n.position, next + detail::kFrameHeaderBytes);
}

}  // namespace

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

void Stream::WakeSubscribers() {
  subscriber_wake_.fetch_add(1, std::memory_order_seq_cst);
  detail::FutexWakeAll(&subscriber_wake_);
}

void Stream::InstallGates() {
  const detail::Topology* topology = topology_.load(std::memory_order_acquire);
  for (detail::ShardState* shard : topology->all) {
    std::vector<const std::atomic<uint64_t>*> gates;
    for (const auto& c : consumers_->consumers) {
      if (!c->lossless) continue;
      auto& gate = c->gates[shard->index];
      // A shard born after registration (a reshard's child) is gated from its start.
      if (!gate) gate = std::make_unique<std::atomic<uint64_t>>(0);
      gates.push_back(gate.get());
    }
    shard->ring.SetGates(std::move(gates));
  }
}

void Stream::GateNewShard(detail::ShardState& shard) {
  std::lock_guard<std::mutex> lock(consumers_->mu);
  std::vector<const std::atomic<uint64_t>*> gates;
  for (const auto& c : consumers_->consumers) {
    if (!c->lossless) continue;
    auto& gate = c->gates[shard.index];
    if (!gate) gate = std::make_unique<std::atomic<uint64_t>>(0);
    gates.push_back(gate.get());
  }
  if (!gates.empty()) shard.ring.SetGates(std::move(gates));
}

absl::StatusOr<ConsumerDescription> Stream::RegisterStreamConsumer(
    std::string_view consumer_name, RegisterStreamConsumerOptions options) {
  if (!detail::IsValidName(consumer_name)) {
    return InvalidArgumentError(fmt::format(
        "ConsumerName '{}' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].",
        consumer_name.substr(0, 200)));
  }
  if (options.lossless && options_.overflow_policy != OverflowPolicy::kRejectPut) {
    return InvalidArgumentError(fmt::format(
        "A lossless consumer needs OverflowPolicy kRejectPut; stream {} uses kTrimOldest, "
        "whose producers never wait for readers.",
        options_.stream_name));
  }
  std::lock_guard<std::mutex> lock(consumers_->mu);
  if (FindConsumer(*consumers_, consumer_name) != nullptr) {
    return ResourceInUseError(fmt::format("Consumer {} already exists for stream {}.",
                                          consumer_name, options_.stream_name));
  }
  if (static_cast<int>(consumers_->consumers.size()) >= options_.max_stream_consumers) {
    return LimitExceededError(fmt::format(
        "Stream {} already has {} registered consumers; the limit is {} "
        "(MaxStreamConsumers).",
        options_.stream_name, consumers_->consumers.size(), options_.max_stream_consumers));
  }
  auto c = std::make_shared<detail::ConsumerRecord>();
  c->name = std::string(consumer_name);
  c->created = clock_->Now();
  c->arn = fmt::format("{}/consumer/{}:{}", StreamArn(options_.stream_name), consumer_name,
                       absl::ToUnixSeconds(c->created));
  c->lossless = options.lossless;
  if (c->lossless) {
    for (detail::ShardState* shard : topology_.load(std::memory_order_acquire)->all) {
      c->gates[shard->index] = std::make_unique<std::atomic<uint64_t>>(shard->ring.published());
    }
  }
  consumers_->consumers.push_back(c);
  if (c->lossless) InstallGates();
  return DescribeConsumer(*c, StreamArn(options_.stream_name));
}

absl::Status Stream::DeregisterStreamConsumer(std::string_view consumer_name_or_arn) {
  {
    std::lock_guard<std::mutex> lock(consumers_->mu);
    std::shared_ptr<detail::ConsumerRecord> c = FindConsumer(*consumers_, consumer_name_or_arn);
    if (c == nullptr) {
      return ResourceNotFoundError(fmt::format("Consumer {} does not exist for stream {}.",
                                               consumer_name_or_arn.substr(0, 300),
                                               options_.stream_name));
    }
    c->deregistered.store(true, std::memory_order_seq_cst);
    std::erase(consumers_->consumers, c);
    consumers_->retired.push_back(c);  // rings may still hold its gates' addresses
    if (c->lossless) InstallGates();
  }
  WakeSubscribers();  // a blocked subscription notices it ended
  {
    std::lock_guard<std::mutex> lock(consumers_->put_mu);
    ++consumers_->put_epoch;  // blocked producers retry without the gates
  }
  consumers_->put_cv.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<ConsumerDescription> Stream::DescribeStreamConsumer(
    std::string_view consumer_name_or_arn) const {
  std::lock_guard<std::mutex> lock(consumers_->mu);
  std::shared_ptr<detail::ConsumerRecord> c = FindConsumer(*consumers_, consumer_name_or_arn);
  if (c == nullptr) {
    return ResourceNotFoundError(fmt::format("Consumer {} does not exist for stream {}.",
                                             consumer_name_or_arn.substr(0, 300),
                                             options_.stream_name));
  }
  return DescribeConsumer(*c, StreamArn(options_.stream_name));
}

std::vector<ConsumerDescription> Stream::ListStreamConsumers() const {
  std::lock_guard<std::mutex> lock(consumers_->mu);
  std::vector<ConsumerDescription> out;
  for (const auto& c : consumers_->consumers)
    out.push_back(DescribeConsumer(*c, StreamArn(options_.stream_name)));
  return out;
}

absl::StatusOr<std::unique_ptr<Subscription>> Stream::SubscribeToShard(
    const SubscribeToShardRequest& request, SubscribeToShardHandler handler) {
  return SubscribeToShard(request, std::move(handler), SubscriptionOptions{});
}

absl::StatusOr<std::unique_ptr<Subscription>> Stream::SubscribeToShard(
    const SubscribeToShardRequest& request, SubscribeToShardHandler handler,
    const SubscriptionOptions& options) {
  if (!handler) return InvalidArgumentError("SubscribeToShard needs a handler.");
  if (options.max_records_per_event < 1 ||
      options.max_records_per_event > detail::kMaxGetRecordsLimit) {
    return InvalidArgumentError(
        fmt::format("MaxRecordsPerEvent is {}; it must be between 1 and {}.",
                    options.max_records_per_event, detail::kMaxGetRecordsLimit));
  }
  if (options.lifetime <= absl::ZeroDuration()) {
    return InvalidArgumentError(
        "Subscription lifetime must be positive (InfiniteDuration: unlimited).");
  }
  // The starting position, through GetShardIterator's rules and messages.
  GetShardIteratorRequest it_request;
  it_request.shard_id = request.shard_id;
  const StartingPosition& start = request.starting_position;
  it_request.starting_sequence_number = start.sequence_number;
  it_request.timestamp = start.timestamp;
  switch (start.type) {
    case StartingPositionType::kAtSequenceNumber:
      it_request.type = ShardIteratorType::kAtSequenceNumber;
      break;
    case StartingPositionType::kAfterSequenceNumber:
      it_request.type = ShardIteratorType::kAfterSequenceNumber;
      break;
    case StartingPositionType::kTrimHorizon:
      it_request.type = ShardIteratorType::kTrimHorizon;
      break;
    case StartingPositionType::kLatest:
      it_request.type = ShardIteratorType::kLatest;
      break;
    case StartingPositionType::kAtTimestamp:
      it_request.type = ShardIteratorType::kAtTimestamp;
      break;
  }
  std::lock_guard<std::mutex> lock(consumers_->mu);
  std::shared_ptr<detail::ConsumerRecord> consumer = FindConsumer(*consumers_, request.consumer);
  if (consumer == nullptr) {
    return ResourceNotFoundError(fmt::format("Consumer {} does not exist for stream {}.",
                                             request.consumer.substr(0, 300),
                                             options_.stream_name));
  }
  absl::StatusOr<ShardIterator> it = GetShardIterator(it_request);
  detail::ShardState* shard = nullptr;
  if (const auto index = ParseShardId(request.shard_id)) {
    shard = topology_.load(std::memory_order_acquire)->Find(*index);
  }
  if (!it.ok() && shard != nullptr && start.type == StartingPositionType::kAtSequenceNumber) {
    absl::StatusOr<SequenceNumber> n = SequenceNumber::Parse(start.sequence_number);
    if (n.ok() && n->stream_tag == tag_ && n->shard_index == shard->index &&
        IsContinuation(shard->ring, *n)) {
      it = ShardIterator{tag_, shard->index,       n->position, n->record_index,
                         true, clock_->NowMillis()};
    }
  }
  if (!it.ok()) return it.status();
  const int64_t now_ms = clock_->NowMillis();
  detail::ConsumerShardState& state = consumer->shards[shard->index];
  if (state.last_subscribe_ms != INT64_MIN && now_ms - state.last_subscribe_ms < kResubscribeMs) {
    return ResourceInUseError(fmt::format(
        "Another active subscription exists for consumer {} on shard {}: a consumer may "
        "subscribe to a shard once every 5 seconds ({} ms since the last).",
        consumer->arn, shard->id, now_ms - state.last_subscribe_ms));
  }
  if (state.revoked) state.revoked->store(true, std::memory_order_seq_cst);
  state.revoked = std::make_shared<std::atomic<bool>>(false);
  state.last_subscribe_ms = now_ms;
  std::atomic<uint64_t>* gate = nullptr;
  if (consumer->lossless) {
    auto& g = consumer->gates[shard->index];
    if (!g) InstallGates();
    gate = g.get();
    uint64_t v = gate->load(std::memory_order_relaxed);
    while (v < it->position &&
           !gate->compare_exchange_weak(v, it->position, std::memory_order_release)) {
    }
  }
  std::unique_ptr<Subscription> sub(new Subscription(this, consumer, shard, *it, gate,
                                                     state.revoked, std::move(handler), options));
  WakeSubscribers();  // a replaced subscription that sleeps notices
  if (options.run_on_thread) sub->Start();
  return sub;
}

absl::StatusOr<PutRecordResult> Stream::PutRecordBlocking(const PutRecordRequest& request,
                                                          absl::Duration timeout) {
  absl::StatusOr<PutRecordResult> r = PutRecord(request);
  if (r.ok() || !IsProvisionedThroughputExceeded(r.status())) return r;
  detail::StreamConsumers& reg = *consumers_;
  const absl::Time deadline = clock_->Now() + timeout;
  // Subscribed before taking put_mu: ManualClock runs listeners under its own lock.
  ClockSubscription wake = clock_->OnTimeChange([&reg] {
    std::lock_guard<std::mutex> lock(reg.put_mu);
    reg.put_cv.notify_all();
  });
  reg.put_waiters.fetch_add(1, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lock(reg.put_mu);
    for (;;) {
      const uint64_t epoch = reg.put_epoch;
      lock.unlock();
      // Pairs with NotifyPutWaiters(): either it sees this waiter, or this put sees its gate.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      r = PutRecord(request);
      lock.lock();
      if (r.ok() || !IsProvisionedThroughputExceeded(r.status())) break;
      if (!WaitUntil(*clock_, reg.put_cv, lock, deadline, [&] { return reg.put_epoch != epoch; })) {
        break;  // timed out: the last error stands
      }
    }
  }
  reg.put_waiters.fetch_sub(1, std::memory_order_relaxed);
  return r;
}

absl::Status Stream::GetRecordsBudgeted(const ShardIterator& iterator, GetRecordsResult& out,
                                        int limit) {
  if (limit < 1 || limit > detail::kMaxGetRecordsLimit) return detail::GetRecordsLimitError(limit);
  const StreamOptions::ReadBudget& budget = *options_.read_budget;
  const int64_t now_ms = clock_->NowMillis();
  {
    std::lock_guard<std::mutex> lock(consumers_->budget_mu);
    detail::ReadWindow& w = consumers_->budgets[iterator.shard_index];
    const int64_t elapsed = std::max<int64_t>(0, now_ms - w.debt_at_ms);
    const uint64_t paid = static_cast<uint64_t>(elapsed) * budget.bytes_per_second / 1000;
    w.byte_debt = w.byte_debt > paid ? w.byte_debt - paid : 0;
    w.debt_at_ms = now_ms;
    const int64_t second = now_ms >= 0 ? now_ms / 1000 : (now_ms - 999) / 1000;
    if (w.second != second) {
      w.second = second;
      w.calls = 0;
    }
    if (w.calls >= budget.calls_per_second || w.byte_debt >= budget.bytes_per_second) {
      return ProvisionedThroughputExceededError(fmt::format(
          "Rate exceeded for shard {} in stream {}: GetRecords may be called {} times and read "
          "{} bytes per second per shard.",
          FormatShardId(iterator.shard_index), options_.stream_name, budget.calls_per_second,
          budget.bytes_per_second));
    }
    ++w.calls;
  }
  absl::Status s = ReadRecords(iterator, out, limit);
  if (!s.ok()) return s;
  uint64_t bytes = 0;
  for (const Record& r : out.records) bytes += r.partition_key.size() + r.data.size();
  std::lock_guard<std::mutex> lock(consumers_->budget_mu);
  consumers_->budgets[iterator.shard_index].byte_debt += bytes;
  return absl::OkStatus();
}

}  // namespace riffle
