// What the Kinesis operations share (src/account/kinesis_*.cc): resolving a stream by name
// or ARN with the service's errors, state checks, the control-plane call rates, faults,
// and pagination tokens.
#ifndef RIFFLE_ACCOUNT_KINESIS_INTERNAL_H_
#define RIFFLE_ACCOUNT_KINESIS_INTERNAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "account/account_core.h"
#include "account/kinesis_registry.h"
#include "common/names.h"
#include "common/validation.h"
#include "riffle/kinesis_types.h"
#include "stream/stream_errors.h"

namespace riffle::detail {

// The parts of arn:aws:kinesis:<region>:<account>:stream/<name>[/consumer/<c>:<t>].
struct ParsedArn {
  std::string_view partition;
  std::string_view region;
  std::string_view account;
  std::string_view stream;
  std::string_view consumer;  // consumer ARNs only
};
std::optional<ParsedArn> ParseStreamArn(std::string_view arn);
std::optional<ParsedArn> ParseConsumerArn(std::string_view arn);

// Checks StreamName and StreamARN (ValidationException), then finds the stream they name
// and checks that `access` is allowed in its state. REQUIRES an EpochGuard held while
// `*out` is used.
// `fields`, when given, holds the violations of the request's other members: the service
// checks every member before it looks the stream up, so when the stream is not found by
// name at once, they come first, with StreamName's and StreamARN's listed after them.
absl::Status ResolveStream(AccountCore& core, const KinesisRegistry& registry,
                           std::string_view name, std::string_view arn, StreamAccess access,
                           StreamEntry** out, Violations* fields = nullptr);

// The status the service reports for `e` at `now_ms` (CREATING, DELETING, UPDATING from
// the account or from a reshard, ACTIVE).
StreamStatus StatusOf(const StreamEntry& e, int64_t now_ms);

// ResourceNotFoundException "Stream <name> under account <id> not found."
absl::Status StreamNotFound(std::string_view name, std::string_view account_id);
// ResourceInUseException "Stream <name> under account <id> not ACTIVE, instead in state <s>"
absl::Status NotActive(std::string_view name, std::string_view account_id, StreamStatus status);

// The service's control-plane call rates (limits on): LimitExceededException beyond the
// operation's calls per second. `e` scopes the per-stream ones; the message names `e`, or
// else `name` (a stream not created yet), when the call is about a stream.
absl::Status CheckCallRate(AccountCore& core, std::string_view operation, const StreamEntry* e,
                           std::string_view name = {});

// Faults for a call on `e` (or, with e == nullptr, on the resource `name`).
inline absl::Status Faults(AccountCore& core, std::string_view operation, const StreamEntry* e,
                           std::string_view name = {}, std::string_view shard_id = {}) {
  if (!core.faults.active()) [[likely]] {
    return absl::OkStatus();
  }
  // A shard named as the operation accepts it ("shardId-1", "1") is the rule's shard.
  std::string canonical;
  if (!shard_id.empty()) {
    if (const std::optional<uint64_t> index = ResolveShardId(shard_id)) {
      canonical = FormatShardId(*index);
      shard_id = canonical;
    }
  }
  return core.Inject(operation, e != nullptr ? std::string_view(e->name) : name,
                     e != nullptr ? std::string_view(e->arn) : std::string_view(), shard_id);
}

// Rate, then faults: what every call does once its stream is resolved.
inline absl::Status Admit(AccountCore& core, std::string_view operation, const StreamEntry* e,
                          std::string_view name = {}, std::string_view shard_id = {}) {
  if (core.limits) {
    if (absl::Status s = CheckCallRate(core, operation, e, name); !s.ok()) return s;
  }
  return Faults(core, operation, e, name, shard_id);
}

// The prologue of most operations on one stream: ResolveStream, then Admit `operation`
// against the stream found (and `shard_id`, for faults aimed at a shard).
inline absl::Status ResolveAndAdmit(AccountCore& core, const KinesisRegistry& registry,
                                    std::string_view operation, std::string_view name,
                                    std::string_view arn, StreamAccess access, StreamEntry** out,
                                    std::string_view shard_id = {}, Violations* fields = nullptr) {
  if (absl::Status s = ResolveStream(core, registry, name, arn, access, out, fields); !s.ok()) {
    return s;
  }
  return Admit(core, operation, *out, {}, shard_id);
}

// For a call that changes the registry under its lock: the call's rate and faults (a delay
// rule's wait included) are taken first, without the lock, so that a delayed call on one
// stream holds up no other call. The caller then takes the lock and resolves the stream
// again (it may have gone meanwhile). Resolving twice gives the same answers but counts the
// call once.
inline absl::Status AdmitBeforeLock(AccountCore& core, const KinesisRegistry& registry,
                                    std::string_view operation, std::string_view name,
                                    std::string_view arn, StreamAccess access,
                                    std::string_view shard_id = {}, Violations* fields = nullptr) {
  EpochGuard guard;
  StreamEntry* e = nullptr;
  return ResolveAndAdmit(core, registry, operation, name, arn, access, &e, shard_id, fields);
}

// ---- Shared checks and messages of the control plane ----
// The Tags member of CreateStream and AddTagsToStream (ValidationException).
void CheckTagMap(std::span<const Tag> tags, std::size_t max_entries, Violations& v);
// Tag characters: Unicode letters, digits, white space and _ . / = + - % @ (and ':' in the
// keys RemoveTagsFromStream names).
bool TagTextOk(std::string_view s, bool allow_colon);
absl::Status InvalidTagCharacters(bool remove);
// LimitExceededException "This request would exceed the shard limit for the account ...".
absl::Status ShardQuotaError(const AccountCore& core, int current, int additional);
// The open shards of every stream of the account (REQUIRES the registry's mutex).
int AccountOpenShards(const KinesisRegistry& registry, int64_t now_ms);

// ---- Pagination tokens (NextToken): opaque, keyed by the account's secret, 300 s ----
struct PageToken {
  char kind = 0;     // 'S' ListShards, 'N' ListStreams, 'C' ListStreamConsumers
  uint64_t tag = 0;  // the stream's tag ('S', 'C')
  int64_t issued_ms = 0;
  uint64_t after = 0;  // the last shard index or consumer position returned
  int filter = -1;     // ListShards: the ShardFilterType (-1: none)
  // ListShards: the filter's timestamp; ListStreamConsumers: the creation time of the
  // first consumer left out.
  int64_t filter_ms = 0;
  // ListStreams: the last stream name returned; ListStreamConsumers: the ARNs of the first
  // consumer left out and of the last one listed, a space between.
  std::string name;
};
std::string EncodePageToken(const PageToken& token, uint64_t secret);
// InvalidArgumentException for a token this account did not issue for `kind`;
// ExpiredNextTokenException for one older than 300 s at `now_ms`.
absl::StatusOr<PageToken> DecodePageToken(std::string_view text, char kind, uint64_t secret,
                                          int64_t now_ms);

}  // namespace riffle::detail

#endif  // RIFFLE_ACCOUNT_KINESIS_INTERNAL_H_
