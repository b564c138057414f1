// Shared by the account tests: an account on a ManualClock, and short ways to check an
// error by name and message.
#ifndef RIFFLE_TESTS_ACCOUNT_TEST_HELPERS_H_
#define RIFFLE_TESTS_ACCOUNT_TEST_HELPERS_H_

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "riffle/account.h"
#include "riffle/status.h"

namespace account_test {

inline std::unique_ptr<riffle::Account> MakeAccount(riffle::ManualClock& clock, bool limits = false,
                                                    riffle::AccountOptions options = {}) {
  options.clock = &clock;
  options.enforce_limits = limits;
  auto account = riffle::Account::Create(std::move(options));
  REQUIRE(account.ok());
  return *std::move(account);
}

inline void CreateStream(riffle::Kinesis& kinesis, std::string_view name, int shards) {
  REQUIRE(kinesis.CreateStream({.stream_name = name, .shard_count = shards}).ok());
}

// The error name and message of a status (or of a StatusOr's status).
struct Error {
  std::string_view name;
  std::string message;
  friend bool operator==(const Error& a, const Error& b) {
    return a.name == b.name && a.message == b.message;
  }
  friend std::ostream& operator<<(std::ostream& os, const Error& e) {
    return os << e.name << ": " << e.message;
  }
};

inline Error ErrorOf(const absl::Status& s) {
  return {riffle::ErrorName(s), riffle::ErrorMessage(s)};
}
template <class T>
Error ErrorOf(const absl::StatusOr<T>& s) {
  return ErrorOf(s.status());
}

inline const std::string kAccountId = "000000000000";
inline constexpr char kOrdersArn[] = "arn:aws:kinesis:us-east-1:000000000000:stream/orders";

inline std::vector<std::string> ShardIds(const std::vector<riffle::Shard>& shards) {
  std::vector<std::string> ids;
  for (const auto& s : shards) ids.push_back(s.shard_id);
  return ids;
}

}  // namespace account_test

#endif  // RIFFLE_TESTS_ACCOUNT_TEST_HELPERS_H_
