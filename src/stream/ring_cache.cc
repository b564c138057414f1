// Ring storage for shard logs: anonymous mappings, and a small process-wide cache of the
// rings dead logs gave back.
//
// A test suite creates and deletes streams by the thousand; each fresh ring costs a page
// fault and a cleared page per 4 KiB the stream writes, which measured about 40% of a
// create, put 10,000 records, read, delete scenario (BM_Account_TestDoubleScenario). A ring
// taken from the cache already has its pages. What it still holds of earlier logs is
// harmless: ShardLog gives itself a check nibble no earlier user of the ring had, and
// readers parse only frames that carry this log's check word (shard_log.h). After 16
// logs a ring has no nibble left and is cleared (only its touched bytes) before reuse.
//
// The cache is bounded (kMaxCachedRings, kMaxCachedMappedBytes, kMaxCachedUsedBytes): what
// it keeps from the system at any time is at most 8 rings, 64 MiB of address space and
// 16 MiB of touched (resident) memory. The oldest rings go first when a bound is passed.
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <mutex>

#include "riffle/detail/shard_log.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define RIFFLE_POISON_RING(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define RIFFLE_UNPOISON_RING(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define RIFFLE_POISON_RING(p, n) ((void)(p), (void)(n))
#define RIFFLE_UNPOISON_RING(p, n) ((void)(p), (void)(n))
#endif

namespace riffle::detail {
namespace {

constexpr std::size_t kMaxCachedRings = 8;
constexpr uint64_t kMaxCachedMappedBytes = uint64_t{64} << 20;
constexpr uint64_t kMaxCachedUsedBytes = uint64_t{16} << 20;
// Touched bytes are counted in whole pages of this size (the largest page Linux uses for
// anonymous memory short of huge pages), so the bound holds whatever the page size.
constexpr uint64_t kPageBytes = uint64_t{64} << 10;
constexpr uint16_t kAllNibbles = 0xffff;

void Unmap(const Ring& ring) {
  RIFFLE_UNPOISON_RING(ring.words, ring.bytes);
  munmap(ring.words, ring.bytes);
}

class RingCache {
 public:
  Ring Take(uint64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The newest ring of that size: its pages are the likeliest still in the CPU's caches.
      for (std::size_t i = count_; i-- > 0;) {
        if (rings_[i].bytes != bytes) continue;
        const Ring ring = rings_[i];
        std::move(rings_.begin() + i + 1, rings_.begin() + count_, rings_.begin() + i);
        --count_;
        mapped_ -= ring.bytes;
        used_ -= ring.used_bytes;
        ++reused_;
        RIFFLE_UNPOISON_RING(ring.words, ring.bytes);
        return ring;
      }
    }
    // MAP_NORESERVE is not used: the kernel's overcommit check then refuses sizes the
    // machine could never back, and Create reports it instead of a later crash.
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return {};
    return {static_cast<uint64_t*>(p), bytes, 0, 0};
  }

  void Give(Ring ring) {
    const uint64_t touched = std::min(ring.bytes, ring.used_bytes);
    ring.used_bytes = std::min(ring.bytes, (touched + kPageBytes - 1) & ~(kPageBytes - 1));
    if (ring.bytes > kMaxCachedMappedBytes || ring.used_bytes > kMaxCachedUsedBytes) {
      Unmap(ring);
      return;
    }
    if (ring.check_nibbles == kAllNibbles) {
      // Sixteen logs used it: cleared, it is as a fresh mapping is (and cheaper than one).
      std::memset(ring.words, 0, touched);
      ring.check_nibbles = 0;
    }
    RIFFLE_POISON_RING(ring.words, ring.bytes);
    std::array<Ring, kMaxCachedRings> evicted;
    std::size_t n_evicted = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::size_t drop = 0;  // the oldest rings that make room
      uint64_t mapped = mapped_ + ring.bytes, used = used_ + ring.used_bytes;
      while (count_ - drop + 1 > kMaxCachedRings || mapped > kMaxCachedMappedBytes ||
             used > kMaxCachedUsedBytes) {
        mapped -= rings_[drop].bytes;
        used -= rings_[drop].used_bytes;
        evicted[n_evicted++] = rings_[drop++];
      }
      std::move(rings_.begin() + drop, rings_.begin() + count_, rings_.begin());
      count_ -= drop;
      rings_[count_++] = ring;
      mapped_ = mapped;
      used_ = used;
    }
    for (std::size_t i = 0; i < n_evicted; ++i) Unmap(evicted[i]);
  }

  RingCacheStats Stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {count_, mapped_, used_, reused_};
  }

 private:
  std::mutex mu_;
  std::array<Ring, kMaxCachedRings> rings_;  // oldest first
  std::size_t count_ = 0;
  uint64_t mapped_ = 0;
  uint64_t used_ = 0;
  uint64_t reused_ = 0;
};

// Never destroyed: a log that dies during static destruction still gives its ring back.
RingCache& Cache() {
  static RingCache* const cache = new RingCache;
  return *cache;
}

}  // namespace

Ring AcquireRing(uint64_t bytes) { return Cache().Take(bytes); }

void ReleaseRing(const Ring& ring) {
  if (ring.words != nullptr) Cache().Give(ring);
}

RingCacheStats GetRingCacheStats() { return Cache().Stats(); }

}  // namespace riffle::detail
