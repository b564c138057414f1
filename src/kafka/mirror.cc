// Mirror: copies an in-process Stream into a Kafka-backed one, resuming from what the topic
// holds. Reading follows the lineage engine (consumer/lineage.h), as every other reader of
// a whole stream does.
//
// Resume, for each source shard S:
//   1. For each partition P that S's hash key range overlaps, the newest record of S that P
//      holds, L(P) (the greatest riffle.seq: a record sent again after a failure lands
//      after later ones), found by reading P backwards from its end until a record of S
//      before L(P)'s batch start is met.
//   2. The newest of those carries, in riffle.batch, the first number B of its batch. The
//      mirror waits for each batch to be acknowledged before reading further, so every
//      record of S before B is in the topic.
//   3. S is read again from B; a record for partition P is sent only when it is newer than
//      L(P). Within a partition the idempotent producer keeps S's records in order, so "at
//      most L(P)" means "already there" unless a record failed while later ones reached P.
//
// The mirror keeps such gaps out of the topic where it can and remembers the rest:
//   - a record over the destination's MaxRecordSizeBytes is never sent: its shard stops
//     there (nothing after it is sent), with a lasting error;
//   - after a failed batch (a record the brokers refused or that timed out) the resume
//     keeps every shard's cursor. A shard with a failed record reads again from the first
//     one, and the records whose send failed are sent again even when at most L(P) (unless
//     equal to it: then the failed send reached the topic after all).
#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <set>

#include "common/own_thread.h"
#include "consumer/lineage.h"
#include "fmt/format.h"
#include "kafka/core.h"
#include "riffle/detail/hash_key_cache.h"

