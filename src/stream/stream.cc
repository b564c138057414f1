// Stream's control plane and the cold (error) paths of its hot calls.
#include "riffle/stream.h"

#include <algorithm>
#include <random>

#include "fmt/format.h"
#include "common/names.h"

namespace riffle {
namespace {

constexpr int kMinRetentionHours = 24;
constexpr int kMaxRetentionHours = 8760;
constexpr uint64_t kMaxRecordSizeLimit = uint64_t{10} << 20;
constexpr uint64_t kMaxRingCapacity = uint64_t{1} << 40;
constexpr int kMaxPutRecordsEntries = 500;
constexpr uint64_t kMaxPutRecordsBytes = uint64_t{5} << 20;

// A process-wide tag per stream, so that a sequence number or iterator from another stream
// is recognised. Starts at a random point and steps through 1..999,999,999 without repeating.
uint64_t NextStreamTag() {
  static std::atomic<uint64_t> counter{std::random_device{}()};
  const uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  // 7919 is prime and coprime with 10^9 - 1: consecutive streams get scattered tags.
  return (n * 7919) % SequenceNumber::kMaxStreamTag + 1;
}

uint64_t MinRingCapacity(uint64_t max_record_size) {
  return std::bit_ceil(detail::kSegmentsPerRing * detail::FrameBytes(0, max_record_size));
}

std::string_view IteratorTypeName(ShardIteratorType type) {
  switch (type) {
    case ShardIteratorType::kAtSequenceNumber:
      return "AT_SEQUENCE_NUMBER";
    case ShardIteratorType::kAfterSequenceNumber:
      return "AFTER_SEQUENCE_NUMBER";
    case ShardIteratorType::kAtTimestamp:
      return "AT_TIMESTAMP";
    case ShardIteratorType::kTrimHorizon:
      return "TRIM_HORIZON";
    case ShardIteratorType::kLatest:
      return "LATEST";
  }
  return "?";
}

// Where a reader of `ring` starting at time `t_ms` begins: the first record that arrived at
// or after t_ms, or the end of the log. Arrival times never decrease within a shard, and
// every segment starts with a frame, so whole segments are skipped by their first frame.
struct Seek {
  uint64_t position;
  uint64_t next_index;
  bool known;
};
Seek SeekTime(const detail::ShardRing& ring, int64_t t_ms) {
  for (;;) {
    const detail::LatestState latest = ring.Latest();
    const uint64_t horizon = ring.Horizon(ring.claimed());
    const uint64_t seg = ring.segment_bytes();
    // Skip to the last segment whose first record is older than t_ms.
    uint64_t start = horizon;
    for (uint64_t s = horizon + seg; s < latest.published; s += seg) {
      const uint64_t* w = ring.WordsAt(s);
      const uint64_t w0 = detail::LoadWordRelaxed(w);
      if (detail::Word0Flags(w0) & detail::kFlagPadding) break;  // conservative: walk from here
      if (static_cast<int64_t>(detail::LoadWordRelaxed(w + 3)) >= t_ms) break;
      start = s;
    }
    Seek found{latest.published, latest.next_index, true};
    uint64_t p = start;
    while (p < latest.published) {
      const uint64_t* w = ring.WordsAt(p);
      const uint64_t w0 = detail::LoadWordRelaxed(w);
      const uint64_t length = detail::Word0Length(w0);
      const bool padding = detail::Word0Flags(w0) & detail::kFlagPadding;
      if (length < (padding ? detail::kFrameAlignment : detail::kFrameHeaderBytes) ||
          !ring.FitsInSegment(p, detail::AlignFrame(length))) {
        break;  // torn
      }
      if (!(detail::Word0Flags(w0) & detail::kFlagPadding) &&
          static_cast<int64_t>(detail::LoadWordRelaxed(w + 3)) >= t_ms) {
        found = Seek{p, detail::LoadWordRelaxed(w + 2), true};
        break;
      }
      p += detail::AlignFrame(length);
    }
    if (ring.IntactAfterReads(start, p + detail::kFrameHeaderBytes)) return found;
  }
}

}  // namespace

std::string_view StreamStatusName(StreamStatus status) {
  switch (status) {
    case StreamStatus::kCreating:
      return "CREATING";
    case StreamStatus::kActive:
      return "ACTIVE";
    case StreamStatus::kUpdating:
      return "UPDATING";
    case StreamStatus::kDeleting:
      return "DELETING";
  }
  return "?";
}

namespace detail {
absl::Status GetRecordsLimitError(int limit) {
  return InvalidArgumentError(
      fmt::format("Limit is {}; it must be between 1 and {}.", limit, kMaxGetRecordsLimit));
}
}  // namespace detail

absl::StatusOr<std::unique_ptr<Stream>> Stream::Create(StreamOptions options) {
  if (!detail::IsValidName(options.stream_name)) {
    return InvalidArgumentError(
        fmt::format("StreamName '{}' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].",
                    options.stream_name.substr(0, 200)));
  }
  if (options.shard_limit < 1) {
    return InvalidArgumentError(
        fmt::format("ShardLimit is {}; it must be at least 1.", options.shard_limit));
  }
  if (options.shard_count < 1 || options.shard_count > options.shard_limit) {
    return InvalidArgumentError(fmt::format("ShardCount is {}; it must be between 1 and {}.",
                                            options.shard_count, options.shard_limit));
  }
  const int64_t hours = absl::ToInt64Hours(options.retention_period);
  if (options.retention_period != absl::Hours(hours) || hours < kMinRetentionHours ||
      hours > kMaxRetentionHours) {
    return InvalidArgumentError(fmt::format(
        "RetentionPeriodHours is {}; it must be a whole number of hours between {} and {}.",
        absl::FormatDuration(options.retention_period), kMinRetentionHours, kMaxRetentionHours));
  }
  if (options.max_record_size_bytes < 1 || options.max_record_size_bytes > kMaxRecordSizeLimit) {
    return InvalidArgumentError(fmt::format(
        "MaxRecordSizeInKiB: MaxRecordSizeBytes is {}; it must be between 1 and {} (10 MiB).",
        options.max_record_size_bytes, kMaxRecordSizeLimit));
  }
  const uint64_t min_ring = MinRingCapacity(options.max_record_size_bytes);
  if (!std::has_single_bit(options.ring_capacity_bytes) || options.ring_capacity_bytes < min_ring ||
      options.ring_capacity_bytes > kMaxRingCapacity) {
    return InvalidArgumentError(fmt::format(
        "RingCapacityBytes is {}; it must be a power of two between {} (four frames of "
        "MaxRecordSizeBytes {}) and {}.",
        options.ring_capacity_bytes, min_ring, options.max_record_size_bytes, kMaxRingCapacity));
  }
  if (options.iterator_lifetime <= absl::ZeroDuration()) {
    return InvalidArgumentError("IteratorLifetime must be positive.");
  }
  if (options.reshard_duration < absl::ZeroDuration()) {
    return InvalidArgumentError("ReshardDuration must not be negative.");
  }
  return std::unique_ptr<Stream>(new Stream(std::move(options)));
}

Stream::Stream(StreamOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock::Default()),
      tag_(NextStreamTag()),
      created_at_(clock_->Now()),
      retention_ms_(absl::ToInt64Milliseconds(options_.retention_period)) {
  auto topology = std::make_unique<detail::Topology>();
  const std::vector<HashKeyRange> ranges = UniformHashKeyRanges(options_.shard_count);
  const int64_t now_ms = absl::ToUnixMillis(created_at_);
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    shards_.push_back(
        std::make_unique<detail::ShardState>(i, ranges[i], options_.ring_capacity_bytes, now_ms));
    topology->starts.push_back(ranges[i].starting_hash_key);
    topology->open.push_back(shards_.back().get());
    topology->all.push_back(shards_.back().get());
  }
  std::lock_guard<std::mutex> lock(mu_);
  Publish(std::move(topology));
}

