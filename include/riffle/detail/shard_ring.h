// ShardRing: one shard's log, a multi-producer, multi-reader byte ring of variable-length
// frames (layout in frame.h).
//
// Thread safety: Append() from any number of threads; readers from any number of threads,
// each with its own position; Close() and gate changes from the control plane.
//
// Invariants:
//  1. Producers claim [t, t + n) of the unbounded log with one atomic on tail_ (fetch_add;
//     a CAS loop only while lossless readers gate the ring), write the frame, then commit in
//     claim order: a producer waits until published_ == t, then stores published_ = t + n
//     with release order. Everything below published_ is fully written, and record indexes
//     (ordinal of a record in the shard) are assigned in position order at commit.
//  2. Before writing, a producer waits until published_ >= t + n - capacity, so a slow
//     producer is never overwritten by one a lap ahead.
//  3. A frame never crosses a segment boundary; every segment starts with a frame.
//  4. Before writing into segment j's storage, a producer raises that slot's mark to j.
//     A reader copies, issues an acquire fence and checks that the marks of the segments it
//     read have not moved past them (seqlock style); a reader that fell behind resumes at
//     Horizon(), the oldest segment no claim has reached again.
//  5. tail_ carries kClosedBit once the shard is closed: later claims fail with kClosed and
//     the producer re-routes (resharding).
#ifndef RIFFLE_DETAIL_SHARD_RING_H_
#define RIFFLE_DETAIL_SHARD_RING_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "riffle/detail/frame.h"

namespace riffle::detail {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins briefly, then yields: a waiter behind a descheduled producer must give that producer
// the core. (Sleeping instead of yielding was measured slower: a 20 us sleep costs ~80 us.)
class Backoff {
 public:
  void Pause() {
    ++rounds_;
    if (rounds_ < 64) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }

 private:
  int rounds_ = 0;
};

enum class AppendStatus : uint8_t { kOk, kClosed, kFull };

struct AppendResult {
  AppendStatus status;
  uint64_t position = 0;      // log position of the frame
  uint64_t record_index = 0;  // ordinal of the record in the shard
  int64_t arrival_ms = 0;     // the stored (monotonic per shard) arrival timestamp
};

// What the newest committed record looks like; read consistently with LatestSnapshot().
struct LatestState {
  uint64_t published = 0;   // end of the committed log
  uint64_t next_index = 0;  // index the next record will get
  uint64_t last_record_position = 0;
  int64_t last_arrival_ms = 0;
};

// Positions of lossless readers; producers may not overwrite what they have not read.
struct GateList {
  std::vector<const std::atomic<uint64_t>*> positions;
};

class ShardRing {
 public:
  static constexpr uint64_t kClosedBit = uint64_t{1} << 63;

  // REQUIRES: capacity_bytes is a power of two, >= kSegmentsPerRing * 64.
  explicit ShardRing(uint64_t capacity_bytes)
      : capacity_(capacity_bytes),
        word_mask_(capacity_bytes / 8 - 1),
        segment_bytes_(capacity_bytes / kSegmentsPerRing),
        // Default-initialized: untouched pages of a large ring cost no memory.
        words_(new (std::align_val_t{64}) uint64_t[capacity_bytes / 8]) {}

  ShardRing(const ShardRing&) = delete;
  ShardRing& operator=(const ShardRing&) = delete;

  uint64_t capacity() const { return capacity_; }
  uint64_t segment_bytes() const { return segment_bytes_; }
  // The largest frame the ring accepts.
  uint64_t max_frame_bytes() const { return segment_bytes_; }

