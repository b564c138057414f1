// The errors a Stream shares between its parts, worded as the service words them: messages
// name the shard, the stream and the account ("Shard shardId-000000000007 in stream orders
// under account 000000000000 does not exist").
#ifndef RIFFLE_STREAM_STREAM_ERRORS_H_
#define RIFFLE_STREAM_STREAM_ERRORS_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace riffle::detail {

struct StreamCore;

// The service's reading of a ShardId member: the exact form shardId-<12 digits>, or any id
// whose last '-'-separated part is a decimal of at most 2147483647 ("shard-7" and "7" both
// name shardId-000000000007). nullopt: no shard can have it.
std::optional<uint64_t> ResolveShardId(std::string_view shard_id);

// ResourceNotFoundException "Shard <id> in stream <name> under account <id> does not exist"
// (GetShardIterator, GetRecords): `index` printed in the service's form.
absl::Status ShardNotFoundError(const StreamCore& core, uint64_t index);
// ResourceNotFoundException "Could not find shard <id> in stream <name> under account <id>."
// (SplitShard, MergeShards; GetShardIterator for an id no shard can have).
absl::Status CouldNotFindShardError(const StreamCore& core, std::string_view shard_id);
// ResourceInUseException "Stream <name> under account <id> not ACTIVE, instead in state <s>"
absl::Status StreamNotActiveError(const StreamCore& core, std::string_view state);
// ProvisionedThroughputExceededException "Rate exceeded for shard <id> in stream <name>
// under account <id>." (the write limit, the read budget).
absl::Status ShardRateExceededError(const StreamCore& core, uint64_t index);

}  // namespace riffle::detail

#endif  // RIFFLE_STREAM_STREAM_ERRORS_H_