Stream::~Stream() = default;

void Stream::Publish(std::unique_ptr<detail::Topology> topology) {
  topology_.store(topology.get(), std::memory_order_release);
  topologies_.push_back(std::move(topology));
}

absl::Status Stream::PutError(const PutRecordRequest& request) const {
  if (absl::Status s = ValidatePartitionKey(request.partition_key); !s.ok()) return s;
  const uint64_t size = request.partition_key.size() + request.data.size();
  if (size > options_.max_record_size_bytes) {
    return InvalidArgumentError(
        fmt::format("Record size is {} bytes (partition key + data); it must be at most {} bytes "
                    "(MaxRecordSizeBytes).",
                    size, options_.max_record_size_bytes));
  }
  if (!request.explicit_hash_key.empty()) {
    if (auto key = ParseHashKey(request.explicit_hash_key, "ExplicitHashKey"); !key.ok()) {
      return key.status();
    }
  }
  if (!request.sequence_number_for_ordering.empty()) {
    auto n =
        SequenceNumber::Parse(request.sequence_number_for_ordering, "SequenceNumberForOrdering");
    if (!n.ok()) return n.status();
    if (n->stream_tag != tag_) {
      return InvalidArgumentError(
          fmt::format("SequenceNumberForOrdering {} did not come from stream {}.",
                      request.sequence_number_for_ordering, options_.stream_name));
    }
    // Every later put in this stream gets a larger number: shard indexes of children are
    // larger than their parents', and positions grow within a shard.
  }
  return absl::OkStatus();
}

