// The read-side seam: Consumer and LineageReader run unchanged over a RecordSource that is
// not riffle::Stream (a small in-memory backend with a split shard), parents before
// children, every record once, in key order.
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "riffle/consumer.h"
#include "riffle/lineage_reader.h"
#include "riffle/record_source.h"

namespace {

// An in-memory backend: shard 0 was split into shards 1 and 2 (at the middle of the key
// space); records are appended by the test. Positions and record indexes are ordinals.
class FakeSource final : public riffle::RecordSource {
 public:
  static constexpr uint64_t kTag = 77;

  explicit FakeSource(riffle::Clock* clock) : clock_(clock) {
    const riffle::HashKey mid = riffle::kMaxHashKey / 2;
    shards_.push_back({"shardId-000000000000", {}, {0, riffle::kMaxHashKey}, {}, true, {1, 2}});
    shards_.push_back({"shardId-000000000001", {"shardId-000000000000"}, {0, mid}, {}, false, {}});
    shards_.push_back(
        {"shardId-000000000002", {"shardId-000000000000"}, {mid + 1, riffle::kMaxHashKey}, {}, false, {}});
  }

  // Appends to shard `s` (the test decides the routing: parent first, then children).
  void Append(int s, std::string key, std::string data) {
    std::lock_guard<std::mutex> lock(mu_);
    shards_[s].records.emplace_back(std::move(key), std::move(data));
  }

  const std::string& name() const override { return name_; }
  riffle::Clock& clock() const override { return *clock_; }
  absl::Duration iterator_lifetime() const override { return absl::Minutes(5); }

