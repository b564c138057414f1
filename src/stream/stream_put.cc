// Stream: the put path's checks and its cold paths, and PutRecords (its entries hashed in
// chunks). PutRecord itself is inline in riffle/stream.h.
#include <algorithm>

#include "common/md5_lanes.h"
#include "common/validation.h"
#include "fmt/format.h"
#include "riffle/detail/hash_key_cache.h"
#include "riffle/stream.h"
#include "stream/fanout.h"
#include "stream/request_checks.h"

namespace riffle {
namespace {

constexpr int kMaxPutRecordsEntries = 500;
constexpr uint64_t kMaxPutRecordsBytes = uint64_t{5} << 20;

// The checks of one PutRecords entry that refuse the whole request, recorded as the service
// words them. Members print as records.<1-based index>.member.<name>.
void CheckEntry(const PutRecordsRequestEntry& e, std::size_t index, uint64_t max_record_bytes,
                detail::Violations& v) {
  auto member = [&](std::string_view name) {
    return fmt::format("records.{}.member.{}", index + 1, name);
  };
  const std::string_view key = e.partition_key;
  const int64_t chars = detail::CountUtf8CodePoints(key);
  // Nothing to record, nothing formatted: a valid request allocates nothing here.
  if ((chars < 0 || (chars >= static_cast<int64_t>(kMinPartitionKeyChars) &&
                     chars <= static_cast<int64_t>(kMaxPartitionKeyChars))) &&
      (e.explicit_hash_key.empty() || detail::MatchesDecimalPattern(e.explicit_hash_key, 39)) &&
      e.data.size() <= max_record_bytes) {
    return;
  }
  if (chars >= 0) {
    v.MinLength(member("partitionKey"), key, static_cast<std::size_t>(chars),
                kMinPartitionKeyChars);
    v.MaxLength(member("partitionKey"), key, static_cast<std::size_t>(chars),
                kMaxPartitionKeyChars);
  }
  if (!e.explicit_hash_key.empty()) {
    v.Pattern(member("explicitHashKey"), e.explicit_hash_key, detail::kHashKeyPattern,
              detail::MatchesDecimalPattern(e.explicit_hash_key, 39));
  }
  v.MaxBlobLength(member("data"), e.data.size(), max_record_bytes);
}

// PutRecords puts its entries in chunks of this many: the hash keys of a chunk are
// computed first, the MD5 of every key the thread's cache does not hold together
// (common/md5_lanes.h), and one clock read stamps the chunk's records. A chunk fits the
// cache's 256 entries with room to spare.
constexpr std::size_t kPutChunk = 32;

// The hash keys of a chunk of checked entries, for those without an explicit hash key.
void ChunkHashKeys(std::span<const PutRecordsRequestEntry> chunk, RoutingMode routing,
                   HashKey* out) {
  using Cache = detail::Md5HashKeyCache;
  constexpr std::size_t kUncached = SIZE_MAX;
  Cache& cache = detail::ThreadMd5HashKeyCache();
  detail::Md5Job jobs[kPutChunk];
  std::size_t job_entry[kPutChunk];
  std::size_t job_set[kPutChunk];
  std::size_t n = 0;
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    const std::string_view key = chunk[i].partition_key;
    if (!chunk[i].explicit_hash_key.empty()) continue;
    if (routing == RoutingMode::kXxh3) {
      out[i] = Xxh3HashKey(key);
      continue;
    }
    std::size_t set = kUncached;
    if (key.size() <= Cache::kMaxKeyBytes) {
      set = Cache::IndexOf(key);
      if (cache.Find(key, set, &out[i])) continue;
    }
    jobs[n] = detail::Md5Job{};
    jobs[n].data = reinterpret_cast<const unsigned char*>(key.data());
    jobs[n].size = key.size();
    job_entry[n] = i;
    job_set[n] = set;
    ++n;
  }
  if (n > 1) detail::Md5Jobs(jobs, n);
  for (std::size_t j = 0; j < n; ++j) {
    const std::string_view key = chunk[job_entry[j]].partition_key;
    // A single key is as cheap on its own.
    const HashKey hash_key = n > 1 ? detail::Md5JobHashKey(jobs[j]) : Md5HashKey(key);
    out[job_entry[j]] = hash_key;
    if (job_set[j] != kUncached) cache.PrimeSet(job_set[j], key, hash_key);
  }
}

}  // namespace

