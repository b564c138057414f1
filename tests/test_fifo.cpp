#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "fifo_test_helpers.h"
#include "fmt/format.h"
#include "riffle/fifo_queue.h"
#include "support/alloc_counter.h"

using namespace riffle_test::fifo;  // NOLINT: test helpers

TEST_CASE("FifoQueue keeps order within a group and fills a receive from one group first",
          "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  Send(*q, "a", "a1");
  Send(*q, "b", "b1");
  Send(*q, "a", "a2");
  Send(*q, "b", "b2");
  Send(*q, "a", "a3");
  auto first = Receive(*q, 4);
  CHECK(Bodies(first) == Strings{"a1", "a2", "a3", "b1"});
  // Group a is in flight, and b1 is: nothing more from either.
  CHECK(Receive(*q).empty());
  auto attrs = q->GetQueueAttributes();
  CHECK(attrs.approximate_number_of_messages == 1);
  CHECK(attrs.approximate_number_of_messages_not_visible == 4);
  // Deleting all of a's messages does not free b; deleting b1 does.
  for (int i = 0; i < 3; ++i) REQUIRE(q->DeleteMessage(first[i].receipt_handle).ok());
  CHECK(Receive(*q).empty());
  REQUIRE(q->DeleteMessage(first[3].receipt_handle).ok());
  CHECK(Bodies(Receive(*q)) == Strings{"b2"});
}

TEST_CASE("FifoQueue reports message ids, sequence numbers and system attributes", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  auto r1 = Send(*q, "g", "one");
  clock.Advance(absl::Milliseconds(5));
  auto r2 = Send(*q, "g", "two");
  CHECK(r1.message_id.size() == 36);
  CHECK(r1.message_id[14] == '4');
  CHECK(r1.message_id != r2.message_id);
  CHECK(r1.sequence_number.size() == 20);
  CHECK(r1.sequence_number < r2.sequence_number);
  clock.Advance(absl::Seconds(1));
  auto m = Receive(*q, 1);
  REQUIRE(m.size() == 1);
  CHECK(m[0].message_id == r1.message_id);
  CHECK(m[0].sequence_number == r1.sequence_number);
  CHECK(m[0].message_group_id == "g");
  CHECK(m[0].message_deduplication_id == "g-one");
  CHECK(m[0].approximate_receive_count == 1);
  CHECK(m[0].sent_timestamp == absl::ToUnixMillis(clock.Now()) - 1005);
  CHECK(m[0].approximate_first_receive_timestamp == absl::ToUnixMillis(clock.Now()));
}

TEST_CASE("FifoQueue redelivers after the visibility timeout with a new receipt handle", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  Send(*q, "g", "m1");
  Send(*q, "g", "m2");
  auto first = Receive(*q, 1);
  REQUIRE(Bodies(first) == Strings{"m1"});
  clock.Advance(absl::Seconds(29));
  CHECK(Receive(*q).empty());
  clock.Advance(absl::Seconds(1));
  auto second = Receive(*q, 1);
  REQUIRE(Bodies(second) == Strings{"m1"});
  CHECK(second[0].approximate_receive_count == 2);
  CHECK(second[0].receipt_handle != first[0].receipt_handle);
  CHECK(second[0].approximate_first_receive_timestamp ==
        first[0].approximate_first_receive_timestamp);
  // The first receive's handle expired with its visibility timeout (SQS FIFO's words).
  auto stale = q->DeleteMessage(first[0].receipt_handle);
  CHECK_THAT(stale, HasName(riffle::kInvalidParameterValue));
  CHECK(ErrorMessage(stale) == "Value " + first[0].receipt_handle +
                                   " for parameter ReceiptHandle is invalid. Reason: The receipt "
                                   "handle has expired.");
  REQUIRE(q->DeleteMessage(second[0].receipt_handle).ok());
  CHECK(Bodies(Receive(*q)) == Strings{"m2"});
}

TEST_CASE("FifoQueue puts messages back in order when visibilities end out of order", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  for (const char* b : {"m1", "m2", "m3", "m4"}) Send(*q, "g", b);
  auto got = Receive(*q, 3);
  REQUIRE(Bodies(got) == Strings{"m1", "m2", "m3"});
  REQUIRE(q->ChangeMessageVisibility(got[2].receipt_handle, 0).ok());
  REQUIRE(q->ChangeMessageVisibility(got[1].receipt_handle, 0).ok());
  CHECK(Receive(*q).empty());  // m1 still in flight.
  REQUIRE(q->ChangeMessageVisibility(got[0].receipt_handle, 0).ok());
  CHECK(Bodies(Receive(*q)) == Strings{"m1", "m2", "m3", "m4"});
}