  absl::StatusOr<std::vector<riffle::Shard>> ListShards(
      const riffle::ListShardsRequest&) const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<riffle::Shard> out;
    for (std::size_t i = 0; i < shards_.size(); ++i) {
      riffle::Shard s;
      s.shard_id = shards_[i].id;
      if (!shards_[i].parents.empty()) s.parent_shard_id = shards_[i].parents[0];
      s.hash_key_range = shards_[i].range;
      s.sequence_number_range.starting_sequence_number = riffle::SequenceNumber{kTag, i, 0, 0};
      if (shards_[i].closed) {
        const uint64_t n = shards_[i].records.size();
        s.sequence_number_range.ending_sequence_number =
            riffle::SequenceNumber{kTag, i, n == 0 ? 0 : n - 1, n == 0 ? 0 : n - 1};
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  absl::StatusOr<riffle::ShardIterator> GetShardIterator(
      const riffle::GetShardIteratorRequest& r) override {
    const std::optional<uint64_t> index = riffle::ParseShardId(r.shard_id);
    std::lock_guard<std::mutex> lock(mu_);
    if (!index || *index >= shards_.size()) {
      return riffle::ResourceNotFoundError(fmt::format("Shard {} does not exist.", r.shard_id));
    }
    uint64_t position = 0;
    switch (r.type) {
      case riffle::ShardIteratorType::kTrimHorizon:
      case riffle::ShardIteratorType::kAtTimestamp:
        break;
      case riffle::ShardIteratorType::kLatest:
        position = shards_[*index].records.size();
        break;
      case riffle::ShardIteratorType::kAtSequenceNumber:
      case riffle::ShardIteratorType::kAfterSequenceNumber: {
        auto n = riffle::SequenceNumber::Parse(r.starting_sequence_number);
        if (!n.ok()) return n.status();
        if (n->stream_tag != kTag) return riffle::InvalidArgumentError("not from this stream");
        position = n->record_index +
                   (r.type == riffle::ShardIteratorType::kAfterSequenceNumber ? 1 : 0);
        break;
      }
    }
    return Issue(*index, position);
  }

  absl::Status GetRecords(const riffle::ShardIterator& it, riffle::GetRecordsResult& out,
                          int limit) override {
    if (it.stream_tag != kTag || it.check != Check(it)) {
      return riffle::InvalidArgumentError("forged iterator");
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_;
    const Fake& shard = shards_[it.shard_index];
    riffle::detail::RecordsStorage::Reset(out);
    uint64_t p = it.position;
    for (; p < shard.records.size() && static_cast<int>(p - it.position) < limit; ++p) {
      riffle::detail::RecordsStorage::AppendRecord(out, p, p, clock_->NowMillis(),
                                                   shard.records[p].first, shard.records[p].second);
    }
    riffle::detail::RecordsStorage::BuildRecords(out, kTag, it.shard_index);
    if (shard.closed && p == shard.records.size()) {
      for (uint64_t c : shard.children) {
        out.child_shards.push_back({shards_[c].id, shards_[c].parents, shards_[c].range});
      }
    } else {
      out.next_shard_iterator = IssueLocked(it.shard_index, p);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<riffle::ShardIterator> RenewShardIterator(
      const riffle::ShardIterator& it) override {
    if (it.check != Check(it)) return riffle::InvalidArgumentError("forged iterator");
    return Issue(it.shard_index, it.position);
  }

  int reads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }

 private:
  struct Fake {
    std::string id;
    std::vector<std::string> parents;
    riffle::HashKeyRange range;
    std::vector<std::pair<std::string, std::string>> records;
    bool closed;
    std::vector<uint64_t> children;
  };

  static uint64_t Check(const riffle::ShardIterator& it) {
    return (it.shard_index * 1'000'003 + it.position) ^ 0x5eedULL ^
           static_cast<uint64_t>(it.issued_at_ms);
  }
  riffle::ShardIterator IssueLocked(uint64_t shard, uint64_t position) const {
    riffle::ShardIterator it{kTag, shard, position, position, true, clock_->NowMillis(), 0};
    it.check = Check(it);
    return it;
  }
  riffle::ShardIterator Issue(uint64_t shard, uint64_t position) const { return IssueLocked(shard, position); }

  riffle::Clock* clock_;
  const std::string name_ = "fake";
  mutable std::mutex mu_;
  std::vector<Fake> shards_;
  int reads_ = 0;
};

// Records per key, in the order a reader saw them.
struct Seen {
  std::mutex mu;
  std::map<std::string, std::vector<int>> by_key;
  std::vector<std::string> shard_order;  // shard of each record
};

class Collecting : public riffle::RecordProcessor {
 public:
  explicit Collecting(Seen* seen) : seen_(seen) {}
  void Initialize(std::string_view shard, std::string_view) override { shard_ = shard; }
  void ProcessRecords(const riffle::ProcessRecordsInput& in, riffle::Checkpointer& cp) override {
    std::lock_guard<std::mutex> lock(seen_->mu);
    for (const riffle::Record& r : in.records) {
      seen_->by_key[std::string(r.partition_key)].push_back(std::stoi(std::string(r.data)));
      seen_->shard_order.push_back(shard_);
    }
    REQUIRE(cp.Checkpoint().ok());
  }
  void ShardEnded(riffle::Checkpointer& cp) override { REQUIRE(cp.Checkpoint().ok()); }

 private:
  Seen* seen_;
  std::string shard_;
};

// Keys "a" (lower half after the split) and "b" (upper): the test routes by hand.
void Fill(FakeSource& source) {
  for (int i = 0; i < 50; ++i) {
    source.Append(0, "a", std::to_string(i));
    source.Append(0, "b", std::to_string(i));
  }
  for (int i = 50; i < 120; ++i) {
    source.Append(1, "a", std::to_string(i));
    source.Append(2, "b", std::to_string(i));
  }
}

std::vector<int> Range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("a Consumer runs to the end over another backend: parents first, each record once",
          "[consumer][seam]") {
  riffle::ManualClock clock;
  FakeSource source(&clock);
  Fill(source);
  riffle::InMemoryCheckpointStore store;
  Seen seen;
  auto consumer = riffle::Consumer::Create(
      {.stream = &source,
       .application_name = "seam",
       .checkpoint_store = &store,
       .max_records = 7,
       .processor_factory = [&seen] { return std::make_unique<Collecting>(&seen); }});
  REQUIRE(consumer.ok());
  for (int quiet = 0; quiet < 5;) quiet = (*consumer)->Poll() == 0 ? quiet + 1 : 0;
  CHECK(seen.by_key["a"] == Range(0, 120));
  CHECK(seen.by_key["b"] == Range(0, 120));
  // Every record of the parent before any record of a child.
  const auto first_child =
      std::find_if(seen.shard_order.begin(), seen.shard_order.end(),
                   [](const std::string& s) { return s != "shardId-000000000000"; });
  CHECK(std::count(first_child, seen.shard_order.end(), "shardId-000000000000") == 0);
  CHECK(*store.GetCheckpoint("seam", "shardId-000000000000") ==
        std::optional<std::string>(std::string(riffle::kShardEndCheckpoint)));
  CHECK((*consumer)->last_error().ok());
}

TEST_CASE("a LineageReader runs over another backend and keeps per-key order", "[seam]") {
  riffle::ManualClock clock;
  FakeSource source(&clock);
  Fill(source);
  riffle::LineageReader reader(source, {.limit = 9});
  std::map<std::string, std::vector<int>> by_key;
  while (reader.Poll([&](const riffle::LineageReader::ShardInfo&, const riffle::Record& r) {
    by_key[std::string(r.partition_key)].push_back(std::stoi(std::string(r.data)));
  }) > 0) {
  }
  CHECK(reader.last_error().ok());
  CHECK(by_key["a"] == Range(0, 120));
  CHECK(by_key["b"] == Range(0, 120));
  CHECK(reader.finished().size() == 1);  // the parent; the children stay open
  CHECK(reader.missed_records() == 0);
}

TEST_CASE("a reader keeps its iterator alive across the iterator lifetime", "[seam]") {
  riffle::ManualClock clock;
  FakeSource source(&clock);
  Fill(source);
  riffle::LineageReader reader(source);
  int read = 0;
  auto count = [&](const riffle::LineageReader::ShardInfo&, const riffle::Record&) { ++read; };
  while (reader.Poll(count) > 0) {
  }
  for (int i = 0; i < 10; ++i) {
    clock.Advance(absl::Minutes(4));  // each poll renews before the 5 minutes run out
    source.Append(1, "a", std::to_string(120 + i));
    while (reader.Poll(count) > 0) {
    }
    CHECK(reader.last_error().ok());
  }
  CHECK(read == 250);
}
