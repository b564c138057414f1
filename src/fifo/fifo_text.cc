// Text rules of the FIFO queue: validation with the service's error names, and the
// formats of message ids, sequence numbers and receipt handles.
#include "fifo/fifo_text.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include "fmt/format.h"

namespace riffle::detail {

size_t FindInvalidBodyChar(std::string_view text, uint32_t* code_point) {
  // Fast path: plain printable ASCII (and tab, LF, CR) needs no decoding.
  unsigned suspicious = 0;
  for (unsigned char c : text) suspicious |= (c < 0x20) | (c >= 0x80);
  if (!suspicious) return std::string_view::npos;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      *code_point = c;
      return i;
    }
    if (i + len > n) {
      *code_point = c;
      return i;
    }
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        *code_point = c;
        return i;
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static constexpr uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    const bool allowed = cp >= kMinForLength[len] &&
                         (cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                          (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF));
    if (!allowed) {
      *code_point = cp;
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

namespace {
constexpr char kHex[] = "0123456789abcdef";

void PutHex(uint64_t v, int digits, char* out) {
  for (int i = digits - 1; i >= 0; --i, v >>= 4) out[i] = kHex[v & 0xF];
}
}  // namespace

void Sha256Hex(std::string_view data, char out[64]) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xF];
  }
}

void FormatMessageId(absl::uint128 id, std::string* out) {
  uint64_t hi = absl::Uint128High64(id), lo = absl::Uint128Low64(id);
  hi = (hi & ~0xF000ull) | 0x4000ull;                  // Version 4.
  lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);  // RFC 4122 variant.
  out->resize(36);
  char* p = out->data();
  PutHex(hi >> 32, 8, p);
  p[8] = '-';
  PutHex(hi >> 16, 4, p + 9);
  p[13] = '-';
  PutHex(hi, 4, p + 14);
  p[18] = '-';
  PutHex(lo >> 48, 4, p + 19);
  p[23] = '-';
  PutHex(lo, 12, p + 24);
}

void FormatSequenceNumber(uint64_t serial, std::string* out) {
  const fmt::format_int digits(kSequenceBase + serial);
  out->assign(digits.data(), digits.size());
}

uint64_t ReceiptHandleCheck(uint64_t tag, uint32_t slot, uint32_t generation) {
  return Mix64(tag ^ ((uint64_t{slot} << 32) | generation));
}

void FormatReceiptHandle(uint64_t tag, uint32_t slot, uint32_t generation, std::string* out) {
  out->resize(kReceiptHandleSize);
  PutHex(ReceiptHandleCheck(tag, slot, generation), 16, out->data());
  PutHex(slot, 8, out->data() + 16);
  PutHex(generation, 8, out->data() + 24);
}

namespace {
// 8 lower-case hex digits to their value, 8 bytes at a time; false unless all are
// [0-9a-f]. (Per-character table lookups made handle parsing a visible cost of Delete.)
bool DecodeHex8(const char* p, uint32_t* out) {
  constexpr uint64_t k01 = 0x0101010101010101ull, k80 = 0x80 * k01;
  uint64_t x;
  std::memcpy(&x, p, 8);
  if (x & k80) return false;
  // For bytes below 0x80, adding 0x80 - n sets a byte's top bit exactly when it is >= n.
  auto at_least = [&](uint64_t n) { return (x + (0x80 - n) * k01) & k80; };
  const uint64_t digit = at_least(0x30) & ~at_least(0x3A);
  const uint64_t letter = at_least(0x61) & ~at_least(0x67);
  if ((digit | letter) != k80) return false;
  uint64_t v = (x & (0x0F * k01)) + (letter >> 7) * 9;
  v = __builtin_bswap64(v);  // The first digit is the most significant.
  v = (v | (v >> 4)) & 0x00FF00FF00FF00FFull;
  v = (v | (v >> 8)) & 0x0000FFFF0000FFFFull;
  v = (v | (v >> 16)) & 0x00000000FFFFFFFFull;
  *out = static_cast<uint32_t>(v);
  return true;
}
}  // namespace

