// ShardLog: one shard's log, a multi-producer, multi-reader byte ring of variable-length
// frames. The frame layout is frame.h's; this file owns the ring's algorithm: claims,
// commits, the committed prefix, laps, gates, closing, and the reads that copy frames out.
//
// Thread safety: Append() from any number of threads (one at a time in single-producer
// mode); readers from any number of threads, each with its own position; Close() and
// SetGates() from the control plane.
//
// Invariants (a producer never waits for another producer, except in 6):
//  1. A claim takes [t, t + n) of the unbounded log and the next claim number c with one
//     fetch_add on claim_, which packs (position / 8, claim number) modulo 2^32 each; the
//     full values are rebuilt from hints a producer crossing a segment leaves before it
//     commits its padding (a claim is never 2^31 words or claims away from a hint: rings
//     are at most 8 GiB, and the log cannot get a ring past an uncommitted frame).
//     Single-producer mode stores instead of fetch_add: no locked instruction.
//  2. A frame is committed by its check word (FrameCheck(t), written last, release): a word
//     no stale byte of an earlier lap, of an earlier log on a reused ring (CheckNibble) and
//     no record data can equal. Padding frames are committed the same way (frames are
//     16-byte aligned, so every padding has room for it). A frame start is written once a
//     lap: nothing else is ever committed there first (readers would take it for the frame).
//  3. Readers find committed frames themselves: from a frame start they follow committed
//     frames (check word loaded with acquire, then the header and the body) and stop at the
//     first frame not committed. A put therefore publishes nothing: its commit is its last
//     store into the ring and its last write to anything a reader reads. Frames after a
//     frame still being written stay unread until it commits, so a reader's order is the
//     log's order, and a put that returned is ordered before every put that starts later.
//     prefix_ is a lower bound of the end of the longest committed prefix, moved forward
//     (CAS) by readers that read committed frames contiguous with it, and by whoever walks
//     committed frames from it: the producer whose claim crosses a multiple of the walk
//     stride (64 KiB, or a segment if smaller) when readers did not move it there, a
//     producer about to overwrite (6), Close(), the control plane's seeks. A single producer
//     stores its end there after every put instead (a plain store), and its readers stop
//     there (ReadBound): they then poll that word, not the frame line being written.
//  4. Every boundary between segments is touched by exactly one claim (t < boundary <= end),
//     and that claim becomes padding (the producer claims again; a gated claim, and a claim
//     made again that crosses too, take the padding and the frame after the boundary at once,
//     two claim numbers, so a put pads at most two segments' ends). So a record claimed with
//     number c in segment s has the dense record index c - s: exact indexes, hence exact
//     missed counts, without ordering the producers.
//  5. A frame never crosses a segment boundary; every segment starts with a frame. Before
//     writing into segment j's storage, a producer raises that slot's mark to j; a reader
//     copies, fences (acquire) and checks that the marks of what it read did not move past
//     (seqlock style); a reader that fell behind resumes at Horizon().
//  6. Before writing [t, end) a producer needs prefix_ >= end - capacity, walking the
//     committed frames itself when it is not: the only wait on other producers, when a
//     whole ring was claimed past a frame still being written (a producer descheduled
//     mid-put for a full lap of the ring).
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

enum class AppendStatus : uint8_t { kOk, kClosed, kFull };

// What a successful Append() wrote. An out-parameter rather than part of the return value:
// a struct returned from several paths was merged through memory with wide copies that
// store forwarding could not serve (about 9 ns a put).
struct AppendResult {
  uint64_t position = 0;      // log position of the frame
  uint64_t record_index = 0;  // ordinal of the record in the shard
  int64_t arrival_ms = 0;     // the stored arrival timestamp
};

