// The KPL format: writing an aggregate, reading one, checking its hash keys.
#include "kpl/codec.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "riffle/detail/md5.h"
#include "riffle/kpl.h"

namespace riffle::kpl::detail {
namespace {

using protozero::pbf_wire_type;
using protozero::tag_and_type;

uint64_t VarintBytes(uint64_t v) { return static_cast<uint64_t>(protozero::length_of_varint(v)); }

// A table entry or a record: tag byte, length, bytes.
uint64_t FieldBytes(uint64_t length) { return 1 + VarintBytes(length) + length; }

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A Tag message: its required key present.
bool ValidTag(std::string_view message) {
  protozero::pbf_reader tag(message);
  bool has_key = false;
  while (tag.next()) {
    has_key |= tag.tag_and_type() == tag_and_type(kTagKey, pbf_wire_type::length_delimited);
    tag.skip();
  }
  return has_key;
}

// One Record message. Fields of another number or wire type are unknown fields and
// skipped, as protobuf-java (the KCL's parser) does; a repeated scalar keeps its last value.
bool ParseRecordFields(std::string_view message, std::string_view& data, uint64_t& key_index,
                       uint64_t& explicit_hash_key_index) {
  protozero::pbf_reader record(message);
  bool has_key = false;
  bool has_data = false;
  explicit_hash_key_index = kNoIndex;
  while (record.next()) {
    switch (record.tag_and_type()) {
      case tag_and_type(kPartitionKeyIndex, pbf_wire_type::varint):
        key_index = record.get_uint64();
        has_key = true;
        break;
      case tag_and_type(kExplicitHashKeyIndex, pbf_wire_type::varint):
        explicit_hash_key_index = PresentIndex(record.get_uint64());
        break;
      case tag_and_type(kData, pbf_wire_type::length_delimited):
        data = record.get_view();
        has_data = true;
        break;
      case tag_and_type(kTags, pbf_wire_type::length_delimited):
        if (!ValidTag(record.get_view())) return false;
        break;
      default:
        record.skip();
    }
  }
  return has_key && has_data;
}

// As ParseRecordFields. The KPL and the AWS libraries write every record the same way:
// field 1, field 2 when present, field 3, nothing else; that layout is read directly (with
// protozero's varints), anything else by the general reader. Throws protozero's exceptions
// on a truncated message.
bool ParseRecord(std::string_view message, std::string_view& data, uint64_t& key_index,
                 uint64_t& explicit_hash_key_index) {
  const char* p = message.data();
  const char* const end = p + message.size();
  constexpr char kKeyTag = tag_and_type(kPartitionKeyIndex, pbf_wire_type::varint);
  constexpr char kHashKeyTag = tag_and_type(kExplicitHashKeyIndex, pbf_wire_type::varint);
  constexpr char kDataTag = tag_and_type(kData, pbf_wire_type::length_delimited);
  if (p != end && *p == kKeyTag) {
    ++p;
    const uint64_t key = protozero::decode_varint(&p, end);
    uint64_t ehk = kNoIndex;
    if (p != end && *p == kHashKeyTag) {
      ++p;
      ehk = PresentIndex(protozero::decode_varint(&p, end));
    }
    if (p != end && *p == kDataTag) {
      ++p;
      const uint64_t length = protozero::decode_varint(&p, end);
      if (length == static_cast<uint64_t>(end - p)) {  // the data ends the message
        data = std::string_view(p, length);
        key_index = key;
        explicit_hash_key_index = ehk;
        return true;
      }
    }
  }
  return ParseRecordFields(message, data, key_index, explicit_hash_key_index);
}

// A length-delimited field's bytes at `p` (its length, then the bytes), as protozero reads
// them: the length is read as 32 bits. Throws protozero's exceptions past `end`.
std::string_view ReadBytes(const char*& p, const char* end) {
  const auto length = static_cast<protozero::pbf_length_type>(protozero::decode_varint(&p, end));
  if (end - p < static_cast<ptrdiff_t>(length)) throw protozero::end_of_buffer_exception();
  const std::string_view bytes(p, length);
  p += length;
  return bytes;
}

// One field of an AggregatedRecord at `p`, moving `p` past it: its tag and wire type, and
// its bytes when it is length-delimited (tag_and_type 0 for a field that was skipped).
// The KPL's fields (a one-byte tag of field 1, 2 or 3, length-delimited) are read here;
// any other field by protozero's reader, which applies protobuf's rules to it.
uint32_t ReadField(const char*& p, const char* end, std::string_view& bytes) {
  constexpr char kKeyTable = tag_and_type(kPartitionKeyTable, pbf_wire_type::length_delimited);
  constexpr char kHashKeyTable =
      tag_and_type(kExplicitHashKeyTable, pbf_wire_type::length_delimited);
  constexpr char kRecord = tag_and_type(kRecords, pbf_wire_type::length_delimited);
  const char tag = *p;
  if (tag == kRecord || tag == kKeyTable || tag == kHashKeyTable) {
    ++p;
    bytes = ReadBytes(p, end);
    return static_cast<uint32_t>(tag);
  }
  protozero::pbf_reader field(std::string_view(p, static_cast<size_t>(end - p)));
  field.next();
  uint32_t read = 0;
  switch (field.tag_and_type()) {
    case tag_and_type(kPartitionKeyTable, pbf_wire_type::length_delimited):
    case tag_and_type(kExplicitHashKeyTable, pbf_wire_type::length_delimited):
    case tag_and_type(kRecords, pbf_wire_type::length_delimited):
      read = field.tag_and_type();
      bytes = field.get_view();
      break;
    default:
      field.skip();
  }
  p = end - field.length();
  return read;
}

}  // namespace

// ---- AggregateBuilder ----

uint64_t AggregateBuilder::RecordBytes(uint64_t key_index, std::optional<uint64_t> ehk_index,
                                       uint64_t data_size) const {
  uint64_t n = 1 + VarintBytes(key_index) + FieldBytes(data_size);
  if (ehk_index) n += 1 + VarintBytes(*ehk_index);
  return n;
}

uint64_t AggregateBuilder::SizeWith(std::string_view partition_key,
                                    std::string_view explicit_hash_key, uint64_t data_size) const {
  uint64_t protobuf = protobuf_bytes_;
  uint64_t key_index = keys_.size();
  if (auto it = key_index_.find(AbslView(partition_key)); it != key_index_.end()) {
    key_index = it->second;
  } else {
    protobuf += FieldBytes(partition_key.size());
  }
  std::optional<uint64_t> ehk_index;
  if (!explicit_hash_key.empty()) {
    ehk_index = explicit_hash_keys_.size();
    if (auto it = explicit_hash_key_index_.find(AbslView(explicit_hash_key));
        it != explicit_hash_key_index_.end()) {
      ehk_index = it->second;
    } else {
      protobuf += FieldBytes(explicit_hash_key.size());
    }
  }
  return kFramingBytes + protobuf + FieldBytes(RecordBytes(key_index, ehk_index, data_size));
}

uint64_t AggregateBuilder::IndexOf(std::string_view key, std::vector<std::string>& table,
                                   absl::flat_hash_map<std::string, uint64_t>& index) {
  if (auto it = index.find(AbslView(key)); it != index.end()) return it->second;
  const uint64_t i = table.size();
  index.emplace(std::string(key), i);
  table.emplace_back(key);
  protobuf_bytes_ += FieldBytes(key.size());
  return i;
}

void AggregateBuilder::Add(std::string_view partition_key, std::string_view explicit_hash_key,
                           std::string_view data) {
  const uint64_t key_index = IndexOf(partition_key, keys_, key_index_);
  std::optional<uint64_t> ehk_index;
  if (!explicit_hash_key.empty()) {
    ehk_index = IndexOf(explicit_hash_key, explicit_hash_keys_, explicit_hash_key_index_);
  }
  const uint64_t record_bytes = RecordBytes(key_index, ehk_index, data.size());
  [[maybe_unused]] const size_t before = records_.size();
  protozero::pbf_writer records(records_);
  {
    protozero::pbf_writer record(records, kRecords, record_bytes);  // the length is known
    record.add_uint64(kPartitionKeyIndex, key_index);
    if (ehk_index) record.add_uint64(kExplicitHashKeyIndex, *ehk_index);
    record.add_bytes(kData, data.data(), data.size());
  }
  assert(records_.size() - before == FieldBytes(record_bytes));
  protobuf_bytes_ += FieldBytes(record_bytes);
  ++count_;
}

void AggregateBuilder::Finish(std::string& out) {
  out.reserve(out.size() + size());
  out.append(kMagic);
  const size_t body = out.size();
  {
    protozero::pbf_writer writer(out);
    for (const std::string& k : keys_) writer.add_string(kPartitionKeyTable, k);
    for (const std::string& k : explicit_hash_keys_) writer.add_string(kExplicitHashKeyTable, k);
  }
  out.append(records_);
  const auto digest = riffle::detail::Md5(out.data() + body, out.size() - body);
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  Clear();
}

void AggregateBuilder::Clear() {
  keys_.clear();
  explicit_hash_keys_.clear();
  key_index_.clear();
  explicit_hash_key_index_.clear();
  records_.clear();
  protobuf_bytes_ = 0;
  count_ = 0;
}

// ---- Reading ----

DecodeScratch& ThreadScratch() {
  static thread_local DecodeScratch scratch;
  return scratch;
}

bool DigestMatches(std::string_view data, const uint32_t state[4]) {
  unsigned char digest[16];
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 4; ++i) digest[4 * w + i] = static_cast<unsigned char>(state[w] >> (8 * i));
  }
  return std::memcmp(digest, data.data() + data.size() - 16, 16) == 0;
}

