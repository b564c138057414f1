// Model-based random test: seeded random operation sequences run against riffle::Stream
// and riffle::FifoQueue and against the reference models in tests/model/, comparing every
// answer (values and exact error names). On a mismatch the seed is printed with the
// operation list shrunk to what still fails (operations dropped while it fails).
//
// The Stream model predicts the ring exactly (frame sizes, padding at segment ends, the
// horizon): every sequence number, every record a read returns, and every missed count are
// compared, not only "records read + missed == records put". See stream_model.h.
//
// This file: the Stream; test_model_fifo.cpp: the FifoQueue (the same binary); model_run.h:
// the harness both use.
//
// Seeds: RIFFLE_MODEL_SEEDS (default 5,000, divided by StressDivisor() under sanitizers);
// RIFFLE_MODEL_FIRST_SEED=F starts there instead of 1; RIFFLE_MODEL_SEED=S runs one seed, for
// a failure's replay. ./run.sh model --seeds N.
#include <absl/strings/str_join.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "model/stream_model.h"
#include "model_run.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

namespace {

using riffle_test::model::ModelIterator;
using riffle_test::model::ModelRecord;
using riffle_test::model::StreamConfig;
using riffle_test::model::StreamModel;
using riffle_test::model_run::Name;
using riffle_test::model_run::Op;
using riffle_test::model_run::RunSeeds;
using riffle_test::model_run::Short;

// ============================== Stream ==============================

enum class S {
  kPut,
  kPutRecords,
  kIterator,
  kRead,
  kRenew,
  kAdvance,
  kSplit,
  kMerge,
  kUpdate,
  kRetention,
  kList,
  kDescribe
};
using StreamOp = Op<S>;

std::string ToString(const StreamOp& op) {
  static constexpr const char* kNames[] = {"Put",        "PutRecords",         "GetShardIterator",
                                           "GetRecords", "RenewShardIterator", "Advance",
                                           "SplitShard", "MergeShards",        "UpdateShardCount",
                                           "Retention",  "ListShards",         "Describe"};
  return fmt::format("{}({}, {}, {}, {})", kNames[static_cast<int>(op.kind)], op.a, op.b, op.c,
                     op.d);
}

std::string ToString(const StreamConfig& c) {
  return fmt::format("{} shards, {}-byte rings, reshards last {} ms", c.shard_count, c.ring_bytes,
                     c.reshard_ms);
}

StreamConfig StreamConfigFor(uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull);
  StreamConfig c;
  c.shard_count = 1 + static_cast<int>(rng() % 3);
  static constexpr uint64_t kRings[] = {1024, 2048, 4096, 16384, uint64_t{1} << 20};
  c.ring_bytes = kRings[rng() % 5];
  c.reshard_ms = rng() % 3 == 0 ? 30'000 : 0;
  return c;
}

std::vector<StreamOp> StreamOpsFor(uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t n = 40 + rng() % 200;
  std::vector<StreamOp> ops;
  // Weights: puts and reads dominate, resharding and time moves are frequent enough to
  // interleave with them.
  static constexpr int kWeights[] = {34, 5, 14, 22, 2, 8, 4, 4, 3, 2, 3, 2};
  std::discrete_distribution<int> kind(std::begin(kWeights), std::end(kWeights));
  for (size_t i = 0; i < n; ++i)
    ops.push_back({static_cast<S>(kind(rng)), rng(), rng(), rng(), rng()});
  return ops;
}

class StreamRun {
 public:
  explicit StreamRun(const StreamConfig& config) : model_(config, clock_.NowMillis()) {
    riffle::StreamOptions o;
    o.stream_name = "modelled";
    o.shard_count = config.shard_count;
    o.ring_capacity_bytes = config.ring_bytes;
    o.max_record_size_bytes = config.max_record_bytes;
    o.shard_limit = config.shard_limit;
    o.reshard_duration = absl::Milliseconds(config.reshard_ms);
    o.clock = &clock_;
    real_ = std::move(riffle::Stream::Create(o)).value();
    tag_ = real_->stream_tag();
  }

