// KPL de-aggregation in readers: checkpoints inside an aggregate, de-aggregating consumers
// and subscriptions, the throughput gain under a shard's write limit, the multi-buffer MD5
// against the scalar one, and a de-aggregation steady state that allocates nothing.
#include <algorithm>
#include <catch2/catch.hpp>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/md5_lanes.h"
#include "fmt/format.h"
#include "kpl_test_helpers.h"
#include "riffle/consumer.h"
#include "riffle/detail/md5.h"
#include "riffle/kpl.h"
#include "riffle/stream.h"
#include "support/alloc_counter.h"

using namespace riffle_test::kpl;

// ---- Consumers ----

namespace {

// Records what a processor saw as "data@sub"; checkpoints at the user record whose data is
// `checkpoint_at`, and never on the way out.
struct SubLog {
  std::vector<std::string> seen;
  std::vector<std::string> checkpoints;  // what Initialize got
  std::string checkpoint_at;
};

class SubProcessor : public riffle::RecordProcessor {
 public:
  explicit SubProcessor(SubLog* log) : log_(log) {}
  void Initialize(std::string_view, std::string_view checkpoint) override {
    log_->checkpoints.emplace_back(checkpoint);
  }
  void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
    for (size_t i = 0; i < in.records.size(); ++i) {
      const UserRecord& u = in.user_records.empty() ? UserRecord{} : in.user_records[i];
      log_->seen.push_back(fmt::format("{}@{}", in.records[i].data, u.sub_sequence_number));
      if (!in.user_records.empty()) {
        CHECK(u.data == in.records[i].data);
        if (u.data == log_->checkpoint_at) REQUIRE(cp.Checkpoint(u).ok());
      }
    }
  }
  void ShardEnded(riffle::Checkpointer& cp) override { REQUIRE(cp.Checkpoint().ok()); }

 private:
  SubLog* log_;
};

size_t DrainConsumer(riffle::Consumer& c, ManualClock& clock) {
  size_t total = 0;
  for (int quiet = 0; quiet < 5;) {
    const size_t n = c.Poll();
    total += n;
    quiet = n == 0 ? quiet + 1 : 0;
    clock.Advance(absl::Milliseconds(300));
  }
  return total;
}

}  // namespace

TEST_CASE("a checkpoint at a user record resumes exactly after it", "[kpl][checkpoint]") {
  for (riffle::ConsumerMode mode :
       {riffle::ConsumerMode::kPolling, riffle::ConsumerMode::kEnhancedFanOut}) {
    for (const std::string at : {"a4", "a9", "raw", "b0"}) {
      INFO((mode == riffle::ConsumerMode::kPolling ? "polling " : "fan-out ") + at);
      ManualClock clock;
      auto stream = MakeStream(&clock, 1);
      // Aggregate A (a0..a9), a record that is not aggregated, aggregate B (b0..b9).
      auto aggregator = MakeAggregator({.max_aggregate_records = 10}, *stream->ListShards());
      std::vector<Aggregate> out;
      for (int i = 0; i < 10; ++i)
        REQUIRE(aggregator->Add({"k", fmt::format("a{}", i), ""}, out).ok());
      REQUIRE(aggregator->Add({"k", "raw", ""}, out).ok());
      aggregator->Flush(out);
      for (int i = 0; i < 10; ++i)
        REQUIRE(aggregator->Add({"k", fmt::format("b{}", i), ""}, out).ok());
      REQUIRE(out.size() == 3);
      PutAll(*stream, out);

      riffle::kpl::Deaggregator kcl;
      riffle::InMemoryCheckpointStore store;
      auto make_consumer = [&](SubLog* log) {
        return riffle::Consumer::Create(
            {.stream = stream.get(),
             .application_name = "app",
             .mode = mode,
             .checkpoint_store = &store,
             .deaggregator = &kcl,
             .processor_factory = [log] { return std::make_unique<SubProcessor>(log); }});
      };
      SubLog first{.checkpoint_at = at};
      {
        auto c = make_consumer(&first);
        REQUIRE(c.ok());
        CHECK(DrainConsumer(**c, clock) == 21);
      }
      CHECK(first.seen.front() == "a0@0");
      CHECK(first.seen.back() == "b9@9");
      clock.Advance(absl::Seconds(6));  // the 5-second rule of a fan-out resubscription
      SubLog second;
      auto c = make_consumer(&second);
      REQUIRE(c.ok());
      DrainConsumer(**c, clock);
      const auto after = std::find_if(first.seen.begin(), first.seen.end(), [&](const auto& s) {
        return s.substr(0, s.find('@')) == at;
      });
      REQUIRE(after != first.seen.end());
      CHECK(second.seen == std::vector<std::string>(after + 1, first.seen.end()));
      REQUIRE(second.checkpoints.size() == 1);
      CHECK((second.checkpoints[0].find(':') != std::string::npos) == (at != "raw"));
      CHECK((*c)->last_error().ok());
    }
  }
}

