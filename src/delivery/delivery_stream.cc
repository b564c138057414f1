// DeliveryStream: options, the put path (Ingest), buffering and sealing, the delivery
// thread and Close(). The pump (processing, compression, sink I/O, retries, error output)
// is in delivery_pump.cc.
#include "riffle/delivery_stream.h"

#include <algorithm>
#include <optional>

#include "common/names.h"
#include "delivery/delivery_stream_impl.h"
#include "fmt/format.h"

namespace riffle {
namespace {

constexpr std::string_view kStreamSourceMessage =
    "This operation is not permitted on KinesisStreamAsSource delivery stream type.";
constexpr std::string_view kThrottleCode = kServiceUnavailableException;
constexpr std::string_view kThrottleMessage = "Slow down.";
constexpr size_t kMaxFreeBatches = 4;
constexpr size_t kMaxPartitionValueBytes = 512;

// Appends the size of `part` (8 bytes), then `part`: a partition id that cannot be read
// two ways.
void AppendIdPart(std::string_view part, std::string& id) {
  const uint64_t size = part.size();
  id.append(reinterpret_cast<const char*>(&size), sizeof size).append(part);
}

absl::Status CheckRange(std::string_view parameter, int64_t value, int64_t low, int64_t high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return InvalidArgumentError(
      fmt::format("{} is {}; it must be between {} and {}.", parameter, value, low, high));
}

absl::Status ValidateOptions(const DeliveryStreamOptions& o) {
  const std::string& name = o.delivery_stream_name;
  if (name.empty() || name.size() > 64) {
    return InvalidArgumentError(fmt::format(
        "DeliveryStreamName is {} characters; it must be between 1 and 64.", name.size()));
  }
  for (const char c : name) {
    if (!detail::IsNameChar(c)) {
      return InvalidArgumentError(fmt::format(
          "DeliveryStreamName '{}' contains '{}'; it must match [a-zA-Z0-9_.-]+.", name, c));
    }
  }
  if (o.sink == nullptr) {
    return InvalidArgumentError("Sink is null; a DeliveryStream needs a destination Sink.");
  }
  if (const auto* s = std::get_if<StreamSource>(&o.source); s != nullptr && s->stream == nullptr) {
    return InvalidArgumentError(
        "StreamSource.stream is null; a KinesisStreamAsSource delivery stream needs a Stream.");
  }
  absl::Status status;
  if (!(status = CheckRange("Version", o.version, 1, 1'000'000'000)).ok() ||
      !(status = CheckRange("BufferingHints.SizeInMBs", o.buffering_hints.size_in_mbs, 1, 128))
           .ok() ||
      !(status = CheckRange("BufferingHints.IntervalInSeconds",
                            o.buffering_hints.interval_in_seconds, 0, 900))
           .ok() ||
      !(status = CheckRange("RetryOptions.DurationInSeconds", o.retry_options.duration_in_seconds,
                            0, 7200))
           .ok() ||
      !(status = CheckRange("CompressionLevel", o.compression_level, 1, 9)).ok() ||
      !(status = CheckRange("ProcessorRetries", o.processor_retries, 0, 300)).ok() ||
      !(status = CheckRange("MaxActivePartitions", o.max_active_partitions, 1, 5000)).ok() ||
      !(status = CheckRange("MaxBufferedBytes", o.max_buffered_bytes, 1, int64_t{1} << 40)).ok()) {
    return status;
  }
  if (o.retry_options.initial_backoff <= absl::ZeroDuration() ||
      o.retry_options.max_backoff < o.retry_options.initial_backoff) {
    return InvalidArgumentError(
        fmt::format("RetryOptions backoff is initial {} / max {}; it needs 0 < initial_backoff <= "
                    "max_backoff.",
                    absl::FormatDuration(o.retry_options.initial_backoff),
                    absl::FormatDuration(o.retry_options.max_backoff)));
  }
  if (o.source_poll_interval < absl::Milliseconds(1) || o.source_poll_interval > absl::Hours(1)) {
    return InvalidArgumentError(
        fmt::format("SourcePollInterval is {}; it must be between 1ms and 1h.",
                    absl::FormatDuration(o.source_poll_interval)));
  }
  if (static_cast<int>(o.compression) < 0 ||
      static_cast<int>(o.compression) > static_cast<int>(CompressionFormat::kHadoopSnappy)) {
    return InvalidArgumentError(fmt::format("CompressionFormat is {}; it is not a known format.",
                                            static_cast<int>(o.compression)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view DeliveryStreamStatusName(DeliveryStreamStatus status) {
  switch (status) {
    case DeliveryStreamStatus::kCreating:
      return "CREATING";
    case DeliveryStreamStatus::kActive:
      return "ACTIVE";
    case DeliveryStreamStatus::kDeleting:
      return "DELETING";
  }
  return "UNKNOWN";
}

void PartitionKeys::Set(std::string_view name, std::string_view value) {
  for (std::size_t i = 0; i < size_; ++i) {
    if (values_[i].first == name) {
      values_[i].second.assign(value);
      return;
    }
  }
  if (size_ == values_.size()) values_.emplace_back();
  values_[size_].first.assign(name);
  values_[size_].second.assign(value);
  ++size_;
}

namespace {

struct Prefixes {
  detail::PrefixTemplate prefix;
  detail::PrefixTemplate error_prefix;
};

// The options' Prefix and ErrorOutputPrefix, parsed and checked against the service's rules
// and against dynamic partitioning.
absl::StatusOr<Prefixes> ParsePrefixes(const DeliveryStreamOptions& options) {
  absl::StatusOr<detail::PrefixTemplate> prefix =
      detail::PrefixTemplate::Parse(options.prefix, "Prefix", /*is_error_prefix=*/false);
  if (!prefix.ok()) return prefix.status();
  // Without an ErrorOutputPrefix, failures go under the type of failure and the hour; as
  // the service evaluates it, a Prefix without expressions comes first.
  std::string default_error_prefix;
  if (options.error_output_prefix.empty()) {
    if (options.prefix.find("!{") == std::string::npos) default_error_prefix = options.prefix;
    default_error_prefix += "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/";
  }
  absl::StatusOr<detail::PrefixTemplate> error_prefix = detail::PrefixTemplate::Parse(
      options.error_output_prefix.empty() ? std::string_view(default_error_prefix)
                                          : std::string_view(options.error_output_prefix),
      "ErrorOutputPrefix", /*is_error_prefix=*/true);
  if (!error_prefix.ok()) return error_prefix.status();
  if (absl::Status s = prefix->CheckEvaluatedLength("Prefix"); !s.ok()) return s;
  if (!options.error_output_prefix.empty()) {
    if (absl::Status s = error_prefix->CheckEvaluatedLength("ErrorOutputPrefix"); !s.ok()) {
      return s;
    }
  }
  const bool partitioning = static_cast<bool>(options.partition_key_function);
  if (partitioning && !prefix->uses_partition_keys()) {
    return InvalidArgumentError(
        "Prefix must contain a !{partitionKeyFromQuery:<name>} or "
        "!{partitionKeyFromLambda:<name>} expression when dynamic partitioning is enabled "
        "(partition_key_function is set).");
  }
  if (!partitioning && prefix->uses_partition_keys()) {
    return InvalidArgumentError(
        "Prefix uses !{partitionKeyFrom...} expressions but dynamic partitioning is not "
        "enabled (partition_key_function is empty).");
  }
  // A prefix whose every key the sink refuses would fail each delivery, then each write of
  // the error output: refused here instead (a FileSink or a directory bucket cannot hold
  // "/a/", "a/../b/" or ".riffle-tmp/").
  auto fits = [&options](const detail::PrefixTemplate& t, std::string_view parameter,
                         std::string_view text, const Sink* sink) -> absl::Status {
    if (sink == nullptr) return absl::OkStatus();
    std::string key;
    t.EvaluateSample(&key);
    std::mt19937_64 rng(0);
    detail::AppendObjectName(options.delivery_stream_name, options.version, absl::UnixEpoch(), rng,
                             "", &key);
    const absl::Status s = sink->CheckKey(key);
    if (s.ok()) return s;
    return InvalidArgumentError(
        fmt::format("{} '{}' makes object keys the sink cannot store (such as '{}'): {}", parameter,
                    text, key, ErrorMessage(s)));
  };
  if (absl::Status s = fits(*prefix, "Prefix", options.prefix, options.sink); !s.ok()) return s;
  if (absl::Status s =
          fits(*error_prefix, "ErrorOutputPrefix",
               options.error_output_prefix.empty() ? std::string_view(default_error_prefix)
                                                   : std::string_view(options.error_output_prefix),
               options.error_sink != nullptr ? options.error_sink : options.sink);
      !s.ok()) {
    return s;
  }
  return Prefixes{*std::move(prefix), *std::move(error_prefix)};
}

}  // namespace

absl::StatusOr<std::unique_ptr<DeliveryStream>> DeliveryStream::Create(
    DeliveryStreamOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  absl::StatusOr<Prefixes> prefixes = ParsePrefixes(options);
  if (!prefixes.ok()) return prefixes.status();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(prefixes->prefix),
                                     std::move(prefixes->error_prefix));
  if (impl->stream_source_) {
    // The service reads a source stream from LATEST as of the delivery stream's creation.
    if (absl::Status s = impl->InitStreamSource(); !s.ok()) return s;
  }
  return std::unique_ptr<DeliveryStream>(new DeliveryStream(std::move(impl)));
}

DeliveryStream::Impl::Impl(DeliveryStreamOptions options, detail::PrefixTemplate prefix,
                           detail::PrefixTemplate error_prefix)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock::Default()),
      error_sink_(options_.error_sink != nullptr ? options_.error_sink : options_.sink),
      prefix_(std::move(prefix)),
      error_prefix_(std::move(error_prefix)),
      stream_source_(std::holds_alternative<StreamSource>(options_.source)),
      size_hint_bytes_(static_cast<size_t>(options_.buffering_hints.size_in_mbs) << 20),
      interval_(absl::Seconds(options_.buffering_hints.interval_in_seconds)),
      retry_duration_(absl::Seconds(options_.retry_options.duration_in_seconds)),
      compressor_(
          std::make_unique<detail::Compressor>(options_.compression, options_.compression_level)),
      rng_(options_.random_seed ? *options_.random_seed : std::random_device{}()) {
  clock_subscription_ = clock_->OnTimeChange([this] {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  });
}

DeliveryStream::Impl::~Impl() {
  (void)Close();
  clock_subscription_.Reset();
}

absl::Status DeliveryStream::Impl::CheckCanPut() const {
  if (stream_source_) return InvalidArgumentError(kStreamSourceMessage);
  return absl::OkStatus();
}

absl::Status DeliveryStream::Impl::NotActiveErrorLocked() const {
  return ResourceInUseError(fmt::format("Firehose stream {} is {}; puts need an ACTIVE stream.",
                                        name(), DeliveryStreamStatusName(status_)));
}

absl::Status DeliveryStream::Impl::CheckActive() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (status_ != DeliveryStreamStatus::kActive) return NotActiveErrorLocked();
  return absl::OkStatus();
}

absl::StatusOr<DeliveryPutRecordResult> DeliveryStream::Impl::PutRecord(std::string_view data) {
  if (absl::Status s = CheckCanPut(); !s.ok()) return s;
  if (data.size() > kMaxDeliveryRecordBytes) {
    return InvalidArgumentError(
        fmt::format("Record.Data is {} bytes; it must be at most {} bytes (1,000 KiB).",
                    data.size(), kMaxDeliveryRecordBytes));
  }
  PutRecordBatchResponseEntry entry;
  int failed = 0;
  absl::Status s = IngestImpl(
      1,
      [data](size_t) {
        return IngestRecord{data, {}};
      },
      true, &entry, &failed);
  if (!s.ok()) return s;
  if (failed != 0) {
    return ServiceUnavailableError(fmt::format(
        "Slow down. Firehose stream {} holds max_buffered_bytes ({}) awaiting delivery.", name(),
        options_.max_buffered_bytes));
  }
  return DeliveryPutRecordResult{entry.record_id, false};
}

absl::Status DeliveryStream::Impl::PutRecordBatch(std::span<const std::string_view> records,
                                                  PutRecordBatchResult& out) {
  if (absl::Status s = CheckCanPut(); !s.ok()) return s;
  if (records.empty() || records.size() > kMaxPutRecordBatchRecords) {
    return InvalidArgumentError(
        fmt::format("Records has {} entries; it must have between 1 and {}.", records.size(),
                    kMaxPutRecordBatchRecords));
  }
  size_t total = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].size() > kMaxDeliveryRecordBytes) {
      return InvalidArgumentError(
          fmt::format("Records[{}].Data is {} bytes; it must be at most {} bytes (1,000 KiB).", i,
                      records[i].size(), kMaxDeliveryRecordBytes));
    }
    total += records[i].size();
  }
  if (total > kMaxPutRecordBatchBytes) {
    return InvalidArgumentError(
        fmt::format("Records total {} bytes; PutRecordBatch accepts at most {} bytes (4 MiB).",
                    total, kMaxPutRecordBatchBytes));
  }
  out.failed_put_count = 0;
  out.encrypted = false;
  out.request_responses.resize(records.size());
  return IngestImpl(
      records.size(),
      [records](size_t i) {
        return IngestRecord{records[i], {}};
      },
      true, out.request_responses.data(), &out.failed_put_count);
}

absl::Status DeliveryStream::Impl::Ingest(std::span<const IngestRecord> records) {
  ScratchLease scratch(*this);
  std::vector<PutRecordBatchResponseEntry>& entries = scratch->entries;
  entries.resize(records.size());
  int failed = 0;
  return IngestImpl(
      records.size(), [records](size_t i) { return records[i]; }, false, entries.data(), &failed);
}

DeliveryStream::Impl::ScratchLease::ScratchLease(Impl& impl) : impl_(impl) {
  std::lock_guard<std::mutex> lock(impl_.scratch_mu_);
  if (impl_.free_scratch_.empty()) {
    scratch_ = std::make_unique<IngestScratch>();
  } else {
    scratch_ = std::move(impl_.free_scratch_.back());
    impl_.free_scratch_.pop_back();
  }
}

DeliveryStream::Impl::ScratchLease::~ScratchLease() {
  std::lock_guard<std::mutex> lock(impl_.scratch_mu_);
  impl_.free_scratch_.push_back(std::move(scratch_));
}

absl::Status DeliveryStream::Impl::TEST_Ingest(std::string_view data,
                                               const RecordMetadata& metadata) {
  if (absl::Status s = CheckActive(); !s.ok()) return s;
  const IngestRecord record{data, metadata};
  return Ingest(std::span(&record, 1));
}

template <class GetRecord>
absl::Status DeliveryStream::Impl::IngestImpl(size_t count, GetRecord get, bool backpressure,
                                              PutRecordBatchResponseEntry* entries,
                                              int* failed_count) {
  const int64_t now_ms = clock_->NowMillis();
  const absl::Time now = absl::FromUnixMillis(now_ms);

  // Dynamic partitioning runs the user's function outside the lock, into scratch this call
  // leases from the stream (concurrent producers each get their own; a partition key
  // function that puts into another DeliveryStream uses that stream's). Reused scratch keeps
  // the steady state free of allocation for short keys.
  std::optional<ScratchLease> lease;
  const bool partitioning = static_cast<bool>(options_.partition_key_function);
  if (partitioning) {
    lease.emplace(*this);
    std::vector<IngestScratch::Partitioned>& scratch = (*lease)->partitioned;
    std::vector<uint32_t>& order = (*lease)->order;
    if (scratch.size() < count) scratch.resize(count);
    for (size_t i = 0; i < count; ++i) {
      const IngestRecord r = get(i);
      IngestScratch::Partitioned& p = scratch[i];
      p.keys.Clear();
      p.id.clear();
      p.error.clear();
      bool ok = false;
      try {
        ok = options_.partition_key_function(r.data, r.metadata, p.keys);
      } catch (...) {
        ok = false;
      }
      p.found = ok;
      if (!ok) {
        p.error = "The partition key function found no partition keys for the record.";
        continue;
      }
      const auto values = p.keys.values();
      // The id lists the values by name (names are unique), whatever order they were set in.
      order.clear();
      for (uint32_t k = 0; k < values.size(); ++k) order.push_back(k);
      std::sort(order.begin(), order.end(),
                [&](uint32_t a, uint32_t b) { return values[a].first < values[b].first; });
      for (const uint32_t k : order) {
        const auto& [key, value] = values[k];
        if (value.empty() || value.size() > kMaxPartitionValueBytes) {
          p.error = fmt::format("The partition key '{}' has a {}-byte value; it must be 1 to {}.",
                                key, value.size(), kMaxPartitionValueBytes);
          break;
        }
        // Each part after its length: names and values may hold any byte, NUL included.
        AppendIdPart(key, p.id);
        AppendIdPart(value, p.id);
      }
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  // Records read from a Stream are accepted even once Close() has begun: the reader saw an
  // ACTIVE stream before it read them, and Close() delivers them.
  if (backpressure && status_ != DeliveryStreamStatus::kActive) return NotActiveErrorLocked();
  for (size_t i = 0; i < count; ++i) {
    const IngestRecord r = get(i);
    const size_t size = r.data.size();
    if (backpressure &&
        buffered_bytes_ + static_cast<int64_t>(size) > options_.max_buffered_bytes) {
      ++throttled_records_;
      ++*failed_count;
      entries[i] = {0, kThrottleCode, kThrottleMessage};
      continue;
    }
    const uint64_t id = next_record_id_++;
    entries[i] = {id, {}, {}};
    ++incoming_records_;
    incoming_bytes_ += size;
    buffered_bytes_ += static_cast<int64_t>(size);
    const int64_t arrival = r.metadata.approximate_arrival_timestamp_ms != 0
                                ? r.metadata.approximate_arrival_timestamp_ms
                                : now_ms;

    std::unique_ptr<detail::Batch>* slot = &default_batch_;
    std::string_view error_code;
    if (partitioning) {
      IngestScratch::Partitioned& p = (*lease)->partitioned[i];
      // The Prefix may change (UpdateDestination): its keys are checked under the lock.
      if (p.found) {
        if (std::string_view missing = prefix_.MissingPartitionKey(p.keys.values());
            !missing.empty()) {
          p.error = fmt::format("The partition key '{}' named in Prefix has no value.", missing);
        }
      }
      if (!p.error.empty()) {
        error_code = kDynamicPartitioningMetadataExtractionFailed;
      } else if (auto it = partitions_.find(p.id); it != partitions_.end()) {
        slot = &it->second;
      } else if (partitions_.size() >= static_cast<size_t>(options_.max_active_partitions)) {
        error_code = kDynamicPartitioningActivePartitionsLimitExceeded;
        p.error = fmt::format("Firehose stream {} has {} active partitions, the limit.", name(),
                              options_.max_active_partitions);
      } else {
        auto inserted = partitions_.emplace(p.id, TakeFreeBatchLocked());
        slot = &inserted.first->second;
        (*slot)->partition_id = p.id;
        const auto values = p.keys.values();
        (*slot)->partition_values.assign(values.begin(), values.end());
      }
      if (!error_code.empty()) {
        ++partitioning_failed_records_;
        put_errors_.push_back({detail::kPartitioningFailedOutput, std::string(error_code), p.error,
                               id, 0, arrival, now_ms, std::string(r.data), size});
        WakeLocked();
        continue;
      }
    } else if (!default_batch_) {
      default_batch_ = TakeFreeBatchLocked();
    }

    detail::Batch& b = **slot;
    if (b.records.empty()) {
      b.opened = now;
      b.oldest_arrival_ms = arrival;
      const absl::Time due = now + interval_;
      earliest_due_ = std::min(earliest_due_, due);
      if (due < wake_deadline_) WakeLocked();
    } else {
      b.oldest_arrival_ms = std::min(b.oldest_arrival_ms, arrival);
    }
    const RecordMetadata& md = r.metadata;
    if (!md.partition_key.empty() || !md.shard_id.empty() || !md.sequence_number.empty()) {
      b.meta_index.resize(b.records.size());
      detail::RecordMeta& m = b.meta_index.emplace_back();
      m.offset = static_cast<uint32_t>(b.meta.size());
      m.partition_key_size =
          static_cast<uint16_t>(std::min<size_t>(md.partition_key.size(), 0xffff));
      m.shard_id_size = static_cast<uint16_t>(std::min<size_t>(md.shard_id.size(), 0xffff));
      m.sequence_number_size =
          static_cast<uint16_t>(std::min<size_t>(md.sequence_number.size(), 0xffff));
      b.meta.append(md.partition_key.substr(0, m.partition_key_size));
      b.meta.append(md.shard_id.substr(0, m.shard_id_size));
      b.meta.append(md.sequence_number.substr(0, m.sequence_number_size));
      m.subsequence_number = md.subsequence_number;
    }
    const detail::BufferedRecord rec{id, arrival, static_cast<uint32_t>(b.data.size()),
                                     static_cast<uint32_t>(size)};
    b.data.append(r.data);
    b.records.push_back(rec);
    if (b.data.size() >= size_hint_bytes_) {
      SealLocked(*slot);
      if (partitioning) partitions_.erase((*lease)->partitioned[i].id);
    }
  }
  return absl::OkStatus();
}

std::unique_ptr<detail::Batch> DeliveryStream::Impl::TakeFreeBatchLocked() {
  if (free_batches_.empty()) return std::make_unique<detail::Batch>();
  std::unique_ptr<detail::Batch> b = std::move(free_batches_.back());
  free_batches_.pop_back();
  return b;
}

void DeliveryStream::Impl::SealLocked(std::unique_ptr<detail::Batch>& slot) {
  ready_.push_back(std::move(slot));
  WakeLocked();
}

void DeliveryStream::Impl::WakeLocked() {
  wake_ = true;
  cv_.notify_all();
}

void DeliveryStream::Impl::SealDueLocked(absl::Time now, bool all) {
  if (!all && now < earliest_due_) return;
  absl::Time earliest = absl::InfiniteFuture();
  auto due = [&](const detail::Batch& b) {
    if (all || now >= b.opened + interval_) return true;
    earliest = std::min(earliest, b.opened + interval_);
    return false;
  };
  if (default_batch_ && !default_batch_->records.empty() && due(*default_batch_)) {
    SealLocked(default_batch_);
  }
  for (auto it = partitions_.begin(); it != partitions_.end();) {
    if (due(*it->second)) {
      SealLocked(it->second);
      partitions_.erase(it++);
    } else {
      ++it;
    }
  }
  earliest_due_ = earliest;
}

bool DeliveryStream::Impl::HasPendingLocked() const {
  return (default_batch_ && !default_batch_->records.empty()) || !partitions_.empty() ||
         !ready_.empty() || !retrying_.empty() || !put_errors_.empty() ||
         !error_retrying_.empty() || in_pump_ > 0;
}

absl::Time DeliveryStream::Impl::NextDeadlineLocked(absl::Time now) const {
  if (!ready_.empty() || !put_errors_.empty()) return now;
  absl::Time deadline = earliest_due_;
  if (stream_source_ && status_ == DeliveryStreamStatus::kActive) {
    deadline = std::min(deadline, source_next_poll_);
  }
  for (const auto& b : retrying_) deadline = std::min(deadline, b->next_attempt);
  for (const auto& o : error_retrying_) deadline = std::min(deadline, o.next_attempt);
  return deadline;
}

size_t DeliveryStream::Impl::Poll() {
  if (InCallback()) return 0;  // documented: nothing happens
  std::lock_guard<std::mutex> pump_lock(pump_mu_);
  return PumpLocked(/*flush_all=*/false);
}

size_t DeliveryStream::Impl::Flush() {
  if (InCallback()) return 0;
  std::lock_guard<std::mutex> pump_lock(pump_mu_);
  return PumpLocked(/*flush_all=*/true);
}

absl::Status DeliveryStream::Impl::UpdateDestination(const DestinationUpdate& u) {
  // No pump runs meanwhile: the destination members are read under pump_mu_ or mu_, and
  // written here under both.
  if (InCallback()) return CalledFromCallbackError("UpdateDestination");
  std::lock_guard<std::mutex> pump_lock(pump_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_ != DeliveryStreamStatus::kActive) return NotActiveErrorLocked();
  }
  if (u.expected_version && *u.expected_version != options_.version) {
    return NamedError(kConcurrentModificationException,
                      fmt::format("Firehose {} is at version {}, not {}: it was updated since.",
                                  name(), options_.version, *u.expected_version));
  }
  DeliveryStreamOptions next = options_;
  if (u.prefix) next.prefix = *u.prefix;
  if (u.error_output_prefix) next.error_output_prefix = *u.error_output_prefix;
  if (u.buffering_hints) next.buffering_hints = *u.buffering_hints;
  if (u.compression) next.compression = *u.compression;
  if (u.processor) next.processor = *u.processor;
  if (u.append_newline_delimiter) next.append_newline_delimiter = *u.append_newline_delimiter;
  if (u.processor_retries) next.processor_retries = *u.processor_retries;
  if (u.processor_arn) next.processor_arn = *u.processor_arn;
  if (u.sink != nullptr) next.sink = u.sink;
  ++next.version;
  if (absl::Status s = ValidateOptions(next); !s.ok()) return s;
  absl::StatusOr<Prefixes> prefixes = ParsePrefixes(next);
  if (!prefixes.ok()) return prefixes.status();
  // What was accepted goes out as it was configured.
  (void)PumpLocked(/*flush_all=*/true);
  if (next.compression != options_.compression) {
    compressor_ = std::make_unique<detail::Compressor>(next.compression, next.compression_level);
  }
  std::lock_guard<std::mutex> lock(mu_);
  error_sink_ = next.error_sink != nullptr ? next.error_sink : next.sink;
  prefix_ = std::move(prefixes->prefix);
  error_prefix_ = std::move(prefixes->error_prefix);
  size_hint_bytes_ = static_cast<size_t>(next.buffering_hints.size_in_mbs) << 20;
  interval_ = absl::Seconds(next.buffering_hints.interval_in_seconds);
  // Members one by one: a put reads others (partition_key_function) without either lock.
  options_.prefix = std::move(next.prefix);
  options_.error_output_prefix = std::move(next.error_output_prefix);
  options_.buffering_hints = next.buffering_hints;
  options_.compression = next.compression;
  options_.processor = std::move(next.processor);
  options_.append_newline_delimiter = next.append_newline_delimiter;
  options_.processor_retries = next.processor_retries;
  options_.processor_arn = std::move(next.processor_arn);
  options_.sink = next.sink;
  options_.version = next.version;
  // Buffers opened since the flush are due by the new interval: the next step re-reads it.
  earliest_due_ = absl::InfinitePast();
  WakeLocked();
  return absl::OkStatus();
}

int DeliveryStream::Impl::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return options_.version;
}

absl::Status DeliveryStream::Impl::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (status_ != DeliveryStreamStatus::kActive || thread_running_ || thread_stopped_) {
    return ResourceInUseError(fmt::format(
        "Firehose stream {} is {}{}; Start needs an ACTIVE stream whose delivery thread was "
        "neither started nor stopped.",
        name(), DeliveryStreamStatusName(status_),
        thread_running_   ? " and its delivery thread is running"
        : thread_stopped_ ? " and its delivery thread was stopped"
                          : ""));
  }
  thread_running_ = true;
  thread_ = std::thread([this] { DeliveryLoop(); });
  return absl::OkStatus();
}

void DeliveryStream::Impl::Stop() {
  if (InCallback()) return;
  std::lock_guard<std::mutex> thread_lock(thread_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    thread_stopped_ = true;
    WakeLocked();
  }
  // Start() cannot create a thread any more, and Close() joins under thread_mu_ too.
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  thread_running_ = false;
}

void DeliveryStream::Impl::DeliveryLoop() {
  while (true) {
    {
      std::lock_guard<std::mutex> pump_lock(pump_mu_);
      PumpLocked(/*flush_all=*/false);
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (thread_stopped_ || (stopping_ && !HasPendingLocked())) return;
    const absl::Time now = clock_->Now();
    const absl::Time deadline = NextDeadlineLocked(now);
    if (deadline <= now || wake_) {
      wake_ = false;
      continue;
    }
    wake_deadline_ = deadline;
    WaitUntil(*clock_, cv_, lock, deadline, [this] { return wake_; });
    wake_ = false;
    wake_deadline_ = absl::InfinitePast();
    if (thread_stopped_) return;
  }
}

absl::Status DeliveryStream::Impl::Close() {
  if (InCallback()) return CalledFromCallbackError("Close");
  std::lock_guard<std::mutex> close_lock(close_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = DeliveryStreamStatus::kDeleting;
    SealDueLocked(clock_->Now(), /*all=*/true);
    stopping_ = true;
    retry_now_ = true;
    WakeLocked();
  }
  {
    // A running delivery thread drains, then ends; a stopped one was joined already.
    std::lock_guard<std::mutex> thread_lock(thread_mu_);
    if (thread_.joinable()) {
      thread_.join();
      std::lock_guard<std::mutex> lock(mu_);
      thread_running_ = false;
      if (!thread_stopped_) return absl::OkStatus();
    }
  }
  while (true) {
    {
      std::lock_guard<std::mutex> pump_lock(pump_mu_);
      PumpLocked(/*flush_all=*/true);
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (!HasPendingLocked()) return absl::OkStatus();
    const absl::Time now = clock_->Now();
    const absl::Time deadline = NextDeadlineLocked(now);
    if (deadline <= now || wake_) {
      wake_ = false;
      continue;
    }
    WaitUntil(*clock_, cv_, lock, deadline, [this] { return wake_; });
    wake_ = false;
  }
}

absl::Status DeliveryStream::Impl::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return step_status_;
}

DeliveryStreamStatus DeliveryStream::Impl::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

DeliveryStreamMetrics DeliveryStream::Impl::GetMetrics() const {
  DeliveryStreamMetrics m;
  const int64_t now_ms = clock_->NowMillis();
  int64_t oldest = now_ms;
  {
    std::lock_guard<std::mutex> lock(mu_);
    m.incoming_records = incoming_records_;
    m.incoming_bytes = incoming_bytes_;
    m.throttled_records = throttled_records_;
    m.partitioning_failed_records = partitioning_failed_records_;
    m.buffered_bytes = static_cast<uint64_t>(buffered_bytes_);
    m.active_partitions = static_cast<int>(partitions_.size()) +
                          (default_batch_ && !default_batch_->records.empty() ? 1 : 0);
    auto consider = [&](const std::unique_ptr<detail::Batch>& b) {
      if (b && !b->records.empty()) oldest = std::min(oldest, b->oldest_arrival_ms);
    };
    consider(default_batch_);
    for (const auto& [id, b] : partitions_) consider(b);
    for (const auto& b : ready_) consider(b);
    for (const auto& b : retrying_) consider(b);
    // Records on their way to the error output are not delivered either.
    for (const auto& e : put_errors_) oldest = std::min(oldest, e.arrival_ms);
    for (const auto& o : error_retrying_) oldest = std::min(oldest, o.oldest_arrival_ms);
    if (in_pump_ > 0) oldest = std::min(oldest, in_pump_oldest_ms_);
  }
  m.data_freshness = absl::Milliseconds(std::max<int64_t>(0, now_ms - oldest));
  m.delivery_records = delivery_records_.load(std::memory_order_relaxed);
  m.delivery_bytes = delivery_bytes_.load(std::memory_order_relaxed);
  m.delivery_objects = delivery_objects_.load(std::memory_order_relaxed);
  m.delivery_attempts = delivery_attempts_.load(std::memory_order_relaxed);
  m.dropped_records = dropped_records_.load(std::memory_order_relaxed);
  m.processing_failed_records = processing_failed_records_.load(std::memory_order_relaxed);
  m.delivery_failed_records = delivery_failed_records_.load(std::memory_order_relaxed);
  m.error_output_records = error_output_records_.load(std::memory_order_relaxed);
  m.error_output_attempts = error_output_attempts_.load(std::memory_order_relaxed);
  m.error_output_discarded_records =
      error_output_discarded_records_.load(std::memory_order_relaxed);
  m.error_output_objects = error_output_objects_.load(std::memory_order_relaxed);
  m.source_records_missed = source_records_missed_.load(std::memory_order_relaxed);
  return m;
}

// ---- The public class forwards to its Impl ----

DeliveryStream::DeliveryStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeliveryStream::~DeliveryStream() = default;

absl::StatusOr<DeliveryPutRecordResult> DeliveryStream::PutRecord(std::string_view data) {
  return impl_->PutRecord(data);
}

absl::StatusOr<PutRecordBatchResult> DeliveryStream::PutRecordBatch(
    std::span<const std::string_view> records) {
  PutRecordBatchResult result;
  if (absl::Status s = impl_->PutRecordBatch(records, result); !s.ok()) return s;
  return result;
}

absl::Status DeliveryStream::PutRecordBatch(std::span<const std::string_view> records,
                                            PutRecordBatchResult& out) {
  return impl_->PutRecordBatch(records, out);
}

size_t DeliveryStream::Poll() { return impl_->Poll(); }
size_t DeliveryStream::Flush() { return impl_->Flush(); }
absl::Status DeliveryStream::last_error() const { return impl_->last_error(); }
absl::Status DeliveryStream::Start() { return impl_->Start(); }
void DeliveryStream::Stop() { impl_->Stop(); }
absl::Status DeliveryStream::Close() { return impl_->Close(); }
absl::Status DeliveryStream::UpdateDestination(const DestinationUpdate& update) {
  return impl_->UpdateDestination(update);
}
int DeliveryStream::version() const { return impl_->version(); }
DeliveryStreamStatus DeliveryStream::status() const { return impl_->status(); }
DeliveryStreamMetrics DeliveryStream::GetMetrics() const { return impl_->GetMetrics(); }
const std::string& DeliveryStream::name() const { return impl_->name(); }

absl::Status DeliveryStream::TEST_Ingest(std::string_view data, const RecordMetadata& metadata) {
  return impl_->TEST_Ingest(data, metadata);
}

}  // namespace riffle
