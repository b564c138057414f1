// Threads calling one riffle::Account's services at once (account.h: "every method may be
// called from any thread"): Kinesis producers, a resharder, a reader that follows child
// shards and a describer on one stream; the Kinesis control plane on overlapping names; SQS
// FIFO senders and receivers by queue URL; Firehose DirectPut producers, a flusher and an S3
// reader; then all four together on one account. Each case compares what the calls
// acknowledged with what is read back: nothing lost or duplicated, order kept where the
// service promises it, every error one the operation documents. Sized down under
// sanitizers (riffle_test::StressDivisor); meant to run under TSan.
#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "support/alloc_counter.h"

using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::ManualClock;

namespace {

std::string StatusText(const absl::Status& s) {
  return fmt::format("{}: {}", riffle::ErrorName(s), riffle::ErrorMessage(s));
}

bool NamedOneOf(const absl::Status& s, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), riffle::ErrorName(s)) != names.end();
}

void Nap(int micros) { std::this_thread::sleep_for(std::chrono::microseconds(micros)); }

// Failures seen on worker threads (Catch's assertions are for the test's own thread):
// counted, the first few described, and checked on the test's thread.
class Problems {
 public:
  void Add(std::string what) {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
    if (first_.size() < 10) first_.push_back(std::move(what));
  }
  int count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  std::string Describe() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const std::string& w : first_) out += w + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  int count_ = 0;
  std::vector<std::string> first_;
};

void CheckNoProblems(const Problems& problems) {
  INFO(problems.Describe());
  CHECK(problems.count() == 0);
}

// ---------------------------------------------------------------------------------------
// Kinesis: producers, a resharder, a lineage reader and a describer on one stream.

constexpr int kProducers = 3;  // 0 and 1 call PutRecord, 2 calls PutRecords
constexpr int kKeysPerProducer = 8;
constexpr int kMaxOpenShards = 8;

std::string KeyOf(int p, int k) { return fmt::format("p{}-k{}", p, k); }
std::string DataOf(int p, int k, long long c) { return fmt::format("{}:{}:{}", p, k, c); }

struct ReadTally {
  std::map<std::string, std::string> records;  // sequence number -> "<key>|<data>"
  uint64_t torn = 0;          // data that is not what a producer put under that key
  uint64_t duplicates = 0;    // a sequence number read twice
  uint64_t out_of_order = 0;  // per key, counters must increase in reading order
  uint64_t misplaced = 0;     // a sequence number that names another shard than the one read
  uint64_t missed = 0;        // GetRecords' missed_records
  uint64_t childless = 0;     // a closed shard read to its end that named no child
  uint64_t unfinished = 0;    // children never read: a parent never read to its end
  int shards_read = 0;
  std::string error;  // the first call that failed
};

void Tally(ReadTally& t, std::string_view shard_id, const riffle::Record& r,
           std::vector<std::vector<long long>>& last) {
  if (riffle::FormatShardId(r.sequence_number.shard_index) != shard_id) ++t.misplaced;
  int p = -1, k = -1;
  long long c = -1;
  const std::string data(r.data);
  if (std::sscanf(data.c_str(), "%d:%d:%lld", &p, &k, &c) != 3 || p < 0 || p >= kProducers ||
      k < 0 || k >= kKeysPerProducer || r.partition_key != KeyOf(p, k) || data != DataOf(p, k, c)) {
    ++t.torn;
    return;
  }
  if (!t.records.emplace(r.sequence_number.ToString(), fmt::format("{}|{}", r.partition_key, data))
           .second) {
    ++t.duplicates;
    return;
  }
  if (c <= last[p][k]) ++t.out_of_order;
  last[p][k] = c;
}