  // Appends one record. kClosed: the shard closed (re-route); kFull: a lossless reader has
  // not read the space this record needs.
  AppendResult Append(std::string_view key, std::string_view data, int64_t now_ms) {
    const uint64_t frame = FrameBytes(key.size(), data.size());
    assert(frame <= segment_bytes_);
    for (;;) {
      uint64_t t;
      uint64_t end;
      if (gates_.load(std::memory_order_acquire) == nullptr) {
        // seq_cst (the same locked instruction as relaxed on x86-64) so that a subscriber
        // about to sleep, which checks HasClaimsAfter() after counting itself, cannot miss
        // this put's wake-up.
        t = tail_.fetch_add(frame, std::memory_order_seq_cst);
        if (t & kClosedBit) {
          // Pairs with Close(): the caller then sees the topology published before it.
          std::atomic_thread_fence(std::memory_order_acquire);
          return {AppendStatus::kClosed};
        }
        end = t + frame;
      } else {
        const AppendStatus s = ClaimGated(frame, &t, &end);
        if (s != AppendStatus::kOk) return {s};
      }
      WaitForOverwritable(end);
      MarkSegments(t, end);
      // Orders the marks before the frame's stores: a reader that copied any byte of this
      // frame then sees, after its acquire fence, that its segment was reused.
      std::atomic_thread_fence(std::memory_order_release);
      const uint64_t segment_end = (t / segment_bytes_ + 1) * segment_bytes_;
      if (end > segment_end) {
        // The claim crosses a segment boundary: fill it with padding and claim again.
        WritePadding(t, segment_end - t);
        WritePadding(segment_end, end - segment_end);
        WaitForTurn(t);
        published_.store(end, std::memory_order_release);
        continue;
      }
      if (end - frame != t) {  // gated claim that skipped to the next segment
        WritePadding(t, end - frame - t);
        t = end - frame;
      }
      return WriteAndCommit(t, frame, key, data, now_ms);
    }
  }

  // Acquire: every frame below the returned position is fully written.
  uint64_t published() const { return published_.load(std::memory_order_acquire); }

  // End of the claimed log (frames in [published, claimed) are being written).
  // Claims that fail on a closed shard still add to tail_, so once closed the end is the
  // position recorded by Close().
  uint64_t claimed() const {
    const uint64_t v = tail_.load(std::memory_order_acquire);
    if (!(v & kClosedBit)) return v;
    uint64_t end;
    while ((end = close_position_.load(std::memory_order_acquire)) == kUnset) CpuRelax();
    return end;
  }

  bool closed() const { return tail_.load(std::memory_order_acquire) & kClosedBit; }

  // True when something was claimed at or after `position`, or the shard closed: a
  // subscriber must not go to sleep. seq_cst: see Append().
  bool HasClaimsAfter(uint64_t position) const {
    const uint64_t v = tail_.load(std::memory_order_seq_cst);
    return (v & kClosedBit) || v > position;
  }

  // The oldest position that is still intact, given a claimed() value: a segment start.
  uint64_t Horizon(uint64_t claimed_end) const {
    const uint64_t segments = (claimed_end + segment_bytes_ - 1) / segment_bytes_;
    return segments > kSegmentsPerRing ? (segments - kSegmentsPerRing) * segment_bytes_ : 0;
  }

  // True when no byte the caller read in [begin, end) (committed bytes only) was
  // overwritten. Reads only the segment marks, which change once per segment, never the
  // producers' tail: a reader that keeps up does not steal the line every put writes.
  // REQUIRES: the caller read the ring before calling (the fence orders those reads).
  bool IntactAfterReads(uint64_t begin, uint64_t end) const {
    std::atomic_thread_fence(std::memory_order_acquire);
    const uint64_t last = (std::max(end, begin + 1) - 1) / segment_bytes_;
    for (uint64_t segment = begin / segment_bytes_; segment <= last; ++segment) {
      // A mark below `segment` means the storage was not entered again yet.
      if (segment_marks_[segment % kSegmentsPerRing].load(std::memory_order_relaxed) > segment) {
        return false;
      }
    }
    return true;
  }

  // True when `bytes` from `position` stay inside one segment, as every frame does. Readers
  // check it before following a length they read (it may be torn), so that no read ever
  // leaves the ring's storage.
  bool FitsInSegment(uint64_t position, uint64_t bytes) const {
    // Segments are a power of two (a quarter of a power-of-two ring): mask, not divide.
    return (position & 7) == 0 && (position & (segment_bytes_ - 1)) + bytes <= segment_bytes_;
  }

