// Consumer: every record processed once and in key order in both modes, restart from the
// last checkpoint (file store, new process state), leases shared and rebalanced between
// workers, expired leases taken over, the parents-before-children rule, and the polling
// read budget.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "consumer/lineage.h"
#include "fmt/format.h"
#include "riffle/consumer.h"
#include "support/alloc_counter.h"

using riffle::Consumer;
using riffle::ConsumerMode;
using riffle::ErrorName;
using riffle::ManualClock;

namespace {

std::unique_ptr<riffle::Stream> MakeStream(riffle::Clock* clock, int shards = 4) {
  riffle::StreamOptions o;
  o.stream_name = "orders";
  o.shard_count = shards;
  o.ring_capacity_bytes = uint64_t{4} << 20;
  o.max_record_size_bytes = 1024;
  o.clock = clock;
  return *riffle::Stream::Create(o);
}

// What every processor of a test saw; shared by the processors of all workers.
struct Log {
  std::mutex mu;
  std::vector<std::string> data;                   // in delivery order
  std::map<std::string, std::vector<int>> by_key;  // counters per key
  std::vector<std::string> events;                 // "init shard checkpoint", "shutdown ..."
  std::map<std::string, std::string> checkpoint_errors;
  int checkpoint_every = 0;  // 0: after every batch; n: Checkpoint(seq) of every n-th record
  uint64_t records = 0;
};

class Recorder : public riffle::RecordProcessor {
 public:
  Recorder(Log* log, std::string worker) : log_(log), worker_(std::move(worker)) {}
  void Initialize(std::string_view shard, std::string_view checkpoint) override {
    shard_ = shard;
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->events.push_back(
        fmt::format("init {} {} {}", worker_, shard, checkpoint.empty() ? "-" : "ckpt"));
  }
  void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
    std::lock_guard<std::mutex> lock(log_->mu);
    for (const auto& r : in.records) {
      log_->data.emplace_back(r.data);
      const std::string d(r.data);
      log_->by_key[std::string(r.partition_key)].push_back(std::atoi(d.c_str() + d.find(':') + 1));
      ++log_->records;
      if (log_->checkpoint_every > 0 && log_->records % log_->checkpoint_every == 0) {
        REQUIRE(cp.Checkpoint(r.sequence_number).ok());
      }
    }
    if (log_->checkpoint_every == 0) {
      absl::Status s = cp.Checkpoint();
      if (!s.ok()) log_->checkpoint_errors[shard_] = std::string(ErrorName(s));
    }
  }
  void ShardEnded(riffle::Checkpointer& cp) override { REQUIRE(cp.Checkpoint().ok()); }
  void Shutdown(riffle::ShutdownReason reason, riffle::Checkpointer& cp) override {
    std::lock_guard<std::mutex> lock(log_->mu);
    // Processors that checkpoint every n-th record do not checkpoint on the way out.
    const absl::Status s = log_->checkpoint_every == 0 ? cp.Checkpoint() : absl::OkStatus();
    log_->events.push_back(
        fmt::format("shutdown {} {} {} {}", worker_, shard_,
                    reason == riffle::ShutdownReason::kRequested ? "requested" : "lost",
                    s.ok() ? "ok" : ErrorName(s)));
  }

 private:
  Log* log_;
  std::string worker_;
  std::string shard_;
};

riffle::RecordProcessorFactory Factory(Log* log, std::string worker) {
  return [log, worker] { return std::make_unique<Recorder>(log, worker); };
}

riffle::ConsumerOptions WithFactory(riffle::ConsumerOptions o, riffle::RecordProcessorFactory f) {
  o.processor_factory = std::move(f);
  return o;
}

void Put(riffle::Stream& s, int from, int to, int keys = 8) {
  for (int i = from; i < to; ++i) {
    REQUIRE(
        s.PutRecord(fmt::format("k{}", i % keys), fmt::format("{}:{}", i % keys, i / keys)).ok());
  }
}

void CheckKeyOrder(Log& log, int keys, int per_key_from, int per_key_to) {
  for (int k = 0; k < keys; ++k) {
    std::vector<int> expected;
    for (int c = per_key_from; c < per_key_to; ++c) expected.push_back(c);
    CHECK(log.by_key[fmt::format("k{}", k)] == expected);
  }
}

int Drain(Consumer& c) {
  int total = 0;
  for (int quiet = 0; quiet < 3;) {
    const int n = c.Poll();
    total += n;
    quiet = n == 0 ? quiet + 1 : 0;
  }
  return total;
}

std::string TempDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "riffle-consumer-XXXXXX").string();
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

}  // namespace

TEST_CASE("a consumer processes every record of every shard once, in key order, in both modes",
          "[consumer]") {
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    ManualClock clock;
    auto stream = MakeStream(&clock);
    riffle::InMemoryCheckpointStore store;
    Log log;
    Put(*stream, 0, 800);
    auto consumer = Consumer::Create({.stream = stream.get(),
                                      .application_name = "billing",
                                      .mode = mode,
                                      .checkpoint_store = &store,
                                      .max_records = 37,
                                      .processor_factory = Factory(&log, "w1")});
    REQUIRE(consumer.ok());
    CHECK(Drain(**consumer) == 800);
    CHECK((*consumer)->OwnedShards().size() == 4);
    Put(*stream, 800, 1600);
    CHECK(Drain(**consumer) == 800);
    CheckKeyOrder(log, 8, 0, 200);
    CHECK(log.checkpoint_errors.empty());
    if (mode == ConsumerMode::kEnhancedFanOut) {
      CHECK(stream->DescribeStreamConsumer("billing").ok());  // registered on demand
      // Past the subscription lifetime the consumer resubscribes from the continuation.
      clock.Advance(absl::Minutes(6));
      CHECK(Drain(**consumer) == 0);
      Put(*stream, 1600, 2400);
      clock.Advance(absl::Seconds(6));
      CHECK(Drain(**consumer) == 800);
      CheckKeyOrder(log, 8, 0, 300);
    }
    (*consumer)->Stop();
    CHECK(log.events.size() == 8);  // 4 inits, 4 graceful shutdowns
  }
}