bool ParseAggregatedRecord(std::string_view body, const Record& outer, RangeCheck* check,
                           std::vector<UserRecord>& out, DecodeScratch& s) {
  const size_t first = out.size();
  const size_t first_job = check != nullptr ? check->key_jobs.size() : 0;
  s.keys.clear();
  s.explicit_hash_keys.clear();
  s.key_met.clear();
  s.explicit_hash_key_met.clear();
  s.unresolved.clear();
  auto fail = [&] {
    out.resize(first);
    if (check != nullptr) check->key_jobs.resize(first_job);
    return false;
  };
  // A user record's table entries: its views, and the range check of its hash key, once
  // per entry.
  auto resolve = [&](UserRecord& u, uint64_t key, uint64_t ehk) {
    u.partition_key = s.keys[key];
    if (ehk != kNoIndex) u.explicit_hash_key = s.explicit_hash_keys[ehk];
    if (check == nullptr) return;
    if (ehk == kNoIndex) {
      if (s.key_met[key]) return;
      s.key_met[key] = 1;
      Md5Job& job = check->key_jobs.emplace_back();
      job.data = reinterpret_cast<const unsigned char*>(u.partition_key.data());
      job.size = u.partition_key.size();
      check->long_key |= job.size > 55;
    } else if (!s.explicit_hash_key_met[ehk]) {
      s.explicit_hash_key_met[ehk] = 1;
      const std::optional<HashKey> h = ParseKclHashKey(u.explicit_hash_key);
      check->explicit_outside |= !h || !check->range.Contains(*h);
    }
  };
  // What every user record of the aggregate shares, copied whole into each (building each
  // from its fields went through a temporary on the stack).
  UserRecord shared;
  shared.sequence_number = outer.sequence_number;
  shared.approximate_arrival_timestamp = outer.approximate_arrival_timestamp;
  shared.aggregated = true;
  uint64_t sub = 0;
  try {
    // One pass. The KPL writes the tables first, so a record's entries are known when it
    // is read; one that names an entry further on is resolved after the pass.
    const char* p = body.data();
    const char* const end = p + body.size();
    while (p != end) {
      std::string_view bytes;
      switch (ReadField(p, end, bytes)) {
        case tag_and_type(kRecords, pbf_wire_type::length_delimited): {
          std::string_view data;
          uint64_t key = 0;
          uint64_t ehk = kNoIndex;
          if (!ParseRecord(bytes, data, key, ehk)) return fail();
          out.push_back(shared);
          UserRecord& u = out.back();
          u.data = data;
          u.sub_sequence_number = sub++;
          // Claims the user records' lines a few records ahead: writing them when they are
          // not in the cache stalled the parse on full store buffers.
          __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(&u) +
                                                           8 * sizeof(UserRecord)),
                             1);
          if (key < s.keys.size() && (ehk == kNoIndex || ehk < s.explicit_hash_keys.size())) {
            resolve(u, key, ehk);
          } else {
            s.unresolved.push_back({out.size() - 1, key, ehk});
          }
          break;
        }
        case tag_and_type(kPartitionKeyTable, pbf_wire_type::length_delimited):
          s.keys.push_back(bytes);
          s.key_met.push_back(0);
          break;
        case tag_and_type(kExplicitHashKeyTable, pbf_wire_type::length_delimited):
          s.explicit_hash_keys.push_back(bytes);
          s.explicit_hash_key_met.push_back(0);
          break;
        default:
          break;
      }
    }
  } catch (const protozero::exception&) {
    return fail();
  }
  for (const DecodeScratch::Unresolved& r : s.unresolved) {
    if (r.key >= s.keys.size() ||
        (r.explicit_hash_key != kNoIndex && r.explicit_hash_key >= s.explicit_hash_keys.size())) {
      return fail();  // the KCL throws here; riffle passes the record through
    }
    resolve(out[r.user], r.key, r.explicit_hash_key);
  }
  return true;
}

