// ShardSet: creation, publishing, reshard commit, expiry and reclamation of shards.
#include "riffle/detail/shard_set.h"

#include <algorithm>
#include <bit>

#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle::detail {

LatestState ShardLog::Close() {
  closed_.store(true, std::memory_order_seq_cst);
  if (single_producer_) HeavyBarrier();  // the producer's claim is a plain store
  const Claim c = Unpack(claim_.load(std::memory_order_seq_cst));
  const uint64_t end = c.position;
  close_next_index_.store(c.count - SegmentOf(end), std::memory_order_relaxed);
  close_end_.store(end, std::memory_order_release);
  WaitForPrefix(end);  // every claim made before the close is committed
  LatestState final_state{end, c.count - SegmentOf(end), 0,
                          max_arrival_ms_.load(std::memory_order_relaxed)};
  // The last record: within the last two segments (a segment never holds padding alone),
  // else anywhere still in the ring.
  const uint64_t horizon = Horizon(end);
  const uint64_t window = end > 2 * segment_bytes_ ? (SegmentOf(end) - 1) << segment_shift_ : 0;
  for (uint64_t from : {std::max(horizon, window), horizon}) {
    bool found = false;
    for (uint64_t p = from; p < end;) {
      const FrameView f = FrameAt(p);
      if (f.padded_length() == 0) break;
      if (!f.is_padding()) {
        final_state.last_record_position = p;
        final_state.last_arrival_ms = f.arrival_ms();
        found = true;
      }
      p += f.padded_length();
    }
    if (found || from == horizon) break;
  }
  return final_state;
}

namespace {

// A retired shard reference: dropping it frees the shard unless a subscription holds it.
struct RetiredShard {
  std::shared_ptr<ShardState> shard;
};

}  // namespace

ShardSet::ShardSet(uint64_t ring_bytes, uint64_t secret, int64_t retention_ms, bool single_producer)
    : ring_bytes_(ring_bytes),
      secret_(secret),
      single_producer_(single_producer),
      retention_(retention_ms) {}

ShardSet::~ShardSet() {
  // No guard can be open on a dying stream (its owner guarantees no call is in progress);
  // what it retired earlier may still wait in the domain, and is self-contained.
  delete snapshot_.load(std::memory_order_relaxed);
  CollectRetired();
}

std::shared_ptr<ShardState> ShardSet::NewShard(uint64_t index, HashKeyRange range,
                                               int64_t now_ms) const {
  const Ring ring = AcquireRing(ring_bytes_);
  if (ring.words == nullptr) return nullptr;
  live_logs_->fetch_add(1, std::memory_order_relaxed);
  // The count follows the log's memory, which a subscription may hold past the stream.
  return std::shared_ptr<ShardState>(
      new ShardState(index, range, ring, secret_, single_producer_, now_ms),
      [count = live_logs_](ShardState* s) {
        delete s;
        count->fetch_sub(1, std::memory_order_relaxed);
      });
}

absl::Status ShardSet::Init(const std::vector<HashKeyRange>& ranges, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ShardState*> open;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    std::shared_ptr<ShardState> shard = NewShard(i, ranges[i], now_ms);
    if (shard == nullptr) {
      return MakeError(absl::StatusCode::kResourceExhausted, kLimitExceededException,
                       fmt::format("The system refused {} bytes of ring memory for shard {} "
                                   "({} shards of RingCapacityBytes {}).",
                                   ring_bytes_, i, ranges.size(), ring_bytes_));
    }
    open.push_back(shard.get());
    live_.push_back(std::move(shard));
  }
  next_index_.store(ranges.size(), std::memory_order_relaxed);
  PublishLocked(std::move(open));
  return absl::OkStatus();
}

void RoutingSnapshot::BuildBuckets() {
  // 4 to 8 buckets an open shard, between 2^8 and 2^16 buckets.
  const auto bits =
      static_cast<unsigned>(std::clamp(static_cast<int>(std::bit_width(starts.size())) + 2, 8, 16));
  bucket_shift = 64 - bits;
  const std::size_t buckets = std::size_t{1} << bits;
  bucket_first.assign(buckets + 1, 0);
  // The shard holding bucket b's first key is the last shard starting at or below it.
  std::size_t shard = 0;
  for (std::size_t b = 0; b < buckets; ++b) {
    const HashKey first_key = absl::MakeUint128(uint64_t{b} << bucket_shift, 0);
    while (shard + 1 < starts.size() && starts[shard + 1] <= first_key) ++shard;
    bucket_first[b] = static_cast<uint32_t>(shard);
  }
  bucket_first[buckets] = static_cast<uint32_t>(starts.size() - 1);  // the last key's shard
}