absl::Status Stream::ShardFullError(const detail::ShardState& shard) const {
  return ProvisionedThroughputExceededError(fmt::format(
      "Rate exceeded for shard {} in stream {}: a lossless reader has not yet read the space "
      "this record needs in the shard's {}-byte ring.",
      shard.id, options_.stream_name, shard.ring.capacity()));
}

absl::StatusOr<detail::ShardState*> Stream::ShardForIterator(const ShardIterator& it,
                                                             int64_t now_ms) const {
  if (it.stream_tag != tag_) {
    return InvalidArgumentError(fmt::format("ShardIterator {} did not come from stream {}.",
                                            it.ToString(), options_.stream_name));
  }
  detail::ShardState* shard = topology_.load(std::memory_order_acquire)->Find(it.shard_index);
  if (shard == nullptr) {
    return ResourceNotFoundError(fmt::format("Shard {} in stream {} does not exist.",
                                             FormatShardId(it.shard_index), options_.stream_name));
  }
  if (now_ms - it.issued_at_ms > absl::ToInt64Milliseconds(options_.iterator_lifetime)) {
    return ExpiredIteratorError(fmt::format(
        "Iterator expired. The iterator was created at time {} while right now it is {} which "
        "is further in the future than the tolerated delay of {} milliseconds.",
        absl::FormatTime(absl::FromUnixMillis(it.issued_at_ms), absl::UTCTimeZone()),
        absl::FormatTime(absl::FromUnixMillis(now_ms), absl::UTCTimeZone()),
        absl::ToInt64Milliseconds(options_.iterator_lifetime)));
  }
  if (Expired(*shard, now_ms)) {
    return ResourceNotFoundError(
        fmt::format("Shard {} in stream {} has expired: its records aged out of retention.",
                    shard->id, options_.stream_name));
  }
  return shard;
}

// As the service does: a closed shard expires one retention period after it closed (all
// its records are older than that). Counting from its newest record instead would hide a
// parent that closed inside the retention window, and with it the lineage a reader
// starting at TRIM_HORIZON must follow.
bool Stream::Expired(const detail::ShardState& shard, int64_t now_ms) const {
  const int64_t closed_at = shard.closed_at_ms.load(std::memory_order_acquire);
  if (closed_at < 0) return false;
  return closed_at < now_ms - retention_ms_.load(std::memory_order_relaxed);
}

