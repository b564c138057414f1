// The shard registry of a Stream and the immutable routing snapshot producers read.
//
// Producers load the current Topology with one acquire load and route with a binary search
// over the open shards' starting hash keys. A reshard builds a new Topology and swaps the
// pointer; old snapshots are retired, not freed, until the stream dies (reshards are rare
// and a snapshot is small), so a producer never needs a reference count or a lock.
#ifndef RIFFLE_DETAIL_TOPOLOGY_H_
#define RIFFLE_DETAIL_TOPOLOGY_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "riffle/detail/shard_ring.h"
#include "riffle/hash_key.h"
#include "riffle/sequence_number.h"

namespace riffle::detail {

// One shard, open or closed. Everything but the ring and the atomics is immutable once the
// shard is published in a Topology.
struct ShardState {
  ShardState(uint64_t index_in, HashKeyRange range_in, uint64_t ring_bytes, int64_t created_ms)
      : index(index_in),
        id(FormatShardId(index_in)),
        range(range_in),
        ring(ring_bytes),
        created_at_ms(created_ms) {}

  const uint64_t index;
  const std::string id;
  const HashKeyRange range;
  std::optional<std::string> parent_shard_id;
  std::optional<std::string> adjacent_parent_shard_id;
  ShardRing ring;
  const int64_t created_at_ms;
  // Set once, when the shard closes (resharding); read after closed_at_ms (acquire).
  std::vector<uint64_t> child_indexes;
  std::atomic<int64_t> closed_at_ms{-1};
  LatestState final_state;  // valid once closed_at_ms >= 0
};

struct Topology {
  // Open shards sorted by starting hash key; starts[i] == open[i]->range.starting_hash_key.
  std::vector<HashKey> starts;
  std::vector<ShardState*> open;
  // Every shard ever created, by index (shard ids are dense counters).
  std::vector<ShardState*> all;

  ShardState* Route(HashKey key) const {
    // Last open shard whose range starts at or below key; open ranges cover 0..2^128-1.
    std::size_t lo = 0, n = starts.size();
    while (n > 1) {
      const std::size_t half = n / 2;
      if (starts[lo + half] <= key) lo += half;
      n -= half;
    }
    return open[lo];
  }

  ShardState* Find(uint64_t index) const { return index < all.size() ? all[index] : nullptr; }
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_TOPOLOGY_H_