void detail::AddPutRecordViolations(const PutRecordRequest& request, uint64_t max_record_bytes,
                                    Violations& v) {
  const std::string_view key = request.partition_key;
  const std::string_view seq = request.sequence_number_for_ordering;
  const std::string_view ehk = request.explicit_hash_key;
  // In the order the service lists them.
  if (!seq.empty()) {
    v.Pattern("sequenceNumberForOrdering", seq, detail::kSequenceNumberPattern,
              detail::MatchesDecimalPattern(seq, 129));
  }
  const int64_t chars = detail::CountUtf8CodePoints(key);
  if (chars >= 0) {
    v.MinLength("partitionKey", key, static_cast<std::size_t>(chars), kMinPartitionKeyChars);
    v.MaxLength("partitionKey", key, static_cast<std::size_t>(chars), kMaxPartitionKeyChars);
  }
  if (!ehk.empty()) {
    v.Pattern("explicitHashKey", ehk, detail::kHashKeyPattern,
              detail::MatchesDecimalPattern(ehk, 39));
  }
  v.MaxBlobLength("data", request.data.size(), max_record_bytes);
}

absl::Status detail::CheckPutRecordRequest(const PutRecordRequest& request,
                                           uint64_t max_record_bytes) {
  const std::string_view key = request.partition_key;
  const std::string_view ehk = request.explicit_hash_key;
  // The member constraints first.
  detail::Violations v;
  AddPutRecordViolations(request, max_record_bytes, v);
  if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  const int64_t chars = detail::CountUtf8CodePoints(key);
  if (chars < 0) return detail::PartitionKeyError(chars);  // bytes that are not UTF-8
  const uint64_t size = key.size() + request.data.size();
  if (size > max_record_bytes) {
    return InvalidArgumentError(
        fmt::format("Record size is {} bytes (partition key + data); it must be at most {} bytes "
                    "(MaxRecordSizeBytes).",
                    size, max_record_bytes));
  }
  if (!ehk.empty() && !ParseHashKey(ehk).ok()) {
    return InvalidArgumentError(fmt::format(
        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified "
        "value was {}",
        ehk));
  }
  return absl::OkStatus();
}

absl::Status Stream::PutError(const PutRecordRequest& request) const {
  if (absl::Status s = detail::CheckPutRecordRequest(request, options_.max_record_size_bytes);
      !s.ok()) {
    return s;
  }
  const std::string_view seq = request.sequence_number_for_ordering;
  if (!seq.empty()) {
    // Every later put in this stream gets a larger number than any of its own: shard
    // indexes of children are larger than their parents', and positions grow in a shard.
    auto n = SequenceNumber::Parse(seq, "SequenceNumberForOrdering");
    if (!n.ok() || n->stream_tag != core_->tag) {
      return InvalidArgumentError(fmt::format(
          "ExclusiveMinimumSequenceNumber {} used in PutRecord on stream {} under account {} is "
          "invalid.",
          seq, options_.stream_name, options_.account_id));
    }
  }
  return absl::OkStatus();
}

absl::Status Stream::ChargeWrite(const detail::ShardState& shard, uint64_t bytes, int64_t now_ms) {
  return core_->fanout->ChargeWrite(shard.index, bytes, now_ms);
}

void Stream::RefundWrite(const detail::ShardState& shard, uint64_t bytes) {
  core_->fanout->RefundWrite(shard.index, bytes);
}

absl::Status Stream::ShardFullError(const detail::ShardState& shard) const {
  return ProvisionedThroughputExceededError(fmt::format(
      "Rate exceeded for shard {} in stream {}: a lossless reader has not yet read the space "
      "this record needs in the shard's {}-byte ring.",
      shard.id, options_.stream_name, shard.log.capacity()));
}