// Checkpoints by user record, as the KCL's: in ShardEnded, the shard's last user record is
// SHARD_END; a checkpoint before the last one, or after it, is refused.
class UserRecordCheckpointer : public riffle::RecordProcessor {
 public:
  explicit UserRecordCheckpointer(std::vector<absl::Status>* results) : results_(results) {}
  void Initialize(std::string_view, std::string_view) override {}
  void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
    if (in.user_records.empty()) return;
    last_ = in.user_records.back();
    if (in.user_records.size() < 2) return;
    results_->push_back(cp.Checkpoint(in.user_records[in.user_records.size() - 1]));
    results_->push_back(cp.Checkpoint(in.user_records[in.user_records.size() - 2]));
  }
  void ShardEnded(riffle::Checkpointer& cp) override {
    REQUIRE(last_.has_value());
    // Past the last user record delivered: refused, as the KCL refuses it.
    results_->push_back(cp.Checkpoint(last_->sequence_number, last_->sub_sequence_number + 1));
    results_->push_back(cp.Checkpoint(*last_));
  }

 private:
  std::vector<absl::Status>* results_;
  std::optional<UserRecord> last_;
};

TEST_CASE("a checkpoint at a closed shard's last user record in ShardEnded is SHARD_END",
          "[kpl][checkpoint]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  auto aggregator = MakeAggregator({.max_aggregate_records = 10}, *stream->ListShards());
  std::vector<Aggregate> out;
  for (int i = 0; i < 10; ++i) REQUIRE(aggregator->Add({"k", fmt::format("a{}", i), ""}, out).ok());
  aggregator->Flush(out);
  PutAll(*stream, out);
  REQUIRE(
      stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
  riffle::kpl::Deaggregator kcl;
  riffle::InMemoryCheckpointStore store;
  std::vector<absl::Status> results;
  auto c = riffle::Consumer::Create(
      {.stream = stream.get(),
       .application_name = "app",
       .checkpoint_store = &store,
       .deaggregator = &kcl,
       .processor_factory = [&] { return std::make_unique<UserRecordCheckpointer>(&results); }});
  REQUIRE(c.ok());
  DrainConsumer(**c, clock);
  REQUIRE(results.size() == 4);
  CHECK(results[0].ok());
  CHECK(riffle::ErrorName(results[1]) == riffle::kInvalidArgumentException);  // moves back
  CHECK(riffle::ErrorName(results[2]) == riffle::kInvalidArgumentException);
  CHECK_THAT(riffle::ErrorMessage(results[2]),
             Catch::Matches("SequenceNumber [0-9]+ \\(SubSequenceNumber 10\\) is not a record of "
                            "shard shardId-000000000000 delivered to this processor: the last user "
                            "record delivered is SubSequenceNumber 9 of this record\\."));
  CHECK(results[3].ok());
  CHECK(**store.GetCheckpoint("app", "shardId-000000000000") == riffle::kShardEndCheckpoint);
  CHECK((*c)->OwnedShards().size() == 2);  // the children are leased now
}

TEST_CASE("a consumer without de-aggregation reads a sub-record checkpoint as its aggregate",
          "[kpl][checkpoint]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  const std::vector<PutRecordsRequestEntry> users = {{"k", "u0", ""}, {"k", "u1", ""}};
  const std::string aggregate = riffle::kpl::EncodeAggregate(users);
  auto put = stream->PutRecord("a", aggregate);
  REQUIRE(put.ok());
  REQUIRE(stream->PutRecord("k", "after").ok());
  riffle::InMemoryCheckpointStore store;
  REQUIRE(store
              .PutCheckpoint("app", put->shard_id,
                             riffle::SubRecordCheckpoint(put->sequence_number.ToString(), 0))
              .ok());
  SubLog log;
  auto c = riffle::Consumer::Create(
      {.stream = stream.get(),
       .application_name = "app",
       .checkpoint_store = &store,
       .processor_factory = [&] { return std::make_unique<SubProcessor>(&log); }});
  REQUIRE(c.ok());
  DrainConsumer(**c, clock);
  CHECK((*c)->last_error().ok());
  // At least once: the aggregate again (whole, as one record), then what follows.
  CHECK(log.seen == std::vector<std::string>{aggregate + "@0", "after@0"});
}

TEST_CASE("a de-aggregating subscription handler sees user records", "[kpl]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  REQUIRE(stream->RegisterStreamConsumer("audit").ok());
  const std::vector<PutRecordsRequestEntry> users = {{"k1", "u0", ""}, {"k2", "u1", "7"}};
  REQUIRE(stream->PutRecord("a", riffle::kpl::EncodeAggregate(users)).ok());
  REQUIRE(stream->PutRecord("k3", "plain").ok());
  riffle::kpl::Deaggregator kcl;
  std::vector<std::string> seen;
  const auto shard = (*stream->ListShards())[0];
  auto sub = stream->SubscribeToShard(
      {"audit", shard.shard_id, {riffle::ShardIteratorType::kTrimHorizon}},
      riffle::kpl::DeaggregatingHandler(
          kcl, shard.hash_key_range,
          [&](const riffle::SubscribeToShardEvent& e, std::span<const UserRecord> user_records) {
            REQUIRE(e.records.size() == user_records.size());
            for (const UserRecord& u : user_records) {
              seen.push_back(fmt::format("{}:{}:{}:{}", u.partition_key, u.data,
                                         u.explicit_hash_key, u.sub_sequence_number));
            }
          }));
  REQUIRE(sub.ok());
  (*sub)->Poll();
  CHECK(seen == std::vector<std::string>{"k1:u0::0", "k2:u1:7:1", "k3:plain::0"});
  CHECK(kcl.stats().aggregates == 1);
}

// ---- Throughput under the write limit ----

namespace {

// A shard's write limit, 1,000 records/s and 1 MiB/s, as token buckets refilled on the
// ManualClock around PutRecords. It stands in for the AWS-shaped account with write limits
// (built separately); entries over the limit fail with
// ProvisionedThroughputExceededException as the service's do. One shard.
class ShardWriteLimit {
 public:
  ShardWriteLimit(Stream& stream, ManualClock& clock)
      : stream_(stream), clock_(clock), last_ms_(clock.NowMillis()) {}

  absl::StatusOr<riffle::PutRecordsResult> PutRecords(std::span<const PutRecordsRequestEntry> e) {
    const int64_t now = clock_.NowMillis();
    records_ = std::min(1000.0, records_ + (now - last_ms_) * 1.0);
    bytes_ = std::min(1048576.0, bytes_ + (now - last_ms_) * 1048.576);
    last_ms_ = now;
    riffle::PutRecordsResult result;
    for (const PutRecordsRequestEntry& entry : e) {
      auto& r = result.records.emplace_back();
      const double size = static_cast<double>(entry.partition_key.size() + entry.data.size());
      if (records_ < 1 || bytes_ < size) {
        r.error_code = riffle::kProvisionedThroughputExceededException;
        ++result.failed_record_count;
        continue;
      }
      records_ -= 1;
      bytes_ -= size;
      auto put = stream_.PutRecord({entry.partition_key, entry.data, entry.explicit_hash_key, {}});
      REQUIRE(put.ok());
      r.shard_id = put->shard_id;
      r.sequence_number = put->sequence_number;
    }
    return result;
  }

 private:
  Stream& stream_;
  ManualClock& clock_;
  int64_t last_ms_;
  double records_ = 0;
  double bytes_ = 0;
};

std::string UserData(int i) { return fmt::format("{:08}", i) + std::string(92, 'x'); }

}  // namespace

TEST_CASE("aggregation moves many more user records per second through a limited shard", "[kpl]") {
  constexpr int kSteps = 1000;  // 10 s of 10 ms
  uint64_t plain = 0;
  {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1, uint64_t{64} << 20);
    ShardWriteLimit limit(*stream, clock);
    int next = 0;
    for (int step = 0; step < kSteps; ++step) {
      clock.Advance(absl::Milliseconds(10));
      std::vector<std::string> keys, data;
      std::vector<PutRecordsRequestEntry> batch;
      for (int i = 0; i < 500; ++i) {
        keys.push_back(fmt::format("user-{:011}", (next + i) % 997));
        data.push_back(UserData(next + i));
      }
      for (int i = 0; i < 500; ++i) batch.push_back({keys[i], data[i], ""});
      auto r = limit.PutRecords(batch);
      REQUIRE(r.ok());
      // In order: what failed is offered again at the next step.
      const auto failed = std::find_if(r->records.begin(), r->records.end(),
                                       [](const auto& e) { return !e.sequence_number; });
      next += static_cast<int>(failed - r->records.begin());
    }
    plain = static_cast<uint64_t>(next);
  }
  uint64_t aggregated = 0;
  {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1, uint64_t{64} << 20);
    ShardWriteLimit limit(*stream, clock);
    auto producer = riffle::kpl::Producer::Create(
        {.stream = stream.get(), .put_records = [&](std::span<const PutRecordsRequestEntry> e) {
           return limit.PutRecords(e);
         }});
    REQUIRE(producer.ok());
    riffle::kpl::Producer& p = **producer;
    int next = 0;
    for (int step = 0; step < kSteps; ++step) {
      clock.Advance(absl::Milliseconds(10));
      while (p.pending_user_records() < 20000) {
        REQUIRE(p.Add({fmt::format("user-{:011}", next % 997), UserData(next), ""}).ok());
        ++next;
      }
      aggregated += p.Poll();
    }
    CHECK(p.stats().failed_entries > 0);  // the limit did bite
    riffle::kpl::Deaggregator kcl;
    CHECK(ReadUserData(*stream, &kcl).size() == aggregated);
  }
  INFO(fmt::format("user records in 10 s: plain {}, aggregated {}", plain, aggregated));
  CHECK(plain <= 11000);       // 1,000/s, plus the first second's bucket
  CHECK(aggregated >= 60000);  // ~8,000/s: 1 MiB/s of ~125-byte packed records
  CHECK(aggregated >= 6 * plain);
}

