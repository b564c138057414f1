// Stream: creation and its validation, the control plane (describe, list, retention),
// iterators, and the read path's cold paths. The put path is in stream_put.cc, resharding
// in reshard.cc; the work is done by the shard set, the shard logs and fan-out.
#include "riffle/stream.h"

#include <algorithm>
#include <bit>
#include <random>

#include "common/names.h"
#include "common/validation.h"
#include "fmt/format.h"
#include "riffle/subscription.h"
#include "stream/fanout.h"
#include "stream/request_checks.h"
#include "stream/stream_errors.h"

namespace riffle {
namespace {

constexpr int kMinRetentionHours = 24;
constexpr int kMaxRetentionHours = 8760;
constexpr uint64_t kMaxRecordSizeLimit = uint64_t{10} << 20;
constexpr uint64_t kMaxRingCapacity = uint64_t{8} << 30;
constexpr absl::Duration kMaxReshardDuration = absl::Hours(24 * 365);

// A process-wide tag per stream, so that a sequence number or iterator from another stream
// is recognised. Starts at a random point and steps through 1..999,999,999 without repeating.
uint64_t NextStreamTag() {
  static std::atomic<uint64_t> counter{std::random_device{}()};
  const uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  // 7919 is prime and coprime with 10^9 - 1: consecutive streams get scattered tags.
  return (n * 7919) % SequenceNumber::kMaxStreamTag + 1;
}

// A stream's secret keys its frame and iterator checks. The random device is read once per
// process (opening it cost more than the rest of a small stream's creation); each stream
// then takes the next value of a SplitMix64 sequence from that seed, mixed with the time.
uint64_t NewSecret() {
  static const uint64_t seed = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }();
  static std::atomic<uint64_t> next{0};
  uint64_t z = seed + next.fetch_add(1, std::memory_order_relaxed) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31) ^ static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
}

// Four segments, each larger than the largest frame: a frame that filled a segment would
// touch its boundary, which makes a claim padding (invariant 4), at every try.
uint64_t MinRingCapacity(uint64_t max_record_size) {
  return std::bit_ceil(detail::kSegmentsPerRing *
                       (detail::FrameBytes(0, max_record_size) + detail::kFrameAlignment));
}

bool IsValidRegion(std::string_view region) {
  return !region.empty() && region.size() <= 64 &&
         std::all_of(region.begin(), region.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
         });
}

bool IsValidAccountId(std::string_view id) {
  return id.size() == 12 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The time as the service's messages print it (Java's Date): "Thu Jan 22 01:22:02 UTC 2015".
