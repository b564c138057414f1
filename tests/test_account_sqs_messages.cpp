// SQS messages through an Account, by queue URL: the digests (MD5OfMessageBody,
// MD5OfMessageAttributes, MD5OfMessageSystemAttributes), message and system attributes,
// batches, visibility, and dead-letter queues named by ARN in a RedrivePolicy.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/sqs.h"

using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::MessageAttributes;
using riffle::SqsAttributeMap;

namespace {

std::string CreateFifo(riffle::Sqs& sqs, std::string_view name, SqsAttributeMap attributes = {}) {
  attributes.emplace("FifoQueue", "true");
  attributes.emplace("ContentBasedDeduplication", "true");
  auto q = sqs.CreateQueue({.queue_name = name, .attributes = attributes});
  REQUIRE(q.ok());
  return q->queue_url;
}

const std::string kTrace =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

}  // namespace

// Vectors derived from the published encoding (each attribute in name order: 4-byte
// big-endian length and bytes of the name, of the data type, a transport byte 1 for String
// and Number or 2 for Binary, then length and bytes of the value; MD5 of the whole),
// computed independently of riffle.
TEST_CASE("MD5 digests match the service's algorithm", "[account][sqs]") {
  CHECK(riffle::Md5OfMessageBody("test") == "098f6bcd4621d373cade4e832627b4f6");
  CHECK(riffle::Md5OfMessageBody("hello") == "5d41402abc4b2a76b9719d911017c592");
  CHECK(riffle::Md5OfMessageBody("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(riffle::Md5OfMessageAttributes({}).empty());
  CHECK(riffle::Md5OfMessageAttributes(
            {{"Attr1", {.data_type = "String", .string_value = "Value1"}}}) ==
        "829f863e977cc22772653631d2f3bd4c");
  const MessageAttributes mixed = {
      {"Count", {.data_type = "Number", .string_value = "42"}},
      {"Blob", {.data_type = "Binary", .binary_value = std::string("\x00\x01\x02", 3)}},
      {"Name", {.data_type = "String.custom", .string_value = "caf\xc3\xa9"}}};
  CHECK(riffle::Md5OfMessageAttributes(mixed) == "be4bce3da9fa3146bc5729a4f422b410");
  CHECK(riffle::Md5OfMessageAttributes(
            {{"AWSTraceHeader", {.data_type = "String", .string_value = kTrace}}}) ==
        "5ae4d5d7636402d80f4eb6d213245a88");
  // Order is by name, not by insertion.
  CHECK(riffle::Md5OfMessageAttributes({{"b", {.data_type = "String", .string_value = "1"}},
                                        {"a", {.data_type = "String", .string_value = "2"}}}) ==
        "35ccf9a9af758422b8cb0fdbb57ea2dd");
}

TEST_CASE("SendMessage and ReceiveMessage by URL carry attributes and digests", "[account][sqs]") {
  riffle::ManualClock clock(absl::FromUnixSeconds(1'700'000'000));
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  const MessageAttributes attrs = {
      {"Count", {.data_type = "Number", .string_value = "42"}},
      {"Blob", {.data_type = "Binary", .binary_value = std::string("\x00\x01\x02", 3)}},
      {"Name", {.data_type = "String.custom", .string_value = "caf\xc3\xa9"}}};
  const MessageAttributes system = {
      {"AWSTraceHeader", {.data_type = "String", .string_value = kTrace}}};
  auto sent = sqs.SendMessage({.queue_url = url,
                               .message_body = "test",
                               .message_attributes = attrs,
                               .message_system_attributes = system,
                               .message_group_id = "g1"});
  REQUIRE(sent.ok());
  CHECK(sent->md5_of_message_body == "098f6bcd4621d373cade4e832627b4f6");
  CHECK(sent->md5_of_message_attributes == "be4bce3da9fa3146bc5729a4f422b410");
  CHECK(sent->md5_of_message_system_attributes == "5ae4d5d7636402d80f4eb6d213245a88");
  CHECK(sent->message_id.size() == 36);
  CHECK(sent->sequence_number.size() == 20);

  clock.Advance(absl::Seconds(2));
  auto got = sqs.ReceiveMessage({.queue_url = url,
                                 .message_system_attribute_names = {"All"},
                                 .message_attribute_names = {"All"}});
  REQUIRE(got.ok());
  REQUIRE(got->messages.size() == 1);
  const riffle::SqsMessage& m = got->messages[0];
  CHECK(m.body == "test");
  CHECK(m.message_id == sent->message_id);
  CHECK(m.md5_of_body == "098f6bcd4621d373cade4e832627b4f6");
  CHECK(m.message_attributes == attrs);
  CHECK(m.md5_of_message_attributes == "be4bce3da9fa3146bc5729a4f422b410");
  CHECK(m.attributes ==
        SqsAttributeMap{{"AWSTraceHeader", kTrace},
                        {"ApproximateFirstReceiveTimestamp", "1700000002000"},
                        {"ApproximateReceiveCount", "1"},
                        {"MessageDeduplicationId",
                         "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
                        {"MessageGroupId", "g1"},
                        {"SenderId", "000000000000"},
                        {"SentTimestamp", "1700000000000"},
                        {"SequenceNumber", sent->sequence_number}});

  // Only what is asked for; the digest covers the returned attributes.
  REQUIRE(sqs.ChangeMessageVisibility(
                 {.queue_url = url, .receipt_handle = m.receipt_handle, .visibility_timeout = 0})
              .ok());
  got = sqs.ReceiveMessage({.queue_url = url,
                            .attribute_names = {"ApproximateReceiveCount"},
                            .message_attribute_names = {"Co.*"}});
  REQUIRE(got.ok());
  REQUIRE(got->messages.size() == 1);
  CHECK(got->messages[0].attributes == SqsAttributeMap{{"ApproximateReceiveCount", "2"}});
  CHECK(got->messages[0].message_attributes.size() == 1);  // "Co.*": names starting "Co"
  CHECK(got->messages[0].message_attributes.contains("Count"));
  CHECK(got->messages[0].md5_of_message_attributes ==
        riffle::Md5OfMessageAttributes({{"Count", {.data_type = "Number", .string_value = "42"}}}));
  REQUIRE(sqs.ChangeMessageVisibility({.queue_url = url,
                                       .receipt_handle = got->messages[0].receipt_handle,
                                       .visibility_timeout = 0})
              .ok());
  got = sqs.ReceiveMessage({.queue_url = url, .message_attribute_names = {"Nam.*", "Blob."}});
  REQUIRE(got.ok());
  // As the service reads them: "Nam.*" selects "Name"; "Blob." names no attribute.
  CHECK(got->messages[0].message_attributes.size() == 1);
  CHECK(got->messages[0].message_attributes.contains("Name"));
  CHECK(got->messages[0].attributes.empty());
  REQUIRE(sqs.DeleteMessage({.queue_url = url, .receipt_handle = got->messages[0].receipt_handle})
              .ok());
  // Used, the handle has expired (a FIFO queue's answer); a string no receive made is not a
  // receipt handle at all.
  CHECK(ErrorOf(sqs.DeleteMessage(
            {.queue_url = url, .receipt_handle = got->messages[0].receipt_handle})) ==
        account_test::Error{riffle::kInvalidParameterValue,
                            "Value " + got->messages[0].receipt_handle +
                                " for parameter ReceiptHandle is invalid. Reason: The receipt "
                                "handle has expired."});
  CHECK(ErrorOf(sqs.DeleteMessage({.queue_url = url, .receipt_handle = "abc"})) ==
        account_test::Error{riffle::kReceiptHandleIsInvalid,
                            "The input receipt handle \"abc\" is not a valid receipt handle."});
  CHECK(ErrorOf(sqs.DeleteMessage({.queue_url = url})) ==
        account_test::Error{riffle::kMissingParameter,
                            "The request must contain the parameter ReceiptHandle."});
  CHECK(ErrorOf(sqs.ReceiveMessage({.queue_url = url, .attribute_names = {"Colour"}})) ==
        account_test::Error{riffle::kInvalidAttributeName, "Unknown Attribute Colour."});
  CHECK(ErrorOf(sqs.ReceiveMessage(
            {.queue_url = url, .message_system_attribute_names = {"VisibilityTimeout"}})) ==
        account_test::Error{riffle::kInvalidAttributeName, "Unknown Attribute VisibilityTimeout."});
  // The older AttributeNames lists queue attribute names: those are ignored, the message
  // system attributes it names returned.
  REQUIRE(sqs.SendMessage({.queue_url = url,
                           .message_body = "again",
                           .message_deduplication_id = "again",
                           .message_group_id = "g"})
              .ok());
  auto mixed = sqs.ReceiveMessage(
      {.queue_url = url,
       .attribute_names = {"ApproximateNumberOfMessages", "VisibilityTimeout", "SentTimestamp"}});
  REQUIRE(mixed.ok());
  REQUIRE(mixed->messages.size() == 1);
  CHECK(mixed->messages[0].attributes.size() == 1);
  CHECK(mixed->messages[0].attributes.contains("SentTimestamp"));
}

TEST_CASE("Sends are checked as the service checks them", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo", {{"MaximumMessageSize", "1024"}});
  auto send = [&](riffle::SendMessageInput in) {
    in.queue_url = url;
    if (in.message_group_id.empty()) in.message_group_id = "g";
    return sqs.SendMessage(in);
  };
  CHECK(
      ErrorOf(send({.message_body = "x",
                    .message_system_attributes = {{"Other",
                                                   {.data_type = "String", .string_value = "v"}}}}))
          .name == riffle::kInvalidParameterValue);
  CHECK(
      ErrorOf(send({.message_body = "x",
                    .message_system_attributes = {{"AWSTraceHeader",
                                                   {.data_type = "Number", .string_value = "1"}}}}))
          .name == riffle::kInvalidParameterValue);
  CHECK(ErrorOf(send({.message_body = ""})) ==
        account_test::Error{riffle::kMissingParameter,
                            "The request must contain the parameter MessageBody."});
  CHECK(ErrorOf(send({.message_body = "x", .delay_seconds = 5})) ==
        account_test::Error{riffle::kInvalidParameterValue,
                            "Value 5 for parameter DelaySeconds is invalid. Reason: The request "
                            "include parameter that is not valid for this queue type."});
  // A per-message delay of 0 asks for nothing a FIFO queue lacks: accepted.
  CHECK(send({.message_body = "zero delay", .delay_seconds = 0}).ok());
  CHECK(ErrorOf(sqs.ReceiveMessage({.queue_url = url, .max_number_of_messages = 11})) ==
        account_test::Error{riffle::kInvalidParameterValue,
                            "Value 11 for parameter MaxNumberOfMessages is invalid. Reason: Must "
                            "be between 1 and 10, if provided."});
  CHECK(ErrorOf(sqs.ReceiveMessage({.queue_url = url, .max_number_of_messages = 0})).name ==
        riffle::kInvalidParameterValue);
  CHECK(ErrorOf(sqs.ReceiveMessage({.queue_url = url, .wait_time_seconds = 21})) ==
        account_test::Error{riffle::kInvalidParameterValue,
                            "Value 21 for parameter WaitTimeSeconds is invalid. Reason: Must be "
                            ">= 0 and <= 20, if provided."});
  CHECK(ErrorOf(sqs.ReceiveMessage({.queue_url = url, .visibility_timeout = -1})).name ==
        riffle::kInvalidParameterValue);
  CHECK(ErrorOf(sqs.ChangeMessageVisibility(
                    {.queue_url = url, .receipt_handle = "h", .visibility_timeout = 43'201}))
            .name == riffle::kInvalidParameterValue);
  CHECK(ErrorOf(send({})) ==
        account_test::Error{riffle::kMissingParameter,
                            "The request must contain the parameter MessageBody."});
  MessageAttributes eleven;
  for (int i = 0; i < 11; ++i) {
    eleven[fmt::format("a{}", i)] = {.data_type = "String", .string_value = "v"};
  }
  CHECK(ErrorOf(send({.message_body = "x", .message_attributes = eleven})).name ==
        riffle::kInvalidParameterValue);
  CHECK(ErrorOf(
            send({.message_body = "x",
                  .message_attributes = {{"AWS.x", {.data_type = "String", .string_value = "v"}}}}))
            .name == riffle::kInvalidParameterValue);
  // Attributes count in MaximumMessageSize (1,024 here): 1,000 body bytes + 30 do not fit.
  const MessageAttributes big = {
      {"name", {.data_type = "String", .string_value = std::string(20, 'v')}}};
  CHECK(send({.message_body = std::string(1000, 'b')}).ok());
  CHECK(ErrorOf(send({.message_body = std::string(1000, 'c'), .message_attributes = big})).name ==
        riffle::kInvalidParameterValue);
  // The trace header does not count.
  CHECK(send({.message_body = std::string(1024, 'd'),
              .message_system_attributes = {{"AWSTraceHeader",
                                             {.data_type = "String", .string_value = kTrace}}}})
            .ok());
}

TEST_CASE("Batches by URL: per-entry results and digests, batch errors by name", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "q.fifo");
  std::vector<riffle::SendMessageBatchInputEntry> entries = {
      {.id = "a", .message_body = "test", .message_group_id = "g"},
      {.id = "b",
       .message_body = "hello",
       .message_system_attributes = {{"Bad", {.data_type = "String", .string_value = "v"}}},
       .message_group_id = "g"},
      {.id = "c",
       .message_body = "x",
       .message_attributes = {{"Attr1", {.data_type = "String", .string_value = "Value1"}}},
       .message_group_id = "g"}};
  auto sent = sqs.SendMessageBatch({.queue_url = url, .entries = entries});
  REQUIRE(sent.ok());
  REQUIRE(sent->successful.size() == 2);
  CHECK(sent->successful[0].id == "a");
  CHECK(sent->successful[0].md5_of_message_body == "098f6bcd4621d373cade4e832627b4f6");
  CHECK(sent->successful[0].md5_of_message_attributes.empty());
  CHECK(sent->successful[1].id == "c");
  CHECK(sent->successful[1].md5_of_message_attributes == "829f863e977cc22772653631d2f3bd4c");
  REQUIRE(sent->failed.size() == 1);
  CHECK(sent->failed[0].id == "b");
  CHECK(sent->failed[0].code == riffle::kInvalidParameterValue);

  CHECK(ErrorOf(sqs.SendMessageBatch({.queue_url = url})).name == riffle::kEmptyBatchRequest);
  std::vector<riffle::SendMessageBatchInputEntry> eleven(11);
  for (int i = 0; i < 11; ++i) {
    eleven[i].id = i % 2 ? "odd" : "even";
  }
  CHECK(ErrorOf(sqs.SendMessageBatch({.queue_url = url, .entries = eleven})).name ==
        riffle::kTooManyEntriesInBatchRequest);
  eleven.resize(2);
  // Entries without a MessageGroupId fail the whole request, as the service does.
  CHECK(ErrorOf(sqs.SendMessageBatch({.queue_url = url, .entries = eleven})).name ==
        riffle::kInvalidParameterValue);
  eleven[1].id = "even";
  CHECK(ErrorOf(sqs.SendMessageBatch({.queue_url = url, .entries = eleven})).name ==
        riffle::kBatchEntryIdsNotDistinct);
  eleven[1].id = "bad id";
  CHECK(ErrorOf(sqs.SendMessageBatch({.queue_url = url, .entries = eleven})).name ==
        riffle::kInvalidBatchEntryId);

  auto got = sqs.ReceiveMessage({.queue_url = url, .max_number_of_messages = 10});
  REQUIRE(got.ok());
  REQUIRE(got->messages.size() == 2);
  std::vector<riffle::ChangeMessageVisibilityBatchRequestEntry> change = {
      {.id = "1", .receipt_handle = got->messages[0].receipt_handle, .visibility_timeout = 60},
      {.id = "2", .receipt_handle = "nonsense", .visibility_timeout = 60}};
  auto changed = sqs.ChangeMessageVisibilityBatch({.queue_url = url, .entries = change});
  REQUIRE(changed.ok());
  CHECK(changed->successful == std::vector<std::string>{"1"});
  REQUIRE(changed->failed.size() == 1);
  CHECK(changed->failed[0].code == riffle::kReceiptHandleIsInvalid);
  std::vector<riffle::DeleteMessageBatchRequestEntry> del = {
      {.id = "1", .receipt_handle = got->messages[0].receipt_handle},
      {.id = "2", .receipt_handle = got->messages[1].receipt_handle}};
  auto deleted = sqs.DeleteMessageBatch({.queue_url = url, .entries = del});
  REQUIRE(deleted.ok());
  CHECK(deleted->successful == std::vector<std::string>{"1", "2"});
  CHECK(sqs.GetQueueAttributes({.queue_url = url, .attribute_names = {"All"}})
            ->attributes.at("ApproximateNumberOfMessagesNotVisible") == "0");
}

// The service refuses the whole batch (nothing is sent) when an entry has no MessageGroupId,
// or no MessageDeduplicationId on a queue without content-based deduplication.
TEST_CASE("A batch entry without a group or deduplication id fails the whole request",
          "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "plain.fifo", {{"ContentBasedDeduplication", "false"}});
  std::vector<riffle::SendMessageBatchInputEntry> entries = {
      {.id = "a", .message_body = "one", .message_deduplication_id = "d1", .message_group_id = "g"},
      {.id = "b", .message_body = "two", .message_group_id = "g"}};
  const auto no_dedup = ErrorOf(sqs.SendMessageBatch({.queue_url = url, .entries = entries}));
  CHECK(no_dedup.name == riffle::kInvalidParameterValue);
  CHECK(no_dedup.message ==
        "The queue should either have ContentBasedDeduplication enabled or "
        "MessageDeduplicationId provided explicitly");
  entries[1].message_deduplication_id = "d2";
  entries[1].message_group_id = "";
  const auto no_group = ErrorOf(sqs.SendMessageBatch({.queue_url = url, .entries = entries}));
  CHECK(no_group.name == riffle::kInvalidParameterValue);  // SendMessage: MissingParameter
  CHECK(no_group.message == "The request must contain the parameter MessageGroupId.");
  CHECK(sqs.ReceiveMessage({.queue_url = url, .max_number_of_messages = 10})->messages.empty());
  entries[1].message_group_id = "g";
  auto sent = sqs.SendMessageBatch({.queue_url = url, .entries = entries});
  REQUIRE(sent.ok());
  CHECK(sent->successful.size() == 2);
}

TEST_CASE("A batch over 256 KiB in all is refused whole, even when an entry would fail alone",
          "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "sized.fifo", {{"ContentBasedDeduplication", "true"}});
  const std::string big(40'000, 'b');
  const std::string medium(27'000, 'm');
  std::vector<std::string> ids, bodies;  // the entries hold views of these
  for (int i = 0; i < 10; ++i) {
    ids.push_back(fmt::format("e{}", i));
    bodies.push_back(i == 0 ? big : medium + std::to_string(i));
  }
  std::vector<riffle::SendMessageBatchInputEntry> entries;
  for (int i = 0; i < 10; ++i) {
    entries.push_back({.id = ids[i], .message_body = bodies[i], .message_group_id = "g"});
  }
  // 283,009 bytes in all; the entry with a per-message delay would fail on its own (FIFO
  // queues take no DelaySeconds per message), but the request's size is judged first.
  entries[0].delay_seconds = 5;
  const auto refused = ErrorOf(sqs.SendMessageBatch({.queue_url = url, .entries = entries}));
  CHECK(refused.name == riffle::kBatchRequestTooLong);
  CHECK(refused.message ==
        "Batch requests cannot be longer than 262144 bytes. You have sent 283009 bytes.");
  CHECK(sqs.ReceiveMessage({.queue_url = url, .max_number_of_messages = 10})->messages.empty());
}

TEST_CASE("A RedrivePolicy by ARN moves messages to the dead-letter queue", "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string dlq = CreateFifo(sqs, "dead.fifo");
  const std::string policy = fmt::format(R"({{"deadLetterTargetArn":"{}","maxReceiveCount":2}})",
                                         sqs.QueueArn("dead.fifo"));
  const std::string url = CreateFifo(sqs, "q.fifo", {{"RedrivePolicy", policy}});
  REQUIRE(
      sqs.SendMessage({.queue_url = url,
                       .message_body = "poison",
                       .message_attributes = {{"k", {.data_type = "String", .string_value = "v"}}},
                       .message_group_id = "g"})
          .ok());
  auto receive_and_expire = [&] {
    auto got = sqs.ReceiveMessage({.queue_url = url, .visibility_timeout = 1});
    REQUIRE(got.ok());
    clock.Advance(absl::Seconds(1));
    return got->messages.size();
  };
  CHECK(receive_and_expire() == 1);
  CHECK(receive_and_expire() == 1);
  CHECK(receive_and_expire() == 0);  // the third receive moves it
  auto dead = sqs.ReceiveMessage(
      {.queue_url = dlq,
       .message_system_attribute_names = {"MessageGroupId", "DeadLetterQueueSourceArn"},
       .message_attribute_names = {"All"}});
  REQUIRE(dead.ok());
  REQUIRE(dead->messages.size() == 1);
  CHECK(dead->messages[0].body == "poison");
  CHECK(dead->messages[0].attributes.at("MessageGroupId") == "g");
  // The system attribute the service adds to a message its redrive policy moved.
  CHECK(dead->messages[0].attributes.at("DeadLetterQueueSourceArn") == sqs.QueueArn("q.fifo"));
  CHECK(dead->messages[0].message_attributes.contains("k"));
  // A message sent to the dead-letter queue directly has none.
  REQUIRE(
      sqs.SendMessage({.queue_url = dlq, .message_body = "direct", .message_group_id = "d"}).ok());
  auto direct = sqs.ReceiveMessage({.queue_url = dlq, .attribute_names = {"All"}});
  REQUIRE(direct.ok());
  REQUIRE(direct->messages.size() == 1);
  CHECK(direct->messages[0].attributes.contains("MessageGroupId"));
  CHECK_FALSE(direct->messages[0].attributes.contains("DeadLetterQueueSourceArn"));

  // A deleted dead-letter queue moves nothing; the policy stays and takes effect again
  // when a queue of that ARN exists.
  REQUIRE(sqs.DeleteQueue({.queue_url = dlq}).ok());
  CHECK(sqs.GetQueueAttributes({.queue_url = url, .attribute_names = {"RedrivePolicy"}})
            ->attributes.at("RedrivePolicy") == policy);
  REQUIRE(
      sqs.SendMessage({.queue_url = url, .message_body = "second", .message_group_id = "h"}).ok());
  CHECK(receive_and_expire() == 1);
  CHECK(receive_and_expire() == 1);
  CHECK(receive_and_expire() == 1);  // kept: there is no dead-letter queue now
  clock.Advance(absl::Seconds(60));
  const std::string dlq2 = CreateFifo(sqs, "dead.fifo");
  CHECK(dlq2 == dlq);
  CHECK(receive_and_expire() == 0);
  auto moved = sqs.ReceiveMessage({.queue_url = dlq2});
  REQUIRE(moved.ok());
  REQUIRE(moved->messages.size() == 1);
  CHECK(moved->messages[0].body == "second");
}

TEST_CASE("Competing senders and receivers by URL: nothing lost or repeated, order per group",
          "[account][sqs]") {
  auto account = riffle::Account::Create().value();  // the system clock
  riffle::Sqs& sqs = account->sqs();
  const std::string url = CreateFifo(sqs, "busy.fifo");
  constexpr int kSenders = 2, kPerSender = 400, kGroups = 4;
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};  // Catch's assertions are for the test's own thread
  for (int s = 0; s < kSenders; ++s) {
    threads.emplace_back([&, s] {
      for (int i = 0; i < kPerSender; ++i) {
        const std::string body = fmt::format("{}:{}", s, i);
        const std::string group = fmt::format("g{}-{}", s, i % kGroups);
        auto r =
            sqs.SendMessage({.queue_url = url, .message_body = body, .message_group_id = group});
        if (!r.ok()) errors.fetch_add(1);
      }
    });
  }
  std::mutex mu;
  std::map<std::string, std::vector<int>> seen;  // group -> message numbers, in receive order
  std::atomic<int> received{0};
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      while (received.load() < kSenders * kPerSender && errors.load() == 0) {
        auto got = sqs.ReceiveMessage({.queue_url = url,
                                       .message_system_attribute_names = {"MessageGroupId"},
                                       .max_number_of_messages = 10,
                                       .wait_time_seconds = 1});
        if (!got.ok()) {
          errors.fetch_add(1);
          break;
        }
        for (const riffle::SqsMessage& m : got->messages) {
          {
            std::lock_guard<std::mutex> lock(mu);
            seen[m.attributes.at("MessageGroupId")].push_back(
                std::stoi(m.body.substr(m.body.find(':') + 1)));
          }
          if (!sqs.DeleteMessage({.queue_url = url, .receipt_handle = m.receipt_handle}).ok()) {
            errors.fetch_add(1);
          }
          received.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(errors.load() == 0);
  int total = 0;
  for (const auto& [group, numbers] : seen) {
    INFO(group);
    CHECK(std::is_sorted(numbers.begin(), numbers.end()));
    CHECK(std::adjacent_find(numbers.begin(), numbers.end()) == numbers.end());
    total += static_cast<int>(numbers.size());
  }
  CHECK(total == kSenders * kPerSender);
  CHECK(seen.size() == kSenders * kGroups);
}

TEST_CASE("A re-created dead-letter queue takes sources back only where it allows them",
          "[account][sqs]") {
  riffle::ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::Sqs& sqs = account->sqs();
  const std::string dlq = CreateFifo(sqs, "dead.fifo");
  const std::string policy = fmt::format(R"({{"deadLetterTargetArn":"{}","maxReceiveCount":1}})",
                                         sqs.QueueArn("dead.fifo"));
  const std::string url = CreateFifo(sqs, "q.fifo", {{"RedrivePolicy", policy}});
  REQUIRE(sqs.DeleteQueue({.queue_url = dlq}).ok());
  clock.Advance(absl::Seconds(60));
  // The new queue of that name denies every source: q.fifo keeps its messages.
  CreateFifo(sqs, "dead.fifo", {{"RedriveAllowPolicy", R"({"redrivePermission":"denyAll"})"}});
  REQUIRE(sqs.SendMessage({.queue_url = url, .message_body = "m", .message_group_id = "g"}).ok());
  for (int i = 0; i < 3; ++i) {
    auto got = sqs.ReceiveMessage({.queue_url = url, .visibility_timeout = 0});
    REQUIRE(got.ok());
    CHECK(got->messages.size() == 1);
  }
  CHECK(sqs.ReceiveMessage({.queue_url = dlq})->messages.empty());
}
