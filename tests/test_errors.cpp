#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "riffle/status.h"
#include "support/alloc_counter.h"

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

TEST_CASE("errors are tested by constant, without comparing strings or allocating", "[errors]") {
  const absl::Status throttled = riffle::ProvisionedThroughputExceededError("slow down");
  CHECK(riffle::HasErrorName(throttled, riffle::kProvisionedThroughputExceededException));
  CHECK(riffle::IsProvisionedThroughputExceededException(throttled));
  CHECK_FALSE(riffle::IsExpiredIteratorException(throttled));
  CHECK_FALSE(riffle::HasErrorName(absl::OkStatus(), riffle::kInternalFailure));
  // Plain Abseil errors carry no name: the predicates answer by canonical code.
  CHECK(riffle::IsResourceNotFoundException(absl::NotFoundError("gone")));
  {
    riffle_test::AllocationCounter counter;
    for (int i = 0; i < 100; ++i) {
      CHECK(riffle::ErrorName(throttled) == riffle::kProvisionedThroughputExceededException);
      CHECK(riffle::HasErrorName(throttled, riffle::kProvisionedThroughputExceededException));
    }
    CHECK(counter.allocations() == 0);
  }
  // The view of a known name outlives the status (AddressSanitizer builds would catch a
  // read of freed memory here).
  std::string_view name;
  {
    const absl::Status s = riffle::ExpiredIteratorError("old");
    name = riffle::ErrorName(s);
  }
  CHECK(name == riffle::kExpiredIteratorException);
}

TEST_CASE("a custom name stays valid after its status is gone", "[errors]") {
  std::string_view name;
  {
    const absl::Status s =
        riffle::MakeError(absl::StatusCode::kUnavailable, std::string("Custom.") + "Name", "m");
    name = riffle::ErrorName(s);
  }
  CHECK(name == "Custom.Name");
}