  // "" when every operation agreed with the model, else the first disagreement;
  // *executed counts the operations run.
  std::string Run(const std::vector<StreamOp>& ops, size_t* executed,
                  std::vector<std::string>* transcript = nullptr) {
    for (size_t i = 0; i < ops.size(); ++i) {
      said_ = ToString(ops[i]);
      std::string error = Step(ops[i]);
      ++*executed;
      if (transcript != nullptr) transcript->push_back(said_);
      if (!error.empty()) return fmt::format("operation {} {}: {}", i, said_, error);
    }
    return "";
  }

 private:
  int64_t Now() const { return clock_.NowMillis(); }

  static std::string Key(uint64_t choice) {
    switch (choice % 64) {
      case 10:
        return "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87";  // "ключ": 4 characters, 8 bytes
      case 11:
        return "";  // too short
      case 12:
        return std::string(257, 'x');  // too long
      case 13:
        return std::string(256, 'y');  // the longest valid key
      default:
        return fmt::format("k{}", choice % 10);
    }
  }
  static std::string Data(uint64_t length, uint64_t salt) {
    std::string d(length, 'a');
    for (uint64_t i = 0; i < length; ++i) d[i] = static_cast<char>('a' + (salt + i * 7) % 26);
    return d;
  }

  std::string Step(const StreamOp& op) {
    switch (op.kind) {
      case S::kPut:
        return Put(op);
      case S::kPutRecords:
        return PutRecords(op);
      case S::kIterator:
        return Iterator(op);
      case S::kRead:
        return Read(op);
      case S::kRenew:
        return Renew(op);
      case S::kAdvance:
        return Advance(op);
      case S::kSplit:
        return Split(op);
      case S::kMerge:
        return Merge(op);
      case S::kUpdate:
        return Update(op);
      case S::kRetention:
        return Retention(op);
      case S::kList:
        return List(op);
      case S::kDescribe:
        return Describe();
    }
    return "unknown operation";
  }

  std::string ComparePut(const absl::StatusOr<riffle::PutRecordResult>& real,
                         const riffle_test::model::Or<StreamModel::PutResult>& model) {
    if (Name(real.status()) != Name(model.error)) {
      return fmt::format("PutRecord answered {}, the model {}", Name(real.status()),
                         Name(model.error));
    }
    if (!real.ok()) return "";
    const riffle::SequenceNumber expected{tag_, model.value.shard, model.value.record.position,
                                          model.value.record.index};
    if (real->shard_id != riffle::FormatShardId(model.value.shard) ||
        real->sequence_number != expected) {
      return fmt::format("PutRecord put {} {}, the model {} {}", real->shard_id,
                         real->sequence_number.ToString(), riffle::FormatShardId(model.value.shard),
                         expected.ToString());
    }
    puts_.push_back({model.value.shard, model.value.record});
    return "";
  }

  std::string Put(const StreamOp& op) {
    const std::string key = Key(op.a);
    // Now and then exactly at the size limit, or a byte or two over it.
    const uint64_t length =
        op.b % 20 == 0 ? 200 - std::min<uint64_t>(key.size(), 200) + (op.b / 20 % 3) : op.b % 160;
    const std::string data = Data(length, op.d);
    std::string explicit_key;
    if (op.c % 8 == 1) explicit_key = riffle::FormatHashKey(absl::MakeUint128(op.d, op.c));
    if (op.c % 64 == 2) explicit_key = op.d % 2 ? "12x" : "340282366920938463463374607431768211456";
    const auto real = real_->PutRecord({key, data, explicit_key, {}});
    said_ = fmt::format("PutRecord(key '{}', {} bytes{})", Short(key), data.size(),
                        explicit_key.empty() ? "" : ", ExplicitHashKey " + explicit_key);
    return ComparePut(real, model_.Put(key, data, explicit_key, Now()));
  }

