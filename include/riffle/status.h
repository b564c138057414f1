// Errors: every request-level call returns absl::Status or absl::StatusOr<T>. The AWS
// exception name (for example "ExpiredIteratorException") travels with the status as a
// payload, so code ported from the services can branch on the same names:
//
//   if (riffle::ErrorName(status) == "ProvisionedThroughputExceededException") Retry();
//
// The canonical code is chosen by how a caller should react: kInvalidArgument (fix the
// request), kNotFound (the resource is gone), kResourceExhausted (back off and retry),
// kFailedPrecondition (the resource is not in a state that allows the call).
// Messages name the parameter and the limit. No riffle call throws.
#ifndef RIFFLE_STATUS_H_
#define RIFFLE_STATUS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace riffle {

// Payload type URL under which the AWS error name is stored in an absl::Status.
inline constexpr char kErrorNamePayload[] = "type.riffle.dev/aws-error-name";

// Builds an error status carrying `name` (the AWS exception name) and `message`.
absl::Status MakeError(absl::StatusCode code, std::string_view name, std::string_view message);

// The AWS exception name of `status`: the payload when present, otherwise a name derived
// from the canonical code ("" for OK, "InternalFailure" for codes riffle never uses).
std::string ErrorName(const absl::Status& status);

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
absl::Status InternalFailureError(std::string_view message);  // InternalFailure

}  // namespace riffle

#endif  // RIFFLE_STATUS_H_
