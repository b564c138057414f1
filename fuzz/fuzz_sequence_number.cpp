// Sequence numbers: SequenceNumber::Parse against its documented form, then
// GetShardIterator AT_/AFTER_SEQUENCE_NUMBER on a live stream whose rings wrapped, and
// GetRecords from the iterator. Whatever the number, the answer is a status, never a
// crash; a read never returns a record that was not put; a real record's number is always
// accepted and reads from that record (or, trimmed, reports what it missed); a number
// that is not a real record's is accepted only below the ring's horizon, or as a
// continuation (the end of the log, or a record's position with the index before it).
//
// Input: byte 0 = options (bit 0: write the live stream's tag into digits 1-9, so that a
// seed can name a real record; bit 1: AFTER_ instead of AT_SEQUENCE_NUMBER; bits 2-4: the
// shard, 0 meaning the shard the number names; bits 5-7: the read limit), then the number.
#include <algorithm>
#include <optional>

#include "fuzz_support.h"

namespace {

using riffle_fuzz::LiveStream;
using riffle_fuzz::PutRecord;

// The first retained record of each shard (its number), from TRIM_HORIZON.
const std::map<std::string, std::optional<riffle::SequenceNumber>>& FirstRetained() {
  static const auto* first = [] {
    auto* m = new std::map<std::string, std::optional<riffle::SequenceNumber>>;
    LiveStream& live = LiveStream::Get();
    for (const std::string& id : live.shard_ids()) {
      auto it =
          live.stream().GetShardIterator({id, riffle::ShardIteratorType::kTrimHorizon, {}, {}});
      auto got = live.stream().GetRecords(it.value(), 1);
      (*m)[id] =
          got->records.empty() ? std::nullopt : std::optional(got->records[0].sequence_number);
    }
    return m;
  }();
  return *first;
}

bool ReferenceParses(std::string_view s) {
  if (s.size() != 56 || s[0] != '4') return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return s.substr(1, 9) != "000000000" && s.substr(18, 20) <= "18446744073709551615";
}

// The record put right after `put` in its shard, if any.
const PutRecord* Successor(const LiveStream& live, const PutRecord& put) {
  for (const PutRecord& r : live.records()) {
    if (r.shard_id == put.shard_id && r.number.record_index == put.number.record_index + 1)
      return &r;
  }
  return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  LiveStream& live = LiveStream::Get();
  const uint8_t options = data[0];
  std::string text(riffle_fuzz::AsText(data + 1, size - 1));
  if ((options & 1) && text.size() >= 10) {
    const std::string tag = fmt::format("{:09}", live.tag());
    text.replace(1, 9, tag);
  }

  const absl::StatusOr<riffle::SequenceNumber> n =
      riffle::SequenceNumber::Parse(text, "StartingSequenceNumber");
  FUZZ_CHECK(n.ok() == ReferenceParses(text), riffle_fuzz::Printable(text));
  if (n.ok()) {
    FUZZ_CHECK(n->ToString() == text, "SequenceNumber does not round-trip");
  } else {
    FUZZ_CHECK(riffle::IsInvalidArgumentException(n.status()), riffle_fuzz::Describe(n.status()));
  }

  const std::vector<std::string>& shards = live.shard_ids();
  const unsigned shard_choice = (options >> 2) & 7;
  std::string shard_id = shard_choice == 0
                             ? (n.ok() ? riffle::FormatShardId(n->shard_index) : shards[0])
                             : shards[(shard_choice - 1) % shards.size()];
  const bool after = options & 2;
  const riffle::ShardIteratorType type = after ? riffle::ShardIteratorType::kAfterSequenceNumber
                                               : riffle::ShardIteratorType::kAtSequenceNumber;
  const absl::StatusOr<riffle::ShardIterator> it =
      live.stream().GetShardIterator({shard_id, type, text, {}});

  const PutRecord* put = n.ok() ? live.Find(*n) : nullptr;
  const bool genuine = put != nullptr && put->shard_id == shard_id;
  if (!it.ok()) {
    FUZZ_CHECK(!genuine, fmt::format("the number of a record put ({}) was refused: {}", text,
                                     riffle_fuzz::Describe(it.status())));
    // Text outside the member's pattern 0|([1-9]\d{0,128}) is a ValidationException; no
    // number at all, or one of the right form that names no record here, the operation's
    // refusal.
    const bool decimal = text.empty() || (text.size() <= 129 && (text == "0" || text[0] != '0') &&
                                          std::all_of(text.begin(), text.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; }));
    FUZZ_CHECK(decimal ? riffle::IsInvalidArgumentException(it.status()) ||
                             riffle::IsResourceNotFoundException(it.status())
                       : riffle::IsValidationException(it.status()),
               riffle_fuzz::Describe(it.status()));
    return 0;
  }
  FUZZ_CHECK(n.ok(), "an iterator from a number that does not parse");
  const std::optional<riffle::SequenceNumber>& first = FirstRetained().at(shard_id);
  if (!genuine && !(first.has_value() && n->position < first->position &&
                    n->record_index < first->record_index)) {
    // An empty shard's continuation (position 0, the largest record index) stays valid once
    // records arrive: it reads from the shard's first record, and reports as missed those
    // retention has dropped since.
    if (n->position == 0 && n->record_index == riffle::SequenceNumber::kMaxRecordIndex) {
      riffle::GetRecordsResult probe;
      const absl::Status s = live.stream().GetRecords(*it, probe, 1);
      FUZZ_CHECK(s.ok(), riffle_fuzz::Describe(s));
      if (probe.records.empty()) {
        FUZZ_CHECK(!first.has_value(), fmt::format("{} read nothing", text));
      } else {
        FUZZ_CHECK(first.has_value() && probe.records[0].sequence_number == *first &&
                       probe.missed_records == first->record_index,
                   fmt::format("{} did not read from the shard's first record", text));
      }
      return 0;
    }
    // Above the horizon, a number that is no record's is accepted only as a continuation:
    // the end of the log, the position of a record, or the start of padding followed by
    // nothing but padding up to a record (a continuation taken where a put then padded),
    // named with that record's index or the one before it. It reads from the first record
    // put at or after its position, missing nothing, or nothing at the end.
    const PutRecord* next = nullptr;
    for (const PutRecord& r : live.records()) {
      if (r.shard_id == shard_id && r.number.position >= n->position &&
          (next == nullptr || r.number.position < next->number.position)) {
        next = &r;
      }
    }
    riffle::GetRecordsResult probe;
    const absl::Status s = live.stream().GetRecords(*it, probe, 1);
    FUZZ_CHECK(s.ok(), riffle_fuzz::Describe(s));
    if (probe.records.empty()) {
      FUZZ_CHECK(next == nullptr, fmt::format("{} was accepted and reads nothing", text));
    } else {
      const uint64_t index = probe.records[0].sequence_number.record_index;
      FUZZ_CHECK(next != nullptr && next->number == probe.records[0].sequence_number &&
                     (index == n->record_index || index == n->record_index + 1) &&
                     probe.missed_records == 0,
                 fmt::format("{} is no record of {}, yet was accepted", text, shard_id));
    }
    return 0;
  }

