// Reads back what the demo's DeliveryStream wrote: every object under a directory (gzip
// ones decompressed with zlib), split into newline-delimited records, each checked with
// an OrderVerifier. Objects are delivered at least once and their names carry a random
// suffix, so this checks that every record arrived, intact, and how many times.
#ifndef RIFFLE_EXAMPLES_DEMO_DELIVERED_FILES_H_
#define RIFFLE_EXAMPLES_DEMO_DELIVERED_FILES_H_

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>

#include "verifier.h"

namespace demo {

struct DeliveredFiles {
  uint64_t objects = 0;
  uint64_t records = 0;
  uint64_t unique_records = 0;
  uint64_t corrupt = 0;
};

inline bool Gunzip(const std::string& in, std::string* out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) return false;  // 32: accept a gzip header
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out->append(buf, sizeof(buf) - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END;
}

// Objects live under `dir` in Firehose's YYYY/MM/DD/HH/ layout; the error output's
// prefixes (processing-failed/, delivery-failed/, ...) are skipped.
inline DeliveredFiles ReadDelivered(const std::filesystem::path& dir) {
  DeliveredFiles d;
  std::set<std::pair<std::string, std::string>> seen;  // (key, counter)
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string rel = std::filesystem::relative(entry.path(), dir).string();
    if (rel.find("failed") != std::string::npos || rel.starts_with(".riffle-tmp")) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::string text;
    if (entry.path().extension() == ".gz") {
      if (!Gunzip(bytes, &text)) {
        ++d.corrupt;
        continue;
      }
    } else {
      text = std::move(bytes);
    }
    ++d.objects;
    std::size_t start = 0;
    while (start < text.size()) {
      std::size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      const std::string_view line(text.data() + start, nl - start);
      start = nl + 1;
      const auto c1 = line.find(',');
      const auto c2 = c1 == std::string_view::npos ? c1 : line.find(',', c1 + 1);
      if (c2 == std::string_view::npos) {
        ++d.corrupt;
        continue;
      }
      ++d.records;
      if (seen.emplace(std::string(line.substr(0, c1)),
                       std::string(line.substr(c1 + 1, c2 - c1 - 1)))
              .second) {
        ++d.unique_records;
      }
    }
  }
  return d;
}

}  // namespace demo

#endif  // RIFFLE_EXAMPLES_DEMO_DELIVERED_FILES_H_
