// DeliveryStream's stream source: the reader that feeds Ingest() from a RecordSource (a
// riffle::Stream, or another backend), through the lineage engine (consumer/lineage.h).
//
// What is delivered: every record put after Create. The shards of the first listing start
// at LATEST (a closed one has nothing after LATEST: it is finished at once); every shard
// learned later is read from its first record once its parents are finished, counting what
// the source trimmed before it was read in SourceRecordsMissed. All of this runs at Create
// and then under the pump's lock, so it needs no lock of its own.
#include <algorithm>
#include <optional>
#include <type_traits>
#include <vector>

#include "consumer/lineage.h"
#include "delivery/delivery_stream_impl.h"
#include "riffle/record_source.h"

namespace riffle {
namespace {
constexpr int kReadLimit = 10000;  // records per GetRecords (the service's maximum)
}  // namespace

struct DeliveryStream::Impl::SourceState {
  struct Reader {
    std::string shard_id;
    detail::ShardCursor cursor;
    bool from_first_record = false;
    uint64_t missed_counted = 0;  // cursor misses already added to the metric
  };

  RecordSource* source = nullptr;
  const UserRecordDecoder* deaggregator = nullptr;
  detail::LineageTracker tracker;
  std::vector<UserRecord> user_records;  // reused, with a deaggregator
  std::vector<Reader> readers;
  GetRecordsResult result;  // reused: no allocation in steady state
  std::vector<IngestRecord> batch;
  std::string sequence_text;  // the batch's sequence numbers, kDigits each
  size_t rotation = 0;        // first shard read, rotated so backpressure starves none

  // Hands out every shard whose parents are finished. At Create (`initial`), shards of the
  // first listing start at LATEST and closed ones are finished at once; afterwards every
  // shard starts at its first record.
  absl::Status StartReady(DeliveryStream::Impl& ds, bool initial) {
    for (detail::LineageTracker::Node& node : tracker.TakeReadySkippingClosedAtStart()) {
      Reader r{node.shard_id, detail::ShardCursor(node.shard_id), !node.from_first_listing, 0};
      StartingPosition start{ShardIteratorType::kLatest, {}, std::nullopt};
      if (r.from_first_record) start.type = ShardIteratorType::kTrimHorizon;
      absl::Status s = r.cursor.Start(*source, start, r.from_first_record);
      if (!s.ok() && initial) return s;
      // Not started (a transient error): Read() retries the start at the next poll.
      readers.push_back(std::move(r));
    }
    (void)ds;
    return absl::OkStatus();
  }

  void CountMissed(DeliveryStream::Impl& ds, Reader& r) {
    const uint64_t missed = r.cursor.missed();
    if (missed > r.missed_counted) {
      ds.source_records_missed_.fetch_add(missed - r.missed_counted, std::memory_order_relaxed);
      r.missed_counted = missed;
    }
  }

  // One GetRecords on a shard; ingests what it returns. Returns the records ingested, and
  // sets *ended when the shard was read to its end (or expired under the reader).
  size_t Read(DeliveryStream::Impl& ds, Reader& r, int64_t* budget, bool* ended) {
    *ended = false;
    if (!r.cursor.started() && !r.cursor.ended()) {
      StartingPosition start{
          r.from_first_record ? ShardIteratorType::kTrimHorizon : ShardIteratorType::kLatest,
          {},
          std::nullopt};
      if (!r.cursor.Start(*source, start, r.from_first_record).ok()) return 0;
    }
    if (!r.cursor.Read(*source, result, kReadLimit).ok()) return 0;
    CountMissed(ds, r);
    batch.clear();
    int64_t bytes = 0;
    auto ingest_all = [&](auto records) {
      sequence_text.resize(records.size() * SequenceNumber::kDigits);
      char* text = sequence_text.data();
      for (const auto& rec : records) {
        rec.sequence_number.FormatTo(text);
        std::optional<uint64_t> sub;
        if constexpr (std::is_same_v<std::decay_t<decltype(rec)>, UserRecord>) {
          if (rec.aggregated) sub = rec.sub_sequence_number;
        }
        batch.push_back(
            {rec.data,
             {rec.partition_key, r.shard_id, std::string_view(text, SequenceNumber::kDigits),
              absl::ToUnixMillis(rec.approximate_arrival_timestamp), sub}});
        text += SequenceNumber::kDigits;
        bytes += static_cast<int64_t>(rec.data.size());
      }
    };
    if (deaggregator != nullptr) {
      // Every user record, whatever its hash key: a delivery stream drops nothing.
      user_records.clear();
      deaggregator->Decode(result.records, HashKeyRange{}, user_records);
      ingest_all(std::span<const UserRecord>(user_records));
    } else {
      ingest_all(std::span<const Record>(result.records));
    }
    if (!batch.empty()) (void)ds.Ingest(batch);  // accepts everything read
    *budget -= bytes;
    if (r.cursor.ended()) {
      *ended = true;
      if (r.cursor.gone()) {
        tracker.Drop(r.shard_id);
      } else {
        tracker.Finish(r.shard_id, result.child_shards);
      }
    }
    return batch.size();
  }
};

void DeliveryStream::Impl::SourceStateDeleter::operator()(SourceState* state) const {
  delete state;
}

absl::Status DeliveryStream::Impl::InitStreamSource() {
  source_.reset(new SourceState);
  SourceState& src = *source_;
  src.source = std::get<StreamSource>(options_.source).stream;
  src.deaggregator = std::get<StreamSource>(options_.source).deaggregator;
  if (absl::Status s = src.tracker.Sync(*src.source); !s.ok()) return s;
  return src.StartReady(*this, /*initial=*/true);
}

size_t DeliveryStream::Impl::PollStreamSource() {
  SourceState& src = *source_;
  int64_t budget = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_ != DeliveryStreamStatus::kActive) return 0;  // Close() has begun: read no more
    budget = options_.max_buffered_bytes - buffered_bytes_;
  }
  if (budget <= 0) return 0;  // backpressure: the source keeps the records
  if (src.tracker.NeedsSync()) (void)src.tracker.Sync(*src.source);
  (void)src.StartReady(*this, /*initial=*/false);

  // Shards in rotation, so that backpressure starves none.
  const size_t n = src.readers.size();
  const size_t start = n == 0 ? 0 : src.rotation++ % n;
  size_t ingested = 0;
  std::vector<size_t> ended;
  for (size_t k = 0; k < n && budget > 0; ++k) {
    const size_t i = (start + k) % n;
    bool done = false;
    ingested += src.Read(*this, src.readers[i], &budget, &done);
    if (done) ended.push_back(i);
  }
  std::sort(ended.rbegin(), ended.rend());
  for (size_t i : ended) src.readers.erase(src.readers.begin() + static_cast<std::ptrdiff_t>(i));
  if (!ended.empty()) (void)src.StartReady(*this, /*initial=*/false);  // children, at once
  return ingested;
}

}  // namespace riffle