std::optional<HashKey> ParseKclHashKey(std::string_view text) {
  constexpr std::string_view kMax = "340282366920938463463374607431768211455";  // 2^128-1
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  while (text.size() > 1 && text[0] == '0') text.remove_prefix(1);
  if ((negative && text != "0") || text.size() > kMax.size() ||
      (text.size() == kMax.size() && text > kMax)) {
    return std::nullopt;
  }
  HashKey v = 0;
  for (char c : text) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

namespace {

void AppendRaw(const Record& record, std::vector<UserRecord>& out) {
  out.push_back(UserRecord{record, {}, 0, false});
}

}  // namespace

namespace {

// Parses a chunk's aggregates into `out` (as if every digest matched; with `matched`, one
// flag per record, only those it marks), queueing the MD5 jobs of their bodies and of the
// partition keys the range check needs, and their entries in s.aggregates; anything else
// passes through. Returns whether a queued key is over 55 bytes (two blocks).
bool ParseChunk(std::span<const Record> records, size_t first_index, const HashKeyRange& range,
                const std::vector<uint8_t>* matched, std::vector<UserRecord>& out,
                DecodeScratch& s) {
  const bool check = !IsWholeKeySpace(range);
  s.body_jobs.clear();
  s.key_jobs.clear();
  bool long_keys = false;
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    const size_t first_user = out.size();
    const size_t first_job = s.key_jobs.size();
    RangeCheck range_check{range, s.key_jobs};
    if (!HasAggregateFraming(r.data) || (matched != nullptr && (*matched)[i] == 0) ||
        !ParseAggregatedRecord(AggregateBody(r.data), r, check ? &range_check : nullptr, out, s)) {
      AppendRaw(r, out);
      continue;
    }
    const bool misplaced = range_check.explicit_outside;
    if (misplaced) s.key_jobs.resize(first_job);  // no need to hash them
    long_keys |= range_check.long_key && !misplaced;
    s.aggregates.push_back(
        {first_index + i, first_user, out.size(), first_job, s.key_jobs.size(), misplaced});
    const std::string_view body = AggregateBody(r.data);
    Md5Job& job = s.body_jobs.emplace_back();
    job.data = reinterpret_cast<const unsigned char*>(body.data());
    job.size = body.size();
  }
  return long_keys;
}

// One chunk of a batch, appended to `out` and its aggregates to s.aggregates. Every
// aggregate is parsed first (as if its digest matched); then the aggregates' MD5s run in
// lanes with the partition keys in the lanes they leave idle; then the digests and the hash
// keys are checked. A digest that does not match (rare: a record that only looks like an
// aggregate) has the chunk parsed again without it, and only its keys hashed again.
void DecodeChunk(std::span<const Record> records, size_t first_index, const HashKeyRange& range,
                 std::vector<UserRecord>& out, DecodeScratch& s) {
  const size_t chunk_first = out.size();
  const size_t first_aggregate = s.aggregates.size();
  if (!ParseChunk(records, first_index, range, nullptr, out, s)) {
    Md5Jobs(s.body_jobs.data(), s.body_jobs.size(), s.key_jobs.data(), s.key_jobs.size());
  } else {  // keys of two blocks are long jobs for the lanes: hashed apart
    Md5Jobs(s.body_jobs.data(), s.body_jobs.size());
    Md5Jobs(s.key_jobs.data(), s.key_jobs.size());
  }
  bool all_matched = true;
  for (size_t a = first_aggregate; a < s.aggregates.size(); ++a) {
    all_matched &= DigestMatches(records[s.aggregates[a].record - first_index].data,
                                 s.body_jobs[a - first_aggregate].state);
  }
  if (!all_matched) {
    s.matched.assign(records.size(), 0);
    for (size_t a = first_aggregate; a < s.aggregates.size(); ++a) {
      const size_t i = s.aggregates[a].record - first_index;
      s.matched[i] = DigestMatches(records[i].data, s.body_jobs[a - first_aggregate].state);
    }
    out.resize(chunk_first);
    s.aggregates.resize(first_aggregate);
    ParseChunk(records, first_index, range, &s.matched, out, s);
    Md5Jobs(s.key_jobs.data(), s.key_jobs.size());
  }
  for (size_t a = first_aggregate; a < s.aggregates.size(); ++a) {
    DecodeScratch::Parsed& parsed = s.aggregates[a];
    bool outside = false;
    for (size_t j = parsed.first_job; j < parsed.end_job; ++j) {
      outside |= !range.Contains(Md5JobHashKey(s.key_jobs[j]));
    }
    parsed.misplaced |= outside;
  }
}

}  // namespace

