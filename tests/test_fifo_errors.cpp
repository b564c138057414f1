// FifoQueue: every bad input gets the service's error name and a message naming the limit.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "fifo_test_helpers.h"
#include "fmt/format.h"
#include "riffle/fifo_queue.h"

using namespace riffle_test::fifo;  // NOLINT: test helpers

TEST_CASE("FifoQueue rejects bad batches by name", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  CHECK(ErrorName(q->DeleteMessageBatch({}).status()) == "EmptyBatchRequest");
  DeleteEntries eleven;
  std::vector<std::string> ids;
  for (int i = 0; i < 11; ++i) ids.push_back(fmt::format("e{}", i));
  for (auto& id : ids) eleven.push_back({.id = id, .receipt_handle = "h"});
  auto too_many = q->DeleteMessageBatch(eleven);
  CHECK(ErrorName(too_many.status()) == "TooManyEntriesInBatchRequest");
  CHECK(ErrorMessage(too_many.status()) == "The batch has 11 entries; it must have at most 10.");
  auto repeated = q->ChangeMessageVisibilityBatch(
      VisibilityEntries{{.id = "a", .receipt_handle = "h"}, {.id = "a", .receipt_handle = "h"}});
  CHECK(ErrorName(repeated.status()) == "BatchEntryIdsNotDistinct");
  auto bad_id = q->SendMessageBatch(SendEntries{{.id = "no spaces",
                                                 .message_group_id = "g",
                                                 .message_body = "b",
                                                 .message_deduplication_id = "d"}});
  CHECK(ErrorName(bad_id.status()) == "InvalidBatchEntryId");
  const std::string big(200'000, 'x');
  auto too_long = q->SendMessageBatch(SendEntries{
      {.id = "a", .message_group_id = "g", .message_body = big, .message_deduplication_id = "1"},
      {.id = "b", .message_group_id = "g", .message_body = big, .message_deduplication_id = "2"}});
  CHECK(ErrorName(too_long.status()) == "BatchRequestTooLong");
}

TEST_CASE("FifoQueue rejects every bad send, receive and handle by name", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.maximum_message_size = 1024});
  auto send = [&](riffle::SendMessageRequest r) { return q->SendMessage(r).status(); };
  auto s = send({.message_body = "b", .message_deduplication_id = "d"});
  CHECK(ErrorName(s) == "MissingParameter");
  CHECK(ErrorMessage(s) == "The request must contain the parameter MessageGroupId.");
  s = send({.message_group_id = "g", .message_body = "b"});
  CHECK(ErrorName(s) == "InvalidParameterValue");
  CHECK_THAT(ErrorMessage(s), Catch::Contains("ContentBasedDeduplication"));
  CHECK(ErrorName(send({.message_group_id = "g", .message_deduplication_id = "d"})) ==
        "MissingParameter");
  const std::string long_id(129, 'a');
  s = send({.message_group_id = long_id, .message_body = "b", .message_deduplication_id = "d"});
  CHECK(ErrorMessage(s) == "MessageGroupId is 129 characters long; it must be at most 128.");
  CHECK(send({.message_group_id = std::string(128, 'a'),
              .message_body = "b",
              .message_deduplication_id = "d"})
            .ok());
  s = send({.message_group_id = "g g", .message_body = "b", .message_deduplication_id = "d"});
  CHECK(ErrorName(s) == "InvalidParameterValue");
  CHECK_THAT(ErrorMessage(s),
             Catch::StartsWith("MessageGroupId contains the byte 0x20 at position 1"));
  s = send({.message_group_id = "g", .message_body = "b", .message_deduplication_id = "d\xC3\xA9"});
  CHECK_THAT(ErrorMessage(s), Catch::StartsWith("MessageDeduplicationId contains the byte 0xC3"));
  s = send({.message_group_id = "g", .message_body = "b", .message_deduplication_id = ""});
  CHECK(ErrorName(s) == "MissingParameter");
  CHECK(send({.message_group_id = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
              .message_body = "b",
              .message_deduplication_id = "Az09!~"})
            .ok());
  s = send({.message_group_id = "g",
            .message_body = std::string(1025, 'x'),
            .message_deduplication_id = "d"});
  CHECK(ErrorName(s) == "InvalidParameterValue");
  CHECK_THAT(ErrorMessage(s), Catch::Contains("at most 1024 bytes"));
  s = send({.message_group_id = "g",
            .message_body = std::string("a\x01", 2),
            .message_deduplication_id = "d"});
  CHECK(ErrorName(s) == "InvalidMessageContents");
  CHECK_THAT(ErrorMessage(s), Catch::Contains("U+0001 at byte 1"));
  CHECK(ErrorName(send({.message_group_id = "g",
                        .message_body = "\xED\xA0\x80",
                        .message_deduplication_id = "d"})) == "InvalidMessageContents");
  CHECK(ErrorName(send(
            {.message_group_id = "g", .message_body = "\xC3", .message_deduplication_id = "d"})) ==
        "InvalidMessageContents");
  CHECK(send({.message_group_id = "g",
              .message_body = "h\xC3\xA9 \xF0\x9F\x98\x80\t\n",
              .message_deduplication_id = "utf8"})
            .ok());
  s = send({.message_group_id = "g",
            .message_body = "b",
            .message_deduplication_id = "d",
            .delay_seconds = 5});
  CHECK(ErrorName(s) == "InvalidParameterValue");
  CHECK_THAT(ErrorMessage(s), Catch::Contains("DelaySeconds"));

  auto receive = [&](riffle::ReceiveMessageRequest r) { return q->ReceiveMessage(r).status(); };
  auto r = receive({.max_number_of_messages = 11});
  CHECK(ErrorName(r) == "InvalidParameterValue");
  CHECK(ErrorMessage(r) == "MaxNumberOfMessages is 11; it must be between 1 and 10.");
  CHECK(ErrorName(receive({.max_number_of_messages = 0})) == "InvalidParameterValue");
  CHECK(ErrorMessage(receive({.wait_time_seconds = 21})) ==
        "WaitTimeSeconds is 21; it must be between 0 and 20.");
  CHECK(ErrorMessage(receive({.visibility_timeout = -1})) ==
        "VisibilityTimeout is -1; it must be between 0 and 43200.");
  CHECK(ErrorName(receive({.receive_request_attempt_id = "with space"})) ==
        "InvalidParameterValue");

  for (std::string_view handle : {std::string_view(""), std::string_view("nonsense"),
                                  std::string_view("ffffffffffffffff0000000000000001")}) {
    CHECK(ErrorName(q->DeleteMessage(handle)) == "ReceiptHandleIsInvalid");
    CHECK(ErrorName(q->ChangeMessageVisibility(handle, 5)) == "ReceiptHandleIsInvalid");
  }
  // A current handle with one character changed is not one either.
  auto fresh = MakeQueue(&clock, {.name = "handles.fifo"});
  Send(*fresh, "g", "m");
  auto mine = Receive(*fresh);
  REQUIRE(mine.size() == 1);
  for (char bad : {'g', 'A', 'F', '/', ':', '`', '\x80'}) {
    for (size_t at : {size_t{0}, size_t{17}, size_t{31}}) {
      std::string handle = mine[0].receipt_handle;
      handle[at] = bad;
      CHECK(ErrorName(fresh->DeleteMessage(handle)) == "ReceiptHandleIsInvalid");
    }
  }
  REQUIRE(fresh->DeleteMessage(mine[0].receipt_handle).ok());
  // A handle of another queue is not one of ours.
  auto other = MakeQueue(&clock, {.name = "other.fifo"});
  Send(*other, "g", "m");
  auto theirs = Receive(*other);
  CHECK(ErrorName(q->DeleteMessage(theirs[0].receipt_handle)) == "ReceiptHandleIsInvalid");
  REQUIRE(other->DeleteMessage(theirs[0].receipt_handle).ok());
  CHECK(ErrorName(other->DeleteMessage(theirs[0].receipt_handle)) == "ReceiptHandleIsInvalid");
}