  const uint64_t* WordsAt(uint64_t position) const {
    return words_.get() + ((position / 8) & word_mask_);
  }

  // Arrival time of the newest committed record (approximate: no seqlock).
  int64_t latest_arrival_ms() const { return latest_arrival_ms_.load(std::memory_order_relaxed); }

  // A consistent view of the newest committed record.
  LatestState Latest() const {
    for (;;) {
      const uint64_t s1 = latest_seq_.load(std::memory_order_acquire);
      if (s1 & 1) {
        CpuRelax();
        continue;
      }
      LatestState st;
      st.published = latest_published_.load(std::memory_order_relaxed);
      st.next_index = latest_next_index_.load(std::memory_order_relaxed);
      st.last_record_position = latest_record_position_.load(std::memory_order_relaxed);
      st.last_arrival_ms = latest_arrival_ms_.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (latest_seq_.load(std::memory_order_relaxed) == s1) return st;
    }
  }

  // Closes the shard: later appends fail with kClosed. Waits until every claim made before
  // the close is committed, then returns the final state.
  // REQUIRES: not called concurrently with another Close().
  LatestState Close() {
    const uint64_t old = tail_.fetch_or(kClosedBit, std::memory_order_acq_rel);
    const uint64_t end = old & ~kClosedBit;
    if (!(old & kClosedBit)) close_position_.store(end, std::memory_order_release);
    Backoff backoff;
    while (published_.load(std::memory_order_acquire) != end) backoff.Pause();
    return Latest();
  }

  // Lossless readers. The list is replaced, never mutated; old lists live until the ring
  // dies, so a producer never reads freed memory. Control plane only.
  void SetGates(std::vector<const std::atomic<uint64_t>*> positions) {
    std::lock_guard<std::mutex> lock(gates_mu_);
    const GateList* next = nullptr;
    if (!positions.empty()) {
      gate_lists_.push_back(std::make_unique<GateList>(GateList{std::move(positions)}));
      next = gate_lists_.back().get();
    }
    gates_.store(next, std::memory_order_release);
  }

 private:
  struct AlignedDelete {
    void operator()(uint64_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };

