// LineageReader: reads every shard of a stream the way the service asks consumers to: a
// shard only after its parents (both, after a merge) have been read to their end. That is
// what keeps the records of one key in order across splits and merges.
//
//   LineageReader reader(*stream);
//   while (*reader.Poll([&](const auto& shard, const Record& r) { ... })) {}
//
// Thread safety: one thread per reader (the stream itself may be used from any thread).
// For checkpoints, leases and several workers, use Consumer instead.
#ifndef RIFFLE_LINEAGE_READER_H_
#define RIFFLE_LINEAGE_READER_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "riffle/stream.h"

namespace riffle {

class LineageReader {
 public:
  struct ShardInfo {
    std::string shard_id;
    HashKeyRange range;
    std::vector<std::string> parents;  // those that must be read to their end first
  };

  // Starts from ListShards(): parents no longer listed (expired) are not waited for.
  explicit LineageReader(Stream& stream) : stream_(stream) {
    auto shards = stream_.ListShards();
    if (!shards.ok()) {
      error_ = shards.status();
      return;
    }
    std::set<std::string> listed;
    for (const auto& s : *shards) listed.insert(s.shard_id);
    seen_ = listed;
    for (const auto& s : *shards) {
      ShardInfo info{s.shard_id, s.hash_key_range, {}};
      for (const auto& p : {s.parent_shard_id, s.adjacent_parent_shard_id}) {
        if (p && listed.count(*p)) info.parents.push_back(*p);
      }
      pending_.emplace(s.shard_id, std::move(info));
    }
  }

  // One pass over every readable shard; `on_record(const ShardInfo&, const Record&)` sees
  // each record once, in shard order. Returns whether anything happened (records read,
  // shards finished or started), or the first error.
  template <typename F>
  absl::StatusOr<bool> Poll(F&& on_record, int limit = 1000) {
    if (!error_.ok()) return error_;
    bool progress = StartReadyShards();
    if (!error_.ok()) return error_;
    for (auto it = active_.begin(); it != active_.end();) {
      absl::Status s = stream_.GetRecords(it->iterator, result_, limit);
      if (!s.ok()) return error_ = s;
      missed_ += result_.missed_records;
      for (const Record& r : result_.records) on_record(it->info, r);
      progress = progress || !result_.records.empty();
      if (result_.next_shard_iterator) {
        it->iterator = *result_.next_shard_iterator;
        ++it;
        continue;
      }
      // The end of a closed shard: its children become candidates.
      for (const ChildShard& c : result_.child_shards) {
        if (seen_.insert(c.shard_id).second) {
          pending_.emplace(c.shard_id, ShardInfo{c.shard_id, c.hash_key_range, c.parent_shards});
        }
      }
      finished_.insert(it->info.shard_id);
      it = active_.erase(it);
      progress = true;
    }
    return progress;
  }

  const std::set<std::string>& finished() const { return finished_; }
  uint64_t missed_records() const { return missed_; }
  std::size_t waiting() const { return pending_.size(); }

 private:
  struct Active {
    ShardInfo info;
    ShardIterator iterator;
  };

  bool StartReadyShards() {
    bool started = false;
    for (auto it = pending_.begin(); it != pending_.end();) {
      bool ready = true;
      for (const auto& p : it->second.parents) ready = ready && finished_.count(p) > 0;
      if (!ready) {
        ++it;
        continue;
      }
      GetShardIteratorRequest r;
      r.shard_id = it->second.shard_id;
      r.type = ShardIteratorType::kTrimHorizon;
      auto iterator = stream_.GetShardIterator(r);
      if (!iterator.ok()) {
        error_ = iterator.status();
        return started;
      }
      active_.push_back(Active{std::move(it->second), *iterator});
      it = pending_.erase(it);
      started = true;
    }
    return started;
  }

  Stream& stream_;
  absl::Status error_;
  std::map<std::string, ShardInfo> pending_;  // waiting for their parents
  std::vector<Active> active_;
  std::set<std::string> finished_;
  std::set<std::string> seen_;
  GetRecordsResult result_;
  uint64_t missed_ = 0;
};

}  // namespace riffle

#endif  // RIFFLE_LINEAGE_READER_H_
