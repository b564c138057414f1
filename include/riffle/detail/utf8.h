// UTF-8 validation and code point counting, for limits the services state in "Unicode
// characters" (a partition key is 1 to 256 of them).
#ifndef RIFFLE_DETAIL_UTF8_H_
#define RIFFLE_DETAIL_UTF8_H_

#include <cstdint>
#include <cstring>
#include <string_view>

namespace riffle::detail {

// True when every byte of `s` is ASCII. Eight bytes per step: keys are mostly ASCII.
inline bool IsAscii(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t acc = 0;
  if (n >= 8) {
    uint64_t word;
    for (; n > 8; n -= 8, p += 8) {
      std::memcpy(&word, p, 8);
      acc |= word;
    }
    // The last eight bytes, overlapping what the loop read: no byte loop for the tail.
    std::memcpy(&word, p + n - 8, 8);
    acc |= word;
  } else {
    for (; n > 0; --n, ++p) acc |= static_cast<unsigned char>(*p);
  }
  return (acc & 0x8080808080808080ull) == 0;
}

// The number of code points in `s`, or -1 when `s` is not well-formed UTF-8 (Unicode
// Table 3-7): overlong forms, surrogates (U+D800..U+DFFF), values above U+10FFFF, stray
// continuation bytes and truncated sequences are all rejected.
inline int64_t CountUtf8CodePoints(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  int64_t count = 0;
  while (p != end) {
    if (end - p >= 8) {  // Skip ASCII runs a word at a time.
      uint64_t word;
      std::memcpy(&word, p, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        p += 8;
        count += 8;
        continue;
      }
    }
    const unsigned char b0 = *p;
    if (b0 < 0x80) {
      ++p;
      ++count;
      continue;
    }
    // Bounds of the second byte narrow per lead byte; later bytes are always 80..BF.
    int length;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      length = 3;
      if (b0 == 0xE0) lo = 0xA0;  // Overlong below U+0800.
      if (b0 == 0xED) hi = 0x9F;  // Surrogates.
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      length = 4;
      if (b0 == 0xF0) lo = 0x90;  // Overlong below U+10000.
      if (b0 == 0xF4) hi = 0x8F;  // Above U+10FFFF.
    } else {
      return -1;  // Continuation byte, overlong C0/C1, or F5..FF.
    }
    if (end - p < length) return -1;
    if (p[1] < lo || p[1] > hi) return -1;
    for (int i = 2; i < length; ++i) {
      if ((p[i] & 0xC0) != 0x80) return -1;
    }
    p += length;
    ++count;
  }
  return count;
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_UTF8_H_
