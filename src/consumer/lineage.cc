// The lineage engine: parents before children, and cursors that keep their iterators alive.
#include "consumer/lineage.h"

#include <algorithm>

#include "riffle/status.h"

namespace riffle::detail {

bool ParentsFinished(const Shard& shard, const std::set<std::string, std::less<>>& listed,
                     const std::function<bool(const std::string&)>& finished) {
  for (const auto* parent : {&shard.parent_shard_id, &shard.adjacent_parent_shard_id}) {
    if (!parent->has_value()) continue;
    if (!listed.contains(**parent)) continue;  // gone: expired with its records
    if (!finished(**parent)) return false;
  }
  return true;
}

uint64_t NextRecordIndex(const SequenceNumber& number, bool after) {
  // A continuation names the record before the next one, or (before a shard's first record)
  // the largest index, which no record has.
  if (number.record_index == SequenceNumber::kMaxRecordIndex) return 0;
  return number.record_index + (after ? 1 : 0);
}

std::optional<uint64_t> NextRecordIndex(const StartingPosition& position) {
  const bool after = position.type == ShardIteratorType::kAfterSequenceNumber;
  if (!after && position.type != ShardIteratorType::kAtSequenceNumber) return std::nullopt;
  absl::StatusOr<SequenceNumber> n = SequenceNumber::Parse(position.sequence_number);
  if (!n.ok()) return std::nullopt;
  return NextRecordIndex(*n, after);
}

uint64_t UnreadOfExpired(const RecordSource& source, std::string_view shard_id,
                         std::optional<uint64_t> next) {
  const std::optional<uint64_t> held = source.ClosedShardRecordCount(shard_id);
  return next && held && *held > *next ? *held - *next : 0;
}

// ---- LineageTracker ----

absl::Status LineageTracker::Sync(RecordSource& source) {
  absl::StatusOr<std::vector<Shard>> shards = source.ListShards(ListShardsRequest{});
  if (!shards.ok()) return shards.status();
  const bool first = !synced_once_;
  synced_once_ = true;
  needs_sync_ = false;
  listed_.clear();
  for (const Shard& s : *shards) listed_.insert(s.shard_id);
  ForgetGone();
  for (const Shard& s : *shards) {
    if (waiting_.contains(s.shard_id) || handed_out_.contains(s.shard_id) ||
        finished_.contains(s.shard_id)) {
      continue;
    }
    Node node{s.shard_id, s.hash_key_range, {}, false, first, false};
    for (const auto* p : {&s.parent_shard_id, &s.adjacent_parent_shard_id}) {
      if (p->has_value()) node.parents.push_back(**p);
    }
    node.closed_at_start = first && s.sequence_number_range.ending_sequence_number.has_value();
    waiting_.emplace(s.shard_id, std::move(node));
  }
  return absl::OkStatus();
}

void LineageTracker::ForgetGone() {
  std::set<std::string_view, std::less<>> named;  // parents of shards still to be read
  for (const auto& [id, node] : waiting_) named.insert(node.parents.begin(), node.parents.end());
  std::erase_if(finished_, [&](const std::string& id) {
    return !listed_.contains(id) && !named.contains(id);
  });
  forget_at_ = std::max<std::size_t>(64, 2 * finished_.size());
}

void LineageTracker::Finish(const std::string& shard_id, std::span<const ChildShard> children) {
  handed_out_.erase(shard_id);
  waiting_.erase(shard_id);
  finished_.insert(shard_id);
  if (finished_.size() >= forget_at_) needs_sync_ = true;  // a listing lets ForgetGone prune
  for (const ChildShard& c : children) {
    if (waiting_.contains(c.shard_id) || handed_out_.contains(c.shard_id) ||
        finished_.contains(c.shard_id)) {
      continue;
    }
    Node node{c.shard_id, c.hash_key_range, c.parent_shards, false, false, false};
    for (const std::string& p : node.parents) {
      if (!waiting_.contains(p) && !handed_out_.contains(p) && !finished_.contains(p)) {
        needs_sync_ = true;  // a parent created since the last listing: learn it first
      }
    }
    waiting_.emplace(c.shard_id, std::move(node));
  }
}

void LineageTracker::Drop(const std::string& shard_id) {
  // Its children were not seen (no end was read): the next listing shows them.
  Finish(shard_id, {});
  needs_sync_ = true;
}

bool LineageTracker::ParentDone(const std::string& parent) const {
  if (finished_.contains(parent)) return true;
  if (waiting_.contains(parent) || handed_out_.contains(parent)) return false;
  return !listed_.contains(parent);  // not in the latest listing: gone
}

std::vector<LineageTracker::Node> LineageTracker::TakeReady() {
  std::vector<Node> ready;
  if (needs_sync_) return ready;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    const Node& node = it->second;
    if (!std::all_of(node.parents.begin(), node.parents.end(),
                     [&](const std::string& p) { return ParentDone(p); })) {
      ++it;
      continue;
    }
    handed_out_.insert(it->first);
    it->second.after_parents =
        std::any_of(node.parents.begin(), node.parents.end(),
                    [&](const std::string& p) { return finished_.contains(p); });
    ready.push_back(std::move(it->second));
    it = waiting_.erase(it);
  }
  return ready;
}