namespace riffle::kafka {
namespace {

// Records read per step of the backward scan.
constexpr int64_t kScanWindow = 10'000;

std::optional<SequenceNumber> HeaderNumber(const rd_kafka_message_t& m, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(&m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return std::nullopt;
  }
  absl::StatusOr<SequenceNumber> n =
      SequenceNumber::Parse(std::string_view(static_cast<const char*>(value), size));
  if (!n.ok()) return std::nullopt;
  return *n;
}

bool Overlap(const HashKeyRange& a, const HashKeyRange& b) {
  return a.starting_hash_key <= b.ending_hash_key && b.starting_hash_key <= a.ending_hash_key;
}

}  // namespace

// What the topic holds of one source shard (resume step 1 and 2).
struct Copied {
  std::map<int32_t, SequenceNumber> last;  // L(P)
  SequenceNumber newest{};
  SequenceNumber newest_batch{};
};

// A source shard being copied.
struct ShardRun {
  std::string shard_id;
  HashKeyRange range;
  std::optional<riffle::detail::ShardCursor> cursor;
  bool after_parents = false;
  GetRecordsResult result;
  std::map<int32_t, SequenceNumber> present;  // L(P) from the resume; empty otherwise
  uint64_t missed_seen = 0;
  // Records whose last send failed, and the first of them to read again from.
  std::set<SequenceNumber> failed;
  std::optional<SequenceNumber> restart;
  // A record the destination refuses: nothing of the shard from it on is sent.
  absl::Status blocked;
};

// A record of the step's batch, for its acknowledgement.
struct Sent {
  ShardRun* run;
  SequenceNumber number;
};

struct Mirror::State {
  riffle::detail::LineageTracker tracker;
  std::vector<std::unique_ptr<ShardRun>> runs;
  std::map<std::string, Copied, std::less<>> copied;  // from the last resume
  bool resumed = false;
  bool tracking = false;  // the tracker and runs outlive every resume after the first
  int64_t next_sync_ms = INT64_MIN;
  absl::Status status;
  std::atomic<uint64_t> copied_records{0};
  std::atomic<uint64_t> skipped_records{0};
  std::atomic<uint64_t> missed_records{0};
  std::atomic<uint64_t> resumes{0};
  // One step's records, reused.
  std::vector<detail::OutRecord> out;
  std::vector<Sent> sent;
  std::vector<std::array<char, SequenceNumber::kDigits>> numbers;  // header texts
};

absl::StatusOr<std::unique_ptr<Mirror>> Mirror::Create(MirrorOptions options) {
  if (options.source == nullptr || options.destination == nullptr) {
    return InvalidArgumentError("MirrorOptions.source and MirrorOptions.destination are required.");
  }
  if (options.source->options().routing != options.destination->options().routing) {
    return InvalidArgumentError(fmt::format(
        "Routing of the source stream {} and of the destination stream {} differ: keys would "
        "land on other shards.",
        options.source->name(), options.destination->name()));
  }
  if (options.initial_position != ShardIteratorType::kTrimHorizon &&
      options.initial_position != ShardIteratorType::kLatest) {
    return InvalidArgumentError(
        fmt::format("InitialPosition {} is invalid: it must be TRIM_HORIZON or LATEST.",
                    ShardIteratorTypeName(options.initial_position)));
  }
  if (options.max_batch_records < 1 || options.max_batch_records > 10000) {
    return InvalidArgumentError(fmt::format(
        "MaxBatchRecords is {}; it must be between 1 and 10000.", options.max_batch_records));
  }
  if (options.resume_scan_limit < 1) {
    return InvalidArgumentError("ResumeScanLimit must be at least 1.");
  }
  // The intervals are added to clock times: a year is beyond any use and cannot overflow.
  constexpr absl::Duration kMaxInterval = absl::Hours(24 * 365);
  if (options.shard_refresh_interval < absl::ZeroDuration() ||
      options.idle_sleep < absl::ZeroDuration() || options.shard_refresh_interval > kMaxInterval ||
      options.idle_sleep > kMaxInterval) {
    return InvalidArgumentError(
        "ShardRefreshInterval and IdleSleep must be between 0 and 365 days.");
  }
  return std::unique_ptr<Mirror>(new Mirror(std::move(options)));
}

Mirror::Mirror(MirrorOptions options)
    : options_(std::move(options)),
      state_(std::make_unique<State>()),
      thread_(std::make_unique<riffle::detail::OwnThread>()) {}

Mirror::~Mirror() { Stop(); }

absl::Status Mirror::last_error() const { return state_->status; }

MirrorStats Mirror::stats() const {
  return MirrorStats{state_->copied_records.load(), state_->skipped_records.load(),
                     state_->missed_records.load(), state_->resumes.load()};
}

absl::Status Mirror::Start() {
  return thread_->Start(
      fmt::format("The mirror of stream {}", options_.source->name()), [this] { return Step(); },
      options_.idle_sleep);
}

void Mirror::Stop() {
  if (stopped_) return;
  thread_->Stop();
  stopped_ = true;
}

size_t Mirror::Poll() {
  if (stopped_) return 0;
  return Step();
}

size_t Mirror::Step() {
  State& st = *state_;
  if (!st.resumed) {
    st.status = Resume();
    if (!st.status.ok()) return 0;
  }
  return CopyBatches();
}

absl::Status Mirror::Resume() {
  State& st = *state_;
  st.resumes.fetch_add(1, std::memory_order_relaxed);
  st.copied.clear();

  riffle::Stream& source = *options_.source;
  detail::Core& core = *options_.destination->core_;
  absl::StatusOr<std::vector<Shard>> shards = source.ListShards();
  if (!shards.ok()) return shards.status();
  const std::vector<HashKeyRange> partition_ranges = UniformHashKeyRanges(core.partitions());
  const int64_t wait_ms = absl::ToInt64Milliseconds(core.options().request_timeout);

  for (int32_t p = 0; p < core.partitions(); ++p) {
    // The source shards that may have written to P, not yet met while reading back.
    std::set<uint64_t> wanted;
    for (const Shard& s : *shards) {
      if (Overlap(s.hash_key_range, partition_ranges[static_cast<std::size_t>(p)])) {
        wanted.insert(*ParseShardId(s.shard_id));
      }
    }
    absl::StatusOr<std::pair<int64_t, int64_t>> marks = core.Watermarks(p);
    if (!marks.ok()) return marks.status();
    const auto [low, high] = *marks;
    int64_t end = high;
    uint64_t scanned = 0;
    // Each source shard met in P: its greatest number there and that record's batch start
    // B. A record whose send failed and was sent again lands after later records of its
    // shard, so the last offset is not always the newest: a shard is settled once the scan
    // has met one of its records before B (sent before B's batch: every record of that
    // batch, and of any later one, was met).
    std::map<uint64_t, std::pair<SequenceNumber, SequenceNumber>> newest;
    while (end > low && !wanted.empty() && scanned < options_.resume_scan_limit) {
      const int64_t window = std::min<int64_t>(
          {kScanWindow, end - low, static_cast<int64_t>(options_.resume_scan_limit - scanned)});
      const int64_t begin = end - window;
      std::map<uint64_t, SequenceNumber> oldest;  // of each shard in [begin, end)
      int64_t offset = begin;
      while (offset < end) {
        absl::StatusOr<detail::ReaderPool::Outcome> read = core.readers().Read(
            p, offset, static_cast<int>(std::min<int64_t>(10000, end - offset)),
            riffle::detail::kMaxGetRecordsBytes, absl::Milliseconds(wait_ms),
            [&](const rd_kafka_message_t& m) {
              if (m.offset >= end) return;
              std::optional<SequenceNumber> seq = HeaderNumber(m, detail::kSeqHeader);
              std::optional<SequenceNumber> batch = HeaderNumber(m, detail::kBatchHeader);
              if (!seq || !batch || seq->stream_tag != source.stream_tag()) return;
              if (!wanted.contains(seq->shard_index)) return;  // settled in a newer window
              auto [it, fresh] = newest.try_emplace(seq->shard_index, *seq, *batch);
              if (!fresh && *seq > it->second.first) it->second = {*seq, *batch};
              auto [low_it, first] = oldest.try_emplace(seq->shard_index, *seq);
              if (!first && *seq < low_it->second) low_it->second = *seq;
            });
        if (!read.ok()) return read.status();
        if (read->next_offset == offset) {
          return detail::KafkaError(
              RD_KAFKA_RESP_ERR__TIMED_OUT,
              fmt::format("Resuming the mirror of {}: offset {} of shard {} in stream {} could "
                          "not be read",
                          source.name(), offset, core.shard_id(p), core.topic()));
        }
        offset = read->next_offset;
      }
      for (const auto& [shard, low_seq] : oldest) {
        if (low_seq < newest.at(shard).second) wanted.erase(shard);
      }
      end = begin;
      scanned += static_cast<uint64_t>(window);
    }
    for (const auto& [shard, found] : newest) {
      Copied& c = st.copied[FormatShardId(shard)];
      c.last[p] = found.first;
      if (found.first > c.newest) {
        c.newest = found.first;
        c.newest_batch = found.second;
      }
    }
  }
  if (!st.tracking) {
    if (absl::Status s = st.tracker.Sync(source); !s.ok()) return s;
    st.next_sync_ms =
        source.clock().NowMillis() + absl::ToInt64Milliseconds(options_.shard_refresh_interval);
    st.tracking = true;
  }
  st.resumed = true;
  return absl::OkStatus();
}

size_t Mirror::CopyBatches() {
  State& st = *state_;
  riffle::Stream& source = *options_.source;
  detail::Core& core = *options_.destination->core_;
  const int64_t now_ms = source.clock().NowMillis();
  st.status = absl::OkStatus();
  if (st.tracker.NeedsSync() || now_ms >= st.next_sync_ms) {
    st.next_sync_ms = now_ms + absl::ToInt64Milliseconds(options_.shard_refresh_interval);
    if (absl::Status s = st.tracker.Sync(source); !s.ok()) {
      st.status = s;
      return 0;
    }
  }
  for (riffle::detail::LineageTracker::Node& node : st.tracker.TakeReady()) {
    auto run = std::make_unique<ShardRun>();
    run->shard_id = node.shard_id;
    run->range = node.range;
    run->after_parents = node.after_parents;
    st.runs.push_back(std::move(run));
  }

  // Read one batch of every shard.
  st.out.clear();
  st.sent.clear();
  st.numbers.clear();
  const uint64_t max_record_bytes = core.options().max_record_size_bytes;
  for (auto& run_ptr : st.runs) {
    ShardRun& run = *run_ptr;
    if (!run.blocked.ok()) {
      st.status = run.blocked;
      continue;
    }
    if (!run.cursor) {
      run.cursor.emplace(run.shard_id);
      run.missed_seen = 0;
      auto found = st.copied.find(run.shard_id);
      run.present.clear();
      if (found != st.copied.end()) run.present = found->second.last;
      absl::Status s;
      if (run.restart) {
        s = run.cursor->Start(
            source,
            StartingPosition{ShardIteratorType::kAtSequenceNumber, run.restart->ToString(), {}},
            false);
      } else if (found != st.copied.end()) {
        s = run.cursor->Start(
            source,
            StartingPosition{
                ShardIteratorType::kAtSequenceNumber, found->second.newest_batch.ToString(), {}},
            false);
      } else if (run.after_parents) {
        s = run.cursor->Start(source, StartingPosition{ShardIteratorType::kTrimHorizon, {}, {}},
                              true);
      } else {
        s = run.cursor->Start(source, StartingPosition{options_.initial_position, {}, {}}, false);
      }
      if (!s.ok()) {
        run.cursor.reset();
        st.status = s;
        continue;
      }
      run.restart.reset();
    }
    if (absl::Status s = run.cursor->Read(source, run.result, options_.max_batch_records);
        !s.ok()) {
      st.status = s;
      continue;
    }
    st.missed_records.fetch_add(run.cursor->missed() - run.missed_seen, std::memory_order_relaxed);
    run.missed_seen = run.cursor->missed();
    if (run.result.records.empty()) continue;
    const SequenceNumber& first = run.result.records.front().sequence_number;
    for (const Record& r : run.result.records) {
      // The partition of the key's hash, kept inside the shard's range (see kafka.h).
      HashKey h = source.options().routing == RoutingMode::kMd5
                      ? riffle::detail::CachedMd5HashKey(r.partition_key)
                      : Xxh3HashKey(r.partition_key);
      h = std::clamp(h, run.range.starting_hash_key, run.range.ending_hash_key);
      const int32_t p = core.layout().ShardIndex(h);
      auto present = run.present.find(p);
      if (present != run.present.end() && r.sequence_number <= present->second &&
          (r.sequence_number == present->second || !run.failed.contains(r.sequence_number))) {
        run.failed.erase(r.sequence_number);
        st.skipped_records.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      // Checked before the send: sent, it would fail after later records reached the topic.
      if (const uint64_t size = r.partition_key.size() + r.data.size(); size > max_record_bytes) {
        run.blocked = InvalidArgumentError(fmt::format(
            "Record {} of shard {} in stream {} is {} bytes (partition key + data); stream {} "
            "takes at most {} bytes (MaxRecordSizeBytes). The mirror copies nothing of the "
            "shard from this record on.",
            r.sequence_number.ToString(), run.shard_id, source.name(), size, core.topic(),
            max_record_bytes));
        st.status = run.blocked;
        break;
      }
      st.sent.push_back(Sent{&run, r.sequence_number});
      std::array<char, SequenceNumber::kDigits>& seq = st.numbers.emplace_back();
      r.sequence_number.FormatTo(seq.data());
      std::array<char, SequenceNumber::kDigits>& batch = st.numbers.emplace_back();
      first.FormatTo(batch.data());
      st.out.push_back(detail::OutRecord{
          p, r.partition_key, r.data, absl::ToUnixMillis(r.approximate_arrival_timestamp), {}, {}});
    }
  }
  // The header views are taken once `numbers` stops growing.
  for (std::size_t i = 0; i < st.out.size(); ++i) {
    st.out[i].seq_header = std::string_view(st.numbers[2 * i].data(), SequenceNumber::kDigits);
    st.out[i].batch_header =
        std::string_view(st.numbers[2 * i + 1].data(), SequenceNumber::kDigits);
  }

  size_t acknowledged = 0;
  absl::Status failure;
  if (!st.out.empty()) {
    detail::PutBatch batch(st.out.size());
    for (std::size_t i = 0; i < st.out.size(); ++i) core.Send(batch, i, st.out[i]);
    core.Wait(batch);
    for (std::size_t i = 0; i < st.out.size(); ++i) {
      const absl::Status s = core.SlotStatus(batch.slots[i]);
      ShardRun& run = *st.sent[i].run;
      const SequenceNumber& number = st.sent[i].number;
      if (s.ok()) {
        ++acknowledged;
        run.failed.erase(number);
        continue;
      }
      run.failed.insert(number);
      if (!run.restart || number < *run.restart) run.restart = number;
      if (failure.ok()) failure = s;
    }
    st.copied_records.fetch_add(acknowledged, std::memory_order_relaxed);
  }
  if (!failure.ok()) {
    // A failed send may still have reached the topic (a timeout): the resume at the next
    // Poll() looks, then the shards with a failed record read again from the first one.
    for (auto& run : st.runs) {
      if (!run->restart) continue;
      run->cursor.reset();
      run->blocked = absl::OkStatus();  // met again when read again
    }
    st.status = failure;
    st.resumed = false;
  }
  // Shards read to their end release their children (after their records are in Kafka).
  for (std::size_t i = st.runs.size(); i-- > 0;) {
    ShardRun& run = *st.runs[i];
    // A blocked shard keeps its children waiting (and its error showing).
    if (!run.cursor || !run.cursor->ended() || !run.blocked.ok()) continue;
    if (run.cursor->gone()) {
      st.tracker.Drop(run.shard_id);
    } else {
      st.tracker.Finish(run.shard_id, run.result.child_shards);
    }
    st.runs.erase(st.runs.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return acknowledged;
}

}  // namespace riffle::kafka
