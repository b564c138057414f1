// KPL aggregation and KCL de-aggregation, the format: byte compatibility with aws-kinesis-agg
// (vectors in tests/data/kpl, made by make_vectors.js), records that are not aggregates
// passing through, aggregates straddling a split (dropped and counted; re-sent by the
// Producer), and the Aggregator's packing. test_kpl_consume.cpp has the readers.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "kpl_test_helpers.h"
#include "riffle/detail/md5.h"
#include "riffle/kpl.h"
#include "riffle/lineage_reader.h"
#include "riffle/stream.h"

using riffle::kpl::RecordKind;
using namespace riffle_test::kpl;

namespace {

// ---- Vectors ----

std::string Hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("{:02x}", c);
  return out;
}

std::string Unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// One "user" or "aggregate" line: key, explicit hash key ("" for "-"), data, and for a
// de-aggregated user record its sub-sequence number ("-": passed through).
struct VectorRecord {
  std::string key, explicit_hash_key, data, sub;
  friend bool operator==(const VectorRecord&, const VectorRecord&) = default;
};
struct VectorCase {
  std::string name;
  std::vector<VectorRecord> users, aggregates;
  friend bool operator==(const VectorCase&, const VectorCase&) = default;
};

std::string VectorPath(std::string_view file) {
  return fmt::format("{}/kpl/{}", RIFFLE_TEST_DATA_DIR, file);
}

std::vector<VectorCase> ParseVectors(std::istream& in) {
  std::vector<VectorCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;  // split on single spaces: empty data is an empty field
    for (size_t from = 0;;) {
      const size_t space = line.find(' ', from);
      f.push_back(line.substr(from, space - from));
      if (space == std::string::npos) break;
      from = space + 1;
    }
    if (f[0] == "case" && f.size() == 2) {
      cases.emplace_back();
      cases.back().name = f[1];
      continue;
    }
    if (f[0] != "user" && f[0] != "aggregate") continue;
    REQUIRE(f.size() >= 4);
    REQUIRE(!cases.empty());
    const std::string& kind = f[0];
    VectorRecord r{Unhex(f[1]), f[2] == "-" ? "" : f[2], Unhex(f[3]), f.size() > 4 ? f[4] : ""};
    (kind == "user" ? cases.back().users : cases.back().aggregates).push_back(std::move(r));
  }
  return cases;
}

std::vector<VectorCase> ReadVectors(std::string_view file) {
  std::ifstream in(VectorPath(file));
  REQUIRE(in.good());
  return ParseVectors(in);
}

std::string FormatVectors(const std::vector<VectorCase>& cases) {
  std::string out =
      "# Made by test_kpl \"[.write-vectors]\" with riffle's Aggregator. Do not edit.\n";
  auto line = [&](std::string_view kind, const VectorRecord& r) {
    out += fmt::format("{} {} {} {}\n", kind, Hex(r.key),
                       r.explicit_hash_key.empty() ? "-" : r.explicit_hash_key, Hex(r.data));
  };
  for (const VectorCase& c : cases) {
    out += fmt::format("case {}\n", c.name);
    for (const auto& u : c.users) line("user", u);
    for (const auto& a : c.aggregates) line("aggregate", a);
  }
  return out;
}

// The bytes of a literal, zeros included.
template <size_t N>
std::string Bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