// ---- The MD5 behind the checks, and allocation ----

TEST_CASE("the multi-buffer MD5 matches the scalar MD5 on every lane width", "[kpl]") {
  std::mt19937_64 rng(3);
  std::vector<std::string> messages;
  for (size_t n = 0; n <= 300; ++n) messages.emplace_back(n, '\0');
  for (int i = 0; i < 40; ++i) messages.emplace_back(rng() % 5000, '\0');
  for (auto& m : messages) {
    for (char& c : m) c = static_cast<char>(rng());
  }
  std::shuffle(messages.begin(), messages.end(), rng);
  for (int lanes : {1, 16, 32}) {
    INFO(lanes);
    std::vector<riffle::detail::Md5Job> jobs(messages.size());
    for (size_t i = 0; i < messages.size(); ++i) {
      jobs[i].data = reinterpret_cast<const unsigned char*>(messages[i].data());
      jobs[i].size = messages[i].size();
    }
    const int used = riffle::detail::Md5JobsWith(lanes, jobs.data(), jobs.size());
    CHECK(used <= lanes);
    for (size_t i = 0; i < messages.size(); ++i) {
      const auto s = riffle::detail::Md5Words(messages[i].data(), messages[i].size());
      CHECK(jobs[i].state[0] == s.a);
      CHECK(jobs[i].state[1] == s.b);
      CHECK(jobs[i].state[2] == s.c);
      CHECK(jobs[i].state[3] == s.d);
    }
  }
}