// Reads `stream` by name from TRIM_HORIZON of its first `initial_shards` shards, following
// ChildShards: a child is read once all its parents were read to their end
// (docs/resharding.md, "Lineage rule for readers"). Runs until `done` is set (at once when
// null) and a whole pass over the shards finds nothing new.
ReadTally ReadLineage(riffle::Kinesis& kinesis, const std::string& stream, int initial_shards,
                      const std::atomic<bool>* done) {
  ReadTally t;
  std::vector<std::vector<long long>> last(kProducers,
                                           std::vector<long long>(kKeysPerProducer, -1));
  struct Cursor {
    std::string shard_id;
    std::string iterator;
  };
  std::vector<Cursor> reading;
  std::set<std::string> known;
  std::set<std::string> finished;
  std::map<std::string, std::vector<std::string>> waiting;  // child -> its parents
  auto start = [&](const std::string& shard_id) {
    auto it =
        kinesis.GetShardIterator({.stream_name = stream,
                                  .shard_id = shard_id,
                                  .shard_iterator_type = riffle::ShardIteratorType::kTrimHorizon});
    if (!it.ok()) {
      t.error = fmt::format("GetShardIterator {}: {}", shard_id, StatusText(it.status()));
      return false;
    }
    reading.push_back({shard_id, it->shard_iterator});
    return true;
  };
  for (int s = 0; s < initial_shards; ++s) {
    known.insert(riffle::FormatShardId(s));
    if (!start(riffle::FormatShardId(s))) return t;
  }
  riffle::GetRecordsOutput out;
  for (;;) {
    const bool finishing = done == nullptr || done->load(std::memory_order_acquire);
    uint64_t progress = 0;
    for (std::size_t i = 0; i < reading.size();) {
      Cursor& c = reading[i];
      if (absl::Status s = kinesis.GetRecords({.shard_iterator = c.iterator, .limit = 1000}, out);
          !s.ok()) {
        t.error = fmt::format("GetRecords {}: {}", c.shard_id, StatusText(s));
        return t;
      }
      for (const riffle::Record& r : out.result.records) Tally(t, c.shard_id, r, last);
      progress += out.result.records.size();
      t.missed += out.result.missed_records;
      if (!out.next_shard_iterator.empty()) {
        c.iterator = out.next_shard_iterator;
        ++i;
        continue;
      }
      // The end of a closed shard: its children wait for all their parents.
      ++progress;
      ++t.shards_read;
      finished.insert(c.shard_id);
      if (out.result.child_shards.empty()) ++t.childless;
      for (const riffle::ChildShard& child : out.result.child_shards) {
        if (known.insert(child.shard_id).second) waiting[child.shard_id] = child.parent_shards;
      }
      reading.erase(reading.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (auto it = waiting.begin(); it != waiting.end();) {
      const std::vector<std::string>& parents = it->second;
      if (!std::all_of(parents.begin(), parents.end(),
                       [&](const std::string& p) { return finished.contains(p); })) {
        ++it;
        continue;
      }
      if (!start(it->first)) return t;
      ++progress;
      it = waiting.erase(it);
    }
    if (finishing && progress == 0) break;
    if (progress == 0) std::this_thread::yield();
  }
  t.unfinished = waiting.size();
  t.shards_read += static_cast<int>(reading.size());  // open shards, read to their latest record
  return t;
}

// Empty when the shards cover the hash key space exactly once; otherwise what is wrong.
std::string TilingError(std::vector<riffle::Shard> open) {
  std::sort(open.begin(), open.end(), [](const riffle::Shard& a, const riffle::Shard& b) {
    return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
  });
  std::string layout;
  for (const riffle::Shard& s : open) {
    layout += fmt::format(" {}[{}, {}]", s.shard_id,
                          riffle::FormatHashKey(s.hash_key_range.starting_hash_key),
                          riffle::FormatHashKey(s.hash_key_range.ending_hash_key));
  }
  riffle::HashKey next = 0;
  for (std::size_t i = 0; i < open.size(); ++i) {
    const riffle::HashKeyRange& r = open[i].hash_key_range;
    if (r.starting_hash_key != next) return "a gap or an overlap:" + layout;
    if (r.ending_hash_key == riffle::kMaxHashKey) {
      return i + 1 == open.size() ? "" : "shards after the end of the key space:" + layout;
    }
    next = r.ending_hash_key + 1;
  }
  return "the key space is not covered to its end:" + layout;
}

// Calls the describing operations until `done`: DescribeStreamSummary (ACTIVE or UPDATING,
// open shards), ListShards AT_LATEST (open shards only, covering the key space once),
// ListShards page by page (shard ids increasing across pages), DescribeStream.
void DescribeUntilDone(riffle::Kinesis& kinesis, const std::string& stream, int initial_shards,
                       const std::atomic<bool>& done, Problems& problems) {
  while (!done.load(std::memory_order_acquire)) {
    auto summary = kinesis.DescribeStreamSummary({.stream_name = stream});
    if (!summary.ok()) {
      problems.Add("DescribeStreamSummary: " + StatusText(summary.status()));
    } else {
      const riffle::StreamDescriptionSummary& d = summary->stream_description_summary;
      if (d.stream_status != riffle::StreamStatus::kActive &&
          d.stream_status != riffle::StreamStatus::kUpdating) {
        problems.Add(fmt::format("DescribeStreamSummary: status {}",
                                 riffle::StreamStatusName(d.stream_status)));
      }
      if (d.open_shard_count < 1) {
        problems.Add(fmt::format("DescribeStreamSummary: {} open shards", d.open_shard_count));
      }
    }
    auto open = kinesis.ListShards(
        {.stream_name = stream,
         .shard_filter = riffle::ShardFilter{.type = riffle::ShardFilterType::kAtLatest}});
    if (!open.ok()) {
      problems.Add("ListShards AT_LATEST: " + StatusText(open.status()));
    } else {
      for (const riffle::Shard& s : open->shards) {
        if (s.sequence_number_range.ending_sequence_number) {
          problems.Add("ListShards AT_LATEST listed the closed shard " + s.shard_id);
        }
      }
      if (std::string e = TilingError(open->shards); !e.empty()) {
        problems.Add("ListShards AT_LATEST: " + e);
      }
    }
    std::vector<uint64_t> indexes;
    std::string token;
    for (bool first = true; first || !token.empty(); first = false) {
      auto page = first ? kinesis.ListShards({.stream_name = stream, .max_results = 3})
                        : kinesis.ListShards({.next_token = token, .max_results = 3});
      if (!page.ok()) {
        problems.Add("ListShards page: " + StatusText(page.status()));
        break;
      }
      for (const riffle::Shard& s : page->shards) {
        indexes.push_back(*riffle::ParseShardId(s.shard_id));
      }
      token = page->next_token;
    }
    if (!std::is_sorted(indexes.begin(), indexes.end()) ||
        std::adjacent_find(indexes.begin(), indexes.end()) != indexes.end() ||
        indexes.size() < static_cast<std::size_t>(initial_shards) || indexes[0] != 0) {
      problems.Add(fmt::format("ListShards pages: shard indexes {}", fmt::join(indexes, ",")));
    }
    auto described = kinesis.DescribeStream({.stream_name = stream, .limit = 5});
    if (!described.ok()) problems.Add("DescribeStream: " + StatusText(described.status()));
    Nap(200);
  }
}

struct KinesisSize {
  int per_producer;  // a multiple of kKeysPerProducer
  int min_reshards;  // producers wait for the resharder so that puts span at least this many
  int max_reshards;
};

struct KinesisRun {
  std::map<std::string, std::string> acked;  // sequence number -> "<key>|<data>"
  ReadTally live;                            // read while the producers and resharder ran
  ReadTally after;                           // read once everything was done
  int reshards = 0;
};

// One split, merge or UpdateShardCount of the open layout (1..kMaxOpenShards shards open).
absl::Status RandomReshard(riffle::Kinesis& kinesis, const std::string& stream,
                           std::mt19937_64& rng) {
  auto listed = kinesis.ListShards(
      {.stream_name = stream,
       .shard_filter = riffle::ShardFilter{.type = riffle::ShardFilterType::kAtLatest}});
  if (!listed.ok()) return listed.status();
  std::vector<riffle::Shard>& open = listed->shards;
  std::sort(open.begin(), open.end(), [](const riffle::Shard& a, const riffle::Shard& b) {
    return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
  });
  const int n = static_cast<int>(open.size());
  int op = static_cast<int>(rng() % 3);  // 0: split, 1: merge, 2: UpdateShardCount
  if (op == 0 && n >= kMaxOpenShards) op = 1;
  if (op == 1 && n == 1) op = 0;
  if (op == 0) {
    const riffle::Shard& s = open[rng() % n];
    const riffle::HashKeyRange& r = s.hash_key_range;
    const std::string key =
        riffle::FormatHashKey(r.starting_hash_key + (r.ending_hash_key - r.starting_hash_key) / 2);
    return kinesis.SplitShard(
        {.stream_name = stream, .shard_to_split = s.shard_id, .new_starting_hash_key = key});
  }
  if (op == 1) {
    const std::size_t i = rng() % (n - 1);
    return kinesis.MergeShards({.stream_name = stream,
                                .shard_to_merge = open[i].shard_id,
                                .adjacent_shard_to_merge = open[i + 1].shard_id});
  }
  const int lo = (n + 1) / 2;
  const int hi = std::min(2 * n, kMaxOpenShards);
  int target = lo + static_cast<int>(rng() % (hi - lo + 1));
  if (target == n) target = n < hi ? n + 1 : n - 1;
  auto updated = kinesis.UpdateShardCount({.stream_name = stream, .target_shard_count = target});
  if (!updated.ok()) return updated.status();
  if (updated->current_shard_count != n || updated->target_shard_count != target) {
    return absl::InternalError(fmt::format("UpdateShardCount {} -> {} answered {} -> {}", n, target,
                                           updated->current_shard_count,
                                           updated->target_shard_count));
  }
  return absl::OkStatus();
}

// REQUIRES: `stream` was created with `initial_shards` shards on an account whose
// update_duration is at most 1 s, and nothing else reshards it.
KinesisRun RunKinesis(riffle::Kinesis& kinesis, ManualClock& clock, const std::string& stream,
                      int initial_shards, const KinesisSize& size, uint64_t seed,
                      Problems& problems) {
  KinesisRun run;
  std::atomic<bool> done{false};
  std::atomic<int> producers_left{kProducers};
  std::atomic<int> reshards{0};
  std::atomic<bool> resharding{true};
  std::thread reader([&] { run.live = ReadLineage(kinesis, stream, initial_shards, &done); });
  std::thread describer(
      [&] { DescribeUntilDone(kinesis, stream, initial_shards, done, problems); });
  std::thread resharder([&] {
    std::mt19937_64 rng(seed);
    // A second of clock a round, max_reshards + 20 rounds at most: the clock stays well
    // within an iterator's and a NextToken's 5 minutes.
    for (int round = 0; round < size.max_reshards + 20 && producers_left.load() > 0 &&
                        reshards.load() < size.max_reshards;
         ++round) {
      if (absl::Status s = RandomReshard(kinesis, stream, rng); !s.ok()) {
        problems.Add("reshard: " + StatusText(s));
      } else {
        reshards.fetch_add(1);
      }
      clock.Advance(absl::Seconds(1));  // past the UPDATING of the reshard
      Nap(200);
    }
    resharding.store(false);
  });
  std::vector<std::vector<std::pair<std::string, std::string>>> acked(kProducers);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<std::string> keys;
      for (int k = 0; k < kKeysPerProducer; ++k) keys.push_back(KeyOf(p, k));
      std::vector<long long> next(kKeysPerProducer, 0);
      auto ack = [&](std::string_view shard_id, const riffle::SequenceNumber& seq, int k,
                     const std::string& data) {
        if (riffle::FormatShardId(seq.shard_index) != shard_id) {
          problems.Add(fmt::format("a put answered {} with {}", shard_id, seq.ToString()));
        }
        acked[p].emplace_back(seq.ToString(), fmt::format("{}|{}", keys[k], data));
      };
      // Spreads the puts over the reshards, even when the resharder is slow to get going.
      auto pace = [&](int i) {
        if (i == 0 || i % 32 != 0) return;
        Nap(100);
        const int due = static_cast<int>(int64_t{size.min_reshards} * i / size.per_producer);
        while (resharding.load() && reshards.load() < due) Nap(100);
      };
      if (p < 2) {
        for (int i = 0; i < size.per_producer; ++i) {
          const int k = i % kKeysPerProducer;
          const std::string data = DataOf(p, k, next[k]++);
          auto r =
              kinesis.PutRecord({.stream_name = stream, .partition_key = keys[k], .data = data});
          if (r.ok()) {
            ack(r->shard_id, r->sequence_number, k, data);
          } else {
            problems.Add("PutRecord: " + StatusText(r.status()));
          }
          pace(i);
        }
      } else {
        // One entry per key in each request, so that per-key order does not depend on the
        // order of entries within a request.
        std::vector<std::string> data(kKeysPerProducer);
        std::vector<riffle::PutRecordsRequestEntry> entries(kKeysPerProducer);
        riffle::PutRecordsOutput out;
        for (int i = 0; i < size.per_producer; i += kKeysPerProducer) {
          for (int k = 0; k < kKeysPerProducer; ++k) {
            data[k] = DataOf(p, k, next[k]++);
            entries[k] = {.partition_key = keys[k], .data = data[k]};
          }
          if (absl::Status s = kinesis.PutRecords({.stream_name = stream, .records = entries}, out);
              !s.ok()) {
            problems.Add("PutRecords: " + StatusText(s));
          } else if (out.records.size() != entries.size()) {
            problems.Add(fmt::format("PutRecords answered {} entries", out.records.size()));
          } else {
            for (int k = 0; k < kKeysPerProducer; ++k) {
              const riffle::PutRecordsResultEntry& e = out.records[k];
              if (e.error_code.empty() && e.sequence_number) {
                ack(e.shard_id, *e.sequence_number, k, data[k]);
              } else {
                problems.Add(
                    fmt::format("PutRecords entry: {}: {}", e.error_code, e.error_message));
              }
            }
          }
          pace(i);
        }
      }
      producers_left.fetch_sub(1);
    });
  }
  for (std::thread& t : producers) t.join();
  resharder.join();
  done.store(true, std::memory_order_release);
  reader.join();
  describer.join();
  for (const auto& per_producer : acked) {
    for (const auto& [seq, record] : per_producer) {
      if (!run.acked.emplace(seq, record).second) problems.Add("acknowledged twice: " + seq);
    }
  }
  run.reshards = reshards.load();
  run.after = ReadLineage(kinesis, stream, initial_shards, nullptr);
  return run;
}