TEST_CASE("after a restart, processing resumes exactly after the last checkpoint",
          "[consumer][checkpoint]") {
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1);
    const std::string dir = TempDir();
    Log first;
    first.checkpoint_every = 300;  // checkpoints at records 300 and 600 of 700
    {
      riffle::FileCheckpointStore store(dir);
      Put(*stream, 0, 700, 1);
      auto c = *Consumer::Create({.stream = stream.get(),
                                  .application_name = "billing",
                                  .mode = mode,
                                  .checkpoint_store = &store,
                                  .max_records = 64,
                                  .processor_factory = Factory(&first, "w1")});
      CHECK(Drain(*c) == 700);
    }                                 // the consumer and the store are gone; only the file remains
    clock.Advance(absl::Seconds(6));  // the 5-second rule of a fan-out resubscription
    Put(*stream, 700, 800, 1);
    Log second;
    riffle::FileCheckpointStore store(dir);
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .mode = mode,
                                .checkpoint_store = &store,
                                .processor_factory = Factory(&second, "w1")});
    CHECK(Drain(*c) == 200);
    REQUIRE(second.data.size() == 200);
    CHECK(second.data.front() == "0:600");  // record 600 is the first after the checkpoint
    CHECK(second.data.back() == "0:799");
    CHECK(second.events.front() == "init w1 shardId-000000000000 ckpt");
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("workers share the shards by leases and take over a stopped worker's shards",
          "[consumer]") {
  ManualClock clock;
  auto stream = MakeStream(&clock);
  riffle::InMemoryCheckpointStore store;
  riffle::LeaseTable leases(&clock);
  Log log;
  riffle::ConsumerOptions o{.stream = stream.get(),
                            .application_name = "billing",
                            .checkpoint_store = &store,
                            .lease_table = &leases};
  o.worker_id = "a";
  auto a = *Consumer::Create(WithFactory(o, Factory(&log, "a")));
  a->Poll();
  CHECK(a->OwnedShards().size() == 4);
  o.worker_id = "b";
  auto b = *Consumer::Create(WithFactory(o, Factory(&log, "b")));
  b->Poll();  // b counts now, but every lease is held
  CHECK(b->OwnedShards().empty());
  clock.Advance(absl::Seconds(1));
  a->Poll();  // a hands two back
  b->Poll();  // and b takes them
  CHECK(a->OwnedShards().size() == 2);
  CHECK(b->OwnedShards().size() == 2);
  std::set<std::string> owned;
  for (auto* c : {a.get(), b.get()})
    for (auto& s : c->OwnedShards()) owned.insert(s);
  CHECK(owned.size() == 4);

  Put(*stream, 0, 400);
  Drain(*a);
  Drain(*b);
  CHECK(log.data.size() == 400);
  CheckKeyOrder(log, 8, 0, 50);

  b->Stop();  // graceful: b checkpoints and releases
  Put(*stream, 400, 800);
  clock.Advance(absl::Seconds(1));
  Drain(*a);
  CHECK(a->OwnedShards().size() == 4);
  CHECK(log.data.size() == 800);  // b checkpointed every batch: nothing repeated
  CheckKeyOrder(log, 8, 0, 100);
}

TEST_CASE("a worker whose checkpoint finds its lease taken stops processing the shard at once",
          "[consumer]") {
  ManualClock clock;
  ManualClock lease_clock;  // the lease table's own clock: leases expire on it alone
  auto stream = MakeStream(&clock, 1);
  riffle::InMemoryCheckpointStore store;
  riffle::LeaseTable leases(&lease_clock);
  Log log;
  riffle::ConsumerOptions o{.stream = stream.get(),
                            .application_name = "billing",
                            .checkpoint_store = &store,
                            .lease_table = &leases};
  o.worker_id = "a";
  auto a = *Consumer::Create(WithFactory(o, Factory(&log, "a")));
  a->Poll();
  REQUIRE(a->OwnedShards().size() == 1);
  o.worker_id = "b";
  auto b = *Consumer::Create(WithFactory(o, Factory(&log, "b")));
  lease_clock.Advance(absl::Seconds(11));  // a's lease expires; a's own lease pass is not due
  b->Poll();
  REQUIRE(leases.Owner("billing", riffle::FormatShardId(0)) == "b");
  Put(*stream, 0, 10);
  a->Poll();  // delivers one batch, whose checkpoint fails: the shard is dropped there
  CHECK(a->OwnedShards().empty());
  CHECK(log.checkpoint_errors[riffle::FormatShardId(0)] == "ShutdownException");
  CHECK(std::count(log.events.begin(), log.events.end(),
                   "shutdown a shardId-000000000000 lost ShutdownException") == 1);
  const uint64_t seen_by_a = log.records;
  Put(*stream, 10, 20);
  a->Poll();
  CHECK(log.records == seen_by_a);  // a processes nothing more
  Drain(*b);
  CHECK(log.records == seen_by_a + 20);  // b from its checkpoint: all 20
}

TEST_CASE("an expired lease is taken over; the old owner can no longer checkpoint", "[consumer]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 2);
  riffle::InMemoryCheckpointStore store;
  riffle::LeaseTable leases(&clock);
  Log log;
  riffle::ConsumerOptions o{.stream = stream.get(),
                            .application_name = "billing",
                            .checkpoint_store = &store,
                            .lease_table = &leases};
  o.worker_id = "a";
  auto a = *Consumer::Create(WithFactory(o, Factory(&log, "a")));
  a->Poll();
  REQUIRE(a->OwnedShards().size() == 2);
  o.worker_id = "b";
  auto b = *Consumer::Create(WithFactory(o, Factory(&log, "b")));
  clock.Advance(absl::Seconds(11));  // a stops polling (hung): its leases expire
  b->Poll();
  CHECK(b->OwnedShards().size() == 2);
  CHECK(leases.Owner("billing", riffle::FormatShardId(0)) == "b");
  Put(*stream, 0, 100);
  a->Poll();  // a finds out at its next lease pass
  CHECK(a->OwnedShards().empty());
  CHECK(std::count(log.events.begin(), log.events.end(),
                   "shutdown a shardId-000000000000 lost ShutdownException") == 1);
  Drain(*b);
  CHECK(log.data.size() == 100);

  // Stopped instead of polled after its leases were taken: lost too, not handed on.
  o.worker_id = "c";
  auto c = *Consumer::Create(WithFactory(o, Factory(&log, "c")));
  a->Stop();
  b->Stop();
  c->Poll();
  REQUIRE(c->OwnedShards().size() == 2);
  o.worker_id = "d";
  auto d = *Consumer::Create(WithFactory(o, Factory(&log, "d")));
  clock.Advance(absl::Seconds(11));
  d->Poll();
  REQUIRE(d->OwnedShards().size() == 2);
  c->Stop();
  CHECK(std::count(log.events.begin(), log.events.end(),
                   "shutdown c shardId-000000000000 lost ShutdownException") == 1);
  CHECK(leases.Owner("billing", riffle::FormatShardId(0)) == "d");
}

TEST_CASE("a child shard is processed only after its parents reached SHARD_END", "[consumer]") {
  // Synthetic listing (resharding creates such shards): 0 and 1 merged into 3; 2 split
  // into 4 and 5.
  auto shard = [](int id, std::optional<int> parent, std::optional<int> adjacent) {
    riffle::Shard s;
    s.shard_id = riffle::FormatShardId(id);
    if (parent) s.parent_shard_id = riffle::FormatShardId(*parent);
    if (adjacent) s.adjacent_parent_shard_id = riffle::FormatShardId(*adjacent);
    return s;
  };
  std::set<std::string, std::less<>> listed;
  for (int i = 0; i < 6; ++i) listed.insert(riffle::FormatShardId(i));
  std::map<std::string, std::string, std::less<>> ck;
  auto Ready = [](const riffle::Shard& s, const std::set<std::string, std::less<>>& listed,
                  const std::map<std::string, std::string, std::less<>>& ck) {
    return riffle::detail::ParentsFinished(s, listed, [&](const std::string& id) {
      auto it = ck.find(id);
      return it != ck.end() && it->second == riffle::kShardEndCheckpoint;
    });
  };
  const riffle::Shard merged = shard(3, 0, 1);
  const riffle::Shard split = shard(4, 2, std::nullopt);
  CHECK(Ready(shard(0, std::nullopt, std::nullopt), listed, ck));
  CHECK_FALSE(Ready(merged, listed, ck));
  CHECK_FALSE(Ready(split, listed, ck));
  ck[riffle::FormatShardId(0)] = "SHARD_END";
  ck[riffle::FormatShardId(2)] = "4000000000000000000000000000000000000000000000000000000001";
  CHECK_FALSE(Ready(merged, listed, ck));  // one parent of two
  CHECK_FALSE(Ready(split, listed, ck));   // parent not at its end
  ck[riffle::FormatShardId(1)] = "SHARD_END";
  ck[riffle::FormatShardId(2)] = "SHARD_END";
  CHECK(Ready(merged, listed, ck));
  CHECK(Ready(split, listed, ck));
  // A parent that aged out of retention (no longer listed) does not block its child.
  listed.erase(riffle::FormatShardId(1));
  ck.erase(riffle::FormatShardId(1));
  CHECK(Ready(merged, listed, ck));
}

