// The read path shared by Stream::GetRecords and subscriptions, inline so that a polling
// reader's loop compiles into the caller.
//
// A call copies whole frames out of the shard's log into the caller's reusable result,
// then checks (after an acquire fence) that no producer lapped what it copied. If one did,
// the read restarts at the log's horizon; the index gap between what the reader expected
// and what it finds is reported as missed records. Frames are parsed only after that check,
// so a record handed out is exactly what was put.
#ifndef RIFFLE_DETAIL_READ_PATH_H_
#define RIFFLE_DETAIL_READ_PATH_H_

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "riffle/detail/stream_core.h"
#include "riffle/record_source.h"

namespace riffle::detail {

inline constexpr uint64_t kMaxGetRecordsBytes = uint64_t{10} << 20;
inline constexpr int kMaxGetRecordsLimit = 10000;

// Cold: the errors of the read path (src/stream/stream.cc).
absl::Status GetRecordsLimitError(int limit);
absl::Status IteratorError(const StreamCore& core, const ShardIterator& it, int64_t now_ms);
ChildShard DescribeChild(const RoutingSnapshot& snapshot, uint64_t index);

// Appends the children of a closed shard to `out`. REQUIRES: an EpochGuard.
inline void DescribeChildren(const StreamCore& core, const ShardState& shard,
                             std::vector<ChildShard>& out) {
  const RoutingSnapshot& snapshot = core.shards.snapshot();
  for (uint64_t child : shard.child_indexes) out.push_back(DescribeChild(snapshot, child));
}

// The shard an iterator reads, or nullptr (then IteratorError says why). Checks that the
// iterator was issued by this stream and has not expired. REQUIRES: an EpochGuard.
inline ShardState* ShardForIterator(const StreamCore& core, const ShardIterator& it,
                                    int64_t now_ms) {
  if (it.stream_tag != core.tag || it.check != core.IteratorCheck(it)) return nullptr;
  // Unsigned: an iterator issued "in the future" (a clock set back) is not expired.
  const uint64_t age = now_ms > it.issued_at_ms
                           ? static_cast<uint64_t>(now_ms) - static_cast<uint64_t>(it.issued_at_ms)
                           : 0;
  if (age > static_cast<uint64_t>(core.iterator_lifetime_ms)) return nullptr;
  ShardState* shard = core.shards.snapshot().Find(it.shard_index);
  if (shard == nullptr || core.shards.Expired(*shard, now_ms)) return nullptr;
  return shard;
}

// Reads `shard` from `iterator` into `out` (replacing its contents): at most `limit` records
// and `max_bytes` of keys and data, one record at least. REQUIRES: an
// EpochGuard, or a reference on the shard; `iterator` belongs to `shard`.
inline void ReadShard(const StreamCore& core, const ShardState& shard,
                      const ShardIterator& iterator, GetRecordsResult& out, int limit,
                      int64_t now_ms, uint64_t max_bytes = kMaxGetRecordsBytes) {
  const ShardLog& log = shard.log;
  const int64_t oldest_ms = core.shards.retention().OldestMs(now_ms);

  out.records.clear();
  out.child_shards.clear();
  out.missed_records = 0;
  out.millis_behind_latest = 0;

  uint64_t position = iterator.position;
  uint64_t end = position;
  bool more = false;
  bool copied = false;
  // The copy follows committed frames and stops at the first one not committed (a put in
  // flight, or the end of the log). It is optimistic: the lap check after it reads only the
  // segment marks. A reader lapped while copying, or before, restarts at the horizon; a
  // ring so small that this keeps happening returns no records this call rather than spin.
  for (int attempt = 0; attempt < 4 && !copied; ++attempt) {
    if (attempt > 0) position = std::max(position, log.Horizon());
    const ShardLog::CopyEnd copy = log.CopyFrames(position, limit, max_bytes, out);
    end = copy.end;
    more = copy.more;
    copied = log.IntactAfterReads(position, end);
  }
  auto& frames = RecordsStorage::frames(out);
  const auto& arena = RecordsStorage::arena(out);
  if (!copied) {
    frames.clear();
    end = position;
  } else {
    log.NoteCommitted(position, end);
  }

  uint64_t expected = iterator.next_record_index;
  bool known = iterator.next_record_index_known;
  int64_t floor_ms = iterator.arrival_floor_ms;
  int64_t examined_ms = INT64_MIN;  // the newest arrival of the frames read, aged out or not
  for (const auto& [word, frame_position] : frames) {
    const FrameView frame(arena.data() + word);
    const uint64_t index = frame.record_index();
    if (known && index > expected) out.missed_records += index - expected;
    expected = index + 1;
    known = true;
    examined_ms = std::max(examined_ms, frame.arrival_ms());
    if (frame.arrival_ms() < oldest_ms) {  // aged out of retention before this reader got to it
      ++out.missed_records;
      continue;
    }
    floor_ms = std::max(floor_ms, frame.arrival_ms());
    out.records.push_back(Record{frame.key(), frame.data(),
                                 core.MakeSequenceNumber(shard.index, frame_position, index),
                                 absl::FromUnixMillis(floor_ms)});
  }

  if (shard.closed() && end >= shard.final_state.end) {
    out.next_shard_iterator.reset();
    if (known && shard.final_state.next_index > expected) {
      out.missed_records += shard.final_state.next_index - expected;  // trimmed at the end
    }
    DescribeChildren(core, shard, out.child_shards);
    return;
  }
  // Behind by the newest record after what this call read: also when every frame it read
  // had aged out (no records, yet more to read: 0 would say "caught up").
  if (more && examined_ms != INT64_MIN) {
    out.millis_behind_latest =
        std::max<int64_t>(0, log.latest_arrival_ms() - std::max(examined_ms, floor_ms));
  }
  if (!known) {  // only iterators that never saw a record; the seqlock read is rarer still
    const LatestState latest = log.Latest();
    if (end == latest.end) {
      expected = latest.next_index;
      known = true;
    }
  }
  out.next_shard_iterator = core.MakeIterator(shard.index, end, expected, known, now_ms, floor_ms);
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_READ_PATH_H_
