// Multi-buffer MD5: MD5 is a chain of dependent steps, so one message keeps a core's ALUs
// mostly idle (0.7 GB/s here); running the same steps on 16 (AVX2) or 32 (AVX-512)
// independent messages, one per vector lane, hashes them at once. The partition keys of a
// PutRecords batch (their hash keys), a GetRecords batch of KPL aggregates, or the
// partition key table of one aggregate give the independent messages. The instruction set is picked
// at run time; any other processor, and the last stragglers of a batch, use the scalar MD5 of
// riffle/detail/md5.h.
//
// Thread safety: pure functions.
#ifndef RIFFLE_COMMON_MD5_LANES_H_
#define RIFFLE_COMMON_MD5_LANES_H_

#include <cstddef>
#include <cstdint>

#include "riffle/hash_key.h"

namespace riffle::detail {

// One message to hash: set data and size on a new (default) job. `state` receives the MD5
// state words A, B, C, D (the digest is their little-endian bytes), as
// riffle::detail::Md5Words returns them.
struct Md5Job {
  const unsigned char* data = nullptr;
  size_t size = 0;
  uint32_t state[4] = {};
  // Internal: 64-byte blocks (padding included) already folded into `state`.
  size_t blocks_done = 0;
};

// The digest of a finished job read as a big-endian integer: Md5HashKey of its message.
inline HashKey Md5JobHashKey(const Md5Job& job) {
  const uint64_t high =
      uint64_t{__builtin_bswap32(job.state[0])} << 32 | __builtin_bswap32(job.state[1]);
  const uint64_t low =
      uint64_t{__builtin_bswap32(job.state[2])} << 32 | __builtin_bswap32(job.state[3]);
  return absl::MakeUint128(high, low);
}

// Hashes every job of `jobs` and of `more`. `more` (may be empty) holds messages of at most
// 55 bytes (one block each), hashed in the lanes the longer jobs leave idle: a batch of fewer
// long messages than lanes, such as 20 KPL aggregates and their partition keys, costs little
// more than the long ones alone. Without `more`, the short jobs of `jobs` fill them.
// REQUIRES: blocks_done == 0 (new jobs); every job of `more` at most 55 bytes. Allocates
// nothing.
void Md5Jobs(Md5Job* jobs, size_t count, Md5Job* more = nullptr, size_t more_count = 0);

// Which implementation Md5Jobs uses on this processor: 32 (AVX-512), 16 (AVX2) or 1.
int Md5Lanes();

// For tests and benchmarks: hash with at most `lanes` lanes (32, 16 or 1) where the
// processor allows it. Returns the lanes used.
int Md5JobsWith(int lanes, Md5Job* jobs, size_t count, Md5Job* more = nullptr,
                size_t more_count = 0);

}  // namespace riffle::detail

#endif  // RIFFLE_COMMON_MD5_LANES_H_
