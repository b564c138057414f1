// Md5Jobs on 2 x 8 lanes (AVX2). Compiled with -mavx2; called only where the processor has it.
// Includes nothing that defines inline functions (md5_lanes_impl.h says why).
#if defined(__AVX2__)
#include <immintrin.h>

#define RIFFLE_MD5_LANE_WIDTH 8
#include "common/md5_lanes_impl.h"

namespace riffle::detail {
namespace {

// x[k] lane l = word k of block l: two 8x8 transposes of 32-bit words (words 0-7, 8-15).
void LoadTransposed8(const unsigned char* const* blocks, Lanes* x) {
  for (int half = 0; half < 2; ++half) {
    __m256i r[8], t[8], u[8];
    for (int l = 0; l < 8; ++l) {
      r[l] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[l] + 32 * half));
    }
    for (int p = 0; p < 8; p += 2) {
      t[p] = _mm256_unpacklo_epi32(r[p], r[p + 1]);
      t[p + 1] = _mm256_unpackhi_epi32(r[p], r[p + 1]);
    }
    for (int g = 0; g < 8; g += 4) {  // u[g + m]: rows g..g+3, word 4q + m in 128-bit lane q
      u[g + 0] = _mm256_unpacklo_epi64(t[g], t[g + 2]);
      u[g + 1] = _mm256_unpackhi_epi64(t[g], t[g + 2]);
      u[g + 2] = _mm256_unpacklo_epi64(t[g + 1], t[g + 3]);
      u[g + 3] = _mm256_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int m = 0; m < 4; ++m) {
      x[8 * half + m] = (Lanes)_mm256_permute2x128_si256(u[m], u[4 + m], 0x20);
      x[8 * half + 4 + m] = (Lanes)_mm256_permute2x128_si256(u[m], u[4 + m], 0x31);
    }
  }
}

}  // namespace

size_t Md5JobsAvx2(Md5Job* jobs, size_t count, Md5Job* more, size_t more_count,
                   Md5Job** unfinished) {
  ScatteredShortLanes short_lanes;
  // Lambdas, so that the engine inlines them (a function pointer is called).
  return HashJobs(
      jobs, count, more, more_count, unfinished,
      [](const unsigned char* const* blocks, Lanes* x) { LoadTransposed8(blocks, x); },
      [](const Md5Job& job, unsigned char* block) { PadShortBlock(job, block); }, short_lanes);
}

}  // namespace riffle::detail
#endif  // __AVX2__
