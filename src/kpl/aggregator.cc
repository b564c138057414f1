// Aggregator: user records packed by predicted shard, as the KPL packs them.
#include <utility>

#include "fmt/format.h"
#include "kpl/codec.h"
#include "riffle/detail/hash_key_cache.h"
#include "riffle/kpl.h"
#include "riffle/status.h"

namespace riffle::kpl {

std::string EncodeAggregate(std::span<const PutRecordsRequestEntry> records) {
  detail::AggregateBuilder builder;
  for (const PutRecordsRequestEntry& r : records) {
    builder.Add(r.partition_key, r.explicit_hash_key, r.data);
  }
  std::string out;
  builder.Finish(out);
  return out;
}

// The open aggregate of one predicted shard.
struct Aggregator::Bucket {
  std::string shard_id;
  HashKeyRange range;
  detail::AggregateBuilder builder;
  // The first user record, sent as itself when it stays alone.
  std::string first_key;
  std::string first_data;
  std::string first_explicit_hash_key;  // as the user gave it (may be empty)
  HashKey first_hash_key = 0;
  HashKey min_hash_key = 0;
  HashKey max_hash_key = 0;
  int64_t opened_ms = 0;
};

namespace {

Aggregate Lone(std::string shard_id, const PutRecordsRequestEntry& record, HashKey hash_key) {
  return Aggregate{std::move(shard_id),
                   std::string(record.partition_key),
                   FormatHashKey(hash_key),
                   std::string(record.data),
                   1,
                   hash_key,
                   hash_key};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Aggregator>> Aggregator::Create(AggregatorOptions options) {
  if (options.max_aggregate_bytes < 64 || options.max_aggregate_bytes > (uint64_t{1} << 20)) {
    return InvalidArgumentError(
        fmt::format("AggregationMaxSize is {}; it must be between 64 and 1048576 bytes.",
                    options.max_aggregate_bytes));
  }
  if (options.max_aggregate_records < 1) {
    return InvalidArgumentError("AggregationMaxCount must be at least 1.");
  }
  if (options.max_record_bytes < 1) {
    return InvalidArgumentError("The largest user record must be at least 1 byte.");
  }
  return std::unique_ptr<Aggregator>(new Aggregator(options));
}

Aggregator::Aggregator(AggregatorOptions options)
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : SystemClock::Default()) {}

Aggregator::~Aggregator() = default;

void Aggregator::SetShardMap(std::span<const Shard> shards, std::vector<Aggregate>& ready) {
  open_shards_.clear();
  for (const Shard& s : shards) {
    if (s.sequence_number_range.ending_sequence_number) continue;  // closed
    open_shards_[s.hash_key_range.starting_hash_key] = {s.hash_key_range, s.shard_id};
  }
  // Open aggregates of shards that are gone (or changed) are unpacked and packed again.
  std::vector<std::unique_ptr<Bucket>> stale;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const Bucket& b = *it->second;
    auto open = open_shards_.find(b.range.starting_hash_key);
    if (open != open_shards_.end() && open->second.first == b.range &&
        open->second.second == b.shard_id) {
      ++it;
      continue;
    }
    stale.push_back(std::move(it->second));
    it = buckets_.erase(it);
  }
  for (auto& b : stale) {
    buffered_records_ -= b->builder.count();
    if (b->builder.count() == 1) {
      const PutRecordsRequestEntry r{b->first_key, b->first_data, b->first_explicit_hash_key};
      (void)Add(r, ready);  // valid: it was added before
      continue;
    }
    if (b->builder.count() == 0) continue;
    std::string data;
    b->builder.Finish(data);
    std::vector<UserRecord> records;
    DecodeAggregate(data, records);
    for (const UserRecord& u : records) {
      (void)Add(PutRecordsRequestEntry{u.partition_key, u.data, u.explicit_hash_key}, ready);
    }
  }
}

absl::Status Aggregator::Add(const PutRecordsRequestEntry& record, std::vector<Aggregate>& ready) {
  if (absl::Status s = ValidatePartitionKey(record.partition_key); !s.ok()) return s;
  HashKey hash_key;
  if (!record.explicit_hash_key.empty()) {
    absl::StatusOr<HashKey> parsed = ParseHashKey(record.explicit_hash_key);
    if (!parsed.ok()) return parsed.status();
    hash_key = *parsed;
  } else {
    hash_key = riffle::detail::CachedMd5HashKey(record.partition_key);
  }
  if (record.partition_key.size() + record.data.size() > options_.max_record_bytes) {
    return InvalidArgumentError(
        fmt::format("The user record's partition key and data are {} bytes; the limit is {} bytes.",
                    record.partition_key.size() + record.data.size(), options_.max_record_bytes));
  }
  // The open shard whose range holds the hash key: the last starting at or below it.
  auto it = open_shards_.upper_bound(hash_key);
  if (it == open_shards_.begin() || !std::prev(it)->second.first.Contains(hash_key)) {
    ready.push_back(Lone({}, record, hash_key));  // no prediction: sent alone
    return absl::OkStatus();
  }
  --it;
  auto bucket = buckets_.find(it->second.second);
  if (bucket == buckets_.end()) {
    auto b = std::make_unique<Bucket>();
    b->shard_id = it->second.second;
    b->range = it->second.first;
    bucket = buckets_.emplace(b->shard_id, std::move(b)).first;
  }
  Bucket& b = *bucket->second;
  if (b.builder.count() > 0 && (b.builder.count() + 1 > options_.max_aggregate_records ||
                                b.builder.SizeWith(record.partition_key, record.explicit_hash_key,
                                                   record.data.size()) > AggregateBytesLimit())) {
    Close(b, ready);
  }
  if (b.builder.count() == 0) {
    b.first_key = record.partition_key;
    b.first_data = record.data;
    b.first_explicit_hash_key = record.explicit_hash_key;
    b.first_hash_key = b.min_hash_key = b.max_hash_key = hash_key;
    b.opened_ms = clock_.NowMillis();
  }
  b.builder.Add(record.partition_key, record.explicit_hash_key, record.data);
  b.min_hash_key = std::min(b.min_hash_key, hash_key);
  b.max_hash_key = std::max(b.max_hash_key, hash_key);
  ++buffered_records_;
  // Full: nothing more would fit (a record alone over the size limit goes out as itself).
  if (b.builder.count() >= options_.max_aggregate_records ||
      b.builder.size() >= AggregateBytesLimit()) {
    Close(b, ready);
  }
  return absl::OkStatus();
}

void Aggregator::Close(Bucket& b, std::vector<Aggregate>& ready) {
  const uint64_t n = b.builder.count();
  if (n == 0) return;
  buffered_records_ -= n;
  if (n == 1) {
    ready.push_back(
        Lone(b.shard_id, {b.first_key, b.first_data, b.first_explicit_hash_key}, b.first_hash_key));
    b.builder.Clear();
    return;
  }
  Aggregate& a = ready.emplace_back();
  a.shard_id = b.shard_id;
  a.partition_key = std::string(kAggregatePartitionKey);
  a.explicit_hash_key = FormatHashKey(b.first_hash_key);
  a.user_records = n;
  a.min_hash_key = b.min_hash_key;
  a.max_hash_key = b.max_hash_key;
  b.builder.Finish(a.data);
}

void Aggregator::Flush(std::vector<Aggregate>& ready) {
  for (auto& [id, b] : buckets_) Close(*b, ready);
}

void Aggregator::FlushOlderThan(absl::Duration age, std::vector<Aggregate>& ready) {
  if (buffered_records_ == 0) return;
  // Saturating: an infinite age closes nothing, a negatively infinite one everything.
  const int64_t cutoff = riffle::detail::AddMillis(clock_.NowMillis(), -age);
  for (auto& [id, b] : buckets_) {
    if (b->builder.count() > 0 && b->opened_ms <= cutoff) Close(*b, ready);
  }
}

}  // namespace riffle::kpl
