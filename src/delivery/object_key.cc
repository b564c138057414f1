#include "delivery/object_key.h"

#include <algorithm>

#include "delivery/time_pattern.h"
#include "fmt/format.h"
#include "riffle/detail/utf8.h"

namespace riffle::detail {
namespace {

constexpr size_t kMaxPrefixBytes = 1024;
// The service's rule: neither prefix may be longer than this once evaluated.
constexpr size_t kMaxEvaluatedPrefixBytes = 512;
constexpr size_t kMaxErrorOutputTypeBytes =
    std::max({kProcessingFailedOutput.size(), kDeliveryFailedOutput.size(),
              kPartitioningFailedOutput.size()});

}  // namespace

absl::StatusOr<PrefixTemplate> PrefixTemplate::Parse(std::string_view text,
                                                     std::string_view parameter,
                                                     bool is_error_prefix) {
  if (text.size() > kMaxPrefixBytes) {
    return InvalidArgumentError(fmt::format("{} is {} bytes; it must be at most {} bytes.",
                                            parameter, text.size(), kMaxPrefixBytes));
  }
  PrefixTemplate t;
  bool has_expression = false;
  std::string literal;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "!{") != 0) {
      literal += text[i++];
      continue;
    }
    const size_t close = text.find('}', i);
    if (close == std::string_view::npos) {
      return InvalidArgumentError(
          fmt::format("{} has an unterminated expression at offset {}.", parameter, i));
    }
    const std::string_view expr = text.substr(i + 2, close - i - 2);
    const size_t colon = expr.find(':');
    const std::string_view ns = expr.substr(0, colon);
    const std::string_view arg = colon == std::string_view::npos ? "" : expr.substr(colon + 1);
    if (!literal.empty()) t.segments_.push_back({Kind::kLiteral, std::exchange(literal, {})});
    if (ns == "timestamp" && !arg.empty()) {
      if (absl::Status s = CheckTimePattern(arg, parameter); !s.ok()) return s;
      t.segments_.push_back({Kind::kTimestamp, std::string(arg)});
    } else if ((ns == "partitionKeyFromQuery" || ns == "partitionKeyFromLambda") && !arg.empty() &&
               !is_error_prefix) {
      t.segments_.push_back({Kind::kPartitionKey, std::string(arg)});
      t.uses_partition_keys_ = true;
    } else if (ns == "firehose" && arg == "random-string") {
      t.segments_.push_back({Kind::kRandomString, ""});
    } else if (ns == "firehose" && arg == "error-output-type" && is_error_prefix) {
      t.segments_.push_back({Kind::kErrorOutputType, ""});
    } else {
      return InvalidArgumentError(fmt::format(
          "{} has the unsupported expression '!{{{}}}'; {} accepts !{{timestamp:<pattern>}}, "
          "!{{firehose:random-string}}{}.",
          parameter, expr, parameter,
          is_error_prefix ? " and !{firehose:error-output-type}"
                          : ", !{partitionKeyFromQuery:<name>} and "
                            "!{partitionKeyFromLambda:<name>}"));
    }
    has_expression = true;
    i = close + 1;
  }
  if (!literal.empty()) t.segments_.push_back({Kind::kLiteral, std::move(literal)});
  if (is_error_prefix && has_expression &&
      std::none_of(t.segments_.begin(), t.segments_.end(),
                   [](const Segment& s) { return s.kind == Kind::kErrorOutputType; })) {
    return InvalidArgumentError(fmt::format(
        "{} has expressions but no !{{firehose:error-output-type}}; an {} with expressions "
        "must contain it at least once.",
        parameter, parameter));
  }
  // The service's rules: a Prefix with no !{timestamp:...} gets !{timestamp:yyyy/MM/dd/HH/}
  // appended (one without expressions too: "logs/" delivers under logs/2026/01/01/00/),
  // except with dynamic partitioning, whose keys make the layout; an ErrorOutputPrefix
  // without expressions gets the same time directories.
  const bool has_timestamp =
      std::any_of(t.segments_.begin(), t.segments_.end(),
                  [](const Segment& s) { return s.kind == Kind::kTimestamp; });
  if (is_error_prefix ? !has_expression : !has_timestamp && !t.uses_partition_keys_) {
    t.segments_.push_back({Kind::kTimestamp, "yyyy/MM/dd/HH/"});
  }
  return t;
}