void CheckReadBack(const ReadTally& t, const std::map<std::string, std::string>& acked) {
  CHECK(t.error.empty());
  CHECK(t.torn == 0);
  CHECK(t.duplicates == 0);
  CHECK(t.out_of_order == 0);
  CHECK(t.misplaced == 0);
  CHECK(t.missed == 0);
  CHECK(t.childless == 0);
  CHECK(t.unfinished == 0);
  // Exactly the acknowledged records, by sequence number and content.
  std::size_t missing = 0, changed = 0;
  for (const auto& [seq, record] : acked) {
    auto it = t.records.find(seq);
    if (it == t.records.end()) {
      ++missing;
    } else if (it->second != record) {
      ++changed;
    }
  }
  CHECK(missing == 0);
  CHECK(changed == 0);
  CHECK(t.records.size() == acked.size());
}

void CheckKinesis(const KinesisRun& run, const KinesisSize& size, int initial_shards) {
  CHECK(run.acked.size() == static_cast<std::size_t>(kProducers * size.per_producer));
  CHECK(run.reshards >= size.min_reshards / 2);
  {
    INFO("the reader that ran beside the producers");
    CheckReadBack(run.live, run.acked);
    CHECK(run.live.shards_read > initial_shards);
  }
  {
    INFO("a reader after everything");
    CheckReadBack(run.after, run.acked);
  }
}

// ---------------------------------------------------------------------------------------
// The Kinesis control plane on overlapping names.

constexpr int kStreamNames = 4;
constexpr int kConsumerNames = 3;

enum ControlOp {
  kCreate,
  kDelete,
  kDescribe,
  kSummary,
  kList,
  kTag,
  kRegister,
  kDeregister,
  kConsumers,
  kPut,
  kRead,
  kEncryption,
  kRetention,
  kMonitoring,
  kControlOps,
};
constexpr std::string_view kControlOpNames[kControlOps] = {"CreateStream",
                                                           "DeleteStream",
                                                           "DescribeStream",
                                                           "DescribeStreamSummary",
                                                           "ListStreams",
                                                           "AddTagsToStream",
                                                           "RegisterStreamConsumer",
                                                           "DeregisterStreamConsumer",
                                                           "ListStreamConsumers",
                                                           "PutRecord",
                                                           "GetRecords",
                                                           "Start/StopStreamEncryption",
                                                           "Increase/DecreaseStreamRetentionPeriod",
                                                           "Enable/DisableEnhancedMonitoring"};

struct ControlRun {
  std::array<std::atomic<int>, kStreamNames> creates{};  // CreateStream that succeeded
  std::array<std::atomic<int>, kStreamNames> deletes{};  // DeleteStream that succeeded
  std::array<std::atomic<int>, kControlOps> ok{};
  std::atomic<int> all_deletes{0};  // of every name
};

// A stream with KMS encryption has a KeyId; one without has none.
bool EncryptionConsistent(const riffle::StreamDescriptionSummary& d) {
  return (d.encryption_type == riffle::EncryptionType::kKms) == !d.key_id.empty();
}

// The errors each operation may answer here: what it documents for a name that is missing,
// taken, or in a state that does not allow the call.
bool Allowed(ControlOp op, const absl::Status& s) {
  using riffle::kResourceInUseException;
  using riffle::kResourceNotFoundException;
  switch (op) {
    case kCreate:
      return NamedOneOf(s, {kResourceInUseException});
    case kDelete:
    case kRegister:
    case kEncryption:
    case kMonitoring:
      return NamedOneOf(s, {kResourceNotFoundException, kResourceInUseException});
    case kRetention:
      // InvalidArgumentException: a retention already longer (Increase) or shorter (Decrease).
      return NamedOneOf(s, {kResourceNotFoundException, kResourceInUseException,
                            riffle::kInvalidArgumentException});
    case kList:
      return false;
    default:
      return NamedOneOf(s, {kResourceNotFoundException});
  }
}

// `ops` random calls on `names` (each of its kinds about equally often). With a `clock`, every
// fourth call moves it 25 ms, so that streams and consumers go through CREATING and DELETING
// (1 s each) while other threads call.
void ControlWorker(riffle::Account& account, const std::vector<std::string>& names, int ops,
                   uint64_t seed, ManualClock* clock, ControlRun& run, Problems& problems) {
  riffle::Kinesis& kinesis = account.kinesis();
  std::mt19937_64 rng(seed);
  std::map<std::pair<int, int>, std::string> consumer_arns;  // as registrations answered
  riffle::GetRecordsOutput out;
  for (int n = 0; n < ops; ++n) {
    const int i = static_cast<int>(rng() % kStreamNames);
    const std::string& name = names[i];
    const std::string arn = account.StreamArn(name);
    const int c = static_cast<int>(rng() % kConsumerNames);
    const std::string consumer = fmt::format("c{}", c);
    const auto op = static_cast<ControlOp>(rng() % kControlOps);
    const bool heads = rng() % 2 == 0;  // by ARN or by name; start or stop; up or down
    if (clock != nullptr && n % 4 == 3) clock->Advance(absl::Milliseconds(25));
    absl::Status s;
    bool forgotten = false;  // GetRecords by the iterator of a stream deleted long ago
    switch (op) {
      case kCreate:
        s = kinesis.CreateStream({.stream_name = name, .shard_count = 1});
        if (s.ok()) run.creates[i].fetch_add(1);
        break;
      case kDelete:
        s = kinesis.DeleteStream(
            heads ? riffle::DeleteStreamInput{.stream_arn = arn, .enforce_consumer_deletion = true}
                  : riffle::DeleteStreamInput{.stream_name = name});
        if (s.ok()) {
          run.deletes[i].fetch_add(1);
          run.all_deletes.fetch_add(1);
        }
        break;
      case kDescribe: {
        auto d = kinesis.DescribeStream({.stream_name = name});
        s = d.status();
        if (d.ok() && (d->stream_description.stream_name != name ||
                       d->stream_description.stream_arn != arn)) {
          problems.Add("DescribeStream described another stream than " + name);
        }
        break;
      }
      case kSummary: {
        auto d = kinesis.DescribeStreamSummary({.stream_arn = arn});
        s = d.status();
        if (d.ok() && d->stream_description_summary.stream_name != name) {
          problems.Add("DescribeStreamSummary described another stream than " + name);
        }
        if (d.ok() && !EncryptionConsistent(d->stream_description_summary)) {
          problems.Add(
              fmt::format("DescribeStreamSummary {}: EncryptionType {} with KeyId '{}'", name,
                          riffle::EncryptionTypeName(d->stream_description_summary.encryption_type),
                          d->stream_description_summary.key_id));
        }
        break;
      }
      case kList: {
        auto l = kinesis.ListStreams();
        s = l.status();
        if (l.ok() && (!std::is_sorted(l->stream_names.begin(), l->stream_names.end()) ||
                       std::adjacent_find(l->stream_names.begin(), l->stream_names.end()) !=
                           l->stream_names.end() ||
                       l->stream_summaries.size() != l->stream_names.size())) {
          problems.Add(fmt::format("ListStreams: {}", fmt::join(l->stream_names, ",")));
        }
        break;
      }
      case kTag: {
        const std::vector<riffle::Tag> tags = {{fmt::format("k{}", c), fmt::format("v{}", n)}};
        s = kinesis.AddTagsToStream({.stream_name = name, .tags = tags});
        break;
      }
      case kRegister: {
        auto r = kinesis.RegisterStreamConsumer({.stream_arn = arn, .consumer_name = consumer});
        s = r.status();
        if (r.ok()) consumer_arns[{i, c}] = r->consumer.consumer_arn;
        break;
      }
      case kDeregister: {
        auto remembered = consumer_arns.find({i, c});
        if (heads && remembered != consumer_arns.end()) {
          s = kinesis.DeregisterStreamConsumer({.consumer_arn = remembered->second});
        } else {
          s = kinesis.DeregisterStreamConsumer({.stream_arn = arn, .consumer_name = consumer});
        }
        break;
      }
      case kConsumers: {
        auto l = kinesis.ListStreamConsumers({.stream_arn = arn});
        s = l.status();
        if (l.ok()) {
          for (const riffle::ConsumerDescription& d : l->consumers) {
            auto one = kinesis.DescribeStreamConsumer({.consumer_arn = d.consumer_arn});
            if (!one.ok() && !Allowed(op, one.status())) {
              problems.Add("DescribeStreamConsumer: " + StatusText(one.status()));
            }
          }
        }
        break;
      }
      case kPut: {
        const std::string data = fmt::format("{}", n);
        s = kinesis.PutRecord({.stream_name = name, .partition_key = "k", .data = data}).status();
        break;
      }
      case kRead: {
        auto it =
            kinesis.GetShardIterator({.stream_name = name, .shard_id = "shardId-000000000000"});
        s = it.status();
        const int deletes_before = run.all_deletes.load();
        if (it.ok()) s = kinesis.GetRecords({.shard_iterator = it->shard_iterator}, out);
        // The account names the deleted stream of an iterator while the deletion is among
        // the last 1,024 (KinesisRegistry::DeletedName, "recent ones only"); past that, the
        // iterator is one it does not know: InvalidArgumentException "Invalid ShardIterator.".
        // A thread held up for that many deletions by the others may see it.
        forgotten = riffle::IsInvalidArgumentException(s) &&
                    run.all_deletes.load() - deletes_before >= 1000;
        break;
      }
      case kEncryption:
        s = heads ? kinesis.StartStreamEncryption({.stream_name = name, .key_id = "alias/k"})
                  : kinesis.StopStreamEncryption({.stream_name = name, .key_id = "alias/k"});
        break;
      case kRetention:
        s = heads ? kinesis.IncreaseStreamRetentionPeriod(
                        {.stream_name = name, .retention_period_hours = 48})
                  : kinesis.DecreaseStreamRetentionPeriod(
                        {.stream_name = name, .retention_period_hours = 24});
        break;
      case kMonitoring: {
        const riffle::ShardLevelMetric metrics[] = {riffle::ShardLevelMetric::kIncomingBytes};
        s = heads ? kinesis
                        .EnableEnhancedMonitoring(
                            {.stream_name = name, .shard_level_metrics = metrics})
                        .status()
                  : kinesis
                        .DisableEnhancedMonitoring(
                            {.stream_name = name, .shard_level_metrics = metrics})
                        .status();
        break;
      }
      case kControlOps:
        break;
    }
    if (s.ok()) {
      run.ok[op].fetch_add(1);
    } else if (!Allowed(op, s) && !forgotten) {
      problems.Add(fmt::format("{} {}: {}", kControlOpNames[op], name, StatusText(s)));
    }
  }
}

