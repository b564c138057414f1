// DeliveryStream's Stream source: the reader that feeds Ingest() from a riffle::Stream.
//
// One reader per shard, kept in a deque (stable references while children are added). A
// shard open at Create starts from LATEST; a child starts from TRIM_HORIZON once every
// parent it names has been read to its end (a merge child has two), so the records of one
// partition key are ingested in order across a reshard. All of this runs at Create and then
// under pump_mu_, so it needs no lock of its own.
#include <algorithm>
#include <deque>

#include "absl/container/flat_hash_set.h"
#include "delivery/delivery_stream_impl.h"
#include "riffle/stream.h"

namespace riffle {
namespace {

// A shard with nothing read yet is re-positioned by arrival time, this far before the last
// read, so a put that read the clock just before that read is not skipped; records read
// before (or put before LATEST) are filtered by their index.
constexpr absl::Duration kTimestampSlack = absl::Seconds(1);
// How often ListShards is checked for shards the reader does not know (only a race with a
// reshard at Create could produce one), and ended readers are dropped.
constexpr absl::Duration kShardSyncInterval = absl::Seconds(10);

// Debian's Abseil has its own string_view: look ids up without a copy.
absl::string_view Key(std::string_view id) { return absl::string_view(id.data(), id.size()); }

}  // namespace

struct DeliveryStream::Impl::SourceState {
  enum class Phase { kWaiting, kReading, kEnded };
  struct ShardReader {
    std::string shard_id;
    std::vector<std::string> parents;  // a child waits until each is ended or unknown
    Phase phase = Phase::kWaiting;
    bool from_trim_horizon = false;  // children: everything in the shard is new
    std::optional<ShardIterator> iterator;
    uint64_t next_index = 0;             // records with a lower index were read or precede LATEST
    std::optional<SequenceNumber> last;  // the last record read
  };

  Stream* stream = nullptr;
  std::deque<ShardReader> shards;
  absl::flat_hash_set<std::string> tracked;  // ids of `shards`
  GetRecordsResult result;                   // reused: no allocation in steady state
  std::vector<IngestRecord> batch;
  std::string sequence_text;  // the batch's sequence numbers, kDigits each
  size_t rotation = 0;        // first shard read, rotated so backpressure starves none
  int64_t next_sync_ms = 0;
  bool sync_requested = false;

  ShardReader& Add(std::string_view shard_id, std::vector<std::string> parents) {
    ShardReader& r = shards.emplace_back();
    r.shard_id = std::string(shard_id);
    r.parents = std::move(parents);
    tracked.insert(r.shard_id);
    return r;
  }

  bool Ended(std::string_view shard_id) const {
    if (!tracked.contains(Key(shard_id))) return true;  // ended and dropped, or never ours
    for (const ShardReader& r : shards) {
      if (r.shard_id == shard_id) return r.phase == Phase::kEnded;
    }
    return true;
  }

  // A waiting child starts once all its parents are read to their end.
  void MaybeStart(DeliveryStream::Impl& ds, ShardReader& r) {
    if (!std::all_of(r.parents.begin(), r.parents.end(),
                     [&](const std::string& p) { return Ended(p); })) {
      return;
    }
    r.from_trim_horizon = true;
    auto it = stream->GetShardIterator({r.shard_id, ShardIteratorType::kTrimHorizon, {}, {}});
    if (!it.ok()) {
      if (IsResourceNotFoundException(it.status())) r.phase = Phase::kEnded;
      return;  // otherwise retried at the next poll
    }
    Position(ds, r, *it);
    r.phase = Phase::kReading;
  }

  void Position(DeliveryStream::Impl& ds, ShardReader& r, const ShardIterator& it) {
    // Records between what was read and where a new iterator starts were trimmed.
    if (it.next_record_index_known && it.next_record_index > r.next_index) {
      ds.source_records_missed_.fetch_add(it.next_record_index - r.next_index,
                                          std::memory_order_relaxed);
      r.next_index = it.next_record_index;
    }
    r.iterator = it;
  }

  // Takes a new iterator where the old one was, before it expires: after the last record
  // read, or (nothing read yet) from the start of a child or by time with the index filter.
  bool Refresh(DeliveryStream::Impl& ds, ShardReader& r) {
    GetShardIteratorRequest request{r.shard_id, ShardIteratorType::kTrimHorizon, {}, {}};
    std::string number;
    if (r.last) {
      number = r.last->ToString();
      request.type = ShardIteratorType::kAfterSequenceNumber;
      request.starting_sequence_number = number;
    } else if (!r.from_trim_horizon) {
      request.type = ShardIteratorType::kAtTimestamp;
      request.timestamp = absl::FromUnixMillis(r.iterator->issued_at_ms) - kTimestampSlack;
    }
    auto it = stream->GetShardIterator(request);
    if (!it.ok()) {
      if (IsResourceNotFoundException(it.status())) End(r);
      return false;
    }
    Position(ds, r, *it);
    return true;
  }

  void End(ShardReader& r) {
    r.phase = Phase::kEnded;
    r.iterator.reset();
    sync_requested = true;
  }