bool ParseReceiptHandle(std::string_view handle, uint64_t tag, uint32_t* slot,
                        uint32_t* generation) {
  if (handle.size() != kReceiptHandleSize) return false;
  uint32_t tag_hi, tag_lo;
  if (!DecodeHex8(handle.data(), &tag_hi) || !DecodeHex8(handle.data() + 8, &tag_lo) ||
      !DecodeHex8(handle.data() + 16, slot) || !DecodeHex8(handle.data() + 24, generation)) {
    return false;
  }
  return ((uint64_t{tag_hi} << 32) | tag_lo) == ReceiptHandleCheck(tag, *slot, *generation);
}

absl::Status SqsError(std::string_view name, const std::string& message) {
  return MakeError(absl::StatusCode::kInvalidArgument, name, message);
}

absl::Status InvalidParameterValue(const std::string& message) {
  return SqsError(kInvalidParameterValue, message);
}

absl::Status MessageNotInflight() {
  return MakeError(absl::StatusCode::kFailedPrecondition, kMessageNotInflight,
                   "The message is not in flight: its visibility timeout has already ended.");
}

absl::Status ReceiptHandleIsInvalid(std::string_view handle) {
  return SqsError(kReceiptHandleIsInvalid,
                  fmt::format("The input receipt handle \"{}\" is not a valid receipt handle.",
                              handle.substr(0, 64)));
}

absl::Status InvalidParameterValueFor(std::string_view parameter, std::string_view value,
                                      std::string_view reason) {
  return InvalidParameterValue(fmt::format("Value {} for parameter {} is invalid. Reason: {}",
                                           value.substr(0, 1024), parameter, reason));
}

absl::Status ReceiptHandleExpired(std::string_view handle) {
  return InvalidParameterValueFor("ReceiptHandle", handle.substr(0, 64),
                                  "The receipt handle has expired.");
}

absl::Status NotAvailableForVisibilityChange(std::string_view handle) {
  return InvalidParameterValueFor(
      "ReceiptHandle", handle.substr(0, 64),
      "Message does not exist or is not available for visibility timeout change.");
}

// Group ids, deduplication ids and receive attempt ids share one rule.
absl::Status ValidateFifoId(std::string_view parameter, std::string_view id) {
  if (id.empty()) {
    return SqsError(kMissingParameter,
                    fmt::format("The request must contain the parameter {}.", parameter));
  }
  // The service's words for both: too long, or a character other than an ASCII letter,
  // digit or punctuation mark (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~).
  const bool ok = id.size() <= kMaxFifoIdLength && std::all_of(id.begin(), id.end(), [](char c) {
                    return detail::IsFifoIdChar(static_cast<unsigned char>(c));
                  });
  if (!ok) {
    return InvalidParameterValueFor(
        parameter, id,
        fmt::format("{} can only include alphanumeric and punctuation characters. 1 to {} in "
                    "length.",
                    parameter, kMaxFifoIdLength));
  }
  return absl::OkStatus();
}

absl::Status MissingDeduplicationId() {
  return InvalidParameterValue(
      "The queue should either have ContentBasedDeduplication enabled or "
      "MessageDeduplicationId provided explicitly");
}

absl::Status ValidateBatchEntryId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 80;
  for (char c : id)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  if (ok) return absl::OkStatus();
  return SqsError(kInvalidBatchEntryId,
                  "A batch entry id can only contain alphanumeric characters, hyphens and "
                  "underscores. It can be at most 80 letters long.");
}

