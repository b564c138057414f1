#include "riffle/clock.h"

#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace riffle::detail {

constinit thread_local TscWallClock::Base TscWallClock::base_{0, 0};
std::atomic<uint64_t> TscWallClock::ns_per_tick_q32_{0};
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

constexpr int64_t kCalibrationNanos = 20'000'000;  // measure the TSC rate over >= 20 ms
constexpr int64_t kRebaseNanos = 250'000'000;

}  // namespace

int64_t TscWallClock::Slow() {
  const int64_t ns = RealtimeNanos();
#if defined(__x86_64__)
  static const bool invariant = HasInvariantTsc();
  if (!invariant) return ns / 1'000'000;
  const uint64_t tsc = __builtin_ia32_rdtsc();
  if (ns_per_tick_q32_.load(std::memory_order_relaxed) == 0) {
    // The first caller starts the calibration; a later caller finishes it.
    static std::atomic<uint64_t> start_tsc{0};
    static std::atomic<int64_t> start_ns{0};
    uint64_t expected = 0;
    if (start_tsc.compare_exchange_strong(expected, tsc, std::memory_order_acq_rel)) {
      start_ns.store(ns, std::memory_order_release);
    } else {
      const int64_t begun = start_ns.load(std::memory_order_acquire);
      if (begun != 0 && ns - begun >= kCalibrationNanos && tsc > expected) {
        const auto scale = static_cast<uint64_t>(
            (static_cast<unsigned __int128>(ns - begun) << 32) / (tsc - expected));
        if (scale != 0) {
          rebase_ticks_.store(
              static_cast<uint64_t>((static_cast<unsigned __int128>(kRebaseNanos) << 32) / scale),
              std::memory_order_relaxed);
          ns_per_tick_q32_.store(scale, std::memory_order_relaxed);
        }
      }
    }
  }
  base_ = Base{tsc, ns};
#endif
  return ns / 1'000'000;
}

}  // namespace riffle::detail