// Every stream the account lists can be described and used; every name it does not list
// is ResourceNotFoundException; DescribeLimits counts the open shards of what it lists. With
// `exact`, also: per name, the successful creates and deletes alternate (CreateStream needs
// the name free, DeleteStream, with no delete_duration, removes the stream at once), so
// the stream exists exactly when one more create than delete succeeded.
void CheckStreams(riffle::Account& account, const std::vector<std::string>& names,
                  const ControlRun& run, bool exact) {
  riffle::Kinesis& kinesis = account.kinesis();
  auto listed = kinesis.ListStreams();
  REQUIRE(listed.ok());
  const std::set<std::string> existing(listed->stream_names.begin(), listed->stream_names.end());
  for (int i = 0; i < kStreamNames; ++i) {
    const std::string& name = names[i];
    INFO(name << ": " << run.creates[i].load() << " creates, " << run.deletes[i].load()
              << " deletes");
    const bool exists = existing.contains(name);
    if (exact) {
      const int surplus = run.creates[i].load() - run.deletes[i].load();
      CHECK((surplus == 0 || surplus == 1));
      CHECK(exists == (surplus == 1));
    }
    if (!exists) {
      CHECK(ErrorOf(kinesis.DescribeStreamSummary({.stream_name = name})).name ==
            riffle::kResourceNotFoundException);
      continue;
    }
    auto summary = kinesis.DescribeStreamSummary({.stream_name = name});
    REQUIRE(summary.ok());
    CHECK(summary->stream_description_summary.stream_status == riffle::StreamStatus::kActive);
    CHECK(summary->stream_description_summary.open_shard_count == 1);
    CHECK(EncryptionConsistent(summary->stream_description_summary));
    const std::string arn = account.StreamArn(name);
    auto consumers = kinesis.ListStreamConsumers({.stream_arn = arn});
    REQUIRE(consumers.ok());
    CHECK(static_cast<int>(consumers->consumers.size()) ==
          summary->stream_description_summary.consumer_count);
    std::set<std::string> consumer_names;
    for (const riffle::ConsumerDescription& c : consumers->consumers) {
      CHECK(consumer_names.insert(c.consumer_name).second);
      auto d = kinesis.DescribeStreamConsumer({.consumer_arn = c.consumer_arn});
      REQUIRE(d.ok());
      CHECK(d->consumer_description.consumer_status == riffle::ConsumerStatus::kActive);
      CHECK(d->consumer_description.stream_arn == arn);
    }
    CHECK(kinesis.ListTagsForStream({.stream_name = name}).ok());
    auto put = kinesis.PutRecord({.stream_name = name, .partition_key = "k", .data = "last"});
    REQUIRE(put.ok());
    auto it = kinesis.GetShardIterator(
        {.stream_name = name,
         .shard_id = put->shard_id,
         .shard_iterator_type = riffle::ShardIteratorType::kAtSequenceNumber,
         .starting_sequence_number = put->sequence_number.ToString()});
    REQUIRE(it.ok());
    auto got = kinesis.GetRecords({.shard_iterator = it->shard_iterator});
    REQUIRE(got.ok());
    REQUIRE(got->result.records.size() == 1);
    CHECK(got->result.records[0].data == "last");
  }
  int open = 0;
  for (const std::string& name : listed->stream_names) {
    auto summary = kinesis.DescribeStreamSummary({.stream_name = name});
    REQUIRE(summary.ok());
    open += summary->stream_description_summary.open_shard_count;
  }
  auto limits = kinesis.DescribeLimits();
  REQUIRE(limits.ok());
  CHECK(limits->open_shard_count == open);
}

void CheckEveryControlOpSucceeded(const ControlRun& run) {
  for (int op = 0; op < kControlOps; ++op) {
    INFO(kControlOpNames[op]);
    CHECK(run.ok[op].load() > 0);
  }
}

// ---------------------------------------------------------------------------------------
// SQS: senders and receivers of one FIFO queue, by URL.

constexpr int kSenders = 2;    // 0 calls SendMessage, 1 SendMessageBatch
constexpr int kReceivers = 3;  // 0 and 2 long-poll, 1 does not wait; 2 deletes in batches
constexpr int kGroups = 6;
constexpr std::string_view kStopBody = "stop";

struct Delivery {
  std::string sequence_number;
  int sender;
  int index;
};

struct SqsRun {
  std::map<std::string, std::string> sent;                // message id -> body
  std::map<std::string, int> received;                    // message id -> times received
  std::map<std::string, std::vector<Delivery>> by_group;  // in the order handed out
  bool drained = false;  // every sent message was received before the deadline
};

