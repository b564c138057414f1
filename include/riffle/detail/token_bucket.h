// TokenBucket: a rate on a clock's milliseconds, for the services' throughput limits.
//
// `rate` tokens per second flow in, at most `burst` are held, and the bucket starts full.
// Arithmetic is in integers (thousandths of a token: `rate` tokens per second is exactly
// `rate` thousandths per millisecond), so that a ManualClock gives the same answers on
// every run. A clock that steps back refills nothing. The arithmetic saturates: a rate or
// burst past UINT64_MAX thousandths (about 1.8e16 tokens) behaves as unlimited, never wraps
// to a small one.
//
// Thread safety: none; the owner guards it.
#ifndef RIFFLE_DETAIL_TOKEN_BUCKET_H_
#define RIFFLE_DETAIL_TOKEN_BUCKET_H_

#include <algorithm>
#include <cstdint>

namespace riffle::detail {

class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(uint64_t rate_per_second, uint64_t burst)
      : rate_(rate_per_second), capacity_(Milli(burst)), milli_(capacity_) {}

  uint64_t rate() const { return rate_; }

  // Refills to `now_ms`; takes `n` tokens and returns true if all of them are there.
  bool TryTake(uint64_t n, int64_t now_ms) {
    Refill(now_ms);
    if (milli_ < Milli(n)) return false;
    milli_ -= Milli(n);
    return true;
  }
  // Refills to `now_ms`; true if `n` tokens are there (takes nothing).
  bool Has(uint64_t n, int64_t now_ms) {
    Refill(now_ms);
    return milli_ >= Milli(n);
  }
  // Takes `n` tokens, going into debt if they are not all there (a large read or push
  // throttles the following time instead of being refused for ever).
  void TakeWithDebt(uint64_t n, int64_t now_ms) {
    Refill(now_ms);
    const uint64_t want = Milli(n);
    debt_ = SaturatingAdd(debt_, want > milli_ ? want - milli_ : 0);
    milli_ = want > milli_ ? 0 : milli_ - want;
  }
  // Gives back `n` tokens taken before (a charge whose operation then failed): pays any
  // debt first, never holds more than the burst.
  void Give(uint64_t n) {
    uint64_t back = Milli(n);
    const uint64_t paid = std::min(back, debt_);
    debt_ -= paid;
    back -= paid;
    milli_ = std::min(capacity_, SaturatingAdd(milli_, back));
  }
  // Refills to `now_ms`; true when the bucket holds its whole burst and owes nothing: it
  // then acts as a new one would, so a table of buckets may drop it.
  bool Full(int64_t now_ms) {
    Refill(now_ms);
    return debt_ == 0 && milli_ == capacity_;
  }
  // Refills to `now_ms`; the whole tokens held (0 while in debt).
  uint64_t Available(int64_t now_ms) {
    Refill(now_ms);
    return debt_ != 0 ? 0 : milli_ / kMilli;
  }
  // Refills to `now_ms`; milliseconds until there is no debt and at least `n` tokens.
  int64_t MillisUntil(uint64_t n, int64_t now_ms) {
    Refill(now_ms);
    const uint64_t want = SaturatingAdd(Milli(n), debt_);
    if (milli_ >= want || rate_ == 0) return 0;
    const uint64_t ms = (want - milli_ - 1) / rate_ + 1;  // rounded up
    return static_cast<int64_t>(std::min<uint64_t>(ms, INT64_MAX));
  }

 private:
  static constexpr uint64_t kMilli = 1000;

  static uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
  }
  static uint64_t SaturatingMul(uint64_t a, uint64_t b) {
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
  }
  static uint64_t Milli(uint64_t tokens) { return SaturatingMul(tokens, kMilli); }

  void Refill(int64_t now_ms) {
    if (at_ms_ == kNever) {
      at_ms_ = now_ms;
      return;
    }
    if (now_ms <= at_ms_) return;
    const uint64_t elapsed = static_cast<uint64_t>(now_ms) - static_cast<uint64_t>(at_ms_);
    at_ms_ = now_ms;
    // Enough time to fill from empty and pay any debt: the bucket is simply full.
    if (rate_ != 0 && elapsed > SaturatingAdd(capacity_, debt_) / rate_) {
      debt_ = 0;
      milli_ = capacity_;
      return;
    }
    uint64_t in = SaturatingMul(elapsed, rate_);
    const uint64_t paid = std::min(in, debt_);
    debt_ -= paid;
    in -= paid;
    milli_ = std::min(capacity_, SaturatingAdd(milli_, in));
  }

  static constexpr int64_t kNever = INT64_MIN;
  uint64_t rate_ = 0;      // tokens per second = thousandths per millisecond
  uint64_t capacity_ = 0;  // thousandths
  uint64_t milli_ = 0;     // thousandths held
  uint64_t debt_ = 0;      // thousandths owed before anything is held again
  int64_t at_ms_ = kNever;
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_TOKEN_BUCKET_H_
