// ShardLog: one shard's log, a multi-producer, multi-reader byte ring of variable-length
// frames. The frame layout is frame.h's; this file owns the ring's algorithm: claims,
// commits, publication, laps, gates, closing, and the reads that copy frames out.
//
// Thread safety: Append() from any number of threads (one at a time in single-producer
// mode); readers from any number of threads, each with its own position; Close() and
// SetGates() from the control plane.
//
// Invariants (the producer never waits for another producer, except in 6):
//  1. A claim takes [t, t + n) of the unbounded log and the next claim number c with one
//     fetch_add on claim_, which packs (position / 8, claim number) modulo 2^32 each; the
//     full values are rebuilt from hints a producer crossing a segment leaves before it
//     commits its padding (a claim is never 2^31 words or claims away from a hint: rings
//     are at most 8 GiB, and the log cannot get a ring past an uncommitted frame).
//     Single-producer mode stores instead of fetch_add: no locked instruction.
//  2. A frame is committed by its check word (FrameCheck(t), written last, release): a word
//     no stale byte of an earlier lap, of an earlier log on a reused ring (CheckNibble) and
//     no record data can equal. Padding frames are committed the same way (frames are
//     16-byte aligned, so every padding has room for it).
//  3. published_ is the end of the longest prefix of committed frames. The producer of the
//     frame at published_ moves it over its frame with a CAS and then over every committed
//     frame after it (helping); a producer whose predecessor is not yet published
//     re-asserts its check word with a seq_cst compare-and-swap that changes nothing (never
//     a store: its storage may already hold a later lap) and looks at published_ again
//     (seq_cst): either it sees its turn, or the predecessor's publisher sees its frame. So
//     a put returns without waiting, and readers see its frame as soon as every frame
//     before it is committed. After its commit a producer writes nothing into the ring.
//     Readers read only below published_ (acquire): everything there is fully written.
//  4. Every boundary between segments is touched by exactly one claim (t < boundary <= end),
//     and that claim becomes padding (the producer claims again). So a record claimed with
//     number c in segment s has the dense record index c - s: exact indexes, hence exact
//     missed counts, without ordering the producers.
//  5. A frame never crosses a segment boundary; every segment starts with a frame. Before
//     writing into segment j's storage, a producer raises that slot's mark to j; a reader
//     copies, fences (acquire) and checks that the marks of what it read did not move past
//     (seqlock style); a reader that fell behind resumes at Horizon().
//  6. Before writing [t, end) a producer waits until published_ >= end - capacity: the only
//     wait on other producers, when a whole ring was claimed past a frame still being
//     written (a producer descheduled mid-put for a full lap of the ring).
//  7. closed_ refuses claims once the shard is closed (resharding): a claim made before the
//     close (below close_end_) completes; one after fails with kClosed and the producer
//     re-routes. The closer pairs its flag with the claims' seq_cst fetch_add (membarrier
//     in single-producer mode).
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
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// Spins briefly, then yields: a waiter behind a descheduled thread must give that thread
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

// Ring storage: anonymous pages mapped on demand (untouched pages cost no memory). A log
// that dies gives its ring to a small process-wide cache (bounded: src/stream/ring_cache.cc)
// and the next log of the same size takes it, so a stream created after another was
// deleted writes into pages that are already there instead of faulting in cleared ones.
// A reused ring holds the frames of the logs that used it before; ShardLog keeps them from
// ever passing for its own (see Ring::check_nibbles).
struct Ring {
  uint64_t* words = nullptr;  // nullptr: the system refused the mapping
  uint64_t bytes = 0;
  // An upper bound of the bytes from the start that were ever touched (resident memory).
  uint64_t used_bytes = 0;
  // Bit n set: a log whose secret ends in the nibble n wrote here (CheckNibble()).
  uint16_t check_nibbles = 0;
};
Ring AcquireRing(uint64_t bytes);  // a cached ring of that size, or a fresh mapping
void ReleaseRing(const Ring& ring);

// What the ring cache holds now, and how many rings it handed out again (tests, docs).
struct RingCacheStats {
  std::size_t rings = 0;
  uint64_t mapped_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t reused = 0;
};
RingCacheStats GetRingCacheStats();

