#include <catch2/catch.hpp>
#include <cstdint>
#include <thread>

#include "riffle/clock.h"

TEST_CASE("ManualClock moves only when told", "[clock]") {
  riffle::ManualClock clock(absl::FromUnixMillis(1000));
  CHECK(clock.NowMillis() == 1000);
  clock.Advance(absl::Milliseconds(250));
  CHECK(clock.Now() == absl::FromUnixMillis(1250));
  clock.Set(absl::FromUnixSeconds(5));
  CHECK(clock.NowMillis() == 5000);
  CHECK(clock.IsManual());
  CHECK_FALSE(riffle::SystemClock::Default().IsManual());
}

TEST_CASE("ManualClock::Advance saturates at its last instant; AddMillis saturates", "[clock]") {
  // Advance added nanoseconds with wrap-around: an infinite step sent the clock to 1677.
  riffle::ManualClock clock;
  clock.Advance(absl::InfiniteDuration());
  CHECK(clock.Now() == absl::FromUnixNanos(INT64_MAX));
  clock.Advance(absl::Hours(1));
  CHECK(clock.NowMillis() == INT64_MAX / 1'000'000);
  using riffle::detail::AddMillis;
  CHECK(AddMillis(1000, absl::Milliseconds(250)) == 1250);
  CHECK(AddMillis(1000, absl::InfiniteDuration()) == INT64_MAX);
  CHECK(AddMillis(INT64_MAX, absl::Hours(1)) == INT64_MAX);
  CHECK(AddMillis(1000, -absl::InfiniteDuration()) == INT64_MIN);
  CHECK(AddMillis(INT64_MIN, -absl::Hours(1)) == INT64_MIN);
}

TEST_CASE("ManualClock listeners run on every move until unsubscribed", "[clock]") {
  riffle::ManualClock clock;
  int calls = 0;
  {
    riffle::ClockSubscription sub = clock.OnTimeChange([&] { ++calls; });
    clock.Advance(absl::Seconds(1));
    clock.Set(clock.Now());
    CHECK(calls == 2);
  }
  clock.Advance(absl::Seconds(1));
  CHECK(calls == 2);
}

TEST_CASE("WaitUntil wakes on a ManualClock deadline", "[clock]") {
  riffle::ManualClock clock;
  std::mutex mu;
  std::condition_variable cv;
  riffle::ClockSubscription sub = clock.OnTimeChange([&] {
    std::lock_guard<std::mutex> lock(mu);
    cv.notify_all();
  });
  const absl::Time deadline = clock.Now() + absl::Seconds(20);
  bool result = true;
  std::thread waiter([&] {
    std::unique_lock<std::mutex> lock(mu);
    result = riffle::WaitUntil(clock, cv, lock, deadline, [] { return false; });
  });
  clock.Advance(absl::Seconds(10));
  clock.Advance(absl::Seconds(10));
  waiter.join();
  CHECK_FALSE(result);
  CHECK(clock.Now() >= deadline);
}

TEST_CASE("WaitUntil on the system clock honours a short deadline", "[clock]") {
  auto& clock = riffle::SystemClock::Default();
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  const absl::Time start = clock.Now();
  CHECK_FALSE(
      riffle::WaitUntil(clock, cv, lock, start + absl::Milliseconds(20), [] { return false; }));
  CHECK(clock.Now() - start >= absl::Milliseconds(20));
}

TEST_CASE("SystemClock::NowMillis agrees with CLOCK_REALTIME to the millisecond", "[clock]") {
  auto& clock = riffle::SystemClock::Default();
  // Across the TSC calibration (50 ms) and several re-bases (every 50 ms).
  const absl::Time end = absl::Now() + absl::Milliseconds(700);
  int checks = 0;
  while (absl::Now() < end) {
    const int64_t before = absl::ToUnixMillis(absl::Now());
    const int64_t fast = clock.NowMillis();
    const int64_t after = absl::ToUnixMillis(absl::Now());
    // One millisecond of slack each side for rounding between the two sources.
    REQUIRE(fast >= before - 1);
    REQUIRE(fast <= after + 1);
    ++checks;
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  CHECK(checks > 100);
}
