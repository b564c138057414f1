#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/md5_lanes.h"
#include "riffle/detail/hash_key_cache.h"
#include "riffle/detail/md5.h"
#include "riffle/detail/utf8.h"
#include "riffle/hash_key.h"
#include "riffle/status.h"
#include "support/alloc_counter.h"

namespace {

using riffle::HashKey;

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

std::string RiffleMd5Hex(std::string_view s) {
  const auto d = riffle::detail::Md5(s.data(), s.size());
  return Hex(d.data(), d.size());
}

std::string OpenSslMd5Hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(s.data(), s.size(), md, &len, EVP_md5(), nullptr) == 1);
  return Hex(md, len);
}

// A big-endian reading of 16 digest bytes, written independently of Md5HashKey.
HashKey BigEndian128(const uint8_t* p) {
  HashKey v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | p[i];
  return v;
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

HashKey RandomHashKey(std::mt19937_64& rng) {
  // Mix widths so that short and long decimal forms are both exercised.
  const int bits = static_cast<int>(rng() % 129);
  HashKey v = absl::MakeUint128(rng(), rng());
  return bits == 128 ? v : v & ((HashKey(1) << bits) - 1);
}

// Decimal arithmetic on strings, independent of absl::uint128, for the expected layouts.
std::string DecDivSmall(const std::string& a, uint64_t n) {
  std::string q;
  unsigned __int128 rem = 0;
  for (char c : a) {
    rem = rem * 10 + static_cast<unsigned>(c - '0');
    q += static_cast<char>('0' + static_cast<int>(rem / n));
    rem %= n;
  }
  const size_t nz = q.find_first_not_of('0');
  return nz == std::string::npos ? "0" : q.substr(nz);
}

std::string DecMulSmall(const std::string& a, uint64_t m) {
  std::string out;
  unsigned __int128 carry = 0;
  for (auto it = a.rbegin(); it != a.rend(); ++it) {
    carry += static_cast<unsigned __int128>(static_cast<unsigned>(*it - '0')) * m;
    out += static_cast<char>('0' + static_cast<int>(carry % 10));
    carry /= 10;
  }
  for (; carry != 0; carry /= 10) out += static_cast<char>('0' + static_cast<int>(carry % 10));
  while (out.size() > 1 && out.back() == '0') out.pop_back();
  return std::string(out.rbegin(), out.rend());
}

std::string DecSubOne(std::string a) {  // REQUIRES a > 0
  size_t i = a.size();
  while (a[--i] == '0') a[i] = '9';
  --a[i];
  const size_t nz = a.find_first_not_of('0');
  return nz == std::string::npos ? "0" : a.substr(nz);
}

constexpr char kTwoTo128[] = "340282366920938463463374607431768211456";
constexpr char kMax[] = "340282366920938463463374607431768211455";

}  // namespace