ChildShard Stream::ChildShardOf(uint64_t index) const {
  const detail::ShardState* child = topology_.load(std::memory_order_acquire)->Find(index);
  ChildShard c{child->id, {}, child->range};
  if (child->parent_shard_id) c.parent_shards.push_back(*child->parent_shard_id);
  if (child->adjacent_parent_shard_id) c.parent_shards.push_back(*child->adjacent_parent_shard_id);
  return c;
}

Shard Stream::Describe(const detail::ShardState& shard) const {
  Shard s;
  s.shard_id = shard.id;
  s.parent_shard_id = shard.parent_shard_id;
  s.adjacent_parent_shard_id = shard.adjacent_parent_shard_id;
  s.hash_key_range = shard.range;
  s.sequence_number_range.starting_sequence_number = MakeSequenceNumber(shard.index, 0, 0);
  if (shard.closed_at_ms.load(std::memory_order_acquire) >= 0) {
    const detail::LatestState& f = shard.final_state;
    s.sequence_number_range.ending_sequence_number =
        f.next_index > 0 ? MakeSequenceNumber(shard.index, f.last_record_position, f.next_index - 1)
                         : s.sequence_number_range.starting_sequence_number;
  }
  return s;
}

absl::StatusOr<PutRecordsResult> Stream::PutRecords(
    std::span<const PutRecordsRequestEntry> entries) {
  if (entries.empty() || entries.size() > kMaxPutRecordsEntries) {
    return InvalidArgumentError(fmt::format("Records has {} entries; it must have 1 to {}.",
                                            entries.size(), kMaxPutRecordsEntries));
  }
  uint64_t total = 0;
  for (const auto& e : entries) total += e.partition_key.size() + e.data.size();
  if (total > kMaxPutRecordsBytes) {
    return InvalidArgumentError(fmt::format(
        "The PutRecords request is {} bytes including partition keys; it must be at most {} "
        "bytes (5 MiB).",
        total, kMaxPutRecordsBytes));
  }
  PutRecordsResult result;
  result.records.reserve(entries.size());
  for (const auto& e : entries) {
    PutRecordsResultEntry& out = result.records.emplace_back();
    absl::StatusOr<PutRecordResult> r =
        PutRecord(PutRecordRequest{e.partition_key, e.data, e.explicit_hash_key, {}});
    if (r.ok()) {
      out.shard_id = std::string(r->shard_id);
      out.sequence_number = r->sequence_number;
    } else {
      ++result.failed_record_count;
      out.error_code = std::string(ErrorName(r.status()));
      out.error_message = ErrorMessage(r.status());
    }
  }
  return result;
}

