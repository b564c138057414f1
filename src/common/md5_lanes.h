// MD5 hash keys of several partition keys at once, for PutRecords batches of distinct keys.
//
// One MD5 compression is a chain of 64 dependent steps: a single key leaves most of the
// core idle. Eight keys of at most 55 bytes (one block each) are compressed together, one
// key per 32-bit lane of a vector (AVX2 where the CPU has it, chosen at run time; two SSE2
// halves otherwise), which costs about what one key costs alone.
//
// Thread safety: pure functions.
#ifndef RIFFLE_COMMON_MD5_LANES_H_
#define RIFFLE_COMMON_MD5_LANES_H_

#include <cstddef>
#include <string_view>

#include "riffle/hash_key.h"

namespace riffle::detail {

inline constexpr std::size_t kMd5Lanes = 8;
inline constexpr std::size_t kMd5LaneMaxBytes = 55;

// out[i] = Md5HashKey(keys[i]) for i < n. REQUIRES: n <= kMd5Lanes and every key at most
// kMd5LaneMaxBytes long.
void Md5HashKeyLanes(const std::string_view* keys, std::size_t n, HashKey* out);

}  // namespace riffle::detail

#endif  // RIFFLE_COMMON_MD5_LANES_H_
