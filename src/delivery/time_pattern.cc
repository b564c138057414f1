#include "delivery/time_pattern.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "absl/time/civil_time.h"
#include "fmt/format.h"

namespace riffle::detail {
namespace {

// The most letters Java accepts for each supported field (0: not a supported letter).
int MaxLetters(char c) {
  switch (c) {
    case 'G':
    case 'Q':
    case 'q':
    case 'M':
    case 'L':
    case 'E':
      return 5;
    case 'y':
    case 'u':
    case 'S':
      return 9;
    case 'D':
      return 3;
    case 'd':
    case 'H':
    case 'k':
    case 'h':
    case 'K':
    case 'm':
    case 's':
      return 2;
    case 'a':
      return 1;
    default:
      return 0;
  }
}

// Walks `pattern`, calling literal(text) for literal text and field(letter, count) for each
// run of one pattern letter. Returns the first problem, or OK.
template <class Literal, class Field>
absl::Status Walk(std::string_view pattern, std::string_view parameter, Literal literal,
                  Field field) {
  for (size_t i = 0; i < pattern.size();) {
    const char c = pattern[i];
    if (c == '\'') {
      if (i + 1 < pattern.size() && pattern[i + 1] == '\'') {  // '' outside quotes
        literal(std::string_view("'"));
        i += 2;
        continue;
      }
      size_t j = i + 1;
      for (;; ++j) {
        if (j == pattern.size()) {
          return InvalidArgumentError(fmt::format(
              "{} has a timestamp pattern with an unterminated quote: '{}'.", parameter, pattern));
        }
        if (pattern[j] != '\'') {
          literal(pattern.substr(j, 1));
        } else if (j + 1 < pattern.size() && pattern[j + 1] == '\'') {
          literal(std::string_view("'"));
          ++j;
        } else {
          break;
        }
      }
      i = j + 1;
      continue;
    }
    if (c == '[' || c == ']' || c == '{' || c == '}' || c == '#') {
      return InvalidArgumentError(fmt::format(
          "{} has the timestamp pattern '{}', whose '{}' is reserved (optional sections are not "
          "supported); quote it to use it as text.",
          parameter, pattern, c));
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      literal(pattern.substr(i, 1));
      ++i;
      continue;
    }
    size_t run = 1;
    while (i + run < pattern.size() && pattern[i + run] == c) ++run;
    const int max = MaxLetters(c);
    if (max == 0) {
      return InvalidArgumentError(fmt::format(
          "{} has the timestamp pattern letter '{}', which is not supported; supported are "
          "G y u Q q M L d D E a H k h K m s S, and text in single quotes.",
          parameter, c));
    }
    if (static_cast<int>(run) > max) {
      return InvalidArgumentError(
          fmt::format("{} has the timestamp pattern '{}': too many pattern "
                      "letters '{}' ({}; at most {}).",
                      parameter, pattern, c, run, max));
    }
    field(c, static_cast<int>(run));
    i += run;
  }
  return absl::OkStatus();
}

constexpr const char* kMonths[] = {"January",   "February", "March",    "April",
                                   "May",       "June",     "July",     "August",
                                   "September", "October",  "November", "December"};
constexpr const char* kWeekdays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                     "Friday", "Saturday", "Sunday"};
constexpr const char* kQuarters[] = {"1st quarter", "2nd quarter", "3rd quarter", "4th quarter"};

// Text fields by count: 1-3 short (three letters), 4 full, 5 narrow (one letter).
void AppendText(std::string_view full, int count, std::string* out) {
  out->append(count == 4 ? full : full.substr(0, count == 5 ? 1 : 3));
}

void AppendNumber(int64_t value, int min_width, std::string* out) {
  fmt::format_to(std::back_inserter(*out), "{:0{}}", value, min_width);
}

}  // namespace

absl::Status CheckTimePattern(std::string_view pattern, std::string_view parameter) {
  return Walk(
      pattern, parameter, [](std::string_view) {}, [](char, int) {});
}

void AppendTimePattern(std::string_view pattern, absl::Time time, std::string* out) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilSecond cs = absl::ToCivilSecond(time, utc);
  const absl::CivilDay day(cs);
  const int64_t nanos = absl::ToInt64Nanoseconds(time - absl::FromCivil(cs, utc));
  const int month = cs.month();
  const int hour = cs.hour();
  (void)Walk(
      pattern, "", [out](std::string_view text) { out->append(text); },
      [&](char c, int n) {
        switch (c) {
          case 'G':
            out->append(n == 4 ? "Anno Domini" : n == 5 ? "A" : "AD");
            break;
          case 'y':
          case 'u':
            if (n == 2) {
              AppendNumber(((cs.year() % 100) + 100) % 100, 2, out);
            } else {
              AppendNumber(cs.year(), n >= 3 ? n : 1, out);
            }
            break;
          case 'Q':
          case 'q': {
            const int quarter = (month - 1) / 3 + 1;
            if (n == 3) {
              fmt::format_to(std::back_inserter(*out), "Q{}", quarter);
            } else if (n == 4) {
              out->append(kQuarters[quarter - 1]);
            } else {
              AppendNumber(quarter, n == 2 ? 2 : 1, out);
            }
            break;
          }
          case 'M':
          case 'L':
            if (n >= 3) {
              AppendText(kMonths[month - 1], n, out);
            } else {
              AppendNumber(month, n, out);
            }
            break;
          case 'd':
            AppendNumber(cs.day(), n, out);
            break;
          case 'D':
            AppendNumber(absl::GetYearDay(day), n, out);
            break;
          case 'E': {
            // absl::Weekday counts from Monday = 0.
            const int weekday = static_cast<int>(absl::GetWeekday(day));
            AppendText(kWeekdays[weekday], n, out);
            break;
          }
          case 'a':
            out->append(hour < 12 ? "AM" : "PM");
            break;
          case 'H':
            AppendNumber(hour, n, out);
            break;
          case 'k':
            AppendNumber(hour == 0 ? 24 : hour, n, out);
            break;
          case 'h':
            AppendNumber(hour % 12 == 0 ? 12 : hour % 12, n, out);
            break;
          case 'K':
            AppendNumber(hour % 12, n, out);
            break;
          case 'm':
            AppendNumber(cs.minute(), n, out);
            break;
          case 's':
            AppendNumber(cs.second(), n, out);
            break;
          case 'S': {
            // The first n digits of the fraction (nine digits of nanoseconds), truncated.
            int64_t digits = nanos;
            for (int i = n; i < 9; ++i) digits /= 10;
            AppendNumber(digits, n, out);
            break;
          }
          default:
            break;
        }
      });
}

size_t MaxTimePatternLength(std::string_view pattern) {
  size_t longest = 0;
  (void)Walk(
      pattern, "", [&](std::string_view text) { longest += text.size(); },
      [&](char c, int n) {
        switch (c) {
          case 'G':
            longest += n == 4 ? 11 : n == 5 ? 1 : 2;
            break;
          case 'y':
          case 'u':
            longest += n == 2 ? 2 : static_cast<size_t>(std::max(n, 4));
            break;
          case 'Q':
          case 'q':
            longest += n == 4 ? 11 : n == 3 || n == 2 ? 2 : 1;
            break;
          case 'M':
          case 'L':
          case 'E':
            longest += n == 4 ? 9 : n == 5 ? 1 : c != 'E' && n <= 2 ? 2 : 3;
            break;
          case 'D':
            longest += 3;
            break;
          case 'S':
            longest += static_cast<size_t>(n);
            break;
          default:  // d a H k h K m s
            longest += 2;
        }
      });
  return longest;
}

}  // namespace riffle::detail
