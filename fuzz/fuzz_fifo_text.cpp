// The FIFO queue's text rules (src/fifo/fifo_text.h) against reference implementations
// written from the SQS rules they document: group, deduplication and attempt ids, batch
// entry ids, queue names, message body characters, message attributes, and receipt
// handles (parse, and format/parse round trips).
//
// Input: the text every rule is applied to; for attributes, up to 12 lines of
// "name<TAB>type<TAB>value".
#include <algorithm>
#include <cstring>
#include <regex>

#include "fifo/fifo_text.h"
#include "fuzz_support.h"

namespace {

using riffle_fuzz::Printable;

bool IsAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Strict UTF-8 decoding; the first byte offset where the text stops being well-formed
// UTF-8 of allowed characters (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF),
// or npos. `cp` is the code point when the sequence there is well-formed, else -1.
size_t ReferenceInvalidBodyChar(std::string_view s, int64_t* cp) {
  for (size_t i = 0; i < s.size();) {
    const unsigned b0 = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (b0 < 0x80) {
      n = 1, v = b0;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      n = 2, v = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      n = 3, v = b0 & 0x0F;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      n = 4, v = b0 & 0x07;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      *cp = -1;
      return i;
    }
    bool well_formed = s.size() - i >= n;
    for (size_t k = 1; well_formed && k < n; ++k) {
      const unsigned b = static_cast<unsigned char>(s[i + k]);
      well_formed = b >= (k == 1 ? lo : 0x80) && b <= (k == 1 ? hi : 0xBF);
      v = v << 6 | (b & 0x3F);
    }
    if (!well_formed) {
      *cp = -1;
      return i;
    }
    const bool allowed = v == 0x9 || v == 0xA || v == 0xD || (v >= 0x20 && v <= 0xD7FF) ||
                         (v >= 0xE000 && v <= 0xFFFD) || (v >= 0x10000 && v <= 0x10FFFF);
    if (!allowed) {
      *cp = v;
      return i;
    }
    i += n;
  }
  return std::string_view::npos;
}

// A Number value: the syntax, then at most 38 significant digits and zero or a magnitude in
// [10^-128, 10^126).
bool ReferenceNumberOk(const std::string& v, const std::regex& syntax) {
  if (!std::regex_match(v, syntax)) return false;
  const size_t e = v.find_first_of("eE");
  std::string mantissa = v.substr(0, e);
  if (mantissa[0] == '+' || mantissa[0] == '-') mantissa.erase(0, 1);
  const size_t point = std::min(mantissa.find('.'), mantissa.size());
  if (point < mantissa.size()) mantissa.erase(point, 1);
  const size_t first = mantissa.find_first_not_of('0');
  if (first == std::string::npos) return true;  // zero, whatever the exponent
  const size_t last = mantissa.find_last_not_of('0');
  if (last - first + 1 > 38) return false;
  std::string exponent = e == std::string::npos ? "0" : v.substr(e + 1);
  const bool negative = exponent[0] == '-';
  if (exponent[0] == '+' || exponent[0] == '-') exponent.erase(0, 1);
  exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size()));
  if (exponent.size() > 9) return false;  // |exponent| >= 10^9: far out of range
  const int64_t x = exponent.empty() ? 0 : std::stoll(exponent);
  const int64_t magnitude =
      static_cast<int64_t>(point) - static_cast<int64_t>(first) - 1 + (negative ? -x : x);
  return magnitude >= -128 && magnitude < 126;
}

