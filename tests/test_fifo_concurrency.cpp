// FifoQueue under threads: per-group order and exactly-once with competing consumers,
// abandoned messages redelivered in order, groups handed out in sequence order with
// concurrent senders. Run under ThreadSanitizer in CI; the rest of FifoQueue's behaviour is in
// test_fifo.cpp (same binary).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fifo_test_helpers.h"
#include "fmt/format.h"
#include "riffle/fifo_queue.h"
#include "support/alloc_counter.h"  // StressDivisor

using namespace riffle_test::fifo;  // NOLINT: test helpers

TEST_CASE("FifoQueue keeps per-group order and exactly-once with 4 competing consumers",
          "[fifo][stress]") {
  auto q = FifoQueue::Create({.name = "stress.fifo"}).value();
  const int kGroups = 16;
  const int kPerGroup = 20'000 / riffle_test::StressDivisor();
  const int kProducers = 2;
  std::atomic<int> deleted{0};
  std::mutex mu;
  std::vector<std::vector<int>> seen(kGroups);
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerGroup; ++i) {
        for (int g = p; g < kGroups; g += kProducers) {
          const std::string group = fmt::format("g{}", g);
          const std::string body = fmt::format("{}", i);
          if (!q->SendMessage({.message_group_id = group,
                               .message_body = body,
                               .message_deduplication_id = group + "/" + body})
                   .ok()) {
            failed = true;
          }
        }
      }
    });
  }
  for (int c = 0; c < 4; ++c) {
    threads.emplace_back([&, c] {
      std::vector<Message> messages;
      while (deleted.load() < kGroups * kPerGroup) {
        if (!q->ReceiveMessage({.max_number_of_messages = 1 + c * 3, .wait_time_seconds = 1},
                               messages)
                 .ok()) {
          failed = true;
          return;
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          for (auto& m : messages)
            seen[std::stoi(m.message_group_id.substr(1))].push_back(std::stoi(m.body));
        }
        for (auto& m : messages) {
          if (!q->DeleteMessage(m.receipt_handle).ok()) failed = true;
          deleted.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK_FALSE(failed);
  for (int g = 0; g < kGroups; ++g) {
    REQUIRE(seen[g].size() == static_cast<size_t>(kPerGroup));
    for (int i = 0; i < kPerGroup; ++i) {
      if (seen[g][i] != i) FAIL(fmt::format("group {} position {} holds {}", g, i, seen[g][i]));
    }
  }
  auto attrs = q->GetQueueAttributes();
  CHECK(attrs.approximate_number_of_messages == 0);
  CHECK(attrs.approximate_number_of_messages_not_visible == 0);
}

TEST_CASE("FifoQueue redelivers abandoned messages in order, once each, under concurrency",
          "[fifo][stress]") {
  ManualClock clock;
  auto q = MakeQueue(&clock, {.visibility_timeout_seconds = 1});
  const int kGroups = 8;
  const int kPerGroup = 2'000 / riffle_test::StressDivisor();
  for (int i = 0; i < kPerGroup; ++i) {
    for (int g = 0; g < kGroups; ++g) {
      Send(*q, fmt::format("g{}", g), fmt::format("{}", i));
    }
  }
  std::atomic<int> deleted{0};
  std::atomic<bool> stop{false}, failed{false};
  std::mutex mu;
  std::vector<int> next(kGroups, 0);
  std::vector<std::thread> consumers;
  for (int c = 0; c < 4; ++c) {
    consumers.emplace_back([&, c] {
      std::vector<Message> messages;
      uint32_t drop = c;
      while (!stop.load()) {
        if (!q->ReceiveMessage({.max_number_of_messages = 3}, messages).ok()) failed = true;
        for (auto& m : messages) {
          // Abandon about one message in 7: it comes back after the timeout.
          if (++drop % 7 == 0) break;
          // The clock runs fast, so a visibility may end while we hold the message and
          // another consumer may take it: then our handle has expired and the delete fails.
          // Successful deletes must still come in order, once per message.
          std::lock_guard<std::mutex> lock(mu);
          absl::Status st = q->DeleteMessage(m.receipt_handle);
          if (!st.ok()) {
            if (!riffle::HasErrorName(st, riffle::kInvalidParameterValue)) failed = true;
            break;
          }
          int& expected = next[std::stoi(m.message_group_id.substr(1))];
          if (std::stoi(m.body) != expected) failed = true;
          ++expected;
          deleted.fetch_add(1);
        }
        if (messages.empty()) std::this_thread::yield();
      }
    });
  }
  while (deleted.load() < kGroups * kPerGroup && !failed.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    clock.Advance(absl::Seconds(1));
  }
  stop = true;
  for (auto& t : consumers) t.join();
  CHECK_FALSE(failed);
  CHECK(deleted.load() == kGroups * kPerGroup);
}

TEST_CASE("FifoQueue hands out each group in sequence order with concurrent senders",
          "[fifo][stress]") {
  auto q = FifoQueue::Create({.name = "senders.fifo"}).value();
  const int kSenders = 3;
  const int kPerSender = 20'000 / riffle_test::StressDivisor();
  const char* groups[] = {"x", "y"};
  std::vector<std::thread> senders;
  std::atomic<bool> failed{false};
  for (int p = 0; p < kSenders; ++p) {
    senders.emplace_back([&, p] {
      for (int i = 0; i < kPerSender; ++i) {
        const std::string body = fmt::format("{}:{}", p, i);
        if (!q->SendMessage({.message_group_id = groups[i % 2],
                             .message_body = body,
                             .message_deduplication_id = body})
                 .ok()) {
          failed = true;
        }
      }
    });
  }
  // One receiver: per group, sequence numbers must rise and each sender's messages must
  // come in the order that sender sent them.
  std::map<std::string, std::string> last_sequence;
  std::map<std::pair<std::string, int>, int> last_of_sender;
  int received = 0;
  std::vector<Message> messages;
  while (received < kSenders * kPerSender && !failed) {
    REQUIRE(
        q->ReceiveMessage({.max_number_of_messages = 10, .wait_time_seconds = 1}, messages).ok());
    for (const Message& m : messages) {
      std::string& last = last_sequence[m.message_group_id];
      if (!(last < m.sequence_number)) FAIL("sequence number went down in " + m.message_group_id);
      last = m.sequence_number;
      const int p = std::stoi(m.body.substr(0, 1));
      const int i = std::stoi(m.body.substr(2));
      auto [it, fresh] = last_of_sender.try_emplace({m.message_group_id, p}, i);
      if (!fresh && it->second >= i) FAIL("sender order broken: " + m.body);
      it->second = i;
      REQUIRE(q->DeleteMessage(m.receipt_handle).ok());
      ++received;
    }
  }
  for (auto& t : senders) t.join();
  CHECK_FALSE(failed);
  CHECK(received == kSenders * kPerSender);
}

// A long poll sleeps until the earliest delay or visibility deadline it saw; one that moves
// earlier while it sleeps must wake it (on the system clock: a ManualClock wakes every
// waiter when it moves). Bounds are loose: the message is due after about a second.
TEST_CASE("A long poll returns when a deadline moved earlier while it waited", "[fifo]") {
  using Clock = std::chrono::steady_clock;
  // A thread whose long poll of `wait` seconds sets `waited` to the seconds it took to get
  // one message.
  auto long_poll = [](FifoQueue& q, int wait, std::atomic<double>& waited) {
    return std::thread([&q, wait, &waited] {
      const auto t0 = Clock::now();
      auto r = q.ReceiveMessage({.wait_time_seconds = wait});
      if (r.ok() && r->messages.size() == 1) {
        waited = std::chrono::duration<double>(Clock::now() - t0).count();
      }
    });
  };
  SECTION("a visibility timeout shortened by ChangeMessageVisibility") {
    auto q = FifoQueue::Create({.name = "vis.fifo"}).value();
    REQUIRE(q->SendMessage(
                 {.message_group_id = "g", .message_body = "m", .message_deduplication_id = "d"})
                .ok());
    auto first = q->ReceiveMessage({.visibility_timeout = 30});
    REQUIRE(first.ok());
    REQUIRE(first->messages.size() == 1);
    std::atomic<double> waited{-1};
    std::thread waiter = long_poll(*q, 10, waited);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    REQUIRE(q->ChangeMessageVisibility(first->messages[0].receipt_handle, 1).ok());
    waiter.join();
    CHECK(waited.load() > 0);
    CHECK(waited.load() < 5);
  }
  SECTION("a delayed message another call moved into the queue first") {
    auto q = FifoQueue::Create({.name = "delay.fifo", .delay_seconds = 1}).value();
    std::atomic<double> waited{-1};
    std::thread waiter = long_poll(*q, 8, waited);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    REQUIRE(q->SendMessage(
                 {.message_group_id = "g", .message_body = "m", .message_deduplication_id = "d"})
                .ok());
    // A competing short poll drains the send before the waiter looks.
    CHECK(q->ReceiveMessage({})->messages.empty());
    waiter.join();
    CHECK(waited.load() > 0);
    CHECK(waited.load() < 5);
  }
}
