// Epoch-based reclamation: the slot registry, the retire list and Collect().
#include "riffle/detail/epoch.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <vector>

namespace riffle::detail {
namespace {

int Membarrier(int command) { return static_cast<int>(syscall(__NR_membarrier, command, 0, 0)); }

struct Registry {
  std::atomic<EpochSlot*> slots{nullptr};  // pushed, never popped
  std::mutex mu;                           // guards retired
  struct Retired {
    void* object;
    void (*deleter)(void*);
    uint64_t epoch;  // global epoch when retired
  };
  std::vector<Retired> retired;
  std::atomic<std::size_t> pending{0};
};

Registry& Slots() {
  static Registry* registry = new Registry;  // never destroyed: threads may exit late
  return *registry;
}

// Registers the asymmetric barrier once per process; readers then skip their fence.
void InitDomain() {
  static const bool done = [] {
    EpochDomain* d = &global_epochs;
#if defined(RIFFLE_SANITIZED)
    // Sanitizers do not model membarrier: keep the symmetric fence there.
    const bool asymmetric = false;
#else
    const int supported = Membarrier(MEMBARRIER_CMD_QUERY);
    const bool asymmetric = supported > 0 &&
                            (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
                            Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
#endif
    d->asymmetric.store(asymmetric, std::memory_order_relaxed);
    return true;
  }();
  (void)done;
}

// Gives the slot back when its thread exits.
struct SlotOwner {
  ~SlotOwner() {
    if (tls_epoch_slot != nullptr) {
      tls_epoch_slot->epoch.store(0, std::memory_order_release);
      tls_epoch_slot->in_use.store(false, std::memory_order_release);
      tls_epoch_slot = nullptr;
    }
  }
};

}  // namespace

EpochSlot* AcquireEpochSlot() {
  InitDomain();  // decide the barrier before the first guard
  thread_local SlotOwner owner;  // its destructor releases the slot
  (void)owner;
  Registry& r = Slots();
  for (EpochSlot* s = r.slots.load(std::memory_order_acquire); s != nullptr; s = s->next) {
    bool expected = false;
    if (!s->in_use.load(std::memory_order_relaxed) &&
        s->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      s->depth = 0;
      tls_epoch_slot = s;
      return s;
    }
  }
  auto* s = new EpochSlot;
  s->in_use.store(true, std::memory_order_relaxed);
  EpochSlot* head = r.slots.load(std::memory_order_relaxed);
  do {
    s->next = head;
  } while (!r.slots.compare_exchange_weak(head, s, std::memory_order_acq_rel));
  tls_epoch_slot = s;
  return s;
}

void HeavyBarrier() {
  InitDomain();
  if (GlobalEpochs().asymmetric.load(std::memory_order_relaxed)) {
    (void)Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

void Retire(void* object, void (*deleter)(void*)) {
  Registry& r = Slots();
  std::lock_guard<std::mutex> lock(r.mu);
  r.retired.push_back({object, deleter, GlobalEpochs().global.load(std::memory_order_seq_cst)});
  r.pending.store(r.retired.size(), std::memory_order_relaxed);
}

std::size_t CollectRetired() {
  Registry& r = Slots();
  if (r.pending.load(std::memory_order_relaxed) == 0) return 0;
  std::vector<Registry::Retired> free_now;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    EpochDomain& domain = GlobalEpochs();
    // Threads that enter from now on read a newer epoch, after every retire so far.
    domain.global.fetch_add(1, std::memory_order_seq_cst);
    (void)domain;
    HeavyBarrier();
    uint64_t oldest_active = UINT64_MAX;
    for (EpochSlot* s = r.slots.load(std::memory_order_acquire); s != nullptr; s = s->next) {
      const uint64_t e = s->epoch.load(std::memory_order_acquire);
      if (e != 0 && e < oldest_active) oldest_active = e;
    }
    // An object retired at epoch r may still be seen by guards that entered at epoch <= r.
    std::erase_if(r.retired, [&](const Registry::Retired& item) {
      if (item.epoch >= oldest_active) return false;
      free_now.push_back(item);
      return true;
    });
    r.pending.store(r.retired.size(), std::memory_order_relaxed);
  }
  // Deleters run outside the lock: they may retire more (a shard holding a gate list).
  for (const auto& item : free_now) item.deleter(item.object);
  return free_now.size();
}

std::size_t RetiredPending() { return Slots().pending.load(std::memory_order_relaxed); }

}  // namespace riffle::detail