TEST_CASE("a consumer follows real splits and merges, parents before children, in both modes",
          "[consumer][reshard]") {
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    ManualClock clock;
    auto stream = MakeStream(&clock, 2);
    riffle::InMemoryCheckpointStore store;
    Log log;
    auto consumer = Consumer::Create({.stream = stream.get(),
                                      .application_name = "billing",
                                      .mode = mode,
                                      .checkpoint_store = &store,
                                      .max_records = 25,
                                      .processor_factory = Factory(&log, "w1")});
    REQUIRE(consumer.ok());
    Put(*stream, 0, 400);
    CHECK(Drain(**consumer) == 400);
    Put(*stream, 400, 800);  // left unread in the parent across the split
    REQUIRE(
        stream->SplitShard("shardId-000000000000", "85070591730234615865843651857942052864").ok());
    Put(*stream, 800, 1200);
    REQUIRE(stream->MergeShards("shardId-000000000003", "shardId-000000000001").ok());
    Put(*stream, 1200, 1600);
    int processed = 0;
    for (int round = 0; round < 10 && processed < 1200; ++round) {
      clock.Advance(absl::Seconds(6));  // lets fan-out resubscribe at once
      processed += Drain(**consumer);
    }
    CHECK(processed == 1200);
    CheckKeyOrder(log, 8, 0, 200);
    CHECK(log.checkpoint_errors.empty());
    (*consumer)->Stop();
  }
}

TEST_CASE("a shard checkpointed at SHARD_END is not leased again", "[consumer]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 2);
  riffle::InMemoryCheckpointStore store;
  REQUIRE(
      store.PutCheckpoint("billing", riffle::FormatShardId(1), riffle::kShardEndCheckpoint).ok());
  Log log;
  auto c = *Consumer::Create({.stream = stream.get(),
                              .application_name = "billing",
                              .checkpoint_store = &store,
                              .processor_factory = Factory(&log, "w")});
  c->Poll();
  CHECK(c->OwnedShards() == std::vector<std::string>{riffle::FormatShardId(0)});
}

// A processor whose callbacks are the test's lambdas.
class Scripted : public riffle::RecordProcessor {
 public:
  std::function<void(const riffle::ProcessRecordsInput&, riffle::Checkpointer&)> on_records;
  std::function<void(riffle::Checkpointer&)> on_end;
  std::function<void()> on_init;
  std::function<void(riffle::ShutdownReason, riffle::Checkpointer&)> on_shutdown;
  void Initialize(std::string_view, std::string_view) override {
    if (on_init) on_init();
  }
  void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
    if (on_records) on_records(in, cp);
  }
  void ShardEnded(riffle::Checkpointer& cp) override {
    if (on_end) on_end(cp);
  }
  void Shutdown(riffle::ShutdownReason reason, riffle::Checkpointer& cp) override {
    if (on_shutdown) on_shutdown(reason, cp);
  }
};

TEST_CASE("a checkpoint restarted from the initial position is not handed to Initialize",
          "[consumer][checkpoint]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 2);
  Put(*stream, 0, 40);
  riffle::InMemoryCheckpointStore store;
  const auto other = *stream->PutRecord({.partition_key = "x", .explicit_hash_key = "0"});
  REQUIRE(other.shard_id == "shardId-000000000000");
  REQUIRE(store.PutCheckpoint("billing", "shardId-000000000000", "hello").ok());  // no number
  REQUIRE(store  // a number of the other shard
              .PutCheckpoint("billing", "shardId-000000000001", other.sequence_number.ToString())
              .ok());
  Log log;
  auto c = *Consumer::Create(
      {.stream = stream.get(),
       .application_name = "billing",
       .checkpoint_store = &store,
       .invalid_checkpoint = riffle::InvalidCheckpointPolicy::kRestartFromInitialPosition,
       .processor_factory = Factory(&log, "w")});
  CHECK(Drain(*c) == 41);  // both shards from the initial position (TRIM_HORIZON)
  CHECK(c->invalid_checkpoints() == 2);
  std::sort(log.events.begin(), log.events.end());
  CHECK(log.events ==
        std::vector<std::string>{"init w shardId-000000000000 -", "init w shardId-000000000001 -"});
}

TEST_CASE("a checkpoint never moves back", "[consumer][checkpoint]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  Put(*stream, 0, 10, 1);
  riffle::InMemoryCheckpointStore store;
  std::vector<riffle::SequenceNumber> seen;
  std::vector<absl::Status> results;
  auto factory = [&] {
    auto p = std::make_unique<Scripted>();
    p->on_records = [&](const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) {
      const size_t first = seen.size();
      for (const riffle::Record& r : in.records) seen.push_back(r.sequence_number);
      if (first == 0) {  // the first run: records 0..9
        results.push_back(cp.Checkpoint(seen[5]));
        results.push_back(cp.Checkpoint(seen[2]));
        results.push_back(cp.Checkpoint(seen[5], 0));  // a part of record 5 only: before it
        results.push_back(cp.Checkpoint(seen[5]));     // the same again
      } else {
        // After the restart: records 6..9.
        results.push_back(cp.Checkpoint(seen[3]));
        results.push_back(cp.Checkpoint(seen.back()));
      }
    };
    return p;
  };
  {
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .checkpoint_store = &store,
                                .processor_factory = factory});
    CHECK(Drain(*c) == 10);
  }
  REQUIRE(results.size() == 4);
  CHECK(results[0].ok());
  CHECK(ErrorName(results[1]) == riffle::kInvalidArgumentException);
  CHECK(riffle::ErrorMessage(results[1]) ==
        fmt::format("SequenceNumber {} is before the last checkpoint of shard "
                    "shardId-000000000000 ({}): a checkpoint cannot move back.",
                    seen[2].ToString(), seen[5].ToString()));
  CHECK(ErrorName(results[2]) == riffle::kInvalidArgumentException);
  CHECK(results[3].ok());
  CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == seen[5].ToString());

  // A restarted processor starts from the stored checkpoint: the same rule holds.
  auto c = *Consumer::Create({.stream = stream.get(),
                              .application_name = "billing",
                              .checkpoint_store = &store,
                              .processor_factory = factory});
  CHECK(Drain(*c) == 4);
  REQUIRE(results.size() == 6);
  CHECK(ErrorName(results[4]) == riffle::kInvalidArgumentException);
  CHECK(results[5].ok());
  CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == seen.back().ToString());
}

TEST_CASE("checkpointing a closed shard's last record in ShardEnded writes SHARD_END",
          "[consumer][reshard]") {
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1);
    riffle::InMemoryCheckpointStore store;
    Log log;
    std::optional<riffle::SequenceNumber> last;
    int ended = 0;
    auto factory = [&] {
      auto p = std::make_unique<Scripted>();
      p->on_records = [&](const riffle::ProcessRecordsInput& in, riffle::Checkpointer&) {
        for (const riffle::Record& r : in.records) {
          log.data.emplace_back(r.data);
          last = r.sequence_number;
        }
      };
      // The KCL's other way to end a shard: a checkpoint at its last record.
      p->on_end = [&](riffle::Checkpointer& cp) {
        ++ended;
        REQUIRE(last.has_value());
        CHECK(cp.Checkpoint(*last).ok());
      };
      return p;
    };
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .mode = mode,
                                .checkpoint_store = &store,
                                .processor_factory = factory});
    Put(*stream, 0, 50);
    REQUIRE(
        stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
    Put(*stream, 50, 100);
    int processed = 0;
    for (int round = 0; round < 5 && processed < 100; ++round) {
      clock.Advance(absl::Seconds(6));
      processed += Drain(*c);
    }
    CHECK(processed == 100);  // the children's records too
    CHECK(ended == 1);
    CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == riffle::kShardEndCheckpoint);
    c->Stop();
  }
}

