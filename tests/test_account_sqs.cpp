// The SQS queues of an Account: names, URLs and ARNs, CreateQueue's idempotence, listing
// with pagination, the 60-second rules (name reuse, purge), attributes and tags.
#include <catch2/catch.hpp>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/sqs.h"

using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::SqsAttributeMap;

namespace {

const SqsAttributeMap kFifo = {{"FifoQueue", "true"}};

std::string CreateFifo(riffle::Sqs& sqs, std::string_view name, SqsAttributeMap attributes = {}) {
  attributes.emplace("FifoQueue", "true");
  auto q = sqs.CreateQueue({.queue_name = name, .attributes = attributes});
  REQUIRE(q.ok());
  return q->queue_url;
}

SqsAttributeMap Attributes(riffle::Sqs& sqs, const std::string& url,
                           std::vector<std::string> names = {"All"}) {
  auto a = sqs.GetQueueAttributes({.queue_url = url, .attribute_names = std::move(names)});
  REQUIRE(a.ok());
  return a->attributes;
}

}  // namespace

TEST_CASE("CreateQueue gives the service's URL and ARN; GetQueueUrl finds it", "[account][sqs]") {
  riffle::ManualClock clock(absl::FromUnixSeconds(1'700'000'000));
  auto account = MakeAccount(clock, false, {.region = "eu-west-1", .account_id = "123456789012"});
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "orders.fifo");
  CHECK(url == "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo");
  CHECK(sqs.QueueArn("orders.fifo") == "arn:aws:sqs:eu-west-1:123456789012:orders.fifo");
  auto got = sqs.GetQueueUrl({.queue_name = "orders.fifo"});
  REQUIRE(got.ok());
  CHECK(got->queue_url == url);
  CHECK(ErrorOf(sqs.GetQueueUrl({.queue_name = "other.fifo"})) ==
        account_test::Error{riffle::kQueueDoesNotExist, "The specified queue does not exist."});
  CHECK(ErrorOf(sqs.GetQueueUrl(
                    {.queue_name = "orders.fifo", .queue_owner_aws_account_id = "999999999999"}))
            .name == riffle::kQueueDoesNotExist);
  const SqsAttributeMap a = Attributes(sqs, url);
  CHECK(a.at("QueueArn") == "arn:aws:sqs:eu-west-1:123456789012:orders.fifo");
  CHECK(a.at("CreatedTimestamp") == "1700000000");
  CHECK(a.at("LastModifiedTimestamp") == "1700000000");
  CHECK(a.at("FifoQueue") == "true");
  CHECK(a.at("VisibilityTimeout") == "30");
  CHECK(a.at("MessageRetentionPeriod") == "345600");
  CHECK(a.at("MaximumMessageSize") == "262144");
  CHECK(a.at("DelaySeconds") == "0");
  CHECK(a.at("ReceiveMessageWaitTimeSeconds") == "0");
  CHECK(a.at("ContentBasedDeduplication") == "false");
  CHECK(a.at("DeduplicationScope") == "queue");
  CHECK(a.at("FifoThroughputLimit") == "perQueue");
  CHECK(a.at("ApproximateNumberOfMessages") == "0");
  CHECK_FALSE(a.contains("RedrivePolicy"));
}

TEST_CASE("CreateQueue checks names with the service's messages", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string fifo_rule =
      "The name of a FIFO queue can only include alphanumeric characters, hyphens, or "
      "underscores, must end with .fifo suffix and be 1 to 80 in length.";
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = "orders", .attributes = kFifo})) ==
        account_test::Error{riffle::kInvalidParameterValue, fifo_rule});
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = "bad name.fifo", .attributes = kFifo})).message ==
        fifo_rule);
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = ".fifo", .attributes = kFifo})).message ==
        fifo_rule);
  const std::string name80 = std::string(75, 'a') + ".fifo";
  CHECK(sqs.CreateQueue({.queue_name = name80, .attributes = kFifo}).ok());
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = "a" + name80, .attributes = kFifo})).message ==
        fifo_rule);
  // Without FifoQueue=true a name with a dot is a bad standard name...
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = "orders.fifo"})) ==
        account_test::Error{riffle::kInvalidParameterValue,
                            "Can only include alphanumeric characters, hyphens, or "
                            "underscores. 1 to 80 in length"});
  // ... and a good standard name is a queue type riffle does not serve.
  auto standard = sqs.CreateQueue({.queue_name = "orders"});
  CHECK(ErrorOf(standard).name == riffle::kUnsupportedOperation);
  CHECK(standard.status().code() == absl::StatusCode::kUnimplemented);
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = "orders", .attributes = {{"FifoQueue", "false"}}}))
            .name == riffle::kUnsupportedOperation);
  CHECK(ErrorOf(
            sqs.CreateQueue({.queue_name = "orders.fifo", .attributes = {{"FifoQueue", "yes"}}})) ==
        account_test::Error{riffle::kInvalidAttributeValue,
                            "Invalid value for the parameter FifoQueue."});
  CHECK(ErrorOf(sqs.CreateQueue({})) ==
        account_test::Error{riffle::kMissingParameter,
                            "The request must contain the parameter QueueName."});
}

