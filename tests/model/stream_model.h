// A reference model of riffle::Stream for tests/test_model.cpp: what every operation must
// return, errors included, computed the simple way (vectors and loops, one thread, a
// ManualClock). It reuses only leaf functions tested on their own (Md5HashKey,
// ParseHashKey, UniformHashKeyRanges, FormatShardId, SequenceNumber::Parse).
//
// The ring is modeled exactly, not approximately: a record of k key and d data bytes takes
// a frame of 32 + k + d bytes rounded up to 16; a frame that would reach the end of its
// segment (a quarter of the ring) becomes padding and the record goes after it (if it
// would reach the end of that segment too, at the start of the next one); the
// horizon is the start of the oldest of the four newest segments. So the model predicts
// every sequence number, which records a reader gets, and its missed count, exactly.
#ifndef RIFFLE_TESTS_MODEL_STREAM_MODEL_H_
#define RIFFLE_TESTS_MODEL_STREAM_MODEL_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "riffle/hash_key.h"
#include "riffle/record_source.h"
#include "riffle/sequence_number.h"
#include "riffle/status.h"

namespace riffle_test::model {

struct StreamConfig {
  int shard_count = 1;
  uint64_t ring_bytes = 4096;
  uint64_t max_record_bytes = 200;
  int shard_limit = 8;
  int64_t reshard_ms = 0;  // StreamOptions::reshard_duration
  int64_t iterator_lifetime_ms = 300'000;
  int64_t retention_ms = 24 * 3'600'000;
};

struct ModelRecord {
  uint64_t position = 0;
  uint64_t index = 0;
  int64_t arrival_ms = 0;
  std::string key;
  std::string data;
};

struct ModelIterator {
  uint64_t shard = 0;
  uint64_t position = 0;
  uint64_t next_index = 0;
  bool known = true;
  int64_t issued_ms = 0;
  int64_t floor_ms = INT64_MIN;
};

struct ModelRead {
  std::vector<ModelRecord> records;  // arrival_ms as the reader reports it (floored)
  uint64_t missed = 0;
  std::optional<ModelIterator> next;
  int64_t millis_behind = 0;
  std::vector<riffle::ChildShard> children;
};

template <class T>
struct Or {  // a value, or the error name the call must return
  std::string_view error;
  T value{};
  bool ok() const { return error.empty(); }
};

class StreamModel {
 public:
  StreamModel(const StreamConfig& config, int64_t now_ms) : c_(config), created_ms_(now_ms) {
    const std::vector<riffle::HashKeyRange> ranges = riffle::UniformHashKeyRanges(c_.shard_count);
    for (const auto& r : ranges) NewShard(r, now_ms);
  }

  const StreamConfig& config() const { return c_; }
  uint64_t shards_created() const { return shards_.size(); }
  int retention_hours() const { return static_cast<int>(retention_ms_ / 3'600'000); }
  bool updating(int64_t now) const { return now < updating_until_ms_; }

  // ---- Puts ----

  // The error a put of these members gets before it reaches a shard ("": none). Member
  // constraints first (ValidationException), then what the operation refuses.
  std::string_view CheckPut(std::string_view key, std::string_view data,
                            std::string_view explicit_key) const {
    const int64_t chars = CodePoints(key);
    if ((chars >= 0 && (chars < 1 || chars > 256)) || data.size() > c_.max_record_bytes ||
        (!explicit_key.empty() && !Decimal(explicit_key, 39))) {
      return riffle::kValidationException;
    }
    if (chars < 0) return riffle::kInvalidArgumentException;  // not UTF-8
    if (key.size() + data.size() > c_.max_record_bytes) return riffle::kInvalidArgumentException;
    if (!explicit_key.empty() && !riffle::ParseHashKey(explicit_key).ok()) {
      return riffle::kInvalidArgumentException;  // above 2^128 - 1
    }
    return "";
  }

