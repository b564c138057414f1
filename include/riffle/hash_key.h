// Routing primitives that match Kinesis Data Streams exactly: 128-bit hash keys, explicit
// hash key parsing, the uniform shard layout of a new stream, shard ids and the partition
// key rule. A record goes to the open shard whose inclusive range holds its hash key.
//
//   riffle::HashKey key = riffle::Md5HashKey("user-42");       // what the service computes
//   auto ranges = riffle::UniformHashKeyRanges(4);             // CreateStream(ShardCount=4)
//
// Thread safety: every function here is pure (thread-safe). Hot ones (hashing, partition
// key validation) are inline and allocate nothing.
#ifndef RIFFLE_HASH_KEY_H_
#define RIFFLE_HASH_KEY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "riffle/detail/md5.h"
#include "riffle/detail/utf8.h"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace riffle {

// A position on the ring 0 .. 2^128-1 that shards divide between them.
using HashKey = absl::uint128;

inline constexpr HashKey kMaxHashKey = absl::Uint128Max();

// A partition key has 1 to 256 Unicode characters (code points of its UTF-8 bytes).
inline constexpr int kMinPartitionKeyChars = 1;
inline constexpr int kMaxPartitionKeyChars = 256;

// How a stream turns a partition key into a hash key.
enum class RoutingMode {
  kMd5,   // The service's rule: records land on the same shards as on Kinesis.
  kXxh3,  // XXH3-128 of the key: the same range logic, several times faster.
};

// MD5 of the key's bytes read as an unsigned big-endian 128-bit integer (the service's
// rule): Md5HashKey("a") == 16955237001963240173058271559858726497.
inline HashKey Md5HashKey(std::string_view partition_key) {
  const detail::Md5State s = detail::Md5Words(partition_key.data(), partition_key.size());
  // The digest bytes are a, b, c, d little-endian: big-endian reading swaps each word.
  const uint64_t high = uint64_t{__builtin_bswap32(s.a)} << 32 | __builtin_bswap32(s.b);
  const uint64_t low = uint64_t{__builtin_bswap32(s.c)} << 32 | __builtin_bswap32(s.d);
  return absl::MakeUint128(high, low);
}

// XXH3-128 (seed 0) of the key's bytes as (high64 << 64) | low64 of XXH128_hash_t, which is
// also XXH128's canonical (big-endian) digest read as a big-endian integer.
inline HashKey Xxh3HashKey(std::string_view partition_key) {
  const XXH128_hash_t h = XXH3_128bits(partition_key.data(), partition_key.size());
  return absl::MakeUint128(h.high64, h.low64);
}

inline HashKey ComputeHashKey(RoutingMode mode, std::string_view partition_key) {
  return mode == RoutingMode::kXxh3 ? Xxh3HashKey(partition_key) : Md5HashKey(partition_key);
}

// Parses an ExplicitHashKey: a decimal string matching 0|([1-9]\d{0,38}) whose value is at
// most 2^128-1. Anything else is InvalidArgumentException with a message naming
// `parameter` (AWS spelling, e.g. "NewStartingHashKey") and the rule it broke.
[[nodiscard]] absl::StatusOr<HashKey> ParseHashKey(std::string_view decimal,
                                                   std::string_view parameter = "ExplicitHashKey");

// Decimal, as the service prints StartingHashKey/EndingHashKey.
std::string FormatHashKey(HashKey key);

// An inclusive range [starting_hash_key, ending_hash_key] owned by one shard.
struct HashKeyRange {
  HashKey starting_hash_key = 0;
  HashKey ending_hash_key = kMaxHashKey;

  bool Contains(HashKey k) const { return starting_hash_key <= k && k <= ending_hash_key; }
  friend bool operator==(const HashKeyRange& a, const HashKeyRange& b) {
    return a.starting_hash_key == b.starting_hash_key && a.ending_hash_key == b.ending_hash_key;
  }
  friend bool operator!=(const HashKeyRange& a, const HashKeyRange& b) { return !(a == b); }
};

