#include "kafka/core.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "riffle/detail/hash_key_cache.h"
#include "stream/request_checks.h"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace riffle::kafka::detail {
namespace {

constexpr uint64_t kMaxRecordSizeLimit = uint64_t{10} << 20;
constexpr int kMaxPartitions = 100'000;

// Stable across processes and hosts, so that sequence numbers and checkpoints written by
// one run are recognised by the next.
uint64_t TopicTag(std::string_view topic) {
  const std::string seed = fmt::format("riffle.kafka/{}", topic);
  return XXH3_64bits(seed.data(), seed.size()) % SequenceNumber::kMaxStreamTag + 1;
}

uint64_t NewSecret() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
}

bool IsTopicName(std::string_view topic) {
  if (topic.empty() || topic.size() > 249 || topic == "." || topic == "..") return false;
  return std::all_of(topic.begin(), topic.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

absl::Status Validate(const StreamOptions& o) {
  if (o.bootstrap_servers.empty()) {
    return InvalidArgumentError("BootstrapServers is required (host:port[,host:port...]).");
  }
  if (!IsTopicName(o.topic)) {
    return InvalidArgumentError(
        fmt::format("Topic '{}' is invalid: it must be 1 to 249 characters of [a-zA-Z0-9._-].",
                    o.topic.substr(0, 300)));
  }
  if (o.shard_count < 0 || o.shard_count > kMaxPartitions) {
    return InvalidArgumentError(fmt::format("ShardCount is {}; it must be between 0 and {}.",
                                            o.shard_count, kMaxPartitions));
  }
  if (o.replication_factor == 0 || o.replication_factor < -1) {
    return InvalidArgumentError(
        fmt::format("ReplicationFactor is {}; it must be -1 (the broker's default) or at least 1.",
                    o.replication_factor));
  }
  if (o.max_record_size_bytes < 1 || o.max_record_size_bytes > kMaxRecordSizeLimit) {
    return InvalidArgumentError(
        fmt::format("MaxRecordSizeBytes is {}; it must be between 1 and {} (10 MiB).",
                    o.max_record_size_bytes, kMaxRecordSizeLimit));
  }
  if (o.iterator_lifetime <= absl::ZeroDuration() || o.iterator_lifetime > absl::Hours(24 * 365)) {
    return InvalidArgumentError("IteratorLifetime must be positive and at most 365 days.");
  }
  if (o.delivery_timeout < absl::Milliseconds(1) || o.delivery_timeout > absl::Hours(24 * 24)) {
    return InvalidArgumentError("DeliveryTimeout must be between 1 ms and 24 days.");
  }
  if (o.linger < absl::ZeroDuration() || o.linger > absl::Seconds(900)) {
    return InvalidArgumentError("Linger must be between 0 and 900 s.");
  }
  if (o.read_wait < absl::ZeroDuration() || o.read_wait > absl::Minutes(5)) {
    return InvalidArgumentError("ReadWait must be between 0 and 5 minutes.");
  }
  if (o.request_timeout < absl::Milliseconds(1) || o.request_timeout > absl::Hours(1)) {
    return InvalidArgumentError("RequestTimeout must be between 1 ms and 1 hour.");
  }
  if (o.max_readers_per_shard < 1 || o.max_readers_per_shard > 64) {
    return InvalidArgumentError(fmt::format(
        "MaxReadersPerShard is {}; it must be between 1 and 64.", o.max_readers_per_shard));
  }
  return absl::OkStatus();
}

}  // namespace

Core::Core(StreamOptions options, Clock* clock, int partitions)
    : options_(std::move(options)),
      clock_(clock),
      tag_(TopicTag(options_.topic)),
      secret_(NewSecret()),
      partitions_(partitions),
      layout_(partitions) {}

absl::StatusOr<std::unique_ptr<Core>> Core::Create(StreamOptions options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  Clock* clock = options.clock != nullptr ? options.clock : &SystemClock::Default();
  std::unique_ptr<Core> core(new Core(std::move(options), clock, 1));
  if (absl::Status s = core->Connect(); !s.ok()) return s;
  return core;
}

absl::Status Core::Connect() {
  const StreamOptions& o = options_;
  absl::StatusOr<Handle> producer = NewClient(
      RD_KAFKA_PRODUCER, o,
      {{"client.id", "riffle-producer"},
       {"enable.idempotence", "true"},
       {"acks", "all"},
       {"message.timeout.ms", std::to_string(std::max(1, TimeoutMs(o.delivery_timeout)))},
       {"linger.ms", std::to_string(TimeoutMs(o.linger))},
       // Room for the largest record and the request around it.
       {"message.max.bytes",
        std::to_string(std::max<uint64_t>(1'000'000, o.max_record_size_bytes + (64 << 10)))}},
      [this](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_opaque(conf, this);
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
        rd_kafka_conf_set_background_event_cb(conf, &Core::OnEvent);
      });
  if (!producer.ok()) return producer.status();
  producer_ = *std::move(producer);
  rd_kafka_t* rk = producer_.get();
  // Delivery reports go to librdkafka's background thread (see core.h).
  main_queue_.reset(rd_kafka_queue_get_main(rk));
  background_queue_.reset(rd_kafka_queue_get_background(rk));
  rd_kafka_queue_forward(main_queue_.get(), background_queue_.get());

  const int timeout_ms = std::max(1, TimeoutMs(o.request_timeout));
  const std::string context =
      fmt::format("Looking up topic {} at {}", o.topic, o.bootstrap_servers);
  // All topics: a metadata request naming a missing topic may create it on the broker.
  auto count_partitions = [&]() -> absl::StatusOr<int> {
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaError(err, context);
    int count = 0;
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (o.topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        count = md->topics[i].partition_cnt;
      }
    }
    rd_kafka_metadata_destroy(md);
    return count;
  };
  absl::StatusOr<int> count = count_partitions();
  if (!count.ok()) return count.status();
  if (*count == 0) {
    if (o.shard_count == 0) {
      return ResourceNotFoundError(fmt::format(
          "Stream {} not found: the cluster at {} has no topic {} (set ShardCount to create it).",
          o.topic, o.bootstrap_servers, o.topic));
    }
    char error[512];
    rd_kafka_NewTopic_t* topic = rd_kafka_NewTopic_new(o.topic.c_str(), o.shard_count,
                                                       o.replication_factor, error, sizeof(error));
    if (topic == nullptr) return InvalidArgumentError(error);
    Queue queue(rd_kafka_queue_new(rk));
    rd_kafka_AdminOptions_t* admin = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(admin, timeout_ms, error, sizeof(error));
    rd_kafka_CreateTopics(rk, &topic, 1, admin, queue.get());
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue.get(), timeout_ms + 1000);
    rd_kafka_AdminOptions_destroy(admin);
    rd_kafka_NewTopic_destroy(topic);
    const std::string create_context = fmt::format("Creating topic {}", o.topic);
    if (event == nullptr) return KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, create_context);
    absl::Status created;
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      created = KafkaError(rd_kafka_event_error(event), create_context);
    } else if (const rd_kafka_CreateTopics_result_t* r =
                   rd_kafka_event_CreateTopics_result(event)) {
      std::size_t n = 0;
      const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(r, &n);
      for (std::size_t i = 0; i < n; ++i) {
        const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          const char* text = rd_kafka_topic_result_error_string(results[i]);
          created = KafkaError(err, fmt::format("{}: {}", create_context, text ? text : ""));
        }
      }
    }
    rd_kafka_event_destroy(event);
    if (!created.ok()) return created;
    // Metadata catches up with a new topic shortly after.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while ((count = count_partitions()).ok() && *count == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!count.ok()) return count.status();
    if (*count == 0) return KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, create_context);
  } else if (o.shard_count != 0 && *count != o.shard_count) {
    return InvalidArgumentError(fmt::format(
        "ShardCount is {} but topic {} has {} partitions: the hash key ranges follow the "
        "partition count, so it cannot differ (use 0 to take the topic's).",
        o.shard_count, o.topic, *count));
  }
  if (*count > kMaxPartitions) {
    return InvalidArgumentError(fmt::format("Topic {} has {} partitions; at most {} are supported.",
                                            o.topic, *count, kMaxPartitions));
  }
  partitions_ = *count;
  layout_ = UniformLayout(partitions_);
  shard_ids_.clear();
  for (int i = 0; i < partitions_; ++i)
    shard_ids_.push_back(FormatShardId(static_cast<uint64_t>(i)));
  topic_handle_ = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  readers_ = std::make_unique<ReaderPool>(options_, partitions_);
  return absl::OkStatus();
}

