// The !{timestamp:<pattern>} expressions of Firehose prefixes: Java DateTimeFormatter
// patterns (the service evaluates them with java.time), read and formatted here for UTC.
//
// Supported pattern letters, with Java's meaning for each count:
//   G era (AD, Anno Domini, A)          y u year (yy: two digits)
//   Q q quarter (1, 01, Q1, 1st quarter) M L month (3, 03, Mar, March, M)
//   d day of month    D day of year     E day of week (Tue, Tuesday, T)
//   a AM/PM           H hour 0-23       k hour 1-24     h hour 1-12     K hour 0-11
//   m minute          s second          S fraction of the second (one digit per letter)
// Text in single quotes is literal ('' is a quote, inside quotes too); any other character
// that is not a letter is literal, except the reserved [ ] { } #. Letters Java gives to
// zones, week-based fields and the like (w W Y e c F n N A p V v z O X x Z B) are refused.
//
// Thread safety: pure functions.
#ifndef RIFFLE_DELIVERY_TIME_PATTERN_H_
#define RIFFLE_DELIVERY_TIME_PATTERN_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "riffle/status.h"

namespace riffle::detail {

// OK when `pattern` is one this file formats; otherwise InvalidArgumentException naming
// `parameter` and what is wrong.
[[nodiscard]] absl::Status CheckTimePattern(std::string_view pattern, std::string_view parameter);

// Appends `time` (UTC) formatted by `pattern`. REQUIRES: CheckTimePattern(pattern) is OK.
void AppendTimePattern(std::string_view pattern, absl::Time time, std::string* out);

// The most characters AppendTimePattern can append for `pattern` (years up to 9999).
size_t MaxTimePatternLength(std::string_view pattern);

}  // namespace riffle::detail

#endif  // RIFFLE_DELIVERY_TIME_PATTERN_H_
