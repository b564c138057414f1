// A per-thread, two-way set-associative cache from partition key to MD5 hash key. Producers reuse
// keys (symbols, user ids, session ids), and MD5 is the most expensive step of an
// MD5-routed put; a hit costs one XXH3-64 of the key and one compare.
//
// Layout: 128 sets of two entries, each entry one cache line (16-byte hash key, a length
// byte, up to 47 key bytes): 16 KiB per thread. The set is the low 7 bits of XXH3-64(key);
// a lookup compares the stored length and bytes, so a collision is a miss, never a wrong
// hash key. A miss moves way 0 to way 1 and fills way 0. Two ways matter: with 64 hot keys
// a direct-mapped table of 256 lines had ~8 colliding pairs that missed on every put
// (BM_PutRecord_Md5 measured 17 ns slower than with XXH3 routing). Keys longer than 47
// bytes bypass the cache.
//
// Thread safety: Md5HashKeyCache is not thread-safe; CachedMd5HashKey uses a thread_local
// instance (no locks). The table is zero-initialized static TLS: no allocation at all in
// an executable (a dlopen'ed library may have the loader allocate its TLS block once).
#ifndef RIFFLE_DETAIL_HASH_KEY_CACHE_H_
#define RIFFLE_DETAIL_HASH_KEY_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "riffle/hash_key.h"

namespace riffle::detail {

class Md5HashKeyCache {
 public:
  static constexpr size_t kEntries = 256;
  static constexpr size_t kWays = 2;
  static constexpr size_t kSets = kEntries / kWays;
  static constexpr size_t kMaxKeyBytes = 47;

  // Md5HashKey(key), from the cache when the same key was seen last in its slot.
  HashKey Get(std::string_view key) {
    if (key.size() > kMaxKeyBytes) return Md5HashKey(key);
    const size_t set = IndexOf(key);
    HashKey hash_key;
    if (Find(key, set, &hash_key)) return hash_key;
    hash_key = Md5HashKey(key);
    PrimeSet(set, key, hash_key);
    return hash_key;
  }

  // Get in two halves, for a batch that hashes its misses together (common/md5_lanes.h):
  // Find looks in `set` (IndexOf(key)), PrimeSet stores what was computed for a miss.
  // REQUIRES: key.size() <= kMaxKeyBytes.
  bool Find(std::string_view key, size_t set, HashKey* out) const {
    const Entry* ways = &entries_[set * kWays];
    for (size_t way = 0; way < kWays; ++way) {
      // length_plus_one == 0 marks an empty entry, so a zeroed table is a valid empty cache.
      const Entry& e = ways[way];
      if (e.length_plus_one == key.size() + 1 && std::memcmp(e.key, key.data(), key.size()) == 0) {
        *out = absl::MakeUint128(e.high, e.low);
        return true;
      }
    }
    return false;
  }
  void PrimeSet(size_t set, std::string_view key, HashKey hash_key) {
    Fill(&entries_[set * kWays], key, hash_key);
  }

  // The set `key` maps to (for Find and PrimeSet; tests build colliding keys with it).
  static size_t IndexOf(std::string_view key) {
    return static_cast<size_t>(XXH3_64bits(key.data(), key.size())) & (kSets - 1);
  }

 private:
  struct alignas(64) Entry {  // One cache line: a hit touches one line.
    uint64_t high;
    uint64_t low;
    uint8_t length_plus_one;
    char key[kMaxKeyBytes];
  };
  static_assert(sizeof(Entry) == 64);

  // A miss: way 0 moves to way 1 and takes the key.
  static void Fill(Entry* set, std::string_view key, HashKey hash_key) {
    set[1] = set[0];
    Entry& e = set[0];
    e.high = absl::Uint128High64(hash_key);
    e.low = absl::Uint128Low64(hash_key);
    e.length_plus_one = static_cast<uint8_t>(key.size() + 1);
    if (!key.empty()) std::memcpy(e.key, key.data(), key.size());
  }

  Entry entries_[kEntries];
};

// This thread's cache.
inline Md5HashKeyCache& ThreadMd5HashKeyCache() {
  // constinit: a zeroed table needs no dynamic TLS initialization guard on each access.
  static constinit thread_local Md5HashKeyCache cache{};
  return cache;
}

// Md5HashKey(key) through this thread's cache. Same value, always; cheaper for hot keys.
inline HashKey CachedMd5HashKey(std::string_view key) { return ThreadMd5HashKeyCache().Get(key); }

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_HASH_KEY_CACHE_H_