TEST_CASE("CreateQueue checks attributes by name, range and combination", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  auto create = [&](std::string name, std::string value) {
    return sqs.CreateQueue(
        {.queue_name = "q.fifo", .attributes = {{"FifoQueue", "true"}, {name, value}}});
  };
  struct Case {
    const char* name;
    const char* bad;
    const char* good;
  };
  for (const Case& c :
       {Case{"VisibilityTimeout", "43201", "43200"}, Case{"VisibilityTimeout", "-1", "0"},
        Case{"MessageRetentionPeriod", "59", "60"},
        Case{"MessageRetentionPeriod", "1209601", "1209600"}, Case{"DelaySeconds", "901", "900"},
        Case{"ReceiveMessageWaitTimeSeconds", "21", "20"},
        Case{"MaximumMessageSize", "1023", "1024"},
        Case{"MaximumMessageSize", "1048577", "1048576"}, Case{"VisibilityTimeout", "thirty", "30"},
        Case{"ContentBasedDeduplication", "maybe", "true"},
        Case{"DeduplicationScope", "group", "messageGroup"},
        Case{"KmsDataKeyReusePeriodSeconds", "59", "86400"}}) {
    INFO(c.name << "=" << c.bad);
    CHECK(ErrorOf(create(c.name, c.bad)) ==
          account_test::Error{riffle::kInvalidAttributeValue,
                              fmt::format("Invalid value for the parameter {}.", c.name)});
    auto ok = create(c.name, c.good);
    REQUIRE(ok.ok());
    REQUIRE(sqs.DeleteQueue({.queue_url = ok->queue_url}).ok());
    clock.Advance(absl::Seconds(60));
  }
  CHECK(ErrorOf(create("Colour", "blue")) ==
        account_test::Error{riffle::kInvalidAttributeName, "Unknown Attribute Colour."});
  CHECK(ErrorOf(create("QueueArn", "x")).name == riffle::kInvalidAttributeName);
  CHECK(ErrorOf(create("FifoThroughputLimit", "perMessageGroupId")) ==
        account_test::Error{riffle::kInvalidAttributeValue,
                            "Invalid value for the parameter FifoThroughputLimit. Reason: "
                            "perMessageGroupId is allowed only when DeduplicationScope is "
                            "messageGroup."});
  auto high = sqs.CreateQueue({.queue_name = "high.fifo",
                               .attributes = {{"FifoQueue", "true"},
                                              {"DeduplicationScope", "messageGroup"},
                                              {"FifoThroughputLimit", "perMessageGroupId"}}});
  REQUIRE(high.ok());
  CHECK(Attributes(sqs, high->queue_url).at("FifoThroughputLimit") == "perMessageGroupId");

  // One kind of server-side encryption: a KMS key turns SSE-SQS off; asking for both fails.
  auto kms =
      sqs.CreateQueue({.queue_name = "kms.fifo",
                       .attributes = {{"FifoQueue", "true"}, {"KmsMasterKeyId", "alias/aws/sqs"}}});
  REQUIRE(kms.ok());
  const SqsAttributeMap a = Attributes(sqs, kms->queue_url);
  CHECK(a.at("SqsManagedSseEnabled") == "false");
  CHECK(a.at("KmsDataKeyReusePeriodSeconds") == "300");
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = "both.fifo",
                                 .attributes = {{"FifoQueue", "true"},
                                                {"KmsMasterKeyId", "alias/aws/sqs"},
                                                {"SqsManagedSseEnabled", "true"}}})) ==
        account_test::Error{riffle::kInvalidAttributeName,
                            "You can use one type of server-side encryption (SSE) at one time. "
                            "You can either enable KMS SSE or SQS SSE."});
}