Core::~Core() {
  if (producer_) {
    // Every record is reported within the delivery timeout; then nothing refers to a batch.
    rd_kafka_flush(producer_.get(), std::max(1, TimeoutMs(options_.delivery_timeout)));
    rd_kafka_purge(producer_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    (void)WaitAsync(absl::InfiniteDuration());
  }
  for (PutBatch* b : TakeCompleted()) delete b;
  readers_.reset();
  if (topic_handle_ != nullptr) rd_kafka_topic_destroy(topic_handle_);
  main_queue_.reset();
  background_queue_.reset();
  producer_.reset();
}

// ---- Puts ----

absl::StatusOr<int32_t> Core::Route(std::string_view partition_key, std::size_t data_bytes,
                                    std::string_view explicit_hash_key) const {
  if (absl::Status s = ValidatePartitionKey(partition_key); !s.ok()) return s;
  const uint64_t size = partition_key.size() + data_bytes;
  if (size > options_.max_record_size_bytes) {
    return InvalidArgumentError(
        fmt::format("Record size is {} bytes (partition key + data); it must be at most {} bytes "
                    "(MaxRecordSizeBytes).",
                    size, options_.max_record_size_bytes));
  }
  HashKey hash_key;
  if (!explicit_hash_key.empty()) {
    absl::StatusOr<HashKey> parsed = ParseHashKey(explicit_hash_key, "ExplicitHashKey");
    if (!parsed.ok()) return parsed.status();
    hash_key = *parsed;
  } else if (options_.routing == RoutingMode::kMd5) {
    hash_key = riffle::detail::CachedMd5HashKey(partition_key);
  } else {
    hash_key = Xxh3HashKey(partition_key);
  }
  return layout_.ShardIndex(hash_key);
}

void Core::Send(PutBatch& batch, std::size_t i, const OutRecord& record) {
  PutSlot& slot = batch.slots[i];
  slot.partition = record.partition;
  if (has_fatal_.load(std::memory_order_acquire)) {
    Refuse(batch, i, Fatal());
    return;
  }
  rd_kafka_headers_t* headers = nullptr;
  if (!record.seq_header.empty()) {
    headers = rd_kafka_headers_new(2);
    rd_kafka_header_add(headers, kSeqHeader, -1, record.seq_header.data(),
                        static_cast<ssize_t>(record.seq_header.size()));
    rd_kafka_header_add(headers, kBatchHeader, -1, record.batch_header.data(),
                        static_cast<ssize_t>(record.batch_header.size()));
  }
  // Never a null value: on a compacted topic that would be a tombstone.
  static constexpr char kEmpty[1] = {0};
  const char* data = record.data.empty() ? kEmpty : record.data.data();
  const rd_kafka_resp_err_t err = rd_kafka_producev(
      producer_.get(), RD_KAFKA_V_RKT(topic_handle_), RD_KAFKA_V_PARTITION(record.partition),
      RD_KAFKA_V_KEY(record.key.data(), record.key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(data), record.data.size()),
      RD_KAFKA_V_TIMESTAMP(record.timestamp_ms),
      // Copy (the caller's views end with the call); wait while the local buffer is full
      // (the background thread drains delivery reports, so the wait ends).
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_BLOCK), RD_KAFKA_V_OPAQUE(&slot),
      RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (headers != nullptr) rd_kafka_headers_destroy(headers);  // not taken on failure
    // The error event that reports the cause may not have been served yet.
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      Refuse(batch, i, Fatal());
      return;
    }
    slot.err = err;
    Complete(batch);
  }
}