TEST_CASE("MD5 matches the RFC 1321 test suite", "[routing]") {
  CHECK(RiffleMd5Hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(RiffleMd5Hex("a") == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(RiffleMd5Hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(RiffleMd5Hex("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(RiffleMd5Hex("abcdefghijklmnopqrstuvwxyz") == "c3fcd3d76192e4007dfb496cca67e13b");
  CHECK(RiffleMd5Hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
        "d174ab98d277d9f5a5611c2c9f419d9f");
  CHECK(RiffleMd5Hex("1234567890123456789012345678901234567890123456789012345678901234567890"
                     "1234567890") == "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("MD5 and the MD5 hash key agree with OpenSSL on every length 0..300", "[routing]") {
  std::mt19937_64 rng(20240601);
  for (size_t n = 0; n <= 300; ++n) {
    // Extra samples around the block boundaries, where padding spills into a second block.
    const bool boundary =
        n == 55 || n == 56 || n == 63 || n == 64 || n == 65 || n == 119 || n == 120 || n == 128;
    for (int k = 0; k < (boundary ? 64 : 4); ++k) {
      const std::string s = RandomBytes(rng, n);
      const std::string expected = OpenSslMd5Hex(s);
      INFO("length " << n);
      REQUIRE(RiffleMd5Hex(s) == expected);
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      REQUIRE(EVP_Digest(s.data(), s.size(), md, &len, EVP_md5(), nullptr) == 1);
      REQUIRE(riffle::Md5HashKey(s) == BigEndian128(md));
    }
  }
}

TEST_CASE("the MD5 hash key of \"a\" is the service's", "[routing]") {
  const HashKey key = riffle::Md5HashKey("a");
  CHECK(key == absl::MakeUint128(0x0cc175b9c0f1b6a8ull, 0x31c399e269772661ull));
  CHECK(riffle::FormatHashKey(key) == "16955237001963240173058271559858726497");
  CHECK(riffle::ComputeHashKey(riffle::RoutingMode::kMd5, "a") == key);
}

TEST_CASE("the XXH3 hash key is stable: XXH128's canonical digest, big-endian", "[routing]") {
  CHECK(riffle::Xxh3HashKey("") == absl::MakeUint128(0x99aa06d3014798d8ull, 0x6001c324468d497full));
  CHECK(riffle::Xxh3HashKey("a") ==
        absl::MakeUint128(0xa96faf705af16834ull, 0xe6c632b61e964e1full));
  CHECK(riffle::Xxh3HashKey("partition-key-0001") ==
        absl::MakeUint128(0x0899e22ba67af1f2ull, 0x6c18acb6e9a50e1dull));
  CHECK(riffle::ComputeHashKey(riffle::RoutingMode::kXxh3, "a") == riffle::Xxh3HashKey("a"));
  std::mt19937_64 rng(7);
  for (size_t n = 0; n < 300; n += 7) {
    const std::string s = RandomBytes(rng, n);
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits(s.data(), s.size()));
    REQUIRE(riffle::Xxh3HashKey(s) == BigEndian128(canonical.digest));
  }
}

TEST_CASE("ParseHashKey accepts 0, 1 and 2^128-1", "[routing]") {
  CHECK(riffle::ParseHashKey("0").value() == 0);
  CHECK(riffle::ParseHashKey("1").value() == 1);
  CHECK(riffle::ParseHashKey("18446744073709551616").value() == absl::MakeUint128(1, 0));
  CHECK(riffle::ParseHashKey(kMax).value() == riffle::kMaxHashKey);
  CHECK(riffle::ParseHashKey("16955237001963240173058271559858726497").value() ==
        riffle::Md5HashKey("a"));
}

TEST_CASE("ParseHashKey rejects what the pattern or the range forbids", "[routing][errors]") {
  const std::string pattern_rule =
      " is not a valid hash key; it must match the pattern 0|([1-9]\\d{0,38}) (a decimal "
      "integer from 0 to 340282366920938463463374607431768211455).";
  const std::string forty_digits(40, '1');
  for (const std::string bad : {"", "01", "00", "-1", "+1", " 1", "1 ", "1.0", "1e3", "abc", "12a4",
                                "0x10", forty_digits.c_str()}) {
    INFO("input '" << bad << "'");
    const auto parsed = riffle::ParseHashKey(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(riffle::ErrorName(parsed.status()) == "InvalidArgumentException");
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(riffle::ErrorMessage(parsed.status()) == "ExplicitHashKey '" + bad + "'" + pattern_rule);
  }
  // 2^128 and the largest 39-digit string match the pattern but are out of range.
  for (const std::string& bad : {std::string(kTwoTo128), std::string(39, '9')}) {
    const auto parsed = riffle::ParseHashKey(bad, "NewStartingHashKey");
    REQUIRE_FALSE(parsed.ok());
    CHECK(riffle::ErrorName(parsed.status()) == "InvalidArgumentException");
    CHECK(riffle::ErrorMessage(parsed.status()) ==
          "NewStartingHashKey '" + bad +
              "' is out of range; it must be between 0 and "
              "340282366920938463463374607431768211455.");
  }
  // A huge input is quoted in part only.
  const std::string huge(10000, '7');
  const auto parsed = riffle::ParseHashKey(huge);
  REQUIRE_FALSE(parsed.ok());
  CHECK(riffle::ErrorMessage(parsed.status()) ==
        "ExplicitHashKey '" + std::string(64, '7') + "...' (10000 bytes)" + pattern_rule);
}

TEST_CASE("FormatHashKey round-trips through ParseHashKey", "[routing]") {
  CHECK(riffle::FormatHashKey(0) == "0");
  CHECK(riffle::FormatHashKey(9999999999999999999ull) == "9999999999999999999");
  CHECK(riffle::FormatHashKey(10000000000000000000ull) == "10000000000000000000");
  CHECK(riffle::FormatHashKey(absl::MakeUint128(1, 0)) == "18446744073709551616");
  CHECK(riffle::FormatHashKey(riffle::kMaxHashKey) == kMax);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    const HashKey v = RandomHashKey(rng);
    const std::string text = riffle::FormatHashKey(v);
    const auto back = riffle::ParseHashKey(text);
    REQUIRE(back.ok());
    REQUIRE(*back == v);
  }
}

TEST_CASE("a new stream's ranges are the service's, N = 1..10", "[routing]") {
  const auto three = riffle::UniformHashKeyRanges(3);
  REQUIRE(three.size() == 3);
  CHECK(riffle::FormatHashKey(three[0].starting_hash_key) == "0");
  CHECK(riffle::FormatHashKey(three[0].ending_hash_key) ==
        "113427455640312821154458202477256070484");
  CHECK(riffle::FormatHashKey(three[1].starting_hash_key) ==
        "113427455640312821154458202477256070485");
  CHECK(riffle::FormatHashKey(three[1].ending_hash_key) ==
        "226854911280625642308916404954512140969");
  CHECK(riffle::FormatHashKey(three[2].starting_hash_key) ==
        "226854911280625642308916404954512140970");
  CHECK(riffle::FormatHashKey(three[2].ending_hash_key) == kMax);

  for (int n = 1; n <= 10; ++n) {
    const std::string q = DecDivSmall(kTwoTo128, n);
    const auto ranges = riffle::UniformHashKeyRanges(n);
    REQUIRE(ranges.size() == static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      INFO("N=" << n << " shard " << i);
      CHECK(riffle::FormatHashKey(ranges[i].starting_hash_key) == DecMulSmall(q, i));
      const std::string end = i + 1 == n ? kMax : DecSubOne(DecMulSmall(q, i + 1));
      CHECK(riffle::FormatHashKey(ranges[i].ending_hash_key) == end);
    }
  }
}

TEST_CASE("uniform ranges cover 0..2^128-1 without gap or overlap", "[routing]") {
  for (int n : {1, 2, 3, 4, 5, 7, 16, 31, 64, 100, 500, 1000, 4096, 10007}) {
    INFO("N=" << n);
    const auto ranges = riffle::UniformHashKeyRanges(n);
    REQUIRE(ranges.size() == static_cast<size_t>(n));
    REQUIRE(ranges.front().starting_hash_key == 0);
    REQUIRE(ranges.back().ending_hash_key == riffle::kMaxHashKey);
    for (size_t i = 0; i < ranges.size(); ++i) {
      REQUIRE(ranges[i].starting_hash_key <= ranges[i].ending_hash_key);
      REQUIRE(ranges[i].Contains(ranges[i].starting_hash_key));
      REQUIRE(ranges[i].Contains(ranges[i].ending_hash_key));
      if (i > 0) {
        REQUIRE(ranges[i].starting_hash_key == ranges[i - 1].ending_hash_key + 1);
        REQUIRE_FALSE(ranges[i].Contains(ranges[i - 1].ending_hash_key));
        REQUIRE_FALSE(ranges[i - 1].Contains(ranges[i].starting_hash_key));
      }
    }
  }
  CHECK(riffle::UniformHashKeyRanges(1)[0] == riffle::HashKeyRange{0, riffle::kMaxHashKey});
  CHECK(riffle::UniformHashKeyRanges(2)[1] ==
        riffle::HashKeyRange{absl::MakeUint128(1ull << 63, 0), riffle::kMaxHashKey});
}

TEST_CASE("UniformLayout routes every key to the range that holds it", "[routing]") {
  std::mt19937_64 rng(5);
  for (int n : {1, 2, 3, 5, 7, 10, 16, 100, 333, 1000, 65536, 1000003}) {
    INFO("N=" << n);
    const riffle::UniformLayout layout(n);
    REQUIRE(layout.shard_count() == n);
    const auto ranges = riffle::UniformHashKeyRanges(std::min(n, 1000));
    if (n <= 1000) {
      for (int i = 0; i < n; ++i) {  // Both ends of every range and their neighbours.
        const auto& r = ranges[i];
        REQUIRE(layout.ShardIndex(r.starting_hash_key) == i);
        REQUIRE(layout.ShardIndex(r.ending_hash_key) == i);
        if (i > 0) REQUIRE(layout.ShardIndex(r.starting_hash_key - 1) == i - 1);
        if (i + 1 < n) REQUIRE(layout.ShardIndex(r.ending_hash_key + 1) == i + 1);
        // Keys near a start, where the high word alone cannot tell the shard, and one high
        // word away.
        if (i == 0) continue;
        for (const HashKey d : {HashKey(2), HashKey(n), HashKey(2 * n), HashKey(3 * n),
                                HashKey(4 * n + 1), absl::MakeUint128(1, 0)}) {
          for (const HashKey key : {r.starting_hash_key - d, r.starting_hash_key + d}) {
            const int at = layout.ShardIndex(key);
            REQUIRE(at >= 0);
            REQUIRE(at < n);
            REQUIRE(ranges[at].Contains(key));
          }
        }
      }
      for (int k = 0; k < 2000; ++k) {
        const HashKey key = RandomHashKey(rng);
        const int i = layout.ShardIndex(key);
        REQUIRE(i >= 0);
        REQUIRE(i < n);
        REQUIRE(ranges[i].Contains(key));
      }
    } else {  // Too many ranges to list: check against the layout formula directly.
      const HashKey q = riffle::ParseHashKey(DecDivSmall(kTwoTo128, n)).value();
      for (int k = 0; k < 2000; ++k) {
        const uint64_t i = rng() % n;
        const HashKey start = q * i;
        REQUIRE(layout.ShardIndex(start) == static_cast<int>(i));
        if (i > 0) REQUIRE(layout.ShardIndex(start - 1) == static_cast<int>(i - 1));
      }
      REQUIRE(layout.ShardIndex(riffle::kMaxHashKey) == n - 1);
    }
  }
}

TEST_CASE("shard ids are shardId- and a 12-digit counter", "[routing]") {
  CHECK(riffle::FormatShardId(0) == "shardId-000000000000");
  CHECK(riffle::FormatShardId(7) == "shardId-000000000007");
  CHECK(riffle::FormatShardId(999999999999) == "shardId-999999999999");
  CHECK(riffle::FormatShardId(1000000000000) == "shardId-1000000000000");
  for (uint64_t i :
       {0ull, 7ull, 123456789012ull, 999999999999ull, 1000000000000ull, 18446744073709551615ull}) {
    CHECK(riffle::ParseShardId(riffle::FormatShardId(i)) == i);
  }
}

TEST_CASE("ParseShardId rejects anything FormatShardId cannot produce", "[routing][errors]") {
  for (const char* bad :
       {"", "shardId-", "shardId-00000000007", "shardId-0000000000007", "shardid-000000000007",
        "ShardId-000000000007", "shardId-00000000000a", "shardId-+00000000007",
        " shardId-000000000007", "shardId-000000000007 ", "shardId--00000000007",
        "shardId-18446744073709551616", "shardId-99999999999999999999", "000000000007"}) {
    INFO("shard id '" << bad << "'");
    CHECK_FALSE(riffle::ParseShardId(bad).has_value());
  }
}

TEST_CASE("partition keys of 1 to 256 characters are valid, counted in code points", "[routing]") {
  std::string e_acute_256;
  std::string emoji_256;
  for (int i = 0; i < 256; ++i) {
    e_acute_256 += "\xC3\xA9";        // U+00E9, 2 bytes
    emoji_256 += "\xF0\x9F\x98\x80";  // U+1F600, 4 bytes
  }
  for (const std::string& key :
       {std::string("a"), std::string(256, 'x'), std::string("\xC3\xA9"), e_acute_256, emoji_256,
        std::string(255, 'x') + "\xE2\x82\xAC", std::string("\0", 1)}) {
    INFO("key of " << key.size() << " bytes");
    CHECK(riffle::ValidatePartitionKey(key).ok());
  }
}

TEST_CASE("partition keys outside 1..256 characters or not UTF-8 are rejected",
          "[routing][errors]") {
  auto check = [](const std::string& key, const std::string& message) {
    INFO("key of " << key.size() << " bytes");
    const absl::Status status = riffle::ValidatePartitionKey(key);
    REQUIRE_FALSE(status.ok());
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(riffle::ErrorName(status) == "InvalidArgumentException");
    CHECK(riffle::ErrorMessage(status) == message);
  };
  check("", "PartitionKey has 0 Unicode characters; it must have between 1 and 256.");
  check(std::string(257, 'x'),
        "PartitionKey has 257 Unicode characters; it must have between 1 and 256.");
  std::string e_acute_257;
  for (int i = 0; i < 257; ++i) e_acute_257 += "\xC3\xA9";
  check(e_acute_257, "PartitionKey has 257 Unicode characters; it must have between 1 and 256.");
  check(std::string(100000, 'x'),
        "PartitionKey has 100000 Unicode characters; it must have between 1 and 256.");
  const std::string invalid =
      "PartitionKey is not valid UTF-8; it must be 1 to 256 Unicode characters.";
  for (const std::string& key :
       {std::string("\xFF"), std::string("abc\x80"), std::string("\xC3"), std::string("\xC0\xAF"),
        std::string("\xE0\x80\xAF"), std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"),
        std::string("\xF5\x80\x80\x80"), std::string(300, 'x') + "\xC3"}) {
    check(key, invalid);
  }
}

TEST_CASE("CountUtf8CodePoints follows Unicode's well-formed table", "[routing]") {
  using riffle::detail::CountUtf8CodePoints;
  CHECK(CountUtf8CodePoints("") == 0);
  CHECK(CountUtf8CodePoints("\x7F") == 1);
  CHECK(CountUtf8CodePoints("\xC2\x80") == 1);          // U+0080
  CHECK(CountUtf8CodePoints("\xDF\xBF") == 1);          // U+07FF
  CHECK(CountUtf8CodePoints("\xE0\xA0\x80") == 1);      // U+0800
  CHECK(CountUtf8CodePoints("\xED\x9F\xBF") == 1);      // U+D7FF
  CHECK(CountUtf8CodePoints("\xEE\x80\x80") == 1);      // U+E000
  CHECK(CountUtf8CodePoints("\xEF\xBF\xBF") == 1);      // U+FFFF
  CHECK(CountUtf8CodePoints("\xF0\x90\x80\x80") == 1);  // U+10000
  CHECK(CountUtf8CodePoints("\xF4\x8F\xBF\xBF") == 1);  // U+10FFFF
  CHECK(CountUtf8CodePoints("abcdefgh\xC3\xA9ijklmnop") == 17);
  CHECK(CountUtf8CodePoints("\xC1\xBF") == -1);            // overlong U+007F
  CHECK(CountUtf8CodePoints("\xE0\x9F\xBF") == -1);        // overlong U+07FF
  CHECK(CountUtf8CodePoints("\xF0\x8F\xBF\xBF") == -1);    // overlong U+FFFF
  CHECK(CountUtf8CodePoints("\xED\xBF\xBF") == -1);        // surrogate U+DFFF
  CHECK(CountUtf8CodePoints("\xF4\x90\x80\x80") == -1);    // U+110000
  CHECK(CountUtf8CodePoints("abcdefghij\xE2\x82") == -1);  // truncated after ASCII run
  CHECK(CountUtf8CodePoints("\xE2\x28\xA1") == -1);        // bad continuation

  // Against a decoder written the other way round (decode, then check the value), over
  // every string of 1 to 3 bytes with a lead byte of interest and random 4-byte strings.
  auto reference = [](std::string_view s) -> int64_t {
    int64_t count = 0;
    for (size_t i = 0; i < s.size(); ++count) {
      const auto b = static_cast<unsigned char>(s[i]);
      int len;
      uint32_t cp;
      if (b < 0x80) {
        len = 1, cp = b;
      } else if ((b & 0xE0) == 0xC0) {
        len = 2, cp = b & 0x1F;
      } else if ((b & 0xF0) == 0xE0) {
        len = 3, cp = b & 0x0F;
      } else if ((b & 0xF8) == 0xF0) {
        len = 4, cp = b & 0x07;
      } else {
        return -1;
      }
      if (i + len > s.size()) return -1;
      for (int k = 1; k < len; ++k) {
        const auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xC0) != 0x80) return -1;
        cp = cp << 6 | (c & 0x3F);
      }
      const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
      i += len;
    }
    return count;
  };
  char buf[4];
  for (int a = 0; a < 256; ++a) {
    buf[0] = static_cast<char>(a);
    REQUIRE(CountUtf8CodePoints({buf, 1}) == reference({buf, 1}));
    for (int b = 0; b < 256; ++b) {
      buf[1] = static_cast<char>(b);
      REQUIRE(CountUtf8CodePoints({buf, 2}) == reference({buf, 2}));
      if (a < 0xE0 || a > 0xEF) continue;
      for (int c = 0; c < 256; ++c) {
        buf[2] = static_cast<char>(c);
        REQUIRE(CountUtf8CodePoints({buf, 3}) == reference({buf, 3}));
      }
    }
  }
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200000 / riffle_test::StressDivisor(); ++i) {
    const uint64_t r = rng();
    buf[0] = static_cast<char>(0xF0 + (r & 7));
    buf[1] = static_cast<char>(r >> 8);
    buf[2] = static_cast<char>(0x80 + ((r >> 16) & 0x3F) + ((r >> 22) & 1 ? 0x40 : 0));
    buf[3] = static_cast<char>(r >> 24);
    REQUIRE(CountUtf8CodePoints({buf, 4}) == reference({buf, 4}));
  }
}

TEST_CASE("the hash key cache always returns the uncached MD5 hash key", "[routing]") {
  using riffle::detail::Md5HashKeyCache;
  auto cache = std::make_unique<Md5HashKeyCache>();  // 16 KiB: off the stack.
  std::mt19937_64 rng(11);

  SECTION("many keys of every cacheable length, revisited in random order") {
    std::vector<std::string> keys;
    for (int i = 0; i < 4000; ++i) keys.push_back(RandomBytes(rng, rng() % 60));
    for (int round = 0; round < 5; ++round) {
      std::shuffle(keys.begin(), keys.end(), rng);
      for (const auto& k : keys) {
        REQUIRE(cache->Get(k) == riffle::Md5HashKey(k));
        REQUIRE(riffle::detail::CachedMd5HashKey(k) == riffle::Md5HashKey(k));
      }
    }
  }
  SECTION("keys that share a set replace each other and never mix") {
    // Collect keys by slot until one slot holds several, some sharing a prefix.
    std::vector<std::vector<std::string>> by_slot(Md5HashKeyCache::kEntries);
    std::vector<std::string>* crowded = nullptr;
    for (int i = 0; crowded == nullptr; ++i) {
      std::string k = "sym" + std::to_string(i);
      auto& slot = by_slot[Md5HashKeyCache::IndexOf(k)];
      slot.push_back(std::move(k));
      if (slot.size() == 4) crowded = &slot;
    }
    for (int round = 0; round < 100; ++round) {
      for (const auto& k : *crowded) {
        REQUIRE(cache->Get(k) == riffle::Md5HashKey(k));
        REQUIRE(riffle::detail::CachedMd5HashKey(k) == riffle::Md5HashKey(k));
      }
    }
  }
  SECTION("a key and its prefixes, the empty key and NUL bytes are told apart") {
    const std::string base("abc\0def\0", 8);
    for (int round = 0; round < 3; ++round) {
      for (size_t n = 0; n <= base.size(); ++n) {
        const std::string_view k(base.data(), n);
        REQUIRE(cache->Get(k) == riffle::Md5HashKey(k));
      }
    }
  }
  SECTION("keys longer than the cache's limit bypass it") {
    for (size_t n = Md5HashKeyCache::kMaxKeyBytes - 2; n < 300; ++n) {
      const std::string k = RandomBytes(rng, n);
      REQUIRE(cache->Get(k) == riffle::Md5HashKey(k));
      REQUIRE(cache->Get(k) == riffle::Md5HashKey(k));
      REQUIRE(riffle::detail::CachedMd5HashKey(k) == riffle::Md5HashKey(k));
    }
  }
}

TEST_CASE("keys hashed together get the hash keys each gets alone", "[routing]") {
  std::mt19937_64 rng(11);
  constexpr std::size_t kMax = 40;  // more than the widest lanes, so stragglers too
  for (int round = 0; round < 200; ++round) {
    std::string storage[kMax];
    riffle::detail::Md5Job jobs[kMax];
    const std::size_t n = 1 + rng() % kMax;
    for (std::size_t i = 0; i < n; ++i) {
      // Every length 0..256 (a partition key's largest), and every byte value.
      const std::size_t len = (round * kMax + i) % 257;
      for (std::size_t b = 0; b < len; ++b) storage[i].push_back(static_cast<char>(rng()));
      jobs[i].data = reinterpret_cast<const unsigned char*>(storage[i].data());
      jobs[i].size = storage[i].size();
    }
    riffle::detail::Md5Jobs(jobs, n);
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(riffle::detail::Md5JobHashKey(jobs[i]) == riffle::Md5HashKey(storage[i]));
    }
  }
  // A primed cache answers with the primed value.
  riffle::detail::Md5HashKeyCache cache{};
  const std::size_t set = riffle::detail::Md5HashKeyCache::IndexOf("a");
  riffle::HashKey found;
  CHECK_FALSE(cache.Find("a", set, &found));
  cache.PrimeSet(set, "a", riffle::Md5HashKey("a"));
  CHECK(cache.Find("a", set, &found));
  CHECK(found == riffle::Md5HashKey("a"));
  CHECK(cache.Get("a") == riffle::Md5HashKey("a"));
}

TEST_CASE("each thread has its own hash key cache", "[routing]") {
  std::vector<std::string> keys;
  for (int i = 0; i < 512; ++i) keys.push_back("user-" + std::to_string(i));
  std::vector<HashKey> expected;
  for (const auto& k : keys) expected.push_back(riffle::Md5HashKey(k));
  std::atomic<int> mismatches{0};
  auto work = [&](int seed) {
    std::mt19937 rng(seed);
    for (int i = 0; i < 50000 / riffle_test::StressDivisor(); ++i) {
      const size_t j = rng() % keys.size();
      if (riffle::detail::CachedMd5HashKey(keys[j]) != expected[j]) ++mismatches;
    }
  };
  std::thread a(work, 1), b(work, 2);
  a.join();
  b.join();
  CHECK(mismatches.load() == 0);
}

TEST_CASE("hashing, the cache and key validation allocate nothing", "[routing][alloc]") {
  const std::string short_key = "AAPL";
  const std::string long_key(200, 'k');
  std::string e_acute_256;
  for (int i = 0; i < 256; ++i) e_acute_256 += "\xC3\xA9";
  HashKey sink = 0;
  bool all_ok = true;
  uint64_t allocations = 0;
  {
    riffle_test::AllocationCounter counter;
    for (int i = 0; i < 100; ++i) {
      sink ^= riffle::Md5HashKey(short_key) ^ riffle::Md5HashKey(long_key);
      sink ^= riffle::Xxh3HashKey(short_key) ^ riffle::Xxh3HashKey(long_key);
      sink ^= riffle::ComputeHashKey(riffle::RoutingMode::kMd5, short_key);
      sink ^= riffle::detail::CachedMd5HashKey(short_key);
      sink ^= riffle::detail::CachedMd5HashKey(long_key);
      all_ok &= riffle::ValidatePartitionKey(short_key).ok();
      all_ok &= riffle::ValidatePartitionKey(e_acute_256).ok();
      all_ok &= riffle::ValidatePartitionKey(std::string_view(long_key).substr(0, 1)).ok();
    }
    allocations = counter.allocations();
  }
  CHECK(allocations == 0);
  CHECK(all_ok);
  CHECK(sink != 1);  // Keeps the calls observable.
}