// The error name a set of attributes earns (SQS's rules, checked in the documented
// order), "" when valid; *bytes gets their size.
std::string_view ReferenceAttributesError(const riffle::MessageAttributes& attributes,
                                          size_t* bytes) {
  static const std::regex number(R"([+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)");
  if (attributes.size() > 10) return riffle::kInvalidParameterValue;
  for (const auto& [name, value] : attributes) {
    bool ok = !name.empty() && name.size() <= 256 && name.front() != '.' && name.back() != '.' &&
              name.find("..") == std::string::npos;
    // ASCII letters, digits, '_', '-', '.', and the letters U+00C0..U+017F.
    for (size_t i = 0; ok && i < name.size();) {
      const char c = name[i];
      if (IsAlnum(c) || c == '_' || c == '-' || c == '.') {
        ++i;
        continue;
      }
      // U+00C0..U+017F in UTF-8: C3 80 .. C5 BF.
      const auto lead = static_cast<unsigned char>(c);
      const auto next = i + 1 < name.size() ? static_cast<unsigned char>(name[i + 1]) : 0u;
      ok = lead >= 0xC3 && lead <= 0xC5 && next >= 0x80 && next <= 0xBF;
      i += 2;
    }
    std::string lower = name.substr(0, 7);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!ok || lower.starts_with("aws.") || lower.starts_with("amazon.")) {
      return riffle::kInvalidParameterValue;
    }
    const std::string& type = value.data_type;
    auto base_is = [&](std::string_view base) {
      return type == base ||
             (type.starts_with(std::string(base) + ".") && type.size() > base.size() + 1);
    };
    const bool binary = base_is("Binary");
    if (type.size() > 256 || !(base_is("String") || base_is("Number") || binary)) {
      return riffle::kInvalidParameterValue;
    }
    const std::string& v = binary ? value.binary_value : value.string_value;
    if (v.empty()) return riffle::kInvalidParameterValue;
    int64_t cp;
    if (!binary && ReferenceInvalidBodyChar(v, &cp) != std::string_view::npos) {
      return riffle::kInvalidParameterValue;  // as the service answers for an attribute value
    }
    if (base_is("Number") && !ReferenceNumberOk(v, number)) return riffle::kInvalidParameterValue;
    *bytes += name.size() + type.size() + v.size();
  }
  return "";
}

riffle::MessageAttributes AttributesFrom(std::string_view text) {
  riffle::MessageAttributes attributes;
  size_t at = 0;
  for (int line = 0; line < 12 && at < text.size(); ++line) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view l = text.substr(at, end - at);
    at = end + 1;
    const size_t t1 = l.find('\t');
    const size_t t2 = t1 == std::string_view::npos ? t1 : l.find('\t', t1 + 1);
    if (t2 == std::string_view::npos) continue;
    riffle::MessageAttributeValue v;
    v.data_type = std::string(l.substr(t1 + 1, t2 - t1 - 1));
    const std::string value(l.substr(t2 + 1));
    if (v.data_type.starts_with("Binary")) {
      v.binary_value = value;
    } else {
      v.string_value = value;
    }
    attributes[std::string(l.substr(0, t1))] = std::move(v);
  }
  return attributes;
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