absl::Status Core::Fatal() {
  std::lock_guard<std::mutex> lock(fatal_mu_);
  if (!has_fatal_.load(std::memory_order_relaxed)) {
    char text[512];
    const rd_kafka_resp_err_t err = rd_kafka_fatal_error(producer_.get(), text, sizeof(text));
    fatal_ = FatalKafkaError(
        err, fmt::format("The producer of stream {} failed and must be recreated: {}",
                         options_.topic, text));
    has_fatal_.store(true, std::memory_order_release);
  }
  return fatal_;
}

void Core::TEST_FailProducer(rd_kafka_resp_err_t err) {
  rd_kafka_test_fatal_error(producer_.get(), err, "TEST_FailProducer");
}

void Core::Refuse(PutBatch& batch, std::size_t i, absl::Status why) {
  batch.slots[i].refused = std::move(why);
  Complete(batch);
}

void Core::Complete(PutBatch& batch) {
  // acq_rel: the last completer sees every slot the others filled.
  if (batch.remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (batch.sync) {
    std::lock_guard<std::mutex> lock(batch.mu);
    batch.done = true;
    batch.cv.notify_one();  // under the lock: the waiter may free the batch once it has it
    return;
  }
  std::lock_guard<std::mutex> lock(async_mu_);
  completed_.push_back(&batch);
  --pending_batches_;
  pending_records_.fetch_sub(batch.slots.size(), std::memory_order_relaxed);
  async_cv_.notify_all();
}

void Core::Wait(PutBatch& batch) {
  std::unique_lock<std::mutex> lock(batch.mu);
  batch.cv.wait(lock, [&] { return batch.done; });
}

void Core::BeginAsync(PutBatch& batch) {
  batch.sync = false;
  std::lock_guard<std::mutex> lock(async_mu_);
  ++pending_batches_;
  pending_records_.fetch_add(batch.slots.size(), std::memory_order_relaxed);
}

std::vector<PutBatch*> Core::TakeCompleted() {
  std::vector<PutBatch*> out;
  std::lock_guard<std::mutex> lock(async_mu_);
  out.swap(completed_);
  return out;
}

void Core::ReturnCompleted(std::span<PutBatch* const> batches) {
  std::lock_guard<std::mutex> lock(async_mu_);
  completed_.insert(completed_.begin(), batches.begin(), batches.end());
}

bool Core::WaitAsync(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(async_mu_);
  auto idle = [&] { return pending_batches_ == 0; };
  if (timeout == absl::InfiniteDuration()) {
    async_cv_.wait(lock, idle);
    return true;
  }
  return async_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), idle);
}

