// MD5 (RFC 1321), inline and allocation-free, for Kinesis routing (the service's hash key is
// the MD5 of the partition key) and for KPL aggregation checksums. Not for security.
//
// Why not OpenSSL: its non-deprecated EVP path allocates a digest context per EVP_Digest()
// call (hot paths must not allocate), a reused EVP_MD_CTX still pays the provider dispatch
// on every Init/Update/Final, and the one-shot MD5() is deprecated in OpenSSL 3. Partition
// keys are short, so a message that fits one 64-byte block (<= 55 bytes) is padded on the
// stack and compressed once. docs/routing.md has the measured figures.
//
// Thread safety: pure functions.
#ifndef RIFFLE_DETAIL_MD5_H_
#define RIFFLE_DETAIL_MD5_H_

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace riffle::detail {

// The four 32-bit state words A, B, C, D after the last block. The digest is their
// little-endian bytes in that order.
struct Md5State {
  uint32_t a, b, c, d;
};

inline uint32_t Md5LoadLe32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

// One compression of a 64-byte block (RFC 1321 section 3.4), fully unrolled: the shift and
// sine-table constants are immediates, which is most of the speed.
inline void Md5Compress(Md5State& s, const unsigned char* block) {
  uint32_t x[16];
  for (int i = 0; i < 16; ++i) x[i] = Md5LoadLe32(block + 4 * i);
  uint32_t a = s.a, b = s.b, c = s.c, d = s.d;

  // MD5 is latency-bound: each step needs the previous one's result (x_ below). Terms that
  // do not depend on it are added first so that they leave the critical path; G is written
  // as a sum of two disjoint masks for the same reason, H pairs the older words first.
#define RIFFLE_MD5_STEP(f, w, x_, y, z, k, t, r) \
  w += x[k] + (t);                               \
  w += f(x_, y, z);                              \
  w = std::rotl(w, r) + x_
#define RIFFLE_MD5_F(x_, y, z) ((z) ^ ((x_) & ((y) ^ (z))))
#define RIFFLE_MD5_G(x_, y, z) (((y) & ~(z)) + ((x_) & (z)))
#define RIFFLE_MD5_H(x_, y, z) ((x_) ^ ((y) ^ (z)))
#define RIFFLE_MD5_I(x_, y, z) ((y) ^ ((x_) | ~(z)))

  RIFFLE_MD5_STEP(RIFFLE_MD5_F, a, b, c, d, 0, 0xd76aa478, 7);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, d, a, b, c, 1, 0xe8c7b756, 12);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, c, d, a, b, 2, 0x242070db, 17);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, b, c, d, a, 3, 0xc1bdceee, 22);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, a, b, c, d, 4, 0xf57c0faf, 7);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, d, a, b, c, 5, 0x4787c62a, 12);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, c, d, a, b, 6, 0xa8304613, 17);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, b, c, d, a, 7, 0xfd469501, 22);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, a, b, c, d, 8, 0x698098d8, 7);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, d, a, b, c, 9, 0x8b44f7af, 12);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, c, d, a, b, 10, 0xffff5bb1, 17);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, b, c, d, a, 11, 0x895cd7be, 22);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, a, b, c, d, 12, 0x6b901122, 7);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, d, a, b, c, 13, 0xfd987193, 12);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, c, d, a, b, 14, 0xa679438e, 17);
  RIFFLE_MD5_STEP(RIFFLE_MD5_F, b, c, d, a, 15, 0x49b40821, 22);

  RIFFLE_MD5_STEP(RIFFLE_MD5_G, a, b, c, d, 1, 0xf61e2562, 5);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, d, a, b, c, 6, 0xc040b340, 9);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, c, d, a, b, 11, 0x265e5a51, 14);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, b, c, d, a, 0, 0xe9b6c7aa, 20);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, a, b, c, d, 5, 0xd62f105d, 5);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, d, a, b, c, 10, 0x02441453, 9);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, c, d, a, b, 15, 0xd8a1e681, 14);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, b, c, d, a, 4, 0xe7d3fbc8, 20);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, a, b, c, d, 9, 0x21e1cde6, 5);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, d, a, b, c, 14, 0xc33707d6, 9);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, c, d, a, b, 3, 0xf4d50d87, 14);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, b, c, d, a, 8, 0x455a14ed, 20);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, a, b, c, d, 13, 0xa9e3e905, 5);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, d, a, b, c, 2, 0xfcefa3f8, 9);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, c, d, a, b, 7, 0x676f02d9, 14);
  RIFFLE_MD5_STEP(RIFFLE_MD5_G, b, c, d, a, 12, 0x8d2a4c8a, 20);

  RIFFLE_MD5_STEP(RIFFLE_MD5_H, a, b, c, d, 5, 0xfffa3942, 4);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, d, a, b, c, 8, 0x8771f681, 11);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, c, d, a, b, 11, 0x6d9d6122, 16);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, b, c, d, a, 14, 0xfde5380c, 23);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, a, b, c, d, 1, 0xa4beea44, 4);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, d, a, b, c, 4, 0x4bdecfa9, 11);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, c, d, a, b, 7, 0xf6bb4b60, 16);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, b, c, d, a, 10, 0xbebfbc70, 23);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, a, b, c, d, 13, 0x289b7ec6, 4);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, d, a, b, c, 0, 0xeaa127fa, 11);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, c, d, a, b, 3, 0xd4ef3085, 16);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, b, c, d, a, 6, 0x04881d05, 23);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, a, b, c, d, 9, 0xd9d4d039, 4);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, d, a, b, c, 12, 0xe6db99e5, 11);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, c, d, a, b, 15, 0x1fa27cf8, 16);
  RIFFLE_MD5_STEP(RIFFLE_MD5_H, b, c, d, a, 2, 0xc4ac5665, 23);

  RIFFLE_MD5_STEP(RIFFLE_MD5_I, a, b, c, d, 0, 0xf4292244, 6);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, d, a, b, c, 7, 0x432aff97, 10);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, c, d, a, b, 14, 0xab9423a7, 15);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, b, c, d, a, 5, 0xfc93a039, 21);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, a, b, c, d, 12, 0x655b59c3, 6);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, d, a, b, c, 3, 0x8f0ccc92, 10);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, c, d, a, b, 10, 0xffeff47d, 15);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, b, c, d, a, 1, 0x85845dd1, 21);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, a, b, c, d, 8, 0x6fa87e4f, 6);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, d, a, b, c, 15, 0xfe2ce6e0, 10);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, c, d, a, b, 6, 0xa3014314, 15);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, b, c, d, a, 13, 0x4e0811a1, 21);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, a, b, c, d, 4, 0xf7537e82, 6);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, d, a, b, c, 11, 0xbd3af235, 10);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, c, d, a, b, 2, 0x2ad7d2bb, 15);
  RIFFLE_MD5_STEP(RIFFLE_MD5_I, b, c, d, a, 9, 0xeb86d391, 21);

