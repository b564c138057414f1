#include "stream/stream_errors.h"

#include <algorithm>

#include "fmt/format.h"
#include "riffle/detail/stream_core.h"
#include "riffle/status.h"

namespace riffle::detail {

std::optional<uint64_t> ResolveShardId(std::string_view shard_id) {
  if (std::optional<uint64_t> exact = ParseShardId(shard_id)) return exact;
  const std::size_t dash = shard_id.rfind('-');
  const std::string_view digits =
      dash == std::string_view::npos ? shard_id : shard_id.substr(dash + 1);
  constexpr uint64_t kMaxServiceIndex = 2147483647;  // the service's shard indexes are Java ints
  if (digits.empty() || digits.size() > 10 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : digits) value = value * 10 + static_cast<uint64_t>(c - '0');
  if (value > kMaxServiceIndex) return std::nullopt;
  return value;
}

absl::Status ShardNotFoundError(const StreamCore& core, uint64_t index) {
  return ResourceNotFoundError(fmt::format("Shard {} in stream {} under account {} does not exist",
                                           FormatShardId(index), core.name, core.account_id));
}

absl::Status CouldNotFindShardError(const StreamCore& core, std::string_view shard_id) {
  return ResourceNotFoundError(fmt::format("Could not find shard {} in stream {} under account {}.",
                                           shard_id.substr(0, 200), core.name, core.account_id));
}

absl::Status StreamNotActiveError(const StreamCore& core, std::string_view state) {
  return ResourceInUseError(
      fmt::format("Stream {} under account {} not ACTIVE, instead in state {}", core.name,
                  core.account_id, state));
}

absl::Status ShardRateExceededError(const StreamCore& core, uint64_t index) {
  return ProvisionedThroughputExceededError(
      fmt::format("Rate exceeded for shard {} in stream {} under account {}.", FormatShardId(index),
                  core.name, core.account_id));
}

}  // namespace riffle::detail
