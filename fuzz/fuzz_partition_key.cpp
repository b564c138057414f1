// Partition keys: ValidatePartitionKey and detail::CountUtf8CodePoints against a reference
// UTF-8 decoder (Unicode Table 3-7), riffle's own MD5 (the service's routing hash) against
// OpenSSL's, the per-thread MD5 cache against the uncached hash, and a put with the key.
//
// Input: the partition key's bytes.
#include <openssl/evp.h>

#include "fuzz_support.h"
#include "riffle/detail/hash_key_cache.h"
#include "riffle/detail/utf8.h"
#include "riffle/hash_key.h"

namespace {

// Code points of well-formed UTF-8, or -1: one sequence at a time, by the table of
// well-formed byte sequences.
int64_t ReferenceCount(std::string_view s) {
  int64_t count = 0;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned b0 = static_cast<unsigned char>(s[i]);
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (b0 <= 0x7F) {
      n = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      n = 2;
    } else if (b0 == 0xE0) {
      n = 3, lo = 0xA0;
    } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
      n = 3;
    } else if (b0 == 0xED) {
      n = 3, hi = 0x9F;
    } else if (b0 == 0xF0) {
      n = 4, lo = 0x90;
    } else if (b0 >= 0xF1 && b0 <= 0xF3) {
      n = 4;
    } else if (b0 == 0xF4) {
      n = 4, hi = 0x8F;
    } else {
      return -1;
    }
    if (s.size() - i < n) return -1;
    for (size_t k = 1; k < n; ++k) {
      const unsigned b = static_cast<unsigned char>(s[i + k]);
      const unsigned low = k == 1 ? lo : 0x80, high = k == 1 ? hi : 0xBF;
      if (b < low || b > high) return -1;
    }
    i += n;
    ++count;
  }
  return count;
}

riffle::HashKey OpenSslMd5(std::string_view s) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(s.data(), s.size(), digest, &length, EVP_md5(), nullptr);
  riffle::HashKey v = 0;
  for (unsigned int i = 0; i < length; ++i) v = v << 8 | digest[i];
  return v;
}

riffle::Stream& Live() {
  static riffle::Stream* stream = [] {
    riffle::StreamOptions o;
    o.stream_name = "keys";
    o.shard_count = 4;
    o.ring_capacity_bytes = 16384;
    o.max_record_size_bytes = 2048;  // room for 256 four-byte characters and some data
    return std::move(riffle::Stream::Create(o)).value().release();
  }();
  return *stream;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view key = riffle_fuzz::AsText(data, size);
  const int64_t expected = ReferenceCount(key);
  const int64_t count = riffle::detail::CountUtf8CodePoints(key);
  FUZZ_CHECK(count == expected, fmt::format("CountUtf8CodePoints('{}') = {}, reference {}",
                                            riffle_fuzz::Printable(key), count, expected));
  bool ascii = true;
  for (char c : key) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  FUZZ_CHECK(riffle::detail::IsAscii(key) == ascii, "IsAscii");

  const absl::Status valid = riffle::ValidatePartitionKey(key);
  FUZZ_CHECK(valid.ok() == (expected >= 1 && expected <= 256),
             fmt::format("ValidatePartitionKey('{}'): {}", riffle_fuzz::Printable(key),
                         riffle_fuzz::Describe(valid)));
  if (!valid.ok())
    FUZZ_CHECK(riffle::IsInvalidArgumentException(valid), riffle_fuzz::Describe(valid));

  const riffle::HashKey md5 = riffle::Md5HashKey(key);
  FUZZ_CHECK(md5 == OpenSslMd5(key), "Md5HashKey differs from OpenSSL's MD5");
  // Twice through the cache: a miss, then (for short keys) a hit.
  FUZZ_CHECK(riffle::detail::CachedMd5HashKey(key) == md5, "CachedMd5HashKey (miss)");
  FUZZ_CHECK(riffle::detail::CachedMd5HashKey(key) == md5, "CachedMd5HashKey (hit)");

  // A put with the key: accepted exactly when the key is valid (the data fits).
  const absl::StatusOr<riffle::PutRecordResult> put = Live().PutRecord(key, "d");
  FUZZ_CHECK(put.ok() == valid.ok(), riffle_fuzz::Describe(put.status()));
  // Well-formed text of the wrong length breaks the member's constraint (ValidationException);
  // bytes that are not UTF-8 are the operation's refusal (InvalidArgumentException).
  if (!put.ok()) {
    FUZZ_CHECK(expected >= 0 ? riffle::IsValidationException(put.status())
                             : riffle::IsInvalidArgumentException(put.status()),
               "put error name: " + riffle_fuzz::Describe(put.status()));
  }
  return 0;
}