// The end of a shard's log as a reader may start from it.
struct LatestState {
  uint64_t end = 0;                   // end of the claimed log
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
        walk_shift_(std::min(segment_shift_, kWalkStrideShift)),
        secret_(SecretForRing(secret, ring.check_nibbles)),
        single_producer_(single_producer),
        words_(ring.words),
        ring_used_bytes_(ring.used_bytes),
        ring_check_nibbles_(ring.check_nibbles) {}
  ~ShardLog() {
    delete gates_.load(std::memory_order_relaxed);
    // Touched: what was claimed, and the header a producer may have looked at past it.
    const uint64_t claimed = Latest().end;
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
  // The largest frame the ring accepts: smaller than a segment (see Append).
  uint64_t max_frame_bytes() const { return segment_bytes_ - kFrameAlignment; }
  uint64_t CheckAt(uint64_t position) const { return FrameCheck(position, secret_); }
  // The segment a position is in (segments are a power of two: a shift).
  uint64_t SegmentOf(uint64_t position) const { return position >> segment_shift_; }

  // Appends one record, filling `out` on kOk. kClosed: the shard closed (re-route); kFull:
  // a lossless reader has not read the space this record needs.
  [[gnu::always_inline]] AppendStatus Append(std::string_view key, std::string_view data,
                                             int64_t now_ms, AppendResult& out) {
    const uint64_t frame = FrameBytes(key.size(), data.size());
    assert(frame < segment_bytes_);
    SingleProducerCheck check(*this);
    bool again = false;  // a claim crossed a segment's end and became padding
    for (;;) {
      Claim c;
      if (gates_.load(std::memory_order_acquire) == nullptr) {
        c = again ? ClaimWhole(frame) : ClaimFree(frame);
      } else {
        const AppendStatus s = ClaimGated(frame, &c);
        if (s != AppendStatus::kOk) return s;
      }
      if (closed_.load(std::memory_order_seq_cst) && c.position >= CloseEnd()) {
        // Pairs with Close(): the caller then sees the routing published before it.
        std::atomic_thread_fence(std::memory_order_acquire);
        return AppendStatus::kClosed;
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
      uint64_t at = t;
      uint64_t count = c.count;
      if (end >= boundary) {
        // The claim touches a segment boundary (invariant 4): it becomes padding. The hint
        // goes first: until the padding is committed the log cannot get a ring past it, so
        // a producer descheduled here never leaves a hint far behind (invariant 1).
        LeaveHint(end, c.count + c.claims);
        WritePaddingFrame(t, boundary - t);
        if (c.claims == 1) {
          WritePaddingFrame(boundary, end - boundary);
          KeepPrefixNear(t, end);
          again = true;
          continue;  // claim again, in the next segment
        }
        // A gated claim took the padding and the frame at once (two claim numbers). Nothing
        // else is written at `boundary` first: readers take any frame whose check word is
        // there for committed, so a padding written there and then overwritten by the
        // record would let a reader skip the record, or read it torn.
        at = boundary;
        count = c.count + 1;
      }
      WriteAndCommit(at, count, key, data, now_ms, out);
      KeepPrefixNear(t, end);
      return AppendStatus::kOk;
    }
  }

  // Where a reader's copy stops at the latest. A single producer publishes its end with a
  // plain store every put (no locked instruction), and its readers poll that word instead of
  // the frame line it is writing (a reader that keeps up would otherwise take the line from
  // the producer between its stores). Many producers publish nothing: readers scan.
  uint64_t ReadBound() const {
    return single_producer_ ? prefix_.load(std::memory_order_acquire) : UINT64_MAX;
  }
  // Whether a reader at `position` (a frame start) has something to read.
  bool Readable(uint64_t position) const {
    return single_producer_ ? prefix_.load(std::memory_order_acquire) > position
                            : CommittedAt(position);
  }

  // Whether the frame at `position` (a frame start) is committed in this lap. Acquire: the
  // frame's header and body, written before its check word, are then visible; the caller
  // still checks IntactAfterReads() after reading them (a later lap may overwrite it).
  bool CommittedAt(uint64_t position) const {
    if (RoomInSegment(position) == 0) return false;
    return std::atomic_ref<const uint64_t>(WordsAt(position)[1]).load(std::memory_order_acquire) ==
           CheckAt(position);
  }

  // A reader read committed frames over [begin, end) and found them intact: when that
  // continues the committed prefix by a good part of a segment, it moves the prefix there
  // (one CAS a quarter segment at most), which spares the producers their walk.
  void NoteCommitted(uint64_t begin, uint64_t end) const {
    if (single_producer_) return;  // the producer keeps it exact
    uint64_t p = prefix_.load(std::memory_order_relaxed);
    if (p < begin || p + segment_bytes_ / 4 > end) return;
    // Release: the reader's acquire loads of the frames' check words come before, so a
    // producer that acquires the new prefix overwrites frames whose writes it has seen.
    prefix_.compare_exchange_strong(p, end, std::memory_order_release, std::memory_order_relaxed);
  }

  // The end of the longest prefix of committed frames (walking, and recording, what was
  // committed since the last walk: control plane only, up to a ring of frames). Every frame
  // below it is fully written (acquire).
  uint64_t CommittedPrefix() const {
    AdvancePrefix();
    return prefix_.load(std::memory_order_acquire);
  }

  // End of the claimed log and the index the next record will get. Frames in
  // [CommittedPrefix(), end) may be being written. Once closed: the final end.
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
  uint64_t claimed() const { return Latest().end; }

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

  // True when no byte the caller read in [begin, end) (committed bytes only) was
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

  // Where a copy stopped: `end` is the position after the last frame copied; `more` says
  // that it stopped at `limit` or `max_bytes` with a committed frame after it.
  struct CopyEnd {
    uint64_t end;
    bool more;
  };

  // Copies whole committed frames from `position` (a frame start) into `out`'s storage,
  // stopping at the first frame not committed, after `limit` records, or before exceeding
  // `max_bytes` of payload. The copy is optimistic: the caller checks
  // IntactAfterReads(position, end) before trusting it.
  CopyEnd CopyFrames(uint64_t position, int limit, uint64_t max_bytes,
                     GetRecordsResult& out) const {
    const uint64_t bound = ReadBound();
    std::vector<uint64_t>& arena = RecordsStorage::arena(out);
    auto& frames = RecordsStorage::frames(out);
    frames.clear();
    std::size_t used = 0;
    uint64_t payload_bytes = 0;
    uint64_t p = position;
    int n = 0;
    for (;;) {
      // Not committed: being written, not claimed yet, or overwritten by a later lap (the
      // lap check that follows then restarts the read).
      if (p >= bound || !CommittedAt(p)) return {p, false};
      if (n == limit) return {p, true};  // (padding there may end the log: `more` is a hint)
      // Word 0 after the acquire of the check word: the length the producer committed, or
      // a later lap's (torn: the copy stops, and the lap check restarts the read).
      const FrameView frame = FrameAt(p);
      if (!frame.Plausible(RoomInSegment(p), CheckAt(p))) return {p, false};
      const uint64_t padded = frame.padded_length();
      if (frame.is_padding()) {
        p += padded;
        continue;
      }
      const uint64_t payload = frame.length() - kFrameHeaderBytes;
      if (n > 0 && payload_bytes + payload > max_bytes) return {p, true};
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
  }

  // Whether `position` starts the record with index `record_index` (a sequence number
  // handed back by a reader). Never reads outside the ring.
  PositionCheck CheckRecord(uint64_t position, uint64_t record_index) const {
    if (position >= claimed() || RoomInSegment(position) < kFrameHeaderBytes) {
      return PositionCheck::kNotARecord;
    }
    // Only a committed frame tells what is there. Where every frame below `position` is
    // committed (a shard's start, a continuation: where a reader stopped), the one at it
    // that is still being written is waited for, as readers wait for it; a position behind
    // a frame in flight cannot be one a reader stopped at.
    if (CommittedPrefix() >= position && !WaitForFrameAt(position)) {
      return PositionCheck::kNotARecord;
    }
    for (;;) {
      const uint64_t horizon = Horizon();
      if (position < horizon) return TrimmedIndexPlausible(position, record_index);
      const bool committed = CommittedAt(position);
      const FrameView frame = FrameAt(position);
      const bool plausible = committed &&
                             frame.Plausible(RoomInSegment(position), CheckAt(position)) &&
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
    if (position == latest.end) return record_index == latest.next_index;
    if (position > latest.end || record_index > latest.next_index || position < Horizon() ||
        CommittedPrefix() < position) {
      return false;
    }
    // Padding up to the next record, or up to that end; each frame on the way still being
    // written is waited for (those below it are committed), as CheckRecord waits. Paddings
    // only, however many: a put pads up to three frames in a row, and producers that cross
    // a segment's end together add theirs; the walk stays inside the retained log.
    uint64_t p = position;
    for (int steps = 0; p < latest.end; ++steps) {
      if (!WaitForFrameAt(p)) return false;
      // A frame start, padding included, carries its position's check word: bytes inside a
      // record that look like a padding header do not (a forged number walked into them).
      if (!CommittedAt(p)) return false;
      const uint64_t room = RoomInSegment(p);
      const FrameView f = FrameAt(p);
      if (!f.Plausible(std::min(room, latest.end - p), CheckAt(p))) return false;
      if (!f.is_padding()) {
        const bool ok = f.record_index() == record_index && steps > 0;
        return ok && IntactAfterReads(position, p + kFrameHeaderBytes);
      }
      p += f.padded_length();
    }
    // Padding to that end: the next record takes the next index.
    if (p != latest.end) return false;
    return record_index == latest.next_index && IntactAfterReads(position, p);
  }

  // Where a reader starting at time `t_ms` begins: the first record that arrived at or
  // after t_ms, or the end of the committed prefix. Every segment starts with a frame, so
  // whole segments are skipped by their first frame.
  struct Seek {
    uint64_t position;
    uint64_t next_index;
    bool index_known;
  };
  Seek SeekTime(int64_t t_ms) const {
    for (;;) {
      const LatestState latest = Latest();
      // Bounded by the committed prefix: a segment start past a frame still being written
      // must not let the seek skip that frame.
      const uint64_t committed_end = CommittedPrefix();
      const uint64_t horizon = Horizon();
      // Skip to the last segment whose first record is older than t_ms.
      uint64_t start = horizon;
      for (uint64_t s = horizon + segment_bytes_; s < committed_end; s += segment_bytes_) {
        const FrameView first = FrameAt(s);
        if (first.is_padding() || first.arrival_ms() >= t_ms) break;  // walk from here
        start = s;
      }
      // Not found: the end of the committed prefix, whose next index is known when nothing
      // is in flight, when the walk met a record before it, or at the log's start (a
      // subscription's continuation needs it: see Subscription::Continuation).
      Seek found{committed_end, committed_end == 0 ? 0 : latest.next_index,
                 committed_end == 0 || committed_end == latest.end};
      uint64_t p = start;
      while (p < committed_end) {
        const uint64_t room = RoomInSegment(p);
        const FrameView frame = FrameAt(p);
        if (!frame.Plausible(std::min(room, committed_end - p), CheckAt(p))) {
          break;  // torn: the lap check below restarts
        }
        if (!frame.is_padding()) {
          if (frame.arrival_ms() >= t_ms) {
            found = Seek{p, frame.record_index(), true};
            break;
          }
          found.next_index = frame.record_index() + 1;
          found.index_known = true;
        }
        p += frame.padded_length();
      }
      if (IntactAfterReads(start, std::min(p, committed_end) + 1)) return found;
    }
  }

  // ---- Control plane ----

  // Closes the shard: later claims fail with kClosed. Waits until every claim made before
  // the close is committed (walking the committed frames), then returns the final state,
  // with the last record's position. REQUIRES: not called concurrently with another Close().
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
  static constexpr unsigned kWalkStrideShift = 16;          // 64 KiB
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

  // A claim of `frame` bytes from the claim word `word` that, when the frame does not fit
  // before the segment's end, takes the padding up to it and the frame after it at once
  // (two claim numbers), so that it never claims again.
  struct WholeClaim {
    Claim claim;
    uint64_t next_word;  // the claim word after it
  };
  WholeClaim PlanWhole(uint64_t word, uint64_t frame) const {
    Claim c = Unpack(word);
    const uint64_t t = c.position;
    const uint64_t boundary = (SegmentOf(t) + 1) << segment_shift_;
    const bool crosses = t + frame >= boundary;
    const uint64_t end = crosses ? boundary + frame : t + frame;
    c.bytes = end - t;
    c.claims = crosses ? 2 : 1;
    return {c, word + c.bytes / 8 + c.claims * kClaimOne};
  }

  // A claim after one that crossed a segment's end takes the padding and the frame at once
  // (PlanWhole) if it crosses too. A frame over half a segment would otherwise start so
  // late in each next segment that it crossed its end again, and again, padding nearly a
  // segment each time (up to segment / 16 times for a frame 16 bytes short of one: laps of
  // the ring, and every record on it, gone for one put). So a put pads at most two
  // segments' ends, and the first claim stays one fetch_add (smaller frames never cross
  // twice: the second claim starts less than half a segment in).
  Claim ClaimWhole(uint64_t frame) {
    uint64_t word = claim_.load(std::memory_order_relaxed);
    if (single_producer_) {
      const WholeClaim w = PlanWhole(word, frame);
      claim_.store(w.next_word, std::memory_order_relaxed);
      LightBarrier();  // as ClaimFree
      return w.claim;
    }
    for (;;) {
      const WholeClaim w = PlanWhole(word, frame);
      // seq_cst, as ClaimFree's fetch_add (subscribers about to sleep, closers).
      if (claim_.compare_exchange_weak(word, w.next_word, std::memory_order_seq_cst,
                                       std::memory_order_relaxed)) {
        return w.claim;
      }
    }
  }

  AppendStatus ClaimGated(uint64_t frame, Claim* out) {
    uint64_t word = claim_.load(std::memory_order_relaxed);
    for (;;) {
      if (closed_.load(std::memory_order_acquire)) {
        std::atomic_thread_fence(std::memory_order_acquire);
        return AppendStatus::kClosed;
      }
      // A gated claim takes the padding and the frame at once, so it never has to retry.
      const WholeClaim w = PlanWhole(word, frame);
      const uint64_t end = w.claim.position + w.claim.bytes;
      // Segment-granular, like Horizon(): a gated reader's whole segment stays intact.
      if (end > capacity_ && end - capacity_ > (MinGate() >> segment_shift_ << segment_shift_)) {
        return AppendStatus::kFull;
      }
      if (claim_.compare_exchange_weak(word, w.next_word, std::memory_order_seq_cst,
                                       std::memory_order_relaxed)) {
        *out = w.claim;
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

  // Invariant 6.
  void WaitForOverwritable(uint64_t end) {
    if (end <= capacity_) return;
    if (prefix_.load(std::memory_order_acquire) >= end - capacity_) return;
    WaitForPrefix(end - capacity_);
  }

  // Until prefix_ >= target: walks what was committed since the last walk and, while a
  // frame below `target` is still being written, gives its producer the core.
  void WaitForPrefix(uint64_t target) const {
    Backoff backoff;
    for (;;) {
      AdvancePrefix();
      if (prefix_.load(std::memory_order_acquire) >= target) return;
      backoff.Pause();
    }
  }

  // Until the frame holding `position` is committed (prefix_ past it), for the control
  // plane's checks. False when it never will be: the shard closed before `position` (a claim
  // made after the close is abandoned unwritten).
  bool WaitForFrameAt(uint64_t position) const {
    Backoff backoff;
    for (;;) {
      AdvancePrefix();
      if (prefix_.load(std::memory_order_acquire) > position) return true;
      if (closed_.load(std::memory_order_acquire) && position >= CloseEnd()) return false;
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

  [[gnu::always_inline]] void WriteAndCommit(uint64_t t, uint64_t count, std::string_view key,
                                             std::string_view data, int64_t now_ms,
                                             AppendResult& out) {
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
    // The commit: the check word last, with release (invariant 2). Nothing after it.
    std::atomic_ref<uint64_t>(w[1]).store(CheckAt(t), std::memory_order_release);
    out.position = t;
    out.record_index = index;
    out.arrival_ms = arrival;
  }

  // The one claim that crosses a multiple of the walk stride (a segment, at most 64 KiB)
  // walks the committed frames since the last walk, unless readers moved prefix_ there: so
  // prefix_ stays about a stride behind, past what the producers a lap later overwrite
  // (invariant 6), and the walk reads header lines written a stride ago, still in cache.
  // A single producer needs no walk: its own frames before `end` are all committed.
  // REQUIRES: [t, end) is committed, by this producer.
  void KeepPrefixNear(uint64_t t, uint64_t end) {
    if (single_producer_) {
      // Every put: readers of a single-producer log poll prefix_ (ReadBound), not the line
      // the producer is writing. Nothing else moves it forward meanwhile but walks, which
      // stop at this producer's frames in flight, so it never goes backwards.
      prefix_.store(end, std::memory_order_release);
      return;
    }
    if ((t >> walk_shift_) == ((end - 1) >> walk_shift_)) return;
    if (prefix_.load(std::memory_order_relaxed) + (uint64_t{1} << walk_shift_) < end) {
      AdvancePrefix();
    }
  }

  // The bytes the frame at `position` occupies. REQUIRES: CommittedAt(position).
  uint64_t FrameLengthAt(uint64_t position) const {
    return AlignFrame(static_cast<uint32_t>(LoadWordRelaxed(WordsAt(position))));
  }

  // Moves prefix_ over the committed frames after it: walks up to 256 at a time and moves
  // it with one CAS. A walker whose CAS fails stops (another one is walking from there).
  // The walk reads only frames at or above prefix_, which no producer may overwrite before
  // prefix_ passes them (invariant 6), so a length read after a matching check word is the
  // committed one.
  [[gnu::noinline]] void AdvancePrefix() const {
    uint64_t p = prefix_.load(std::memory_order_acquire);
    for (;;) {
      uint64_t q = p;
      uint64_t last = 0;
      for (int n = 0; n < 256; ++n) {
        if (!CommittedAt(q)) break;
        const uint64_t bytes = FrameLengthAt(q);
        if (bytes == last) [[likely]] {
          // Records of one size follow one another: the next position is predicted from
          // the last step (a branch) instead of waiting for this frame's length load, so
          // the walk's loads overlap. `step` equals `bytes`; the empty asm keeps the
          // compiler from using the loaded value instead.
          uint64_t step = last;
          asm("" : "+r"(step));
          q += step;
        } else {
          q += bytes;
          last = bytes;
        }
      }
      if (q == p) return;
      if (!prefix_.compare_exchange_strong(p, q, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
        return;
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
  const unsigned walk_shift_;     // log2 of the walk stride (KeepPrefixNear)
  const uint64_t secret_;
  const bool single_producer_;
  uint64_t* const words_;
  const uint64_t ring_used_bytes_;     // as the ring came (AcquireRing)
  const uint16_t ring_check_nibbles_;  // as the ring came; this log adds its own

  // Producers hit claim_ on every claim; prefix_ moves once a segment (and when the control
  // plane walks). Each on its own line, with what changes as rarely beside it.
  alignas(64) std::atomic<uint64_t> claim_{0};
  alignas(64) mutable std::atomic<uint64_t> prefix_{0};
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
