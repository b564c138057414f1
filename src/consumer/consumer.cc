// Consumer: options, checkpoints and the per-shard read loops of both modes. The lease pass
// (which shards this worker processes) is in consumer_leases.cc, the LeaseTable in
// lease_table.cc.
#include "riffle/consumer.h"

#include <algorithm>
#include <utility>

#include "common/names.h"
#include "common/own_thread.h"
#include "consumer/consumer_internal.h"
#include "consumer/lineage.h"
#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle {

thread_local const Consumer* detail::t_in_callback = nullptr;

using detail::CallProcessor;
using detail::IsPositionCheckpoint;

namespace {

// The longest lease_duration, lease_refresh_interval and idle_sleep: deadlines on the clock
// add them to the time, and a year is beyond any use (absl::InfiniteDuration() would
// overflow).
constexpr absl::Duration kMaxOptionDuration = absl::Hours(24 * 365);

absl::Status ShutdownError(std::string_view shard_id) {
  return MakeError(absl::StatusCode::kFailedPrecondition, kShutdownException,
                   fmt::format("Can't checkpoint shard {}: this worker lost its lease.", shard_id));
}

absl::Status InvalidCheckpointError(std::string_view application, std::string_view shard_id,
                                    std::string_view checkpoint, const absl::Status& cause) {
  return MakeError(
      absl::StatusCode::kFailedPrecondition, kInvalidCheckpointException,
      fmt::format("Checkpoint '{}' of application {} for shard {} cannot be used: {} Replace "
                  "the checkpoint, or set InvalidCheckpointPolicy::kRestartFromInitialPosition.",
                  checkpoint.substr(0, 120), application, shard_id, std::string(cause.message())));
}

}  // namespace

// ---- Checkpointer ----

absl::Status Checkpointer::Checkpoint() {
  ShardTask& task = *task_;
  if (task.lease_lost) return ShutdownError(task.shard_id);
  if (task.at_shard_end) return consumer_->WriteCheckpoint(task, kShardEndCheckpoint);
  if (!task.last_delivered) return absl::OkStatus();  // nothing delivered yet
  return consumer_->WriteCheckpoint(task, task.last_delivered->ToString());
}

absl::Status Checkpointer::Checkpoint(const SequenceNumber& sequence_number) {
  return consumer_->CheckpointAt(*task_, sequence_number, std::nullopt);
}

absl::Status Checkpointer::Checkpoint(const SequenceNumber& sequence_number,
                                      uint64_t sub_sequence_number) {
  return consumer_->CheckpointAt(*task_, sequence_number, sub_sequence_number);
}

absl::Status Checkpointer::Checkpoint(const UserRecord& record) {
  if (!record.aggregated) return Checkpoint(record.sequence_number);
  return Checkpoint(record.sequence_number, record.sub_sequence_number);
}

// ---- Consumer ----

namespace {

// A checkpoint as a position in the shard: its record and the last user record of it that
// it covers (UINT64_MAX: the whole record). nullopt for SHARD_END and anything unparsable.
std::optional<std::pair<SequenceNumber, uint64_t>> CheckpointPosition(std::string_view value) {
  if (absl::StatusOr<SequenceNumber> n = SequenceNumber::Parse(value); n.ok()) {
    return std::pair(*n, UINT64_MAX);
  }
  if (const auto sub = SplitSubRecordCheckpoint(value)) {
    if (absl::StatusOr<SequenceNumber> n = SequenceNumber::Parse(sub->first); n.ok()) {
      return std::pair(*n, sub->second);
    }
  }
  return std::nullopt;
}

std::string DescribeCheckpoint(const SequenceNumber& n, std::optional<uint64_t> sub) {
  return sub ? fmt::format("SequenceNumber {} (SubSequenceNumber {})", n.ToString(), *sub)
             : fmt::format("SequenceNumber {}", n.ToString());
}

}  // namespace

std::string Consumer::NotDelivered(const ShardTask& task, const SequenceNumber& n) const {
  if (!task.last_delivered) return "nothing was delivered yet";
  const SequenceNumber& last = *task.last_delivered;
  if (n.stream_tag != last.stream_tag) return "it is of another stream";
  if (FormatShardId(n.shard_index) != task.shard_id) {
    return fmt::format("it is of {}", FormatShardId(n.shard_index));
  }
  if (n > last) return fmt::format("the last record delivered is {}", last.ToString());
  return "";
}