  std::string PutRecords(const StreamOp& op) {
    const size_t n = op.a % 5;  // 0: refused
    std::vector<std::string> keys, datas;
    for (size_t i = 0; i < n; ++i) {
      keys.push_back(Key(op.b + i));
      datas.push_back(Data((op.c + 37 * i) % 150, op.d + i));
    }
    std::vector<riffle::PutRecordsRequestEntry> entries;
    for (size_t i = 0; i < n; ++i) entries.push_back({keys[i], datas[i], {}});
    const auto real = real_->PutRecords(entries);
    said_ = fmt::format("PutRecords({} entries)", n);
    // An empty request, or one invalid entry, refuses the whole request: ValidationException
    // for member constraints (of any entry) before the operation's own refusals.
    std::string_view refused = n == 0 ? riffle::kValidationException : "";
    for (size_t i = 0; i < n && refused != riffle::kValidationException; ++i) {
      const std::string_view error = model_.CheckPut(keys[i], datas[i], "");
      if (!error.empty()) refused = error;
    }
    if (!refused.empty()) {
      return riffle::HasErrorName(real.status(), refused)
                 ? ""
                 : fmt::format("PutRecords answered {}, the model {}", Name(real.status()),
                               Name(refused));
    }
    if (!real.ok()) return "PutRecords: " + Name(real.status());
    int failed = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto model = model_.Put(keys[i], datas[i], "", Now());
      const auto& e = real->records[i];
      failed += !model.ok();
      if (e.error_code != std::string(model.error)) {
        return fmt::format("entry {}: {}, the model {}", i, e.error_code, Name(model.error));
      }
      if (model.ok()) {
        riffle::PutRecordResult as_put{e.shard_id, *e.sequence_number};
        if (std::string err = ComparePut(as_put, model); !err.empty()) return err;
      }
    }
    if (real->failed_record_count != failed) return "PutRecords failed_record_count";
    return "";
  }

  std::string CompareIterator(const riffle::ShardIterator& real, const ModelIterator& m) {
    if (real.stream_tag != tag_ || real.shard_index != m.shard || real.position != m.position ||
        real.next_record_index != m.next_index || real.next_record_index_known != m.known ||
        real.issued_at_ms != m.issued_ms || real.arrival_floor_ms != m.floor_ms) {
      return fmt::format(
          "iterator {} (shard {} position {} index {} issued {} floor {}); the model "
          "has shard {} position {} index {} issued {} floor {}",
          real.ToString(), real.shard_index, real.position, real.next_record_index,
          real.issued_at_ms, real.arrival_floor_ms, m.shard, m.position, m.next_index, m.issued_ms,
          m.floor_ms);
    }
    return "";
  }

  void Hold(const riffle::ShardIterator& real, const ModelIterator& m) {
    if (held_.size() == 12) held_.erase(held_.begin());
    held_.push_back({real, m});
  }

  std::string Iterator(const StreamOp& op) {
    const auto type = static_cast<riffle::ShardIteratorType>(op.b % 5);
    const bool wants_number = type == riffle::ShardIteratorType::kAtSequenceNumber ||
                              type == riffle::ShardIteratorType::kAfterSequenceNumber;
    uint64_t shard = op.a % (model_.shards_created() + 1);  // one past: a shard that never was
    std::string number;
    if (wants_number && !puts_.empty()) {
      const auto& [put_shard, record] = puts_[op.c % puts_.size()];
      riffle::SequenceNumber n{tag_, put_shard, record.position, record.index};
      if (op.a % 4 != 0) shard = put_shard;
      switch (op.d % 12) {
        case 1:
          n.position += 16;
          break;  // inside the record
        case 2:
          n.record_index += 1;
          break;  // another record's index
        case 3:
          n.record_index = 999'999;
          break;  // more records than the position holds
        case 4:
          n.stream_tag = tag_ % 999'999'999 + 1;
          break;  // another stream
        case 5:
          n.position = record.position % 16 + 8;
          break;  // not aligned
        default:
          break;  // the record's own number
      }
      number = n.ToString();
      if (op.d % 12 == 6) number = "49";
      if (op.d % 12 == 7) number = "";  // required, missing
    } else if (wants_number) {
      number = "4" + std::string(55, '0');
    } else if (op.d % 40 == 1) {
      number = "41";  // given where it must not be
    }
    std::optional<int64_t> timestamp_ms;
    if (type == riffle::ShardIteratorType::kAtTimestamp && op.d % 20 != 1) {
      timestamp_ms = Now() - static_cast<int64_t>(op.c % (30 * 3600)) * 1000 + 5000;
    }
    if (type == riffle::ShardIteratorType::kTrimHorizon && op.d % 20 == 2) timestamp_ms = Now();
    const std::string shard_id = riffle::FormatShardId(shard);
    riffle::GetShardIteratorRequest request{shard_id, type, number, {}};
    if (timestamp_ms) request.timestamp = absl::FromUnixMillis(*timestamp_ms);
    const auto real = real_->GetShardIterator(request);
    said_ = fmt::format("GetShardIterator({}, {}{}{})", shard_id,
                        riffle::ShardIteratorTypeName(type), number.empty() ? "" : ", " + number,
                        timestamp_ms ? fmt::format(", at {} ms", *timestamp_ms) : "");
    const auto model = model_.GetShardIterator(shard, type, number, tag_, timestamp_ms, Now());
    if (Name(real.status()) != Name(model.error)) {
      return fmt::format("GetShardIterator({}, {}, '{}') answered {} ({}), the model {}",
                         request.shard_id, riffle::ShardIteratorTypeName(type), number,
                         Name(real.status()), riffle::ErrorMessage(real.status()),
                         Name(model.error));
    }
    if (!real.ok()) return "";
    if (std::string err = CompareIterator(*real, model.value); !err.empty()) return err;
    Hold(*real, model.value);
    return "";
  }

  std::string Read(const StreamOp& op) {
    if (held_.empty()) return "";
    auto& [real_it, model_it] = held_[op.a % held_.size()];
    static constexpr int kLimits[] = {1, 2, 3, 5, 10, 100, 10000, 4, 7, 0, 10001};
    const int limit = kLimits[op.b % 40 == 0 ? 9 + op.b / 40 % 2 : op.b % 9];
    riffle::GetRecordsResult out;
    const absl::Status s = real_->GetRecords(real_it, out, limit);
    said_ = fmt::format("GetRecords(iterator {} of shard {} at {}, limit {})", op.a % held_.size(),
                        real_it.shard_index, real_it.position, limit);
    const auto model = model_.GetRecords(model_it, limit, Now());
    if (Name(s) != Name(model.error)) {
      return fmt::format("GetRecords({}, limit {}) answered {} ({}), the model {}",
                         real_it.ToString(), limit, Name(s), riffle::ErrorMessage(s),
                         Name(model.error));
    }
    if (!s.ok()) return "";
    const auto& m = model.value;
    if (out.records.size() != m.records.size() || out.missed_records != m.missed) {
      return fmt::format(
          "GetRecords({}, limit {}) returned {} records, {} missed; the model {}, {}",
          real_it.ToString(), limit, out.records.size(), out.missed_records, m.records.size(),
          m.missed);
    }
    for (size_t i = 0; i < m.records.size(); ++i) {
      const riffle::Record& r = out.records[i];
      const ModelRecord& e = m.records[i];
      const riffle::SequenceNumber n{tag_, model_it.shard, e.position, e.index};
      if (r.partition_key != e.key || r.data != e.data || r.sequence_number != n ||
          absl::ToUnixMillis(r.approximate_arrival_timestamp) != e.arrival_ms) {
        return fmt::format(
            "record {} is {} (key {}, {} bytes, arrival {}); the model has {} (key "
            "{}, {} bytes, arrival {})",
            i, r.sequence_number.ToString(), r.partition_key, r.data.size(),
            absl::ToUnixMillis(r.approximate_arrival_timestamp), n.ToString(), e.key, e.data.size(),
            e.arrival_ms);
      }
    }
    if (out.millis_behind_latest != m.millis_behind) {
      return fmt::format("millis_behind_latest {}, the model {}", out.millis_behind_latest,
                         m.millis_behind);
    }
    if (out.child_shards.size() != m.children.size()) return "child shards differ";
    for (size_t i = 0; i < m.children.size(); ++i) {
      const auto& a = out.child_shards[i];
      const auto& b = m.children[i];
      if (a.shard_id != b.shard_id || a.parent_shards != b.parent_shards ||
          a.hash_key_range != b.hash_key_range) {
        return fmt::format("child shard {} differs from the model's {}", a.shard_id, b.shard_id);
      }
    }
    if (out.next_shard_iterator.has_value() != m.next.has_value()) {
      return fmt::format("next iterator {} present, the model says {}",
                         out.next_shard_iterator.has_value() ? "is" : "is not",
                         m.next.has_value() ? "present" : "absent");
    }
    if (m.next) {
      if (std::string err = CompareIterator(*out.next_shard_iterator, *m.next); !err.empty())
        return err;
      real_it = *out.next_shard_iterator;  // the reader moves on
      model_it = *m.next;
    }
    return "";
  }

  std::string Renew(const StreamOp& op) {
    if (held_.empty()) return "";
    auto& [real_it, model_it] = held_[op.a % held_.size()];
    const auto real = real_->RenewShardIterator(real_it);
    said_ = fmt::format("RenewShardIterator(iterator {})", op.a % held_.size());
    const auto model = model_.Renew(model_it, Now());
    if (Name(real.status()) != Name(model.error)) {
      return fmt::format("RenewShardIterator answered {}, the model {}", Name(real.status()),
                         Name(model.error));
    }
    if (!real.ok()) return "";
    if (std::string err = CompareIterator(*real, model.value); !err.empty()) return err;
    real_it = *real;
    model_it = model.value;
    return "";
  }

  std::string Advance(const StreamOp& op) {
    // Mostly milliseconds and seconds; minutes expire iterators, hours and days retention.
    const uint64_t bucket = op.a % 100;
    const int scale = bucket < 45 ? 0 : bucket < 87 ? 1 : bucket < 95 ? 2 : bucket < 99 ? 3 : 4;
    static constexpr int64_t kScales[] = {1, 1000, 60'000, 3'600'000, 25 * 3'600'000};
    const int64_t ms =
        scale == 4 ? kScales[4] : kScales[scale] * static_cast<int64_t>(1 + op.b % 9);
    clock_.Advance(absl::Milliseconds(ms));
    said_ = fmt::format("clock += {} ms", ms);
    return "";
  }

  std::string CompareShards() {
    return CompareList(real_->ListShards(), model_.ListShards(std::nullopt, std::nullopt, Now()));
  }

  std::string CompareList(const absl::StatusOr<std::vector<riffle::Shard>>& real,
                          const std::vector<StreamModel::ListedShard>& model) {
    if (!real.ok()) return "ListShards: " + Name(real.status());
    std::vector<std::string> real_ids, model_ids;
    for (const auto& s : *real) real_ids.push_back(s.shard_id);
    for (const auto& s : model) model_ids.push_back(riffle::FormatShardId(s.index));
    if (real_ids != model_ids) {
      return fmt::format("ListShards lists [{}], the model [{}]", absl::StrJoin(real_ids, " "),
                         absl::StrJoin(model_ids, " "));
    }
    for (size_t i = 0; i < model.size(); ++i) {
      const riffle::Shard& r = (*real)[i];
      const auto& m = model[i];
      auto id = [](std::optional<uint64_t> x) {
        return x ? std::optional<std::string>(riffle::FormatShardId(*x)) : std::nullopt;
      };
      std::optional<riffle::SequenceNumber> ending;
      if (m.ending)
        ending = riffle::SequenceNumber{tag_, m.index, m.ending->first, m.ending->second};
      if (r.parent_shard_id != id(m.parent) || r.adjacent_parent_shard_id != id(m.adjacent) ||
          r.hash_key_range != m.range ||
          r.sequence_number_range.starting_sequence_number !=
              riffle::SequenceNumber{tag_, m.index, 0, 0} ||
          r.sequence_number_range.ending_sequence_number != ending) {
        return fmt::format("ListShards describes {} otherwise than the model", r.shard_id);
      }
    }
    return "";
  }

  std::string Split(const StreamOp& op) {
    const auto open = model_.OpenShards();
    uint64_t shard = open[op.a % open.size()].first;
    if (op.a % 7 == 0) shard = op.c % (model_.shards_created() + 1);  // closed, or none
    riffle::HashKeyRange range{0, riffle::kMaxHashKey};
    for (const auto& [i, r] : open) {
      if (i == shard) range = r;
    }
    const riffle::HashKey width = range.ending_hash_key - range.starting_hash_key;
    std::string key;
    switch (width < 8 ? 0 : op.b % 6) {
      case 0:
        key = riffle::FormatHashKey(range.starting_hash_key + width / 2);
        break;
      case 1:
        key = riffle::FormatHashKey(range.starting_hash_key + 2 +
                                    absl::MakeUint128(op.c, op.d) % (width - 3));
        break;
      case 2:
        key = riffle::FormatHashKey(range.starting_hash_key + 1);
        break;  // too low
      case 3:
        key = riffle::FormatHashKey(range.ending_hash_key);
        break;  // too high
      case 4:
        key = "half";
        break;
      default:
        key = riffle::FormatHashKey(range.starting_hash_key + width / 3);
        break;
    }
    const absl::Status real = real_->SplitShard(riffle::FormatShardId(shard), key);
    said_ = fmt::format("SplitShard({}, {})", riffle::FormatShardId(shard), key);
    const std::string_view model = model_.Split(shard, key, Now());
    if (Name(real) != Name(model)) {
      return fmt::format("SplitShard({}, {}) answered {} ({}), the model {}",
                         riffle::FormatShardId(shard), key, Name(real), riffle::ErrorMessage(real),
                         Name(model));
    }
    return real.ok() ? CompareShards() : "";
  }

  std::string Merge(const StreamOp& op) {
    const auto open = model_.OpenShards();
    const size_t i = op.a % open.size();
    uint64_t a = open[i].first;
    uint64_t b = open[(i + 1) % open.size()].first;
    if (op.b % 4 == 1) std::swap(a, b);
    if (op.b % 4 == 2) b = open[(i + 2) % open.size()].first;     // not adjacent (or itself)
    if (op.b % 4 == 3) b = op.c % (model_.shards_created() + 1);  // closed, or none
    const absl::Status real =
        real_->MergeShards(riffle::FormatShardId(a), riffle::FormatShardId(b));
    said_ = fmt::format("MergeShards({}, {})", riffle::FormatShardId(a), riffle::FormatShardId(b));
    const std::string_view model = model_.Merge(a, b, Now());
    if (Name(real) != Name(model)) {
      return fmt::format("MergeShards({}, {}) answered {} ({}), the model {}", a, b, Name(real),
                         riffle::ErrorMessage(real), Name(model));
    }
    return real.ok() ? CompareShards() : "";
  }

  std::string Update(const StreamOp& op) {
    const int open = model_.OpenCount();
    int target = static_cast<int>(op.a % static_cast<uint64_t>(2 * open + 2));  // 0 .. 2n+1
    if (op.b % 10 == 0) target = model_.config().shard_limit + 1;
    const auto real = real_->UpdateShardCount(target);
    said_ = fmt::format("UpdateShardCount({})", target);
    const std::string_view model = model_.UpdateShardCount(target, Now());
    if (Name(real.status()) != Name(model)) {
      return fmt::format("UpdateShardCount({}) with {} open answered {} ({}), the model {}", target,
                         open, Name(real.status()), riffle::ErrorMessage(real.status()),
                         Name(model));
    }
    if (!real.ok()) return "";
    if (real->current_shard_count != open || real->target_shard_count != target) {
      return "UpdateShardCount's result";
    }
    return CompareShards();
  }

  std::string Retention(const StreamOp& op) {
    static constexpr int kHours[] = {24, 25, 48, 23, 8761, 30, 8760};
    const int hours = kHours[op.b % 7];
    const bool increase = op.a % 2 == 0;
    const absl::Status real = increase ? real_->IncreaseStreamRetentionPeriod(hours)
                                       : real_->DecreaseStreamRetentionPeriod(hours);
    said_ = fmt::format("{}StreamRetentionPeriod({})", increase ? "Increase" : "Decrease", hours);
    const std::string_view model = model_.ChangeRetention(hours, increase, Now());
    if (Name(real) != Name(model)) {
      return fmt::format("{}StreamRetentionPeriod({}) answered {}, the model {}",
                         increase ? "Increase" : "Decrease", hours, Name(real), Name(model));
    }
    return "";
  }

  std::string List(const StreamOp& op) {
    riffle::ListShardsRequest request;
    std::optional<uint64_t> after;
    std::string after_id;
    switch (op.a % 5) {
      case 1:
        request.filter = riffle::ShardFilterType::kAtLatest;
        break;
      case 2:
        request.filter = riffle::ShardFilterType::kAfterShardId;
        after = op.b % (model_.shards_created() + 1);
        break;
      case 3:
        request.filter = riffle::ShardFilterType::kFromTrimHorizon;
        break;
      case 4:
        request.filter = riffle::ShardFilterType::kAtTrimHorizon;
        break;
      default:
        break;
    }
    if (after) after_id = riffle::FormatShardId(*after);
    request.shard_id = after_id;
    said_ =
        fmt::format("ListShards(filter {}{})", op.a % 5, after_id.empty() ? "" : ", " + after_id);
    return CompareList(real_->ListShards(request), model_.ListShards(request.filter, after, Now()));
  }

  std::string Describe() {
    said_ = "DescribeStreamSummary, Stats";
    const riffle::StreamDescriptionSummary d = real_->DescribeStreamSummary();
    const riffle::StreamStatus expected =
        model_.updating(Now()) ? riffle::StreamStatus::kUpdating : riffle::StreamStatus::kActive;
    if (d.stream_status != expected || d.retention_period_hours != model_.retention_hours() ||
        d.open_shard_count != model_.OpenCount()) {
      return fmt::format("DescribeStreamSummary: {} {} h {} open; the model {} {} h {} open",
                         riffle::StreamStatusName(d.stream_status), d.retention_period_hours,
                         d.open_shard_count, riffle::StreamStatusName(expected),
                         model_.retention_hours(), model_.OpenCount());
    }
    const riffle::StreamStats stats = real_->Stats();
    if (stats.open_shards != model_.OpenCount() ||
        stats.closed_shards != model_.ClosedLiveCount(Now()) ||
        stats.shards_created != model_.shards_created()) {
      return fmt::format("Stats: {} open {} closed {} created; the model {} {} {}",
                         stats.open_shards, stats.closed_shards, stats.shards_created,
                         model_.OpenCount(), model_.ClosedLiveCount(Now()),
                         model_.shards_created());
    }
    return "";
  }

  std::string said_;  // the operation running, as called
  riffle::ManualClock clock_;
  StreamModel model_;
  std::unique_ptr<riffle::Stream> real_;
  uint64_t tag_ = 0;
  std::vector<std::pair<uint64_t, ModelRecord>> puts_;  // (shard, record), in put order
  std::vector<std::pair<riffle::ShardIterator, ModelIterator>> held_;
};

}  // namespace

TEST_CASE("Stream agrees with its reference model on random operation sequences",
          "[model][stream]") {
  RunSeeds<StreamConfig, StreamOp, StreamRun>("Stream", StreamConfigFor, StreamOpsFor, ToString);
}
