// ShardLog: one shard's log, a multi-producer, multi-reader byte ring of variable-length
// frames. The frame layout is frame.h's; this file owns the ring's algorithm: claims,
// commits, laps, gates, closing, and the reads that copy frames out.
//
// Thread safety: Append() from any number of threads; readers from any number of threads,
// each with its own position; Close() and SetGates() from the control plane.
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
//  6. Every record frame carries FrameCheck(position, secret): a position is a record's
//     start exactly when the frame there is plausible and its check matches.
//
//   log position:  0          S          2S         3S         4S         5S
//                  | segment 0 | segment 1 | segment 2 | segment 3 | segment 4 ...
//   ring slot:     |     0     |     1     |     2     |     3     |     0     ...
//                  [frame][frame][pad]      ...                     ^ lap: slot 0 reused
#ifndef RIFFLE_DETAIL_SHARD_LOG_H_
#define RIFFLE_DETAIL_SHARD_LOG_H_

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

#include "riffle/detail/epoch.h"
#include "riffle/detail/frame.h"
#include "riffle/record_source.h"

namespace riffle::detail {

inline constexpr uint64_t kSegmentsPerRing = 4;

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

// Ring storage: anonymous pages mapped on demand (untouched pages cost no memory) and
// returned to the system when the log dies. Defined in src/stream/shard_set.cc.
uint64_t* MapRing(uint64_t bytes);  // nullptr when the system refuses
void UnmapRing(uint64_t* words, uint64_t bytes);

enum class AppendStatus : uint8_t { kOk, kClosed, kFull };

struct AppendResult {
  AppendStatus status;
  uint64_t position = 0;      // log position of the frame
  uint64_t record_index = 0;  // ordinal of the record in the shard
  int64_t arrival_ms = 0;     // the stored (monotonic per shard) arrival timestamp
};

// What the newest committed record looks like; read consistently with Latest().
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

// What a reader learns about a position it was handed (a sequence number).
enum class PositionCheck : uint8_t {
  kRecord,      // a record frame with the expected index
  kNotARecord,  // not the start of a record with that index
  kTrimmed,     // below the horizon: the bytes are gone; plausible, not verifiable
};

class ShardLog {
 public:
  static constexpr uint64_t kClosedBit = uint64_t{1} << 63;

  // REQUIRES: capacity_bytes is a power of two, >= kSegmentsPerRing * 64; `words` maps
  // capacity_bytes (MapRing); the log owns it.
  ShardLog(uint64_t* words, uint64_t capacity_bytes, uint64_t secret)
      : capacity_(capacity_bytes),
        word_mask_(capacity_bytes / 8 - 1),
        segment_bytes_(capacity_bytes / kSegmentsPerRing),
        secret_(secret),
        words_(words) {}
  ~ShardLog() {
    delete gates_.load(std::memory_order_relaxed);
    UnmapRing(words_, capacity_);
  }

  ShardLog(const ShardLog&) = delete;
  ShardLog& operator=(const ShardLog&) = delete;