TEST_CASE(
    "children of a shard the application read start at their first record after it aged "
    "out",
    "[consumer][reshard]") {
  // A LATEST application reads a shard to its end; the worker stops before checkpointing
  // any record of the children, and the parent ages out of the listing before a restart:
  // the children's records must not be skipped (the KCL leases them at TRIM_HORIZON when
  // their parent ends).
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1);
    riffle::InMemoryCheckpointStore store;
    Log log;
    log.checkpoint_every = 1'000'000;  // SHARD_END only
    const riffle::ConsumerOptions options{.stream = stream.get(),
                                          .application_name = "billing",
                                          .mode = mode,
                                          .initial_position = riffle::InitialPosition::kLatest,
                                          .checkpoint_store = &store,
                                          .processor_factory = Factory(&log, "w1")};
    {
      auto c = *Consumer::Create(options);
      CHECK(Drain(*c) == 0);
      clock.Advance(absl::Seconds(1));
      Put(*stream, 0, 8);
      CHECK(Drain(*c) == 8);
      REQUIRE(stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728")
                  .ok());
      for (int round = 0; round < 3; ++round) {
        clock.Advance(absl::Seconds(6));
        Drain(*c);
      }
      CHECK(**store.GetCheckpoint("billing", riffle::FormatShardId(0)) ==
            riffle::kShardEndCheckpoint);
      clock.Advance(absl::Hours(23));
      Put(*stream, 8, 16);  // in the children; the worker goes before it reads them
    }
    clock.Advance(absl::Hours(2));
    REQUIRE(stream->ListShards()->size() == 2);  // the parent aged out
    Log second;
    auto c = *Consumer::Create(WithFactory(options, Factory(&second, "w2")));
    int processed = 0;
    for (int round = 0; round < 3; ++round) {
      clock.Advance(absl::Seconds(6));
      processed += Drain(*c);
    }
    CHECK(processed == 8);
    CheckKeyOrder(second, 8, 1, 2);
  }
}

TEST_CASE("a new application at LATEST starts at the open shards of a resharded stream",
          "[consumer][reshard]") {
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1);
    Put(*stream, 0, 40);
    REQUIRE(
        stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
    Put(*stream, 40, 80);  // in the children, before the application starts
    riffle::InMemoryCheckpointStore store;
    Log log;
    {
      auto c = *Consumer::Create({.stream = stream.get(),
                                  .application_name = "billing",
                                  .mode = mode,
                                  .initial_position = riffle::InitialPosition::kLatest,
                                  .checkpoint_store = &store,
                                  .processor_factory = Factory(&log, "w1")});
      CHECK(Drain(*c) == 0);
      // The closed parent is not processed: only the children were leased.
      CHECK(c->OwnedShards() ==
            std::vector<std::string>{riffle::FormatShardId(1), riffle::FormatShardId(2)});
      CHECK(**store.GetCheckpoint("billing", riffle::FormatShardId(0)) ==
            riffle::kShardEndCheckpoint);
      CHECK(**store.GetCheckpoint("billing", riffle::FormatShardId(1)) ==
            riffle::kLatestCheckpoint);
      clock.Advance(absl::Seconds(1));
      Put(*stream, 80, 120);
      CHECK(Drain(*c) == 40);
      CheckKeyOrder(log, 8, 10, 15);  // records 80..119: counters 10..14 of every key
      c->Stop();
    }
    CHECK(std::none_of(log.events.begin(), log.events.end(), [](const std::string& e) {
      return e.find(riffle::FormatShardId(0)) != std::string::npos;
    }));
    // A restart resumes after the checkpoints (no record of 0..79 is delivered).
    clock.Advance(absl::Seconds(6));
    Put(*stream, 120, 160);
    Log second;
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .mode = mode,
                                .initial_position = riffle::InitialPosition::kLatest,
                                .checkpoint_store = &store,
                                .processor_factory = Factory(&second, "w1")});
    CHECK(Drain(*c) == 40);
    CheckKeyOrder(second, 8, 15, 20);
  }
}

namespace {

// Worker "w1" of application "billing", starting at LATEST.
riffle::ConsumerOptions BillingAtLatest(riffle::Stream& stream, riffle::CheckpointStore& store,
                                        Log* log, ConsumerMode mode = ConsumerMode::kPolling) {
  return riffle::ConsumerOptions{.stream = &stream,
                                 .application_name = "billing",
                                 .mode = mode,
                                 .initial_position = riffle::InitialPosition::kLatest,
                                 .checkpoint_store = &store,
                                 .processor_factory = Factory(log, "w1")};
}

// A LATEST application processes 8 records of shard 0 and stops; while it is down, shard 0
// splits, its children get 16 records, and shard 0 ages out of the listing (closed more
// than the 24 h retention ago).
void ProcessThenAgeOutParent(riffle::Stream& stream, ManualClock& clock,
                             const std::function<riffle::ConsumerOptions(Log*)>& options) {
  Log first;
  {
    auto c = *Consumer::Create(options(&first));
    CHECK(Drain(*c) == 0);
    clock.Advance(absl::Seconds(1));
    Put(stream, 0, 8);
    CHECK(Drain(*c) == 8);  // checkpointed in shard 0, which stays open while it runs
    c->Stop();
  }
  REQUIRE(
      stream.SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
  clock.Advance(absl::Hours(23));
  Put(stream, 8, 24);
  clock.Advance(absl::Hours(2));
  auto listed = *stream.ListShards();
  REQUIRE(std::none_of(listed.begin(), listed.end(), [](const riffle::Shard& s) {
    return s.shard_id == riffle::FormatShardId(0);
  }));
}

}  // namespace

TEST_CASE(
    "an application whose checkpointed shards aged out is not new: children of what it "
    "read start at their first records",
    "[consumer][reshard]") {
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    ManualClock clock;
    auto stream = MakeStream(&clock, 1);
    riffle::InMemoryCheckpointStore store;
    auto options = [&](Log* log) { return BillingAtLatest(*stream, store, log, mode); };
    ProcessThenAgeOutParent(*stream, clock, options);
    // The store still holds shard 0's checkpoint: the application read the children's parent,
    // so the children start at their first records, not at LATEST.
    Log second;
    auto c = *Consumer::Create(options(&second));
    CHECK(Drain(*c) == 16);
    CheckKeyOrder(second, 8, 1, 3);
  }
}

namespace {

// A checkpoint store that runs `after_read` once, right after a read of `shard` returned:
// what another worker does between a worker's read and its next step, made deterministic.
class InterleavingStore : public riffle::CheckpointStore {
 public:
  absl::StatusOr<std::optional<std::string>> GetCheckpoint(std::string_view application,
                                                           std::string_view shard_id) override {
    if (fail_reads != nullptr && *fail_reads > 0 && shard_id == shard) {
      --*fail_reads;
      return absl::UnavailableError("the store is unreachable");
    }
    auto value = inner.GetCheckpoint(application, shard_id);
    if (after_read && shard_id == shard) std::exchange(after_read, nullptr)();
    return value;
  }
  absl::Status PutCheckpoint(std::string_view application, std::string_view shard_id,
                             std::string_view checkpoint) override {
    return inner.PutCheckpoint(application, shard_id, checkpoint);
  }
  riffle::InMemoryCheckpointStore inner;
  std::string shard;
  std::function<void()> after_read;
  int* fail_reads = nullptr;  // while above 0, reads of `shard` fail (each counts one down)
};

}  // namespace