TEST_CASE("short messages hashed in the lanes long ones leave idle match the scalar MD5", "[kpl]") {
  std::mt19937_64 rng(5);
  std::vector<std::string> storage;
  storage.reserve(20000);
  auto message = [&](size_t size) -> const std::string& {
    std::string& m = storage.emplace_back(size, '\0');
    for (char& c : m) c = static_cast<char>(rng());
    return m;
  };
  auto job = [](const std::string& m) {
    riffle::detail::Md5Job j;
    j.data = reinterpret_cast<const unsigned char*>(m.data());
    j.size = m.size();
    return j;
  };
  auto check = [](const std::vector<riffle::detail::Md5Job>& jobs) {
    for (const riffle::detail::Md5Job& j : jobs) {
      const auto s = riffle::detail::Md5Words(j.data, j.size);
      REQUIRE(j.state[0] == s.a);
      REQUIRE(j.state[1] == s.b);
      REQUIRE(j.state[2] == s.c);
      REQUIRE(j.state[3] == s.d);
    }
  };
  for (int round = 0; round < 60; ++round) {
    storage.clear();
    // Long messages (fewer or more than the lanes, of like or unlike lengths), short ones
    // (none, a few, more than the idle lanes can take), in both arrays or mixed in one.
    const size_t longs = rng() % 50;
    const size_t shorts = round % 3 == 0 ? rng() % 4 : rng() % 3000;
    const bool like = rng() % 2 == 0;
    std::vector<riffle::detail::Md5Job> jobs, more, mixed;
    for (size_t i = 0; i < longs; ++i) {
      jobs.push_back(job(message(like ? 5000 + rng() % 64 : 56 + rng() % 6000)));
      mixed.push_back(jobs.back());
    }
    for (size_t i = 0; i < shorts; ++i) {
      more.push_back(job(message(rng() % 56)));
      mixed.insert(mixed.begin() + static_cast<ptrdiff_t>(rng() % (mixed.size() + 1)), more.back());
    }
    for (int lanes : {1, 16, 32}) {
      INFO("round " << round << ", lanes " << lanes << ", " << longs << " long, " << shorts
                    << " short");
      std::vector<riffle::detail::Md5Job> a = jobs, b = more, m = mixed;
      riffle::detail::Md5JobsWith(lanes, a.data(), a.size(), b.data(), b.size());
      check(a);
      check(b);
      riffle::detail::Md5JobsWith(lanes, m.data(), m.size());
      check(m);
    }
  }
}