  // One GetRecords on a reading shard; ingests what it returns. Returns the records ingested.
  size_t Read(DeliveryStream::Impl& ds, ShardReader& r, int64_t* budget) {
    const int64_t now_ms = stream->clock().NowMillis();
    const int64_t lifetime_ms = absl::ToInt64Milliseconds(stream->options().iterator_lifetime);
    // Early, so that the read below never meets an expired iterator; if the refresh fails
    // the old iterator is still good for a while.
    if (now_ms - r.iterator->issued_at_ms > lifetime_ms / 2) {
      (void)Refresh(ds, r);
      if (r.phase != Phase::kReading) return 0;
    }
    absl::Status s = stream->GetRecords(*r.iterator, result);
    if (!s.ok() && IsExpiredIteratorException(s)) {
      if (!Refresh(ds, r)) return 0;
      s = stream->GetRecords(*r.iterator, result);
    }
    if (!s.ok()) {
      if (IsResourceNotFoundException(s)) End(r);  // expired by retention
      return 0;
    }
    ds.source_records_missed_.fetch_add(result.missed_records, std::memory_order_relaxed);

    batch.clear();
    sequence_text.resize(result.records.size() * SequenceNumber::kDigits);
    int64_t bytes = 0;
    char* text = sequence_text.data();
    for (const Record& rec : result.records) {
      if (rec.sequence_number.record_index < r.next_index) continue;  // read already
      rec.sequence_number.FormatTo(text);
      batch.push_back(
          {rec.data,
           {rec.partition_key, r.shard_id, std::string_view(text, SequenceNumber::kDigits),
            absl::ToUnixMillis(rec.approximate_arrival_timestamp)}});
      text += SequenceNumber::kDigits;
      bytes += static_cast<int64_t>(rec.data.size());
      r.last = rec.sequence_number;
      r.next_index = rec.sequence_number.record_index + 1;
    }
    if (!batch.empty()) (void)ds.Ingest(batch);  // accepts everything read
    *budget -= bytes;

    if (result.next_shard_iterator) {
      const ShardIterator& next = *result.next_shard_iterator;
      if (next.next_record_index_known)
        r.next_index = std::max(r.next_index, next.next_record_index);
      r.iterator = next;
      return batch.size();
    }
    End(r);
    for (const ChildShard& child : result.child_shards) {
      if (!tracked.contains(Key(child.shard_id))) Add(child.shard_id, child.parent_shards);
    }
    return batch.size();
  }

  // Drops ended readers and adopts shards ListShards shows that no reader knows: children
  // of known shards wait for their parents; other open shards are read from TRIM_HORIZON.
  void Sync(int64_t now_ms) {
    sync_requested = false;
    next_sync_ms = now_ms + absl::ToInt64Milliseconds(kShardSyncInterval);
    absl::StatusOr<std::vector<Shard>> listed = stream->ListShards();
    if (!listed.ok()) return;
    for (const Shard& s : *listed) {
      if (tracked.contains(Key(s.shard_id))) continue;
      std::vector<std::string> parents;
      if (s.parent_shard_id) parents.push_back(*s.parent_shard_id);
      if (s.adjacent_parent_shard_id) parents.push_back(*s.adjacent_parent_shard_id);
      const bool known_parent =
          std::any_of(parents.begin(), parents.end(),
                      [&](const std::string& p) { return tracked.contains(Key(p)); });
      const bool open = !s.sequence_number_range.ending_sequence_number.has_value();
      if (known_parent || open) Add(s.shard_id, std::move(parents));
    }
    // Ended readers go after the adoption above, which needs them to recognise children.
    // Unknown parents count as ended, so dropping them keeps every child's wait correct.
    std::erase_if(shards, [&](const ShardReader& r) {
      if (r.phase != Phase::kEnded) return false;
      tracked.erase(r.shard_id);
      return true;
    });
  }
};

void DeliveryStream::Impl::SourceStateDeleter::operator()(SourceState* state) const {
  delete state;
}

absl::Status DeliveryStream::Impl::InitStreamSource() {
  source_.reset(new SourceState);
  SourceState& src = *source_;
  src.stream = std::get<StreamSource>(options_.source).stream;
  absl::StatusOr<std::vector<Shard>> listed = src.stream->ListShards();
  if (!listed.ok()) return listed.status();
  for (const Shard& s : *listed) {
    if (s.sequence_number_range.ending_sequence_number) continue;  // closed: all before LATEST
    absl::StatusOr<ShardIterator> it =
        src.stream->GetShardIterator({s.shard_id, ShardIteratorType::kLatest, {}, {}});
    if (!it.ok()) return it.status();
    SourceState::ShardReader& r = src.Add(s.shard_id, {});
    r.phase = SourceState::Phase::kReading;
    r.iterator = *it;
    r.next_index = it->next_record_index;
  }
  src.next_sync_ms =
      src.stream->clock().NowMillis() + absl::ToInt64Milliseconds(kShardSyncInterval);
  return absl::OkStatus();
}

size_t DeliveryStream::Impl::PollStreamSource() {
  SourceState& src = *source_;
  int64_t budget = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_ != DeliveryStreamStatus::kActive) return 0;  // Close() has begun: read no more
    budget = options_.max_buffered_bytes - buffered_bytes_;
  }
  if (budget <= 0) return 0;  // backpressure: the Stream keeps the records
  const int64_t now_ms = src.stream->clock().NowMillis();
  if (src.sync_requested || now_ms >= src.next_sync_ms) src.Sync(now_ms);

  // Shards in rotation, then children added by this poll (appended at the end).
  const size_t n = src.shards.size();
  const size_t start = n == 0 ? 0 : src.rotation++ % n;
  size_t ingested = 0;
  for (size_t k = 0; k < src.shards.size() && budget > 0; ++k) {
    SourceState::ShardReader& r = src.shards[k < n ? (start + k) % n : k];
    if (r.phase == SourceState::Phase::kWaiting) src.MaybeStart(*this, r);
    if (r.phase == SourceState::Phase::kReading) ingested += src.Read(*this, r, &budget);
  }
  return ingested;
}

}  // namespace riffle