uint64_t Hex(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) v = v << 4 | static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = riffle_fuzz::AsText(data, size);

  // MessageGroupId, MessageDeduplicationId, ReceiveRequestAttemptId.
  {
    bool ok = !text.empty() && text.size() <= 128;
    for (char c : text)
      ok = ok && static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7E;
    const absl::Status s = riffle::detail::ValidateFifoId("MessageGroupId", text);
    FUZZ_CHECK(s.ok() == ok, Printable(text));
    if (!s.ok()) {
      FUZZ_CHECK(riffle::HasErrorName(
                     s, text.empty() ? riffle::kMissingParameter : riffle::kInvalidParameterValue),
                 riffle_fuzz::Describe(s));
    }
  }
  // Batch entry ids.
  {
    bool ok = !text.empty() && text.size() <= 80;
    for (char c : text) ok = ok && (IsAlnum(c) || c == '-' || c == '_');
    const absl::Status s = riffle::detail::ValidateBatchEntryId(text);
    FUZZ_CHECK(s.ok() == ok, Printable(text));
    if (!s.ok())
      FUZZ_CHECK(riffle::HasErrorName(s, riffle::kInvalidBatchEntryId), "batch id error");
  }
  // Queue names (through the options check).
  {
    riffle::FifoQueueOptions o;
    o.name = std::string(text);
    bool ok = text.size() > 5 && text.size() <= 80 && text.ends_with(".fifo");
    for (size_t i = 0; ok && i + 5 < text.size(); ++i)
      ok = IsAlnum(text[i]) || text[i] == '-' || text[i] == '_';
    const absl::Status s = riffle::detail::ValidateOptions(o);
    FUZZ_CHECK(s.ok() == ok, Printable(text));
    if (!s.ok()) {
      FUZZ_CHECK(riffle::HasErrorName(
                     s, text.empty() ? riffle::kMissingParameter : riffle::kInvalidParameterValue),
                 riffle_fuzz::Describe(s));
    }
  }
  // Message body characters.
  {
    int64_t expected_cp = -1;
    const size_t expected = ReferenceInvalidBodyChar(text, &expected_cp);
    uint32_t cp = 0;
    const size_t at = riffle::detail::FindInvalidBodyChar(text, &cp);
    FUZZ_CHECK(at == expected, fmt::format("FindInvalidBodyChar('{}') = {}, reference {}",
                                           Printable(text), at, expected));
    if (expected != std::string_view::npos && expected_cp >= 0) {
      FUZZ_CHECK(cp == expected_cp, "FindInvalidBodyChar code point");
    }
  }
  // Message attributes.
  {
    const riffle::MessageAttributes attributes = AttributesFrom(text);
    size_t bytes = 0, expected_bytes = 0;
    const std::string_view expected = ReferenceAttributesError(attributes, &expected_bytes);
    const absl::Status s = riffle::detail::ValidateAttributes(attributes, &bytes);
    FUZZ_CHECK(s.ok() == expected.empty(), fmt::format("ValidateAttributes('{}'): {}",
                                                       Printable(text), riffle_fuzz::Describe(s)));
    if (s.ok()) {
      FUZZ_CHECK(bytes == expected_bytes, "attribute bytes");
    } else {
      FUZZ_CHECK(riffle::HasErrorName(s, expected), riffle_fuzz::Describe(s));
    }
  }
  // Receipt handles: 32 lower-case hex digits of (check of the queue tag, slot and
  // generation, slot, generation).
  {
    const uint64_t tag = 0x0123456789abcdefull;
    uint32_t slot = 0, generation = 0;
    const bool parsed = riffle::detail::ParseReceiptHandle(text, tag, &slot, &generation);
    const bool expected =
        text.size() == 32 && IsLowerHex(text) &&
        Hex(text.substr(0, 16)) ==
            riffle::detail::ReceiptHandleCheck(tag, static_cast<uint32_t>(Hex(text.substr(16, 8))),
                                               static_cast<uint32_t>(Hex(text.substr(24, 8))));
    FUZZ_CHECK(parsed == expected, Printable(text));
    if (parsed) {
      FUZZ_CHECK(slot == Hex(text.substr(16, 8)) && generation == Hex(text.substr(24, 8)),
                 "receipt handle fields");
      std::string back;
      riffle::detail::FormatReceiptHandle(tag, slot, generation, &back);
      FUZZ_CHECK(back == text, "FormatReceiptHandle does not round-trip");
    }
    FUZZ_CHECK(!riffle::detail::ParseReceiptHandle(text, tag ^ 1, &slot, &generation),
               "a receipt handle of another queue was accepted");
  }
  // Formats from raw bits.
  if (size >= 24) {
    uint64_t w[3];
    std::memcpy(w, data, sizeof w);
    std::string handle;
    riffle::detail::FormatReceiptHandle(w[0], static_cast<uint32_t>(w[1]),
                                        static_cast<uint32_t>(w[2]), &handle);
    uint32_t slot = 0, generation = 0;
    FUZZ_CHECK(riffle::detail::ParseReceiptHandle(handle, w[0], &slot, &generation) &&
                   slot == static_cast<uint32_t>(w[1]) && generation == static_cast<uint32_t>(w[2]),
               "FormatReceiptHandle/ParseReceiptHandle round trip");
    std::string id;
    riffle::detail::FormatMessageId(absl::MakeUint128(w[0], w[1]), &id);
    FUZZ_CHECK(id.size() == 36 && id[8] == '-' && id[14] == '4', id);
    std::string sequence;
    riffle::detail::FormatSequenceNumber(w[2] % 1'000'000'000'000'000'000ull, &sequence);
    FUZZ_CHECK(sequence.size() == 20, sequence);
  }
  return 0;
}