// Sequence numbers are decimal strings: shorter is smaller.
bool SequenceLess(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

void Send(riffle::Sqs& sqs, const std::string& url, int s, int per_sender,
          std::map<std::string, std::string>& sent, Problems& problems) {
  auto group = [](int i) { return fmt::format("g{}", i % kGroups); };
  if (s == 0) {
    for (int i = 0; i < per_sender; ++i) {
      const std::string body = fmt::format("{}:{}", s, i);
      const std::string dedup = fmt::format("d{}-{}", s, i);
      const std::string g = group(i);
      auto r = sqs.SendMessage({.queue_url = url,
                                .message_body = body,
                                .message_deduplication_id = dedup,
                                .message_group_id = g});
      if (!r.ok()) {
        problems.Add("SendMessage: " + StatusText(r.status()));
        continue;
      }
      if (r->md5_of_message_body != riffle::Md5OfMessageBody(body)) {
        problems.Add("SendMessage: MD5OfMessageBody " + r->md5_of_message_body);
      }
      sent.emplace(r->message_id, body);
    }
    return;
  }
  constexpr int kBatch = 10;
  for (int i = 0; i < per_sender; i += kBatch) {
    std::vector<std::string> bodies, dedups, groups, ids;
    for (int j = 0; j < kBatch && i + j < per_sender; ++j) {
      bodies.push_back(fmt::format("{}:{}", s, i + j));
      dedups.push_back(fmt::format("d{}-{}", s, i + j));
      groups.push_back(group(i + j));
      ids.push_back(fmt::format("e{}", j));
    }
    std::vector<riffle::SendMessageBatchInputEntry> entries;
    for (std::size_t j = 0; j < bodies.size(); ++j) {
      entries.push_back({.id = ids[j],
                         .message_body = bodies[j],
                         .message_deduplication_id = dedups[j],
                         .message_group_id = groups[j]});
    }
    auto r = sqs.SendMessageBatch({.queue_url = url, .entries = entries});
    if (!r.ok()) {
      problems.Add("SendMessageBatch: " + StatusText(r.status()));
      continue;
    }
    for (const riffle::BatchResultErrorEntry& f : r->failed) {
      problems.Add(fmt::format("SendMessageBatch entry {}: {}: {}", f.id, f.code, f.message));
    }
    for (const riffle::SendMessageBatchOutputEntry& e : r->successful) {
      const std::size_t j = static_cast<std::size_t>(std::stoi(e.id.substr(1)));
      if (j >= bodies.size() || e.md5_of_message_body != riffle::Md5OfMessageBody(bodies[j])) {
        problems.Add("SendMessageBatch: entry " + e.id);
        continue;
      }
      sent.emplace(e.message_id, bodies[j]);
    }
  }
}

void Receive(riffle::Sqs& sqs, const std::string& url, int r, const std::atomic<bool>& stop,
             std::mutex& mu, SqsRun& run, std::atomic<int>& received, Problems& problems) {
  const bool long_poll = r != 1;
  while (!stop.load()) {
    auto got =
        sqs.ReceiveMessage({.queue_url = url,
                            .message_system_attribute_names = {"MessageGroupId", "SequenceNumber"},
                            .max_number_of_messages = 10,
                            .wait_time_seconds = long_poll ? 20 : 0});
    if (!got.ok()) {
      problems.Add("ReceiveMessage: " + StatusText(got.status()));
      return;
    }
    if (got->messages.empty()) {
      if (!long_poll) Nap(50);
      continue;
    }
    int messages = 0;
    {
      // Recorded before any is deleted: the next message of a group is handed out only
      // after this one is deleted, so the log has each group in the order handed out.
      std::lock_guard<std::mutex> lock(mu);
      for (const riffle::SqsMessage& m : got->messages) {
        if (m.body == kStopBody) continue;
        int s = -1, i = -1;
        if (std::sscanf(m.body.c_str(), "%d:%d", &s, &i) != 2 ||
            m.md5_of_body != riffle::Md5OfMessageBody(m.body) ||
            !m.attributes.contains("MessageGroupId") || !m.attributes.contains("SequenceNumber")) {
          problems.Add("ReceiveMessage: a message " + m.body);
          continue;
        }
        run.by_group[m.attributes.at("MessageGroupId")].push_back(
            {m.attributes.at("SequenceNumber"), s, i});
        ++run.received[m.message_id];
        ++messages;
      }
    }
    if (r == 2) {
      std::vector<std::string> ids;
      std::vector<riffle::DeleteMessageBatchRequestEntry> entries;
      for (std::size_t j = 0; j < got->messages.size(); ++j) ids.push_back(fmt::format("d{}", j));
      for (std::size_t j = 0; j < got->messages.size(); ++j) {
        entries.push_back({.id = ids[j], .receipt_handle = got->messages[j].receipt_handle});
      }
      auto deleted = sqs.DeleteMessageBatch({.queue_url = url, .entries = entries});
      if (!deleted.ok()) {
        problems.Add("DeleteMessageBatch: " + StatusText(deleted.status()));
      } else {
        for (const riffle::BatchResultErrorEntry& f : deleted->failed) {
          problems.Add(fmt::format("DeleteMessageBatch entry {}: {}: {}", f.id, f.code, f.message));
        }
      }
    } else {
      for (const riffle::SqsMessage& m : got->messages) {
        if (absl::Status s =
                sqs.DeleteMessage({.queue_url = url, .receipt_handle = m.receipt_handle});
            !s.ok()) {
          problems.Add("DeleteMessage: " + StatusText(s));
        }
      }
    }
    received.fetch_add(messages);
  }
}

// Until `stop`: the queue's counters stay within what was sent, ListQueues lists it, and tags
// and attributes are set while messages move (the attribute set is the one it already has).
void ObserveQueue(riffle::Sqs& sqs, const std::string& url, int most, const std::atomic<bool>& stop,
                  Problems& problems) {
  for (int n = 0; !stop.load(); ++n) {
    auto a = sqs.GetQueueAttributes({.queue_url = url, .attribute_names = {"All"}});
    if (!a.ok()) {
      problems.Add("GetQueueAttributes: " + StatusText(a.status()));
    } else {
      for (const char* counter :
           {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"}) {
        long long value = -1;
        auto it = a->attributes.find(counter);
        if (it == a->attributes.end() || std::sscanf(it->second.c_str(), "%lld", &value) != 1 ||
            value < 0 || value > most) {
          problems.Add(fmt::format("GetQueueAttributes: {} = {}", counter,
                                   it == a->attributes.end() ? "none" : it->second));
        }
      }
    }
    auto listed = sqs.ListQueues();
    if (!listed.ok() ||
        std::count(listed->queue_urls.begin(), listed->queue_urls.end(), url) != 1) {
      problems.Add("ListQueues: " +
                   (listed.ok() ? "the queue is not listed once" : StatusText(listed.status())));
    }
    if (absl::Status s = sqs.TagQueue({.queue_url = url, .tags = {{"round", std::to_string(n)}}});
        !s.ok()) {
      problems.Add("TagQueue: " + StatusText(s));
    }
    if (absl::Status s = sqs.SetQueueAttributes(
            {.queue_url = url, .attributes = {{"VisibilityTimeout", "43200"}}});
        !s.ok()) {
      problems.Add("SetQueueAttributes: " + StatusText(s));
    }
    Nap(200);
  }
}

// REQUIRES: `url` names an empty FIFO queue whose visibility timeout outlasts the run (the
// test's clocks move at most a few minutes).
void RunSqs(riffle::Sqs& sqs, const std::string& url, int per_sender, SqsRun& run,
            Problems& problems) {
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::atomic<int> received{0};
  std::atomic<int> receivers_left{kReceivers};
  std::vector<std::thread> receivers;
  for (int r = 0; r < kReceivers; ++r) {
    receivers.emplace_back([&, r] {
      Receive(sqs, url, r, stop, mu, run, received, problems);
      receivers_left.fetch_sub(1);
    });
  }
  std::thread observer([&] { ObserveQueue(sqs, url, kSenders * per_sender, stop, problems); });
  std::vector<std::map<std::string, std::string>> sent(kSenders);
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] { Send(sqs, url, s, per_sender, sent[s], problems); });
  }
  for (std::thread& t : senders) t.join();
  for (const auto& of_sender : sent) run.sent.insert(of_sender.begin(), of_sender.end());
  const int total = static_cast<int>(run.sent.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (received.load() < total && std::chrono::steady_clock::now() < deadline) Nap(1000);
  run.drained = received.load() == total;
  stop.store(true);
  observer.join();
  // A long poll on a ManualClock that does not move returns when a message arrives: stop
  // messages, in groups of their own, wake whoever still waits.
  for (int n = 0; receivers_left.load() > 0 && n < 10000; ++n) {
    const std::string id = fmt::format("stop-{}", n);
    auto r = sqs.SendMessage({.queue_url = url,
                              .message_body = kStopBody,
                              .message_deduplication_id = id,
                              .message_group_id = id});
    if (!r.ok()) problems.Add("SendMessage stop: " + StatusText(r.status()));
    Nap(1000);
  }
  for (std::thread& t : receivers) t.join();
}