// An aggregate's framing around any protobuf bytes (a valid MD5).
std::string Frame(std::string_view body) {
  const auto digest = riffle::detail::Md5(body.data(), body.size());
  return std::string(riffle::kpl::kMagic) + std::string(body) +
         std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

// The cases riffle's side of the vectors is made of: riffle's Aggregator over fixed inputs.
std::vector<VectorCase> RiffleCases() {
  std::vector<VectorCase> cases;
  auto run = [&](std::string name, riffle::kpl::AggregatorOptions o,
                 const std::vector<VectorRecord>& users) {
    auto aggregator = MakeAggregator(o, OneShardMap());
    std::vector<Aggregate> out;
    for (const auto& u : users) {
      REQUIRE(aggregator->Add({u.key, u.data, u.explicit_hash_key}, out).ok());
    }
    aggregator->Flush(out);
    VectorCase c{std::move(name), users, {}};
    for (const Aggregate& a : out) {
      c.aggregates.push_back({a.partition_key, a.explicit_hash_key, a.data, ""});
    }
    cases.push_back(std::move(c));
  };
  std::vector<VectorRecord> mixed;
  for (int i = 0; i < 60; ++i) {
    std::string data;
    for (int b = 0; b < i * 5; ++b) data.push_back(static_cast<char>((b * 37 + i) & 0xff));
    const std::string key =
        i % 7 == 0 ? "cl\xc3\xa9-" + std::to_string(i % 3) : "key-" + std::to_string(i % 11);
    const std::string ehk = i % 5 == 0 ? riffle::FormatHashKey(riffle::HashKey(i) << 100) : "";
    mixed.push_back({key, ehk, data, ""});
  }
  run("aggregator_default", {}, mixed);
  std::vector<VectorRecord> small;
  for (int i = 0; i < 21; ++i)
    small.push_back({"k" + std::to_string(i % 4), "", std::string(40, 'a' + i), ""});
  run("aggregator_split", {.max_aggregate_bytes = 256}, small);  // several, the last alone
  std::vector<VectorRecord> one_key;
  for (int i = 0; i < 30; ++i) one_key.push_back({"same", "12345", std::to_string(i), ""});
  run("one_key", {}, one_key);
  return cases;
}

}  // namespace

// ---- Compatibility ----

TEST_CASE("aws-kinesis-agg's aggregates de-aggregate to the user records it was given", "[kpl]") {
  const auto cases = ReadVectors("node_aggregates.txt");
  REQUIRE(cases.size() == 6);
  for (const VectorCase& c : cases) {
    INFO(c.name);
    REQUIRE(c.aggregates.size() == 1);
    const Record record = KinesisRecord(c.aggregates[0].key, c.aggregates[0].data);
    std::vector<UserRecord> out;
    CHECK(riffle::kpl::Deaggregate(record, out) == RecordKind::kAggregate);
    REQUIRE(out.size() == c.users.size());
    for (size_t i = 0; i < out.size(); ++i) {
      CHECK(out[i].partition_key == c.users[i].key);
      CHECK(out[i].explicit_hash_key == c.users[i].explicit_hash_key);
      CHECK(out[i].data == c.users[i].data);
      CHECK(out[i].sub_sequence_number == i);
      CHECK(out[i].aggregated);
      CHECK(out[i].sequence_number == kSeq);
      CHECK(out[i].approximate_arrival_timestamp == kArrival);
    }
  }
}

TEST_CASE("riffle encodes the same bytes as aws-kinesis-agg", "[kpl]") {
  for (const VectorCase& c : ReadVectors("node_aggregates.txt")) {
    INFO(c.name);
    std::vector<PutRecordsRequestEntry> entries;
    for (const auto& u : c.users) entries.push_back({u.key, u.data, u.explicit_hash_key});
    CHECK(Hex(riffle::kpl::EncodeAggregate(entries)) == Hex(c.aggregates[0].data));
  }
}

TEST_CASE("aws-kinesis-agg de-aggregates riffle's aggregates to the same user records", "[kpl]") {
  // The committed riffle vectors are what the code makes today...
  std::ifstream in(VectorPath("riffle_aggregates.txt"));
  std::stringstream committed;
  committed << in.rdbuf();
  const std::vector<VectorCase> riffle_cases = RiffleCases();
  CHECK(committed.str() == FormatVectors(riffle_cases));
  // ...and aws-kinesis-agg read them back (node_deaggregated.txt, by make_vectors.js).
  const auto node = ReadVectors("node_deaggregated.txt");
  REQUIRE(node.size() == riffle_cases.size());
  for (size_t c = 0; c < node.size(); ++c) {
    INFO(node[c].name);
    const VectorCase& mine = riffle_cases[c];
    CHECK(node[c].name == mine.name);
    // Per user record: its sub-sequence number ("-" for a record sent alone, which passes
    // through) and the explicit hash key aws-kinesis-agg reports. For a user record without
    // one it reports the first entry of the aggregate's table: protobufjs reads the absent
    // optional index as 0 (riffle, like protobuf-java, keeps "absent").
    std::vector<std::string> expected_subs, expected_ehks;
    for (const auto& a : mine.aggregates) {
      std::vector<UserRecord> users;
      if (!riffle::kpl::DecodeAggregate(a.data, users)) {
        expected_subs.push_back("-");
        expected_ehks.push_back("");  // GetRecords does not return a record's own
        continue;
      }
      std::string first_ehk;
      for (const UserRecord& u : users) {
        if (first_ehk.empty()) first_ehk = u.explicit_hash_key;
      }
      for (const UserRecord& u : users) {
        expected_subs.push_back(std::to_string(u.sub_sequence_number));
        expected_ehks.push_back(u.explicit_hash_key.empty() ? first_ehk
                                                            : std::string(u.explicit_hash_key));
      }
    }
    REQUIRE(node[c].users.size() == mine.users.size());
    REQUIRE(expected_subs.size() == mine.users.size());
    for (size_t i = 0; i < mine.users.size(); ++i) {
      CHECK(node[c].users[i].key == mine.users[i].key);
      CHECK(node[c].users[i].data == mine.users[i].data);
      CHECK(node[c].users[i].sub == expected_subs[i]);
      CHECK(node[c].users[i].explicit_hash_key == expected_ehks[i]);
    }
  }
}