// As SQS does (recorded against AWS): a message whose visibility ends while later messages
// of its group are still in flight is receivable again at once, alone; the later ones wait
// while an earlier message of the group is in flight.
TEST_CASE("FifoQueue returns a message visible again before later ones of its group are done",
          "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  for (const char* b : {"m1", "m2", "m3"}) Send(*q, "g", b);
  Send(*q, "h", "h1");
  auto got = Receive(*q, 3);
  REQUIRE(Bodies(got) == Strings{"m1", "m2", "m3"});
  REQUIRE(q->ChangeMessageVisibility(got[0].receipt_handle, 0).ok());
  auto again = Receive(*q, 10);
  // m1 alone from g (m2 and m3 are in flight), and h1; which group comes first is the queue's.
  REQUIRE(again.size() == 2);
  if (again[0].message_group_id != "g") std::swap(again[0], again[1]);
  CHECK(Bodies(again) == Strings{"m1", "h1"});
  CHECK(again[0].approximate_receive_count == 2);
  // m3 visible again while m1 and m2 are in flight: it waits behind them.
  REQUIRE(q->ChangeMessageVisibility(got[2].receipt_handle, 0).ok());
  CHECK(Receive(*q, 10).empty());
  auto attrs = q->GetQueueAttributes();
  CHECK(attrs.approximate_number_of_messages == 1);
  CHECK(attrs.approximate_number_of_messages_not_visible == 3);
  REQUIRE(q->DeleteMessage(again[0].receipt_handle).ok());
  CHECK(Receive(*q, 10).empty());  // m2 still in flight
  REQUIRE(q->DeleteMessage(got[1].receipt_handle).ok());
  CHECK(Bodies(Receive(*q, 10)) == Strings{"m3"});
}