std::string ServiceTime(int64_t ms) {
  return absl::FormatTime("%a %b %d %H:%M:%S UTC %Y", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

}  // namespace

std::string_view StreamModeName(StreamMode mode) {
  return mode == StreamMode::kOnDemand ? "ON_DEMAND" : "PROVISIONED";
}

std::string_view EncryptionTypeName(EncryptionType type) {
  switch (type) {
    case EncryptionType::kNone:
      return "NONE";
    case EncryptionType::kKms:
      return "KMS";
  }
  return "?";
}

std::string_view ShardLevelMetricName(ShardLevelMetric metric) {
  switch (metric) {
    case ShardLevelMetric::kIncomingBytes:
      return "IncomingBytes";
    case ShardLevelMetric::kIncomingRecords:
      return "IncomingRecords";
    case ShardLevelMetric::kOutgoingBytes:
      return "OutgoingBytes";
    case ShardLevelMetric::kOutgoingRecords:
      return "OutgoingRecords";
    case ShardLevelMetric::kWriteProvisionedThroughputExceeded:
      return "WriteProvisionedThroughputExceeded";
    case ShardLevelMetric::kReadProvisionedThroughputExceeded:
      return "ReadProvisionedThroughputExceeded";
    case ShardLevelMetric::kIteratorAgeMilliseconds:
      return "IteratorAgeMilliseconds";
    case ShardLevelMetric::kAll:
      return "ALL";
  }
  return "?";
}

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

std::string_view ShardIteratorTypeName(ShardIteratorType type) {
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

namespace detail {

absl::Status GetRecordsLimitError(int limit) {
  Violations v;
  v.Range("limit", limit, 1, kMaxGetRecordsLimit);
  return v.ToStatus();
}

void CheckShardIteratorType(ShardIteratorType type, Violations& v) {
  if (ShardIteratorTypeName(type) != "?") return;
  v.EnumValue("shardIteratorType", static_cast<int>(type),
              "[AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]");
}

void CheckShardFilterType(ShardFilterType type, Violations& v) {
  switch (type) {
    case ShardFilterType::kAfterShardId:
    case ShardFilterType::kAtTrimHorizon:
    case ShardFilterType::kFromTrimHorizon:
    case ShardFilterType::kAtLatest:
    case ShardFilterType::kAtTimestamp:
    case ShardFilterType::kFromTimestamp:
      return;
  }
  v.EnumValue("shardFilter.type", static_cast<int>(type),
              "[AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, "
              "FROM_TIMESTAMP]");
}

void CheckScalingType(ScalingType type, Violations& v) {
  if (type == ScalingType::kUniformScaling) return;
  v.EnumValue("scalingType", static_cast<int>(type), "[UNIFORM_SCALING]");
}

void CheckStreamMode(StreamMode mode, Violations& v) {
  if (mode == StreamMode::kProvisioned || mode == StreamMode::kOnDemand) return;
  v.EnumValue("streamModeDetails.streamMode", static_cast<int>(mode), "[PROVISIONED, ON_DEMAND]");
}

void AddIteratorViolations(const GetShardIteratorRequest& request, Violations& v) {
  v.Name("shardId", request.shard_id);
  CheckShardIteratorType(request.type, v);
  const std::string_view number = request.starting_sequence_number;
  if (!number.empty()) {
    v.Pattern("startingSequenceNumber", number, kSequenceNumberPattern,
              MatchesDecimalPattern(number, 129));
  }
}

absl::Status CheckIteratorRequest(const GetShardIteratorRequest& request) {
  const bool wants_number = request.type == ShardIteratorType::kAtSequenceNumber ||
                            request.type == ShardIteratorType::kAfterSequenceNumber;
  const std::string_view type_name = ShardIteratorTypeName(request.type);
  const std::string_view number = request.starting_sequence_number;
  {
    Violations v;
    AddIteratorViolations(request, v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (wants_number == number.empty() && request.type != ShardIteratorType::kAtTimestamp) {
    return InvalidArgumentError(fmt::format(
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
        "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
        "Request specified {} and {}.",
        type_name, wants_number ? "no StartingSequenceNumber" : "also a StartingSequenceNumber"));
  }
  if (request.type == ShardIteratorType::kAtTimestamp && !number.empty()) {
    return InvalidArgumentError(
        "StartingSequenceNumber must not be given for ShardIteratorType AT_TIMESTAMP.");
  }
  if (request.type == ShardIteratorType::kAtTimestamp && !request.timestamp) {
    return InvalidArgumentError(
        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current "
        "request has no timestamp parameter.");
  }
  // A Timestamp with another type is ignored, as the service ignores it.
  return absl::OkStatus();
}

absl::Status IteratorNotIssuedError() {
  // The service's words for an iterator it did not issue (altered, or another stream's).
  return InvalidArgumentError("Invalid ShardIterator.");
}

absl::Status IteratorAgeError(const ShardIterator& it, int64_t now_ms, int64_t lifetime_ms) {
  const uint64_t age = now_ms > it.issued_at_ms
                           ? static_cast<uint64_t>(now_ms) - static_cast<uint64_t>(it.issued_at_ms)
                           : 0;
  if (age <= static_cast<uint64_t>(lifetime_ms)) return absl::OkStatus();
  return ExpiredIteratorError(fmt::format(
      "Iterator expired. The iterator was created at time {} while right now it is {} which "
      "is further in the future than the tolerated delay of {} milliseconds.",
      ServiceTime(it.issued_at_ms), ServiceTime(now_ms), lifetime_ms));
}

absl::Status IteratorError(const StreamCore& core, const ShardIterator& it, int64_t now_ms) {
  if (it.stream_tag != core.tag || it.check != core.IteratorCheck(it)) {
    return IteratorNotIssuedError();
  }
  if (absl::Status s = IteratorAgeError(it, now_ms, core.iterator_lifetime_ms); !s.ok()) return s;
  // Expired (aged out of retention) or never there: the service says the same.
  return ShardNotFoundError(core, it.shard_index);
}

ChildShard DescribeChild(const RoutingSnapshot& snapshot, uint64_t index) {
  const ShardState* child = snapshot.Find(index);
  ChildShard c{FormatShardId(index), {}, {}};
  if (child == nullptr) return c;  // expired before its parent: cannot happen (younger)
  c.hash_key_range = child->range;
  if (child->parent_shard_id) c.parent_shards.push_back(*child->parent_shard_id);
  if (child->adjacent_parent_shard_id) c.parent_shards.push_back(*child->adjacent_parent_shard_id);
  return c;
}

void RecordsStorage::Reset(GetRecordsResult& r) {
  r.records.clear();
  r.child_shards.clear();
  r.next_shard_iterator.reset();
  r.missed_records = 0;
  r.millis_behind_latest = 0;
  r.frames_.clear();
}

void RecordsStorage::AppendRecord(GetRecordsResult& r, uint64_t position, uint64_t record_index,
                                  int64_t arrival_ms, std::string_view key, std::string_view data) {
  const std::size_t used =
      r.frames_.empty()
          ? 0
          : r.frames_.back().first +
                FrameView(r.arena_.data() + r.frames_.back().first).padded_length() / 8;
  const std::size_t words = FrameBytes(key.size(), data.size()) / 8;
  if (used + words > r.arena_.size())
    r.arena_.resize(std::max(r.arena_.size() * 2, used + words + 512));
  WritePrivateFrame(r.arena_.data() + used, 0, record_index, arrival_ms, key, data);
  r.frames_.emplace_back(used, position);
}

void RecordsStorage::BuildRecords(GetRecordsResult& r, uint64_t stream_tag, uint64_t shard_index) {
  r.records.clear();
  for (const auto& [word, position] : r.frames_) {
    const FrameView frame(r.arena_.data() + word);
    r.records.push_back(
        Record{frame.key(), frame.data(),
               SequenceNumber{stream_tag, shard_index, position, frame.record_index()},
               absl::FromUnixMillis(frame.arrival_ms())});
  }
}

void FanOutDeleter::operator()(FanOut* f) const { delete f; }

}  // namespace detail

absl::StatusOr<std::unique_ptr<Stream>> Stream::Create(StreamOptions options) {
  {
    // The members CreateStream validates (ValidationException, the service's words).
    detail::Violations v;
    v.Range("shardCount", options.shard_count, 1, INT32_MAX);
    v.Name("streamName", options.stream_name);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (!IsValidRegion(options.region)) {
    return InvalidArgumentError(fmt::format(
        "Region '{}' is invalid: it must be 1 to 64 characters of [a-z0-9-].", options.region));
  }
  if (!IsValidAccountId(options.account_id)) {
    return InvalidArgumentError(
        fmt::format("AccountId '{}' is invalid: it must be 12 digits.", options.account_id));
  }
  if (options.shard_limit < 1) {
    return InvalidArgumentError(
        fmt::format("ShardLimit is {}; it must be at least 1.", options.shard_limit));
  }
  if (options.shard_count > options.shard_limit) {
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
        "RingCapacityBytes is {}; it must be a power of two between {} (more than four frames "
        "of MaxRecordSizeBytes {}) and {} (8 GiB).",
        options.ring_capacity_bytes, min_ring, options.max_record_size_bytes, kMaxRingCapacity));
  }
  if (options.iterator_lifetime <= absl::ZeroDuration() ||
      options.iterator_lifetime > absl::Hours(24 * 365)) {
    return InvalidArgumentError("IteratorLifetime must be positive and at most 365 days.");
  }
  if (options.reshard_duration < absl::ZeroDuration() ||
      options.reshard_duration > kMaxReshardDuration) {
    return InvalidArgumentError(
        fmt::format("ReshardDuration is {}; it must be between 0 and 365 days.",
                    absl::FormatDuration(options.reshard_duration)));
  }
  if (options.routing != RoutingMode::kMd5 && options.routing != RoutingMode::kXxh3) {
    return InvalidArgumentError(
        fmt::format("Routing is {}; it must be RoutingMode::kMd5 or RoutingMode::kXxh3.",
                    static_cast<int>(options.routing)));
  }
  if (options.overflow_policy != OverflowPolicy::kTrimOldest &&
      options.overflow_policy != OverflowPolicy::kRejectPut) {
    return InvalidArgumentError(
        fmt::format("OverflowPolicy is {}; it must be OverflowPolicy::kTrimOldest or "
                    "OverflowPolicy::kRejectPut.",
                    static_cast<int>(options.overflow_policy)));
  }
  if (options.max_stream_consumers < 0) {
    return InvalidArgumentError("MaxStreamConsumers must not be negative.");
  }
  if (options.read_budget &&
      (options.read_budget->calls_per_second < 1 || options.read_budget->bytes_per_second < 1)) {
    return InvalidArgumentError("ReadBudget needs at least 1 call and 1 byte per second.");
  }
  if (options.write_limit &&
      (options.write_limit->records_per_second < 1 || options.write_limit->bytes_per_second < 1)) {
    return InvalidArgumentError("WriteLimit needs at least 1 record and 1 byte per second.");
  }
  Clock* clock = options.clock != nullptr ? options.clock : &SystemClock::Default();
  auto core = std::make_shared<detail::StreamCore>(
      options.stream_name, options.routing, options.max_record_size_bytes,
      absl::ToInt64Milliseconds(options.iterator_lifetime), clock, NextStreamTag(), NewSecret(),
      options.ring_capacity_bytes, absl::ToInt64Milliseconds(options.retention_period),
      options.single_producer);
  core->account_id = options.account_id;
  core->arn = fmt::format("arn:{}:kinesis:{}:{}:stream/{}", detail::ArnPartition(options.region),
                          options.region, options.account_id, options.stream_name);
  core->write_limited = options.write_limit.has_value();
  core->fanout.reset(new detail::FanOut(*core, options.overflow_policy,
                                        options.max_stream_consumers, options.read_budget,
                                        options.write_limit));
  if (absl::Status s =
          core->shards.Init(UniformHashKeyRanges(options.shard_count), clock->NowMillis());
      !s.ok()) {
    return s;
  }
  return std::unique_ptr<Stream>(new Stream(std::move(options), std::move(core)));
}

Stream::Stream(StreamOptions options, std::shared_ptr<detail::StreamCore> core)
    : options_(std::move(options)), core_(std::move(core)), created_at_(core_->clock->Now()) {}

Stream::~Stream() {
  // Subscriptions that outlive the stream keep the core; they end at their next poll.
  core_->deleted.store(true, std::memory_order_seq_cst);
  core_->wake.WakeAll();
  core_->fanout->WakePutWaiters();
}

std::string_view Stream::ShardIdForHashKey(HashKey hash_key) const {
  detail::EpochGuard guard;
  return core_->shards.snapshot().Route(hash_key)->id;
}

Shard Stream::Describe(const detail::ShardState& shard) const {
  Shard s;
  s.shard_id = shard.id;
  s.parent_shard_id = shard.parent_shard_id;
  s.adjacent_parent_shard_id = shard.adjacent_parent_shard_id;
  s.hash_key_range = shard.range;
  s.sequence_number_range.starting_sequence_number = core_->MakeSequenceNumber(shard.index, 0, 0);
  if (shard.closed()) {
    const detail::LatestState& f = shard.final_state;
    s.sequence_number_range.ending_sequence_number =
        f.next_index > 0
            ? core_->MakeSequenceNumber(shard.index, f.last_record_position, f.next_index - 1)
            : s.sequence_number_range.starting_sequence_number;
  }
  return s;
}

absl::StatusOr<ShardIterator> Stream::GetShardIterator(const GetShardIteratorRequest& request) {
  if (absl::Status s = detail::CheckIteratorRequest(request); !s.ok()) return s;
  detail::StreamCore& core = *core_;
  const int64_t now_ms = core.clock->NowMillis();
  core.shards.Sweep(now_ms);
  const std::optional<uint64_t> index = detail::ResolveShardId(request.shard_id);
  if (!index) return detail::CouldNotFindShardError(core, request.shard_id);
  detail::EpochGuard guard;
  const detail::ShardState* shard = core.shards.snapshot().Find(*index);
  if (shard == nullptr || core.shards.Expired(*shard, now_ms)) {
    return detail::ShardNotFoundError(core, *index);
  }
  const detail::ShardLog& log = shard->log;
  switch (request.type) {
    case ShardIteratorType::kTrimHorizon:
    case ShardIteratorType::kAtTimestamp: {
      // Only AT_TIMESTAMP reads the Timestamp (CheckIteratorRequest made sure it has one).
      const std::optional<absl::Time> timestamp =
          request.type == ShardIteratorType::kAtTimestamp ? request.timestamp : std::nullopt;
      if (timestamp && absl::ToUnixMillis(*timestamp) > now_ms) {
        return InvalidArgumentError(fmt::format(
            "The timestampInMillis parameter cannot be greater than the "
            "currentTimestampInMillis. timestampInMillis: {}, currentTimestampInMillis: {}",
            absl::ToUnixMillis(*timestamp), now_ms));
      }
      const int64_t oldest_ms = core.shards.retention().OldestMs(now_ms);
      const int64_t t = timestamp ? std::max(absl::ToUnixMillis(*timestamp), oldest_ms) : oldest_ms;
      const detail::ShardLog::Seek seek = log.SeekTime(t);
      return core.MakeIterator(shard->index, seek.position, seek.next_index, seek.index_known,
                               now_ms);
    }
    case ShardIteratorType::kLatest: {
      const detail::LatestState latest = log.Latest();
      return core.MakeIterator(shard->index, latest.end, latest.next_index, true, now_ms);
    }
    case ShardIteratorType::kAtSequenceNumber:
    case ShardIteratorType::kAfterSequenceNumber:
      break;
  }
  const std::string_view number = request.starting_sequence_number;
  absl::StatusOr<SequenceNumber> n = SequenceNumber::Parse(number, "StartingSequenceNumber");
  if (!n.ok() || n->stream_tag != core.tag) {
    // A number of the right form from another stream: the service says where it came from.
    return InvalidArgumentError(fmt::format(
        "StartingSequenceNumber {} used in GetShardIterator on shard {} in stream {} under "
        "account {} is invalid{}.",
        number, shard->id, options_.stream_name, options_.account_id,
        n.ok() ? " because it did not come from this stream" : ""));
  }
  if (n->shard_index != shard->index) {
    return InvalidArgumentError(fmt::format(
        "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard "
        "with {}",
        FormatShardId(n->shard_index), shard->id));
  }
  const bool after = request.type == ShardIteratorType::kAfterSequenceNumber;
  if (n->position == 0 && n->record_index == SequenceNumber::kMaxRecordIndex) {
    // The continuation of a shard that held no record yet (Subscription::Continuation): its
    // first record, whenever it comes, whether retention has lapped it since or not.
    return core.MakeIterator(shard->index, 0, 0, true, now_ms);
  }
  switch (log.CheckRecord(n->position, n->record_index)) {
    case detail::PositionCheck::kNotARecord:
      // A ContinuationSequenceNumber (where the next record will be, with the index of the
      // record before it: a record's position, or the end of the log), or the shard's
      // StartingSequenceNumber while it is empty: no record to skip, so AT and AFTER both
      // start there.
      if (n->record_index < SequenceNumber::kMaxRecordIndex &&
          log.CheckRecord(n->position, n->record_index + 1) == detail::PositionCheck::kRecord) {
        return core.MakeIterator(shard->index, n->position, n->record_index + 1, true, now_ms);
      }
      if (const detail::LatestState latest = log.Latest();
          n->position == latest.end &&
          (n->record_index == latest.next_index || n->record_index + 1 == latest.next_index)) {
        return core.MakeIterator(shard->index, n->position, latest.next_index, true, now_ms);
      }
      // A continuation taken at the end of the log that producers have padded since: with
      // the index of the record after the padding, or (riffle's earlier form) the index of
      // the record before it.
      for (const uint64_t next : {n->record_index + 1, n->record_index}) {
        if (next <= SequenceNumber::kMaxRecordIndex && next >= n->record_index &&
            log.IsContinuation(n->position, next)) {
          return core.MakeIterator(shard->index, n->position, next, true, now_ms);
        }
      }
      return InvalidArgumentError(fmt::format(
          "StartingSequenceNumber {} does not identify a record of shard {} in stream {}.",
          request.starting_sequence_number, shard->id, options_.stream_name));
    case detail::PositionCheck::kTrimmed:
      // The record is gone: the read starts at the horizon and reports what it missed.
      return core.MakeIterator(shard->index, n->position, n->record_index + (after ? 1 : 0), true,
                               now_ms);
    case detail::PositionCheck::kRecord:
      break;
  }
  const uint64_t position = after ? log.RecordEnd(n->position) : n->position;
  return core.MakeIterator(shard->index, position, n->record_index + (after ? 1 : 0), true, now_ms);
}

std::optional<uint64_t> Stream::ClosedShardRecordCount(std::string_view shard_id) const {
  const std::optional<uint64_t> index = ParseShardId(shard_id);
  if (!index) return std::nullopt;
  return core_->shards.ClosedRecordCount(*index);
}

absl::StatusOr<ShardIterator> Stream::RenewShardIterator(const ShardIterator& iterator) {
  detail::StreamCore& core = *core_;
  if (iterator.stream_tag != core.tag || iterator.check != core.IteratorCheck(iterator)) {
    return detail::IteratorNotIssuedError();
  }
  const int64_t now_ms = core.clock->NowMillis();
  detail::EpochGuard guard;
  const detail::ShardState* shard = core.shards.snapshot().Find(iterator.shard_index);
  if (shard == nullptr || core.shards.Expired(*shard, now_ms)) {
    return detail::ShardNotFoundError(core, iterator.shard_index);
  }
  return core.MakeIterator(iterator.shard_index, iterator.position, iterator.next_record_index,
                           iterator.next_record_index_known, now_ms, iterator.arrival_floor_ms);
}

absl::StatusOr<std::optional<uint64_t>> detail::CheckListShardsRequest(
    const ListShardsRequest& request) {
  if (request.filter) {
    Violations v;
    CheckShardFilterType(*request.filter, v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
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
  return after;
}

absl::StatusOr<std::vector<Shard>> Stream::ListShards(const ListShardsRequest& request) const {
  absl::StatusOr<std::optional<uint64_t>> checked = detail::CheckListShardsRequest(request);
  if (!checked.ok()) return checked.status();
  const std::optional<uint64_t> after = *checked;
  detail::StreamCore& core = *core_;
  const int64_t now_ms = core.clock->NowMillis();
  core.shards.Sweep(now_ms);
  const int64_t horizon_ms = core.shards.retention().OldestMs(now_ms);
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
  detail::EpochGuard guard;
  // AT_LATEST lists the open shards of one snapshot, which tile the key space (a reshard
  // publishes its children before it marks the parents closed, so reading each shard's
  // close time instead could list both, or neither); when a reshard published another
  // snapshot meanwhile, a parent listed may have closed since: the listing is taken again.
  std::vector<const detail::ShardState*> open;
  for (const detail::RoutingSnapshot* snapshot = &core.shards.snapshot();;) {
    if (request.filter == ShardFilterType::kAtLatest) {
      open.assign(snapshot->open.begin(), snapshot->open.end());
      std::sort(open.begin(), open.end());
    }
    shards.clear();
    for (const detail::ShardState* s : snapshot->live) {
      if (core.shards.Expired(*s, now_ms)) continue;
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
            keep = std::binary_search(open.begin(), open.end(), s);
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
    const detail::RoutingSnapshot* now = &core.shards.snapshot();
    if (request.filter != ShardFilterType::kAtLatest || now == snapshot) return shards;
    snapshot = now;
  }
}

StreamDescriptionSummary Stream::DescribeStreamSummary() const {
  const int64_t now_ms = core_->clock->NowMillis();
  StreamDescriptionSummary d;
  d.stream_name = options_.stream_name;
  d.stream_arn = core_->arn;
  d.stream_status = CurrentStatus(now_ms);
  d.retention_period_hours = static_cast<int>(core_->shards.retention().retention_ms() / 3'600'000);
  d.stream_creation_timestamp = created_at_;
  {
    detail::EpochGuard guard;
    d.open_shard_count = static_cast<int>(core_->shards.snapshot().open.size());
  }
  d.consumer_count = core_->fanout->ConsumerCount();
  return d;
}

StreamStats Stream::Stats() {
  core_->shards.Sweep(core_->clock->NowMillis());
  const detail::ShardSetStats s = core_->shards.Stats();
  return StreamStats{s.open_shards, s.closed_shards, s.live_shard_logs, s.reserved_bytes,
                     s.shards_created};
}

absl::Status Stream::IncreaseStreamRetentionPeriod(int hours) {
  return ChangeRetention(hours, /*increase=*/true);
}

absl::Status Stream::DecreaseStreamRetentionPeriod(int hours) {
  return ChangeRetention(hours, /*increase=*/false);
}

absl::Status detail::CheckRetentionHours(int hours) {
  Violations v;
  v.Range("retentionPeriodHours", hours, 1, INT32_MAX);
  return v.ToStatus();
}

absl::Status Stream::ChangeRetention(int hours, bool increase) {
  if (absl::Status s = detail::CheckRetentionHours(hours); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(retention_mu_);
  detail::Retention& retention = core_->shards.retention();
  const int current = static_cast<int>(retention.retention_ms() / 3'600'000);
  if (hours < kMinRetentionHours) {
    return InvalidArgumentError(fmt::format(
        "Minimum allowed retention period is {} hours. Requested retention period ({} hours) is "
        "too short.",
        kMinRetentionHours, hours));
  }
  if (hours > kMaxRetentionHours) {
    return InvalidArgumentError(fmt::format(
        "Maximum allowed retention period is {} hours. Requested retention period ({} hours) is "
        "too long.",
        kMaxRetentionHours, hours));
  }
  if (increase ? hours < current : hours > current) {
    return InvalidArgumentError(fmt::format(
        "Requested retention period ({} hours) for stream {} can not be {} than existing "
        "retention period ({} hours). Use {}RetentionPeriod API.",
        hours, options_.stream_name, increase ? "shorter" : "longer", current,
        increase ? "Decrease" : "Increase"));
  }
  // Records already trimmed stay trimmed (the service: a longer period does not bring
  // expired data back).
  retention.Set(int64_t{hours} * 3'600'000, core_->clock->NowMillis());
  return absl::OkStatus();
}

}  // namespace riffle