TEST_CASE("FifoQueue validates message attributes and returns them", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  riffle::MessageAttributes attrs{
      {"color", {.data_type = "String", .string_value = "red"}},
      {"n", {.data_type = "Number.int", .string_value = "-1.5e3"}},
      {"raw", {.data_type = "Binary", .binary_value = std::string("\0\1", 2)}}};
  REQUIRE(q->SendMessage({.message_group_id = "g",
                          .message_body = "b",
                          .message_deduplication_id = "d",
                          .message_attributes = attrs})
              .ok());
  auto got = Receive(*q);
  REQUIRE(got.size() == 1);
  CHECK(got[0].message_attributes == attrs);
  auto bad = [&](std::string name, riffle::MessageAttributeValue v) {
    return ErrorName(q->SendMessage({.message_group_id = "g",
                                     .message_body = "b",
                                     .message_deduplication_id = "e",
                                     .message_attributes = {{name, v}}})
                         .status());
  };
  CHECK(bad("AWS.x", {.data_type = "String", .string_value = "v"}) == "InvalidParameterValue");
  CHECK(bad("a..b", {.data_type = "String", .string_value = "v"}) == "InvalidParameterValue");
  CHECK(bad("ok", {.data_type = "Text", .string_value = "v"}) == "InvalidParameterValue");
  CHECK(bad("ok", {.data_type = "String", .string_value = ""}) == "InvalidParameterValue");
  CHECK(bad("ok", {.data_type = "Number", .string_value = "12a"}) == "InvalidParameterValue");
  CHECK(bad("ok", {.data_type = "String", .string_value = "\x02"}) == "InvalidMessageContents");
}