bool Consumer::IsRecord(const ShardTask& task, const SequenceNumber& n) {
  if (n == task.last_delivered ||
      std::ranges::binary_search(task.batch, n, {}, &Record::sequence_number)) {
    return true;
  }
  // An earlier batch's: only the source still knows its records. It accepts a record that
  // retention has trimmed since (a restart then starts at the horizon), and it is the
  // source a restart asks, so what it refuses would stop the shard at the restart. Other
  // errors (an expired shard, a broker out of reach) say nothing about the number.
  absl::StatusOr<ShardIterator> it = stream_.GetShardIterator(
      {task.shard_id, ShardIteratorType::kAtSequenceNumber, n.ToString(), std::nullopt});
  return it.ok() || !IsInvalidArgumentException(it.status());
}

absl::Status Consumer::CheckpointAt(ShardTask& task, const SequenceNumber& sequence_number,
                                    std::optional<uint64_t> sub) {
  if (task.lease_lost) return ShutdownError(task.shard_id);
  auto not_delivered = [&](std::string_view reason) {
    return InvalidArgumentError(
        fmt::format("{} is not a record of shard {} delivered to this processor: {}.",
                    DescribeCheckpoint(sequence_number, sub), task.shard_id, reason));
  };
  if (const std::string reason = NotDelivered(task, sequence_number); !reason.empty()) {
    return not_delivered(reason);
  }
  // As the KCL: nothing after the greatest (sequence, sub-sequence) number delivered. Only
  // a de-aggregating consumer knows the sub-records; without one the processor may unpack
  // the aggregates itself.
  if (sub && options_.deaggregator != nullptr && sequence_number == *task.last_delivered &&
      *sub > task.last_sub.value_or(0)) {
    return not_delivered(
        fmt::format("the last user record delivered is SubSequenceNumber {} of this record",
                    task.last_sub.value_or(0)));
  }
  // As the KCL: a checkpoint never moves back (a restart would deliver again what was
  // already checkpointed).
  const std::pair<SequenceNumber, uint64_t> at(sequence_number, sub.value_or(UINT64_MAX));
  if (task.checkpoint) {
    if (const auto last = CheckpointPosition(*task.checkpoint); last && at < *last) {
      return InvalidArgumentError(fmt::format(
          "{} is before the last checkpoint of shard {} ({}): a checkpoint cannot move back.",
          DescribeCheckpoint(sequence_number, sub), task.shard_id, *task.checkpoint));
    }
  }
  // A number between two records (or a forged one) would be refused by the stream when a
  // restart resumes from it, and the shard would not be processed again.
  if (!IsRecord(task, sequence_number)) {
    return not_delivered("the stream has no record with this number");
  }
  // During ShardEnded the shard's last record (its last user record) is its end, as the
  // KCL counts it.
  const bool last_record =
      sequence_number == *task.last_delivered && (!sub || !task.last_sub || *sub >= *task.last_sub);
  if (task.at_shard_end && last_record) return WriteCheckpoint(task, kShardEndCheckpoint);
  return WriteCheckpoint(task, sub ? SubRecordCheckpoint(sequence_number.ToString(), *sub)
                                   : sequence_number.ToString());
}

