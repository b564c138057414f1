// Decompression (src/delivery/compression.h detail::Decompress) of every CompressionFormat,
// with a max_output_bytes bound: any input gives OK with at most the bound, or
// InvalidArgumentException with no output, and never allocates more than the input can
// expand to (libFuzzer's -malloc_limit_mb catches a declared length trusted). Compressing
// the input and decompressing it gives the input back, exactly within a bound of its size.
//
// Input: byte 0 = options (bits 0-2: the format, modulo 5; bits 3-5: the bound, one of 0,
// 1, 1000, 65536, 1 MiB, unbounded, 16, 4096; bits 6-7 and the format: the compression level), then
// the bytes to decompress (and to compress).
#include <limits>

#include "delivery/compression.h"
#include "fuzz_support.h"
#include "riffle/delivery_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto format = static_cast<riffle::CompressionFormat>((data[0] & 7) % 5);
  static constexpr size_t kBounds[8] = {
      0, 1, 1000, 65536, size_t{1} << 20, std::numeric_limits<size_t>::max(), 16, 4096};
  const size_t bound = kBounds[(data[0] >> 3) & 7];
  const std::string_view input = riffle_fuzz::AsText(data + 1, size - 1);

  std::string out = "stale";
  const absl::Status s = riffle::detail::Decompress(format, input, &out, bound);
  if (s.ok()) {
    FUZZ_CHECK(out.size() <= bound, fmt::format("{} bytes out, bound {}", out.size(), bound));
  } else {
    FUZZ_CHECK(riffle::IsInvalidArgumentException(s), riffle_fuzz::Describe(s));
    FUZZ_CHECK(out.empty(), "output left after an error");
  }

  // Round trip.
  const int level = 1 + (data[0] >> 6 | (data[0] & 7) << 2) % 9;
  riffle::detail::Compressor compressor(format, level);
  std::string compressed;
  const absl::Status c = compressor.Compress(input, "part-0", &compressed);
  FUZZ_CHECK(c.ok(), riffle_fuzz::Describe(c));
  std::string back;
  const absl::Status d = riffle::detail::Decompress(format, compressed, &back);
  FUZZ_CHECK(d.ok() && back == input,
             fmt::format("round trip: {}", d.ok() ? "differs" : riffle_fuzz::Describe(d)));
  const absl::Status exact = riffle::detail::Decompress(format, compressed, &back, input.size());
  FUZZ_CHECK(exact.ok() && back == input, "a bound of exactly the size was refused");
  if (!input.empty()) {
    const absl::Status under =
        riffle::detail::Decompress(format, compressed, &back, input.size() - 1);
    FUZZ_CHECK(riffle::IsInvalidArgumentException(under) && back.empty(),
               "output over the bound was accepted");
  }
  return 0;
}