absl::StatusOr<ShardIterator> Stream::GetShardIterator(const GetShardIteratorRequest& request) {
  const bool wants_number = request.type == ShardIteratorType::kAtSequenceNumber ||
                            request.type == ShardIteratorType::kAfterSequenceNumber;
  const std::string_view type_name = IteratorTypeName(request.type);
  if (wants_number && request.starting_sequence_number.empty()) {
    return InvalidArgumentError(
        fmt::format("StartingSequenceNumber is required for ShardIteratorType {}.", type_name));
  }
  if (!wants_number && !request.starting_sequence_number.empty()) {
    return InvalidArgumentError(fmt::format(
        "StartingSequenceNumber must not be given for ShardIteratorType {}.", type_name));
  }
  if (request.type == ShardIteratorType::kAtTimestamp && !request.timestamp) {
    return InvalidArgumentError("Timestamp is required for ShardIteratorType AT_TIMESTAMP.");
  }
  if (request.type != ShardIteratorType::kAtTimestamp && request.timestamp) {
    return InvalidArgumentError(
        fmt::format("Timestamp must not be given for ShardIteratorType {}.", type_name));
  }
  const std::optional<uint64_t> index = ParseShardId(request.shard_id);
  const detail::Topology* topology = topology_.load(std::memory_order_acquire);
  detail::ShardState* shard = index ? topology->Find(*index) : nullptr;
  const int64_t now_ms = clock_->NowMillis();
  if (shard == nullptr || Expired(*shard, now_ms)) {
    return ResourceNotFoundError(fmt::format("Shard {} in stream {} does not exist.",
                                             request.shard_id.substr(0, 200),
                                             options_.stream_name));
  }
  const detail::ShardRing& ring = shard->ring;
  const int64_t oldest_ms = now_ms - retention_ms_.load(std::memory_order_relaxed);
  ShardIterator it{tag_, shard->index, 0, 0, true, now_ms};
  switch (request.type) {
    case ShardIteratorType::kTrimHorizon:
    case ShardIteratorType::kAtTimestamp: {
      const int64_t t = request.timestamp
                            ? std::max(absl::ToUnixMillis(*request.timestamp), oldest_ms)
                            : oldest_ms;
      const Seek seek = SeekTime(ring, t);
      it.position = seek.position;
      it.next_record_index = seek.next_index;
      return it;
    }
    case ShardIteratorType::kLatest: {
      const detail::LatestState latest = ring.Latest();
      it.position = latest.published;
      it.next_record_index = latest.next_index;
      return it;
    }
    case ShardIteratorType::kAtSequenceNumber:
    case ShardIteratorType::kAfterSequenceNumber:
      break;
  }
  absl::StatusOr<SequenceNumber> n =
      SequenceNumber::Parse(request.starting_sequence_number, "StartingSequenceNumber");
  if (!n.ok()) return n.status();
  if (n->stream_tag != tag_ || n->shard_index != shard->index) {
    return InvalidArgumentError(fmt::format(
        "StartingSequenceNumber {} used in GetShardIterator on shard {} in stream {} is "
        "invalid because it did not come from this {}.",
        request.starting_sequence_number, shard->id, options_.stream_name,
        n->stream_tag != tag_ ? "stream" : "shard"));
  }
  const bool after = request.type == ShardIteratorType::kAfterSequenceNumber;
  const detail::LatestState latest = ring.Latest();
  auto not_a_record = [&] {
    return InvalidArgumentError(fmt::format(
        "StartingSequenceNumber {} does not identify a record of shard {} in stream {}.",
        request.starting_sequence_number, shard->id, options_.stream_name));
  };
  if (n->position >= latest.published || n->record_index >= latest.next_index) {
    return not_a_record();
  }
  it.position = n->position;
  it.next_record_index = n->record_index + (after ? 1 : 0);
  // Check the frame while it is retained; a trimmed one leaves the iterator where it is and
  // GetRecords moves it to the horizon, reporting what was missed.
  if (!ring.FitsInSegment(n->position, detail::kFrameHeaderBytes)) return not_a_record();
  if (n->position >= ring.Horizon(ring.claimed())) {
    const uint64_t* w = ring.WordsAt(n->position);
    const uint64_t w0 = detail::LoadWordRelaxed(w);
    const uint64_t position = detail::LoadWordRelaxed(w + 1);
    const uint64_t record_index = detail::LoadWordRelaxed(w + 2);
    if (ring.IntactAfterReads(n->position, n->position + detail::kFrameHeaderBytes)) {
      if ((detail::Word0Flags(w0) & detail::kFlagPadding) || position != n->position ||
          record_index != n->record_index) {
        return not_a_record();
      }
      if (after) it.position += detail::AlignFrame(detail::Word0Length(w0));
    }
  }
  return it;
}