  struct PutResult {
    uint64_t shard = 0;
    ModelRecord record;
  };
  Or<PutResult> Put(std::string_view key, std::string_view data, std::string_view explicit_key,
                    int64_t now) {
    if (std::string_view error = CheckPut(key, data, explicit_key); !error.empty()) {
      return {error};
    }
    riffle::HashKey hash = riffle::Md5HashKey(key);
    if (!explicit_key.empty()) {
      hash = *riffle::ParseHashKey(explicit_key);
    }
    Shard* s = nullptr;
    for (uint64_t i : open_) {
      if (shards_[i].range.Contains(hash)) s = &shards_[i];
    }
    const uint64_t frame = FrameBytes(key.size() + data.size());
    uint64_t t = s->tail;
    if (t + frame >= (t / Segment() + 1) * Segment()) {
      t += frame;  // padding to the boundary and past it; the record is claimed again
      const uint64_t boundary = (t / Segment() + 1) * Segment();
      if (t + frame >= boundary) t = boundary;  // crossing again: padding, then the record
    }
    s->max_arrival = std::max(s->max_arrival, now);
    ModelRecord r{t, s->next_index++, s->max_arrival, std::string(key), std::string(data)};
    s->tail = t + frame;
    s->records.push_back(r);
    return {{}, {s->index, r}};
  }

  // ---- Iterators and reads ----

  // `number` and `timestamp_ms` as the request gives them (empty / nullopt: absent).
  Or<ModelIterator> GetShardIterator(uint64_t shard, riffle::ShardIteratorType type,
                                     std::string_view number_text, uint64_t tag,
                                     std::optional<int64_t> timestamp_ms, int64_t now) const {
    const bool wants_number = type == riffle::ShardIteratorType::kAtSequenceNumber ||
                              type == riffle::ShardIteratorType::kAfterSequenceNumber;
    const bool at_timestamp = type == riffle::ShardIteratorType::kAtTimestamp;
    if (!number_text.empty() && !Decimal(number_text, 129)) return {riffle::kValidationException};
    if (wants_number == number_text.empty() || (at_timestamp && !timestamp_ms)) {
      return {riffle::kInvalidArgumentException};
    }
    if (!at_timestamp) timestamp_ms.reset();  // ignored, as the service ignores it
    const Shard* s = Live(shard, now);
    if (s == nullptr) return {riffle::kResourceNotFoundException};
    ModelIterator it{shard, 0, 0, true, now, INT64_MIN};
    switch (type) {
      case riffle::ShardIteratorType::kTrimHorizon:
      case riffle::ShardIteratorType::kAtTimestamp: {
        if (timestamp_ms && *timestamp_ms > now) return {riffle::kInvalidArgumentException};
        const int64_t oldest = OldestMs(now);
        const auto [position, index] =
            SeekTime(*s, timestamp_ms ? std::max(*timestamp_ms, oldest) : oldest);
        it.position = position;
        it.next_index = index;
        return {{}, it};
      }
      case riffle::ShardIteratorType::kLatest:
        it.position = s->tail;
        it.next_index = s->next_index;
        return {{}, it};
      default:
        break;
    }
    const absl::StatusOr<riffle::SequenceNumber> number =
        riffle::SequenceNumber::Parse(number_text);
    if (!number.ok() || number->stream_tag != tag || number->shard_index != shard) {
      return {riffle::kInvalidArgumentException};
    }
    const bool after = type == riffle::ShardIteratorType::kAfterSequenceNumber;
    it.next_index = number->record_index + (after ? 1 : 0);
    it.position = number->position;
    switch (CheckRecord(*s, number->position, number->record_index)) {
      case Check::kNotARecord:
        return {riffle::kInvalidArgumentException};
      case Check::kTrimmed:
        return {{}, it};
      case Check::kRecord:
        if (after) it.position += FrameBytes(*RecordAt(*s, number->position));
        return {{}, it};
    }
    return {riffle::kInternalFailure};
  }

