// The lane engine behind md5_lanes.h, included by md5_lanes*.cc only.
//
// Each including file is compiled for its own instruction set (-mavx2, -mavx512f). An
// inline function with external linkage emitted by such a file could be the copy the
// linker keeps for every caller (the ODR allows any), running AVX-512 code on processors
// without it. So everything here has internal linkage (an unnamed namespace), and the
// including files include no other header that defines inline functions.
#ifndef RIFFLE_COMMON_MD5_LANES_IMPL_H_
#define RIFFLE_COMMON_MD5_LANES_IMPL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/md5_lanes.h"

namespace riffle::detail {
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

// Two vectors of lanes run side by side: one MD5 step is a chain of dependent operations,
// and the other vector's step fills its latency (measured here: 16 lanes 5.8 GB/s, 2 x 16
// lanes 7.9 GB/s of CPU time).
constexpr int kWidth = RIFFLE_MD5_LANE_WIDTH;
constexpr int kLanes = 2 * kWidth;
typedef uint32_t Lanes __attribute__((vector_size(kWidth * 4)));

// The state of every lane: state[g][word] holds lanes g * kWidth .. g * kWidth + kWidth - 1.
struct LaneState {
  Lanes word[2][4];
  void Set(int lane, const uint32_t s[4]) {
    for (int w = 0; w < 4; ++w) word[lane / kWidth][w][lane % kWidth] = s[w];
  }
  void Get(int lane, uint32_t s[4]) const {
    for (int w = 0; w < 4; ++w) s[w] = word[lane / kWidth][w][lane % kWidth];
  }
};

// RFC 1321's 64 steps on every lane of both vectors (as detail/md5.h, on vectors).
inline void CompressLanes(LaneState& st, const Lanes* x0, const Lanes* x1) {
  Lanes a0 = st.word[0][0], b0 = st.word[0][1], c0 = st.word[0][2], d0 = st.word[0][3];
  Lanes a1 = st.word[1][0], b1 = st.word[1][1], c1 = st.word[1][2], d1 = st.word[1][3];
#define RIFFLE_LANE_ROUND(g, w, x_, f, y, z, k, t, r) \
  w##g += x##g[k] + uint32_t{t};                      \
  w##g += f(x_##g, y##g, z##g);                       \
  w##g = ((w##g << (r)) | (w##g >> (32 - (r)))) + x_##g
#define RIFFLE_LANE_STEP(f, w, x_, y, z, k, t, r) \
  RIFFLE_LANE_ROUND(0, w, x_, f, y, z, k, t, r);  \
  RIFFLE_LANE_ROUND(1, w, x_, f, y, z, k, t, r)
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
#undef RIFFLE_LANE_ROUND
#undef RIFFLE_LANE_F
#undef RIFFLE_LANE_G
#undef RIFFLE_LANE_H
#undef RIFFLE_LANE_I
  st.word[0][0] += a0;
  st.word[0][1] += b0;
  st.word[0][2] += c0;
  st.word[0][3] += d0;
  st.word[1][0] += a1;
  st.word[1][1] += b1;
  st.word[1][2] += c1;
  st.word[1][3] += d1;
}

// A message of at most 55 bytes is one padded block.
inline bool IsShort(const Md5Job& job) { return job.size <= 55; }

// Short messages kLanes at a time, with no per-lane bookkeeping: the partition keys whose
// hash keys a range check or a PutRecords batch needs. `lanes` puts the jobs' padded blocks
// into the lanes and reads their states back:
//   const Lanes* Load(Md5Job* const* jobs, int n)  x[k] (k < 16) and x[16 + k], lanes
//                                                   n.. hold anything
//   void Store(const LaneState& st, Md5Job* const* jobs, int n)  state, blocks_done = 1
// Skips jobs already started and longer ones. Returns a short job left alone (for the
// scalar MD5, as fast for one), or nullptr.
template <typename ShortLanes>
Md5Job* RunShortLanes(Md5Job* jobs, size_t count, ShortLanes& lanes) {
  Md5Job* lane_job[kLanes];
  size_t next = 0;
  for (;;) {
    int n = 0;
    for (; next < count && n < kLanes; ++next) {
      Md5Job& job = jobs[next];
      if (IsShort(job) && job.blocks_done == 0) lane_job[n++] = &job;
    }
    if (n < 2) return n == 1 ? lane_job[0] : nullptr;
    const Lanes* x = lanes.Load(lane_job, n);
    LaneState st;
    for (int g = 0; g < 2; ++g) {
      for (int w = 0; w < 4; ++w) st.word[g][w] = Lanes{} + kMd5Iv[w];
    }
    CompressLanes(st, x, x + 16);
    lanes.Store(st, lane_job, n);
  }
}

// ShortLanes for any instruction set: each message written straight into the lanes (word k
// of message l into lane l of x[k]) instead of being padded in memory and transposed.
class ScatteredShortLanes {
 public:
  const Lanes* Load(Md5Job* const* jobs, int n) {
    for (int l = 0; l < n; ++l) {
      const Md5Job& job = *jobs[l];
      uint32_t* w = Word(l);
      const size_t whole = job.size / 4;
      for (size_t k = 0; k < whole; ++k) {
        uint32_t v;
        std::memcpy(&v, job.data + 4 * k, 4);
        w[k * kWidth] = v;  // little-endian words (x86)
      }
      uint32_t last = 0x80u << (8 * (job.size % 4));  // the rest, then the 0x80 byte
      for (size_t i = 0; i < job.size % 4; ++i)
        last |= uint32_t{job.data[4 * whole + i]} << (8 * i);
      w[whole * kWidth] = last;
      w[14 * kWidth] = static_cast<uint32_t>(job.size * 8);  // the length in bits; word 15: 0
    }
    return x_[0];
  }
  void Store(const LaneState& st, Md5Job* const* jobs, int n) {
    alignas(64) uint32_t state[2][4][kWidth];
    std::memcpy(state, st.word, sizeof(state));
    for (int l = 0; l < n; ++l) {
      Md5Job& job = *jobs[l];
      for (int w = 0; w < 4; ++w) job.state[w] = state[l / kWidth][w][l % kWidth];
      job.blocks_done = 1;
      // Only the words a lane wrote are zeroed again (clearing all 2 KiB per pass cost a
      // third of the keys' time).
      uint32_t* w = Word(l);
      for (size_t k = 0; k <= job.size / 4; ++k) w[k * kWidth] = 0;
      w[14 * kWidth] = 0;
    }
  }

