// Time. Every time-dependent rule in riffle (retention, iterator expiry, buffering
// intervals, visibility timeouts, rate limits, subscription lifetimes) reads the Clock
// its component was given, never the system directly. Tests inject a ManualClock and get
// deterministic behaviour; everything else uses SystemClock::Default().
//
// Thread safety: all methods of both clocks may be called from any thread.
#ifndef RIFFLE_CLOCK_H_
#define RIFFLE_CLOCK_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace riffle {
namespace detail {

// Wall-clock milliseconds from the invariant TSC, re-based on CLOCK_REALTIME every ~0.25 s
// per thread. A clock_gettime through the vDSO cost about 23 ns here, half of a whole put;
// reading the TSC and scaling it (one multiply in fixed point, no division) costs a third of
// that, most of it the RDTSC itself. Falls back to clock_gettime where there is no
// invariant TSC. Error: the TSC rate is measured over >= 50 ms against CLOCK_REALTIME, so
// drift between re-bases stays far below a millisecond.
class TscWallClock {
 public:
  static int64_t NowMillis() {
#if defined(__x86_64__)
    const uint64_t scale = ms_per_tick_q48_.load(std::memory_order_relaxed);
    const uint64_t tsc = __builtin_ia32_rdtsc();
    const Base& b = base_;
    if (scale != 0 && tsc - b.tsc < rebase_ticks_.load(std::memory_order_relaxed)) {
      // Fixed point, 2^-48 ms: one multiply, no division. Within a re-base interval the
      // sum stays under 2^60 whatever the TSC's rate.
      return b.ms + static_cast<int64_t>((b.frac + (tsc - b.tsc) * scale) >> kFracBits);
    }
#endif
    return Slow();
  }

 private:
  static constexpr unsigned kFracBits = 48;
  struct Base {
    uint64_t tsc;
    int64_t ms;     // the re-base's wall time: whole milliseconds
    uint64_t frac;  // and the rest, in 2^-48 ms
  };
  static int64_t Slow();  // re-bases this thread, calibrates once per process

  static constinit thread_local Base base_;
  static std::atomic<uint64_t> ms_per_tick_q48_;  // 0 until calibrated (or no invariant TSC)
  static std::atomic<uint64_t> rebase_ticks_;
};

// `ms` (Unix milliseconds) plus `d`, floored to the millisecond and saturating at
// INT64_MIN/INT64_MAX: a deadline from a user's duration (InfiniteDuration included) or a
// clock set to the far past or future must not overflow.
inline int64_t AddMillis(int64_t ms, absl::Duration d) {
  return absl::ToUnixMillis(absl::FromUnixMillis(ms) + d);
}

}  // namespace detail

// Unregisters a time-change listener when destroyed. Move-only; empty for real clocks.
class ClockSubscription {
 public:
  ClockSubscription() = default;
  explicit ClockSubscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  ClockSubscription(ClockSubscription&& other) noexcept
      : cancel_(std::exchange(other.cancel_, {})) {}
  ClockSubscription& operator=(ClockSubscription&& other) noexcept {
    if (this != &other) {
      Reset();
      cancel_ = std::exchange(other.cancel_, {});
    }
    return *this;
  }
  ClockSubscription(const ClockSubscription&) = delete;
  ClockSubscription& operator=(const ClockSubscription&) = delete;
  ~ClockSubscription() { Reset(); }

  void Reset() {
    if (cancel_) std::exchange(cancel_, {})();
  }

 private:
  std::function<void()> cancel_;
};

class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;

  // Milliseconds since the Unix epoch (arrival timestamps have millisecond precision).
  virtual int64_t NowMillis() const { return absl::ToUnixMillis(Now()); }

  // True for clocks that only move when told to (ManualClock).
  virtual bool IsManual() const { return false; }

  // Calls `wake` after every change of a manual clock's time, so that a component
  // waiting for a deadline re-checks it. Real clocks never call it and return an empty
  // subscription. REQUIRES: `wake` does not move the clock and does not block on a lock
  // held by a thread that destroys a ClockSubscription.
  virtual ClockSubscription OnTimeChange(std::function<void()> wake) {
    (void)wake;
    return {};
  }
};

// Wall-clock time: Now() is CLOCK_REALTIME; NowMillis(), read on every put for arrival
// timestamps, comes from the TSC (see detail::TscWallClock) and agrees with it to well
// under a millisecond.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  int64_t NowMillis() const override { return detail::TscWallClock::NowMillis(); }
  // The process-wide instance components use when given no clock.
  static Clock& Default() {
    static SystemClock clock;
    return clock;
  }
};

// A clock that moves only by Advance() or Set(). Starts at 2026-01-01T00:00:00Z unless
// told otherwise. Moving it wakes every component waiting on a deadline.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1767225600))
      : nanos_(absl::ToUnixNanos(start)) {}

  absl::Time Now() const override {
    return absl::FromUnixNanos(nanos_.load(std::memory_order_acquire));
  }
  int64_t NowMillis() const override { return nanos_.load(std::memory_order_acquire) / 1'000'000; }
  bool IsManual() const override { return true; }

  // REQUIRES: d >= 0 (time never runs backwards under Advance). Saturates at the end of
  // the representable range (Now() is then the same as after Set(absl::InfiniteFuture())).
  void Advance(absl::Duration d) {
    int64_t old = nanos_.load(std::memory_order_relaxed);
    while (!nanos_.compare_exchange_weak(old, absl::ToUnixNanos(absl::FromUnixNanos(old) + d),
                                         std::memory_order_acq_rel)) {
    }
    NotifyListeners();
  }
  void Set(absl::Time t) {
    nanos_.store(absl::ToUnixNanos(t), std::memory_order_release);
    NotifyListeners();
  }

  ClockSubscription OnTimeChange(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    const uint64_t id = next_listener_id_++;
    listeners_.emplace_back(id, std::move(wake));
    return ClockSubscription([this, id] {
      std::lock_guard<std::mutex> lock(listeners_mu_);
      std::erase_if(listeners_, [id](const auto& l) { return l.first == id; });
    });
  }

 private:
  void NotifyListeners() {
    // Called under the lock so that a listener is never run after its subscription died.
    std::lock_guard<std::mutex> lock(listeners_mu_);
    for (auto& [id, wake] : listeners_) wake();
  }

  std::atomic<int64_t> nanos_;
  std::mutex listeners_mu_;
  uint64_t next_listener_id_ = 0;
  std::vector<std::pair<uint64_t, std::function<void()>>> listeners_;
};

// Waits on `cv` (with `lock` held) until `pred()` holds or `clock` reaches `deadline`;
// returns pred(). With a ManualClock the caller must hold an OnTimeChange subscription
// that notifies `cv` (under the same mutex), or a deadline is noticed only on the next
// notification.
template <class Pred>
bool WaitUntil(const Clock& clock, std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
               absl::Time deadline, Pred pred) {
  while (!pred()) {
    const absl::Time now = clock.Now();
    if (now >= deadline) return pred();
    if (clock.IsManual()) {
      cv.wait(lock);
    } else {
      // Capped so that an infinite deadline cannot overflow the steady clock.
      cv.wait_for(lock, std::min(absl::ToChronoNanoseconds(deadline - now),
                                 std::chrono::nanoseconds(std::chrono::hours(1))));
    }
  }
  return true;
}

}  // namespace riffle

#endif  // RIFFLE_CLOCK_H_