TEST_CASE("a parent's checkpoint that cannot be read holds its children back, reported",
          "[consumer][reshard]") {
  // Its children used to start at LATEST, skipping what they held, with nothing reported.
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  InterleavingStore store;  // reads of shard 0 fail while `failing` is above 0
  store.shard = riffle::FormatShardId(0);
  int failing = 0;
  store.fail_reads = &failing;
  auto options = [&](Log* log) { return BillingAtLatest(*stream, store, log); };
  ProcessThenAgeOutParent(*stream, clock, options);
  Log second;
  auto c = *Consumer::Create(options(&second));
  failing = 2;  // the first pass cannot read shard 0's checkpoint (one read per child)
  CHECK(c->Poll() == 0);
  CHECK(c->last_error().code() == absl::StatusCode::kUnavailable);
  CHECK(c->OwnedShards().empty());
  clock.Advance(absl::Seconds(2));  // the next pass reads it
  CHECK(Drain(*c) == 16);
  CheckKeyOrder(second, 8, 1, 3);
}

TEST_CASE(
    "a worker taking over a lease resumes from the checkpoint written before the "
    "lease came back, never an older one",
    "[consumer][checkpoint]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  riffle::LeaseTable leases(&clock);
  InterleavingStore store;
  store.shard = riffle::FormatShardId(0);
  auto options = [&](Log* log, const char* worker) {
    return riffle::ConsumerOptions{.stream = stream.get(),
                                   .application_name = "billing",
                                   .worker_id = worker,
                                   .checkpoint_store = &store,
                                   .lease_table = &leases,
                                   .processor_factory = Factory(log, worker)};
  };
  SECTION("the previous holder checkpointed further, then stopped") {
    Log log;
    log.checkpoint_every = 1000;  // w1 checkpoints only in Shutdown (see Recorder)
    Put(*stream, 0, 8);
    auto w1 = *Consumer::Create(options(&log, "w1"));
    CHECK(Drain(*w1) == 8);
    auto w2 = *Consumer::Create(options(&log, "w2"));
    // w2's pass reads shard 0's checkpoint (none); meanwhile w1 stops, checkpointing all 8
    // it processed on its way out, and hands the lease back.
    log.checkpoint_every = 0;
    store.after_read = [&] { w1->Stop(); };
    CHECK(Drain(*w2) == 0);  // nothing is processed twice
    Put(*stream, 8, 16);
    CHECK(Drain(*w2) == 8);
    CheckKeyOrder(log, 8, 0, 2);
  }
  SECTION("the previous holder finished the shard") {
    Log log;
    Put(*stream, 0, 8);
    auto w1 = *Consumer::Create(options(&log, "w1"));
    CHECK(Drain(*w1) == 8);
    auto w2 = *Consumer::Create(options(&log, "w2"));
    // w1 reaches the end of the closed shard and checkpoints SHARD_END after w2 read the old
    // checkpoint: w2 must not read the finished shard again.
    REQUIRE(
        stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
    store.after_read = [&] {
      Drain(*w1);
      w1->Stop();
    };
    Drain(*w2);
    CHECK(**store.inner.GetCheckpoint("billing", riffle::FormatShardId(0)) ==
          riffle::kShardEndCheckpoint);
    CHECK(log.records == 8);
    CheckKeyOrder(log, 8, 0, 1);
  }
}

TEST_CASE("a new application at AT_TIMESTAMP starts at the shards open at the timestamp",
          "[consumer][reshard]") {
  ManualClock clock(absl::FromUnixSeconds(1'700'000'000));
  auto stream = MakeStream(&clock, 1);
  Put(*stream, 0, 40);
  clock.Advance(absl::Minutes(1));
  const absl::Time before_split = clock.Now();
  clock.Advance(absl::Minutes(1));
  REQUIRE(
      stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
  Put(*stream, 40, 80);
  clock.Advance(absl::Minutes(1));
  const absl::Time after_split = clock.Now();
  clock.Advance(absl::Minutes(1));
  Put(*stream, 80, 120);
  // At a time after the split: the parent is skipped, the children are read from it.
  {
    riffle::InMemoryCheckpointStore store;
    Log log;
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "late",
                                .initial_position = riffle::InitialPosition::kAtTimestamp,
                                .initial_timestamp = after_split,
                                .checkpoint_store = &store,
                                .processor_factory = Factory(&log, "w1")});
    CHECK(Drain(*c) == 40);
    CheckKeyOrder(log, 8, 10, 15);
    CHECK(**store.GetCheckpoint("late", riffle::FormatShardId(0)) == riffle::kShardEndCheckpoint);
  }
  // At a time before the split, with no record after it in the parent: the parent is
  // processed (it was open then), then its children from their first record.
  {
    riffle::InMemoryCheckpointStore store;
    Log log;
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "early",
                                .initial_position = riffle::InitialPosition::kAtTimestamp,
                                .initial_timestamp = before_split,
                                .checkpoint_store = &store,
                                .processor_factory = Factory(&log, "w1")});
    int processed = 0;
    for (int round = 0; round < 3; ++round) processed += Drain(*c);
    CHECK(processed == 80);
    CheckKeyOrder(log, 8, 5, 15);
    CHECK(**store.GetCheckpoint("early", riffle::FormatShardId(0)) == riffle::kShardEndCheckpoint);
  }
}

TEST_CASE("a processor that throws is reported and the consumer goes on", "[consumer]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  Put(*stream, 0, 10, 1);
  riffle::InMemoryCheckpointStore store;
  int made = 0;
  int batches = 0;
  std::vector<std::string> data;
  std::string last;
  auto factory = [&] {
    auto p = std::make_unique<Scripted>();
    if (made++ == 0) {  // the first processor fails at once
      p->on_init = [] { throw std::runtime_error("no database"); };
    }
    p->on_records = [&](const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) {
      for (const riffle::Record& r : in.records) {
        data.emplace_back(r.data);
        last = r.sequence_number.ToString();
      }
      if (batches++ == 0) throw std::runtime_error("boom");
      REQUIRE(cp.Checkpoint().ok());
    };
    return p;
  };
  auto c = *Consumer::Create({.stream = stream.get(),
                              .application_name = "billing",
                              .checkpoint_store = &store,
                              .max_records = 4,
                              .processor_factory = factory});
  CHECK(c->Poll() == 0);
  CHECK(c->OwnedShards().empty());
  CHECK(riffle::IsInternalFailure(c->last_error()));
  CHECK(riffle::ErrorMessage(c->last_error()) ==
        "RecordProcessor::Initialize of shard shardId-000000000000 threw: no database");
  clock.Advance(absl::Seconds(1));  // the next lease pass: a new processor
  CHECK(c->Poll() == 4);
  CHECK(riffle::ErrorMessage(c->last_error()) ==
        "RecordProcessor::ProcessRecords of shard shardId-000000000000 threw: boom");
  CHECK(Drain(*c) == 6);  // the batch that threw counts as delivered
  CHECK(data.size() == 10);
  CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == last);
}