TEST_CASE("CreateQueue of an existing name: the attributes it names must match, others are free",
          "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo", {{"VisibilityTimeout", "60"}});
  auto again =
      sqs.CreateQueue({.queue_name = "q.fifo",
                       .attributes = {{"FifoQueue", "TRUE"}, {"VisibilityTimeout", "060"}}});
  REQUIRE(again.ok());
  CHECK(again->queue_url == url);
  // As the service: attributes the request leaves out are not compared, so a get-or-create
  // with fewer attributes returns the queue.
  auto fewer = sqs.CreateQueue({.queue_name = "q.fifo", .attributes = kFifo});
  REQUIRE(fewer.ok());
  CHECK(fewer->queue_url == url);
  auto other = sqs.CreateQueue(
      {.queue_name = "q.fifo", .attributes = {{"FifoQueue", "true"}, {"VisibilityTimeout", "30"}}});
  CHECK(ErrorOf(other) == account_test::Error{riffle::kQueueNameExists,
                                              "A queue already exists with the same name and a "
                                              "different value for attribute VisibilityTimeout"});
  CHECK(other.status().code() == absl::StatusCode::kAlreadyExists);
  // The query protocol (older SDKs) calls it QueueAlreadyExists.
  CHECK(riffle::HasErrorName(other.status(), "QueueAlreadyExists"));
  CHECK(riffle::QueryErrorCode(riffle::kQueueNameExists) == "QueueAlreadyExists");
  CHECK(riffle::QueryErrorCode(riffle::kQueueDoesNotExist) ==
        "AWS.SimpleQueueService.NonExistentQueue");
  CHECK(riffle::QueryErrorCode(riffle::kReceiptHandleIsInvalid) == riffle::kReceiptHandleIsInvalid);
  CHECK_FALSE(riffle::HasErrorName(other.status(), "AWS.SimpleQueueService.NonExistentQueue"));
  // A default named explicitly is compared too.
  CHECK(ErrorOf(sqs.CreateQueue({.queue_name = "q.fifo",
                                 .attributes = {{"FifoQueue", "true"}, {"DelaySeconds", "5"}}}))
            .name == riffle::kQueueNameExists);
  CHECK(sqs.CreateQueue({.queue_name = "q.fifo",
                         .attributes = {{"FifoQueue", "true"}, {"DelaySeconds", "0"}}})
            .ok());
}

