// Md5Jobs on 2 x 16 lanes (AVX-512F; BW for byte masks). Compiled with -mavx512f -mavx512bw;
// called only where the processor has both. Includes nothing that defines inline functions
// (md5_lanes_impl.h says why).
#if defined(__AVX512F__) && defined(__AVX512BW__)
// GCC 12 warns inside its own avx512fintrin.h, whose shuffles pass an undefined vector as
// the unused merge source (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define RIFFLE_MD5_LANE_WIDTH 16
#include "common/md5_lanes_impl.h"

namespace riffle::detail {
namespace {

// x[k] lane l = word k of row l: a 16x16 transpose of 32-bit words in four rounds of
// shuffles (pairs of words, of qwords, then 128-bit quarters twice).
void Transpose16(const __m512i* r, Lanes* x) {
  __m512i t[16], u[16];
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

// x[k] lane l = word k of block l.
void LoadTransposed16(const unsigned char* const* blocks, Lanes* x) {
  __m512i r[16];
  for (int l = 0; l < 16; ++l) r[l] = _mm512_loadu_si512(blocks[l]);
  Transpose16(r, x);
}

// The padding of a one-block message of n bytes (n <= 55): the 0x80 byte after it, and its
// length in bits in word 14.
struct Padding {
  alignas(64) unsigned char block[56][64];
};
constexpr Padding MakePadding() {
  Padding p{};
  for (int n = 0; n < 56; ++n) {
    p.block[n][n] = 0x80;
    p.block[n][56] = static_cast<unsigned char>(8 * n);
    p.block[n][57] = static_cast<unsigned char>(8 * n >> 8);
  }
  return p;
}
constexpr Padding kPadding = MakePadding();

// RunShortLanes's lanes: each message loaded with a byte mask (never past its end) into a
// padded block in a register, sixteen blocks transposed in registers; the states go back
// by a 4x16 transpose, one 16-byte store per job. About a quarter of the instructions of
// ScatteredShortLanes per message.
class TransposedShortLanes {
 public:
  const Lanes* Load(Md5Job* const* jobs, int n) {
    for (int g = 0; g < 2; ++g) {
      __m512i r[16];
      for (int l = 0; l < 16; ++l) {
        const int i = 16 * g + l;
        if (i >= n) {
          r[l] = _mm512_setzero_si512();
          continue;
        }
        const Md5Job& job = *jobs[i];
        const __mmask64 bytes = (uint64_t{1} << job.size) - 1;
        r[l] = _mm512_or_si512(_mm512_maskz_loadu_epi8(bytes, job.data),
                               _mm512_load_si512(kPadding.block[job.size]));
      }
      Transpose16(r, x_[g]);
    }
    return x_[0];
  }
  void Store(const LaneState& st, Md5Job* const* jobs, int n) {
    for (int g = 0; g < 2 && 16 * g < n; ++g) {
      const __m512i a = (__m512i)st.word[g][0], b = (__m512i)st.word[g][1];
      const __m512i c = (__m512i)st.word[g][2], d = (__m512i)st.word[g][3];
      const __m512i ab_lo = _mm512_unpacklo_epi32(a, b), ab_hi = _mm512_unpackhi_epi32(a, b);
      const __m512i cd_lo = _mm512_unpacklo_epi32(c, d), cd_hi = _mm512_unpackhi_epi32(c, d);
      // states[m] quarter q: A, B, C, D of lane 4q + m.
      alignas(64) uint32_t states[4][16];
      _mm512_store_si512(states[0], _mm512_unpacklo_epi64(ab_lo, cd_lo));
      _mm512_store_si512(states[1], _mm512_unpackhi_epi64(ab_lo, cd_lo));
      _mm512_store_si512(states[2], _mm512_unpacklo_epi64(ab_hi, cd_hi));
      _mm512_store_si512(states[3], _mm512_unpackhi_epi64(ab_hi, cd_hi));
      for (int l = 0; l < 16 && 16 * g + l < n; ++l) {
        Md5Job& job = *jobs[16 * g + l];
        std::memcpy(job.state, &states[l % 4][4 * (l / 4)], 16);
        job.blocks_done = 1;
      }
    }
  }

 private:
  Lanes x_[2][16];
};

// RunLanes's short_block: the message loaded with a byte mask, its padding or'd in.
void PadShortBlock512(const Md5Job& job, unsigned char* block) {
  const __mmask64 bytes = (uint64_t{1} << job.size) - 1;
  _mm512_store_si512(block, _mm512_or_si512(_mm512_maskz_loadu_epi8(bytes, job.data),
                                            _mm512_load_si512(kPadding.block[job.size])));
}

}  // namespace

size_t Md5JobsAvx512(Md5Job* jobs, size_t count, Md5Job* more, size_t more_count,
                     Md5Job** unfinished) {
  TransposedShortLanes short_lanes;
  // Lambdas, so that the engine inlines them (a function pointer is called).
  return HashJobs(
      jobs, count, more, more_count, unfinished,
      [](const unsigned char* const* blocks, Lanes* x) { LoadTransposed16(blocks, x); },
      [](const Md5Job& job, unsigned char* block) { PadShortBlock512(job, block); }, short_lanes);
}

}  // namespace riffle::detail
#endif  // __AVX512F__ && __AVX512BW__
