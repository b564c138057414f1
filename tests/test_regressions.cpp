// Defects found by attacking riffle, each pinned by a test that failed before its fix.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/consumer.h"
#include "riffle/detail/frame.h"
#include "riffle/lineage_reader.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"
#include "support/alloc_counter.h"

namespace {

riffle::StreamOptions Options(riffle::Clock* clock, int shards = 1, uint64_t ring = 64 << 10) {
  riffle::StreamOptions o;
  o.stream_name = "attacked";
  o.shard_count = shards;
  o.ring_capacity_bytes = ring;
  o.max_record_size_bytes = 1024;
  o.clock = clock;
  return o;
}

// Keys that route to the lower and the upper half of the hash key space.
std::string KeyInHalf(bool upper) {
  for (int i = 0;; ++i) {
    const std::string key = fmt::format("key-{}", i);
    if ((riffle::Md5HashKey(key) > riffle::kMaxHashKey / 2) == upper) return key;
  }
}

class CountingProcessor : public riffle::RecordProcessor {
 public:
  CountingProcessor(uint64_t* records, uint64_t* missed) : records_(records), missed_(missed) {}
  void Initialize(std::string_view, std::string_view) override {}
  void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
    *records_ += in.records.size();
    *missed_ += in.missed_records;
    (void)cp.Checkpoint();
  }
  void ShardEnded(riffle::Checkpointer& cp) override { REQUIRE(cp.Checkpoint().ok()); }

 private:
  uint64_t* records_;
  uint64_t* missed_;
};

}  // namespace

TEST_CASE("a child shard's records trimmed before the reader got there are counted as missed",
          "[regression][lineage]") {
  riffle::ManualClock clock;
  auto stream = *riffle::Stream::Create(Options(&clock, 1, 16 << 10));
  const std::string key = KeyInHalf(false);
  for (int i = 0; i < 10; ++i) REQUIRE(stream->PutRecord(key, "parent").ok());
  REQUIRE(
      stream->SplitShard("shardId-000000000000", riffle::FormatHashKey(riffle::kMaxHashKey / 2 + 1))
          .ok());
  // The lower child laps its 16 KiB ring many times before anyone reads it.
  const int child_puts = 2000;
  for (int i = 0; i < child_puts; ++i) {
    REQUIRE(stream->PutRecord(key, std::string(100, 'c')).ok());
  }
  const uint64_t put = 10 + child_puts;

  riffle::LineageReader reader(*stream);
  uint64_t read = 0;
  while (reader.Poll([&](const auto&, const riffle::Record&) { ++read; }) > 0) {
  }
  REQUIRE(reader.last_error().ok());
  CHECK(read < put);                             // the ring trimmed most of the child
  CHECK(read + reader.missed_records() == put);  // and every trimmed record is reported

  riffle::InMemoryCheckpointStore store;
  uint64_t records = 0, missed = 0;
  auto consumer =
      *riffle::Consumer::Create({.stream = stream.get(),
                                 .application_name = "app",
                                 .checkpoint_store = &store,
                                 .processor_factory = [&] {
                                   return std::make_unique<CountingProcessor>(&records, &missed);
                                 }});
  for (int quiet = 0; quiet < 5;) quiet = consumer->Poll() == 0 ? quiet + 1 : 0;
  CHECK(records == read);
  CHECK(records + missed == put);
}

TEST_CASE("forged iterators and sequence numbers are refused, never read", "[regression][stream]") {
  riffle::ManualClock clock;
  auto stream = *riffle::Stream::Create(Options(&clock));
  // A record whose data imitates a frame header at an aligned position inside its data.
  const auto first = *stream->PutRecord("k", "first");
  const uint64_t second_position =
      first.sequence_number.position + riffle::detail::FrameBytes(1, 5);
  const uint64_t data_start = second_position + riffle::detail::kFrameHeaderBytes + 1;
  const uint64_t fake_position = (data_start + 15) / 16 * 16;
  std::string data(128, '\0');
  const uint64_t fake[4] = {riffle::detail::PackWord0(48, 1, 0), fake_position, 1, 0};
  std::memcpy(data.data() + (fake_position - data_start), fake, sizeof fake);
  const auto second = *stream->PutRecord("k", data);
  REQUIRE(second.sequence_number.position == second_position);

  riffle::SequenceNumber forged = second.sequence_number;
  forged.position = fake_position;  // inside the second record's data
  forged.record_index = 1;
  auto it = stream->GetShardIterator({"shardId-000000000000",
                                      riffle::ShardIteratorType::kAtSequenceNumber,
                                      forged.ToString(),
                                      {}});
  REQUIRE_FALSE(it.ok());
  CHECK(riffle::IsInvalidArgumentException(it.status()));

  // An iterator string whose position was moved into a record.
  auto good = *stream->GetShardIterator(
      {"shardId-000000000000", riffle::ShardIteratorType::kTrimHorizon, {}, {}});
  riffle::ShardIterator moved = *riffle::ShardIterator::Parse(good.ToString());
  moved.position += 8;
  riffle::GetRecordsResult out;
  absl::Status s = stream->GetRecords(*riffle::ShardIterator::Parse(moved.ToString()), out);
  CHECK(riffle::IsInvalidArgumentException(s));
  CHECK(out.records.empty());
  // The genuine one still reads both records.
  REQUIRE(stream->GetRecords(*riffle::ShardIterator::Parse(good.ToString()), out).ok());
  CHECK(out.records.size() == 2);

  // A forged issue time far in the past (once a signed overflow) is refused, not expired
  // or read.
  riffle::ShardIterator old = good;
  old.issued_at_ms = INT64_MIN;
  s = stream->GetRecords(old, out);
  CHECK(riffle::IsInvalidArgumentException(s));
}

