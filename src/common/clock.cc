#include "riffle/clock.h"

#include <time.h>

#include <mutex>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace riffle::detail {

constinit thread_local TscWallClock::Base TscWallClock::base_{0, 0, 0};
std::atomic<uint64_t> TscWallClock::ms_per_tick_q48_{0};
std::atomic<uint64_t> TscWallClock::rebase_ticks_{0};

namespace {

int64_t RealtimeNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

bool HasInvariantTsc() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000007) return false;
  __cpuid(0x80000007, a, b, c, d);
  return (d >> 8) & 1;
#else
  return false;
#endif
}

constexpr int64_t kCalibrationNanos = 50'000'000;   // first rate after >= 50 ms
constexpr int64_t kBaselineNanos = 10'000'000'000;  // the rate's baseline slides after 10 s
// Short enough that a wall clock stepped in small irregular increments (a time daemon
// adjusting by steps rather than by rate: seen at 5 ms/s in 0.5 ms steps) is tracked
// within the millisecond; a re-base costs one clock_gettime per thread every 50 ms.
constexpr int64_t kRebaseNanos = 50'000'000;

#if defined(__x86_64__)
struct Pair {
  uint64_t tsc;
  int64_t ns;
};

// A (TSC, CLOCK_REALTIME) pair read back to back. A pair whose reads were split by a
// preemption would skew the rate, so the tightest of a few tries is kept.
Pair Sample() {
  Pair best{0, 0};
  uint64_t best_gap = UINT64_MAX;
  for (int i = 0; i < 8 && best_gap > 20'000; ++i) {
    const uint64_t t1 = __builtin_ia32_rdtsc();
    const int64_t ns = RealtimeNanos();
    const uint64_t t2 = __builtin_ia32_rdtsc();
    if (t2 - t1 < best_gap) {
      best_gap = t2 - t1;
      best = Pair{t1 + (t2 - t1) / 2, ns};
    }
  }
  return best;
}
#endif

}  // namespace

int64_t TscWallClock::Slow() {
#if defined(__x86_64__)
  static const bool invariant = HasInvariantTsc();
  if (!invariant) return RealtimeNanos() / 1'000'000;
  const Pair now = Sample();
  // The rate is measured against a baseline pair at least 50 ms old (at most ~10 s, so a
  // step of the wall clock stops mattering). Re-measured at every re-base of any thread.
  static std::mutex mu;
  static Pair baseline{0, 0};
  {
    std::lock_guard<std::mutex> lock(mu);
    if (baseline.ns == 0 || now.tsc <= baseline.tsc || now.ns <= baseline.ns) {
      baseline = now;  // the first call, or a wall clock that was set backwards
    }
    const int64_t elapsed = now.ns - baseline.ns;
    if (elapsed >= kCalibrationNanos) {
      // Milliseconds per tick in 2^-48 ms (elapsed < 2^63 ns: the shifted value fits).
      const auto scale = static_cast<uint64_t>(
          (static_cast<unsigned __int128>(elapsed) << kFracBits) /
          (static_cast<unsigned __int128>(now.tsc - baseline.tsc) * 1'000'000));
      if (scale != 0) {
        const auto rebase_ms = static_cast<unsigned __int128>(kRebaseNanos / 1'000'000);
        rebase_ticks_.store(static_cast<uint64_t>((rebase_ms << kFracBits) / scale),
                            std::memory_order_relaxed);
        ms_per_tick_q48_.store(scale, std::memory_order_relaxed);
      }
      if (elapsed > kBaselineNanos) baseline = now;
    }
  }
  const int64_t ms = now.ns / 1'000'000;
  const auto rest_ns = static_cast<uint64_t>(now.ns - ms * 1'000'000);
  base_ = Base{
      now.tsc, ms,
      static_cast<uint64_t>((static_cast<unsigned __int128>(rest_ns) << kFracBits) / 1'000'000)};
  return now.ns / 1'000'000;
#else
  return RealtimeNanos() / 1'000'000;
#endif
}

}  // namespace riffle::detail
