#include "common/md5_lanes.h"

#include <cstdint>
#include <cstring>

#include "riffle/detail/md5.h"

namespace riffle::detail {
namespace {

// Eight 32-bit lanes; GCC and Clang lower the arithmetic to AVX2, or to SSE2 pairs.
using Lanes = uint32_t __attribute__((vector_size(32)));

// RFC 1321's compression of one block per lane: the steps, constants and shifts of
// Md5Compress (detail/md5.h), applied to every lane at once.
#if defined(__x86_64__) && !defined(RIFFLE_SANITIZED)
__attribute__((target_clones("avx2", "default")))
#endif
void CompressLanes(Lanes state[4], const Lanes x[16]) {
  Lanes a = state[0], b = state[1], c = state[2], d = state[3];
#define RIFFLE_MD5L_ROTL(v, r) (((v) << (r)) | ((v) >> (32 - (r))))
#define RIFFLE_MD5L_STEP(f, w, x_, y, z, k, t, r) \
  w += x[k] + (t);                                \
  w += f(x_, y, z);                               \
  w = RIFFLE_MD5L_ROTL(w, r) + x_
#define RIFFLE_MD5L_F(x_, y, z) ((z) ^ ((x_) & ((y) ^ (z))))
#define RIFFLE_MD5L_G(x_, y, z) (((y) & ~(z)) + ((x_) & (z)))
#define RIFFLE_MD5L_H(x_, y, z) ((x_) ^ ((y) ^ (z)))
#define RIFFLE_MD5L_I(x_, y, z) ((y) ^ ((x_) | ~(z)))
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, a, b, c, d, 0, 0xd76aa478, 7);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, d, a, b, c, 1, 0xe8c7b756, 12);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, c, d, a, b, 2, 0x242070db, 17);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, b, c, d, a, 3, 0xc1bdceee, 22);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, a, b, c, d, 4, 0xf57c0faf, 7);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, d, a, b, c, 5, 0x4787c62a, 12);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, c, d, a, b, 6, 0xa8304613, 17);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, b, c, d, a, 7, 0xfd469501, 22);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, a, b, c, d, 8, 0x698098d8, 7);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, d, a, b, c, 9, 0x8b44f7af, 12);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, c, d, a, b, 10, 0xffff5bb1, 17);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, b, c, d, a, 11, 0x895cd7be, 22);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, a, b, c, d, 12, 0x6b901122, 7);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, d, a, b, c, 13, 0xfd987193, 12);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, c, d, a, b, 14, 0xa679438e, 17);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_F, b, c, d, a, 15, 0x49b40821, 22);

  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, a, b, c, d, 1, 0xf61e2562, 5);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, d, a, b, c, 6, 0xc040b340, 9);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, c, d, a, b, 11, 0x265e5a51, 14);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, b, c, d, a, 0, 0xe9b6c7aa, 20);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, a, b, c, d, 5, 0xd62f105d, 5);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, d, a, b, c, 10, 0x02441453, 9);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, c, d, a, b, 15, 0xd8a1e681, 14);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, b, c, d, a, 4, 0xe7d3fbc8, 20);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, a, b, c, d, 9, 0x21e1cde6, 5);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, d, a, b, c, 14, 0xc33707d6, 9);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, c, d, a, b, 3, 0xf4d50d87, 14);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, b, c, d, a, 8, 0x455a14ed, 20);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, a, b, c, d, 13, 0xa9e3e905, 5);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, d, a, b, c, 2, 0xfcefa3f8, 9);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, c, d, a, b, 7, 0x676f02d9, 14);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_G, b, c, d, a, 12, 0x8d2a4c8a, 20);

  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, a, b, c, d, 5, 0xfffa3942, 4);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, d, a, b, c, 8, 0x8771f681, 11);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, c, d, a, b, 11, 0x6d9d6122, 16);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, b, c, d, a, 14, 0xfde5380c, 23);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, a, b, c, d, 1, 0xa4beea44, 4);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, d, a, b, c, 4, 0x4bdecfa9, 11);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, c, d, a, b, 7, 0xf6bb4b60, 16);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, b, c, d, a, 10, 0xbebfbc70, 23);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, a, b, c, d, 13, 0x289b7ec6, 4);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, d, a, b, c, 0, 0xeaa127fa, 11);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, c, d, a, b, 3, 0xd4ef3085, 16);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, b, c, d, a, 6, 0x04881d05, 23);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, a, b, c, d, 9, 0xd9d4d039, 4);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, d, a, b, c, 12, 0xe6db99e5, 11);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, c, d, a, b, 15, 0x1fa27cf8, 16);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_H, b, c, d, a, 2, 0xc4ac5665, 23);

  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, a, b, c, d, 0, 0xf4292244, 6);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, d, a, b, c, 7, 0x432aff97, 10);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, c, d, a, b, 14, 0xab9423a7, 15);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, b, c, d, a, 5, 0xfc93a039, 21);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, a, b, c, d, 12, 0x655b59c3, 6);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, d, a, b, c, 3, 0x8f0ccc92, 10);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, c, d, a, b, 10, 0xffeff47d, 15);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, b, c, d, a, 1, 0x85845dd1, 21);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, a, b, c, d, 8, 0x6fa87e4f, 6);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, d, a, b, c, 15, 0xfe2ce6e0, 10);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, c, d, a, b, 6, 0xa3014314, 15);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, b, c, d, a, 13, 0x4e0811a1, 21);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, a, b, c, d, 4, 0xf7537e82, 6);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, d, a, b, c, 11, 0xbd3af235, 10);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, c, d, a, b, 2, 0x2ad7d2bb, 15);
  RIFFLE_MD5L_STEP(RIFFLE_MD5L_I, b, c, d, a, 9, 0xeb86d391, 21);