// After a run: every message received was deleted, and the attributes the observer set
// left the others as they were.
void CheckQueueAfter(riffle::Sqs& sqs, const std::string& url) {
  auto a = sqs.GetQueueAttributes({.queue_url = url, .attribute_names = {"All"}});
  REQUIRE(a.ok());
  CHECK(a->attributes.at("ApproximateNumberOfMessagesNotVisible") == "0");
  CHECK(a->attributes.at("VisibilityTimeout") == "43200");
  CHECK(a->attributes.at("MessageRetentionPeriod") == "345600");
  CHECK(a->attributes.at("FifoQueue") == "true");
}

void CheckSqs(const SqsRun& run, int per_sender) {
  CHECK(run.drained);
  CHECK(run.sent.size() == static_cast<std::size_t>(kSenders * per_sender));
  std::size_t missing = 0, repeated = 0, unknown = 0;
  for (const auto& [id, body] : run.sent) {
    auto it = run.received.find(id);
    if (it == run.received.end()) {
      ++missing;
    } else if (it->second != 1) {
      ++repeated;
    }
  }
  for (const auto& [id, times] : run.received) unknown += run.sent.contains(id) ? 0 : 1;
  CHECK(missing == 0);
  CHECK(repeated == 0);
  CHECK(unknown == 0);
  CHECK(run.by_group.size() == static_cast<std::size_t>(kGroups));
  for (const auto& [group, deliveries] : run.by_group) {
    INFO("group " << group);
    // Handed out in the order the queue took them in, and each sender's in its order.
    int disorder = 0;
    std::array<int, kSenders> last;
    last.fill(-1);
    for (std::size_t j = 0; j < deliveries.size(); ++j) {
      const Delivery& d = deliveries[j];
      if (j > 0 && !SequenceLess(deliveries[j - 1].sequence_number, d.sequence_number)) ++disorder;
      if (d.sender < 0 || d.sender >= kSenders || d.index <= last[d.sender]) {
        ++disorder;
      } else {
        last[d.sender] = d.index;
      }
    }
    CHECK(disorder == 0);
  }
}

// ---------------------------------------------------------------------------------------
// Firehose: DirectPut producers, a flusher and an S3 reader.

constexpr int kFirehoseProducers = 3;  // 0 and 1 call PutRecord, 2 calls PutRecordBatch
constexpr std::string_view kPrefix = "out/";

struct FirehoseRun {
  std::set<std::string> accepted;        // records accepted (without their '\n')
  std::set<std::string> record_ids;      // as the puts answered
  int accepted_puts = 0;                 // records accepted, counted per answer
  std::map<std::string, int> delivered;  // record -> times, over every object at the end
  int objects = 0;
  int reader_objects = 0;  // objects the reader read while the producers ran
  int updates = 0;         // UpdateDestination calls that succeeded
};

// Every object under `prefix` by pages of `page_size` keys, in key order (listing and
// reading problems go to `problems`).
std::vector<std::pair<riffle::S3Object, std::string>> ReadObjects(riffle::S3& s3,
                                                                  const std::string& bucket,
                                                                  std::string_view prefix,
                                                                  int page_size,
                                                                  Problems& problems) {
  std::vector<std::pair<riffle::S3Object, std::string>> objects;
  std::string token;
  std::string last_key;
  do {
    auto page = s3.ListObjectsV2(
        {.bucket = bucket, .prefix = prefix, .max_keys = page_size, .continuation_token = token});
    if (!page.ok()) {
      problems.Add("ListObjectsV2: " + StatusText(page.status()));
      break;
    }
    for (riffle::S3Object& o : page->contents) {
      if (o.key <= last_key) problems.Add("ListObjectsV2: " + o.key + " after " + last_key);
      last_key = o.key;
      auto got = s3.GetObject({.bucket = bucket, .key = o.key});
      if (!got.ok()) {
        problems.Add("GetObject " + o.key + ": " + StatusText(got.status()));
        continue;
      }
      if (got->etag != o.etag || got->content_length != o.size ||
          got->content_length != static_cast<int64_t>(got->body.size())) {
        problems.Add("GetObject " + o.key + ": not the object listed");
      }
      objects.emplace_back(std::move(o), std::move(got->body));
    }
    token = page->next_continuation_token;
  } while (!token.empty());
  return objects;
}

// The records of an object: each ends with '\n' and is "<producer>:<index>".
std::vector<std::string> RecordsOf(const std::string& key, const std::string& body,
                                   Problems& problems) {
  std::vector<std::string> records;
  std::size_t start = 0;
  while (start < body.size()) {
    const std::size_t nl = body.find('\n', start);
    if (nl == std::string::npos) {
      problems.Add("object " + key + " ends inside a record");
      break;
    }
    records.push_back(body.substr(start, nl - start));
    int p = -1, i = -1;
    if (std::sscanf(records.back().c_str(), "%d:%d", &p, &i) != 2 || p < 0 ||
        p >= kFirehoseProducers || records.back() != fmt::format("{}:{}", p, i)) {
      problems.Add("object " + key + " holds " + records.back());
    }
    start = nl + 1;
  }
  return records;
}

// REQUIRES: `name` is an ACTIVE DirectPut delivery stream into `bucket` under kPrefix that
// has taken no record yet.
void RunFirehose(riffle::Account& account, const std::string& name, const std::string& bucket,
                 int per_producer, FirehoseRun& run, Problems& problems) {
  riffle::Firehose& firehose = account.firehose();
  std::atomic<int> producers_left{kFirehoseProducers};
  std::atomic<bool> flushed{false};  // the flusher's last Flush, after the producers, returned
  std::thread flusher([&] {
    for (bool last = false; !last;) {
      last = producers_left.load() == 0;
      if (auto f = firehose.Flush(name); !f.ok()) problems.Add("Flush: " + StatusText(f.status()));
      (void)firehose.Poll();
      Nap(300);
    }
    flushed.store(true);
  });
  // The control plane meanwhile: UpdateDestination (the size hint, 1 or 2 MiB; what is
  // buffered is delivered first), describing, listing and tagging.
  std::thread admin([&] {
    while (!flushed.load()) {
      auto d = firehose.DescribeDeliveryStream({.delivery_stream_name = name});
      if (!d.ok() || d->delivery_stream_description.destinations.size() != 1) {
        problems.Add("DescribeDeliveryStream: " +
                     (d.ok() ? "not one destination" : StatusText(d.status())));
        break;
      }
      const riffle::DeliveryStreamDescription& desc = d->delivery_stream_description;
      auto updated = firehose.UpdateDestination(
          {.delivery_stream_name = name,
           .current_delivery_stream_version_id = desc.version_id,
           .destination_id = desc.destinations[0].destination_id,
           .extended_s3_destination_update = riffle::ExtendedS3DestinationUpdate{
               .buffering_hints = riffle::BufferingHints{.size_in_mbs = 1 + run.updates % 2,
                                                         .interval_in_seconds = 0}}});
      if (updated.ok()) {
        ++run.updates;
      } else {
        problems.Add("UpdateDestination: " + StatusText(updated.status()));
      }
      auto listed = firehose.ListDeliveryStreams();
      if (!listed.ok() || std::count(listed->delivery_stream_names.begin(),
                                     listed->delivery_stream_names.end(), name) != 1) {
        problems.Add("ListDeliveryStreams: " + (listed.ok()
                                                    ? "the delivery stream is not listed once"
                                                    : StatusText(listed.status())));
      }
      const std::vector<riffle::Tag> tags = {{"updates", std::to_string(run.updates)}};
      if (absl::Status s = firehose.TagDeliveryStream({.delivery_stream_name = name, .tags = tags});
          !s.ok()) {
        problems.Add("TagDeliveryStream: " + StatusText(s));
      }
      Nap(2000);
    }
  });
  // Reads every new object while the producers and the flusher run: whole records, none
  // seen in an earlier object, and an object listed again is the same object. Writes and
  // deletes an object of its own under another prefix meanwhile.
  std::thread reader([&] {
    std::map<std::string, std::string> etags;  // key -> ETag when first read
    std::set<std::string> seen;
    riffle::S3& s3 = account.s3();
    for (int pass = 0, last = false; !last; ++pass) {
      last = flushed.load();
      const std::string scratch = fmt::format("scratch/{}", pass);
      const std::string body = fmt::format("pass {}", pass);
      auto put = s3.PutObject({.bucket = bucket, .key = scratch, .body = body});
      auto got = s3.GetObject({.bucket = bucket, .key = scratch});
      if (!put.ok() || !got.ok() || got->body != body || got->etag != put->etag) {
        problems.Add("PutObject then GetObject " + scratch);
      }
      if (absl::Status s = s3.DeleteObject({.bucket = bucket, .key = scratch}); !s.ok()) {
        problems.Add("DeleteObject: " + StatusText(s));
      }
      if (!riffle::IsNoSuchKey(s3.HeadObject({.bucket = bucket, .key = scratch}).status())) {
        problems.Add("HeadObject of the deleted " + scratch);
      }
      for (const auto& [object, body] : ReadObjects(account.s3(), bucket, kPrefix, 7, problems)) {
        auto [it, inserted] = etags.emplace(object.key, object.etag);
        if (!inserted) {
          if (it->second != object.etag) problems.Add("object rewritten: " + object.key);
          continue;
        }
        ++run.reader_objects;
        for (const std::string& record : RecordsOf(object.key, body, problems)) {
          if (!seen.insert(record).second) problems.Add("delivered twice: " + record);
        }
      }
      Nap(500);
    }
  });
  std::vector<std::vector<std::string>> accepted(kFirehoseProducers);
  std::vector<std::vector<std::string>> ids(kFirehoseProducers);
  std::vector<std::thread> producers;
  for (int p = 0; p < kFirehoseProducers; ++p) {
    producers.emplace_back([&, p] {
      if (p < 2) {
        for (int i = 0; i < per_producer; ++i) {
          const std::string data = fmt::format("{}:{}\n", p, i);
          auto r = firehose.PutRecord({.delivery_stream_name = name, .record = {data}});
          if (!r.ok()) {
            problems.Add("PutRecord: " + StatusText(r.status()));
            continue;
          }
          accepted[p].push_back(data.substr(0, data.size() - 1));
          ids[p].push_back(r->record_id);
        }
      } else {
        constexpr int kBatch = 25;
        for (int i = 0; i < per_producer; i += kBatch) {
          std::vector<std::string> data;
          for (int j = i; j < i + kBatch && j < per_producer; ++j) {
            data.push_back(fmt::format("{}:{}\n", p, j));
          }
          std::vector<riffle::FirehoseRecord> records;
          for (const std::string& d : data) records.push_back({d});
          auto r = firehose.PutRecordBatch({.delivery_stream_name = name, .records = records});
          if (!r.ok()) {
            problems.Add("PutRecordBatch: " + StatusText(r.status()));
            continue;
          }
          if (r->failed_put_count != 0 || r->request_responses.size() != data.size()) {
            problems.Add(fmt::format("PutRecordBatch: {} failed of {}", r->failed_put_count,
                                     r->request_responses.size()));
          }
          for (std::size_t j = 0; j < r->request_responses.size() && j < data.size(); ++j) {
            if (!r->request_responses[j].error_code.empty()) continue;
            accepted[p].push_back(data[j].substr(0, data[j].size() - 1));
            ids[p].push_back(r->request_responses[j].record_id);
          }
        }
      }
      producers_left.fetch_sub(1);
    });
  }
  for (std::thread& t : producers) t.join();
  flusher.join();
  admin.join();
  reader.join();
  for (int p = 0; p < kFirehoseProducers; ++p) {
    run.accepted_puts += static_cast<int>(accepted[p].size());
    run.accepted.insert(accepted[p].begin(), accepted[p].end());
    run.record_ids.insert(ids[p].begin(), ids[p].end());
  }
  if (auto f = firehose.Flush(name); !f.ok()) problems.Add("Flush: " + StatusText(f.status()));
  for (const auto& [object, body] : ReadObjects(account.s3(), bucket, kPrefix, 1000, problems)) {
    ++run.objects;
    for (const std::string& record : RecordsOf(object.key, body, problems)) {
      ++run.delivered[record];
    }
  }
}

