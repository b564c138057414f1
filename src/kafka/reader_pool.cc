#include "kafka/reader_pool.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "fmt/format.h"

namespace riffle::kafka::detail {
namespace {

constexpr int64_t kIdleUnassignNs = int64_t{60} * 1'000'000'000;
// How long a broker holds a fetch that found nothing (fetch.wait.max.ms). A reader that is
// repositioned waits for such a fetch to return before fetching from the new position.
constexpr int kFetchWaitMaxMs = 100;
constexpr int64_t kSweepEveryNs = int64_t{1'000'000'000};

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::size_t MessageBytes(const rd_kafka_message_t& m) { return m.key_len + m.len; }

}  // namespace

struct ReaderPool::Slot {
  // Guarded by mu_.
  bool assigned = false;
  bool busy = false;
  int64_t next_offset = -1;
  int64_t last_used_ns = 0;
  // Owned by the read that holds the slot (busy).
  Reader* reader = nullptr;
  Queue queue;
  std::vector<rd_kafka_message_t*> held;     // consumed, not yet handed out, in order
  std::vector<rd_kafka_message_t*> scratch;  // consume_batch_queue's output
};

struct ReaderPool::Reader {
  Handle rk;
  std::vector<Slot> slots;  // one per partition
};

ReaderPool::ReaderPool(const StreamOptions& options, int partitions)
    : options_(options), partitions_(partitions) {}

ReaderPool::~ReaderPool() {
  for (auto& reader : readers_) {
    for (Slot& slot : reader->slots) {
      for (rd_kafka_message_t* m : slot.held) rd_kafka_message_destroy(m);
      slot.queue.reset();  // before the consumer is closed
    }
    rd_kafka_consumer_close(reader->rk.get());
  }
}

absl::StatusOr<ReaderPool::Slot*> ReaderPool::Acquire(int32_t partition, int64_t offset,
                                                      Positioning* positioning) {
  Slot* idle = nullptr;
  Slot* free_slot = nullptr;
  for (auto& reader : readers_) {
    Slot& slot = reader->slots[static_cast<std::size_t>(partition)];
    if (slot.busy) continue;
    if (!slot.assigned) {
      if (free_slot == nullptr) free_slot = &slot;
      continue;
    }
    if (slot.next_offset == offset) {
      *positioning = Positioning::kNone;
      slot.busy = true;
      return &slot;
    }
    if (idle == nullptr || slot.last_used_ns < idle->last_used_ns) idle = &slot;
  }
  Slot* chosen = nullptr;
  if (idle != nullptr) {
    *positioning = Positioning::kSeek;
    chosen = idle;
  } else if (free_slot != nullptr) {
    *positioning = Positioning::kAssign;
    chosen = free_slot;
  } else if (static_cast<int>(readers_.size()) < options_.max_readers_per_shard) {
    absl::StatusOr<Handle> rk =
        NewClient(RD_KAFKA_CONSUMER, options_,
                  {{"client.id", "riffle-reader"},
                   // Needed by assign(); the readers never join the group nor commit.
                   {"group.id", "riffle-reader"},
                   {"enable.auto.commit", "false"},
                   {"enable.auto.offset.store", "false"},
                   {"enable.partition.eof", "false"},
                   // An offset that retention removed reads from the oldest one left (the gap is
                   // reported as missed records).
                   {"auto.offset.reset", "earliest"},
                   {"fetch.wait.max.ms", std::to_string(kFetchWaitMaxMs)},
                   {"queued.max.messages.kbytes", "16384"}});
    if (!rk.ok()) return rk.status();
    auto reader = std::make_unique<Reader>();
    reader->rk = *std::move(rk);
    reader->slots.resize(static_cast<std::size_t>(partitions_));
    for (Slot& slot : reader->slots) slot.reader = reader.get();
    readers_.push_back(std::move(reader));
    *positioning = Positioning::kAssign;
    chosen = &readers_.back()->slots[static_cast<std::size_t>(partition)];
  } else {
    return ProvisionedThroughputExceededError(
        fmt::format("Rate exceeded for shard {} in stream {}: {} GetRecords calls are reading it "
                    "already (max_readers_per_shard).",
                    FormatShardId(static_cast<uint64_t>(partition)), options_.topic,
                    options_.max_readers_per_shard));
  }
  chosen->busy = true;
  chosen->assigned = true;
  return chosen;
}

absl::Status ReaderPool::Position(Slot& slot, int32_t partition, int64_t offset,
                                  Positioning positioning) {
  for (rd_kafka_message_t* m : slot.held) rd_kafka_message_destroy(m);
  slot.held.clear();
  rd_kafka_t* rk = slot.reader->rk.get();
  PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), options_.topic.c_str(), partition)->offset = offset;
  const std::string context =
      fmt::format("Reading shard {} in stream {} at offset {}",
                  FormatShardId(static_cast<uint64_t>(partition)), options_.topic, offset);
  if (positioning == Positioning::kAssign) {
    // The partition's own queue, taken off the consumer queue before anything is fetched.
    slot.queue.reset(rd_kafka_queue_get_partition(rk, options_.topic.c_str(), partition));
    if (!slot.queue) return KafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, context);
    rd_kafka_queue_forward(slot.queue.get(), nullptr);
    if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, list.get())) {
      slot.queue.reset();
      return KafkaError(e, context);
    }
    return absl::OkStatus();
  }
  // Waits until no message fetched for the old position can be delivered any more.
  if (rd_kafka_error_t* e = rd_kafka_seek_partitions(
          rk, list.get(), std::max(1, TimeoutMs(options_.request_timeout)))) {
    return KafkaError(e, context);
  }
  if (list->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaError(list->elems[0].err, context);
  }
  return absl::OkStatus();
}

