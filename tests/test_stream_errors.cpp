// Every bad input to the Stream gets the service's error name and a message naming the
// parameter and the limit; nothing already accepted is lost.
#include <catch2/catch.hpp>
#include <string>

#include "fmt/format.h"
#include "riffle/detail/frame.h"
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

// The message of a refused Create, checking its name (the service's members are
// ValidationException, riffle's own options InvalidArgumentException).
std::string CreateError(const riffle::StreamOptions& o,
                        std::string_view name = riffle::kInvalidArgumentException) {
  auto s = riffle::Stream::Create(o);
  REQUIRE_FALSE(s.ok());
  CHECK(ErrorName(s.status()) == name);
  CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
  return ErrorMessage(s.status());
}

}  // namespace

TEST_CASE("Create validates every option", "[stream][errors]") {
  using riffle::kValidationException;
  auto o = Valid();
  o.stream_name = "";
  CHECK(CreateError(o, kValidationException) ==
        "2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at "
        "'streamName' failed to satisfy constraint: Member must have length greater than or "
        "equal to 1");
  o.stream_name = std::string(129, 'a');
  CHECK(CreateError(o, kValidationException) ==
        "1 validation error detected: Value '" + o.stream_name +
            "' at 'streamName' failed to satisfy constraint: Member must have length less than "
            "or equal to 128");
  o.stream_name = "bad name";
  CHECK_THAT(CreateError(o, kValidationException),
             Catch::Contains("Value 'bad name' at 'streamName' failed to satisfy constraint: "
                             "Member must satisfy regular expression pattern"));
  o = Valid();
  o.shard_count = 0;
  CHECK(CreateError(o, kValidationException) ==
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1");
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
  // A frame of the largest record exactly as large as a quarter of the ring would touch a
  // segment boundary wherever it went: a put of it spun for ever.
  o.max_record_size_bytes = 992;
  REQUIRE(riffle::detail::FrameBytes(0, 992) == 1024);
  o.ring_capacity_bytes = 4096;
  CHECK_THAT(CreateError(o), Catch::Contains("between 8192"));
  o.ring_capacity_bytes = 8192;
  auto small = riffle::Stream::Create(o);
  REQUIRE(small.ok());
  for (int i = 0; i < 20; ++i) CHECK((*small)->PutRecord("k", std::string(991, 'x')).ok());
}

TEST_CASE("Create refuses enum options outside their enumerators and an endless reshard",
          "[stream][errors]") {
  auto o = Valid();
  o.routing = static_cast<riffle::RoutingMode>(7);
  CHECK(CreateError(o) == "Routing is 7; it must be RoutingMode::kMd5 or RoutingMode::kXxh3.");
  o = Valid();
  o.overflow_policy = static_cast<riffle::OverflowPolicy>(7);
  CHECK(CreateError(o) ==
        "OverflowPolicy is 7; it must be OverflowPolicy::kTrimOldest or "
        "OverflowPolicy::kRejectPut.");
  // An infinite reshard_duration passed (only negatives were refused) and overflowed the
  // UPDATING deadline at the first reshard.
  o = Valid();
  o.reshard_duration = absl::InfiniteDuration();
  CHECK(CreateError(o) == "ReshardDuration is inf; it must be between 0 and 365 days.");
  o.reshard_duration = absl::Hours(24 * 365) + absl::Milliseconds(1);
  CHECK(CreateError(o) == "ReshardDuration is 8760h0.001s; it must be between 0 and 365 days.");
  o.reshard_duration = -absl::Seconds(1);
  CHECK(CreateError(o) == "ReshardDuration is -1s; it must be between 0 and 365 days.");
  o.reshard_duration = absl::Hours(24 * 365);
  CHECK(riffle::Stream::Create(o).ok());
}

TEST_CASE("a write limit too large for the token arithmetic is unlimited, not exhausted",
          "[stream][errors]") {
  // bytes_per_second * 1000 wrapped to 0: every put was throttled for ever.
  riffle::ManualClock clock;
  auto o = Valid(&clock);
  o.write_limit = riffle::StreamOptions::WriteLimit{uint64_t{1} << 63, 1000};
  auto s = *riffle::Stream::Create(o);
  for (int i = 0; i < 3; ++i) CHECK(s->PutRecord("k", "d").ok());
  o.write_limit = riffle::StreamOptions::WriteLimit{UINT64_MAX, INT32_MAX};
  o.read_budget = riffle::StreamOptions::ReadBudget{INT32_MAX, UINT64_MAX};
  s = *riffle::Stream::Create(o);
  const std::string big(60 << 10, 'x');
  for (int i = 0; i < 10; ++i) REQUIRE(s->PutRecord("k", big).ok());
  auto it = *s->GetShardIterator({"shardId-000000000000", riffle::ShardIteratorType::kTrimHorizon});
  for (int i = 0; i < 3; ++i) {
    auto r = s->GetRecords(it);
    REQUIRE(r.ok());
    CHECK(r->records.size() == 10);
  }
  // The other limit still counts: 2 records a second, refilled by the clock.
  o.write_limit = riffle::StreamOptions::WriteLimit{uint64_t{1} << 63, 2};
  s = *riffle::Stream::Create(o);
  CHECK(s->PutRecord("k", "d").ok());
  CHECK(s->PutRecord("k", "d").ok());
  CHECK(riffle::IsProvisionedThroughputExceededException(s->PutRecord("k", "d").status()));
  clock.Advance(absl::Seconds(1));
  CHECK(s->PutRecord("k", "d").ok());
}

TEST_CASE("PutRecord rejects bad records by name and keeps what was accepted", "[stream][errors]") {
  auto s = *riffle::Stream::Create(Valid());
  REQUIRE(s->PutRecord("k", "kept").ok());
  auto expect = [&](const riffle::PutRecordRequest& r, std::string_view name,
                    std::string_view message) {
    auto put = s->PutRecord(r);
    REQUIRE_FALSE(put.ok());
    CHECK(ErrorName(put.status()) == name);
    CHECK(ErrorMessage(put.status()) == message);
  };
  using riffle::kInvalidArgumentException;
  using riffle::kValidationException;
  expect({"", "d", {}, {}}, kValidationException,
         "1 validation error detected: Value '' at 'partitionKey' failed to satisfy constraint: "
         "Member must have length greater than or equal to 1");
  const std::string long_key(257, 'k');
  expect({long_key, "d", {}, {}}, kValidationException,
         "1 validation error detected: Value '" + long_key +
             "' at 'partitionKey' failed to satisfy constraint: Member must have length less "
             "than or equal to 256");
  expect({"\xff", "d", {}, {}}, kInvalidArgumentException,
         "PartitionKey is not valid UTF-8; it must be 1 to 256 Unicode characters.");
  const std::string big((64 << 10), 'x');
  expect({"k", big, {}, {}}, kInvalidArgumentException,
         "Record size is 65537 bytes (partition key + data); it must be at most 65536 bytes "
         "(MaxRecordSizeBytes).");
  expect({"k", big + "x", {}, {}}, kValidationException,
         "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=65537 "
         "cap=65537]' at 'data' failed to satisfy constraint: Member must have length less than "
         "or equal to 65536");
  expect({"k", "d", "01", {}}, kValidationException,
         "1 validation error detected: Value '01' at 'explicitHashKey' failed to satisfy "
         "constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})");
  expect({"k", "d", "340282366920938463463374607431768211456", {}}, kInvalidArgumentException,
         "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
         "Specified value was 340282366920938463463374607431768211456");
  expect({"k", "d", {}, "123"}, kInvalidArgumentException,
         "ExclusiveMinimumSequenceNumber 123 used in PutRecord on stream s under account "
         "000000000000 is invalid.");
  expect({"", "d", "x", "y"}, kValidationException,
         "3 validation errors detected: Value 'y' at 'sequenceNumberForOrdering' failed to "
         "satisfy constraint: Member must satisfy regular expression pattern: "
         "0|([1-9]\\d{0,128}); Value '' at 'partitionKey' failed to satisfy constraint: Member "
         "must have length greater than or equal to 1; Value 'x' at 'explicitHashKey' failed "
         "to satisfy constraint: Member must satisfy regular expression pattern: "
         "0|([1-9]\\d{0,38})");
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
  CHECK_THAT(ErrorMessage(p.status()),
             Catch::Contains("used in PutRecord on stream s under account 000000000000 is "
                             "invalid."));
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
  // As the service: an invalid entry refuses the whole request (nothing is put); only
  // throttles fail an entry alone (test_account_limits.cpp).
  auto s = *riffle::Stream::Create(Valid());
  std::vector<riffle::PutRecordsRequestEntry> none;
  auto r0 = s->PutRecords(none);
  CHECK(riffle::IsValidationException(r0.status()));
  CHECK(ErrorMessage(r0.status()) ==
        "1 validation error detected: Value '[0 entries]' at 'records' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1");
  std::vector<riffle::PutRecordsRequestEntry> many(501, {"k", "d", {}});
  CHECK(ErrorMessage(s->PutRecords(many).status()) ==
        "1 validation error detected: Value '[501 entries]' at 'records' failed to satisfy "
        "constraint: Member must have length less than or equal to 500");
  const std::string chunk(60 << 10, 'x');
  std::vector<riffle::PutRecordsRequestEntry> heavy(90, {"k", chunk, {}});
  CHECK(riffle::IsInvalidArgumentException(s->PutRecords(heavy).status()));
  CHECK(ErrorMessage(s->PutRecords(heavy).status()) == "Records size exceeds 5 MB limit");

  std::vector<riffle::PutRecordsRequestEntry> mixed = {
      {"a", "1", {}}, {"", "bad key", {}}, {"c", "3", {}}, {"d", "4", "99x"}, {"e", "5", {}}};
  auto bad = s->PutRecords(mixed);
  CHECK(riffle::IsValidationException(bad.status()));
  CHECK(ErrorMessage(bad.status()) ==
        "2 validation errors detected: Value '' at 'records.2.member.partitionKey' failed to "
        "satisfy constraint: Member must have length greater than or equal to 1; Value '99x' "
        "at 'records.4.member.explicitHashKey' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: 0|([1-9]\\d{0,38})");
  std::vector<riffle::PutRecordsRequestEntry> out_of_range = {
      {"a", "1", {}}, {"b", "2", "340282366920938463463374607431768211456"}};
  CHECK(riffle::IsInvalidArgumentException(s->PutRecords(out_of_range).status()));
  // Nothing of the refused requests was put.
  auto it = s->GetShardIterator({.shard_id = "shardId-000000000000"});
  CHECK(s->GetRecords(*it)->records.empty());

  mixed[1].partition_key = "b";
  mixed[3].explicit_hash_key = "99";
  auto r = s->PutRecords(mixed);
  REQUIRE(r.ok());
  CHECK(r->failed_record_count == 0);
  REQUIRE(r->records.size() == 5);
  CHECK(r->records[0].sequence_number.has_value());
  CHECK(r->records[2].shard_id == "shardId-000000000000");
  CHECK(r->records[3].error_code.empty());
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
                       std::string("Must either specify (1) AT_SEQUENCE_NUMBER or "
                                   "AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) "
                                   "TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
                                   "Request specified AT_SEQUENCE_NUMBER and no "
                                   "StartingSequenceNumber.")));
  CHECK(error({"shardId-000000000000", T::kLatest, seq, {}}).second ==
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
        "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
        "Request specified LATEST and also a StartingSequenceNumber.");
  CHECK(error({"shardId-000000000000", T::kAtTimestamp, {}, {}}).second ==
        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current "
        "request has no timestamp parameter.");
  // A timestamp after the stream's clock: the service refuses it; the clock's own time is
  // accepted.
  const int64_t now_ms = absl::ToUnixMillis(clock.Now());
  CHECK(error({"shardId-000000000000", T::kAtTimestamp, {}, clock.Now() + absl::Milliseconds(1)}) ==
        std::make_pair(std::string("InvalidArgumentException"),
                       fmt::format("The timestampInMillis parameter cannot be greater than the "
                                   "currentTimestampInMillis. timestampInMillis: {}, "
                                   "currentTimestampInMillis: {}",
                                   now_ms + 1, now_ms)));
  CHECK(s->GetShardIterator({"shardId-000000000000", T::kAtTimestamp, {}, clock.Now()}).ok());
  CHECK(error({"shardId-000000000007", T::kLatest, {}, {}}) ==
        std::make_pair(std::string("ResourceNotFoundException"),
                       std::string("Shard shardId-000000000007 in stream s under account "
                                   "000000000000 does not exist")));
  // The service's reading of shard ids: the number after the last '-'.
  CHECK(error({"shard-7", T::kLatest, {}, {}}).second ==
        "Shard shardId-000000000007 in stream s under account 000000000000 does not exist");
  CHECK(s->GetShardIterator({"shard-0", T::kLatest, {}, {}}).ok());
  CHECK(error({"nonsense", T::kLatest, {}, {}}) ==
        std::make_pair(std::string("ResourceNotFoundException"),
                       std::string("Could not find shard nonsense in stream s under account "
                                   "000000000000.")));
  CHECK(error({"", T::kLatest, {}, {}}).first == "ValidationException");
  // A type outside the enum was read as AT_/AFTER_SEQUENCE_NUMBER ("StartingSequenceNumber
  // used in GetShardIterator ... is invalid").
  CHECK(error({"shardId-000000000000", static_cast<T>(42), {}, {}}) ==
        std::make_pair(std::string("ValidationException"),
                       std::string("1 validation error detected: Value '42' at "
                                   "'shardIteratorType' failed to satisfy constraint: Member "
                                   "must satisfy enum value set: [AT_SEQUENCE_NUMBER, "
                                   "AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, "
                                   "AT_TIMESTAMP]")));
  CHECK(error({"shardId-000000000000", T::kAtSequenceNumber, "12x", {}}).second ==
        "1 validation error detected: Value '12x' at 'startingSequenceNumber' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})");
  auto other = *riffle::Stream::Create(Valid(&clock));
  const std::string foreign = other->PutRecord("k", "d")->sequence_number.ToString();
  CHECK(error({"shardId-000000000000", T::kAtSequenceNumber, foreign, {}}).second ==
        "StartingSequenceNumber " + foreign +
            " used in GetShardIterator on shard shardId-000000000000 in stream s under account "
            "000000000000 is invalid because it did not come from this stream.");
  // A well-formed number of this stream that names no record.
  auto n = *riffle::SequenceNumber::Parse(seq);
  n.position += 8;
  CHECK_THAT(error({"shardId-000000000000", T::kAtSequenceNumber, n.ToString(), {}}).second,
             Catch::Contains("does not identify a record"));

  auto it = *s->GetShardIterator({"shardId-000000000000", T::kTrimHorizon, {}, {}});
  riffle::GetRecordsResult r;
  absl::Status st = s->GetRecords(it, r, 0);
  CHECK(riffle::IsValidationException(st));
  CHECK(ErrorMessage(st) ==
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member "
        "must have value greater than or equal to 1");
  st = s->GetRecords(it, r, 10001);
  CHECK(riffle::IsValidationException(st));
  CHECK(ErrorMessage(st) ==
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 10000");
  CHECK(ErrorName(other->GetRecords(it, r)) == "InvalidArgumentException");
  auto parsed = riffle::ShardIterator::Parse(it.ToString());
  REQUIRE(parsed.ok());
  CHECK(*parsed == it);
  CHECK(ErrorName(riffle::ShardIterator::Parse("garbage").status()) == "InvalidArgumentException");
}

