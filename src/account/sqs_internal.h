// What the SQS operations share (src/account/sqs_*.cc): the queues of the account, queue
// attributes parsed and checked as the service checks them, and the service's errors.
//
// Thread safety: SqsRegistry::mu guards the map, the recently deleted names and every
// entry's metadata (attributes, tags, timestamps, the attached dead-letter queue). The
// FifoQueue of an entry guards itself; callers hold the entry by shared_ptr, so a queue
// deleted during a call is destroyed when the call ends.
#ifndef RIFFLE_ACCOUNT_SQS_INTERNAL_H_
#define RIFFLE_ACCOUNT_SQS_INTERNAL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fifo/fifo_text.h"
#include "riffle/fifo_queue.h"
#include "riffle/sqs_types.h"

namespace riffle::detail {

// A name is free again 60 s after DeleteQueue; a queue is purged at most once per 60 s.
inline constexpr int64_t kQueueNameReuseMs = 60'000;
inline constexpr int64_t kPurgeIntervalMs = 60'000;
// Call rates of a FIFO queue (enforce_limits): per API action, per queue; in
// high-throughput mode per message group instead (SendMessage, SendMessageBatch).
inline constexpr int kFifoCallsPerSecond = 300;
inline constexpr int kMaxTagsPerQueue = 50;

struct SqsQueueEntry {
  std::string name;
  std::string url;
  std::string arn;
  int64_t created_s = 0;
  int64_t last_modified_s = 0;
  int64_t last_purge_ms = INT64_MIN;
  // The settable attributes, in the form GetQueueAttributes returns them (defaults
  // included; RedrivePolicy and RedriveAllowPolicy only when set).
  SqsAttributeMap attributes;
  SqsTagMap tags;
  // FifoThroughputLimit=perMessageGroupId: call rates per message group.
  bool per_group_rates = false;
  // The dead-letter queue the RedrivePolicy names, when it exists. Declared before
  // `queue`, so that the queue (which points at the dead-letter queue's FifoQueue) is
  // destroyed first.
  std::shared_ptr<SqsQueueEntry> dead_letter;
  std::unique_ptr<FifoQueue> queue;
};

struct SqsRegistry {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<SqsQueueEntry>, std::less<>> queues;  // by name
  absl::flat_hash_map<std::string, int64_t> deleted_ms;  // name -> when it was deleted
};

// ---- Errors, worded as the service words them ----
absl::Status QueueDoesNotExist();
absl::Status SqsMissingParameter(std::string_view parameter);
absl::Status InvalidAttributeName(std::string_view name);
// A name GetQueueAttributes knows (a queue attribute, or "All").
bool IsQueueAttributeName(std::string_view name);
absl::Status InvalidAttributeValueFor(std::string_view name, std::string_view reason = {});

// ---- Attributes ----
// A redrive policy as parsed from its JSON.
struct ParsedRedrivePolicy {
  std::string dead_letter_target_arn;
  int max_receive_count = 0;
};
struct ParsedRedriveAllowPolicy {
  std::string redrive_permission;  // allowAll, denyAll, byQueue
  std::vector<std::string> source_queue_arns;
};
// Parses and checks a RedrivePolicy / RedriveAllowPolicy value (InvalidParameterValue).
absl::StatusOr<ParsedRedrivePolicy> ParseRedrivePolicy(std::string_view json);
absl::StatusOr<ParsedRedriveAllowPolicy> ParseRedriveAllowPolicy(std::string_view json);
std::string RedrivePolicyJson(const ParsedRedrivePolicy& p);
std::string RedriveAllowPolicyJson(const ParsedRedriveAllowPolicy& p);

// The defaults of a new FIFO queue's settable attributes.
SqsAttributeMap DefaultFifoAttributes();
// Checks `requested` (CreateQueue with `creating`, or SetQueueAttributes) name by name and
// merges it into `*into`, normalized (numbers in decimal, booleans in lower case, the
// policies as the service prints them). FifoQueue is accepted only when creating.
absl::Status MergeAttributes(const SqsAttributeMap& requested, bool creating,
                             SqsAttributeMap* into);
// The FifoQueueOptions a normalized attribute map stands for (redrive policy excepted).
FifoQueueOptions OptionsFromAttributes(const SqsAttributeMap& attributes);

// Tags of CreateQueue and TagQueue (InvalidParameterValue).
absl::Status CheckTags(const SqsTagMap& tags);

}  // namespace riffle::detail

#endif  // RIFFLE_ACCOUNT_SQS_INTERNAL_H_
