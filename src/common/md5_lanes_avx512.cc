// Md5Jobs on 2 x 16 lanes (AVX-512F). Compiled with -mavx512f; called only where the processor
// has it. Includes nothing that defines inline functions (md5_lanes_impl.h says why).
#if defined(__AVX512F__)
// GCC 12 warns inside its own avx512fintrin.h, whose shuffles pass an undefined vector as
// the unused merge source (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define RIFFLE_MD5_LANE_WIDTH 16
#include "common/md5_lanes_impl.h"

namespace riffle::detail {
namespace {

// x[k] lane l = word k of block l: a 16x16 transpose of 32-bit words in four rounds of
// shuffles (pairs of words, of qwords, then 128-bit quarters twice).
void LoadTransposed16(const unsigned char* const* blocks, Lanes* x) {
  __m512i r[16], t[16], u[16];
  for (int l = 0; l < 16; ++l) r[l] = _mm512_loadu_si512(blocks[l]);
  for (int p = 0; p < 16; p += 2) {
    t[p] = _mm512_unpacklo_epi32(r[p], r[p + 1]);
    t[p + 1] = _mm512_unpackhi_epi32(r[p], r[p + 1]);
  }
  for (int g = 0; g < 16; g += 4) {  // u[g + m]: rows g..g+3, word 4q + m in quarter q
    u[g + 0] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44);  // quarters 0, 1
    const __m512i v1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xEE);  // quarters 2, 3
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xEE);
    x[m] = (Lanes)_mm512_shuffle_i32x4(v0, v2, 0x88);
    x[4 + m] = (Lanes)_mm512_shuffle_i32x4(v0, v2, 0xDD);
    x[8 + m] = (Lanes)_mm512_shuffle_i32x4(v1, v3, 0x88);
    x[12 + m] = (Lanes)_mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

}  // namespace

bool Md5JobsAvx512(Md5Job* jobs, size_t count) {
  if (RunShortLanes(jobs, count) == 0) return true;
  RunLanes(jobs, count, LoadTransposed16);
  // A short job left alone by RunShortLanes, or long stragglers: the scalar MD5 finishes
  // whatever is not done.
  return false;
}

}  // namespace riffle::detail
#endif  // __AVX512F__