namespace {

// A Number attribute's value: an optionally signed decimal with an optional exponent, at
// most 38 significant digits (leading and trailing zeros do not count), and zero or a
// magnitude between 10^-128 and 10^126, as the service documents.
enum class NumberCheck : uint8_t { kOk, kNotANumber, kTooPrecise, kOutOfRange };

NumberCheck CheckNumber(std::string_view v) {
  size_t i = 0;
  if (i < v.size() && (v[i] == '-' || v[i] == '+')) ++i;
  // Digits as read, without the point: the first and last non-zero ones, and where the
  // point falls among them.
  int64_t digits = 0, first_nonzero = -1, last_nonzero = -1;
  auto digit_run = [&] {
    size_t n = 0;
    for (; i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])); ++i, ++n, ++digits) {
      if (v[i] != '0') {
        if (first_nonzero < 0) first_nonzero = digits;
        last_nonzero = digits;
      }
    }
    return n;
  };
  size_t read = digit_run();
  const int64_t int_digits = digits;
  if (i < v.size() && v[i] == '.') {
    ++i;
    read += digit_run();
  }
  if (read == 0) return NumberCheck::kNotANumber;
  int64_t exponent = 0;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    bool negative = false;
    if (i < v.size() && (v[i] == '-' || v[i] == '+')) negative = v[i++] == '-';
    size_t exp_digits = 0;
    for (; i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])); ++i, ++exp_digits) {
      exponent = std::min<int64_t>(exponent * 10 + (v[i] - '0'), int64_t{1} << 40);
    }
    if (exp_digits == 0) return NumberCheck::kNotANumber;
    if (negative) exponent = -exponent;
  }
  if (i != v.size()) return NumberCheck::kNotANumber;
  if (first_nonzero < 0) return NumberCheck::kOk;  // zero
  if (last_nonzero - first_nonzero + 1 > 38) return NumberCheck::kTooPrecise;
  // The value is d.ddd x 10^e with e the decimal exponent of its first non-zero digit.
  const int64_t e = int_digits - first_nonzero - 1 + exponent;
  if (e < -128 || e >= 126) return NumberCheck::kOutOfRange;
  return NumberCheck::kOk;
}

// Letters the service accepts in attribute names beyond ASCII: U+00C0..U+017F (Latin-1's
// and Latin Extended-A's letters), two bytes each in UTF-8. Returns the bytes one
// allowed character at `p` takes, or 0.
size_t NameCharBytes(std::string_view name, size_t p) {
  const auto c = static_cast<unsigned char>(name[p]);
  if (std::isalnum(c) || c == '_' || c == '-' || c == '.') return 1;
  if (p + 1 >= name.size()) return 0;
  const auto c1 = static_cast<unsigned char>(name[p + 1]);
  if ((c1 & 0xC0) != 0x80) return 0;
  const unsigned cp = ((c & 0x1Fu) << 6) | (c1 & 0x3Fu);
  return (c & 0xE0) == 0xC0 && cp >= 0xC0 && cp <= 0x17F ? 2 : 0;
}

}  // namespace

absl::Status ValidateAttributes(const MessageAttributes& attributes, size_t* bytes) {
  if (attributes.size() > kMaxMessageAttributes) {
    return InvalidParameterValue(
        fmt::format("Number of message attributes [{}] exceeds the allowed maximum [{}].",
                    attributes.size(), kMaxMessageAttributes));
  }
  for (const auto& [name, value] : attributes) {
    bool ok = !name.empty() && name.front() != '.' && name.back() != '.' &&
              name.find("..") == std::string::npos;
    size_t characters = 0;
    for (size_t p = 0; ok && p < name.size(); ++characters) {
      const size_t n = NameCharBytes(name, p);
      ok = n != 0;
      p += n;
    }
    ok = ok && characters <= 256;
    std::string lower = name.substr(0, 7);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ok = ok && lower.rfind("aws.", 0) != 0 && lower.rfind("amazon.", 0) != 0;
    if (!ok) {
      return InvalidParameterValue(fmt::format(
          "Message attribute name \"{}\" is invalid: it must have 1 to 256 characters of "
          "letters, digits, '_', '-' and '.', not start with \"AWS.\" or \"Amazon.\", not start or "
          "end with '.', and not contain \"..\".",
          name.substr(0, 300)));
    }
    const std::string& type = value.data_type;
    auto base_is = [&](std::string_view base) {
      return type.rfind(base, 0) == 0 &&
             (type.size() == base.size() ||
              (type[base.size()] == '.' && type.size() > base.size() + 1));
    };
    const bool is_binary = base_is("Binary");
    if (type.size() > 256 || !(base_is("String") || base_is("Number") || is_binary)) {
      return InvalidParameterValue(
          fmt::format("The type of message (user) attribute '{}' is invalid. You must use only "
                      "the following supported type prefixes: Binary, Number, String.",
                      name));
    }
    const std::string& v = is_binary ? value.binary_value : value.string_value;
    if (v.empty()) {
      return InvalidParameterValue(
          fmt::format("Message (user) attribute '{}' must contain a non-empty value of type '{}'.",
                      name, type));
    }
    uint32_t cp;
    if (!is_binary && detail::FindInvalidBodyChar(v, &cp) != std::string_view::npos) {
      return InvalidParameterValue(fmt::format(
          "Message attribute \"{}\" contains the invalid character U+{:04X}.", name, cp));
    }
    if (base_is("Number")) {
      switch (CheckNumber(v)) {
        case NumberCheck::kOk:
          break;
        case NumberCheck::kNotANumber:
          return InvalidParameterValue(fmt::format(
              "Can't cast the value of message (user) attribute '{}' to a number.", name));
        case NumberCheck::kTooPrecise:
          return InvalidParameterValue(fmt::format(
              "Message (user) attribute '{}' of type Number has more than 38 significant "
              "digits: \"{}\".",
              name, v.substr(0, 100)));
        case NumberCheck::kOutOfRange:
          return InvalidParameterValue(fmt::format(
              "Message (user) attribute '{}' of type Number is out of range: \"{}\" is not "
              "zero or between 10^-128 and 10^126 in magnitude.",
              name, v.substr(0, 100)));
      }
    }
    *bytes += name.size() + type.size() + v.size();
  }
  return absl::OkStatus();
}