TEST_CASE("a checkpoint names a record delivered to the processor, of its stream and shard",
          "[consumer][checkpoint][errors]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  Put(*stream, 0, 10, 1);
  riffle::InMemoryCheckpointStore store;
  std::vector<riffle::SequenceNumber> seen;
  std::vector<absl::Status> results;
  std::vector<riffle::SequenceNumber> forged;
  auto factory = [&] {
    auto p = std::make_unique<Scripted>();
    p->on_records = [&](const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) {
      const size_t first = seen.size();
      for (const riffle::Record& r : in.records) seen.push_back(r.sequence_number);
      if (first == 0) {  // records 0..4
        // Inside record 0, before record 1.
        riffle::SequenceNumber between = seen[0];
        ++between.position;
        riffle::SequenceNumber other_stream = seen[0];
        ++other_stream.stream_tag;
        riffle::SequenceNumber other_shard = seen[0];
        other_shard.shard_index = 1;
        // Where record 5 will be: not delivered yet.
        riffle::SequenceNumber next = seen[4];
        ++next.record_index;
        forged = {between, other_stream, other_shard, next};
        for (const riffle::SequenceNumber& n : forged) results.push_back(cp.Checkpoint(n));
        results.push_back(cp.Checkpoint(between, 0));
        results.push_back(cp.Checkpoint(seen[2]));
      } else if (first == 5) {  // records 5..9: earlier batches are checked with the stream
        riffle::SequenceNumber between = seen[3];
        ++between.position;
        forged.push_back(between);
        results.push_back(cp.Checkpoint(between));
        results.push_back(cp.Checkpoint(seen[3]));
        results.push_back(cp.Checkpoint(seen[9]));
      }
    };
    return p;
  };
  {
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .checkpoint_store = &store,
                                .max_records = 5,
                                .processor_factory = factory});
    CHECK(Drain(*c) == 10);
  }
  REQUIRE(results.size() == 9);
  auto message = [&](const riffle::SequenceNumber& n, std::string_view reason) {
    return fmt::format(
        "SequenceNumber {} is not a record of shard shardId-000000000000 delivered to this "
        "processor: {}.",
        n.ToString(), reason);
  };
  for (int i : {0, 1, 2, 3, 4, 6}) {
    CHECK(ErrorName(results[i]) == riffle::kInvalidArgumentException);
  }
  CHECK(riffle::ErrorMessage(results[0]) ==
        message(forged[0], "the stream has no record with this number"));
  CHECK(riffle::ErrorMessage(results[1]) == message(forged[1], "it is of another stream"));
  CHECK(riffle::ErrorMessage(results[2]) == message(forged[2], "it is of shardId-000000000001"));
  CHECK(riffle::ErrorMessage(results[3]) ==
        message(forged[3], fmt::format("the last record delivered is {}", seen[4].ToString())));
  CHECK(riffle::ErrorMessage(results[4]) ==
        fmt::format("SequenceNumber {} (SubSequenceNumber 0) is not a record of shard "
                    "shardId-000000000000 delivered to this processor: the stream has no record "
                    "with this number.",
                    forged[0].ToString()));
  CHECK(results[5].ok());
  CHECK(riffle::ErrorMessage(results[6]) ==
        message(forged[4], "the stream has no record with this number"));
  CHECK(results[7].ok());
  CHECK(results[8].ok());
  CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == seen[9].ToString());

  // What was accepted is where a restart resumes.
  Put(*stream, 10, 13, 1);
  auto c = *Consumer::Create({.stream = stream.get(),
                              .application_name = "billing",
                              .checkpoint_store = &store,
                              .processor_factory = factory});
  CHECK(Drain(*c) == 3);
  CHECK(c->last_error().ok());
}

TEST_CASE("a checkpoint at a record retention has trimmed since is accepted",
          "[consumer][checkpoint]") {
  ManualClock clock;
  riffle::StreamOptions o;
  o.stream_name = "orders";
  o.ring_capacity_bytes = 16 << 10;
  o.max_record_size_bytes = 1024;
  o.clock = &clock;
  auto stream = *riffle::Stream::Create(o);
  const std::string data(900, 'x');
  for (int i = 0; i < 5; ++i) REQUIRE(stream->PutRecord("k", data).ok());
  riffle::InMemoryCheckpointStore store;
  std::vector<riffle::SequenceNumber> seen;
  uint64_t missed = 0;
  std::optional<absl::Status> result;
  auto factory = [&] {
    auto p = std::make_unique<Scripted>();
    p->on_records = [&](const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) {
      missed += in.missed_records;
      const bool later = !seen.empty();
      for (const riffle::Record& r : in.records) seen.push_back(r.sequence_number);
      if (later && !result) result = cp.Checkpoint(seen[2]);
    };
    return p;
  };
  auto c = *Consumer::Create({.stream = stream.get(),
                              .application_name = "billing",
                              .checkpoint_store = &store,
                              .processor_factory = factory});
  CHECK(Drain(*c) == 5);
  for (int i = 0; i < 40; ++i) REQUIRE(stream->PutRecord("k", data).ok());  // laps the ring
  CHECK(Drain(*c) > 0);
  REQUIRE(missed > 0);  // records 0..4 are gone from the ring
  REQUIRE(result.has_value());
  CHECK(result->ok());
  CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == seen[2].ToString());
}

TEST_CASE(
    "a shard that ages out before it is read to its end counts the rest as missed, both modes",
    "[consumer]") {
  for (ConsumerMode mode : {ConsumerMode::kPolling, ConsumerMode::kEnhancedFanOut}) {
    INFO((mode == ConsumerMode::kPolling ? "polling" : "fan-out"));
    ManualClock clock;
    auto stream = MakeStream(&clock, 1);
    Put(*stream, 0, 5, 1);
    riffle::InMemoryCheckpointStore store;
    uint64_t records = 0;
    uint64_t missed = 0;
    auto factory = [&] {
      auto p = std::make_unique<Scripted>();
      p->on_records = [&](const riffle::ProcessRecordsInput& in, riffle::Checkpointer&) {
        records += in.records.size();
        missed += in.missed_records;
      };
      return p;
    };
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .mode = mode,
                                .checkpoint_store = &store,
                                .max_records = 2,
                                .processor_factory = factory});
    for (int i = 0; i < 10 && records == 0; ++i) (void)c->Poll();
    REQUIRE(records == 2);
    REQUIRE(
        stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
    // Past the retention period (and a subscription's lifetime): the parent is gone.
    clock.Advance(absl::Hours(24) + absl::Minutes(1));
    (void)Drain(*c);
    CHECK(records + missed == 5);
    CHECK(missed == 3);
  }
}

TEST_CASE("the checkpoints of parents that aged out go once their children have theirs",
          "[consumer][checkpoint][memory]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  const std::string dir = TempDir();
  riffle::FileCheckpointStore store(dir);
  Log log;
  auto c = *Consumer::Create({.stream = stream.get(),
                              .application_name = "billing",
                              .checkpoint_store = &store,
                              .processor_factory = Factory(&log, "w")});
  auto lines = [&] {
    std::ifstream in(store.PathFor("billing"));
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  };
  int put = 0;
  size_t most = 0;
  for (int round = 0; round < 60; ++round) {
    REQUIRE(stream->UpdateShardCount(round % 2 == 0 ? 2 : 1).ok());
    Put(*stream, put, put + 8);
    put += 8;
    Drain(*c);
    clock.Advance(absl::Hours(9));  // closed shards age out a day after they closed
    Drain(*c);
    most = std::max<size_t>(most, static_cast<size_t>(lines()));
  }
  CHECK(log.records == static_cast<uint64_t>(put));
  INFO("shards created " << stream->Stats().shards_created << ", at most " << most << " lines");
  CHECK(stream->Stats().shards_created > 60);
  CHECK(most < 15);  // the shards of the last day or so, not every shard ever made
  std::filesystem::remove_all(dir);
}

