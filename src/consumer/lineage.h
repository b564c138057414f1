// The lineage engine: the one place that decides which shards of a stream may be read now
// (parents before children) and turns a start position or a checkpoint into an iterator.
// LineageReader, Consumer and the DeliveryStream's stream source all read through it, over
// the RecordSource seam, so they follow the same rules on every backend.
//
// The rules:
//  1. A shard may be read once each parent it names is finished: read to its end by this
//     reader (or checkpointed at SHARD_END, for a Consumer), or gone, which means absent
//     from the source's latest shard listing (expired: its records aged out). A parent that
//     is listed is never "gone", even when this reader has not met it yet.
//  2. A shard that is read because its parents finished is read from its first record, and
//     every record trimmed before the reader got there counts as missed.
//  3. A cursor keeps its iterator alive (renewing it before it expires) and reports every
//     gap in record indexes as missed records.
//
// Thread safety: one thread per tracker and per cursor.
#ifndef RIFFLE_CONSUMER_LINEAGE_H_
#define RIFFLE_CONSUMER_LINEAGE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "riffle/record_source.h"

namespace riffle::detail {

// The index of the first record at or after an AT_/AFTER_SEQUENCE_NUMBER position (a
// checkpoint, a continuation), or nullopt for other positions and numbers that do not parse:
// how far a reader had got in a shard that then aged out.
std::optional<uint64_t> NextRecordIndex(const StartingPosition& position);
uint64_t NextRecordIndex(const SequenceNumber& number, bool after);
// What a shard that aged out held from index `next` on (0 when either is unknown): the
// records a reader that stood there missed.
uint64_t UnreadOfExpired(const RecordSource& source, std::string_view shard_id,
                         std::optional<uint64_t> next);

// Rule 1 for one shard: `finished(id)` says whether a known parent is finished; `listed`
// holds the ids of the latest listing.
bool ParentsFinished(const Shard& shard, const std::set<std::string, std::less<>>& listed,
                     const std::function<bool(const std::string&)>& finished);

// Which shards may be read now, for a reader that reads a whole stream.
class LineageTracker {
 public:
  struct Node {
    std::string shard_id;
    HashKeyRange range;
    std::vector<std::string> parents;
    bool closed_at_start = false;  // closed in the first listing
    bool from_first_listing = false;
    // Set by TakeReady: a parent was finished by this reader, so the shard is read from
    // its first record (rule 2).
    bool after_parents = false;
  };

  // Learns every shard the source lists (the first call is the "first listing").
  absl::Status Sync(RecordSource& source);
  // A parent was read to its end: its children (from GetRecords) become known.
  void Finish(const std::string& shard_id, std::span<const ChildShard> children);
  // A shard was abandoned without being read to its end (it expired under the reader).
  void Drop(const std::string& shard_id);
  // Known shards not yet handed out whose parents are all finished or gone, handed out now.
  // Needs a Sync() first when a waiting shard names a parent the tracker does not know.
  std::vector<Node> TakeReady();
  // The same for a reader that starts at LATEST: a shard the first listing showed closed
  // holds only what was put before the reader, so it is finished unread (its children are
  // handed out by this call when ready).
  std::vector<Node> TakeReadySkippingClosedAtStart();
  // True when a waiting shard names a parent that is neither known nor known to be gone.
  bool NeedsSync() const { return needs_sync_; }

  bool Finished(const std::string& shard_id) const { return finished_.contains(shard_id); }
  std::size_t waiting() const { return waiting_.size(); }
  // Finished shards the latest listing still shows, or a waiting shard names as a parent:
  // the others are gone for good (rule 1 counts them as finished) and are forgotten, so
  // that a reader following a stream that reshards for months keeps a bounded set.
  const std::set<std::string, std::less<>>& finished() const { return finished_; }

 private:
  bool ParentDone(const std::string& parent) const;
  void ForgetGone();  // after a listing

  bool synced_once_ = false;
  bool needs_sync_ = false;
  std::map<std::string, Node, std::less<>> waiting_;  // known, not yet handed out
  std::set<std::string, std::less<>> handed_out_;     // being read
  std::set<std::string, std::less<>> finished_;
  std::size_t forget_at_ = 64;  // a listing is asked for when finished_ reaches this size
  std::set<std::string, std::less<>> listed_;  // the latest listing
};

// One shard being read: its iterator, what was read, what was missed.
class ShardCursor {
 public:
  explicit ShardCursor(std::string shard_id) : shard_id_(std::move(shard_id)) {}

  const std::string& shard_id() const { return shard_id_; }

  // Positions the cursor at `position` (a checkpoint is AFTER_SEQUENCE_NUMBER of it). With
  // `from_first_record`, every record of the shard before the position is counted as missed
  // (rule 2: a child whose parents were read).
  [[nodiscard]] absl::Status Start(RecordSource& source, const StartingPosition& position,
                                   bool from_first_record);
  [[nodiscard]] absl::Status StartAfter(RecordSource& source, const SequenceNumber& last);
  bool started() const { return iterator_.has_value(); }

  // One GetRecords into `out`. Missed records are added to missed(); at the end of a closed
  // shard ended() turns true and out.child_shards names the children. A shard that
  // expired under the reader ends too (gone() true, no children; what it held beyond the
  // iterator counts as missed when the source still knows). Errors: what the source
  // answered (throttling, for one), the cursor unchanged.
  [[nodiscard]] absl::Status Read(RecordSource& source, GetRecordsResult& out, int limit);

  bool ended() const { return ended_; }
  bool gone() const { return gone_; }
  uint64_t missed() const { return missed_; }
  const std::optional<SequenceNumber>& last() const { return last_; }

 private:
  std::string shard_id_;
  std::optional<ShardIterator> iterator_;
  std::optional<SequenceNumber> last_;  // the last record read
  uint64_t missed_ = 0;
  bool ended_ = false;
  bool gone_ = false;
};

}  // namespace riffle::detail

#endif  // RIFFLE_CONSUMER_LINEAGE_H_