TEST_CASE("a shard's StartingSequenceNumber positions an iterator while the shard is empty",
          "[stream][errors]") {
  using T = riffle::ShardIteratorType;
  riffle::ManualClock clock;
  auto s = *riffle::Stream::Create(Valid(&clock));
  auto shards = s->ListShards();
  REQUIRE(shards.ok());
  const riffle::Shard& shard = shards->front();
  const std::string start = shard.sequence_number_range.starting_sequence_number.ToString();
  auto at = s->GetShardIterator({shard.shard_id, T::kAtSequenceNumber, start, {}});
  auto after = s->GetShardIterator({shard.shard_id, T::kAfterSequenceNumber, start, {}});
  REQUIRE(at.ok());
  REQUIRE(after.ok());
  // Both read the shard's first record once it comes.
  REQUIRE(s->PutRecord("k", "first").ok());
  for (const riffle::ShardIterator& it : {*at, *after}) {
    auto r = s->GetRecords(it);
    REQUIRE(r.ok());
    REQUIRE(r->records.size() == 1);
    CHECK(r->records[0].data == "first");
  }
}

TEST_CASE("retention changes are validated in both directions", "[stream][errors]") {
  auto s = *riffle::Stream::Create(Valid());
  CHECK(ErrorName(s->DecreaseStreamRetentionPeriod(23)) == "InvalidArgumentException");
  CHECK(ErrorMessage(s->DecreaseStreamRetentionPeriod(23)) ==
        "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is "
        "too short.");
  CHECK(riffle::IsValidationException(s->IncreaseStreamRetentionPeriod(0)));
  CHECK_THAT(ErrorMessage(s->DecreaseStreamRetentionPeriod(48)),
             Catch::Contains("can not be longer than existing retention period (24 hours)"));
  REQUIRE(s->IncreaseStreamRetentionPeriod(48).ok());
  CHECK(s->DescribeStreamSummary().retention_period_hours == 48);
  CHECK_THAT(ErrorMessage(s->IncreaseStreamRetentionPeriod(24)),
             Catch::Contains("can not be shorter than existing retention period (48 hours)"));
  CHECK(ErrorName(s->IncreaseStreamRetentionPeriod(8761)) == "InvalidArgumentException");
  CHECK(ErrorMessage(s->IncreaseStreamRetentionPeriod(8761)) ==
        "Maximum allowed retention period is 8760 hours. Requested retention period (8761 "
        "hours) is too long.");
  REQUIRE(s->DecreaseStreamRetentionPeriod(24).ok());
  const auto d = s->DescribeStreamSummary();
  CHECK(d.stream_status == riffle::StreamStatus::kActive);
  CHECK(riffle::StreamStatusName(d.stream_status) == "ACTIVE");
  CHECK(d.open_shard_count == 1);
  CHECK(d.stream_arn == "arn:aws:kinesis:us-east-1:000000000000:stream/s");
}