TEST_CASE("FifoQueue::Create validates its options by name", "[fifo]") {
  auto create = [](FifoQueueOptions o) { return FifoQueue::Create(std::move(o)).status(); };
  CHECK(ErrorName(create({})) == "MissingParameter");
  CHECK(ErrorName(create({.name = "plain"})) == "InvalidParameterValue");
  CHECK(ErrorName(create({.name = "bad name.fifo"})) == "InvalidParameterValue");
  CHECK(ErrorName(create({.name = std::string(76, 'a') + ".fifo"})) == "InvalidParameterValue");
  CHECK(create({.name = std::string(75, 'a') + ".fifo"}).ok());
  auto vt = create({.name = "q.fifo", .visibility_timeout_seconds = 43'201});
  CHECK(ErrorName(vt) == "InvalidAttributeValue");
  CHECK(ErrorMessage(vt) == "VisibilityTimeout is 43201; it must be between 0 and 43200.");
  CHECK(ErrorName(create({.name = "q.fifo", .message_retention_period_seconds = 59})) ==
        "InvalidAttributeValue");
  CHECK(ErrorName(create({.name = "q.fifo", .message_retention_period_seconds = 1'209'601})) ==
        "InvalidAttributeValue");
  CHECK(ErrorName(create({.name = "q.fifo", .maximum_message_size = 1'048'577})) ==
        "InvalidAttributeValue");
  CHECK(ErrorName(create({.name = "q.fifo", .delay_seconds = 901})) == "InvalidAttributeValue");
  CHECK(ErrorName(create({.name = "q.fifo", .redrive_policy = riffle::RedrivePolicy{}})) ==
        "InvalidAttributeValue");
  auto dlq = FifoQueue::Create({.name = "d.fifo"}).value();
  CHECK(ErrorName(
            create({.name = "q.fifo", .redrive_policy = riffle::RedrivePolicy{dlq.get(), 1001}})) ==
        "InvalidAttributeValue");
  CHECK(create({.name = "q.fifo", .redrive_policy = riffle::RedrivePolicy{dlq.get(), 1000}}).ok());
}