absl::StatusOr<std::unique_ptr<Consumer>> Consumer::Create(ConsumerOptions options) {
  if (options.stream == nullptr) return InvalidArgumentError("ConsumerOptions.stream is required.");
  if (!options.processor_factory) {
    return InvalidArgumentError("ConsumerOptions.processor_factory is required.");
  }
  if (!detail::IsValidName(options.application_name)) {
    return InvalidArgumentError(fmt::format(
        "ApplicationName '{}' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].",
        options.application_name.substr(0, 200)));
  }
  if (options.worker_id.empty()) return InvalidArgumentError("WorkerId must not be empty.");
  if (options.checkpoint_store == nullptr) {
    return InvalidArgumentError("ConsumerOptions.checkpoint_store is required.");
  }
  if (options.max_records < 1 || options.max_records > 10000) {
    return InvalidArgumentError(
        fmt::format("MaxRecords is {}; it must be between 1 and 10000.", options.max_records));
  }
  if (options.lease_duration <= absl::ZeroDuration() ||
      options.lease_duration > kMaxOptionDuration) {
    return InvalidArgumentError(
        fmt::format("LeaseDuration is {}; it must be positive and at most 365 days.",
                    absl::FormatDuration(options.lease_duration)));
  }
  if (options.lease_refresh_interval < absl::ZeroDuration() ||
      options.lease_refresh_interval > kMaxOptionDuration) {
    return InvalidArgumentError(
        fmt::format("LeaseRefreshInterval is {}; it must be between 0 and 365 days.",
                    absl::FormatDuration(options.lease_refresh_interval)));
  }
  // Leases are renewed at refreshes: one not renewed before it expires is taken by another
  // worker while this one goes on processing the shard.
  if (options.lease_refresh_interval >= options.lease_duration) {
    return InvalidArgumentError(
        fmt::format("LeaseRefreshInterval is {}; it must be less than LeaseDuration ({}).",
                    absl::FormatDuration(options.lease_refresh_interval),
                    absl::FormatDuration(options.lease_duration)));
  }
  if (options.idle_sleep < absl::ZeroDuration() || options.idle_sleep > kMaxOptionDuration) {
    return InvalidArgumentError(fmt::format("IdleSleep is {}; it must be between 0 and 365 days.",
                                            absl::FormatDuration(options.idle_sleep)));
  }
  if (options.initial_position != InitialPosition::kTrimHorizon &&
      options.initial_position != InitialPosition::kLatest &&
      options.initial_position != InitialPosition::kAtTimestamp) {
    return InvalidArgumentError(
        fmt::format("InitialPositionInStream {} is invalid: it must be TRIM_HORIZON, LATEST or "
                    "AT_TIMESTAMP.",
                    ShardIteratorTypeName(options.initial_position)));
  }
  if ((options.initial_position == InitialPosition::kAtTimestamp) !=
      options.initial_timestamp.has_value()) {
    return InvalidArgumentError(
        "InitialPositionInStream AT_TIMESTAMP requires a timestamp, and only it takes one.");
  }
  if (options.mode == ConsumerMode::kEnhancedFanOut) {
    auto* stream = dynamic_cast<Stream*>(options.stream);
    if (stream == nullptr) {
      return InvalidArgumentError(
          "ConsumerMode kEnhancedFanOut needs a riffle::Stream; this source offers polling only.");
    }
    if (options.stream_consumer_name.empty()) {
      options.stream_consumer_name = options.application_name;
    }
    auto r = stream->RegisterStreamConsumer(options.stream_consumer_name);
    if (!r.ok() && !IsResourceInUseException(r.status())) return r.status();
  }
  return std::unique_ptr<Consumer>(new Consumer(std::move(options)));
}

Consumer::Consumer(ConsumerOptions options)
    : options_(std::move(options)),
      stream_(*options_.stream),
      local_stream_(dynamic_cast<Stream*>(options_.stream)),
      clock_(options_.clock != nullptr ? *options_.clock : stream_.clock()),
      own_leases_(options_.lease_table == nullptr ? std::make_unique<LeaseTable>(&clock_)
                                                  : nullptr),
      leases_(options_.lease_table != nullptr ? options_.lease_table : own_leases_.get()),
      thread_(std::make_unique<detail::OwnThread>()) {
  // A worker counts for balancing from its creation, so that workers created together
  // split the shards at their first lease pass instead of handing leases over later.
  leases_->Heartbeat(options_.application_name, options_.worker_id, options_.lease_duration);
}

Consumer::~Consumer() { Stop(); }

absl::Status Consumer::last_error() const { return status_; }