TEST_CASE("a cursor started after a checkpoint on a shard that aged out counts the rest missed",
          "[consumer][checkpoint]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  std::vector<riffle::SequenceNumber> numbers;
  for (int i = 0; i < 5; ++i) numbers.push_back(stream->PutRecord("k", "v")->sequence_number);
  REQUIRE(
      stream->SplitShard("shardId-000000000000", "170141183460469231731687303715884105728").ok());
  clock.Advance(absl::Hours(25));
  for (int i = 0; i < 3; ++i) (void)stream->ListShards();  // the expired parent is swept
  riffle::detail::ShardCursor after("shardId-000000000000");
  REQUIRE(after.StartAfter(*stream, numbers[1]).ok());
  CHECK(after.gone());
  CHECK(after.missed() == 3);  // records 2, 3 and 4 were never read
  riffle::detail::ShardCursor from_first("shardId-000000000000");
  REQUIRE(from_first.Start(*stream, {riffle::ShardIteratorType::kTrimHorizon}, true).ok());
  CHECK(from_first.missed() == 5);
}

TEST_CASE("a processor factory that returns nullptr or throws is reported; the lease is released",
          "[consumer][errors]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  Put(*stream, 0, 5, 1);
  riffle::InMemoryCheckpointStore store;
  riffle::LeaseTable leases(&clock);
  riffle::ConsumerOptions o{.stream = stream.get(),
                            .application_name = "billing",
                            .checkpoint_store = &store,
                            .lease_table = &leases};
  auto refused = Consumer::Create(o);  // no factory at all
  REQUIRE(!refused.ok());
  CHECK(ErrorName(refused.status()) == riffle::kInvalidArgumentException);
  CHECK(riffle::ErrorMessage(refused.status()) == "ConsumerOptions.processor_factory is required.");

  int made = 0;
  Log log;
  auto c = *Consumer::Create(WithFactory(o, [&]() -> std::unique_ptr<riffle::RecordProcessor> {
    switch (made++) {
      case 0:
        return nullptr;
      case 1:
        throw std::runtime_error("out of handles");
      default:
        return std::make_unique<Recorder>(&log, "w");
    }
  }));
  CHECK(c->Poll() == 0);
  CHECK(c->OwnedShards().empty());
  CHECK(ErrorName(c->last_error()) == riffle::kInvalidArgumentException);
  CHECK(riffle::ErrorMessage(c->last_error()) ==
        "ConsumerOptions.processor_factory returned nullptr for shard shardId-000000000000; it "
        "must return a RecordProcessor.");
  CHECK(!leases.Owner("billing", "shardId-000000000000").has_value());

  clock.Advance(absl::Seconds(1));  // the next lease pass tries again
  CHECK(c->Poll() == 0);
  CHECK(riffle::IsInternalFailure(c->last_error()));
  CHECK(riffle::ErrorMessage(c->last_error()) ==
        "ConsumerOptions.processor_factory of shard shardId-000000000000 threw: out of handles");
  CHECK(!leases.Owner("billing", "shardId-000000000000").has_value());

  clock.Advance(absl::Seconds(1));
  CHECK(Drain(*c) == 5);
  CHECK(c->last_error().ok());
  CHECK(made == 3);
}

TEST_CASE("consumer durations outside their range are refused at Create", "[consumer][errors]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  riffle::InMemoryCheckpointStore store;
  Log log;
  const riffle::ConsumerOptions base{.stream = stream.get(),
                                     .application_name = "billing",
                                     .checkpoint_store = &store,
                                     .processor_factory = Factory(&log, "w")};
  const absl::Duration year = absl::Hours(24 * 365);
  auto error = [&](auto&& change) {
    riffle::ConsumerOptions o = base;
    change(o);
    absl::StatusOr<std::unique_ptr<Consumer>> c = Consumer::Create(o);
    REQUIRE(!c.ok());
    CHECK(ErrorName(c.status()) == riffle::kInvalidArgumentException);
    return std::string(riffle::ErrorMessage(c.status()));
  };
  using O = riffle::ConsumerOptions;
  CHECK(error([](O& o) { o.lease_duration = absl::InfiniteDuration(); }) ==
        "LeaseDuration is inf; it must be positive and at most 365 days.");
  CHECK(error([&](O& o) { o.lease_duration = year + absl::Milliseconds(1); }) ==
        "LeaseDuration is 8760h0.001s; it must be positive and at most 365 days.");
  CHECK(error([](O& o) { o.lease_duration = absl::ZeroDuration(); }) ==
        "LeaseDuration is 0; it must be positive and at most 365 days.");
  CHECK(error([](O& o) { o.lease_refresh_interval = absl::InfiniteDuration(); }) ==
        "LeaseRefreshInterval is inf; it must be between 0 and 365 days.");
  CHECK(error([](O& o) { o.lease_refresh_interval = -absl::Seconds(5); }) ==
        "LeaseRefreshInterval is -5s; it must be between 0 and 365 days.");
  CHECK(error([](O& o) { o.idle_sleep = absl::InfiniteDuration(); }) ==
        "IdleSleep is inf; it must be between 0 and 365 days.");
  CHECK(error([](O& o) { o.idle_sleep = -absl::Seconds(1); }) ==
        "IdleSleep is -1s; it must be between 0 and 365 days.");
  // A lease renewed less often than it lasts is taken by another worker while this one
  // still processes the shard.
  CHECK(error([](O& o) {
          o.lease_duration = absl::Seconds(2);
          o.lease_refresh_interval = absl::Seconds(2);
        }) == "LeaseRefreshInterval is 2s; it must be less than LeaseDuration (2s).");

  // The limits themselves work, on a clock at the far end of its range too.
  Put(*stream, 0, 5, 1);
  riffle::ConsumerOptions o = base;
  o.lease_duration = year;
  o.lease_refresh_interval = year - absl::Milliseconds(1);
  o.idle_sleep = absl::ZeroDuration();
  auto c = *Consumer::Create(o);
  CHECK(Drain(*c) == 5);
  clock.Set(absl::InfiniteFuture());
  CHECK(c->Poll() == 0);
  CHECK(c->OwnedShards() == std::vector<std::string>{"shardId-000000000000"});

  // LeaseTable takes any duration: an infinite lease never expires.
  riffle::LeaseTable leases(&clock);
  clock.Set(absl::FromUnixSeconds(1767225600));
  CHECK(leases.TryAcquire("billing", "shardId-000000000000", "a", absl::InfiniteDuration()));
  leases.Heartbeat("billing", "a", absl::InfiniteDuration());
  clock.Advance(absl::Hours(24 * 10000));
  CHECK(!leases.TryAcquire("billing", "shardId-000000000000", "b", absl::Seconds(10)));
  CHECK(leases.LiveWorkers("billing") == 1);
}

