// Object keys and prefixes for DeliveryStream, in Firehose's format:
//
//   <prefix><DeliveryStreamName>-<version>-YYYY-MM-DD-HH-MM-SS-<random><extension>
//
// A prefix is literal text with expressions: !{timestamp:yyyy/MM/dd/HH} (a Java
// DateTimeFormatter pattern, time_pattern.h; the time is the arrival time of the batch's
// oldest record, UTC), !{partitionKeyFromQuery:name} and !{partitionKeyFromLambda:name}
// (values from the partition key function), !{firehose:random-string} (11 hexadecimal
// characters) and, in error prefixes only, !{firehose:error-output-type}. As Firehose does,
// a Prefix with no timestamp expression (an empty one too) gets "YYYY/MM/DD/HH/" appended
// unless it names partition keys, and so does an ErrorOutputPrefix without expressions.
//
// Thread safety: a parsed PrefixTemplate is immutable; Evaluate takes the caller's RNG.
#ifndef RIFFLE_DELIVERY_OBJECT_KEY_H_
#define RIFFLE_DELIVERY_OBJECT_KEY_H_

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "riffle/status.h"

namespace riffle::detail {

using PartitionValueList = std::vector<std::pair<std::string, std::string>>;
using PartitionValueSpan = std::span<const std::pair<std::string, std::string>>;

// The error output types: the !{firehose:error-output-type} of an error object's prefix.
inline constexpr std::string_view kProcessingFailedOutput = "processing-failed";
inline constexpr std::string_view kDeliveryFailedOutput = "delivery-failed";
inline constexpr std::string_view kPartitioningFailedOutput = "partitioning-failed";

class PrefixTemplate {
 public:
  // `parameter` is the option's AWS name for messages ("Prefix", "ErrorOutputPrefix").
  [[nodiscard]] static absl::StatusOr<PrefixTemplate> Parse(std::string_view text,
                                                            std::string_view parameter,
                                                            bool is_error_prefix);

  // InvalidArgumentException when the prefix can evaluate to more than 512 characters
  // (the service's rule), partition key values aside.
  [[nodiscard]] absl::Status CheckEvaluatedLength(std::string_view parameter) const;

  // Appends the prefix to *out. A missing partition value evaluates to "" (callers check
  // MissingPartitionKey first).
  void Evaluate(absl::Time timestamp, PartitionValueSpan values, std::string_view error_output_type,
                std::mt19937_64& rng, std::string* out) const;

  // Appends what the prefix evaluates to with a fixed time, "p" for every partition key
  // and the first error output type: a key to check against a sink's rule for keys.
  void EvaluateSample(std::string* out) const;

  // The first partition key the prefix names that `values` lacks, or "" if none.
  std::string_view MissingPartitionKey(PartitionValueSpan values) const;

  bool uses_partition_keys() const { return uses_partition_keys_; }

 private:
  enum class Kind { kLiteral, kTimestamp, kPartitionKey, kErrorOutputType, kRandomString };
  struct Segment {
    Kind kind;
    std::string text;  // literal text, Java time pattern, or partition key name
  };
  std::vector<Segment> segments_;
  bool uses_partition_keys_ = false;
};

// Appends "<name>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><extension>" (UTC) to *out.
void AppendObjectName(std::string_view stream_name, int version, absl::Time time,
                      std::mt19937_64& rng, std::string_view extension, std::string* out);

// Appends `value` as a JSON string literal (quotes and escapes included); bytes of a value
// that is not UTF-8 are escaped one by one (\u0080..\u00ff), so the text stays UTF-8.
void AppendJsonString(std::string_view value, std::string* out);

}  // namespace riffle::detail

#endif  // RIFFLE_DELIVERY_OBJECT_KEY_H_
