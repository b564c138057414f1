// The SQS FIFO throughput quotas (AccountOptions::enforce_limits) on a ManualClock, and the
// account's fault plan on SQS operations.
#include <catch2/catch.hpp>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/sqs.h"

using account_test::ErrorOf;
using account_test::MakeAccount;

namespace {

std::string CreateFifo(riffle::Sqs& sqs, std::string_view name,
                       riffle::SqsAttributeMap attributes = {}) {
  attributes.emplace("FifoQueue", "true");
  attributes.emplace("ContentBasedDeduplication", "true");
  auto q = sqs.CreateQueue({.queue_name = name, .attributes = attributes});
  REQUIRE(q.ok());
  return q->queue_url;
}

absl::Status Send(riffle::Sqs& sqs, const std::string& url, int i, std::string_view group = "g") {
  return sqs
      .SendMessage({.queue_url = url, .message_body = std::to_string(i), .message_group_id = group})
      .status();
}

}  // namespace

TEST_CASE("FIFO queues: 300 calls per second per action, batches carry 10 messages each",
          "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock, /*limits=*/true);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  const std::string other = CreateFifo(sqs, "other.fifo");
  int i = 0;
  for (; i < 300; ++i) REQUIRE(Send(sqs, url, i).ok());
  absl::Status throttled = Send(sqs, url, i++);
  CHECK(ErrorOf(throttled) ==
        account_test::Error{riffle::kThrottlingException,
                            "Rate exceeded for SendMessage on queue q.fifo: at most 300 calls per "
                            "second."});
  CHECK(throttled.code() == absl::StatusCode::kResourceExhausted);
  // Another action and another queue have their own budgets.
  CHECK(sqs.ReceiveMessage({.queue_url = url}).ok());
  CHECK(Send(sqs, other, i++).ok());
  // The bucket refills on the clock: 3 calls after 10 ms.
  clock.Advance(absl::Milliseconds(10));
  for (int k = 0; k < 3; ++k) CHECK(Send(sqs, url, i++).ok());
  CHECK(ErrorOf(Send(sqs, url, i++)).name == riffle::kThrottlingException);
  clock.Advance(absl::Seconds(1));
  CHECK(Send(sqs, url, i++).ok());

  // SendMessageBatch: 300 calls of 10 messages, 3,000 messages per second.
  std::vector<std::string> bodies(10);
  const std::vector<std::string> ids = {"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9"};
  std::vector<riffle::SendMessageBatchInputEntry> batch(10);
  int sent = 0;
  for (int call = 0; call < 301; ++call) {
    for (int k = 0; k < 10; ++k) {
      bodies[k] = fmt::format("batch-{}-{}", call, k);
      batch[k] = {.id = ids[k], .message_body = bodies[k], .message_group_id = "g"};
    }
    auto r = sqs.SendMessageBatch({.queue_url = url, .entries = batch});
    if (r.ok()) {
      sent += static_cast<int>(r->successful.size());
    } else {
      CHECK(call == 300);
      CHECK(ErrorOf(r).name == riffle::kThrottlingException);
    }
  }
  CHECK(sent == 3000);
}

TEST_CASE("High-throughput FIFO queues: the rates are per message group", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock, /*limits=*/true);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(
      sqs, "high.fifo",
      {{"DeduplicationScope", "messageGroup"}, {"FifoThroughputLimit", "perMessageGroupId"}});
  int i = 0;
  for (; i < 300; ++i) REQUIRE(Send(sqs, url, i, "a").ok());
  CHECK(ErrorOf(Send(sqs, url, i++, "a")) ==
        account_test::Error{riffle::kThrottlingException,
                            "Rate exceeded for SendMessage on queue high.fifo for message group "
                            "a: at most 300 calls per second."});
  for (int k = 0; k < 300; ++k) REQUIRE(Send(sqs, url, i++, "b").ok());
  // Switching back to per-queue rates starts from a full queue bucket.
  REQUIRE(sqs.SetQueueAttributes(
                 {.queue_url = url, .attributes = {{"FifoThroughputLimit", "perQueue"}}})
              .ok());
  CHECK(Send(sqs, url, i++, "a").ok());
}