// Test hook: called by a producer between its claim and its commit (log, claim position).
// Tests park a producer there; production code never sets it (one relaxed load per put).
using ClaimHook = void (*)(const void* log, uint64_t position);
inline std::atomic<ClaimHook> test_claim_hook{nullptr};
// Test hook: called by a producer whose predecessor was not published when it tried to
// publish, after its commit and before the handshake (log, claim position). Slow path only.
inline std::atomic<ClaimHook> test_publish_hook{nullptr};

enum class AppendStatus : uint8_t { kOk, kClosed, kFull };

struct AppendResult {
  AppendStatus status;
  uint64_t position = 0;      // log position of the frame
  uint64_t record_index = 0;  // ordinal of the record in the shard
  int64_t arrival_ms = 0;     // the stored arrival timestamp
};

// The end of a shard's log as a reader may start from it.
struct LatestState {
  uint64_t published = 0;             // end of the log (claimed; readers see it once published)
  uint64_t next_index = 0;            // index the next record will get
  uint64_t last_record_position = 0;  // Close() only: the last record, if next_index > 0
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
  // REQUIRES: ring.bytes is a power of two, >= kSegmentsPerRing * 64 and <= 8 GiB, and
  // ring.words maps it (AcquireRing); the log owns it and releases it when it dies.
  ShardLog(const Ring& ring, uint64_t secret, bool single_producer = false)
      : capacity_(ring.bytes),
        word_mask_(ring.bytes / 8 - 1),
        segment_bytes_(ring.bytes / kSegmentsPerRing),
        segment_shift_(static_cast<unsigned>(std::countr_zero(ring.bytes / kSegmentsPerRing))),
        secret_(SecretForRing(secret, ring.check_nibbles)),
        single_producer_(single_producer),
        words_(ring.words),
        ring_used_bytes_(ring.used_bytes),
        ring_check_nibbles_(ring.check_nibbles) {}
  ~ShardLog() {
    delete gates_.load(std::memory_order_relaxed);
    // Touched: what was claimed, and the header a producer may have looked at past it.
    const uint64_t claimed = Latest().published;
    const uint64_t touched = claimed >= capacity_ ? capacity_ : claimed + kFrameHeaderBytes;
    ReleaseRing({words_, capacity_, std::max(ring_used_bytes_, touched),
                 static_cast<uint16_t>(ring_check_nibbles_ | (1u << CheckNibble(secret_)))});
  }

  // Frame positions are multiples of kFrameAlignment (16), so position ^ secret ends in the
  // secret's low nibble: two logs whose secrets end in different nibbles never share a
  // check word (FrameCheck is a bijection of position ^ secret). A log on a reused ring
  // takes a nibble no earlier user of the ring had, so the check words left there are, to
  // it, like those of an earlier lap of its own (invariant 2); a ring whose 16 nibbles are
  // all used is cleared to zeros, as a fresh mapping is, before it is reused (ReleaseRing).
  static unsigned CheckNibble(uint64_t secret) {
    return static_cast<unsigned>(secret & (kFrameAlignment - 1));
  }
  static uint64_t SecretForRing(uint64_t secret, uint16_t used_nibbles) {
    static_assert(kFrameAlignment == 16, "one nibble of the secret per frame alignment");
    assert(used_nibbles != 0xffff);
    unsigned nibble = CheckNibble(secret);
    while (((used_nibbles >> nibble) & 1u) != 0) nibble = (nibble + 1) % kFrameAlignment;
    return (secret & ~(kFrameAlignment - 1)) | nibble;
  }

  ShardLog(const ShardLog&) = delete;
  ShardLog& operator=(const ShardLog&) = delete;

  uint64_t capacity() const { return capacity_; }
  uint64_t segment_bytes() const { return segment_bytes_; }
  bool single_producer() const { return single_producer_; }
  // The largest frame the ring accepts.
  uint64_t max_frame_bytes() const { return segment_bytes_; }
  uint64_t CheckAt(uint64_t position) const { return FrameCheck(position, secret_); }
  // The segment a position is in (segments are a power of two: a shift).
  uint64_t SegmentOf(uint64_t position) const { return position >> segment_shift_; }

