#include "riffle/status.h"

#include <array>
#include <functional>
#include <mutex>
#include <optional>
#include <set>

#include "absl/strings/cord.h"

namespace riffle {
namespace {

// The names riffle produces. ErrorName() answers with one of these views (or an interned
// copy of a user's own name), so that callers may keep the view.
constexpr std::array kKnownNames = {
    kInvalidArgumentException,
    kResourceNotFoundException,
    kResourceInUseException,
    kLimitExceededException,
    kExpiredIteratorException,
    kProvisionedThroughputExceededException,
    kInternalFailure,
    kValidationException,
    kExpiredNextTokenException,
    kAccessDeniedException,
    kKMSThrottlingException,
    kKMSDisabledException,
    kKMSInvalidStateException,
    kKMSAccessDeniedException,
    kKMSNotFoundException,
    kKMSOptInRequired,
    kServiceUnavailable,
    kThrottlingException,
    kServiceUnavailableException,
    kShutdownException,
    kInvalidCheckpointException,
    kInvalidParameterValue,
    kMissingParameter,
    kInvalidAttributeValue,
    kReceiptHandleIsInvalid,
    kMessageNotInflight,
    kInvalidMessageContents,
    kTooManyEntriesInBatchRequest,
    kBatchEntryIdsNotDistinct,
    kEmptyBatchRequest,
    kInvalidBatchEntryId,
    kBatchRequestTooLong,
    kQueueDoesNotExist,
    kQueueDeletedRecently,
    kQueueNameExists,
    kPurgeQueueInProgress,
    kInvalidAttributeName,
    kUnsupportedOperation,
    kFileSinkIOError,
    kNoSuchBucket,
    kNoSuchKey,
    kBucketAlreadyOwnedByYou,
    kInvalidBucketName,
    kBucketNotEmpty,
    kKeyTooLongError,
    kS3InvalidArgument,
    kInternalError,
    kSlowDown,
};

std::string_view FindKnown(std::string_view name) {
  for (std::string_view known : kKnownNames) {
    if (known == name) return known;
  }
  return {};
}

// Other names, kept for the life of the process (a set's nodes never move).
struct Interned {
  std::mutex mu;
  std::set<std::string, std::less<>> names;
};
Interned& InternedNames() {
  static Interned* interned = new Interned;  // never destroyed: views outlive statics
  return *interned;
}

std::string_view Intern(std::string_view name) {
  if (std::string_view known = FindKnown(name); !known.empty()) return known;
  Interned& interned = InternedNames();
  std::lock_guard<std::mutex> lock(interned.mu);
  auto it = interned.names.find(name);
  if (it == interned.names.end()) it = interned.names.emplace(name).first;
  return *it;
}

std::string_view NameByCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return {};
    case absl::StatusCode::kInvalidArgument:
      return kInvalidArgumentException;
    case absl::StatusCode::kNotFound:
      return kResourceNotFoundException;
    case absl::StatusCode::kResourceExhausted:
      return kLimitExceededException;
    case absl::StatusCode::kFailedPrecondition:
      return kResourceInUseException;
    default:
      return kInternalFailure;
  }
}

// Calls f(view) with the payload's bytes without copying them where the Cord is flat.
template <class F>
auto WithPayload(const absl::Status& status, F f) {
  // Debian's Abseil: absl::optional is not std::optional.
  auto payload = status.GetPayload(kErrorNamePayload);
  if (!payload) return f(std::optional<std::string_view>());
  if (auto flat = payload->TryFlat()) {
    return f(std::optional<std::string_view>(std::string_view(flat->data(), flat->size())));
  }
  const std::string copy(*payload);  // a fragmented payload: not one riffle made
  return f(std::optional<std::string_view>(std::string_view(copy)));
}

}  // namespace

absl::Status MakeError(absl::StatusCode code, std::string_view name, std::string_view message) {
  const std::string_view stored = Intern(name);
  absl::Status status(code, absl::string_view(message.data(), message.size()));
  status.SetPayload(kErrorNamePayload, absl::Cord(absl::string_view(stored.data(), stored.size())));
  return status;
}

std::string_view ErrorName(const absl::Status& status) {
  if (status.ok()) return {};
  return WithPayload(status, [&](std::optional<std::string_view> name) -> std::string_view {
    if (!name) return NameByCode(status.code());
    return Intern(*name);
  });
}

