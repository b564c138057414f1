// Errors: every request-level call returns absl::Status or absl::StatusOr<T>. The AWS
// error name (for example "ExpiredIteratorException") travels with the status as a
// payload, so code ported from the services can branch on the same names, without
// comparing strings:
//
//   if (riffle::HasErrorName(status, riffle::kProvisionedThroughputExceededException)) Retry();
//   if (riffle::IsExpiredIteratorException(status)) TakeANewIterator();
//
// The canonical code is chosen by how a caller should react: kInvalidArgument (fix the
// request), kNotFound (the resource is gone), kResourceExhausted (back off and retry),
// kFailedPrecondition (the resource is not in a state that allows the call), kUnavailable
// (retry later). Messages name the parameter and the limit. No riffle call throws.
//
// Every name riffle produces is a constant below; docs/errors.md lists them with the calls
// that return them. ErrorName() and HasErrorName() allocate nothing.
#ifndef RIFFLE_STATUS_H_
#define RIFFLE_STATUS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace riffle {

// ---- Kinesis Data Streams (and the Firehose names it shares) ----
inline constexpr std::string_view kInvalidArgumentException = "InvalidArgumentException";
inline constexpr std::string_view kResourceNotFoundException = "ResourceNotFoundException";
inline constexpr std::string_view kResourceInUseException = "ResourceInUseException";
inline constexpr std::string_view kLimitExceededException = "LimitExceededException";
inline constexpr std::string_view kExpiredIteratorException = "ExpiredIteratorException";
inline constexpr std::string_view kProvisionedThroughputExceededException =
    "ProvisionedThroughputExceededException";
inline constexpr std::string_view kInternalFailure = "InternalFailure";
// A request member broke its constraint (length, pattern, range); the message lists every
// violation as the service words it: "1 validation error detected: Value '' at
// 'partitionKey' failed to satisfy constraint: Member must have length greater than or
// equal to 1". Also: SplitShard, MergeShards, UpdateShardCount on an ON_DEMAND stream.
inline constexpr std::string_view kValidationException = "ValidationException";
// A pagination token (NextToken) older than its 300-second lifetime.
inline constexpr std::string_view kExpiredNextTokenException = "ExpiredNextTokenException";
inline constexpr std::string_view kAccessDeniedException = "AccessDeniedException";
// KMS errors of encrypted streams (riffle produces them only through a fault plan).
inline constexpr std::string_view kKMSThrottlingException = "KMSThrottlingException";
inline constexpr std::string_view kKMSDisabledException = "KMSDisabledException";
inline constexpr std::string_view kKMSInvalidStateException = "KMSInvalidStateException";
inline constexpr std::string_view kKMSAccessDeniedException = "KMSAccessDeniedException";
inline constexpr std::string_view kKMSNotFoundException = "KMSNotFoundException";
inline constexpr std::string_view kKMSOptInRequired = "KMSOptInRequired";
// ---- Errors common to the AWS APIs (riffle produces them only through a fault plan) ----
inline constexpr std::string_view kServiceUnavailable = "ServiceUnavailable";
inline constexpr std::string_view kThrottlingException = "ThrottlingException";
// ---- Firehose ----
inline constexpr std::string_view kServiceUnavailableException = "ServiceUnavailableException";
// UpdateDestination with a CurrentDeliveryStreamVersionId that is not the current one.
inline constexpr std::string_view kConcurrentModificationException =
    "ConcurrentModificationException";