TEST_CASE("Stop() from a processor's callback takes effect when the callback returns",
          "[consumer]") {
  SECTION("host-driven") {
    ManualClock clock;
    auto stream = MakeStream(&clock, 2);
    Put(*stream, 0, 20, 2);
    riffle::InMemoryCheckpointStore store;
    riffle::LeaseTable leases(&clock);
    Consumer* self = nullptr;
    std::vector<std::string> events;
    std::vector<std::string> data;
    auto factory = [&] {
      auto p = std::make_unique<Scripted>();
      p->on_records = [&](const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) {
        self->Stop();
        self->Stop();  // idempotent
        // The batch and the checkpointer stay valid until the callback returns.
        for (const riffle::Record& r : in.records) data.emplace_back(r.data);
        events.push_back(fmt::format("checkpoint {}", cp.Checkpoint().ok() ? "ok" : "failed"));
      };
      p->on_shutdown = [&](riffle::ShutdownReason reason, riffle::Checkpointer&) {
        self->Stop();  // already stopping: nothing more
        events.push_back(reason == riffle::ShutdownReason::kRequested ? "shutdown requested"
                                                                      : "shutdown lost");
      };
      return p;
    };
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .checkpoint_store = &store,
                                .lease_table = &leases,
                                .processor_factory = factory});
    self = c.get();
    const size_t first = c->Poll();
    CHECK(first > 0);
    CHECK(data.size() == first);  // one shard's batch: no processor was called after it
    CHECK(events ==
          std::vector<std::string>{"checkpoint ok", "shutdown requested", "shutdown requested"});
    CHECK(c->OwnedShards().empty());
    CHECK(leases.Owners("billing").empty());
    CHECK(c->Poll() == 0);
    CHECK(ErrorName(c->Start()) == riffle::kResourceInUseException);
    CHECK(c->last_error().ok());
  }
  SECTION("on the consumer's own thread") {
    auto stream = MakeStream(nullptr, 2);
    Put(*stream, 0, 20, 2);
    riffle::InMemoryCheckpointStore store;
    riffle::LeaseTable leases;
    Consumer* self = nullptr;
    std::atomic<int> batches{0};
    std::atomic<int> shutdowns{0};
    auto factory = [&] {
      auto p = std::make_unique<Scripted>();
      p->on_records = [&](const riffle::ProcessRecordsInput&, riffle::Checkpointer&) {
        ++batches;
        self->Stop();
      };
      p->on_shutdown = [&](riffle::ShutdownReason, riffle::Checkpointer&) { ++shutdowns; };
      return p;
    };
    auto c = *Consumer::Create({.stream = stream.get(),
                                .application_name = "billing",
                                .checkpoint_store = &store,
                                .lease_table = &leases,
                                .processor_factory = factory});
    self = c.get();
    REQUIRE(c->Start().ok());
    for (int i = 0; i < 10000 && shutdowns.load() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(shutdowns.load() == 2);
    CHECK(leases.Owners("billing").empty());
    Put(*stream, 20, 40, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(batches.load() == 1);  // nothing delivered after the stop
    c->Stop();                   // ends the thread
    CHECK(shutdowns.load() == 2);
  }
}

TEST_CASE("the polling read budget throttles GetRecords per shard on the stream's clock",
          "[consumer][errors]") {
  ManualClock clock;
  riffle::StreamOptions o;
  o.stream_name = "orders";
  o.max_record_size_bytes = 1024;
  o.ring_capacity_bytes = 1 << 20;
  o.clock = &clock;
  o.read_budget = riffle::StreamOptions::ReadBudget{5, 4096};
  auto stream = *riffle::Stream::Create(o);
  riffle::GetShardIteratorRequest r;
  const std::string id = riffle::FormatShardId(0);
  r.shard_id = id;
  auto it = *stream->GetShardIterator(r);
  riffle::GetRecordsResult result;
  for (int i = 0; i < 5; ++i) REQUIRE(stream->GetRecords(it, result).ok());
  absl::Status s = stream->GetRecords(it, result);
  CHECK(ErrorName(s) == "ProvisionedThroughputExceededException");
  CHECK(riffle::ErrorMessage(s) ==
        "Rate exceeded for shard shardId-000000000000 in stream orders under account "
        "000000000000.");
  clock.Advance(absl::Seconds(1));
  REQUIRE(stream->GetRecords(it, result).ok());
  // Bytes: 8 KiB read at once owes two seconds of budget; after one it still throttles.
  for (int i = 0; i < 8; ++i) REQUIRE(stream->PutRecord("big", "0:" + std::string(1019, 'x')).ok());
  clock.Advance(absl::Seconds(1));
  REQUIRE(stream->GetRecords(it, result).ok());
  CHECK(result.records.size() == 8);
  clock.Advance(absl::Seconds(1));
  CHECK(ErrorName(stream->GetRecords(it, result)) == "ProvisionedThroughputExceededException");
  clock.Advance(absl::Milliseconds(1001));
  CHECK(stream->GetRecords(it, result).ok());

  // A polling consumer under the budget backs off and still gets everything.
  riffle::InMemoryCheckpointStore store;
  Log log;
  auto c = *Consumer::Create({.stream = stream.get(),
                              .application_name = "billing",
                              .checkpoint_store = &store,
                              .max_records = 2,
                              .processor_factory = Factory(&log, "w")});
  Put(*stream, 0, 40, 1);
  for (int i = 0; i < 400 && log.data.size() < 48; ++i) {
    c->Poll();
    clock.Advance(absl::Milliseconds(100));
  }
  CHECK(log.data.size() == 48);  // the 8 large records, then the 40
}

TEST_CASE("two threaded workers share a 4-shard stream under 2 producers without loss",
          "[consumer][stress]") {
  // Fan-out: both workers run throughout (exactly once). Polling: one stops halfway and
  // the other takes its shards over (at least once, nothing skipped).
  for (ConsumerMode mode : {ConsumerMode::kEnhancedFanOut, ConsumerMode::kPolling}) {
    auto stream = MakeStream(nullptr, 4);
    riffle::InMemoryCheckpointStore store;
    riffle::LeaseTable leases;
    Log log;
    std::vector<std::unique_ptr<Consumer>> workers;
    for (const char* w : {"a", "b"}) {
      riffle::ConsumerOptions o{.stream = stream.get(),
                                .application_name = "billing",
                                .mode = mode,
                                .checkpoint_store = &store,
                                .lease_table = &leases,
                                .lease_refresh_interval = absl::Milliseconds(5)};
      o.worker_id = w;
      workers.push_back(*Consumer::Create(WithFactory(o, Factory(&log, w))));
    }
    for (auto& w : workers) REQUIRE(w->Start().ok());
    const int per_producer = 20000 / riffle_test::StressDivisor();
    std::atomic<int> progress{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < 2; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < per_producer; ++i) {
          if (!stream->PutRecord(fmt::format("p{}", p), fmt::format("{}:{}", p, i)).ok()) {
            FAIL_CHECK("put failed");
          }
          progress.fetch_add(1);
        }
      });
    }
    if (mode == ConsumerMode::kPolling) {
      while (progress.load() < per_producer) std::this_thread::yield();
      workers[1]->Stop();
    }
    for (auto& t : producers) t.join();
    auto complete = [&] {
      std::lock_guard<std::mutex> lock(log.mu);
      for (int p = 0; p < 2; ++p) {
        const auto& seen = log.by_key[fmt::format("p{}", p)];
        if (std::set<int>(seen.begin(), seen.end()).size() <
            static_cast<std::size_t>(per_producer)) {
          return false;
        }
      }
      return true;
    };
    for (int i = 0; i < 20000 && !complete(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (auto& w : workers) w->Stop();
    for (int p = 0; p < 2; ++p) {
      const auto& seen = log.by_key[fmt::format("p{}", p)];
      std::set<int> distinct(seen.begin(), seen.end());
      CHECK(distinct.size() == static_cast<std::size_t>(per_producer));
      if (mode == ConsumerMode::kEnhancedFanOut) {
        CHECK(seen.size() == static_cast<std::size_t>(per_producer));  // exactly once
        CHECK(std::is_sorted(seen.begin(), seen.end()));
      }
    }
  }
}
