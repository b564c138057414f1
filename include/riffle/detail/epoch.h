// Epoch-based reclamation: how a stream frees what producers and readers may still be
// looking at (retired routing snapshots, expired shards and their logs, replaced gate
// lists, deregistered consumers) without a lock or a reference count on the hot paths.
//
// A thread that dereferences such an object holds an EpochGuard for the duration (a put, a
// GetRecords call, a seek). The control plane first unlinks an object (no new reader can
// find it), then Retire()s it; Collect() frees every retired object once no thread is still
// inside a guard that it entered before the object was retired.
//
// Thread safety: EpochGuard on any thread (guards nest); Retire() and Collect() from any
// thread. Collect() never waits for a guard: what is not yet safe stays for a later call.
//
// The proof sketch and the costs are in docs/architecture.md ("Memory given back"). In
// short: entering stores the global epoch into the thread's slot with no fence on the
// reader's side; Collect() advances the epoch and then runs an asymmetric barrier
// (Linux membarrier, private expedited) that makes every running thread's earlier slot
// store visible before it scans the slots. Where membarrier is unavailable, entering
// issues a full fence instead.
#ifndef RIFFLE_DETAIL_EPOCH_H_
#define RIFFLE_DETAIL_EPOCH_H_

#include <atomic>
#include <cstdint>

namespace riffle::detail {

struct EpochSlot {
  // 0: not inside a guard; otherwise the global epoch read on entry. Written by the owning
  // thread, read by Collect().
  alignas(64) std::atomic<uint64_t> epoch{0};
  int depth = 0;  // owner thread only: nested guards
  std::atomic<bool> in_use{false};
  EpochSlot* next = nullptr;  // slots are never freed, only reused by later threads
};

struct EpochDomain {
  alignas(64) std::atomic<uint64_t> global{1};
  // True when readers need no fence of their own (membarrier is available).
  std::atomic<bool> asymmetric{false};
};

// The process-wide domain. Its barrier choice is made by the first AcquireEpochSlot(), which
// every thread calls before its first guard.
inline constinit EpochDomain global_epochs{};
inline EpochDomain& GlobalEpochs() { return global_epochs; }
EpochSlot* AcquireEpochSlot();  // registers this thread (first guard only)

inline constinit thread_local EpochSlot* tls_epoch_slot = nullptr;

class EpochGuard {
 public:
  EpochGuard() {
    EpochSlot* slot = tls_epoch_slot;
    if (slot == nullptr) slot = AcquireEpochSlot();
    slot_ = slot;
    if (slot->depth++ != 0) return;
    EpochDomain& domain = GlobalEpochs();
    slot->epoch.store(domain.global.load(std::memory_order_acquire), std::memory_order_relaxed);
    if (domain.asymmetric.load(std::memory_order_relaxed)) {
      // Collect()'s membarrier orders this store before our later loads.
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
  }
  ~EpochGuard() {
    // Release: every access made under the guard happens before Collect() sees 0.
    if (--slot_->depth == 0) slot_->epoch.store(0, std::memory_order_release);
  }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

 private:
  EpochSlot* slot_;
};

// Hands `object` to `deleter` once no guard that may see it remains. REQUIRES: `object`
// is already unreachable for threads that enter a guard from now on.
void Retire(void* object, void (*deleter)(void*));

template <class T>
void RetireObject(T* object) {
  Retire(object, [](void* p) { delete static_cast<T*>(p); });
}

// The heavy side of an asymmetric barrier: after it returns, every store another thread made
// before its next compiler barrier (EpochGuard entry, a single-producer claim) is visible,
// or that thread's later loads see what this thread stored before the call. membarrier
// where available, a full fence otherwise (the light side then fences too).
void HeavyBarrier();

// Frees what is safe to free now; returns how many objects it freed. Cheap when nothing is
// retired.
std::size_t CollectRetired();

// Objects retired and not yet freed (all streams).
std::size_t RetiredPending();

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_EPOCH_H_
