// The digests SQS returns with a sent or received message, computed as the service computes
// them (and as its SDKs check them): MD5 of the body, and MD5 of an encoding of the
// message attributes in name order.
#include <cstdint>
#include <string>

#include "riffle/detail/md5.h"
#include "riffle/sqs.h"

namespace riffle {
namespace {

std::string Hex(const std::array<uint8_t, 16>& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xF];
  }
  return out;
}

void PutLengthPrefixed(std::string_view bytes, std::string& out) {
  const uint32_t n = static_cast<uint32_t>(bytes.size());
  const char length[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                          static_cast<char>(n >> 8), static_cast<char>(n)};
  out.append(length, 4);
  out.append(bytes.data(), bytes.size());
}

bool IsBinaryType(std::string_view data_type) {
  return data_type.rfind("Binary", 0) == 0 && (data_type.size() == 6 || data_type[6] == '.');
}

}  // namespace

std::string Md5OfMessageBody(std::string_view body) {
  return Hex(detail::Md5(body.data(), body.size()));
}

std::string Md5OfMessageAttributes(const MessageAttributes& attributes) {
  if (attributes.empty()) return {};
  // std::map orders names by their bytes; names are ASCII ([A-Za-z0-9_.-]), for which
  // that is the service's order too.
  std::string encoded;
  for (const auto& [name, value] : attributes) {
    PutLengthPrefixed(name, encoded);
    PutLengthPrefixed(value.data_type, encoded);
    const bool binary = IsBinaryType(value.data_type);
    encoded.push_back(binary ? 2 : 1);
    PutLengthPrefixed(binary ? value.binary_value : value.string_value, encoded);
  }
  return Hex(detail::Md5(encoded.data(), encoded.size()));
}

}  // namespace riffle
