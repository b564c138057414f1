// Kinesis: shards (ListShards with pagination, SplitShard, MergeShards, UpdateShardCount) and
// ON_DEMAND capacity.
#include <algorithm>

#include "account/kinesis_internal.h"
#include "fmt/format.h"
#include "riffle/detail/epoch.h"
#include "riffle/kinesis.h"
#include "riffle/status.h"
#include "stream/request_checks.h"
#include "stream/stream_errors.h"

namespace riffle {
namespace {

using detail::StreamAccess;
using detail::StreamEntry;
using detail::Violations;

constexpr int kListShardsMax = 1000;
constexpr int64_t kDayMs = 86'400'000;
constexpr std::size_t kShardCountUpdatesPerDay = 10;
constexpr int kOnDemandMinShards = 4;
constexpr uint64_t kShardBytesPerSecond = uint64_t{1} << 20;
constexpr uint64_t kShardRecordsPerSecond = 1000;

absl::Status OnDemandRefusal(const StreamEntry& e, std::string_view account_id,
                             std::string_view operation) {
  return ValidationError(fmt::format(
      "Stream {} under account {} is in ON_DEMAND mode: {} is only supported for data streams "
      "with the provisioned capacity mode.",
      e.name, account_id, operation));
}

// What Split, Merge and UpdateShardCount check once the stream is resolved: PROVISIONED,
// and not UPDATING for an account-side change (the Stream checks its own reshards).
absl::Status CheckReshardable(const detail::AccountCore& core, const StreamEntry& e,
                              std::string_view operation, int64_t now_ms) {
  if (e.mode.load(std::memory_order_relaxed) == StreamMode::kOnDemand) {
    return OnDemandRefusal(e, core.account_id(), operation);
  }
  if (now_ms < e.updating_until_ms.load(std::memory_order_acquire)) {
    return detail::NotActive(e.name, core.account_id(), StreamStatus::kUpdating);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ListShardsOutput> Kinesis::ListShards(const ListShardsInput& in) {
  {
    Violations v;
    if (in.max_results) v.Range("maxResults", *in.max_results, 1, 10000);
    if (!in.exclusive_start_shard_id.empty())
      v.Name("exclusiveStartShardId", in.exclusive_start_shard_id);
    if (in.shard_filter) {
      detail::CheckShardFilterType(in.shard_filter->type, v);
      // The member is a ShardId: the same length and pattern.
      if (!in.shard_filter->shard_id.empty())
        v.Name("shardFilter.shardId", in.shard_filter->shard_id);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const int64_t now_ms = core_.clock.NowMillis();
  const bool has_token = !in.next_token.empty();
  if (has_token) {
    if (!in.stream_name.empty()) {
      return InvalidArgumentError("NextToken and StreamName cannot be provided together.");
    }
    if (!in.exclusive_start_shard_id.empty()) {
      return InvalidArgumentError(
          "NextToken and ExclusiveStartShardId cannot be provided together.");
    }
    if (in.stream_creation_timestamp) {
      return InvalidArgumentError(
          "NextToken and StreamCreationTimestamp cannot be provided together.");
    }
    if (in.shard_filter) {
      return InvalidArgumentError("NextToken and ShardFilter cannot be provided together.");
    }
  } else if (in.stream_name.empty() && in.stream_arn.empty()) {
    return InvalidArgumentError("Either NextToken or StreamName should be provided.");
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  ListShardsRequest request;
  std::optional<uint64_t> after;
  if (has_token) {
    absl::StatusOr<detail::PageToken> t =
        detail::DecodePageToken(in.next_token, 'S', core_.secret, now_ms);
    if (!t.ok()) return t.status();
    e = registry_->FindByTag(t->tag);
    if (e == nullptr || e->GoneAt(now_ms)) {
      const std::optional<std::string> name = registry_->DeletedName(t->tag);
      return detail::StreamNotFound(name ? *name : e != nullptr ? e->name : "", core_.account_id());
    }
    if (!in.stream_arn.empty() && in.stream_arn != e->arn) {
      return InvalidArgumentError(
          fmt::format("StreamARN {} is not the stream of the NextToken.", in.stream_arn));
    }
    // AFTER_SHARD_ID is carried by `after` itself.
    if (t->filter >= 0 && t->filter != static_cast<int>(ShardFilterType::kAfterShardId)) {
      request.filter = static_cast<ShardFilterType>(t->filter);
      if (request.filter == ShardFilterType::kAtTimestamp ||
          request.filter == ShardFilterType::kFromTimestamp) {
        request.timestamp = absl::FromUnixMillis(t->filter_ms);
      }
    }
    after = t->after;
  } else {
    if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                               StreamAccess::kDescribe, &e);
        !s.ok()) {
      return s;
    }
    if (now_ms < e->active_at_ms) {
      return detail::NotActive(e->name, core_.account_id(), StreamStatus::kCreating);
    }
    if (in.stream_creation_timestamp &&
        absl::ToUnixMillis(*in.stream_creation_timestamp) !=
            absl::ToUnixMillis(e->stream->DescribeStreamSummary().stream_creation_timestamp)) {
      return detail::StreamNotFound(e->name, core_.account_id());  // another stream of that name
    }
    if (in.shard_filter) {
      request.filter = in.shard_filter->type;
      request.timestamp = in.shard_filter->timestamp;
      // The service reads ShardFilter.ShardId with AFTER_SHARD_ID only.
      if (in.shard_filter->type == ShardFilterType::kAfterShardId) {
        request.shard_id = in.shard_filter->shard_id;
      }
    }
    if (!in.exclusive_start_shard_id.empty()) {
      after = detail::ResolveShardId(in.exclusive_start_shard_id);
      if (!after) after = UINT64_MAX;  // no shard has that id or any after it
    }
  }
  if (absl::Status s = detail::Admit(core_, "ListShards", e); !s.ok()) return s;
  absl::StatusOr<std::vector<Shard>> shards = e->stream->ListShards(request);
  if (!shards.ok()) return shards.status();
  const std::size_t limit =
      static_cast<std::size_t>(std::min(in.max_results.value_or(kListShardsMax), kListShardsMax));
  ListShardsOutput out;
  uint64_t last = 0;
  bool more = false;
  for (Shard& s : *shards) {
    const uint64_t index = *ParseShardId(s.shard_id);
    if (after && index <= *after) continue;
    if (out.shards.size() == limit) {
      more = true;
      break;
    }
    last = index;
    out.shards.push_back(std::move(s));
  }
  if (more) {
    detail::PageToken t;
    t.kind = 'S';
    t.tag = e->tag;
    t.issued_ms = now_ms;
    t.after = last;
    if (request.filter) {
      t.filter = static_cast<int>(*request.filter);
      if (request.timestamp) t.filter_ms = absl::ToUnixMillis(*request.timestamp);
    }
    out.next_token = detail::EncodePageToken(t, core_.secret);
  }
  return out;
}

absl::Status Kinesis::SplitShard(const SplitShardInput& in) {
  // The request's shape first, StreamName's among it, as the service checks it (the stream
  // checks it again).
  Violations fields;
  detail::AddSplitShardViolations(in.shard_to_split, in.new_starting_hash_key, fields);
  if (absl::Status s =
          detail::AdmitBeforeLock(core_, *registry_, "SplitShard", in.stream_name, in.stream_arn,
                                  StreamAccess::kModify, in.shard_to_split, &fields);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(registry_->mu());
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                             StreamAccess::kModify, &e, &fields);
      !s.ok()) {
    return s;
  }
  const int64_t now_ms = core_.clock.NowMillis();
  if (absl::Status s = CheckReshardable(core_, *e, "SplitShard", now_ms); !s.ok()) return s;
  const int open = detail::AccountOpenShards(*registry_, now_ms);
  if (open + 1 > core_.shard_limit) return detail::ShardQuotaError(core_, open, 1);
  return e->stream->SplitShard(in.shard_to_split, in.new_starting_hash_key);
}

absl::Status Kinesis::MergeShards(const MergeShardsInput& in) {
  Violations fields;  // the request's shape first, as for SplitShard
  detail::AddMergeShardsViolations(in.shard_to_merge, in.adjacent_shard_to_merge, fields);
  if (absl::Status s =
          detail::AdmitBeforeLock(core_, *registry_, "MergeShards", in.stream_name, in.stream_arn,
                                  StreamAccess::kModify, in.shard_to_merge, &fields);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(registry_->mu());
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                             StreamAccess::kModify, &e, &fields);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckReshardable(core_, *e, "MergeShards", core_.clock.NowMillis());
      !s.ok()) {
    return s;
  }
  return e->stream->MergeShards(in.shard_to_merge, in.adjacent_shard_to_merge);
}

absl::StatusOr<UpdateShardCountOutput> Kinesis::UpdateShardCount(const UpdateShardCountInput& in) {
  {
    Violations v;
    v.Range("targetShardCount", in.target_shard_count, 1, INT32_MAX);
    detail::CheckScalingType(in.scaling_type, v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (absl::Status s =
          detail::AdmitBeforeLock(core_, *registry_, "UpdateShardCount", in.stream_name,
                                  in.stream_arn, StreamAccess::kModify);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(registry_->mu());
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                             StreamAccess::kModify, &e);
      !s.ok()) {
    return s;
  }
  const int64_t now_ms = core_.clock.NowMillis();
  if (absl::Status s = CheckReshardable(core_, *e, "UpdateShardCount", now_ms); !s.ok()) return s;
  if (core_.limits) {
    std::lock_guard<std::mutex> entry_lock(e->mu);
    if (!e->shard_count_updates.Allows(now_ms, kDayMs, kShardCountUpdatesPerDay)) {
      return LimitExceededError(fmt::format(
          "UpdateShardCount has scaled stream {} under account {} {} times in the last 24 "
          "hours, the most allowed.",
          e->name, core_.account_id(), kShardCountUpdatesPerDay));
    }
  }
  const int current = e->stream->DescribeStreamSummary().open_shard_count;
  const int open = detail::AccountOpenShards(*registry_, now_ms);
  if (in.target_shard_count - current > core_.shard_limit - open) {
    return detail::ShardQuotaError(core_, open, in.target_shard_count - current);
  }
  absl::StatusOr<UpdateShardCountResult> r =
      e->stream->UpdateShardCount(in.target_shard_count, in.scaling_type);
  if (!r.ok()) return r.status();
  if (core_.limits) {
    std::lock_guard<std::mutex> entry_lock(e->mu);
    e->shard_count_updates.Add(now_ms);
  }
  return UpdateShardCountOutput{r->stream_name, r->current_shard_count, r->target_shard_count,
                                e->arn};
}

void Kinesis::MeterWrites(StreamEntry& e, uint64_t bytes, uint64_t records) {
  const int64_t now_ms = core_.clock.NowMillis();
  {
    std::lock_guard<std::mutex> lock(e.mu);
    if (!e.meter.Add(now_ms, bytes, records)) return;  // the same clock second
  }
  // A second closed: the capacity target is twice the peak second of the last 30 days, at
  // least 4 shards; the stream grows towards it, at most doubling per step.
  std::lock_guard<std::mutex> lock(registry_->mu());
  uint64_t peak_bytes = 0, peak_records = 0;
  {
    std::lock_guard<std::mutex> entry_lock(e.mu);
    e.meter.Peak(now_ms, &peak_bytes, &peak_records);
  }
  const uint64_t by_bytes = (2 * peak_bytes + kShardBytesPerSecond - 1) / kShardBytesPerSecond;
  const uint64_t by_records =
      (2 * peak_records + kShardRecordsPerSecond - 1) / kShardRecordsPerSecond;
  const int target = static_cast<int>(std::min<uint64_t>(
      std::max<uint64_t>({kOnDemandMinShards, by_bytes, by_records}), INT32_MAX / 2));
  const int open = e.stream->DescribeStreamSummary().open_shard_count;
  if (target <= open) return;
  const int room = core_.shard_limit - detail::AccountOpenShards(*registry_, now_ms);
  const int step =
      std::min({target, 2 * open, core_.options.quotas.shards_per_stream, open + room});
  if (step <= open) return;
  // UPDATING (a reshard's emulated duration) refuses it: tried again when the next second
  // closes.
  (void)e.stream->UpdateShardCount(step);
}

}  // namespace riffle