namespace {

// What the KCL makes of one record, computed the slow way: the scalar MD5 and parse
// (DecodeAggregate), then each user record's hash key against `range`.
void ExpectedUserRecords(const Record& record, const HashKeyRange& range,
                         std::vector<std::string>& out) {
  std::vector<UserRecord> users;
  if (!riffle::kpl::DecodeAggregate(record.data, users)) {
    out.push_back(fmt::format("raw {}", record.data.size()));
    return;
  }
  for (const UserRecord& u : users) {
    const riffle::HashKey h = u.explicit_hash_key.empty()
                                  ? riffle::Md5HashKey(u.partition_key)
                                  : *riffle::ParseHashKey(u.explicit_hash_key);
    if (!range.Contains(h)) return;  // misplaced: dropped whole
  }
  for (const UserRecord& u : users) {
    out.push_back(fmt::format("{}/{}/{}#{}", u.partition_key, u.explicit_hash_key, u.data,
                              u.sub_sequence_number));
  }
}

}  // namespace

TEST_CASE("the batch decoder agrees with the slow KCL on mixed batches", "[kpl]") {
  std::mt19937_64 rng(9);
  const auto quarters = riffle::UniformHashKeyRanges(4);
  const std::vector<HashKeyRange> ranges = {HashKeyRange{}, quarters[1],
                                            HashKeyRange{0, quarters[2].ending_hash_key}};
  for (int round = 0; round < 40; ++round) {
    // Aggregates of 1-60 user records whose keys are short, long (two MD5 blocks) or given
    // by an explicit hash key; some with a corrupt MD5, some of no records; plain records.
    std::vector<std::string> datas;
    const size_t n = 1 + rng() % 80;  // up to 80 aggregates: several chunks of lanes
    for (size_t i = 0; i < n; ++i) {
      const int kind = static_cast<int>(rng() % 10);
      if (kind == 0) {
        datas.push_back(fmt::format("plain {}", i));
        continue;
      }
      if (kind == 1) {
        datas.push_back(riffle::kpl::EncodeAggregate({}));  // no records
        continue;
      }
      std::vector<PutRecordsRequestEntry> entries;
      std::deque<std::string> text;  // the entries' views point here
      const size_t users = 1 + rng() % 60;
      for (size_t u = 0; u < users; ++u) {
        PutRecordsRequestEntry& e = entries.emplace_back();
        e.partition_key = text.emplace_back(rng() % 5 == 0 ? std::string(56 + rng() % 200, 'k') +
                                                                 std::to_string(u)
                                                           : fmt::format("key-{}", rng() % 50));
        if (rng() % 20 == 0) {
          e.explicit_hash_key =
              text.emplace_back(riffle::FormatHashKey(riffle::HashKey(rng()) << 64));
        }
        e.data = text.emplace_back(fmt::format("data {} {}", i, u));
      }
      std::string data = riffle::kpl::EncodeAggregate(entries);
      if (kind == 2) data.back() = static_cast<char>(data.back() ^ 1);  // corrupt MD5
      datas.push_back(std::move(data));
    }
    std::vector<Record> batch;
    for (const std::string& d : datas) batch.push_back(KinesisRecord("pk", d));
    for (const HashKeyRange& range : ranges) {
      INFO("round " << round << ", " << n << " records, range from "
                    << riffle::FormatHashKey(range.starting_hash_key));
      std::vector<std::string> expected;
      for (const Record& r : batch) ExpectedUserRecords(r, range, expected);
      riffle::kpl::Deaggregator kcl;
      std::vector<UserRecord> out;
      kcl.Decode(batch, range, out);
      std::vector<std::string> got;
      for (const UserRecord& u : out) {
        got.push_back(u.aggregated ? fmt::format("{}/{}/{}#{}", u.partition_key,
                                                 u.explicit_hash_key, u.data, u.sub_sequence_number)
                                   : fmt::format("raw {}", u.data.size()));
        CHECK(u.sequence_number == kSeq);
      }
      CHECK(got == expected);
    }
  }
}