std::vector<std::string> Consumer::OwnedShards() const {
  std::vector<std::string> out;
  for (const auto& t : tasks_) out.push_back(t->shard_id);
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status Consumer::Start() {
  // Set before the thread starts, and never reset: Poll() reads it on that thread.
  own_thread_.store(true, std::memory_order_relaxed);
  return thread_->Start(
      fmt::format("Consumer {} (worker {})", options_.application_name, options_.worker_id),
      [this] { return Poll(); }, options_.idle_sleep);
}

void Consumer::Stop() {
  if (detail::t_in_callback == this) {
    stop_requested_ = true;  // Poll() stops once the callback returned
    return;
  }
  if (stopped_) return;
  thread_->Stop();
  stopped_ = true;
  StopProcessing();
}

void Consumer::StopProcessing() {
  // A lease another worker took meanwhile (this one was not polled) is lost, not handed on:
  // its processor cannot checkpoint any more.
  while (!tasks_.empty()) {
    const bool mine =
        leases_->Owner(options_.application_name, tasks_.back()->shard_id) == options_.worker_id;
    DropShard(tasks_.size() - 1, mine ? ShutdownReason::kRequested : ShutdownReason::kLeaseLost,
              mine);
  }
  leases_->RemoveWorker(options_.application_name, options_.worker_id);
}

void Consumer::FinishRequestedStop() {
  // The consumer's own thread cannot join itself: it stops processing, and idles until the
  // owner's Stop() (or the destructor) ends it.
  if (own_thread_.load(std::memory_order_relaxed)) {
    StopProcessing();
  } else {
    Stop();
  }
}

absl::Status Consumer::WriteCheckpoint(ShardTask& task, std::string_view value) {
  if (task.lease_lost) return ShutdownError(task.shard_id);
  if (leases_->Owner(options_.application_name, task.shard_id) != options_.worker_id) {
    // Another worker took the lease (this one missed its renewal): stop processing the
    // shard now rather than at the next lease pass, so that no two workers process it.
    task.lease_taken = true;
    return ShutdownError(task.shard_id);
  }
  // Before the parent's SHARD_END: until then no worker may lease the children, so the
  // seed cannot overwrite a checkpoint one of them wrote.
  if (value == kShardEndCheckpoint) SeedChildren(task.shard_id);
  absl::Status s =
      options_.checkpoint_store->PutCheckpoint(options_.application_name, task.shard_id, value);
  if (s.ok()) {
    task.checkpoint = std::string(value);
    task.blocked = false;
    if (task.at_shard_end) task.ended_checkpointed = true;
  }
  return s;
}

size_t Consumer::Poll() {
  if (stopped_ || stop_requested_) return 0;
  const int64_t now_ms = clock_.NowMillis();
  if (now_ms >= next_refresh_ms_) {
    next_refresh_ms_ = detail::AddMillis(now_ms, options_.lease_refresh_interval);
    status_ = absl::OkStatus();
    RefreshLeases(now_ms);
  }
  size_t delivered = 0;
  for (std::size_t i = 0; i < tasks_.size() && !stop_requested_;) {
    delivered += static_cast<size_t>(PollShard(*tasks_[i], now_ms));
    if (tasks_[i]->lease_taken) {
      DropShard(i, ShutdownReason::kLeaseLost, false);
      continue;
    }
    if (tasks_[i]->ended) {
      // Done with the shard: with SHARD_END checkpointed its children become eligible; if
      // the processor did not checkpoint, the lease goes back and the shard is processed
      // again from its last checkpoint.
      leases_->Release(options_.application_name, tasks_[i]->shard_id, options_.worker_id);
      tasks_.erase(tasks_.begin() + static_cast<std::ptrdiff_t>(i));
      next_refresh_ms_ = INT64_MIN;  // look for children now
      continue;
    }
    ++i;
  }
  if (stop_requested_) FinishRequestedStop();
  return delivered;
}

int Consumer::PollShard(ShardTask& task, int64_t now_ms) {
  if (task.blocked || now_ms < task.throttled_until_ms) return 0;
  return options_.mode == ConsumerMode::kPolling ? PollPolling(task, now_ms)
                                                 : PollFanOut(task, now_ms);
}

void Consumer::Deliver(ShardTask& task, std::span<const Record> records, int64_t behind,
                       uint64_t missed) {
  if (records.empty() && missed == 0) return;
  const std::span<const Record> kinesis_records = records;
  // Checkpoint() names the last Kinesis record read, even when it gave no user record.
  if (!records.empty()) {
    task.last_delivered = records.back().sequence_number;
    task.last_sub.reset();
  }
  std::span<const UserRecord> user_records;
  if (options_.deaggregator != nullptr) {
    task.user_records.clear();
    options_.deaggregator->Decode(records, task.range, task.user_records);
    if (task.skip_through && !records.empty()) {
      // Resumed at the checkpointed aggregate: drop the user records already processed.
      const auto& through = *task.skip_through;  // (sequence number, last sub-number)
      std::erase_if(task.user_records, [&](const UserRecord& u) {
        return u.sequence_number == through.first && u.sub_sequence_number <= through.second;
      });
      task.skip_through.reset();
    }
    if (!task.user_records.empty() && task.user_records.back().aggregated &&
        task.user_records.back().sequence_number == task.last_delivered) {
      task.last_sub = task.user_records.back().sub_sequence_number;
    }
    task.user_views.assign(task.user_records.begin(), task.user_records.end());
    records = task.user_views;
    user_records = task.user_records;
    if (records.empty() && missed == 0) return;
  }
  Checkpointer cp(this, &task);
  // A batch whose processing threw counts as delivered (the KCL's rule): the checkpoint
  // decides what a restart delivers again.
  task.batch = kinesis_records;
  CallProcessor(this, status_, "RecordProcessor::ProcessRecords", task.shard_id, [&] {
    task.processor->ProcessRecords(ProcessRecordsInput{records, behind, missed, user_records}, cp);
  });
  task.batch = {};
  task.delivered += static_cast<int>(records.size());
}

void Consumer::EndShard(ShardTask& task) {
  task.at_shard_end = true;
  Checkpointer cp(this, &task);
  CallProcessor(this, status_, "RecordProcessor::ShardEnded", task.shard_id,
                [&] { task.processor->ShardEnded(cp); });
  task.at_shard_end = false;
  task.ended = true;
}

std::optional<StartingPosition> Consumer::StartOf(ShardTask& task) {
  task.skip_through.reset();
  if (task.checkpoint == kLatestCheckpoint) {
    return StartingPosition{ShardIteratorType::kLatest, {}, {}};
  }
  if (task.checkpoint == kTrimHorizonCheckpoint) {
    return StartingPosition{ShardIteratorType::kTrimHorizon, {}, {}};
  }
  if (task.checkpoint == kAtTimestampCheckpoint && options_.initial_timestamp) {
    return StartingPosition{ShardIteratorType::kAtTimestamp, {}, options_.initial_timestamp};
  }
  // Without a timestamp in the options, an AT_TIMESTAMP checkpoint is the initial position.
  if (task.checkpoint && task.checkpoint != kShardEndCheckpoint &&
      !IsPositionCheckpoint(task.checkpoint)) {
    if (SequenceNumber::Parse(*task.checkpoint).ok()) {
      return StartingPosition{ShardIteratorType::kAfterSequenceNumber, *task.checkpoint, {}};
    }
    // A user record inside an aggregate: read the aggregate again and skip what was
    // processed (without a deaggregator the whole aggregate is delivered again).
    if (const auto sub = SplitSubRecordCheckpoint(*task.checkpoint)) {
      if (absl::StatusOr<SequenceNumber> number = SequenceNumber::Parse(sub->first); number.ok()) {
        if (options_.deaggregator != nullptr) task.skip_through = {{*number, sub->second}};
        return StartingPosition{ShardIteratorType::kAtSequenceNumber, std::string(sub->first), {}};
      }
    }
    // Not a sequence number at all (a damaged store).
    if (!OnUnusableCheckpoint(task, InvalidArgumentError("it is not a sequence number."))) {
      return std::nullopt;
    }
  }
  if (task.after_parents) return StartingPosition{ShardIteratorType::kTrimHorizon, {}, {}};
  return StartingPosition{options_.initial_position, {}, options_.initial_timestamp};
}

bool Consumer::OnUnusableCheckpoint(ShardTask& task, const absl::Status& cause) {
  if (options_.invalid_checkpoint == InvalidCheckpointPolicy::kReport) {
    status_ =
        InvalidCheckpointError(options_.application_name, task.shard_id, *task.checkpoint, cause);
    task.blocked = true;
    return false;
  }
  ++invalid_checkpoints_;
  task.checkpoint.reset();
  return true;
}

int Consumer::PollPolling(ShardTask& task, int64_t now_ms) {
  if (!task.cursor || (!task.cursor->started() && !task.cursor->ended())) {
    std::optional<StartingPosition> start = StartOf(task);
    if (!start) return 0;
    task.cursor.emplace(task.shard_id);
    // StartOf gives sequence numbers only for checkpoints.
    const bool from_checkpoint = start->type == ShardIteratorType::kAfterSequenceNumber ||
                                 start->type == ShardIteratorType::kAtSequenceNumber;
    absl::Status s = task.cursor->Start(
        stream_, *start, task.after_parents && start->type == ShardIteratorType::kTrimHorizon);
    if (!s.ok()) {
      task.cursor.reset();
      if (from_checkpoint && IsInvalidArgumentException(s)) {
        // The stream does not recognise the checkpoint (another stream, a damaged number).
        return OnUnusableCheckpoint(task, s) ? PollPolling(task, now_ms) : 0;
      }
      status_ = s;
      task.throttled_until_ms = now_ms + 200;
      return 0;
    }
  }
  absl::Status s = task.cursor->Read(stream_, task.result, options_.max_records);
  if (!s.ok()) {
    // Throttled (the service's advice: back off, then retry) or another transient error.
    if (!IsProvisionedThroughputExceededException(s)) status_ = s;
    task.throttled_until_ms = now_ms + 200;
    return 0;
  }
  const uint64_t missed = task.cursor->missed() - task.missed_seen;
  task.missed_seen = task.cursor->missed();
  const int before = task.delivered;
  Deliver(task, task.result.records, task.result.millis_behind_latest, missed);
  if (task.cursor->ended()) EndShard(task);
  return task.delivered - before;
}

int Consumer::PollFanOut(ShardTask& task, int64_t now_ms) {
  if (!task.subscription) {
    if (now_ms < task.subscribe_after_ms) return 0;
    StartingPosition start;
    bool from_checkpoint = false;
    if (task.continuation) {
      start = {ShardIteratorType::kAtSequenceNumber, task.continuation->ToString(), {}};
    } else {
      std::optional<StartingPosition> s = StartOf(task);
      if (!s) return 0;
      start = *s;
      from_checkpoint = start.type == ShardIteratorType::kAfterSequenceNumber ||
                        start.type == ShardIteratorType::kAtSequenceNumber;
      if (task.after_parents && start.type == ShardIteratorType::kTrimHorizon &&
          task.first_record) {
        // From the first record, so that what was trimmed counts as missed.
        start = {ShardIteratorType::kAtSequenceNumber, task.first_record->ToString(), {}};
      }
    }
    ShardTask* t = &task;
    auto sub = local_stream_->SubscribeToShard(
        SubscribeToShardRequest{options_.stream_consumer_name, task.shard_id, start},
        [this, t](const SubscribeToShardEvent& e) {
          Deliver(*t, e.records, e.millis_behind_latest, e.missed_records);
          t->continuation = e.continuation_sequence_number;
          if (e.end == SubscriptionEnd::kShardEnded || e.end == SubscriptionEnd::kShardNotFound) {
            EndShard(*t);
          } else if (e.end != SubscriptionEnd::kNone) {
            t->resubscribe = true;
          }
        },
        SubscriptionOptions{.lifetime = absl::Minutes(5),
                            .wait = WaitStrategy::kBlock,
                            .max_records_per_event = options_.max_records});
    if (!sub.ok()) {
      if (IsResourceNotFoundException(sub.status()) &&
          local_stream_->DescribeStreamConsumer(options_.stream_consumer_name).ok()) {
        // The shard aged out of retention: what it held from where this task stood is
        // missed, when the stream still knows how many records it held.
        // (A continuation names the record before the next one.)
        const std::optional<uint64_t> next =
            task.continuation ? detail::NextRecordIndex(*task.continuation, /*after=*/true)
                              : detail::NextRecordIndex(start);
        Deliver(task, {}, 0, detail::UnreadOfExpired(*local_stream_, task.shard_id, next));
        EndShard(task);
        return 0;
      }
      if (from_checkpoint && IsInvalidArgumentException(sub.status())) {
        (void)OnUnusableCheckpoint(task, sub.status());  // restarted: at the next poll
        return 0;
      }
      // ResourceInUseException: the 5-second rule after a lease moved here; or the stream
      // consumer was deregistered (the application re-registers it): retry later.
      task.subscribe_after_ms = now_ms + 1000;
      return 0;
    }
    task.subscription = *std::move(sub);
  }
  const int before = task.delivered;
  task.subscription->Poll();
  if (task.resubscribe) {
    task.resubscribe = false;
    task.subscription.reset();
  }
  return task.delivered - before;
}

}  // namespace riffle
