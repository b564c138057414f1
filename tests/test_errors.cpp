#include <catch2/catch.hpp>

#include "riffle/status.h"

TEST_CASE("error helpers carry the AWS name and a canonical code", "[errors]") {
  struct Case {
    absl::Status status;
    const char* name;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {riffle::InvalidArgumentError("m"), "InvalidArgumentException",
       absl::StatusCode::kInvalidArgument},
      {riffle::ResourceNotFoundError("m"), "ResourceNotFoundException",
       absl::StatusCode::kNotFound},
      {riffle::ResourceInUseError("m"), "ResourceInUseException",
       absl::StatusCode::kFailedPrecondition},
      {riffle::LimitExceededError("m"), "LimitExceededException",
       absl::StatusCode::kResourceExhausted},
      {riffle::ExpiredIteratorError("m"), "ExpiredIteratorException",
       absl::StatusCode::kFailedPrecondition},
      {riffle::ProvisionedThroughputExceededError("m"), "ProvisionedThroughputExceededException",
       absl::StatusCode::kResourceExhausted},
      {riffle::InternalFailureError("m"), "InternalFailure", absl::StatusCode::kInternal},
  };
  for (const auto& c : cases) {
    CHECK(riffle::ErrorName(c.status) == c.name);
    CHECK(c.status.code() == c.code);
    CHECK(riffle::ErrorMessage(c.status) == "m");
  }
}

TEST_CASE("ErrorName of an OK status is empty; plain Abseil errors map by code", "[errors]") {
  CHECK(riffle::ErrorName(absl::OkStatus()).empty());
  CHECK(riffle::ErrorName(absl::NotFoundError("x")) == "ResourceNotFoundException");
  CHECK(riffle::ErrorName(absl::UnknownError("x")) == "InternalFailure");
}

TEST_CASE("MakeError keeps a custom service name", "[errors]") {
  const absl::Status s =
      riffle::MakeError(absl::StatusCode::kInvalidArgument, "ReceiptHandleIsInvalid", "stale");
  CHECK(riffle::ErrorName(s) == "ReceiptHandleIsInvalid");
  CHECK(riffle::ErrorMessage(s) == "stale");
}