void CheckFirehose(riffle::Firehose& firehose, const std::string& name, const FirehoseRun& run,
                   int per_producer) {
  const std::size_t total = static_cast<std::size_t>(kFirehoseProducers * per_producer);
  CHECK(run.accepted_puts == static_cast<int>(total));
  CHECK(run.accepted.size() == total);
  CHECK(run.record_ids.size() == total);  // every accepted record has an id of its own
  std::size_t missing = 0, repeated = 0, unknown = 0;
  for (const std::string& record : run.accepted) {
    auto it = run.delivered.find(record);
    if (it == run.delivered.end()) {
      ++missing;
    } else if (it->second != 1) {
      ++repeated;
    }
  }
  for (const auto& [record, times] : run.delivered) {
    unknown += run.accepted.contains(record) ? 0 : 1;
  }
  CHECK(missing == 0);
  CHECK(repeated == 0);
  CHECK(unknown == 0);
  CHECK(run.reader_objects > 0);
  auto d = firehose.DescribeDeliveryStream({.delivery_stream_name = name});
  REQUIRE(d.ok());
  CHECK(d->delivery_stream_description.version_id == std::to_string(1 + run.updates));
  riffle::DeliveryStream* ds = firehose.FindDeliveryStream(name);
  REQUIRE(ds != nullptr);
  const riffle::DeliveryStreamMetrics m = ds->GetMetrics();
  CHECK(m.incoming_records == total);
  CHECK(m.delivery_records == total);
  CHECK(m.delivery_objects == static_cast<uint64_t>(run.objects));
  CHECK(m.throttled_records == 0);
  CHECK(m.error_output_records == 0);
  CHECK(m.buffered_bytes == 0);
}

// ---------------------------------------------------------------------------------------
// Set-up, on the test's thread.

const std::vector<std::string> kControlNames = {"s0", "s1", "s2", "s3"};
constexpr int kInitialShards = 3;

struct Sizes {
  KinesisSize kinesis;
  int control_ops;  // per worker
  int sqs_per_sender;
  int firehose_per_producer;
};

Sizes FullSizes() {
  const int d = riffle_test::StressDivisor();
  return {.kinesis = {.per_producer = 96'000 / d, .min_reshards = 60, .max_reshards = 120},
          .control_ops = 20'000 / d,
          .sqs_per_sender = 15'000 / d,
          .firehose_per_producer = 50'000 / d};
}

std::string CreateQueue(riffle::Sqs& sqs) {
  // Visibility for 12 hours: the clock never moves that far, so nothing is received twice.
  auto q = sqs.CreateQueue({.queue_name = "orders.fifo",
                            .attributes = {{"FifoQueue", "true"}, {"VisibilityTimeout", "43200"}}});
  REQUIRE(q.ok());
  return q->queue_url;
}

void CreateDirectPut(riffle::Account& account, const std::string& name, const std::string& bucket) {
  REQUIRE(account.s3().CreateBucket({.bucket = bucket}).ok());
  const std::string bucket_arn = riffle::S3::BucketArn(bucket);
  // Interval 0: what is buffered goes at the next Poll or Flush, whichever comes first.
  REQUIRE(account.firehose()
              .CreateDeliveryStream(
                  {.delivery_stream_name = name,
                   .extended_s3_destination_configuration =
                       riffle::ExtendedS3DestinationConfiguration{
                           .bucket_arn = bucket_arn,
                           .prefix = kPrefix,
                           .buffering_hints =
                               riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = 0}}})
              .ok());
}

// Four threads of random control-plane calls on kControlNames.
void RunControlPlane(riffle::Account& account, int ops, ManualClock* clock, ControlRun& run,
                     Problems& problems) {
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back(
        [&, w] { ControlWorker(account, kControlNames, ops, 1000 + w, clock, run, problems); });
  }
  for (std::thread& t : workers) t.join();
}

}  // namespace

TEST_CASE("Kinesis: puts by name race reshards, a lineage reader and describers",
          "[account][stress]") {
  ManualClock clock;
  auto account = MakeAccount(clock, false, {.update_duration = absl::Seconds(1)});
  account_test::CreateStream(account->kinesis(), "orders", kInitialShards);
  const KinesisSize size = FullSizes().kinesis;
  Problems problems;
  const KinesisRun run =
      RunKinesis(account->kinesis(), clock, "orders", kInitialShards, size, 7, problems);
  CheckNoProblems(problems);
  CheckKinesis(run, size, kInitialShards);
}

TEST_CASE("Kinesis control plane: overlapping names, every answer documented",
          "[account][stress]") {
  const int ops = FullSizes().control_ops;
  SECTION("no emulated durations: creates and deletes of a name alternate") {
    ManualClock clock;
    auto account = MakeAccount(clock);
    ControlRun run;
    Problems problems;
    RunControlPlane(*account, ops, nullptr, run, problems);
    CheckNoProblems(problems);
    CheckEveryControlOpSucceeded(run);
    CheckStreams(*account, kControlNames, run, /*exact=*/true);
  }
  SECTION("CREATING and DELETING on a clock that keeps moving") {
    ManualClock clock;
    auto account = MakeAccount(
        clock, false, {.create_duration = absl::Seconds(1), .delete_duration = absl::Seconds(1)});
    ControlRun run;
    Problems problems;
    RunControlPlane(*account, ops, &clock, run, problems);
    // Every CREATING and DELETING ends.
    clock.Advance(absl::Seconds(2));
    CheckNoProblems(problems);
    CheckEveryControlOpSucceeded(run);
    CheckStreams(*account, kControlNames, run, /*exact=*/false);
  }
}