absl::Status PrefixTemplate::CheckEvaluatedLength(std::string_view parameter) const {
  // The longest it can evaluate to, partition key values aside.
  size_t longest = 0;
  for (const Segment& s : segments_) {
    switch (s.kind) {
      case Kind::kLiteral:
        longest += s.text.size();
        break;
      case Kind::kTimestamp:
        longest += MaxTimePatternLength(s.text);
        break;
      case Kind::kRandomString:
        longest += 11;
        break;
      case Kind::kErrorOutputType:
        longest += kMaxErrorOutputTypeBytes;
        break;
      case Kind::kPartitionKey:
        break;
    }
  }
  if (longest > kMaxEvaluatedPrefixBytes) {
    return InvalidArgumentError(fmt::format(
        "{} can evaluate to {} characters; it must be at most {} characters after it is "
        "evaluated.",
        parameter, longest, kMaxEvaluatedPrefixBytes));
  }
  return absl::OkStatus();
}

void PrefixTemplate::Evaluate(absl::Time timestamp, PartitionValueSpan values,
                              std::string_view error_output_type, std::mt19937_64& rng,
                              std::string* out) const {
  for (const Segment& s : segments_) {
    switch (s.kind) {
      case Kind::kLiteral:
        out->append(s.text);
        break;
      case Kind::kTimestamp:
        AppendTimePattern(s.text, timestamp, out);
        break;
      case Kind::kPartitionKey:
        for (const auto& [name, value] : values) {
          if (name == s.text) {
            out->append(value);
            break;
          }
        }
        break;
      case Kind::kErrorOutputType:
        out->append(error_output_type);
        break;
      case Kind::kRandomString: {
        // Lowercase hexadecimal, as the service's examples (046b6c7f-0b aside, a UUID's
        // start) are.
        static constexpr char kAlphabet[] = "0123456789abcdef";
        for (int i = 0; i < 11; ++i) out->push_back(kAlphabet[rng() % (sizeof(kAlphabet) - 1)]);
        break;
      }
    }
  }
}

void PrefixTemplate::EvaluateSample(std::string* out) const {
  PartitionValueList values;
  for (const Segment& s : segments_) {
    if (s.kind == Kind::kPartitionKey) values.emplace_back(s.text, "p");
  }
  std::mt19937_64 rng(0);
  Evaluate(absl::FromUnixSeconds(946684800), values, kProcessingFailedOutput, rng, out);
}

std::string_view PrefixTemplate::MissingPartitionKey(PartitionValueSpan values) const {
  for (const Segment& s : segments_) {
    if (s.kind != Kind::kPartitionKey) continue;
    bool found = false;
    for (const auto& [name, value] : values) found = found || name == s.text;
    if (!found) return s.text;
  }
  return "";
}

void AppendObjectName(std::string_view stream_name, int version, absl::Time time,
                      std::mt19937_64& rng, std::string_view extension, std::string* out) {
  const uint64_t hi = rng();
  const uint64_t lo = rng();
  fmt::format_to(std::back_inserter(*out), "{}-{}-{}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}{}",
                 stream_name, version,
                 absl::FormatTime("%Y-%m-%d-%H-%M-%S", time, absl::UTCTimeZone()), hi >> 32,
                 (hi >> 16) & 0xffff, ((hi & 0x0fff) | 0x4000), ((lo >> 48) & 0x3fff) | 0x8000,
                 lo & 0xffffffffffffULL, extension);
}

void AppendJsonString(std::string_view value, std::string* out) {
  // JSON text is UTF-8: a value that is not (an exception's text, a sink's message) has
  // each byte above 0x7F written as the code point of that value, \u0080..\u00ff.
  const bool utf8 = CountUtf8CodePoints(value) >= 0;
  out->push_back('"');
  for (const char c : value) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 ||
            (!utf8 && static_cast<unsigned char>(c) >= 0x80)) {
          fmt::format_to(std::back_inserter(*out), "\\u{:04x}",
                         static_cast<int>(static_cast<unsigned char>(c)));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace riffle::detail
