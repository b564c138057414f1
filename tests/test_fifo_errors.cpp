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
  CHECK_THAT(q->DeleteMessageBatch({}).status(), HasName(riffle::kEmptyBatchRequest));
  CHECK(ErrorMessage(q->DeleteMessageBatch({}).status()) ==
        "There should be at least one DeleteMessageBatchRequestEntry in the request.");
  CHECK(ErrorMessage(q->SendMessageBatch({}).status()) ==
        "There should be at least one SendMessageBatchRequestEntry in the request.");
  // The query protocol's code for the same error matches too.
  CHECK_THAT(q->SendMessageBatch({}).status(), HasName("AWS.SimpleQueueService.EmptyBatchRequest"));
  DeleteEntries eleven;
  std::vector<std::string> ids;
  for (int i = 0; i < 11; ++i) ids.push_back(fmt::format("e{}", i));
  for (auto& id : ids) eleven.push_back({.id = id, .receipt_handle = "h"});
  auto too_many = q->DeleteMessageBatch(eleven);
  CHECK_THAT(too_many.status(), HasName(riffle::kTooManyEntriesInBatchRequest));
  CHECK(ErrorMessage(too_many.status()) ==
        "Maximum number of entries per request are 10. You have sent 11.");
  auto repeated = q->ChangeMessageVisibilityBatch(
      VisibilityEntries{{.id = "a", .receipt_handle = "h"}, {.id = "a", .receipt_handle = "h"}});
  CHECK_THAT(repeated.status(), HasName(riffle::kBatchEntryIdsNotDistinct));
  CHECK(ErrorMessage(repeated.status()) == "Id a repeated.");
  auto bad_id = q->SendMessageBatch(SendEntries{{.id = "no spaces",
                                                 .message_group_id = "g",
                                                 .message_body = "b",
                                                 .message_deduplication_id = "d"}});
  CHECK_THAT(bad_id.status(), HasName(riffle::kInvalidBatchEntryId));
  const std::string big(200'000, 'x');
  auto too_long = q->SendMessageBatch(SendEntries{
      {.id = "a", .message_group_id = "g", .message_body = big, .message_deduplication_id = "1"},
      {.id = "b", .message_group_id = "g", .message_body = big, .message_deduplication_id = "2"}});
  CHECK_THAT(too_long.status(), HasName(riffle::kBatchRequestTooLong));
}

