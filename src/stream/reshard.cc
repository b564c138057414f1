// Resharding: SplitShard, MergeShards and UpdateShardCount.
//
// Every reshard is built as a plan on a private copy of the open layout (new shards are
// not visible to anyone yet), then committed in an order that lets producers run on:
//   1. publish a Topology whose open set holds the children and not the parents;
//   2. close each parent's ring (ShardRing::Close waits for claims made before the close);
//   3. fill final_state and child_indexes, then store closed_at_ms with release order.
// A producer that routed with an older topology either claimed before step 2 (its record
// is in the parent, below the EndingSequenceNumber) or sees kClosed and, through the fence
// in Append, the topology of step 1, which routes it to the child that owns its key.
#include <algorithm>
#include <optional>
#include <utility>

#include "common/validation.h"
#include "fmt/format.h"
#include "riffle/stream.h"
#include "stream/fanout.h"
#include "stream/request_checks.h"
#include "stream/stream_errors.h"

namespace riffle {

// Children are created in `created` (indexes follow the stream's shards) and become part
// of the stream only when the plan is committed, so a rejected plan leaves no trace.
struct Stream::ReshardPlan {
  ReshardPlan(Stream& s, int64_t now) : stream(s), now_ms(now) {
    detail::EpochGuard guard;
    open = s.core_->shards.snapshot().open;
  }

  detail::ShardState* Add(HashKeyRange range, const std::string& parent,
                          const std::string* adjacent) {
    const uint64_t index = stream.core_->shards.shards_created() + created.size();
    std::shared_ptr<detail::ShardState> child = stream.core_->shards.NewShard(index, range, now_ms);
    if (child == nullptr) {
      out_of_memory = true;
      // A placeholder keeps the plan's shape; the plan is refused before it is committed.
      child = std::make_shared<detail::ShardState>(index, range, detail::Ring{}, 0, false, now_ms);
    }
    child->parent_shard_id = parent;
    if (adjacent != nullptr) child->adjacent_parent_shard_id = *adjacent;
    created.push_back(child);
    return child.get();
  }

  // Splits open[i] so that `key` starts the upper child. REQUIRES: start < key <= end.
  void Split(std::size_t i, HashKey key) {
    detail::ShardState* parent = open[i];
    detail::ShardState* lower =
        Add({parent->range.starting_hash_key, key - 1}, parent->id, nullptr);
    detail::ShardState* upper = Add({key, parent->range.ending_hash_key}, parent->id, nullptr);
    retired.push_back({parent, {lower->index, upper->index}});
    open[i] = lower;
    open.insert(open.begin() + static_cast<std::ptrdiff_t>(i) + 1, upper);
  }