  // Appends one record. kClosed: the shard closed (re-route); kFull: a lossless reader has
  // not read the space this record needs.
  [[gnu::always_inline]] AppendResult Append(std::string_view key, std::string_view data,
                                             int64_t now_ms) {
    const uint64_t frame = FrameBytes(key.size(), data.size());
    assert(frame <= segment_bytes_);
    SingleProducerCheck check(*this);
    for (;;) {
      Claim c;
      if (gates_.load(std::memory_order_acquire) == nullptr) {
        c = ClaimFree(frame);
      } else {
        const AppendStatus s = ClaimGated(frame, &c);
        if (s != AppendStatus::kOk) return {s};
      }
      if (closed_.load(std::memory_order_seq_cst) && c.position >= CloseEnd()) {
        // Pairs with Close(): the caller then sees the routing published before it.
        std::atomic_thread_fence(std::memory_order_acquire);
        return {AppendStatus::kClosed};
      }
      if (ClaimHook hook = test_claim_hook.load(std::memory_order_relaxed)) [[unlikely]] {
        hook(this, c.position);
      }
      const uint64_t t = c.position;
      const uint64_t end = t + c.bytes;
      WaitForOverwritable(end);
      MarkSegments(t, end);
      // Orders the marks before the frame's stores: a reader that copied any byte of this
      // frame then sees, after its acquire fence, that its segment was reused.
      std::atomic_thread_fence(std::memory_order_release);
      const uint64_t boundary = (SegmentOf(t) + 1) << segment_shift_;
      if (end >= boundary) {
        // The claim touches a segment boundary (invariant 4): it becomes padding. The hint
        // goes first: until the padding is committed the log cannot get a ring past it, so
        // a producer descheduled here never leaves a hint far behind (invariant 1).
        LeaveHint(end, c.count + c.claims);
        WritePaddingFrame(t, boundary - t);
        WritePaddingFrame(boundary, end - boundary);
        if (c.claims == 1) {
          Publish(t, end == boundary ? t : boundary, end);
          continue;  // claim again, in the next segment
        }
        // A gated claim took the padding and the frame at once (two claim numbers).
        return WriteAndPublish(t, boundary, end, c.count + 1, key, data, now_ms);
      }
      return WriteAndPublish(t, t, end, c.count, key, data, now_ms);
    }
  }

  // Acquire: every frame below the returned position is fully written.
  uint64_t published() const { return published_.load(std::memory_order_acquire); }

  // End of the claimed log and the index the next record will get. Frames in
  // [published, end) are being written. Once closed: the final end.
  LatestState Latest() const {
    if (closed_.load(std::memory_order_acquire)) {
      const uint64_t end = CloseEnd();
      return {end, close_next_index_.load(std::memory_order_acquire), 0,
              max_arrival_ms_.load(std::memory_order_relaxed)};
    }
    const Claim c = Unpack(claim_.load(std::memory_order_acquire));
    return {c.position, c.count - SegmentOf(c.position), 0,
            max_arrival_ms_.load(std::memory_order_relaxed)};
  }
  uint64_t claimed() const { return Latest().published; }

  bool closed() const { return closed_.load(std::memory_order_acquire); }

  // True when something was claimed at or after `position`, or the shard closed: a
  // subscriber must not go to sleep. seq_cst: pairs with the producers' seq_cst claim (in
  // single-producer mode, the sleeper's HeavyBarrier() first).
  bool HasClaimsAfter(uint64_t position) const {
    if (closed_.load(std::memory_order_seq_cst)) return true;
    return Unpack(claim_.load(std::memory_order_seq_cst)).position > position;
  }

  // The oldest position that is still intact, given a claimed() value: a segment start.
  uint64_t Horizon(uint64_t claimed_end) const {
    const uint64_t segments = SegmentOf(claimed_end + segment_bytes_ - 1);
    return segments > kSegmentsPerRing ? (segments - kSegmentsPerRing) << segment_shift_ : 0;
  }
  uint64_t Horizon() const { return Horizon(claimed()); }