  // An issued iterator's read (the model never forges one: fuzz_shard_iterator does).
  Or<ModelRead> GetRecords(const ModelIterator& it, int limit, int64_t now) const {
    if (limit < 1 || limit > 10000) return {riffle::kValidationException};
    const uint64_t age = now > it.issued_ms ? static_cast<uint64_t>(now - it.issued_ms) : 0;
    if (age > static_cast<uint64_t>(c_.iterator_lifetime_ms))
      return {riffle::kExpiredIteratorException};
    const Shard* s = Live(it.shard, now);
    if (s == nullptr) return {riffle::kResourceNotFoundException};

    ModelRead out;
    const int64_t oldest = OldestMs(now);
    // A reader the ring lapped restarts at the horizon.
    const uint64_t start = std::max(it.position, Horizon(s->tail));
    uint64_t end = s->tail;
    std::vector<const ModelRecord*> copied;
    for (const ModelRecord& r : s->records) {
      if (r.position < start) continue;
      if (copied.size() == static_cast<size_t>(limit)) break;
      copied.push_back(&r);
    }
    if (copied.size() == static_cast<size_t>(limit))
      end = copied.back()->position + FrameBytes(*copied.back());
    uint64_t expected = it.next_index;
    bool known = it.known;
    int64_t floor = it.floor_ms;
    for (const ModelRecord* r : copied) {
      if (known && r->index > expected) out.missed += r->index - expected;
      expected = r->index + 1;
      known = true;
      if (r->arrival_ms < oldest) {  // aged out of retention
        ++out.missed;
        continue;
      }
      floor = std::max(floor, r->arrival_ms);
      ModelRecord seen = *r;
      seen.arrival_ms = floor;
      out.records.push_back(seen);
    }
    if (s->closed_ms >= 0 && end >= s->tail) {
      if (known && s->next_index > expected) out.missed += s->next_index - expected;
      for (uint64_t child : s->children) out.children.push_back(DescribeChild(child));
      return {{}, out};
    }
    if (!copied.empty() && end < s->tail) {  // behind the newest, aged-out frames counted
      int64_t examined = floor;
      for (const ModelRecord* r : copied) examined = std::max(examined, r->arrival_ms);
      out.millis_behind = std::max<int64_t>(0, s->max_arrival - examined);
    }
    if (!known && end == s->tail) {
      expected = s->next_index;
      known = true;
    }
    out.next = ModelIterator{it.shard, end, expected, known, now, floor};
    return {{}, out};
  }

  Or<ModelIterator> Renew(const ModelIterator& it, int64_t now) const {
    if (Live(it.shard, now) == nullptr) return {riffle::kResourceNotFoundException};
    ModelIterator renewed = it;
    renewed.issued_ms = now;
    return {{}, renewed};
  }

  // ---- Listing ----

  struct ListedShard {
    uint64_t index;
    std::optional<uint64_t> parent, adjacent;
    riffle::HashKeyRange range;
    std::optional<std::pair<uint64_t, uint64_t>> ending;  // (position, index) once closed
  };
  std::vector<ListedShard> ListShards(std::optional<riffle::ShardFilterType> filter,
                                      std::optional<uint64_t> after, int64_t now) const {
    std::vector<ListedShard> out;
    const int64_t horizon = OldestMs(now);
    for (const Shard& s : shards_) {
      if (Expired(s, now) || (after && s.index <= *after)) continue;
      bool keep = true;
      if (filter == riffle::ShardFilterType::kAtLatest) keep = s.closed_ms < 0;
      if (filter == riffle::ShardFilterType::kAtTrimHorizon) {
        const int64_t t = std::max(horizon, created_ms_);
        keep = s.created_ms <= t && (s.closed_ms < 0 || s.closed_ms >= t);
      }
      if (!keep) continue;
      ListedShard l{s.index, s.parent, s.adjacent, s.range, {}};
      if (s.closed_ms >= 0) {
        l.ending = s.next_index > 0 ? std::make_pair(s.records.back().position, s.next_index - 1)
                                    : std::make_pair(uint64_t{0}, uint64_t{0});
      }
      out.push_back(l);
    }
    return out;
  }