// ---- S3 (the account's buckets) ----
inline constexpr std::string_view kNoSuchBucket = "NoSuchBucket";
inline constexpr std::string_view kNoSuchKey = "NoSuchKey";
inline constexpr std::string_view kBucketAlreadyOwnedByYou = "BucketAlreadyOwnedByYou";
inline constexpr std::string_view kInvalidBucketName = "InvalidBucketName";
inline constexpr std::string_view kBucketNotEmpty = "BucketNotEmpty";
// PutObject of a key over 1,024 bytes ("Your key is too long.").
inline constexpr std::string_view kKeyTooLongError = "KeyTooLongError";
// S3's name for a malformed member (MaxKeys, ContinuationToken, a key).
inline constexpr std::string_view kS3InvalidArgument = "InvalidArgument";
// S3's server-side failures (riffle produces them only through a fault plan).
inline constexpr std::string_view kInternalError = "InternalError";
inline constexpr std::string_view kSlowDown = "SlowDown";
// ---- Kinesis Client Library (Consumer) ----
inline constexpr std::string_view kShutdownException = "ShutdownException";
// A checkpoint the stream does not recognise (another stream, or truncated).
inline constexpr std::string_view kInvalidCheckpointException = "InvalidCheckpointException";
// ---- SQS ----
inline constexpr std::string_view kInvalidParameterValue = "InvalidParameterValue";
inline constexpr std::string_view kMissingParameter = "MissingParameter";
inline constexpr std::string_view kInvalidAttributeValue = "InvalidAttributeValue";
inline constexpr std::string_view kReceiptHandleIsInvalid = "ReceiptHandleIsInvalid";
inline constexpr std::string_view kMessageNotInflight = "MessageNotInflight";
inline constexpr std::string_view kInvalidMessageContents = "InvalidMessageContents";
inline constexpr std::string_view kTooManyEntriesInBatchRequest = "TooManyEntriesInBatchRequest";
inline constexpr std::string_view kBatchEntryIdsNotDistinct = "BatchEntryIdsNotDistinct";
inline constexpr std::string_view kEmptyBatchRequest = "EmptyBatchRequest";
inline constexpr std::string_view kInvalidBatchEntryId = "InvalidBatchEntryId";
inline constexpr std::string_view kBatchRequestTooLong = "BatchRequestTooLong";
// A queue URL that names no queue (kNotFound). The service's query-protocol code for it is
// AWS.SimpleQueueService.NonExistentQueue; its JSON protocol answers this name.
inline constexpr std::string_view kQueueDoesNotExist = "QueueDoesNotExist";
// CreateQueue of a name deleted less than 60 seconds ago (kFailedPrecondition).
inline constexpr std::string_view kQueueDeletedRecently = "QueueDeletedRecently";
// CreateQueue of an existing name with different attributes (kAlreadyExists).
inline constexpr std::string_view kQueueNameExists = "QueueNameExists";
// A second PurgeQueue of a queue within 60 seconds (kFailedPrecondition).
inline constexpr std::string_view kPurgeQueueInProgress = "PurgeQueueInProgress";
// An attribute name the operation does not know (kInvalidArgument).
inline constexpr std::string_view kInvalidAttributeName = "InvalidAttributeName";
// A request riffle does not serve, such as a standard (non-FIFO) queue (kUnimplemented).
inline constexpr std::string_view kUnsupportedOperation = "UnsupportedOperation";
// ---- Sinks ----
// FileSink: the file system refused a write (canonical code kUnavailable: retried).
inline constexpr std::string_view kFileSinkIOError = "FileSink.IOError";

// Payload type URL under which the AWS error name is stored in an absl::Status.
inline constexpr char kErrorNamePayload[] = "type.riffle.dev/aws-error-name";
// The fields an error response carries beside its code and message (S3's BucketName, Key)
// are payloads under this prefix plus the field's name, so that the message is the
// service's own text: status.GetPayload("type.riffle.dev/aws-error-field/BucketName").
inline constexpr std::string_view kErrorFieldPayloadPrefix = "type.riffle.dev/aws-error-field/";

// Builds an error status carrying `name` (the AWS error name) and `message`. A name that
// is not one of the constants above is remembered once (a user's own names work too).
absl::Status MakeError(absl::StatusCode code, std::string_view name, std::string_view message);