TEST_CASE("write riffle's vectors for make_vectors.js", "[.write-vectors]") {
  std::ofstream(VectorPath("riffle_aggregates.txt")) << FormatVectors(RiffleCases());
}

// ---- De-aggregation rules ----

TEST_CASE("records that are not valid aggregates pass through untouched", "[kpl]") {
  const std::vector<PutRecordsRequestEntry> two = {{"k1", "one", ""}, {"k2", "two", ""}};
  const std::string good = riffle::kpl::EncodeAggregate(two);
  auto flip = [](std::string s, size_t at) {
    s[at] = static_cast<char>(s[at] ^ 0x01);
    return s;
  };
  const std::map<std::string, std::string> bad = {
      {"corrupt MD5", flip(good, good.size() - 1)},
      {"corrupt protobuf byte", flip(good, 10)},
      {"truncated by one byte", good.substr(0, good.size() - 1)},
      {"magic and MD5 only", good.substr(0, 20)},
      {"magic only", good.substr(0, 4)},
      {"empty", ""},
      {"wrong magic", flip(good, 0)},
      {"bad protobuf, good MD5", Frame(Bytes("\xff\xff\xff"))},
      {"a group wire type, good MD5", Frame(Bytes("\x0b\x0c"))},
      {"record without data", Frame(Bytes("\x0a\x01k\x1a\x02\x08\x00"))},
      {"record without partition key index", Frame(Bytes("\x0a\x01k\x1a\x03\x1a\x01x"))},
      {"partition key index past the table", Frame(Bytes("\x0a\x01k\x1a\x05\x08\x05\x1a\x01x"))},
      {"explicit hash key index past the table",
       Frame(Bytes("\x0a\x01k\x1a\x07\x08\x00\x10\x00\x1a\x01x"))},
      {"explicit hash key index 2^64-1",
       Frame(Bytes("\x0a\x01k\x1a\x10\x08\x00\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
                   "\x1a\x01x"))},
      {"tag without key", Frame(Bytes("\x0a\x01k\x1a\x07\x08\x00\x1a\x01x\x22\x00"))},
      {"length past the end", Frame(Bytes("\x0a\x09k"))},
  };
  for (const auto& [what, data] : bad) {
    INFO(what);
    const Record record = KinesisRecord("pk", data);
    std::vector<UserRecord> out;
    CHECK(riffle::kpl::Deaggregate(record, out) == RecordKind::kNotAggregated);
    REQUIRE(out.size() == 1);
    CHECK(out[0].data.data() == record.data.data());  // the record itself, not a copy
    CHECK(out[0].partition_key == "pk");
    CHECK(!out[0].aggregated);
    CHECK(out[0].sub_sequence_number == 0);
    std::vector<UserRecord> none;
    CHECK(!riffle::kpl::DecodeAggregate(data, none));
    CHECK(none.empty());
    // The batch decoder (MD5s in lanes) agrees.
    riffle::kpl::Deaggregator d;
    std::vector<UserRecord> batch;
    const std::vector<Record> records(20, record);
    d.Decode(records, {}, batch);
    CHECK(batch.size() == 20);
    CHECK(d.stats().aggregates == 0);
  }
  // What protobuf-java accepts, riffle accepts: unknown fields, and known field numbers with
  // another wire type (also unknown fields), are skipped.
  // Record: index 0, data "x", unknown field 7, a tag with key "t".
  const std::string record_fields = Bytes("\x08\x00\x1a\x01x\x38\x05\x22\x03\x0a\x01t");
  // AggregatedRecord: field 1 as a varint, the table entry "k", unknown field 9, the record.
  const std::string body = Bytes("\x08\x07\x0a\x01k\x48\x01\x1a") +
                           static_cast<char>(record_fields.size()) + record_fields;
  const std::string lenient = Frame(body);
  std::vector<UserRecord> out;
  REQUIRE(riffle::kpl::DecodeAggregate(lenient, out));
  REQUIRE(out.size() == 1);
  CHECK(out[0].partition_key == "k");
  CHECK(out[0].data == "x");
  // A valid aggregate of no records holds no user records (the KCL delivers nothing).
  out.clear();
  CHECK(riffle::kpl::Deaggregate(KinesisRecord("pk", Frame(Bytes("\x48\x01"))), out) ==
        RecordKind::kAggregate);
  CHECK(out.empty());
}