#undef RIFFLE_MD5L_ROTL
#undef RIFFLE_MD5L_STEP
#undef RIFFLE_MD5L_F
#undef RIFFLE_MD5L_G
#undef RIFFLE_MD5L_H
#undef RIFFLE_MD5L_I
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
}

}  // namespace

void Md5HashKeyLanes(const std::string_view* keys, std::size_t n, HashKey* out) {
  // Each key padded into its own block (RFC 1321 3.1-3.2), then the blocks' words transposed
  // so that word j of every block sits in one vector.
  alignas(32) unsigned char blocks[kMd5Lanes][64] = {};
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view k = keys[i];
    if (!k.empty()) std::memcpy(blocks[i], k.data(), k.size());
    blocks[i][k.size()] = 0x80;
    const uint64_t bits = static_cast<uint64_t>(k.size()) * 8;
    for (int b = 0; b < 8; ++b) blocks[i][56 + b] = static_cast<unsigned char>(bits >> (8 * b));
  }
  Lanes x[16];
  for (int j = 0; j < 16; ++j) {
    for (std::size_t i = 0; i < kMd5Lanes; ++i) x[j][i] = Md5LoadLe32(blocks[i] + 4 * j);
  }
  Lanes state[4];
  for (std::size_t i = 0; i < kMd5Lanes; ++i) {
    state[0][i] = 0x67452301;
    state[1][i] = 0xefcdab89;
    state[2][i] = 0x98badcfe;
    state[3][i] = 0x10325476;
  }
  CompressLanes(state, x);
  for (std::size_t i = 0; i < n; ++i) {
    // The digest's bytes are A, B, C, D little-endian; the hash key reads them big-endian
    // (as Md5HashKey does).
    const uint64_t high =
        uint64_t{__builtin_bswap32(state[0][i])} << 32 | __builtin_bswap32(state[1][i]);
    const uint64_t low =
        uint64_t{__builtin_bswap32(state[2][i])} << 32 | __builtin_bswap32(state[3][i]);
    out[i] = absl::MakeUint128(high, low);
  }
}

}  // namespace riffle::detail