TEST_CASE("Every URL form the service hands out names the queue", "[account][sqs]") {
  // GetQueueUrl and CreateQueue have answered with legacy hosts and http; code that kept
  // such a URL uses it.
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  CreateFifo(sqs, "q.fifo");
  for (std::string_view url : {"https://queue.amazonaws.com/000000000000/q.fifo",
                               "https://us-east-1.queue.amazonaws.com/000000000000/q.fifo",
                               "http://sqs.us-east-1.amazonaws.com/000000000000/q.fifo",
                               "HTTPS://SQS.US-EAST-1.AMAZONAWS.COM/000000000000/q.fifo"}) {
    INFO(url);
    const std::string dedup(url);  // each message its own deduplication id
    CHECK(sqs.SendMessage({.queue_url = url,
                           .message_body = "x",
                           .message_deduplication_id = dedup,
                           .message_group_id = "g"})
              .ok());
  }
  // The names stay exact: another case is another queue.
  CHECK(ErrorOf(sqs.GetQueueAttributes(
                    {.queue_url = "https://sqs.us-east-1.amazonaws.com/000000000000/Q.fifo"}))
            .name == riffle::kQueueDoesNotExist);
  // queue.amazonaws.com is us-east-1's host only.
  auto eu = MakeAccount(clock, false, {.region = "eu-west-1"});
  CreateFifo(eu->sqs(), "q.fifo");
  CHECK(ErrorOf(eu->sqs().GetQueueAttributes(
                    {.queue_url = "https://queue.amazonaws.com/000000000000/q.fifo"}))
            .name == riffle::kQueueDoesNotExist);
  CHECK(eu->sqs()
            .GetQueueAttributes({.queue_url = "https://eu-west-1.queue.amazonaws.com/"
                                              "000000000000/q.fifo"})
            .ok());
}

TEST_CASE("Calls by a URL that names no queue fail with QueueDoesNotExist", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  for (std::string bad : {sqs.QueueUrl("other.fifo"),
                          std::string("https://sqs.us-west-2.amazonaws.com/000000000000/q.fifo"),
                          std::string("https://sqs.us-east-1.amazonaws.com/111111111111/q.fifo"),
                          std::string("q.fifo"), url + "/x"}) {
    INFO(bad);
    auto s = sqs.SendMessage({.queue_url = bad, .message_body = "x", .message_group_id = "g"});
    CHECK(ErrorOf(s) ==
          account_test::Error{riffle::kQueueDoesNotExist, "The specified queue does not exist."});
    CHECK(s.status().code() == absl::StatusCode::kNotFound);
    CHECK(ErrorOf(sqs.GetQueueAttributes({.queue_url = bad})).name == riffle::kQueueDoesNotExist);
    CHECK(ErrorOf(sqs.ReceiveMessage({.queue_url = bad})).name == riffle::kQueueDoesNotExist);
    CHECK(ErrorOf(sqs.DeleteMessage({.queue_url = bad, .receipt_handle = "h"})).name ==
          riffle::kQueueDoesNotExist);
    CHECK(ErrorOf(sqs.PurgeQueue({.queue_url = bad})).name == riffle::kQueueDoesNotExist);
    CHECK(ErrorOf(sqs.DeleteQueue({.queue_url = bad})).name == riffle::kQueueDoesNotExist);
  }
  CHECK(ErrorOf(sqs.SendMessage({.message_body = "x", .message_group_id = "g"})) ==
        account_test::Error{riffle::kMissingParameter,
                            "The request must contain the parameter QueueUrl."});
}