TEST_CASE("an aggregate straddling a split is dropped and counted, or delivered on request",
          "[kpl]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  auto aggregator = MakeAggregator({}, *stream->ListShards());
  std::vector<Aggregate> out;
  for (int i = 0; i < 100; ++i) {
    REQUIRE(aggregator->Add({fmt::format("key-{}", i), fmt::format("record {}", i), ""}, out).ok());
  }
  aggregator->Flush(out);
  REQUIRE(out.size() == 1);
  REQUIRE(out[0].user_records == 100);
  // The shard splits between packing and putting: the aggregate lands on the child of its
  // first record's key, which does not hold the other half of its keys.
  const std::string mid = riffle::FormatHashKey(riffle::kMaxHashKey / 2);
  REQUIRE(stream->SplitShard(riffle::FormatShardId(0), mid).ok());
  const auto landed = PutAll(*stream, out);
  const auto shards = *stream->ListShards();
  const auto child = std::find_if(shards.begin(), shards.end(),
                                  [&](const riffle::Shard& s) { return s.shard_id == landed[0]; });
  REQUIRE(child != shards.end());
  CHECK(child->shard_id != riffle::FormatShardId(0));

  riffle::kpl::Deaggregator dropping;
  CHECK(ReadUserData(*stream, &dropping).empty());
  CHECK(dropping.stats().misplaced_aggregates == 1);
  CHECK(dropping.stats().dropped_user_records == 100);
  riffle::kpl::Deaggregator delivering({.deliver_misplaced = true});
  CHECK(ReadUserData(*stream, &delivering).size() == 100);
  CHECK(delivering.stats().misplaced_aggregates == 1);
  CHECK(delivering.stats().dropped_user_records == 0);

  // The single-record function says the same.
  const Record record = KinesisRecord("a", out[0].data);
  std::vector<UserRecord> users;
  CHECK(riffle::kpl::Deaggregate(record, users, child->hash_key_range) ==
        RecordKind::kMisplacedAggregate);
  CHECK(users.empty());
  CHECK(riffle::kpl::Deaggregate(record, users, child->hash_key_range,
                                 {.deliver_misplaced = true}) == RecordKind::kMisplacedAggregate);
  CHECK(users.size() == 100);
  users.clear();
  CHECK(riffle::kpl::Deaggregate(record, users, shards[0].hash_key_range) ==
        RecordKind::kAggregate);  // the parent's range holds every key
  CHECK(users.size() == 100);

  // Explicit hash keys are read as the KCL reads them for the check (Java's BigInteger).
  const riffle::HashKeyRange low{0, 100};
  for (const auto& [key, inside] : std::vector<std::pair<std::string, bool>>{
           {"7", true},
           {"007", true},
           {"+7", true},
           {"-0", true},
           {"100", true},
           {"101", false},
           {"-7", false},
           {"abc", false},
           {"", false},
           {"340282366920938463463374607431768211456", false}}) {
    INFO(key);
    // Table "k", explicit hash key table `key`, one record naming both.
    const std::string body = Bytes("\x0a\x01k\x12") + static_cast<char>(key.size()) + key +
                             Bytes("\x1a\x07\x08\x00\x10\x00\x1a\x01x");
    users.clear();
    CHECK(riffle::kpl::Deaggregate(KinesisRecord("a", Frame(body)), users, low) ==
          (inside ? RecordKind::kAggregate : RecordKind::kMisplacedAggregate));
    CHECK(users.size() == (inside ? 1 : 0));
  }
}

