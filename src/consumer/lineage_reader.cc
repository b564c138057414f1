// LineageReader: a polling reader of a whole stream over the lineage engine.
#include "riffle/lineage_reader.h"

#include <algorithm>

#include "consumer/lineage.h"
#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle {

struct LineageReader::State {
  struct Active {
    ShardInfo info;
    detail::ShardCursor cursor;
    bool from_first_record = false;
  };

  RecordSource& source;
  LineageReaderOptions options;
  detail::LineageTracker tracker;
  std::vector<Active> active;
  GetRecordsResult result;
  std::vector<UserRecord> user_records;  // with a deaggregator
  absl::Status status;
  uint64_t missed_done = 0;  // of cursors that finished
  bool synced = false;
};

LineageReader::LineageReader(RecordSource& source, LineageReaderOptions options)
    : state_(new State{source, std::move(options), {}, {}, {}, {}, {}, 0, false}) {}

LineageReader::~LineageReader() = default;

absl::Status LineageReader::last_error() const { return state_->status; }

const std::set<std::string, std::less<>>& LineageReader::finished() const {
  return state_->tracker.finished();
}

uint64_t LineageReader::missed_records() const {
  uint64_t missed = state_->missed_done;
  for (const auto& a : state_->active) missed += a.cursor.missed();
  return missed;
}

std::size_t LineageReader::waiting() const { return state_->tracker.waiting(); }

size_t LineageReader::PollImpl(const RecordHandler* on_record,
                               const UserRecordHandler* on_user_record, int limit) {
  State& st = *state_;
  if (limit == 0) limit = st.options.limit;
  if (limit < 1 || limit > 10000) {
    st.status =
        InvalidArgumentError(fmt::format("Limit is {}; it must be between 1 and 10000.", limit));
    return 0;
  }
  absl::Status error;
  size_t progress = 0;
  if (!st.synced || st.tracker.NeedsSync()) {
    if (absl::Status s = st.tracker.Sync(st.source); !s.ok()) {
      st.status = s;
      return 0;
    }
    st.synced = true;
  }
  // The first listing starts at the initial position: at LATEST its closed shards hold only
  // what was put before the reader (finished unread, as Consumer and DeliveryStream do),
  // and at AT_TIMESTAMP their children start at the time too. Shards met later start at
  // their first record, as do children at TRIM_HORIZON (whose trimmed records count as
  // missed).
  const ShardIteratorType initial = st.options.initial_position;
  for (detail::LineageTracker::Node& node : initial == ShardIteratorType::kLatest
                                                ? st.tracker.TakeReadySkippingClosedAtStart()
                                                : st.tracker.TakeReady()) {
    const bool from_first_record =
        node.after_parents &&
        (!node.from_first_listing || initial == ShardIteratorType::kTrimHorizon);
    st.active.push_back(State::Active{ShardInfo{node.shard_id, node.range, node.parents},
                                      detail::ShardCursor(node.shard_id), from_first_record});
  }
  for (std::size_t i = 0; i < st.active.size();) {
    State::Active& a = st.active[i];
    if (!a.cursor.started() && !a.cursor.ended()) {
      StartingPosition start{st.options.initial_position, {}, st.options.timestamp};
      if (a.from_first_record) start = {ShardIteratorType::kTrimHorizon, {}, std::nullopt};
      if (absl::Status s = a.cursor.Start(st.source, start, a.from_first_record); !s.ok()) {
        error = s;
        ++i;
        continue;
      }
      ++progress;
    }
    if (absl::Status s = a.cursor.Read(st.source, st.result, limit); !s.ok()) {
      error = s;
      ++i;
      continue;
    }
    if (st.options.deaggregator != nullptr) {
      st.user_records.clear();
      st.options.deaggregator->Decode(st.result.records, a.info.range, st.user_records);
      for (const UserRecord& u : st.user_records) {
        on_record != nullptr ? (*on_record)(a.info, u) : (*on_user_record)(a.info, u);
      }
    } else if (on_record != nullptr) {
      for (const Record& r : st.result.records) (*on_record)(a.info, r);
    } else {
      for (const Record& r : st.result.records) {
        UserRecord u;
        static_cast<Record&>(u) = r;
        (*on_user_record)(a.info, u);
      }
    }
    progress += st.result.records.size();
    if (!a.cursor.ended()) {
      ++i;
      continue;
    }
    // The end of a closed shard (or it expired under the reader): children become known.
    if (a.cursor.gone()) {
      st.tracker.Drop(a.info.shard_id);
    } else {
      st.tracker.Finish(a.info.shard_id, st.result.child_shards);
    }
    st.missed_done += a.cursor.missed();
    st.active.erase(st.active.begin() + static_cast<std::ptrdiff_t>(i));
    ++progress;
  }
  st.status = error;
  return progress;
}

}  // namespace riffle