  static const int kLimits[8] = {1, 2, 3, 5, 10, 100, 10000, 7};
  riffle::GetRecordsResult out;
  riffle::ShardIterator iterator = *it;
  for (int page = 0; page < 3; ++page) {
    const absl::Status s = live.stream().GetRecords(iterator, out, kLimits[options >> 5]);
    FUZZ_CHECK(s.ok(), riffle_fuzz::Describe(s));
    riffle_fuzz::CheckRecordsWerePut(live, out, text);
    if (page == 0 && genuine && !out.records.empty()) {
      // From a real record: the first record is that record (or its successor), after
      // exactly the records that were trimmed in between.
      const uint64_t start = n->record_index + (after ? 1 : 0);
      FUZZ_CHECK(out.records[0].sequence_number.record_index == start + out.missed_records,
                 fmt::format("read from {} starts at index {} with {} missed", text,
                             out.records[0].sequence_number.record_index, out.missed_records));
      if (out.missed_records == 0) {
        const PutRecord* expected = after ? Successor(live, *put) : put;
        FUZZ_CHECK(expected != nullptr && expected->number == out.records[0].sequence_number,
                   "the read does not start at the record named");
      }
    }
    if (!out.next_shard_iterator) break;
    iterator = *out.next_shard_iterator;
  }
  return 0;
}