TEST_CASE("the Producer re-sends what a split sent to the wrong shard", "[kpl]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 1);
  auto producer = riffle::kpl::Producer::Create({.stream = stream.get()});
  REQUIRE(producer.ok());
  riffle::kpl::Producer& p = **producer;
  constexpr int kRecords = 3000;
  for (int i = 0; i < kRecords; ++i) {
    REQUIRE(p.Add({fmt::format("user-{}", i % 500), fmt::format("{:05}{}", i, std::string(80, '.')),
                   ""})
                .ok());
  }
  p.Flush();  // packed for one shard...
  REQUIRE(
      stream->SplitShard(riffle::FormatShardId(0),
                         riffle::FormatHashKey(riffle::kMaxHashKey / 3))
          .ok());  // ...put to two
  // Flush's promise holds across the split: the next Polls send everything added before
  // it, the records re-packed for the children too (the clock does not move: no record
  // ages out of a bucket).
  for (int i = 0; i < 100 && p.pending_user_records() > 0; ++i) p.Poll();
  CHECK(p.last_error().ok());
  CHECK(p.pending_user_records() == 0);
  CHECK(p.stats().user_records_put == kRecords);
  CHECK(p.stats().misplaced_aggregates > 0);
  // What a KCL reads: every user record exactly once.
  riffle::kpl::Deaggregator kcl;
  std::vector<std::string> data = ReadUserData(*stream, &kcl);
  CHECK(kcl.stats().misplaced_aggregates == p.stats().misplaced_aggregates);
  std::sort(data.begin(), data.end());
  REQUIRE(data.size() == kRecords);
  for (int i = 0; i < kRecords; ++i) CHECK(data[i].substr(0, 5) == fmt::format("{:05}", i));
}

// ---- Round trip ----

TEST_CASE("user records round-trip through the Aggregator, a stream and the Deaggregator",
          "[kpl]") {
  ManualClock clock;
  auto stream = MakeStream(&clock, 4);
  const auto shards = *stream->ListShards();
  std::mt19937_64 rng(7);
  struct Put {
    std::string key, ehk, data;
  };
  std::vector<Put> puts;
  for (int i = 0; i < 5000; ++i) {
    Put p{fmt::format("key-{}", rng() % 300), "", std::string(rng() % 300, '\0')};
    for (char& c : p.data) c = static_cast<char>(rng());
    if (i % 10 == 0) p.ehk = riffle::FormatHashKey(absl::MakeUint128(rng(), rng()));
    p.data = fmt::format("{:04}", i) + p.data;
    puts.push_back(std::move(p));
  }
  for (uint64_t max_records : {uint64_t{4294967295}, uint64_t{7}}) {
    auto aggregator = MakeAggregator({.max_aggregate_records = max_records}, shards);
    std::vector<Aggregate> out;
    for (const Put& p : puts) REQUIRE(aggregator->Add({p.key, p.data, p.ehk}, out).ok());
    aggregator->Flush(out);
    CHECK(aggregator->buffered_records() == 0);
    uint64_t total = 0;
    for (const Aggregate& a : out) {
      total += a.user_records;
      CHECK(a.data.size() <= riffle::kpl::kDefaultMaxAggregateBytes);
      CHECK(a.user_records <= max_records);
      std::vector<UserRecord> inside;
      CHECK(riffle::kpl::DecodeAggregate(a.data, inside) == (a.user_records > 1));
      if (a.user_records > 1) CHECK(a.partition_key == "a");
    }
    CHECK(total == puts.size());
    const auto landed = PutAll(*stream, out);
    for (size_t i = 0; i < out.size(); ++i) CHECK(landed[i] == out[i].shard_id);  // as predicted
  }
  // Read back: per hash key in put order, twice (once per aggregator), nothing misplaced.
  riffle::kpl::Deaggregator kcl;
  riffle::LineageReader reader(*stream, {.deaggregator = &kcl});
  std::map<std::string, std::vector<std::string>> by_key;
  while (reader.PollUserRecords(
             [&](const riffle::LineageReader::ShardInfo& shard, const UserRecord& u) {
               by_key[fmt::format("{}|{}", u.partition_key, u.explicit_hash_key)].emplace_back(
                   u.data.substr(0, 4));
               const riffle::HashKey h = u.explicit_hash_key.empty()
                                             ? riffle::Md5HashKey(u.partition_key)
                                             : *riffle::ParseHashKey(u.explicit_hash_key);
               CHECK(shard.range.Contains(h));
             }) > 0) {
  }
  CHECK(kcl.stats().misplaced_aggregates == 0);
  CHECK(kcl.stats().user_records == 2 * puts.size());
  std::map<std::string, std::vector<std::string>> expected;
  for (int round = 0; round < 2; ++round) {
    for (const Put& p : puts) {
      expected[fmt::format("{}|{}", p.key, p.ehk)].push_back(p.data.substr(0, 4));
    }
  }
  // The records of one hash key (partition key, or explicit hash key) are in one shard, in
  // put order: the first pass, then the second.
  CHECK(by_key.size() == expected.size());
  for (const auto& [key, order] : expected) {
    INFO(key);
    CHECK(by_key[key] == order);
  }
}