TEST_CASE("ListQueues filters by prefix and pages with MaxResults and NextToken",
          "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  for (const char* n : {"b-2.fifo", "a-1.fifo", "b-1.fifo", "b-3.fifo", "c.fifo"}) {
    CreateFifo(sqs, n);
  }
  auto all = sqs.ListQueues();
  REQUIRE(all.ok());
  CHECK(all->queue_urls ==
        std::vector<std::string>{sqs.QueueUrl("a-1.fifo"), sqs.QueueUrl("b-1.fifo"),
                                 sqs.QueueUrl("b-2.fifo"), sqs.QueueUrl("b-3.fifo"),
                                 sqs.QueueUrl("c.fifo")});
  CHECK(all->next_token.empty());

  std::vector<std::string> paged;
  std::string token;
  int pages = 0;
  do {
    auto page = sqs.ListQueues({.queue_name_prefix = "b-", .max_results = 2, .next_token = token});
    REQUIRE(page.ok());
    paged.insert(paged.end(), page->queue_urls.begin(), page->queue_urls.end());
    token = page->next_token;
    ++pages;
  } while (!token.empty());
  CHECK(pages == 2);
  CHECK(paged == std::vector<std::string>{sqs.QueueUrl("b-1.fifo"), sqs.QueueUrl("b-2.fifo"),
                                          sqs.QueueUrl("b-3.fifo")});

  auto first = sqs.ListQueues({.queue_name_prefix = "b-", .max_results = 1});
  REQUIRE(first.ok());
  REQUIRE_FALSE(first->next_token.empty());
  // A token belongs to its prefix, and cannot be forged.
  CHECK(ErrorOf(sqs.ListQueues({.queue_name_prefix = "a", .next_token = first->next_token})).name ==
        riffle::kInvalidParameterValue);
  std::string forged = first->next_token;
  forged.back() = forged.back() == '1' ? '2' : '1';
  CHECK(ErrorOf(sqs.ListQueues({.queue_name_prefix = "b-", .next_token = forged})).name ==
        riffle::kInvalidParameterValue);
  for (int bad : {0, 1001}) {
    CHECK(ErrorOf(sqs.ListQueues({.max_results = bad})) ==
          account_test::Error{riffle::kInvalidParameterValue,
                              fmt::format("Value {} for parameter MaxResults is invalid. Reason: "
                                          "MaxResults must be an integer between 1 and 1000.",
                                          bad)});
  }
  CHECK(sqs.ListQueues({.queue_name_prefix = "z"})->queue_urls.empty());
}

