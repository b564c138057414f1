// KCL de-aggregation (riffle/kpl.h): DecodeAggregate, Deaggregate and Deaggregator::Decode
// on one Kinesis record's data, checked against each other and against the rules:
//   - a record that is not an aggregate comes back as itself (raw, sub-sequence number 0);
//   - an aggregate's user records are views into the record's data, numbered 0, 1, ...,
//     with the record's sequence number and arrival time, the same from every entry point;
//   - with a shard range, an aggregate is misplaced exactly when one of its user records'
//     hash keys (explicit, or the MD5 of the partition key) is outside it; a misplaced
//     aggregate is dropped whole and counted, or delivered whole on request;
//   - the batch decoder (MD5s in lanes) says what the single-record function says.
//
// Input: the record's data, tried twice: as it is, and as the protobuf of an aggregate
// (framed with the magic and its MD5, which random bytes almost never match).
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "riffle/detail/md5.h"
#include "riffle/hash_key.h"
#include "riffle/kpl.h"

namespace {

using riffle::HashKey;
using riffle::HashKeyRange;
using riffle::Record;
using riffle::UserRecord;
using riffle::kpl::RecordKind;
using riffle_fuzz::Printable;

// True when `view` lies inside `data` (an empty view may point anywhere).
bool Inside(std::string_view view, std::string_view data) {
  if (view.empty()) return true;
  return view.data() >= data.data() && view.data() + view.size() <= data.data() + data.size();
}

// The hash key the KCL checks for a user record; nullopt for an explicit hash key that is
// not one (outside every range).
// A user record's hash key as the KCL reads it for its range check: an explicit one as
// Java's BigInteger reads it (an optional sign, decimal digits, leading zeros allowed),
// nullopt when that is no hash key (not a number, negative, above 2^128-1).
std::optional<HashKey> UserHashKey(const UserRecord& u) {
  if (u.explicit_hash_key.empty()) return riffle::Md5HashKey(u.partition_key);
  std::string_view text = u.explicit_hash_key;
  const bool negative = !text.empty() && text[0] == '-';
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) text.remove_prefix(1);
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const size_t first = text.find_first_not_of('0');
  text = first == std::string_view::npos ? "0" : text.substr(first);
  if (negative && text != "0") return std::nullopt;
  auto parsed = riffle::ParseHashKey(text);
  if (!parsed.ok()) return std::nullopt;
  return *parsed;
}

bool SameUserRecords(const std::vector<UserRecord>& a, const std::vector<UserRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].partition_key.data() != b[i].partition_key.data() ||
        a[i].partition_key.size() != b[i].partition_key.size() ||
        a[i].data.data() != b[i].data.data() || a[i].data.size() != b[i].data.size() ||
        a[i].explicit_hash_key != b[i].explicit_hash_key ||
        a[i].sub_sequence_number != b[i].sub_sequence_number) {
      return false;
    }
  }
  return true;
}

