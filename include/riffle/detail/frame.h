// The one place that owns riffle's memory layout: the frame a record occupies in a shard's
// ring, the ring's segments, and the word-wise copies in and out of it.
//
// A shard's log is an unbounded sequence of bytes; log position p lives at ring word
// (p / 8) % (capacity / 8). The ring is split into kSegmentsPerRing equal segments and a
// frame never crosses a segment boundary (the tail of a segment is filled with padding), so
// every segment starts with a frame: a reader that was lapped resumes at a segment start.
//
//   0        4        6        8                16               24               32
//   +--------+--------+--------+----------------+----------------+----------------+----
//   | length | keylen | flags  | position       | record index   | arrival (ms)   | key, data, pad
//   to 8
//   +--------+--------+--------+----------------+----------------+----------------+----
//   word 0                       word 1           word 2           word 3
//
// length counts header + key + data (unpadded); a padding frame is word 0 alone with
// kFlagPadding and length = the padded size it covers. Ring words are only ever accessed
// through std::atomic_ref (relaxed): a reader may copy a frame while a producer that lapped
// it overwrites the same bytes, and validates afterwards (seqlock style). Atomic word access
// keeps that race defined behaviour (and visible to ThreadSanitizer); on x86-64 a relaxed
// 8-byte atomic load or store is a plain mov.
#ifndef RIFFLE_DETAIL_FRAME_H_
#define RIFFLE_DETAIL_FRAME_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace riffle::detail {

inline constexpr uint64_t kFrameAlignment = 8;
inline constexpr uint64_t kFrameHeaderBytes = 32;
inline constexpr uint64_t kSegmentsPerRing = 4;
inline constexpr uint16_t kFlagPadding = 1;

constexpr uint64_t AlignFrame(uint64_t n) {
  return (n + kFrameAlignment - 1) & ~(kFrameAlignment - 1);
}

// The ring bytes a record of this size occupies.
constexpr uint64_t FrameBytes(uint64_t key_bytes, uint64_t data_bytes) {
  return AlignFrame(kFrameHeaderBytes + key_bytes + data_bytes);
}

constexpr uint64_t PackWord0(uint32_t length, uint16_t key_length, uint16_t flags) {
  return uint64_t{length} | (uint64_t{key_length} << 32) | (uint64_t{flags} << 48);
}
constexpr uint32_t Word0Length(uint64_t w) { return static_cast<uint32_t>(w); }
constexpr uint16_t Word0KeyLength(uint64_t w) { return static_cast<uint16_t>(w >> 32); }
constexpr uint16_t Word0Flags(uint64_t w) { return static_cast<uint16_t>(w >> 48); }

// Word access by memory order (Aeron names its accessors the same way).
inline uint64_t LoadWordRelaxed(const uint64_t* w) {
  return std::atomic_ref<const uint64_t>(*w).load(std::memory_order_relaxed);
}
inline void StoreWordRelaxed(uint64_t* w, uint64_t v) {
  std::atomic_ref<uint64_t>(*w).store(v, std::memory_order_relaxed);
}

// Copies `n` bytes into ring words from `src` (any alignment). The last word is padded
// with zeros. Callers keep a frame inside one segment, so no wrap is ever needed.
inline void CopyToWords(uint64_t* words, const void* src, std::size_t n) {
  const auto* s = static_cast<const unsigned char*>(src);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, s + i, 8);
    StoreWordRelaxed(words + i / 8, v);
  }
  if (i < n) {
    uint64_t v = 0;
    std::memcpy(&v, s + i, n - i);
    StoreWordRelaxed(words + i / 8, v);
  }
}

// Copies the concatenation of `a` (na bytes) and `b` (nb bytes) into ring words.
inline void GatherToWords(uint64_t* words, const void* a, std::size_t na, const void* b,
                          std::size_t nb) {
  const std::size_t whole = na & ~std::size_t{7};
  CopyToWords(words, a, whole);
  const std::size_t rest = na - whole;
  if (rest == 0) {
    CopyToWords(words + whole / 8, b, nb);
    return;
  }
  // One word joins the end of `a` with the start of `b`.
  unsigned char joint[8] = {};
  std::memcpy(joint, static_cast<const unsigned char*>(a) + whole, rest);
  const std::size_t take = nb < 8 - rest ? nb : 8 - rest;
  if (take > 0) std::memcpy(joint + rest, b, take);
  uint64_t v;
  std::memcpy(&v, joint, 8);
  StoreWordRelaxed(words + whole / 8, v);
  CopyToWords(words + whole / 8 + 1, static_cast<const unsigned char*>(b) + take, nb - take);
}

// Copies `n` bytes out of ring words into `dst`.
inline void CopyFromWords(void* dst, const uint64_t* words, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = LoadWordRelaxed(words + i / 8);
    std::memcpy(d + i, &v, 8);
  }
  if (i < n) {
    const uint64_t v = LoadWordRelaxed(words + i / 8);
    std::memcpy(d + i, &v, n - i);
  }
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_FRAME_H_