void ShardSet::PublishLocked(std::vector<ShardState*> open) {
  auto* next = new RoutingSnapshot;
  for (ShardState* s : open) next->starts.push_back(s->range.starting_hash_key);
  next->open = std::move(open);
  const std::vector<HashKeyRange> uniform =
      UniformHashKeyRanges(static_cast<int>(next->open.size()));
  bool is_uniform = uniform.size() == next->open.size();
  for (std::size_t i = 0; is_uniform && i < uniform.size(); ++i) {
    is_uniform = next->open[i]->range == uniform[i];
  }
  if (is_uniform) {
    next->uniform.emplace(static_cast<int>(next->open.size()));
  } else {
    next->BuildBuckets();
  }
  next->live.reserve(live_.size());
  for (const auto& s : live_) next->live.push_back(s.get());
  const RoutingSnapshot* old = snapshot_.exchange(next, std::memory_order_acq_rel);
  if (old != nullptr) RetireObject(const_cast<RoutingSnapshot*>(old));
}

std::shared_ptr<ShardState> ShardSet::Acquire(uint64_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::lower_bound(live_.begin(), live_.end(), index,
                             [](const auto& s, uint64_t i) { return s->index < i; });
  return it != live_.end() && (*it)->index == index ? *it : nullptr;
}

void ShardSet::CommitReshardImpl(Commit& commit, int64_t now_ms) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_index_.fetch_add(commit.created.size(), std::memory_order_relaxed);
    for (auto& s : commit.created) live_.push_back(std::move(s));
    // Parents are only ever read for their children after closed_at_ms (acquire), so the
    // lists may be filled while the parents still take writes.
    for (auto& [parent, children] : commit.retired) parent->child_indexes = std::move(children);
    // (1) Children take the routing before any parent refuses a write.
    PublishLocked(std::move(commit.open));
  }
  // (2) A parent's end is fixed only after every claim made before its close committed;
  // shards created and retired within one plan were never routable, so they close empty.
  for (auto& [parent, children] : commit.retired) {
    parent->final_state = parent->log.Close();
    parent->closed_at_ms.store(now_ms, std::memory_order_release);
  }
  int64_t oldest = oldest_closed_ms_.load(std::memory_order_relaxed);
  if (!commit.retired.empty() && now_ms < oldest) {
    oldest_closed_ms_.store(now_ms, std::memory_order_relaxed);
  }
  Sweep(now_ms);
}

void ShardSet::Sweep(int64_t now_ms) {
  const int64_t horizon = retention_.OldestMs(now_ms);
  if (oldest_closed_ms_.load(std::memory_order_relaxed) >= horizon) {
    if (RetiredPending() != 0) CollectRetired();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<ShardState>> expired;
    int64_t oldest = INT64_MAX;
    std::erase_if(live_, [&](std::shared_ptr<ShardState>& s) {
      const int64_t closed_at = s->closed_at_ms.load(std::memory_order_acquire);
      if (closed_at < 0) return false;
      if (closed_at < horizon) {
        expired.push_back(std::move(s));
        return true;
      }
      oldest = std::min(oldest, closed_at);
      return false;
    });
    oldest_closed_ms_.store(oldest, std::memory_order_relaxed);
    for (const auto& s : expired) {
      const std::pair<uint64_t, uint64_t> tomb{s->index, s->final_state.next_index};
      if (expired_.size() < kExpiredRemembered) {
        expired_.push_back(tomb);
      } else {
        expired_[expired_next_] = tomb;
        expired_next_ = (expired_next_ + 1) % kExpiredRemembered;
      }
    }
    if (!expired.empty()) {
      // Expired shards leave the snapshot first; then the references are retired.
      PublishLocked(snapshot_.load(std::memory_order_acquire)->open);
      for (auto& s : expired) RetireObject(new RetiredShard{std::move(s)});
    }
  }
  CollectRetired();
}

std::optional<uint64_t> ShardSet::ClosedRecordCount(uint64_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : live_) {
    if (s->index != index) continue;
    if (!s->closed()) return std::nullopt;
    return s->final_state.next_index;
  }
  for (const auto& [i, count] : expired_) {
    if (i == index) return count;
  }
  return std::nullopt;
}

ShardSetStats ShardSet::Stats() const {
  ShardSetStats stats;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : live_) {
    if (s->closed()) {
      ++stats.closed_shards;
    } else {
      ++stats.open_shards;
    }
  }
  stats.live_shard_logs = static_cast<int>(live_logs_->load(std::memory_order_relaxed));
  stats.reserved_bytes = static_cast<uint64_t>(stats.live_shard_logs) * ring_bytes_;
  stats.shards_created = next_index_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace riffle::detail
