// Stream::GetRecords, inline: the read path of a polling reader.
//
// A call copies whole frames out of the shard's ring into the caller's reusable result,
// then checks (after an acquire fence) that no producer lapped the first copied frame. If
// one did, the read restarts at the ring's horizon; the index gap between what the reader
// expected and what it finds is reported as missed records. Frames are parsed only after
// that check, so a record handed out is exactly what was put.
#ifndef RIFFLE_DETAIL_STREAM_READ_H_
#define RIFFLE_DETAIL_STREAM_READ_H_

#include "riffle/stream.h"

namespace riffle {
namespace detail {

inline constexpr uint64_t kMaxGetRecordsBytes = uint64_t{10} << 20;
inline constexpr int kMaxGetRecordsLimit = 10000;

absl::Status GetRecordsLimitError(int limit);

// Copies frames of `ring` from `position` into `out` (arena_ and frames_). Returns the
// position after the last frame copied; out->frames_ lists (arena word, log position).
// Stops at `published`, after `limit` records, or before exceeding kMaxGetRecordsBytes.
inline uint64_t CopyFrames(const ShardRing& ring, uint64_t position, uint64_t published, int limit,
                           GetRecordsResult* out) {
  out->frames_.clear();
  std::size_t used = 0;
  uint64_t payload_bytes = 0;
  uint64_t p = position;
  int n = 0;
  while (p < published && n < limit) {
    const uint64_t* w = ring.WordsAt(p);
    const uint64_t w0 = LoadWordRelaxed(w);
    const uint64_t length = Word0Length(w0);
    const uint64_t padded = AlignFrame(length);
    // A torn header (the frame is being overwritten) stops the copy; the lap check that
    // follows then restarts the read.
    if (length < kFrameAlignment || padded > published - p || !ring.FitsInSegment(p, padded)) {
      break;
    }
    if (Word0Flags(w0) & kFlagPadding) {
      p += padded;
      continue;
    }
    if (length < kFrameHeaderBytes + Word0KeyLength(w0)) break;
    const uint64_t payload = length - kFrameHeaderBytes;
    if (n > 0 && payload_bytes + payload > kMaxGetRecordsBytes) break;
    const std::size_t words = padded / 8;
    if (used + words > out->arena_.size()) {
      out->arena_.resize(std::max(out->arena_.size() * 2, used + words + 512));
    }
    CopyFromWords(out->arena_.data() + used, w, padded);
    out->frames_.emplace_back(used, p);
    used += words;
    payload_bytes += payload;
    ++n;
    p += padded;
  }
  return p;
}

}  // namespace detail

inline absl::Status Stream::GetRecords(const ShardIterator& iterator, GetRecordsResult& out,
                                       int limit) {
  if (options_.read_budget) return GetRecordsBudgeted(iterator, out, limit);  // cold
  return ReadRecords(iterator, out, limit);
}

inline absl::Status Stream::ReadRecords(const ShardIterator& iterator, GetRecordsResult& out,
                                        int limit) {
  if (limit < 1 || limit > detail::kMaxGetRecordsLimit) return detail::GetRecordsLimitError(limit);
  const int64_t now_ms = clock_->NowMillis();
  absl::StatusOr<detail::ShardState*> found = ShardForIterator(iterator, now_ms);
  if (!found.ok()) return found.status();
  return ReadShard(**found, iterator, out, limit, now_ms);
}

inline absl::Status Stream::ReadShard(detail::ShardState& shard, const ShardIterator& iterator,
                                      GetRecordsResult& out, int limit, int64_t now_ms) {
  const detail::ShardRing& ring = shard.ring;
  const int64_t oldest_ms = now_ms - retention_ms_.load(std::memory_order_relaxed);

  out.records.clear();
  out.child_shards.clear();
  out.missed_records = 0;
  out.millis_behind_latest = 0;

  uint64_t position = iterator.position;
  uint64_t end = position;
  bool copied = false;
  // The first copy is optimistic: the lap check after it reads only the segment marks. A
  // reader lapped while copying, or before, restarts at the horizon; a ring so small that
  // this keeps happening returns no records this call rather than spin.
  for (int attempt = 0; attempt < 4 && !copied; ++attempt) {
    const uint64_t published = ring.published();
    if (attempt > 0) position = std::max(position, ring.Horizon(ring.claimed()));
    end = detail::CopyFrames(ring, position, published, limit, &out);
    copied = ring.IntactAfterReads(position, end);
  }
  if (!copied) {
    out.frames_.clear();
    end = position;
  }

  uint64_t expected = iterator.next_record_index;
  bool known = iterator.next_record_index_known;
  for (const auto& [word, frame_position] : out.frames_) {
    const uint64_t* f = out.arena_.data() + word;
    const uint64_t w0 = f[0];
    const uint64_t index = f[2];
    const int64_t arrival_ms = static_cast<int64_t>(f[3]);
    if (known && index > expected) out.missed_records += index - expected;
    expected = index + 1;
    known = true;
    if (arrival_ms < oldest_ms) {  // aged out of retention before this reader got to it
      ++out.missed_records;
      continue;
    }
    const char* bytes = reinterpret_cast<const char*>(f + 4);
    const std::size_t key_length = detail::Word0KeyLength(w0);
    const std::size_t data_length =
        detail::Word0Length(w0) - detail::kFrameHeaderBytes - key_length;
    out.records.push_back(Record{
        std::string_view(bytes, key_length), std::string_view(bytes + key_length, data_length),
        MakeSequenceNumber(shard.index, frame_position, index), absl::FromUnixMillis(arrival_ms)});
  }

  const int64_t closed_at = shard.closed_at_ms.load(std::memory_order_acquire);
  if (closed_at >= 0 && end >= shard.final_state.published) {
    out.next_shard_iterator.reset();
    for (uint64_t child : shard.child_indexes) {
      out.child_shards.push_back(ChildShardOf(child));
    }
    return absl::OkStatus();
  }
  if (!out.records.empty() && end < ring.published()) {
    out.millis_behind_latest = std::max<int64_t>(
        0, ring.latest_arrival_ms() -
               absl::ToUnixMillis(out.records.back().approximate_arrival_timestamp));
  }
  if (!known) {  // only iterators that never saw a record; the seqlock read is rarer still
    const detail::LatestState latest = ring.Latest();
    if (end == latest.published) {
      expected = latest.next_index;
      known = true;
    }
  }
  out.next_shard_iterator = ShardIterator{tag_, shard.index, end, expected, known, now_ms};
  return absl::OkStatus();
}

inline absl::StatusOr<GetRecordsResult> Stream::GetRecords(const ShardIterator& iterator,
                                                           int limit) {
  GetRecordsResult result;
  absl::Status s = GetRecords(iterator, result, limit);
  if (!s.ok()) return s;
  return result;
}

}  // namespace riffle

#endif  // RIFFLE_DETAIL_STREAM_READ_H_