  int OpenCount() const { return static_cast<int>(open_.size()); }
  int ClosedLiveCount(int64_t now) const {
    int n = 0;
    for (const Shard& s : shards_) n += s.closed_ms >= 0 && !Expired(s, now);
    return n;
  }
  // Shards that are open, by increasing starting hash key.
  std::vector<std::pair<uint64_t, riffle::HashKeyRange>> OpenShards() const {
    std::vector<std::pair<uint64_t, riffle::HashKeyRange>> out;
    for (uint64_t i : open_) out.emplace_back(i, shards_[i].range);
    return out;
  }
  bool IsLive(uint64_t shard, int64_t now) const { return Live(shard, now) != nullptr; }
  const std::vector<ModelRecord>* RecordsOf(uint64_t shard) const {
    return shard < shards_.size() ? &shards_[shard].records : nullptr;
  }

  // ---- Resharding ----

  std::string_view Split(uint64_t shard, std::string_view key_text, int64_t now) {
    if (!Decimal(key_text, 39)) return riffle::kValidationException;
    if (updating(now)) return riffle::kResourceInUseException;
    const Shard* s = Live(shard, now);
    if (s == nullptr) return riffle::kResourceNotFoundException;
    if (s->closed_ms >= 0) return riffle::kInvalidArgumentException;
    auto key = riffle::ParseHashKey(key_text);
    if (!key.ok()) return riffle::kInvalidArgumentException;
    const riffle::HashKeyRange r = s->range;
    if (r.ending_hash_key - r.starting_hash_key < 2 || *key <= r.starting_hash_key + 1 ||
        *key >= r.ending_hash_key) {
      return riffle::kInvalidArgumentException;
    }
    if (OpenCount() + 1 > c_.shard_limit) return riffle::kLimitExceededException;
    std::vector<uint64_t> open = open_;
    SplitIn(open, Position(open, shard), *key, now);
    Commit(std::move(open), now);
    return "";
  }

  std::string_view Merge(uint64_t a, uint64_t b, int64_t now) {
    if (updating(now)) return riffle::kResourceInUseException;
    for (uint64_t i : {a, b}) {
      if (Live(i, now) == nullptr) return riffle::kResourceNotFoundException;
    }
    for (uint64_t i : {a, b}) {
      if (shards_[i].closed_ms >= 0) return riffle::kInvalidArgumentException;
    }
    // The shard to merge is the lower one; the other order is refused.
    const riffle::HashKeyRange ra = shards_[a].range, rb = shards_[b].range;
    const bool a_below =
        ra.ending_hash_key != riffle::kMaxHashKey && ra.ending_hash_key + 1 == rb.starting_hash_key;
    if (!a_below) return riffle::kInvalidArgumentException;
    std::vector<uint64_t> open = open_;
    MergeIn(open, Position(open, a), a, now);
    Commit(std::move(open), now);
    return "";
  }

  std::string_view UpdateShardCount(int target, int64_t now) {
    if (target < 1) return riffle::kValidationException;
    if (updating(now)) return riffle::kResourceInUseException;
    const int current = OpenCount();
    if (target > c_.shard_limit) return riffle::kLimitExceededException;
    if (target > 2 * current || 2 * target < current) return riffle::kLimitExceededException;
    // Every target boundary becomes a shard boundary, then each target range's pieces merge.
    std::vector<uint64_t> open = open_;
    const std::vector<riffle::HashKeyRange> targets = riffle::UniformHashKeyRanges(target);
    for (size_t j = 1; j < targets.size(); ++j) {
      const size_t i = Holding(open, targets[j].starting_hash_key);
      if (shards_[open[i]].range.starting_hash_key != targets[j].starting_hash_key) {
        SplitIn(open, i, targets[j].starting_hash_key, now);
      }
    }
    for (const riffle::HashKeyRange& t : targets) {
      const size_t i = Holding(open, t.starting_hash_key);
      while (shards_[open[i]].range.ending_hash_key != t.ending_hash_key) {
        MergeIn(open, i, open[i], now);
      }
    }
    Commit(std::move(open), now);
    return "";
  }