absl::Status Core::SlotStatus(const PutSlot& slot) const {
  if (!slot.refused.ok()) return slot.refused;
  if (slot.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaError(slot.err, fmt::format("Putting a record to shard {} in stream {}",
                                            shard_id(slot.partition), options_.topic));
  }
  if (slot.offset < 0) {
    return InternalFailureError(fmt::format(
        "The brokers acknowledged a record to shard {} in stream {} without its offset.",
        shard_id(slot.partition), options_.topic));
  }
  return absl::OkStatus();
}

PutRecordsResultEntry Core::ResultEntry(const PutSlot& slot) const {
  PutRecordsResultEntry entry;
  const absl::Status s = SlotStatus(slot);
  if (s.ok()) {
    entry.shard_id = shard_id(slot.partition);
    const auto offset = static_cast<uint64_t>(slot.offset);
    entry.sequence_number =
        SequenceNumber{tag_, static_cast<uint64_t>(slot.partition), offset, offset};
  } else {
    entry.error_code = ErrorName(s);  // interned: the view outlives `s`
    entry.error_message = ErrorMessage(s);
  }
  return entry;
}

void Core::OnEvent(rd_kafka_t* /*rk*/, rd_kafka_event_t* event, void* opaque) {
  Core& core = *static_cast<Core*>(opaque);
  switch (rd_kafka_event_type(event)) {
    case RD_KAFKA_EVENT_DR: {
      // A batch the broker acknowledged without its offsets (DUPLICATE_SEQUENCE_NUMBER) is
      // numbered from -1: its first message gets -1, the next ones 0, 1, 2, ..., numbers of
      // other records. Every message of such a run is reported without an offset. (Empty
      // unless that happens: no allocation on the usual path.)
      std::vector<std::pair<int32_t, int64_t>> unknown_runs;  // partition, next fake offset
      while (const rd_kafka_message_t* m = rd_kafka_event_message_next(event)) {
        auto* slot = static_cast<PutSlot*>(m->_private);
        if (m->err == RD_KAFKA_RESP_ERR__FATAL) slot->refused = core.Fatal();
        slot->err = m->err;
        slot->offset = m->offset;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          auto run = std::find_if(unknown_runs.begin(), unknown_runs.end(),
                                  [&](const auto& r) { return r.first == m->partition; });
          if (m->offset < 0) {
            if (run == unknown_runs.end()) {
              unknown_runs.emplace_back(m->partition, 0);
            } else {
              run->second = 0;
            }
          } else if (run != unknown_runs.end()) {
            if (run->second == m->offset) {
              slot->offset = -1;
              ++run->second;
            } else {
              unknown_runs.erase(run);  // a batch with its own offsets
            }
          }
        }
        core.Complete(*slot->batch);
      }
      break;
    }
    case RD_KAFKA_EVENT_ERROR:
      if (rd_kafka_event_error_is_fatal(event)) (void)core.Fatal();
      break;
    default:
      break;
  }
  rd_kafka_event_destroy(event);
}