TEST_CASE("de-aggregating a batch allocates nothing in steady state", "[kpl]") {
  const auto ranges = riffle::UniformHashKeyRanges(2);
  std::vector<riffle::Shard> shards(2);
  for (int i = 0; i < 2; ++i) {
    shards[i].shard_id = riffle::FormatShardId(i);
    shards[i].hash_key_range = ranges[i];
  }
  auto aggregator = MakeAggregator({}, shards);
  std::vector<Aggregate> out;
  for (int i = 0; i < 8000; ++i) {
    REQUIRE(aggregator->Add({fmt::format("user-{:011}", i), UserData(i), ""}, out).ok());
  }
  aggregator->Flush(out);
  std::vector<Record> batch;
  uint64_t expected = 0;
  for (const Aggregate& a : out) {
    if (a.shard_id != shards[0].shard_id) continue;
    batch.push_back(KinesisRecord(a.partition_key, a.data));
    expected += a.user_records;
  }
  batch.push_back(KinesisRecord("plain", "not aggregated"));
  riffle::kpl::Deaggregator kcl;
  std::vector<UserRecord> users;
  kcl.Decode(batch, ranges[0], users);  // grows the buffers
  REQUIRE(users.size() == expected + 1);
  riffle_test::AllocationCounter counter;
  for (int i = 0; i < 10; ++i) {
    users.clear();
    kcl.Decode(batch, ranges[0], users);
  }
  CHECK(counter.allocations() == 0);
  CHECK(users.size() == expected + 1);
  CHECK(kcl.stats().misplaced_aggregates == 0);
}