TEST_CASE("FifoQueue ChangeMessageVisibility extends, limits and rejects", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  Send(*q, "g", "m1");
  auto got = Receive(*q, 1);
  REQUIRE(q->ChangeMessageVisibility(got[0].receipt_handle, 100).ok());
  clock.Advance(absl::Seconds(99));
  CHECK(Receive(*q).empty());
  clock.Advance(absl::Seconds(1));
  CHECK(Receive(*q, 1, 43'200).size() == 1);
  auto again = Receive(*q);
  CHECK(again.empty());
  clock.Advance(absl::Hours(1));
  // The first receive's handle no longer names a receive in flight.
  auto superseded = q->ChangeMessageVisibility(got[0].receipt_handle, 10);
  CHECK_THAT(superseded, HasName(riffle::kInvalidParameterValue));
  CHECK(ErrorMessage(superseded) == "Value " + got[0].receipt_handle +
                                        " for parameter ReceiptHandle is invalid. Reason: Message "
                                        "does not exist or is not available for visibility timeout "
                                        "change.");
}

TEST_CASE("FifoQueue visibility changes past 12 hours and of visible messages are refused",
          "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  Send(*q, "g", "m1");
  auto got = Receive(*q, 1, 7200);
  clock.Advance(absl::Hours(1));
  auto too_long = q->ChangeMessageVisibility(got[0].receipt_handle, 43'200);
  CHECK_THAT(too_long, HasName(riffle::kInvalidParameterValue));
  CHECK(ErrorMessage(too_long) ==
        "Value 43200 for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout "
        "for the message is beyond the limit [43200 seconds]");
  auto out_of_range = q->ChangeMessageVisibility(got[0].receipt_handle, 43'201);
  CHECK(ErrorMessage(out_of_range) ==
        "VisibilityTimeout is 43201; it must be between 0 and 43200.");
  REQUIRE(q->ChangeMessageVisibility(got[0].receipt_handle, 0).ok());
  auto not_inflight = q->ChangeMessageVisibility(got[0].receipt_handle, 10);
  CHECK_THAT(not_inflight, HasName(riffle::kMessageNotInflight));
  // Its visibility ended, so the handle has expired: it deletes nothing (SQS FIFO).
  CHECK_THAT(q->DeleteMessage(got[0].receipt_handle), HasName(riffle::kInvalidParameterValue));
  CHECK(q->GetQueueAttributes().approximate_number_of_messages == 1);
}

TEST_CASE("FifoQueue deduplicates for 5 minutes: 4:59 is a duplicate, 5:01 is new", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  auto original = Send(*q, "g", "body", "id-1");
  clock.Advance(absl::Seconds(4 * 60 + 59));
  auto dup = Send(*q, "g", "other body", "id-1");
  CHECK(dup.message_id == original.message_id);
  CHECK(dup.sequence_number == original.sequence_number);
  CHECK(q->GetQueueAttributes().approximate_number_of_messages == 1);
  clock.Advance(absl::Seconds(2));  // 5:01 after the original.
  auto fresh = Send(*q, "g", "body again", "id-1");
  CHECK(fresh.message_id != original.message_id);
  CHECK(fresh.sequence_number > original.sequence_number);
  CHECK(Bodies(Receive(*q)) == Strings{"body", "body again"});
}

TEST_CASE("FifoQueue deduplicates after the message was deleted", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  Send(*q, "g", "x", "dedup");
  auto m = Receive(*q);
  REQUIRE(q->DeleteMessage(m[0].receipt_handle).ok());
  Send(*q, "g", "x", "dedup");
  CHECK(Receive(*q).empty());
}

TEST_CASE("FifoQueue content-based deduplication hashes the body with SHA-256", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.content_based_deduplication = true});
  auto a = q->SendMessage({.message_group_id = "g", .message_body = "abc"});
  REQUIRE(a.ok());
  auto b = q->SendMessage({.message_group_id = "h", .message_body = "abc"});
  REQUIRE(b.ok());
  CHECK(b->message_id == a->message_id);  // Queue scope: another group, same body.
  auto c = q->SendMessage({.message_group_id = "g", .message_body = "abd"});
  REQUIRE(c.ok());
  CHECK(c->message_id != a->message_id);
  // An explicit id wins over the content.
  auto d = q->SendMessage(
      {.message_group_id = "g", .message_body = "abc", .message_deduplication_id = "explicit"});
  REQUIRE(d.ok());
  CHECK(d->message_id != a->message_id);
  auto got = Receive(*q);
  REQUIRE(Bodies(got) == Strings{"abc", "abd", "abc"});
  CHECK(got[0].message_deduplication_id ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(got[2].message_deduplication_id == "explicit");
}

TEST_CASE("FifoQueue message-group deduplication scope", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.deduplication_scope = riffle::DeduplicationScope::kMessageGroup});
  auto a = Send(*q, "g1", "x", "same");
  auto b = Send(*q, "g2", "x", "same");
  auto c = Send(*q, "g1", "y", "same");
  CHECK(a.message_id != b.message_id);
  CHECK(c.message_id == a.message_id);
  CHECK(q->GetQueueAttributes().approximate_number_of_messages == 2);
}

TEST_CASE("FifoQueue moves a message to the dead-letter queue after maxReceiveCount receives",
          "[fifo]") {
  ManualClock clock;
  auto dlq = MakeQueue(&clock, {.name = "dead.fifo"});
  auto q = MakeQueue(&clock, {.redrive_policy = riffle::RedrivePolicy{dlq.get(), 2}});
  auto sent = Send(*q, "g", "poison");
  Send(*q, "g", "next");
  int64_t first_receive_ms = 0, sent_ms = 0;
  for (int i = 1; i <= 2; ++i) {
    auto got = Receive(*q, 1);
    REQUIRE(Bodies(got) == Strings{"poison"});
    CHECK(got[0].approximate_receive_count == i);
    if (i == 1) first_receive_ms = got[0].approximate_first_receive_timestamp;
    sent_ms = got[0].sent_timestamp;
    clock.Advance(absl::Seconds(30));
  }
  // The third receive moves it and goes on with the group.
  auto got = Receive(*q, 1);
  CHECK(Bodies(got) == Strings{"next"});
  auto dead = Receive(*dlq);
  REQUIRE(Bodies(dead) == Strings{"poison"});
  CHECK(dead[0].message_group_id == "g");
  CHECK(dead[0].message_id == sent.message_id);
  // As SQS: the count and the first receive time carry over to the dead-letter queue.
  CHECK(dead[0].approximate_receive_count == 3);
  CHECK(dead[0].approximate_first_receive_timestamp == first_receive_ms);
  CHECK(dead[0].sent_timestamp == sent_ms);
}

TEST_CASE("FifoQueue ReceiveRequestAttemptId retry returns the same messages and handles",
          "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  for (const char* b : {"a1", "a2"}) Send(*q, "a", b);
  Send(*q, "b", "b1");
  riffle::ReceiveMessageRequest req{.max_number_of_messages = 2,
                                    .receive_request_attempt_id = "attempt-1"};
  auto first = q->ReceiveMessage(req);
  REQUIRE(first.ok());
  REQUIRE(Bodies(first->messages) == Strings{"a1", "a2"});
  clock.Advance(absl::Seconds(20));
  auto retry = q->ReceiveMessage(req);
  REQUIRE(retry.ok());
  REQUIRE(Bodies(retry->messages) == Strings{"a1", "a2"});
  CHECK(retry->messages[0].receipt_handle == first->messages[0].receipt_handle);
  CHECK(retry->messages[1].receipt_handle == first->messages[1].receipt_handle);
  // The retry restarted the visibility timeout.
  clock.Advance(absl::Seconds(20));
  CHECK(Bodies(Receive(*q)) == Strings{"b1"});
  // Once the messages are deleted, the same attempt id receives afresh.
  for (auto& m : retry->messages) REQUIRE(q->DeleteMessage(m.receipt_handle).ok());
  Send(*q, "c", "c1");
  auto later = q->ReceiveMessage(req);
  REQUIRE(later.ok());
  CHECK(Bodies(later->messages) == Strings{"c1"});
}

TEST_CASE("FifoQueue ReceiveRequestAttemptId retry keeps within 12 hours of the receive",
          "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  Send(*q, "a", "a1");
  Send(*q, "b", "b1");
  riffle::ReceiveMessageRequest req{.max_number_of_messages = 1,
                                    .visibility_timeout = 43200,
                                    .receive_request_attempt_id = "attempt-1"};
  auto first = q->ReceiveMessage(req);
  REQUIRE(first.ok());
  REQUIRE(Bodies(first->messages) == Strings{"a1"});
  clock.Advance(absl::Minutes(4));
  auto retry = q->ReceiveMessage(req);  // restarts the timeout, at most to receive + 12 h
  REQUIRE(retry.ok());
  REQUIRE(Bodies(retry->messages) == Strings{"a1"});
  clock.Advance(absl::Hours(12) - absl::Minutes(4) - absl::Seconds(1));
  CHECK(Bodies(Receive(*q)) == Strings{"b1"});  // a1 still in flight
  clock.Advance(absl::Seconds(1));
  auto again = Receive(*q);  // 12 hours after the receive: visible again, with a new handle
  REQUIRE(Bodies(again) == Strings{"a1"});
  CHECK(again[0].receipt_handle != first->messages[0].receipt_handle);
}

TEST_CASE("FifoQueue ReceiveRequestAttemptId retry after ChangeMessageVisibility receives afresh",
          "[fifo][regression]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  for (const char* b : {"a1", "a2"}) Send(*q, "a", b);
  Send(*q, "b", "b1");
  Send(*q, "c", "c1");
  const riffle::ReceiveMessageRequest req{.max_number_of_messages = 2,
                                          .receive_request_attempt_id = "attempt-1"};
  std::vector<Message> first;
  REQUIRE(q->ReceiveMessage(req, first).ok());
  REQUIRE(Bodies(first) == Strings{"a1", "a2"});
  REQUIRE(q->ChangeMessageVisibility(first[0].receipt_handle, 60).ok());
  clock.Advance(absl::Seconds(20));
  // The change ended the attempt: the retry is a fresh receive. Group a is in flight, so it
  // takes the next groups, and a1 and a2 keep their handles and visibilities.
  std::vector<Message> retry;
  REQUIRE(q->ReceiveMessage(req, retry).ok());
  CHECK(Bodies(retry) == Strings{"b1", "c1"});
  for (auto& m : retry) REQUIRE(q->DeleteMessage(m.receipt_handle).ok());
  // a2's 30 s end, but a1 (60 s from its change) still holds the group back.
  clock.Advance(absl::Seconds(10));
  CHECK(Receive(*q).empty());
  clock.Advance(absl::Seconds(30));
  auto again = Receive(*q);
  REQUIRE(Bodies(again) == Strings{"a1", "a2"});
  CHECK(again[0].approximate_receive_count == 2);
  CHECK(again[0].receipt_handle != first[0].receipt_handle);

  // The same through ChangeMessageVisibilityBatch, on the attempt's second message.
  for (auto& m : again) REQUIRE(q->DeleteMessage(m.receipt_handle).ok());
  Send(*q, "d", "d1");
  Send(*q, "e", "e1");
  const riffle::ReceiveMessageRequest req2{.max_number_of_messages = 1,
                                           .receive_request_attempt_id = "attempt-2"};
  std::vector<Message> d;
  REQUIRE(q->ReceiveMessage(req2, d).ok());
  REQUIRE(Bodies(d) == Strings{"d1"});
  auto changed = q->ChangeMessageVisibilityBatch(VisibilityEntries{
      {.id = "x", .receipt_handle = d[0].receipt_handle, .visibility_timeout = 60}});
  REQUIRE(changed.ok());
  REQUIRE(changed->successful == Strings{"x"});
  std::vector<Message> e;
  REQUIRE(q->ReceiveMessage(req2, e).ok());
  CHECK(Bodies(e) == Strings{"e1"});
}

TEST_CASE("FifoQueue ReceiveRequestAttemptId retry after the visibility timeout receives afresh",
          "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  for (const char* b : {"a1", "a2"}) Send(*q, "a", b);
  const riffle::ReceiveMessageRequest req{.max_number_of_messages = 10,
                                          .receive_request_attempt_id = "attempt-1"};
  std::vector<Message> first, retry;
  REQUIRE(q->ReceiveMessage(req, first).ok());
  REQUIRE(Bodies(first) == Strings{"a1", "a2"});
  // A failed change modifies nothing: the attempt still holds.
  CHECK_THAT(q->ChangeMessageVisibility(first[0].receipt_handle, 43'201),
             HasName(riffle::kInvalidParameterValue));
  REQUIRE(q->ReceiveMessage(req, retry).ok());
  CHECK(retry[0].receipt_handle == first[0].receipt_handle);
  // Once their visibility ends the messages may go to anyone: the retry receives them anew,
  // with new handles.
  clock.Advance(absl::Seconds(30));
  REQUIRE(q->ReceiveMessage(req, retry).ok());
  REQUIRE(Bodies(retry) == Strings{"a1", "a2"});
  CHECK(retry[0].approximate_receive_count == 2);
  CHECK(retry[0].receipt_handle != first[0].receipt_handle);
  CHECK_THAT(q->DeleteMessage(first[0].receipt_handle), HasName(riffle::kInvalidParameterValue));
  // The fresh receive is the attempt now: a retry returns its handles.
  std::vector<Message> third;
  REQUIRE(q->ReceiveMessage(req, third).ok());
  REQUIRE(third.size() == 2);
  CHECK(third[1].receipt_handle == retry[1].receipt_handle);
}

TEST_CASE("FifoQueue retention removes old messages, in flight or not", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.message_retention_period_seconds = 60});
  Send(*q, "b", "inflight");
  Send(*q, "a", "old");
  clock.Advance(absl::Seconds(30));
  Send(*q, "a", "young");
  auto in_flight = Receive(*q, 1, 300);
  REQUIRE(Bodies(in_flight) == Strings{"inflight"});
  clock.Advance(absl::Seconds(29));
  CHECK(q->GetQueueAttributes().approximate_number_of_messages == 2);
  clock.Advance(absl::Seconds(1));
  auto attrs = q->GetQueueAttributes();
  CHECK(attrs.approximate_number_of_messages == 1);
  CHECK(attrs.approximate_number_of_messages_not_visible == 0);
  CHECK_THAT(q->DeleteMessage(in_flight[0].receipt_handle),
             HasName(riffle::kInvalidParameterValue));  // gone: the handle has expired
  CHECK(Bodies(Receive(*q)) == Strings{"young"});
  clock.Advance(absl::Seconds(30));
  attrs = q->GetQueueAttributes();
  CHECK(attrs.approximate_number_of_messages == 0);
  CHECK(attrs.approximate_number_of_messages_not_visible == 0);
}