TEST_CASE("the Aggregator validates user records and its options", "[kpl]") {
  auto aggregator = MakeAggregator({.max_record_bytes = 100}, OneShardMap());
  std::vector<Aggregate> out;
  CHECK(riffle::IsInvalidArgumentException(aggregator->Add({"", "x", ""}, out)));
  CHECK(riffle::IsInvalidArgumentException(aggregator->Add({"k", "x", "01"}, out)));
  CHECK(riffle::IsInvalidArgumentException(aggregator->Add({"k", std::string(100, 'x'), ""}, out)));
  CHECK(aggregator->buffered_records() == 0);
  CHECK(riffle::IsInvalidArgumentException(
      riffle::kpl::Aggregator::Create({.max_aggregate_bytes = 10}).status()));
  CHECK(riffle::IsInvalidArgumentException(
      riffle::kpl::Aggregator::Create({.max_aggregate_records = 0}).status()));
  CHECK(riffle::IsInvalidArgumentException(riffle::kpl::Producer::Create({}).status()));
  // A record alone goes out as itself, routed by its own hash key.
  REQUIRE(aggregator->Add({"solo", "data", ""}, out).ok());
  aggregator->Flush(out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].partition_key == "solo");
  CHECK(out[0].data == "data");
  CHECK(out[0].explicit_hash_key == riffle::FormatHashKey(riffle::Md5HashKey("solo")));
  // Without a shard map every record goes alone, as the KPL sends them without one.
  auto no_map = *riffle::kpl::Aggregator::Create({});
  out.clear();
  REQUIRE(no_map->Add({"k", "1", ""}, out).ok());
  REQUIRE(no_map->Add({"k", "2", ""}, out).ok());
  CHECK(out.size() == 2);
}

TEST_CASE("FlushOlderThan: an infinite age closes nothing, a negatively infinite one all",
          "[kpl]") {
  // The cutoff was NowMillis() - age in int64: an infinite age, or a clock at the far past,
  // overflowed.
  ManualClock clock;
  auto aggregator = MakeAggregator({.clock = &clock}, OneShardMap());
  std::vector<Aggregate> out;
  REQUIRE(aggregator->Add({"k1", "a", ""}, out).ok());
  clock.Advance(absl::Milliseconds(100));
  REQUIRE(aggregator->Add({"k2", "b", ""}, out).ok());
  aggregator->FlushOlderThan(absl::Milliseconds(101), out);
  CHECK(out.empty());
  aggregator->FlushOlderThan(absl::InfiniteDuration(), out);
  CHECK(out.empty());
  aggregator->FlushOlderThan(-absl::InfiniteDuration(), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].user_records == 2);
  CHECK(aggregator->buffered_records() == 0);

  // A Producer that never closes an aggregate for age, on a clock at the far past.
  const absl::Time start = clock.Now();
  auto stream = MakeStream(&clock, 1);
  auto producer = riffle::kpl::Producer::Create(
      {.stream = stream.get(), .max_buffered_time = absl::InfiniteDuration()});
  REQUIRE(producer.ok());
  riffle::kpl::Producer& p = **producer;
  REQUIRE(p.Add({"k", "d", ""}).ok());
  clock.Set(absl::InfinitePast());
  CHECK(p.Poll() == 0);
  clock.Set(start + absl::Hours(1000));
  CHECK(p.Poll() == 0);
  CHECK(p.pending_user_records() == 1);
  p.Flush();
  CHECK(p.Poll() == 1);
  CHECK(p.last_error().ok());
}

