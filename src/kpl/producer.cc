// Producer: a host-driven KPL over Stream::PutRecords.
#include <utility>

#include "fmt/format.h"
#include "riffle/kpl.h"
#include "riffle/status.h"

namespace riffle::kpl {
namespace {

// PutRecords' own limits.
constexpr size_t kMaxPutRecordsEntries = 500;
constexpr uint64_t kMaxPutRecordsBytes = uint64_t{5} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(ProducerOptions options) {
  if (options.stream == nullptr) return InvalidArgumentError("ProducerOptions.stream is required.");
  if (options.max_buffered_time < absl::ZeroDuration()) {
    return InvalidArgumentError("RecordMaxBufferedTime must not be negative.");
  }
  if (options.aggregation.clock == nullptr) options.aggregation.clock = &options.stream->clock();
  absl::StatusOr<std::unique_ptr<Aggregator>> aggregator = Aggregator::Create(options.aggregation);
  if (!aggregator.ok()) return aggregator.status();
  std::unique_ptr<Producer> producer(new Producer(std::move(options), *std::move(aggregator)));
  if (absl::Status s = producer->RefreshShards(); !s.ok()) return s;
  return producer;
}

Producer::Producer(ProducerOptions options, std::unique_ptr<Aggregator> aggregator)
    : options_(std::move(options)), aggregator_(std::move(aggregator)) {
  if (!options_.put_records) {
    Stream* stream = options_.stream;
    options_.put_records = [stream](std::span<const PutRecordsRequestEntry> entries) {
      return stream->PutRecords(entries);
    };
  }
}

Producer::~Producer() = default;

absl::Status Producer::RefreshShards() {
  absl::StatusOr<std::vector<Shard>> shards = options_.stream->ListShards();
  if (!shards.ok()) return shards.status();
  ranges_.clear();
  for (const Shard& s : *shards) ranges_[s.shard_id] = s.hash_key_range;
  closed_.clear();
  aggregator_->SetShardMap(*shards, closed_);
  for (Aggregate& a : closed_) ready_.push_back(std::move(a));
  return absl::OkStatus();
}

std::optional<HashKeyRange> Producer::RangeOf(std::string_view shard_id) {
  auto it = ranges_.find(shard_id);
  if (it == ranges_.end()) {
    if (absl::Status s = RefreshShards(); !s.ok()) {
      status_ = s;
      return std::nullopt;
    }
    it = ranges_.find(shard_id);
    if (it == ranges_.end()) return std::nullopt;
  }
  return it->second;
}

absl::Status Producer::Add(const PutRecordsRequestEntry& record) {
  closed_.clear();
  absl::Status s = aggregator_->Add(record, closed_);
  if (!s.ok()) return s;
  ++stats_.user_records_added;
  for (Aggregate& a : closed_) ready_.push_back(std::move(a));
  return absl::OkStatus();
}

void Producer::Flush() {
  closed_.clear();
  aggregator_->Flush(closed_);
  for (Aggregate& a : closed_) ready_.push_back(std::move(a));
}

uint64_t Producer::pending_user_records() const {
  return stats_.user_records_added - stats_.user_records_put;
}

void Producer::Repack(const Aggregate& aggregate) {
  std::vector<UserRecord> records;
  DecodeAggregate(aggregate.data, records);
  closed_.clear();
  for (const UserRecord& u : records) {
    (void)aggregator_->Add({u.partition_key, u.data, u.explicit_hash_key}, closed_);
  }
  // The re-packed records were due already (sent once): closed at once, not left in open
  // aggregates for a new buffering window or the next Flush (a Flush before the reshard
  // promised the next Polls would send them).
  aggregator_->Flush(closed_);
  for (Aggregate& a : closed_) ready_.push_back(std::move(a));
}

size_t Producer::Poll() {
  closed_.clear();
  aggregator_->FlushOlderThan(options_.max_buffered_time, closed_);
  for (Aggregate& a : closed_) ready_.push_back(std::move(a));
  if (ready_.empty()) {
    status_ = absl::OkStatus();
    return 0;
  }
  // One PutRecords of what is ready, in order.
  std::vector<Aggregate> batch;
  std::vector<PutRecordsRequestEntry> entries;
  uint64_t bytes = 0;
  while (!ready_.empty() && batch.size() < kMaxPutRecordsEntries) {
    const Aggregate& a = ready_.front();
    const uint64_t size = a.partition_key.size() + a.data.size();
    if (!batch.empty() && bytes + size > kMaxPutRecordsBytes) break;
    bytes += size;
    batch.push_back(std::move(ready_.front()));
    ready_.pop_front();
  }
  entries.reserve(batch.size());
  for (const Aggregate& a : batch) entries.push_back(a.Entry());
  ++stats_.put_records_calls;
  absl::StatusOr<PutRecordsResult> result = options_.put_records(entries);
  if (!result.ok() || result->records.size() != batch.size()) {
    status_ = result.ok() ? InternalFailureError(
                                "PutRecords answered for another number of "
                                "records than it was given.")
                          : result.status();
    for (size_t i = batch.size(); i-- > 0;) ready_.push_front(std::move(batch[i]));
    return 0;
  }
  status_ = absl::OkStatus();
  size_t acknowledged = 0;
  std::vector<Aggregate> retry;
  for (size_t i = 0; i < batch.size(); ++i) {
    const PutRecordsResultEntry& r = result->records[i];
    Aggregate& a = batch[i];
    if (!r.sequence_number) {
      ++stats_.failed_entries;
      retry.push_back(std::move(a));
      continue;
    }
    if (a.user_records > 1) {
      // The KCL drops an aggregate that holds a user record outside the shard's range.
      const std::optional<HashKeyRange> range = RangeOf(r.shard_id);
      if (!range || !range->Contains(a.min_hash_key) || !range->Contains(a.max_hash_key)) {
        ++stats_.misplaced_aggregates;
        if (absl::Status s = RefreshShards(); !s.ok()) status_ = s;
        Repack(a);
        continue;
      }
    }
    ++stats_.kinesis_records_put;
    stats_.user_records_put += a.user_records;
    acknowledged += a.user_records;
  }
  for (size_t i = retry.size(); i-- > 0;) ready_.push_front(std::move(retry[i]));
  return acknowledged;
}

}  // namespace riffle::kpl