  // ---- Retention ----

  std::string_view ChangeRetention(int hours, bool increase, int64_t now) {
    if (hours < 1) return riffle::kValidationException;
    if (hours < 24 || hours > 8760) return riffle::kInvalidArgumentException;
    const int current = retention_hours();
    if (increase ? hours < current : hours > current) return riffle::kInvalidArgumentException;
    floor_ms_ = std::max(floor_ms_, OldestMs(now));  // trimmed records stay trimmed
    retention_ms_ = int64_t{hours} * 3'600'000;
    return "";
  }

  int64_t OldestMs(int64_t now) const { return std::max(now - retention_ms_, floor_ms_); }

 private:
  struct Shard {
    uint64_t index = 0;
    riffle::HashKeyRange range;
    std::optional<uint64_t> parent, adjacent;
    int64_t created_ms = 0;
    int64_t closed_ms = -1;
    std::vector<uint64_t> children;
    uint64_t tail = 0;
    uint64_t next_index = 0;
    int64_t max_arrival = 0;
    std::vector<ModelRecord> records;  // every record put, by position
  };
  enum class Check { kRecord, kNotARecord, kTrimmed };

  // The service's pattern for numbers given as text: 0|([1-9]\d{0,max_digits-1}).
  static bool Decimal(std::string_view s, std::size_t max_digits) {
    if (s.empty() || s.size() > max_digits) return false;
    if (s[0] == '0') return s.size() == 1;
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  }

  static int64_t CodePoints(std::string_view s) {
    int64_t n = 0;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
  }
  static uint64_t FrameBytes(uint64_t payload) { return (32 + payload + 15) / 16 * 16; }
  static uint64_t FrameBytes(const ModelRecord& r) {
    return FrameBytes(r.key.size() + r.data.size());
  }
  uint64_t Segment() const { return c_.ring_bytes / 4; }
  uint64_t Horizon(uint64_t tail) const {
    const uint64_t segments = (tail + Segment() - 1) / Segment();
    return segments > 4 ? (segments - 4) * Segment() : 0;
  }

  bool Expired(const Shard& s, int64_t now) const {
    return s.closed_ms >= 0 && s.closed_ms < OldestMs(now);
  }
  const Shard* Live(uint64_t index, int64_t now) const {
    if (index >= shards_.size() || Expired(shards_[index], now)) return nullptr;
    return &shards_[index];
  }
  const ModelRecord* RecordAt(const Shard& s, uint64_t position) const {
    for (const ModelRecord& r : s.records) {
      if (r.position == position) return &r;
    }
    return nullptr;
  }

  // The first record at or after the horizon that arrived at or after t, else the end.
  std::pair<uint64_t, uint64_t> SeekTime(const Shard& s, int64_t t) const {
    const uint64_t horizon = Horizon(s.tail);
    for (const ModelRecord& r : s.records) {
      if (r.position >= horizon && r.arrival_ms >= t) return {r.position, r.index};
    }
    return {s.tail, s.next_index};
  }

  // A sequence number is a record's when a record starts there with that index; below the
  // horizon it cannot be checked, and is accepted when it is plausible: aligned, an index
  // below the first retained record's, and room before it for that many frames.
  Check CheckRecord(const Shard& s, uint64_t position, uint64_t index) const {
    const uint64_t room = position % 16 != 0 ? 0 : Segment() - position % Segment();
    if (position >= s.tail || room < 32) return Check::kNotARecord;
    if (position < Horizon(s.tail)) {
      if (index > position / 48) return Check::kNotARecord;
      return index < SeekTime(s, INT64_MIN).second ? Check::kTrimmed : Check::kNotARecord;
    }
    const ModelRecord* r = RecordAt(s, position);
    return r != nullptr && r->index == index ? Check::kRecord : Check::kNotARecord;
  }