// ---- Iterators ----

uint64_t Core::IteratorCheck(const ShardIterator& it) const {
  const uint64_t fields[6] = {it.stream_tag,
                              it.shard_index,
                              it.position,
                              it.next_record_index,
                              it.next_record_index_known ? uint64_t{1} : uint64_t{0},
                              static_cast<uint64_t>(it.issued_at_ms)};
  return XXH3_64bits_withSeed(fields, sizeof(fields), secret_);
}

ShardIterator Core::MakeIterator(uint64_t shard, int64_t offset, int64_t now_ms) const {
  ShardIterator it;  // fields by name: the struct may gain fields
  it.stream_tag = tag_;
  it.shard_index = shard;
  it.position = static_cast<uint64_t>(offset);
  it.next_record_index = it.position;  // an offset is both
  it.next_record_index_known = true;
  it.issued_at_ms = now_ms;
  it.check = IteratorCheck(it);
  return it;
}

bool Core::Issued(const ShardIterator& it) const {
  return it.stream_tag == tag_ && it.check == IteratorCheck(it) &&
         it.position == it.next_record_index && it.next_record_index_known;
}

absl::Status Core::CheckIterator(const ShardIterator& it, int64_t now_ms) const {
  if (!Issued(it)) return riffle::detail::IteratorNotIssuedError();
  if (absl::Status s = riffle::detail::IteratorAgeError(
          it, now_ms, absl::ToInt64Milliseconds(options_.iterator_lifetime));
      !s.ok()) {
    return s;
  }
  if (it.shard_index >= static_cast<uint64_t>(partitions_)) {
    return ResourceNotFoundError(fmt::format("Shard {} in stream {} does not exist.",
                                             FormatShardId(it.shard_index), options_.topic));
  }
  return absl::OkStatus();
}

// ---- Offsets ----

absl::StatusOr<int64_t> Core::ListOffset(int32_t partition, int64_t timestamp,
                                         std::string_view context, int timeout_ms) const {
  PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), options_.topic.c_str(), partition)->offset =
      timestamp;
  rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(
      producer_.get(), list.get(),
      std::max(1, timeout_ms >= 0 ? timeout_ms : TimeoutMs(options_.request_timeout)));
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaError(err, context);
  return list->elems[0].offset;
}

absl::StatusOr<std::pair<int64_t, int64_t>> Core::Watermarks(int32_t partition) const {
  // Two ListOffsets requests (the protocol's EARLIEST and LATEST timestamps) instead of
  // rd_kafka_query_watermark_offsets: before librdkafka 2.3 that call ignores its timeout
  // and waits for as long as the partition's leader is down.
  const std::string context = fmt::format("Reading the offsets of shard {} in stream {}",
                                          shard_id(partition), options_.topic);
  // One request_timeout for both: the second lookup gets what the first left.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(TimeoutMs(options_.request_timeout));
  auto left_ms = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
               .count()));
  };
  absl::StatusOr<int64_t> low =
      ListOffset(partition, RD_KAFKA_OFFSET_BEGINNING, context, left_ms());
  if (!low.ok()) return low.status();
  absl::StatusOr<int64_t> high = ListOffset(partition, RD_KAFKA_OFFSET_END, context, left_ms());
  if (!high.ok()) return high.status();
  return std::make_pair(*low, *high);
}

absl::StatusOr<int64_t> Core::OffsetForTime(int32_t partition, int64_t ms) const {
  absl::StatusOr<int64_t> offset =
      ListOffset(partition, ms,
                 fmt::format("Looking up time {} in shard {} of stream {}", ms, shard_id(partition),
                             options_.topic));
  if (!offset.ok()) return offset.status();
  return *offset < 0 ? int64_t{-1} : *offset;
}

}  // namespace riffle::kafka::detail
