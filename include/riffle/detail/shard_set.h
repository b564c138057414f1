// ShardSet: the shards of one stream, open and closed, and the immutable routing snapshot
// producers and readers look them up in.
//
// Producers load the current RoutingSnapshot with one acquire load (inside an EpochGuard)
// and route with a binary search over the open shards' starting hash keys; readers find a
// shard by index the same way. A reshard or an expiry builds a new snapshot and swaps the
// pointer; the old snapshot, and shards no longer in the new one, are retired through the
// epoch domain and freed once no guard can still see them (epoch.h). A subscription that
// keeps a shard across calls holds a reference (std::shared_ptr) instead.
//
// Thread safety: Route(), Find() and the snapshot accessors from any thread inside an
// EpochGuard; everything else is control plane and takes the set's mutex.
#ifndef RIFFLE_DETAIL_SHARD_SET_H_
#define RIFFLE_DETAIL_SHARD_SET_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "riffle/detail/epoch.h"
#include "riffle/detail/shard_log.h"
#include "riffle/hash_key.h"

namespace riffle::detail {

// One shard. Everything but the log and the atomics is immutable once the shard is
// published in a snapshot.
struct ShardState {
  ShardState(uint64_t index_in, HashKeyRange range_in, const Ring& ring, uint64_t secret,
             bool single_producer, int64_t created_ms)
      : index(index_in),
        id(FormatShardId(index_in)),
        range(range_in),
        log(ring, secret, single_producer),
        created_at_ms(created_ms) {}

  const uint64_t index;
  const std::string id;
  const HashKeyRange range;
  std::optional<std::string> parent_shard_id;
  std::optional<std::string> adjacent_parent_shard_id;
  ShardLog log;
  const int64_t created_at_ms;
  // Set once, when the shard closes (resharding); read after closed_at_ms (acquire).
  std::vector<uint64_t> child_indexes;
  std::atomic<int64_t> closed_at_ms{-1};
  LatestState final_state;  // valid once closed_at_ms >= 0

  bool closed() const { return closed_at_ms.load(std::memory_order_acquire) >= 0; }
};

struct RoutingSnapshot {
  // Open shards sorted by starting hash key; starts[i] == open[i]->range.starting_hash_key.
  std::vector<HashKey> starts;
  std::vector<ShardState*> open;
  // Every live shard (open, or closed and not yet expired), by increasing index.
  std::vector<ShardState*> live;
  // Set when the open shards are exactly UniformHashKeyRanges(open.size()) (a new stream,
  // or after UpdateShardCount): routing is then a multiply, not a search.
  std::optional<UniformLayout> uniform;
  // Otherwise the key space is cut into 2^bucket_bits equal buckets by the key's top bits;
  // bucket b's keys lie in the open shards bucket_first[b] .. bucket_first[b + 1] (at
  // least 4 buckets a shard, so most buckets lie in one shard and need no search at all).
  std::vector<uint32_t> bucket_first;
  unsigned bucket_shift = 64;  // 64 - bucket_bits

  // Fills bucket_first from `starts` (the control plane, when publishing a snapshot).
  void BuildBuckets();

  ShardState* Route(HashKey key) const {
    if (uniform) return open[static_cast<std::size_t>(uniform->ShardIndex(key))];
    // Last open shard whose range starts at or below key; open ranges cover 0..2^128-1.
    // The key's bucket bounds the search; within it, branch-free steps (random keys would
    // mispredict a branch at every level).
    const std::size_t bucket = static_cast<std::size_t>(absl::Uint128High64(key) >> bucket_shift);
    std::size_t lo = bucket_first[bucket];
    std::size_t n = bucket_first[bucket + 1] - lo + 1;
    while (n > 1) {
      const std::size_t half = n / 2;
      lo += static_cast<std::size_t>(starts[lo + half] <= key) * half;
      n -= half;
    }
    return open[lo];
  }

  ShardState* Find(uint64_t index) const {
    // Without resharding, shard i is live[i].
    if (index < live.size() && live[index]->index == index) return live[index];
    std::size_t lo = 0, n = live.size();
    while (n > 0) {
      const std::size_t half = n / 2;
      if (live[lo + half]->index < index) {
        lo += half + 1;
        n -= half + 1;
      } else {
        n = half;
      }
    }
    return lo < live.size() && live[lo]->index == index ? live[lo] : nullptr;
  }
};

// How long records stay readable, and the horizon retention has already trimmed to: a
// retention increase does not bring trimmed records back (the floor only moves forward).
class Retention {
 public:
  explicit Retention(int64_t retention_ms) : retention_ms_(retention_ms) {}
  int64_t retention_ms() const { return retention_ms_.load(std::memory_order_relaxed); }
  // Records that arrived before this are gone.
  int64_t OldestMs(int64_t now_ms) const {
    return std::max(now_ms - retention_ms(), floor_ms_.load(std::memory_order_relaxed));
  }
  // Control plane: change the period at `now_ms`, keeping what was trimmed trimmed.
  void Set(int64_t retention_ms, int64_t now_ms) {
    const int64_t trimmed = OldestMs(now_ms);
    if (trimmed > floor_ms_.load(std::memory_order_relaxed)) {
      floor_ms_.store(trimmed, std::memory_order_relaxed);
    }
    retention_ms_.store(retention_ms, std::memory_order_relaxed);
  }

