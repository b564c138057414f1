// Shard iterator strings: ShardIterator::Parse, then Stream::GetRecords and
// RenewShardIterator on a live stream. An iterator the stream issued reads records that
// were put; any other (a string made up, or an issued one with any field altered) is
// refused with InvalidArgumentException and reads nothing.
//
// Input: byte 0 = options (bit 0: alter an issued iterator, byte 1 choosing which, by
// XOR with the fields of the iterator the rest of the input spells, so that
// "0-0-0-0-0-0-0-0" is the issued iterator itself; otherwise the rest is parsed as is;
// bits 5-7: the read limit), then the text.
#include "fuzz_support.h"

namespace {

using riffle_fuzz::LiveStream;

// Iterators the live stream issued: every start type on every shard, and the iterators
// that reads from them returned.
const std::vector<riffle::ShardIterator>& Issued() {
  static const auto* issued = [] {
    auto* v = new std::vector<riffle::ShardIterator>;
    LiveStream& live = LiveStream::Get();
    riffle::Stream& stream = live.stream();
    for (const std::string& id : live.shard_ids()) {
      for (auto type : {riffle::ShardIteratorType::kTrimHorizon, riffle::ShardIteratorType::kLatest,
                        riffle::ShardIteratorType::kAtTimestamp}) {
        riffle::GetShardIteratorRequest request{id, type, {}, {}};
        if (type == riffle::ShardIteratorType::kAtTimestamp)
          request.timestamp = stream.clock().Now();
        v->push_back(stream.GetShardIterator(request).value());
      }
    }
    for (const riffle_fuzz::PutRecord& r : live.records()) {
      const std::string number = r.number.ToString();
      auto it = stream.GetShardIterator(
          {r.shard_id, riffle::ShardIteratorType::kAfterSequenceNumber, number, {}});
      if (it.ok()) v->push_back(*it);
    }
    const size_t starts = v->size();
    for (size_t i = 0; i < starts; ++i) {
      auto got = stream.GetRecords((*v)[i], 3);
      if (got.ok() && got->next_shard_iterator) v->push_back(*got->next_shard_iterator);
    }
    return v;
  }();
  return *issued;
}

bool WasIssued(const riffle::ShardIterator& it) {
  for (const riffle::ShardIterator& i : Issued()) {
    if (i == it) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  LiveStream& live = LiveStream::Get();
  const std::vector<riffle::ShardIterator>& issued = Issued();
  const uint8_t options = data[0];
  const std::string_view text = riffle_fuzz::AsText(data + 2, size - 2);

  const absl::StatusOr<riffle::ShardIterator> parsed = riffle::ShardIterator::Parse(text);
  if (!parsed.ok()) {
    FUZZ_CHECK(riffle::IsInvalidArgumentException(parsed.status()),
               riffle_fuzz::Describe(parsed.status()));
    return 0;
  }
  riffle::ShardIterator it = *parsed;
  if (options & 1) {
    const riffle::ShardIterator& base = issued[data[1] % issued.size()];
    it.stream_tag ^= base.stream_tag;
    it.shard_index ^= base.shard_index;
    it.position ^= base.position;
    it.next_record_index ^= base.next_record_index;
    it.next_record_index_known = it.next_record_index_known != base.next_record_index_known;
    it.issued_at_ms ^= base.issued_at_ms;
    it.arrival_floor_ms ^= base.arrival_floor_ms;
    it.check ^= base.check;
  }
  // The string form round-trips.
  const absl::StatusOr<riffle::ShardIterator> again = riffle::ShardIterator::Parse(it.ToString());
  FUZZ_CHECK(again.ok() && *again == it, "ShardIterator::ToString does not round-trip");

  static const int kLimits[8] = {1, 2, 3, 10, 10000, 0, 10001, 5};
  const int limit = kLimits[options >> 5];
  riffle::GetRecordsResult out;
  const absl::Status s = live.stream().GetRecords(it, out, limit);
  const absl::StatusOr<riffle::ShardIterator> renewed = live.stream().RenewShardIterator(it);
  const bool limit_valid = limit >= 1 && limit <= 10000;
  if (!limit_valid) {
    // The member's range is checked before the iterator: ValidationException either way.
    FUZZ_CHECK(riffle::IsValidationException(s), riffle_fuzz::Describe(s));
    FUZZ_CHECK(out.records.empty(), "a refused read returned records");
  }
  if (WasIssued(it)) {
    FUZZ_CHECK(s.ok() || !limit_valid, riffle_fuzz::Describe(s));
    FUZZ_CHECK(renewed.ok(), riffle_fuzz::Describe(renewed.status()));
    if (s.ok()) riffle_fuzz::CheckRecordsWerePut(live, out, it.ToString());
  } else {
    FUZZ_CHECK(!limit_valid || riffle::IsInvalidArgumentException(s),
               fmt::format("altered iterator {} was not refused: {}", it.ToString(),
                           s.ok() ? "OK" : riffle_fuzz::Describe(s)));
    FUZZ_CHECK(out.records.empty(), "a refused iterator returned records");
    FUZZ_CHECK(riffle::IsInvalidArgumentException(renewed.status()),
               "RenewShardIterator accepted an altered iterator");
  }
  return 0;
}