void ReaderPool::Release(Slot& slot, bool positioned, int64_t next_offset) {
  std::lock_guard<std::mutex> lock(mu_);
  slot.busy = false;
  slot.last_used_ns = SteadyNs();
  if (!positioned) {
    // The consumer's position is unknown: the next read seeks (or assigns) again.
    slot.next_offset = -1;
    if (!slot.queue) slot.assigned = false;
    return;
  }
  slot.next_offset = next_offset;
}

void ReaderPool::Sweep() {
  std::vector<Slot*> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = SteadyNs();
    if (now < next_sweep_ns_) return;
    next_sweep_ns_ = now + kSweepEveryNs;
    for (auto& reader : readers_) {
      for (Slot& slot : reader->slots) {
        if (slot.assigned && !slot.busy && now - slot.last_used_ns > kIdleUnassignNs) {
          slot.busy = true;
          idle.push_back(&slot);
        }
      }
    }
  }
  for (Slot* slot : idle) {
    const auto partition = static_cast<int32_t>(slot - slot->reader->slots.data());
    PartitionList list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), options_.topic.c_str(), partition);
    for (rd_kafka_message_t* m : slot->held) rd_kafka_message_destroy(m);
    slot->held.clear();
    slot->queue.reset();
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(slot->reader->rk.get(), list.get())) {
      rd_kafka_error_destroy(e);
    }
    std::lock_guard<std::mutex> lock(mu_);
    slot->busy = false;
    slot->assigned = false;
    slot->next_offset = -1;
  }
}

absl::StatusOr<ReaderPool::Outcome> ReaderPool::Read(
    int32_t partition, int64_t offset, int limit, uint64_t max_bytes, absl::Duration wait,
    absl::FunctionRef<void(const rd_kafka_message_t&)> on_message) {
  Sweep();
  Positioning positioning = Positioning::kNone;
  Slot* slot = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<Slot*> acquired = Acquire(partition, offset, &positioning);
    if (!acquired.ok()) return acquired.status();
    slot = *acquired;
  }
  if (positioning != Positioning::kNone) {
    if (absl::Status s = Position(*slot, partition, offset, positioning); !s.ok()) {
      Release(*slot, false, offset);
      return s;
    }
  }
  rd_kafka_t* rk = slot->reader->rk.get();
  auto cached_high = [&] {
    int64_t low = -1, high = -1;
    if (rd_kafka_get_watermark_offsets(rk, options_.topic.c_str(), partition, &low, &high) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      return int64_t{-1};
    }
    return high < 0 ? int64_t{-1} : high;
  };

  Outcome out{offset, -1};
  int count = 0;
  uint64_t bytes = 0;
  absl::Status error;
  bool stop = false;
  std::vector<rd_kafka_message_t*> keep;  // stays empty unless a byte limit holds some back
  // Hands out one message or holds it back; destroys what it hands out or skips.
  auto take = [&](rd_kafka_message_t* m) {
    if (stop) {
      keep.push_back(m);
      return;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && count == 0 && error.ok()) {
        error = KafkaError(m->err, fmt::format("Reading shard {} in stream {}: {}",
                                               FormatShardId(static_cast<uint64_t>(partition)),
                                               options_.topic, rd_kafka_message_errstr(m)));
        stop = true;
      }
      rd_kafka_message_destroy(m);
      return;
    }
    if (m->offset < out.next_offset) {  // before the position: never handed out
      rd_kafka_message_destroy(m);
      return;
    }
    if (count > 0 && bytes + MessageBytes(*m) > max_bytes) {
      stop = true;
      keep.push_back(m);
      return;
    }
    on_message(*m);
    out.next_offset = m->offset + 1;
    bytes += MessageBytes(*m);
    ++count;
    if (count >= limit) stop = true;
    rd_kafka_message_destroy(m);
  };

  if (!slot->held.empty()) {
    std::vector<rd_kafka_message_t*> held;
    held.swap(slot->held);
    for (rd_kafka_message_t* m : held) take(m);
  }
  bool waited = false;
  if (slot->scratch.size() < static_cast<std::size_t>(limit)) {
    slot->scratch.resize(static_cast<std::size_t>(limit));
  }
  while (!stop) {
    const ssize_t n = rd_kafka_consume_batch_queue(slot->queue.get(), 0, slot->scratch.data(),
                                                   static_cast<std::size_t>(limit - count));
    if (n > 0) {
      for (ssize_t i = 0; i < n; ++i) take(slot->scratch[static_cast<std::size_t>(i)]);
      continue;
    }
    if (count > 0 || waited || wait <= absl::ZeroDuration()) break;
    const int64_t high = cached_high();
    if (high >= 0 && high <= offset) break;  // read to the partition's end as last fetched
    waited = true;
    // Just repositioned: a fetch for the old position may hold the new one back.
    const absl::Duration first_wait =
        positioning == Positioning::kNone ? wait : wait + absl::Milliseconds(kFetchWaitMaxMs);
    rd_kafka_message_t* m = rd_kafka_consume_queue(slot->queue.get(), TimeoutMs(first_wait));
    if (m == nullptr) break;
    take(m);
  }
  slot->held = std::move(keep);
  out.high_watermark = cached_high();
  Release(*slot, true, out.next_offset);
  if (!error.ok() && count == 0) return error;
  return out;
}

}  // namespace riffle::kafka::detail
