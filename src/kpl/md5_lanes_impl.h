// The lane engine behind md5_lanes.h, included by md5_lanes*.cc only.
//
// Each including file is compiled for its own instruction set (-mavx2, -mavx512f). An
// inline function with external linkage emitted by such a file could be the copy the
// linker keeps for every caller (the ODR allows any), running AVX-512 code on processors
// without it. So everything here has internal linkage (an unnamed namespace), and the
// including files include no other header that defines inline functions.
#ifndef RIFFLE_KPL_MD5_LANES_IMPL_H_
#define RIFFLE_KPL_MD5_LANES_IMPL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kpl/md5_lanes.h"

namespace riffle::kpl::detail {
namespace {

constexpr uint32_t kMd5Iv[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};

// 64-byte blocks of a message of `size` bytes once padded (0x80, zeros, 8-byte length).
inline size_t PaddedBlocks(size_t size) { return (size + 72) / 64; }

// Writes the last one or two blocks of the padded message to `tail` (128 bytes).
inline void BuildTail(const unsigned char* data, size_t size, unsigned char* tail) {
  const size_t rest = size % 64;
  if (rest != 0) std::memcpy(tail, data + size - rest, rest);
  tail[rest] = 0x80;
  std::memset(tail + rest + 1, 0, 128 - rest - 1);
  const size_t end = rest + 1 + 8 > 64 ? 128 : 64;
  const uint64_t bits = static_cast<uint64_t>(size) * 8;
  for (int i = 0; i < 8; ++i) tail[end - 8 + i] = static_cast<unsigned char>(bits >> (8 * i));
}

// Block `i` of a job whose padded tail is in `tail`.
inline const unsigned char* BlockAt(const Md5Job& job, const unsigned char* tail, size_t i) {
  const size_t full = job.size / 64;
  return i < full ? job.data + 64 * i : tail + 64 * (i - full);
}

#if defined(RIFFLE_MD5_LANE_WIDTH)

constexpr int kWidth = RIFFLE_MD5_LANE_WIDTH;
typedef uint32_t Lanes __attribute__((vector_size(kWidth * 4)));

// RFC 1321's 64 steps on every lane at once (as detail/md5.h, on vectors).
inline void CompressLanes(Lanes& sa, Lanes& sb, Lanes& sc, Lanes& sd, const Lanes* x) {
  Lanes a = sa, b = sb, c = sc, d = sd;
#define RIFFLE_LANE_STEP(f, w, x_, y, z, k, t, r) \
  w += x[k] + uint32_t{t};                        \
  w += f(x_, y, z);                               \
  w = ((w << (r)) | (w >> (32 - (r)))) + x_
#define RIFFLE_LANE_F(x_, y, z) ((z) ^ ((x_) & ((y) ^ (z))))
#define RIFFLE_LANE_G(x_, y, z) (((y) & ~(z)) | ((x_) & (z)))
#define RIFFLE_LANE_H(x_, y, z) ((x_) ^ ((y) ^ (z)))
#define RIFFLE_LANE_I(x_, y, z) ((y) ^ ((x_) | ~(z)))
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, a, b, c, d, 0, 0xd76aa478, 7);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, d, a, b, c, 1, 0xe8c7b756, 12);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, c, d, a, b, 2, 0x242070db, 17);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, b, c, d, a, 3, 0xc1bdceee, 22);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, a, b, c, d, 4, 0xf57c0faf, 7);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, d, a, b, c, 5, 0x4787c62a, 12);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, c, d, a, b, 6, 0xa8304613, 17);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, b, c, d, a, 7, 0xfd469501, 22);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, a, b, c, d, 8, 0x698098d8, 7);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, d, a, b, c, 9, 0x8b44f7af, 12);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, c, d, a, b, 10, 0xffff5bb1, 17);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, b, c, d, a, 11, 0x895cd7be, 22);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, a, b, c, d, 12, 0x6b901122, 7);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, d, a, b, c, 13, 0xfd987193, 12);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, c, d, a, b, 14, 0xa679438e, 17);
  RIFFLE_LANE_STEP(RIFFLE_LANE_F, b, c, d, a, 15, 0x49b40821, 22);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, a, b, c, d, 1, 0xf61e2562, 5);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, d, a, b, c, 6, 0xc040b340, 9);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, c, d, a, b, 11, 0x265e5a51, 14);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, b, c, d, a, 0, 0xe9b6c7aa, 20);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, a, b, c, d, 5, 0xd62f105d, 5);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, d, a, b, c, 10, 0x02441453, 9);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, c, d, a, b, 15, 0xd8a1e681, 14);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, b, c, d, a, 4, 0xe7d3fbc8, 20);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, a, b, c, d, 9, 0x21e1cde6, 5);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, d, a, b, c, 14, 0xc33707d6, 9);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, c, d, a, b, 3, 0xf4d50d87, 14);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, b, c, d, a, 8, 0x455a14ed, 20);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, a, b, c, d, 13, 0xa9e3e905, 5);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, d, a, b, c, 2, 0xfcefa3f8, 9);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, c, d, a, b, 7, 0x676f02d9, 14);
  RIFFLE_LANE_STEP(RIFFLE_LANE_G, b, c, d, a, 12, 0x8d2a4c8a, 20);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, a, b, c, d, 5, 0xfffa3942, 4);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, d, a, b, c, 8, 0x8771f681, 11);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, c, d, a, b, 11, 0x6d9d6122, 16);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, b, c, d, a, 14, 0xfde5380c, 23);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, a, b, c, d, 1, 0xa4beea44, 4);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, d, a, b, c, 4, 0x4bdecfa9, 11);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, c, d, a, b, 7, 0xf6bb4b60, 16);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, b, c, d, a, 10, 0xbebfbc70, 23);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, a, b, c, d, 13, 0x289b7ec6, 4);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, d, a, b, c, 0, 0xeaa127fa, 11);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, c, d, a, b, 3, 0xd4ef3085, 16);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, b, c, d, a, 6, 0x04881d05, 23);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, a, b, c, d, 9, 0xd9d4d039, 4);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, d, a, b, c, 12, 0xe6db99e5, 11);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, c, d, a, b, 15, 0x1fa27cf8, 16);
  RIFFLE_LANE_STEP(RIFFLE_LANE_H, b, c, d, a, 2, 0xc4ac5665, 23);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, a, b, c, d, 0, 0xf4292244, 6);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, d, a, b, c, 7, 0x432aff97, 10);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, c, d, a, b, 14, 0xab9423a7, 15);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, b, c, d, a, 5, 0xfc93a039, 21);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, a, b, c, d, 12, 0x655b59c3, 6);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, d, a, b, c, 3, 0x8f0ccc92, 10);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, c, d, a, b, 10, 0xffeff47d, 15);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, b, c, d, a, 1, 0x85845dd1, 21);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, a, b, c, d, 8, 0x6fa87e4f, 6);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, d, a, b, c, 15, 0xfe2ce6e0, 10);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, c, d, a, b, 6, 0xa3014314, 15);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, b, c, d, a, 13, 0x4e0811a1, 21);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, a, b, c, d, 4, 0xf7537e82, 6);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, d, a, b, c, 11, 0xbd3af235, 10);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, c, d, a, b, 2, 0x2ad7d2bb, 15);
  RIFFLE_LANE_STEP(RIFFLE_LANE_I, b, c, d, a, 9, 0xeb86d391, 21);