TEST_CASE("a sequence number below the horizon is checked before it is accepted",
          "[regression][stream]") {
  riffle::ManualClock clock;
  auto stream = *riffle::Stream::Create(Options(&clock, 1, 16 << 10));
  const auto first = *stream->PutRecord("k", "v");
  for (int i = 0; i < 1000; ++i) REQUIRE(stream->PutRecord("k", std::string(100, 'x')).ok());
  // The first record was trimmed: its own number is still a valid (old) position...
  auto it = stream->GetShardIterator({"shardId-000000000000",
                                      riffle::ShardIteratorType::kAfterSequenceNumber,
                                      first.sequence_number.ToString(),
                                      {}});
  REQUIRE(it.ok());
  auto got = *stream->GetRecords(*it);
  CHECK(got.missed_records > 0);  // reported, then reading goes on from the horizon
  // ... but an index that no record below the horizon can have is refused.
  riffle::SequenceNumber forged = first.sequence_number;
  forged.record_index = 999'999;
  auto bad = stream->GetShardIterator({"shardId-000000000000",
                                       riffle::ShardIteratorType::kAtSequenceNumber,
                                       forged.ToString(),
                                       {}});
  CHECK(riffle::IsInvalidArgumentException(bad.status()));
}

TEST_CASE("ring sizes the system cannot give are an error status, never an exception",
          "[regression][stream]") {
  auto o = Options(nullptr);
  o.ring_capacity_bytes = uint64_t{1} << 36;
  auto s = riffle::Stream::Create(o);
  REQUIRE_FALSE(s.ok());
  CHECK(riffle::IsInvalidArgumentException(s.status()));
  o.ring_capacity_bytes = uint64_t{1} << 40;
  CHECK_FALSE(riffle::Stream::Create(o).ok());
#if !defined(RIFFLE_SANITIZED)
  // Under an address-space limit the mapping fails: LimitExceededException, in a child
  // process so that the limit does not outlive the test.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rlimit limit{uint64_t{1} << 30, uint64_t{1} << 30};
    setrlimit(RLIMIT_AS, &limit);
    auto big = Options(nullptr, 8, uint64_t{1} << 30);
    auto r = riffle::Stream::Create(big);
    _exit(!r.ok() && riffle::IsLimitExceededException(r.status()) ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
#endif
}

TEST_CASE("a checkpoint from an earlier Stream object is reported, or restarted if asked",
          "[regression][consumer]") {
  riffle::ManualClock clock;
  riffle::InMemoryCheckpointStore store;
  {
    auto before = *riffle::Stream::Create(Options(&clock, 2));
    const auto r = *before->PutRecord("k", "v");
    REQUIRE(store.PutCheckpoint("app", std::string(r.shard_id), r.sequence_number.ToString()).ok());
  }
  // The host restarted: the stream is new, the file store kept the old checkpoint.
  auto stream = *riffle::Stream::Create(Options(&clock, 2));
  for (int i = 0; i < 20; ++i) REQUIRE(stream->PutRecord(fmt::format("k{}", i), "v").ok());
  uint64_t records = 0, missed = 0;
  auto factory = [&] { return std::make_unique<CountingProcessor>(&records, &missed); };
  {
    auto consumer = *riffle::Consumer::Create({.stream = stream.get(),
                                               .application_name = "app",
                                               .checkpoint_store = &store,
                                               .processor_factory = factory});
    for (int i = 0; i < 5; ++i) consumer->Poll();
    CHECK(riffle::HasErrorName(consumer->last_error(), riffle::kInvalidCheckpointException));
    CHECK_THAT(riffle::ErrorMessage(consumer->last_error()), Catch::Contains("Checkpoint '4"));
    CHECK(records < 20);  // the other shard is processed; this one waits
  }
  const uint64_t first_run = records;
  auto consumer = *riffle::Consumer::Create(
      {.stream = stream.get(),
       .application_name = "app",
       .checkpoint_store = &store,
       .invalid_checkpoint = riffle::InvalidCheckpointPolicy::kRestartFromInitialPosition,
       .processor_factory = factory});
  for (int quiet = 0; quiet < 5;) quiet = consumer->Poll() == 0 ? quiet + 1 : 0;
  CHECK(consumer->last_error().ok());
  CHECK(consumer->invalid_checkpoints() == 1);
  CHECK(records == 20);  // the waiting shard, from its start, after the first run's
  CHECK(records > first_run);

  // A truncated checkpoint is reported the same way.
  REQUIRE(store.PutCheckpoint("app2", "shardId-000000000000", "4001").ok());
  auto damaged = *riffle::Consumer::Create({.stream = stream.get(),
                                            .application_name = "app2",
                                            .checkpoint_store = &store,
                                            .processor_factory = factory});
  damaged->Poll();
  CHECK(riffle::HasErrorName(damaged->last_error(), riffle::kInvalidCheckpointException));
}

TEST_CASE("records trimmed by retention stay trimmed after IncreaseStreamRetentionPeriod",
          "[regression][stream]") {
  riffle::ManualClock clock;
  auto stream = *riffle::Stream::Create(Options(&clock));
  const auto first = *stream->PutRecord("k", "old");
  for (int i = 0; i < 4; ++i) REQUIRE(stream->PutRecord("k", "old").ok());
  const std::string first_number = first.sequence_number.ToString();
  const riffle::GetShardIteratorRequest at_first{
      "shardId-000000000000", riffle::ShardIteratorType::kAtSequenceNumber, first_number, {}};
  clock.Advance(absl::Hours(25));
  auto got = *stream->GetRecords(*stream->GetShardIterator(at_first));
  CHECK(got.records.empty());
  CHECK(got.missed_records == 5);
  REQUIRE(stream->IncreaseStreamRetentionPeriod(48).ok());
  got = *stream->GetRecords(*stream->GetShardIterator(at_first));
  CHECK(got.records.empty());  // still in the ring, but expired: not readable again
  CHECK(got.missed_records == 5);
  // Records put after the change are kept for the new period.
  REQUIRE(stream->PutRecord("k", "new").ok());
  clock.Advance(absl::Hours(30));
  REQUIRE(stream->GetShardIterator(at_first).ok());
  got = *stream->GetRecords(*stream->GetShardIterator(
      {"shardId-000000000000", riffle::ShardIteratorType::kTrimHorizon, {}, {}}));
  REQUIRE(got.records.size() == 1);
  CHECK(got.records[0].data == "new");
}

TEST_CASE("destroying a Stream under a running subscription ends it cleanly", "[regression][efo]") {
  auto stream = *riffle::Stream::Create(Options(nullptr));
  REQUIRE(stream->RegisterStreamConsumer("c").ok());
  std::atomic<int> records{0};
  std::atomic<int> ends{0};
  auto sub = *stream->SubscribeToShard(
      {"c", "shardId-000000000000", {riffle::ShardIteratorType::kTrimHorizon}},
      [&](const riffle::SubscribeToShardEvent& e) {
        records.fetch_add(static_cast<int>(e.records.size()));
        if (e.end == riffle::SubscriptionEnd::kStreamDeleted) ends.fetch_add(1);
      },
      {.lifetime = absl::InfiniteDuration(), .wait = riffle::WaitStrategy::kBlock});
  REQUIRE(sub->Start().ok());
  for (int i = 0; i < 100; ++i) REQUIRE(stream->PutRecord("k", "v").ok());
  for (int i = 0; i < 2000 && records.load() < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stream.reset();  // the subscription's thread is still running
  for (int i = 0; i < 2000 && !sub->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(sub->done());
  CHECK(sub->end_reason() == riffle::SubscriptionEnd::kStreamDeleted);
  CHECK(ends.load() == 1);
  CHECK(records.load() == 100);
  sub.reset();
}

// A reader validated a frame's length, then loaded word 0 again to skip or copy it; a
// producer lapping the reader had rewritten it in between with key bytes, and the reader
// copied 1.8 GB from the ring (SIGSEGV under the small-ring stress test). A view now loads
// word 0 once: what Plausible() accepted is what the caller copies.
TEST_CASE("a frame's length is the one its validity check saw, whatever the ring does next",
          "[regression][stream]") {
  using riffle::detail::FrameView;
  using riffle::detail::PackWord0;
  alignas(8) uint64_t words[8] = {PackWord0(48, 4, 0), 0x1234, 7, 100, 0, 0, 0, 0};
  const FrameView view(words);
  REQUIRE(view.Plausible(64, 0x1234));
  // A lapping producer's key bytes ("p1-k...") land on word 0 after the check.
  std::memcpy(&words[0], "p1-k7:aa", 8);
  CHECK(view.length() == 48);
  CHECK(view.padded_length() == 48);
  CHECK(view.key_length() == 4);
  CHECK_FALSE(view.is_padding());
  CHECK_FALSE(FrameView(words).Plausible(64, 0x1234));
}