// The ranges of a new stream with `shard_count` shards, as the service lays them out:
// q = floor(2^128 / N); shard i covers [i*q, (i+1)*q - 1]; the last ends at 2^128-1.
// REQUIRES: shard_count >= 1 (an empty vector otherwise).
std::vector<HashKeyRange> UniformHashKeyRanges(int shard_count);

// Finds the shard of a hash key in the uniform layout of UniformHashKeyRanges(n) with a
// multiply instead of a search: floor(key * n / 2^128) is never above the true index and
// at most one below it (for n < 2^32), so one compare against the next start fixes it.
// Thread safety: immutable after construction.
class UniformLayout {
 public:
  // REQUIRES: shard_count >= 1.
  explicit UniformLayout(int shard_count)
      : shard_count_(static_cast<uint64_t>(shard_count < 1 ? 1 : shard_count)),
        quotient_(kMaxHashKey / shard_count_ +
                  (kMaxHashKey % shard_count_ == shard_count_ - 1 ? 1 : 0)) {}

  int shard_count() const { return static_cast<int>(shard_count_); }

  // The index i of the range of UniformHashKeyRanges(shard_count()) that holds `key`.
  int ShardIndex(HashKey key) const {
#if defined(__SIZEOF_INT128__)
    {
      // The high word alone: with hi * n = est * 2^64 + frac, key * n / 2^128 lies in
      // [est, est + (frac + n) / 2^64), and the true index is that floor or, for keys
      // within n of a range start, one more. So est is the index whenever frac is below
      // 2^64 - 2n: all keys but about 2n in 2^64, and a predictable branch takes the
      // multiply of the low word and the compare off the put's path to its shard.
      const unsigned __int128 p =
          static_cast<unsigned __int128>(absl::Uint128High64(key)) * shard_count_;
      if (static_cast<uint64_t>(p) < uint64_t{0} - 2 * shard_count_) [[likely]] {
        return static_cast<int>(p >> 64);
      }
    }
#endif
    // The top 64 bits of the 192-bit product key * n.
    const absl::uint128 low_product = absl::uint128(absl::Uint128Low64(key)) * shard_count_ >> 64;
    const uint64_t estimate =
        absl::Uint128High64(absl::uint128(absl::Uint128High64(key)) * shard_count_ + low_product);
    const uint64_t next = estimate + 1;
    return static_cast<int>(next < shard_count_ && key >= quotient_ * next ? next : estimate);
  }

 private:
  uint64_t shard_count_;
  HashKey quotient_;  // floor(2^128 / n); unused when n == 1.
};

// "shardId-" + the index zero-padded to 12 digits: FormatShardId(7) ==
// "shardId-000000000007". Indexes of 10^12 and more print all their digits.
std::string FormatShardId(uint64_t index);

// The index of a shard id in exactly the form FormatShardId produces; nullopt otherwise.
std::optional<uint64_t> ParseShardId(std::string_view shard_id);

namespace detail {
// The error for a partition key with `code_points` code points (-1: invalid UTF-8).
absl::Status PartitionKeyError(int64_t code_points);
}  // namespace detail

// OK when the key has 1 to 256 Unicode characters of well-formed UTF-8; otherwise
// InvalidArgumentException naming PartitionKey and the limit. Allocates nothing on success.
[[nodiscard]] inline absl::Status ValidatePartitionKey(std::string_view key) {
  // Fast path: 1..256 ASCII bytes are 1..256 characters.
  if (key.size() - 1 < size_t{kMaxPartitionKeyChars} && detail::IsAscii(key)) {
    return absl::OkStatus();
  }
  const int64_t code_points = detail::CountUtf8CodePoints(key);
  if (code_points >= kMinPartitionKeyChars && code_points <= kMaxPartitionKeyChars) {
    return absl::OkStatus();
  }
  return detail::PartitionKeyError(code_points);
}

}  // namespace riffle

#endif  // RIFFLE_HASH_KEY_H_