#undef RIFFLE_LANE_STEP
#undef RIFFLE_LANE_F
#undef RIFFLE_LANE_G
#undef RIFFLE_LANE_H
#undef RIFFLE_LANE_I
  sa += a;
  sb += b;
  sc += c;
  sd += d;
}

// Runs the jobs kWidth at a time; a lane that finishes its job takes the next one. Stops
// when every job is done, or when no job is waiting and at most kWidth / 8 lanes are still
// busy: a vector pass then costs more than the scalar MD5 of those lanes' blocks, so they
// are left with their state and blocks_done for the caller to finish. `load(blocks, x)`
// gathers word k of block l into lane l of x[k].
template <typename Load>
void RunLanes(Md5Job* jobs, size_t count, Load load) {
  constexpr size_t kIdle = ~size_t{0};
  alignas(64) static const unsigned char kZeroBlock[64] = {};
  alignas(64) unsigned char tails[kWidth][128];
  size_t lane_job[kWidth];
  size_t lane_blocks[kWidth];
  const unsigned char* blocks[kWidth];
  Lanes a{}, b{}, c{}, d{};
  size_t next = 0;
  int busy = 0;
  auto take = [&](int l) {
    while (next < count) {
      Md5Job& job = jobs[next];
      const size_t total = PaddedBlocks(job.size);
      if (job.blocks_done >= total) {
        ++next;
        continue;
      }
      lane_job[l] = next++;
      lane_blocks[l] = total;
      BuildTail(job.data, job.size, tails[l]);
      a[l] = job.state[0];
      b[l] = job.state[1];
      c[l] = job.state[2];
      d[l] = job.state[3];
      return true;
    }
    lane_job[l] = kIdle;
    return false;
  };
  for (int l = 0; l < kWidth; ++l) busy += take(l);
  while (busy > 0 && !(next == count && busy <= kWidth / 8)) {
    for (int l = 0; l < kWidth; ++l) {
      blocks[l] = lane_job[l] == kIdle
                      ? kZeroBlock
                      : BlockAt(jobs[lane_job[l]], tails[l], jobs[lane_job[l]].blocks_done);
    }
    Lanes x[16];
    load(blocks, x);
    CompressLanes(a, b, c, d, x);
    for (int l = 0; l < kWidth; ++l) {
      if (lane_job[l] == kIdle) continue;
      Md5Job& job = jobs[lane_job[l]];
      if (++job.blocks_done < lane_blocks[l]) continue;
      job.state[0] = a[l];
      job.state[1] = b[l];
      job.state[2] = c[l];
      job.state[3] = d[l];
      if (!take(l)) --busy;
    }
  }
  for (int l = 0; l < kWidth; ++l) {  // stragglers, for the scalar MD5
    if (lane_job[l] == kIdle) continue;
    Md5Job& job = jobs[lane_job[l]];
    job.state[0] = a[l];
    job.state[1] = b[l];
    job.state[2] = c[l];
    job.state[3] = d[l];
  }
}

#endif  // RIFFLE_MD5_LANE_WIDTH

}  // namespace
}  // namespace riffle::kpl::detail

#endif  // RIFFLE_KPL_MD5_LANES_IMPL_H_
