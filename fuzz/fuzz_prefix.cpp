// Firehose prefixes and dynamic partitioning keys: PrefixTemplate::Parse and Evaluate
// (src/delivery/object_key.h), then a DeliveryStream whose Prefix is the input's and whose
// partition key function returns the input's values. A prefix is accepted or refused with
// InvalidArgumentException; evaluation is deterministic; a record with a missing, empty or
// oversized value goes to the error output, every other record is delivered, and an
// object never mixes records of different partitions.
//
// Input: byte 0 = options (bit 0: parse as an ErrorOutputPrefix), then the prefix up to the
// first newline, then one line per record (at most 32) of TAB-separated "name=value" pairs
// (the partition values the function returns for it; an empty line returns none).
#include <set>

#include "delivery/object_key.h"
#include "fuzz_support.h"
#include "riffle/delivery_stream.h"
#include "riffle/sink.h"

namespace {

using riffle_fuzz::Printable;
using riffle_fuzz::Split;
using Values = riffle::PartitionKeys::Values;

// Partition values as the function sets them: a name set twice keeps its last value.
std::map<std::string, std::string> AsMap(const Values& values) {
  return {values.begin(), values.end()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool is_error_prefix = data[0] & 1;
  const std::vector<std::string_view> lines = Split(riffle_fuzz::AsText(data + 1, size - 1), '\n');
  const std::string_view prefix = lines[0];
  std::vector<Values> records;
  for (size_t i = 1; i < lines.size() && records.size() < 32; ++i) {
    riffle::PartitionKeys keys;
    if (!lines[i].empty()) {
      for (std::string_view pair : Split(lines[i], '\t')) {
        const size_t eq = pair.find('=');
        if (eq == std::string_view::npos) continue;
        keys.Set(pair.substr(0, eq), pair.substr(eq + 1));
      }
    }
    records.emplace_back(keys.values().begin(), keys.values().end());
  }

  const absl::StatusOr<riffle::detail::PrefixTemplate> t = riffle::detail::PrefixTemplate::Parse(
      prefix, is_error_prefix ? "ErrorOutputPrefix" : "Prefix", is_error_prefix);
  if (!t.ok()) {
    FUZZ_CHECK(riffle::IsInvalidArgumentException(t.status()), riffle_fuzz::Describe(t.status()));
    return 0;
  }
  const absl::Time when = absl::FromUnixSeconds(1767225600 + 3723);
  const Values none;
  const Values& values = records.empty() ? none : records[0];
  std::string first, second;
  std::mt19937_64 rng1(7), rng2(7);
  t->Evaluate(when, values, "processing-failed", rng1, &first);
  t->Evaluate(when, values, "processing-failed", rng2, &second);
  FUZZ_CHECK(first == second, "Evaluate is not deterministic");
  // The 512-character rule: a prefix that passes it evaluates (partition values aside) to at
  // most 512 characters.
  const bool length_ok = t->CheckEvaluatedLength("Prefix").ok();
  std::string bare;
  t->Evaluate(when, none, "partitioning-failed", rng1, &bare);
  FUZZ_CHECK(!length_ok || bare.size() <= 512,
             fmt::format("a prefix within the 512-character rule evaluates to {} characters",
                         bare.size()));
  if (prefix.find("!{") == std::string_view::npos) {
    FUZZ_CHECK(first == std::string(prefix) + "2026/01/01/01/",
               fmt::format("a prefix without expressions evaluates to '{}'", Printable(first)));
  }
  // The partition key names the prefix uses, found one by one.
  Values all_named;
  for (std::string_view missing; !(missing = t->MissingPartitionKey(all_named)).empty();) {
    FUZZ_CHECK(all_named.size() < 200, "MissingPartitionKey names a key it was given");
    all_named.emplace_back(std::string(missing), "v");
  }
  FUZZ_CHECK(all_named.empty() != t->uses_partition_keys() || is_error_prefix,
             "uses_partition_keys disagrees with MissingPartitionKey");
  if (is_error_prefix || !t->uses_partition_keys()) return 0;

  // The prefix drives a DeliveryStream with dynamic partitioning.
  riffle::ManualClock clock(when);
  riffle::MemorySink sink, errors;
  riffle::DeliveryStreamOptions o;
  o.delivery_stream_name = "fuzzed";
  o.sink = &sink;
  o.error_sink = &errors;
  o.clock = &clock;
  o.random_seed = 1;
  o.prefix = std::string(prefix);
  o.buffering_hints.interval_in_seconds = 0;
  o.partition_key_function = [&records](std::string_view record, const riffle::RecordMetadata&,
                                        riffle::PartitionKeys& keys) {
    const size_t i = static_cast<size_t>(std::stoi(std::string(record.substr(1))));
    for (const auto& [name, value] : records[i]) keys.Set(name, value);
    return !records[i].empty();
  };
  auto ds = riffle::DeliveryStream::Create(std::move(o));
  if (!length_ok) {
    FUZZ_CHECK(riffle::IsInvalidArgumentException(ds.status()), riffle_fuzz::Describe(ds.status()));
    return 0;
  }
  FUZZ_CHECK(ds.ok(), riffle_fuzz::Describe(ds.status()));
  std::set<size_t> valid;  // records that must be delivered
  for (size_t i = 0; i < records.size(); ++i) {
    FUZZ_CHECK((*ds)->PutRecord(fmt::format("R{};", i)).ok(), "PutRecord");
    bool ok = !records[i].empty();
    for (const auto& [name, value] : records[i]) ok = ok && !value.empty() && value.size() <= 512;
    for (const auto& [name, unused] : all_named) {
      bool found = false;
      for (const auto& [n, v] : records[i]) found = found || n == name;
      ok = ok && found;
    }
    if (ok) valid.insert(i);
  }
  FUZZ_CHECK((*ds)->Close().ok(), "Close");
  const riffle::DeliveryStreamMetrics m = (*ds)->GetMetrics();
  FUZZ_CHECK(m.incoming_records == records.size() &&
                 m.delivery_records + m.error_output_records == records.size(),
             "records lost or counted twice");

  std::set<size_t> delivered;
  for (const auto& [key, body] : sink.Objects()) {
    std::optional<std::map<std::string, std::string>> partition;
    for (std::string_view r : Split(body, ';')) {
      if (r.empty()) continue;
      const size_t i = static_cast<size_t>(std::stoi(std::string(r.substr(1))));
      FUZZ_CHECK(delivered.insert(i).second, "a record delivered twice");
      const std::map<std::string, std::string> values_i = AsMap(records[i]);
      if (!partition) partition = values_i;
      FUZZ_CHECK(*partition == values_i,
                 fmt::format("object '{}' mixes partitions (record {})", Printable(key), i));
      for (const auto& [name, unused] : all_named) {
        FUZZ_CHECK(key.find(values_i.at(name)) != std::string::npos,
                   fmt::format("object key '{}' lacks the value of {}", Printable(key), name));
      }
    }
  }
  FUZZ_CHECK(delivered == valid, "delivered records differ from the valid ones");
  return 0;
}