  // Merges open[i] and open[i + 1]; `parent` is one of them, the other is the adjacent one.
  void Merge(std::size_t i, const detail::ShardState* parent) {
    detail::ShardState* lower = open[i];
    detail::ShardState* upper = open[i + 1];
    const detail::ShardState* adjacent = parent == lower ? upper : lower;
    detail::ShardState* child = Add({lower->range.starting_hash_key, upper->range.ending_hash_key},
                                    parent->id, &adjacent->id);
    retired.push_back({lower, {child->index}});
    retired.push_back({upper, {child->index}});
    open[i] = child;
    open.erase(open.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }

  // Index in `open` of the shard that holds `key`.
  std::size_t Holding(HashKey key) const {
    std::size_t i = 0;
    while (i + 1 < open.size() && open[i + 1]->range.starting_hash_key <= key) ++i;
    return i;
  }

  Stream& stream;
  const int64_t now_ms;
  bool out_of_memory = false;
  std::vector<detail::ShardState*> open;  // sorted by starting hash key
  std::vector<std::shared_ptr<detail::ShardState>> created;
  std::vector<std::pair<detail::ShardState*, std::vector<uint64_t>>> retired;  // with children
};

StreamStatus Stream::CurrentStatus(int64_t now_ms) const {
  if (now_ms < updating_until_ms_.load(std::memory_order_acquire)) return StreamStatus::kUpdating;
  return StreamStatus::kActive;
}

absl::Status Stream::CheckActiveForReshard(int64_t now_ms) const {
  const StreamStatus status = CurrentStatus(now_ms);
  if (status == StreamStatus::kActive) return absl::OkStatus();
  return detail::StreamNotActiveError(*core_, StreamStatusName(status));
}

absl::Status Stream::CommitReshard(ReshardPlan& plan) {
  if (plan.out_of_memory) {
    return LimitExceededError(fmt::format(
        "The system refused ring memory ({} bytes per shard) for the new shards of stream {}.",
        options_.ring_capacity_bytes, options_.stream_name));
  }
  detail::ShardSet::Commit commit{std::move(plan.open), std::move(plan.created),
                                  std::move(plan.retired)};
  // Lossless consumers gate a child from its first record, before anything routes to it.
  core_->shards.CommitReshard(commit, plan.now_ms,
                              [this](detail::ShardState& s) { core_->fanout->GateNewShard(s); });
  // A subscription asleep on a parent sees it closed and ends with its children, even when
  // no put follows to wake it.
  core_->wake.WakeAll();
  updating_until_ms_.store(detail::AddMillis(plan.now_ms, options_.reshard_duration),
                           std::memory_order_release);
  return absl::OkStatus();
}

void detail::AddSplitShardViolations(std::string_view shard_to_split,
                                     std::string_view new_starting_hash_key, Violations& v) {
  v.Pattern("newStartingHashKey", new_starting_hash_key, kHashKeyPattern,
            MatchesDecimalPattern(new_starting_hash_key, 39));
  v.Name("shardToSplit", shard_to_split);
}

absl::Status detail::CheckSplitShardRequest(std::string_view shard_to_split,
                                            std::string_view new_starting_hash_key) {
  Violations v;
  AddSplitShardViolations(shard_to_split, new_starting_hash_key, v);
  return v.ToStatus();
}

void detail::AddMergeShardsViolations(std::string_view shard_to_merge,
                                      std::string_view adjacent_shard_to_merge, Violations& v) {
  v.Name("shardToMerge", shard_to_merge);
  v.Name("adjacentShardToMerge", adjacent_shard_to_merge);
}

absl::Status detail::CheckMergeShardsRequest(std::string_view shard_to_merge,
                                             std::string_view adjacent_shard_to_merge) {
  Violations v;
  AddMergeShardsViolations(shard_to_merge, adjacent_shard_to_merge, v);
  return v.ToStatus();
}

absl::Status Stream::SplitShard(std::string_view shard_to_split,
                                std::string_view new_starting_hash_key) {
  std::lock_guard<std::mutex> lock(core_->shards.reshard_mu());
  const int64_t now_ms = core_->clock->NowMillis();
  core_->shards.Sweep(now_ms);
  if (absl::Status s = detail::CheckSplitShardRequest(shard_to_split, new_starting_hash_key);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckActiveForReshard(now_ms); !s.ok()) return s;
  const std::optional<uint64_t> index = detail::ResolveShardId(shard_to_split);
  // The snapshot is read under a guard; open shards stay valid without one while
  // reshard_mu is held (only reshards close shards, and only closed ones are freed).
  std::optional<detail::EpochGuard> guard(std::in_place);
  const detail::RoutingSnapshot& snapshot = core_->shards.snapshot();
  detail::ShardState* shard = index ? snapshot.Find(*index) : nullptr;
  if (shard == nullptr || core_->shards.Expired(*shard, now_ms)) {
    return detail::CouldNotFindShardError(*core_, index ? FormatShardId(*index) : shard_to_split);
  }
  if (shard->closed()) {
    return InvalidArgumentError(fmt::format(
        "Shard {} in stream {} under account {} has already been merged or split, and thus is "
        "not eligible for merging or splitting.",
        shard->id, options_.stream_name, options_.account_id));
  }
  // A key above 2^128 - 1 is outside every shard's range: the same refusal.
  absl::StatusOr<HashKey> key = ParseHashKey(new_starting_hash_key, "NewStartingHashKey");
  const HashKeyRange& range = shard->range;
  if (!key.ok() || range.ending_hash_key - range.starting_hash_key < 2 ||
      *key <= range.starting_hash_key + 1 || *key >= range.ending_hash_key) {
    return InvalidArgumentError(fmt::format(
        "NewStartingHashKey {} used in SplitShard() on shard {} in stream {} under account {} "
        "is not both greater than one plus the shard's StartingHashKey {} and less than the "
        "shard's EndingHashKey {}.",
        new_starting_hash_key, shard->id, options_.stream_name, options_.account_id,
        FormatHashKey(range.starting_hash_key), FormatHashKey(range.ending_hash_key)));
  }
  const std::size_t open_count = snapshot.open.size();
  if (open_count + 1 > static_cast<std::size_t>(options_.shard_limit)) {
    return LimitExceededError(fmt::format(
        "SplitShard would raise the open shard count of stream {} from {} to {}, above its "
        "ShardLimit of {}.",
        options_.stream_name, open_count, open_count + 1, options_.shard_limit));
  }
  const uint64_t created = core_->shards.shards_created();
  if (created + 2 > SequenceNumber::kMaxShardIndex + 1) {
    return LimitExceededError(
        fmt::format("Stream {} has created {} shards; shard indexes are limited to {}.",
                    options_.stream_name, created, SequenceNumber::kMaxShardIndex));
  }
  guard.reset();
  ReshardPlan plan(*this, now_ms);
  plan.Split(plan.Holding(range.starting_hash_key), *key);
  return CommitReshard(plan);
}

absl::Status Stream::MergeShards(std::string_view shard_to_merge,
                                 std::string_view adjacent_shard_to_merge) {
  std::lock_guard<std::mutex> lock(core_->shards.reshard_mu());
  const int64_t now_ms = core_->clock->NowMillis();
  core_->shards.Sweep(now_ms);
  if (absl::Status s = detail::CheckMergeShardsRequest(shard_to_merge, adjacent_shard_to_merge);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckActiveForReshard(now_ms); !s.ok()) return s;
  // The snapshot is read under a guard; open shards stay valid without one while
  // reshard_mu is held (only reshards close shards, and only closed ones are freed).
  std::optional<detail::EpochGuard> guard(std::in_place);
  const detail::RoutingSnapshot& snapshot = core_->shards.snapshot();
  detail::ShardState* shards[2];
  const std::string_view ids[2] = {shard_to_merge, adjacent_shard_to_merge};
  for (int i = 0; i < 2; ++i) {
    const std::optional<uint64_t> index = detail::ResolveShardId(ids[i]);
    shards[i] = index ? snapshot.Find(*index) : nullptr;
    if (shards[i] == nullptr || core_->shards.Expired(*shards[i], now_ms)) {
      return detail::CouldNotFindShardError(*core_, index ? FormatShardId(*index) : ids[i]);
    }
  }
  for (const detail::ShardState* s : shards) {
    if (s->closed()) {
      return InvalidArgumentError(fmt::format(
          "Shard {} in stream {} under account {} has already been merged or split, and thus "
          "is not eligible for merging or splitting.",
          s->id, options_.stream_name, options_.account_id));
    }
  }
  // ShardToMerge is the lower of the two: the service refuses the pair the other way round
  // with the same words as a pair that does not touch.
  const HashKeyRange& a = shards[0]->range;
  const HashKeyRange& b = shards[1]->range;
  const bool a_below =
      a.ending_hash_key != kMaxHashKey && a.ending_hash_key + 1 == b.starting_hash_key;
  if (!a_below) {
    return InvalidArgumentError(
        fmt::format("Shards {} and {} in stream {} under account {} are not an adjacent pair of "
                    "shards eligible for merging",
                    shards[0]->id, shards[1]->id, options_.stream_name, options_.account_id));
  }
  guard.reset();
  ReshardPlan plan(*this, now_ms);
  plan.Merge(plan.Holding(a.starting_hash_key), shards[0]);
  return CommitReshard(plan);
}

absl::StatusOr<UpdateShardCountResult> Stream::UpdateShardCount(int target_shard_count,
                                                                ScalingType scaling_type) {
  {
    // UNIFORM_SCALING is the only type the service offers.
    detail::Violations v;
    v.Range("targetShardCount", target_shard_count, 1, INT32_MAX);
    detail::CheckScalingType(scaling_type, v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  std::lock_guard<std::mutex> lock(core_->shards.reshard_mu());
  const int64_t now_ms = core_->clock->NowMillis();
  core_->shards.Sweep(now_ms);
  if (absl::Status s = CheckActiveForReshard(now_ms); !s.ok()) return s;
  int current = 0;
  {
    detail::EpochGuard guard;
    current = static_cast<int>(core_->shards.snapshot().open.size());
  }
  // The service's scaling limits are LimitExceededException.
  if (target_shard_count > options_.shard_limit) {
    return LimitExceededError(fmt::format(
        "Target shard count or number of open shards cannot be greater than {}. Current open "
        "shard count: {}, Target shard count: {}",
        options_.shard_limit, current, target_shard_count));
  }
  if (target_shard_count > 2 * current) {
    return LimitExceededError(fmt::format(
        "UpdateShardCount cannot scale up over double your current open shard count. Current "
        "open shard count: {}, Target shard count: {}",
        current, target_shard_count));
  }
  if (2 * target_shard_count < current) {
    return LimitExceededError(fmt::format(
        "UpdateShardCount cannot scale down below half your current open shard count. Current "
        "open shard count: {}, Target shard count: {}",
        current, target_shard_count));
  }
  ReshardPlan plan(*this, now_ms);
  const std::vector<HashKeyRange> targets = UniformHashKeyRanges(target_shard_count);
  // First make every target boundary a shard boundary, then merge the pieces of each
  // target range. A shard whose range already is a target range stays open untouched.
  for (std::size_t j = 1; j < targets.size(); ++j) {
    const HashKey boundary = targets[j].starting_hash_key;
    const std::size_t i = plan.Holding(boundary);
    if (plan.open[i]->range.starting_hash_key != boundary) plan.Split(i, boundary);
  }
  for (const HashKeyRange& target : targets) {
    const std::size_t i = plan.Holding(target.starting_hash_key);
    while (plan.open[i]->range.ending_hash_key != target.ending_hash_key) {
      plan.Merge(i, plan.open[i]);
    }
  }
  const uint64_t created = core_->shards.shards_created();
  if (created + plan.created.size() > SequenceNumber::kMaxShardIndex + 1) {
    return LimitExceededError(
        fmt::format("Stream {} has created {} shards; shard indexes are limited to {}.",
                    options_.stream_name, created, SequenceNumber::kMaxShardIndex));
  }
  if (absl::Status s = CommitReshard(plan); !s.ok()) return s;
  return UpdateShardCountResult{options_.stream_name, current, target_shard_count};
}

}  // namespace riffle