// The AWS error name of `status`: the payload when present, otherwise a name derived from
// the canonical code ("" for OK, kInternalFailure for codes riffle never uses). The view
// stays valid for the life of the process. Allocates nothing.
std::string_view ErrorName(const absl::Status& status);

// The code SQS's query protocol (XML; older SDKs, and the error code SDKs report for a
// query-compatible JSON answer) gives the error `name`: "AWS.SimpleQueueService.
// NonExistentQueue" for QueueDoesNotExist, "QueueAlreadyExists" for QueueNameExists, ...;
// `name` itself for every other name. Allocates nothing.
std::string_view QueryErrorCode(std::string_view name);

// True when `status` carries `name`, or `name` is its query-protocol code (so a test
// written against either SQS protocol matches). Allocates nothing.
bool HasErrorName(const absl::Status& status, std::string_view name);

inline bool IsInvalidArgumentException(const absl::Status& s) {
  return HasErrorName(s, kInvalidArgumentException);
}
inline bool IsResourceNotFoundException(const absl::Status& s) {
  return HasErrorName(s, kResourceNotFoundException);
}
inline bool IsResourceInUseException(const absl::Status& s) {
  return HasErrorName(s, kResourceInUseException);
}
inline bool IsLimitExceededException(const absl::Status& s) {
  return HasErrorName(s, kLimitExceededException);
}
inline bool IsExpiredIteratorException(const absl::Status& s) {
  return HasErrorName(s, kExpiredIteratorException);
}
inline bool IsProvisionedThroughputExceededException(const absl::Status& s) {
  return HasErrorName(s, kProvisionedThroughputExceededException);
}
inline bool IsServiceUnavailableException(const absl::Status& s) {
  return HasErrorName(s, kServiceUnavailableException);
}
inline bool IsValidationException(const absl::Status& s) {
  return HasErrorName(s, kValidationException);
}
inline bool IsExpiredNextTokenException(const absl::Status& s) {
  return HasErrorName(s, kExpiredNextTokenException);
}
inline bool IsInternalFailure(const absl::Status& s) { return HasErrorName(s, kInternalFailure); }
inline bool IsNoSuchBucket(const absl::Status& s) { return HasErrorName(s, kNoSuchBucket); }
inline bool IsNoSuchKey(const absl::Status& s) { return HasErrorName(s, kNoSuchKey); }

// The message without the name, as a std::string (absl::string_view is not
// std::string_view in Debian's Abseil build).
std::string ErrorMessage(const absl::Status& status);

// Kinesis Data Streams / Firehose names, with their canonical codes.
absl::Status InvalidArgumentError(std::string_view message);   // InvalidArgumentException
absl::Status ResourceNotFoundError(std::string_view message);  // ResourceNotFoundException
absl::Status ResourceInUseError(std::string_view message);     // ResourceInUseException
absl::Status LimitExceededError(std::string_view message);     // LimitExceededException
absl::Status ExpiredIteratorError(std::string_view message);   // ExpiredIteratorException
absl::Status ProvisionedThroughputExceededError(std::string_view message);
absl::Status InternalFailureError(std::string_view message);     // InternalFailure
absl::Status ServiceUnavailableError(std::string_view message);  // ServiceUnavailableException
absl::Status ValidationError(std::string_view message);          // ValidationException
absl::Status ExpiredNextTokenError(std::string_view message);    // ExpiredNextTokenException

// The canonical code riffle gives `name` (for example kResourceExhausted for
// LimitExceededException and KMSThrottlingException, kUnavailable for ServiceUnavailable);
// kUnknown for a name riffle does not know.
absl::StatusCode CanonicalCode(std::string_view name);

// An error carrying `name` with CanonicalCode(name): how a fault plan injects any error.
absl::Status NamedError(std::string_view name, std::string_view message);

}  // namespace riffle

#endif  // RIFFLE_STATUS_H_
