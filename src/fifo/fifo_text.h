// Text rules of the FIFO queue: validation with the service's error names, and the
// formats of message ids, sequence numbers and receipt handles. Pure functions, no state.
#ifndef RIFFLE_DETAIL_FIFO_TEXT_H_
#define RIFFLE_DETAIL_FIFO_TEXT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"
#include "fmt/format.h"
#include "riffle/fifo_queue.h"
#include "riffle/status.h"

namespace riffle::detail {

inline constexpr int kMaxBatchEntries = 10;
inline constexpr int kMaxVisibilitySeconds = 43'200;
inline constexpr size_t kMaxFifoIdLength = 128;
inline constexpr int kMaxMessageAttributes = 10;

// A request error with an SQS name (one of the constants in riffle/status.h): the caller
// should fix the request (kInvalidArgument).
[[nodiscard]] absl::Status SqsError(std::string_view name, const std::string& message);
[[nodiscard]] absl::Status InvalidParameterValue(const std::string& message);
// InvalidParameterValue in the service's form: "Value <value> for parameter <parameter> is
// invalid. Reason: <reason>".
[[nodiscard]] absl::Status InvalidParameterValueFor(std::string_view parameter,
                                                    std::string_view value,
                                                    std::string_view reason);
// ReceiptHandleIsInvalid: not a handle this queue made.
[[nodiscard]] absl::Status ReceiptHandleIsInvalid(std::string_view handle);
// InvalidParameterValue for DeleteMessage with a handle whose visibility timeout ended.
[[nodiscard]] absl::Status ReceiptHandleExpired(std::string_view handle);
// InvalidParameterValue for ChangeMessageVisibility with a handle of an earlier receive or
// of a message that is gone.
[[nodiscard]] absl::Status NotAvailableForVisibilityChange(std::string_view handle);
// MessageNotInflight: the message is in the wrong state, not the request
// (kFailedPrecondition).
[[nodiscard]] absl::Status MessageNotInflight();
// InvalidParameterValue (or `error`) naming `parameter` unless lo <= value <= hi.
[[nodiscard]] absl::Status CheckRange(std::string_view parameter, int64_t value, int64_t lo,
                                      int64_t hi, std::string_view error = kInvalidParameterValue);

// MessageGroupId, MessageDeduplicationId, ReceiveRequestAttemptId: 1..128 of [!-~].
[[nodiscard]] absl::Status ValidateFifoId(std::string_view parameter, std::string_view id);
// A send without a deduplication id to a queue without content-based deduplication.
[[nodiscard]] absl::Status MissingDeduplicationId();
// Batch entry ids: 1..80 of [A-Za-z0-9_-] (InvalidBatchEntryId).
[[nodiscard]] absl::Status ValidateBatchEntryId(std::string_view id);
// Up to 10 attributes with SQS names, types and values; adds their size to `*bytes`.
[[nodiscard]] absl::Status ValidateAttributes(const MessageAttributes& attributes, size_t* bytes);
[[nodiscard]] absl::Status ValidateOptions(const FifoQueueOptions& options);

// SQS MessageGroupId / MessageDeduplicationId / ReceiveRequestAttemptId characters:
// alphanumerics and punctuation, i.e. printable ASCII without the space.
inline bool IsFifoIdChar(unsigned char c) { return c >= 0x21 && c <= 0x7E; }

// The position of the first character a message body may not contain (SQS allows
// #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF, in UTF-8), or npos.
// `code_point` receives the offending value (the byte itself for malformed UTF-8).
size_t FindInvalidBodyChar(std::string_view text, uint32_t* code_point);

// Lower-case hex SHA-256 of `data` (64 characters) into `out`.
void Sha256Hex(std::string_view data, char out[64]);

// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" from 128 bits.
void FormatMessageId(absl::uint128 id, std::string* out);

// Sequence numbers: a fixed-width 20-digit decimal, so that string order is numeric order.
inline constexpr uint64_t kSequenceBase = 10'000'000'000'000'000'000ull;
void FormatSequenceNumber(uint64_t serial, std::string* out);

// Receipt handle: 32 hex digits of (check, slot, generation). The check mixes the queue's
// tag with the slot and generation (Mix64, a bijection), so an edited handle, or another
// queue's, fails it: a handle that passes was made by a receive of this queue. A check
// against mistakes and fuzzing, not a secret.
inline constexpr size_t kReceiptHandleSize = 32;
uint64_t ReceiptHandleCheck(uint64_t tag, uint32_t slot, uint32_t generation);
void FormatReceiptHandle(uint64_t tag, uint32_t slot, uint32_t generation, std::string* out);
// False when `handle` is malformed or fails the check (another queue's, or edited).
bool ParseReceiptHandle(std::string_view handle, uint64_t tag, uint32_t* slot,
                        uint32_t* generation);

// splitmix64: spreads counters into well-mixed ids.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The batch rules SendMessageBatch, DeleteMessageBatch and ChangeMessageVisibilityBatch
// share: 1..10 entries with valid, distinct ids. `entry_type` is the service's name for an
// entry (SendMessageBatchRequestEntry, ...), which its EmptyBatchRequest message names.
template <class Entries>
[[nodiscard]] absl::Status ValidateBatch(const Entries& entries, std::string_view entry_type) {
  if (entries.empty()) {
    return SqsError(kEmptyBatchRequest,
                    fmt::format("There should be at least one {} in the request.", entry_type));
  }
  if (entries.size() > kMaxBatchEntries) {
    return SqsError(kTooManyEntriesInBatchRequest,
                    fmt::format("Maximum number of entries per request are {}. You have sent {}.",
                                kMaxBatchEntries, entries.size()));
  }
  for (const auto& e : entries) {
    if (absl::Status s = ValidateBatchEntryId(e.id); !s.ok()) return s;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (entries[i].id == entries[j].id) {
        return SqsError(kBatchEntryIdsNotDistinct, fmt::format("Id {} repeated.", entries[i].id));
      }
    }
  }
  return absl::OkStatus();
}

// SendMessageBatch's limit on all its entries' bodies and attributes together: 256 KiB
// whatever the queue's MaximumMessageSize, or that size when it is larger. Checked over
// the whole request, before any entry is judged on its own.
template <class Entries>
[[nodiscard]] absl::Status CheckBatchBytes(const Entries& entries, int64_t maximum_message_size) {
  size_t total = 0;
  for (const auto& e : entries) {
    total += e.message_body.size();
    for (const auto& [name, value] : e.message_attributes) {
      total += name.size() + value.data_type.size() + value.string_value.size() +
               value.binary_value.size();
    }
  }
  const size_t limit = std::max<size_t>(262'144, static_cast<size_t>(maximum_message_size));
  if (total <= limit) return absl::OkStatus();
  return SqsError(kBatchRequestTooLong,
                  fmt::format("Batch requests cannot be longer than {} bytes. You have sent {} "
                              "bytes.",
                              limit, total));
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_FIFO_TEXT_H_