// Each aggregate's fate by brute force: misplaced when any of its keys' MD5 hash key is
// outside `range`.
uint64_t ExpectedMisplaced(const std::vector<std::vector<std::string>>& keys_of,
                           const riffle::HashKeyRange& range) {
  uint64_t n = 0;
  for (const auto& keys : keys_of) {
    n += std::any_of(keys.begin(), keys.end(),
                     [&](const std::string& k) { return !range.Contains(riffle::Md5HashKey(k)); });
  }
  return n;
}

TEST_CASE("the range check drops exactly the aggregates holding a key outside the range", "[kpl]") {
  // Aggregates of 150 records each over 400 recurring keys, packed for a one-shard map (so
  // every aggregate mixes keys from the whole key space).
  auto aggregator = MakeAggregator({.max_aggregate_records = 150}, OneShardMap());
  std::vector<Aggregate> out;
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(aggregator->Add({fmt::format("dev-{}", i * 7 % 400), UserData(i), ""}, out).ok());
  }
  aggregator->Flush(out);
  std::vector<Record> batch;
  std::vector<std::vector<std::string>> keys_of;
  for (const Aggregate& a : out) {
    batch.push_back(KinesisRecord(a.partition_key, a.data));
    std::vector<UserRecord> users;
    REQUIRE(riffle::kpl::DecodeAggregate(a.data, users));
    auto& keys = keys_of.emplace_back();
    for (const UserRecord& u : users) keys.emplace_back(u.partition_key);
  }
  REQUIRE(batch.size() == 20);

  // The same batch, again and again, against ranges that cut the keys in different places:
  // every verdict matches the brute force.
  const auto quarters = riffle::UniformHashKeyRanges(4);
  const std::vector<riffle::HashKeyRange> ranges = {
      riffle::HashKeyRange{0, riffle::kMaxHashKey - 1},  // only a key hashing to 2^128-1 is out
      quarters[1], riffle::HashKeyRange{quarters[0].starting_hash_key, quarters[2].ending_hash_key},
      quarters[0], riffle::HashKeyRange{0, riffle::kMaxHashKey - 1}};
  for (int round = 0; round < 3; ++round) {
    for (const riffle::HashKeyRange& range : ranges) {
      riffle::kpl::Deaggregator kcl;
      std::vector<UserRecord> users;
      kcl.Decode(batch, range, users);
      const uint64_t misplaced = ExpectedMisplaced(keys_of, range);
      CHECK(kcl.stats().misplaced_aggregates == misplaced);
      CHECK(users.size() == (batch.size() - misplaced) * 150);
    }
    // Batches of keys seen once, spread over the whole key space: none fits a quarter.
    for (int b = 0; b < 3; ++b) {
      std::vector<Aggregate> fresh;
      auto one_shard = MakeAggregator({.max_aggregate_records = 150}, OneShardMap());
      for (int i = 0; i < 600; ++i) {
        REQUIRE(one_shard->Add({fmt::format("once-{}-{}-{}", round, b, i), UserData(i), ""}, fresh)
                    .ok());
      }
      one_shard->Flush(fresh);
      std::vector<Record> fresh_batch;
      for (const Aggregate& a : fresh) fresh_batch.push_back(KinesisRecord("a", a.data));
      riffle::kpl::Deaggregator kcl;
      std::vector<UserRecord> users;
      kcl.Decode(fresh_batch, quarters[2], users);
      CHECK(kcl.stats().misplaced_aggregates == fresh_batch.size());  // 150 keys each
    }
  }
}