void DecodeRecords(std::span<const Record> records, const HashKeyRange& range,
                   bool deliver_misplaced, std::vector<UserRecord>& out, DecodeCounts& counts,
                   RecordKind* kinds) {
  DecodeScratch& s = ThreadScratch();
  const size_t batch_first = out.size();
  s.aggregates.clear();
  // Chunks of as many aggregates as the widest lanes (a 10 MiB batch of 200 aggregates in
  // one would keep 4 MB of jobs and parsed records between the parse and the MD5s).
  constexpr size_t kChunkAggregates = 32;
  for (size_t i = 0; i < records.size();) {
    size_t end = i;
    for (size_t framed = 0; end < records.size() && framed < kChunkAggregates; ++end) {
      framed += HasAggregateFraming(records[end].data);
    }
    DecodeChunk(records.subspan(i, end - i), i, range, out, s);
    i = end;
  }
  if (kinds != nullptr) std::fill(kinds, kinds + records.size(), RecordKind::kNotAggregated);
  counts.aggregates += s.aggregates.size();
  bool any_dropped = false;
  for (const DecodeScratch::Parsed& a : s.aggregates) {
    if (kinds != nullptr) kinds[a.record] = RecordKind::kAggregate;
    if (!a.misplaced) continue;
    ++counts.misplaced;
    if (kinds != nullptr) kinds[a.record] = RecordKind::kMisplacedAggregate;
    if (deliver_misplaced) continue;
    counts.dropped += a.end_user - a.first_user;
    any_dropped = true;
  }
  if (!any_dropped) return;
  // Close the gaps the dropped aggregates leave, keeping the order.
  size_t write = batch_first;
  size_t read = batch_first;
  for (const DecodeScratch::Parsed& a : s.aggregates) {
    if (!a.misplaced) continue;
    write = static_cast<size_t>(
        std::copy(out.begin() + read, out.begin() + a.first_user, out.begin() + write) -
        out.begin());
    read = a.end_user;
  }
  write = static_cast<size_t>(std::copy(out.begin() + read, out.end(), out.begin() + write) -
                              out.begin());
  out.resize(write);
}

}  // namespace riffle::kpl::detail