TEST_CASE("FifoQueue rejects every bad send, receive and handle by name", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.maximum_message_size = 1024});
  auto send = [&](riffle::SendMessageRequest r) { return q->SendMessage(r).status(); };
  auto s = send({.message_body = "b", .message_deduplication_id = "d"});
  CHECK_THAT(s, HasName(riffle::kMissingParameter));
  CHECK(ErrorMessage(s) == "The request must contain the parameter MessageGroupId.");
  s = send({.message_group_id = "g", .message_body = "b"});
  CHECK_THAT(s, HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(ErrorMessage(s), Catch::Contains("ContentBasedDeduplication"));
  CHECK_THAT(send({.message_group_id = "g", .message_deduplication_id = "d"}),
             HasName(riffle::kMissingParameter));
  const std::string long_id(129, 'a');
  s = send({.message_group_id = long_id, .message_body = "b", .message_deduplication_id = "d"});
  CHECK(ErrorMessage(s) == "Value " + long_id +
                               " for parameter MessageGroupId is invalid. Reason: MessageGroupId "
                               "can only include alphanumeric and punctuation characters. 1 to "
                               "128 in length.");
  CHECK(send({.message_group_id = std::string(128, 'a'),
              .message_body = "b",
              .message_deduplication_id = "d"})
            .ok());
  s = send({.message_group_id = "g g", .message_body = "b", .message_deduplication_id = "d"});
  CHECK_THAT(s, HasName(riffle::kInvalidParameterValue));
  CHECK(ErrorMessage(s) ==
        "Value g g for parameter MessageGroupId is invalid. Reason: MessageGroupId can only "
        "include alphanumeric and punctuation characters. 1 to 128 in length.");
  s = send({.message_group_id = "g", .message_body = "b", .message_deduplication_id = "d\xC3\xA9"});
  CHECK_THAT(ErrorMessage(s),
             Catch::EndsWith("Reason: MessageDeduplicationId can only include alphanumeric and "
                             "punctuation characters. 1 to 128 in length."));
  s = send({.message_group_id = "g", .message_body = "b", .message_deduplication_id = ""});
  CHECK_THAT(s, HasName(riffle::kMissingParameter));
  CHECK(send({.message_group_id = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
              .message_body = "b",
              .message_deduplication_id = "Az09!~"})
            .ok());
  s = send({.message_group_id = "g",
            .message_body = std::string(1025, 'x'),
            .message_deduplication_id = "d"});
  CHECK_THAT(s, HasName(riffle::kInvalidParameterValue));
  CHECK(ErrorMessage(s) ==
        "One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes.");
  s = send({.message_group_id = "g",
            .message_body = std::string("a\x01", 2),
            .message_deduplication_id = "d"});
  CHECK_THAT(s, HasName(riffle::kInvalidMessageContents));
  CHECK(ErrorMessage(s) ==
        "Invalid binary character '#x1' was found in the message body, the set of allowed "
        "characters is #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]");
  CHECK_THAT(send({.message_group_id = "g",
                   .message_body = "\xED\xA0\x80",
                   .message_deduplication_id = "d"}),
             HasName(riffle::kInvalidMessageContents));
  CHECK_THAT(
      send({.message_group_id = "g", .message_body = "\xC3", .message_deduplication_id = "d"}),
      HasName(riffle::kInvalidMessageContents));
  CHECK(send({.message_group_id = "g",
              .message_body = "h\xC3\xA9 \xF0\x9F\x98\x80\t\n",
              .message_deduplication_id = "utf8"})
            .ok());
  s = send({.message_group_id = "g",
            .message_body = "b",
            .message_deduplication_id = "d",
            .delay_seconds = 5});
  CHECK_THAT(s, HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(ErrorMessage(s), Catch::Contains("DelaySeconds"));

  auto receive = [&](riffle::ReceiveMessageRequest r) { return q->ReceiveMessage(r).status(); };
  auto r = receive({.max_number_of_messages = 11});
  CHECK_THAT(r, HasName(riffle::kInvalidParameterValue));
  CHECK(ErrorMessage(r) == "MaxNumberOfMessages is 11; it must be between 1 and 10.");
  CHECK_THAT(receive({.max_number_of_messages = 0}), HasName(riffle::kInvalidParameterValue));
  CHECK(ErrorMessage(receive({.wait_time_seconds = 21})) ==
        "WaitTimeSeconds is 21; it must be between 0 and 20.");
  CHECK(ErrorMessage(receive({.visibility_timeout = -1})) ==
        "VisibilityTimeout is -1; it must be between 0 and 43200.");
  CHECK_THAT(receive({.receive_request_attempt_id = "with space"}),
             HasName(riffle::kInvalidParameterValue));

  for (std::string_view handle : {std::string_view(""), std::string_view("nonsense"),
                                  std::string_view("ffffffffffffffff0000000000000001")}) {
    CHECK_THAT(q->DeleteMessage(handle), HasName(riffle::kReceiptHandleIsInvalid));
    CHECK_THAT(q->ChangeMessageVisibility(handle, 5), HasName(riffle::kReceiptHandleIsInvalid));
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
      CHECK_THAT(fresh->DeleteMessage(handle), HasName(riffle::kReceiptHandleIsInvalid));
    }
  }
  REQUIRE(fresh->DeleteMessage(mine[0].receipt_handle).ok());
  // A handle of another queue is not one of ours.
  auto other = MakeQueue(&clock, {.name = "other.fifo"});
  Send(*other, "g", "m");
  auto theirs = Receive(*other);
  CHECK_THAT(q->DeleteMessage(theirs[0].receipt_handle), HasName(riffle::kReceiptHandleIsInvalid));
  CHECK(ErrorMessage(q->DeleteMessage(theirs[0].receipt_handle)) ==
        "The input receipt handle \"" + theirs[0].receipt_handle +
            "\" is not a valid receipt handle.");
  REQUIRE(other->DeleteMessage(theirs[0].receipt_handle).ok());
  // Used once, the handle has expired: a second delete deletes nothing.
  CHECK_THAT(other->DeleteMessage(theirs[0].receipt_handle),
             HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(other->ChangeMessageVisibility(theirs[0].receipt_handle, 5),
             HasName(riffle::kInvalidParameterValue));
  // A handle of this queue that no receive made is not one.
  std::string forged = theirs[0].receipt_handle;
  forged[31] = forged[31] == '9' ? 'a' : '9';
  CHECK_THAT(other->DeleteMessage(forged), HasName(riffle::kReceiptHandleIsInvalid));
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
    return q
        ->SendMessage({.message_group_id = "g",
                       .message_body = "b",
                       .message_deduplication_id = "e",
                       .message_attributes = {{name, v}}})
        .status();
  };
  CHECK_THAT(bad("AWS.x", {.data_type = "String", .string_value = "v"}),
             HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(bad("a..b", {.data_type = "String", .string_value = "v"}),
             HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(bad("ok", {.data_type = "Text", .string_value = "v"}),
             HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(bad("ok", {.data_type = "String", .string_value = ""}),
             HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(bad("ok", {.data_type = "Number", .string_value = "12a"}),
             HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(bad("ok", {.data_type = "String", .string_value = "\x02"}),
             HasName(riffle::kInvalidParameterValue));
  CHECK(bad("ok", {.data_type = "Text", .string_value = "v"}).message() ==
        "The type of message (user) attribute 'ok' is invalid. You must use only the following "
        "supported type prefixes: Binary, Number, String.");
  CHECK(bad("ok", {.data_type = "Number", .string_value = "12a"}).message() ==
        "Can't cast the value of message (user) attribute 'ok' to a number.");
  riffle::MessageAttributes eleven;
  for (int i = 0; i < 11; ++i) {
    eleven[fmt::format("a{}", i)] = {.data_type = "String", .string_value = "v"};
  }
  const absl::Status too_many = q->SendMessage({.message_group_id = "g",
                                                .message_body = "b",
                                                .message_deduplication_id = "f",
                                                .message_attributes = eleven})
                                    .status();
  CHECK_THAT(too_many, HasName(riffle::kInvalidParameterValue));
  CHECK(too_many.message() ==
        "Number of message attributes [11] exceeds the allowed maximum [10].");
}

// Sends one message with one attribute, each under a deduplication id of its own.
struct AttributeSender {
  riffle::FifoQueue& queue;
  int sent = 0;
  absl::Status operator()(std::string name, riffle::MessageAttributeValue value) {
    return queue
        .SendMessage({.message_group_id = "g",
                      .message_body = "b",
                      .message_deduplication_id = std::to_string(sent++),
                      .message_attributes = {{std::move(name), std::move(value)}}})
        .status();
  }
};

TEST_CASE("FifoQueue takes Number attributes of 38 digits within 10^-128..10^126", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  AttributeSender sender{*q};
  auto send = [&](std::string value) {
    return sender("n", {.data_type = "Number", .string_value = std::move(value)});
  };
  const std::string digits38(38, '7');
  for (const std::string& ok :
       {std::string("0"), std::string("-0.000"), digits38, "-" + digits38 + "e10",
        "0.000" + digits38,
        // Leading and trailing zeros are not significant.
        "000" + digits38 + "000", "0." + digits38 + "0000", std::string("1e-128"),
        std::string("9.99e125"), std::string("1E+125"), std::string(".5"), std::string("5.")}) {
    CHECK(send(ok).ok());
  }
  for (const std::string& bad :
       {digits38 + "1", "1." + digits38, std::string("1e126"), std::string("12e125"),
        std::string("1e-129"), std::string("0.01e-127"), std::string("1e99999999999999999999")}) {
    CAPTURE(bad);
    const absl::Status s = send(bad);
    CHECK_THAT(s, HasName(riffle::kInvalidParameterValue));
    CHECK(s.message().find("attribute 'n' of type Number") != std::string_view::npos);
  }
  for (const std::string& nan : {std::string("."), std::string("e5"), std::string("1e"),
                                 std::string("--1"), std::string("1.2.3"), std::string(" 1")}) {
    CAPTURE(nan);
    CHECK_THAT(send(nan), HasName(riffle::kInvalidParameterValue));
  }
}

TEST_CASE("FifoQueue takes attribute names with Latin letters beyond ASCII", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  AttributeSender sender{*q};
  auto send = [&](std::string name) {
    return sender(std::move(name), {.data_type = "String", .string_value = "v"});
  };
  CHECK(send("Gr\xC3\xB6\xC3\x9F"
             "e")
            .ok());  // Größe: U+00F6, U+00DF
  CHECK(send("\xC5\x81\xC3\xB3"
             "d\xC5\xBA")
            .ok());                                            // Łódź: U+0141, U+00F3, U+017A
  for (const std::string& bad : {std::string("\xC2\xB5s"),     // U+00B5, below the range
                                 std::string("\xC6\x80"),      // U+0180, above it
                                 std::string("\xE2\x82\xAC"),  // U+20AC
                                 std::string("a\xC3"),         // truncated
                                 std::string("a b")}) {
    CAPTURE(bad);
    CHECK_THAT(send(bad), HasName(riffle::kInvalidParameterValue));
  }
  // 256 characters, not bytes.
  std::string e_acute_256;
  for (int i = 0; i < 256; ++i) e_acute_256 += "\xC3\xA9";  // U+00E9
  CHECK(send(e_acute_256).ok());
  CHECK_THAT(send(e_acute_256 + "e"), HasName(riffle::kInvalidParameterValue));
  CHECK(send(std::string(256, 'a')).ok());
  CHECK_THAT(send(std::string(257, 'a')), HasName(riffle::kInvalidParameterValue));
}

TEST_CASE("FifoQueue::Create validates its options by name", "[fifo]") {
  auto create = [](FifoQueueOptions o) { return FifoQueue::Create(std::move(o)).status(); };
  CHECK_THAT(create({}), HasName(riffle::kMissingParameter));
  CHECK_THAT(create({.name = "plain"}), HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(create({.name = "bad name.fifo"}), HasName(riffle::kInvalidParameterValue));
  CHECK_THAT(create({.name = std::string(76, 'a') + ".fifo"}),
             HasName(riffle::kInvalidParameterValue));
  CHECK(create({.name = std::string(75, 'a') + ".fifo"}).ok());
  auto vt = create({.name = "q.fifo", .visibility_timeout_seconds = 43'201});
  CHECK_THAT(vt, HasName(riffle::kInvalidAttributeValue));
  CHECK(ErrorMessage(vt) == "VisibilityTimeout is 43201; it must be between 0 and 43200.");
  CHECK_THAT(create({.name = "q.fifo", .message_retention_period_seconds = 59}),
             HasName(riffle::kInvalidAttributeValue));
  CHECK_THAT(create({.name = "q.fifo", .message_retention_period_seconds = 1'209'601}),
             HasName(riffle::kInvalidAttributeValue));
  CHECK_THAT(create({.name = "q.fifo", .maximum_message_size = 1'048'577}),
             HasName(riffle::kInvalidAttributeValue));
  CHECK_THAT(create({.name = "q.fifo", .delay_seconds = 901}),
             HasName(riffle::kInvalidAttributeValue));
  CHECK_THAT(create({.name = "q.fifo", .redrive_policy = riffle::RedrivePolicy{}}),
             HasName(riffle::kInvalidAttributeValue));
  auto dlq = FifoQueue::Create({.name = "d.fifo"}).value();
  CHECK_THAT(create({.name = "q.fifo", .redrive_policy = riffle::RedrivePolicy{dlq.get(), 1001}}),
             HasName(riffle::kInvalidAttributeValue));
  CHECK(create({.name = "q.fifo", .redrive_policy = riffle::RedrivePolicy{dlq.get(), 1000}}).ok());
  // A scope outside the enum was read as kQueue.
  auto scope =
      create({.name = "q.fifo", .deduplication_scope = static_cast<riffle::DeduplicationScope>(5)});
  CHECK_THAT(scope, HasName(riffle::kInvalidAttributeValue));
  CHECK(ErrorMessage(scope) ==
        "DeduplicationScope is 5; it must be DeduplicationScope::kQueue or "
        "DeduplicationScope::kMessageGroup.");
}

TEST_CASE("FifoQueue on a clock at the far future or past keeps its rules", "[fifo]") {
  // The 5-minute deduplication window (and every deadline) was added to the clock's
  // nanoseconds: ManualClock at InfiniteFuture overflowed int64 at the first send.
  ManualClock clock;
  auto q = MakeQueue(&clock, {.visibility_timeout_seconds = 43'200,
                              .message_retention_period_seconds = 1'209'600});
  clock.Set(absl::InfiniteFuture());
  const riffle::SendMessageResult first = Send(*q, "g", "a", "1");
  CHECK(Send(*q, "g", "a", "1").message_id == first.message_id);  // deduplicated
  auto received = q->ReceiveMessage({.receive_request_attempt_id = "attempt"});
  REQUIRE(received.ok());
  REQUIRE(Bodies(received->messages) == Strings{"a"});
  // The queue's time stops 30 days before the clock's last instant (about 2262).
  CHECK(received->messages[0].sent_timestamp ==
        absl::ToUnixMillis(absl::FromUnixNanos(INT64_MAX)) - int64_t{30} * 86'400'000);
  CHECK(Receive(*q).empty());  // in flight for 12 hours
  const std::string handle = received->messages[0].receipt_handle;
  CHECK(q->ChangeMessageVisibility(handle, 43'200).ok());
  CHECK(q->DeleteMessage(handle).ok());
  // A clock set back does not move the queue's time back.
  clock.Set(absl::InfinitePast());
  Send(*q, "g", "b", "2");
  CHECK(Bodies(Receive(*q)) == Strings{"b"});
  // From the far past, a new queue starts at the epoch.
  auto past = MakeQueue(&clock, {.name = "past.fifo", .delay_seconds = 900});
  Send(*past, "g", "c", "3");
  CHECK(Receive(*past).empty());
  clock.Set(absl::FromUnixSeconds(900));
  CHECK(Bodies(Receive(*past)) == Strings{"c"});
}