std::string_view QueryErrorCode(std::string_view name) {
  // The SQS errors whose query-protocol code differs from their JSON name (the service
  // model's "error" codes).
  static constexpr std::pair<std::string_view, std::string_view> kCodes[] = {
      {kQueueDoesNotExist, "AWS.SimpleQueueService.NonExistentQueue"},
      {kQueueNameExists, "QueueAlreadyExists"},
      {kQueueDeletedRecently, "AWS.SimpleQueueService.QueueDeletedRecently"},
      {kPurgeQueueInProgress, "AWS.SimpleQueueService.PurgeQueueInProgress"},
      {kUnsupportedOperation, "AWS.SimpleQueueService.UnsupportedOperation"},
      {kMessageNotInflight, "AWS.SimpleQueueService.MessageNotInflight"},
      {kTooManyEntriesInBatchRequest, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
      {kEmptyBatchRequest, "AWS.SimpleQueueService.EmptyBatchRequest"},
      {kBatchEntryIdsNotDistinct, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
      {kBatchRequestTooLong, "AWS.SimpleQueueService.BatchRequestTooLong"},
      {kInvalidBatchEntryId, "AWS.SimpleQueueService.InvalidBatchEntryId"},
  };
  for (const auto& [json, query] : kCodes) {
    if (name == json) return query;
  }
  return name;
}

bool HasErrorName(const absl::Status& status, std::string_view name) {
  if (status.ok()) return name.empty();
  return WithPayload(status, [&](std::optional<std::string_view> payload) {
    const std::string_view own = payload ? *payload : NameByCode(status.code());
    return own == name || (!name.empty() && QueryErrorCode(own) == name);
  });
}

std::string ErrorMessage(const absl::Status& status) { return std::string(status.message()); }

absl::Status InvalidArgumentError(std::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, kInvalidArgumentException, message);
}
absl::Status ResourceNotFoundError(std::string_view message) {
  return MakeError(absl::StatusCode::kNotFound, kResourceNotFoundException, message);
}
absl::Status ResourceInUseError(std::string_view message) {
  return MakeError(absl::StatusCode::kFailedPrecondition, kResourceInUseException, message);
}
absl::Status LimitExceededError(std::string_view message) {
  return MakeError(absl::StatusCode::kResourceExhausted, kLimitExceededException, message);
}
absl::Status ExpiredIteratorError(std::string_view message) {
  return MakeError(absl::StatusCode::kFailedPrecondition, kExpiredIteratorException, message);
}
absl::Status ProvisionedThroughputExceededError(std::string_view message) {
  return MakeError(absl::StatusCode::kResourceExhausted, kProvisionedThroughputExceededException,
                   message);
}
absl::Status InternalFailureError(std::string_view message) {
  return MakeError(absl::StatusCode::kInternal, kInternalFailure, message);
}
absl::Status ServiceUnavailableError(std::string_view message) {
  return MakeError(absl::StatusCode::kUnavailable, kServiceUnavailableException, message);
}
absl::Status ValidationError(std::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, kValidationException, message);
}
absl::Status ExpiredNextTokenError(std::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, kExpiredNextTokenException, message);
}

absl::StatusCode CanonicalCode(std::string_view name) {
  using C = absl::StatusCode;
  struct Entry {
    std::string_view name;
    C code;
  };
  // How a caller should react to each name (status.h's header comment).
  static constexpr Entry kCodes[] = {
      {kInvalidArgumentException, C::kInvalidArgument},
      {kValidationException, C::kInvalidArgument},
      {kExpiredNextTokenException, C::kInvalidArgument},
      {kResourceNotFoundException, C::kNotFound},
      {kResourceInUseException, C::kFailedPrecondition},
      {kExpiredIteratorException, C::kFailedPrecondition},
      {kLimitExceededException, C::kResourceExhausted},
      {kProvisionedThroughputExceededException, C::kResourceExhausted},
      {kKMSThrottlingException, C::kResourceExhausted},
      {kThrottlingException, C::kResourceExhausted},
      {kInternalFailure, C::kInternal},
      {kServiceUnavailable, C::kUnavailable},
      {kServiceUnavailableException, C::kUnavailable},
      {kConcurrentModificationException, C::kAborted},
      {kAccessDeniedException, C::kPermissionDenied},
      {kKMSAccessDeniedException, C::kPermissionDenied},
      {kKMSDisabledException, C::kFailedPrecondition},
      {kKMSInvalidStateException, C::kFailedPrecondition},
      {kKMSNotFoundException, C::kFailedPrecondition},
      {kKMSOptInRequired, C::kFailedPrecondition},
      {kInvalidParameterValue, C::kInvalidArgument},
      {kMissingParameter, C::kInvalidArgument},
      {kInvalidAttributeValue, C::kInvalidArgument},
      {kInvalidAttributeName, C::kInvalidArgument},
      {kReceiptHandleIsInvalid, C::kInvalidArgument},
      {kMessageNotInflight, C::kFailedPrecondition},
      {kQueueDoesNotExist, C::kNotFound},
      {kQueueDeletedRecently, C::kFailedPrecondition},
      {kQueueNameExists, C::kAlreadyExists},
      {kPurgeQueueInProgress, C::kFailedPrecondition},
      {kUnsupportedOperation, C::kUnimplemented},
      {kNoSuchBucket, C::kNotFound},
      {kNoSuchKey, C::kNotFound},
      {kBucketAlreadyOwnedByYou, C::kAlreadyExists},
      {kInvalidBucketName, C::kInvalidArgument},
      {kBucketNotEmpty, C::kFailedPrecondition},
      {kKeyTooLongError, C::kInvalidArgument},
      {kS3InvalidArgument, C::kInvalidArgument},
      {kInternalError, C::kInternal},
      {kSlowDown, C::kResourceExhausted},
  };
  for (const Entry& e : kCodes) {
    if (e.name == name) return e.code;
  }
  return C::kUnknown;
}

absl::Status NamedError(std::string_view name, std::string_view message) {
  return MakeError(CanonicalCode(name), name, message);
}

}  // namespace riffle