#undef RIFFLE_MD5_STEP
#undef RIFFLE_MD5_F
#undef RIFFLE_MD5_G
#undef RIFFLE_MD5_H
#undef RIFFLE_MD5_I

  s.a += a;
  s.b += b;
  s.c += c;
  s.d += d;
}

// MD5 of `n` bytes at `data`, as the final state words. Allocation-free; `data` may be null
// when n == 0.
inline Md5State Md5Words(const void* data, size_t n) {
  Md5State s{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  const auto* p = static_cast<const unsigned char*>(data);
  const uint64_t bit_length = static_cast<uint64_t>(n) * 8;
  unsigned char block[64];
  auto store_length = [&](unsigned char* at) {
    for (int i = 0; i < 8; ++i) at[i] = static_cast<unsigned char>(bit_length >> (8 * i));
  };

  if (n <= 55) {  // Fast path: message, 0x80, padding and length fit one block.
    if (n != 0) std::memcpy(block, p, n);
    block[n] = 0x80;
    std::memset(block + n + 1, 0, 55 - n);
    store_length(block + 56);
    Md5Compress(s, block);
    return s;
  }

  size_t remaining = n;
  for (; remaining >= 64; remaining -= 64, p += 64) Md5Compress(s, p);
  std::memcpy(block, p, remaining);
  block[remaining] = 0x80;
  size_t filled = remaining + 1;
  if (filled > 56) {  // No room left for the length: pad this block, then one more.
    std::memset(block + filled, 0, 64 - filled);
    Md5Compress(s, block);
    filled = 0;
  }
  std::memset(block + filled, 0, 56 - filled);
  store_length(block + 56);
  Md5Compress(s, block);
  return s;
}

// MD5 digest of `n` bytes at `data` (the 16 bytes RFC 1321 prints in hex).
inline std::array<uint8_t, 16> Md5(const void* data, size_t n) {
  const Md5State s = Md5Words(data, n);
  std::array<uint8_t, 16> digest;
  const uint32_t words[4] = {s.a, s.b, s.c, s.d};
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 4; ++i) digest[4 * w + i] = static_cast<uint8_t>(words[w] >> (8 * i));
  }
  return digest;
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_MD5_H_