 private:
  std::atomic<int64_t> retention_ms_;
  std::atomic<int64_t> floor_ms_{INT64_MIN};
};

// Figures about a stream's memory (Stream::Stats).
struct ShardSetStats {
  int open_shards = 0;
  int closed_shards = 0;        // closed and still within retention
  int live_shard_logs = 0;      // logs whose memory is still held (also by subscriptions)
  uint64_t reserved_bytes = 0;  // ring bytes mapped by those logs
  uint64_t shards_created = 0;
};

class ShardSet {
 public:
  ShardSet(uint64_t ring_bytes, uint64_t secret, int64_t retention_ms, bool single_producer);
  ~ShardSet();
  ShardSet(const ShardSet&) = delete;
  ShardSet& operator=(const ShardSet&) = delete;

  // Creates the first `ranges.size()` shards. ResourceExhausted (LimitExceededException)
  // when the system refuses the ring memory.
  [[nodiscard]] absl::Status Init(const std::vector<HashKeyRange>& ranges, int64_t now_ms);

  // REQUIRES: an EpochGuard is held for as long as the result is used.
  const RoutingSnapshot& snapshot() const { return *snapshot_.load(std::memory_order_acquire); }

  Retention& retention() { return retention_; }
  const Retention& retention() const { return retention_; }

  // As the service does: a closed shard expires one retention period after it closed (all
  // its records are older than that).
  bool Expired(const ShardState& shard, int64_t now_ms) const {
    const int64_t closed_at = shard.closed_at_ms.load(std::memory_order_acquire);
    return closed_at >= 0 && closed_at < retention_.OldestMs(now_ms);
  }

  // A reference that keeps the shard (and its log) alive outside a guard; nullptr when no
  // live shard has this index.
  std::shared_ptr<ShardState> Acquire(uint64_t index) const;

  // Frees shards that expired by `now_ms` (and what was retired earlier, once safe). Cheap
  // when nothing is due.
  void Sweep(int64_t now_ms);

  // How many records a closed shard held (the index after its last), for one that expired
  // or is still live; nullopt for an open shard, or an expired one among more than
  // kExpiredRemembered expired since. Lets readers count exactly what aged out unread.
  std::optional<uint64_t> ClosedRecordCount(uint64_t index) const;
  // Erases from `map` (keyed by shard index) the entries of shards that were committed and
  // have expired since; a shard a reshard is still preparing is kept. `on_erase` sees each
  // entry first.
  template <class Map, class OnErase>
  void EraseExpired(Map& map, OnErase on_erase) const {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t committed = next_index_.load(std::memory_order_relaxed);
    absl::erase_if(map, [&](auto& entry) {
      const uint64_t index = entry.first;
      if (index >= committed) return false;  // being created: not published yet
      const bool live =
          std::binary_search(live_.begin(), live_.end(), index,
                             [](const auto& a, const auto& b) { return IndexOf(a) < IndexOf(b); });
      if (live) return false;
      on_erase(entry);
      return true;
    });
  }
  static constexpr std::size_t kExpiredRemembered = 1024;

  ShardSetStats Stats() const;

  // ---- Resharding (control plane; the caller holds reshard_mu()) ----
  std::mutex& reshard_mu() { return reshard_mu_; }
  uint64_t shards_created() const { return next_index_.load(std::memory_order_relaxed); }
  // A new, unpublished shard with the next index. nullptr when the ring memory is refused.
  std::shared_ptr<ShardState> NewShard(uint64_t index, HashKeyRange range, int64_t now_ms) const;
  // Publishes `open` (sorted by starting hash key) as the routing, with `created` added to
  // the live shards, then closes `retired` parents (each with its children's indexes).
  // `before_publish` runs on each created shard before anything can route to it.
  struct Commit {
    std::vector<ShardState*> open;
    std::vector<std::shared_ptr<ShardState>> created;
    std::vector<std::pair<ShardState*, std::vector<uint64_t>>> retired;
  };
  template <class BeforePublish>
  void CommitReshard(Commit& commit, int64_t now_ms, BeforePublish before_publish) {
    for (auto& s : commit.created) before_publish(*s);
    CommitReshardImpl(commit, now_ms);
  }

 private:
  static uint64_t IndexOf(uint64_t index) { return index; }
  static uint64_t IndexOf(const std::shared_ptr<ShardState>& s) { return s->index; }
  void CommitReshardImpl(Commit& commit, int64_t now_ms);
  // Builds and swaps in a snapshot of `open` and live_; retires the old one. REQUIRES: mu_.
  void PublishLocked(std::vector<ShardState*> open);

  const uint64_t ring_bytes_;
  const uint64_t secret_;
  const bool single_producer_;
  Retention retention_;
  std::atomic<const RoutingSnapshot*> snapshot_{nullptr};
  std::atomic<uint64_t> next_index_{0};
  // When the oldest live closed shard closed (INT64_MAX: none): Sweep's fast path.
  std::atomic<int64_t> oldest_closed_ms_{INT64_MAX};

  // Shard logs whose memory is held (by the set, the epoch domain or a subscription).
  std::shared_ptr<std::atomic<int64_t>> live_logs_ = std::make_shared<std::atomic<int64_t>>(0);
  mutable std::mutex mu_;                          // guards live_ and publishing
  std::vector<std::shared_ptr<ShardState>> live_;  // by increasing index
  // The latest expired shards' (index, record count): a ring of kExpiredRemembered at most,
  // written at expired_next_. Guarded by mu_.
  std::vector<std::pair<uint64_t, uint64_t>> expired_;
  std::size_t expired_next_ = 0;
  std::mutex reshard_mu_;
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_SHARD_SET_H_
