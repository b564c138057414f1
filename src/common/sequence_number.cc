#include "riffle/sequence_number.h"

#include <charconv>

#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle {
namespace {

// Writes `value` as exactly `width` zero-padded digits.
char* PutDigits(char* out, uint64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return out + width;
}

bool TakeDigits(std::string_view& s, int width, uint64_t* value) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  s.remove_prefix(width);
  *value = v;
  return true;
}

}  // namespace

void SequenceNumber::FormatTo(char* out) const {
  *out++ = '4';
  out = PutDigits(out, stream_tag, 9);
  out = PutDigits(out, shard_index, 8);
  out = PutDigits(out, position, 20);
  PutDigits(out, record_index, 18);
}

std::string SequenceNumber::ToString() const {
  std::string s(kDigits, '0');
  FormatTo(s.data());
  return s;
}

absl::StatusOr<SequenceNumber> SequenceNumber::Parse(std::string_view text,
                                                     std::string_view parameter) {
  auto invalid = [&] {
    return InvalidArgumentError(fmt::format(
        "{} '{}' is not a sequence number of this implementation: expected {} decimal digits "
        "starting with 4.",
        parameter, text.substr(0, 80), kDigits));
  };
  if (text.size() != kDigits || text[0] != '4') return invalid();
  for (char c : text) {
    if (c < '0' || c > '9') return invalid();
  }
  std::string_view s = text.substr(1);
  SequenceNumber n;
  TakeDigits(s, 9, &n.stream_tag);
  TakeDigits(s, 8, &n.shard_index);
  // 20 digits may exceed 2^64 - 1.
  if (s.substr(0, 20) > std::string_view("18446744073709551615")) return invalid();
  TakeDigits(s, 20, &n.position);
  TakeDigits(s, 18, &n.record_index);
  if (n.stream_tag == 0) return invalid();
  return n;
}

std::string ShardIterator::ToString() const {
  std::string s;
  FormatTo(s);
  return s;
}

void ShardIterator::FormatTo(std::string& out) const {
  // The longest text (eight 64-bit fields in hex and their separators): a buffer reused
  // across calls grows once, not each time a field gains a digit.
  constexpr std::size_t kMaxTextBytes = 8 * 16 + 7;
  out.clear();
  out.reserve(kMaxTextBytes);
  fmt::format_to(std::back_inserter(out), "{:x}-{:x}-{:x}-{:x}-{:d}-{:x}-{:x}-{:x}", stream_tag,
                 shard_index, position, next_record_index, next_record_index_known ? 1 : 0,
                 static_cast<uint64_t>(issued_at_ms), static_cast<uint64_t>(arrival_floor_ms),
                 check);
}

absl::StatusOr<ShardIterator> ShardIterator::Parse(std::string_view text) {
  constexpr int kFields = 8;
  uint64_t fields[kFields];
  std::string_view s = text;
  for (int i = 0; i < kFields; ++i) {
    const char* begin = s.data();
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(begin, end, fields[i], i == 4 ? 10 : 16);
    if (ec != std::errc() || ptr == begin || (i == 4 && fields[i] > 1)) break;
    s.remove_prefix(static_cast<std::size_t>(ptr - begin));
    if (i < kFields - 1) {
      if (s.empty() || s[0] != '-') break;
      s.remove_prefix(1);
    } else if (s.empty()) {
      ShardIterator it;
      it.stream_tag = fields[0];
      it.shard_index = fields[1];
      it.position = fields[2];
      it.next_record_index = fields[3];
      it.next_record_index_known = fields[4] != 0;
      it.issued_at_ms = static_cast<int64_t>(fields[5]);
      it.arrival_floor_ms = static_cast<int64_t>(fields[6]);
      it.check = fields[7];
      return it;
    }
  }
  return InvalidArgumentError(
      fmt::format("ShardIterator '{}' is not a valid shard iterator.", text.substr(0, 120)));
}

}  // namespace riffle