TEST_CASE("FifoQueue queue delay holds messages and counts them as delayed", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.delay_seconds = 10});
  Send(*q, "g", "m1");
  clock.Advance(absl::Seconds(5));
  Send(*q, "g", "m2");
  CHECK(q->GetQueueAttributes().approximate_number_of_messages_delayed == 2);
  CHECK(Receive(*q).empty());
  clock.Advance(absl::Seconds(5));
  auto attrs = q->GetQueueAttributes();
  CHECK(attrs.approximate_number_of_messages == 1);
  CHECK(attrs.approximate_number_of_messages_delayed == 1);
  clock.Advance(absl::Seconds(5));
  CHECK(Bodies(Receive(*q)) == Strings{"m1", "m2"});
}

TEST_CASE("FifoQueue long polling waits for a send, and for the wait to end", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  std::vector<Message> got;
  std::thread receiver([&] {
    // No Catch2 assertion off the main thread: Catch2 v2 is not thread-safe.
    auto r = q->ReceiveMessage({.max_number_of_messages = 10, .wait_time_seconds = 20});
    if (r.ok()) got = r->messages;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Send(*q, "g", "hello");
  receiver.join();
  CHECK(Bodies(got) == Strings{"hello"});
  // Deleted, so that it cannot become visible again while the clock moves below (a waiter
  // thread that starts late would receive it).
  REQUIRE(got.size() == 1);
  REQUIRE(q->DeleteMessage(got[0].receipt_handle).ok());

  std::atomic<bool> done{false};
  bool empty = false;
  const absl::Time start = clock.Now();
  std::thread waiter([&] {
    auto r = q->ReceiveMessage({.wait_time_seconds = 20});
    empty = r.ok() && r->messages.empty();
    done = true;
  });
  // Only clock moves end the wait; move it until the waiter notices.
  while (!done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    clock.Advance(absl::Seconds(5));
  }
  waiter.join();
  CHECK(empty);
  CHECK(clock.Now() - start >= absl::Seconds(20));
}

TEST_CASE("FifoQueue long polling wakes when a visibility timeout ends", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  Send(*q, "g", "m");
  REQUIRE(Receive(*q).size() == 1);
  std::vector<Message> got;
  std::thread waiter([&] {
    auto r = q->ReceiveMessage({.wait_time_seconds = 20});
    if (r.ok()) got = r->messages;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  clock.Advance(absl::Seconds(30));  // Before or during the wait: either way it returns m.
  waiter.join();
  CHECK(Bodies(got) == Strings{"m"});
}

TEST_CASE("FifoQueue long polling on the system clock ends on time", "[fifo]") {
  auto q = FifoQueue::Create({.name = "sys.fifo"}).value();
  const absl::Time start = absl::Now();
  auto r = q->ReceiveMessage({.wait_time_seconds = 1});
  REQUIRE(r.ok());
  CHECK(r->messages.empty());
  CHECK(absl::Now() - start >= absl::Seconds(1));
  CHECK(absl::Now() - start < absl::Seconds(3));
}

TEST_CASE("FifoQueue batch operations report per-entry results", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  auto sent = q->SendMessageBatch(SendEntries{
      {.id = "ok1",
       .message_group_id = "g",
       .message_body = "m1",
       .message_deduplication_id = "d1"},
      {.id = "bad", .message_group_id = "g", .message_body = "m2"},
      {.id = "ok2",
       .message_group_id = "g",
       .message_body = "m3",
       .message_deduplication_id = "d3"},
  });
  REQUIRE(sent.ok());
  REQUIRE(sent->successful.size() == 2);
  CHECK(sent->successful[0].id == "ok1");
  CHECK(sent->successful[1].id == "ok2");
  CHECK(sent->successful[0].sequence_number < sent->successful[1].sequence_number);
  REQUIRE(sent->failed.size() == 1);
  CHECK(sent->failed[0].id == "bad");
  CHECK(sent->failed[0].code == riffle::kInvalidParameterValue);
  CHECK(sent->failed[0].sender_fault);
  auto got = Receive(*q);
  REQUIRE(Bodies(got) == Strings{"m1", "m3"});
  auto changed = q->ChangeMessageVisibilityBatch(VisibilityEntries{
      {.id = "a", .receipt_handle = got[1].receipt_handle, .visibility_timeout = 60},
      {.id = "b", .receipt_handle = "nonsense", .visibility_timeout = 60}});
  REQUIRE(changed.ok());
  CHECK(changed->successful == Strings{"a"});
  REQUIRE(changed->failed.size() == 1);
  CHECK(changed->failed[0].code == riffle::kReceiptHandleIsInvalid);
  auto deleted =
      q->DeleteMessageBatch(DeleteEntries{{.id = "x", .receipt_handle = got[0].receipt_handle},
                                          {.id = "y", .receipt_handle = got[1].receipt_handle},
                                          {.id = "z", .receipt_handle = got[1].receipt_handle}});
  REQUIRE(deleted.ok());
  CHECK(deleted->successful == Strings{"x", "y"});
  REQUIRE(deleted->failed.size() == 1);
  CHECK(deleted->failed[0].id == "z");  // y deleted the message: its handle has expired
  CHECK(deleted->failed[0].code == riffle::kReceiptHandleIsInvalid);
  CHECK(deleted->failed[0].message == "The receipt handle has expired");
  CHECK(deleted->failed[0].sender_fault);
}

TEST_CASE("FifoQueue forgets idle groups without losing messages", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  for (int i = 0; i < 3000; ++i) {
    const std::string g = fmt::format("group-{}", i);
    Send(*q, g, "m");
    auto got = Receive(*q);
    REQUIRE(got.size() == 1);
    REQUIRE(got[0].message_group_id == g);
    REQUIRE(q->DeleteMessage(got[0].receipt_handle).ok());
  }
  Send(*q, "group-1", "again", "fresh");
  CHECK(Bodies(Receive(*q)) == Strings{"again"});
}

TEST_CASE("FifoQueue send, receive and delete allocate nothing in steady state", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock);
  std::vector<Message> messages;
  riffle::SendMessageResult result;
  char body[100];
  std::fill(std::begin(body), std::end(body), 'x');
  const char* groups[] = {"g0", "g1", "g2", "g3"};
  auto round = [&](int i) {
    char dedup[16];
    const int len = fmt::format_to_n(dedup, sizeof(dedup), "{}", i).size;
    REQUIRE(q->SendMessage({.message_group_id = groups[i % 4],
                            .message_body = std::string_view(body, sizeof(body)),
                            .message_deduplication_id = std::string_view(dedup, len)},
                           result)
                .ok());
    REQUIRE(q->ReceiveMessage({.max_number_of_messages = 10}, messages).ok());
    for (auto& m : messages) REQUIRE(q->DeleteMessage(m.receipt_handle).ok());
  };
  // Warm up, then let the deduplication entries expire so the table stops growing.
  for (int i = 0; i < 5000; ++i) round(i);
  clock.Advance(absl::Minutes(6));
  for (int i = 5000; i < 5100; ++i) round(i);
  riffle_test::AllocationCounter counter;
  for (int i = 5100; i < 5200; ++i) round(i);
  CHECK(counter.allocations() == 0);

  // Receives with a ReceiveRequestAttemptId (SDKs send one, a UUID, with every receive):
  // an attempt's id and handles take the storage an ended attempt left (a map node and a
  // copy of the id were allocated per receive).
  std::vector<std::string> attempts;  // built before anything is counted
  for (int i = 0; i < 12500; ++i) attempts.push_back(fmt::format("3f2b8c1e-7a4d-4e5f-{:016}", i));
  auto attempt_round = [&](int i) {
    char dedup[16];
    const int len = fmt::format_to_n(dedup, sizeof(dedup), "a{}", i).size;
    REQUIRE(q->SendMessage({.message_group_id = groups[i % 4],
                            .message_body = std::string_view(body, sizeof(body)),
                            .message_deduplication_id = std::string_view(dedup, len)},
                           result)
                .ok());
    REQUIRE(
        q->ReceiveMessage({.max_number_of_messages = 10, .receive_request_attempt_id = attempts[i]},
                          messages)
            .ok());
    REQUIRE(messages.size() == 1);
    for (auto& m : messages) REQUIRE(q->DeleteMessage(m.receipt_handle).ok());
    clock.Advance(absl::Milliseconds(50));
  };
  for (int i = 0; i < 12000; ++i) attempt_round(i);  // 10 minutes: past the 5-minute window
  riffle_test::AllocationCounter attempts_counter;
  for (int i = 12000; i < 12500; ++i) attempt_round(i);
  CHECK(attempts_counter.allocations() == 0);
}

TEST_CASE("FifoQueue::SetAttributes changes the attributes in force", "[fifo]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.delay_seconds = 10});
  Send(*q, "g", "early");
  clock.Advance(absl::Seconds(4));
  // The queue delay is retroactive for messages still delayed: 10 s becomes 5 s.
  FifoQueueOptions o = q->attributes();
  CHECK(o.delay_seconds == 10);
  CHECK(o.name == "test.fifo");
  o.delay_seconds = 5;
  o.visibility_timeout_seconds = 7;
  o.content_based_deduplication = true;
  REQUIRE(q->SetAttributes(o).ok());
  CHECK(Receive(*q).empty());
  clock.Advance(absl::Seconds(1));
  auto got = Receive(*q);
  REQUIRE(Bodies(got) == Strings{"early"});
  // The new visibility timeout is the default of a receive.
  clock.Advance(absl::Seconds(7));
  CHECK(Bodies(Receive(*q)) == Strings{"early"});
  // Content-based deduplication now lets a send go without an id.
  CHECK(q->SendMessage({.message_group_id = "h", .message_body = "b"}).ok());
  // A shorter retention removes what is older at once.
  o = q->attributes();
  o.message_retention_period_seconds = 60;
  clock.Advance(absl::Seconds(60));
  REQUIRE(q->SetAttributes(o).ok());
  CHECK(q->GetQueueAttributes().approximate_number_of_messages == 0);
  CHECK(q->GetQueueAttributes().approximate_number_of_messages_not_visible == 0);
  // Validation as Create; nothing changes on a refusal.
  o.visibility_timeout_seconds = 43'201;
  CHECK_THAT(q->SetAttributes(o), HasName(riffle::kInvalidAttributeValue));
  CHECK(q->attributes().visibility_timeout_seconds == 7);
}

TEST_CASE("FifoQueue::SetAttributes sets and clears a dead-letter queue, never a loop", "[fifo]") {
  ManualClock clock;
  auto dlq = MakeQueue(&clock, {.name = "dlq.fifo"});
  auto q = MakeQueue(&clock);
  FifoQueueOptions o = q->attributes();
  o.redrive_policy = riffle::RedrivePolicy{dlq.get(), 1};
  REQUIRE(q->SetAttributes(o).ok());
  CHECK(q->attributes().redrive_policy->dead_letter_queue == dlq.get());
  // dlq -> q would close the loop q -> dlq -> q; q -> q too.
  FifoQueueOptions d = dlq->attributes();
  d.redrive_policy = riffle::RedrivePolicy{q.get(), 1};
  CHECK_THAT(dlq->SetAttributes(d), HasName(riffle::kInvalidAttributeValue));
  o.redrive_policy = riffle::RedrivePolicy{q.get(), 1};
  CHECK_THAT(q->SetAttributes(o), HasName(riffle::kInvalidAttributeValue));
  // Received once, moved by the next receive.
  Send(*q, "g", "m");
  REQUIRE(q->ChangeMessageVisibility(Receive(*q).at(0).receipt_handle, 0).ok());
  CHECK(Receive(*q).empty());
  CHECK(Bodies(Receive(*dlq)) == Strings{"m"});
  // Cleared: the dead-letter queue may now be destroyed before the queue.
  o.redrive_policy.reset();
  REQUIRE(q->SetAttributes(o).ok());
  dlq.reset();
  Send(*q, "g", "n");
  CHECK(Bodies(Receive(*q)) == Strings{"n"});
}

TEST_CASE("FifoQueue carries AWSTraceHeader, also into the dead-letter queue", "[fifo]") {
  ManualClock clock;
  auto dlq = MakeQueue(&clock, {.name = "dlq.fifo"});
  auto q = MakeQueue(&clock, {.redrive_policy = riffle::RedrivePolicy{dlq.get(), 1}});
  REQUIRE(q->SendMessage({.message_group_id = "g",
                          .message_body = "m",
                          .message_deduplication_id = "d",
                          .aws_trace_header = "Root=1-abc"})
              .ok());
  CHECK_THAT(q->SendMessage({.message_group_id = "g",
                             .message_body = "m",
                             .message_deduplication_id = "e",
                             .aws_trace_header = ""})
                 .status(),
             HasName(riffle::kInvalidParameterValue));
  auto got = Receive(*q);
  REQUIRE(got.size() == 1);
  CHECK(got[0].aws_trace_header == "Root=1-abc");
  REQUIRE(q->ChangeMessageVisibility(got[0].receipt_handle, 0).ok());
  CHECK(Receive(*q).empty());
  got = Receive(*dlq);
  REQUIRE(got.size() == 1);
  CHECK(got[0].aws_trace_header == "Root=1-abc");
  REQUIRE(dlq->DeleteMessage(got[0].receipt_handle).ok());
  // A slot reused by a message without a header reports none.
  Send(*dlq, "g", "plain");
  CHECK(Receive(*dlq).at(0).aws_trace_header.empty());
}
