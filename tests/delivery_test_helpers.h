// Helpers shared by the DeliveryStream tests (test_delivery*.cpp).
#ifndef RIFFLE_TESTS_DELIVERY_TEST_HELPERS_H_
#define RIFFLE_TESTS_DELIVERY_TEST_HELPERS_H_

#include <zlib.h>

#include <catch2/catch.hpp>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "riffle/delivery_stream.h"
#include "riffle/sink.h"

namespace riffle_test {

using riffle::CompressionFormat;
using riffle::DeliveryStream;
using riffle::DeliveryStreamOptions;
using riffle::DestinationUpdate;
using riffle::ProcessingResult;

inline constexpr size_t kMiB = 1 << 20;

inline DeliveryStreamOptions BaseOptions(riffle::Sink* sink, riffle::Clock* clock) {
  DeliveryStreamOptions o;
  o.delivery_stream_name = "orders";
  o.sink = sink;
  o.clock = clock;
  o.random_seed = 42;
  return o;
}

inline std::unique_ptr<DeliveryStream> MustCreate(DeliveryStreamOptions o) {
  auto ds = DeliveryStream::Create(std::move(o));
  REQUIRE(ds.ok());
  return *std::move(ds);
}

inline std::string Record(int i) { return "record-" + std::to_string(1000000 + i) + ";"; }

inline std::string Gunzip(std::string_view gz) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  char buf[65536];
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  inflateEnd(&z);
  REQUIRE(rc == Z_STREAM_END);
  REQUIRE(z.avail_in == 0);
  return out;
}

// Splits "record-NNNNNNN;" concatenations back into records.
inline std::vector<std::string> SplitRecords(std::string_view data) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == ';') {
      out.emplace_back(data.substr(start, i + 1 - start));
      start = i + 1;
    }
  }
  REQUIRE(start == data.size());
  return out;
}

// The rawData fields of an error object (JSON lines), base64-decoded, and the error codes.
struct ErrorLines {
  std::vector<std::string> raw;
  std::vector<std::string> codes;
  std::vector<int> attempts;
  std::vector<std::string> lambda_arns;  // "" where the line has none
};
inline ErrorLines ParseErrorObject(const std::string& body) {
  ErrorLines out;
  static const std::regex line_re(
      R"re(^\{"attemptsMade":(\d+),"arrivalTimestamp":\d+,"errorCode":"([^"]*)","errorMessage":"(?:[^"\\]|\\.)*","attemptEndingTimestamp":\d+,"recordId":"\d+","deliveryStreamName":"orders","rawData":"([A-Za-z0-9+/=]*)"(?:,"lambdaArn":"([^"]*)")?\}$)re");
  size_t start = 0;
  while (start < body.size()) {
    const size_t end = body.find('\n', start);
    REQUIRE(end != std::string::npos);
    const std::string line = body.substr(start, end - start);
    std::smatch m;
    INFO(line);
    REQUIRE(std::regex_match(line, m, line_re));
    std::string raw;
    REQUIRE(absl::Base64Unescape(m[3].str(), &raw));
    out.raw.push_back(raw);
    out.codes.push_back(m[2].str());
    out.attempts.push_back(std::stoi(m[1].str()));
    out.lambda_arns.push_back(m[4].str());
    start = end + 1;
  }
  return out;
}

inline bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace riffle_test

#endif  // RIFFLE_TESTS_DELIVERY_TEST_HELPERS_H_