absl::StatusOr<std::vector<Shard>> Stream::ListShards(const ListShardsRequest& request) const {
  const bool needs_time = request.filter == ShardFilterType::kAtTimestamp ||
                          request.filter == ShardFilterType::kFromTimestamp;
  if (needs_time && !request.timestamp) {
    return InvalidArgumentError(
        "ShardFilter Timestamp is required for AT_TIMESTAMP and FROM_TIMESTAMP.");
  }
  if (request.filter == ShardFilterType::kAfterShardId && request.shard_id.empty()) {
    return InvalidArgumentError("ShardFilter ShardId is required for AFTER_SHARD_ID.");
  }
  std::optional<uint64_t> after;
  if (!request.shard_id.empty()) {
    after = ParseShardId(request.shard_id);
    if (!after) {
      return InvalidArgumentError(
          fmt::format("ShardId '{}' is not a valid shard id.", request.shard_id.substr(0, 200)));
    }
  }
  const int64_t now_ms = clock_->NowMillis();
  const int64_t horizon_ms = now_ms - retention_ms_.load(std::memory_order_relaxed);
  // The service's rule: a shard is open at t when it started at or before t and ended at
  // or after t (both parent and children are listed at the instant of a reshard). Times
  // before the stream existed mean its first shards.
  const int64_t created_ms = absl::ToUnixMillis(created_at_);
  auto open_at = [created_ms](const detail::ShardState& s, int64_t t) {
    t = std::max(t, created_ms);
    const int64_t closed = s.closed_at_ms.load(std::memory_order_acquire);
    return s.created_at_ms <= t && (closed < 0 || closed >= t);
  };
  std::vector<Shard> shards;
  const detail::Topology* topology = topology_.load(std::memory_order_acquire);
  for (const detail::ShardState* s : topology->all) {
    if (Expired(*s, now_ms)) continue;
    if (after && s->index <= *after) continue;
    const int64_t closed = s->closed_at_ms.load(std::memory_order_acquire);
    bool keep = true;
    if (request.filter) {
      switch (*request.filter) {
        case ShardFilterType::kAfterShardId:
        case ShardFilterType::kFromTrimHorizon:
          break;
        case ShardFilterType::kAtTrimHorizon:
          keep = open_at(*s, horizon_ms);
          break;
        case ShardFilterType::kAtLatest:
          keep = closed < 0;
          break;
        case ShardFilterType::kAtTimestamp:
          keep = open_at(*s, absl::ToUnixMillis(*request.timestamp));
          break;
        case ShardFilterType::kFromTimestamp:
          keep = closed < 0 || closed >= absl::ToUnixMillis(*request.timestamp);
          break;
      }
    }
    if (keep) shards.push_back(Describe(*s));
  }
  return shards;
}

StreamDescriptionSummary Stream::DescribeStreamSummary() const {
  StreamDescriptionSummary d;
  d.stream_name = options_.stream_name;
  d.stream_arn = fmt::format("arn:aws:kinesis:local:000000000000:stream/{}", options_.stream_name);
  d.stream_status = CurrentStatus(clock_->NowMillis());
  d.retention_period_hours =
      static_cast<int>(retention_ms_.load(std::memory_order_relaxed) / 3'600'000);
  d.stream_creation_timestamp = created_at_;
  d.open_shard_count = static_cast<int>(topology_.load(std::memory_order_acquire)->open.size());
  {
    std::lock_guard<std::mutex> lock(consumers_->mu);
    d.consumer_count = static_cast<int>(consumers_->consumers.size());
  }
  return d;
}

absl::Status Stream::IncreaseStreamRetentionPeriod(int hours) {
  return ChangeRetention(hours, /*increase=*/true);
}

absl::Status Stream::DecreaseStreamRetentionPeriod(int hours) {
  return ChangeRetention(hours, /*increase=*/false);
}

absl::Status Stream::ChangeRetention(int hours, bool increase) {
  std::lock_guard<std::mutex> lock(mu_);
  const int current = static_cast<int>(retention_ms_.load() / 3'600'000);
  if (hours < kMinRetentionHours || hours > kMaxRetentionHours) {
    return InvalidArgumentError(
        fmt::format("RetentionPeriodHours is {}; it must be between {} and {}.", hours,
                    kMinRetentionHours, kMaxRetentionHours));
  }
  if (increase ? hours < current : hours > current) {
    return InvalidArgumentError(fmt::format(
        "Requested retention period ({} hours) for stream {} can not be {} than existing "
        "retention period ({} hours). Use {}StreamRetentionPeriod.",
        hours, options_.stream_name, increase ? "shorter" : "longer", current,
        increase ? "Decrease" : "Increase"));
  }
  retention_ms_.store(int64_t{hours} * 3'600'000);
  return absl::OkStatus();
}

}  // namespace riffle