  AppendStatus ClaimGated(uint64_t frame, uint64_t* t_out, uint64_t* end_out) {
    uint64_t t = tail_.load(std::memory_order_relaxed);
    for (;;) {
      if (t & kClosedBit) {
        std::atomic_thread_fence(std::memory_order_acquire);
        return AppendStatus::kClosed;
      }
      const uint64_t segment_end = (t / segment_bytes_ + 1) * segment_bytes_;
      // A gated claim takes the padding and the frame at once, so it never has to retry.
      const uint64_t end = t + frame > segment_end ? segment_end + frame : t + frame;
      // Segment-granular, like Horizon(): a gated reader's whole segment stays intact.
      if (end > capacity_ && end - capacity_ > MinGate() / segment_bytes_ * segment_bytes_) {
        return AppendStatus::kFull;
      }
      if (tail_.compare_exchange_weak(t, end, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        *t_out = t;
        *end_out = end;
        return AppendStatus::kOk;
      }
    }
  }

  uint64_t MinGate() const {
    const GateList* list = gates_.load(std::memory_order_acquire);
    uint64_t min = UINT64_MAX;
    if (list != nullptr) {
      for (const auto* p : list->positions) {
        const uint64_t v = p->load(std::memory_order_acquire);
        if (v < min) min = v;
      }
    }
    return min;
  }

  // Records, before any byte of [t, end) is written, which segment each touched storage
  // slot now holds. Segments are entered in claim order, but marks may be set out of order
  // by racing producers, so a mark only ever grows.
  void MarkSegments(uint64_t t, uint64_t end) {
    for (uint64_t segment = t / segment_bytes_; segment <= (end - 1) / segment_bytes_; ++segment) {
      std::atomic<uint64_t>& mark = segment_marks_[segment % kSegmentsPerRing];
      uint64_t current = mark.load(std::memory_order_relaxed);
      while (current < segment &&
             !mark.compare_exchange_weak(current, segment, std::memory_order_relaxed)) {
      }
    }
  }

  void WaitForOverwritable(uint64_t end) {
    if (end <= capacity_) return;
    Backoff backoff;
    while (published_.load(std::memory_order_acquire) < end - capacity_) backoff.Pause();
  }

  void WaitForTurn(uint64_t t) {
    Backoff backoff;
    while (published_.load(std::memory_order_acquire) != t) backoff.Pause();
  }

  void WritePadding(uint64_t position, uint64_t bytes) {
    StoreWordRelaxed(MutableWordsAt(position),
                     PackWord0(static_cast<uint32_t>(bytes), 0, kFlagPadding));
  }

  uint64_t* MutableWordsAt(uint64_t position) {
    return words_.get() + ((position / 8) & word_mask_);
  }

  AppendResult WriteAndCommit(uint64_t t, uint64_t frame, std::string_view key,
                              std::string_view data, int64_t now_ms) {
    uint64_t* w = MutableWordsAt(t);
    StoreWordRelaxed(w,
                     PackWord0(static_cast<uint32_t>(kFrameHeaderBytes + key.size() + data.size()),
                               static_cast<uint16_t>(key.size()), 0));
    StoreWordRelaxed(w + 1, t);
    GatherToWords(w + 4, key.data(), key.size(), data.data(), data.size());
    (void)frame;
    WaitForTurn(t);
    // Our turn: the chain fields below are written only by the committing producer.
    const uint64_t index = next_index_++;
    const int64_t arrival = now_ms > last_arrival_ms_ ? now_ms : last_arrival_ms_;
    last_arrival_ms_ = arrival;
    StoreWordRelaxed(w + 2, index);
    StoreWordRelaxed(w + 3, static_cast<uint64_t>(arrival));
    const uint64_t end = t + frame;
    // Seqlock for Latest(). It closes before published_ moves: the next committer starts
    // when it sees published_, and must find the sequence even.
    const uint64_t seq = latest_seq_.load(std::memory_order_relaxed);
    latest_seq_.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    latest_published_.store(end, std::memory_order_relaxed);
    latest_next_index_.store(index + 1, std::memory_order_relaxed);
    latest_record_position_.store(t, std::memory_order_relaxed);
    latest_arrival_ms_.store(arrival, std::memory_order_relaxed);
    latest_seq_.store(seq + 2, std::memory_order_release);
    published_.store(end, std::memory_order_release);
    return {AppendStatus::kOk, t, index, arrival};
  }

  const uint64_t capacity_;
  const uint64_t word_mask_;
  const uint64_t segment_bytes_;
  std::unique_ptr<uint64_t[], AlignedDelete> words_;

  // Producers hit tail_ on every claim; published_ is read by readers on every poll: each on
  // its own cache line so that neither side's traffic slows the other.
  static constexpr uint64_t kUnset = UINT64_MAX;
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> latest_seq_{0};
  std::atomic<uint64_t> latest_published_{0};  // published_ as of the last record
  std::atomic<uint64_t> latest_next_index_{0};
  std::atomic<uint64_t> latest_record_position_{0};
  std::atomic<int64_t> latest_arrival_ms_{0};
  // Chain state: touched only by the producer whose turn it is (ordered by published_).
  uint64_t next_index_ = 0;
  int64_t last_arrival_ms_ = 0;
  std::atomic<uint64_t> close_position_{kUnset};
  // segment_marks_[i]: the newest segment whose producers may write storage slot i (slot i
  // first holds segment i). Read by every reader's lap check, written once per segment.
  alignas(64) std::array<std::atomic<uint64_t>, kSegmentsPerRing> segment_marks_{0, 1, 2, 3};
  alignas(64) std::atomic<const GateList*> gates_{nullptr};
  std::mutex gates_mu_;
  std::vector<std::unique_ptr<GateList>> gate_lists_;
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_SHARD_RING_H_