 private:
  // Word k of lane l is element k * kWidth + l % kWidth of x_[l / kWidth].
  uint32_t* Word(int l) { return reinterpret_cast<uint32_t*>(x_[l / kWidth]) + l % kWidth; }
  Lanes x_[2][16] = {};
};

// The padded block of a short message (RunLanes's short_block), for any instruction set.
inline void PadShortBlock(const Md5Job& job, unsigned char* block) {
  std::memset(block, 0, 64);
  if (job.size != 0) std::memcpy(block, job.data, job.size);
  block[job.size] = 0x80;
  const uint64_t bits = static_cast<uint64_t>(job.size) * 8;
  std::memcpy(block + 56, &bits, 8);  // little-endian (x86)
}

// Runs the long jobs (over 55 bytes) kLanes at a time; a lane that finishes its job takes the
// next one. Between job changes every lane advances one block per pass without bookkeeping:
// a lane is in a segment (its message's whole blocks, then its padded tail) and the passes
// run to the end of the shortest segment.
//
// A lane with no long job left to take hashes short jobs of `fill` meanwhile, one block a
// pass: fewer long messages than lanes (a GetRecords batch of 20 aggregates in 32 lanes)
// leave the rest of every pass to the partition keys a range check needs, for the cost of
// moving their blocks and states. `short_block(job, block)` writes a short job's padded block
// (64 bytes, 64-aligned). The short jobs of `fill` from `*fill_resume` on (set on return) may
// be left new (blocks_done 0), for RunShortLanes; every one before it is done. `fill` may be
// `jobs` itself.
//
// Stops when every long job is done, or when no long job is waiting and at most kLanes / 8
// lanes do any work: a vector pass then costs more than the scalar MD5 of those lanes'
// blocks, so the long ones are left (state, blocks_done) for the caller to finish, their
// pointers written to `unfinished` (kLanes of room). `load(blocks, x)` gathers word k of
// block l into lane l of x[k] for kWidth blocks. Returns the number of unfinished jobs.
template <typename Load, typename ShortBlock>
size_t RunLanes(Md5Job* jobs, size_t count, Md5Job* fill, size_t fill_count, Load load,
                ShortBlock short_block, Md5Job** unfinished, size_t* fill_resume) {
  alignas(64) static const unsigned char kZeroBlock[64] = {};
  alignas(64) unsigned char tails[kLanes][128];
  Md5Job* lane_job[kLanes];         // the lane's long job
  Md5Job* short_job[kLanes];        // or its short one (a job of `fill`)
  const unsigned char* at[kLanes];  // the lane's next block
  size_t left[kLanes];              // blocks left in the lane's segment (long jobs)
  bool in_tail[kLanes];
  LaneState st;
  size_t next = 0;        // where the search for a long job resumes
  size_t next_short = 0;  // and for a short one
  size_t waiting = 0;     // long jobs not yet taken
  for (size_t i = 0; i < count; ++i) waiting += !IsShort(jobs[i]) && jobs[i].blocks_done == 0;
  *fill_resume = 0;
  if (waiting == 0) return 0;
  int busy = 0;              // lanes on a long job
  uint64_t short_lanes = 0;  // the lanes on a short job
  bool short_lanes_changed = false;
  Lanes short_mask[2] = {};  // all ones in the lanes of short_lanes
  auto take_short = [&](int l) {
    for (; next_short < fill_count; ++next_short) {
      Md5Job& job = fill[next_short];
      if (!IsShort(job) || job.blocks_done != 0) continue;
      ++next_short;
      short_job[l] = &job;
      short_block(job, tails[l]);
      // The keys of a batch were last read by its parse, long before: fetched ahead.
      if (next_short + kLanes < fill_count) __builtin_prefetch(fill[next_short + kLanes].data);
      return true;
    }
    return false;
  };
  auto take = [&](int l) {
    for (; waiting > 0; ++next) {
      Md5Job& job = jobs[next];
      if (IsShort(job) || job.blocks_done != 0) continue;
      ++next;
      --waiting;
      lane_job[l] = &job;
      BuildTail(job.data, job.size, tails[l]);
      at[l] = job.data;
      left[l] = job.size / 64;
      in_tail[l] = false;
      st.Set(l, kMd5Iv);
      return true;
    }
    lane_job[l] = nullptr;
    left[l] = ~size_t{0};
    if (take_short(l)) {
      at[l] = tails[l];
      st.Set(l, kMd5Iv);
      short_lanes |= uint64_t{1} << l;
      short_lanes_changed = true;
    } else {
      at[l] = kZeroBlock;
    }
    return false;
  };
  // A lane at the end of its segment moves to its tail, or finishes and takes a new job.
  auto advance = [&](int l) {
    while (lane_job[l] != nullptr && left[l] == 0) {
      Md5Job& job = *lane_job[l];
      if (!in_tail[l]) {
        in_tail[l] = true;
        at[l] = tails[l];
        left[l] = PaddedBlocks(job.size) - job.size / 64;
        continue;
      }
      st.Get(l, job.state);
      job.blocks_done = PaddedBlocks(job.size);
      if (!take(l)) --busy;
    }
  };
  // After a pass: the short jobs' states read back, each lane given the next short job (its
  // state back to the MD5's initial one) or left idle.
  auto renew_shorts = [&] {
    alignas(64) uint32_t words[2][4][kWidth];
    std::memcpy(words, st.word, sizeof(words));
    for (uint64_t bits = short_lanes; bits != 0; bits &= bits - 1) {
      const int l = __builtin_ctzll(bits);
      Md5Job& job = *short_job[l];
      for (int w = 0; w < 4; ++w) job.state[w] = words[l / kWidth][w][l % kWidth];
      job.blocks_done = 1;
      if (!take_short(l)) {
        at[l] = kZeroBlock;
        short_lanes &= ~(uint64_t{1} << l);
        short_lanes_changed = true;
      }
    }
    if (short_lanes_changed) {
      for (int l = 0; l < kLanes; ++l) {
        short_mask[l / kWidth][l % kWidth] = (short_lanes >> l & 1) != 0 ? ~0u : 0u;
      }
      short_lanes_changed = false;
    }
    for (int g = 0; g < 2; ++g) {
      for (int w = 0; w < 4; ++w) {
        st.word[g][w] = (st.word[g][w] & ~short_mask[g]) | ((Lanes{} + kMd5Iv[w]) & short_mask[g]);
      }
    }
  };
  auto working = [&] {
    return busy > 0 && (waiting > 0 || busy + __builtin_popcountll(short_lanes) > kLanes / 8);
  };
  for (int l = 0; l < kLanes; ++l) busy += take(l);
  for (int l = 0; l < kLanes; ++l) advance(l);
  while (working()) {
    size_t run = ~size_t{0};
    for (int l = 0; l < kLanes; ++l) run = left[l] < run ? left[l] : run;
    uint64_t long_lanes = 0;
    for (int l = 0; l < kLanes; ++l) long_lanes |= uint64_t{lane_job[l] != nullptr} << l;
    size_t passes = 0;
    while (passes < run) {
      Lanes x0[16], x1[16];
      load(at, x0);
      load(at + kWidth, x1);
      CompressLanes(st, x0, x1);
      ++passes;
      // Each lane streams its own message: with 16 or 32 streams at once the hardware
      // prefetchers fall behind (a 10 MB batch ran at 3.0 GB/s without this, 4.8 with it).
      for (uint64_t bits = long_lanes; bits != 0; bits &= bits - 1) {
        const int l = __builtin_ctzll(bits);
        at[l] += 64;
        __builtin_prefetch(at[l] + 1024);
      }
      if (short_lanes != 0) {
        renew_shorts();
        if (!working()) break;
      }
    }
    for (int l = 0; l < kLanes; ++l) {
      if (lane_job[l] == nullptr) continue;
      left[l] -= passes;
      advance(l);
    }
  }
  // Short jobs taken but not run (the lanes' last ones): the first of them.
  *fill_resume = next_short;
  for (uint64_t bits = short_lanes; bits != 0; bits &= bits - 1) {
    const auto i = static_cast<size_t>(short_job[__builtin_ctzll(bits)] - fill);
    *fill_resume = i < *fill_resume ? i : *fill_resume;
  }
  size_t n = 0;
  for (int l = 0; l < kLanes; ++l) {  // stragglers, for the scalar MD5
    if (lane_job[l] == nullptr) continue;
    Md5Job& job = *lane_job[l];
    st.Get(l, job.state);
    job.blocks_done = in_tail[l] ? PaddedBlocks(job.size) - left[l] : job.size / 64 - left[l];
    unfinished[n++] = &job;
  }
  return n;
}

// Md5Jobs on one instruction set: RunLanes (short jobs of `more`, or without it those of
// `jobs`, filling idle lanes), then RunShortLanes for the short jobs left. Returns the
// number of unfinished jobs written to `unfinished` (34 of room), for the scalar MD5.
template <typename Load, typename ShortBlock, typename ShortLanes>
size_t HashJobs(Md5Job* jobs, size_t count, Md5Job* more, size_t more_count, Md5Job** unfinished,
                Load load, ShortBlock short_block, ShortLanes& short_lanes) {
  Md5Job* const fill = more != nullptr ? more : jobs;
  const size_t fill_count = more != nullptr ? more_count : count;
  size_t resume = 0;
  size_t n = RunLanes(jobs, count, fill, fill_count, load, short_block, unfinished, &resume);
  if (more != nullptr) {
    if (Md5Job* alone = RunShortLanes(jobs, count, short_lanes)) unfinished[n++] = alone;
  }
  if (Md5Job* alone = RunShortLanes(fill + resume, fill_count - resume, short_lanes)) {
    unfinished[n++] = alone;
  }
  return n;
}

#endif  // RIFFLE_MD5_LANE_WIDTH

}  // namespace
}  // namespace riffle::detail

#endif  // RIFFLE_COMMON_MD5_LANES_IMPL_H_
