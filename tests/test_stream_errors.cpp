// Every bad input to the Stream gets the service's error name and a message naming the
// parameter and the limit; nothing already accepted is lost.
#include <catch2/catch.hpp>
#include <string>

#include "riffle/stream.h"

using riffle::ErrorMessage;
using riffle::ErrorName;

namespace {

riffle::StreamOptions Valid(riffle::Clock* clock = nullptr) {
  riffle::StreamOptions o;
  o.stream_name = "s";
  o.ring_capacity_bytes = 1 << 20;
  o.max_record_size_bytes = 64 << 10;
  o.clock = clock;
  return o;
}

std::string CreateError(const riffle::StreamOptions& o) {
  auto s = riffle::Stream::Create(o);
  REQUIRE_FALSE(s.ok());
  CHECK(ErrorName(s.status()) == "InvalidArgumentException");
  CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
  return ErrorMessage(s.status());
}

}  // namespace

TEST_CASE("Create validates every option", "[stream][errors]") {
  auto o = Valid();
  o.stream_name = "";
  CHECK(CreateError(o) ==
        "StreamName '' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].");
  o.stream_name = std::string(129, 'a');
  CHECK_THAT(CreateError(o), Catch::Contains("1 to 128 characters"));
  o.stream_name = "bad name";
  CHECK_THAT(CreateError(o), Catch::Contains("StreamName 'bad name' is invalid"));
  o = Valid();
  o.shard_count = 0;
  CHECK(CreateError(o) == "ShardCount is 0; it must be between 1 and 500.");
  o.shard_count = 501;
  CHECK(CreateError(o) == "ShardCount is 501; it must be between 1 and 500.");
  o = Valid();
  o.retention_period = absl::Hours(23);
  CHECK_THAT(CreateError(o), Catch::Contains("between 24 and 8760"));
  o.retention_period = absl::Hours(8761);
  CHECK_THAT(CreateError(o), Catch::Contains("between 24 and 8760"));
  o = Valid();
  o.max_record_size_bytes = (10 << 20) + 1;
  CHECK_THAT(CreateError(o), Catch::Contains("MaxRecordSizeBytes is 10485761"));
  o = Valid();
  o.ring_capacity_bytes = (1 << 20) + 8;
  CHECK_THAT(CreateError(o),
             Catch::Contains("RingCapacityBytes is 1048584; it must be a power of two"));
  o = Valid();
  o.max_record_size_bytes = 1 << 20;  // needs 4 frames of 1 MiB + header: 8 MiB
  o.ring_capacity_bytes = 4 << 20;
  CHECK_THAT(CreateError(o), Catch::Contains("between 8388608"));
  o.ring_capacity_bytes = 8 << 20;
  CHECK(riffle::Stream::Create(o).ok());
}

