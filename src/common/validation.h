// Request-member constraint violations, worded as the services word them. The service
// checks every member of a request against its shape (length, pattern, range) before the
// operation runs, and answers ValidationException listing what failed:
//
//   2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint:
//   Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at
//   'streamName' failed to satisfy constraint: Member must have length greater than or
//   equal to 1
//
// Members are named by their path in the request, first letter lowered ("partitionKey",
// "records.3.member.partitionKey"); at most 10 violations are listed, as the service does.
//
// Thread safety: a Violations object belongs to one call. Nothing here allocates until a
// violation is recorded.
#ifndef RIFFLE_COMMON_VALIDATION_H_
#define RIFFLE_COMMON_VALIDATION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "riffle/detail/utf8.h"

namespace riffle::detail {

// The patterns of the Kinesis API shapes, as the service prints them.
inline constexpr std::string_view kNamePattern = "[a-zA-Z0-9_.-]+";
inline constexpr std::string_view kHashKeyPattern = "0|([1-9]\\d{0,38})";
inline constexpr std::string_view kSequenceNumberPattern = "0|([1-9]\\d{0,128})";
inline constexpr std::string_view kStreamArnPattern = "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+";
inline constexpr std::string_view kConsumerArnPattern =
    "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/"
    "[a-zA-Z0-9_.-]+:[0-9]+";

// `text` matches 0|([1-9]\d{0,max_digits - 1}).
bool MatchesDecimalPattern(std::string_view text, std::size_t max_digits);

// What every CheckpointStore stores: 1..256 characters without spaces or newlines.
bool IsCheckpointToken(std::string_view text);
// InvalidArgumentException "Checkpoint must be ..." unless IsCheckpointToken(checkpoint).
absl::Status CheckCheckpointValue(std::string_view checkpoint);

// The length of `s` in characters (code points), as the services' length constraints count
// it; its bytes when it is not UTF-8.
inline std::size_t Utf8Chars(std::string_view s) {
  const int64_t n = CountUtf8CodePoints(s);
  return n < 0 ? s.size() : static_cast<std::size_t>(n);
}

class Violations {
 public:
  static constexpr int kMaxListed = 10;

  // A string member: `value` is printed quoted.
  void Add(std::string_view member, std::string_view value, std::string_view constraint);
  // A member whose value the service prints unquoted-then-quoted by its own rule (numbers,
  // lists, blobs): `rendered` is placed between the quotes as is.
  void AddRendered(std::string_view member, std::string_view rendered, std::string_view constraint);

  // A required member that is missing: "Value null at '<member>' ... Member must not be null".
  void Null(std::string_view member);

  // The common checks. Each records at most one violation.
  void Pattern(std::string_view member, std::string_view value, std::string_view pattern,
               bool matches);
  void MinLength(std::string_view member, std::string_view value, std::size_t length,
                 std::size_t min);
  void MaxLength(std::string_view member, std::string_view value, std::size_t length,
                 std::size_t max);
  void Range(std::string_view member, int64_t value, int64_t min, int64_t max);
  // An enum member holding none of its enumerators (an integer cast to the enum type):
  // the integer is printed; `value_set` is the service's list, "[A, B]".
  void EnumValue(std::string_view member, int value, std::string_view value_set);
  // A blob (Data): printed as the service's Java runtime prints a byte buffer.
  void MaxBlobLength(std::string_view member, std::size_t length, std::size_t max);
  // A name of 1..max characters of [a-zA-Z0-9_.-] (stream, consumer, shard id): the
  // pattern is checked before the length, so '' fails both, as on the service.
  void Name(std::string_view member, std::string_view value, std::size_t max = 128);

  bool empty() const { return count_ == 0; }
  int count() const { return count_; }
  // OK when nothing was recorded; otherwise ValidationException with every violation.
  absl::Status ToStatus() const;

 private:
  int count_ = 0;
  std::string text_;
};

}  // namespace riffle::detail

#endif  // RIFFLE_COMMON_VALIDATION_H_
