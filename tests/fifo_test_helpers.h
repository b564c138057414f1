// Helpers shared by the FifoQueue tests.
#ifndef RIFFLE_TESTS_FIFO_TEST_HELPERS_H_
#define RIFFLE_TESTS_FIFO_TEST_HELPERS_H_

#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fmt/format.h"
#include "riffle/fifo_queue.h"

namespace riffle_test::fifo {

using riffle::ErrorMessage;
using riffle::FifoQueue;
using riffle::FifoQueueOptions;
using riffle::ManualClock;
using riffle::Message;

// CHECK_THAT(status, HasName(riffle::kX)): `status` carries the error name kX, tested by
// constant with riffle::HasErrorName. A failure prints the whole status.
class HasNameMatcher : public Catch::MatcherBase<absl::Status> {
 public:
  explicit HasNameMatcher(std::string_view name) : name_(name) {}
  bool match(const absl::Status& status) const override {
    return riffle::HasErrorName(status, name_);
  }
  std::string describe() const override { return "has the error name " + std::string(name_); }

 private:
  std::string_view name_;
};
inline HasNameMatcher HasName(std::string_view name) { return HasNameMatcher(name); }

inline std::unique_ptr<FifoQueue> MakeQueue(ManualClock* clock, FifoQueueOptions options = {}) {
  if (options.name.empty()) options.name = "test.fifo";
  options.clock = clock;
  auto queue = FifoQueue::Create(std::move(options));
  REQUIRE(queue.ok());
  return std::move(*queue);
}

inline riffle::SendMessageResult Send(FifoQueue& q, std::string_view group, std::string_view body,
                                      std::optional<std::string_view> dedup = std::nullopt) {
  const std::string id = dedup ? std::string(*dedup) : fmt::format("{}-{}", group, body);
  auto r = q.SendMessage({.message_group_id = group,
                          .message_body = body,
                          .message_deduplication_id = std::string_view(id)});
  REQUIRE(r.ok());
  return *r;
}

inline std::vector<Message> Receive(FifoQueue& q, int max = 10,
                                    std::optional<int> visibility = {}) {
  auto r = q.ReceiveMessage({.max_number_of_messages = max, .visibility_timeout = visibility});
  REQUIRE(r.ok());
  return r->messages;
}

inline std::vector<std::string> Bodies(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.body);
  return out;
}

using Strings = std::vector<std::string>;
// Batch inputs are spans; a test builds them as vectors.
using SendEntries = std::vector<riffle::SendMessageBatchRequestEntry>;
using DeleteEntries = std::vector<riffle::DeleteMessageBatchRequestEntry>;
using VisibilityEntries = std::vector<riffle::ChangeMessageVisibilityBatchRequestEntry>;

}  // namespace riffle_test::fifo

#endif  // RIFFLE_TESTS_FIFO_TEST_HELPERS_H_