TEST_CASE("PutRecord rejects bad records by name and keeps what was accepted", "[stream][errors]") {
  auto s = *riffle::Stream::Create(Valid());
  REQUIRE(s->PutRecord("k", "kept").ok());
  auto expect = [&](const riffle::PutRecordRequest& r, std::string_view message) {
    auto put = s->PutRecord(r);
    REQUIRE_FALSE(put.ok());
    CHECK(ErrorName(put.status()) == "InvalidArgumentException");
    CHECK(ErrorMessage(put.status()) == message);
  };
  expect({"", "d", {}, {}},
         "PartitionKey has 0 Unicode characters; it must have between 1 and 256.");
  const std::string long_key(257, 'k');
  expect({long_key, "d", {}, {}},
         "PartitionKey has 257 Unicode characters; it must have between 1 and 256.");
  expect({"\xff", "d", {}, {}},
         "PartitionKey is not valid UTF-8; it must be 1 to 256 Unicode characters.");
  const std::string big((64 << 10), 'x');
  expect({"k", big, {}, {}},
         "Record size is 65537 bytes (partition key + data); it must be at most 65536 bytes "
         "(MaxRecordSizeBytes).");
  expect({"k", "d", "01", {}},
         "ExplicitHashKey '01' is not a valid hash key; it must match the pattern "
         "0|([1-9]\\d{0,38}) (a decimal integer from 0 to "
         "340282366920938463463374607431768211455).");
  expect({"k", "d", {}, "123"},
         "SequenceNumberForOrdering '123' is not a sequence number of this implementation: "
         "expected 56 decimal digits starting with 4.");
  // 256 two-byte characters are fine; an explicit hash key routes.
  std::string e256;
  for (int i = 0; i < 256; ++i) e256 += "\xc3\xa9";
  CHECK(s->PutRecord(e256, "d").ok());
  CHECK(s->PutRecord({"k", "d", "340282366920938463463374607431768211455", {}}).ok());
  // A number from another stream is refused; one from this stream is fine.
  auto other = *riffle::Stream::Create(Valid());
  const std::string foreign = other->PutRecord("k", "d")->sequence_number.ToString();
  auto p = s->PutRecord({"k", "d", {}, foreign});
  CHECK(ErrorName(p.status()) == "InvalidArgumentException");
  CHECK_THAT(ErrorMessage(p.status()), Catch::Contains("did not come from stream s"));
  const std::string own = s->PutRecord("k", "d")->sequence_number.ToString();
  auto ordered = s->PutRecord({"k", "next", {}, own});
  REQUIRE(ordered.ok());
  CHECK(ordered->sequence_number.ToString() > own);

  auto it = s->GetShardIterator({.shard_id = "shardId-000000000000"});
  auto r = s->GetRecords(*it);
  REQUIRE(r.ok());
  REQUIRE(r->records.size() == 5);
  CHECK(r->records[0].data == "kept");
}

TEST_CASE("PutRecords: request limits fail the call, a bad entry fails alone", "[stream][errors]") {
  auto s = *riffle::Stream::Create(Valid());
  std::vector<riffle::PutRecordsRequestEntry> none;
  auto r0 = s->PutRecords(none);
  CHECK(ErrorName(r0.status()) == "InvalidArgumentException");
  CHECK(ErrorMessage(r0.status()) == "Records has 0 entries; it must have 1 to 500.");
  std::vector<riffle::PutRecordsRequestEntry> many(501, {"k", "d", {}});
  CHECK(ErrorMessage(s->PutRecords(many).status()) ==
        "Records has 501 entries; it must have 1 to 500.");
  const std::string chunk(60 << 10, 'x');
  std::vector<riffle::PutRecordsRequestEntry> heavy(90, {"k", chunk, {}});
  CHECK_THAT(ErrorMessage(s->PutRecords(heavy).status()), Catch::Contains("at most 5242880 bytes"));

  std::vector<riffle::PutRecordsRequestEntry> mixed = {
      {"a", "1", {}}, {"", "bad key", {}}, {"c", "3", {}}, {"d", "4", "99x"}, {"e", "5", {}}};
  auto r = s->PutRecords(mixed);
  REQUIRE(r.ok());
  CHECK(r->failed_record_count == 2);
  REQUIRE(r->records.size() == 5);
  CHECK(r->records[0].sequence_number.has_value());
  CHECK(r->records[1].error_code == "InvalidArgumentException");
  CHECK_THAT(r->records[1].error_message, Catch::Contains("PartitionKey has 0"));
  CHECK(r->records[2].shard_id == "shardId-000000000000");
  CHECK(r->records[3].error_code == "InvalidArgumentException");
  CHECK(r->records[4].sequence_number.has_value());
  CHECK(*r->records[0].sequence_number < *r->records[2].sequence_number);
}

