// The Consumer's lease pass: which shards this worker takes, hands back or loses, where a
// new application starts, and the checkpoints of children and finished parents. Which
// shards may be processed follows the lineage engine (consumer/lineage.h).
#include <algorithm>
#include <set>
#include <utility>

#include "consumer/consumer_internal.h"
#include "consumer/lineage.h"
#include "fmt/format.h"
#include "riffle/consumer.h"
#include "riffle/status.h"

namespace riffle {

using detail::CallProcessor;
using detail::IsPositionCheckpoint;

void Consumer::SeedChildren(std::string_view parent) {
  // As the KCL creates a child's lease at TRIM_HORIZON when its parent ends: the fact that
  // this application read the parent would otherwise live only in the parent's SHARD_END,
  // and go when the parent ages out of the listing (a restart would then start the children
  // at the initial position, LATEST skipping what they hold).
  absl::StatusOr<std::vector<Shard>> shards = stream_.ListShards(ListShardsRequest{});
  if (!shards.ok()) return;  // the children then start after their listed parents, as before
  const std::string& app = options_.application_name;
  for (const Shard& child : *shards) {
    if (child.parent_shard_id != parent && child.adjacent_parent_shard_id != parent) continue;
    absl::StatusOr<std::optional<std::string>> c =
        options_.checkpoint_store->GetCheckpoint(app, child.shard_id);
    if (c.ok() && !c->has_value()) {
      (void)options_.checkpoint_store->PutCheckpoint(app, child.shard_id, kTrimHorizonCheckpoint);
    }
  }
}

bool Consumer::TakeShard(const std::string& shard_id, const std::optional<std::string>& checkpoint,
                         bool after_parents) {
  auto task = std::make_unique<ShardTask>();
  task->shard_id = shard_id;
  task->checkpoint = checkpoint;
  task->after_parents = after_parents;
  // A checkpoint that cannot be this shard's (not a number, or another shard's) is judged
  // before Initialize, so that a processor is never told it resumes where it will not.
  if (options_.invalid_checkpoint == InvalidCheckpointPolicy::kRestartFromInitialPosition &&
      checkpoint && *checkpoint != kShardEndCheckpoint && !IsPositionCheckpoint(checkpoint)) {
    std::string_view number = *checkpoint;
    if (const auto sub = SplitSubRecordCheckpoint(*checkpoint)) number = sub->first;
    const absl::StatusOr<SequenceNumber> parsed = SequenceNumber::Parse(number);
    if (!parsed.ok() || ParseShardId(shard_id) != parsed->shard_index) {
      ++invalid_checkpoints_;
      task->checkpoint.reset();
    }
  }
  if (CallProcessor(this, status_, "ConsumerOptions.processor_factory", shard_id,
                    [&] { task->processor = options_.processor_factory(); }) &&
      task->processor == nullptr) {
    status_ = InvalidArgumentError(
        fmt::format("ConsumerOptions.processor_factory returned nullptr for shard {}; it must "
                    "return a RecordProcessor.",
                    shard_id));
  }
  if (task->processor == nullptr ||
      !CallProcessor(this, status_, "RecordProcessor::Initialize", shard_id, [&] {
        task->processor->Initialize(
            shard_id, IsPositionCheckpoint(task->checkpoint) ? "" : task->checkpoint.value_or(""));
      })) {
    // Not taken: the lease goes back, and a new processor tries at the next lease pass.
    leases_->Release(options_.application_name, shard_id, options_.worker_id);
    return false;
  }
  tasks_.push_back(std::move(task));
  return true;
}

void Consumer::DropShard(std::size_t i, ShutdownReason reason, bool release) {
  ShardTask& task = *tasks_[i];
  task.subscription.reset();
  if (!task.ended) {
    task.lease_lost = reason == ShutdownReason::kLeaseLost;
    Checkpointer cp(this, &task);
    CallProcessor(this, status_, "RecordProcessor::Shutdown", task.shard_id,
                  [&] { task.processor->Shutdown(reason, cp); });
  }
  if (release) leases_->Release(options_.application_name, task.shard_id, options_.worker_id);
  tasks_.erase(tasks_.begin() + static_cast<std::ptrdiff_t>(i));
}

void Consumer::RefreshLeases(int64_t now_ms) {
  const std::string& app = options_.application_name;
  const std::string& me = options_.worker_id;
  const absl::Duration ttl = options_.lease_duration;
  leases_->Heartbeat(app, me, ttl);
  // Renew what we hold; a lease taken by another worker is lost.
  for (std::size_t i = tasks_.size(); i-- > 0;) {
    if (!leases_->Renew(app, tasks_[i]->shard_id, me, ttl))
      DropShard(i, ShutdownReason::kLeaseLost, false);
  }
  for (auto& t : tasks_) t->blocked = false;  // an unusable checkpoint is tried again
  absl::StatusOr<std::vector<Shard>> shards = stream_.ListShards(ListShardsRequest{});
  if (!shards.ok()) {
    status_ = shards.status();
    return;
  }
  std::set<std::string, std::less<>> listed;
  std::map<std::string, std::string, std::less<>> checkpoints;
  std::set<std::string, std::less<>> unreadable;  // checkpoint store errors: not leased now
  for (const Shard& s : *shards) {
    listed.insert(s.shard_id);
    auto c = options_.checkpoint_store->GetCheckpoint(app, s.shard_id);
    if (!c.ok()) {
      // A damaged entry follows the invalid-checkpoint policy; other errors (I/O) wait for
      // the next pass. Either way the error is reported, and other shards go on.
      if (HasErrorName(c.status(), kInvalidCheckpointException) &&
          options_.invalid_checkpoint == InvalidCheckpointPolicy::kRestartFromInitialPosition) {
        ++invalid_checkpoints_;
        continue;  // as if it had no checkpoint
      }
      status_ = c.status();
      unreadable.insert(s.shard_id);
      continue;
    }
    if (c->has_value()) checkpoints[s.shard_id] = **c;
  }
  // Parents no longer listed (aged out) that this application checkpointed: it read them,
  // so it is not new, and their children start at their first records (as the KCL finds a
  // child's parent in its lease table after the parent left the stream).
  // A parent's checkpoint that cannot be read leaves its children unleased this pass (they
  // would start at the initial position, skipping what they hold), and is reported.
  std::set<std::string, std::less<>> checkpointed_parents;
  for (const Shard& s : *shards) {
    for (const std::optional<std::string>* parent :
         {&s.parent_shard_id, &s.adjacent_parent_shard_id}) {
      if (!parent->has_value() || listed.contains(**parent) ||
          checkpointed_parents.contains(**parent)) {
        continue;
      }
      auto c = options_.checkpoint_store->GetCheckpoint(app, **parent);
      if (c.ok()) {
        if (c->has_value()) checkpointed_parents.insert(**parent);
      } else if (HasErrorName(c.status(), kInvalidCheckpointException) &&
                 options_.invalid_checkpoint ==
                     InvalidCheckpointPolicy::kRestartFromInitialPosition) {
        ++invalid_checkpoints_;
        checkpointed_parents.insert(**parent);  // damaged, but the application read it
      } else {
        status_ = c.status();
        unreadable.insert(s.shard_id);
      }
    }
  }
  // A parent that aged out, whose children all have checkpoints of their own (its SHARD_END
  // seeded them), is needed no more: its entry goes, as the KCL deletes a finished parent's
  // lease, so that the store does not grow with every reshard. (This pass still counts it.)
  for (const std::string& parent : checkpointed_parents) {
    bool any = false;
    bool all = true;
    for (const Shard& s : *shards) {
      if (s.parent_shard_id != parent && s.adjacent_parent_shard_id != parent) continue;
      any = true;
      all = all && checkpoints.contains(s.shard_id);
    }
    if (any && all) (void)options_.checkpoint_store->DeleteCheckpoint(app, parent);
  }
  if (checkpoints.empty() && checkpointed_parents.empty() && unreadable.empty() &&
      (options_.initial_position == InitialPosition::kLatest ||
       options_.initial_position == InitialPosition::kAtTimestamp)) {
    StartNewApplication(*shards, checkpoints);
  }
  auto at_shard_end = [&](const std::string& id) {
    auto c = checkpoints.find(id);
    return c != checkpoints.end() && c->second == kShardEndCheckpoint;
  };
  std::vector<const Shard*> eligible;
  for (const Shard& s : *shards) {
    if (at_shard_end(s.shard_id) || unreadable.contains(s.shard_id)) continue;
    if (detail::ParentsFinished(s, listed, at_shard_end)) eligible.push_back(&s);
  }
  // Each live worker takes up to its share, rounded up; a worker above the share rounded
  // down hands leases back while another live worker is below it (the other takes them
  // on its next pass), so a new or restarted worker gets its part.
  const int workers = std::max(1, leases_->LiveWorkers(app));
  const int target = static_cast<int>((eligible.size() + workers - 1) / workers);
  const int floor_share = static_cast<int>(eligible.size() / workers);
  const std::map<std::string, int> counts = leases_->Counts(app);
  const bool someone_short = std::any_of(counts.begin(), counts.end(), [&](const auto& c) {
    return c.first != me && c.second < floor_share;
  });
  while (someone_short && static_cast<int>(tasks_.size()) > floor_share) {
    DropShard(tasks_.size() - 1, ShutdownReason::kRequested, true);
  }
  // While another worker is short, take no more than the share rounded down, or what was
  // just handed back would be taken again.
  const int limit = someone_short ? floor_share : target;
  for (const Shard* s : eligible) {
    if (static_cast<int>(tasks_.size()) >= limit || stop_requested_) break;
    const bool mine = std::any_of(tasks_.begin(), tasks_.end(),
                                  [&](const auto& t) { return t->shard_id == s->shard_id; });
    if (mine || !leases_->TryAcquire(app, s->shard_id, me, ttl)) continue;
    // The checkpoint as it is now that the lease is ours: the one read above may predate
    // the last checkpoint of the worker that held the lease until just now (resuming from
    // it would process checkpointed records again and move the checkpoint back).
    std::optional<std::string> checkpoint;
    auto fresh = options_.checkpoint_store->GetCheckpoint(app, s->shard_id);
    if (!fresh.ok()) {
      const bool restart =
          HasErrorName(fresh.status(), kInvalidCheckpointException) &&
          options_.invalid_checkpoint == InvalidCheckpointPolicy::kRestartFromInitialPosition;
      if (!restart) {
        status_ = fresh.status();
        leases_->Release(app, s->shard_id, me);
        continue;
      }
    } else {
      checkpoint = *std::move(fresh);
    }
    if (checkpoint == kShardEndCheckpoint) {  // finished meanwhile by the previous holder
      leases_->Release(app, s->shard_id, me);
      continue;
    }
    // A child of listed parents (all at SHARD_END, as eligibility requires), or of parents
    // this application checkpointed before they aged out, starts at its first record; a
    // shard whose parents are gone unread starts at the initial position.
    auto read_parent = [&](const std::optional<std::string>& parent) {
      return parent && (listed.contains(*parent) || checkpointed_parents.contains(*parent));
    };
    const bool after_parents =
        read_parent(s->parent_shard_id) || read_parent(s->adjacent_parent_shard_id);
    if (!TakeShard(s->shard_id, checkpoint, after_parents)) continue;
    tasks_.back()->first_record = s->sequence_number_range.starting_sequence_number;
    tasks_.back()->range = s->hash_key_range;
  }
  (void)now_ms;
}

void Consumer::StartNewApplication(const std::vector<Shard>& shards,
                                   std::map<std::string, std::string, std::less<>>& checkpoints) {
  const bool latest = options_.initial_position == InitialPosition::kLatest;
  ListShardsRequest request;
  request.filter = latest ? ShardFilterType::kAtLatest : ShardFilterType::kAtTimestamp;
  request.timestamp = options_.initial_timestamp;
  absl::StatusOr<std::vector<Shard>> start = stream_.ListShards(request);
  // No shard open at the timestamp (one before the stream): every shard is processed.
  if (!start.ok() || start->empty()) return;
  std::set<std::string, std::less<>> start_ids;
  for (const Shard& s : *start) start_ids.insert(s.shard_id);
  // The start shards and their descendants (parents are listed before their children).
  std::set<std::string, std::less<>> covered = start_ids;
  for (const Shard& s : shards) {
    if ((s.parent_shard_id && covered.contains(*s.parent_shard_id)) ||
        (s.adjacent_parent_shard_id && covered.contains(*s.adjacent_parent_shard_id))) {
      covered.insert(s.shard_id);
    }
  }
  const std::string& app = options_.application_name;
  for (const Shard& s : shards) {
    std::string_view value;
    if (start_ids.contains(s.shard_id)) {
      value = latest ? kLatestCheckpoint : kAtTimestampCheckpoint;
    } else if (!covered.contains(s.shard_id)) {
      value = kShardEndCheckpoint;  // closed before the start: never processed
    } else {
      continue;
    }
    // Another worker of the application may have started meanwhile: its value stays. (A
    // checkpoint that cannot be read was dealt with by the caller.)
    absl::StatusOr<std::optional<std::string>> c =
        options_.checkpoint_store->GetCheckpoint(app, s.shard_id);
    if (!c.ok()) continue;
    if (c->has_value()) {
      checkpoints[s.shard_id] = **c;
    } else if (absl::Status put = options_.checkpoint_store->PutCheckpoint(app, s.shard_id, value);
               put.ok()) {
      checkpoints[s.shard_id] = std::string(value);
    } else {
      status_ = put;
    }
  }
}

}  // namespace riffle
