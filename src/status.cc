#include "riffle/status.h"

#include "absl/strings/cord.h"

namespace riffle {

absl::Status MakeError(absl::StatusCode code, std::string_view name, std::string_view message) {
  absl::Status status(code, absl::string_view(message.data(), message.size()));
  status.SetPayload(kErrorNamePayload, absl::Cord(absl::string_view(name.data(), name.size())));
  return status;
}

std::string ErrorName(const absl::Status& status) {
  if (status.ok()) return "";
  if (auto payload = status.GetPayload(kErrorNamePayload)) return std::string(*payload);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return "InvalidArgumentException";
    case absl::StatusCode::kNotFound:
      return "ResourceNotFoundException";
    case absl::StatusCode::kResourceExhausted:
      return "LimitExceededException";
    case absl::StatusCode::kFailedPrecondition:
      return "ResourceInUseException";
    default:
      return "InternalFailure";
  }
}

std::string ErrorMessage(const absl::Status& status) { return std::string(status.message()); }

absl::Status InvalidArgumentError(std::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, "InvalidArgumentException", message);
}
absl::Status ResourceNotFoundError(std::string_view message) {
  return MakeError(absl::StatusCode::kNotFound, "ResourceNotFoundException", message);
}
absl::Status ResourceInUseError(std::string_view message) {
  return MakeError(absl::StatusCode::kFailedPrecondition, "ResourceInUseException", message);
}
absl::Status LimitExceededError(std::string_view message) {
  return MakeError(absl::StatusCode::kResourceExhausted, "LimitExceededException", message);
}
absl::Status ExpiredIteratorError(std::string_view message) {
  return MakeError(absl::StatusCode::kFailedPrecondition, "ExpiredIteratorException", message);
}
absl::Status ProvisionedThroughputExceededError(std::string_view message) {
  return MakeError(absl::StatusCode::kResourceExhausted, "ProvisionedThroughputExceededException",
                   message);
}
absl::Status InternalFailureError(std::string_view message) {
  return MakeError(absl::StatusCode::kInternal, "InternalFailure", message);
}

}  // namespace riffle
