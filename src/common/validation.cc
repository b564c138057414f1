#include "common/validation.h"

#include <algorithm>

#include "common/names.h"
#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle::detail {

bool MatchesDecimalPattern(std::string_view text, std::size_t max_digits) {
  if (text == "0") return true;
  if (text.empty() || text.size() > max_digits || text[0] < '1' || text[0] > '9') return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsCheckpointToken(std::string_view text) {
  return !text.empty() && text.size() <= 256 && std::none_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\n' || c == '\r';
  });
}

absl::Status CheckCheckpointValue(std::string_view checkpoint) {
  if (IsCheckpointToken(checkpoint)) return absl::OkStatus();
  return InvalidArgumentError("Checkpoint must be 1 to 256 characters without spaces or newlines.");
}

void Violations::AddRendered(std::string_view member, std::string_view rendered,
                             std::string_view constraint) {
  // The service lists the first ten; the count it reports is the count listed.
  if (count_ >= kMaxListed) return;
  if (count_ > 0) text_ += "; ";
  fmt::format_to(std::back_inserter(text_), "Value '{}' at '{}' failed to satisfy constraint: {}",
                 rendered, member, constraint);
  ++count_;
}

void Violations::Null(std::string_view member) {
  if (count_ >= kMaxListed) return;
  if (count_ > 0) text_ += "; ";
  fmt::format_to(std::back_inserter(text_),
                 "Value null at '{}' failed to satisfy constraint: Member must not be null",
                 member);
  ++count_;
}

void Violations::Add(std::string_view member, std::string_view value, std::string_view constraint) {
  AddRendered(member, value, constraint);
}

void Violations::Pattern(std::string_view member, std::string_view value, std::string_view pattern,
                         bool matches) {
  if (matches) return;
  Add(member, value, fmt::format("Member must satisfy regular expression pattern: {}", pattern));
}

void Violations::MinLength(std::string_view member, std::string_view value, std::size_t length,
                           std::size_t min) {
  if (length >= min) return;
  Add(member, value, fmt::format("Member must have length greater than or equal to {}", min));
}

void Violations::MaxLength(std::string_view member, std::string_view value, std::size_t length,
                           std::size_t max) {
  if (length <= max) return;
  Add(member, value, fmt::format("Member must have length less than or equal to {}", max));
}

void Violations::Range(std::string_view member, int64_t value, int64_t min, int64_t max) {
  if (value < min) {
    AddRendered(member, fmt::format("{}", value),
                fmt::format("Member must have value greater than or equal to {}", min));
  } else if (value > max) {
    AddRendered(member, fmt::format("{}", value),
                fmt::format("Member must have value less than or equal to {}", max));
  }
}

void Violations::EnumValue(std::string_view member, int value, std::string_view value_set) {
  AddRendered(member, fmt::format("{}", value),
              fmt::format("Member must satisfy enum value set: {}", value_set));
}

void Violations::MaxBlobLength(std::string_view member, std::size_t length, std::size_t max) {
  if (length <= max) return;
  AddRendered(member, fmt::format("java.nio.HeapByteBuffer[pos=0 lim={} cap={}]", length, length),
              fmt::format("Member must have length less than or equal to {}", max));
}

void Violations::Name(std::string_view member, std::string_view value, std::size_t max) {
  const bool chars_ok =
      !value.empty() && std::all_of(value.begin(), value.end(), detail::IsNameChar);
  Pattern(member, value, kNamePattern, chars_ok);
  MinLength(member, value, value.size(), 1);
  MaxLength(member, value, value.size(), max);
}

absl::Status Violations::ToStatus() const {
  if (count_ == 0) return absl::OkStatus();
  return ValidationError(
      fmt::format("{} validation error{} detected: {}", count_, count_ > 1 ? "s" : "", text_));
}

}  // namespace riffle::detail