TEST_CASE("GetShardIterator and GetRecords validate like the service", "[stream][errors]") {
  riffle::ManualClock clock;
  auto s = *riffle::Stream::Create(Valid(&clock));
  const std::string seq = s->PutRecord("k", "d")->sequence_number.ToString();
  using T = riffle::ShardIteratorType;
  auto error = [&](riffle::GetShardIteratorRequest r) {
    auto it = s->GetShardIterator(r);
    REQUIRE_FALSE(it.ok());
    return std::make_pair(std::string(ErrorName(it.status())), ErrorMessage(it.status()));
  };
  CHECK(error({"shardId-000000000000", T::kAtSequenceNumber, {}, {}}) ==
        std::make_pair(std::string("InvalidArgumentException"),
                       std::string("StartingSequenceNumber is required for ShardIteratorType "
                                   "AT_SEQUENCE_NUMBER.")));
  CHECK(error({"shardId-000000000000", T::kLatest, seq, {}}).second ==
        "StartingSequenceNumber must not be given for ShardIteratorType LATEST.");
  CHECK(error({"shardId-000000000000", T::kAtTimestamp, {}, {}}).second ==
        "Timestamp is required for ShardIteratorType AT_TIMESTAMP.");
  CHECK(error({"shardId-000000000007", T::kLatest, {}, {}}) ==
        std::make_pair(std::string("ResourceNotFoundException"),
                       std::string("Shard shardId-000000000007 in stream s does not exist.")));
  CHECK(error({"nonsense", T::kLatest, {}, {}}).first == "ResourceNotFoundException");
  auto other = *riffle::Stream::Create(Valid(&clock));
  const std::string foreign = other->PutRecord("k", "d")->sequence_number.ToString();
  CHECK_THAT(error({"shardId-000000000000", T::kAtSequenceNumber, foreign, {}}).second,
             Catch::Contains("did not come from this stream"));
  // A well-formed number of this stream that names no record.
  auto n = *riffle::SequenceNumber::Parse(seq);
  n.position += 8;
  CHECK_THAT(error({"shardId-000000000000", T::kAtSequenceNumber, n.ToString(), {}}).second,
             Catch::Contains("does not identify a record"));

  auto it = *s->GetShardIterator({"shardId-000000000000", T::kTrimHorizon, {}, {}});
  riffle::GetRecordsResult r;
  for (int limit : {0, 10001}) {
    absl::Status st = s->GetRecords(it, r, limit);
    CHECK(ErrorName(st) == "InvalidArgumentException");
    CHECK(ErrorMessage(st) ==
          "Limit is " + std::to_string(limit) + "; it must be between 1 and 10000.");
  }
  CHECK(ErrorName(other->GetRecords(it, r)) == "InvalidArgumentException");
  auto parsed = riffle::ShardIterator::Parse(it.ToString());
  REQUIRE(parsed.ok());
  CHECK(*parsed == it);
  CHECK(ErrorName(riffle::ShardIterator::Parse("garbage").status()) == "InvalidArgumentException");
}

TEST_CASE("retention changes are validated in both directions", "[stream][errors]") {
  auto s = *riffle::Stream::Create(Valid());
  CHECK(ErrorName(s->DecreaseStreamRetentionPeriod(23)) == "InvalidArgumentException");
  CHECK_THAT(ErrorMessage(s->DecreaseStreamRetentionPeriod(48)),
             Catch::Contains("can not be longer than existing retention period (24 hours)"));
  REQUIRE(s->IncreaseStreamRetentionPeriod(48).ok());
  CHECK(s->DescribeStreamSummary().retention_period_hours == 48);
  CHECK_THAT(ErrorMessage(s->IncreaseStreamRetentionPeriod(24)),
             Catch::Contains("can not be shorter than existing retention period (48 hours)"));
  CHECK(ErrorName(s->IncreaseStreamRetentionPeriod(8761)) == "InvalidArgumentException");
  REQUIRE(s->DecreaseStreamRetentionPeriod(24).ok());
  const auto d = s->DescribeStreamSummary();
  CHECK(d.stream_status == riffle::StreamStatus::kActive);
  CHECK(riffle::StreamStatusName(d.stream_status) == "ACTIVE");
  CHECK(d.open_shard_count == 1);
  CHECK(d.stream_arn == "arn:aws:kinesis:local:000000000000:stream/s");
}
