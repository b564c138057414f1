// Object compression for DeliveryStream: GZIP (a real gzip member, RFC 1952), ZIP (one
// deflated entry, PKWARE APPNOTE), Snappy (the framing format with masked CRC-32C, as
// Firehose's SNAPPY) and Hadoop-Snappy (Hadoop's BlockCompressorStream layout).
//
// Thread safety: a Compressor is used by one thread at a time; the free functions are
// thread-safe.
#ifndef RIFFLE_DETAIL_COMPRESSION_H_
#define RIFFLE_DETAIL_COMPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "riffle/status.h"

namespace riffle {
enum class CompressionFormat : int;  // defined in riffle/delivery_stream.h
}  // namespace riffle

namespace riffle::detail {

// Keeps codec state (zlib's ~270 KB deflate state) between objects, so steady-state
// compression allocates nothing but output growth.
class Compressor {
 public:
  // REQUIRES: 1 <= gzip_level <= 9 (also used for ZIP).
  Compressor(CompressionFormat format, int gzip_level);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  // Replaces *out with the compressed form of `input`. `entry_name` names the ZIP entry.
  [[nodiscard]] absl::Status Compress(std::string_view input, std::string_view entry_name,
                                      std::string* out);

 private:
  struct Zlib;
  CompressionFormat format_;
  int level_;
  std::unique_ptr<Zlib> zlib_;
};

// The object-key extension for `format`: "", ".gz", ".zip", ".snappy" (both Snappy forms).
std::string_view FileExtension(CompressionFormat format);

// The inverse of Compressor::Compress, for readers and tests: replaces *out with the
// decompressed bytes, verifying checksums. Every size the input declares (Snappy block
// lengths, Hadoop block lengths, ZIP entry sizes) is checked against the bytes left in the
// input, the format's limits and `max_output_bytes` before anything is allocated for it,
// so hostile input costs at most its size times the format's expansion bound (deflate
// 1032, Snappy 22) and never more than `max_output_bytes`. Errors: InvalidArgumentException
// for input that is corrupt, truncated, unsupported or would pass `max_output_bytes`
// (*out is then empty).
[[nodiscard]] absl::Status Decompress(CompressionFormat format, std::string_view input,
                                      std::string* out,
                                      size_t max_output_bytes = std::numeric_limits<size_t>::max());

// CRC-32C (Castagnoli), as the Snappy framing format uses it before masking.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_COMPRESSION_H_