void CheckRecord(const std::string& data) {
  const Record record{"pk", data, riffle::SequenceNumber{7, 3, 11, 2},
                      absl::FromUnixMillis(1700000000000)};

  // The reference: DecodeAggregate, which checks no range.
  std::vector<UserRecord> users;
  const bool aggregate = riffle::kpl::DecodeAggregate(data, users);
  FUZZ_CHECK(aggregate || users.empty(), Printable(data));
  for (size_t i = 0; i < users.size(); ++i) {
    const UserRecord& u = users[i];
    FUZZ_CHECK(
        Inside(u.partition_key, data) && Inside(u.data, data) && Inside(u.explicit_hash_key, data),
        Printable(data));
    FUZZ_CHECK(u.sub_sequence_number == i && u.aggregated, Printable(data));
  }

  // The whole key space checks nothing: the same user records, with the record's
  // sequence number and arrival time, or the record itself.
  std::vector<UserRecord> out;
  const RecordKind kind = riffle::kpl::Deaggregate(record, out);
  if (!aggregate) {
    FUZZ_CHECK(kind == RecordKind::kNotAggregated && out.size() == 1, Printable(data));
    FUZZ_CHECK(out[0].data.data() == data.data() && out[0].data.size() == data.size() &&
                   out[0].partition_key == "pk" && !out[0].aggregated &&
                   out[0].sub_sequence_number == 0 && out[0].explicit_hash_key.empty(),
               Printable(data));
  } else {
    FUZZ_CHECK(kind == RecordKind::kAggregate && SameUserRecords(out, users), Printable(data));
    for (const UserRecord& u : out) {
      FUZZ_CHECK(u.sequence_number == record.sequence_number &&
                     u.approximate_arrival_timestamp == record.approximate_arrival_timestamp,
                 Printable(data));
    }
  }

  // Two halves of the key space: misplaced exactly when a user record is outside.
  const HashKey middle = riffle::kMaxHashKey / 2;
  const std::array<HashKeyRange, 2> halves = {HashKeyRange{0, middle},
                                              HashKeyRange{middle + 1, riffle::kMaxHashKey}};
  for (const HashKeyRange& range : halves) {
    // An empty explicit hash key reads as none: it is either absent (the partition key's
    // MD5 decides) or present and empty (not a hash key, outside every range).
    bool outside = false;
    bool either = false;
    for (const UserRecord& u : users) {
      const std::optional<HashKey> h = UserHashKey(u);
      const bool in = h && range.Contains(*h);
      outside |= !in;
      either |= in && u.explicit_hash_key.empty();
    }
    out.clear();
    const RecordKind checked = riffle::kpl::Deaggregate(record, out, range);
    if (!aggregate) {
      FUZZ_CHECK(checked == RecordKind::kNotAggregated, Printable(data));
    } else if (outside) {
      FUZZ_CHECK(checked == RecordKind::kMisplacedAggregate, Printable(data));
    } else {
      FUZZ_CHECK(checked == RecordKind::kAggregate ||
                     (either && checked == RecordKind::kMisplacedAggregate),
                 Printable(data));
    }
    const bool misplaced = checked == RecordKind::kMisplacedAggregate;
    const size_t each = !aggregate ? 1 : misplaced ? 0 : users.size();
    FUZZ_CHECK(out.size() == each, Printable(data));
    if (aggregate && !misplaced) FUZZ_CHECK(SameUserRecords(out, users), Printable(data));
    out.clear();
    FUZZ_CHECK(riffle::kpl::Deaggregate(record, out, range, {.deliver_misplaced = true}) == checked,
               Printable(data));
    FUZZ_CHECK(aggregate ? SameUserRecords(out, users) : out.size() == 1, Printable(data));

    // The batch decoder agrees: the record three times, a plain record between.
    const Record plain{"plain", "not an aggregate", {}, {}};
    const std::vector<Record> batch = {record, plain, record, record};
    riffle::kpl::Deaggregator deaggregator;
    out.clear();
    deaggregator.Decode(batch, range, out);
    FUZZ_CHECK(out.size() == 3 * each + 1, Printable(data));
    FUZZ_CHECK(out[each].data == "not an aggregate", Printable(data));
    const riffle::kpl::DeaggregatorStats stats = deaggregator.stats();
    FUZZ_CHECK(stats.records == 4 && stats.aggregates == (aggregate ? 3 : 0) &&
                   stats.misplaced_aggregates == (misplaced ? 3 : 0) &&
                   stats.dropped_user_records == (misplaced ? 3 * users.size() : 0) &&
                   stats.user_records == out.size(),
               Printable(data));
    if (aggregate && !misplaced) {
      const std::vector<UserRecord> first(out.begin(), out.begin() + static_cast<ptrdiff_t>(each));
      FUZZ_CHECK(SameUserRecords(first, users), Printable(data));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = riffle_fuzz::AsText(data, size);
  CheckRecord(std::string(input));
  // The input as an aggregate's protobuf: magic | input | MD5(input).
  std::string framed(riffle::kpl::kMagic);
  framed += input;
  const std::array<uint8_t, 16> digest = riffle::detail::Md5(input.data(), input.size());
  framed.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  CheckRecord(framed);
  return 0;
}