std::vector<LineageTracker::Node> LineageTracker::TakeReadySkippingClosedAtStart() {
  std::vector<Node> out;
  for (bool more = true; more;) {
    more = false;
    for (Node& node : TakeReady()) {
      if (node.closed_at_start) {
        Finish(node.shard_id, {});
        more = true;
      } else {
        out.push_back(std::move(node));
      }
    }
  }
  return out;
}

// ---- ShardCursor ----

absl::Status ShardCursor::Start(RecordSource& source, const StartingPosition& position,
                                bool from_first_record) {
  GetShardIteratorRequest request{shard_id_, position.type, position.sequence_number,
                                  position.timestamp};
  absl::StatusOr<ShardIterator> it = source.GetShardIterator(request);
  if (!it.ok()) {
    if (IsResourceNotFoundException(it.status())) {  // expired before it was read: nothing is left
      ended_ = gone_ = true;
      // What it held from the position on is missed, when the source still knows.
      missed_ += UnreadOfExpired(
          source, shard_id_,
          from_first_record ? std::optional<uint64_t>(0) : NextRecordIndex(position));
      return absl::OkStatus();
    }
    return it.status();
  }
  if (from_first_record && it->next_record_index_known) missed_ += it->next_record_index;
  iterator_ = *it;
  return absl::OkStatus();
}

absl::Status ShardCursor::StartAfter(RecordSource& source, const SequenceNumber& last) {
  const std::string number = last.ToString();
  StartingPosition position{ShardIteratorType::kAfterSequenceNumber, number, std::nullopt};
  absl::Status s = Start(source, position, /*from_first_record=*/false);
  if (s.ok()) last_ = last;
  return s;
}

absl::Status ShardCursor::Read(RecordSource& source, GetRecordsResult& out, int limit) {
  RecordsStorage::Reset(out);
  if (ended_) return absl::OkStatus();
  if (!iterator_) return absl::FailedPreconditionError("the cursor was not started");
  const int64_t now_ms = source.clock().NowMillis();
  const int64_t lifetime_ms = absl::ToInt64Milliseconds(source.iterator_lifetime());
  // Renewed early, so that the read below never meets an expired iterator; if the renewal
  // fails the old iterator is still good for a while.
  if (now_ms - iterator_->issued_at_ms > lifetime_ms / 2) {
    absl::StatusOr<ShardIterator> renewed = source.RenewShardIterator(*iterator_);
    if (renewed.ok()) iterator_ = *renewed;
  }
  absl::Status s = source.GetRecords(*iterator_, out, limit);
  if (IsExpiredIteratorException(s)) {
    absl::StatusOr<ShardIterator> renewed = source.RenewShardIterator(*iterator_);
    if (!renewed.ok()) {
      s = renewed.status();
    } else {
      iterator_ = *renewed;
      s = source.GetRecords(*iterator_, out, limit);
    }
  }
  if (IsResourceNotFoundException(s)) {  // the shard expired under the reader
    RecordsStorage::Reset(out);
    // What it held after the iterator aged out unread: missed, when the source still knows.
    if (iterator_->next_record_index_known) {
      missed_ += UnreadOfExpired(source, shard_id_, iterator_->next_record_index);
    }
    ended_ = gone_ = true;
    iterator_.reset();
    return absl::OkStatus();
  }
  if (!s.ok()) {
    RecordsStorage::Reset(out);
    return s;
  }
  missed_ += out.missed_records;
  if (!out.records.empty()) last_ = out.records.back().sequence_number;
  if (out.next_shard_iterator) {
    iterator_ = out.next_shard_iterator;
  } else {
    ended_ = true;
    iterator_.reset();
  }
  return absl::OkStatus();
}

}  // namespace riffle::detail
