// Cold routing helpers: decimal hash keys, the uniform layout, shard ids, error messages.
#include "riffle/hash_key.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>

#include "riffle/status.h"

namespace riffle {
namespace {

constexpr std::string_view kMaxHashKeyDecimal = "340282366920938463463374607431768211455";
constexpr std::string_view kShardIdPrefix = "shardId-";
constexpr size_t kShardIdDigits = 12;
constexpr size_t kMaxQuotedChars = 64;

// `value` for an error message, cut short so a huge bad input makes a bounded message.
std::string Quote(std::string_view value) {
  if (value.size() <= kMaxQuotedChars) return fmt::format("'{}'", value);
  return fmt::format("'{}...' ({} bytes)", value.substr(0, kMaxQuotedChars), value.size());
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

absl::StatusOr<HashKey> ParseHashKey(std::string_view decimal, std::string_view parameter) {
  const bool matches_pattern = !decimal.empty() && decimal.size() <= kMaxHashKeyDecimal.size() &&
                               std::all_of(decimal.begin(), decimal.end(), IsDigit) &&
                               (decimal[0] != '0' || decimal.size() == 1);
  if (!matches_pattern) {
    return InvalidArgumentError(fmt::format(
        "{} {} is not a valid hash key; it must match the pattern 0|([1-9]\\d{{0,38}}) (a "
        "decimal integer from 0 to {}).",
        parameter, Quote(decimal), kMaxHashKeyDecimal));
  }
  // Equal-length decimal strings without leading zeros compare like their values.
  if (decimal.size() == kMaxHashKeyDecimal.size() && decimal > kMaxHashKeyDecimal) {
    return InvalidArgumentError(fmt::format("{} {} is out of range; it must be between 0 and {}.",
                                            parameter, Quote(decimal), kMaxHashKeyDecimal));
  }
  HashKey value = 0;
  for (char c : decimal) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

std::string FormatHashKey(HashKey key) {
  // Peel 19 decimal digits at a time (10^19 is the largest power of ten in 64 bits).
  constexpr uint64_t kTen19 = 10000000000000000000ull;
  const HashKey top = key / kTen19;
  const uint64_t low = absl::Uint128Low64(key % kTen19);
  if (top == 0) return fmt::format("{}", low);
  const uint64_t high = absl::Uint128Low64(top / kTen19);
  const uint64_t middle = absl::Uint128Low64(top % kTen19);
  if (high == 0) return fmt::format("{}{:019}", middle, low);
  return fmt::format("{}{:019}{:019}", high, middle, low);
}

std::vector<HashKeyRange> UniformHashKeyRanges(int shard_count) {
  assert(shard_count >= 1);
  std::vector<HashKeyRange> ranges;
  if (shard_count < 1) return ranges;
  const auto n = static_cast<uint64_t>(shard_count);
  // floor(2^128 / n) without 2^128: floor((max + 1) / n) is one more than floor(max / n)
  // exactly when n divides max + 1. Unused when n == 1 (it would be 2^128).
  const HashKey q = kMaxHashKey / n + (kMaxHashKey % n == n - 1 ? 1 : 0);
  ranges.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    const HashKey start = q * i;
    const HashKey end = i + 1 == n ? kMaxHashKey : q * (i + 1) - 1;
    ranges.push_back(HashKeyRange{start, end});
  }
  return ranges;
}

std::string FormatShardId(uint64_t index) {
  return fmt::format("{}{:0{}}", kShardIdPrefix, index, kShardIdDigits);
}

std::optional<uint64_t> ParseShardId(std::string_view shard_id) {
  if (shard_id.substr(0, kShardIdPrefix.size()) != kShardIdPrefix) return std::nullopt;
  const std::string_view digits = shard_id.substr(kShardIdPrefix.size());
  if (digits.size() < kShardIdDigits || digits.size() > 20) return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(), IsDigit)) return std::nullopt;
  // Wider than 12 digits only for indexes that need it: no leading zero then.
  if (digits.size() > kShardIdDigits && digits[0] == '0') return std::nullopt;
  if (digits.size() == 20 && digits > std::string_view("18446744073709551615")) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : digits) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

namespace detail {

absl::Status PartitionKeyError(int64_t code_points) {
  if (code_points < 0) {
    return InvalidArgumentError(
        "PartitionKey is not valid UTF-8; it must be 1 to 256 Unicode characters.");
  }
  return InvalidArgumentError(
      fmt::format("PartitionKey has {} Unicode characters; it must have between {} and {}.",
                  code_points, kMinPartitionKeyChars, kMaxPartitionKeyChars));
}

}  // namespace detail
}  // namespace riffle