TEST_CASE("an aggregate with its partition key fits the record limit", "[kpl]") {
  // The aggregate is put as a record of partition key "a" and its data: with a record
  // limit at or under the aggregate size, the limit decides where an aggregate closes.
  struct Limits {
    uint64_t aggregate, record;
  };
  for (const Limits limits : {Limits{uint64_t{1} << 20, uint64_t{1} << 20}, Limits{51200, 1000},
                              Limits{51200, 51200}, Limits{4096, 4097}}) {
    INFO("AggregationMaxSize " << limits.aggregate << ", record limit " << limits.record);
    // Sizes of 1 to 64 bytes among larger ones fill aggregates close to where they close.
    auto aggregator =
        MakeAggregator({.max_aggregate_bytes = limits.aggregate, .max_record_bytes = limits.record},
                       OneShardMap());
    std::vector<Aggregate> out;
    std::vector<std::string> data;
    std::mt19937_64 rng(limits.record);
    const uint64_t largest = std::min<uint64_t>(limits.record - 1, 4000);
    for (uint64_t total = 0; total < 8 * std::min(limits.aggregate, limits.record);) {
      const uint64_t size = rng() % 2 == 0 ? 1 + rng() % 64 : 1 + rng() % largest;
      data.push_back(std::string(size, static_cast<char>('a' + data.size() % 26)));
      total += size;
    }
    for (const std::string& d : data) REQUIRE(aggregator->Add({"k", d, ""}, out).ok());
    aggregator->Flush(out);
    std::vector<std::string> delivered;
    uint64_t fullest = 0;  // the largest aggregate of several records, partition key included
    for (const Aggregate& a : out) {
      CHECK(a.partition_key.size() + a.data.size() <= limits.record);
      if (a.user_records > 1) fullest = std::max(fullest, a.partition_key.size() + a.data.size());
      CHECK(a.data.size() <= limits.aggregate);
      std::vector<riffle::UserRecord> users;
      riffle::kpl::DecodeAggregate(a.data, users);
      if (a.user_records == 1) {
        delivered.push_back(a.data);
        continue;
      }
      REQUIRE(users.size() == a.user_records);
      for (const riffle::UserRecord& u : users) delivered.emplace_back(u.data);
    }
    CHECK(delivered == data);
    // Aggregates are not closed early: the fullest comes within a small record's encoding
    // of the limit that closed it (the record limit, key "a" included, or the aggregate
    // limit plus that key).
    CHECK(fullest + 128 > std::min(limits.record, limits.aggregate + 1));
  }
}

TEST_CASE("a new shard map re-packs open aggregates by their new shards", "[kpl]") {
  auto aggregator = MakeAggregator({}, OneShardMap());
  std::vector<Aggregate> out;
  for (int i = 0; i < 40; ++i) {
    REQUIRE(aggregator->Add({fmt::format("key-{}", i), fmt::format("{}", i), ""}, out).ok());
  }
  const auto ranges = riffle::UniformHashKeyRanges(2);
  std::vector<riffle::Shard> two(2);
  for (int i = 0; i < 2; ++i) {
    two[i].shard_id = riffle::FormatShardId(i + 1);
    two[i].hash_key_range = ranges[i];
  }
  aggregator->SetShardMap(two, out);
  CHECK(out.empty());
  CHECK(aggregator->buffered_records() == 40);
  aggregator->Flush(out);
  REQUIRE(out.size() == 2);
  uint64_t total = 0;
  for (const Aggregate& a : out) {
    const auto& range = a.shard_id == two[0].shard_id ? ranges[0] : ranges[1];
    CHECK(range.Contains(a.min_hash_key));
    CHECK(range.Contains(a.max_hash_key));
    total += a.user_records;
  }
  CHECK(total == 40);
}
