// The one place that owns riffle's record layout: the frame a record occupies in a shard's
// log, the log's segments, and the word-wise copies in and out of it. Everything else reads
// frames through FrameView and writes them through WriteFrame/WritePadding.
//
// A shard's log is an unbounded sequence of bytes; log position p lives at ring word
// (p / 8) % (capacity / 8). The ring is split into segments of equal size and a frame never
// crosses a segment boundary (the tail of a segment is filled with padding), so every
// segment starts with a frame: a reader that was lapped resumes at a segment start.
//
//   0        4        6        8                16               24               32
//   +--------+--------+--------+----------------+----------------+----------------+----
//   | length | keylen | flags  | check          | record index   | arrival (ms)   | key, data, pad
//   +--------+--------+--------+----------------+----------------+----------------+----
//                                                                              to 16 bytes
//   word 0                       word 1           word 2           word 3
//
// length counts header + key + data (unpadded); a padding frame is word 0 with kFlagPadding
// and length = the padded size it covers, then its check word. `check` is FrameCheck(position,
// secret): a word no record's data can imitate without the stream's secret, so a position
// that is not a frame start (a forged sequence number) is recognised as such.
//
// Ring words are only ever accessed through std::atomic_ref (relaxed): a reader may copy a
// frame while a producer that lapped it overwrites the same bytes, and validates afterwards
// (seqlock style). Atomic word access keeps that race defined behaviour (and visible to
// ThreadSanitizer); on x86-64 a relaxed 8-byte atomic load or store is a plain mov.
#ifndef RIFFLE_DETAIL_FRAME_H_
#define RIFFLE_DETAIL_FRAME_H_

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace riffle::detail {

// Frames start at multiples of 16 bytes: every gap a frame leaves at the end of a segment
// can then hold a padding frame with its check word (16 bytes).
inline constexpr uint64_t kFrameAlignment = 16;
inline constexpr uint64_t kFrameHeaderBytes = 32;
inline constexpr uint64_t kFrameHeaderWords = kFrameHeaderBytes / 8;
inline constexpr uint16_t kFlagPadding = 1;

constexpr uint64_t AlignFrame(uint64_t n) {
  return (n + kFrameAlignment - 1) & ~(kFrameAlignment - 1);
}

// The ring bytes a record of this size occupies.
constexpr uint64_t FrameBytes(uint64_t key_bytes, uint64_t data_bytes) {
  return AlignFrame(kFrameHeaderBytes + key_bytes + data_bytes);
}

// The check word of a frame at `position` in a log keyed by `secret` (murmur3's finalizer:
// a bijection, so distinct positions never share a check).
constexpr uint64_t FrameCheck(uint64_t position, uint64_t secret) {
  uint64_t x = position ^ secret;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Word access by memory order (Aeron names its accessors the same way).
inline uint64_t LoadWordRelaxed(const uint64_t* w) {
  return std::atomic_ref<const uint64_t>(*w).load(std::memory_order_relaxed);
}
inline void StoreWordRelaxed(uint64_t* w, uint64_t v) {
  std::atomic_ref<uint64_t>(*w).store(v, std::memory_order_relaxed);
}

// Header word 0.
constexpr uint64_t PackWord0(uint32_t length, uint16_t key_length, uint16_t flags) {
  return uint64_t{length} | (uint64_t{key_length} << 32) | (uint64_t{flags} << 48);
}

// Reads a frame's header fields. Over the ring (`Load` through atomic_ref) the values may be
// torn until the caller's lap check passes; over a private copy they are final.
// Word 0 (length, key length, flags) is loaded once, when the view is made: a producer that
// laps the reader may rewrite it at any moment, and a length validated by Plausible() must
// be the length the caller then copies or skips (loading it again could return key bytes).
class FrameView {
 public:
  // `words` points at word 0 of the frame.
  explicit FrameView(const uint64_t* words) : w_(words), w0_(LoadWordRelaxed(words)) {}

  uint64_t word0() const { return w0_; }
  uint32_t length() const { return static_cast<uint32_t>(word0()); }
  uint16_t key_length() const { return static_cast<uint16_t>(word0() >> 32); }
  bool is_padding() const { return (word0() >> 48) & kFlagPadding; }
  // Bytes the frame occupies in the log (length rounded up to the alignment).
  uint64_t padded_length() const { return AlignFrame(length()); }
  uint64_t check() const { return LoadWordRelaxed(w_ + 1); }
  uint64_t record_index() const { return LoadWordRelaxed(w_ + 2); }
  int64_t arrival_ms() const { return static_cast<int64_t>(LoadWordRelaxed(w_ + 3)); }

  // Only for a frame in private memory (a reader's copy): the bytes after the header.
  std::string_view key() const {
    return std::string_view(reinterpret_cast<const char*>(w_ + kFrameHeaderWords), key_length());
  }
  std::string_view data() const {
    return std::string_view(reinterpret_cast<const char*>(w_ + kFrameHeaderWords) + key_length(),
                            length() - kFrameHeaderBytes - key_length());
  }

  // The one validity check of a header read optimistically: a plausible record frame or
  // padding frame of at most `room` bytes. A record must also carry `expected_check`
  // (FrameCheck of its position). Says nothing about whether the bytes were overwritten
  // while read: the caller's lap check does.
  bool Plausible(uint64_t room, uint64_t expected_check) const {
    const uint64_t w0 = word0();
    const uint64_t length = static_cast<uint32_t>(w0);
    const uint64_t padded = AlignFrame(length);
    if (length < kFrameAlignment || padded > room) return false;
    if ((w0 >> 48) & kFlagPadding) return true;
    return length >= kFrameHeaderBytes + static_cast<uint16_t>(w0 >> 32) &&
           check() == expected_check;
  }

 private:
  const uint64_t* w_;
  uint64_t w0_;
};

// The `n` (at most 8) bytes at `p` as a little-endian word, zeros above them. Fixed-size
// loads only, none outside [p, p + n): no call for a variable-length copy, and no
// store-forwarding stall (a word loaded back from bytes just copied) on the way into the
// ring. REQUIRES: a little-endian target (callers check).
inline uint64_t LoadShortLittle(const unsigned char* p, std::size_t n) {
  if (n >= 4) {  // two 4-byte loads, the second ending at the last byte (they may overlap)
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return lo | (uint64_t{hi} << (8 * (n - 4)));
  }
  if (n >= 2) {
    uint16_t lo, hi;
    std::memcpy(&lo, p, 2);
    std::memcpy(&hi, p + n - 2, 2);
    return lo | (uint64_t{hi} << (8 * (n - 2)));
  }
  return n == 1 ? uint64_t{p[0]} : 0;
}

// The last `rest` (1 to 7) of the `n` bytes at `p`, as LoadShortLittle gives them.
inline uint64_t LoadTailLittle(const unsigned char* p, std::size_t n, std::size_t rest) {
  if (n < 8) return LoadShortLittle(p + n - rest, rest);
  uint64_t v;  // the last 8 bytes, shifted
  std::memcpy(&v, p + n - 8, 8);
  return v >> (8 * (8 - rest));
}

// Copies `n` bytes into ring words from `src` (any alignment). The last word is padded
// with zeros. Callers keep a frame inside one segment, so no wrap is ever needed.
inline void CopyToWords(uint64_t* words, const void* src, std::size_t n) {
  const auto* s = static_cast<const unsigned char*>(src);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint64_t a, b;
    std::memcpy(&a, s + i, 8);
    std::memcpy(&b, s + i + 8, 8);
    StoreWordRelaxed(words + i / 8, a);
    StoreWordRelaxed(words + i / 8 + 1, b);
  }
  if (i + 8 <= n) {
    uint64_t v;
    std::memcpy(&v, s + i, 8);
    StoreWordRelaxed(words + i / 8, v);
    i += 8;
  }
  if (i < n) {
    const std::size_t rest = n - i;
    uint64_t v = 0;
    if constexpr (std::endian::native == std::endian::little) {
      v = LoadTailLittle(s, n, rest);
    } else {
      std::memcpy(&v, s + i, rest);
    }
    StoreWordRelaxed(words + i / 8, v);
  }
}

// Copies the concatenation of `a` (na bytes) and `b` (nb bytes) into ring words.
inline void GatherToWords(uint64_t* words, const void* a, std::size_t na, const void* b,
                          std::size_t nb) {
  const auto* pa = static_cast<const unsigned char*>(a);
  const auto* pb = static_cast<const unsigned char*>(b);
  const std::size_t whole = na & ~std::size_t{7};
  CopyToWords(words, pa, whole);
  const std::size_t rest = na - whole;
  if (rest == 0) {
    CopyToWords(words + whole / 8, pb, nb);
    return;
  }
  // One word joins the end of `a` with the start of `b`.
  const std::size_t take = nb < 8 - rest ? nb : 8 - rest;
  uint64_t v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    // b's first bytes above a's last ones (what passes the word's top falls off the shift).
    v = LoadTailLittle(pa, na, rest) | (LoadShortLittle(pb, take) << (8 * rest));
  } else {
    std::memcpy(&v, pa + whole, rest);
    if (take > 0) std::memcpy(reinterpret_cast<unsigned char*>(&v) + rest, pb, take);
  }
  StoreWordRelaxed(words + whole / 8, v);
  CopyToWords(words + whole / 8 + 1, pb + take, nb - take);
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

// Writes a record frame's body and the header words other than word 0 (`words` = word 0).
inline void WriteFrameBody(uint64_t* words, uint64_t check, uint64_t record_index,
                           int64_t arrival_ms, std::string_view key, std::string_view data) {
  StoreWordRelaxed(words + 1, check);
  StoreWordRelaxed(words + 2, record_index);
  StoreWordRelaxed(words + 3, static_cast<uint64_t>(arrival_ms));
  GatherToWords(words + kFrameHeaderWords, key.data(), key.size(), data.data(), data.size());
}

// Word 0 of a record frame: written after the body.
inline void WriteFrameWord0(uint64_t* words, std::size_t key_bytes, std::size_t data_bytes) {
  StoreWordRelaxed(words,
                   PackWord0(static_cast<uint32_t>(kFrameHeaderBytes + key_bytes + data_bytes),
                             static_cast<uint16_t>(key_bytes), 0));
}

// A padding frame covering `bytes` (a multiple of the alignment, at least one word).
inline void WritePadding(uint64_t* words, uint64_t bytes) {
  StoreWordRelaxed(words, PackWord0(static_cast<uint32_t>(bytes), 0, kFlagPadding));
}

// A whole record frame into private (non-ring) memory, as a backend other than the ring
// builds a GetRecordsResult. REQUIRES: `words` has FrameBytes(key, data) / 8 words.
inline void WritePrivateFrame(uint64_t* words, uint64_t check, uint64_t record_index,
                              int64_t arrival_ms, std::string_view key, std::string_view data) {
  WriteFrameBody(words, check, record_index, arrival_ms, key, data);
  WriteFrameWord0(words, key.size(), data.size());
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_FRAME_H_