  // True when no byte the caller read in [begin, end) (published bytes only) was
  // overwritten. Reads only the segment marks, which change once per segment, never the
  // producers' claim word: a reader that keeps up does not steal the line every put writes.
  // REQUIRES: the caller read the ring before calling (the fence orders those reads).
  bool IntactAfterReads(uint64_t begin, uint64_t end) const {
    std::atomic_thread_fence(std::memory_order_acquire);
    const uint64_t last = SegmentOf(std::max(end, begin + 1) - 1);
    for (uint64_t segment = SegmentOf(begin); segment <= last; ++segment) {
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
    if ((position & (kFrameAlignment - 1)) != 0) return 0;
    // Segments are a power of two (a quarter of a power-of-two ring): mask, not divide.
    return segment_bytes_ - (position & (segment_bytes_ - 1));
  }

  FrameView FrameAt(uint64_t position) const { return FrameView(WordsAt(position)); }

  // Arrival time of the newest record (approximate: no ordering with the frames).
  int64_t latest_arrival_ms() const { return max_arrival_ms_.load(std::memory_order_relaxed); }

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
      const uint64_t room = RoomInSegment(p);
      const FrameView frame = FrameAt(p);
      // A torn header (the frame is being overwritten) stops the copy; the lap check that
      // follows then restarts the read.
      if (!frame.Plausible(std::min(room, published - p), CheckAt(p))) break;
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
    const uint64_t published_end = published();
    if (position >= published_end || RoomInSegment(position) < kFrameHeaderBytes) {
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
  // (or up to padding that ends it) would continue: a ContinuationSequenceNumber.
  bool IsContinuation(uint64_t position, uint64_t record_index) const {
    const LatestState latest = Latest();
    if (position == latest.published) return record_index == latest.next_index;
    const uint64_t published_end = published();
    if (position > published_end || record_index > latest.next_index || position < Horizon()) {
      return false;
    }
    // Padding up to the next record, or up to the end of what is published.
    uint64_t p = position;
    for (int steps = 0; steps < 3 && p < published_end; ++steps) {
      const uint64_t room = RoomInSegment(p);
      if (room == 0) return false;
      const FrameView f = FrameAt(p);
      if (!f.Plausible(std::min(room, published_end - p), CheckAt(p))) return false;
      if (!f.is_padding()) {
        const bool ok = f.record_index() == record_index && steps > 0;
        return ok && IntactAfterReads(position, p + kFrameHeaderBytes);
      }
      p += f.padded_length();
    }
    // Padding to the end of the log (nothing in flight): the next record takes the next index.
    if (p != published_end || published_end != latest.published) return false;
    return record_index == latest.next_index && IntactAfterReads(position, p);
  }

  // Where a reader starting at time `t_ms` begins: the first record that arrived at or
  // after t_ms, or the end of what is published. Every segment starts with a frame, so
  // whole segments are skipped by their first frame.
  struct Seek {
    uint64_t position;
    uint64_t next_index;
    bool index_known;
  };
  Seek SeekTime(int64_t t_ms) const {
    for (;;) {
      const LatestState latest = Latest();
      const uint64_t published_end = published();
      const uint64_t horizon = Horizon();
      // Skip to the last segment whose first record is older than t_ms.
      uint64_t start = horizon;
      for (uint64_t s = horizon + segment_bytes_; s < published_end; s += segment_bytes_) {
        const FrameView first = FrameAt(s);
        if (first.is_padding() || first.arrival_ms() >= t_ms) break;  // walk from here
        start = s;
      }
      Seek found{published_end, latest.next_index, published_end == latest.published};
      uint64_t p = start;
      while (p < published_end) {
        const uint64_t room = RoomInSegment(p);
        const FrameView frame = FrameAt(p);
        if (!frame.Plausible(std::min(room, published_end - p), CheckAt(p))) {
          break;  // torn: the lap check below restarts
        }
        if (!frame.is_padding() && frame.arrival_ms() >= t_ms) {
          found = Seek{p, frame.record_index(), true};
          break;
        }
        p += frame.padded_length();
      }
      if (IntactAfterReads(start, std::min(p, published_end) + 1)) return found;
    }
  }

  // ---- Control plane ----

  // Closes the shard: later claims fail with kClosed. Waits until every claim made before
  // the close is published (helping to publish), then returns the final state, with the
  // last record's position. REQUIRES: not called concurrently with another Close().
  // Defined in src/stream/shard_set.cc.
  LatestState Close();

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
  static constexpr uint64_t kClaimOne = uint64_t{1} << 32;  // one claim number

  struct Claim {
    uint64_t position = 0;  // bytes
    uint64_t count = 0;     // claim number of the first frame
    uint64_t bytes = 0;
    uint64_t claims = 1;  // claim numbers taken (2: padding and frame at once)
  };

  // Debug builds: catches two threads appending at once to a single-producer shard.
  struct SingleProducerCheck {
#ifndef NDEBUG
    explicit SingleProducerCheck(ShardLog& log) : log_(log) {
      if (log_.single_producer_ && log_.sp_busy_.exchange(true, std::memory_order_acquire)) {
        std::fputs("riffle: two threads put into a single-producer shard at once\n", stderr);
        std::abort();
      }
    }
    ~SingleProducerCheck() {
      if (log_.single_producer_) log_.sp_busy_.store(false, std::memory_order_release);
    }
    ShardLog& log_;
#else
    explicit SingleProducerCheck(ShardLog&) {}
#endif
  };

  const uint64_t* WordsAt(uint64_t position) const {
    return words_ + ((position / 8) & word_mask_);
  }
  uint64_t* MutableWordsAt(uint64_t position) { return words_ + ((position / 8) & word_mask_); }

  // Rebuilds the full position and claim number from a packed claim word (invariant 1).
  Claim Unpack(uint64_t word) const {
    const uint64_t hint_units = hint_position_.load(std::memory_order_relaxed) / 8;
    const uint64_t hint_count = hint_count_.load(std::memory_order_relaxed);
    const auto units_delta =
        static_cast<int32_t>(static_cast<uint32_t>(word) - static_cast<uint32_t>(hint_units));
    const uint64_t units = hint_units + static_cast<uint64_t>(static_cast<int64_t>(units_delta));
    // word == units + count * 2^32 (mod 2^64): removing the units leaves the count.
    const auto count_low = static_cast<uint32_t>((word - units) >> 32);
    const auto count_delta = static_cast<int32_t>(count_low - static_cast<uint32_t>(hint_count));
    return {units * 8, hint_count + static_cast<uint64_t>(static_cast<int64_t>(count_delta)), 0, 1};
  }

  Claim ClaimFree(uint64_t frame) {
    const uint64_t delta = frame / 8 + kClaimOne;
    uint64_t old;
    if (single_producer_) {
      old = claim_.load(std::memory_order_relaxed);
      claim_.store(old + delta, std::memory_order_relaxed);
      // Orders the claim before the closed_ and sleeper loads that follow (Close() and a
      // sleeping subscriber run the heavy side of the barrier).
      LightBarrier();
    } else {
      // seq_cst (the same locked instruction as relaxed on x86-64) so that a subscriber
      // about to sleep, or a closer, which check the claim word after announcing
      // themselves, cannot miss this claim.
      old = claim_.fetch_add(delta, std::memory_order_seq_cst);
    }
    Claim c = Unpack(old);
    c.bytes = frame;
    return c;
  }

  AppendStatus ClaimGated(uint64_t frame, Claim* out) {
    uint64_t word = claim_.load(std::memory_order_relaxed);
    for (;;) {
      if (closed_.load(std::memory_order_acquire)) {
        std::atomic_thread_fence(std::memory_order_acquire);
        return AppendStatus::kClosed;
      }
      Claim c = Unpack(word);
      const uint64_t t = c.position;
      const uint64_t boundary = (SegmentOf(t) + 1) << segment_shift_;
      // A gated claim takes the padding and the frame at once, so it never has to retry.
      const bool crosses = t + frame >= boundary;
      const uint64_t end = crosses ? boundary + frame : t + frame;
      // Segment-granular, like Horizon(): a gated reader's whole segment stays intact.
      if (end > capacity_ && end - capacity_ > (MinGate() >> segment_shift_ << segment_shift_)) {
        return AppendStatus::kFull;
      }
      const uint64_t claims = crosses ? 2 : 1;
      const uint64_t next = word + (end - t) / 8 + claims * kClaimOne;
      if (claim_.compare_exchange_weak(word, next, std::memory_order_seq_cst,
                                       std::memory_order_relaxed)) {
        c.bytes = end - t;
        c.claims = claims;
        *out = c;
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

  // The close position, once Close() published it (a claim seen closed waits for it).
  uint64_t CloseEnd() const {
    uint64_t end;
    Backoff backoff;
    while ((end = close_end_.load(std::memory_order_acquire)) == kUnset) backoff.Pause();
    return end;
  }

  // A crossing claim leaves where the log stands (for Unpack). Hints only need to be near.
  void LeaveHint(uint64_t position, uint64_t count) {
    hint_position_.store(position, std::memory_order_relaxed);
    hint_count_.store(count, std::memory_order_relaxed);
  }

  // Records, before any byte of [t, end) is written, which segment each touched storage
  // slot now holds. Segments are entered in claim order, but marks may be set out of order
  // by racing producers, so a mark only ever grows.
  void MarkSegments(uint64_t t, uint64_t end) {
    for (uint64_t segment = SegmentOf(t); segment <= SegmentOf(end - 1); ++segment) {
      std::atomic<uint64_t>& mark = segment_marks_[segment % kSegmentsPerRing];
      uint64_t current = mark.load(std::memory_order_relaxed);
      while (current < segment &&
             !mark.compare_exchange_weak(current, segment, std::memory_order_relaxed)) {
      }
    }
  }

  void WaitForOverwritable(uint64_t end) {
    if (end <= capacity_) return;
    if (published_.load(std::memory_order_acquire) >= end - capacity_) return;
    // Invariant 6: a frame a whole ring behind is still being written. Help publish what
    // is committed, and give its producer the core.
    Backoff backoff;
    while (published_.load(std::memory_order_acquire) < end - capacity_) {
      HelpFrom(published_.load(std::memory_order_acquire));
      backoff.Pause();
    }
  }

  // A padding frame of `bytes` (none when 0) at `position`, committed by its check word.
  void WritePaddingFrame(uint64_t position, uint64_t bytes) {
    if (bytes == 0) return;
    uint64_t* w = MutableWordsAt(position);
    WritePadding(w, bytes);
    std::atomic_ref<uint64_t>(w[1]).store(CheckAt(position), std::memory_order_release);
  }

  [[gnu::always_inline]] AppendResult WriteAndPublish(uint64_t claim_start, uint64_t t,
                                                      uint64_t end, uint64_t count,
                                                      std::string_view key, std::string_view data,
                                                      int64_t now_ms) {
    // Arrival times kept monotonic per shard where producers do not race; a reader clamps
    // what a race leaves out of order (read_path.h).
    int64_t arrival = max_arrival_ms_.load(std::memory_order_relaxed);
    if (now_ms > arrival) {
      arrival = now_ms;
      max_arrival_ms_.store(now_ms, std::memory_order_relaxed);
    }
    const uint64_t index = count - SegmentOf(t);
    uint64_t* w = MutableWordsAt(t);
    WriteFrameWord0(w, key.size(), data.size());
    StoreWordRelaxed(w + 2, index);
    StoreWordRelaxed(w + 3, static_cast<uint64_t>(arrival));
    GatherToWords(w + kFrameHeaderWords, key.data(), key.size(), data.data(), data.size());
    // The commit: the check word last, with release (invariant 2).
    std::atomic_ref<uint64_t>(w[1]).store(CheckAt(t), std::memory_order_release);
    Publish(claim_start, t, end);
    return {AppendStatus::kOk, t, index, arrival};
  }

  // Invariant 3. `second` is where the claim's second frame starts (== first when one).
  void Publish(uint64_t first, uint64_t second, uint64_t end) {
    if (single_producer_) {
      published_.store(end, std::memory_order_release);
      return;
    }
    uint64_t expected = first;
    if (published_.compare_exchange_strong(expected, end, std::memory_order_seq_cst,
                                           std::memory_order_relaxed) ||
        (expected == second && second != first &&
         published_.compare_exchange_strong(expected, end, std::memory_order_seq_cst,
                                            std::memory_order_relaxed))) {
      HelpFrom(end);
      return;
    }
    if (expected >= end) return;  // a helper already published it
    if (ClaimHook hook = test_publish_hook.load(std::memory_order_relaxed)) [[unlikely]] {
      hook(this, first);
    }
    // Our predecessor is not published: whoever publishes it must see our commit, or we
    // must see that it is our turn (a store-load handshake, both sides seq_cst).
    ReassertCommit(first);
    if (second != first) ReassertCommit(second);
    const uint64_t now = published_.load(std::memory_order_seq_cst);
    if (now == first || now == second) {
      expected = now;
      if (published_.compare_exchange_strong(expected, end, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
        HelpFrom(end);
      }
    }
  }

  // The store side of the handshake: a seq_cst read-modify-write of the frame's check word
  // that leaves it as it is. Never a store: by now a helper may have published the frame
  // and producers a lap or more ahead may have reused its storage (this producer can be
  // descheduled here for any time); a store would then write this lap's check into a later
  // frame, which then never counts as committed (every producer of the shard then waits in
  // WaitForOverwritable) or whose data it corrupts. The compare-and-swap changes nothing
  // whatever the word holds.
  void ReassertCommit(uint64_t position) {
    uint64_t* w = MutableWordsAt(position);
    uint64_t check = CheckAt(position);
    std::atomic_ref<uint64_t>(w[1]).compare_exchange_strong(check, check,
                                                            std::memory_order_seq_cst);
  }

  // The end of the committed frame at `position`, or 0 when it is not committed yet.
  uint64_t CommittedEnd(uint64_t position) const {
    if (RoomInSegment(position) == 0) return 0;
    const uint64_t* w = WordsAt(position);
    if (std::atomic_ref<const uint64_t>(w[1]).load(std::memory_order_seq_cst) !=
        CheckAt(position)) {
      return 0;
    }
    return position + AlignFrame(static_cast<uint32_t>(LoadWordRelaxed(w)));
  }

  // Moves published_ over committed frames from `from` (== published_ after our CAS), so
  // that frames whose producers left before their turn become readable: walks up to 256
  // committed frames, publishes them with one CAS, and looks again at the frame it stopped
  // at (its producer may have committed after the walk: the store-load handshake).
  void HelpFrom(uint64_t from) {
    uint64_t p = from;
    for (;;) {
      uint64_t q = p;
      for (int n = 0; n < 256; ++n) {
        const uint64_t next = CommittedEnd(q);
        if (next == 0) break;
        q = next;
      }
      if (q == p) return;
      uint64_t expected = p;
      if (!published_.compare_exchange_strong(expected, q, std::memory_order_seq_cst,
                                              std::memory_order_relaxed)) {
        return;  // another producer is publishing from here
      }
      p = q;
    }
  }

  // Below the horizon the frame is gone: accept a number whose index is below the first
  // retained record's and whose position leaves room for that many frames.
  PositionCheck TrimmedIndexPlausible(uint64_t position, uint64_t record_index) const {
    if ((position & (kFrameAlignment - 1)) != 0 || record_index > position / FrameBytes(1, 0)) {
      return PositionCheck::kNotARecord;
    }
    const Seek first = SeekTime(INT64_MIN);
    return record_index < first.next_index ? PositionCheck::kTrimmed : PositionCheck::kNotARecord;
  }

  // Single-producer mode: a compiler barrier when the closer and sleepers use membarrier,
  // a full fence otherwise.
  static void LightBarrier() {
    if (GlobalEpochs().asymmetric.load(std::memory_order_relaxed)) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
  }

  const uint64_t capacity_;
  const uint64_t word_mask_;
  const uint64_t segment_bytes_;
  const unsigned segment_shift_;  // log2(segment_bytes_): shifts, not divisions, per put
  const uint64_t secret_;
  const bool single_producer_;
  uint64_t* const words_;
  const uint64_t ring_used_bytes_;     // as the ring came (AcquireRing)
  const uint16_t ring_check_nibbles_;  // as the ring came; this log adds its own

  // Producers hit claim_ on every claim, and published_ on every publish; readers read
  // published_ on every poll. Each on its own line, with what changes as rarely beside it.
  alignas(64) std::atomic<uint64_t> claim_{0};
  alignas(64) std::atomic<uint64_t> published_{0};
  alignas(64) std::atomic<bool> closed_{false};
  std::atomic<uint64_t> close_end_{kUnset};
  std::atomic<uint64_t> close_next_index_{0};
  std::atomic<uint64_t> hint_position_{0};
  std::atomic<uint64_t> hint_count_{0};
  std::atomic<int64_t> max_arrival_ms_{0};
#ifndef NDEBUG
  std::atomic<bool> sp_busy_{false};
#endif
  // segment_marks_[i]: the newest segment whose producers may write storage slot i (slot i
  // first holds segment i). Read by every reader's lap check, written once per segment.
  alignas(64) std::array<std::atomic<uint64_t>, kSegmentsPerRing> segment_marks_{0, 1, 2, 3};
  alignas(64) std::atomic<const GateList*> gates_{nullptr};
  std::mutex gates_mu_;
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_SHARD_LOG_H_
