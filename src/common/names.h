// The naming rule the services share for streams, consumers and applications: 1 to
// `max_length` characters of [a-zA-Z0-9_.-].
#ifndef RIFFLE_DETAIL_NAMES_H_
#define RIFFLE_DETAIL_NAMES_H_

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace riffle::detail {

constexpr bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

constexpr bool IsValidName(std::string_view name, std::size_t max_length = 128) {
  return !name.empty() && name.size() <= max_length &&
         std::all_of(name.begin(), name.end(), IsNameChar);
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_NAMES_H_