TEST_CASE("SQS: senders and receivers by URL, every message once, in order per group",
          "[account][stress]") {
  ManualClock clock;  // never moves: long polls end by a send
  auto account = MakeAccount(clock);
  const std::string url = CreateQueue(account->sqs());
  const int per_sender = FullSizes().sqs_per_sender;
  SqsRun run;
  Problems problems;
  RunSqs(account->sqs(), url, per_sender, run, problems);
  CheckNoProblems(problems);
  CheckSqs(run, per_sender);
  CheckQueueAfter(account->sqs(), url);
}

TEST_CASE("Firehose into S3: puts race Flush, Poll and readers; every record once",
          "[account][stress]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  CreateDirectPut(*account, "direct", "deliveries");
  const int per_producer = FullSizes().firehose_per_producer;
  FirehoseRun run;
  Problems problems;
  RunFirehose(*account, "direct", "deliveries", per_producer, run, problems);
  CheckNoProblems(problems);
  CheckFirehose(account->firehose(), "direct", run, per_producer);
}

TEST_CASE("All four services of one account at once", "[account][stress]") {
  ManualClock clock;
  auto account = MakeAccount(clock, false, {.update_duration = absl::Seconds(1)});
  account_test::CreateStream(account->kinesis(), "orders", kInitialShards);
  const std::string url = CreateQueue(account->sqs());
  CreateDirectPut(*account, "direct", "deliveries");
  // A second delivery stream reads "orders" while it is resharded (from LATEST as of now:
  // every record of the run). The DirectPut run's flusher drives it with Firehose::Poll.
  const std::string orders_arn = account->StreamArn("orders");
  REQUIRE(account->firehose()
              .CreateDeliveryStream(
                  {.delivery_stream_name = "from-orders",
                   .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
                   .kinesis_stream_source_configuration =
                       riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn = orders_arn},
                   .extended_s3_destination_configuration =
                       riffle::ExtendedS3DestinationConfiguration{
                           .bucket_arn = riffle::S3::BucketArn("deliveries"),
                           .prefix = "kinesis/",
                           .buffering_hints =
                               riffle::BufferingHints{.size_in_mbs = 1, .interval_in_seconds = 0},
                           .processing_configuration = {.enabled = true,
                                                        .append_delimiter_to_record = true}}})
              .ok());
  Sizes size = FullSizes();
  size.kinesis.per_producer /= 2;
  size.control_ops /= 2;
  size.sqs_per_sender /= 2;
  size.firehose_per_producer /= 2;

  Problems kinesis_problems, control_problems, sqs_problems, firehose_problems;
  KinesisRun kinesis_run;
  ControlRun control_run;
  SqsRun sqs_run;
  FirehoseRun firehose_run;
  std::thread kinesis([&] {
    kinesis_run = RunKinesis(account->kinesis(), clock, "orders", kInitialShards, size.kinesis, 11,
                             kinesis_problems);
  });
  std::thread control(
      [&] { RunControlPlane(*account, size.control_ops, nullptr, control_run, control_problems); });
  std::thread sqs([&] { RunSqs(account->sqs(), url, size.sqs_per_sender, sqs_run, sqs_problems); });
  std::thread firehose([&] {
    RunFirehose(*account, "direct", "deliveries", size.firehose_per_producer, firehose_run,
                firehose_problems);
  });
  kinesis.join();
  control.join();
  sqs.join();
  firehose.join();

  {
    INFO("Kinesis");
    CheckNoProblems(kinesis_problems);
    CheckKinesis(kinesis_run, size.kinesis, kInitialShards);
  }
  {
    INFO("control plane");
    // An encryption change leaves its stream UPDATING for update_duration: let it end.
    clock.Advance(absl::Seconds(2));
    CheckNoProblems(control_problems);
    CheckStreams(*account, kControlNames, control_run, /*exact=*/true);
  }
  {
    INFO("SQS");
    CheckNoProblems(sqs_problems);
    CheckSqs(sqs_run, size.sqs_per_sender);
    CheckQueueAfter(account->sqs(), url);
  }
  {
    INFO("Firehose");
    CheckNoProblems(firehose_problems);
    CheckFirehose(account->firehose(), "direct", firehose_run, size.firehose_per_producer);
  }
  {
    INFO("Firehose reading Kinesis");
    riffle::Firehose& firehose = account->firehose();
    riffle::DeliveryStream* from = firehose.FindDeliveryStream("from-orders");
    REQUIRE(from != nullptr);
    // Each Poll reads the source on: poll until it has taken every record put.
    const std::size_t put = kinesis_run.acked.size();
    for (int i = 0; i < 10'000 && from->GetMetrics().incoming_records < put; ++i) {
      (void)firehose.Poll();
    }
    REQUIRE(firehose.Flush("from-orders").ok());
    const riffle::DeliveryStreamMetrics m = from->GetMetrics();
    CHECK(m.incoming_records == put);
    CHECK(m.delivery_records == put);
    CHECK(m.source_records_missed == 0);
    CHECK(m.error_output_records == 0);
    Problems problems;
    std::map<std::string, int> delivered;
    for (const auto& [object, body] :
         ReadObjects(account->s3(), "deliveries", "kinesis/", 1000, problems)) {
      std::size_t start = 0;
      for (std::size_t nl; (nl = body.find('\n', start)) != std::string::npos; start = nl + 1) {
        ++delivered[body.substr(start, nl - start)];
      }
      CHECK(start == body.size());  // every record ends with the delimiter
    }
    CheckNoProblems(problems);
    std::size_t missing = 0, repeated = 0;
    for (const auto& [seq, record] : kinesis_run.acked) {
      auto it = delivered.find(record.substr(record.find('|') + 1));
      if (it == delivered.end()) {
        ++missing;
      } else if (it->second != 1) {
        ++repeated;
      }
    }
    CHECK(missing == 0);
    CHECK(repeated == 0);
    CHECK(delivered.size() == put);
  }
}

TEST_CASE("Firehose: concurrent UpdateDestination calls describe what is in effect",
          "[account][stress]") {
  // Two threads update one delivery stream's prefix at once, each retrying on
  // ConcurrentModificationException; afterwards DescribeDeliveryStream must name the prefix
  // a record is delivered under (a slower update's description landed over a newer one's).
  ManualClock clock;
  auto account = MakeAccount(clock);
  CreateDirectPut(*account, "updated", "deliveries");
  riffle::Firehose& firehose = account->firehose();
  const int rounds = 2000 / riffle_test::StressDivisor() + 100;
  int mismatches = 0;
  std::atomic<int> errors{0};
  for (int round = 0; round < rounds; ++round) {
    auto update = [&](std::string prefix) {
      for (;;) {
        auto d = firehose.DescribeDeliveryStream({.delivery_stream_name = "updated"});
        if (!d.ok()) break;
        const riffle::ExtendedS3DestinationUpdate u{.prefix = std::string_view(prefix)};
        absl::Status s = firehose
                             .UpdateDestination({.delivery_stream_name = "updated",
                                                 .current_delivery_stream_version_id =
                                                     d->delivery_stream_description.version_id,
                                                 .destination_id = "destinationId-000000000001",
                                                 .extended_s3_destination_update = u})
                             .status();
        if (s.ok()) return;
        if (!riffle::HasErrorName(s, riffle::kConcurrentModificationException)) break;
      }
      ++errors;
    };
    std::thread a(update, fmt::format("a{}/", round));
    std::thread b(update, fmt::format("b{}/", round));
    a.join();
    b.join();
    auto d = firehose.DescribeDeliveryStream({.delivery_stream_name = "updated"});
    REQUIRE(d.ok());
    const std::string described = d->delivery_stream_description.destinations.at(0)
                                      .extended_s3_destination_description.prefix;
    REQUIRE(firehose.PutRecord({.delivery_stream_name = "updated", .record = {"x\n"}}).ok());
    REQUIRE(firehose.Flush("updated").ok());
    auto listed = account->s3().ListObjectsV2({.bucket = "deliveries", .prefix = described});
    REQUIRE(listed.ok());
    if (listed->contents.size() != 1) ++mismatches;
  }
  CHECK(errors.load() == 0);
  CHECK(mismatches == 0);
}