  riffle::ChildShard DescribeChild(uint64_t index) const {
    riffle::ChildShard c{riffle::FormatShardId(index), {}, shards_[index].range};
    if (shards_[index].parent)
      c.parent_shards.push_back(riffle::FormatShardId(*shards_[index].parent));
    if (shards_[index].adjacent)
      c.parent_shards.push_back(riffle::FormatShardId(*shards_[index].adjacent));
    return c;
  }

  uint64_t NewShard(riffle::HashKeyRange range, int64_t now) {
    Shard s;
    s.index = shards_.size();
    s.range = range;
    s.created_ms = now;
    shards_.push_back(s);
    open_.push_back(s.index);
    return s.index;
  }
  size_t Position(const std::vector<uint64_t>& open, uint64_t shard) const {
    return static_cast<size_t>(std::find(open.begin(), open.end(), shard) - open.begin());
  }
  size_t Holding(const std::vector<uint64_t>& open, riffle::HashKey key) const {
    size_t i = 0;
    while (i + 1 < open.size() && shards_[open[i + 1]].range.starting_hash_key <= key) ++i;
    return i;
  }
  // Children take the next indexes (the lower range the lower index) and replace the
  // parent in `open`; the parent closes when the plan commits.
  void SplitIn(std::vector<uint64_t>& open, size_t i, riffle::HashKey key, int64_t now) {
    const uint64_t parent = open[i];
    const riffle::HashKeyRange r = shards_[parent].range;
    const uint64_t lower = Child({r.starting_hash_key, key - 1}, parent, std::nullopt, now);
    const uint64_t upper = Child({key, r.ending_hash_key}, parent, std::nullopt, now);
    retired_.push_back(parent);
    shards_[parent].children = {lower, upper};
    open[i] = lower;
    open.insert(open.begin() + static_cast<std::ptrdiff_t>(i) + 1, upper);
  }
  void MergeIn(std::vector<uint64_t>& open, size_t i, uint64_t parent, int64_t now) {
    const uint64_t lower = open[i], upper = open[i + 1];
    const uint64_t adjacent = parent == lower ? upper : lower;
    const uint64_t child =
        Child({shards_[lower].range.starting_hash_key, shards_[upper].range.ending_hash_key},
              parent, adjacent, now);
    retired_.push_back(lower);
    retired_.push_back(upper);
    shards_[lower].children = {child};
    shards_[upper].children = {child};
    open[i] = child;
    open.erase(open.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }
  uint64_t Child(riffle::HashKeyRange range, uint64_t parent, std::optional<uint64_t> adjacent,
                 int64_t now) {
    Shard s;
    s.index = shards_.size();
    s.range = range;
    s.parent = parent;
    s.adjacent = adjacent;
    s.created_ms = now;
    shards_.push_back(s);
    return s.index;
  }
  void Commit(std::vector<uint64_t> open, int64_t now) {
    for (uint64_t r : retired_) shards_[r].closed_ms = now;
    retired_.clear();
    open_ = std::move(open);
    updating_until_ms_ = now + c_.reshard_ms;
  }

  StreamConfig c_;
  int64_t created_ms_;
  int64_t retention_ms_ = c_.retention_ms;
  int64_t floor_ms_ = INT64_MIN;
  int64_t updating_until_ms_ = 0;
  std::vector<Shard> shards_;   // by index
  std::vector<uint64_t> open_;  // by starting hash key
  std::vector<uint64_t> retired_;
};

}  // namespace riffle_test::model

#endif  // RIFFLE_TESTS_MODEL_STREAM_MODEL_H_