void detail::AddPutRecordsViolations(std::span<const PutRecordsRequestEntry> entries,
                                     uint64_t max_record_bytes, Violations& v) {
  if (entries.empty() || entries.size() > kMaxPutRecordsEntries) {
    // The service prints the list of entries; riffle prints how many there are.
    v.AddRendered("records", fmt::format("[{} entries]", entries.size()),
                  entries.empty() ? "Member must have length greater than or equal to 1"
                                  : fmt::format("Member must have length less than or equal to {}",
                                                kMaxPutRecordsEntries));
  }
  for (std::size_t i = 0; i < entries.size() && v.count() < detail::Violations::kMaxListed; ++i) {
    CheckEntry(entries[i], i, max_record_bytes, v);
  }
}

absl::Status detail::CheckPutRecordsRequest(std::span<const PutRecordsRequestEntry> entries,
                                            uint64_t max_record_bytes) {
  // The fast pass: sizes and ASCII keys, as PutRecord checks them. Anything else goes to the
  // full pass, which names every violation.
  const uint64_t max_record = max_record_bytes;
  bool unusual = entries.empty() || entries.size() > kMaxPutRecordsEntries;
  uint64_t total = 0;
  for (const auto& e : entries) {
    total += e.partition_key.size() + e.data.size();
    unusual |=
        e.partition_key.size() + e.data.size() > max_record ||
        !ValidatePartitionKey(e.partition_key).ok() ||
        (!e.explicit_hash_key.empty() && (!detail::MatchesDecimalPattern(e.explicit_hash_key, 39) ||
                                          !ParseHashKey(e.explicit_hash_key).ok()));
  }
  if (!unusual && total <= kMaxPutRecordsBytes) return absl::OkStatus();
  detail::Violations v;
  AddPutRecordsViolations(entries, max_record, v);
  if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  for (const auto& e : entries) {
    if (absl::Status s = CheckPutRecordRequest(
            PutRecordRequest{e.partition_key, e.data, e.explicit_hash_key, {}}, max_record);
        !s.ok()) {
      return s;
    }
  }
  if (total > kMaxPutRecordsBytes) {
    // The service's words (the limit is 5 MiB, partition keys included).
    return InvalidArgumentError("Records size exceeds 5 MB limit");
  }
  return absl::OkStatus();
}

absl::Status Stream::CheckPutRecords(std::span<const PutRecordsRequestEntry> entries) const {
  return detail::CheckPutRecordsRequest(entries, options_.max_record_size_bytes);
}

absl::Status Stream::PutRecords(std::span<const PutRecordsRequestEntry> entries,
                                PutRecordsResult& out) {
  if (absl::Status s = CheckPutRecords(entries); !s.ok()) return s;
  out.failed_record_count = 0;
  out.records.resize(entries.size());
  detail::StreamCore& core = *core_;
  HashKey hash_keys[kPutChunk];
  for (std::size_t begin = 0; begin < entries.size(); begin += kPutChunk) {
    const std::span<const PutRecordsRequestEntry> chunk =
        entries.subspan(begin, std::min(kPutChunk, entries.size() - begin));
    ChunkHashKeys(chunk, core.routing, hash_keys);
    const int64_t now_ms = core.PutTimeMillis();
    detail::EpochGuard guard;
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      const PutRecordsRequestEntry& e = chunk[i];
      PutRecordsResultEntry& r = out.records[begin + i];
      // Every entry was checked: an explicit hash key takes PutRecord's own path (it parses
      // the key), the others are routed by the hash key computed above.
      absl::StatusOr<PutRecordResult> put =
          e.explicit_hash_key.empty()
              ? PutHashed(e.partition_key, e.data, hash_keys[i], now_ms)
              : PutRecord(PutRecordRequest{e.partition_key, e.data, e.explicit_hash_key, {}});
      if (put.ok()) [[likely]] {
        r.shard_id = put->shard_id;
        r.sequence_number = put->sequence_number;
        r.error_code = {};
        r.error_message.clear();
      } else {
        // Only a throttle (or a full ring) can fail a checked entry.
        ++out.failed_record_count;
        r.shard_id = {};
        r.sequence_number.reset();
        r.error_code = ErrorName(put.status());
        const absl::string_view m = put.status().message();
        r.error_message.assign(m.data(), m.size());
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PutRecordsResult> Stream::PutRecords(
    std::span<const PutRecordsRequestEntry> entries) {
  PutRecordsResult result;
  if (absl::Status s = PutRecords(entries, result); !s.ok()) return s;
  return result;
}

}  // namespace riffle