absl::Status CheckRange(std::string_view parameter, int64_t value, int64_t lo, int64_t hi,
                        std::string_view error) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return SqsError(error,
                  fmt::format("{} is {}; it must be between {} and {}.", parameter, value, lo, hi));
}

absl::Status ValidateOptions(const FifoQueueOptions& o) {
  const std::string& name = o.name;
  if (name.empty())
    return SqsError(kMissingParameter, "The request must contain the parameter QueueName.");
  constexpr std::string_view kSuffix = ".fifo";
  bool ok = name.size() <= 80 && name.size() > kSuffix.size() &&
            name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
  for (size_t i = 0; ok && i + kSuffix.size() < name.size(); ++i) {
    const char c = name[i];
    ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  }
  if (!ok) {
    return InvalidParameterValue(fmt::format(
        "QueueName \"{}\" is invalid: a FIFO queue name has 1 to 80 characters of alphanumerics, "
        "hyphens and underscores, ending with \".fifo\".",
        name.substr(0, 100)));
  }
  constexpr std::string_view kBad = kInvalidAttributeValue;
  if (auto s = CheckRange("VisibilityTimeout", o.visibility_timeout_seconds, 0,
                          kMaxVisibilitySeconds, kBad);
      !s.ok())
    return s;
  if (auto s = CheckRange("MessageRetentionPeriod", o.message_retention_period_seconds, 60,
                          1'209'600, kBad);
      !s.ok())
    return s;
  if (auto s = CheckRange("MaximumMessageSize", o.maximum_message_size, 1024, 1'048'576, kBad);
      !s.ok())
    return s;
  if (auto s = CheckRange("DelaySeconds", o.delay_seconds, 0, 900, kBad); !s.ok()) return s;
  if (auto s = CheckRange("ReceiveMessageWaitTimeSeconds", o.receive_message_wait_time_seconds, 0,
                          20, kBad);
      !s.ok())
    return s;
  if (o.deduplication_scope != DeduplicationScope::kQueue &&
      o.deduplication_scope != DeduplicationScope::kMessageGroup) {
    return SqsError(kBad, fmt::format("DeduplicationScope is {}; it must be "
                                      "DeduplicationScope::kQueue or "
                                      "DeduplicationScope::kMessageGroup.",
                                      static_cast<int>(o.deduplication_scope)));
  }
  if (o.redrive_policy) {
    if (!o.redrive_policy->dead_letter_queue) {
      return SqsError(kBad, "RedrivePolicy has no dead-letter queue (dead_letter_queue is null).");
    }
    if (auto s = CheckRange("RedrivePolicy maxReceiveCount", o.redrive_policy->max_receive_count, 1,
                            1000, kBad);
        !s.ok())
      return s;
  }
  return absl::OkStatus();
}

}  // namespace riffle::detail
