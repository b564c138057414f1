// Uses riffle through its installed package only; exits 0 when the calls behave.
#include <cstdio>

#include "riffle/clock.h"
#include "riffle/status.h"

int main() {
  riffle::ManualClock clock;
  clock.Advance(absl::Seconds(1));
  const absl::Status s = riffle::ExpiredIteratorError("Iterator expired");
  if (riffle::ErrorName(s) != "ExpiredIteratorException") return 1;
  std::puts("riffle package consumer: ok");
  return 0;
}
