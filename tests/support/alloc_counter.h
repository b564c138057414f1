// A counting allocator for tests that prove a path allocates nothing. Every test binary
// links a replacement global operator new/delete that counts calls made by the current
// thread while a riffle_test::AllocationCounter is alive on it.
//
//   riffle_test::AllocationCounter counter;
//   stream->PutRecord(...);
//   REQUIRE(counter.allocations() == 0);
#ifndef RIFFLE_TESTS_SUPPORT_ALLOC_COUNTER_H_
#define RIFFLE_TESTS_SUPPORT_ALLOC_COUNTER_H_

#include <cstdint>

namespace riffle_test {

class AllocationCounter {
 public:
  AllocationCounter();
  ~AllocationCounter();
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;

  // Calls to operator new on this thread since construction.
  uint64_t allocations() const;

 private:
  uint64_t start_;
  bool was_counting_;
};

// Bytes the C heap has handed out and not taken back (glibc's mallinfo2; blocks in the
// thread's cache of freed blocks count as in use, up to a few hundred KB), for tests that
// check a long churn leaves nothing behind; 0 under the sanitizers, whose allocators glibc
// does not see (such tests skip the check there).
uint64_t HeapBytesInUse();

// A size divisor for stress tests: 1 in normal builds, larger under sanitizers, which run
// the same tests 5-20x slower. Stress tests multiply their record counts by 1/this.
constexpr int StressDivisor() {
#if defined(RIFFLE_SANITIZED)
  return 4;
#else
  return 1;
#endif
}

}  // namespace riffle_test

#endif  // RIFFLE_TESTS_SUPPORT_ALLOC_COUNTER_H_