TEST_CASE("Without enforce_limits nothing is throttled", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  for (int i = 0; i < 1000; ++i) REQUIRE(Send(sqs, url, i).ok());
}

TEST_CASE("The fault plan covers SQS operations by queue name or ARN", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  const std::string other = CreateFifo(sqs, "other.fifo");
  riffle::FaultPlan& faults = account->faults();
  faults.Add(riffle::FaultRule::FailNext("SendMessage", 2, riffle::kServiceUnavailable)
                 .OnResource("q.fifo"));
  CHECK(ErrorOf(Send(sqs, url, 1)) ==
        account_test::Error{riffle::kServiceUnavailable, "Service Unavailable"});
  CHECK(Send(sqs, other, 1).ok());  // another queue
  CHECK(Send(sqs, url, 1).code() == absl::StatusCode::kUnavailable);
  CHECK(Send(sqs, url, 1).ok());
  // A failed call changed nothing: one message in q.fifo.
  CHECK(
      sqs.GetQueueAttributes({.queue_url = url, .attribute_names = {"ApproximateNumberOfMessages"}})
          ->attributes.at("ApproximateNumberOfMessages") == "1");
  CHECK(faults.Injected("SendMessage") == 2);

  faults.Clear();
  faults.Add(riffle::FaultRule::Every("ReceiveMessage", 2, riffle::kThrottlingException)
                 .OnResource(sqs.QueueArn("q.fifo")));
  CHECK(sqs.ReceiveMessage({.queue_url = url, .visibility_timeout = 0}).ok());
  auto r = sqs.ReceiveMessage({.queue_url = url});
  CHECK(ErrorOf(r).name == riffle::kThrottlingException);
  CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(sqs.ReceiveMessage({.queue_url = url, .visibility_timeout = 0}).ok());

  faults.Clear();
  faults.Add(riffle::FaultRule::FailNext("*", 1, riffle::kQueueDoesNotExist));
  CHECK(ErrorOf(sqs.PurgeQueue({.queue_url = url})) ==
        account_test::Error{riffle::kQueueDoesNotExist, "The specified queue does not exist."});
  CHECK(sqs.PurgeQueue({.queue_url = url}).ok());

  faults.Clear();
  faults.Add(riffle::FaultRule::FailNext("CreateQueue", 1, riffle::kInternalFailure)
                 .WithMessage("try again"));
  CHECK(
      ErrorOf(sqs.CreateQueue({.queue_name = "new.fifo", .attributes = {{"FifoQueue", "true"}}})) ==
      account_test::Error{riffle::kInternalFailure, "try again"});
  CHECK(ErrorOf(sqs.GetQueueUrl({.queue_name = "new.fifo"})).name == riffle::kQueueDoesNotExist);

  // Latency passes on the account's clock.
  faults.Clear();
  faults.Add(riffle::FaultRule::Delay("DeleteMessage", absl::Milliseconds(250)));
  const absl::Time before = clock.Now();
  CHECK(ErrorOf(sqs.DeleteMessage({.queue_url = url, .receipt_handle = "x"})).name ==
        riffle::kReceiptHandleIsInvalid);
  CHECK(clock.Now() - before == absl::Milliseconds(250));

  // A seeded fraction fails the same calls on every run.
  auto run = [&] {
    faults.Clear();
    faults.Add(
        riffle::FaultRule::Fraction("GetQueueAttributes", 0.3, 11, riffle::kInternalFailure));
    std::string pattern;
    for (int k = 0; k < 40; ++k) {
      pattern += sqs.GetQueueAttributes({.queue_url = url}).ok() ? '.' : 'x';
    }
    return pattern;
  };
  const std::string first = run();
  CHECK(first == run());
  CHECK(first.find('x') != std::string::npos);
  CHECK(first.find('.') != std::string::npos);
}
