// Hash keys and shard ids: ParseHashKey (ExplicitHashKey, NewStartingHashKey) and
// ParseShardId (every ShardId parameter), against reference parsers written from their
// documented rules; the input as an ExplicitHashKey of a live put must route to the shard
// that owns the key; FormatHashKey and FormatShardId must round-trip.
//
// Input: the text to parse.
#include <cstring>
#include <optional>

#include "fuzz_support.h"
#include "riffle/hash_key.h"

namespace {

using riffle_fuzz::Printable;

// 0|([1-9]\d{0,38}) with a value of at most 2^128 - 1.
std::optional<riffle::HashKey> ReferenceHashKey(std::string_view s) {
  if (s.empty() || s.size() > 39) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  if (s[0] == '0' && s.size() > 1) return std::nullopt;
  riffle::HashKey v = 0;
  for (char c : s) {
    const riffle::HashKey next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return std::nullopt;  // overflowed 128 bits
    v = next;
  }
  return v;
}

// "shardId-" and 12 digits, or more digits without a leading zero, up to 2^64 - 1.
std::optional<uint64_t> ReferenceShardId(std::string_view s) {
  constexpr std::string_view kPrefix = "shardId-";
  if (s.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const std::string_view digits = s.substr(kPrefix.size());
  if (digits.size() < 12) return std::nullopt;
  unsigned __int128 v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > UINT64_MAX) return std::nullopt;
  }
  if (digits.size() > 12 && digits[0] == '0') return std::nullopt;
  return static_cast<uint64_t>(v);
}

struct Routing {
  std::unique_ptr<riffle::Stream> stream;
  std::map<std::string, riffle::HashKeyRange> ranges;
};

Routing& Live() {
  static Routing* r = [] {
    auto* routing = new Routing;
    riffle::StreamOptions o;
    o.stream_name = "routing";
    o.shard_count = 3;
    o.ring_capacity_bytes = 4096;
    o.max_record_size_bytes = 64;
    routing->stream = std::move(riffle::Stream::Create(o)).value();
    // An uneven layout: split the middle shard off-centre.
    const auto shards = routing->stream->ListShards().value();
    const riffle::HashKeyRange mid = shards[1].hash_key_range;
    (void)routing->stream->SplitShard(
        shards[1].shard_id,
        riffle::FormatHashKey(mid.starting_hash_key +
                              (mid.ending_hash_key - mid.starting_hash_key) / 7));
    const std::vector<riffle::Shard> after = routing->stream->ListShards().value();
    for (const riffle::Shard& s : after) routing->ranges[s.shard_id] = s.hash_key_range;
    return routing;
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = riffle_fuzz::AsText(data, size);

  // ParseHashKey against the reference; a key prints back as the same text.
  const absl::StatusOr<riffle::HashKey> key = riffle::ParseHashKey(text, "ExplicitHashKey");
  const std::optional<riffle::HashKey> expected = ReferenceHashKey(text);
  FUZZ_CHECK(key.ok() == expected.has_value(),
             fmt::format("ParseHashKey('{}') ok={}, reference says {}", Printable(text), key.ok(),
                         expected.has_value()));
  if (key.ok()) {
    FUZZ_CHECK(*key == *expected, "ParseHashKey value differs from the reference");
    FUZZ_CHECK(riffle::FormatHashKey(*key) == text, "FormatHashKey does not round-trip");
  } else {
    FUZZ_CHECK(riffle::IsInvalidArgumentException(key.status()),
               riffle_fuzz::Describe(key.status()));
    // A huge input makes a bounded message.
    FUZZ_CHECK(key.status().message().size() < 512, "unbounded error message");
  }

  // The same text as the ExplicitHashKey of a put: accepted exactly when it parses, and
  // routed to the shard whose range holds it.
  Routing& live = Live();
  const absl::StatusOr<riffle::PutRecordResult> put = live.stream->PutRecord({"pk", "v", text, {}});
  if (!text.empty()) {
    FUZZ_CHECK(put.ok() == key.ok(), riffle_fuzz::Describe(put.status()));
  }
  if (put.ok() && key.ok()) {
    const auto it = live.ranges.find(std::string(put->shard_id));
    FUZZ_CHECK(it != live.ranges.end() && it->second.Contains(*key),
               fmt::format("hash key {} put into {}", text, put->shard_id));
  }

  // ParseShardId against the reference; an id prints back as the same text.
  const std::optional<uint64_t> id = riffle::ParseShardId(text);
  const std::optional<uint64_t> expected_id = ReferenceShardId(text);
  FUZZ_CHECK(id == expected_id, fmt::format("ParseShardId('{}')", Printable(text)));
  if (id) FUZZ_CHECK(riffle::FormatShardId(*id) == text, "FormatShardId does not round-trip");

  // The bytes as numbers: formatting and parsing are inverse, and the uniform layout's
  // multiply finds the range that holds the key.
  if (size >= 16) {
    uint64_t words[2];
    std::memcpy(words, data, 16);
    const riffle::HashKey k = absl::MakeUint128(words[0], words[1]);
    const absl::StatusOr<riffle::HashKey> back = riffle::ParseHashKey(riffle::FormatHashKey(k));
    FUZZ_CHECK(back.ok() && *back == k, "FormatHashKey/ParseHashKey round trip");
    const std::optional<uint64_t> shard = riffle::ParseShardId(riffle::FormatShardId(words[0]));
    FUZZ_CHECK(shard && *shard == words[0], "FormatShardId/ParseShardId round trip");
    if (size >= 18) {
      const int n = 1 + (data[16] | (data[17] & 3) << 8);  // 1..1024 shards
      const riffle::UniformLayout layout(n);
      const std::vector<riffle::HashKeyRange> ranges = riffle::UniformHashKeyRanges(n);
      const int i = layout.ShardIndex(k);
      FUZZ_CHECK(
          i >= 0 && i < n && ranges[static_cast<size_t>(i)].Contains(k),
          fmt::format("UniformLayout({}).ShardIndex({}) = {}", n, riffle::FormatHashKey(k), i));
    }
  }
  return 0;
}