  uint64_t capacity() const { return capacity_; }
  uint64_t segment_bytes() const { return segment_bytes_; }
  // The largest frame the ring accepts.
  uint64_t max_frame_bytes() const { return segment_bytes_; }
  uint64_t CheckAt(uint64_t position) const { return FrameCheck(position, secret_); }

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
          // Pairs with Close(): the caller then sees the routing published before it.
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
        WritePadding(MutableWordsAt(t), segment_end - t);
        WritePadding(MutableWordsAt(segment_end), end - segment_end);
        WaitForTurn(t);
        published_.store(end, std::memory_order_release);
        continue;
      }
      if (end - frame != t) {  // gated claim that skipped to the next segment
        WritePadding(MutableWordsAt(t), end - frame - t);
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
  uint64_t Horizon() const { return Horizon(claimed()); }

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

  // Bytes from `position` to the end of its segment, or 0 when `position` is not aligned.
  // Readers bound every length they follow by it, so that no read leaves the ring.
  uint64_t RoomInSegment(uint64_t position) const {
    if ((position & 7) != 0) return 0;
    // Segments are a power of two (a quarter of a power-of-two ring): mask, not divide.
    return segment_bytes_ - (position & (segment_bytes_ - 1));
  }

  FrameView FrameAt(uint64_t position) const { return FrameView(WordsAt(position)); }

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

  // ---- Reads ----

  // Copies whole frames from `position` (a frame start) into `out`'s storage, stopping at
  // `published`, after `limit` records, or before exceeding `max_bytes` of payload. Returns
  // the position after the last frame copied. The copy is optimistic: the caller checks
  // IntactAfterReads(position, returned) before trusting it.
  uint64_t CopyFrames(uint64_t position, uint64_t published, int limit, uint64_t max_bytes,
                      GetRecordsResult& out) const {
    std::vector<uint64_t>& arena = RecordsStorage::arena(out);
    auto& frames = RecordsStorage::frames(out);
    frames.clear();
    std::size_t used = 0;
    uint64_t payload_bytes = 0;
    uint64_t p = position;
    int n = 0;
    while (p < published && n < limit) {
      const FrameView frame = FrameAt(p);
      // A torn header (the frame is being overwritten) stops the copy; the lap check that
      // follows then restarts the read.
      if (!frame.Plausible(std::min(RoomInSegment(p), published - p), CheckAt(p))) break;
      const uint64_t padded = frame.padded_length();
      if (frame.is_padding()) {
        p += padded;
        continue;
      }
      const uint64_t payload = frame.length() - kFrameHeaderBytes;
      if (n > 0 && payload_bytes + payload > max_bytes) break;
      const std::size_t words = padded / 8;
      if (used + words > arena.size()) {
        arena.resize(std::max(arena.size() * 2, used + words + 512));
      }
      CopyFromWords(arena.data() + used, WordsAt(p), padded);
      frames.emplace_back(used, p);
      used += words;
      payload_bytes += payload;
      ++n;
      p += padded;
    }
    return p;
  }

  // Whether `position` starts the record with index `record_index` (a sequence number
  // handed back by a reader). Never reads outside the ring.
  PositionCheck CheckRecord(uint64_t position, uint64_t record_index) const {
    const LatestState latest = Latest();
    if (position >= latest.published || record_index >= latest.next_index ||
        RoomInSegment(position) < kFrameHeaderBytes) {
      return PositionCheck::kNotARecord;
    }
    for (;;) {
      const uint64_t horizon = Horizon();
      if (position < horizon) return TrimmedIndexPlausible(position, record_index);
      const FrameView frame = FrameAt(position);
      const bool plausible = frame.Plausible(RoomInSegment(position), CheckAt(position)) &&
                             !frame.is_padding() && frame.record_index() == record_index;
      if (IntactAfterReads(position, position + kFrameHeaderBytes)) {
        return plausible ? PositionCheck::kRecord : PositionCheck::kNotARecord;
      }
      // Lapped while checking: the position is now below the horizon.
    }
  }

  // The end of the record frame at `position` (REQUIRES: CheckRecord said kRecord; if it
  // was lapped since, returns `position`, and the reader will be moved to the horizon).
  uint64_t RecordEnd(uint64_t position) const {
    const FrameView frame = FrameAt(position);
    const uint64_t padded = frame.padded_length();
    if (IntactAfterReads(position, position + kFrameHeaderBytes) &&
        padded <= RoomInSegment(position)) {
      return position + padded;
    }
    return position;
  }

  // Whether (position, record_index) is where a reader that read up to the end of the log
  // (or up to a padding frame that ends it) would continue: a ContinuationSequenceNumber.
  bool IsContinuation(uint64_t position, uint64_t record_index) const {
    const LatestState latest = Latest();
    if (position == latest.published) return record_index == latest.next_index;
    if (position > latest.published || record_index > latest.next_index ||
        position < Horizon() || RoomInSegment(position) < kFrameAlignment) {
      return false;
    }
    const FrameView pad = FrameAt(position);
    if (!pad.is_padding() || !pad.Plausible(RoomInSegment(position), 0)) return false;
    const uint64_t next = position + pad.padded_length();
    bool ok;
    if (next >= latest.published) {
      ok = next == latest.published && record_index == latest.next_index;
    } else {
      if (RoomInSegment(next) < kFrameHeaderBytes) return false;
      const FrameView f = FrameAt(next);
      ok = f.check() == CheckAt(next) && f.record_index() == record_index;
    }
    return ok && IntactAfterReads(position, next + kFrameHeaderBytes);
  }

  // Where a reader starting at time `t_ms` begins: the first record that arrived at or
  // after t_ms, or the end of the log. Arrival times never decrease within a shard, and
  // every segment starts with a frame, so whole segments are skipped by their first frame.
  struct Seek {
    uint64_t position;
    uint64_t next_index;
  };
  Seek SeekTime(int64_t t_ms) const {
    for (;;) {
      const LatestState latest = Latest();
      const uint64_t horizon = Horizon();
      // Skip to the last segment whose first record is older than t_ms.
      uint64_t start = horizon;
      for (uint64_t s = horizon + segment_bytes_; s < latest.published; s += segment_bytes_) {
        const FrameView first = FrameAt(s);
        if (first.is_padding() || first.arrival_ms() >= t_ms) break;  // walk from here
        start = s;
      }
      Seek found{latest.published, latest.next_index};
      uint64_t p = start;
      while (p < latest.published) {
        const FrameView frame = FrameAt(p);
        if (!frame.Plausible(std::min(RoomInSegment(p), latest.published - p), CheckAt(p))) {
          break;  // torn: the lap check below restarts
        }
        if (!frame.is_padding() && frame.arrival_ms() >= t_ms) {
          found = Seek{p, frame.record_index()};
          break;
        }
        p += frame.padded_length();
      }
      if (IntactAfterReads(start, p + kFrameHeaderBytes)) return found;
    }
  }

  // ---- Control plane ----

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

  // Lossless readers. The list is replaced, never mutated; the old one is retired through
  // the epoch domain (producers read it inside their put's guard). Control plane only.
  void SetGates(std::vector<const std::atomic<uint64_t>*> positions) {
    std::lock_guard<std::mutex> lock(gates_mu_);
    GateList* next = positions.empty() ? nullptr : new GateList{std::move(positions)};
    const GateList* old = gates_.exchange(next, std::memory_order_acq_rel);
    if (old != nullptr) RetireObject(const_cast<GateList*>(old));
  }

 private:
  static constexpr uint64_t kUnset = UINT64_MAX;

  const uint64_t* WordsAt(uint64_t position) const {
    return words_ + ((position / 8) & word_mask_);
  }
  uint64_t* MutableWordsAt(uint64_t position) { return words_ + ((position / 8) & word_mask_); }

  // Below the horizon the frame is gone: accept a number whose index is below the first
  // retained record's and whose position leaves room for that many frames.
  PositionCheck TrimmedIndexPlausible(uint64_t position, uint64_t record_index) const {
    if ((position & 7) != 0 || record_index > position / FrameBytes(1, 0)) {
      return PositionCheck::kNotARecord;
    }
    const Seek first = SeekTime(INT64_MIN);
    return record_index < first.next_index ? PositionCheck::kTrimmed : PositionCheck::kNotARecord;
  }

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

  AppendResult WriteAndCommit(uint64_t t, uint64_t frame, std::string_view key,
                              std::string_view data, int64_t now_ms) {
    uint64_t* w = MutableWordsAt(t);
    WriteFrameWord0(w, key.size(), data.size());
    WriteFrameBody(w, CheckAt(t), 0, 0, key, data);
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
  const uint64_t secret_;
  uint64_t* const words_;

  // Producers hit tail_ on every claim; published_ is read by readers on every poll: each on
  // its own cache line so that neither side's traffic slows the other.
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
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_SHARD_LOG_H_