TEST_CASE("A deleted queue's name can be used again only after 60 s", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  REQUIRE(sqs.SendMessage({.queue_url = url,
                           .message_body = "x",
                           .message_deduplication_id = "d",
                           .message_group_id = "g"})
              .ok());
  REQUIRE(sqs.DeleteQueue({.queue_url = url}).ok());
  CHECK(ErrorOf(sqs.GetQueueUrl({.queue_name = "q.fifo"})).name == riffle::kQueueDoesNotExist);
  CHECK(ErrorOf(sqs.DeleteQueue({.queue_url = url})).name == riffle::kQueueDoesNotExist);
  clock.Advance(absl::Milliseconds(59'999));
  auto early = sqs.CreateQueue({.queue_name = "q.fifo", .attributes = kFifo});
  CHECK(ErrorOf(early) ==
        account_test::Error{riffle::kQueueDeletedRecently,
                            "You must wait 60 seconds after deleting a queue before you can "
                            "create another with the same name."});
  CHECK(early.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(sqs.CreateQueue({.queue_name = "other.fifo", .attributes = kFifo}).ok());
  clock.Advance(absl::Milliseconds(1));
  REQUIRE(sqs.CreateQueue({.queue_name = "q.fifo", .attributes = kFifo}).ok());
  // A new queue: the old messages are gone.
  CHECK(Attributes(sqs, url, {"ApproximateNumberOfMessages"}).at("ApproximateNumberOfMessages") ==
        "0");
}

TEST_CASE("PurgeQueue deletes every message, once per 60 s", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo", {{"ContentBasedDeduplication", "true"}});
  for (int i = 0; i < 3; ++i) {
    REQUIRE(sqs.SendMessage({.queue_url = url,
                             .message_body = std::to_string(i),
                             .message_group_id = std::to_string(i)})
                .ok());
  }
  REQUIRE(sqs.ReceiveMessage({.queue_url = url}).ok());
  SqsAttributeMap a = Attributes(sqs, url);
  CHECK(a.at("ApproximateNumberOfMessages") == "2");
  CHECK(a.at("ApproximateNumberOfMessagesNotVisible") == "1");
  REQUIRE(sqs.PurgeQueue({.queue_url = url}).ok());
  a = Attributes(sqs, url);
  CHECK(a.at("ApproximateNumberOfMessages") == "0");
  CHECK(a.at("ApproximateNumberOfMessagesNotVisible") == "0");
  clock.Advance(absl::Seconds(59));
  CHECK(ErrorOf(sqs.PurgeQueue({.queue_url = url})) ==
        account_test::Error{riffle::kPurgeQueueInProgress,
                            "Only one PurgeQueue operation on q.fifo is allowed every 60 "
                            "seconds."});
  clock.Advance(absl::Seconds(1));
  CHECK(sqs.PurgeQueue({.queue_url = url}).ok());
}

TEST_CASE("SetQueueAttributes round-trips every settable FIFO attribute", "[account][sqs]") {
  riffle::ManualClock clock(absl::FromUnixSeconds(1'000));
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  CreateFifo(sqs, "dlq.fifo");
  clock.Advance(absl::Seconds(5));
  const SqsAttributeMap set = {
      {"VisibilityTimeout", "45"},
      {"MessageRetentionPeriod", "120"},
      {"DelaySeconds", "3"},
      {"ReceiveMessageWaitTimeSeconds", "2"},
      {"MaximumMessageSize", "2048"},
      {"ContentBasedDeduplication", "true"},
      {"DeduplicationScope", "messageGroup"},
      {"FifoThroughputLimit", "perMessageGroupId"},
      {"RedrivePolicy",
       R"({ "maxReceiveCount": "4", "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq.fifo" })"},
      {"RedriveAllowPolicy", R"({"redrivePermission":"allowAll"})"},
  };
  REQUIRE(sqs.SetQueueAttributes({.queue_url = url, .attributes = set}).ok());
  const SqsAttributeMap a = Attributes(sqs, url);
  for (const auto& [k, v] : set) {
    if (k == "RedrivePolicy") continue;
    CHECK(a.at(k) == v);
  }
  CHECK(
      a.at("RedrivePolicy") ==
      R"({"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq.fifo","maxReceiveCount":4})");
  CHECK(a.at("CreatedTimestamp") == "1000");
  CHECK(a.at("LastModifiedTimestamp") == "1005");
  // Only the names asked for.
  CHECK(Attributes(sqs, url, {"DelaySeconds", "QueueArn"}) ==
        SqsAttributeMap{{"DelaySeconds", "3"},
                        {"QueueArn", "arn:aws:sqs:us-east-1:000000000000:q.fifo"}});
  CHECK(Attributes(sqs, url, {}).empty());
  CHECK(ErrorOf(sqs.GetQueueAttributes({.queue_url = url, .attribute_names = {"Colour"}})) ==
        account_test::Error{riffle::kInvalidAttributeName, "Unknown Attribute Colour."});

  // The queue runs with them: a send now waits DelaySeconds.
  REQUIRE(sqs.SendMessage({.queue_url = url, .message_body = "x", .message_group_id = "g"}).ok());
  CHECK(Attributes(sqs, url).at("ApproximateNumberOfMessagesDelayed") == "1");
  clock.Advance(absl::Seconds(3));
  CHECK(Attributes(sqs, url).at("ApproximateNumberOfMessages") == "1");
  // MaximumMessageSize is in force.
  CHECK(ErrorOf(sqs.SendMessage({.queue_url = url,
                                 .message_body = std::string(2049, 'x'),
                                 .message_group_id = "g"}))
            .name == riffle::kInvalidParameterValue);

  // Errors leave the attributes as they were; FifoQueue cannot change ("true" on a FIFO
  // queue changes nothing).
  CHECK(sqs.SetQueueAttributes({.queue_url = url, .attributes = {{"FifoQueue", "true"}}}).ok());
  CHECK(
      ErrorOf(sqs.SetQueueAttributes({.queue_url = url, .attributes = {{"FifoQueue", "false"}}})) ==
      account_test::Error{riffle::kInvalidAttributeValue,
                          "Invalid value for the parameter FifoQueue. Reason: Modifying queue "
                          "type is not supported."});
  CHECK(ErrorOf(sqs.SetQueueAttributes(
                    {.queue_url = url,
                     .attributes = {{"VisibilityTimeout", "10"}, {"DelaySeconds", "901"}}}))
            .name == riffle::kInvalidAttributeValue);
  CHECK(Attributes(sqs, url).at("VisibilityTimeout") == "45");
  CHECK(ErrorOf(sqs.SetQueueAttributes(
                    {.queue_url = url, .attributes = {{"DeduplicationScope", "queue"}}}))
            .name == riffle::kInvalidAttributeValue);
  CHECK(ErrorOf(sqs.SetQueueAttributes({.queue_url = url})) ==
        account_test::Error{riffle::kMissingParameter,
                            "The request must contain the parameter Attributes."});
  // An empty policy removes it.
  REQUIRE(sqs.SetQueueAttributes({.queue_url = url, .attributes = {{"RedrivePolicy", ""}}}).ok());
  CHECK_FALSE(Attributes(sqs, url).contains("RedrivePolicy"));
}

TEST_CASE("RedrivePolicy and RedriveAllowPolicy are checked as the service checks them",
          "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  const std::string dlq = CreateFifo(sqs, "dlq.fifo");
  const std::string dlq_arn = sqs.QueueArn("dlq.fifo");
  auto set = [&](const std::string& queue, std::string name, std::string value) {
    return sqs.SetQueueAttributes({.queue_url = queue, .attributes = {{name, value}}});
  };
  auto policy = [&](std::string arn, std::string count) {
    return fmt::format(R"({{"deadLetterTargetArn":"{}","maxReceiveCount":{}}})", arn, count);
  };
  CHECK(ErrorOf(set(url, "RedrivePolicy", "{")) ==
        account_test::Error{riffle::kInvalidParameterValue,
                            "Value { for parameter RedrivePolicy is invalid. Reason: Redrive "
                            "policy is not a valid JSON map."});
  CHECK(ErrorOf(set(url, "RedrivePolicy", policy(dlq_arn, "0"))) ==
        account_test::Error{
            riffle::kInvalidParameterValue,
            fmt::format("Value {} for parameter RedrivePolicy is invalid. Reason: Invalid value "
                        "for maxReceiveCount: 0, valid values are from 1 to 1000 both inclusive.",
                        policy(dlq_arn, "0"))});
  CHECK(ErrorOf(set(url, "RedrivePolicy", policy(dlq_arn, "1001"))).name ==
        riffle::kInvalidParameterValue);
  const std::string missing = policy(sqs.QueueArn("none.fifo"), "3");
  CHECK(ErrorOf(set(url, "RedrivePolicy", missing)) ==
        account_test::Error{riffle::kInvalidParameterValue,
                            fmt::format("Value {} for parameter RedrivePolicy is invalid. Reason: "
                                        "Dead letter target does not exist.",
                                        missing)});
  // Itself, or a loop of dead-letter queues, is refused.
  CHECK(ErrorOf(set(url, "RedrivePolicy", policy(sqs.QueueArn("q.fifo"), "3"))).name ==
        riffle::kInvalidParameterValue);
  REQUIRE(set(url, "RedrivePolicy", policy(dlq_arn, "3")).ok());
  CHECK(ErrorOf(set(dlq, "RedrivePolicy", policy(sqs.QueueArn("q.fifo"), "3"))).name ==
        riffle::kInvalidParameterValue);
  // The dead-letter queue's RedriveAllowPolicy decides who may use it.
  const std::string other = CreateFifo(sqs, "other.fifo");
  REQUIRE(set(dlq, "RedriveAllowPolicy",
              fmt::format(R"({{"redrivePermission":"byQueue","sourceQueueArns":["{}"]}})",
                          sqs.QueueArn("q.fifo")))
              .ok());
  CHECK(ErrorOf(set(other, "RedrivePolicy", policy(dlq_arn, "3"))).name ==
        riffle::kInvalidParameterValue);
  REQUIRE(set(dlq, "RedriveAllowPolicy", R"({"redrivePermission":"allowAll"})").ok());
  CHECK(set(other, "RedrivePolicy", policy(dlq_arn, "3")).ok());
  for (const char* bad : {R"({"redrivePermission":"some"})", R"({"redrivePermission":"byQueue"})",
                          R"({"redrivePermission":"allowAll","sourceQueueArns":["x"]})"}) {
    CHECK(ErrorOf(set(dlq, "RedriveAllowPolicy", bad)).name == riffle::kInvalidParameterValue);
  }
  REQUIRE(set(dlq, "RedriveAllowPolicy", R"({"redrivePermission":"denyAll"})").ok());
  const std::string third = CreateFifo(sqs, "third.fifo");
  CHECK(ErrorOf(set(third, "RedrivePolicy", policy(dlq_arn, "3"))).name ==
        riffle::kInvalidParameterValue);
  // A policy kept from before is not checked again: other attributes of its queue still
  // change, after its dead-letter queue stopped allowing it and after it was deleted.
  CHECK(set(other, "VisibilityTimeout", "60").ok());
  REQUIRE(sqs.DeleteQueue({.queue_url = dlq}).ok());
  CHECK(set(url, "DelaySeconds", "5").ok());
  auto kept = sqs.GetQueueAttributes(
      {.queue_url = url, .attribute_names = {"DelaySeconds", "RedrivePolicy"}});
  REQUIRE(kept.ok());
  CHECK(kept->attributes.at("DelaySeconds") == "5");
  CHECK(kept->attributes.at("RedrivePolicy") == policy(dlq_arn, "3"));
  // Setting it again is checked.
  CHECK(ErrorOf(set(url, "RedrivePolicy", policy(dlq_arn, "3"))).name ==
        riffle::kInvalidParameterValue);
}

TEST_CASE("TagQueue, UntagQueue and ListQueueTags", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  auto q = sqs.CreateQueue(
      {.queue_name = "q.fifo", .attributes = kFifo, .tags = {{"team", "payments"}}});
  REQUIRE(q.ok());
  const std::string url = q->queue_url;
  REQUIRE(sqs.TagQueue({.queue_url = url, .tags = {{"env", "test"}, {"team", "orders"}}}).ok());
  CHECK(sqs.ListQueueTags({.queue_url = url})->tags ==
        riffle::SqsTagMap{{"env", "test"}, {"team", "orders"}});
  REQUIRE(sqs.UntagQueue({.queue_url = url, .tag_keys = {"team", "absent"}}).ok());
  CHECK(sqs.ListQueueTags({.queue_url = url})->tags == riffle::SqsTagMap{{"env", "test"}});
  CHECK(ErrorOf(sqs.TagQueue({.queue_url = url, .tags = {{"aws:x", "1"}}})).name ==
        riffle::kInvalidParameterValue);
  CHECK(ErrorOf(sqs.TagQueue({.queue_url = url, .tags = {{std::string(129, 'k'), "1"}}})).name ==
        riffle::kInvalidParameterValue);
  riffle::SqsTagMap many;
  for (int i = 0; i < 50; ++i) many[fmt::format("k{}", i)] = "v";
  CHECK(ErrorOf(sqs.TagQueue({.queue_url = url, .tags = many})).name ==
        riffle::kInvalidParameterValue);
  CHECK(sqs.ListQueueTags({.queue_url = url})->tags.size() == 1);
  CHECK(ErrorOf(sqs.TagQueue({.queue_url = url})).name == riffle::kMissingParameter);
}

TEST_CASE("PurgeQueue forgets deduplication ids, as the service", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  auto send = [&] {
    return sqs.SendMessage({.queue_url = url,
                            .message_body = "m",
                            .message_deduplication_id = "d",
                            .message_group_id = "g"});
  };
  auto first = send();
  REQUIRE(first.ok());
  CHECK(send()->message_id == first->message_id);  // a duplicate within 5 minutes
  REQUIRE(sqs.PurgeQueue({.queue_url = url}).ok());
  auto after = send();
  REQUIRE(after.ok());
  CHECK(after->message_id != first->message_id);
  auto got = sqs.ReceiveMessage({.queue_url = url});
  REQUIRE(got.ok());
  REQUIRE(got->messages.size() == 1);
  CHECK(got->messages[0].message_id == after->message_id);
}
