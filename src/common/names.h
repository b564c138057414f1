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

// The ARN partition of a region: aws-cn for the China regions, aws-us-gov for GovCloud,
// aws elsewhere (an account lives in one partition, and its ARNs name it).
constexpr std::string_view ArnPartition(std::string_view region) {
  if (region.starts_with("cn-")) return "aws-cn";
  if (region.starts_with("us-gov-")) return "aws-us-gov";
  return "aws";
}

// The domain of a region's service endpoints (SQS queue URLs).
constexpr std::string_view EndpointDomain(std::string_view region) {
  return region.starts_with("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_NAMES_H_
